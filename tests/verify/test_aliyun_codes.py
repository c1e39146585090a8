"""Aliyun-made codes through the verification service (issue 19, item 4): ``codes="aliyun"``.

Aliyun is FakeAliyun, an autospec'd ``AliyunMasConnector`` (fake_mas.py), so
the counts of its calls are what OUR code asked. The stores are MemoryStore
and a real redis-server where a test takes the ``store`` fixture.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from aliyun_sms_connector import (
    AliyunSmsError,
    ConfigError,
    NetworkError,
    RateLimitExceededError,
    ServiceUnavailableError,
    UsageType,
)
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    VerificationPolicy,
    VerificationService,
    VerificationStore,
)

from .conftest import NUMBER, SECRET_KEY, FakeClock
from .fake_mas import FakeAliyun
from .test_service import BrokenStore, reachable_strings

E164 = "+8613800138000"
TEST_NUMBER = "+8613700137000"
TEST_CODE = "24680"
FULLWIDTH = "\uff11\uff12\uff13\uff14\uff15\uff16"  # digits, but not ASCII ones


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def aliyun(clock) -> FakeAliyun:
    return FakeAliyun(clock)


def service_for(aliyun, store=None, clock=None, *, codes="aliyun", **policy):
    return VerificationService(
        aliyun.connector,
        MemoryStore() if store is None else store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock or aliyun.clock,
        codes=codes,
    )


def held(aliyun) -> str:
    code = aliyun.code_for(E164, "SignIn")
    assert code is not None
    return code


def wrong(right: str) -> str:
    return "000000" if right != "000000" else "111111"


def asked(aliyun) -> int:
    """How many times our code asked Aliyun to check a code."""
    return aliyun.connector.check_verify_code.call_count


def in_mode(mode, service, method, *args, **kwargs):
    """service.<method>(...) on the sync path, or its _async twin in a fresh event loop."""
    if mode == "sync":
        return getattr(service, method)(*args, **kwargs)
    return run(lambda: getattr(service, f"{method}_async")(*args, **kwargs), service.store)


def run(coroutine_function, store):
    async def main():
        try:
            return await coroutine_function()
        finally:
            await store.aclose()

    return asyncio.run(main())


class TestConfiguration:
    """codes="aliyun" is refused at construction unless it can work."""

    def test_needs_a_mas_connector(self, connector):
        """The SMS connector cannot make or check codes: ConfigError."""
        with pytest.raises(ConfigError, match="AliyunMasConnector"):
            VerificationService(connector, secret_key=SECRET_KEY, codes="aliyun")

    @pytest.mark.parametrize("codes", ["ALIYUN", "remote", "", None, 1])
    def test_unknown_mode(self, aliyun, codes):
        """Only "local" and "aliyun" are modes."""
        with pytest.raises(ConfigError, match="codes must be"):
            service_for(aliyun, codes=codes)

    @pytest.mark.parametrize("length", [9, 10])
    def test_code_length_outside_aliyuns_bounds(self, aliyun, length):
        """Aliyun's CodeLength is 4 to 8: a policy's 9 or 10 is a ConfigError naming the field."""
        with pytest.raises(ConfigError) as caught:
            service_for(aliyun, code_length=length)
        assert "code_length" in str(caught.value)
        service_for(aliyun, code_length=length, codes="local")  # a local code may be longer

    @pytest.mark.parametrize("length", [4, 8])
    def test_code_length_bounds_pass(self, aliyun, length):
        """4 and 8 are Aliyun's bounds, both allowed, and sent as CodeLength."""
        service_for(aliyun, code_length=length).start(NUMBER, "SignIn")
        assert aliyun.connector.send_verify_code.call_args.kwargs["code_length"] == length
        assert len(held(aliyun)) == length

    def test_store_without_count_and_approve(self, aliyun):
        """A store that only has the local operations is refused."""

        class LocalOnly(MemoryStore):
            """A store with the local operations only: the protocol's defaults for the rest."""

            count = VerificationStore.count
            approve = VerificationStore.approve
            count_async = VerificationStore.count_async
            approve_async = VerificationStore.approve_async

        with pytest.raises(ConfigError, match="count and approve"):
            service_for(aliyun, store=LocalOnly())
        service_for(aliyun, store=LocalOnly(), codes="local")


