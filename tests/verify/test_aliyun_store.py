"""The store's operations for Aliyun-made codes, ``count`` and ``approve``, on every store kind.

MemoryStore, a real redis-server and the Redis Cluster (conftest.STORE_KINDS),
sync and async; a full Redis (``maxmemory`` with ``noeviction``) fails closed.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import CheckStatus, MemoryStore, RedisStore
from aliyun_sms_connector.verify._keys import failed_key, record_key, shared_keys
from aliyun_sms_connector.verify._store import (
    ALIYUN_HOLDS,
    Counted,
    Guess,
    Refusal,
    Reservation,
)

from .conftest import redis_store

NOW = 1_800_000_000_000
TTL = 600_000
USAGE = "SignIn"
IP = "a" * 32


def number() -> str:
    return uuid.uuid4().hex


def reservation(num: str, *, digest: str = ALIYUN_HOLDS, now: int = NOW) -> Reservation:
    return Reservation(num, USAGE, uuid.uuid4().hex[:16], digest, now, now + TTL, 0, 0, 0, 0)


def pending(store, num: str, **kwargs) -> Reservation:
    """A committed verification of ``num``: Aliyun's (the marker) unless a digest is given."""
    r = reservation(num, **kwargs)
    assert store.reserve(r) is None
    assert store.commit(r)
    return r


def guess(num: str, *, now: int = NOW, **kwargs) -> Guess:
    fields = {"max_attempts": 3, "failed_hourly": 0, **kwargs}
    return Guess(num, USAGE, "", now, **fields)


class TestCount:
    """count counts without judging, under every limit check has."""

    def test_counts_down_then_locks(self, store):
        """Each count is one attempt; at max_attempts TOO_MANY_ATTEMPTS, uncounted."""
        num = number()
        r = pending(store, num)
        answers = [store.count(guess(num)) for _ in range(4)]
        assert [a.status for a in answers] == [CheckStatus.WRONG_CODE] * 3 + [
            CheckStatus.TOO_MANY_ATTEMPTS
        ]
        assert [a.attempts_left for a in answers] == [2, 1, 0, 0]
        assert [a.attempt for a in answers] == [1, 2, 3, 0]
        assert {a.verification_id for a in answers[:3]} == {r.verification_id}
        assert answers[3] == Counted(CheckStatus.TOO_MANY_ATTEMPTS, 0)

    def test_nothing_pending_or_only_reserved(self, store):
        """No verification, or one whose send was not handed over yet: NOT_FOUND."""
        num = number()
        assert store.count(guess(num)) == Counted(CheckStatus.NOT_FOUND, 0)
        assert store.reserve(reservation(num)) is None
        assert store.count(guess(num)) == Counted(CheckStatus.NOT_FOUND, 0)

    def test_expired(self, store):
        """At its expiry the verification is NOT_FOUND."""
        num = number()
        pending(store, num)
        assert store.count(guess(num, now=NOW + TTL - 1)).status is CheckStatus.WRONG_CODE
        assert store.count(guess(num, now=NOW + TTL)).status is CheckStatus.NOT_FOUND

    def test_a_local_code_is_not_counted(self, store):
        """A verification with a digest of its own: NOT_FOUND, and its attempts untouched."""
        num = number()
        r = pending(store, num, digest="ab" * 32)
        assert store.count(guess(num)).status is CheckStatus.NOT_FOUND
        local = store.check(guess(num)._replace(digest="cd" * 32))
        assert local == (CheckStatus.WRONG_CODE, 2)
        assert store.check(guess(num)._replace(digest=r.digest)) == (CheckStatus.APPROVED, 2)

    def test_bound_to_the_verification_id(self, store):
        """Another id (or an empty one) is NOT_FOUND and counts nothing."""
        num = number()
        r = pending(store, num)
        for other in ("", "other", r.verification_id + "x"):
            answer = store.count(guess(num, verification_id=other))
            assert answer.status is CheckStatus.NOT_FOUND
        answer = store.count(guess(num, verification_id=r.verification_id))
        assert (answer.status, answer.attempts_left) == (CheckStatus.WRONG_CODE, 2)

    def test_number_budget(self, store):
        """failed_hourly counts across verifications; past it, TOO_MANY_ATTEMPTS."""
        num = number()
        pending(store, num)
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.WRONG_CODE
        pending(store, num, now=NOW + 1)
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.WRONG_CODE
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.TOO_MANY_ATTEMPTS
        later = guess(num, failed_hourly=2, now=NOW + 3_600_000)
        assert store.count(later).status is CheckStatus.NOT_FOUND  # expired, but not refused

    def test_ip_cap(self, store):
        """ip_failed_hourly: the counted guesses of one IP; past it, a Refusal."""
        first, second = number(), number()
        pending(store, first)
        pending(store, second)
        assert store.count(guess(first, ip=IP, ip_failed_hourly=1)).place
        refused = store.count(guess(second, ip=IP, ip_failed_hourly=1))
        assert isinstance(refused, Refusal)
        assert refused.code == "IpFailedChecksLimit"
        assert 0 < refused.retry_after_ms <= 3_600_000

    def test_not_counted_gives_the_ip_place_back(self, store):
        """A NOT_FOUND holds no place in the IP's count."""
        for _ in range(3):
            answer = store.count(guess(number(), ip=IP, ip_failed_hourly=1))
            assert answer == Counted(CheckStatus.NOT_FOUND, 0)


