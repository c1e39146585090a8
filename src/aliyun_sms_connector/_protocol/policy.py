"""The retry policy: which errors are tried again, after how long, and never past the deadline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aliyun_sms_connector._errors import AliyunSmsError

__all__ = ["MIN_ATTEMPT", "RetryPolicy"]

# An attempt squeezed into the deadline's last milliseconds would only end in
# a timeout, hiding the real cause; a retry needs at least this much time.
MIN_ATTEMPT = 0.1


class RetryPolicy:
    """Full-jitter exponential backoff within ``max_attempts`` and the deadline.

    Args:
        max_attempts: Requests per send, the first one included.
        base_ms, cap_ms: The backoff: a random wait between 0 and
            ``min(cap, base * 2 ** (attempt - 1))`` milliseconds.
    """

    __slots__ = ("_base", "_cap", "max_attempts")

    def __init__(self, *, max_attempts: int, base_ms: int, cap_ms: int) -> None:
        self.max_attempts = max_attempts
        self._base = base_ms / 1000
        self._cap = cap_ms / 1000

    def backoff(self, error: AliyunSmsError, attempt: int) -> float:
        """The wait after attempt ``attempt`` failed: x-acs-retry-after, or jitter."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            return float(retry_after)
        import random  # noqa: PLC0415 - only retries need it

        ceiling = min(self._cap, self._base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    def wait(
        self, error: AliyunSmsError, attempt: int, *, now: float, deadline: float
    ) -> float | None:
        """How long to wait before the next attempt, or None to stop with ``error``.

        Only ``retryable`` errors are tried again, and never one that may have
        been sent: Aliyun may already have delivered the SMS. A retry must
        still have :data:`MIN_ATTEMPT` seconds before ``deadline`` after its
        wait (``now`` and ``deadline`` are ``time.monotonic()`` values).
        """
        if not error.retryable or error.maybe_sent or attempt >= self.max_attempts:
            return None
        wait = self.backoff(error, attempt)
        if now + wait + MIN_ATTEMPT > deadline:
            return None
        return wait
