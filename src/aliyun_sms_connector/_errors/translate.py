"""The one translation table: Aliyun's codes and the transport's failures into typed errors.

:func:`error_from_failure` is the single mapping point, for Aliyun's answers
(Dysmsapi's and Dypnsapi's codes alike) and for the transport's failures.

Network failures, by the transport's ``kind`` (one question decides
``maybe_sent``: may any byte of the request have reached the server?)::

    kind             class            code               maybe_sent   retryable
    connect          NetworkError     ConnectionFailed   no           yes
    connect_timeout  NetworkError     ConnectTimeout     no           yes
    certificate      NetworkError     CertificateInvalid no           no (cannot heal)
    tls_plaintext    NetworkError     PlainHttpEndpoint  no           no (cannot heal)
    read_timeout     NetworkError     ReadTimeout        yes          no
    connection_lost  NetworkError     ConnectionLost     yes          no
    deadline         NetworkError     DeadlineExceeded   by phase     no
    closed           AliyunSmsError   ConnectorClosed    by phase     no

Nothing that may have been sent is ever retried: Aliyun may already have sent
the SMS, and a second request would give the user two codes. Two more of the
library's own codes, on ``AliyunSmsError`` itself: ``InvalidRequest`` (a
header would hold a line break; nothing was sent) and ``UnexpectedError`` (a
bug below this library; maybe sent).
"""

from __future__ import annotations

from typing import Any, Literal

