"""Attacks on the pumping guard: bypassing a block, cheap blocks, plaintext in the state.

Each test is an attacker's attempt; it passes when the attempt fails. The
guard runs for real, through the service, on MemoryStore and a redis-server
(the Cluster where the ``store`` fixture brings it), with an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliyun_sms_connector import NetworkError, PermissionDeniedError, RateLimitExceededError
from aliyun_sms_connector.verify import (
    MemoryStore,
    PumpingGuard,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)

from . import intl
from .conftest import SECRET_KEY

emulator = intl.emulator
connector = intl.connector

GB = "+4474001234{:02d}"  # prefix 447400, GB: not monitored by default
JUDGED_AFTER = 10 * 60

# The same number, +44 7400 123499, as a user or a bot might type it.
SAME_NUMBER = [
    "+447400123499",
    "+44 7400 123499",
    "+44-7400-123-499",
    "0044 7400 123499",
    "(+44) 7400 123499",
    "+44 (0) 7400 123499",
    "\uff0b\uff14\uff14\uff17\uff14\uff10\uff10\uff11\uff12\uff13\uff14\uff19\uff19",  # full-width
    "+44\u30007400\u3000123499",  # ideographic spaces
    " +447400123499\t",
]


def service_for(connector, store, clock, **policy):
    policy.setdefault("pumping_guard", PumpingGuard())
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
    )


def block_gb(service, clock):
    for i in range(30):
        service.start(GB.format(i), "SignIn")
    clock.advance(JUDGED_AFTER)


class TestBypass:
    @pytest.mark.parametrize("to", SAME_NUMBER)
    def test_no_formatting_of_the_number_gets_past_a_block(
        self, connector, emulator, store, clock, to
    ):
        """Spaces, 00, full-width digits, a national (0): one prefix, one block, no SMS."""
        service = service_for(connector, store, clock)
        block_gb(service, clock)
        sent = len(emulator.outbox)
        with pytest.raises(PermissionDeniedError) as caught:
            service.start(to, "SignIn")
        assert caught.value.code == "PumpingSuspected"

        async def go():
            try:
                with pytest.raises(PermissionDeniedError):
                    await service.start_async(to, "Register")
            finally:
                await store.aclose()  # this loop's client, before the loop closes

        asyncio.run(go())
        assert len(emulator.outbox) == sent

    @pytest.mark.parametrize("usage", ["Register", "ForgotPassword", "Generic", "BindMfa"])
    def test_another_usage_type_gets_no_sms_to_a_blocked_prefix(
        self, connector, emulator, store, clock, usage
    ):
        service = service_for(connector, store, clock)
        block_gb(service, clock)
        sent = len(emulator.outbox)
        with pytest.raises(PermissionDeniedError):
            service.start(GB.format(77), usage)
        assert len(emulator.outbox) == sent

    def test_a_second_instance_sees_the_block(self, connector, emulator, store_factory, clock):
        """Another service on the same store (the next pod) refuses too."""
        store = store_factory()
        block_gb(service_for(connector, store, clock), clock)
        other = service_for(connector, store, clock, per_ip_hourly=100, global_hourly=10_000)
        sent = len(emulator.outbox)
        with pytest.raises(PermissionDeniedError):
            other.start(GB.format(50), "SignIn", client_ip="203.0.113.9")
        assert len(emulator.outbox) == sent

    def test_safe_number_does_not_open_its_neighbours(self, connector, emulator, store, clock):
        """A safe number exempts itself, not the rest of its blocked prefix."""
        guard = PumpingGuard(safe_numbers=frozenset({"+447400123400"}))
        service = service_for(connector, store, clock, pumping_guard=guard)
        for i in range(1, 31):
            service.start(GB.format(i), "SignIn")
        clock.advance(JUDGED_AFTER)
        service.start("+447400123400", "SignIn")  # the safe one still gets its code
        with pytest.raises(PermissionDeniedError):
            service.start("+447400123401", "SignIn")


class TestCheapBlocks:
    """What does it cost an attacker to get a victim's prefix blocked? Not free starts."""

    def test_refused_starts_count_nothing(self, connector, emulator, store, clock):
        """Hammering 3 numbers past their cooldowns and caps: no block for the next user."""
        service = service_for(connector, store, clock, per_ip_hourly=5)
        for _ in range(40):
            for i in range(3):
                for ip in ("198.51.100.1", None):
                    with contextlib.suppress(RateLimitExceededError):
                        service.start(GB.format(i), "SignIn", client_ip=ip)
        clock.advance(JUDGED_AFTER)
        sent = len(emulator.outbox)
        assert sent <= 3
        service.start(GB.format(60), "SignIn")  # not blocked
        assert len(emulator.outbox) == sent + 1

    def test_sends_that_surely_failed_count_nothing(self, connector, emulator, store, clock):
        """40 starts whose SMS Aliyun refused (balance): nothing sent, nothing judged."""
        service = service_for(connector, store, clock)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH", count=40)
        for i in range(40):
            with pytest.raises(Exception) as caught:
                service.start(GB.format(i), "SignIn")
            assert getattr(caught.value, "maybe_sent", None) is False
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(60), "SignIn")
        assert emulator.outbox[-1].phone_number.endswith("123460")

    def test_approved_codes_are_counted_once_each(self, connector, emulator, store, clock):
        """Every code typed back, each number asked for 3 codes: 1 in 3 converts, no block."""
        service = service_for(connector, store, clock, per_number_cooldown=0, resend_cooldown=0)
        for i in range(15):
            for _ in range(3):
                service.start(GB.format(i), "SignIn")
            code = emulator.outbox[-1].params["code"]
            assert service.check(GB.format(i), "SignIn", code).ok
        clock.advance(JUDGED_AFTER)
        service.start(GB.format(60), "SignIn")  # 15 of 45: 0.33 >= 0.3


