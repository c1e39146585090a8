"""Wire-level answers for unit tests: what the Transport returns or raises, as Aliyun sends it."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from aliyun_sms_connector._http.models import TransportError, WireRequest, WireResponse

JSON = {"content-type": "application/json;charset=utf-8"}


def response(body: object, status: int = 200, headers: dict | None = None) -> WireResponse:
    """An answer whose body is ``body`` as JSON (bytes and str are sent as they are)."""
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, bytes):
        raw = body
    else:
        raw = json.dumps(body, ensure_ascii=False).encode()
    return WireResponse(status, {**JSON, **(headers or {})}, raw)


def ok(biz_id: str = "123456789^0", request_id: str = "REQ-OK") -> WireResponse:
    return response({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id})


def business(code: str, message: str = "business error", request_id: str = "REQ-BIZ"):
    """HTTP 200 with a code other than OK, as SendSms answers flow control or a bad template."""
    return response({"Code": code, "Message": message, "RequestId": request_id})


def gateway(
    code: str | None,
    status: int = 400,
    message: str = "gateway says no",
    request_id: str | None = "REQ-4XX",
    recommend: str | None = "https://api.aliyun.com/troubleshoot?q=X",
    headers: dict | None = None,
) -> WireResponse:
    """A 4xx/5xx error object, as Aliyun's gateway answers."""
    body = {"Message": message, "HostId": "dysmsapi.aliyuncs.com"}
    if request_id is not None:
        body["RequestId"] = request_id
    if code is not None:
        body["Code"] = code
    if recommend:
        body["Recommend"] = recommend
    return response(body, status, headers)


def throttling(retry_after_ms: int, code: str = "Throttling.User", status: int = 400):
    return gateway(
        code,
        status,
        "Request was denied due to user flow control.",
        "R",
        None,
        {"x-acs-retry-after": str(retry_after_ms)},
    )


def receipts(records: list[dict], total: int | None = None, code: str = "OK") -> WireResponse:
    """A QuerySendDetails answer."""
    return response(
        {
            "Code": code,
            "Message": "OK",
            "RequestId": "REQ-Q",
            "TotalCount": len(records) if total is None else total,
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": records},
        }
    )


def record(status: int = 3, err: str = "DELIVERED", phone: str = "13800138000", **extra) -> dict:
    return {
        "PhoneNum": phone,
        "SendStatus": status,
        "ErrCode": err,
        "TemplateCode": "SMS_SIGNIN",
        "Content": "【Acme】Your code is 482913.",
        "SendDate": "2026-11-24 21:00:00",
        "ReceiveDate": "2026-11-24 21:00:05" if status == 3 else "",
        **extra,
    }


def batch_ok(biz_id: str = "B-1") -> WireResponse:
    return ok(biz_id=biz_id, request_id="REQ-B")


def failure(kind: str, *, maybe_sent: bool) -> TransportError:
    """The transport's own error for ``kind``."""
    return TransportError(kind, maybe_sent=maybe_sent)


def params_of(request: WireRequest) -> dict[str, str]:
    """Every parameter of a request: its form body (and its query, which should be empty)."""
    _, _, query = request.target.partition("?")
    body = request.body.decode()
    return dict(parse_qsl(query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True))


def sent(mock) -> dict[str, str]:
    """The parameters of the last request sent through ``mock`` (Transport.send or send_async)."""
    (request,) = mock.call_args.args
    return params_of(request)


def all_sent(mock) -> list[dict[str, str]]:
    return [params_of(call.args[0]) for call in mock.call_args_list]
