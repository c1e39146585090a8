"""The store's own pool of redis-py connections, for the asyncio clients it builds.

redis-py's asyncio ``ConnectionPool`` pays, on every command, for an
``asyncio.Lock`` taken twice, OpenTelemetry bookkeeping and an event
dispatched on release: more client CPU than the whole of a check's own work.
:class:`DirectPool` keeps idle redis-py connections in a list instead, and
drives each one as ``execute_command`` would, without its per-call layers.

What is kept of redis-py: its connections (connect, TLS, AUTH, SELECT, the
optional health-check PING), its replies' parser, and their disconnect on any
failure or cancellation while writing or reading, so that a half-read reply is
never handed to the next call. What is kept of its pool: the check that an
idle connection holds no unread data and was not closed by the server, and
``max_connections``; past it, calls wait for a connection (bounded by the
store's deadline) instead of failing at once.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
from typing import Any

__all__ = ["DirectPool", "can_drive", "pack"]

_RESP2 = (None, 2, "2")


def can_drive(client: Any) -> bool:
    """Whether :class:`DirectPool` can stand in for ``client``'s own pool.

    Only a plain ``redis.asyncio.ConnectionPool`` over RESP2, without a
    credential provider, encoding text as strict UTF-8: over RESP3 redis-py
    may ask a connection to reconnect (maintenance notifications), and
    streaming credentials re-authenticate connections on the pool's release
    events. Those clients keep redis-py's pool.
    """
    import redis.asyncio  # noqa: PLC0415

    pool = getattr(client, "connection_pool", None)
    if type(pool) is not redis.asyncio.ConnectionPool:
        return False
    kwargs = pool.connection_kwargs
    return (
        kwargs.get("protocol") in _RESP2
        and kwargs.get("credential_provider") is None
        # pack() writes text as UTF-8, strictly, as redis-py does by default;
        # a client told otherwise must name its keys the same way on both paths.
        and _is_utf8(kwargs.get("encoding", "utf-8"))
        and kwargs.get("encoding_errors", "strict") == "strict"
    )


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False  # redis-py's own path fails on it, as a store fault


class DirectPool:
    """Runs commands on redis-py connections made from ``pool``'s settings, one at a time each."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._max = int(pool.max_connections)
        self._made: list[Any] = []
        self._idle: list[Any] = []
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._closed = False
        # redis-py 8 renamed the check of an idle connection (and deprecated the old name).
        connection_class = pool.connection_class
        self._ready_check = (
            "can_read" if hasattr(connection_class, "can_read") else "can_read_destructive"
        )

    async def __call__(self, *command: Any) -> Any:
        """Send ``command`` (text and integers) and read its reply."""
        idle = self._idle
        connection = idle.pop() if idle else await self._connection()
        try:
            await connection.connect()  # returns at once when connected
            try:
                stale = await getattr(connection, self._ready_check)()
            except Exception:  # noqa: BLE001 - redis-py disconnected it: not ready either
                stale = True
            if stale:
                # Unread data, or a close from the server, on an idle
                # connection: it is not ready for a command. A new one is.
                await connection.disconnect()
                await connection.connect()
            await connection.send_packed_command(pack(command, connection.encoder))
            return await connection.read_response()
        finally:
            if self._closed:
                # Closed while this call was connecting: its socket may be new.
                await connection.disconnect()
            else:
                self._release(connection)

    async def aclose(self) -> None:
        """Disconnect every connection, idle or in use; calls in flight or waiting fail."""
        self._closed = True
        self._idle = []
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_closed())
        await asyncio.gather(*(c.disconnect() for c in self._made), return_exceptions=True)

    async def _connection(self) -> Any:
        if self._closed:
            raise _closed()
        if len(self._made) < self._max:
            connection = self._pool.make_connection()
            self._made.append(connection)
            return connection
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            # A cancelled waiter stays queued; _release skips it.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection, then cancelled before taking it: pass it on.
                self._release(waiter.result())
            raise

    def _release(self, connection: Any) -> None:
        # Synchronous, so that no cancellation can lose a connection here.
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)


def _closed() -> ConnectionError:
    return ConnectionError("the store's connections are closed")


def pack(command: tuple[Any, ...], encoder: Any) -> bytes:
    """``command`` in RESP, as redis-py's ``pack_command`` writes it, at a third of its cost.

    The store's commands (EVALSHA and EVAL: one-word names, which redis-py
    would otherwise split at spaces) are made of text, UTF-8 as redis-py
    encodes it by default, and integers; anything else goes through
    redis-py's encoder.
    """
    parts = [b"*%d\r\n" % len(command)]
    for arg in command:
        if isinstance(arg, str):
            data = arg.encode()
        elif type(arg) is int:
            data = b"%d" % arg
        else:
            data = encoder.encode(arg)
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)