@st.composite
def traffic(draw):
    """Rounds of starts to the GB prefix, some typed back, some refused, some failing."""
    return draw(
        st.lists(
            st.tuples(
                st.integers(0, 9),  # number
                st.sampled_from(["SignIn", "Register"]),
                st.sampled_from(["use", "ignore", "fail", "repeat"]),
                st.integers(0, 400),  # seconds before it
            ),
            min_size=20,
            max_size=60,
        )
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rounds=traffic())
def test_every_code_typed_back_never_blocks(connector, emulator, clock, rounds):
    """Random interleavings where each start that sent is approved: no block, ever.

    Failed sends, refused starts (cooldowns, caps) and repeated checks must
    not push the prefix's conversion under ``min_conversion``.
    """
    clock.advance(86_400)  # a fresh day for the emulator's own flow control
    guard = PumpingGuard(min_starts=5, min_conversion=1.0)
    service = VerificationService(
        connector,
        MemoryStore(),
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(pumping_guard=guard, per_number_cooldown=0),
        clock=clock,
    )
    for index, usage, what, wait in rounds:
        clock.advance(wait)
        number = GB.format(index)
        if what == "fail":
            emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        try:
            service.start(number, usage)
        except PermissionDeniedError as error:
            pytest.fail(f"blocked although every code sent was used: {error.code}")
        except (RateLimitExceededError, NetworkError):
            continue
        except Exception as error:  # noqa: BLE001 - the refused send
            assert getattr(error, "maybe_sent", True) is False
            continue
        code = emulator.outbox[-1].params["code"]
        assert service.check(number, usage, code).ok
        if what == "repeat":
            assert not service.check(number, usage, code).ok


