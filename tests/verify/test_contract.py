"""The contract suite: one set of behaviours, run against every store kind and channel.

Each test runs once per entry of conftest.STORE_KINDS (MemoryStore, a real
redis-server, and whatever else is added there), and once per channel
(CHANNELS): the SMS connector on the emulator; the Message Authentication
Service's connector as the channel of local codes (``codes="local"``); and
Aliyun-made codes (``codes="aliyun"``). The last two run on FakeAliyun, an
autospec'd ``AliyunMasConnector`` (see fake_mas.py).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsConnector,
    InvalidPhoneNumberError,
    NetworkError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
    TemplateError,
)
from aliyun_sms_connector.verify import (
    CheckStatus,
    VerificationPolicy,
    VerificationService,
)

from .conftest import NUMBER, OTHER_NUMBER, SECRET_KEY, FakeClock, sms_connector, sms_emulator
from .fake_mas import FakeAliyun


@pytest.fixture
def clock() -> FakeClock:
    # Whole seconds, so that retry_after comes out exact to the millisecond.
    return FakeClock(start=1_800_000_000.0)


CHANNELS = ["sms", "mas-local", "mas-aliyun"]


@pytest.fixture(params=CHANNELS)
def channel(request) -> str:
    return request.param


@pytest.fixture
def emulator(channel, clock):
    """The emulator, or FakeAliyun (which speaks the emulator's test API)."""
    if channel != "sms":
        yield FakeAliyun(clock, codes=channel.removeprefix("mas-"))
        return
    with sms_emulator(clock) as em:
        yield em


@pytest.fixture
def connector(channel, emulator):
    if channel != "sms":
        yield emulator.connector
        return
    with sms_connector(emulator) as connector:
        yield connector


def make_service(connector, store, clock, **policy):
    fake = getattr(connector, "fake", None)
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
        codes="local" if fake is None else fake.codes,
    )


@pytest.fixture
def service(connector, store, clock):
    return make_service(connector, store, clock)


def run_closing(service, main):
    """asyncio.run(main()), closing the store's clients of that loop whatever happens."""

    async def wrapper():
        try:
            return await main()
        finally:
            await service.store.aclose()

    return asyncio.run(wrapper())


def last_code(emulator) -> str:
    return emulator.outbox[-1].params["code"]


def refused(call, *args, **kwargs) -> RateLimitExceededError:
    with pytest.raises(RateLimitExceededError) as caught:
        call(*args, **kwargs)
    return caught.value