class TestApprove:
    """approve takes the verification the guess was counted on, once."""

    def test_once(self, store):
        """APPROVED with the attempts left before the guess; then NOT_FOUND everywhere."""
        num = number()
        pending(store, num)
        store.count(guess(num))
        counted = store.count(guess(num))
        assert store.approve(guess(num), counted) == (CheckStatus.APPROVED, 2)
        assert store.approve(guess(num), counted) == (CheckStatus.NOT_FOUND, 0)
        assert store.count(guess(num)).status is CheckStatus.NOT_FOUND

    def test_not_a_replaced_verification(self, store):
        """A guess counted on a verification replaced since approves nothing."""
        num = number()
        pending(store, num)
        counted = store.count(guess(num))
        pending(store, num, now=NOW + 1)
        assert store.approve(guess(num), counted) == (CheckStatus.NOT_FOUND, 0)
        assert store.count(guess(num)).status is CheckStatus.WRONG_CODE  # the new one stands

    def test_not_a_local_verification(self, store):
        """Even with its id, a local verification is never approved through approve."""
        num = number()
        r = pending(store, num, digest="ab" * 32)
        forged = Counted(CheckStatus.WRONG_CODE, 2, r.verification_id, 1)
        assert store.approve(guess(num), forged) == (CheckStatus.NOT_FOUND, 0)
        assert store.check(guess(num)._replace(digest=r.digest))[0] is CheckStatus.APPROVED

    def test_not_expired(self, store):
        """Past its expiry at the approval's now, nothing is approved."""
        num = number()
        pending(store, num)
        counted = store.count(guess(num))
        assert store.approve(guess(num, now=NOW + TTL), counted) == (CheckStatus.NOT_FOUND, 0)

    def test_not_uncounted(self, store):
        """A Counted that counted nothing approves nothing."""
        num = number()
        pending(store, num)
        assert store.approve(guess(num), Counted(CheckStatus.NOT_FOUND, 0)) == (
            CheckStatus.NOT_FOUND,
            0,
        )
        assert store.count(guess(num)).status is CheckStatus.WRONG_CODE

    def test_leaves_the_number_budget(self, store):
        """An approved guess is not a wrong one: it leaves failed_hourly's count."""
        num = number()
        pending(store, num)
        counted = store.count(guess(num, failed_hourly=2))
        assert store.approve(guess(num, failed_hourly=2), counted)[0] is CheckStatus.APPROVED
        pending(store, num, now=NOW + 1)
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.WRONG_CODE
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.WRONG_CODE
        assert store.count(guess(num, failed_hourly=2)).status is CheckStatus.TOO_MANY_ATTEMPTS

    def test_leaves_the_ip_count(self, store):
        """An approved guess gives its IP place back; a wrong one keeps it."""
        first, second, third = number(), number(), number()
        for num in (first, second, third):
            pending(store, num)
        counted = store.count(guess(first, ip=IP, ip_failed_hourly=1))
        assert store.approve(guess(first, ip=IP, ip_failed_hourly=1), counted)[0] is (
            CheckStatus.APPROVED
        )
        assert store.count(guess(second, ip=IP, ip_failed_hourly=1)).status is (
            CheckStatus.WRONG_CODE
        )
        assert isinstance(store.count(guess(third, ip=IP, ip_failed_hourly=1)), Refusal)

    def test_two_approvals_at_once(self, store):
        """Two threads approving two counted guesses of one verification: one APPROVED."""
        num = number()
        pending(store, num)
        counted = [store.count(guess(num)) for _ in range(2)]
        barrier = threading.Barrier(2)
        results = []

        def approve(c):
            barrier.wait()
            results.append(store.approve(guess(num), c)[0])

        threads = [threading.Thread(target=approve, args=(c,)) for c in counted]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == sorted([CheckStatus.APPROVED, CheckStatus.NOT_FOUND])

    def test_async_twins(self, store):
        """count_async and approve_async: the same answers, and one approval of two at once."""
        num = number()
        pending(store, num)

        async def main():
            try:
                first = await store.count_async(guess(num, ip=IP, ip_failed_hourly=5))
                second = await store.count_async(guess(num))
                results = await asyncio.gather(
                    store.approve_async(guess(num, ip=IP, ip_failed_hourly=5), first),
                    store.approve_async(guess(num), second),
                )
                return first, second, results
            finally:
                await store.aclose()

        first, second, results = asyncio.run(main())
        assert (first.status, first.attempts_left, first.attempt) == (CheckStatus.WRONG_CODE, 2, 1)
        assert second.attempt == 2
        assert sorted(r[0] for r in results) == sorted(
            [CheckStatus.APPROVED, CheckStatus.NOT_FOUND]
        )


