"""Every row of the error table, through the connector with the Transport mocked."""

import asyncio
import traceback
import typing
from urllib.parse import quote

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsConnector,
    AliyunSmsError,
    AuthenticationError,
    BatchMessage,
    InvalidPhoneNumberError,
    InvalidResponseError,
    NetworkError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
    SignNameError,
    TemplateError,
    TemplateParamError,
)
from aliyun_sms_connector._errors import Failure
from aliyun_sms_connector._errors.translate import (
    _DYPNSAPI,
    _TABLE,
    NETWORK_KINDS,
    _row,
    error_from_failure,
    lookup,
)
from aliyun_sms_connector._http.models import TransportError
from aliyun_sms_connector._redact import RedactedError

from . import wire_fakes
from .conftest import SECRET, TOKEN

PHONE = "13800138000"
CODE = "482913"

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
def connector(logto_config, transport):
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


def assert_clean_chain(error):
    """No context at all, and a cause only if it is the redactor's stand-in."""
    assert error.__context__ is None
    assert error.__cause__ is None or type(error.__cause__) is RedactedError


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
    # The Message Authentication Service's block (tests/_mas/test_errors.py).
    documented |= {row[0] for row in _DYPNSAPI}
    assert {row[0] for row in _TABLE} == documented
    for code, cls, retryable in TABLE:
        assert lookup(code) == (cls, retryable)


def test_every_row_has_an_explanation():
    """Each code of the table carries a short English sentence saying what it means."""
    for code, _, _, explanation in _TABLE:
        assert explanation.strip(), code
        assert explanation.isascii(), code
        assert len(explanation) <= 90, code
        assert explanation == explanation.strip()
        assert not explanation.endswith("."), code


class TestExplanations:
    @pytest.mark.parametrize(("code", "cls", "retryable"), TABLE)
    def test_str_shows_the_explanation_beside_aliyuns_text(
        self, connector, transport, code, cls, retryable
    ):
        """.message keeps Aliyun's words; str() adds the row's explanation after them."""
        explanation = _row(code)[2]  # the row the code resolves to, prefix rows too
        transport.send.return_value = wire_fakes.business(code, "该账号下找不到对应签名")
        with pytest.raises(cls) as info:
            send(connector)
        error = info.value
        assert error.message == "该账号下找不到对应签名"
        assert error.explanation == explanation
        assert str(error).startswith(f"该账号下找不到对应签名 [{explanation}] (code: {code}")

    def test_the_sign_name_example(self):
        """isv.SMS_SIGNATURE_ILLEGAL says the sign name is missing or not approved."""
        error = error_from_failure(
            Failure("response", code="isv.SMS_SIGNATURE_ILLEGAL", message="该账号下找不到对应签名")
        )
        assert str(error) == (
            "该账号下找不到对应签名 [the sign name does not exist or is not approved for this "
            "AccessKey's account] (code: isv.SMS_SIGNATURE_ILLEGAL)"
        )

    def test_unknown_code_has_none(self):
        """A code the table lacks has no explanation: str() is Aliyun's text and the code."""
        error = error_from_failure(Failure("response", code="isv.SOMETHING_NEW", message="新"))
        assert error.explanation is None
        assert str(error) == "新 (code: isv.SOMETHING_NEW)"

    def test_local_errors_have_none(self):
        """The library's own errors explain themselves in their message."""
        assert AliyunSmsError("x").explanation is None
        assert str(NetworkError("x", code="C")) == "x (code: C)"


def test_every_transport_kind_is_mapped():
    """A kind the transport may raise that the table does not know fails here."""
    kind = typing.get_type_hints(TransportError)["kind"]
    assert set(typing.get_args(kind)) == NETWORK_KINDS


