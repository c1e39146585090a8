"""A bare RESP2 client on a plain socket, for tests of the chaos proxy itself.

It sends exactly the bytes of each command, one command per write, and
nothing else: no handshake (``HELLO``, ``CLIENT SETINFO``, maintenance
notifications), no health check, no retry and no reconnect. A client
library may add any of these in a new release, and each extra request
throws the proxy's dice once more; this client never does, so what the
proxy meets is exactly what the test sent.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

Reply = bytes | int | None | list["Reply"]


class ServerError(Exception):
    """An error reply (``-ERR ...``), with its text."""


class RawRedis:
    """One TCP connection that speaks RESP2; closed by ``close()`` or ``with``.

    Args:
        address: (host, port) to connect to.
        timeout: Seconds each connect and each read may take.
    """

    def __init__(self, address: tuple[str, int], *, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, *args: str | int) -> None:
        """Write one command, whole, in one call."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else b"%d" % arg
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))

    def call(self, *args: str | int) -> Reply:
        """Send one command and read its reply; an error reply raises :class:`ServerError`."""
        self.send(*args)
        return self.read_reply()

    def read_reply(self) -> Reply:
        """Read one whole reply; EOF or a reset raises ``ConnectionError``."""
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise ServerError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self._exactly(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.read_reply() for _ in range(count)]
        raise ValueError(f"not a RESP2 reply: {line!r}")

    def read_until_closed(self) -> bytes:
        """Everything the peer sends until it closes or resets the connection."""
        data, self._buffer = self._buffer, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def received_within(self, seconds: float) -> bytes:
        """What arrives within ``seconds`` (b"" if nothing does, or the peer closes)."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            chunk = b""
        return self._buffer + chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the connection was closed")
        self._buffer += chunk
