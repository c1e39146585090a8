"""Typed errors: the class tree, and ``Failure``, a call's failure described without SDK types.

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

The table that turns Aliyun's codes and the transport's failures into these
classes is in ``_errors.translate``, the single mapping point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NamedTuple

__all__ = [
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

    def __init__(
        self,
        message: str,
        *,
        problems: tuple[ConfigProblem, ...] = (),
        subject: str = "Aliyun SMS config",
    ) -> None:
        super().__init__(message)
        self.problems = problems
        self.subject = subject

    @classmethod
    def from_problems(
        cls, problems: list[ConfigProblem], subject: str = "Aliyun SMS config"
    ) -> ConfigError:
        """Build the error whose message names every field in ``problems``.

        ``subject`` names what is invalid: ``"Aliyun SMS config"``, or the
        Message Authentication Service's config, a verification policy...
        """
        lines = [f"  {p.field or '(config)'}: {p.problem}" for p in problems]
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        message = f"invalid {subject}, {count} {noun}:\n" + "\n".join(lines)
        return cls(message, problems=tuple(problems), subject=subject)

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
