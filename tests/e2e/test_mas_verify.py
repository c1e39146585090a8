"""The verification service over the real AliyunMasConnector and the emulator's Dypnsapi.

Both code modes: ``codes="local"`` (the service makes the code, the MAS
connector is the channel) and ``codes="aliyun"`` (Aliyun makes and checks
it). Every test runs sync and async, on MemoryStore and on a real
redis-server. The service and the emulator share one fake clock, so that the
policy's ``ttl`` and Aliyun's ``ValidTime`` run out together.

What the emulator received (``requests_for``) is the proof of what reached
Aliyun: a refusal of the service's own never does, and Aliyun is asked at
most once per guess the store counted.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunMasConnector,
    AliyunSmsError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
)
from aliyun_sms_connector.emulator import Emulator
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)
from tests.verify.conftest import SECRET_KEY, redis_url  # noqa: F401 - the Redis fixture

from ..privacy import assert_no_leak  # noqa: TID252 - the harness is shared by both suites
from .mas_helpers import CHECK, KEY_ID, NUMBER, SECRET, SEND, requests_for

OTHER = "13900139000"
WRONG = "000000"

pytestmark = pytest.mark.parametrize("codes", ["local", "aliyun"])


@pytest.fixture(params=["memory", "redis"])
def store(request, run):
    """A fresh MemoryStore, or a RedisStore on a real redis-server with keys of its own.

    The Redis one is closed before ``run``'s event loop is: its async
    connections belong to that loop.
    """
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    redis = RedisStore.from_url(url, prefix=f"mas-e2e-{uuid.uuid4().hex[:12]}:", store_timeout=5.0)
    yield redis
    if run.loop is not None:
        run.loop.run_until_complete(redis.aclose())
    redis.close()


def mas_connector(emulator: Emulator, **overrides) -> AliyunMasConnector:
    """The connector on a Logto-style config pointed at ``emulator`` (closed by ``built_mas``)."""
    config = emulator.mas_connector_config(
        readTimeout=2000, connectTimeout=2000, backoffBase=1, backoffCap=5, **overrides
    )
    return AliyunMasConnector(config)


@pytest.fixture
def connector(mas_emulator) -> AliyunMasConnector:
    return mas_connector(mas_emulator)


def service_for(connector, store, clock, codes, **policy) -> VerificationService:
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
        codes=codes,
    )


def code_of(emulator: Emulator, number: str = NUMBER) -> str:
    """What the user reads on the phone: the emulator's last code to ``number``."""
    return emulator.last_code(number, product="mas")


def checks_asked(codes: str, guesses: int) -> int:
    """How many CheckSmsVerifyCode requests ``guesses`` counted guesses make in ``codes`` mode."""
    return guesses if codes == "aliyun" else 0


