"""The I/O drivers behind a connector: they move bytes and classify failures.

The sans-I/O core builds a :class:`WireRequest` and reads a :class:`WireResponse`;
this module only sends the one and receives the other, sync or async, and
says what went wrong when no complete response came back. It never imports
the Aliyun SDK.

Every failure answers one question: may any byte of the request have reached
the server? Before the first byte is written (the pool wait, DNS, the TCP
connect, the proxy tunnel, the TLS handshake) nothing was sent, and a retry is
safe. From the first byte written on (a reset, a TLS error mid-stream, a
partial or malformed answer, a read timeout) the SMS may already be on its
way, and it must never be sent again.

The sync side keeps its own small pool of ``http.client``-parsed connections,
built with the transport, so that a cold fan-out from many threads is safe;
driving the socket itself is what lets it know the phase exactly and hold the
deadline on every ``recv``. The async side keeps one ``aiohttp`` session per
event loop. Both verify TLS with one SSL context that loads the CA bundle (or
``caFile``) once.
"""

from __future__ import annotations

import contextlib
import io
import socket
import sys
import threading
import time
import weakref
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import AsyncGenerator, Mapping

__all__ = ["Transport", "TransportError", "WireRequest", "WireResponse"]

Kind = Literal[
    "connect",
    "connect_timeout",
    "certificate",
    "read_timeout",
    "connection_lost",
    "deadline",
    "closed",
]


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One HTTP request, ready to send.

    Only ``method`` is shown in its repr: the target, headers and body carry
    signatures, tokens and the SMS itself.
    """

    method: str
    #: ``/`` or ``/?<encoded query>``: sent as is, never re-encoded.
    target: str = field(repr=False)
    #: Every header to send, ``host`` included; ``content-length`` is added here.
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WireResponse:
    """One complete HTTP response; header names are lower-cased."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


_MESSAGES: dict[str, str] = {
    "connect": "could not connect to the SMS endpoint",
    "connect_timeout": "connecting to the SMS endpoint timed out",
    "certificate": "the SMS endpoint's TLS certificate could not be verified",
    "read_timeout": "the SMS endpoint did not answer in time",
    "connection_lost": "the connection to the SMS endpoint broke before a complete answer",
    "deadline": "the deadline passed before the SMS endpoint answered",
    "closed": "the connector was closed",
}


class TransportError(Exception):
    """A request that did not produce a complete HTTP response.

    ``str(err)`` is a fixed sentence per :attr:`kind`; nothing of the request
    or of the lower layer is reachable from the error.
    """

    kind: Kind
    #: True once any byte of the request may have been written.
    maybe_sent: bool

    def __init__(self, kind: Kind, *, maybe_sent: bool) -> None:
        super().__init__(_MESSAGES[kind])
        self.kind = kind
        self.maybe_sent = maybe_sent

    def __repr__(self) -> str:
        return f"TransportError({self.kind!r}, maybe_sent={self.maybe_sent})"


# -- shared helpers -------------------------------------------------------------

# How close to the deadline a timeout counts as the deadline's.
_SLACK = 0.002


def _check(request: WireRequest) -> None:
    """Refuse a request that would be split on the wire (CR/LF injection).

    A target is a path and an encoded query: printable ASCII without spaces.
    Header names and values are printable ASCII: a CR or LF would end the
    header, a non-ASCII character has no agreed encoding. One pass over one
    string: this runs for every request.
    """
    target = request.target
    if not (target.isascii() and target.isprintable()) or " " in target:
        raise ValueError("the request target holds a space or a control character")
    headers = request.headers
    text = "".join((*headers, *headers.values()))
    if not (text.isascii() and text.isprintable()):
        raise ValueError("a request header holds a line break or a non-ASCII character")


