"""Real SDK exception objects, as the SDK builds them.

Sends no longer go through the SDK (see tests/wire_fakes.py for what the
transport answers); these stay for the redactor's tests, which check that
the SDK's own exceptions, URLs and request contexts are scrubbed.
"""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from alibabacloud_tea_openapi.exceptions import ClientException
from darabonba.exceptions import RetryError, UnretryableException
from darabonba.policy.retry import RetryPolicyContext
from darabonba.request import DaraRequest
from urllib3.exceptions import ReadTimeoutError


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


def read_timeout(url: str) -> requests.exceptions.ReadTimeout:
    return requests.exceptions.ReadTimeout(ReadTimeoutError(None, url, "Read timed out."))