class TestBusinessCodes:
    @pytest.mark.parametrize(("code", "cls", "retryable"), TABLE)
    def test_http_200_with_code(self, connector, transport, code, cls, retryable):
        """HTTP 200 with a non-OK Code raises the row's class with its attributes."""
        transport.send.return_value = wire_fakes.business(code, "why", request_id="REQ-1")
        with pytest.raises(cls) as info:
            send(connector)
        error = info.value
        assert type(error) is cls
        assert (error.code, error.message, error.request_id) == (code, "why", "REQ-1")
        assert error.http_status == 200
        assert error.retryable is retryable
        assert error.attempts == transport.send.call_count == (3 if retryable else 1)
        assert error.__cause__ is None
        assert error.__context__ is None
        assert_no_leak(error)

    def test_unknown_code_is_the_base_class(self, connector, transport):
        """A code the table does not know is kept, on AliyunSmsError itself."""
        transport.send.return_value = wire_fakes.business("isv.SOMETHING_NEW", "new")
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
    def test_flow_control_window(self, connector, transport, message, window, retry_after):
        """isv.BUSINESS_LIMIT_CONTROL carries the window parsed from Aliyun's wording."""
        transport.send.return_value = wire_fakes.business("isv.BUSINESS_LIMIT_CONTROL", message)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert (info.value.window, info.value.retry_after) == (window, retry_after)
        assert info.value.retryable is False

    @pytest.mark.parametrize("body", [{"Message": "no code"}, {}, ["OK"], "null", 7])
    def test_2xx_without_code(self, connector, transport, body):
        """A 2xx JSON answer without a Code (or not an object) is an InvalidResponseError."""
        transport.send.return_value = wire_fakes.response(body)
        with pytest.raises(InvalidResponseError) as info:
            send(connector)
        assert info.value.code == "InvalidResponse"
        assert info.value.retryable is False
        assert info.value.http_status == 200
        # Aliyun answered 2xx: the SMS may be out.
        assert info.value.maybe_sent is True


class TestGatewayErrors:
    @pytest.mark.parametrize(("code", "cls", "retryable"), TABLE)
    def test_gateway_error(self, connector, transport, code, cls, retryable):
        """A 4xx error object maps by its code, scrubbed, with nothing chained."""
        transport.send.return_value = wire_fakes.gateway(code, message=f"bad {PHONE} {CODE}")
        with pytest.raises(cls) as info:
            send(connector)
        error = info.value
        assert (error.code, error.http_status, error.request_id) == (code, 400, "REQ-4XX")
        assert error.recommend == "https://api.aliyun.com/troubleshoot?q=X"
        assert error.retryable is retryable
        assert error.attempts == transport.send.call_count == (3 if retryable else 1)
        assert error.message == "bad ***8000 [redacted]"
        assert error.__cause__ is None
        assert error.__context__ is None
        assert_no_leak(error)

    def test_server_error_with_unknown_code(self, connector, transport):
        """Any 5xx is a ServiceUnavailableError, whatever its code."""
        transport.send.return_value = wire_fakes.gateway("SomethingOdd", status=502)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("SomethingOdd", 502)
        assert info.value.retryable is True

    @pytest.mark.parametrize("status", [500, 503])
    def test_server_error_without_code(self, connector, transport, status):
        """A 5xx JSON body with no Code gets the code HTTP<status>."""
        transport.send.return_value = wire_fakes.gateway(None, status=status)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert info.value.code == f"HTTP{status}"
        assert info.value.http_status == status

    def test_client_error_without_code(self, connector, transport):
        """A 4xx JSON body with no Code gets HTTP<status>."""
        transport.send.return_value = wire_fakes.gateway(None, status=404, request_id=None)
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert type(info.value) is AliyunSmsError
        assert (info.value.code, info.value.request_id) == ("HTTP404", None)

    def test_throttling_honours_retry_after(self, connector, transport, mocker):
        """x-acs-retry-after (ms) becomes retry_after in seconds, and the wait."""
        mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.return_value = wire_fakes.throttling(1500)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.retry_after == 1.5
        assert info.value.window is None
        assert info.value.retryable is True
        assert info.value.code == "Throttling.User"

    @pytest.mark.parametrize("value", ["0", "-5", "soon", ""])
    def test_retry_after_must_be_a_positive_integer(self, connector, transport, value):
        """As the SDK reads it: anything but a positive integer is no retry-after."""
        transport.send.return_value = wire_fakes.gateway(
            "Throttling.User", headers={"x-acs-retry-after": value}
        )
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.retry_after is None