class TestLife:
    def test_start_wrong_right_approved_then_not_found(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """Start, a wrong guess, the right one approved once; then nothing left to check."""
        service = service_for(connector, store, clock, codes)
        verification = run(service, "start", "+86 138 0013 8000", "SignIn")
        assert verification.masked_number == "***8000"
        assert verification.send_result.template_code == "100001"
        [message] = mas_emulator.outbox
        code = code_of(mas_emulator)
        assert code in message.text
        # local: our code in TemplateParam; aliyun: Aliyun made it from ##code##.
        assert (message.verify_code is not None) == (codes == "aliyun")
        assert len(code) == 6
        assert code.isdigit()

        wrong = run(service, "check", NUMBER, "SignIn", WRONG if code != WRONG else "111111")
        assert (wrong.status, wrong.attempts_left) == (CheckStatus.WRONG_CODE, 4)
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.APPROVED
        assert requests_for(mas_emulator, CHECK) == checks_asked(codes, 2)

        again = run(service, "check", NUMBER, "SignIn", code)
        assert (again.status, again.attempts_left) == (CheckStatus.NOT_FOUND, 0)
        # A used-up verification answers from the store: Aliyun is not asked again.
        assert requests_for(mas_emulator, CHECK) == checks_asked(codes, 2)
        assert requests_for(mas_emulator, SEND) == 1

    def test_a_new_start_replaces_the_old_code(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """After the cooldown a new code replaces the old one, at Aliyun and in the store."""
        service = service_for(connector, store, clock, codes)
        run(service, "start", NUMBER, "SignIn")
        first = code_of(mas_emulator)
        clock.advance(61)
        run(service, "start", NUMBER, "SignIn")
        second = code_of(mas_emulator)
        if first != second:
            assert run(service, "check", NUMBER, "SignIn", first).status is CheckStatus.WRONG_CODE
        assert run(service, "check", NUMBER, "SignIn", second).status is CheckStatus.APPROVED


class TestSendErrors:
    @pytest.mark.parametrize(
        ("aliyun_code", "error_type"),
        [
            ("FREQUENCY_FAIL", RateLimitExceededError),
            ("BUSINESS_LIMIT_CONTROL", RateLimitExceededError),
            ("MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError),
            ("BIZ_NOT_OPEN_STATUS", AccountError),
            ("SECURITY_INTERCEPTED", PermissionDeniedError),
        ],
    )
    def test_a_refused_send_commits_nothing_and_releases_the_cooldown(
        self, mas_emulator, connector, store, clock, run, codes, aliyun_code, error_type
    ):
        """A refused SendSmsVerifyCode is a typed error; a retry at once goes through."""
        service = service_for(connector, store, clock, codes, per_number_hourly=1)
        mas_emulator.fail_next(aliyun_code, action=SEND)
        error = run.outcome(service, "start", NUMBER, "SignIn")
        assert type(error) is error_type
        assert (error.code, error.maybe_sent) == (aliyun_code, False)
        assert_no_leak(error, [NUMBER, SECRET, SECRET_KEY])
        assert mas_emulator.outbox == []
        # Nothing committed: no verification to check, and Aliyun is not asked.
        assert run(service, "check", NUMBER, "SignIn", WRONG).status is CheckStatus.NOT_FOUND
        assert requests_for(mas_emulator, CHECK) == 0

        # Released: neither the cooldown nor the hourly cap of 1 blocks the retry.
        run(service, "start", NUMBER, "SignIn")
        assert requests_for(mas_emulator, SEND) == 2
        code = code_of(mas_emulator)
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.APPROVED


class TestCheckErrors:
    @pytest.mark.parametrize(
        ("aliyun_code", "error_type"),
        [
            ("FREQUENCY_FAIL", RateLimitExceededError),
            ("BIZ_NOT_OPEN_STATUS", AccountError),
        ],
    )
    def test_a_failed_check_fails_closed_and_stays_counted(
        self, mas_emulator, connector, store, clock, run, codes, aliyun_code, error_type
    ):
        """A failed CheckSmsVerifyCode raises and approves nothing; the guess stays counted."""
        service = service_for(connector, store, clock, codes)
        run(service, "start", NUMBER, "SignIn")
        code = code_of(mas_emulator)
        mas_emulator.fail_next(aliyun_code, action=CHECK)
        outcome = run.outcome(service, "check", NUMBER, "SignIn", code)
        if codes == "local":
            # The service checks its own code: Aliyun's check (and its fault) is never reached.
            assert outcome.status is CheckStatus.APPROVED
            assert requests_for(mas_emulator, CHECK) == 0
            return
        assert type(outcome) is error_type
        assert outcome.code == aliyun_code
        # Neither the guess nor the number is reachable from the error, its frames included.
        assert_no_leak(outcome, [code, NUMBER, SECRET, SECRET_KEY])
        assert requests_for(mas_emulator, CHECK) == 1
        # Counted: the next wrong guess has one attempt fewer than a first one would.
        wrong = run(service, "check", NUMBER, "SignIn", WRONG if code != WRONG else "111111")
        assert (wrong.status, wrong.attempts_left) == (CheckStatus.WRONG_CODE, 3)
        # Not approved on doubt, but not used up either: Aliyun still holds the code.
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.APPROVED


class TestConcurrency:
    def test_two_right_checks_at_once_approve_once(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """Two right guesses in flight together: exactly one APPROVED, Aliyun asked <= twice."""
        service = service_for(connector, store, clock, codes)
        run(service, "start", NUMBER, "SignIn")
        code = code_of(mas_emulator)
        # Both checks wait at the emulator together, so both are counted before either answers.
        mas_emulator.delay(0.2, count=None, action=CHECK)
        if run.loop is None:
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(service.check, NUMBER, "SignIn", code) for _ in range(2)]
                results = [future.result() for future in futures]
        else:

            async def both():
                return await asyncio.gather(
                    *(service.check_async(NUMBER, "SignIn", code) for _ in range(2))
                )

            results = run.loop.run_until_complete(both())
        statuses = sorted(result.status.value for result in results)
        assert statuses.count("approved") == 1
        assert set(statuses) <= {"approved", "not_found", "wrong_code"}
        asked = requests_for(mas_emulator, CHECK)
        if codes == "aliyun":
            assert 1 <= asked <= 2  # at most one per counted guess
        else:
            assert asked == 0
        # Whatever the loser saw, nothing is left to approve.
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND
        assert requests_for(mas_emulator, CHECK) == asked


class TestLocks:
    def test_max_attempts_wrong_guesses_lock_without_asking_aliyun_again(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """After max_attempts wrong guesses even the right code is TOO_MANY_ATTEMPTS, unasked."""
        service = service_for(connector, store, clock, codes, max_attempts=3)
        run(service, "start", NUMBER, "SignIn")
        code = code_of(mas_emulator)
        wrong = next(c for c in ("000000", "111111") if c != code)
        lefts = [run(service, "check", NUMBER, "SignIn", wrong).attempts_left for _ in range(3)]
        assert lefts == [2, 1, 0]
        assert requests_for(mas_emulator, CHECK) == checks_asked(codes, 3)
        locked = run(service, "check", NUMBER, "SignIn", code)
        assert (locked.status, locked.attempts_left) == (CheckStatus.TOO_MANY_ATTEMPTS, 0)
        assert requests_for(mas_emulator, CHECK) == checks_asked(codes, 3)

    def test_a_guess_that_cannot_be_a_code_is_counted_but_not_sent(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """A guess of the wrong length is a counted wrong guess; Aliyun never sees it."""
        service = service_for(connector, store, clock, codes)
        run(service, "start", NUMBER, "SignIn")
        result = run(service, "check", NUMBER, "SignIn", "12")
        assert (result.status, result.attempts_left) == (CheckStatus.WRONG_CODE, 4)
        assert requests_for(mas_emulator, CHECK) == 0


class TestLimits:
    def test_the_resend_cooldown_refusal_never_reaches_aliyun(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """A second start within the cooldown is VerificationCooldown, and no request is made."""
        service = service_for(connector, store, clock, codes)
        run(service, "start", NUMBER, "SignIn")
        clock.advance(59)
        error = run.outcome(service, "start", NUMBER, "SignIn")
        assert type(error) is RateLimitExceededError
        assert (error.code, error.maybe_sent) == ("VerificationCooldown", False)
        assert 0 < error.retry_after <= 1
        assert len(mas_emulator.requests) == 1
        # The pending code is untouched.
        code = code_of(mas_emulator)
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.APPROVED

    def test_the_hourly_cap_per_number(self, mas_emulator, connector, store, clock, run, codes):
        """per_number_hourly codes go out; the next is NumberHourlyLimit, unsent, then allowed."""
        service = service_for(connector, store, clock, codes, per_number_hourly=2)
        for _ in range(2):
            run(service, "start", NUMBER, "SignIn")
            clock.advance(61)
        error = run.outcome(service, "start", NUMBER, "SignIn")
        assert type(error) is RateLimitExceededError
        assert error.code == "NumberHourlyLimit"
        assert requests_for(mas_emulator, SEND) == 2
        # Another number has its own cap.
        run(service, "start", OTHER, "SignIn")
        assert requests_for(mas_emulator, SEND) == 3
        clock.advance(3600)
        run(service, "start", NUMBER, "SignIn")
        assert requests_for(mas_emulator, SEND) == 4


class TestExpiry:
    def test_a_code_lives_ttl_seconds_on_both_clocks(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """Just before ttl the code is approved: ValidTime and the store's ttl agree."""
        service = service_for(connector, store, clock, codes, ttl=timedelta(minutes=5))
        run(service, "start", NUMBER, "SignIn")
        if codes == "aliyun":
            assert mas_emulator.requests[0].params["ValidTime"] == "300"
        clock.advance(299)
        code = code_of(mas_emulator)
        assert run(service, "check", NUMBER, "SignIn", code).status is CheckStatus.APPROVED

    def test_an_expired_code_is_not_found_and_aliyun_is_not_asked(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """After ttl on the shared clock the store answers NOT_FOUND before Aliyun is asked."""
        service = service_for(connector, store, clock, codes, ttl=timedelta(minutes=5))
        run(service, "start", NUMBER, "SignIn")
        clock.advance(301)
        code = code_of(mas_emulator)
        result = run(service, "check", NUMBER, "SignIn", code)
        assert (result.status, result.attempts_left) == (CheckStatus.NOT_FOUND, 0)
        assert requests_for(mas_emulator, CHECK) == 0

    def test_aliyuns_valid_time_is_enforced_by_aliyun(self, clock, store, run, codes):
        """Aliyun's clock ahead: its expiry wins for its codes (a counted wrong guess) only."""
        ahead = {"skew": 0.0}
        with Emulator({KEY_ID: SECRET}, clock=lambda: clock() + ahead["skew"]) as emulator:
            connector = mas_connector(emulator)
            service = service_for(connector, store, clock, codes, ttl=timedelta(minutes=5))
            run(service, "start", NUMBER, "SignIn")
            ahead["skew"] = 301.0  # Aliyun's ValidTime of 300 s is over; the store's ttl is not
            code = code_of(emulator)
            result = run(service, "check", NUMBER, "SignIn", code)
            if codes == "local":
                # The service's own code: only the store's ttl applies, and Aliyun is not asked.
                assert result.status is CheckStatus.APPROVED
                assert requests_for(emulator, CHECK) == 0
                return
            assert (result.status, result.attempts_left) == (CheckStatus.WRONG_CODE, 4)
            assert requests_for(emulator, CHECK) == 1


class TestInterval:
    def test_aliyuns_interval_shared_by_usage_types_is_a_released_rate_limit(
        self, mas_emulator, connector, store, clock, run, codes
    ):
        """Another usage type within Interval on one scheme: FREQUENCY_FAIL, nothing kept."""
        service = service_for(
            connector, store, clock, codes, per_number_cooldown=timedelta(0), per_number_hourly=2
        )
        run(service, "start", NUMBER, "SignIn")
        signin_code = code_of(mas_emulator)
        clock.advance(10)
        # The service allows it (its cooldowns are per usage type, and per number 0 here), but
        # Aliyun's Interval (60 s) holds per number and SchemeName, and both use the default one.
        error = run.outcome(service, "start", NUMBER, "Register")
        assert type(error) is RateLimitExceededError
        assert isinstance(error, AliyunSmsError)
        assert (error.code, error.maybe_sent) == ("FREQUENCY_FAIL", False)
        assert requests_for(mas_emulator, SEND) == 2
        assert len(mas_emulator.outbox) == 1
        # Released: after Interval, Register goes out within the hourly cap of 2.
        clock.advance(51)
        run(service, "start", NUMBER, "Register")
        assert requests_for(mas_emulator, SEND) == 3
        register_code = code_of(mas_emulator)
        assert run(service, "check", NUMBER, "Register", register_code).ok

        if codes == "local":
            # The SignIn code is the service's own: untouched by Register's send.
            assert run(service, "check", NUMBER, "SignIn", signin_code).ok

    def test_a_scheme_per_usage_type_keeps_their_intervals_apart(
        self, mas_emulator, store, clock, run, codes
    ):
        """With a schemeName per usage type, SignIn and Register codes go out back to back."""
        templates = [
            {"usageType": "SignIn", "templateCode": "100001", "schemeName": "signin"},
            {"usageType": "Register", "templateCode": "100001", "schemeName": "register"},
        ]
        connector = mas_connector(mas_emulator, templates=templates)
        service = service_for(connector, store, clock, codes, per_number_cooldown=timedelta(0))
        run(service, "start", NUMBER, "SignIn")
        signin_code = code_of(mas_emulator)
        run(service, "start", NUMBER, "Register")
        register_code = code_of(mas_emulator)
        schemes = [request.params.get("SchemeName") for request in mas_emulator.requests]
        assert schemes == ["signin", "register"]
        assert run(service, "check", NUMBER, "SignIn", signin_code).ok
        assert run(service, "check", NUMBER, "Register", register_code).ok
