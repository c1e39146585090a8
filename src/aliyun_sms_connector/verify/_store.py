"""The store protocol: what the service asks of a store, in hashed terms only.

A store sees digests and HMAC-derived ids, never a number, an IP or a code.
Every operation that reads and updates is atomic in the store. All times are
milliseconds on the service's clock, passed in by the service, so that tests
move time instead of sleeping and every instance agrees on "now".

A store that cannot do what it is asked raises :func:`store_unavailable`'s
error, never its driver's exception.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, NamedTuple

from aliyun_sms_connector._errors import ServiceUnavailableError

if TYPE_CHECKING:
    from ._results import CheckStatus

__all__ = [
    "Guess",
    "Refusal",
    "Reservation",
    "SharedReservation",
    "VerificationStore",
    "store_unavailable",
]

STORE_UNAVAILABLE = "StoreUnavailable"


def store_unavailable() -> ServiceUnavailableError:
    """The one error a store raises when it failed or cannot tell what happened.

    Raise it outside any ``except`` block, so that no driver exception is
    reachable from it (not even as ``__context__``).
    """
    return ServiceUnavailableError(
        "the verification store is unavailable; nothing was approved",
        code=STORE_UNAVAILABLE,
        retryable=True,
    )


class Reservation(NamedTuple):
    """Store a new pending code for (number, usage type), if no limit refuses.

    Attributes:
        number: The HMAC id of the number (the keys' hash tag).
        usage_type: The usage type's value.
        verification_id: A random id; releasing needs it.
        digest: The HMAC of the code.
        now_ms: The service's "now".
        expires_ms: When the code stops being accepted.
        usage_cooldown_ms: Cooldown of (number, usage type); 0 for none.
        number_cooldown_ms: Cooldown of the number; 0 for none.
        hourly: Cap on the number's sends per sliding hour; 0 for none.
        daily: Cap on the number's sends per sliding day; 0 for none.
    """

    number: str
    usage_type: str
    verification_id: str
    digest: str
    now_ms: int
    expires_ms: int
    usage_cooldown_ms: int
    number_cooldown_ms: int
    hourly: int
    daily: int


class SharedReservation(NamedTuple):
    """Count one send against the per-IP and global limits, if they allow it.

    Attributes:
        ip: The HMAC id of the client IP, or None.
        verification_id: The send's id, so that it can be released.
        now_ms: The service's "now".
        ip_hourly: Cap per IP per sliding hour; 0 for none.
        global_hourly: Cap for everyone per sliding hour; 0 for none.
    """

    ip: str | None
    verification_id: str
    now_ms: int
    ip_hourly: int
    global_hourly: int


class Refusal(NamedTuple):
    """A limit refused: its error code, and exactly how long until it allows."""

    code: str
    retry_after_ms: int


class Guess(NamedTuple):
    """Check a code's digest against the pending one, atomically.

    Attributes:
        number: The HMAC id of the number.
        usage_type: The usage type's value.
        digest: The HMAC of the guessed code.
        now_ms: The service's "now".
        max_attempts: Wrong guesses allowed.
    """

    number: str
    usage_type: str
    digest: str
    now_ms: int
    max_attempts: int


class VerificationStore(abc.ABC):
    """Where pending codes and send counters live. Subclass to add a store.

    Each method is atomic. ``reserve`` and ``reserve_shared`` answer None when
    they stored the reservation, else the :class:`Refusal` with the longest
    wait. ``check`` answers (status, attempts left). Releasing something that
    is not there is a no-op. Replaying a reservation with the same id is a
    no-op too, so a retried call never counts twice.
    """

    #: True when several processes share the store; the service then requires
    #: an explicit ``secret_key``.
    shared: bool = False

    @abc.abstractmethod
    def reserve(self, reservation: Reservation) -> Refusal | None:
        """Check the number's limits; if all allow, store the code and count the send."""

    @abc.abstractmethod
    def reserve_shared(self, reservation: SharedReservation) -> Refusal | None:
        """Check the per-IP and global limits; if both allow, count the send."""

    @abc.abstractmethod
    def release(self, reservation: Reservation, shared: SharedReservation | None) -> None:
        """Undo a reservation whose SMS surely never left: cooldowns and counts.

        The code it replaced, if still valid, becomes the pending one again,
        with its attempts: a start that sent nothing takes nothing away.
        """

    @abc.abstractmethod
    def check(self, guess: Guess) -> tuple[CheckStatus, int]:
        """Approve (and delete), count a wrong guess, or say why not."""

    @abc.abstractmethod
    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        """The async twin of :meth:`reserve`."""

    @abc.abstractmethod
    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        """The async twin of :meth:`reserve_shared`."""

    @abc.abstractmethod
    async def release_async(
        self, reservation: Reservation, shared: SharedReservation | None
    ) -> None:
        """The async twin of :meth:`release`."""

    @abc.abstractmethod
    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int]:
        """The async twin of :meth:`check`."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release the store's resources (connections it created)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """The async twin of :meth:`close`."""
