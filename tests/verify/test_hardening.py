"""The attacks of the adversarial review (issue 18), each run against every store kind.

- The start/release window: refused or failed re-starts of a victim's
  verification, with guesses running at the same time, gave unlimited guesses.
- A full Redis (``maxmemory`` with ``noeviction``) refused the guess's count
  but still judged it.
- A stranger could probe and lock a pending code with the number alone.
- Numbers of any type, and any text as ``client_ip``, were accepted.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections import Counter
from datetime import timedelta

import pytest

from aliyun_sms_connector import (
    AliyunSmsError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
)
from aliyun_sms_connector.verify import CheckStatus, VerificationPolicy, VerificationService

from .conftest import NUMBER, SECRET_KEY, FakeClock, redis_store, sms_connector, sms_emulator
from .fake_mas import FakeAliyun

ATTACKER_IP = "198.51.100.66"
# Twenty numbers of the attacker's own, to use up the IP's starts.
ATTACKER_NUMBERS = [f"+8613900139{n:03d}" for n in range(20)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


# Local codes on the emulator, and Aliyun-made codes (issue 19) on FakeAliyun:
# every limit, lock and invariant holds in both modes.
CHANNELS = ["sms", "mas-aliyun"]


@pytest.fixture(params=CHANNELS)
def channel(request) -> str:
    return request.param


@pytest.fixture
def emulator(channel, clock):
    if channel != "sms":
        yield FakeAliyun(clock)
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


def make_service(connector, store, clock, **policy) -> VerificationService:
    fake = getattr(connector, "fake", None)
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
        codes="local" if fake is None else fake.codes,
    )


def last_code(emulator) -> str:
    return emulator.outbox[-1].params["code"]


def wrong_codes(right: str):
    """Six-digit codes other than ``right``, in order."""
    return (f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" != right)


def attack(service, restart, right: str, guesses: int = 60, restarts: int = 300) -> Counter:
    """Re-start the victim's verification ``restarts`` times while guessing (never ``right``)."""
    statuses: Counter = Counter()
    done = threading.Event()

    def restarting():
        try:
            for _ in range(restarts):
                try:
                    restart()
                except AliyunSmsError as error:  # noqa: PERF203 - each refusal is counted
                    statuses[f"start:{error.code}"] += 1
                else:
                    statuses["start:sent"] += 1
        finally:
            done.set()

    thread = threading.Thread(target=restarting)
    thread.start()
    codes = wrong_codes(right)
    made = 0
    while made < guesses or not done.is_set():
        try:
            result = service.check(NUMBER, "SignIn", next(codes))
        except AliyunSmsError as error:
            statuses[f"check:{error.code}"] += 1
        else:
            statuses[result.status] += 1
        made += 1
    thread.join()
    return statuses


def checker(service, run: str):
    """check(number, code) from ATTACKER_IP, on the sync path or the async one."""

    async def check_async(number, code):
        try:
            return await service.check_async(number, "SignIn", code, client_ip=ATTACKER_IP)
        finally:
            await service.store.aclose()

    def check(number, code):
        if run == "sync":
            return service.check(number, "SignIn", code, client_ip=ATTACKER_IP)
        return asyncio.run(check_async(number, code))

    return check


