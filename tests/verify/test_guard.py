"""The pumping guard through the service: on MemoryStore, redis-server and the Cluster.

Every test runs the real service against the emulator, with the store under
test and an injected clock: grace periods and blocks pass in an instant.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from aliyun_sms_connector import ConfigError, PermissionDeniedError, RateLimitExceededError
from aliyun_sms_connector.verify import (
    MemoryStore,
    PumpingGuard,
    VerificationPolicy,
    VerificationService,
)
from aliyun_sms_connector.verify._guard import BUCKETS, PumpStart, judge

from . import intl
from .conftest import SECRET_KEY

# Fixtures that send to international numbers too.
emulator = intl.emulator
connector = intl.connector

LOGGER = "aliyun_sms_connector.verify"
GB = "+4474001234{:02d}"  # prefix 447400, region GB: not monitored by default
FR = "+336123456{:02d}"  # prefix 336123, region FR
CN = "+86138001380{:02d}"  # prefix 861380, region CN: monitored by default
# A start is judged once its whole 5-minute bucket is 5 minutes (grace) old.
JUDGED_AFTER = 10 * 60


def make_service(connector, store, clock, events=None, **guard):
    guard_policy = PumpingGuard(**guard) if guard.pop("off", False) is False else None
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(pumping_guard=guard_policy),
        clock=clock,
        on_event=None if events is None else events.append,
    )


def start_many(service, pattern, count, *, first=0):
    for i in range(first, first + count):
        service.start(pattern.format(i), "SignIn")


def use_codes(service, emulator, pattern, count, *, first=0):
    """Start ``count`` codes and type each one back."""
    for i in range(first, first + count):
        number = pattern.format(i)
        service.start(number, "SignIn")
        assert service.check(number, "SignIn", emulator.outbox[-1].params["code"]).ok


class TestBlocking:
    """Unused codes block their prefix after grace, and only that prefix."""

    def test_unused_codes_block_their_prefix_only(self, connector, emulator, store, clock):
        """30 unanswered codes to 447400: blocked after grace; 336123, all used, stays open."""
        service = make_service(connector, store, clock)
        start_many(service, GB, 30)
        use_codes(service, emulator, FR, 30)
        clock.advance(JUDGED_AFTER)
        sent = len(emulator.outbox)
        with pytest.raises(PermissionDeniedError) as caught:
            service.start(GB.format(99), "SignIn")
        assert caught.value.code == "PumpingSuspected"
        assert caught.value.retry_after == 3600
        assert len(emulator.outbox) == sent  # nothing sent
        service.start(FR.format(99), "SignIn")  # the other prefix is open
        assert len(emulator.outbox) == sent + 1

    def test_a_refused_start_reserves_nothing(self, connector, emulator, clock):
        """The guard refuses before the number's limits: no code held, no cooldown, no count."""

        class Spy(MemoryStore):
            def __init__(self):
                super().__init__()
                self.calls = []

            def reserve(self, reservation):
                self.calls.append("reserve")
                return super().reserve(reservation)

            def release(self, reservation):
                self.calls.append("release")
                super().release(reservation)

        store = Spy()
        service = make_service(connector, store, clock)
        start_many(service, GB, 30)
        clock.advance(JUDGED_AFTER)
        store.calls.clear()
        state = store._state
        before = (len(state.records), len(state.cooldowns), sum(map(len, state.windows.values())))
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(50), "SignIn")
        assert store.calls == ["reserve"]
        after = (len(state.records), len(state.cooldowns), sum(map(len, state.windows.values())))
        assert after == before

    def test_used_codes_keep_the_prefix_open(self, connector, emulator, store, clock):
        """A prefix whose codes are typed back is never blocked."""
        service = make_service(connector, store, clock)
        use_codes(service, emulator, GB, 40)
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(90), "SignIn")

    def test_a_third_converting_is_open_a_quarter_is_not(self, connector, emulator, store, clock):
        """min_conversion 0.3: 12 used of 36 stays open; 9 used of 36 is blocked."""
        service = make_service(connector, store, clock)
        use_codes(service, emulator, GB, 12)
        start_many(service, GB, 24, first=12)
        use_codes(service, emulator, FR, 9)
        start_many(service, FR, 27, first=9)
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(90), "SignIn")
        with pytest.raises(PermissionDeniedError):
            service.start(FR.format(90), "SignIn")

    def test_a_burst_is_not_judged_inside_grace(self, connector, emulator, store, clock):
        """60 unanswered codes, then 4 minutes: still open; the block comes after grace."""
        service = make_service(connector, store, clock)
        start_many(service, GB, 60)
        clock.advance(4 * 60)
        service.start(GB.format(70), "SignIn")
        clock.advance(JUDGED_AFTER)
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(71), "SignIn")

    def test_the_block_ends_after_block_for(self, connector, emulator, store, clock):
        """retry_after counts down, and after block_for the prefix is open again."""
        service = make_service(connector, store, clock)
        start_many(service, GB, 30)
        clock.advance(JUDGED_AFTER)
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(80), "SignIn")
        clock.advance(1800)
        with pytest.raises(PermissionDeniedError) as caught:
            service.start(GB.format(81), "SignIn")
        assert caught.value.retry_after == 1800
        clock.advance(1800)  # the 30 starts have left the window too
        service.start(GB.format(82), "SignIn")

    def test_two_instances_share_one_block(self, connector, emulator, store_factory, clock):
        """Starts through one instance block the prefix for another on the same store."""
        store = store_factory()
        one = make_service(connector, store, clock)
        two = make_service(connector, store, clock)
        start_many(one, GB, 15)
        start_many(two, GB, 15, first=15)
        clock.advance(JUDGED_AFTER)
        with pytest.raises(PermissionDeniedError):
            two.start(GB.format(60), "SignIn")
        with pytest.raises(PermissionDeniedError):
            one.start(GB.format(61), "SignIn")

    def test_async_paths_block_too(self, connector, emulator, store, clock):
        """start_async and check_async count and refuse as the sync twins do."""
        service = make_service(connector, store, clock)

        async def go():
            for i in range(10):
                await service.start_async(GB.format(i), "SignIn")
                code = emulator.outbox[-1].params["code"]
                assert (await service.check_async(GB.format(i), "SignIn", code)).ok
            for i in range(10, 40):
                await service.start_async(FR.format(i), "SignIn")
            clock.advance(JUDGED_AFTER)
            await service.start_async(GB.format(90), "SignIn")
            with pytest.raises(PermissionDeniedError):
                await service.start_async(FR.format(90), "SignIn")
            await store.aclose()  # this loop's client, before the loop closes

        asyncio.run(go())

    def test_with_shared_limits_too(self, connector, emulator, store, clock):
        """With a global cap and client IPs the guard rides on the shared step: same outcome."""
        service = VerificationService(
            connector,
            store,
            secret_key=SECRET_KEY,
            policy=VerificationPolicy(global_hourly=10_000, per_ip_hourly=None),
            clock=clock,
        )
        for i in range(30):
            service.start(GB.format(i), "SignIn", client_ip=f"203.0.113.{i}")
            number = FR.format(i)
            service.start(number, "SignIn", client_ip="198.51.100.7")
            assert service.check(number, "SignIn", emulator.outbox[-1].params["code"]).ok
        clock.advance(JUDGED_AFTER)
        service.start(FR.format(90), "SignIn", client_ip="198.51.100.7")
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(90), "SignIn", client_ip="203.0.113.200")

    def test_refused_starts_are_not_counted(self, connector, emulator, store, clock):
        """Starts refused by the per-IP cap or a cooldown never reach Aliyun, nor the count."""
        policy = VerificationPolicy(per_ip_hourly=1)
        service = VerificationService(
            connector, store, secret_key=SECRET_KEY, policy=policy, clock=clock
        )
        for i in range(29):
            service.start(GB.format(i), "SignIn", client_ip=f"203.0.113.{i}")
        for i in range(40):  # the per-IP cap refuses, after the guard counted: given back
            with pytest.raises(RateLimitExceededError):
                service.start(GB.format(50 + i), "SignIn", client_ip="203.0.113.0")
        no_ip = VerificationService(
            connector, store, secret_key=SECRET_KEY, policy=policy, clock=clock
        )
        for _ in range(40):  # the cooldown refuses in the reserve step: given back too
            with pytest.raises(RateLimitExceededError):
                no_ip.start(GB.format(0), "SignIn")
        clock.advance(JUDGED_AFTER)
        no_ip.start(GB.format(95), "SignIn")  # 29 judged starts: below min_starts

    def test_guard_off_never_blocks(self, connector, emulator, store, clock):
        """pumping_guard=None: 40 unanswered codes, and the prefix stays open."""
        service = make_service(connector, store, clock, off=True)
        start_many(service, GB, 40)
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(90), "SignIn")


