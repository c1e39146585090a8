"""Deliberately broken stores, used by the tests alone, to prove that the suite has teeth.

:class:`BrokenStore` wraps a working :class:`RedisStore` and adds one flaw,
each a mistake a well-meaning developer could make when "handling" a store
outage:

- ``sends_unstored_codes``: a reservation (or a commit) that failed is
  treated as granted, so the SMS goes out with a code the store never saw;
- ``wrong_code_on_error``: a check the store could not confirm is answered
  ``WRONG_CODE``, which tells an attacker the guess was evaluated;
- ``approves_on_error``: a check that failed is approved ("don't lock users
  out during an outage");
- ``retries_check``: a failed check is sent again, so a guess that Redis did
  record (its reply was lost) is counted twice, or a used code gives an answer;
- ``forgets_recorded_guess``: after a failed check the attempt is refunded,
  so a guess Redis recorded is not counted.

The fault, failover and chaos tests run against these and must fail.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import CheckStatus, RedisStore, VerificationStore
from aliyun_sms_connector.verify._keys import number_keys

if TYPE_CHECKING:
    from aliyun_sms_connector.verify._store import (
        Guess,
        Refusal,
        Reservation,
        SharedReservation,
    )

Flaw = Literal[
    "sends_unstored_codes",
    "wrong_code_on_error",
    "approves_on_error",
    "retries_check",
    "forgets_recorded_guess",
]
FLAWS: tuple[Flaw, ...] = (
    "sends_unstored_codes",
    "wrong_code_on_error",
    "approves_on_error",
    "retries_check",
    "forgets_recorded_guess",
)

# The refund a "forgets_recorded_guess" store sends: undo one counted attempt.
_REFUND = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'a', -1) end"


class BrokenStore(VerificationStore):
    """A :class:`RedisStore` with one deliberate ``flaw`` (see the module docstring)."""

    shared = True

    def __init__(self, inner: RedisStore, flaw: Flaw) -> None:
        assert flaw in FLAWS, flaw
        self.inner = inner
        self.flaw = flaw

    def __repr__(self) -> str:
        return f"BrokenStore({self.flaw})"

    # -- reservations ------------------------------------------------------------

    def reserve(self, reservation: Reservation) -> Refusal | None:
        try:
            return self.inner.reserve(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise

    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        try:
            return await self.inner.reserve_async(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise

    def reserve_shared(self, reservation: SharedReservation) -> Refusal | None:
        try:
            return self.inner.reserve_shared(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise

    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        try:
            return await self.inner.reserve_shared_async(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise

    def commit(self, reservation: Reservation) -> bool:
        try:
            return self.inner.commit(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return True
            raise

    async def commit_async(self, reservation: Reservation) -> bool:
        try:
            return await self.inner.commit_async(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return True
            raise

    def release(self, reservation: Reservation) -> None:
        self.inner.release(reservation)

    async def release_async(self, reservation: Reservation) -> None:
        await self.inner.release_async(reservation)

    def release_shared(self, reservation: SharedReservation) -> None:
        self.inner.release_shared(reservation)

    async def release_shared_async(self, reservation: SharedReservation) -> None:
        await self.inner.release_shared_async(reservation)

    # -- checks ------------------------------------------------------------------

    def check(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        try:
            return self.inner.check(guess)
        except ServiceUnavailableError:
            if self.flaw == "retries_check":
                return self.inner.check(guess)
            if self.flaw == "forgets_recorded_guess":
                self._refund(guess)
            return self._on_error(guess)

    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        try:
            return await self.inner.check_async(guess)
        except ServiceUnavailableError:
            if self.flaw == "retries_check":
                return await self.inner.check_async(guess)
            if self.flaw == "forgets_recorded_guess":
                await self._refund_async(guess)
            return self._on_error(guess)

    def _on_error(self, guess: Guess) -> tuple[CheckStatus, int]:
        if self.flaw == "wrong_code_on_error":
            return CheckStatus.WRONG_CODE, guess.max_attempts - 1
        if self.flaw == "approves_on_error":
            return CheckStatus.APPROVED, guess.max_attempts
        raise ServiceUnavailableError(
            "the verification store is unavailable", code="StoreUnavailable", retryable=True
        )

    def _record_key(self, guess: Guess) -> str:
        return number_keys(self.inner._prefix, guess.number, guess.usage_type).record

    def _refund(self, guess: Guess) -> None:
        # A refund that fails is simply not made.
        with contextlib.suppress(Exception):
            self.inner._sync.eval(_REFUND, 1, self._record_key(guess))

    async def _refund_async(self, guess: Guess) -> None:
        with contextlib.suppress(Exception):
            await self.inner._async_client().eval(_REFUND, 1, self._record_key(guess))

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()