class TestWindowAttack:
    """A refused or failed start leaves the pending verification exactly as it was."""

    @pytest.mark.parametrize("refused_by", ["ip_limit", "aliyun"])
    def test_restarts_give_no_free_guesses(self, connector, emulator, store, clock, refused_by):
        """Hundreds of refused re-starts and concurrent guesses: max_attempts wrong, then locked."""
        service = make_service(connector, store, clock)
        service.start(NUMBER, "SignIn")
        right = last_code(emulator)
        clock.advance(61)  # past the victim's cooldown, well inside the code's ttl
        if refused_by == "ip_limit":
            for number in ATTACKER_NUMBERS:  # per_ip_hourly is 20
                service.start(number, "SignIn", client_ip=ATTACKER_IP)
            sent_before = len(emulator.outbox)

            def restart():
                service.start(NUMBER, "SignIn", client_ip=ATTACKER_IP)
        else:
            sent_before = len(emulator.outbox)
            emulator.fail_next("isv.BUSINESS_LIMIT_CONTROL", count=10_000, phone_number=NUMBER)

            def restart():
                service.start(NUMBER, "SignIn")

        statuses = attack(service, restart, right)
        expected = "IpHourlyLimit" if refused_by == "ip_limit" else "isv.BUSINESS_LIMIT_CONTROL"
        assert statuses[f"start:{expected}"] >= 1
        assert statuses["start:sent"] == 0
        assert len(emulator.outbox) == sent_before
        assert statuses[CheckStatus.APPROVED] == 0
        assert statuses[CheckStatus.WRONG_CODE] == 5  # max_attempts, and not one more
        assert statuses[CheckStatus.NOT_FOUND] == 0
        locked = service.check(NUMBER, "SignIn", right)
        assert locked.status is CheckStatus.TOO_MANY_ATTEMPTS

    def test_guesses_during_a_send_count_on_the_pending_code(
        self, connector, emulator, store, clock, mocker
    ):
        """While a new code's SMS is on its way, checks are judged against the old code."""
        if getattr(connector, "fake", None) is not None:
            pytest.skip("local codes only: test_aliyun_codes.py covers a send in flight")
        service = make_service(connector, store, clock)
        service.start(NUMBER, "SignIn")
        old = last_code(emulator)
        clock.advance(61)
        seen = []
        send = connector.send_message

        def checking_send(to, usage_type, payload=None, **kwargs):
            new = payload["code"]
            seen.append(service.check(NUMBER, "SignIn", new).status)  # never sent yet
            seen.append(service.check(NUMBER, "SignIn", old).status)
            return send(to, usage_type, payload, **kwargs)

        mocker.patch.object(connector, "send_message", side_effect=checking_send)
        service.start(NUMBER, "SignIn")
        new = last_code(emulator)
        if new == old:  # one chance in a million
            pytest.skip("the two codes happen to be equal")
        assert seen == [CheckStatus.WRONG_CODE, CheckStatus.APPROVED]
        assert service.check(NUMBER, "SignIn", new).ok

    def test_number_budget_survives_new_codes(self, connector, emulator, store, clock):
        """per_number_failed_checks_hourly holds across codes: past it, even a right code fails."""
        service = make_service(
            connector, store, clock, max_attempts=3, per_number_failed_checks_hourly=5
        )
        wrong = 0
        for _ in range(3):
            service.start(NUMBER, "SignIn")
            right = last_code(emulator)
            for code in wrong_codes(right):
                result = service.check(NUMBER, "SignIn", code)
                if result.status is not CheckStatus.WRONG_CODE:
                    break
                wrong += 1
            clock.advance(61)
        assert wrong == 5
        assert service.check(NUMBER, "SignIn", right).status is CheckStatus.TOO_MANY_ATTEMPTS
        clock.advance(3600)
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", last_code(emulator)).ok

    def test_test_numbers_are_under_the_number_budget(self, connector, emulator, store, clock):
        """A test number's fixed code gets fresh attempts per start, but not a fresh budget."""
        service = make_service(
            connector,
            store,
            clock,
            per_number_failed_checks_hourly=7,
            test_numbers={"+8613700137000": "4321"},
        )
        wrong = 0
        for _ in range(4):
            service.start("+8613700137000", "SignIn")
            for code in wrong_codes("4321"):
                if service.check("+8613700137000", "SignIn", code).status is not (
                    CheckStatus.WRONG_CODE
                ):
                    break
                wrong += 1
            clock.advance(61)
        assert wrong == 7
        assert emulator.outbox == []

    def test_async_restarts_give_no_free_guesses(self, connector, emulator, store, clock):
        """The same on the async twins: refused re-starts and guesses as concurrent tasks."""
        service = make_service(connector, store, clock)
        service.start(NUMBER, "SignIn")
        right = last_code(emulator)
        clock.advance(61)
        emulator.fail_next("isv.BUSINESS_LIMIT_CONTROL", count=10_000, phone_number=NUMBER)
        statuses: Counter = Counter()

        async def restarting():
            for _ in range(100):
                try:
                    await service.start_async(NUMBER, "SignIn")
                except AliyunSmsError as error:  # noqa: PERF203 - each refusal is counted
                    statuses[f"start:{error.code}"] += 1

        async def guessing(codes):
            for _ in range(20):
                statuses[(await service.check_async(NUMBER, "SignIn", next(codes))).status] += 1
                await asyncio.sleep(0)

        async def main():
            codes = wrong_codes(right)
            try:
                await asyncio.gather(restarting(), guessing(codes), guessing(codes))
                return await service.check_async(NUMBER, "SignIn", right)
            finally:
                await store.aclose()

        locked = asyncio.run(main())
        assert statuses["start:isv.BUSINESS_LIMIT_CONTROL"] == 100
        assert statuses[CheckStatus.WRONG_CODE] == 5
        assert statuses[CheckStatus.APPROVED] == 0
        assert locked.status is CheckStatus.TOO_MANY_ATTEMPTS


