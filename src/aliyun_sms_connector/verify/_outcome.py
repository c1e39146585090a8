"""What the service logs: one INFO line per start or check, with the number masked."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import AliyunSmsError

from ._usage import usage_label

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._results import CheckResult

__all__ = ["Outcome", "log_check", "logger"]

logger = logging.getLogger("aliyun_sms_connector.verify")

# What parse_phone reads at most; a longer `to` was refused without being read.
_MAX_INPUT = 64


def log_check(
    to: object,
    usage_type: object,
    *,
    result: CheckResult | None = None,
    error: BaseException | None = None,
) -> None:
    """The one INFO line of a check: outcome, masked number, attempts left."""
    if not logger.isEnabledFor(logging.INFO):
        return
    outcome = Outcome("check", to, usage_type)
    if result is not None:
        outcome.checked(result)
    outcome.__exit__(None, error, None)


class Outcome:
    """Logs exactly one INFO line per start or check: outcome and masked number."""

    def __init__(self, action: str, to: object, usage_type: object) -> None:
        self.action = action
        self.to = to
        self.usage_type = usage_type
        self.plan: Any = None
        self.result = "error"
        self.attempts_left: int | None = None

    def checked(self, result: CheckResult) -> CheckResult:
        self.result = result.status.value
        self.attempts_left = result.attempts_left
        return result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        if isinstance(exc, AliyunSmsError):
            self.result = exc.code
        elif exc is not None:
            self.result = type(exc).__name__
        extra = "" if self.attempts_left is None else f" attempts_left={self.attempts_left}"
        verification = ""
        if self.plan is not None and self.action == "start":
            verification = f" id={self.plan.reservation.verification_id}"
        logger.info(
            "verification %s: outcome=%s to=%s usage_type=%s%s%s",
            self.action,
            self.result,
            _mask(self.to),
            usage_label(self.usage_type),
            verification,
            extra,
        )


def _mask(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_INPUT:
        return "***"  # refused input: not even read
    digits = "".join(ch for ch in value if ch.isdigit())
    return "***" + digits[-4:] if len(digits) > 4 else "***"  # noqa: PLR2004