class TestStart:
    """A start in aliyun mode: the service's order, SendSmsVerifyCode, no code stored."""

    def test_send_verify_code_with_the_policy(self, aliyun):
        """CodeLength, ValidTime and Interval come from the policy, in whole seconds."""
        service = service_for(
            aliyun, ttl=timedelta(seconds=90.5), resend_cooldown=timedelta(seconds=30.9)
        )
        verification = service.start("+86 138-0013-8000", UsageType.SIGN_IN)
        call = aliyun.connector.send_verify_code.call_args
        assert call.args == (E164, UsageType.SIGN_IN)
        assert call.kwargs == {"code_length": 6, "valid_time": 90, "interval": 30}
        aliyun.connector.send_message.assert_not_called()
        assert verification.send_result is not None
        assert verification.send_result.biz_id == "biz-1"
        assert verification.masked_number == "***8000"

    def test_local_mode_uses_mas_as_the_channel(self, aliyun):
        """codes="local" with an AliyunMasConnector: send_message with the service's code."""
        service = service_for(aliyun, codes="local")
        service.start(NUMBER, "SignIn")
        payload = aliyun.connector.send_message.call_args.args[2]
        assert set(payload) == {"code"}
        assert len(payload["code"]) == 6
        aliyun.connector.send_verify_code.assert_not_called()
        assert service.check(NUMBER, "SignIn", payload["code"]).ok
        assert asked(aliyun) == 0

    def test_nothing_of_the_code_is_stored(self, aliyun):
        """The record holds the ALIYUN_HOLDS marker where a local code's digest would be."""
        from aliyun_sms_connector.verify._store import ALIYUN_HOLDS

        store = MemoryStore()
        service_for(aliyun, store=store).start(NUMBER, "SignIn")
        (record,) = store._state.records.values()
        assert record.pending.digest == ALIYUN_HOLDS
        assert held(aliyun) not in repr(store._state)

    def test_cooldown_refuses_before_aliyun(self, aliyun, clock):
        """A refused start never reaches Aliyun."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        clock.advance(10)
        with pytest.raises(RateLimitExceededError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.code == "VerificationCooldown"
        assert aliyun.connector.send_verify_code.call_count == 1

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_failed_send_releases(self, aliyun, clock, mode):
        """maybe_sent=False: cooldown, caps and the pending slot are given back."""
        store = MemoryStore()
        service = service_for(aliyun, store=store, per_number_hourly=1)
        aliyun.fail_next("isv.BUSINESS_LIMIT_CONTROL")

        def start():
            return in_mode(mode, service, "start", NUMBER, "SignIn")

        with pytest.raises(RateLimitExceededError) as caught:
            start()
        assert caught.value.maybe_sent is False
        assert service.check(NUMBER, "SignIn", "123456").status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 0
        start()  # no cooldown, and the hourly cap of 1 is intact
        assert service.check(NUMBER, "SignIn", held(aliyun)).ok

    def test_failed_send_keeps_the_pending_verification(self, aliyun, clock):
        """A failed re-start leaves the pending verification, its attempts and Aliyun's code."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        first = held(aliyun)
        assert service.check(NUMBER, "SignIn", wrong(first)).attempts_left == 4
        clock.advance(61)
        aliyun.fail_next("isv.BUSINESS_LIMIT_CONTROL")
        with pytest.raises(RateLimitExceededError):
            service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", wrong(first)).attempts_left == 3
        assert service.check(NUMBER, "SignIn", first).ok

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_maybe_sent_is_checkable(self, aliyun, mode):
        """maybe_sent=True: committed; the error's verification id checks Aliyun's code."""
        store = MemoryStore()
        service = service_for(aliyun, store=store, require_verification_id=True)
        aliyun.drop_connection()
        with pytest.raises(NetworkError) as caught:
            in_mode(mode, service, "start", NUMBER, "SignIn")
        verification = caught.value.verification
        assert service.check(NUMBER, "SignIn", held(aliyun)).status is CheckStatus.NOT_FOUND
        result = service.check(NUMBER, "SignIn", held(aliyun), verification_id=verification.id)
        assert result.ok

    def test_failed_commit_is_code_not_activated(self, aliyun):
        """The SMS went out but the store did not commit: CodeNotActivated, nothing approvable."""
        store = BrokenStore("commit")
        service = service_for(aliyun, store=store)
        with pytest.raises(ServiceUnavailableError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.code == "CodeNotActivated"
        assert service.check(NUMBER, "SignIn", held(aliyun)).status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 0


class TestTestNumbers:
    """Test numbers keep their fixed codes, stored and checked locally, in both modes."""

    @pytest.mark.parametrize("codes", ["aliyun", "local"])
    def test_fixed_code_locally(self, aliyun, codes):
        """No SMS, no CheckSmsVerifyCode; the fixed code approves, a wrong one is counted."""
        service = service_for(aliyun, codes=codes, test_numbers={TEST_NUMBER: TEST_CODE})
        verification = service.start(TEST_NUMBER, "SignIn")
        assert verification.send_result is None
        wrong_result = service.check(TEST_NUMBER, "SignIn", "13579")
        assert (wrong_result.status, wrong_result.attempts_left) == (CheckStatus.WRONG_CODE, 4)
        assert service.check(TEST_NUMBER, "SignIn", TEST_CODE).ok
        assert service.check(TEST_NUMBER, "SignIn", TEST_CODE).status is CheckStatus.NOT_FOUND
        assert aliyun.requests == []

    def test_fixed_code_may_be_any_policy_length(self, aliyun):
        """A 10-digit test code works in aliyun mode (it never meets Aliyun's CodeLength)."""
        service = service_for(aliyun, test_numbers={TEST_NUMBER: "1234567890"})
        service.start(TEST_NUMBER, "SignIn")
        assert service.check(TEST_NUMBER, "SignIn", "1234567890").ok


class TestCheck:
    """The guess is counted first; Aliyun is asked only for a counted guess; PASS approves once."""

    def test_right_code_approved_once(self, aliyun):
        """PASS: APPROVED; the same code again is NOT_FOUND without asking Aliyun."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        first = service.check(NUMBER, "SignIn", code)
        assert (first.status, first.attempts_left) == (CheckStatus.APPROVED, 5)
        assert asked(aliyun) == 1
        assert aliyun.connector.check_verify_code.call_args.args == (E164, "SignIn", code)
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 1

    def test_wrong_codes_then_locked_without_aliyun(self, aliyun):
        """Five UNKNOWNs count down; then even the right code is TOO_MANY_ATTEMPTS, unasked."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        lefts = [service.check(NUMBER, "SignIn", wrong(code)).attempts_left for _ in range(5)]
        assert lefts == [4, 3, 2, 1, 0]
        assert asked(aliyun) == 5
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.TOO_MANY_ATTEMPTS
        assert asked(aliyun) == 5

    def test_missing_and_expired_never_ask(self, aliyun, clock):
        """Nothing pending, or past ttl: NOT_FOUND, and Aliyun is not asked."""
        service = service_for(aliyun)
        assert service.check(NUMBER, "SignIn", "123456").status is CheckStatus.NOT_FOUND
        service.start(NUMBER, "SignIn")
        clock.advance(600)
        assert service.check(NUMBER, "SignIn", held(aliyun)).status is CheckStatus.NOT_FOUND
        assert service.check(NUMBER, "Register", "123456").status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 0

    def test_verification_id_binds_before_aliyun(self, aliyun):
        """require_verification_id: no id or another id is NOT_FOUND, uncounted and unasked."""
        service = service_for(aliyun, require_verification_id=True)
        verification = service.start(NUMBER, "SignIn")
        code = held(aliyun)
        for made_up in (None, "", "made-up", verification.id + "x"):
            result = service.check(NUMBER, "SignIn", code, verification_id=made_up)
            assert result.status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 0
        right = service.check(NUMBER, "SignIn", code, verification_id=verification.id)
        assert (right.status, right.attempts_left) == (CheckStatus.APPROVED, 5)

    def test_number_budget_before_aliyun(self, aliyun, clock):
        """Past per_number_failed_checks_hourly, checks answer TOO_MANY_ATTEMPTS unasked."""
        service = service_for(aliyun, max_attempts=3, per_number_failed_checks_hourly=4)
        service.start(NUMBER, "SignIn")
        for _ in range(3):
            service.check(NUMBER, "SignIn", wrong(held(aliyun)))
        clock.advance(61)
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", wrong(held(aliyun))).attempts_left == 2
        assert asked(aliyun) == 4
        locked = service.check(NUMBER, "SignIn", held(aliyun))
        assert locked.status is CheckStatus.TOO_MANY_ATTEMPTS
        assert asked(aliyun) == 4

    def test_ip_cap_before_aliyun(self, aliyun):
        """Past per_ip_failed_checks_hourly, IpFailedChecksLimit, and Aliyun is not asked."""
        service = service_for(aliyun, resend_cooldown=timedelta(0), per_ip_failed_checks_hourly=2)
        service.start(NUMBER, "SignIn")
        ip = "198.51.100.7"
        for _ in range(2):
            service.check(NUMBER, "SignIn", wrong(held(aliyun)), client_ip=ip)
        with pytest.raises(RateLimitExceededError) as caught:
            service.check(NUMBER, "SignIn", held(aliyun), client_ip=ip)
        assert caught.value.code == "IpFailedChecksLimit"
        assert asked(aliyun) == 2

    def test_right_codes_leave_the_ip_budget(self, aliyun):
        """An approval gives back the IP's place: five approvals under a cap of one."""
        service = service_for(aliyun, resend_cooldown=timedelta(0), per_ip_failed_checks_hourly=1)
        for n in range(5):
            number = f"+861390013{n:04d}"
            service.start(number, "SignIn")
            code = aliyun.code_for(number, "SignIn")
            assert service.check(number, "SignIn", code, client_ip="203.0.113.5").ok

    @pytest.mark.parametrize("guess", ["12345", "1234567", "abcdef", FULLWIDTH, "", 123456])
    def test_a_guess_that_cannot_be_a_code_is_counted_unasked(self, aliyun, guess):
        """Not six ASCII digits: a counted wrong guess, never sent to Aliyun."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        result = service.check(NUMBER, "SignIn", guess)
        assert (result.status, result.attempts_left) == (CheckStatus.WRONG_CODE, 4)
        assert asked(aliyun) == 0

    def test_only_true_is_a_pass(self, aliyun):
        """An answer that is not True (a truthy 1, "PASS") approves nothing."""
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        for answer in (1, "PASS", None):
            aliyun.connector.check_verify_code.side_effect = None
            aliyun.connector.check_verify_code.return_value = answer
            assert service.check(NUMBER, "SignIn", code).status is CheckStatus.WRONG_CODE

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_aliyun_error_fails_closed(self, aliyun, mode):
        """An Aliyun error: raised as is, the guess stays counted, nothing approved."""
        store = MemoryStore()
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        failure = ServiceUnavailableError("busy", code="ServiceUnavailable", retryable=True)
        aliyun.fail_next_check(failure)

        def check(guess):
            return in_mode(mode, service, "check", NUMBER, "SignIn", guess)

        with pytest.raises(ServiceUnavailableError) as caught:
            check(code)
        assert caught.value is failure
        assert caught.value.__context__ is None
        assert caught.value.__cause__ is None
        assert check(wrong(code)).attempts_left == 3  # the failed one was counted
        assert check(code).ok

    def test_a_replaced_verification_is_not_approved(self, aliyun, clock):
        """PASS for a guess counted on a verification replaced meanwhile: NOT_FOUND."""
        service = service_for(aliyun, resend_cooldown=timedelta(0), per_number_cooldown=0)
        service.start(NUMBER, "SignIn")
        first = held(aliyun)
        passing = aliyun.connector.check_verify_code.side_effect

        def restart_then_pass(to, usage_type, code):
            answer = passing(to, usage_type, code)
            service.start(NUMBER, "SignIn")  # committed before the approval
            return answer

        aliyun.connector.check_verify_code.side_effect = restart_then_pass
        assert service.check(NUMBER, "SignIn", first).status is CheckStatus.NOT_FOUND
        aliyun.connector.check_verify_code.side_effect = passing
        assert service.check(NUMBER, "SignIn", held(aliyun)).ok

    def test_a_guess_during_a_send_counts_on_the_pending_verification(self, aliyun, clock):
        """While a new code's send is in flight, guesses are counted on the pending one.

        Aliyun already holds the new code (DuplicatePolicy=1), so the new code
        passes and approves the pending verification: the holder of the
        phone's latest code is approved, and the guess was counted first.
        """
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        old = held(aliyun)
        clock.advance(61)
        seen = []
        sending = aliyun.connector.send_verify_code.side_effect

        def checking_send(*args, **kwargs):
            result = sending(*args, **kwargs)
            seen.append(service.check(NUMBER, "SignIn", old).status)
            seen.append(service.check(NUMBER, "SignIn", held(aliyun)).status)
            return result

        aliyun.connector.send_verify_code.side_effect = checking_send
        service.start(NUMBER, "SignIn")
        if held(aliyun) == old:  # one chance in a million
            pytest.skip("the two codes happen to be equal")
        assert seen == [CheckStatus.WRONG_CODE, CheckStatus.APPROVED]
        # The new verification committed afterwards, with fresh attempts.
        assert service.check(NUMBER, "SignIn", held(aliyun)).ok


class TestCancellation:
    """A check cancelled while Aliyun thinks: counted, never approved."""

    def test_cancelled_check_stays_counted(self, aliyun):
        """The task is cancelled during CheckSmsVerifyCode; the guess counts, nothing approved."""
        store = MemoryStore()
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        started = asyncio.Event()

        async def slow(*_args):
            started.set()
            await asyncio.sleep(60)

        async def main():
            aliyun.connector.check_verify_code_async.side_effect = slow
            task = asyncio.create_task(service.check_async(NUMBER, "SignIn", code))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(main, store)
        aliyun.connector.check_verify_code.side_effect = None
        aliyun.connector.check_verify_code.return_value = False
        assert service.check(NUMBER, "SignIn", wrong(code)).attempts_left == 3
        aliyun.connector.check_verify_code.return_value = True
        assert service.check(NUMBER, "SignIn", code).ok


class TestModes:
    """A record says which mode made it; neither mode approves the other's."""

    def test_a_local_code_is_never_approved_through_aliyun(self, aliyun, store):
        """A local-mode verification checked in aliyun mode: NOT_FOUND, uncounted, unasked."""
        local = service_for(aliyun, store=store, codes="local")
        local.start(NUMBER, "SignIn")
        code = aliyun.outbox[-1].params["code"]
        aliyun.connector.check_verify_code.side_effect = None
        aliyun.connector.check_verify_code.return_value = True  # Aliyun would say PASS
        remote = service_for(aliyun, store=store)
        assert remote.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND
        assert asked(aliyun) == 0
        first = local.check(NUMBER, "SignIn", wrong(code))
        assert first.attempts_left == 4  # nothing was counted by the aliyun-mode check
        assert local.check(NUMBER, "SignIn", code).ok

    def test_an_aliyun_verification_is_never_approved_locally(self, aliyun, store):
        """An aliyun-mode verification checked in local mode: counted wrong, never approved."""
        service_for(aliyun, store=store).start(NUMBER, "SignIn")
        local = service_for(aliyun, store=store, codes="local")
        code = held(aliyun)
        results = [local.check(NUMBER, "SignIn", code) for _ in range(6)]
        assert [r.status for r in results] == [CheckStatus.WRONG_CODE] * 5 + [
            CheckStatus.TOO_MANY_ATTEMPTS
        ]
        assert asked(aliyun) == 0


class TestConcurrency:
    """Races resolve in the store: one approval, and Aliyun asked only for counted guesses."""

    def test_two_right_checks_in_threads(self, aliyun, store):
        """Two right checks at once: one APPROVED, one NOT_FOUND."""
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        barrier = threading.Barrier(2)

        def check(_):
            barrier.wait()
            return service.check(NUMBER, "SignIn", code).status

        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(check, range(2)))
        assert sorted(statuses) == sorted([CheckStatus.APPROVED, CheckStatus.NOT_FOUND])
        assert asked(aliyun) <= 2

    @pytest.mark.parametrize("consume", [False, True])
    def test_two_right_checks_as_tasks(self, clock, store, consume):
        """The same with check_async: exactly one APPROVED, whether or not Aliyun consumes."""
        aliyun = FakeAliyun(clock, consume=consume)
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)

        async def main():
            results = await asyncio.gather(
                *(service.check_async(NUMBER, "SignIn", code) for _ in range(2))
            )
            return [r.status for r in results]

        statuses = run(main, store)
        assert statuses.count(CheckStatus.APPROVED) == 1
        assert aliyun.connector.check_verify_code_async.call_count <= 2

    def test_fifty_wrong_checks_ask_aliyun_five_times(self, aliyun, store):
        """50 wrong guesses at once: 5 counted and asked, 45 locked unasked."""
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 51)]
        barrier = threading.Barrier(50)

        def check(guess):
            barrier.wait()
            return service.check(NUMBER, "SignIn", guess).status

        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(check, guesses))
        assert statuses.count(CheckStatus.WRONG_CODE) == 5
        assert statuses.count(CheckStatus.TOO_MANY_ATTEMPTS) == 45
        assert asked(aliyun) == 5


