"""The HTTP answers of the example apps: one table for FastAPI, Django and Flask.

No web framework is imported here: each app turns an :class:`Answer` (status,
JSON body, headers) into its own response type, so the three map every error
to the same status, and a change is made once.

Every error body is ``{"error": CODE, "message": TEXT}``: a fixed text per kind
of error, never Aliyun's own message (it can name Aliyun's hosts). Each error
is logged once, on the app's logger, with its code and Aliyun's request id
(never the number or the code): at ERROR for a config problem, at WARNING for
Aliyun's and the server's failures, at INFO for the client's (limits, invalid
input).

======  ====================================  =============================================
status  error                                 when
======  ====================================  =============================================
400     InvalidRequest                        a malformed body, or a client address that is
                                              not an IP address (a proxy misconfiguration)
400     UnknownUsageType                      a purpose this app does not serve
400     InvalidPhoneNumber                    the number is invalid (here or at Aliyun)
403     CountryNotAllowed,                    the policy refuses the number's country or
        NumberTypeNotAllowed                  type (premium-rate, fixed-line, ...)
429     the service's own limit code, or      every rate limit, with ``Retry-After``
        RateLimited (Aliyun's)
500     RegionNotServed                       no template serves the number's region (a
                                              plain domestic templateCode and a number
                                              outside mainland China, or the reverse):
                                              the config is ours to fix, not the user's
                                              input; retrying does not help
502     SmsFailed                             Aliyun refused for a reason that is ours to
                                              fix (template, sign name, account)
503     StoreUnavailable, CodeNotActivated,   worth retrying shortly, with ``Retry-After``
        SmsUnavailable
504     SmsUncertain                          Aliyun did not answer and the SMS may have
                                              gone out: the ``verification_id`` checks its
                                              code if it arrives
======  ====================================  =============================================

A check answers 200 approved, 401 a wrong code (with ``attempts_left``), 404
nothing to check, and 429 with ``Retry-After`` when the verification is locked.
"""

# ruff: noqa: INP001 - an example module, imported as examples._http_errors

from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import (
    AliyunSmsError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
    TemplateError,
    TemplateNotFoundError,
    UsageType,
)
from aliyun_sms_connector.verify import CheckResult, CheckStatus, VerificationPolicy

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from aliyun_sms_connector.verify import Verification

__all__ = [
    "PURPOSES",
    "Answer",
    "BadClientAddressError",
    "bad_client_address",
    "check_answer",
    "client_ip",
    "error_answer",
    "invalid_request",
    "read_body",
    "start_answer",
    "unknown_purpose",
]

#: The purposes the apps send codes for: path segment → usage type (and so
#: template). Only these are served; any other segment is a 400. What an
#: approval grants is decided per purpose, by the app's check view.
PURPOSES: Mapping[str, UsageType] = MappingProxyType(
    {
        "sign-in": UsageType.SIGN_IN,
        "register": UsageType.REGISTER,
        "forgot-password": UsageType.FORGOT_PASSWORD,
    }
)

# The service's own refusals, whose codes are safe to show the client. Anything
# else (Aliyun's codes) is shown as a generic code of its kind.
_OWN_RATE_LIMITS = frozenset(
    {
        "VerificationCooldown",
        "NumberHourlyLimit",
        "NumberDailyLimit",
        "IpHourlyLimit",
        "GlobalHourlyLimit",
        "IpFailedChecksLimit",
    }
)
_NOT_ALLOWED = frozenset({"CountryNotAllowed", "NumberTypeNotAllowed"})
_STORE_CODES = {
    "StoreUnavailable": "the service is temporarily unavailable; try again shortly",
    "CodeNotActivated": "the code could not be activated; ask for a new one",
}
_DEFAULT_RETRY_AFTER = 60
# The request bodies' fields: (shortest, longest), as the FastAPI example's models say.
_LENGTHS = {"phone": (0, 40), "code": (0, 20), "verification_id": (1, 64)}
_CHECK_STATUS = {
    CheckStatus.APPROVED: 200,
    CheckStatus.WRONG_CODE: 401,
    CheckStatus.NOT_FOUND: 404,
}


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: each app makes its own response of it."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class BadClientAddressError(Exception):
    """The client address is not an IP address (a proxy or server misconfiguration)."""


