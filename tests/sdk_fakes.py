"""Real SDK objects for unit tests: responses and exceptions as the SDK builds them."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode

import requests
from alibabacloud_dysmsapi20170525.models import SendSmsResponse
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.exceptions import RetryError, UnretryableException
from darabonba.policy.retry import RetryPolicyContext
from darabonba.request import DaraRequest
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)


def response(body: dict, status: int = 200) -> SendSmsResponse:
    """A SendSmsResponse as the SDK returns it for an HTTP 2xx."""
    return SendSmsResponse().from_map({"headers": {}, "statusCode": status, "body": body})


def ok(biz_id: str = "123456789^0", request_id: str = "REQ-OK") -> SendSmsResponse:
    return response({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id})


def business(code: str, message: str = "business error", request_id: str = "REQ-BIZ"):
    return response({"Code": code, "Message": message, "RequestId": request_id})


def _error_fields(status: int, code: str | None, message: str, request_id: str, recommend):
    err = {"RequestId": request_id, "Message": message, "HostId": "dysmsapi.aliyuncs.com"}
    if code is not None:
        err["Code"] = code
    if recommend:
        err["Recommend"] = recommend
    return {
        "status_code": status,
        "code": f"{code}",
        "message": f"code: {status}, {message} request id: {request_id}",
        "detail": "None",
        "description": "None",
        "data": err,
        "request_id": f"{request_id}",
    }


def client_error(
    code: str | None,
    status: int = 400,
    message: str = "gateway says no",
    request_id: str = "REQ-4XX",
    recommend: str | None = "https://api.aliyun.com/troubleshoot?q=X",
) -> ClientException:
    return ClientException(**_error_fields(status, code, message, request_id, recommend))


def server_error(
    code: str | None, status: int = 503, message: str = "down", request_id: str = "REQ-5XX"
) -> ServerException:
    return ServerException(**_error_fields(status, code, message, request_id, None))


def throttling(retry_after_ms: int, code: str = "Throttling.User", status: int = 400):
    fields = _error_fields(status, code, "Request was denied due to user flow control.", "R", None)
    return ThrottlingException(retry_after=retry_after_ms, **fields)


def sent_url(phone: str, param: str) -> str:
    query = urlencode(
        {"PhoneNumbers": phone, "SignName": "Sign", "TemplateCode": "SMS_1", "TemplateParam": param}
    )
    return f"/?{query}"


def unretryable(inner: BaseException, url: str) -> UnretryableException:
    """Wrap ``inner`` exactly as darabonba does: RetryError from IOError, then Unretryable."""
    request = DaraRequest()
    request.query = {"PhoneNumbers": url, "TemplateParam": url}
    try:
        try:
            raise inner
        except OSError as err:
            raise RetryError(str(err))  # noqa: B904 - exactly as darabonba does
    except RetryError as retry:
        context = RetryPolicyContext(retries_attempted=1, http_request=request, exception=retry)
        return UnretryableException(context)


def unretryable_parse_error(body: str) -> UnretryableException:
    """A JSON-parse failure, as the SDK raises for a non-JSON body."""
    try:
        raise RuntimeError(f'Failed to parse the value as json format, Value: "{body}".')
    except RuntimeError as err:
        context = RetryPolicyContext(retries_attempted=1, http_request=DaraRequest(), exception=err)
        return UnretryableException(context)


def connection_refused(url: str) -> requests.exceptions.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.exceptions.ConnectionError(MaxRetryError(None, url, reason))


def dns_failure(url: str) -> requests.exceptions.ConnectionError:
    import socket

    reason = NameResolutionError("dysmsapi.invalid", None, socket.gaierror(-2, "Name unknown"))
    return requests.exceptions.ConnectionError(MaxRetryError(None, url, reason))


def connect_timeout(url: str) -> requests.exceptions.ConnectTimeout:
    reason = ConnectTimeoutError(None, "Connection to host timed out. (connect timeout=5)")
    return requests.exceptions.ConnectTimeout(MaxRetryError(None, url, reason))


def read_timeout(url: str) -> requests.exceptions.ReadTimeout:
    return requests.exceptions.ReadTimeout(ReadTimeoutError(None, url, "Read timed out."))


def connection_dropped() -> requests.exceptions.ConnectionError:
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", cause))


def receipts(records: list[dict], total: int | None = None, code: str = "OK"):
    """A QuerySendDetailsResponse as the SDK returns it."""
    from alibabacloud_dysmsapi20170525.models import QuerySendDetailsResponse

    body = {
        "Code": code,
        "Message": "OK",
        "RequestId": "REQ-Q",
        "TotalCount": str(len(records) if total is None else total),
        "SmsSendDetailDTOs": {"SmsSendDetailDTO": records},
    }
    return QuerySendDetailsResponse().from_map({"headers": {}, "statusCode": 200, "body": body})


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


def batch_ok(biz_id: str = "B-1"):
    from alibabacloud_dysmsapi20170525.models import SendBatchSmsResponse

    body = {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": "REQ-B"}
    return SendBatchSmsResponse().from_map({"headers": {}, "statusCode": 200, "body": body})