class TestUnreadableAnswers:
    @pytest.mark.parametrize("status", [500, 503])
    def test_5xx_html_keeps_http_status(self, connector, transport, status):
        """A 5xx with an HTML body is a ServiceUnavailableError with http_status kept."""
        transport.send.return_value = wire_fakes.response("<html>Unavailable</html>", status)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == (f"HTTP{status}", status)
        assert info.value.retryable is True

    def test_4xx_html(self, connector, transport):
        """A 4xx with an HTML body keeps its status as the code."""
        transport.send.return_value = wire_fakes.response("<html>Forbidden</html>", 403)
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("HTTP403", 403)

    @pytest.mark.parametrize(
        "body",
        ["not json", "", b"\xff\xfe{", "[" * 100_000 + "]" * 100_000],
        ids=["text", "empty", "not-utf8", "deeply-nested"],
    )
    def test_2xx_not_json(self, connector, transport, body):
        """A 200 whose body is not JSON, not UTF-8 or too deep: InvalidResponse, maybe sent."""
        transport.send.return_value = wire_fakes.response(body)
        with pytest.raises(InvalidResponseError) as info:
            send(connector)
        assert info.value.http_status == 200
        assert info.value.retryable is False
        assert info.value.maybe_sent is True
        assert transport.send.call_count == 1


