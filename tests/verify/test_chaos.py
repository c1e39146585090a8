"""The chaos soak (issues 11 and 18): Redis and Aliyun misbehave at once, for 2,000 cycles.

Redis sits behind :class:`ChaosProxy`, which delays, drops and cuts requests at
random; the emulator fails, drops or refuses some sends at the same time; and
an :class:`OomFlapper` now and then fills Redis up (``maxmemory 1`` with
``noeviction``, set through a direct admin connection, not the proxy; on the
cluster, every master) for a few tens of milliseconds, and records each
window in which Redis was surely full. Half the workers are threads on ``start``/``check``,
half asyncio tasks on the async twins. Each cycle starts a verification for a
fresh number, guesses 0 to ``max_attempts + 1`` wrong codes, then the right
one. Cooldowns are off, so that a re-start reaches the store's reservation.

A few percent of the cycles, drawn by the same dice as the Aliyun faults, are
the window attack of issue 18 instead: once the code was sent, the worker
re-starts its own number ``WINDOW_RESTARTS`` times, Aliyun refusing each
re-send (``isv.BUSINESS_LIMIT_CONTROL``, surely not sent), while a second
thread or task guesses wrong codes, paced so that guesses fall between the
re-starts and during their sends; a few more wrong guesses follow once the
re-starts are over, then the right code.

The seed is printed; ``CHAOS_SEED=<seed>`` replays the same dice (thread
interleavings still vary). Afterwards:

- every exception is an ``AliyunSmsError`` (store faults: ``StoreUnavailable``);
- no wrong code is approved, no verification answers more than
  ``max_attempts`` wrong guesses (nor holds more in Redis), and the attempts
  left that wrong guesses report strictly decrease: refused re-starts open
  no window of fresh guesses;
- no check that started and ended inside one window of full memory is
  answered ``APPROVED`` or ``WRONG_CODE``: a guess that cannot be counted is
  never judged;
- every SMS the emulator accepted carries a code the store holds (approved
  during the soak, or found, approved or locked, when checked afterwards),
  except the SMS of a start that reported ``CodeNotActivated``: that code was
  reported unusable, and must not be approved afterwards unless the commit
  that activates it was passed on to Redis (the proxy witnesses it), its
  reply lost. That exception is what the service does today, not what its
  docstring promises: see ``TestCodeNotActivated``.

The same soak, shortened and harsher, runs against each broken store of
``broken_store.py`` and must report the violation its flaw causes.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import random
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis

from aliyun_sms_connector import AliyunSmsError, ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)
from aliyun_sms_connector.verify._keys import record_key
from aliyun_sms_connector.verify._scripts import COMMIT

from .broken_store import BrokenStore
from .chaos_proxy import ChaosProxy, ChaosSettings, ProxyGroup
from .conftest import SECRET_KEY
from .redis_cluster import HOST
from .test_failover import Call, verification_violations, wrong_code_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from typing_extensions import Self

    from aliyun_sms_connector.emulator import Emulator, Message
    from aliyun_sms_connector.verify import VerificationStore

    from .redis_cluster import RedisServer

CYCLES = 2000
MAX_ATTEMPTS = 3
STORE_TIMEOUT = 0.2
SYNC_WORKERS = 4
ASYNC_WORKERS = 4
STORE_DOWN = "StoreUnavailable"
NOT_ACTIVATED = "aliyun:CodeNotActivated"
WALL_LIMIT = 120.0  # the soak stops and fails past this; it takes far less

# The window attack: re-starts Aliyun refuses, and the guesses around them.
WINDOW_REFUSAL = "isv.BUSINESS_LIMIT_CONTROL"
WINDOW_RESTARTS = 5
WINDOW_PAUSE = 0.002  # seconds between two guesses while the re-starts run
WINDOW_GUESS_CAP = 4 * WINDOW_RESTARTS  # guesses while the re-starts run, at most

CHAOS = ChaosSettings(
    delay=0.05, max_delay=0.02, drop=0.004, cut_request=0.004, cut_reply=0.01, reset_on_connect=0.01
)
# (cumulative probability, what happens to this cycle's send)
_ALIYUN_FAULTS: tuple[tuple[float, str], ...] = (
    (0.04, "retryable"),  # isp.SYSTEM_ERROR once: the connector retries
    (0.06, "unavailable"),  # 503 on every attempt: nothing was sent, the code is released
    (0.08, "dropped"),  # the connection is cut after Aliyun accepted: maybe_sent
    (0.10, "refused"),  # isv.AMOUNT_NOT_ENOUGH: nothing sent
    (0.13, "window"),  # the window attack: refused re-starts, guesses around them
)


def aliyun_faults(window: float) -> tuple[tuple[float, str], ...]:
    """The faults above, with ``window`` of the cycles attacked instead of 3 %."""
    return (*_ALIYUN_FAULTS[:-1], (_ALIYUN_FAULTS[-2][0] + window, "window"))


@dataclass(frozen=True)
class OomSettings:
    """How the flapper fills Redis: seconds full, then seconds normal, each drawn per window."""

    full: tuple[float, float] = (0.02, 0.04)
    normal: tuple[float, float] = (0.25, 0.45)


OOM = OomSettings()


class OomFlapper:
    """Fills ``servers`` up now and then, through direct admin connections.

    While running it sets ``maxmemory-policy noeviction``, then repeatedly
    ``maxmemory 1`` on every server and, a little later, ``maxmemory 0``.
    :attr:`windows` holds each stretch (monotonic seconds) from when the last
    ``CONFIG SET`` that filled Redis returned to just before the first one
    that frees it is sent: any command Redis received within one found it
    full. The previous settings come back on exit.
    """

    def __init__(self, servers: Sequence[RedisServer], seed: int, settings: OomSettings) -> None:
        self.servers = list(servers)
        self.settings = settings
        self.rng = random.Random(seed ^ 0x0FF1)  # noqa: S311 - test dice
        self.windows: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._admins: list[Any] = []
        self._saved: list[dict[str, str]] = []

    def __enter__(self) -> Self:
        try:
            for server in self.servers:
                admin = server.client()
                self._admins.append(admin)
                saved = admin.config_get("maxmemory*")
                self._saved.append({k: saved[k] for k in ("maxmemory", "maxmemory-policy")})
                admin.config_set("maxmemory-policy", "noeviction")
        except BaseException:
            self._restore()
            raise
        self._thread = threading.Thread(target=self._run, name="oom-flapper", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._restore()

    def _run(self) -> None:
        full, normal = self.settings.full, self.settings.normal
        try:
            while not self._stop.wait(self.rng.uniform(*normal)):
                try:
                    for admin in self._admins:
                        admin.config_set("maxmemory", 1)
                    began = time.monotonic()
                    self._stop.wait(self.rng.uniform(*full))
                    ended = time.monotonic()
                finally:
                    for admin in self._admins:
                        admin.config_set("maxmemory", 0)
                self.windows.append((began, ended))
        except Exception as error:  # noqa: BLE001 - reported as a violation of the soak
            self.errors.append(repr(error)[:300])

    def _restore(self) -> None:
        for index, admin in enumerate(self._admins):
            saved = self._saved[index] if index < len(self._saved) else {}
            with contextlib.suppress(Exception):
                admin.config_set("maxmemory", saved.get("maxmemory", 0))
                if saved:
                    admin.config_set("maxmemory-policy", saved["maxmemory-policy"])
            admin.close()
        self._admins.clear()


@dataclass
class Report:
    """What a soak did and what it found wrong."""

    seed: int
    outcomes: Counter[str] = field(default_factory=Counter)
    aliyun_faults: Counter[str] = field(default_factory=Counter)
    proxy_faults: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    cycles: int = 0
    seconds: float = 0.0
    oom_windows: int = 0
    oom_seconds: float = 0.0
    oom_checks: int = 0

    def summary(self) -> str:
        return (
            f"chaos soak: seed={self.seed} (replay with CHAOS_SEED={self.seed}), "
            f"{self.cycles} cycles in {self.seconds:.1f} s\n"
            f"  outcomes: {dict(sorted(self.outcomes.items()))}\n"
            f"  Redis faults: {dict(sorted(self.proxy_faults.items()))}\n"
            f"  Redis full: {self.oom_windows} windows, {self.oom_seconds:.2f} s in all, "
            f"{self.oom_checks} checks inside one\n"
            f"  Aliyun faults: {dict(sorted(self.aliyun_faults.items()))}\n"
            f"  violations: {len(self.violations)} {self.violations[:10]}"
        )


@dataclass(frozen=True)
class Plan:
    """One cycle: its number, its Aliyun fault, and how many wrong codes it guesses."""

    to: str
    fault: str | None
    wrong: int


class Soak:
    """Runs the cycles on one service and keeps the record."""

    def __init__(
        self,
        service: VerificationService,
        emulator: Emulator,
        seed: int,
        cycles: int,
        faults: tuple[tuple[float, str], ...] = _ALIYUN_FAULTS,
    ) -> None:
        self.service = service
        self.emulator = emulator
        self.seed = seed
        self.cycles = cycles
        self.faults = faults
        self.prefix = f"1360{uuid.uuid4().int % 1000:03d}"
        self.next_cycle = itertools.count()
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.untyped: list[str] = []
        self.report = Report(seed)
        self.deadline = time.monotonic() + WALL_LIMIT

    # -- one cycle ---------------------------------------------------------------

    def plan(self, index: int) -> Plan:
        rng = random.Random(self.seed * 1_000_003 + index)  # noqa: S311 - test dice
        roll = rng.random()
        fault = next((name for limit, name in self.faults if roll < limit), None)
        return Plan(f"{self.prefix}{index:04d}", fault, rng.randint(0, MAX_ATTEMPTS + 1))

    def arm_aliyun(self, to: str, fault: str | None) -> None:
        if fault is None:
            return
        with self.lock:
            self.report.aliyun_faults[fault] += 1
        if fault == "retryable":
            self.emulator.fail_next("isp.SYSTEM_ERROR", phone_number=to)
        elif fault == "unavailable":
            self.emulator.fail_next("ServiceUnavailable", http_status=503, count=5, phone_number=to)
        elif fault == "dropped":
            self.emulator.drop_connection(phone_number=to)
        elif fault == "refused":
            self.emulator.fail_next("isv.AMOUNT_NOT_ENOUGH", phone_number=to)
        # "window": the first start goes through; its re-starts are refused (attack_window_*)

    def arm_window(self, to: str) -> None:
        self.emulator.fail_next(WINDOW_REFUSAL, phone_number=to, count=WINDOW_RESTARTS)

    def record(self, kind: str, to: str, started: float, outcome: object) -> str:
        left = None
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, AliyunSmsError):
                text = f"untyped:{type(outcome).__name__}"
                frames = traceback.extract_tb(outcome.__traceback__)[-4:]
                where = " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in frames)
                with self.lock:
                    self.untyped.append(f"{outcome!r} at {where}"[:400])
            elif isinstance(outcome, ServiceUnavailableError) and outcome.code == STORE_DOWN:
                text = STORE_DOWN
            else:
                text = f"aliyun:{outcome.code}"
        elif kind in ("start", "restart"):
            text = "sent"
        else:
            text, left = outcome.status.value, outcome.attempts_left  # type: ignore[attr-defined]
        with self.lock:
            self.calls.append(Call(kind, to, started, time.monotonic(), text, left))
            self.report.outcomes[f"{kind}:{text}"] += 1
        return text

    def take(self) -> int | None:
        index = next(self.next_cycle)
        if index >= self.cycles or time.monotonic() > self.deadline:
            return None
        return index

    def code_for(self, to: str) -> str:
        return next(m.params["code"] for m in self.emulator.outbox if m.phone_number[-11:] == to)

    def guesses(self, code: str, wrong: int) -> list[tuple[str, str]]:
        return [("wrong", wrong_code_for(code))] * wrong + [("right", code)]

    # -- sync workers ------------------------------------------------------------

    def call(self, kind: str, to: str, action: Callable[..., object], *args: object) -> str:
        started = time.monotonic()
        try:
            outcome = action(*args)
        except Exception as error:  # noqa: BLE001 - every error is recorded and judged
            outcome = error
        return self.record(kind, to, started, outcome)

    def run_sync(self) -> None:
        service = self.service
        while (index := self.take()) is not None:
            plan = self.plan(index)
            to = plan.to
            self.arm_aliyun(to, plan.fault)
            if self.call("start", to, service.start, to, "SignIn") != "sent":
                continue
            code = self.code_for(to)
            wrong = plan.wrong
            if plan.fault == "window":
                self.attack_window_sync(to, code)
                wrong = MAX_ATTEMPTS + 1
            for kind, guess in self.guesses(code, wrong):
                self.call(kind, to, service.check, to, "SignIn", guess)

    def attack_window_sync(self, to: str, code: str) -> None:
        """Refused re-starts on one thread, wrong guesses on this one."""
        service, wrong = self.service, wrong_code_for(code)
        self.arm_window(to)
        done = threading.Event()

        def restart() -> None:
            try:
                for _ in range(WINDOW_RESTARTS):
                    self.call("restart", to, service.start, to, "SignIn")
            finally:
                done.set()

        thread = threading.Thread(target=restart)
        thread.start()
        for _ in range(WINDOW_GUESS_CAP):
            if done.is_set():
                break
            self.call("wrong", to, service.check, to, "SignIn", wrong)
            time.sleep(WINDOW_PAUSE)
        thread.join()

    # -- async workers -----------------------------------------------------------

    async def call_async(self, kind: str, to: str, action: Awaitable[object]) -> str:
        started = time.monotonic()
        try:
            outcome = await action
        except Exception as error:  # noqa: BLE001
            outcome = error
        return self.record(kind, to, started, outcome)

    async def run_async(self) -> None:
        service = self.service
        while (index := self.take()) is not None:
            plan = self.plan(index)
            to = plan.to
            self.arm_aliyun(to, plan.fault)
            if await self.call_async("start", to, service.start_async(to, "SignIn")) != "sent":
                continue
            code = self.code_for(to)
            wrong = plan.wrong
            if plan.fault == "window":
                await self.attack_window_async(to, code)
                wrong = MAX_ATTEMPTS + 1
            for kind, guess in self.guesses(code, wrong):
                await self.call_async(kind, to, service.check_async(to, "SignIn", guess))

    async def attack_window_async(self, to: str, code: str) -> None:
        """Refused re-starts in one task, wrong guesses in another."""
        service, wrong = self.service, wrong_code_for(code)
        self.arm_window(to)
        done = False

        async def restart() -> None:
            nonlocal done
            try:
                for _ in range(WINDOW_RESTARTS):
                    await self.call_async("restart", to, service.start_async(to, "SignIn"))
            finally:
                done = True

        async def guess() -> None:
            for _ in range(WINDOW_GUESS_CAP):
                if done:
                    break
                await self.call_async("wrong", to, service.check_async(to, "SignIn", wrong))
                await asyncio.sleep(WINDOW_PAUSE)

        await asyncio.gather(restart(), guess())

    # -- the whole soak ----------------------------------------------------------

    def run(self, sync_workers: int, async_workers: int) -> None:
        started = time.monotonic()

        async def tasks() -> None:
            try:
                await asyncio.gather(*(self.run_async() for _ in range(async_workers)))
            finally:
                await self.service.store.aclose()

        threads = [threading.Thread(target=self.run_sync) for _ in range(sync_workers)]
        threads.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=WALL_LIMIT + 30)
        self.report.seconds = time.monotonic() - started
        self.report.cycles = min(next(self.next_cycle), self.cycles)
        if any(thread.is_alive() for thread in threads):
            self.report.violations.append("a worker hung past the wall limit")
        if self.report.cycles < self.cycles:
            self.report.violations.append(f"only {self.report.cycles} cycles within the limit")

    def judge(
        self,
        messages: list[Message],
        commits: list[bytes],
        store_prefix: str,
        full: list[tuple[float, float]],
    ) -> None:
        """Add every broken rule to the report; the store must work normally by now.

        ``commits`` are the commit requests the proxy passed on to Redis;
        ``full`` the windows in which Redis was full.
        """
        report = self.report
        report.violations += [f"untyped error: {text}" for text in self.untyped[:5]]
        report.violations += verification_violations(self.calls, MAX_ATTEMPTS)
        report.violations += self.full_memory_violations(full)
        approved = {c.number for c in self.calls if c.kind == "right" and c.outcome == "approved"}
        unusable = {
            c.number for c in self.calls if c.kind == "start" and c.outcome == NOT_ACTIVATED
        }
        committed = b"\n".join(commits)
        for message in messages:
            to = message.phone_number[-11:]
            if not to.startswith(self.prefix) or to in approved:
                continue
            status = self.service.check(to, "SignIn", message.params["code"]).status
            if to in unusable:
                # The start said this code can never be checked.
                report.outcomes[f"afterwards:unusable:{status.value}"] += 1
                if status is not CheckStatus.APPROVED:
                    continue
                number = self.service._number(to)[1]  # the store's key
                if record_key(store_prefix, number, "SignIn").encode() in committed:
                    # Its commit reached Redis and only the reply was lost: the
                    # code is active (TestCodeNotActivated, the service's issue).
                    report.outcomes["afterwards:unusable:approved_commit_reached_redis"] += 1
                else:
                    report.violations.append(f"{to}: a code reported unusable was approved")
                continue
            # Not approved during the soak: the code must still be there.
            report.outcomes[f"afterwards:{status.value}"] += 1
            right_errored = any(
                c.number == to and c.kind == "right" and c.outcome == STORE_DOWN for c in self.calls
            )
            if status is CheckStatus.NOT_FOUND and not right_errored:
                report.violations.append(f"{to}: an SMS went out with a code the store lacks")

    def full_memory_violations(self, full: list[tuple[float, float]]) -> list[str]:
        """Checks that ran wholly while Redis was full, and were judged nonetheless."""
        report, problems = self.report, []
        report.oom_windows = len(full)
        report.oom_seconds = sum(ended - began for began, ended in full)
        beginnings = [began for began, _ in full]
        judged = {CheckStatus.APPROVED.value, CheckStatus.WRONG_CODE.value}
        for call in self.calls:
            if call.kind not in ("wrong", "right"):
                continue
            window = bisect.bisect_right(beginnings, call.started) - 1
            if window < 0 or call.ended > full[window][1]:
                continue
            report.oom_checks += 1
            report.outcomes[f"full:{call.kind}:{call.outcome}"] += 1
            if call.outcome in judged:
                problems.append(
                    f"{call.number}: a {call.kind} code checked while Redis was full "
                    f"(an OOM window) was answered {call.outcome}"
                )
        return problems


def redis_attempt_violations(server: RedisServer, max_attempts: int, prefix: str) -> list[str]:
    """Records in Redis itself that hold more counted guesses than allowed.

    Only those of the store with ``prefix``: the cluster is the session's, and other tests leave
    records on it made under other policies (a default ``max_attempts`` of 5).
    """
    problems = []
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*:code:*"
    with server.client() as client:
        for key in client.scan_iter(pattern, count=1000):
            attempts = client.hget(key, "a")
            if attempts is not None and int(attempts) > max_attempts:
                problems.append(f"a record holds {int(attempts)} counted guesses")
    return problems


def soak_policy() -> VerificationPolicy:
    """No cooldowns (a re-start reaches the reservation), no send caps, no pumping guard.

    The soak judges the codes' invariants under faults. The guard's own
    round trip per start on the cluster makes more starts meet a fault: 300
    cluster cycles then missed the liveness floors about one run in seven
    (with the guard off, 12 of 12 passed). The guard under store faults is tested apart
    (test_guard.py: a full Redis refuses starts and sends nothing; the stores'
    fault tests), without a chaos soak's liveness floor.
    """
    return VerificationPolicy(
        max_attempts=MAX_ATTEMPTS,
        resend_cooldown=timedelta(0),
        per_number_cooldown=timedelta(0),
        per_ip_hourly=None,
        per_number_hourly=None,
        per_number_daily=None,
        pumping_guard=None,
    )


def assert_live(report: Report, cycles: int) -> None:
    """Liveness, not correctness (the violations are that): the soak did real work.

    How many starts the store refuses depends on the seed's faults, the full
    Redis windows and how loaded the machine is (on a busy 2-core machine a
    cluster soak saw 128 of 300 starts fail), so the floors are a quarter:
    of the cycles for the codes sent, of the codes sent for the approvals.
    """
    sent = report.outcomes["start:sent"]
    assert sent > cycles // 4, report.summary()
    assert report.outcomes["right:approved"] > sent // 4, report.summary()


def soak(
    store: VerificationStore,
    connector: object,
    emulator: Emulator,
    proxy: ChaosProxy | ProxyGroup,
    cycles: int,
    chaos: ChaosSettings = CHAOS,
    workers: tuple[int, int] = (SYNC_WORKERS, ASYNC_WORKERS),
    *,
    full: Sequence[RedisServer] = (),
    oom: OomSettings = OOM,
    faults: tuple[tuple[float, str], ...] = _ALIYUN_FAULTS,
) -> Report:
    """Run ``cycles`` start/check cycles under chaos, then judge them with the chaos off.

    ``full`` are the servers the :class:`OomFlapper` fills now and then (none: never).
    """
    service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=soak_policy())  # type: ignore[arg-type]
    inner = store.inner if isinstance(store, BrokenStore) else store
    assert isinstance(inner, RedisStore)
    run = Soak(service, emulator, proxy.seed, cycles, faults)
    proxy.watch(COMMIT.sha.encode(), COMMIT.source.encode())
    flapper = OomFlapper(full, proxy.seed, oom)
    proxy.chaos(chaos)
    try:
        with flapper if full else contextlib.nullcontext():
            run.run(*workers)
    finally:
        proxy.passthrough()
        run.report.proxy_faults = Counter(proxy.stats)
    run.report.violations += [f"the OOM flapper failed: {error}" for error in flapper.errors]
    run.judge(emulator.outbox, proxy.forwarded, inner._prefix, flapper.windows)
    return run.report


@pytest.fixture
def proxy(standalone_redis) -> ChaosProxy:
    with ChaosProxy((HOST, standalone_redis.port)) as proxy:
        yield proxy


def store_on(proxy: ChaosProxy, store_timeout: float = STORE_TIMEOUT) -> RedisStore:
    return RedisStore.from_url(proxy.url, store_timeout=store_timeout)


def assert_the_soak_met_its_faults(report: Report) -> None:
    """The soak did meet what it claims to survive, so that no rule is judged on nothing."""
    summary = report.summary()
    assert sum(n for k, n in report.outcomes.items() if k.startswith("start:aliyun:")) > 0, summary
    # The window attack ran: its re-starts reached Aliyun and were refused
    # (were one sent, the attempts of its cycle would be judged on a new code).
    assert report.outcomes[f"restart:aliyun:{WINDOW_REFUSAL}"] > 0, summary
    assert report.outcomes["restart:sent"] == 0, summary
    # Redis was full, and checks did run inside those windows.
    assert report.oom_windows > 0, summary
    assert report.oom_checks > 0, summary


class TestChaosSoak:
    """The soak on one Redis behind a chaos proxy."""

    @pytest.mark.chaos
    def test_chaos_soak(self, connector, emulator, proxy, standalone_redis):
        """2,000 cycles under Redis and Aliyun chaos: typed errors, no wrong approval or SMS."""
        store = store_on(proxy)
        try:
            report = soak(store, connector, emulator, proxy, CYCLES, full=[standalone_redis])
        finally:
            store.close()
        report.violations += redis_attempt_violations(standalone_redis, MAX_ATTEMPTS, store._prefix)
        print(report.summary())  # noqa: T201 - the soak's report, shown with -s or on failure
        assert report.violations == [], report.summary()
        assert report.cycles == CYCLES
        assert_the_soak_met_its_faults(report)
        assert report.outcomes["start:StoreUnavailable"] > 0, report.summary()
        assert report.outcomes[f"start:{NOT_ACTIVATED}"] > 0, report.summary()
        assert_live(report, CYCLES)
        assert {"delayed", "dropped", "cut_request", "cut_reply"} <= set(report.proxy_faults)


# 300: with redis-py 6.0 (tox -e lowest) a cluster soak of 600 cycles often
# ends with nearly every start refused (StoreUnavailable), with this code and
# with the previous release's alike; 300 stays within the liveness floors.
CLUSTER_CYCLES = 300
REDIS_PY = tuple(int(part) for part in redis.__version__.split(".")[:2])
# 300 cycles take about a second: shorter pauses between the full windows.
CLUSTER_OOM = OomSettings(full=(0.02, 0.04), normal=(0.08, 0.16))


class TestChaosSoakOnTheCluster:
    """The soak on the cluster, every node behind its own chaos proxy."""

    @pytest.mark.chaos
    @pytest.mark.redis_cluster
    def test_chaos_soak_on_the_cluster(self, connector, emulator, redis_cluster):
        """The soak on the 6-node cluster, every node behind its own chaos proxy."""
        prefix = f"chaos-{uuid.uuid4().hex[:8]}:"
        with ProxyGroup([(HOST, node.port) for node in redis_cluster.nodes]) as group:
            store = RedisStore.from_url(
                group.cluster_url,
                prefix=prefix,
                store_timeout=STORE_TIMEOUT,
                address_remap=group.remap,
            )
            try:
                report = soak(
                    store,
                    connector,
                    emulator,
                    group,
                    CLUSTER_CYCLES,
                    full=redis_cluster.masters(),
                    oom=CLUSTER_OOM,
                )
            finally:
                store.close()
        for master in redis_cluster.masters():
            report.violations += redis_attempt_violations(master, MAX_ATTEMPTS, prefix)
        print(report.summary())  # noqa: T201
        assert report.violations == [], report.summary()
        assert report.cycles == CLUSTER_CYCLES
        if REDIS_PY < (8,):
            # redis-py 6.0's cluster client (tox -e lowest) often stays degraded
            # after the proxies' faults: 3 of 6 soaks of the previous release's
            # code, and of this one, ended with most starts StoreUnavailable
            # (failing closed). The invariants above still hold; the floors
            # below, which say the soak did enough work, are judged on 8.x.
            return
        assert_the_soak_met_its_faults(report)
        assert_live(report, CLUSTER_CYCLES)
        assert report.proxy_faults["cut_reply"] > 0, report.summary()


HARSH = ChaosSettings(drop=0.02, cut_request=0.15, cut_reply=0.15)
# Full half the time, in short stretches: right codes are checked inside one.
HARSH_OOM = OomSettings(full=(0.01, 0.03), normal=(0.01, 0.03))


@dataclass(frozen=True)
class Harsh:
    """How a teeth soak differs from the real one."""

    chaos: ChaosSettings = HARSH
    fill: bool = False  # the OomFlapper fills Redis (HARSH_OOM)
    window: float = 0.03  # the share of window attacks
    cycles: int = 100


@pytest.mark.chaos
class TestSoakHasTeeth:
    """A short, harsher soak against each broken store reports violations."""

    @pytest.mark.parametrize(
        ("flaw", "found", "harsh"),
        [
            pytest.param(
                "sends_unstored_codes", "a code the store lacks", Harsh(), id="sends_unstored_codes"
            ),
            pytest.param(
                "approves_on_error", "a wrong code was approved", Harsh(), id="approves_on_error"
            ),
            pytest.param(
                "wrong_code_on_error", "attempts left went from", Harsh(), id="wrong_code_on_error"
            ),
            # Caught by the window attack (half the cycles, the usual chaos):
            # the guesses made while a refused re-start's SMS was on its way
            # counted on a code then dropped.
            pytest.param(
                "reopens_window",
                "wrong guesses answered WRONG_CODE",
                Harsh(chaos=CHAOS, window=0.5),
                id="reopens_window-window_attack",
            ),
            # Its reservation activates the code, so a failed commit does not
            # stop it: a code reported unusable is approved.
            pytest.param(
                "reopens_window",
                "a code reported unusable was approved",
                Harsh(cycles=200),
                id="reopens_window-code_not_activated",
            ),
            # Redis full half the time, and the usual chaos: a right code
            # checked while full is approved uncounted.
            pytest.param(
                "judges_uncounted",
                "while Redis was full (an OOM window) was answered approved",
                Harsh(chaos=CHAOS, fill=True, cycles=200),
                id="judges_uncounted-full_redis",
            ),
        ],
    )
    def test_broken_store_fails_the_soak(
        self, connector, emulator, proxy, standalone_redis, flaw, found, harsh
    ):
        """The soak's judgement finds what each flaw breaks."""
        store = BrokenStore(store_on(proxy), flaw)
        try:
            report = soak(
                store,
                connector,
                emulator,
                proxy,
                harsh.cycles,
                chaos=harsh.chaos,
                workers=(2, 2),
                full=[standalone_redis] if harsh.fill else (),
                oom=HARSH_OOM,
                faults=aliyun_faults(harsh.window),
            )
        finally:
            store.close()
        print(report.summary())  # noqa: T201
        assert any(found in violation for violation in report.violations), report.summary()


