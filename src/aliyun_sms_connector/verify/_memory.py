"""The embedded store: one process, thread-safe and asyncio-safe."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from ._guard import PUMPING_MONITORED, MemoryGuard
from ._keys import digests_equal, number_keys, shared_keys
from ._results import CheckStatus
from ._store import (
    ALIYUN_HOLDS,
    IP_FAILED_CHECKS,
    Counted,
    Guess,
    Refusal,
    Reservation,
    SharedReservation,
    VerificationStore,
)

__all__ = ["MemoryStore"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Expired entries are swept once every this many operations, so memory stays
# bounded by the live verifications without a background thread.
_SWEEP_EVERY = 1024


@dataclass
class _Code:
    verification_id: str
    digest: str
    expires_ms: int


@dataclass
class _Record:
    # The pending code: the one checks are judged against, and its wrong guesses.
    pending: _Code | None = None
    attempts: int = 0
    # A reserved code whose SMS was not handed over yet: never judged.
    reserved: _Code | None = None

    def live(self, now_ms: int) -> bool:
        return any(c is not None and c.expires_ms > now_ms for c in (self.pending, self.reserved))


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
        self._guard = MemoryGuard()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._state.records)} pending>)"

    # -- the protocol ----------------------------------------------------------

    def reserve(self, reservation: Reservation) -> Refusal | None:
        """Check the number's limits; if all allow, hold the new code and count the send."""
        r = reservation
        keys = number_keys("", r.number, r.usage_type)
        with self._lock:
            self._tick(r.now_ms)
            state = self._state
            record = state.records.get(keys.record)
            if record is not None and r.verification_id in _ids(record):
                return None  # a replay of this very reservation
            # The guard first: a blocked prefix refuses before anything counts.
            pumped = None if r.pump is None else self._guard.start(r.pump)
            if pumped is not None and pumped[0] != PUMPING_MONITORED:
                return Refusal(*pumped)
            refusals = [
                self._cooldown_refusal(keys.usage_cooldown, r.now_ms),
                self._cooldown_refusal(keys.number_cooldown, r.now_ms),
                self._window_refusal(keys.sends, r.now_ms, HOUR_MS, r.hourly, "NumberHourlyLimit"),
                self._window_refusal(keys.sends, r.now_ms, DAY_MS, r.daily, "NumberDailyLimit"),
            ]
            refusal = _longest(refusals)
            if refusal is not None:
                if r.pump is not None:
                    self._guard.release(r.pump)
                return refusal
            if record is None:
                record = state.records[keys.record] = _Record()
            record.reserved = _Code(r.verification_id, r.digest, r.expires_ms)
            for key, duration in (
                (keys.usage_cooldown, r.usage_cooldown_ms),
                (keys.number_cooldown, r.number_cooldown_ms),
            ):
                if duration > 0:
                    state.cooldowns[key] = _Cooldown(r.verification_id, r.now_ms + duration)
            state.windows.setdefault(keys.sends, []).append((r.now_ms, r.verification_id))
            return None if pumped is None else Refusal(*pumped)

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
            # The guard first: a blocked prefix refuses before anything counts.
            pumped = None if r.pump is None else self._guard.start(r.pump)
            if pumped is not None and pumped[0] != PUMPING_MONITORED:
                return Refusal(*pumped)
            refusal = _longest(
                [self._window_refusal(k, r.now_ms, HOUR_MS, cap, code) for k, cap, code in counted]
            )
            if refusal is not None:
                if r.pump is not None:
                    self._guard.release(r.pump)
                return refusal
            for key, cap, _ in counted:
                if cap > 0:
                    self._state.windows.setdefault(key, []).append((r.now_ms, r.verification_id))
            return None if pumped is None else Refusal(*pumped)

    def commit(self, reservation: Reservation) -> bool:
        """Make the reserved code the pending one, now that its SMS was handed over."""
        r = reservation
        key = number_keys("", r.number, r.usage_type).record
        with self._lock:
            record = self._state.records.get(key)
            if record is None or record.reserved is None:
                return False
            reserved = record.reserved
            if reserved.verification_id != r.verification_id:
                return False
            record.reserved = None
            if reserved.expires_ms <= r.now_ms:
                return False
            record.pending, record.attempts = reserved, 0
            for sibling in r.siblings:  # Aliyun's new code replaced theirs
                other = self._state.records.get(number_keys("", r.number, sibling).record)
                if other is not None and other.pending and other.pending.digest == ALIYUN_HOLDS:
                    other.pending = None
            return True

    def release(self, reservation: Reservation) -> None:
        """Undo a reservation whose SMS surely never left: its code, cooldowns and count."""
        r = reservation
        keys = number_keys("", r.number, r.usage_type)
        with self._lock:
            state = self._state
            record = state.records.get(keys.record)
            reserved = None if record is None else record.reserved
            if (
                record is not None
                and reserved is not None
                and reserved.verification_id == r.verification_id
            ):
                record.reserved = None
            for key in (keys.usage_cooldown, keys.number_cooldown):
                cooldown = state.cooldowns.get(key)
                if cooldown is not None and cooldown.verification_id == r.verification_id:
                    del state.cooldowns[key]
            self._forget(keys.sends, r.verification_id)
            if r.pump is not None:
                self._guard.release(r.pump)

    def release_shared(self, reservation: SharedReservation) -> None:
        """Undo a shared reservation: its per-IP and global counts."""
        keys = shared_keys("", reservation.ip)
        with self._lock:
            for key in (keys.global_, keys.ip):
                if key is not None:
                    self._forget(key, reservation.verification_id)
            if reservation.pump is not None:
                self._guard.release(reservation.pump)

    def check(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        """Count the guess, then approve (and delete) or say why not."""
        g = guess
        keys = number_keys("", g.number, g.usage_type)
        ip_failed = shared_keys("", g.ip).ip_failed if g.ip_failed_hourly > 0 else None
        with self._lock:
            self._tick(g.now_ms)
            if ip_failed is not None:
                refusal = self._window_refusal(
                    ip_failed, g.now_ms, HOUR_MS, g.ip_failed_hourly, IP_FAILED_CHECKS
                )
                if refusal is not None:
                    return refusal
            record = self._state.records.get(keys.record)
            status, left, entry = self._judge(record, g, keys.failed)
            if status is CheckStatus.APPROVED and g.pump is not None:
                self._guard.approve(g.pump)
            if entry is not None:
                for key, cap in ((keys.failed, g.failed_hourly), (ip_failed, 1)):
                    if key is not None and cap > 0:
                        self._state.windows.setdefault(key, []).append(entry)
            return status, left

    def _judge(
        self, record: _Record | None, g: Guess, failed: str
    ) -> tuple[CheckStatus, int, tuple[int, str] | None]:
        """(status, attempts left, the wrong guess's window entry); lock held."""
        pending = None if record is None else record.pending
        if record is None or pending is None:
            return CheckStatus.NOT_FOUND, 0, None
        if pending.expires_ms <= g.now_ms:
            record.pending = None
            return CheckStatus.NOT_FOUND, 0, None
        if g.verification_id is not None and not secrets.compare_digest(
            pending.verification_id.encode(), g.verification_id.encode()
        ):
            return CheckStatus.NOT_FOUND, 0, None
        if record.attempts >= g.max_attempts or self._window_refusal(
            failed, g.now_ms, HOUR_MS, g.failed_hourly, ""
        ):
            return CheckStatus.TOO_MANY_ATTEMPTS, 0, None
        # Counted before it is judged.
        record.attempts += 1
        left = g.max_attempts - record.attempts
        if digests_equal(pending.digest, g.digest):
            record.pending = None
            return CheckStatus.APPROVED, left + 1, None
        return (
            CheckStatus.WRONG_CODE,
            left,
            (g.now_ms, f"{pending.verification_id}:{record.attempts}"),
        )

    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        """The async twin of :meth:`reserve` (it never blocks the loop)."""
        return self.reserve(reservation)

    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        """The async twin of :meth:`reserve_shared`."""
        return self.reserve_shared(reservation)

    async def commit_async(self, reservation: Reservation) -> bool:
        """The async twin of :meth:`commit`."""
        return self.commit(reservation)

    async def release_async(self, reservation: Reservation) -> None:
        """The async twin of :meth:`release`."""
        self.release(reservation)

    async def release_shared_async(self, reservation: SharedReservation) -> None:
        """The async twin of :meth:`release_shared`."""
        self.release_shared(reservation)

    async def check_async(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
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

    def _forget(self, key: str, entry_id: str) -> None:
        entries = self._state.windows.get(key)
        if entries:
            entries[:] = [e for e in entries if e[1] != entry_id]

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
        state.records = {k: v for k, v in state.records.items() if v.live(now_ms)}
        state.cooldowns = {k: v for k, v in state.cooldowns.items() if v.until_ms > now_ms}
        windows: dict[str, list[tuple[int, str]]] = {}
        for key, entries in state.windows.items():
            live = [e for e in entries if e[0] > now_ms - DAY_MS]
            if live:
                windows[key] = live
        state.windows = windows
        self._guard.sweep(now_ms, DAY_MS)

    # -- Aliyun-made codes ---------------------------------------------------------

    def count(self, guess: Guess) -> Counted | Refusal:
        """Count a guess on a verification whose code Aliyun holds, without judging it."""
        g = guess
        keys = number_keys("", g.number, g.usage_type)
        ip_failed = shared_keys("", g.ip).ip_failed if g.ip_failed_hourly > 0 else None
        with self._lock:
            self._tick(g.now_ms)
            if ip_failed is not None:
                refusal = self._window_refusal(
                    ip_failed, g.now_ms, HOUR_MS, g.ip_failed_hourly, IP_FAILED_CHECKS
                )
                if refusal is not None:
                    return refusal
            record = self._state.records.get(keys.record)
            pending = None if record is None else record.pending
            if record is None or pending is None:
                return _NOT_COUNTED
            if pending.expires_ms <= g.now_ms:
                record.pending = None
                return _NOT_COUNTED
            # A code of the local kind is never Aliyun's to judge.
            if pending.digest != ALIYUN_HOLDS:
                return _NOT_COUNTED
            if g.verification_id is not None and not secrets.compare_digest(
                pending.verification_id.encode(), g.verification_id.encode()
            ):
                return _NOT_COUNTED
            if record.attempts >= g.max_attempts or self._window_refusal(
                keys.failed, g.now_ms, HOUR_MS, g.failed_hourly, ""
            ):
                return Counted(CheckStatus.TOO_MANY_ATTEMPTS, 0)
            record.attempts += 1
            entry = (g.now_ms, f"{pending.verification_id}:{record.attempts}")
            # A wrong guess until approve says otherwise.
            for key, cap in ((keys.failed, g.failed_hourly), (ip_failed, 1)):
                if key is not None and cap > 0:
                    self._state.windows.setdefault(key, []).append(entry)
            return Counted(
                CheckStatus.WRONG_CODE,
                g.max_attempts - record.attempts,
                pending.verification_id,
                record.attempts,
                entry[1] if ip_failed is not None else "",
            )

    def approve(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """Approve, once, the verification a guess Aliyun passed was counted on."""
        g, c = guess, counted
        keys = number_keys("", g.number, g.usage_type)
        with self._lock:
            record = self._state.records.get(keys.record)
            pending = None if record is None else record.pending
            if (
                record is None
                or pending is None
                or not c.verification_id
                or pending.verification_id != c.verification_id
                or pending.digest != ALIYUN_HOLDS
                or pending.expires_ms <= g.now_ms
            ):
                return CheckStatus.NOT_FOUND, 0
            record.pending = None
            if g.pump is not None:
                self._guard.approve(g.pump)
            entry = f"{c.verification_id}:{c.attempt}"
            self._forget(keys.failed, entry)
            if c.place:
                self._forget(str(shared_keys("", g.ip).ip_failed), c.place)
            return CheckStatus.APPROVED, c.attempts_left + 1

    async def count_async(self, guess: Guess) -> Counted | Refusal:
        """The async twin of :meth:`count`."""
        return self.count(guess)

    async def approve_async(self, guess: Guess, counted: Counted) -> tuple[CheckStatus, int]:
        """The async twin of :meth:`approve`."""
        return self.approve(guess, counted)


_NOT_COUNTED = Counted(CheckStatus.NOT_FOUND, 0)


def _ids(record: _Record) -> set[str]:
    return {c.verification_id for c in (record.pending, record.reserved) if c is not None}


def _longest(refusals: list[Refusal | None]) -> Refusal | None:
    # The longest wait decides: after it, none of these limits refuses.
    found = [r for r in refusals if r is not None]
    return max(found, key=lambda r: r.retry_after_ms) if found else None