class TestTransportFailures:
    @pytest.mark.parametrize(
        ("kind", "code"),
        [("connect", "ConnectionFailed"), ("connect_timeout", "ConnectTimeout")],
    )
    def test_never_sent_is_retried(self, connector, transport, kind, code):
        """Refused, DNS failure and connect timeout: retryable, not sent."""
        transport.send.side_effect = wire_fakes.failure(kind, maybe_sent=False)
        with pytest.raises(NetworkError) as info:
            send(connector)
        error = info.value
        assert error.code == code
        assert (error.retryable, error.maybe_sent) == (True, False)
        assert error.attempts == transport.send.call_count == 3
        assert_clean_chain(error)
        assert type(error.__cause__) is RedactedError
        assert_no_leak(error)

    def test_certificate_failure_is_not_retried(self, connector, transport):
        """A certificate that fails verification cannot heal: one attempt, its own code."""
        transport.send.side_effect = wire_fakes.failure("certificate", maybe_sent=False)
        with pytest.raises(NetworkError) as info:
            send(connector)
        error = info.value
        assert error.code == "CertificateInvalid"
        assert (error.retryable, error.maybe_sent) == (False, False)
        assert transport.send.call_count == 1

    @pytest.mark.parametrize(
        ("kind", "code"),
        [("read_timeout", "ReadTimeout"), ("connection_lost", "ConnectionLost")],
    )
    def test_maybe_sent_is_never_retried(self, connector, transport, kind, code):
        """Once a byte may have left, the SMS may have gone out: never retried."""
        transport.send.side_effect = wire_fakes.failure(kind, maybe_sent=True)
        with pytest.raises(NetworkError) as info:
            send(connector)
        assert info.value.code == code
        assert (info.value.retryable, info.value.maybe_sent) == (False, True)
        assert transport.send.call_count == 1
        assert_clean_chain(info.value)

    @pytest.mark.parametrize("maybe_sent", [True, False])
    def test_deadline_exceeded(self, connector, transport, maybe_sent):
        """Running out of the deadline is DeadlineExceeded, maybe_sent as the transport says."""
        transport.send.side_effect = wire_fakes.failure("deadline", maybe_sent=maybe_sent)
        with pytest.raises(NetworkError) as info:
            send(connector)
        error = info.value
        assert error.code == "DeadlineExceeded"
        assert (error.retryable, error.maybe_sent) == (False, maybe_sent)
        assert ("may have been sent" in error.message) is maybe_sent
        assert transport.send.call_count == 1

    @pytest.mark.parametrize("maybe_sent", [True, False])
    def test_closed_in_flight(self, connector, transport, maybe_sent):
        """A send cut by close() is a typed ConnectorClosed, never retried."""
        transport.send.side_effect = wire_fakes.failure("closed", maybe_sent=maybe_sent)
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert type(info.value) is AliyunSmsError
        assert (info.value.code, info.value.maybe_sent) == ("ConnectorClosed", maybe_sent)
        assert transport.send.call_count == 1

    def test_closed_in_flight_async(self, connector, transport):
        """The async path gives the same typed error, not a CancelledError."""
        transport.send_async.side_effect = wire_fakes.failure("closed", maybe_sent=True)
        with pytest.raises(AliyunSmsError) as info:
            asyncio.run(connector.send_message_async(PHONE, "SignIn", {"code": CODE}))
        assert info.value.code == "ConnectorClosed"

    def test_a_header_the_wire_would_split_is_refused_unsent(self, connector, transport):
        """The transport's ValueError (CR/LF in a header) is InvalidRequest, unsent, once."""
        transport.send.side_effect = ValueError("a request header holds a line break")
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        error = info.value
        assert type(error) is AliyunSmsError
        assert (error.code, error.maybe_sent, error.retryable) == ("InvalidRequest", False, False)
        assert transport.send.call_count == 1
        assert_clean_chain(error)

    @pytest.mark.parametrize("original", [TypeError("boom"), KeyError("Code"), OSError("x")])
    def test_anything_else_the_transport_raises(self, connector, transport, original):
        """Unexpected exceptions become AliyunSmsError('UnexpectedError'), maybe sent, once."""
        transport.send.side_effect = original
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        error = info.value
        assert type(error) is AliyunSmsError
        assert (error.code, error.maybe_sent, error.retryable) == ("UnexpectedError", True, False)
        assert transport.send.call_count == 1
        assert_clean_chain(error)
        assert type(original).__name__ in str(error.__cause__)


def _sts(logto_config, **extra):
    return AliyunSmsConnector({**logto_config, "securityToken": TOKEN, "backoffBase": 0, **extra})


def _echo_with_token():
    # Aliyun's v2 SignatureDoesNotMatch echoes the string to sign: every value
    # percent-encoded twice, the token and the number among them.
    query = f"PhoneNumbers={PHONE}&SecurityToken={TOKEN}&TemplateParam=" + quote(
        f'{{"code":"{CODE}"}}', safe=""
    )
    to_sign = "POST&%2F&" + quote(quote(query, safe="=&"), safe="")
    return wire_fakes.gateway(
        "SignatureDoesNotMatch",
        message=f"Specified signature is not matched with our calculation. {to_sign}",
    )


FAILURES = {
    "signature-echo": _echo_with_token,
    "server-error": lambda: wire_fakes.gateway("ServiceUnavailable", status=503),
    "read-timeout": lambda: wire_fakes.failure("read_timeout", maybe_sent=True),
    "refused": lambda: wire_fakes.failure("connect", maybe_sent=False),
    "unexpected": lambda: RuntimeError(f"with {SECRET} and {TOKEN} inside"),
}


def _answer(mock, failure):
    if isinstance(failure, BaseException):
        mock.side_effect = failure
    else:
        mock.return_value = failure