def _split_host(host: str, default_port: int) -> tuple[str, int]:
    """``"a.b:8080"`` -> ``("a.b", 8080)``; ``"[::1]:80"`` -> ``("::1", 80)``."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else default_port
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, default_port


def _environment_proxy(protocol: str, host: str) -> str | None:
    """The proxy for ``protocol://host`` from HTTP(S)_PROXY and NO_PROXY, looked up once."""
    import urllib.request  # noqa: PLC0415 - once per transport

    hostname = _split_host(host, 0)[0]
    proxies = urllib.request.getproxies()
    if not proxies.get(protocol) or urllib.request.proxy_bypass(hostname):
        return None
    return proxies[protocol]


def _client_context(ca_file: str | None) -> ssl.SSLContext:
    from ._tls import client_context  # noqa: PLC0415

    return client_context(ca_file)


# -- the sync side --------------------------------------------------------------


class _Expired(Exception):  # noqa: N818 - internal signal, never raised out
    """The deadline passed."""


class _Closed(Exception):  # noqa: N818 - internal signal, never raised out
    """The transport was closed."""


class _Reader(io.RawIOBase):
    """A socket's bytes, each ``recv`` bounded by the read timeout and the deadline."""

    def __init__(self, sock: socket.socket, deadline: float, read_timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._read_timeout = read_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _Expired
        self._sock.settimeout(min(left, self._read_timeout))
        return self._sock.recv_into(buffer)


class _Conn:
    """A pool slot: a permit to hold one connection, and its socket when open."""

    __slots__ = ("deadline", "read_timeout", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.deadline = 0.0
        self.read_timeout = 0.0

    def makefile(self, mode: str) -> io.BufferedReader:
        """What ``http.client.HTTPResponse`` reads the answer from."""
        del mode
        assert self.sock is not None  # noqa: S101 - set before any response is read
        return io.BufferedReader(_Reader(self.sock, self.deadline, self.read_timeout))


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Expired
    return left


def _left(limit: float) -> float:
    left = limit - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


_Addresses = list[tuple[Any, Any, int, str, Any]]


def _resolve(host: str, port: int, limit: float) -> _Addresses:
    """``getaddrinfo`` by ``limit``: a resolver that hangs must not outlast the deadline.

    A name is resolved in a daemon thread,
    once per new connection (connections are pooled), so that the wait can
    be bounded; a thread left hanging ends with the resolver's own timeout.
    """
    answer: list[_Addresses | OSError] = []
    done = threading.Event()

    def run() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            answer.append(err)
        done.set()

    threading.Thread(target=run, name="aliyun-sms-resolve", daemon=True).start()
    if not done.wait(_left(limit)):
        raise TimeoutError
    result = answer[0]
    if isinstance(result, OSError):
        raise result
    return result


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle pooled connection was closed (or sent junk) meanwhile."""
    pending = getattr(sock, "pending", None)
    if pending is not None and pending():
        return True
    try:
        import select  # noqa: PLC0415 - cached after the first call

        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _SyncPool:
    """Up to ``size`` connections to one address, shared by threads."""

    def __init__(self, size: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        # Open connections at the right end (LIFO: the warmest first).
        self._idle: deque[_Conn] = deque(_Conn() for _ in range(size))
        self._busy: set[_Conn] = set()
        self.closed = False

    def acquire(self, deadline: float) -> _Conn:
        with self._cond:
            while True:
                if self.closed:
                    raise _Closed
                if self._idle:
                    conn = self._idle.pop()
                    self._busy.add(conn)
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Expired
                self._cond.wait(left)
        sock = conn.sock
        if sock is not None and _dropped(sock):
            conn.sock = None
            sock.close()
        return conn

    def check(self) -> None:
        if self.closed:
            raise _Closed

    def release(self, conn: _Conn, *, keep: bool) -> None:
        drop = None
        with self._cond:
            self._busy.discard(conn)
            if not keep or self.closed:
                drop, conn.sock = conn.sock, None
            if conn.sock is None:
                self._idle.appendleft(conn)
            else:
                self._idle.append(conn)
            self._cond.notify()
        if drop is not None:
            drop.close()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            idle = [conn.sock for conn in self._idle if conn.sock is not None]
            for conn in self._idle:
                conn.sock = None
            for conn in self._busy:
                if conn.sock is not None:
                    # Wakes the thread blocked on this socket; that thread
                    # closes it. socket.shutdown, not SSLSocket's, which would
                    # drop the TLS state under the reading thread's feet.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
            self._cond.notify_all()
        for sock in idle:
            sock.close()


# -- the async side -------------------------------------------------------------


class _Flight:
    """One async call in flight: its task, its phase, and why it was stopped."""

    __slots__ = ("reason", "sent", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.sent = False
        self.reason: Kind | None = None

    def stop(self, reason: Kind) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()


# Set by send_async for its own task; read by the connector subclass below,
# which marks the moment a connection is in hand and writing begins.
_flight: ContextVar[_Flight | None] = ContextVar("aliyun_sms_connector_flight", default=None)


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


async def _keeper(transport: Transport, entry: _LoopSession) -> AsyncGenerator[None, None]:
    """Live as long as the loop: ``shutdown_asyncgens`` closes the session.

    ``asyncio.run`` (and ``asyncio.Runner``, pytest-asyncio, anyio) close
    every live async generator before closing the loop. This one is kept
    alive by the transport and, when closed, closes its loop's session, so a
    connector used from ``asyncio.run(...)`` in a loop keeps no sockets open.
    """
    try:
        yield
    finally:
        transport._forget(entry)  # noqa: SLF001 - the keeper belongs to the transport
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
    global _CONNECTOR  # noqa: PLW0603 - built once, on the first async call
    if _CONNECTOR is None:
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
                # A connection is in hand: from here on, bytes may be written.
                flight = _flight.get()
                if flight is not None:
                    flight.sent = True
                self.transports.add(conn.transport)
                return conn

            def abort_all(self) -> None:
                for transport in list(self.transports):
                    transport.abort()

        _CONNECTOR = _PhaseConnector
    return _CONNECTOR


_CONNECTOR: Any = None


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


def _async_kind(err: BaseException, *, sent: bool) -> Kind:
    import asyncio  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415

    timeout = isinstance(err, (asyncio.TimeoutError, aiohttp.ServerTimeoutError))
    if not sent:
        if isinstance(err, aiohttp.ClientConnectorCertificateError):
            return "certificate"
        return "connect_timeout" if timeout else "connect"
    return "read_timeout" if timeout else "connection_lost"


# -- the transport --------------------------------------------------------------


class Transport:
    """The HTTP layer behind one connector: pooled, with one TLS context.

    Args:
        protocol: ``"http"`` or ``"https"``.
        host: ``"dysmsapi.aliyuncs.com"`` or ``"127.0.0.1:PORT"``.
        ca_file: The CA bundle to trust, instead of certifi's.
        max_connections: The pool size, for each of the sync pool and each
            event loop's session.
    """

    def __init__(
        self,
        *,
        protocol: Literal["http", "https"],
        host: str,
        ca_file: str | None,
        max_connections: int,
    ) -> None:
        self._protocol = protocol
        self._host = host
        self._max_connections = max_connections
        self._ssl = _client_context(ca_file) if protocol == "https" else None
        self._server_name, self._port = _split_host(host, 443 if self._ssl else 80)
        # The SDK honours HTTP(S)_PROXY and NO_PROXY; so does this transport.
        # The host is fixed, so the lookup is done once, not per request.
        self._proxy = _environment_proxy(protocol, host)
        self._address = (self._server_name, self._port)
        self._tunnel: bytes | None = None
        self._absolute = ""
        self._proxy_header = ""
        if self._proxy is not None:
            self._configure_proxy(self._proxy)
        # An IP literal needs no resolver: its address is worked out once.
        self._addresses: _Addresses | None = None
        with contextlib.suppress(socket.gaierror):
            self._addresses = socket.getaddrinfo(
                *self._address, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        self._pool = _SyncPool(max_connections)
        # As urllib3 does: a transport dropped unclosed closes its sockets
        # quietly when collected, rather than leaving each to warn.
        weakref.finalize(self, self._pool.close)
        self._lock = threading.Lock()
        self._sessions: dict[asyncio.AbstractEventLoop, _LoopSession] = {}
        self._urls: dict[str, Any] = {}
        self._proxy_url: Any = None
        self._closed = False

    def _configure_proxy(self, proxy: str) -> None:
        import base64  # noqa: PLC0415
        from urllib.parse import unquote, urlsplit  # noqa: PLC0415

        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        self._address = (parts.hostname or "", parts.port or 80)
        auth = ""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode()).decode()
            auth = f"proxy-authorization: Basic {token}\r\n"
        if self._ssl is not None:
            # HTTPS goes through a CONNECT tunnel; the proxy sees no request.
            authority = f"{self._server_name}:{self._port}"
            self._tunnel = (
                f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n{auth}\r\n".encode()
            )
        else:
            # Plain HTTP through a proxy: the absolute URI on the request line.
            self._absolute = f"http://{self._host}"
            self._proxy_header = auth

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    # -- sync ---------------------------------------------------------------

    def send(
        self,
        request: WireRequest,
        *,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> WireResponse:
        """Send ``request`` and read the whole answer, by ``deadline`` (monotonic).

        Raises:
            TransportError: No complete answer; ``maybe_sent`` says whether
                any byte of the request may have reached the server.
            ValueError: The request holds CR/LF where the wire would split it.
        """
        _check(request)
        outcome = self._exchange(
            self._serialize(request), request.method, deadline, connect_timeout, read_timeout
        )
        if isinstance(outcome, TransportError):
            # Raised here, outside any except block: no __context__ to leak.
            raise outcome from None
        return outcome

    def _serialize(self, request: WireRequest) -> bytes:
        body = request.body
        head = [f"{request.method} {self._absolute}{request.target} HTTP/1.1\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in request.headers.items())
        head.append(f"{self._proxy_header}content-length: {len(body)}\r\n\r\n")
        # ASCII only, checked by _check.
        return "".join(head).encode("ascii") + body

    def _exchange(
        self,
        data: bytes,
        method: str,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> WireResponse | TransportError:
        import http.client  # noqa: PLC0415 - cached after the first call

        sent = False
        keep = False
        conn: _Conn | None = None
        try:
            conn = self._pool.acquire(deadline)
            sock = conn.sock
            if sock is None:
                sock = self._connect(min(time.monotonic() + connect_timeout, deadline))
                conn.sock = sock
                self._pool.check()
            sock.settimeout(min(_remaining(deadline), read_timeout))
            conn.deadline = deadline
            conn.read_timeout = read_timeout
            # From here on, the server may have the request.
            sent = True
            sock.sendall(data)
            response = http.client.HTTPResponse(conn, method=method)  # type: ignore[arg-type]
            response.begin()
            body = response.read()
            keep = not response.will_close
            return WireResponse(
                response.status, {name.lower(): value for name, value in response.msg.items()}, body
            )
        except Exception as err:  # noqa: BLE001 - every failure is classified, none escapes
            return TransportError(self._sync_kind(err, sent, deadline), maybe_sent=sent)
        finally:
            if conn is not None:
                self._pool.release(conn, keep=keep)

    def _sync_kind(self, err: Exception, sent: bool, deadline: float) -> Kind:
        if self._pool.closed or isinstance(err, _Closed):
            return "closed"
        timeout = isinstance(err, TimeoutError)
        if isinstance(err, _Expired) or (timeout and time.monotonic() >= deadline - _SLACK):
            return "deadline"
        if sent:
            return "read_timeout" if timeout else "connection_lost"
        if self._ssl is not None:
            import ssl  # noqa: PLC0415

            if isinstance(err, ssl.SSLCertVerificationError):
                return "certificate"
        return "connect_timeout" if timeout else "connect"

    def _connect(self, limit: float) -> socket.socket:
        """Open a connection (TCP, proxy tunnel, TLS) by ``limit``; nothing is sent."""
        error: OSError | None = None
        sock: socket.socket | None = None
        addresses = self._addresses or _resolve(*self._address, limit)
        for family, kind, proto, _, address in addresses:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(_left(limit))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.connect(address)
            except OSError as err:
                sock.close()
                sock, error = None, err
            else:
                break
        if sock is None:
            raise error or OSError("no address")
        try:
            if self._tunnel is not None:
                self._open_tunnel(sock, limit)
            if self._ssl is not None:
                sock.settimeout(_left(limit))
                sock = self._ssl.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        return sock

    def _open_tunnel(self, sock: socket.socket, limit: float) -> None:
        assert self._tunnel is not None  # noqa: S101 - only called with a tunnel
        sock.settimeout(_left(limit))
        sock.sendall(self._tunnel)
        answer = b""
        while b"\r\n\r\n" not in answer:
            sock.settimeout(_left(limit))
            chunk = sock.recv(4096)
            if not chunk or len(answer) > 65536:  # noqa: PLR2004 - a sane header size
                raise ConnectionError("proxy")
            answer += chunk
        status = answer.split(b" ", 2)[1:2]
        if not status or not status[0].startswith(b"2") or not answer.endswith(b"\r\n\r\n"):
            raise ConnectionError("proxy")

    def close(self) -> None:
        """Close every pool; calls in flight end with kind ``"closed"``."""
        with self._lock:
            self._closed = True
            entries = list(self._sessions.values())
        self._pool.close()
        for entry in entries:
            self._abort_elsewhere(entry)

    # -- async --------------------------------------------------------------

    async def send_async(
        self,
        request: WireRequest,
        *,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> WireResponse:
        """The async twin of :meth:`send`, over this event loop's session.

        Raises:
            TransportError: As :meth:`send`. Only the caller's own
                cancellation propagates as ``asyncio.CancelledError``.
            ValueError: As :meth:`send`.
        """
        import asyncio  # noqa: PLC0415 - cached after the first call

        _check(request)
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
        flight = _Flight(task)
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
            result = WireResponse(
                response.status,
                {name.lower(): value for name, value in response.headers.items()},
                body,
            )
        except asyncio.CancelledError:
            if flight.reason is None:
                raise  # the caller's own cancellation
            failure = flight.reason
        except Exception as err:  # noqa: BLE001 - every failure is classified, none escapes
            failure = flight.reason or _async_kind(err, sent=flight.sent)
        finally:
            timer.cancel()
            entry.flights.discard(flight)
            _flight.reset(token)
        # The cancel requested by flight.stop is ours to take back; one the
        # caller requested as well still propagates.
        if flight.reason is not None and _uncancel(task) > 0:
            raise asyncio.CancelledError
        if failure is not None:
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

        # Nothing awaits between the lookup in send_async and the insert
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
            _release_dead(old)
        keeper = _keeper(self, entry)
        # The first step registers the keeper with this loop's asyncgen hooks.
        await keeper.asend(None)
        entry.keeper = keeper
        return entry

    def _forget(self, entry: _LoopSession) -> None:
        with self._lock:
            if self._sessions.get(entry.loop) is entry:
                del self._sessions[entry.loop]

    async def aclose(self) -> None:
        """Close every pool; calls in flight end with kind ``"closed"``."""
        import asyncio  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        with self._lock:
            self._closed = True
            entries = list(self._sessions.values())
        self._pool.close()
        for entry in entries:
            if entry.loop is loop:
                entry.stop_flights()
                if entry.keeper is not None:
                    await entry.keeper.aclose()
                else:
                    self._forget(entry)
                    await _close_session(entry.session)
            else:
                self._abort_elsewhere(entry)

    def _abort_elsewhere(self, entry: _LoopSession) -> None:
        """Stop the calls of a session whose loop may run in another thread."""
        loop = entry.loop
        if loop.is_closed():
            self._forget(entry)
            _release_dead(entry)
            return
        try:
            loop.call_soon_threadsafe(_close_in_loop, entry)
        except RuntimeError:  # closed in the meantime
            self._forget(entry)
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
