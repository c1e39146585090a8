"""What the service tells: one INFO line and one event per start or check, number masked.

The events (see _events.py) are derived here from the same outcome as the log
line, so that the service calls neither one by one.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

from aliyun_sms_connector import AliyunSmsError, ServiceUnavailableError, parse_phone

from ._guard import PUMPING_BLOCKED, PUMPING_MONITORED, PUMPING_SUSPECTED
from ._guard import region_of as region
from ._results import CheckStatus
from ._usage import usage_label

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._events import EventKind, EventSink
    from ._results import CheckResult, Verification
    from ._store import Refusal

__all__ = ["Outcome", "after_commit", "bare", "log_check", "logger"]

logger = logging.getLogger("aliyun_sms_connector.verify")

# A masked number shows its last 4 digits; the pumping WARNING's prefix leaves at
# least this many more unknown between them.
_MASK_SHOWS = 4
_HIDDEN = 2
# What parse_phone reads at most; a longer `to` was refused without being read.
_MAX_INPUT = 64
# The service's own refusals of a start: nothing was sent. Any other error of
# a start came from the send.
_REFUSALS = frozenset(
    {
        "CountryNotAllowed",
        "NumberTypeNotAllowed",
        "VerificationCooldown",
        "NumberHourlyLimit",
        "NumberDailyLimit",
        "IpHourlyLimit",
        "GlobalHourlyLimit",
        "StoreUnavailable",
        "InvalidPhoneNumber",
        "UnknownUsageType",
    }
)
_CHECKED: dict[CheckStatus, EventKind] = {
    CheckStatus.APPROVED: "approved",
    CheckStatus.WRONG_CODE: "wrong_code",
    CheckStatus.TOO_MANY_ATTEMPTS: "locked",
    CheckStatus.NOT_FOUND: "not_found",
}


def log_check(
    to: object,
    usage_type: object,
    *,
    result: CheckResult | None = None,
    error: BaseException | None = None,
    events: EventSink | None = None,
) -> None:
    """The one INFO line and the event of a check: outcome, masked number, attempts left."""
    if not logger.isEnabledFor(logging.INFO) and (events is None or not events.active):
        return
    outcome = Outcome("check", to, usage_type, events)
    if result is not None:
        outcome.checked(result)
    outcome.__exit__(None, error, None)


class Outcome:
    """Logs exactly one INFO line per start or check: outcome and masked number."""

    def __init__(
        self, action: str, to: object, usage_type: object, events: EventSink | None = None
    ) -> None:
        self.action = action
        self.to = to
        self.usage_type = usage_type
        self.events = events
        self.plan: Any = None
        self.result = "error"
        self.attempts_left: int | None = None
        self.status: CheckStatus | None = None
        self.suspected = False

    def checked(self, result: CheckResult) -> CheckResult:
        self.result = result.status.value
        self.status = result.status
        self.attempts_left = result.attempts_left
        return result

    def shared(self, refusal: Refusal | None) -> Refusal | None:
        """A reserve step's answer, less a monitored trip of the guard (reported, not raised)."""
        if refusal is None or refusal.code not in {PUMPING_MONITORED, PUMPING_BLOCKED}:
            return refusal  # a block already in force was logged when it began
        shared = self.plan.shared
        pump = shared.pump if shared is not None else self.plan.reservation.pump
        e164 = self.plan.phone.e164
        logger.warning(
            "SMS pumping suspected: codes to +%s… (%s) convert below the guard's minimum; %s",
            _shown_prefix(e164, pump.prefix_digits),
            region(e164) or "?",
            "starts are refused for a while" if pump.enforce else "reported only (monitor)",
        )
        if refusal.code == PUMPING_BLOCKED:
            return refusal
        self.suspected = True
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        # No event for a cancellation or an interrupt: nothing came out.
        if (
            self.events is not None
            and self.events.active
            and (exc is None or isinstance(exc, Exception))
        ):
            self._emit(exc)
        if not logger.isEnabledFor(logging.INFO):
            return
        if isinstance(exc, AliyunSmsError):
            self.result = exc.code
        elif exc is not None:
            self.result = type(exc).__name__
        extra = "" if self.attempts_left is None else f" attempts_left={self.attempts_left}"
        # No verification id: with require_verification_id it is what keeps a
        # stranger from spending the owner's attempts, and logs are read widely.
        logger.info(
            "verification %s: outcome=%s to=%s usage_type=%s%s",
            self.action,
            self.result,
            _mask(self.to),
            usage_label(self.usage_type),
            extra,
        )

    def _emit(self, error: Exception | None) -> None:
        events = self.events
        assert events is not None  # noqa: S101 - checked by the caller
        phone = self.plan.phone if self.plan is not None else _phone(self.to)
        place = region(phone.e164) if phone is not None else None
        masked = phone.masked if phone is not None else _mask(self.to)
        usage: str | None = usage_label(self.usage_type)
        usage = None if usage == "?" else usage
        if self.suspected:
            events.emit("pumping_suspected", usage, place, masked, blocked=False)
        code = error.code if isinstance(error, AliyunSmsError) else None
        if error is not None and code is None:
            code = type(error).__name__
        kind: EventKind
        if error is None and self.action == "start":
            kind = "started"
        elif error is None:
            kind = _CHECKED[self.status or CheckStatus.NOT_FOUND]
        elif code == PUMPING_SUSPECTED:
            events.emit("pumping_suspected", usage, place, masked, code=code, blocked=True)
            return
        elif self.action == "check" or code in _REFUSALS or not isinstance(error, AliyunSmsError):
            kind = "refused"
        else:
            kind = "send_failed"
        left = self.attempts_left if kind in {"approved", "wrong_code", "locked"} else None
        events.emit(kind, usage, place, masked, code=code, attempts_left=left)


