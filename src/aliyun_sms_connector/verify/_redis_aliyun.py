"""RedisStore's operations for Aliyun-made codes (``codes="aliyun"``), in a module of their own.

:class:`~._redis.RedisStore` inherits them. ``count`` runs the ``COUNT``
script (with ``GUARD_IP``/``SETTLE_IP`` around it when a per-IP cap applies,
as ``check`` runs ``CHECK``), and ``approve`` the ``APPROVE`` script: see
:mod:`._scripts`. The keys, hash tags, TTLs and failure handling are
``RedisStore``'s own: every call goes through its ``_run``/``_run_async``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from aliyun_sms_connector import ServiceUnavailableError

from ._keys import failed_key, record_key, shared_keys
from ._redis_calls import logger
from ._results import CheckStatus
from ._scripts import APPROVE, COUNT, GUARD_IP, SETTLE_IP, approved, counted, ignore, refusal
from ._store import ALIYUN_HOLDS, Counted, Guess, Refusal

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._redis_pump import PumpCalls
    from ._scripts import Script

__all__ = ["AliyunCodesOnRedis"]

_T = TypeVar("_T")
_UNSETTLED = "verification approved; its client IP's count of wrong guesses was not settled"


class AliyunCodesOnRedis:
    """``count`` and ``approve`` over RedisStore's script runner (a mixin)."""

    _prefix: str
    _pump: PumpCalls

    if TYPE_CHECKING:

        def _run(
            self,
            script: Script,
            keys: list[str],
            args: list[object],
            decode: Callable[[Any], _T],
        ) -> _T: ...

        async def _run_async(
            self,
            script: Script,
            keys: list[str],
            args: list[object],
            decode: Callable[[Any], _T],
        ) -> _T: ...

        def _ip_guard(self, g: Guess) -> tuple[list[str], list[object]] | None: ...

    def count(self, guess: Guess) -> Counted | Refusal:
        """Count a guess on a verification whose code Aliyun holds: one round trip.

        With a per-IP cap, a place in the IP's count is held first (three
        round trips at most). It stays, the guess being wrong until
        :meth:`approve` approves it, unless nothing was counted.
        """
        keys, args = self._count_args(guess)
        ip = self._ip_guard(guess)
        if ip is None:
            return self._run(COUNT, keys, args, counted)
        held = self._run(GUARD_IP, ip[0], ip[1], refusal)
        if held is not None:
            return held
        answer = self._run(COUNT, keys, args, counted)
        if answer.status is not CheckStatus.WRONG_CODE:
            self._run(SETTLE_IP, ip[0], ip[1][2:], ignore)
            return answer
        return answer._replace(place=str(ip[1][2]))

    async def count_async(self, guess: Guess) -> Counted | Refusal:
        """The async twin of :meth:`count`."""
        keys, args = self._count_args(guess)
        ip = self._ip_guard(guess)
        if ip is None:
            return await self._run_async(COUNT, keys, args, counted)
        held = await self._run_async(GUARD_IP, ip[0], ip[1], refusal)
        if held is not None:
            return held
        answer = await self._run_async(COUNT, keys, args, counted)
        if answer.status is not CheckStatus.WRONG_CODE:
            await self._run_async(SETTLE_IP, ip[0], ip[1][2:], ignore)
            return answer
        return answer._replace(place=str(ip[1][2]))

    def approve(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """Approve, once, the verification a guess Aliyun passed was counted on.

        One round trip, one more to count the approval for the pumping guard
        (the prefix's own slot), and one more to give the IP's place back. When
        either of those fails the approval stands: the guard may miss one
        approval, the place stays counted for its hour (a WARNING says so).
        """
        keys, args = self._approve_args(guess, counted)
        if not self._run(APPROVE, keys, args, approved):
            return CheckStatus.NOT_FOUND, 0
        self._pump.count_approval(self._run, guess.pump)
        place = self._place(guess, counted)
        if place is not None:
            try:
                self._run(SETTLE_IP, place[0], place[1], ignore)
            except ServiceUnavailableError:
                logger.warning(_UNSETTLED)
        return CheckStatus.APPROVED, counted.attempts_left + 1

    async def approve_async(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """The async twin of :meth:`approve`."""
        keys, args = self._approve_args(guess, counted)
        if not await self._run_async(APPROVE, keys, args, approved):
            return CheckStatus.NOT_FOUND, 0
        await self._pump.count_approval_async(self._run_async, guess.pump)
        place = self._place(guess, counted)
        if place is not None:
            try:
                await self._run_async(SETTLE_IP, place[0], place[1], ignore)
            except ServiceUnavailableError:
                logger.warning(_UNSETTLED)
        return CheckStatus.APPROVED, counted.attempts_left + 1

    def _number_keys(self, g: Guess) -> list[str]:
        """The record and the number's wrong guesses: one slot."""
        return [
            record_key(self._prefix, g.number, g.usage_type),
            failed_key(self._prefix, g.number, g.usage_type),
        ]

    def _count_args(self, g: Guess) -> tuple[list[str], list[object]]:
        bound = g.verification_id is not None
        return self._number_keys(g), [
            g.now_ms,
            g.max_attempts,
            g.failed_hourly,
            g.verification_id if bound else "",
            1 if bound else 0,
            ALIYUN_HOLDS,
        ]

    def _approve_args(self, g: Guess, c: Counted) -> tuple[list[str], list[object]]:
        return self._number_keys(g), [g.now_ms, c.verification_id, c.attempt, ALIYUN_HOLDS]

    def _place(self, g: Guess, c: Counted) -> tuple[list[str], list[object]] | None:
        """SETTLE_IP's keys and arguments for the place a counted guess holds, or None."""
        if not c.place or g.ip is None:
            return None
        return [str(shared_keys(self._prefix, g.ip).ip_failed)], [c.place]