class TestMonitoring:
    """Monitored regions and monitor mode report, and never refuse."""

    @pytest.mark.parametrize(
        ("pattern", "guard"),
        [(CN, {}), (GB, {"mode": "monitor"}), (GB, {"monitor_regions": {"gb"}})],
        ids=["cn-by-default", "monitor-mode", "gb-monitored"],
    )
    def test_monitor_emits_and_never_refuses(
        self, connector, emulator, store, clock, caplog, pattern, guard
    ):
        """One pumping_suspected event (blocked False) and one WARNING; every start goes out."""
        events = []
        service = make_service(connector, store, clock, events, **guard)
        start_many(service, pattern, 30)
        clock.advance(JUDGED_AFTER)
        caplog.set_level(logging.WARNING, logger=LOGGER)
        start_many(service, pattern, 5, first=40)
        suspected = [e for e in events if e.kind == "pumping_suspected"]
        assert len(suspected) == 1
        assert suspected[0].blocked is False
        assert suspected[0].code is None
        warnings = [r for r in caplog.records if "pumping suspected" in r.getMessage()]
        assert len(warnings) == 1
        assert "monitor" in warnings[0].getMessage()
        assert pattern.format(40) not in warnings[0].getMessage()
        assert sum(e.kind == "started" for e in events) == 35

    def test_a_new_block_logs_one_warning(self, connector, emulator, store, clock, caplog):
        """Block mode: one WARNING when the block starts, none for starts refused later."""
        events = []
        service = make_service(connector, store, clock, events)
        start_many(service, GB, 30)
        clock.advance(JUDGED_AFTER)
        caplog.set_level(logging.WARNING, logger=LOGGER)
        for i in range(3):
            with pytest.raises(PermissionDeniedError):
                service.start(GB.format(50 + i), "SignIn")
        warnings = [r for r in caplog.records if "pumping suspected" in r.getMessage()]
        assert len(warnings) == 1
        assert "+447400…" in warnings[0].getMessage()
        suspected = [e for e in events if e.kind == "pumping_suspected"]
        assert [e.blocked for e in suspected] == [True, True, True]
        assert {e.code for e in suspected} == {"PumpingSuspected"}