class TestVerificationId:
    """With require_verification_id, only the holder of the start's id can check."""

    def test_a_stranger_changes_nothing(self, connector, emulator, store, clock):
        """A stranger's 20 guesses, with no id or a made-up one, all NOT_FOUND and uncounted."""
        service = make_service(connector, store, clock, require_verification_id=True)
        assert service.check(NUMBER, "SignIn", "123456").status is CheckStatus.NOT_FOUND
        verification = service.start(NUMBER, "SignIn")
        right = last_code(emulator)
        codes = wrong_codes(right)
        for n in range(20):
            made_up = None if n % 2 else f"made-up-{n}"
            result = service.check(NUMBER, "SignIn", next(codes), verification_id=made_up)
            assert result.status is CheckStatus.NOT_FOUND
            assert result.attempts_left == 0
        # Even the right code without the id says nothing.
        assert service.check(NUMBER, "SignIn", right).status is CheckStatus.NOT_FOUND
        first = service.check(NUMBER, "SignIn", next(codes), verification_id=verification.id)
        assert first.status is CheckStatus.WRONG_CODE
        assert first.attempts_left == 4  # none of the stranger's guesses counted
        assert service.check(NUMBER, "SignIn", right, verification_id=verification.id).ok

    def test_an_old_id_does_not_check_a_new_code(self, connector, emulator, store, clock):
        """A replaced verification's id answers NOT_FOUND."""
        service = make_service(connector, store, clock, require_verification_id=True)
        old = service.start(NUMBER, "SignIn")
        clock.advance(61)
        new = service.start(NUMBER, "SignIn")
        right = last_code(emulator)
        assert service.check(NUMBER, "SignIn", right, verification_id=old.id).status is (
            CheckStatus.NOT_FOUND
        )
        assert service.check(NUMBER, "SignIn", right, verification_id=new.id).ok

    def test_ids_are_unguessable(self, connector, emulator, store, clock):
        """Verification ids carry at least 96 random bits."""
        service = make_service(connector, store, clock, resend_cooldown=timedelta(0))
        ids = {service.start(f"+861390013{n:04d}", "SignIn").id for n in range(5)}
        assert len(ids) == 5
        assert all(len(i) >= 16 for i in ids)  # 16 url-safe characters: 96 bits