class TestStartAndCheck:
    """A code is sent, approved once, and every other check says why not."""

    def test_right_code_is_approved_once(self, service, emulator):
        """The code from the SMS is approved, and then is gone."""
        verification = service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        assert len(code) == 6
        assert code.isdigit()
        assert verification.masked_number == "***8000"
        first = service.check(NUMBER, "SignIn", code)
        assert first.status is CheckStatus.APPROVED
        assert first.ok
        second = service.check(NUMBER, "SignIn", code)
        assert second.status is CheckStatus.NOT_FOUND
        assert not second.ok

    def test_never_sent_is_not_found(self, service):
        """A check with no pending code is NOT_FOUND, not WRONG_CODE."""
        result = service.check(NUMBER, "SignIn", "123456")
        assert result.status is CheckStatus.NOT_FOUND
        assert result.attempts_left == 0

    def test_number_is_normalised_like_the_connector(self, service, emulator):
        """+86 138-0013-8000 and 13800138000 are the same verification."""
        service.start("+86 138-0013-8000", "SignIn")
        assert service.check("13800138000", "SignIn", last_code(emulator)).ok

    def test_usage_types_are_separate(self, service, emulator, clock):
        """A SignIn code does not verify Register."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        assert service.check(NUMBER, "Register", code).status is CheckStatus.NOT_FOUND
        assert service.check(NUMBER, "SignIn", code).ok

    def test_wrong_codes_count_down_then_lock(self, service, emulator):
        """After max_attempts wrong codes even the right one gives TOO_MANY_ATTEMPTS."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        wrong = "000000" if code != "000000" else "111111"
        lefts = [service.check(NUMBER, "SignIn", wrong) for _ in range(5)]
        assert [r.status for r in lefts] == [CheckStatus.WRONG_CODE] * 5
        assert [r.attempts_left for r in lefts] == [4, 3, 2, 1, 0]
        locked = service.check(NUMBER, "SignIn", code)
        assert locked.status is CheckStatus.TOO_MANY_ATTEMPTS
        assert not locked.ok

    def test_a_new_start_replaces_the_pending_code(self, service, emulator, clock):
        """After a second start the first code is a wrong guess, counted, and the second approves.

        A replaced code gets no answer of its own: NOT_FOUND for it would tell
        a guesser which code the number held before (issue 18).
        """
        service.start(NUMBER, "SignIn")
        first = last_code(emulator)
        clock.advance(61)
        service.start(NUMBER, "SignIn")
        second = last_code(emulator)
        if first != second:
            replaced = service.check(NUMBER, "SignIn", first)
            assert replaced.status is CheckStatus.WRONG_CODE
            assert replaced.attempts_left == 4
            wrong = "000000" if "000000" not in (first, second) else "111111"
            if wrong in (first, second):
                wrong = "222222"
            assert service.check(NUMBER, "SignIn", wrong).attempts_left == 3
        assert service.check(NUMBER, "SignIn", second).ok

    def test_replaced_code_expires_too(self, service, emulator, clock):
        """A replaced code past its own expiry is an ordinary wrong guess."""
        service.start(NUMBER, "SignIn")
        first = last_code(emulator)
        clock.advance(599)
        service.start(NUMBER, "SignIn")
        second = last_code(emulator)
        clock.advance(2)
        if first != second:
            result = service.check(NUMBER, "SignIn", first)
            assert (result.status, result.attempts_left) == (CheckStatus.WRONG_CODE, 4)

    def test_code_expires_after_ttl(self, service, emulator, clock):
        """At ttl the code is NOT_FOUND; a millisecond before, it still approves."""
        verification = service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        assert (verification.expires_at.timestamp() - clock.now) == 600
        clock.advance(600)
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND

    def test_code_is_valid_until_just_before_ttl(self, service, emulator, clock):
        """A code checked 1 ms before its expiry is approved."""
        service.start(NUMBER, "SignIn")
        clock.advance(599.999)
        assert service.check(NUMBER, "SignIn", last_code(emulator)).ok

    def test_verification_fields(self, service, clock):
        """expires_at and resend_after are aware datetimes from the service clock."""
        verification = service.start(NUMBER, "SignIn")
        assert verification.expires_at.tzinfo is not None
        assert verification.resend_after.timestamp() == clock.now + 60
        assert verification.usage_type.value == "SignIn"
        assert verification.send_result is not None
        assert verification.id

    def test_invalid_number_is_refused_before_anything(self, service, emulator):
        """An invalid number raises InvalidPhoneNumberError and sends nothing."""
        with pytest.raises(InvalidPhoneNumberError):
            service.start("12345", "SignIn")
        assert emulator.outbox == []

    def test_code_with_surrounding_spaces_is_accepted(self, service, emulator):
        """A pasted code with whitespace around it is the same code."""
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", f" {last_code(emulator)}\n").ok


