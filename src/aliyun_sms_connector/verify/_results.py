"""What ``start`` and ``check`` return."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from aliyun_sms_connector import SendResult, UsageType

__all__ = ["CheckResult", "CheckStatus", "Verification"]


class CheckStatus(str, Enum):
    """The outcome of a check."""

    APPROVED = "approved"
    """The code was right; the verification is used up."""
    WRONG_CODE = "wrong_code"
    """The code was wrong; ``attempts_left`` more may be tried."""
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    """The verification is locked after ``max_attempts`` wrong codes."""
    NOT_FOUND = "not_found"
    """Nothing to check: never sent, expired, already used, or replaced."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CheckResult:
    """The answer to a check.

    Attributes:
        status: What happened.
        attempts_left: Wrong codes that may still be tried (0 unless the
            verification is pending).
    """

    status: CheckStatus
    attempts_left: int

    @property
    def ok(self) -> bool:
        """True only when the code was approved."""
        return self.status is CheckStatus.APPROVED


@dataclass(frozen=True)
class Verification:
    """A code that was stored and sent.

    Attributes:
        id: A random id of this verification (for logs and support).
        masked_number: The recipient with all but the last 4 digits hidden.
        usage_type: What the code is for.
        expires_at: When the code stops being accepted (aware).
        resend_after: When the next code may be asked for (aware).
        send_result: What Aliyun accepted; None for a test number.
    """

    id: str
    masked_number: str
    usage_type: UsageType
    expires_at: datetime
    resend_after: datetime
    send_result: SendResult | None