class TestClientIp:
    """client_ip is an address, and its wrong guesses are capped across numbers."""

    @pytest.mark.parametrize("bad", ["", " ", "unknown", "203.0.113.300", "example.com"])
    def test_not_an_address_is_refused_before_anything(self, connector, emulator, store, bad):
        """start and check refuse a client_ip that is not an address, and store nothing."""
        service = make_service(connector, store, FakeClock())
        with pytest.raises(ValueError, match="client_ip"):
            service.start(NUMBER, "SignIn", client_ip=bad)
        assert emulator.requests == []
        with pytest.raises(ValueError, match="client_ip"):
            service.check(NUMBER, "SignIn", "123456", client_ip=bad)

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_wrong_guesses_per_ip_are_capped(self, connector, emulator, store, clock, run):
        """One address spraying guesses over many numbers is stopped at its cap."""
        service = make_service(
            connector, store, clock, resend_cooldown=timedelta(0), per_ip_failed_checks_hourly=6
        )
        numbers = [f"+861390013{n:04d}" for n in range(4)]
        for number in numbers:
            service.start(number, "SignIn")
        check = checker(service, run)

        outcomes = []
        for number in numbers:
            for code in ("000001", "000002"):
                try:
                    outcomes.append(check(number, code).status)
                except RateLimitExceededError as error:  # noqa: PERF203 - the refusal is the outcome
                    outcomes.append(error.code)
                    assert 0 < error.retry_after <= 3600
        assert outcomes.count(CheckStatus.WRONG_CODE) == 6
        assert outcomes[6:] == ["IpFailedChecksLimit"] * 2
        # Another address, and the owners themselves, are not held up.
        assert service.check(numbers[-1], "SignIn", "000003", client_ip="203.0.113.1").status is (
            CheckStatus.WRONG_CODE
        )

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_right_codes_do_not_use_the_ip_budget(self, connector, emulator, store, clock, run):
        """An office behind one address: approvals and NOT_FOUND do not count against its cap."""
        service = make_service(
            connector, store, clock, resend_cooldown=timedelta(0), per_ip_failed_checks_hourly=2
        )
        check = checker(service, run)

        for n in range(5):
            number = f"+861390013{n:04d}"
            assert check(number, "123456").status is CheckStatus.NOT_FOUND
            service.start(number, "SignIn")
            assert check(number, last_code(emulator)).ok


class TestNumberTypes:
    """Only numbers that can receive a code are sent one."""

    @pytest.mark.parametrize(
        ("number", "kind"),
        [
            ("+19002345678", "premium rate"),
            ("+18002345678", "toll free"),
            ("+442072345678", "fixed line"),
            ("+445631231234", "voip"),
            ("+447640123456", "pager"),
            ("+445512345678", "uan"),
            ("+447012345678", "personal number"),
            ("+861012345678", "fixed line"),
        ],
    )
    def test_refused_before_anything(self, connector, emulator, store, clock, number, kind):
        """A number that cannot receive a code (phonenumbers' examples): refused, no SMS."""
        import phonenumbers

        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed)
        service = make_service(connector, store, clock)
        with pytest.raises(PermissionDeniedError) as caught:
            service.start(number, "SignIn")
        assert caught.value.code == "NumberTypeNotAllowed"
        assert kind in str(caught.value)
        assert emulator.requests == []

    def test_test_numbers_are_exempt(self, connector, emulator, store, clock):
        """A test number of any type gets its fixed code."""
        service = make_service(connector, store, clock, test_numbers={"+442072345678": "1234"})
        service.start("+442072345678", "SignIn")
        assert service.check("+442072345678", "SignIn", "1234").ok