class TestAttemptChecker:
    """``redis_attempt_violations`` judges the soak's own records, and only those.

    The cluster is the session's: other tests leave records on it under their
    own prefixes and policies (``max_attempts`` 5 by default), which hold more
    counted guesses than the soak's 3 allow, legitimately.
    """

    def test_reports_its_own_records_only(self, standalone_redis):
        """Over the limit under the soak's prefix: reported; under another prefix: not."""
        ours, theirs = "chaos-0123abcd:", "test-0123456789ab:"
        with standalone_redis.client() as client:
            for number, prefix, attempts in (("1", ours, 4), ("2", ours, 3), ("3", theirs, 5)):
                key = record_key(prefix, f"1360000000{number}", "SignIn")
                client.hset(key, mapping={"i": "v", "d": "digest", "a": attempts, "x": 1})
        found = redis_attempt_violations(standalone_redis, MAX_ATTEMPTS, ours)
        assert found == ["a record holds 4 counted guesses"]
        assert redis_attempt_violations(standalone_redis, 5, theirs) == []
        assert len(redis_attempt_violations(standalone_redis, 4, theirs)) == 1


class TestCodeNotActivated:
    """What ``CodeNotActivated`` means, each case alone and deterministic.

    The SMS went out and the store did not confirm the commit. When the commit
    never reached Redis, the code is never approvable. When Redis ran it and
    only its reply was lost, the code is the pending one and a check approves
    it: that code did reach Aliyun, so the invariant holds, and the soak
    excuses exactly those (the proxy witnessed the commit). A full Redis
    refuses the reservation itself, before any SMS.
    """

    @pytest.mark.parametrize(
        "reply",
        [pytest.param(False, id="commit_request_cut"), pytest.param(True, id="commit_reply_cut")],
    )
    def test_code_not_activated_is_what_redis_ran(self, connector, emulator, proxy, reply):
        """The commit's request is cut: never approved; its reply is cut: approved (it ran)."""
        store = store_on(proxy, store_timeout=2.0)
        service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=soak_policy())
        try:
            service.check("13600000001", "SignIn", "000000")  # connected, CHECK loaded
            # One byte of the reply (":1\r\n"), or four of the request: cut either way.
            proxy.reset_after(1 if reply else 4, match=COMMIT.sha.encode(), reply=reply)
            with pytest.raises(ServiceUnavailableError) as caught:
                service.start("13600000001", "SignIn")
            assert caught.value.code == "CodeNotActivated"
            assert caught.value.maybe_sent
            (message,) = emulator.outbox
            status = service.check("13600000001", "SignIn", message.params["code"]).status
            assert status is (CheckStatus.APPROVED if reply else CheckStatus.NOT_FOUND)
        finally:
            store.close()

    def test_full_redis_refuses_the_start_before_the_send(
        self, connector, emulator, standalone_redis
    ):
        """Under maxmemory with noeviction, start says StoreUnavailable and sends nothing."""
        store = RedisStore.from_url(standalone_redis.url, store_timeout=2.0)
        service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=soak_policy())
        try:
            with standalone_redis.client() as admin:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", 1)
                try:
                    with pytest.raises(ServiceUnavailableError) as caught:
                        service.start("13600000002", "SignIn")
                finally:
                    admin.config_set("maxmemory", 0)
            assert (caught.value.code, len(emulator.outbox)) == ("StoreUnavailable", 0)
        finally:
            store.close()