def test_a_store_without_the_operations_raises():
    """The protocol's defaults raise NotImplementedError, never answer."""
    from aliyun_sms_connector.verify import VerificationStore

    class Minimal(MemoryStore):
        count = VerificationStore.count
        approve = VerificationStore.approve

    with pytest.raises(NotImplementedError):
        Minimal().count(guess(number()))
    with pytest.raises(NotImplementedError):
        Minimal().approve(guess(number()), Counted(CheckStatus.WRONG_CODE, 1, "x", 1))


class TestRedisLayout:
    """On Redis: the record's fields, the keys' slot and TTLs are the local mode's."""

    def test_record_and_ttls(self, redis_url):
        """The record holds the marker and no code; the wrong guesses' key lives an hour."""
        store = redis_store(redis_url)
        try:
            num = number()
            pending(store, num)
            store.count(guess(num, failed_hourly=5))
            client = store._sync
            record = record_key(store._prefix, num, USAGE)
            fields = {k.decode(): v.decode() for k, v in client.hgetall(record).items()}
            assert set(fields) == {"i", "d", "a", "x"}
            assert fields["d"] == ALIYUN_HOLDS
            assert fields["a"] == "1"
            assert 0 < client.pttl(record) <= TTL
            failed = failed_key(store._prefix, num, USAGE)
            assert 3_000_000 < client.pttl(failed) <= 3_600_000
            assert client.zcard(failed) == 1
            assert f"{{{num}}}" in record
            assert f"{{{num}}}" in failed
        finally:
            store.close()

    def test_ip_place_is_given_back_on_approval(self, redis_url):
        """The IP's count holds the counted guess's place until the approval takes it out."""
        store = redis_store(redis_url)
        try:
            num = number()
            pending(store, num)
            key = shared_keys(store._prefix, IP).ip_failed
            counted = store.count(guess(num, ip=IP, ip_failed_hourly=5))
            assert store._sync.zcard(key) == 1
            store.approve(guess(num, ip=IP, ip_failed_hourly=5), counted)
            assert store._sync.zcard(key) == 0
        finally:
            store.close()


class TestFullRedis:
    """Under maxmemory with noeviction, count and approve refuse: nothing counted or approved."""

    def test_count_and_approve_fail_closed(self, standalone_redis):
        """Full: StoreUnavailable for both, the attempts unchanged; after, approve works."""
        store: RedisStore = redis_store(standalone_redis.url)
        try:
            num = number()
            pending(store, num)
            counted = store.count(guess(num))  # every script cached
            with standalone_redis.client() as admin:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", 1)
                try:
                    for _ in range(10):
                        with pytest.raises(ServiceUnavailableError):
                            store.count(guess(num))
                    with pytest.raises(ServiceUnavailableError):
                        store.approve(guess(num), counted)
                finally:
                    admin.config_set("maxmemory", 0)
            again = store.count(guess(num))
            assert (again.attempt, again.attempts_left) == (2, 1)
            assert store.approve(guess(num), counted) == (CheckStatus.APPROVED, 3)
        finally:
            store.close()


