"""The store fails closed under every fault (issue 11, item 1), sync and async.

A real redis-server sits behind :class:`ChaosProxy`, which refuses, black-holes,
resets mid-script or answers ``READONLY``/``CLUSTERDOWN``/``LOADING``. Faults
that real Redis can produce quickly are also produced for real:
``CLIENT PAUSE`` (a timeout), a failover between two servers (``READONLY`` on
the demoted one), ``SCRIPT FLUSH`` (``NOSCRIPT``), ``FLUSHALL`` and a restart
without persistence (lost data).

Each fault must give ``ServiceUnavailableError(code="StoreUnavailable",
retryable=True)`` whose text names no number, code or address; a start sends
no SMS unless its code was stored; a check never approves without the store's
atomic confirmation and never answers ``WRONG_CODE`` for a guess it could not
confirm, while a guess the store did record still counts.

The scenarios are plain functions so that ``TestTeeth`` can run them against
the deliberately broken stores of ``broken_store.py`` and see them fail.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from aliyun_sms_connector import RateLimitExceededError, ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)

from .broken_store import FLAWS, BrokenStore
from .chaos_proxy import ChaosProxy
from .conftest import SECRET_KEY
from .redis_cluster import HOST, RedisServer, redis_server

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from aliyun_sms_connector import AliyunSmsConnector
    from aliyun_sms_connector.emulator import Emulator
    from aliyun_sms_connector.verify import CheckResult, Verification, VerificationStore

STORE_TIMEOUT = 0.3
MAX_ATTEMPTS = 3
USAGE = "SignIn"
WRONG = "000000"
# A fault stays armed for the whole step; passthrough() clears it.
PERSISTENT = 10_000
_numbers = itertools.count(1000)


def fresh_number() -> str:
    """A mainland number no other scenario in this run uses."""
    return f"1380013{next(_numbers) % 10_000:04d}"


# -- the sync/async driver ---------------------------------------------------------


@dataclass
class Api:
    """Drives one service through start/check, or start_async/check_async."""

    service: VerificationService
    mode: str
    emulator: Emulator
    loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode == "async":
            self.loop = asyncio.new_event_loop()

    def start(self, to: str, usage: str = USAGE, client_ip: str | None = None) -> Verification:
        if self.loop is not None:
            start = self.service.start_async(to, usage, client_ip=client_ip)
            return self.loop.run_until_complete(start)
        return self.service.start(to, usage, client_ip=client_ip)

    def check(self, to: str, code: str, usage: str = USAGE) -> CheckResult:
        if self.loop is not None:
            return self.loop.run_until_complete(self.service.check_async(to, usage, code))
        return self.service.check(to, usage, code)

    def sms_codes(self, to: str) -> list[str]:
        """The codes the emulator accepted for ``to``, oldest first."""
        digits = to[-11:]
        return [m.params["code"] for m in self.emulator.outbox if m.phone_number.endswith(digits)]

    def close(self) -> None:
        store = self.service.store
        if self.loop is not None:
            self.loop.run_until_complete(store.aclose())
            self.loop.close()
        store.close()


def make_service(
    connector: AliyunSmsConnector,
    store: VerificationStore,
    *,
    clock: Callable[[], float] | None = None,
    **policy: Any,
) -> VerificationService:
    options: dict[str, Any] = {
        "max_attempts": MAX_ATTEMPTS,
        "per_ip_hourly": None,
        "per_number_hourly": None,
        "per_number_daily": None,
    }
    options.update(policy)
    return VerificationService(
        connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**options),
        clock=clock,
    )


# -- faults ------------------------------------------------------------------------


READONLY = "READONLY You can't write against a read only replica."
CLUSTERDOWN = "CLUSTERDOWN The cluster is down"
LOADING = "LOADING Redis is loading the dataset in memory"


@dataclass(frozen=True)
class Fault:
    """How to break the store from the ``skip``-th script call on, and whether a hit script ran."""

    name: str
    arm_at: Callable[[ChaosProxy, int], None]
    recorded: bool  # the script ran on Redis; only its reply was lost

    def arm(self, proxy: ChaosProxy, skip: int = 0) -> None:
        self.arm_at(proxy, skip)


def _refuse(proxy: ChaosProxy, skip: int) -> None:
    if skip:
        proxy.refuse(skip=skip)
    else:
        proxy.refuse()


def _blackhole(proxy: ChaosProxy, skip: int) -> None:
    if skip:
        proxy.blackhole(skip=skip)
    else:
        proxy.blackhole()


def _error(reply: str) -> Callable[[ChaosProxy, int], None]:
    return lambda proxy, skip: proxy.inject_error(reply, skip=skip, count=PERSISTENT)


FAULTS = [
    Fault("refused", _refuse, recorded=False),
    Fault("timeout", _blackhole, recorded=False),
    Fault(
        "reset_mid_script",
        lambda p, skip: p.reset_after(0, skip=skip, count=PERSISTENT),
        recorded=True,
    ),
    Fault(
        "reset_in_request",
        lambda p, skip: p.reset_after(20, reply=False, skip=skip, count=PERSISTENT),
        recorded=False,
    ),
    Fault("readonly", _error(READONLY), recorded=False),
    Fault("clusterdown", _error(CLUSTERDOWN), recorded=False),
    Fault("loading", _error(LOADING), recorded=False),
]
FAULT_IDS = [fault.name for fault in FAULTS]


def assert_store_unavailable(error: BaseException, *secrets: str, port: int = 0) -> None:
    """``error`` is the typed, retryable StoreUnavailable, and leaks nothing it was given."""
    assert isinstance(error, ServiceUnavailableError), repr(error)
    assert error.code == "StoreUnavailable"
    assert error.retryable is True
    # Raised outside the except block: no driver exception, and none of its
    # text (addresses, key names), is reachable from it.
    assert error.__cause__ is None
    assert error.__context__ is None
    texts = [str(error), repr(error), *map(str, error.args), *map(str, vars(error).values())]
    forbidden = [s for s in secrets if s] + [HOST, "localhost"]
    if port:
        forbidden.append(str(port))
    for text in texts:
        for value in forbidden:
            assert value not in text, f"{value!r} is reachable from the error: {text!r}"


def expect_unavailable(call: Callable[[], object], *secrets: str, port: int = 0) -> float:
    """Run ``call``, which must raise StoreUnavailable; return how long it took."""
    started = time.monotonic()
    try:
        outcome = call()
    except ServiceUnavailableError as error:
        assert_store_unavailable(error, *secrets, port=port)
    else:
        # AssertionError, not pytest.fail: TestTeeth expects exactly this type.
        raise AssertionError(f"the store fault gave an answer, not StoreUnavailable: {outcome!r}")
    return time.monotonic() - started


# -- the scenarios (also run against broken stores by TestTeeth) -------------------------


def scenario_start(api: Api, proxy: ChaosProxy, fault: Fault) -> None:
    """A start that meets the fault sends no SMS; afterwards a start sends a code that checks."""
    to = fresh_number()
    fault.arm(proxy)
    expect_unavailable(lambda: api.start(to), to, port=proxy.port)
    assert api.sms_codes(to) == [], "an SMS went out although its code was not stored"
    proxy.passthrough()
    try:
        api.start(to)
    except RateLimitExceededError as error:
        # The reservation reached Redis before the reply was lost: it holds.
        assert fault.recorded, f"a start that stored nothing left {error.code}"
        assert api.sms_codes(to) == []
        return
    codes = api.sms_codes(to)
    assert len(codes) == 1
    assert api.check(to, codes[0]).status is CheckStatus.APPROVED


def scenario_right_code(api: Api, proxy: ChaosProxy, fault: Fault) -> None:
    """A right code whose check met the fault is never approved without confirmation."""
    to = fresh_number()
    api.start(to)
    (code,) = api.sms_codes(to)
    fault.arm(proxy)
    expect_unavailable(lambda: api.check(to, code), to, code, port=proxy.port)
    proxy.passthrough()
    after = api.check(to, code).status
    # Approved by the store but never confirmed to the caller: used up, not approved twice.
    assert after is (CheckStatus.NOT_FOUND if fault.recorded else CheckStatus.APPROVED)


def scenario_wrong_code(api: Api, proxy: ChaosProxy, fault: Fault) -> None:
    """A wrong guess that met the fault gets the error, and counts exactly if it was recorded."""
    to = fresh_number()
    api.start(to)
    (code,) = api.sms_codes(to)
    fault.arm(proxy)
    for _ in range(MAX_ATTEMPTS + 1):  # more unconfirmed guesses than the limit allows
        expect_unavailable(lambda: api.check(to, WRONG), to, code, port=proxy.port)
    proxy.passthrough()
    result = api.check(to, WRONG)
    if fault.recorded:
        # Every guess that ran on Redis counted: the verification is locked.
        assert result.status is CheckStatus.TOO_MANY_ATTEMPTS
        assert api.check(to, code).status is CheckStatus.TOO_MANY_ATTEMPTS
    else:
        assert result.status is CheckStatus.WRONG_CODE
        assert result.attempts_left == MAX_ATTEMPTS - 1
        assert api.check(to, code).status is CheckStatus.APPROVED


def scenario_one_recorded_guess(api: Api, proxy: ChaosProxy) -> None:
    """One guess recorded by Redis whose reply was lost still uses up one attempt."""
    to = fresh_number()
    api.start(to)
    (code,) = api.sms_codes(to)
    proxy.reset_after(0)
    expect_unavailable(lambda: api.check(to, WRONG), to, code, port=proxy.port)
    result = api.check(to, WRONG)
    assert result.status is CheckStatus.WRONG_CODE
    assert result.attempts_left == MAX_ATTEMPTS - 2


SCENARIOS = {
    "start": scenario_start,
    "right_code": scenario_right_code,
    "wrong_code": scenario_wrong_code,
}


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def proxy(standalone_redis: RedisServer) -> Iterator[ChaosProxy]:
    with ChaosProxy((HOST, standalone_redis.port)) as proxy:
        yield proxy


def _api(connector, emulator, store, mode, clock=None, **policy) -> Api:
    return Api(make_service(connector, store, clock=clock, **policy), mode, emulator)


@pytest.fixture
def api(connector, emulator, proxy, mode, clock) -> Iterator[Api]:
    store = RedisStore.from_url(proxy.url, store_timeout=STORE_TIMEOUT)
    api = _api(connector, emulator, store, mode, clock)
    yield api
    proxy.passthrough()
    api.close()


# -- the tests -------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
class TestFaultMatrix:
    """Every fault gives StoreUnavailable, and start and check stay closed."""

    def test_start_sends_nothing_it_did_not_store(self, api, proxy, fault):
        """A start hit by the fault raises StoreUnavailable and sends no SMS."""
        scenario_start(api, proxy, fault)

    def test_right_code_is_never_approved_unconfirmed(self, api, proxy, fault):
        """A right code hit by the fault is neither approved nor approvable twice."""
        scenario_right_code(api, proxy, fault)

    def test_wrong_code_gets_the_error_not_wrong_code(self, api, proxy, fault):
        """Wrong guesses hit by the fault get the error; only recorded ones count."""
        scenario_wrong_code(api, proxy, fault)


class TestStartFaultOnSecondCall:
    """The per-IP and global limits are a second round trip; a fault there fails closed too."""

    @pytest.mark.parametrize("fault", FAULTS, ids=FAULT_IDS)
    def test_fault_in_shared_limits_sends_nothing(
        self, connector, emulator, proxy, mode, clock, fault
    ):
        """A fault in the second store call of a start raises StoreUnavailable and sends no SMS."""
        store = RedisStore.from_url(proxy.url, store_timeout=STORE_TIMEOUT)
        api = _api(connector, emulator, store, mode, clock, global_hourly=1000)
        try:
            to = fresh_number()
            fault.arm(proxy, 1)
            took = expect_unavailable(
                lambda: api.start(to, client_ip="203.0.113.9"), to, "203.0.113.9", port=proxy.port
            )
            assert took < 10
            assert api.sms_codes(to) == []
        finally:
            proxy.passthrough()
            api.close()


class TestRecordedGuess:
    """A guess Redis recorded counts, even though its reply never arrived."""

    def test_lost_reply_still_uses_an_attempt(self, api, proxy):
        """After a wrong guess whose reply was cut, one attempt fewer is left."""
        scenario_one_recorded_guess(api, proxy)


class TestRealFaults:
    """The same guarantees, with faults produced by redis-server itself."""

    def test_client_pause_times_out_within_store_timeout(self, api, proxy, standalone_redis):
        """With the server paused, start and check fail with StoreUnavailable, bounded in time."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        with standalone_redis.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
            try:
                took = [
                    expect_unavailable(lambda: api.check(to, code), to, code),
                    expect_unavailable(lambda: api.check(to, WRONG), to, code),
                    expect_unavailable(lambda: api.start(fresh_number())),
                ]
            finally:
                admin.execute_command("CLIENT", "UNPAUSE")
        # Each call is one store round trip bounded by store_timeout; the
        # slack is for a loaded 2-core machine, far below the 3 s pause.
        assert max(took) < STORE_TIMEOUT + 1.0, took
        assert api.check(to, code).status is CheckStatus.APPROVED  # nothing ran while paused

    def test_readonly_after_failover(self, api, proxy, standalone_redis):
        """A client still on a demoted master meets READONLY: StoreUnavailable, and no SMS.

        The failover is real: a second server replicates the first, is
        promoted, and the first becomes its replica. Once the client is sent
        to the new master, the pending code works again.
        """
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        with (
            redis_server() as new_master,
            standalone_redis.client() as old,
            new_master.client() as new,
        ):
            new.replicaof(HOST, standalone_redis.port)
            wait_for_sync(new)
            new.replicaof("NO", "ONE")
            old.replicaof(HOST, new_master.port)
            try:
                expect_unavailable(lambda: api.check(to, code), to, code)
                expect_unavailable(lambda: api.check(to, WRONG), to, code)
                other = fresh_number()
                expect_unavailable(lambda: api.start(other), other)
                assert api.sms_codes(other) == []
                proxy.retarget((HOST, new_master.port))
                # Nothing the demoted master refused was counted.
                assert api.check(to, WRONG).attempts_left == MAX_ATTEMPTS - 1
                assert api.check(to, code).status is CheckStatus.APPROVED
            finally:
                old.replicaof("NO", "ONE")

    def test_noscript_after_script_flush_is_transparent(self, api, proxy, standalone_redis):
        """SCRIPT FLUSH between calls changes nothing the caller sees."""
        to = fresh_number()
        with standalone_redis.client() as admin:
            admin.script_flush()
            api.start(to)
            (code,) = api.sms_codes(to)
            admin.script_flush()
            assert api.check(to, WRONG).attempts_left == MAX_ATTEMPTS - 1
            admin.script_flush()
            assert api.check(to, code).status is CheckStatus.APPROVED

    def test_noscript_reply_is_retried_once(self, api, proxy):
        """A NOSCRIPT reply (the script did not run) is retried once, transparently."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        proxy.inject_error("NOSCRIPT No matching script. Please use EVAL.", match=b"EVALSHA")
        assert api.check(to, WRONG).attempts_left == MAX_ATTEMPTS - 1
        assert proxy.stats["error"] == 1
        assert api.check(to, code).status is CheckStatus.APPROVED

    def test_persistent_noscript_fails_closed(self, api, proxy):
        """A NOSCRIPT that does not heal is retried only once, then StoreUnavailable."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        proxy.inject_error("NOSCRIPT No matching script.", match=b"EVAL", count=PERSISTENT)
        expect_unavailable(lambda: api.check(to, code), to, code)
        assert proxy.stats["error"] == 2  # EVALSHA, then EVAL once
        proxy.passthrough()
        assert api.check(to, code).status is CheckStatus.APPROVED

    def test_flushall_gives_not_found(self, api, proxy, standalone_redis):
        """After FLUSHALL the right code gives NOT_FOUND: never an error, never an approval."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        with standalone_redis.client() as admin:
            admin.flushall()
        result = api.check(to, code)
        assert result.status is CheckStatus.NOT_FOUND
        assert not result.ok

    def test_restart_without_persistence_gives_not_found(self, api, proxy, standalone_redis):
        """After redis-server restarts empty, the right code gives NOT_FOUND, not an error."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        standalone_redis.restart()
        result = api.check(to, code)
        assert result.status is CheckStatus.NOT_FOUND
        # And the store works again: a new code can be sent and checked.
        api.start(fresh_number())


