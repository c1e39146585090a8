"""Dypnsapi's return codes through the one translation table, with the Transport mocked."""

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsError,
    AuthenticationError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
    TemplateError,
)
from aliyun_sms_connector._errors.translate import _DYPNSAPI, _TABLE, lookup
from tests import wire_fakes

PHONE = "13800138000"

# Each code as the table must map it: (class, retryable). The spellings are
# Dypnsapi's own, without the isv. prefix.
DYPNSAPI = [
    ("FREQUENCY_FAIL", RateLimitExceededError, False),
    ("BUSINESS_LIMIT_CONTROL", RateLimitExceededError, False),
    ("MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError, False),
    ("INVALID_PARAMETERS", AliyunSmsError, False),
    ("NOT_SUPPORTED_CHANNEL", PermissionDeniedError, False),
    ("COUNTRY_BLACKLISTED", PermissionDeniedError, False),
    ("SECURITY_INTERCEPTED", PermissionDeniedError, False),
    ("Specified AccessKeyId is not found", AuthenticationError, False),
    ("BIZ_NOT_OPEN_STATUS", AccountError, False),
    ("RESOURCE_NOT_ENOUGH", AccountError, False),
    ("isp.VERIFY_SCHEME_NOT_EXIST", TemplateError, False),
    ("SMS_SYSTEM_ERROR", ServiceUnavailableError, True),
    ("SENTINEL_BLOCK_EXCEPTION", ServiceUnavailableError, True),
]


def test_the_block_is_exactly_the_listed_codes():
    """The Dypnsapi block holds these codes, each once, each with an explanation."""
    assert [row[0] for row in _DYPNSAPI] == [code for code, _, _ in DYPNSAPI]
    assert all(row[3].strip() for row in _DYPNSAPI)
    codes = [row[0] for row in _TABLE]
    assert len(codes) == len(set(codes))
    assert set(_DYPNSAPI) <= set(_TABLE)


@pytest.mark.parametrize(("code", "cls", "retryable"), DYPNSAPI)
def test_lookup(code, cls, retryable):
    """The table resolves each code to its class and retry rule."""
    assert lookup(code) == (cls, retryable)


CALLS = {
    "send": lambda mas: mas.send_verify_code(
        PHONE, "SignIn", code_length=6, valid_time=300, interval=60
    ),
    "message": lambda mas: mas.send_message(PHONE, "SignIn", {"code": "482913"}),
    "check": lambda mas: mas.check_verify_code(PHONE, "SignIn", "482913"),
}


def _fail(mas, call):
    with pytest.raises(AliyunSmsError) as caught:
        CALLS[call](mas)
    return caught.value


@pytest.mark.parametrize("call", ["send", "message", "check"])
@pytest.mark.parametrize(("code", "cls", "retryable"), DYPNSAPI)
def test_http_200_answer_with_code(mas, transport, call, code, cls, retryable):
    """A 200 answer with the code raises the mapped class: a refusal, nothing sent."""
    transport.send.return_value = wire_fakes.business(code, "说明", request_id="REQ-D")
    error = _fail(mas, call)
    assert type(error) is cls
    assert (error.code, error.request_id, error.http_status) == (code, "REQ-D", 200)
    assert error.retryable is retryable
    assert error.maybe_sent is False
    # Retryable codes were tried maxAttempts (3) times; the others once.
    assert transport.send.call_count == (3 if retryable else 1)


def test_flow_control_window_from_the_message(mas, transport):
    """BUSINESS_LIMIT_CONTROL's Chinese message names the window, as for SMS."""
    transport.send.return_value = wire_fakes.business(
        "BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5"
    )
    error = _fail(mas, "send")
    assert isinstance(error, RateLimitExceededError)
    assert (error.window, error.retry_after) == ("hour", 3600.0)


def test_gateway_codes_are_shared_with_sms(mas, transport):
    """A gateway 4xx (the same gateway as Dysmsapi) maps through the shared rows."""
    transport.send.return_value = wire_fakes.gateway("SignatureDoesNotMatch", 400)
    error = _fail(mas, "check")
    assert type(error) is AuthenticationError
    assert error.http_status == 400
    assert transport.send.call_count == 1
