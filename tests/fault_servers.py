"""Small misbehaving servers on 127.0.0.1, shared by the transport and e2e fault tests.

``FaultServer`` answers, or fails, as its behaviour says; ``refused_host`` and
``full_backlog`` are the two ways to fail before any server runs; ``tls_material``
gives a FaultServer its TLS context and the clients their CA files.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time

from aliyun_sms_connector._http.models import WireRequest
from aliyun_sms_connector._http.tls import make_certificates

BODY = b"PhoneNumbers=13800138000&TemplateParam=%7B%22code%22%3A%22482913%22%7D"
OK_BODY = b'{"Code":"OK","Message":"OK","RequestId":"r-1","BizId":"b-1"}'


class FaultServer:
    """A threaded server on 127.0.0.1 that answers, or fails, as told.

    ``requests`` counts requests the server read completely, body included:
    the number of SMS a real endpoint could have sent.

    Behaviours, each after the whole request was read unless said otherwise:
    ``ok`` answers 200 and keeps the connection; ``close`` answers with
    ``Connection: close``; ``reset`` resets the TCP connection; ``tls_garbage``
    writes bytes that are no TLS record under the TLS layer and closes;
    ``partial`` sends half an answer and closes; ``garbage`` answers with no
    HTTP; ``slow`` waits ``delay`` seconds, then answers; ``trickle`` sends a
    byte every 0.4 s; ``hold`` never answers; ``chunked`` answers chunked;
    ``stall`` (before the request) accepts and never reads, not even a TLS
    ClientHello.
    """

    def __init__(
        self, behaviour: str = "ok", *, tls: ssl.SSLContext | None = None, delay: float = 0.0
    ) -> None:
        self.behaviour = behaviour
        self.delay = delay
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.requests = 0
        self.bodies: list[bytes] = []
        self.heads: list[bytes] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._accepting.join(5)
        self._listener.close()
        self.drop_connections()
        for thread in list(self._threads):
            thread.join(5)

    def drop_connections(self) -> None:
        """Close every accepted connection from the server's side."""
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until every connection the server accepted is closed; whether they were."""
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            with self._lock:
                if not self._sockets:
                    return True
            time.sleep(0.01)
        return False

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            if self._stop.is_set():
                sock.close()
                return
            with self._lock:
                self.connections += 1
                self._sockets.add(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn = sock
        try:
            if self.behaviour == "stall":
                self._stop.wait(10)
                return
            if self.behaviour == "reset_unread":
                # Reads nothing, then resets: the client is still writing.
                time.sleep(0.2)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if self._tls is not None:
                sock.settimeout(5)
                conn = self._tls.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._sockets.discard(sock)
                    self._sockets.add(conn)
            while self._serve_one(conn):
                pass
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(sock)
                self._sockets.discard(conn)
            conn.close()

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            if not data and chunk.startswith(b"\x16"):
                # A TLS ClientHello on a plain port: answer as an HTTP server would.
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                return False
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            rest += chunk
        with self._lock:
            self.requests += 1
            self.heads.append(head)
            self.bodies.append(rest)
        return True

    def _serve_one(self, conn: socket.socket) -> bool:  # noqa: C901, PLR0912 - one branch per fault
        if not self._read_request(conn):
            return False
        behaviour = self.behaviour
        answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=utf-8\r\n"
            b"X-Acs-Request-Id: r-1\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
        )
        if behaviour == "ok":
            conn.sendall(answer)
            return True
        if behaviour == "slow":
            if self._stop.wait(self.delay):
                return False
            conn.sendall(answer)
            return True
        if behaviour == "close":
            conn.sendall(answer.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            return False
        if behaviour == "chunked":
            half = len(OK_BODY) // 2
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                % (half, OK_BODY[:half], len(OK_BODY) - half, OK_BODY[half:])
            )
            return True
        extra = _ANSWERS.get(behaviour)
        if extra is not None:
            conn.sendall(extra)
            return b"keep-alive" in extra or b"HTTP/1.1 200 OK\r\nContent-Length" in extra
        if behaviour == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if behaviour == "tls_garbage":
            # Under the TLS layer: the client's TLS record parser fails mid-stream.
            socket.socket.send(conn, b"\x17\x03\x03\x00\x05hello" * 4)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if behaviour == "partial":
            conn.sendall(answer[: len(answer) - 10])
            return False
        if behaviour == "garbage":
            conn.sendall(b"SMTP ready\r\n\r\n")
            return False
        if behaviour == "trickle":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if self._stop.wait(0.4):
                    return False
                conn.sendall(b"x")
            return True
        # "hold"
        self._stop.wait(10)
        return False


# Answers that test the client's parser, each sent whole.
_ANSWERS = {
    # HTTP/1.0 without keep-alive: the connection closes after the body.
    "http10": b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY),
    # HTTP/1.0 with keep-alive: the connection stays.
    "http10_keep": b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n%s"
    % (len(OK_BODY), OK_BODY),
    # No length, no chunks: the body runs to the end of the connection.
    "to_eof": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n%s" % OK_BODY,
    # An interim 100 Continue, then the answer.
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
    % (len(OK_BODY), OK_BODY),
    # A repeated header is one comma-joined value.
    "repeated": b"HTTP/1.1 200 OK\r\nX-Dup: a\r\nx-dup: b\r\nContent-Length: 0\r\n\r\n",
    "no_body": b"HTTP/1.1 204 No Content\r\nX-Acs-Request-Id: r-2\r\n\r\n",
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n",
    "bad_length": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n0123456789",
    "no_colon": b"HTTP/1.1 200 OK\r\nNot a header\r\nContent-Length: 0\r\n\r\n",
    "long_line": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    "http2": b"HTTP/2 200\r\ncontent-length: 0\r\n\r\n",
}


def request_for(host, body=BODY):
    """A SendSms request as the connector writes it, for a FaultServer to read and count."""
    return WireRequest(
        "POST",
        "/",
        {
            "host": host,
            "content-type": "application/x-www-form-urlencoded",
            "x-acs-action": "SendSms",
        },
        body,
    )


def refused_host():
    """A loopback port with nothing listening: connects are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@contextlib.contextmanager
def full_backlog():
    """A listener whose accept queue is full, so that new connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)  # noqa: FBT003 - the socket API
        filler.connect_ex(address)
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield f"127.0.0.1:{address[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def tls_material(tmp_path_factory):
    """Two throwaway CAs: the server's context and CA file, and a CA that did not sign it."""
    good = make_certificates(tmp_path_factory.mktemp("good"))
    other = make_certificates(tmp_path_factory.mktemp("other"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(good[1], good[2])
    return {"ca": str(good[0]), "other_ca": str(other[0]), "server": server}
