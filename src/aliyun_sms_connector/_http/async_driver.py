"""The async driver: one aiohttp session per event loop, and a deadline it holds itself.

aiohttp's own total timeout cannot say which phase it interrupted, so each
call arms one timer of its own for its deadline and a subclass of aiohttp's
connector marks the moment a connection is in hand: before it, nothing was
sent. ``close()``/``aclose()`` stop every call in flight the same way, with a
reason, so that each ends in a :class:`~.models.TransportError` and only a
caller's own cancellation propagates as ``CancelledError``.

A session lives as long as its event loop: an async generator registered with
the loop closes it during ``shutdown_asyncgens``, so ``asyncio.run(...)`` in a
loop leaves no sockets behind.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import weakref
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .models import TransportError, WireResponse, plaintext_answer

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import AsyncGenerator

    from .models import Kind, WireRequest

__all__ = ["AsyncDriver"]


class _Flight:
    """One async call in flight: its task, its phase, and why it was stopped."""

    __slots__ = ("deadline", "reason", "sent", "task", "transport")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.sent = False
        self.reason: Kind | None = None
        self.transport: Any = None

    def stop(self, reason: Kind) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()


# Set by AsyncDriver.send for its own task; read by the connector subclass below,
# which marks the moment a connection is in hand and writing begins.
_flight: ContextVar[_Flight | None] = ContextVar("aliyun_sms_connector_flight", default=None)


class _PastDeadlineError(Exception):
    """A pooled connection came only after the deadline: nothing was written."""


class _LoopSession:
    """The aiohttp session of one event loop, and the calls in flight on it."""

    __slots__ = ("flights", "keeper", "loop", "session")

    def __init__(self, loop: asyncio.AbstractEventLoop, session: Any) -> None:
        self.loop = loop
        self.session = session
        self.flights: set[_Flight] = set()
        self.keeper: Any = None

    def stop_flights(self) -> None:
        for flight in list(self.flights):
            flight.stop("closed")


_Sessions = dict["asyncio.AbstractEventLoop", _LoopSession]


async def _keeper(
    sessions: _Sessions, lock: threading.Lock, entry: _LoopSession
) -> AsyncGenerator[None, None]:
    """Live as long as the loop: ``shutdown_asyncgens`` closes the session.

    ``asyncio.run`` (and ``asyncio.Runner``, pytest-asyncio, anyio) close
    every live async generator before closing the loop. This one is kept
    alive by the driver and, when closed, closes its loop's session, so a
    connector used from ``asyncio.run(...)`` in a loop keeps no sockets open.
    It holds no reference to the driver, so a dropped driver is collected.
    """
    try:
        yield
    finally:
        _forget(sessions, lock, entry)
        # A closed loop (see _release_dead) can await nothing.
        if not entry.loop.is_closed():
            entry.stop_flights()
            await _close_session(entry.session)


async def _close_session(session: Any) -> None:
    import asyncio  # noqa: PLC0415

    connector = session.connector
    await session.close()
    if connector is not None:
        connector.abort_all()
        # One turn of the loop: aborted transports close their sockets then.
        await asyncio.sleep(0)


def _connector_class() -> Any:
    global _CONNECTOR, _NETWORK_ERRORS  # noqa: PLW0603 - built once, on the first async call
    if _CONNECTOR is None:
        import asyncio  # noqa: PLC0415

        import aiohttp  # noqa: PLC0415 - loaded only by async callers

        class _PhaseConnector(aiohttp.TCPConnector):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                # Every transport handed out, to abort at close: a TLS one that
                # aiohttp closed after a failure waits for the peer's
                # close_notify, and would outlive a loop that closes first.
                self.transports: weakref.WeakSet[Any] = weakref.WeakSet()

            async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
                conn = await super().connect(req, traces, timeout)
                flight = _flight.get()
                if flight is not None and time.monotonic() >= flight.deadline:
                    # On a busy loop the deadline timer can run late; a
                    # connection handed over after the deadline is given
                    # back unused, so that a late send is never written.
                    conn.release()
                    raise _PastDeadlineError
                # A connection is in hand: from here on, bytes may be written.
                if flight is not None:
                    flight.sent = True
                    flight.transport = conn.transport
                self.transports.add(conn.transport)
                return conn

            def abort_all(self) -> None:
                for transport in list(self.transports):
                    transport.abort()

        _CONNECTOR = _PhaseConnector
        _NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
    return _CONNECTOR


_CONNECTOR: Any = None
# What the network raises through aiohttp; anything else is a bug.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = ()


def _uncancel(task: asyncio.Task[Any]) -> int:
    """Take back one cancel request; the number still pending (0 on 3.10)."""
    if sys.version_info >= (3, 11):
        return task.uncancel()
    return 0  # pragma: no cover - Python 3.10 cannot tell; the caller's is lost


def _client_timeout(connect_timeout: float, read_timeout: float) -> Any:
    key = (connect_timeout, read_timeout)
    timeout = _TIMEOUTS.get(key)
    if timeout is None:
        import aiohttp  # noqa: PLC0415

        # No total: the deadline is held by send_async itself, which knows
        # the phase when it runs out.
        timeout = aiohttp.ClientTimeout(sock_connect=connect_timeout, sock_read=read_timeout)
        if len(_TIMEOUTS) > 64:  # noqa: PLR2004 - a handful of configs per process
            _TIMEOUTS.clear()
        _TIMEOUTS[key] = timeout
    return timeout


_TIMEOUTS: dict[tuple[float, float], Any] = {}


def _headers(given: Any) -> dict[str, str]:
    """The answer's headers, names lower-cased, a repeated one comma-joined as on the sync side."""
    headers = {name.lower(): value for name, value in given.items()}
    if len(headers) != len(given):  # rare: a header came more than once
        headers = {}
        for name, value in given.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _async_kind(err: BaseException, *, sent: bool) -> Kind:
    import asyncio  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415

    timeout = isinstance(err, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
    if not sent:
        if isinstance(err, aiohttp.ClientConnectorCertificateError):
            return "certificate"
        if plaintext_answer(err):
            return "tls_plaintext"
        return "connect_timeout" if timeout else "connect"
    return "read_timeout" if timeout else "connection_lost"


class AsyncDriver:
    """Sends over one aiohttp session per event loop, each of up to ``max_connections``."""

    def __init__(
        self,
        *,
        protocol: str,
        host: str,
        ssl_context: ssl.SSLContext | None,
        proxy: str | None,
        max_connections: int,
    ) -> None:
        self._protocol = protocol
        self._host = host
        self._ssl = ssl_context
        self._proxy = proxy
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._sessions: _Sessions = {}
        self._urls: dict[str, Any] = {}
        self._proxy_url: Any = None
        self._closed = False
        # Sessions of a driver dropped unclosed are closed in their loops
        # (or, for a loop already closed, their sockets are).
        weakref.finalize(self, _abort_all, self._sessions, self._lock)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    async def send(  # noqa: C901, PLR0912 - one frame: a helper coroutine per send costs one more
        self,
        request: WireRequest,
        *,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> WireResponse:
        """Send ``request`` over this event loop's session, by ``deadline``.

        Raises:
            TransportError: No complete answer. Only the caller's own
                cancellation propagates as ``asyncio.CancelledError``.
        """
        import asyncio  # noqa: PLC0415 - cached after the first call

        if self._closed:
            raise TransportError("closed", maybe_sent=False)
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is None:
            entry = await self._open_session(loop)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TransportError("deadline", maybe_sent=False)
        task = asyncio.current_task()
        assert task is not None  # noqa: S101 - a coroutine awaited in a loop runs in a task
        flight = _Flight(task, deadline)
        token = _flight.set(flight)
        entry.flights.add(flight)
        timer = loop.call_later(left, flight.stop, "deadline")
        failure: Kind | None = None
        try:
            response = await entry.session.request(
                request.method,
                self._url(request.target),
                data=request.body,
                headers=request.headers,
                timeout=_client_timeout(connect_timeout, read_timeout),
                allow_redirects=False,
                proxy=self._proxy_url,
            )
            try:
                # On success read() hands the connection back to the pool.
                body = await response.read()
            except BaseException:
                response.close()  # half-read: the connection cannot be reused
                raise
            result = WireResponse(response.status, _headers(response.headers), body)
        except asyncio.CancelledError:
            if flight.reason is None:
                raise  # the caller's own cancellation
            failure = flight.reason
        except _PastDeadlineError:
            failure = flight.reason or "deadline"
        except _NETWORK_ERRORS as err:
            failure = flight.reason or _async_kind(err, sent=flight.sent)
        except Exception:
            if flight.reason is None:
                raise  # a bug, not the network: not to be retried as one
            failure = flight.reason
        finally:
            timer.cancel()
            entry.flights.discard(flight)
            _flight.reset(token)
        # The cancel requested by flight.stop is ours to take back; one the
        # caller requested as well still propagates.
        if flight.reason is not None and _uncancel(task) > 0:
            raise asyncio.CancelledError
        if failure is not None:
            if flight.transport is not None:
                # The connection is done for. Python 3.10's TLS transport,
                # lost under aiohttp, would otherwise warn when collected.
                flight.transport.abort()
            raise TransportError(failure, maybe_sent=flight.sent) from None
        return result

    def _url(self, target: str) -> Any:
        url = self._urls.get(target)
        if url is None:
            import yarl  # noqa: PLC0415 - an aiohttp dependency

            # Encoded already: yarl must not encode it again.
            url = yarl.URL(f"{self._protocol}://{self._host}{target}", encoded=True)
            if len(self._urls) > 64:  # noqa: PLR2004 - targets with a query vary per call
                self._urls.clear()
            self._urls[target] = url
        return url

    async def _open_session(self, loop: asyncio.AbstractEventLoop) -> _LoopSession:
        import aiohttp  # noqa: PLC0415 - loaded only by async callers

        # Nothing awaits between the lookup in send() and the insert
        # below, so one loop gets one session; the lock guards the dict
        # against other threads' loops.
        with self._lock:
            if self._closed:
                raise TransportError("closed", maybe_sent=False)
            dead = [entry for key, entry in self._sessions.items() if key.is_closed()]
            connector = _connector_class()(
                limit=self._max_connections,
                # HTTP has no TLS to verify; HTTPS always gets the one context.
                ssl=self._ssl if self._ssl is not None else True,
            )
            session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
            entry = _LoopSession(loop, session)
            self._sessions[loop] = entry
            if self._proxy is not None and self._proxy_url is None:
                import yarl  # noqa: PLC0415

                self._proxy_url = yarl.URL(self._proxy)
        for old in dead:
            _forget(self._sessions, self._lock, old)
            _release_dead(old)
        keeper = _keeper(self._sessions, self._lock, entry)
        # The first step registers the keeper with this loop's asyncgen hooks.
        await keeper.asend(None)
        entry.keeper = keeper
        return entry

    async def aclose(self) -> None:
        """Close every session; calls in flight end with kind ``"closed"``.

        This loop's session is closed here; those of other loops are closed
        in their own loops, or at once if those loops are closed.
        """
        import asyncio  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        with self._lock:
            self._closed = True
            entries = list(self._sessions.values())
        for entry in entries:
            if entry.loop is not loop:
                _abort_elsewhere(self._sessions, self._lock, entry)
                continue
            entry.stop_flights()
            if entry.keeper is not None:
                await entry.keeper.aclose()
            else:  # still opening
                _forget(self._sessions, self._lock, entry)
                await _close_session(entry.session)

    def close(self) -> None:
        """Close every session, each in its own loop; calls in flight end with ``"closed"``."""
        with self._lock:
            self._closed = True
        _abort_all(self._sessions, self._lock)


def _forget(sessions: _Sessions, lock: threading.Lock, entry: _LoopSession) -> None:
    with lock:
        if sessions.get(entry.loop) is entry:
            del sessions[entry.loop]


def _abort_all(sessions: _Sessions, lock: threading.Lock) -> None:
    with lock:
        entries = list(sessions.values())
    for entry in entries:
        _abort_elsewhere(sessions, lock, entry)


def _abort_elsewhere(sessions: _Sessions, lock: threading.Lock, entry: _LoopSession) -> None:
    """Stop the calls of a session whose loop may run in another thread."""
    loop = entry.loop
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(_close_in_loop, entry)
        except RuntimeError:  # closed in the meantime
            pass
        else:
            return
    _forget(sessions, lock, entry)
    _release_dead(entry)


def _close_in_loop(entry: _LoopSession) -> None:
    entry.stop_flights()
    if entry.keeper is not None:
        closing = entry.loop.create_task(entry.keeper.aclose())
        _CLOSING.add(closing)
        closing.add_done_callback(_CLOSING.discard)


_CLOSING: set[Any] = set()


def _release_dead(entry: _LoopSession) -> None:
    """Free a session whose event loop closed without ``shutdown_asyncgens``."""
    if entry.keeper is not None:
        # Finish the keeper here, so that its finalizer never asks the dead
        # loop to close it.
        closing = entry.keeper.aclose()
        try:
            closing.send(None)
        except StopIteration:
            pass
        except Exception:  # noqa: BLE001, S110 - a dead loop cannot close anything
            pass
        finally:
            closing.close()
    connector = entry.session.connector
    if connector is None:
        return
    # The loop is gone, so the transports cannot be closed the usual way;
    # close their sockets so that no file descriptor outlives the loop.
    protocols = [proto for conns in connector._conns.values() for proto, _ in conns]  # noqa: SLF001
    protocols.extend(connector._acquired)  # noqa: SLF001
    for proto in protocols:
        _close_dead_transport(getattr(proto, "transport", None))
    connector._close()  # noqa: SLF001 - marks it closed; the loop is gone


def _close_dead_transport(transport: Any) -> None:
    """Close the socket under an asyncio transport whose loop is closed.

    asyncio's own ``close()`` needs the loop, and a transport dropped with its
    socket open warns (ResourceWarning) when collected. So the socket is
    closed here and the transport told it has none; this pokes at asyncio's
    internals, on purpose and only for a loop that is already gone.
    """
    if transport is None:
        return
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if inner is not None:  # TLS: the socket transport is under the SSL one
        with contextlib.suppress(AttributeError):
            transport._closed = True  # noqa: SLF001
        transport = inner
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        sock.close()
        with contextlib.suppress(AttributeError):
            transport._sock = None  # noqa: SLF001
