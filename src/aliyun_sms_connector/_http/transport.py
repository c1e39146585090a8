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

The contract (:class:`~.models.WireRequest`, :class:`~.models.WireResponse`,
:class:`~.models.TransportError`) lives in :mod:`.models`; this module is the
:class:`Transport` that a connector holds. The work is done by two drivers:
:mod:`.sync_driver`, a pool of connections it drives itself, and
:mod:`.async_driver`, one ``aiohttp`` session per event loop. Both verify TLS
with one SSL context that loads the CA bundle (or ``caFile``) once, and both
use the proxy from the environment, looked up once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .tls import client_context

if TYPE_CHECKING:
    from .async_driver import AsyncDriver
    from .models import WireRequest, WireResponse
    from .sync_driver import SyncDriver

__all__ = ["Transport"]

# -- shared helpers -------------------------------------------------------------


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


# -- the transport --------------------------------------------------------------


class Transport:
    """The HTTP layer behind one connector: pooled, with one TLS context.

    Args:
        protocol: ``"http"`` or ``"https"``.
        host: ``"dysmsapi.aliyuncs.com"`` or ``"127.0.0.1:PORT"``.
        ca_file: The CA bundle to trust, instead of certifi's.
        max_connections: The pool size, for the sync pool and for each
            event loop's session.

    Raises:
        ConfigError: ``ca_file`` cannot be read as a PEM CA bundle.
    """

    def __init__(
        self,
        *,
        protocol: Literal["http", "https"],
        host: str,
        ca_file: str | None,
        max_connections: int,
    ) -> None:
        # Import time, not a circle (the drivers import .models, never this module):
        # the drivers, and socket and selectors with them, load with the first
        # connector rather than with `from aliyun_sms_connector import ...`.
        from .async_driver import AsyncDriver  # noqa: PLC0415
        from .sync_driver import SyncDriver  # noqa: PLC0415

        context = client_context(ca_file) if protocol == "https" else None
        server_name, port = _split_host(host, 443 if context else 80)
        # The SDK honours HTTP(S)_PROXY and NO_PROXY; so does this transport.
        # The host is fixed, so the lookup is done once, not per request.
        proxy = _environment_proxy(protocol, host)
        self._sync: SyncDriver = SyncDriver(
            ssl_context=context,
            host=host,
            server_name=server_name,
            port=port,
            proxy=proxy,
            max_connections=max_connections,
        )
        self._async: AsyncDriver = AsyncDriver(
            protocol=protocol,
            host=host,
            ssl_context=context,
            proxy=proxy,
            max_connections=max_connections,
        )
        self._ssl = context

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._sync.closed

    def send(
        self,
        request: WireRequest,
        *,
        deadline: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> WireResponse:
        """Send ``request`` and read the whole answer, by ``deadline``.

        Args:
            request: What to send.
            deadline: An absolute :func:`time.monotonic` time; the call returns
                or raises by then, whatever the server does.
            connect_timeout: Seconds for DNS, TCP, proxy tunnel and TLS.
            read_timeout: Seconds the server may stay silent once the request
                is written.

        Raises:
            TransportError: No complete answer; ``maybe_sent`` says whether
                any byte of the request may have reached the server.
            ValueError: The target or a header holds a space, CR/LF or a
                non-ASCII character that would split or garble the request;
                nothing was sent.
        """
        _check(request)
        return self._sync.send(
            request, deadline=deadline, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

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
        _check(request)
        return await self._async.send(
            request, deadline=deadline, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    def close(self) -> None:
        """Close every pool; calls in flight end with kind ``"closed"``.

        Sessions of running event loops are closed in their loops.
        """
        self._sync.close()
        self._async.close()

    async def aclose(self) -> None:
        """Close every pool; this loop's session is closed before it returns."""
        self._sync.close()
        await self._async.aclose()
