"""Every row of the error table, through the connector with the SDK client mocked."""

import traceback

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsConnector,
    AliyunSmsError,
    AuthenticationError,
    InvalidPhoneNumberError,
    InvalidResponseError,
    NetworkError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
    SignNameError,
    TemplateError,
    TemplateParamError,
    _sdk,
)
from aliyun_sms_connector._errors import _TABLE, Failure, error_from_failure, lookup

from . import sdk_fakes
from .conftest import SECRET

PHONE = "13800138000"
CODE = "482913"
URL = sdk_fakes.sent_url(PHONE, '{"code":"482913"}')

TABLE = [
    ("InvalidAccessKeyId.NotFound", AuthenticationError, False),
    ("InvalidAccessKeyId.Inactive", AuthenticationError, False),
    ("SignatureDoesNotMatch", AuthenticationError, False),
    ("IncompleteSignature", AuthenticationError, False),
    ("InvalidSecurityToken.Expired", AuthenticationError, False),
    ("InvalidSecurityToken.MismatchWithAccessKey", AuthenticationError, False),
    ("InvalidTimeStamp.Expired", AuthenticationError, False),
    ("SignatureNonceUsed", AuthenticationError, False),
    ("isp.RAM_PERMISSION_DENY", PermissionDeniedError, False),
    ("isv.DENY_IP_RANGE", PermissionDeniedError, False),
    ("Forbidden.RAM", PermissionDeniedError, False),
    ("Forbidden.AccessKeyDisabled", PermissionDeniedError, False),
    ("isv.SMS_TEST_NUMBER_LIMIT", PermissionDeniedError, False),
    ("isv.SMS_TEST_SIGN_TEMPLATE_LIMIT", PermissionDeniedError, False),
    ("isv.SMS_SIGNATURE_ILLEGAL", SignNameError, False),
    ("isv.SIGN_STATE_ILLEGAL", SignNameError, False),
    ("isv.SMS_SIGN_ILLEGAL", SignNameError, False),
    ("isv.SMS_SIGNATURE_SCENE_ILLEGAL", SignNameError, False),
    ("SIGNATURE_BLACKLIST", SignNameError, False),
    ("isv.EXTEND_CODE_ERROR", SignNameError, False),
    ("isv.SMS_TEMPLATE_ILLEGAL", TemplateError, False),
    ("isv.SMS_CONTENT_ILLEGAL", TemplateError, False),
    ("isv.TEMPLATE_MISSING_PARAMETERS", TemplateParamError, False),
    ("isv.INVALID_JSON_PARAM", TemplateParamError, False),
    ("isv.TEMPLATE_PARAMS_ILLEGAL", TemplateParamError, False),
    ("isv.BLACK_KEY_CONTROL_LIMIT", TemplateParamError, False),
    ("isv.PARAM_LENGTH_LIMIT", TemplateParamError, False),
    ("isv.PARAM_NOT_SUPPORT_URL", TemplateParamError, False),
    ("isv.MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError, False),
    ("isv.MOBILE_COUNT_OVER_LIMIT", InvalidPhoneNumberError, False),
    ("isv.DOMESTIC_NUMBER_NOT_SUPPORTED", InvalidPhoneNumberError, False),
    ("isv.AMOUNT_NOT_ENOUGH", AccountError, False),
    ("isv.OUT_OF_SERVICE", AccountError, False),
    ("isv.ACCOUNT_NOT_EXISTS", AccountError, False),
    ("isv.ACCOUNT_ABNORMAL", AccountError, False),
    ("isv.PRODUCT_UN_SUBSCRIPT", AccountError, False),
    ("isv.PRODUCT_UNSUBSCRIBE", AccountError, False),
    ("isv.BUSINESS_LIMIT_CONTROL", RateLimitExceededError, False),
    ("isv.DAY_LIMIT_CONTROL", RateLimitExceededError, False),
    ("isv.MONTH_LIMIT_CONTROL", RateLimitExceededError, False),
    ("Throttling", RateLimitExceededError, True),
    ("Throttling.User", RateLimitExceededError, True),
    ("Throttling.Api", RateLimitExceededError, True),
    ("isp.SYSTEM_ERROR", ServiceUnavailableError, True),
    ("isp.GATEWAY_ERROR", ServiceUnavailableError, True),
    ("isp.UNKNOWN", ServiceUnavailableError, True),
    ("ServiceUnavailable", ServiceUnavailableError, True),
    ("InternalError", ServiceUnavailableError, True),
]


@pytest.fixture
def connector(logto_config):
    """The default retry policy (3 attempts), without the backoff waits."""
    logto_config["backoffBase"] = 0
    return AliyunSmsConnector(logto_config)


def send(connector):
    return connector.send_message(PHONE, "SignIn", {"code": CODE, "locale": "en"})


def assert_no_leak(error):
    shown = "".join(traceback.format_exception(error)) + repr(error) + str(error)
    assert PHONE not in shown
    assert CODE not in shown
    assert SECRET not in shown


def test_table_covers_the_documented_codes():
    """The module's table has exactly the documented rows, and each resolves."""
    documented = {
        "InvalidSecurityToken.*",
        "Forbidden.*",
        "Throttling.*",
        *(
            code
            for code, _, _ in TABLE
            if not code.startswith(("InvalidSecurityToken.", "Forbidden."))
        ),
    }
    documented -= {"Throttling.User", "Throttling.Api"}
    # The library's own codes for credentials missing before any request.
    documented |= {"InvalidCredentials", "CredentialsUnavailable"}
    assert {row[0] for row in _TABLE} == documented
    for code, cls, retryable in TABLE:
        assert lookup(code) == (cls, retryable)


class TestBusinessCodes:
    @pytest.mark.parametrize(("code", "cls", "retryable"), TABLE)
    def test_http_200_with_code(self, connector, send_sms, code, cls, retryable):
        """HTTP 200 with a non-OK Code raises the row's class with its attributes."""
        send_sms.return_value = sdk_fakes.business(code, "why", request_id="REQ-1")
        with pytest.raises(cls) as info:
            send(connector)
        error = info.value
        assert type(error) is cls
        assert (error.code, error.message, error.request_id) == (code, "why", "REQ-1")
        assert error.http_status == 200
        assert error.retryable is retryable
        assert error.attempts == send_sms.call_count == (3 if retryable else 1)
        assert error.__cause__ is None
        assert_no_leak(error)

    def test_unknown_code_is_the_base_class(self, connector, send_sms):
        """A code the table does not know is kept, on AliyunSmsError itself."""
        send_sms.return_value = sdk_fakes.business("isv.SOMETHING_NEW", "new")
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert type(info.value) is AliyunSmsError
        assert info.value.code == "isv.SOMETHING_NEW"
        assert info.value.retryable is False

    @pytest.mark.parametrize(
        ("message", "window", "retry_after"),
        [
            ("触发分钟级流控Permits:1", "minute", 60.0),
            ("触发小时级流控Permits:5", "hour", 3600.0),
            ("触发天级流控Permits:10", "day", 86400.0),
            ("some other wording", None, None),
        ],
    )
    def test_flow_control_window(self, connector, send_sms, message, window, retry_after):
        """isv.BUSINESS_LIMIT_CONTROL carries the window parsed from Aliyun's wording."""
        send_sms.return_value = sdk_fakes.business("isv.BUSINESS_LIMIT_CONTROL", message)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert (info.value.window, info.value.retry_after) == (window, retry_after)
        assert info.value.retryable is False

    @pytest.mark.parametrize("body", [{"Message": "no code"}, {}])
    def test_2xx_without_code(self, connector, send_sms, body):
        """A 2xx body without Code is an InvalidResponseError."""
        send_sms.return_value = sdk_fakes.response(body)
        with pytest.raises(InvalidResponseError) as info:
            send(connector)
        assert info.value.code == "InvalidResponse"
        assert info.value.retryable is False

    def test_2xx_body_not_an_object(self, connector, send_sms):
        """A JSON body that is not an object is an InvalidResponseError."""
        from darabonba.core import DaraCore

        # The SDK's own path: DaraCore.from_map swallows the model's failure.
        send_sms.return_value = DaraCore.from_map(
            sdk_fakes.SendSmsResponse(), {"headers": {}, "statusCode": 200, "body": ["OK"]}
        )
        with pytest.raises(InvalidResponseError):
            send(connector)


class TestGatewayExceptions:
    @pytest.mark.parametrize(("code", "cls", "retryable"), TABLE)
    def test_client_exception(self, connector, send_sms, code, cls, retryable):
        """A ClientException (4xx JSON) maps by its code, chained and scrubbed."""
        original = sdk_fakes.client_error(code, message=f"bad {PHONE} {CODE}")
        send_sms.side_effect = original
        with pytest.raises(cls) as info:
            send(connector)
        error = info.value
        assert (error.code, error.http_status, error.request_id) == (code, 400, "REQ-4XX")
        assert error.recommend == "https://api.aliyun.com/troubleshoot?q=X"
        assert error.retryable is retryable
        assert error.attempts == send_sms.call_count == (3 if retryable else 1)
        assert error.message == "bad ***8000 [redacted]"
        assert error.__cause__ is original
        assert_no_leak(error)

    def test_server_exception_with_unknown_code(self, connector, send_sms):
        """Any 5xx is a ServiceUnavailableError, whatever its code."""
        send_sms.side_effect = sdk_fakes.server_error("SomethingOdd", status=502)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("SomethingOdd", 502)
        assert info.value.retryable is True

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_exception_without_code(self, connector, send_sms, status):
        """A 5xx JSON body with no Code gets the code HTTP<status>."""
        send_sms.side_effect = sdk_fakes.server_error(None, status=status)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert info.value.code == f"HTTP{status}"
        assert info.value.http_status == status

    def test_client_exception_without_code(self, connector, send_sms):
        """A 4xx JSON body with no Code (the SDK's 'None') gets HTTP<status>."""
        send_sms.side_effect = sdk_fakes.client_error(None, status=404)
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert type(info.value) is AliyunSmsError
        assert info.value.code == "HTTP404"

    def test_throttling_honours_retry_after(self, connector, send_sms):
        """ThrottlingException's retry_after (ms) becomes seconds."""
        send_sms.side_effect = sdk_fakes.throttling(1500)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.retry_after == 1.5
        assert info.value.window is None
        assert info.value.retryable is True
        assert info.value.code == "Throttling.User"

    def test_sdk_credential_error(self, connector, send_sms):
        """The SDK's local InvalidCredentials ClientException keeps its code."""
        from alibabacloud_tea_openapi.exceptions import ClientException

        send_sms.side_effect = ClientException(code="InvalidCredentials", message="set keys")
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert info.value.code == "InvalidCredentials"
        assert info.value.http_status is None


class TestTransportFailures:
    @pytest.mark.parametrize(
        ("inner", "code"),
        [
            (sdk_fakes.connection_refused(URL), "ConnectionFailed"),
            (sdk_fakes.dns_failure(URL), "ConnectionFailed"),
            (sdk_fakes.connect_timeout(URL), "ConnectTimeout"),
        ],
        ids=["refused", "dns", "connect-timeout"],
    )
    def test_never_sent(self, connector, send_sms, inner, code):
        """Refused, DNS failure and connect timeout: retryable, not sent."""
        send_sms.side_effect = sdk_fakes.unretryable(inner, URL)
        with pytest.raises(NetworkError) as info:
            send(connector)
        error = info.value
        assert error.code == code
        assert (error.retryable, error.maybe_sent) == (True, False)
        assert error.__cause__ is send_sms.side_effect
        assert_no_leak(error)

    def test_read_timeout_may_have_been_sent(self, connector, send_sms):
        """A read timeout is never retryable: the SMS may have gone out."""
        send_sms.side_effect = sdk_fakes.unretryable(sdk_fakes.read_timeout(URL), URL)
        with pytest.raises(NetworkError) as info:
            send(connector)
        assert info.value.code == "ReadTimeout"
        assert (info.value.retryable, info.value.maybe_sent) == (False, True)
        assert_no_leak(info.value)

    def test_connection_dropped_after_sending(self, connector, send_sms):
        """A reset after the request left may have delivered it."""
        send_sms.side_effect = sdk_fakes.unretryable(sdk_fakes.connection_dropped(), URL)
        with pytest.raises(NetworkError) as info:
            send(connector)
        assert info.value.code == "ConnectionLost"
        assert (info.value.retryable, info.value.maybe_sent) == (False, True)

    @pytest.mark.parametrize("status", [500, 503])
    def test_5xx_html_keeps_http_status(self, connector, send_sms, status):
        """A 5xx with an HTML body is a ServiceUnavailableError with http_status kept."""

        def fail(*_args):
            _sdk._observation.get().record(type("R", (), {"status_code": status, "headers": {}}))
            raise sdk_fakes.unretryable_parse_error("<html>Service Unavailable</html>")

        send_sms.side_effect = fail
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == (f"HTTP{status}", status)
        assert info.value.retryable is True

    def test_4xx_html(self, connector, send_sms):
        """A 4xx with an HTML body keeps its status as the code."""

        def fail(*_args):
            _sdk._observation.get().record(type("R", (), {"status_code": 403, "headers": {}}))
            raise sdk_fakes.unretryable_parse_error("<html>Forbidden</html>")

        send_sms.side_effect = fail
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("HTTP403", 403)

    @pytest.mark.parametrize("body", ["not json", ""])
    def test_2xx_not_json(self, connector, send_sms, body):
        """A 200 whose body is not JSON, or empty, is an InvalidResponseError."""

        def fail(*_args):
            _sdk._observation.get().record(type("R", (), {"status_code": 200, "headers": {}}))
            raise sdk_fakes.unretryable_parse_error(body)

        send_sms.side_effect = fail
        with pytest.raises(InvalidResponseError) as info:
            send(connector)
        assert info.value.http_status == 200

    @pytest.mark.parametrize(
        "original", [TypeError("boom"), KeyError("Code"), AttributeError("body")]
    )
    def test_anything_else_the_sdk_raises(self, connector, send_sms, original):
        """Unexpected SDK exceptions become AliyunSmsError(code='SDKError')."""
        send_sms.side_effect = original
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert type(info.value) is AliyunSmsError
        assert info.value.code == "SDKError"
        assert info.value.__cause__ is original


class TestErrorObjects:
    def test_str_carries_the_context(self):
        """str() shows code, request id, status and the diagnosis URL."""
        error = error_from_failure(
            Failure(
                "response",
                code="SignatureDoesNotMatch",
                message="bad sig",
                http_status=400,
                request_id="RID",
                recommend="https://x",
            )
        )
        assert str(error) == (
            "bad sig (code: SignatureDoesNotMatch, request id: RID, HTTP 400, see https://x)"
        )
        assert "AuthenticationError(code='SignatureDoesNotMatch'" in repr(error)

    def test_local_errors_have_local_codes(self):
        """Errors raised before the network have the library's own codes."""
        assert NetworkError("x").code == "Unknown"
        assert InvalidResponseError("x").code == "InvalidResponse"
