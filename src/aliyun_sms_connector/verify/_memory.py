"""The embedded store: one process, thread-safe and asyncio-safe."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ._keys import digests_equal, number_keys, shared_keys
from ._results import CheckStatus
from ._store import Guess, Refusal, Reservation, SharedReservation, VerificationStore

__all__ = ["MemoryStore"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Expired entries are swept once every this many operations, so memory stays
# bounded by the live verifications without a background thread.
_SWEEP_EVERY = 1024


@dataclass
class _Record:
    verification_id: str
    digest: str
    expires_ms: int
    attempts: int = 0
    # The pending record this one replaced, put back if this one is released.
    previous: _Record | None = None


@dataclass
class _Cooldown:
    verification_id: str
    until_ms: int


@dataclass
class _State:
    records: dict[str, _Record] = field(default_factory=dict)
    cooldowns: dict[str, _Cooldown] = field(default_factory=dict)
    # key -> list of (time ms, id), oldest first
    windows: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


class MemoryStore(VerificationStore):
    """Keeps verifications in this process's memory (the default store).

    Every operation holds one lock for a few microseconds and never awaits, so
    it is safe from threads and from tasks alike. Only for one process: each
    instance of a backend would have its own codes and limits.
    """

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._operations = 0

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._state.records)} pending>)"

    # -- the protocol ----------------------------------------------------------

    def reserve(self, reservation: Reservation) -> Refusal | None:
        """Check the number's limits; if all allow, store the code and count the send."""
        r = reservation
        keys = number_keys("", r.number, r.usage_type)
        with self._lock:
            self._tick(r.now_ms)
            state = self._state
            record = state.records.get(keys.record)
            if record is not None and record.verification_id == r.verification_id:
                return None  # a replay of this very reservation
            refusals = [
                self._cooldown_refusal(keys.usage_cooldown, r.now_ms),
                self._cooldown_refusal(keys.number_cooldown, r.now_ms),
                self._window_refusal(keys.sends, r.now_ms, HOUR_MS, r.hourly, "NumberHourlyLimit"),
                self._window_refusal(keys.sends, r.now_ms, DAY_MS, r.daily, "NumberDailyLimit"),
            ]
            refusal = _longest(refusals)
            if refusal is not None:
                return refusal
            previous = record if record is not None and record.expires_ms > r.now_ms else None
            if previous is not None:
                previous.previous = None  # one level is enough
            state.records[keys.record] = _Record(
                r.verification_id, r.digest, r.expires_ms, previous=previous
            )
            for key, duration in (
                (keys.usage_cooldown, r.usage_cooldown_ms),
                (keys.number_cooldown, r.number_cooldown_ms),
            ):
                if duration > 0:
                    state.cooldowns[key] = _Cooldown(r.verification_id, r.now_ms + duration)
            state.windows.setdefault(keys.sends, []).append((r.now_ms, r.verification_id))
            return None

    def reserve_shared(self, reservation: SharedReservation) -> Refusal | None:
        """Check the per-IP and global limits; if both allow, count the send."""
        r = reservation
        keys = shared_keys("", r.ip)
        with self._lock:
            self._tick(r.now_ms)
            counted = [(keys.global_, r.global_hourly, "GlobalHourlyLimit")]
            if keys.ip is not None:
                counted.append((keys.ip, r.ip_hourly, "IpHourlyLimit"))
            if any(r.verification_id in {i for _, i in self._window(k)} for k, _, _ in counted):
                return None  # a replay
            refusal = _longest(
                [self._window_refusal(k, r.now_ms, HOUR_MS, cap, code) for k, cap, code in counted]
            )
            if refusal is not None:
                return refusal
            for key, cap, _ in counted:
                if cap > 0:
                    self._state.windows.setdefault(key, []).append((r.now_ms, r.verification_id))
            return None

    def release(self, reservation: Reservation, shared: SharedReservation | None) -> None:
        """Undo a reservation whose SMS surely never left: code, cooldowns and counts."""
        r = reservation
        keys = number_keys("", r.number, r.usage_type)
        with self._lock:
            state = self._state
            record = state.records.get(keys.record)
            if record is not None and record.verification_id == r.verification_id:
                del state.records[keys.record]
                previous = record.previous
                if previous is not None and previous.expires_ms > r.now_ms:
                    state.records[keys.record] = previous
            for key in (keys.usage_cooldown, keys.number_cooldown):
                cooldown = state.cooldowns.get(key)
                if cooldown is not None and cooldown.verification_id == r.verification_id:
                    del state.cooldowns[key]
            window_keys = [keys.sends]
            if shared is not None:
                shared_ = shared_keys("", shared.ip)
                window_keys.append(shared_.global_)
                if shared_.ip is not None:
                    window_keys.append(shared_.ip)
            for key in window_keys:
                entries = state.windows.get(key)
                if entries:
                    entries[:] = [e for e in entries if e[1] != r.verification_id]

    def check(self, guess: Guess) -> tuple[CheckStatus, int]:
        """Approve (and delete), count a wrong guess, or say why not."""
        g = guess
        key = number_keys("", g.number, g.usage_type).record
        with self._lock:
            self._tick(g.now_ms)
            record = self._state.records.get(key)
            if record is None:
                return CheckStatus.NOT_FOUND, 0
            if record.expires_ms <= g.now_ms:
                del self._state.records[key]
                return CheckStatus.NOT_FOUND, 0
            if record.attempts >= g.max_attempts:
                return CheckStatus.TOO_MANY_ATTEMPTS, 0
            if digests_equal(record.digest, g.digest):
                del self._state.records[key]
                return CheckStatus.APPROVED, g.max_attempts - record.attempts
            previous = record.previous
            if (
                previous is not None
                and previous.expires_ms > g.now_ms
                and digests_equal(previous.digest, g.digest)
            ):
                # The code of a verification this one replaced: not found, not counted.
                return CheckStatus.NOT_FOUND, 0
            record.attempts += 1
            return CheckStatus.WRONG_CODE, g.max_attempts - record.attempts

    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        """The async twin of :meth:`reserve` (it never blocks the loop)."""
        return self.reserve(reservation)

    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        """The async twin of :meth:`reserve_shared`."""
        return self.reserve_shared(reservation)

    async def release_async(
        self, reservation: Reservation, shared: SharedReservation | None
    ) -> None:
        """The async twin of :meth:`release`."""
        self.release(reservation, shared)

    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int]:
        """The async twin of :meth:`check`."""
        return self.check(guess)

    # -- helpers (called with the lock held) -----------------------------------

    def _cooldown_refusal(self, key: str, now_ms: int) -> Refusal | None:
        cooldown = self._state.cooldowns.get(key)
        if cooldown is None or cooldown.until_ms <= now_ms:
            return None
        return Refusal("VerificationCooldown", cooldown.until_ms - now_ms)

    def _window(self, key: str) -> list[tuple[int, str]]:
        return self._state.windows.get(key, [])

    def _window_refusal(
        self, key: str, now_ms: int, window_ms: int, cap: int, code: str
    ) -> Refusal | None:
        if cap <= 0:
            return None
        # An entry counts while now < its time + window.
        live = [t for t, _ in self._window(key) if t > now_ms - window_ms]
        if len(live) < cap:
            return None
        # len - cap + 1 entries must leave; the last of them leaves at t + window.
        leaving = sorted(live)[len(live) - cap]
        return Refusal(code, leaving + window_ms - now_ms)

    def _tick(self, now_ms: int) -> None:
        self._operations += 1
        if self._operations % _SWEEP_EVERY == 0:
            self._sweep(now_ms)

    def _sweep(self, now_ms: int) -> None:
        state = self._state
        state.records = {k: v for k, v in state.records.items() if v.expires_ms > now_ms}
        state.cooldowns = {k: v for k, v in state.cooldowns.items() if v.until_ms > now_ms}
        windows: dict[str, list[tuple[int, str]]] = {}
        for key, entries in state.windows.items():
            live = [e for e in entries if e[0] > now_ms - DAY_MS]
            if live:
                windows[key] = live
        state.windows = windows


def _longest(refusals: list[Refusal | None]) -> Refusal | None:
    # The longest wait decides: after it, none of these limits refuses.
    found = [r for r in refusals if r is not None]
    return max(found, key=lambda r: r.retry_after_ms) if found else None