from . import (
    AccountError,
    AliyunSmsError,
    AuthenticationError,
    Failure,
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

__all__ = ["NETWORK_KINDS", "error_from_failure", "lookup"]

# (code, class, retryable, explanation): the explanation is a short English
# sentence saying what the code means and what to do; Aliyun's own text stays
# in the error's .message.
_Row = tuple[str, type[AliyunSmsError], bool, str]

# The translation table: one row per Aliyun code, "X.*" matches X.anything.
# A row per code, its explanation on a second line when long.
# fmt: off
_TABLE: tuple[_Row, ...] = (
    ("InvalidAccessKeyId.NotFound", AuthenticationError, False,
     "the AccessKey ID does not exist: check accessKeyId, and the account"),
    ("InvalidAccessKeyId.Inactive", AuthenticationError, False,
     "the AccessKey is disabled: enable it, or make a new one in the RAM console"),
    ("SignatureDoesNotMatch", AuthenticationError, False,
     "the accessKeySecret does not belong to this accessKeyId"),
    ("IncompleteSignature", AuthenticationError, False,
     "the request's signature is incomplete: did a proxy change the request?"),
    ("InvalidSecurityToken.*", AuthenticationError, False,
     "the STS security token is missing, malformed or expired: fetch a fresh one"),
    ("InvalidTimeStamp.Expired", AuthenticationError, False,
     "this machine's clock is over 15 minutes off: synchronise it (NTP)"),
    ("SignatureNonceUsed", AuthenticationError, False,
     "the request's nonce was used already: a replayed or duplicated request"),
    # Raised before any request: the SDK's, and the default chain's through this library.
    ("InvalidCredentials", AuthenticationError, False,
     "no credentials: give accessKeyId and accessKeySecret, or set up the chain"),
    ("CredentialsUnavailable", AuthenticationError, False,
     "the default credential chain found none (environment, file, instance role)"),
    ("isp.RAM_PERMISSION_DENY", PermissionDeniedError, False,
     "the AccessKey's RAM user lacks the SMS permission (dysms:SendSms)"),
    ("isv.DENY_IP_RANGE", PermissionDeniedError, False,
     "this machine's IP address is not in the AccessKey's allowed IP list"),
    ("Forbidden.*", PermissionDeniedError, False,
     "the credentials are valid but not allowed this call: check the RAM policy"),
    ("isv.SMS_TEST_NUMBER_LIMIT", PermissionDeniedError, False,
     "test sign names and templates send only to the test numbers bound in the console"),
    ("isv.SMS_TEST_SIGN_TEMPLATE_LIMIT", PermissionDeniedError, False,
     "the test sign name and template go together, and only to bound test numbers"),
    ("isv.SMS_SIGNATURE_ILLEGAL", SignNameError, False,
     "the sign name does not exist or is not approved for this AccessKey's account"),
    ("isv.SIGN_STATE_ILLEGAL", SignNameError, False,
     "the sign name is not approved yet, or was rejected or disabled"),
    ("isv.SMS_SIGN_ILLEGAL", SignNameError, False,
     "the sign name is not valid for this account: check signName in the console"),
    ("isv.SMS_SIGNATURE_SCENE_ILLEGAL", SignNameError, False,
     "the sign name's type does not fit the template's (verification vs notification)"),
    ("SIGNATURE_BLACKLIST", SignNameError, False,
     "the sign name is blacklisted by Aliyun or the carriers"),
    ("isv.EXTEND_CODE_ERROR", SignNameError, False,
     "the sign name's extension code is invalid or used by another sign name"),
    ("isv.SMS_TEMPLATE_ILLEGAL", TemplateError, False,
     "the template code does not exist, is not approved, or is another account's"),
    ("isv.SMS_CONTENT_ILLEGAL", TemplateError, False,
     "the message was refused: forbidden words, or it breaks the template's rules"),
    ("isv.TEMPLATE_MISSING_PARAMETERS", TemplateParamError, False,
     "the payload lacks a variable that the template uses"),
    ("isv.INVALID_JSON_PARAM", TemplateParamError, False,
     "the template parameters are not valid JSON"),
    ("isv.TEMPLATE_PARAMS_ILLEGAL", TemplateParamError, False,
     "a variable's value holds a forbidden word or breaks the variable's rules"),
    ("isv.BLACK_KEY_CONTROL_LIMIT", TemplateParamError, False,
     "a variable's value holds a blacklisted keyword"),
    ("isv.PARAM_LENGTH_LIMIT", TemplateParamError, False, "a variable's value is too long"),
    ("isv.PARAM_NOT_SUPPORT_URL", TemplateParamError, False,
     "a variable holds a URL, which this template does not allow"),
    ("isv.MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError, False,
     "the number's format was refused, or the template cannot serve its region"),
    ("isv.MOBILE_COUNT_OVER_LIMIT", InvalidPhoneNumberError, False,
     "too many numbers in one request (1000 at most, 100 in a batch)"),
    ("isv.DOMESTIC_NUMBER_NOT_SUPPORTED", InvalidPhoneNumberError, False,
     "an international template cannot send to mainland China numbers"),
    ("isv.AMOUNT_NOT_ENOUGH", AccountError, False, "the account's balance is too low: top it up"),
    ("isv.OUT_OF_SERVICE", AccountError, False,
     "the account is suspended, usually for an overdue bill: top it up"),
    ("isv.ACCOUNT_NOT_EXISTS", AccountError, False, "the Aliyun account does not exist"),
    ("isv.ACCOUNT_ABNORMAL", AccountError, False,
     "the Aliyun account is in an abnormal state: contact Aliyun support"),
    ("isv.PRODUCT_UN_SUBSCRIPT", AccountError, False,
     "the account has not activated Short Message Service: activate it"),
    ("isv.PRODUCT_UNSUBSCRIBE", AccountError, False,
     "the account has not activated Short Message Service: activate it"),
    ("isv.BUSINESS_LIMIT_CONTROL", RateLimitExceededError, False,
     "Aliyun's per-number limit: 1 code a minute, 5 an hour, 10 a day by default"),
    ("isv.DAY_LIMIT_CONTROL", RateLimitExceededError, False,
     "the daily sending limit set in the console was reached"),
    ("isv.MONTH_LIMIT_CONTROL", RateLimitExceededError, False,
     "the monthly sending limit set in the console was reached"),
    ("Throttling", RateLimitExceededError, True,
     "Aliyun throttled this account's API calls: send more slowly"),
    ("Throttling.*", RateLimitExceededError, True,
     "Aliyun throttled this account's API calls: send more slowly"),
    ("isp.SYSTEM_ERROR", ServiceUnavailableError, True,
     "an error inside Aliyun: trying again later may work"),
    ("isp.GATEWAY_ERROR", ServiceUnavailableError, True,
     "an error in Aliyun's gateway: trying again later may work"),
    ("isp.UNKNOWN", ServiceUnavailableError, True,
     "an unknown error inside Aliyun: trying again later may work"),
    ("ServiceUnavailable", ServiceUnavailableError, True,
     "Aliyun is unavailable for now: trying again later may work"),
    ("InternalError", ServiceUnavailableError, True,
     "an internal error at Aliyun: trying again later may work"),
)
# fmt: on

# --- Dypnsapi: the Message Authentication Service (短信认证, AliyunMasConnector) ---
# Aliyun's list of the Phone Number Verification Service's API error codes:
# https://help.aliyun.com/zh/pnvs/developer-reference/api-error-code
# (English: https://www.alibabacloud.com/help/en/pnvs/developer-reference/api-error-code).
# FREQUENCY_FAIL and BUSINESS_LIMIT_CONTROL are not on it: they are the codes
# Logto's connector-aliyun-sms-mas (and its tests) handles as rate limits.
# Dypnsapi writes these codes without the isv. prefix, and they keep that
# spelling here; the gateway's codes (signature, AccessKey, Throttling,
# InternalError) are the rows above, shared with Dysmsapi. A refusal is an
# answer: nothing was sent (maybe_sent=False).
# fmt: off
_DYPNSAPI: tuple[_Row, ...] = (
    ("FREQUENCY_FAIL", RateLimitExceededError, False,
     "a code went to this number within Interval, or it was checked too often: wait"),
    ("BUSINESS_LIMIT_CONTROL", RateLimitExceededError, False,
     "Aliyun's per-number flow control refused this send: wait before the next code"),
    ("MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError, False,
     "not a mainland China mobile number: this service serves no other"),
    ("INVALID_PARAMETERS", AliyunSmsError, False,
     "Aliyun refused a parameter: check the sign name, template code and scheme"),
    ("NOT_SUPPORTED_CHANNEL", PermissionDeniedError, False,
     "SMS is not enabled for this verification scheme: enable it in the console"),
    ("COUNTRY_BLACKLISTED", PermissionDeniedError, False,
     "the number's country is on the account's blacklist in the console"),
    ("SECURITY_INTERCEPTED", PermissionDeniedError, False,
     "Aliyun's anti-fraud check blocked this request: do not retry it"),
    ("Specified AccessKeyId is not found", AuthenticationError, False,
     "the accessKeyId does not exist: check the AccessKey in the RAM console"),
    ("BIZ_NOT_OPEN_STATUS", AccountError, False,
     "the Phone Number Verification Service is not activated: activate it in its console"),
    ("RESOURCE_NOT_ENOUGH", AccountError, False,
     "no package or balance left for this service: buy a package or add funds"),
    ("isp.VERIFY_SCHEME_NOT_EXIST", TemplateError, False,
     "no verification scheme has this SchemeName: fix the template's schemeName"),
    ("SMS_SYSTEM_ERROR", ServiceUnavailableError, True,
     "an error in Aliyun's SMS system: trying again later may work"),
    ("SENTINEL_BLOCK_EXCEPTION", ServiceUnavailableError, True,
     "Aliyun's billing system is busy: trying again later may work"),
)
# fmt: on
_TABLE += _DYPNSAPI

_EXACT = {row[0]: row[1:] for row in _TABLE if not row[0].endswith(".*")}
_PREFIXES = tuple((row[0][:-1], *row[1:]) for row in _TABLE if row[0].endswith(".*"))

# Aliyun's wording for its per-number flow control, e.g. 触发分钟级流控Permits:1.
_WINDOWS: tuple[tuple[str, Literal["minute", "hour", "day"], float], ...] = (
    ("分钟级", "minute", 60.0),
    ("小时级", "hour", 3600.0),
    ("天级", "day", 86400.0),
)

# fmt: off
_NETWORK: dict[str, tuple[type[AliyunSmsError], str, str, bool, bool]] = {
    # kind: (class, code, message, maybe_sent, retryable when not sent)
    "connect": (NetworkError, "ConnectionFailed",
                "could not connect to Aliyun; the SMS was not sent", False, True),
    "connect_timeout": (NetworkError, "ConnectTimeout",
                        "connecting to Aliyun timed out; the SMS was not sent", False, True),
    # A certificate that fails verification will fail the same way again.
    "certificate": (NetworkError, "CertificateInvalid",
                    "Aliyun's TLS certificate could not be verified; the SMS was not sent",
                    False, False),
    # The TLS handshake read a plain-HTTP answer: the endpoint speaks http://
    # (the emulator, a local proxy), and will answer the same way again.
    "tls_plaintext": (NetworkError, "PlainHttpEndpoint",
                      ("the endpoint answered the TLS handshake in plain HTTP, so it does not "
                       "speak HTTPS; for the emulator or another http:// server, set protocol: "
                       "http (ALIYUN_SMS_PROTOCOL=http); the SMS was not sent"), False, False),
    "read_timeout": (NetworkError, "ReadTimeout",
                     "Aliyun did not answer in time; the SMS may have been sent", True, False),
    "connection_lost": (NetworkError, "ConnectionLost",
                        ("the connection to Aliyun broke after the request was sent; the SMS "
                         "may have been sent"), True, False),
    # Nothing is left of the deadline to retry in.
    "deadline": (NetworkError, "DeadlineExceeded", "the send ran out of its deadline", True, False),
    "closed": (AliyunSmsError, "ConnectorClosed",
               "the connector was closed while the send was in flight", True, False),
}
# fmt: on
NETWORK_KINDS = frozenset(_NETWORK)


def lookup(code: str) -> tuple[type[AliyunSmsError], bool] | None:
    """Return the (class, retryable) row for an Aliyun code, or None."""
    row = _row(code)
    return None if row is None else row[:2]


def _row(code: str) -> tuple[type[AliyunSmsError], bool, str] | None:
    """(class, retryable, explanation) for an Aliyun code, or None."""
    if code in _EXACT:
        return _EXACT[code]
    for entry in _PREFIXES:
        if code.startswith(entry[0]):
            return entry[1:]
    return None


def error_from_failure(failure: Failure) -> AliyunSmsError:
    """Translate a described failure into the most specific typed error."""
    context: dict[str, Any] = {
        "request_id": failure.request_id or None,
        "http_status": failure.http_status,
        "recommend": failure.recommend or None,
    }
    if failure.kind in _NETWORK:
        cls, code, message, maybe_sent, retryable = _NETWORK[failure.kind]
        if failure.maybe_sent is not None:
            maybe_sent = failure.maybe_sent
        if failure.kind in {"deadline", "closed"}:
            sent = "may have been sent" if maybe_sent else "was not sent"
            message = f"{message}; the SMS {sent}"
        return cls(
            failure.message or message,
            code=code,
            # Anything that may have been sent is never retried.
            retryable=retryable and not maybe_sent,
            maybe_sent=maybe_sent,
            **context,
        )
    status = failure.http_status
    if failure.kind == "bad_body":
        if status is not None and status >= 500:  # noqa: PLR2004
            return ServiceUnavailableError(
                f"Aliyun answered HTTP {status} without a readable body",
                code=f"HTTP{status}",
                retryable=True,
                **context,
            )
        if status is not None and status >= 400:  # noqa: PLR2004
            return AliyunSmsError(
                f"Aliyun answered HTTP {status} without a readable body",
                code=f"HTTP{status}",
                **context,
            )
        # A 2xx (or 3xx) came back: the request reached Aliyun, which may have
        # sent the SMS before the body was cut or garbled on its way back.
        return InvalidResponseError(
            failure.message or "Aliyun's response body is not valid JSON",
            maybe_sent=True,
            **context,
        )
    if failure.kind == "invalid_request":
        return AliyunSmsError(
            "a request header would hold a line break or a non-ASCII character "
            "(a credential from the chain?); the SMS was not sent",
            code="InvalidRequest",
            **context,
        )
    if failure.kind == "unexpected":
        # A bug below this library; whether it sent anything is unknown.
        return AliyunSmsError(
            failure.message or "the request failed unexpectedly",
            code="UnexpectedError",
            maybe_sent=bool(failure.maybe_sent),
            **context,
        )
    return _from_code(failure, context)


def _from_code(failure: Failure, context: dict[str, Any]) -> AliyunSmsError:
    status = failure.http_status
    code = failure.code if failure.code not in (None, "", "None") else None
    if code is None:
        if status is None or status < 400:  # noqa: PLR2004
            # As for an unreadable body: the request reached Aliyun.
            return InvalidResponseError("Aliyun's response has no Code", maybe_sent=True, **context)
        code = f"HTTP{status}"
    message = failure.message or code
    row = _row(code)
    if row is None:
        if status is not None and status >= 500:  # noqa: PLR2004
            row = (ServiceUnavailableError, True, "")
        else:
            row = (AliyunSmsError, False, "")
    cls, retryable, explanation = row
    context["explanation"] = explanation or None
    if cls is RateLimitExceededError:
        window, retry_after = _rate_limit_timing(message, failure.retry_after_ms)
        return RateLimitExceededError(
            message,
            code=code,
            retryable=retryable,
            window=window,
            retry_after=retry_after,
            **context,
        )
    return cls(message, code=code, retryable=retryable, **context)


def _rate_limit_timing(
    message: str, retry_after_ms: float | None
) -> tuple[Literal["minute", "hour", "day"] | None, float | None]:
    if retry_after_ms is not None:
        return None, retry_after_ms / 1000
    for marker, window, seconds in _WINDOWS:
        if marker in message:
            return window, seconds
    return None, None
