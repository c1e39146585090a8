"""Typed errors, and the one table that turns Aliyun's codes and network failures into them.

The class tree::

    AliyunSmsError                             itself: unknown codes, the library's own (below)
    ├── ConfigError (also ValueError)          raised when a config is built, never by a send
    ├── InvalidPhoneNumberError (also ValueError)
    ├── TemplateError
    │   ├── TemplateNotFoundError (also LookupError)
    │   └── TemplateParamError (also ValueError)
    ├── SignNameError
    ├── AuthenticationError
    ├── PermissionDeniedError
    ├── AccountError
    ├── RateLimitExceededError
    ├── ServiceUnavailableError
    ├── NetworkError
    └── InvalidResponseError

``ConfigError`` sits under the base class because the contract asks for one
root, but it is only raised while a config or connector is being built: code
that wraps ``send_message`` in ``except AliyunSmsError`` never meets it there.

Every error raised for a failed call carries Aliyun's ``code``, ``message``,
``request_id``, ``http_status`` and ``recommend`` (Aliyun's diagnosis URL), the
table's English ``explanation`` of the code, and ``retryable`` and ``maybe_sent``.
:func:`error_from_failure` is the single mapping point, for Aliyun's answers
and for the transport's failures alike.

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

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

__all__ = [
    "NETWORK_KINDS",
    "AccountError",
    "AliyunSmsError",
    "AuthenticationError",
    "ConfigError",
    "ConfigProblem",
    "Failure",
    "FailureKind",
    "InvalidPhoneNumberError",
    "InvalidResponseError",
    "NetworkError",
    "NetworkKind",
    "PermissionDeniedError",
    "RateLimitExceededError",
    "ServiceUnavailableError",
    "SignNameError",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateParamError",
    "error_from_failure",
]


class AliyunSmsError(Exception):
    """Base class of every error this library raises.

    Attributes:
        code: Aliyun's error code, or this library's own for local errors.
        message: A readable message; never holds a full phone number, a
            template value or a secret.
        request_id: Aliyun's request id, the key for a support ticket.
        http_status: The HTTP status of the response, when there was one.
        recommend: Aliyun's diagnosis URL, when the response gave one.
        explanation: What Aliyun's ``code`` means and what to do, in English,
            for the codes of the translation table; ``str()`` shows it
            beside Aliyun's own ``message`` (often Chinese only).
        retryable: Whether sending again is safe and may succeed.
        maybe_sent: True when the SMS may have gone out despite the error.
        attempts: How many requests were made for this send.
    """

    default_code: ClassVar[str] = "Unknown"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        recommend: str | None = None,
        explanation: str | None = None,
        retryable: bool = False,
        maybe_sent: bool = False,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.request_id = request_id
        self.http_status = http_status
        self.recommend = recommend
        self.explanation = explanation
        self.retryable = retryable
        self.maybe_sent = maybe_sent
        self.attempts = attempts

    def __str__(self) -> str:
        context = [f"code: {self.code}"]
        if self.request_id:
            context.append(f"request id: {self.request_id}")
        if self.http_status is not None:
            context.append(f"HTTP {self.http_status}")
        if self.recommend:
            context.append(f"see {self.recommend}")
        # Aliyun's own text first, as Aliyun wrote it; then what it means.
        explained = f"{self.message} [{self.explanation}]" if self.explanation else self.message
        return f"{explained} ({', '.join(context)})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"request_id={self.request_id!r}, http_status={self.http_status!r}, "
            f"retryable={self.retryable!r})"
        )


class ConfigProblem(NamedTuple):
    """One invalid field of a config: where, and what is wrong (no value)."""

    field: str
    problem: str


class ConfigError(AliyunSmsError, ValueError):
    """The configuration is invalid. ``problems`` lists every offending field."""

    default_code = "InvalidConfig"

    def __init__(self, message: str, *, problems: tuple[ConfigProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems

    @classmethod
    def from_problems(cls, problems: list[ConfigProblem]) -> ConfigError:
        """Build the error whose message names every field in ``problems``."""
        lines = [f"  {p.field or '(config)'}: {p.problem}" for p in problems]
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        message = f"invalid Aliyun SMS config, {count} {noun}:\n" + "\n".join(lines)
        return cls(message, problems=tuple(problems))

    def __str__(self) -> str:
        return self.message


class InvalidPhoneNumberError(AliyunSmsError, ValueError):
    """The recipient's number is not valid (locally or as judged by Aliyun)."""

    default_code = "InvalidPhoneNumber"