class TestState:
    def test_redis_holds_no_plaintext_number(
        self, connector, emulator, redis_store_factory, redis_url, clock
    ):
        """After starts, checks and a block: no key or value holds a number, its prefix or code."""
        store: RedisStore = redis_store_factory()
        service = service_for(connector, store, clock, per_ip_hourly=100)
        block_gb(service, clock)
        service.start("+33612345600", "SignIn", client_ip="203.0.113.7")
        code = emulator.outbox[-1].params["code"]
        service.check("+33612345600", "SignIn", "999999", client_ip="203.0.113.7")
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{store._prefix}*"))
        assert keys
        dump = []
        for key in keys:
            kind = client.type(key)
            kind = kind.decode() if isinstance(kind, bytes) else kind
            dump.append(key)
            if kind == "hash":
                dump += [x for kv in client.hgetall(key).items() for x in kv]
            elif kind == "zset":
                dump += [
                    str(x) for pair in client.zrange(key, 0, -1, withscores=True) for x in pair
                ]
            elif kind == "string":
                dump.append(client.get(key))
        text = " ".join(x.decode() if isinstance(x, bytes) else str(x) for x in dump)
        for secret in ("4474001234", "7400123", "33612345600", "612345600", "203.0.113.7", code):
            assert secret not in text


@pytest.mark.parametrize(
    "to",
    ["+0447400123499", "+44 0 7400 123499", "+44 07400 123499", "07400 123499", "447400123499"],
)
def test_odd_forms_are_blocked_or_refused(connector, emulator, clock, to):
    """Leading +0, a national 0 after 44, a national form: never an SMS to the blocked prefix."""
    from aliyun_sms_connector import AliyunSmsError

    service = service_for(connector, MemoryStore(), clock)
    block_gb(service, clock)
    sent = len(emulator.outbox)
    with pytest.raises(AliyunSmsError) as caught:
        service.start(to, "SignIn")
    assert caught.value.code in {"PumpingSuspected", "InvalidPhoneNumber"}
    assert len(emulator.outbox) == sent


def test_one_block_for_both_code_modes():
    """A prefix blocked through aliyun-mode starts refuses local-mode starts, and back."""
    from .conftest import FakeClock
    from .fake_mas import FakeAliyun

    clock = FakeClock(start=1_800_000_000.0)
    aliyun = FakeAliyun(clock)
    store = MemoryStore()
    guard = PumpingGuard(min_starts=5, monitor_regions=frozenset())
    services = {
        mode: VerificationService(
            aliyun.connector,
            store,
            secret_key=SECRET_KEY,
            policy=VerificationPolicy(pumping_guard=guard),
            clock=clock,
            codes=mode,
        )
        for mode in ("aliyun", "local")
    }
    for i in range(5):
        services["aliyun"].start(f"+86138001380{i:02d}", "SignIn")
    clock.advance(JUDGED_AFTER)
    sent = len(aliyun.outbox)
    for mode in ("local", "aliyun"):
        with pytest.raises(PermissionDeniedError):
            services[mode].start("+8613800138099", "Register")
    assert len(aliyun.outbox) == sent


def test_what_a_victim_prefix_block_costs(connector, emulator, store, clock):
    """A documented trade-off, measured: with the defaults, 30 SMS from 2 IPv4 addresses.

    The attacker owns no number in the prefix: any 30 valid numbers in it
    will do (per-number caps never bite), and nobody types the codes. The
    operator pays the 30 SMS; then the prefix (outside ``monitor_regions``)
    is refused for ``block_for``, for everyone, and 30 more SMS an hour
    keep it so. Raise ``min_starts``, add ``safe_numbers``, or monitor.
    """
    service = service_for(connector, store, clock)
    for i in range(30):
        service.start(GB.format(i), "SignIn", client_ip=("198.51.100.1", "198.51.100.2")[i % 2])
    clock.advance(JUDGED_AFTER)
    assert len(emulator.outbox) == 30
    with pytest.raises(PermissionDeniedError):
        service.start(GB.format(99), "SignIn", client_ip="192.0.2.200")  # a real user
    clock.advance(3600)
    service.start(GB.format(99), "SignIn", client_ip="192.0.2.200")  # the block ended