def _phone(to: object) -> Any:
    if not isinstance(to, str) or len(to) > _MAX_INPUT:
        return None
    try:
        return parse_phone(to)
    except (AliyunSmsError, ValueError):
        return None


def _shown_prefix(e164: str, prefix_digits: int) -> str:
    """The prefix's digits a log may show, at most ``prefix_digits`` of them.

    Never so many that, with a masked number's last 4, fewer than ``_HIDDEN``
    digits stay unknown: a long ``prefix_digits``, or the default 6 on an
    8-digit national number, would otherwise spell the number out.
    """
    digits = e164[1:]
    return digits[: max(min(prefix_digits, len(digits) - _MASK_SHOWS - _HIDDEN), 1)]


def _mask(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_INPUT:
        return "***"  # refused input: not even read
    digits = "".join(ch for ch in value if ch.isdigit())
    return "***" + digits[-4:] if len(digits) > 4 else "***"  # noqa: PLR2004


def after_commit(
    committed: bool | None, failure: AliyunSmsError | None, verification: Verification
) -> Verification:
    """What a start answers once its SMS was handed over: the verification, or an error.

    A send that may have gone out (``maybe_sent``) raises its error with the
    verification its code belongs to as ``error.verification``, so that the
    caller can still hand out the id a check needs.
    """
    if committed is None:
        # The SMS went out, but the store did not confirm its code became the
        # pending one: fail closed (not approvable, unless the commit ran and
        # only its answer was lost), and say so.
        logger.warning("verification commit failed: the code sent may not be checkable")
        error = ServiceUnavailableError(
            "the code was sent but the verification store could not activate it; "
            "ask for a new code",
            code="CodeNotActivated",
            retryable=True,
            maybe_sent=True,
        )
        raise error
    if not committed:
        # A later start replaced this reservation before its SMS was handed
        # over (cooldowns off): the later code is the one that counts.
        logger.info("verification commit: a later start replaced this code")
    if failure is not None:
        failure.verification = verification  # type: ignore[attr-defined]
        raise failure.with_traceback(None)
    return verification


def bare(error: AliyunSmsError) -> NoReturn:
    """Raise a start's or a check's error again, without the frames below the caller's.

    Their locals hold the caller's number and IP, and ids (the verification an
    Aliyun-mode check counted on), which an error tracker that renders
    locals would show.
    """
    raise error.with_traceback(None)