class TestTracebackLocals:
    """Error trackers capture frame locals: no library frame may show a secret or token."""

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    @pytest.mark.parametrize("failure", sorted(FAILURES))
    def test_sync(self, logto_config, transport, algorithm, failure):
        """capture_locals shows neither the AccessKey secret nor the STS token (sync)."""
        _answer(transport.send, FAILURES[failure]())
        connector = _sts(logto_config, signatureAlgorithm=algorithm)
        with pytest.raises(AliyunSmsError) as info:
            send(connector)
        assert_locals_private(info.value)

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    @pytest.mark.parametrize("failure", sorted(FAILURES))
    def test_async(self, logto_config, transport, algorithm, failure):
        """capture_locals shows neither the AccessKey secret nor the STS token (async)."""
        _answer(transport.send_async, FAILURES[failure]())
        connector = _sts(logto_config, signatureAlgorithm=algorithm)
        with pytest.raises(AliyunSmsError) as info:
            asyncio.run(connector.send_message_async(PHONE, "SignIn", {"code": CODE}))
        assert_locals_private(info.value)

    @pytest.mark.parametrize(
        "call",
        [
            lambda c: c.send_message("123", "SignIn", {"code": CODE}),
            lambda c: c.send_message(PHONE, "SignIn", {"code": "1 2"}),
            lambda c: c.send_message(PHONE, "SignIn", {"code": CODE}, out_id=5),
            lambda c: asyncio.run(c.send_message_async("123", "SignIn", {"code": CODE})),
            lambda c: c.query_delivery(PHONE, send_date="20991301"),
            lambda c: c.send_batch([BatchMessage(PHONE, {"code": CODE})], "Nope"),
        ],
        ids=["number", "value", "out-id", "async-number", "send-date", "batch-usage"],
    )
    def test_local_validation_errors(self, logto_config, transport, call):
        """Errors raised before any request show no secret or token in any library frame."""
        connector = AliyunSmsConnector(
            {**logto_config, "securityToken": TOKEN, "templates": logto_config["templates"][1:2]}
        )
        with pytest.raises(AliyunSmsError) as info:
            call(connector)
        summary = traceback.TracebackException.from_exception(info.value, capture_locals=True)
        library = [f for f in summary.stack if "aliyun_sms_connector" in f.filename]
        assert library
        shown = "\n".join(f"{n}={v}" for f in library for n, v in (f.locals or {}).items())
        assert SECRET not in shown
        assert TOKEN not in shown

    def test_the_internal_call_object_hides_its_secrets(self, logto_config, transport):
        """The per-send Call shows its labels, masked; never what it scrubs."""
        from aliyun_sms_connector._protocol.calls import prepare_send

        connector = _sts(logto_config)
        call = prepare_send(
            connector.config,
            connector._secrets,
            to=PHONE,
            usage_type="SignIn",
            payload={"code": CODE},
            out_id=None,
        ).call
        shown = repr(call)
        assert shown == "Call(usage_type=SignIn template=SMS_SIGNIN to=***8000)"
        assert call.secrets == (SECRET, TOKEN)
        assert repr(call.secrets) == "Secrets(2 hidden)"


def assert_locals_private(error):
    """Render the error as an error tracker would, locals included; read the library's frames."""
    assert_clean_chain(error)
    summary = traceback.TracebackException(
        type(error), error, error.__traceback__, capture_locals=True
    )
    rendered = "".join(summary.format())
    # The test's own frames hold the config; only the library's are checked.
    library = [frame for frame in summary.stack if "aliyun_sms_connector" in frame.filename]
    assert {"send_message", "run"} <= {frame.name for frame in library} or {
        "send_message_async",
        "run_async",
    } <= {frame.name for frame in library}
    shown = "\n".join(f"{name}={value}" for f in library for name, value in f.locals.items())
    assert "call=Call(usage_type=SignIn" in shown
    for private in (SECRET, TOKEN, quote(TOKEN, safe="")):
        assert private not in shown
    link = error
    while link is not None:  # the error and its stand-in cause
        assert SECRET not in str(link)
        assert TOKEN not in str(link)
        link = link.__cause__
    assert "RedactedError" in rendered or error.__cause__ is None