class TestSafeNumbers:
    """Safe numbers and prefixes are never blocked and never counted."""

    def test_safe_prefix_passes(self, connector, emulator, store, clock):
        """A safe prefix takes 40 unanswered codes and stays open."""
        service = make_service(connector, store, clock, safe_numbers={"+44 7400"})
        start_many(service, GB, 40)
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(90), "SignIn")

    def test_safe_numbers_are_not_counted(self, connector, emulator, store, clock):
        """29 unanswered starts plus 5 to a safe number of the prefix: 29 judged, open."""
        safe = GB.format(99)
        service = make_service(connector, store, clock, safe_numbers={safe})
        start_many(service, GB, 29)
        for _ in range(5):
            service.start(safe, "SignIn")
            clock.advance(61)  # the number's own cooldown
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(90), "SignIn")

    def test_test_numbers_are_not_counted(self, connector, emulator, store, clock):
        """Test numbers send nothing, so the guard neither counts nor judges them."""
        test_numbers = {GB.format(i): "123456" for i in range(40)}
        policy = VerificationPolicy(
            test_numbers=test_numbers, per_number_hourly=None, per_number_daily=None
        )
        service = VerificationService(
            connector, store, secret_key=SECRET_KEY, policy=policy, clock=clock
        )
        for number in test_numbers:
            service.start(number, "SignIn")
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(40), "SignIn")


