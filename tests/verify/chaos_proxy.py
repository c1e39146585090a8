"""A TCP proxy between the verification service and Redis that breaks things on purpose.

It runs an asyncio loop in a background thread on 127.0.0.1. Faults come in
two kinds:

- deterministic ones, armed by a test: :meth:`ChaosProxy.refuse` (nothing
  listens), :meth:`ChaosProxy.blackhole` (requests vanish, nothing answers),
  :meth:`ChaosProxy.reset_after` (a TCP reset after N bytes of the request or
  of its reply, which cuts a script call in the middle), and
  :meth:`ChaosProxy.inject_error` (answer a request with an error reply such
  as ``READONLY`` without passing it on);
- random ones, from :meth:`ChaosProxy.chaos`: each request may be delayed,
  dropped (never answered), or cut before or after Redis ran it. The dice
  come from one ``random.Random(seed)``, used only on the proxy's thread.
  The seed is ``CHAOS_SEED`` from the environment when set, so a failing run
  can be replayed; with concurrent clients the order of requests, and so the
  exact faults each one meets, can still vary between runs.

Every throw of the dice is written to :attr:`ChaosProxy.decisions`, in order,
so a test can check what the proxy did without trusting what a client
library saw: a client that retries, reconnects or health-checks sends more
requests, and so meets other faults, but the proxy still records each one.

Requests are matched on whole reads from the client socket. redis-py sends
one command per write outside pipelines, which is all the store does.

:meth:`ChaosProxy.watch` keeps every request containing one of the given
markers that the proxy passed on whole to Redis, which may then have run it
(whatever became of its reply): the witness of what did reach Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self

HOST = "127.0.0.1"
SEED_ENV = "CHAOS_SEED"
_REDIRECT = re.compile(rb"(-(?:MOVED|ASK) \d+ )([^:\s]+):(\d+)")


def chaos_seed() -> int:
    """``CHAOS_SEED`` from the environment, else a fresh random seed."""
    forced = os.environ.get(SEED_ENV)
    if forced:
        return int(forced)
    return random.SystemRandom().randrange(2**32)


@dataclass(frozen=True)
class ChaosSettings:
    """Probabilities per request, for :meth:`ChaosProxy.chaos`."""

    delay: float = 0.0
    max_delay: float = 0.05
    drop: float = 0.0
    cut_request: float = 0.0
    cut_reply: float = 0.0
    reset_on_connect: float = 0.0


@dataclass
class _Rule:
    kind: Literal["reset_request", "reset_reply", "error", "refuse", "blackhole"]
    match: bytes
    remaining: int
    nbytes: int = 0
    reply: bytes = b""
    skip: int = 0


class _Conn:
    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.reply_budget: int | None = None  # bytes of reply still allowed before a reset
        self.dropping = False

    def reset(self) -> None:
        """Close both sides with a TCP reset (SO_LINGER 0), never a polite FIN."""
        for writer in (self.client, self.upstream):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class ChaosProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``, with faults on demand.

    Args:
        upstream: (host, port) of the real server.
        seed: Seed of the random faults; :func:`chaos_seed` when None.
    """

    def __init__(self, upstream: tuple[str, int], *, seed: int | None = None) -> None:
        self.upstream = upstream
        self.seed = chaos_seed() if seed is None else seed
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible test faults
        #: What the dice decided, in order: ``("connect", "pass" | "reset")`` for
        #: each accepted connection, then ``("request", what)`` for each request
        #: read while random faults are on, ``what`` being ``"forward"``,
        #: ``"delay <s> forward"``, ``"drop request"``, ``"drop reply"``,
        #: ``"cut request at <n>"`` or ``"cut reply at <n>"`` (after a delay too).
        #: Appended on the proxy's thread only.
        self.decisions: list[tuple[str, str]] = []
        self._settings = ChaosSettings()
        self._mode: Literal["pass", "blackhole", "refuse"] = "pass"
        self._rules: list[_Rule] = []
        self._conns: set[_Conn] = set()
        self._port = 0
        #: Rewrites each chunk of replies before it reaches the client.
        self.reply_filter: Callable[[bytes], bytes] | None = None
        self._watched: tuple[bytes, ...] = ()
        self._forwarded: list[bytes] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start listening on a free port; returns self."""
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="chaos-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None
        self._thread = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self._port)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` through the proxy."""
        return f"redis://{HOST}:{self._port}/0"

    # -- deterministic faults ----------------------------------------------

    def passthrough(self) -> None:
        """Forward faithfully again: no mode, no pending rule, no random chaos."""
        with self._lock:
            self._rules.clear()
            self._settings = ChaosSettings()
        if self._mode == "refuse":
            self._call(self._listen())
        self._mode = "pass"
        self._call(self._undrop())

    def refuse(self, *, skip: int | None = None, match: bytes = b"EVAL") -> None:
        """Stop listening and reset every open connection: connects are refused.

        With ``skip``, this happens when the request after ``skip`` requests
        containing ``match`` arrives (that request is lost with its connection).
        """
        if skip is not None:
            with self._lock:
                self._rules.append(_Rule("refuse", match, 1, skip=skip))
            return
        self._mode = "refuse"
        self._call(self._close_listener())
        self.disconnect_all()

    def blackhole(self, *, skip: int | None = None, match: bytes = b"EVAL") -> None:
        """Accept and read, but never pass a request on: every call times out.

        With ``skip``, the black hole opens at the request after ``skip``
        requests containing ``match``.
        """
        if skip is not None:
            with self._lock:
                self._rules.append(_Rule("blackhole", match, 1, skip=skip))
            return
        self._mode = "blackhole"

    def retarget(self, upstream: tuple[str, int]) -> None:
        """Send new connections to ``upstream`` and reset the open ones (a client-side failover)."""
        self.upstream = upstream
        self.disconnect_all()

    def reset_after(
        self,
        nbytes: int,
        *,
        match: bytes = b"EVAL",
        reply: bool = True,
        count: int = 1,
        skip: int = 0,
    ) -> None:
        """Reset the connection in the middle of the next ``count`` requests containing ``match``.

        With ``reply=True`` the request reaches Redis, which runs it, and the
        client gets only the first ``nbytes`` of the answer: the script's
        effect is stored, its outcome unknown to the client. (A ``NOSCRIPT``
        answer passes: that script did not run; the reply to the ``EVAL``
        that follows is cut instead.) With
        ``reply=False`` Redis gets only the first ``nbytes`` of the request
        and never runs it. The first ``skip`` matching requests pass untouched.
        """
        kind: Literal["reset_request", "reset_reply"] = "reset_reply" if reply else "reset_request"
        with self._lock:
            self._rules.append(_Rule(kind, match, count, nbytes=nbytes, skip=skip))

    def inject_error(
        self, error: str, *, match: bytes = b"EVAL", count: int = 1, skip: int = 0
    ) -> None:
        """Answer the next ``count`` requests containing ``match`` with ``-error``, unforwarded.

        The first ``skip`` matching requests pass untouched.
        """
        reply = f"-{error}\r\n".encode()
        with self._lock:
            self._rules.append(_Rule("error", match, count, reply=reply, skip=skip))

    def disconnect_all(self) -> None:
        """Reset every open connection (both sides)."""
        self._call(self._reset_all())

    # -- witness ---------------------------------------------------------------

    def watch(self, *markers: bytes) -> None:
        """From now on, keep each request containing one of ``markers`` that is passed on whole."""
        with self._lock:
            self._watched = markers

    @property
    def forwarded(self) -> list[bytes]:
        """The watched requests passed on whole to Redis (it may have run them), in order."""
        with self._lock:
            return list(self._forwarded)

    def _witness(self, data: bytes) -> None:
        if self._watched and any(marker in data for marker in self._watched):
            with self._lock:
                self._forwarded.append(bytes(data))

    # -- random faults -------------------------------------------------------

    def chaos(self, settings: ChaosSettings) -> None:
        """Apply random faults to every following request, drawn from the seeded generator."""
        with self._lock:
            self._settings = settings

    # -- internals -------------------------------------------------------

    def _call(self, coro: object) -> object:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, HOST, self._port, reuse_address=True, backlog=512
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _close_listener(self) -> None:
        # close() shuts the listening socket at once. No wait_closed(): since
        # Python 3.12 it also waits for every accepted connection to end.
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _reset_all(self) -> None:
        for conn in list(self._conns):
            conn.reset()
        self._conns.clear()

    async def _undrop(self) -> None:
        for conn in self._conns:
            conn.dropping = False

    async def _shutdown(self) -> None:
        await self._reset_all()
        await self._close_listener()

    def _take_rule(self, data: bytes) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.match in data:
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), timeout=5
            )
        except (OSError, asyncio.TimeoutError):  # not TimeoutError on Python 3.10
            writer.transport.abort()
            return
        conn = _Conn(writer, up_writer)
        self._conns.add(conn)
        self.stats["connections"] += 1
        if self._rng.random() < self._settings.reset_on_connect:
            self.stats["reset_on_connect"] += 1
            self.decisions.append(("connect", "reset"))
            conn.reset()
            self._conns.discard(conn)
            return
        self.decisions.append(("connect", "pass"))
        pumps = (
            asyncio.ensure_future(self._requests(reader, conn)),
            asyncio.ensure_future(self._replies(up_reader, conn)),
        )
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            conn.reset()
            self._conns.discard(conn)

    async def _requests(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        while data := await reader.read(65536):
            if self._mode == "blackhole" or conn.dropping:
                self.stats["blackholed"] += 1
                continue
            rule = self._take_rule(data)
            if rule is not None:
                self.stats[rule.kind] += 1
                if rule.kind == "error":
                    conn.client.write(rule.reply)
                    continue
                if rule.kind == "blackhole":
                    self._mode = "blackhole"
                    continue
                if rule.kind == "refuse":
                    self._mode = "refuse"
                    await self._close_listener()
                    await self._reset_all()
                    return
                if rule.kind == "reset_request":
                    conn.upstream.write(data[: rule.nbytes])
                    await conn.upstream.drain()
                    conn.reset()
                    return
                conn.reply_budget = rule.nbytes
            else:
                action, cut_at = await self._random_request_fault(conn, len(data))
                if action == "cut":
                    conn.upstream.write(data[:cut_at])
                    await conn.upstream.drain()
                    conn.reset()
                    return
                if action == "swallow":
                    continue
            self._witness(data)
            conn.upstream.write(data)
            await conn.upstream.drain()

    async def _random_request_fault(
        self, conn: _Conn, size: int
    ) -> tuple[Literal["forward", "swallow", "cut"], int]:
        """Draw the random faults for one request; the dice are thrown in a fixed order.

        Returns the action and, for a cut, how many of the ``size`` bytes pass.
        """
        settings, rng = self._settings, self._rng
        roll = rng.random()
        delayed = ""
        if rng.random() < settings.delay:
            self.stats["delayed"] += 1
            pause = rng.uniform(0, settings.max_delay)
            delayed = f"delay {pause:.6f} "
            await asyncio.sleep(pause)
        action: Literal["forward", "swallow", "cut"] = "forward"
        cut_at = 0
        if roll < settings.drop:
            # Half the drops lose the request, half lose its answer after
            # Redis ran it; either way this connection never answers again.
            self.stats["dropped"] += 1
            conn.dropping = True
            action = "swallow" if rng.random() < 0.5 else "forward"
            what = "drop request" if action == "swallow" else "drop reply"
        elif roll < settings.drop + settings.cut_request:
            self.stats["cut_request"] += 1
            action, cut_at = "cut", rng.randrange(size)
            what = f"cut request at {cut_at}"
        elif roll < settings.drop + settings.cut_request + settings.cut_reply:
            self.stats["cut_reply"] += 1
            conn.reply_budget = rng.randrange(8)
            what = f"cut reply at {conn.reply_budget}"
        else:
            what = "forward"
        self.decisions.append(("request", delayed + what))
        return action, cut_at

    async def _replies(self, reader: asyncio.StreamReader, conn: _Conn) -> None:
        while data := await reader.read(65536):
            if conn.reply_budget is not None and not data.startswith(b"-NOSCRIPT"):
                # A NOSCRIPT reply means the script did not run: the cut waits
                # for the reply to the EVAL that the client sends next.
                conn.client.write(data[: conn.reply_budget])
                await conn.client.drain()
                conn.reset()
                return
            if conn.dropping:
                continue
            if self.reply_filter is not None:
                data = self.reply_filter(data)
            conn.client.write(data)
            await conn.client.drain()


class ProxyGroup:
    """One :class:`ChaosProxy` per Redis Cluster node, driven as one.

    redis-py's cluster clients take ``address_remap``: :meth:`remap` sends
    every node address the cluster announces through that node's proxy. Each
    fault method arms the same fault on every proxy.
    """

    def __init__(self, upstreams: list[tuple[str, int]], *, seed: int | None = None) -> None:
        self.seed = chaos_seed() if seed is None else seed
        self.proxies = {
            port: ChaosProxy((host, port), seed=self.seed + index)
            for index, (host, port) in enumerate(upstreams)
        }
        for proxy in self.proxies.values():
            proxy.reply_filter = self._remap_redirects

    def _remap_redirects(self, data: bytes) -> bytes:
        # redis-py's asyncio cluster client does not pass MOVED/ASK targets
        # through address_remap, so the proxies rewrite them.
        def swap(match: re.Match[bytes]) -> bytes:
            proxy = self.proxies.get(int(match.group(3)))
            port = match.group(3) if proxy is None else str(proxy.port).encode()
            return match.group(1) + match.group(2) + b":" + port

        return _REDIRECT.sub(swap, data)

    def __enter__(self) -> Self:
        try:
            for proxy in self.proxies.values():
                proxy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    def remap(self, address: tuple[str, int]) -> tuple[str, int]:
        """``address_remap`` for redis-py: a node's address → its proxy's."""
        proxy = self.proxies.get(address[1])
        return address if proxy is None else proxy.address

    @property
    def port(self) -> int:
        """The first proxy's port (for checks that no port leaks into messages)."""
        return next(iter(self.proxies.values())).port

    @property
    def cluster_url(self) -> str:
        """``redis+cluster://`` through the first proxy.

        The seed must be a proxy too: redis-py keeps the seed's own address
        among its nodes and may send commands to it directly.
        """
        return f"redis+cluster://{HOST}:{self.port}"

    @property
    def stats(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for proxy in self.proxies.values():
            total.update(proxy.stats)
        return total

    def passthrough(self) -> None:
        for proxy in self.proxies.values():
            proxy.passthrough()

    def watch(self, *markers: bytes) -> None:
        for proxy in self.proxies.values():
            proxy.watch(*markers)

    @property
    def forwarded(self) -> list[bytes]:
        return [data for proxy in self.proxies.values() for data in proxy.forwarded]

    def refuse(self, **kwargs: object) -> None:
        for proxy in self.proxies.values():
            proxy.refuse(**kwargs)  # type: ignore[arg-type]

    def blackhole(self, **kwargs: object) -> None:
        for proxy in self.proxies.values():
            proxy.blackhole(**kwargs)  # type: ignore[arg-type]

    def reset_after(self, nbytes: int, **kwargs: object) -> None:
        for proxy in self.proxies.values():
            proxy.reset_after(nbytes, **kwargs)  # type: ignore[arg-type]

    def inject_error(self, error: str, **kwargs: object) -> None:
        for proxy in self.proxies.values():
            proxy.inject_error(error, **kwargs)  # type: ignore[arg-type]

    def chaos(self, settings: ChaosSettings) -> None:
        for proxy in self.proxies.values():
            proxy.chaos(settings)
