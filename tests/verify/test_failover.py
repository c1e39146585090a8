"""A master of the real cluster fails over while 20 clients start and check (issue 11, item 2).

10 threads drive ``start``/``check`` and 10 asyncio tasks drive
``start_async``/``check_async``, all on one RedisStore built from a
``redis+cluster://`` URL. Meanwhile one master is failed over to its replica,
either politely (``CLUSTER FAILOVER`` sent to the replica) or by SIGKILL.

The switch begins once every client has had a call succeed: the clients'
first calls (new connections, the asyncio cluster client mapping the slots)
can take over a second on a busy 2-core machine, and a wall-clock warm-up
would let them straddle the switch. The takeover is when every live node's
``CLUSTER NODES`` shows the replica as a master serving slots, which is
what a client that maps the slots anew can learn.

Every call is recorded with its start and end time. Afterwards:

- every error is the store's: ``ServiceUnavailableError`` with code
  ``StoreUnavailable`` (or ``CodeNotActivated``, a start whose SMS went out
  while its commit failed), and
  no call that ended before the switch began failed (a call still in flight
  when the master died may fail: it was sent to that master);
- once the cluster reports the takeover, every call that starts later than
  5 s after it succeeds, and calls keep succeeding;
- no wrong code is ever approved;
- no verification answers more than ``max_attempts`` wrong guesses, its
  attempts never go back up, and once its wrong guesses are all counted the
  right code is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)

from .conftest import SECRET_KEY
from .redis_cluster import HOST, redis_sentinel, redis_server, wait_until

if TYPE_CHECKING:
    from .redis_cluster import LocalRedisCluster, RedisServer

MAX_ATTEMPTS = 3
SYNC_CLIENTS = 10
ASYNC_CLIENTS = 10
RECOVERY = 5.0  # seconds after the takeover by which every call must succeed again
WARM = 1.0  # seconds of traffic before the switch, at least
WARM_LIMIT = 30.0  # seconds within which every client must have had a call succeed
SETTLE = 1.5  # seconds of error-free traffic needed after the last error
_numbers = itertools.count(0)


# What a store fault looks like to the caller: no outcome was confirmed
# (StoreUnavailable), or a start's SMS went out while its commit failed.
STORE_FAULTS = {"StoreUnavailable", "CodeNotActivated"}


@dataclass(frozen=True)
class Call:
    """One call of one client: what it was, when it ran, and how it ended."""

    kind: str  # "start", "wrong" or "right"
    number: str
    started: float
    ended: float
    outcome: str  # a CheckStatus value, "sent", or the error's code / type
    attempts_left: int | None = None
    client: int = -1  # which client made it


@dataclass
class Recorder:
    """Everything the clients did, and the codes the emulator accepted."""

    calls: list[Call] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    unexpected: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, call: Call) -> None:
        with self.lock:
            self.calls.append(call)

    def succeeded(self) -> set[int]:
        """The clients that have had at least one call succeed."""
        ok = {"sent", *(s.value for s in CheckStatus)}
        with self.lock:
            return {c.client for c in self.calls if c.outcome in ok}

    def on_message(self, message: object) -> None:
        number = message.phone_number[-11:]  # type: ignore[attr-defined]
        with self.lock:
            self.codes[number] = message.params["code"]  # type: ignore[attr-defined]


def next_number() -> str:
    return f"1370{next(_numbers) % 10_000_000:07d}"


def wrong_code_for(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def outcome_of(error: BaseException) -> str:
    if isinstance(error, ServiceUnavailableError):
        return error.code
    return f"unexpected:{type(error).__name__}"


class Client:
    """The script every client follows: start, 0 to max_attempts+1 wrong codes, the right one."""

    def __init__(self, recorder: Recorder, seed: int) -> None:
        self.recorder = recorder
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - test traffic, not secrets

    def plan(self) -> int:
        return self.rng.randint(0, MAX_ATTEMPTS + 1)

    def record(self, kind: str, to: str, started: float, outcome: object) -> str:
        if isinstance(outcome, BaseException):
            text, left = outcome_of(outcome), None
            if text.startswith("unexpected"):
                with self.recorder.lock:
                    self.recorder.unexpected.append(outcome)
        elif kind == "start":
            text, left = "sent", None
        else:
            text, left = outcome.status.value, outcome.attempts_left  # type: ignore[attr-defined]
        self.recorder.add(Call(kind, to, started, time.monotonic(), text, left, self.seed))
        return text

    def run_sync(self, service: VerificationService) -> None:
        while not self.recorder.stop.is_set():
            to = next_number()
            started = time.monotonic()
            try:
                outcome: object = service.start(to, "SignIn")
            except Exception as error:  # noqa: BLE001 - every error is recorded and judged
                outcome = error
            if self.record("start", to, started, outcome) != "sent":
                continue
            code = self.recorder.codes[to]
            for kind, guess in self.guesses(code):
                started = time.monotonic()
                try:
                    outcome = service.check(to, "SignIn", guess)
                except Exception as error:  # noqa: BLE001
                    outcome = error
                self.record(kind, to, started, outcome)

    async def run_async(self, service: VerificationService) -> None:
        while not self.recorder.stop.is_set():
            to = next_number()
            started = time.monotonic()
            try:
                outcome: object = await service.start_async(to, "SignIn")
            except Exception as error:  # noqa: BLE001
                outcome = error
            if self.record("start", to, started, outcome) != "sent":
                continue
            code = self.recorder.codes[to]
            for kind, guess in self.guesses(code):
                started = time.monotonic()
                try:
                    outcome = await service.check_async(to, "SignIn", guess)
                except Exception as error:  # noqa: BLE001
                    outcome = error
                self.record(kind, to, started, outcome)

    def guesses(self, code: str) -> list[tuple[str, str]]:
        return [("wrong", wrong_code_for(code))] * self.plan() + [("right", code)]


def verification_violations(calls: list[Call], max_attempts: int) -> list[str]:
    """What the calls show that the store got wrong about codes and attempts."""
    by_number: dict[str, list[Call]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.started):
        by_number[call.number].append(call)
    problems: list[str] = []
    for number, history in by_number.items():
        problems += [f"{number}: {p}" for p in _history_violations(history, max_attempts)]
    return problems


def _history_violations(history: list[Call], max_attempts: int) -> list[str]:
    problems = []
    wrong_answers, counted, last_left = 0, 0, max_attempts
    for call in history:
        if call.kind == "wrong" and call.outcome == CheckStatus.APPROVED.value:
            problems.append("a wrong code was approved")
        if call.kind == "wrong" and call.outcome == CheckStatus.WRONG_CODE.value:
            wrong_answers += 1
            left = call.attempts_left if call.attempts_left is not None else max_attempts
            if left >= last_left:
                problems.append(f"attempts left went from {last_left} to {left}")
            last_left = left
            counted = max(counted, max_attempts - left)
        if call.outcome == CheckStatus.TOO_MANY_ATTEMPTS.value:
            counted = max_attempts
        approved = call.outcome == CheckStatus.APPROVED.value
        if call.kind == "right" and approved and counted >= max_attempts:
            problems.append(f"approved after {counted} counted wrong guesses")
    if wrong_answers > max_attempts:
        problems.append(f"{wrong_answers} wrong guesses answered WRONG_CODE")
    return problems


def run_clients(service: VerificationService, recorder: Recorder) -> tuple[list, threading.Thread]:
    """Start the sync threads and the thread whose event loop runs the async clients."""
    threads = [
        threading.Thread(target=Client(recorder, seed).run_sync, args=(service,), daemon=True)
        for seed in range(SYNC_CLIENTS)
    ]

    async def async_clients() -> None:
        try:
            await asyncio.gather(
                *(Client(recorder, 1000 + seed).run_async(service) for seed in range(ASYNC_CLIENTS))
            )
        finally:
            await service.store.aclose()

    loop_thread = threading.Thread(target=asyncio.run, args=(async_clients(),), daemon=True)
    for thread in [*threads, loop_thread]:
        thread.start()
    return threads, loop_thread


def promote_replica(
    cluster: LocalRedisCluster, master: RedisServer, *, kill: bool
) -> tuple[float, float, RedisServer]:
    """Fail ``master`` over to its replica.

    Returns when the switch began (just before the kill or the ``CLUSTER
    FAILOVER``), when every live node reported the replica a master serving
    slots, and the replica.
    """
    replica = cluster.replica_of(master)
    replica_id = cluster.node_id(replica)
    began = time.monotonic()
    if kill:
        master.kill()
    else:
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER")
    deadline = began + 20
    while time.monotonic() < deadline:
        if cluster.serves_slots_everywhere(replica_id):
            return began, time.monotonic(), replica
        time.sleep(0.02)
    pytest.fail(f"the cluster never reported {replica.address} as the new master")


def describe(calls: list[Call], switch_began: float, took_over: float, *, kill: bool) -> str:
    """One line: how the switch went, when calls failed, and every outcome's count."""
    failed = [c for c in calls if c.outcome in STORE_FAULTS]
    in_flight = sum(c.started < switch_began for c in failed)
    window = (
        f"errors from {min(c.started for c in failed) - switch_began:+.2f} s "
        f"to {max(c.ended for c in failed) - switch_began:+.2f} s after the switch began "
        f"({in_flight} of them in flight when it began)"
        if failed
        else "no errors"
    )
    return (
        f"failover ({'kill' if kill else 'CLUSTER FAILOVER'}): the cluster reported the "
        f"replica as master {took_over - switch_began:.2f} s after the switch began; {window}; "
        f"{dict(Counter(c.outcome for c in calls))}"
    )