class TestErrorObjects:
    def test_str_carries_the_context(self):
        """str() shows the explanation, code, request id, status and the diagnosis URL."""
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
            "bad sig [the accessKeySecret does not belong to this accessKeyId] "
            "(code: SignatureDoesNotMatch, request id: RID, HTTP 400, see https://x)"
        )
        assert "AuthenticationError(code='SignatureDoesNotMatch'" in repr(error)

    def test_local_errors_have_local_codes(self):
        """Errors raised before the network have the library's own codes."""
        assert NetworkError("x").code == "Unknown"
        assert InvalidResponseError("x").code == "InvalidResponse"

    @pytest.mark.parametrize("kind", sorted(NETWORK_KINDS))
    def test_maybe_sent_is_never_retryable(self, kind):
        """Whatever the kind, an error that may have been sent is not retryable."""
        error = error_from_failure(Failure(kind, maybe_sent=True))
        assert error.maybe_sent is True
        assert error.retryable is False


class TestLocalCredentialCodes:
    @pytest.mark.parametrize("code", ["InvalidCredentials", "CredentialsUnavailable"])
    def test_missing_credentials_are_never_retried(self, code):
        """Credentials missing before any request: an AuthenticationError, never retryable."""
        error = error_from_failure(Failure("response", code=code, message="no credentials"))
        assert type(error) is AuthenticationError
        assert (error.code, error.retryable, error.maybe_sent) == (code, False, False)


class TestStatusBoundaries:
    @pytest.mark.parametrize(
        ("status", "cls", "retryable"),
        [
            (200, InvalidResponseError, False),
            (399, InvalidResponseError, False),
            (400, AliyunSmsError, False),
            (499, AliyunSmsError, False),
            (500, ServiceUnavailableError, True),
        ],
    )
    def test_unreadable_body(self, status, cls, retryable):
        """A body that is not JSON: 4xx keeps its status as code, 5xx may be retried."""
        error = error_from_failure(Failure("bad_body", http_status=status, request_id="R"))
        assert type(error) is cls
        assert (error.retryable, error.http_status, error.request_id) == (retryable, status, "R")
        # Below 400 Aliyun took the request: the SMS may be out.
        assert error.maybe_sent is (status < 400)
        if status >= 400:
            assert error.code == f"HTTP{status}"
            assert error.message == f"Aliyun answered HTTP {status} without a readable body"
        else:
            assert error.code == "InvalidResponse"
            assert error.message == "Aliyun's response body is not valid JSON"

    def test_unreadable_2xx_body_keeps_the_transport_message(self):
        """A bad 2xx body keeps what the transport said was wrong with it."""
        error = error_from_failure(Failure("bad_body", http_status=200, message="too deep"))
        assert error.message == "too deep"

    @pytest.mark.parametrize(
        ("status", "cls", "code"),
        [
            (None, InvalidResponseError, "InvalidResponse"),
            (399, InvalidResponseError, "InvalidResponse"),
            (400, AliyunSmsError, "HTTP400"),
            (500, ServiceUnavailableError, "HTTP500"),
        ],
    )
    @pytest.mark.parametrize("empty", [None, "", "None"])
    def test_answer_without_a_code(self, status, cls, code, empty):
        """No Code: below 400 the answer is unusable; from 400 on its status is the code."""
        error = error_from_failure(Failure("response", code=empty, http_status=status))
        assert type(error) is cls
        assert error.code == code
        if cls is InvalidResponseError:
            assert error.message == "Aliyun's response has no Code"
            assert error.maybe_sent is True
        else:
            assert error.message == code

    @pytest.mark.parametrize(
        ("status", "cls"), [(499, AliyunSmsError), (500, ServiceUnavailableError)]
    )
    def test_unknown_code_by_status(self, status, cls):
        """An unknown code is retryable only with a 5xx status."""
        error = error_from_failure(Failure("response", code="Odd", http_status=status))
        assert type(error) is cls
        assert error.retryable is (status >= 500)