class TestFullRedis:
    """Under maxmemory with noeviction, a guess that cannot be counted is not judged."""

    def test_right_code_is_not_approved_when_guesses_cannot_count(
        self, connector, emulator, standalone_redis, clock
    ):
        """40 wrong guesses and the right one: all StoreUnavailable while Redis is full."""
        store = redis_store(standalone_redis.url)
        service = make_service(connector, store, clock)
        try:
            service.start(NUMBER, "SignIn")
            right = last_code(emulator)
            codes = wrong_codes(right)
            assert service.check(NUMBER, "SignIn", next(codes)).attempts_left == 4
            with standalone_redis.client() as admin:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", 1)
                try:
                    for _ in range(40):
                        with pytest.raises(ServiceUnavailableError):
                            service.check(NUMBER, "SignIn", next(codes))
                    with pytest.raises(ServiceUnavailableError):
                        service.check(NUMBER, "SignIn", right)
                finally:
                    admin.config_set("maxmemory", 0)
            # Nothing was judged while full: the one guess before counts, no other.
            again = service.check(NUMBER, "SignIn", next(codes))
            assert again.status is CheckStatus.WRONG_CODE
            assert again.attempts_left == 3
            assert service.check(NUMBER, "SignIn", right).ok
        finally:
            store.close()

    def test_a_full_redis_sends_no_sms(self, connector, emulator, standalone_redis, clock):
        """Starts (with the per-IP and global limits too) and IP-bound checks hold nothing."""
        store = redis_store(standalone_redis.url)
        service = make_service(connector, store, clock, global_hourly=1000)
        try:
            service.start(NUMBER, "SignIn", client_ip=ATTACKER_IP)  # every script cached
            service.check(NUMBER, "SignIn", "000000", client_ip=ATTACKER_IP)
            service.check(NUMBER, "SignIn", last_code(emulator), client_ip=ATTACKER_IP)
            sent = len(emulator.requests)
            with standalone_redis.client() as admin:
                used = admin.info("memory")["used_memory"]
                admin.config_set("maxmemory", 1)
                try:
                    for n in range(20):
                        number = f"+861390013{n:04d}"
                        with pytest.raises(ServiceUnavailableError):
                            service.start(number, "SignIn", client_ip=ATTACKER_IP)
                        with pytest.raises(ServiceUnavailableError):
                            service.start(number, "SignIn")
                        with pytest.raises(ServiceUnavailableError):
                            service.check(number, "SignIn", "123456", client_ip=f"2001:db8:{n}::1")
                    grown = admin.info("memory")["used_memory"] - used
                finally:
                    admin.config_set("maxmemory", 0)
            assert len(emulator.requests) == sent
            assert grown < 64 * 1024  # nothing of the 60 calls was kept
        finally:
            store.close()


class TestStrictInputs:
    """What the review sent that the service must refuse, and where."""

    def test_an_empty_verification_id_binds_to_nothing(self, connector, emulator, store, clock):
        """verification_id='' is no id: NOT_FOUND, nothing counted, on every store."""
        service = make_service(connector, store, clock, require_verification_id=True)
        verification = service.start(NUMBER, "SignIn")
        right = last_code(emulator)
        for code in (right, "000000", "111111", "222222", "333333", "444444"):
            result = service.check(NUMBER, "SignIn", code, verification_id="")
            assert result.status is CheckStatus.NOT_FOUND
        assert service.check(NUMBER, "SignIn", right, verification_id=verification.id).ok

    def test_a_huge_number_is_refused_unread(self, connector, emulator, store, clock, caplog):
        """10 MB of '-' and a number: InvalidPhoneNumberError, and the log line masks all."""
        service = make_service(connector, store, clock)
        huge = "-" * 10_000_000 + "13800138000"
        caplog.set_level("INFO", logger="aliyun_sms_connector.verify")
        with pytest.raises(InvalidPhoneNumberError):
            service.start(huge, "SignIn")
        with pytest.raises(InvalidPhoneNumberError):
            service.check(huge, "SignIn", "123456")
        assert emulator.requests == []
        lines = [r.getMessage() for r in caplog.records if r.name == "aliyun_sms_connector.verify"]
        assert len(lines) == 2
        assert all("to=*** " in line for line in lines)

    def test_a_refused_test_number_leaves_no_code_in_frames(
        self, connector, emulator, store, clock
    ):
        """A test number outside allowed_countries: the error's frames do not hold its code."""
        service = make_service(
            connector, store, clock, allowed_countries={"GB"}, test_numbers={NUMBER: "97531"}
        )
        with pytest.raises(PermissionDeniedError) as caught:
            service.start(NUMBER, "SignIn")
        rendered = "".join(
            traceback.TracebackException.from_exception(caught.value, capture_locals=True).format()
        )
        assert "CountryNotAllowed" in rendered
        assert "97531" not in rendered