class TestPrivacy:
    """The guess is reachable from no error, frame or log line of an aliyun-mode check."""

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_aliyun_error_frames_hold_no_guess(self, aliyun, mode):
        """An Aliyun error raised by check: the guess is in no local of our frames, at any depth."""
        store = MemoryStore()
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")
        guess = "975310" if held(aliyun) != "975310" else "864200"
        aliyun.fail_next_check(NetworkError("reset", code="ConnectionReset", maybe_sent=False))
        with pytest.raises(AliyunSmsError) as caught:
            in_mode(mode, service, "check", NUMBER, "SignIn", f" {guess} ")
        error = caught.value
        assert not [s for s in reachable_strings(error) if guess in s]
        rendered = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
        library = rendered.split("aliyun_sms_connector", 1)[-1]
        assert guess not in library
        assert guess not in str(error)
        assert guess not in repr(error)

    def test_store_error_frames_hold_no_guess(self, aliyun):
        """A store failure during an aliyun-mode check: no frame holds the guess."""
        store = BrokenStore()
        service = service_for(aliyun, store=store)
        service.start(NUMBER, "SignIn")

        def unavailable(_guess):
            raise ServiceUnavailableError("down", code="StoreUnavailable")

        store.count = unavailable
        with pytest.raises(ServiceUnavailableError) as caught:
            service.check(NUMBER, "SignIn", "975311")
        assert not [s for s in reachable_strings(caught.value) if "975311" in s]
        assert asked(aliyun) == 0

    def test_debug_logs_hold_no_guess(self, aliyun, caplog):
        """DEBUG logs of starts and checks show neither the code nor the full number."""
        caplog.set_level(logging.DEBUG)
        service = service_for(aliyun)
        service.start(NUMBER, "SignIn")
        code = held(aliyun)
        service.check(NUMBER, "SignIn", wrong(code))
        service.check(NUMBER, "SignIn", code)
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "outcome=approved" in text
        assert code not in text
        assert NUMBER not in text
