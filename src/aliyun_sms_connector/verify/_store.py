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

from aliyun_sms_connector import ServiceUnavailableError

if TYPE_CHECKING:
    from ._guard import PumpApproval, PumpStart
    from ._results import CheckStatus

__all__ = [
    "ALIYUN_HOLDS",
    "IP_FAILED_CHECKS",
    "Counted",
    "Guess",
    "Refusal",
    "Reservation",
    "SharedReservation",
    "VerificationStore",
    "store_unavailable",
]

STORE_UNAVAILABLE = "StoreUnavailable"
#: The refusal of a check from a client IP past ``per_ip_failed_checks_hourly``.
IP_FAILED_CHECKS = "IpFailedChecksLimit"


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
    """A new code for (number, usage type), reserved until its SMS is handed over.

    Attributes:
        number: The HMAC id of the number (the keys' hash tag).
        usage_type: The usage type's value.
        verification_id: A random id; committing and releasing need it.
        digest: The HMAC of the code.
        now_ms: The service's "now".
        expires_ms: When the code stops being accepted.
        usage_cooldown_ms: Cooldown of (number, usage type); 0 for none.
        number_cooldown_ms: Cooldown of the number; 0 for none.
        hourly: Cap on the number's sends per sliding hour; 0 for none.
        daily: Cap on the number's sends per sliding day; 0 for none.
        pump: The pumping guard's judgement and count of this start, when the
            start has no shared reservation to carry it (see
            :class:`SharedReservation`); releasing the reservation un-counts it.
        siblings: Aliyun-made codes only: the other usage types that share
            this one's ``SchemeName``. Aliyun keeps one code per number and
            scheme, so once this code is sent theirs is dead at Aliyun, and
            ``commit`` drops their pending verifications of this number (those
            whose code Aliyun holds): a code sent for one usage type never
            approves another's verification.
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
    pump: PumpStart | None = None
    siblings: tuple[str, ...] = ()


class SharedReservation(NamedTuple):
    """Count one send against the per-IP and global limits, if they allow it.

    Attributes:
        ip: The HMAC id of the client IP, or None.
        verification_id: The send's id, so that it can be released.
        now_ms: The service's "now".
        ip_hourly: Cap per IP per sliding hour; 0 for none.
        global_hourly: Cap for everyone per sliding hour; 0 for none.
        pump: The pumping guard's judgement and count of this start, or None.
            A blocked prefix refuses with ``PumpingSuspected`` before the
            other limits count anything; a start that only tripped a
            monitoring guard is counted and answered with a ``Refusal`` of
            code ``PumpingMonitored``, which refuses nothing.
    """

    ip: str | None
    verification_id: str
    now_ms: int
    ip_hourly: int
    global_hourly: int
    pump: PumpStart | None = None


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
        max_attempts: Wrong guesses allowed per verification.
        failed_hourly: Wrong guesses allowed per (number, usage type) in any
            sliding hour, whatever verification they were made against; 0 for
            no cap.
        verification_id: When set, only the pending verification with this id
            is checked; any other answers ``NOT_FOUND`` and counts nothing.
        ip: The HMAC id of the client IP, or None.
        ip_failed_hourly: Wrong guesses allowed per IP in any sliding hour;
            0 for no cap.
        pump: Where the pumping guard counts the guess if it is approved, or
            None. A store that cannot count it logs a WARNING and still
            answers the check.
    """

    number: str
    usage_type: str
    digest: str
    now_ms: int
    max_attempts: int
    failed_hourly: int = 0
    verification_id: str | None = None
    ip: str | None = None
    ip_failed_hourly: int = 0
    pump: PumpApproval | None = None