class TestClusterFailover:
    """A cluster master fails over while 20 clients work."""

    @pytest.mark.redis_cluster
    @pytest.mark.parametrize("kill", [False, True], ids=["cluster_failover", "kill_master"])
    def test_failover_under_load(self, redis_cluster, connector, emulator, kill):
        """20 clients through a failover: only StoreUnavailable, back within 5 s, nothing wrong."""
        key_prefix = f"fo-{uuid.uuid4().hex[:10]}:"
        # 1 s, not the default 0.5 s: 20 clients, 6 servers and the emulator share
        # 2 cores here, and a call starved of CPU before the switch would fail the
        # test for the wrong reason.
        store = RedisStore.from_url(redis_cluster.url, prefix=key_prefix, store_timeout=1.0)
        policy = VerificationPolicy(
            max_attempts=MAX_ATTEMPTS,
            per_ip_hourly=None,
            per_number_hourly=None,
            per_number_daily=None,
        )
        service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=policy)
        recorder = Recorder()
        emulator.on_message = recorder.on_message
        master = redis_cluster.masters()[0]
        threads, loop_thread = run_clients(service, recorder)
        try:
            time.sleep(WARM)
            wait_until(
                lambda: len(recorder.succeeded()) == SYNC_CLIENTS + ASYNC_CLIENTS,
                WARM_LIMIT,
                "every client to have a call succeed before the switch",
                interval=0.05,
            )
            switch_began, took_over, promoted = promote_replica(redis_cluster, master, kill=kill)
            # Run until errors have stopped for SETTLE seconds, at most RECOVERY + SETTLE.
            while True:
                now = time.monotonic()
                with recorder.lock:
                    errors = [c.ended for c in recorder.calls if c.outcome in STORE_FAULTS]
                quiet_since = max([took_over, *errors])
                if now - quiet_since >= SETTLE or now - took_over >= RECOVERY + SETTLE:
                    break
                time.sleep(0.1)
        finally:
            recorder.stop.set()
            for thread in [*threads, loop_thread]:
                thread.join(timeout=15)
            store.close()
            if kill:
                master.start()  # it comes back as a replica of the new master
            redis_cluster.wait_ok()
        assert not any(t.is_alive() for t in [*threads, loop_thread]), "a client hung"

        calls = recorder.calls
        # The report of the run: shown with -s, and with the failure if there is one.
        print(describe(calls, switch_began, took_over, kill=kill))  # noqa: T201
        assert not recorder.unexpected, f"untyped errors: {recorder.unexpected[:5]!r}"
        errors = [c for c in calls if c.outcome not in {"sent", *(s.value for s in CheckStatus)}]
        assert {c.outcome for c in errors} <= STORE_FAULTS, Counter(c.outcome for c in errors)
        early = [c for c in errors if c.ended < switch_began]
        assert not early, f"{len(early)} calls failed before the switch began"
        late = [c for c in errors if c.started > took_over + RECOVERY]
        assert not late, f"{len(late)} calls failed more than {RECOVERY} s after the takeover"
        after = [c for c in calls if c.started > took_over and c not in errors]
        assert len(after) >= 50, f"only {len(after)} calls succeeded after the takeover"
        assert verification_violations(calls, MAX_ATTEMPTS) == []
        # The switched slots carried traffic: the promoted replica, now a master,
        # holds keys of this test like the two other masters.
        holders = set()
        for node in redis_cluster.masters():
            with node.client() as client:
                if next(client.scan_iter(f"{key_prefix}*", count=1000), None) is not None:
                    holders.add(node.port)
        assert promoted.port in holders
        assert len(holders) == 3


