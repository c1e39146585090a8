"""The emulator's HTTP edge: reading a request's parameters, answering errors.

Aliyun's RPC gateway reads API parameters from the query and from an
``application/x-www-form-urlencoded`` body alike; its errors are JSON with
``Code``, ``Message`` and ``RequestId``. Dypnsapi's business errors also say
``"Success": false``; its gateway errors name ``dypnsapi.aliyuncs.com``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

__all__ = ["Reject", "drop", "error", "missing", "parameters"]

_FORM = "application/x-www-form-urlencoded"


class Reject(Exception):  # noqa: N818 - internal control flow, not an error class
    """Answer the request with an Aliyun error."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status
        self.headers = dict(headers or {})
        # More fields of the answer's body, such as Dypnsapi's "Success": false.
        self.extra = dict(extra or {})


def missing(name: str) -> Reject:
    """Aliyun's answer to a mandatory parameter left out."""
    return Reject(f"Missing{name}", f"{name} is mandatory for this action.", 400)


def error(
    code: str,
    message: str,
    request_id: str,
    status: int,
    headers: Mapping[str, str] | None = None,
    *,
    product: str = "Dysmsapi",
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    """An Aliyun error answer; gateway errors (4xx, 5xx) add HostId and Recommend.

    ``product`` is the API's name (``Dysmsapi`` or ``Dypnsapi``), as the gateway
    names it; ``extra`` adds fields to the body.
    """
    from aiohttp import web  # noqa: PLC0415

    body: dict[str, Any] = {"Code": code, "Message": message, "RequestId": request_id}
    body.update(extra or {})
    if status >= 400:  # noqa: PLR2004
        body["HostId"] = f"{product.lower()}.aliyuncs.com"
        body["Recommend"] = (
            f"https://api.aliyun.com/troubleshoot?q={quote(code)}&product={product}"
            f"&requestId={request_id}"
        )
    return web.json_response(body, status=status, headers=headers)


async def drop(request: web.Request) -> web.StreamResponse:
    """Start an answer, then cut the connection halfway through it."""
    from aiohttp import web  # noqa: PLC0415

    # Promise a body, send part of it, then cut the connection: the client
    # has sent its request and sees the answer break off.
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = 64
    await response.prepare(request)
    await response.write(b'{"Code":"OK","Mes')
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response


def parameters(request: web.Request, body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """The query's parameters, and those of the query and the form body merged."""
    query = _form(request.rel_url.raw_query_string, "query string")
    pairs = list(query)
    if body:
        if request.content_type != _FORM:
            raise Reject("UnsupportedMediaType", f"A request body must be sent as {_FORM}.", 415)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Reject(
                "InvalidParameter", "The request body is not UTF-8 form data.", 400
            ) from None
        pairs.extend(_form(text, "body"))
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise Reject("InvalidParameter", f"The parameter {key} is given more than once.", 400)
        params[key] = value
    return dict(query), params


def _form(text: str, where: str) -> list[tuple[str, str]]:
    try:
        # errors="strict": a percent-encoded byte that is not UTF-8 is an
        # error, not a silent U+FFFD in a phone number or a signature.
        return parse_qsl(text, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise Reject("InvalidParameter", f"The {where} is not UTF-8 form data.", 400) from None