def _error(
    status: int,
    error: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Answer:
    return Answer(status, {"error": error, "message": message, **extra}, dict(headers or {}))


def start_answer(verification: Verification, purpose: str) -> Answer:
    """202 with what the client needs to check the code (never the code)."""
    return Answer(
        202,
        {
            "verification_id": verification.id,
            "purpose": purpose,
            "to": verification.masked_number,
            "expires_at": verification.expires_at.isoformat(),
            "resend_after": verification.resend_after.isoformat(),
        },
    )


def check_answer(result: CheckResult, policy: VerificationPolicy) -> Answer:
    """200, 401 or 404 by the result; 429 with ``Retry-After`` once locked."""
    body = {"status": result.status.value, "attempts_left": result.attempts_left}
    if result.status is CheckStatus.TOO_MANY_ATTEMPTS:
        # Locked until it expires: a new code may be asked for once the
        # resend cooldowns have passed.
        return Answer(429, body, {"Retry-After": _seconds(_cooldown(policy))})
    return Answer(_CHECK_STATUS[result.status], body)


def unknown_purpose() -> Answer:
    """400 naming the purposes served (never the client's text)."""
    served = ", ".join(PURPOSES)
    return _error(400, "UnknownUsageType", f"unknown purpose; this app serves: {served}")


def invalid_request(fields: Sequence[str] = ()) -> Answer:
    """400 naming the offending fields only: never their values (numbers, codes)."""
    body: dict[str, Any] = {"error": "InvalidRequest", "message": "the request is not valid"}
    if fields:
        body["fields"] = sorted(fields)
    return Answer(400, body)


def read_body(data: object, *fields: str) -> dict[str, str] | Answer:
    """The JSON body's string ``fields``, or the 400 naming those missing or malformed.

    For the frameworks that do not validate bodies themselves (Django, Flask).
    """
    if not isinstance(data, dict):
        return invalid_request([f"body.{name}" for name in fields])
    bad = [
        f"body.{name}"
        for name in fields
        if not isinstance(data.get(name), str)
        or not _LENGTHS[name][0] <= len(data[name]) <= _LENGTHS[name][1]
    ]
    if bad:
        return invalid_request(bad)
    return {name: data[name] for name in fields}


def bad_client_address(logger: logging.Logger, hint: str) -> Answer:
    """400, and a WARNING saying how to fix the server's proxy settings."""
    logger.warning("the client address is not an IP address: behind a proxy, %s", hint)
    return invalid_request()


def client_ip(
    remote_addr: str | None,
    forwarded_for: str | None = None,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
) -> str | None:
    """The client's address for the per-IP limits.

    ``remote_addr`` is the peer of the TCP connection. Only when it is one of
    the ``trusted`` proxies is ``X-Forwarded-For`` read, from its right end:
    the first address that is not a trusted proxy is the client. Everything
    left of it was written by the client itself, and would let anyone pick
    the address they are counted under.

    Raises:
        BadClientAddressError: An address that is not an IP address.
    """
    if remote_addr is None:
        return None
    peer = _ip(remote_addr)
    if not _is_trusted(peer, trusted):
        return str(peer)
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        peer = _ip(hop)
        if not _is_trusted(peer, trusted):
            break
    return str(peer)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise BadClientAddressError from None


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return any(address in network for network in trusted)


def _cooldown(policy: VerificationPolicy) -> float:
    return max(policy.resend_cooldown, policy.per_number_cooldown).total_seconds()


def _seconds(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def error_answer(
    error: AliyunSmsError,
    *,
    action: str,
    purpose: str,
    policy: VerificationPolicy,
    logger: logging.Logger,
) -> Answer:
    """The answer to a failed start or check; its code and Aliyun's request id go to the log."""
    answer = _classify(error, policy)
    if answer.body["error"] == "RegionNotServed":
        # A config problem: the message names the template and the fix, and
        # only the calling code of the number (never the number).
        logger.error(
            "sms %s failed: purpose=%s status=%d code=%s: %s",
            action,
            purpose,
            answer.status,
            error.code,
            error.message,
        )
        return answer
    # Aliyun's answer (request_id set) and the server's own failures deserve a
    # look; a client's invalid input or limit is routine.
    level = (
        logging.WARNING
        if answer.status >= 500 or error.request_id is not None  # noqa: PLR2004
        else logging.INFO
    )
    logger.log(
        level,
        "sms %s failed: purpose=%s status=%d error=%s code=%s request_id=%s",
        action,
        purpose,
        answer.status,
        type(error).__name__,
        error.code,
        error.request_id,
    )
    return answer


def _classify(error: AliyunSmsError, policy: VerificationPolicy) -> Answer:
    if isinstance(error, RateLimitExceededError):
        retry_after = error.retry_after if error.retry_after is not None else _DEFAULT_RETRY_AFTER
        code = error.code if error.code in _OWN_RATE_LIMITS else "RateLimited"
        return _error(
            429,
            code,
            "too many requests; try again later",
            headers={"Retry-After": _seconds(retry_after)},
        )
    if isinstance(error, InvalidPhoneNumberError):
        return _error(400, "InvalidPhoneNumber", "the phone number is not valid")
    if isinstance(error, PermissionDeniedError) and error.code in _NOT_ALLOWED:
        return _error(403, error.code, "codes cannot be sent to this number")
    if isinstance(error, TemplateNotFoundError) and error.code == "UnknownUsageType":
        return unknown_purpose()  # not reached: PURPOSES holds usage types only
    if isinstance(error, TemplateError) and error.code == "TemplateRegionMismatch":
        # Not the user's fault (not 4xx), not temporary (not 503): the config
        # has no template for the number's region. Nothing was sent.
        return _error(500, "RegionNotServed", "codes cannot be sent to numbers in this region")
    if error.code in _STORE_CODES:
        return _error(503, error.code, _STORE_CODES[error.code], headers={"Retry-After": "1"})
    if error.retryable:
        return _error(
            503,
            "SmsUnavailable",
            "the code could not be sent; try again shortly",
            headers={"Retry-After": "1"},
        )
    if error.maybe_sent:
        # The SMS may arrive: start's error carries the verification its code
        # belongs to, so the client can still check it, or ask again after
        # the cooldown.
        verification = getattr(error, "verification", None)
        extra = {} if verification is None else {"verification_id": verification.id}
        return _error(
            504,
            "SmsUncertain",
            "the code may or may not arrive; check it if it does, or ask for a new one",
            headers={"Retry-After": _seconds(_cooldown(policy))},
            **extra,
        )
    # Everything else (a template, sign name or account problem) is ours to fix.
    return _error(502, "SmsFailed", "the code could not be sent")