class TestLimits:
    """Every limit refuses before an SMS is paid for, with an exact retry_after."""

    def test_resend_cooldown(self, service, emulator, clock):
        """A second start within 60 s is VerificationCooldown, retry_after the time left."""
        service.start(NUMBER, "SignIn")
        clock.advance(10)
        error = refused(service.start, NUMBER, "SignIn")
        assert error.code == "VerificationCooldown"
        assert error.retry_after == 50
        assert len(emulator.outbox) == 1
        clock.advance(50)
        service.start(NUMBER, "SignIn")
        assert len(emulator.outbox) == 2

    def test_number_cooldown_spans_usage_types(self, service, emulator, clock):
        """A Register code 30 s after a SignIn code is refused, as Aliyun would."""
        service.start(NUMBER, "SignIn")
        clock.advance(30)
        error = refused(service.start, NUMBER, "Register")
        assert error.code == "VerificationCooldown"
        assert error.retry_after == 30
        assert len(emulator.outbox) == 1

    def test_number_cooldown_can_be_turned_off(self, connector, store, clock, emulator):
        """With per_number_cooldown=0 another usage type may start at once."""
        service = make_service(connector, store, clock, per_number_cooldown=timedelta(0))
        service.start(NUMBER, "SignIn")
        clock.advance(61)  # the emulator's own per-minute flow control
        service.start(NUMBER, "Register")
        with pytest.raises(RateLimitExceededError):
            service.start(NUMBER, "Register")

    def test_per_number_hourly(self, service, emulator, clock):
        """The 6th code in an hour is NumberHourlyLimit until the first leaves the window."""
        for _ in range(5):
            service.start(NUMBER, "SignIn")
            clock.advance(61)
        error = refused(service.start, NUMBER, "SignIn")
        assert error.code == "NumberHourlyLimit"
        assert error.retry_after == 3600 - 5 * 61
        assert len(emulator.outbox) == 5
        clock.advance(error.retry_after - 0.001)
        assert refused(service.start, NUMBER, "SignIn").retry_after == 0.001
        clock.advance(0.001)
        service.start(NUMBER, "SignIn")

    def test_per_number_daily(self, service, emulator, clock):
        """The 11th code in a day is NumberDailyLimit until the first leaves the window."""
        for _hour in range(2):
            for _ in range(5):
                service.start(NUMBER, "SignIn")
                clock.advance(61)
            clock.advance(3600)
        elapsed = 2 * (5 * 61 + 3600)
        error = refused(service.start, NUMBER, "SignIn")
        assert error.code == "NumberDailyLimit"
        assert error.retry_after == 86400 - elapsed
        assert len(emulator.outbox) == 10

    def test_per_ip_hourly(self, connector, store, clock, emulator):
        """Codes from one IP to many numbers stop at per_ip_hourly."""
        service = make_service(connector, store, clock, per_ip_hourly=2)
        service.start("13800138001", "SignIn", client_ip="203.0.113.9")
        clock.advance(1)
        service.start("13800138002", "SignIn", client_ip="203.0.113.9")
        clock.advance(1)
        error = refused(service.start, "13800138003", "SignIn", client_ip="203.0.113.9")
        assert error.code == "IpHourlyLimit"
        assert error.retry_after == 3599 - 1
        service.start("13800138003", "SignIn", client_ip="203.0.113.10")
        assert len(emulator.outbox) == 3

    def test_ip_refusal_leaves_the_number_free(self, connector, store, clock, emulator):
        """A start refused by the IP limit leaves no cooldown on the number."""
        service = make_service(connector, store, clock, per_ip_hourly=1)
        service.start("13800138001", "SignIn", client_ip="203.0.113.9")
        refused(service.start, NUMBER, "SignIn", client_ip="203.0.113.9")
        service.start(NUMBER, "SignIn", client_ip="198.51.100.1")
        assert len(emulator.outbox) == 2

    def test_ip_refusal_keeps_the_numbers_pending_code(self, connector, store, clock, emulator):
        """A start refused by the IP limit does not wipe the victim's pending code."""
        service = make_service(connector, store, clock, per_ip_hourly=1)
        service.start("13800138001", "SignIn", client_ip="203.0.113.9")
        service.start(NUMBER, "SignIn", client_ip="198.51.100.1")
        code = last_code(emulator)
        clock.advance(61)
        refused(service.start, NUMBER, "SignIn", client_ip="203.0.113.9")
        assert service.check(NUMBER, "SignIn", code).ok

    def test_ipv6_addresses_in_one_64_share_the_limit(self, connector, store, clock):
        """Rotating addresses inside one IPv6 /64 does not escape the per-IP limit."""
        service = make_service(connector, store, clock, per_ip_hourly=1)
        service.start("13800138001", "SignIn", client_ip="2001:db8:1:2::1")
        error = refused(service.start, "13800138002", "SignIn", client_ip="2001:db8:1:2::ffff")
        assert error.code == "IpHourlyLimit"

    def test_global_hourly(self, connector, store, clock, emulator):
        """The application's budget refuses the next code with GlobalHourlyLimit."""
        service = make_service(connector, store, clock, global_hourly=2)
        service.start("13800138001", "SignIn")
        clock.advance(100)
        service.start("13800138002", "SignIn")
        error = refused(service.start, "13800138003", "SignIn")
        assert error.code == "GlobalHourlyLimit"
        assert error.retry_after == 3500
        assert len(emulator.outbox) == 2

    def test_country_not_allowed(self, connector, store, clock, emulator):
        """A number outside allowed_countries is PermissionDeniedError CountryNotAllowed."""
        service = make_service(connector, store, clock, allowed_countries={"CN"})
        with pytest.raises(PermissionDeniedError) as caught:
            service.start("+85261234567", "SignIn")
        assert caught.value.code == "CountryNotAllowed"
        assert emulator.outbox == []
        service.start(NUMBER, "SignIn")