def test_memory_store_holds_no_code():
    """MemoryStore's record of an Aliyun code: the marker, nothing else of a code."""
    store = MemoryStore()
    num = number()
    pending(store, num)
    (record,) = store._state.records.values()
    assert record.pending.digest == ALIYUN_HOLDS


class TestSiblings:
    """commit drops the pending Aliyun verifications of usage types sharing the scheme."""

    @staticmethod
    def commit_for(store, num, usage, *, digest=ALIYUN_HOLDS, siblings=(), now=NOW):
        r = Reservation(
            num, usage, uuid.uuid4().hex[:16], digest, now, now + TTL, 0, 0, 0, 0, None, siblings
        )
        assert store.reserve(r) is None
        assert store.commit(r)
        return r

    @staticmethod
    def status(store, num, usage, verification_id):
        g = Guess(num, usage, "", NOW + 1, 3, 0, verification_id)
        counted = store.count(g)
        return counted.status

    def test_a_sibling_code_drops_the_older_verification(self, store):
        """ForgotPassword, then SignIn on the same scheme: the reset verification is gone."""
        num = number()
        reset = self.commit_for(store, num, "ForgotPassword")
        sign_in = self.commit_for(store, num, "SignIn", siblings=("ForgotPassword", "Register"))
        assert self.status(store, num, "ForgotPassword", reset.verification_id) is (
            CheckStatus.NOT_FOUND
        )
        assert self.status(store, num, "SignIn", sign_in.verification_id) is (
            CheckStatus.WRONG_CODE
        )

    def test_other_schemes_and_local_codes_stay(self, store):
        """Without siblings nothing else goes, and a local code (a digest) is never dropped."""
        num = number()
        own_scheme = self.commit_for(store, num, "ForgotPassword")
        local = self.commit_for(store, num, "Register", digest="ab" * 32)
        self.commit_for(store, num, "SignIn", siblings=("Register",))
        assert self.status(store, num, "ForgotPassword", own_scheme.verification_id) is (
            CheckStatus.WRONG_CODE
        )
        g = Guess(num, "Register", "cd" * 32, NOW + 1, 3, 0, local.verification_id)
        assert store.check(g)[0] is CheckStatus.WRONG_CODE  # still pending, counted

    def test_another_numbers_verification_stays(self, store):
        """Siblings are the same number's records only."""
        num, other = number(), number()
        kept = self.commit_for(store, other, "ForgotPassword")
        self.commit_for(store, num, "SignIn", siblings=("ForgotPassword",))
        assert self.status(store, other, "ForgotPassword", kept.verification_id) is (
            CheckStatus.WRONG_CODE
        )


def test_scheme_siblings_follow_the_config():
    """No schemeName: every usage type shares Aliyun's default; one of its own: none."""
    from aliyun_sms_connector import AliyunMasConfig, AliyunMasConnector
    from aliyun_sms_connector.verify._aliyun import _scheme_siblings

    def siblings(templates):
        config = AliyunMasConfig.model_validate(
            {
                "accessKeyId": "LTAI5tEXAMPLEkey",
                "accessKeySecret": "s" * 30,
                "signName": "x",
                "templates": templates,
            }
        )
        with AliyunMasConnector(config) as connector:
            return _scheme_siblings(connector)

    shared = siblings([{"usageType": "Generic", "templateCode": "100001"}])
    assert "SignIn" in shared["ForgotPassword"]
    assert "ForgotPassword" not in shared["ForgotPassword"]
    own = siblings(
        [
            {"usageType": "Generic", "templateCode": "100001", "schemeName": "generic"},
            {"usageType": "ForgotPassword", "templateCode": "100003", "schemeName": "reset"},
        ]
    )
    assert own["ForgotPassword"] == ()
    assert "ForgotPassword" not in own["SignIn"]
    assert "Register" in own["SignIn"]  # both fall back to Generic's scheme