class TestMaybeSentOutsideTheNetwork:
    @pytest.mark.parametrize(
        "failure",
        [
            Failure("response", code="isv.BUSINESS_LIMIT_CONTROL", http_status=200),
            Failure("bad_body", http_status=502),
            Failure("invalid_request"),
            Failure("unexpected"),
        ],
        ids=["business", "bad-body", "invalid-request", "unexpected"],
    )
    def test_not_sent(self, failure):
        """Errors with an answer, or from before the request, were not sent."""
        assert error_from_failure(failure).maybe_sent is False

    def test_unexpected_may_have_been_sent(self):
        """A bug below the library after the request went out: maybe_sent as the transport says."""
        error = error_from_failure(Failure("unexpected", maybe_sent=True, message="boom"))
        assert (error.code, error.message, error.maybe_sent, error.retryable) == (
            "UnexpectedError",
            "boom",
            True,
            False,
        )

    def test_unexpected_default_message(self):
        """Without a message, an unexpected failure says so."""
        assert error_from_failure(Failure("unexpected")).message == (
            "the request failed unexpectedly"
        )

    def test_invalid_request(self):
        """A header that cannot be sent: its own code, not sent, not retryable."""
        error = error_from_failure(Failure("invalid_request", request_id="R"))
        assert (type(error), error.code, error.retryable) == (
            AliyunSmsError,
            "InvalidRequest",
            False,
        )
        assert error.message.endswith("; the SMS was not sent")


class TestConfigErrorMessage:
    def test_one_problem(self):
        """One problem: the count, the singular noun, and the field with its problem."""
        from aliyun_sms_connector._errors import ConfigError, ConfigProblem

        error = ConfigError.from_problems([ConfigProblem("signName", "Field required")])
        assert (
            str(error)
            == error.message
            == ("invalid Aliyun SMS config, 1 problem:\n  signName: Field required")
        )
        assert error.problems == (("signName", "Field required"),)
        assert (error.code, error.retryable, error.maybe_sent) == ("InvalidConfig", False, False)
        assert isinstance(error, ValueError)

    def test_several_problems_and_the_whole_config(self):
        """Two problems: the plural, one line each; a problem of the whole config says so."""
        from aliyun_sms_connector._errors import ConfigError, ConfigProblem

        error = ConfigError.from_problems(
            [ConfigProblem("", "expected a JSON object"), ConfigProblem("templates", "too short")]
        )
        assert error.message == (
            "invalid Aliyun SMS config, 2 problems:\n"
            "  (config): expected a JSON object\n"
            "  templates: too short"
        )

    def test_made_by_hand(self):
        """A ConfigError made directly has no problems listed."""
        from aliyun_sms_connector._errors import ConfigError

        error = ConfigError("bad")
        assert (error.problems, str(error)) == ((), "bad")


class TestLateNetworkFailures:
    @pytest.mark.parametrize(
        ("kind", "maybe_sent", "message"),
        [
            ("deadline", True, "the send ran out of its deadline; the SMS may have been sent"),
            ("deadline", False, "the send ran out of its deadline; the SMS was not sent"),
            (
                "closed",
                True,
                (
                    "the connector was closed while the send was in flight; "
                    "the SMS may have been sent"
                ),
            ),
            (
                "closed",
                False,
                "the connector was closed while the send was in flight; the SMS was not sent",
            ),
        ],
    )
    def test_message_says_whether_it_was_sent(self, kind, maybe_sent, message):
        """A deadline or a close can come before or after the request: the message says which."""
        error = error_from_failure(Failure(kind, maybe_sent=maybe_sent))
        assert (error.message, error.maybe_sent) == (message, maybe_sent)

    def test_network_error_keeps_the_context(self):
        """A network failure keeps the request id, status and diagnosis URL it came with."""
        error = error_from_failure(
            Failure("connection_lost", request_id="R", http_status=200, recommend="https://x")
        )
        assert (error.request_id, error.http_status, error.recommend) == ("R", 200, "https://x")