class TestFailedSend:
    """What a failed send leaves behind depends on whether the SMS may have gone out."""

    # SMS templates only: the Message Authentication Service has no regional
    # templates, and refuses a non-mainland number itself (tests/_mas).
    @pytest.mark.parametrize("channel", ["sms"], indirect=True)
    def test_a_template_that_cannot_serve_the_region(self, connector, store, clock, emulator):
        """A +852 number and a plain domestic template: TemplateError, no request, nothing held.

        The connector refuses before any request (a +1 number would otherwise
        be written as a mainland one); the service gives back what it took.
        """
        service = make_service(connector, store, clock, global_hourly=1, per_ip_hourly=1)
        with pytest.raises(TemplateError) as caught:
            service.start("+85261234567", "SignIn", client_ip="203.0.113.5")
        assert caught.value.code == "TemplateRegionMismatch"
        assert caught.value.maybe_sent is False
        assert emulator.requests == []
        assert service.check("+85261234567", "SignIn", "123456").status is CheckStatus.NOT_FOUND
        # The global and per-IP budgets of 1 are intact.
        service.start(NUMBER, "SignIn", client_ip="203.0.113.5")
        assert len(emulator.outbox) == 1

    def test_nothing_sent_releases_code_cooldown_and_caps(self, connector, store, clock, emulator):
        """maybe_sent=False: the code is gone, no cooldown holds, no cap is consumed."""
        service = make_service(connector, store, clock, per_number_hourly=1)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AccountError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.maybe_sent is False
        assert service.check(NUMBER, "SignIn", "123456").status is CheckStatus.NOT_FOUND
        service.start(NUMBER, "SignIn")  # no cooldown, and the hourly cap of 1 is intact
        assert service.check(NUMBER, "SignIn", last_code(emulator)).ok

    def test_nothing_sent_puts_the_replaced_code_back(self, service, emulator, clock):
        """A start that sent nothing leaves the previous code valid, attempts and all."""
        service.start(NUMBER, "SignIn")
        first = last_code(emulator)
        wrong = "000000" if first != "000000" else "111111"
        service.check(NUMBER, "SignIn", wrong)
        clock.advance(61)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AccountError):
            service.start(NUMBER, "SignIn")
        result = service.check(NUMBER, "SignIn", wrong)
        assert result.status is CheckStatus.WRONG_CODE
        assert result.attempts_left == 3
        assert service.check(NUMBER, "SignIn", first).ok

    def test_expired_replaced_code_is_not_put_back(self, service, emulator, clock):
        """A replaced code that has expired meanwhile stays gone after a release."""
        service.start(NUMBER, "SignIn")
        first = last_code(emulator)
        clock.advance(600)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AccountError):
            service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", first).status is CheckStatus.NOT_FOUND

    def test_nothing_sent_refunds_ip_and_global(self, connector, store, clock, emulator):
        """maybe_sent=False gives back the per-IP and global counts too."""
        service = make_service(connector, store, clock, per_ip_hourly=1, global_hourly=1)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AccountError):
            service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
        service.start(OTHER_NUMBER, "SignIn", client_ip="203.0.113.9")

    def test_maybe_sent_keeps_the_code_and_the_caps(
        self, connector, store, clock, mocker, channel, emulator
    ):
        """maybe_sent=True: the code stays valid and the cooldown holds."""
        service = make_service(connector, store, clock)
        payloads = []

        def read_timeout(self, to, usage_type, payload=None, *, out_id=None):
            payloads.append(payload)
            raise NetworkError("timed out", code="ReadTimeout", maybe_sent=True)

        if channel == "sms":
            mocker.patch.object(
                AliyunSmsConnector, "send_message", autospec=True, side_effect=read_timeout
            )
        else:
            emulator.drop_connection()  # Aliyun made and sent the code; the answer was lost
        with pytest.raises(NetworkError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.maybe_sent is True
        assert refused(service.start, NUMBER, "SignIn").code == "VerificationCooldown"
        code = payloads[0]["code"] if channel == "sms" else last_code(emulator)
        assert service.check(NUMBER, "SignIn", code).ok

    def test_connection_dropped_before_sending(self, connector, store, clock, emulator):
        """A dropped connection is raised as it is, with its own maybe_sent."""
        service = make_service(connector, store, clock)
        emulator.drop_connection()
        with pytest.raises(NetworkError):
            service.start(NUMBER, "SignIn")


class TestTestNumbers:
    """Test numbers get their fixed code and no SMS."""

    def test_fixed_code_no_sms(self, connector, store, clock, emulator):
        """A test number's fixed code approves and nothing reaches Aliyun."""
        service = make_service(
            connector, store, clock, test_numbers={"+86 139 0013 9000": "246810"}
        )
        verification = service.start("13900139000", "SignIn")
        assert verification.send_result is None
        assert emulator.requests == []
        assert service.check("13900139000", "SignIn", "246810").ok


class TestConcurrency:
    """Races resolve in the store, atomically."""

    def test_two_concurrent_starts_send_one_sms(self, service, emulator):
        """Two starts at once: exactly one SMS, the other gets VerificationCooldown."""
        barrier = threading.Barrier(2)

        def start():
            barrier.wait()
            try:
                return service.start(NUMBER, "SignIn")
            except RateLimitExceededError as error:
                return error

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: start(), range(2)))
        errors = [r for r in results if isinstance(r, RateLimitExceededError)]
        assert len(errors) == 1
        assert errors[0].code == "VerificationCooldown"
        assert len(emulator.outbox) == 1

    def test_fifty_concurrent_wrong_checks_count_max_attempts(self, service, emulator):
        """50 wrong codes at once: exactly max_attempts are counted as WRONG_CODE."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        wrong = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 51)]
        barrier = threading.Barrier(50)

        def check(guess):
            barrier.wait()
            return service.check(NUMBER, "SignIn", guess).status

        with ThreadPoolExecutor(50) as pool:
            statuses = list(pool.map(check, wrong))
        assert statuses.count(CheckStatus.WRONG_CODE) == 5
        assert statuses.count(CheckStatus.TOO_MANY_ATTEMPTS) == 45
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.TOO_MANY_ATTEMPTS

    def test_two_concurrent_right_checks_approve_once(self, service, emulator):
        """The right code twice at once: exactly one APPROVED."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        barrier = threading.Barrier(2)

        def check(_):
            barrier.wait()
            return service.check(NUMBER, "SignIn", code).status

        with ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(check, range(2)))
        assert sorted(statuses) == sorted([CheckStatus.APPROVED, CheckStatus.NOT_FOUND])