class TemplateError(AliyunSmsError):
    """The template is unknown, not approved, or its content was rejected."""

    default_code = "TemplateError"


class TemplateNotFoundError(TemplateError, LookupError):
    """No template is configured for the usage type, and no Generic one either."""

    default_code = "TemplateNotFound"


class TemplateParamError(TemplateError, ValueError):
    """The template variables are missing, malformed or not allowed."""

    default_code = "TemplateParamInvalid"


class SignNameError(AliyunSmsError):
    """The sign name (签名) is missing, not approved, or does not fit the template."""


class AuthenticationError(AliyunSmsError):
    """The AccessKey, STS token, signature or clock was rejected."""


class PermissionDeniedError(AliyunSmsError):
    """The credentials are valid but not allowed to send this message."""


class AccountError(AliyunSmsError):
    """The Aliyun account cannot send: balance, subscription or status."""


class RateLimitExceededError(AliyunSmsError):
    """Aliyun's flow control refused the message.

    Attributes:
        window: ``"minute"``, ``"hour"`` or ``"day"`` for Aliyun's per-number
            limits, else None.
        retry_after: Seconds to wait before trying again, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        window: Literal["minute", "hour", "day"] | None = None,
        retry_after: float | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.window = window
        self.retry_after = retry_after


class ServiceUnavailableError(AliyunSmsError):
    """Aliyun failed on its side (5xx or ``isp.*``); trying again may work."""


class NetworkError(AliyunSmsError):
    """Aliyun could not be reached, the connection failed mid-call, or the deadline ran out.

    Codes: ``ConnectionFailed``, ``ConnectTimeout``, ``CertificateInvalid``,
    ``PlainHttpEndpoint`` (HTTPS to a server that speaks plain HTTP, such as
    the emulator without ``protocol: http``), ``ReadTimeout``,
    ``ConnectionLost``, ``DeadlineExceeded``.
    ``maybe_sent`` is True when the request may have been sent: then the SMS
    may have gone out, and sending again could deliver two codes, so such an
    error is never retried.
    """


class InvalidResponseError(AliyunSmsError):
    """A 2xx response that is not a usable Aliyun answer (not JSON, no Code)."""

    default_code = "InvalidResponse"


NetworkKind = Literal[
    "connect",
    "connect_timeout",
    "certificate",
    "tls_plaintext",
    "read_timeout",
    "connection_lost",
    "deadline",
    "closed",
]
FailureKind = Literal[
    "response",
    "connect",
    "connect_timeout",
    "certificate",
    "tls_plaintext",
    "read_timeout",
    "connection_lost",
    "deadline",
    "closed",
    "invalid_request",
    "bad_body",
    "unexpected",
]


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in a call, described without any SDK or transport type.

    ``kind`` is ``"response"`` when Aliyun answered with a code; one of the
    network kinds of the table in this module's docstring when no complete
    answer came; ``"bad_body"`` when the body could not be read;
    ``"unexpected"`` for anything else.
    """

    kind: FailureKind
    code: str | None = None
    message: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    recommend: str | None = None
    retry_after_ms: float | None = None
    # Set by the transport for "deadline" and "closed", which can happen
    # before or after the first byte; None takes the table's value.
    maybe_sent: bool | None = None


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
# fmt: on

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
