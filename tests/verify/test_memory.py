"""verify._memory: what MemoryStore does beyond the contract suite."""

from __future__ import annotations

from aliyun_sms_connector.verify import CheckStatus, MemoryStore
from aliyun_sms_connector.verify._memory import _SWEEP_EVERY, DAY_MS
from aliyun_sms_connector.verify._store import Guess, Reservation

NOW = 1_800_000_000_000


def reservation(number: str, now: int = NOW) -> Reservation:
    return Reservation(
        number=number,
        usage_type="SignIn",
        verification_id=f"id-{number}",
        digest="d" * 64,
        now_ms=now,
        expires_ms=now + 600_000,
        usage_cooldown_ms=60_000,
        number_cooldown_ms=60_000,
        hourly=5,
        daily=10,
    )


class TestMemoryStore:
    """Expired entries are dropped, so memory follows the live verifications."""

    def test_expired_entries_are_swept(self):
        """After a day, a sweep leaves no record, cooldown or window behind."""
        store = MemoryStore()
        for i in range(10):
            assert store.reserve(reservation(f"n{i}")) is None
        later = NOW + DAY_MS + 1
        for _ in range(_SWEEP_EVERY):
            store.check(Guess("other", "SignIn", "x" * 64, later, 5))
        assert store._state.records == {}
        assert store._state.cooldowns == {}
        assert store._state.windows == {}

    def test_live_entries_survive_a_sweep(self):
        """A sweep keeps what has not expired."""
        store = MemoryStore()
        store.reserve(reservation("live"))
        assert store.commit(reservation("live"))
        for _ in range(_SWEEP_EVERY):
            store.check(Guess("other", "SignIn", "x" * 64, NOW + 1, 5))
        assert store.check(Guess("live", "SignIn", "d" * 64, NOW + 2, 5))[0] is (
            CheckStatus.APPROVED
        )

    def test_replayed_reservation_counts_once(self):
        """The same reservation twice is stored and counted once."""
        store = MemoryStore()
        assert store.reserve(reservation("n")) is None
        assert store.reserve(reservation("n")) is None
        assert len(store._state.windows["{n}:sends"]) == 1

    def test_repr_shows_no_keys(self):
        """repr counts pending codes, nothing more."""
        store = MemoryStore()
        store.reserve(reservation("secretnumberid"))
        assert repr(store) == "MemoryStore(<1 pending>)"