class TestViolationChecker:
    """The checker above finds each kind of wrong answer (so the failover test can fail)."""

    @staticmethod
    def history(*steps: tuple[str, str, int | None]) -> list[Call]:
        return [
            Call(kind, "13700000000", float(i), float(i), outcome, left)
            for i, (kind, outcome, left) in enumerate(steps)
        ]

    def test_clean_history(self):
        """Two wrong guesses counted down, then the right code: no violation."""
        calls = self.history(
            ("start", "sent", None),
            ("wrong", "wrong_code", 2),
            ("wrong", "StoreUnavailable", None),
            ("wrong", "wrong_code", 0),
            ("right", "too_many_attempts", 0),
        )
        assert verification_violations(calls, 3) == []

    @pytest.mark.parametrize(
        ("steps", "found"),
        [
            ([("wrong", "approved", 3)], "wrong code was approved"),
            ([("wrong", "wrong_code", 1), ("wrong", "wrong_code", 2)], "went from 1 to 2"),
            (
                [
                    ("wrong", "wrong_code", 2),
                    ("wrong", "too_many_attempts", 0),
                    ("right", "approved", 3),
                ],
                "approved after 3",
            ),
            ([("wrong", "wrong_code", 0), ("right", "approved", 0)], "approved after 3"),
            ([("wrong", "wrong_code", n) for n in (2, 1, 0, -1)], "4 wrong guesses"),
        ],
    )
    def test_each_violation_is_found(self, steps, found):
        """A history with one kind of wrong answer is reported."""
        problems = verification_violations(self.history(*steps), 3)
        assert any(found in problem for problem in problems), problems