def wait_for_sync(replica: Any, timeout: float = 10.0) -> None:
    """Wait until ``replica`` reports its link to the master up."""
    deadline = time.monotonic() + timeout
    while replica.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        time.sleep(0.02)


class TestStoreTimeout:
    """Every store call is bounded by store_timeout, even when Redis never answers."""

    @pytest.mark.parametrize("call", ["start", "check"])
    def test_blackholed_redis(self, api, proxy, call):
        """With every request swallowed, start and check give up within store_timeout."""
        to = fresh_number()
        api.start(to)
        (code,) = api.sms_codes(to)
        proxy.blackhole()
        # If the bound were missing the call would hang: free it after 10 s.
        rescue = threading.Timer(10, proxy.refuse)
        rescue.start()
        try:
            if call == "start":
                took = expect_unavailable(lambda: api.start(fresh_number()))
            else:
                took = expect_unavailable(lambda: api.check(to, code), to, code)
        finally:
            rescue.cancel()
        assert took < STORE_TIMEOUT + 1.0, took
        assert took >= STORE_TIMEOUT * 0.9, took  # it did wait for Redis, it did not give up early


class TestTeeth:
    """The scenarios above catch a store that breaks the rules: each flaw makes one fail."""

    @pytest.mark.parametrize(
        ("flaw", "scenario", "fault"),
        [
            ("sends_unstored_codes", "start", "refused"),
            ("sends_unstored_codes", "start", "readonly"),
            ("wrong_code_on_error", "wrong_code", "timeout"),
            ("wrong_code_on_error", "wrong_code", "clusterdown"),
            ("approves_on_error", "right_code", "reset_mid_script"),
            ("approves_on_error", "right_code", "loading"),
        ],
    )
    def test_broken_store_is_caught(
        self, connector, emulator, proxy, mode, clock, flaw, scenario, fault
    ):
        """Each deliberately broken store fails the scenario that guards its rule."""
        inner = RedisStore.from_url(proxy.url, store_timeout=STORE_TIMEOUT)
        api = _api(connector, emulator, BrokenStore(inner, flaw), mode, clock)
        by_name = {f.name: f for f in FAULTS}
        try:
            with pytest.raises(AssertionError):
                SCENARIOS[scenario](api, proxy, by_name[fault])
        finally:
            proxy.passthrough()
            api.close()

    @pytest.mark.parametrize("flaw", ["forgets_recorded_guess", "retries_check"])
    def test_miscounted_guess_is_caught(self, connector, emulator, proxy, mode, clock, flaw):
        """A store that refunds a recorded guess, or retries it, fails the recorded-guess check."""
        inner = RedisStore.from_url(proxy.url, store_timeout=STORE_TIMEOUT)
        api = _api(connector, emulator, BrokenStore(inner, flaw), mode, clock)
        try:
            with pytest.raises(AssertionError):
                scenario_one_recorded_guess(api, proxy)
        finally:
            proxy.passthrough()
            api.close()

    def test_every_flaw_is_exercised(self):
        """Every flaw broken_store.py offers is caught by some test: here, or in test_chaos.py."""
        caught_here = {
            "sends_unstored_codes",
            "wrong_code_on_error",
            "approves_on_error",
            "retries_check",
            "forgets_recorded_guess",
        }
        # TestSoakHasTeeth: the window attack, and checks while Redis is full.
        caught_by_the_soak = {"reopens_window", "judges_uncounted"}
        assert set(FLAWS) == caught_here | caught_by_the_soak