class VerificationStore(abc.ABC):
    """Where pending codes and counters live. Subclass to add a store.

    A start runs ``reserve_shared`` (per-IP and global limits), then
    ``reserve`` (the number's limits, and the new code, held apart), then
    sends the SMS, then ``commit`` (the new code becomes the pending one) or,
    when the SMS surely never left, ``release`` and ``release_shared``. Until
    ``commit``, checks are judged against, and counted on, the code that was
    pending before; a released reservation leaves that code, its attempts and
    its cooldowns exactly as they were.

    Each method is atomic. ``reserve`` and ``reserve_shared`` answer None when
    they stored the reservation, else the :class:`Refusal` with the longest
    wait. ``check`` counts a guess before it judges it, in the same atomic
    step, and answers (status, attempts left), or the :class:`Refusal` of the
    per-IP guess limit. Releasing something that is not there is a no-op.
    Replaying a reservation with the same id is a no-op too, so a retried call
    never counts twice.

    The pumping guard rides on these steps: ``reserve_shared`` or ``reserve``
    judge and count its ``pump`` first (see :mod:`._guard`), their releases
    un-count it, and ``check`` counts an approval when its guess carries one.
    A store that ignores ``pump`` keeps no guard.
    """

    #: True when several processes share the store; the service then requires
    #: an explicit ``secret_key``.
    shared: bool = False

    @abc.abstractmethod
    def reserve(self, reservation: Reservation) -> Refusal | None:
        """Check the number's limits; if all allow, hold the new code and count the send."""

    @abc.abstractmethod
    def reserve_shared(self, reservation: SharedReservation) -> Refusal | None:
        """Check the per-IP and global limits; if both allow, count the send."""

    @abc.abstractmethod
    def commit(self, reservation: Reservation) -> bool:
        """Make the reserved code the pending one, now that its SMS was handed over.

        Answers False when there is nothing to commit: a later reservation
        replaced this one, or it expired. Its code is then never approvable.
        """

    @abc.abstractmethod
    def release(self, reservation: Reservation) -> None:
        """Undo a reservation whose SMS surely never left: its code, cooldowns and count.

        The pending code, its attempts and the guesses counted stay as they are.
        """

    @abc.abstractmethod
    def release_shared(self, reservation: SharedReservation) -> None:
        """Undo a shared reservation: its per-IP and global counts."""

    @abc.abstractmethod
    def check(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        """Count the guess, then approve (and delete) or say why not."""

    @abc.abstractmethod
    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        """The async twin of :meth:`reserve`."""

    @abc.abstractmethod
    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        """The async twin of :meth:`reserve_shared`."""

    @abc.abstractmethod
    async def commit_async(self, reservation: Reservation) -> bool:
        """The async twin of :meth:`commit`."""

    @abc.abstractmethod
    async def release_async(self, reservation: Reservation) -> None:
        """The async twin of :meth:`release`."""

    @abc.abstractmethod
    async def release_shared_async(self, reservation: SharedReservation) -> None:
        """The async twin of :meth:`release_shared`."""

    @abc.abstractmethod
    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        """The async twin of :meth:`check`."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release the store's resources (connections it created)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """The async twin of :meth:`close`."""

    # -- Aliyun-made codes: optional, MemoryStore and RedisStore have them --------

    def count(self, guess: Guess) -> Counted | Refusal:
        """Count a guess on a verification whose code Aliyun holds, without judging it.

        Every limit :meth:`check` applies holds: the verification id, the
        attempts, the number's and the client IP's wrong guesses (the guess
        is counted among them until :meth:`approve` approves it). Nothing is
        counted, and ``NOT_FOUND`` answered, when the pending verification
        holds a code of its own (a local one).
        """
        raise NotImplementedError(_NO_ALIYUN_CODES)

    def approve(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """Approve, once, the verification a guess Aliyun passed was counted on.

        Answers ``(APPROVED, attempts left)`` and deletes the verification
        when it is still the pending one, not expired at ``guess.now_ms``;
        the guess then leaves the counts of wrong guesses. Else
        ``(NOT_FOUND, 0)``, and the guess stays counted.
        """
        raise NotImplementedError(_NO_ALIYUN_CODES)

    async def count_async(self, guess: Guess) -> Counted | Refusal:
        """The async twin of :meth:`count`."""
        raise NotImplementedError(_NO_ALIYUN_CODES)

    async def approve_async(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """The async twin of :meth:`approve`."""
        raise NotImplementedError(_NO_ALIYUN_CODES)


# -- Aliyun-made codes (codes="aliyun") ------------------------------------------

#: What a verification whose code Aliyun made and holds keeps in place of a
#: digest. No HMAC's hex spelling equals it, so the local comparison never
#: approves such a verification; and :meth:`VerificationStore.approve`
#: approves nothing else, so Aliyun's answer never approves a local code.
ALIYUN_HOLDS = "@aliyun"
_NO_ALIYUN_CODES = "this store does not keep verifications of Aliyun-made codes"


class Counted(NamedTuple):
    """What :meth:`VerificationStore.count` answers: a guess counted, not judged.

    Attributes:
        status: ``WRONG_CODE`` when the guess was counted on a pending
            verification whose code Aliyun holds: it stands as a wrong guess
            unless Aliyun passes it and :meth:`VerificationStore.approve`
            approves it. ``NOT_FOUND`` or ``TOO_MANY_ATTEMPTS`` when nothing
            was counted and Aliyun must not be asked.
        attempts_left: What ``WRONG_CODE`` answers; 0 otherwise.
        verification_id: The verification the guess was counted on ("" when
            none).
        attempt: The guess's number on that verification (0 when none).
        place: What the store holds for this guess in the client IP's count
            of wrong guesses, given back on approval ("" for nothing).
    """

    status: CheckStatus
    attempts_left: int
    verification_id: str = ""
    attempt: int = 0
    place: str = ""