def wait_replicated(master: RedisServer, replica: RedisServer, timeout: float = 10.0) -> None:
    """Wait until ``replica`` has applied everything ``master`` has written so far."""
    deadline = time.monotonic() + timeout
    with master.client() as m, replica.client() as r:
        target = m.info("replication")["master_repl_offset"]
        while r.info("replication").get("slave_repl_offset", -1) < target:
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.01)


class TestSentinel:
    """The README's Sentinel setup follows a failover: only StoreUnavailable, then it works."""

    def test_store_follows_the_promoted_replica(self, connector, emulator):
        """Kill the master: calls fail with StoreUnavailable until Sentinel promotes the replica."""
        with redis_server() as master, redis_server() as replica:
            with replica.client() as client:
                client.replicaof(HOST, master.port)
            wait_replicated(master, replica)
            # Sentinel learns of replicas from the master's INFO, every 10 s
            # after the first: the replica must be there before it starts.
            with redis_sentinel(master) as sentinel:
                self.check_through_failover(connector, emulator, master, replica, sentinel)

    def check_through_failover(self, connector, emulator, master, replica, sentinel) -> None:
        import redis.asyncio.retry
        import redis.asyncio.sentinel
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        from redis.sentinel import Sentinel

        with sentinel.client() as client:
            wait_until(
                lambda: client.sentinel_slaves("mymaster"), 10, "Sentinel to see the replica"
            )
        sentinels = [(HOST, sentinel.port)]
        # As in the README, "Scaling out".
        timeouts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        sync_sentinel = Sentinel(sentinels, **timeouts)
        async_sentinel = redis.asyncio.sentinel.Sentinel(sentinels, **timeouts)
        sync_master = sync_sentinel.master_for("mymaster", retry=Retry(NoBackoff(), 0), **timeouts)
        async_master = async_sentinel.master_for(
            "mymaster", retry=redis.asyncio.retry.Retry(NoBackoff(), 0), protocol=2, **timeouts
        )
        store = RedisStore(sync_master, async_client=async_master, store_timeout=0.5)
        policy = VerificationPolicy(max_attempts=MAX_ATTEMPTS)
        service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=policy)
        to = next_number()
        service.start(to, "SignIn")
        code = next(m.params["code"] for m in emulator.outbox if m.phone_number[-11:] == to)
        assert service.check(to, "SignIn", wrong_code_for(code)).attempts_left == 2
        wait_replicated(master, replica)
        master.kill()
        killed = time.monotonic()
        errors = Counter()
        while True:
            try:
                result = service.check(to, "SignIn", wrong_code_for(code))
                break
            except ServiceUnavailableError as error:
                errors[error.code] += 1
            assert time.monotonic() - killed < 20, "Sentinel never promoted the replica"
            time.sleep(0.05)
        print(  # noqa: T201
            f"sentinel failover: {time.monotonic() - killed:.2f} s after SIGKILL, "
            f"{dict(errors)} meanwhile"
        )
        assert set(errors) <= STORE_FAULTS
        # The promoted replica kept the code and the counted guess.
        assert result.status is CheckStatus.WRONG_CODE
        assert result.attempts_left == 1

        async def right_code() -> bool:
            try:
                return (await service.check_async(to, "SignIn", code)).ok
            finally:
                await async_master.aclose()
                for client in async_sentinel.sentinels:
                    await client.aclose()

        try:
            assert asyncio.run(right_code())
        finally:
            sync_master.close()
            for client in sync_sentinel.sentinels:
                client.close()
