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
  so a guess Redis recorded is not counted;
- ``reopens_window``: the design that issue 18 replaced. A reservation makes the
  new code the pending one at once ("so that a user who types it before the
  SMS lands is not refused"), keeping the replaced code aside, and a release
  puts the replaced code back, attempts and all. Guesses made while a
  re-start's SMS is on its way count on a code that is then thrown away: a
  refused re-start gives free guesses;
- ``judges_uncounted``: a check compares the guess first and counts it only
  when it is wrong (the order of the old script). Under ``maxmemory`` with
  ``noeviction`` the count is refused, but a right code is approved by then.

The fault, failover and chaos tests run against these and must fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Literal

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import CheckStatus, RedisStore, VerificationStore
from aliyun_sms_connector.verify._keys import number_keys, record_key
from aliyun_sms_connector.verify._scripts import checked

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
    "reopens_window",
    "judges_uncounted",
]
FLAWS: tuple[Flaw, ...] = (
    "sends_unstored_codes",
    "wrong_code_on_error",
    "approves_on_error",
    "retries_check",
    "forgets_recorded_guess",
    "reopens_window",
    "judges_uncounted",
)

# The refund a "forgets_recorded_guess" store sends: undo one counted attempt.
_REFUND = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'a', -1) end"

# "reopens_window", once the real reserve held the new code (ri/rd/rx): make it
# the pending one at once, the replaced one kept aside (pi/pd/pa/px).
# KEYS: the record. ARGV: the verification id, now.
_PROMOTE = """
local h = redis.call('HMGET', KEYS[1], 'ri', 'rd', 'rx', 'i', 'd', 'a', 'x')
if h[1] ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'ri', 'rd', 'rx', 'pi', 'pd', 'pa', 'px')
if h[4] and tonumber(h[7]) > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'pi', h[4], 'pd', h[5], 'pa', h[6], 'px', h[7])
end
redis.call('HSET', KEYS[1], 'i', ARGV[1], 'd', h[2], 'a', 0, 'x', h[3])
return 1
"""

# "reopens_window", on a release: the unsent code goes, the replaced one comes
# back with the attempts it had. KEYS: the record. ARGV: the verification id, now.
_PUT_BACK = """
local h = redis.call('HMGET', KEYS[1], 'i', 'pi', 'pd', 'pa', 'px')
if h[1] ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x', 'pi', 'pd', 'pa', 'px')
if h[2] and tonumber(h[5]) > tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'i', h[2], 'd', h[3], 'a', h[4], 'x', h[5])
end
return 1
"""

# "judges_uncounted": the check compares first and counts only a wrong guess.
# Same keys, arguments and reply as the real CHECK (the number's cap of wrong
# guesses an hour is left out).
_CHECK_THEN_COUNT = """
local now = tonumber(ARGV[1])
local max = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'i', 'd', 'a', 'x')
if not h[2] then return 0 end
if tonumber(h[4]) <= now then
  redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x')
  return 0
end
if ARGV[5] ~= '' and ARGV[5] ~= h[1] then return 0 end
local a = tonumber(h[3])
if a >= max then return 1 end
if h[2] == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'i', 'd', 'a', 'x')
  return (max - a) * 4 + 2
end
a = redis.call('HINCRBY', KEYS[1], 'a', 1)
return (max - a) * 4 + 3
"""


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
            refusal = self.inner.reserve(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise
        if refusal is None and self.flaw == "reopens_window":
            self._eval(_PROMOTE, reservation)
        return refusal

    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        try:
            refusal = await self.inner.reserve_async(reservation)
        except ServiceUnavailableError:
            if self.flaw == "sends_unstored_codes":
                return None
            raise
        if refusal is None and self.flaw == "reopens_window":
            await self._eval_async(_PROMOTE, reservation)
        return refusal

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
        if self.flaw == "reopens_window":
            self._eval(_PUT_BACK, reservation)
        self.inner.release(reservation)

    async def release_async(self, reservation: Reservation) -> None:
        if self.flaw == "reopens_window":
            await self._eval_async(_PUT_BACK, reservation)
        await self.inner.release_async(reservation)

    def release_shared(self, reservation: SharedReservation) -> None:
        self.inner.release_shared(reservation)

    async def release_shared_async(self, reservation: SharedReservation) -> None:
        await self.inner.release_shared_async(reservation)

    # -- checks ------------------------------------------------------------------

    def check(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        if self.flaw == "judges_uncounted":
            return self._check_then_count(guess)
        try:
            return self.inner.check(guess)
        except ServiceUnavailableError:
            if self.flaw == "retries_check":
                return self.inner.check(guess)
            if self.flaw == "forgets_recorded_guess":
                self._refund(guess)
            return self._on_error(guess)

    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        if self.flaw == "judges_uncounted":
            return await self._check_then_count_async(guess)
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
        raise _unavailable()

    def _record_key(self, guess: Guess) -> str:
        return number_keys(self.inner._prefix, guess.number, guess.usage_type).record

    def _refund(self, guess: Guess) -> None:
        # A refund that fails is simply not made.
        with contextlib.suppress(Exception):
            self.inner._sync.eval(_REFUND, 1, self._record_key(guess))

    async def _refund_async(self, guess: Guess) -> None:
        with contextlib.suppress(Exception):
            await self.inner._async_client().eval(_REFUND, 1, self._record_key(guess))

    # -- the flaws' own scripts, through the inner store's clients ---------------

    def _eval(self, script: str, reservation: Reservation) -> None:
        key = record_key(self.inner._prefix, reservation.number, reservation.usage_type)
        try:
            self.inner._sync.eval(script, 1, key, reservation.verification_id, reservation.now_ms)
        except Exception:  # noqa: BLE001 - every failure is the store's, as in RedisStore
            raise _unavailable() from None

    async def _eval_async(self, script: str, reservation: Reservation) -> None:
        key = record_key(self.inner._prefix, reservation.number, reservation.usage_type)
        client = self.inner._async_client()
        try:
            await asyncio.wait_for(
                client.eval(script, 1, key, reservation.verification_id, reservation.now_ms),
                self.inner._timeout,
            )
        except Exception:  # noqa: BLE001
            raise _unavailable() from None

    def _check_args(self, guess: Guess) -> list[object]:
        return [
            self._record_key(guess),
            guess.now_ms,
            guess.digest,
            guess.max_attempts,
            0,
            guess.verification_id or "",
        ]

    def _check_then_count(self, guess: Guess) -> tuple[CheckStatus, int]:
        try:
            return checked(self.inner._sync.eval(_CHECK_THEN_COUNT, 1, *self._check_args(guess)))
        except Exception:  # noqa: BLE001
            raise _unavailable() from None

    async def _check_then_count_async(self, guess: Guess) -> tuple[CheckStatus, int]:
        client = self.inner._async_client()
        try:
            reply = await asyncio.wait_for(
                client.eval(_CHECK_THEN_COUNT, 1, *self._check_args(guess)), self.inner._timeout
            )
            return checked(reply)
        except Exception:  # noqa: BLE001
            raise _unavailable() from None

    def close(self) -> None:
        self.inner.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "the verification store is unavailable", code="StoreUnavailable", retryable=True
    )