class TestPolicy:
    """PumpingGuard is frozen and validated; VerificationPolicy holds one by default."""

    def test_defaults(self):
        """The issue's defaults."""
        guard = VerificationPolicy().pumping_guard
        assert guard == PumpingGuard()
        assert (guard.prefix_digits, guard.min_starts, guard.min_conversion) == (6, 30, 0.3)
        assert (guard.window, guard.grace, guard.block_for) == (
            timedelta(hours=1),
            timedelta(minutes=5),
            timedelta(hours=1),
        )
        assert guard.mode == "block"
        assert guard.monitor_regions == frozenset({"CN"})
        assert guard.safe_numbers == frozenset()

    def test_frozen(self):
        """No field can be changed after construction."""
        with pytest.raises(AttributeError):
            PumpingGuard().min_starts = 1  # type: ignore[misc]

    def test_normalizes(self):
        """Seconds become timedeltas, regions upper case, safe numbers digits."""
        guard = PumpingGuard(
            grace=60, monitor_regions=["hk", " CN"], safe_numbers=["+44 (7400) 12-34"]
        )
        assert guard.grace == timedelta(minutes=1)
        assert guard.monitor_regions == frozenset({"HK", "CN"})
        assert guard.safe_numbers == frozenset({"4474001234"})
        assert "<1>" in repr(guard)
        assert "7400" not in repr(guard)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("prefix_digits", 0),
            ("prefix_digits", 16),
            ("prefix_digits", True),
            ("window", 0),
            ("window", timedelta(days=2)),
            ("grace", -1),
            ("grace", timedelta(hours=1)),
            ("min_starts", 0),
            ("min_starts", 2.5),
            ("min_conversion", 0),
            ("min_conversion", 1.5),
            ("min_conversion", float("nan")),
            ("min_conversion", True),
            ("block_for", 0),
            ("mode", "off"),
            ("monitor_regions", "CN"),
            ("monitor_regions", {"XX"}),
            ("safe_numbers", "+447400"),
            ("safe_numbers", {"447400"}),
            ("safe_numbers", {"+44abc"}),
        ],
    )
    def test_bad_values(self, field, value):
        """Each bad value is a ConfigError naming the field, never echoing a number."""
        with pytest.raises(ConfigError) as caught:
            PumpingGuard(**{field: value})
        assert [p.field for p in caught.value.problems] == [field]
        assert "447400" not in str(caught.value)

    def test_policy_refuses_other_types(self):
        """pumping_guard must be a PumpingGuard or None."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(pumping_guard={"min_starts": 3})
        assert [p.field for p in caught.value.problems] == ["pumping_guard"]


def pump(now_ms, *, grace=300_000, min_starts=2, conversion=0.5):
    return PumpStart(
        "t", "m", now_ms, 300_000, grace, min_starts, conversion, 1, enforce=True, prefix_digits=6
    )


class TestJudge:
    """The arithmetic the stores share (the Lua script repeats it)."""

    def test_threshold_is_strict(self):
        """Exactly min_conversion keeps a prefix open; just below blocks it."""
        now = 100 * 300_000
        old = now // 300_000 - 3
        assert not judge({("s", old): 2, ("a", old): 1}, pump(now))
        assert judge({("s", old): 3, ("a", old): 1}, pump(now, min_starts=3))

    def test_young_starts_count_only_when_approved(self):
        """Starts of a bucket younger than grace are judged only if approved."""
        now = 100 * 300_000
        young = now // 300_000 - 1  # ended 0 ms ago: younger than grace
        assert not judge({("s", young): 100}, pump(now))
        assert not judge({("s", young): 100, ("a", young): 2}, pump(now))  # 2 of 2 judged
        old = now // 300_000 - 2  # ended exactly grace ago
        assert judge({("s", old): 2}, pump(now))

    def test_buckets_leave_the_window(self):
        """A bucket BUCKETS back is out of the window."""
        now = 100 * 300_000
        gone = now // 300_000 - BUCKETS
        assert not judge({("s", gone): 100}, pump(now))
        assert judge({("s", gone + 1): 100}, pump(now))


class TestOneSlotServers:
    """A server that keeps each script to one slot (Cluster, a proxy) gets the guard apart."""

    def test_a_refused_probe_runs_the_guard_apart(
        self, connector, emulator, redis_store_factory, clock, monkeypatch
    ):
        """The probe is refused as a one-slot proxy would: separate calls, same outcomes."""
        from aliyun_sms_connector.verify import _redis_pump
        from aliyun_sms_connector.verify._scripts import Script

        refusing = Script("spans_slots", "return redis.error_reply('CROSSSLOT one slot only')")
        monkeypatch.setattr(_redis_pump, "SPANS_SLOTS", refusing)
        store = redis_store_factory()
        service = make_service(connector, store, clock)
        use_codes(service, emulator, FR, 30)
        start_many(service, GB, 30)
        assert store._pump.joined is False
        clock.advance(JUDGED_AFTER)
        service.start(FR.format(90), "SignIn")
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(90), "SignIn")


class TestFullRedis:
    """Under maxmemory (noeviction) the guard fails closed, like every other limit."""

    def test_a_full_redis_refuses_starts_and_sends_nothing(
        self, connector, emulator, standalone_redis, clock
    ):
        """The guard's first write grows memory: a full Redis refuses it, and no SMS goes out."""
        import redis

        from aliyun_sms_connector import ServiceUnavailableError
        from aliyun_sms_connector.verify import RedisStore

        store = RedisStore.from_url(standalone_redis.url, store_timeout=5.0)
        admin = redis.Redis.from_url(standalone_redis.url)
        try:
            service = make_service(connector, store, clock)
            start_many(service, GB, 30)  # a blocked prefix next: no write needed to refuse
            clock.advance(JUDGED_AFTER)
            with pytest.raises(PermissionDeniedError):
                service.start(GB.format(40), "SignIn")
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", 1)
            sent = len(emulator.outbox)
            for to in (FR.format(1), CN.format(1)):  # a new prefix, blocked or monitored
                with pytest.raises(ServiceUnavailableError) as caught:
                    service.start(to, "SignIn")
                assert caught.value.code == "StoreUnavailable"
            with pytest.raises(PermissionDeniedError):  # the block still holds
                service.start(GB.format(41), "SignIn")
            assert len(emulator.outbox) == sent
        finally:
            admin.config_set("maxmemory", 0)
            admin.close()
            store.close()


def test_region_of_agrees_with_numbers_region():
    """The fast region look-up answers as _numbers.region for an example of every region."""
    import phonenumbers

    from aliyun_sms_connector.verify._guard import region_of
    from aliyun_sms_connector.verify._numbers import region

    checked = 0
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for name in regions:
            if name == "001":
                example = phonenumbers.example_number_for_non_geo_entity(code)
            else:
                example = phonenumbers.example_number(name)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
            assert region_of(e164) == region(e164), e164
            checked += 1
    assert checked > 200
    assert region_of("+14155550123") == "US"
    assert region_of("+447911123400") == "GG"  # +44 is shared: read from the number's pattern