class TestLocalFailuresKeepTheirContext:
    def test_invalid_request(self):
        """A request that cannot be written: the reason, and the context it came with."""
        error = error_from_failure(Failure("invalid_request", request_id="R", http_status=None))
        assert error.message == (
            "a request header would hold a line break or a non-ASCII character "
            "(a credential from the chain?); the SMS was not sent"
        )
        assert error.request_id == "R"

    def test_unexpected(self):
        """An unexpected failure keeps the request id and status it came with."""
        error = error_from_failure(Failure("unexpected", request_id="R", http_status=502))
        assert (error.request_id, error.http_status) == ("R", 502)


class TestErrorDefaults:
    def test_a_new_error(self):
        """An error made by hand: its message is its only argument, and no attempt was made."""
        error = AliyunSmsError("went wrong")
        assert error.args == ("went wrong",)
        assert (error.attempts, error.retryable, error.maybe_sent) == (0, False, False)


class TestNetworkTable:
    @pytest.mark.parametrize(
        ("kind", "code", "message", "maybe_sent", "retryable"),
        [
            (
                "connect",
                "ConnectionFailed",
                "could not connect to Aliyun; the SMS was not sent",
                False,
                True,
            ),
            (
                "connect_timeout",
                "ConnectTimeout",
                "connecting to Aliyun timed out; the SMS was not sent",
                False,
                True,
            ),
            (
                "certificate",
                "CertificateInvalid",
                "Aliyun's TLS certificate could not be verified; the SMS was not sent",
                False,
                False,
            ),
            (
                "read_timeout",
                "ReadTimeout",
                "Aliyun did not answer in time; the SMS may have been sent",
                True,
                False,
            ),
            (
                "connection_lost",
                "ConnectionLost",
                (
                    "the connection to Aliyun broke after the request was sent; "
                    "the SMS may have been sent"
                ),
                True,
                False,
            ),
            (
                "deadline",
                "DeadlineExceeded",
                "the send ran out of its deadline; the SMS may have been sent",
                True,
                False,
            ),
            (
                "closed",
                "ConnectorClosed",
                (
                    "the connector was closed while the send was in flight; "
                    "the SMS may have been sent"
                ),
                True,
                False,
            ),
        ],
    )
    def test_kind_without_the_transports_word(self, kind, code, message, maybe_sent, retryable):
        """Each kind, when the transport says nothing of maybe_sent: its code, text and flags."""
        error = error_from_failure(Failure(kind))
        assert (error.code, error.message, error.maybe_sent, error.retryable) == (
            code,
            message,
            maybe_sent,
            retryable,
        )
        assert type(error) is (AliyunSmsError if kind == "closed" else NetworkError)


class TestLocalCodes:
    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("AliyunSmsError", "Unknown"),
            ("InvalidPhoneNumberError", "InvalidPhoneNumber"),
            ("TemplateError", "TemplateError"),
            ("TemplateNotFoundError", "TemplateNotFound"),
            ("TemplateParamError", "TemplateParamInvalid"),
        ],
    )
    def test_code_of_an_error_raised_before_any_request(self, name, code):
        """Errors the library raises itself carry its own documented codes."""
        import aliyun_sms_connector

        cls = getattr(aliyun_sms_connector, name)
        assert cls("x").code == code
        assert cls("x", code="Given").code == "Given"

    def test_config_error_code(self):
        """A ConfigError's code is InvalidConfig."""
        from aliyun_sms_connector._errors import ConfigError

        assert ConfigError("x").code == "InvalidConfig"


class TestNeverRetriedAfterTheRequest:
    @pytest.mark.parametrize("kind", ["read_timeout", "connection_lost"])
    def test_even_when_said_not_sent(self, kind):
        """A read timeout or a broken connection is not retried, even if called unsent."""
        error = error_from_failure(Failure(kind, maybe_sent=False))
        assert (error.maybe_sent, error.retryable) == (False, False)
