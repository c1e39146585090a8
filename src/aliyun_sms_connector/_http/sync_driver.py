"""The sync driver: a pool of connections it drives itself, phase by phase.

Driving the socket directly, and reading the answer with a small HTTP/1.x
parser of its own, is what lets it know exactly whether a request byte was
written, and hold the deadline on every ``recv``: a server that trickles a
byte at a time cannot stretch a call past its deadline. The pool is built
with the driver, so a cold fan-out from many threads is safe, and waiting
for a free connection counts against the deadline.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any

from .models import TransportError, WireResponse, plaintext_answer

if TYPE_CHECKING:
    import ssl

    from .models import Kind, WireRequest

__all__ = ["SyncDriver"]

# How close to the deadline a timeout counts as the deadline's.
_SLACK = 0.002
# A connection idle this long is closed rather than reused (aiohttp's default
# keep-alive): a server closing it just as a request goes out would turn a
# safe retry into a "maybe sent".
_IDLE_LIMIT = 15.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


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

    __slots__ = ("idle_since", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.idle_since = 0.0


# Limits on what a server may send, as http.client's.
_MAX_LINE = 65536
_MAX_HEADERS = 100


class _BadAnswer(Exception):  # noqa: N818 - internal signal, never raised out
    """The answer is not HTTP/1.x, or is cut short: the connection is lost."""


def _line(fp: io.BufferedReader) -> bytes:
    line = fp.readline(_MAX_LINE + 1)
    if not line.endswith(b"\n") or len(line) > _MAX_LINE:
        raise _BadAnswer  # cut short, or a line too long
    return line


def _read_answer(
    fp: io.BufferedReader, *, no_body: bool
) -> tuple[int, dict[str, str], bytes, bool]:
    """Read one HTTP/1.x answer: status, headers (lower-cased names), body, and whether to close.

    http.client's own parser runs the email package over the headers, which
    costs several times this; the answers here come from one API and are
    small, so a strict, short parser is enough.
    """
    while True:
        version, _, rest = _line(fp).partition(b" ")
        status = rest[:3]
        if not version.startswith(b"HTTP/1.") or not status.isdigit() or len(status) != 3:  # noqa: PLR2004
            raise _BadAnswer
        code = int(status)
        headers = _read_headers(fp)
        if not 100 <= code < 200:  # noqa: PLR2004 - an interim answer is skipped
            break
    connection = headers.get("connection", "").lower()
    close = "close" in connection or (version == b"HTTP/1.0" and "keep-alive" not in connection)
    if no_body or code in (204, 304):  # no body, by definition
        return code, headers, b"", close
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return code, headers, _read_chunked(fp), close
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise _BadAnswer
        body = fp.read(int(length))
        if len(body) != int(length):
            raise _BadAnswer
        return code, headers, body, close
    # Neither a length nor chunks: the body runs to the end of the connection.
    return code, headers, fp.read(), True


def _read_headers(fp: io.BufferedReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = _line(fp)
        if line in (b"\r\n", b"\n"):
            return headers
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _BadAnswer
        name = name.strip().lower()
        value = value.strip()
        # A repeated header is one list-valued header (RFC 9110, 5.3).
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    raise _BadAnswer


def _read_chunked(fp: io.BufferedReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = _line(fp).split(b";", 1)[0].strip()
        try:
            length = int(size, 16)
        except ValueError:
            raise _BadAnswer from None
        if length == 0:
            while _line(fp) not in (b"\r\n", b"\n"):  # trailers, ignored
                pass
            return b"".join(chunks)
        chunk = fp.read(length)
        if len(chunk) != length or fp.read(2) != b"\r\n":
            raise _BadAnswer
        chunks.append(chunk)


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

    A name is resolved in a daemon thread, once per new connection
    (connections are pooled), so that the wait can be bounded; a thread left
    hanging ends with the resolver's own timeout.
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
        if sock is not None and (
            time.monotonic() - conn.idle_since > _IDLE_LIMIT or _dropped(sock)
        ):
            # Unset under the lock: close() must never shut down a descriptor
            # that was closed here and reused meanwhile.
            with self._cond:
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
                conn.idle_since = time.monotonic()
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


class SyncDriver:
    """Sends over a pool of up to ``max_connections`` connections, shared by threads."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None,
        host: str,
        server_name: str,
        port: int,
        proxy: str | None,
        max_connections: int,
    ) -> None:
        self._ssl = ssl_context
        self._host = host
        self._server_name = server_name
        self._port = port
        self._address = (server_name, port)
        self._tunnel: bytes | None = None
        self._absolute = ""
        self._proxy_header = ""
        if proxy is not None:
            self._configure_proxy(proxy)
        # An IP literal needs no resolver: its address is worked out once.
        self._addresses: _Addresses | None = None
        with contextlib.suppress(socket.gaierror):
            self._addresses = socket.getaddrinfo(
                *self._address, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        self._pool = _SyncPool(max_connections)
        # As urllib3 does: a driver dropped unclosed closes its sockets
        # quietly when collected, rather than leaving each to warn.
        weakref.finalize(self, self._pool.close)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._pool.closed

    def _configure_proxy(self, proxy: str) -> None:
        import base64  # noqa: PLC0415
        from urllib.parse import unquote, urlsplit  # noqa: PLC0415

        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        # The proxy is spoken to in plain HTTP, whatever its URL's scheme.
        self._address = (parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme, 80))
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
        """
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
            # From here on, the server may have the request.
            sent = True
            sock.sendall(data)
            status, headers, body, close = _read_answer(
                io.BufferedReader(_Reader(sock, deadline, read_timeout)), no_body=method == "HEAD"
            )
            keep = not close
            return WireResponse(status, headers, body)
        except (OSError, _Expired, _Closed, _BadAnswer) as err:
            return TransportError(self._sync_kind(err, sent, deadline), maybe_sent=sent)
        except Exception:
            if self._pool.closed:  # a socket shut under a reader can fail oddly
                return TransportError("closed", maybe_sent=sent)
            raise  # a bug, not the network: not to be retried as one
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
            if plaintext_answer(err):
                return "tls_plaintext"
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
        """Close the pool; calls in flight end with kind ``"closed"``."""
        self._pool.close()