class TestAsync:
    """The async twins keep the same contract, concurrency included."""

    def test_start_and_check(self, service, emulator):
        """start_async sends, check_async approves once."""

        async def main():
            await service.start_async(NUMBER, "SignIn")
            code = last_code(emulator)
            first = await service.check_async(NUMBER, "SignIn", code)
            second = await service.check_async(NUMBER, "SignIn", code)
            return first.status, second.status

        assert run_closing(service, main) == (CheckStatus.APPROVED, CheckStatus.NOT_FOUND)

    def test_concurrent_starts_send_one_sms(self, service, emulator):
        """Two start_async at once: one SMS, one VerificationCooldown."""

        async def main():
            return await asyncio.gather(
                service.start_async(NUMBER, "SignIn"),
                service.start_async(NUMBER, "SignIn"),
                return_exceptions=True,
            )

        results = run_closing(service, main)
        assert sum(isinstance(r, RateLimitExceededError) for r in results) == 1
        assert len(emulator.outbox) == 1

    def test_fifty_concurrent_wrong_checks(self, service, emulator):
        """50 check_async with wrong codes: exactly max_attempts WRONG_CODE."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)

        async def main():
            results = await asyncio.gather(
                *(
                    service.check_async(NUMBER, "SignIn", f"{(int(code) + i) % 1_000_000:06d}")
                    for i in range(1, 51)
                )
            )
            right = await service.check_async(NUMBER, "SignIn", code)
            return [r.status for r in results], right.status

        statuses, right = run_closing(service, main)
        assert statuses.count(CheckStatus.WRONG_CODE) == 5
        assert right is CheckStatus.TOO_MANY_ATTEMPTS

    def test_two_concurrent_right_checks(self, service, emulator):
        """The right code twice at once through check_async: one APPROVED."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)

        async def main():
            results = await asyncio.gather(
                service.check_async(NUMBER, "SignIn", code),
                service.check_async(NUMBER, "SignIn", code),
            )
            return [r.status for r in results]

        assert sorted(run_closing(service, main)) == sorted(
            [CheckStatus.APPROVED, CheckStatus.NOT_FOUND]
        )

    def test_nothing_sent_releases_async(self, connector, store, clock, emulator):
        """start_async with maybe_sent=False releases the code, cooldown and caps."""
        service = make_service(connector, store, clock, per_ip_hourly=1)

        async def main():
            emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
            with pytest.raises(AccountError):
                await service.start_async(NUMBER, "SignIn", client_ip="203.0.113.9")
            await service.start_async(NUMBER, "SignIn", client_ip="203.0.113.9")

        run_closing(service, main)
        assert len(emulator.outbox) == 1


def test_unavailable_error_is_importable():
    """StoreUnavailable is a ServiceUnavailableError (the public type callers catch)."""
    from aliyun_sms_connector.verify._store import store_unavailable

    error = store_unavailable()
    assert isinstance(error, ServiceUnavailableError)
    assert error.code == "StoreUnavailable"
    assert error.retryable is True
