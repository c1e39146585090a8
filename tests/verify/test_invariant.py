"""The verification service's security invariant, as a property over random interleavings.

The invariant (issue 18): for one number and usage type, the guesses the
store evaluates in any sliding hour are at most ``max_attempts`` times the
codes actually handed to Aliyun (or issued to a test number), and a code that
was never handed to Aliyun, or was replaced or expired since, is never
approved. It must hold whatever starts are refused, whatever sends fail, and
however checks interleave with the steps of a start.

The machine below drives a real :class:`VerificationService` on a
:class:`MemoryStore` with a fake clock and a fake connector whose sends
succeed, fail unsent (``maybe_sent=False``), or fail maybe sent. Between any
two store operations of a start, and during the send itself, it runs checks
chosen by hypothesis: the victim's right code, an older code, the code of the
start under way (which was never sent), or a wrong one. "Evaluated" means
the store compared the guess with a stored code: a spy on the store's one
comparison function sees it, whatever the answer was (a guess answered
``NOT_FOUND`` after a comparison is an evaluation too: an oracle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from aliyun_sms_connector import (
    AliyunSmsError,
    NetworkError,
    RateLimitExceededError,
    SendResult,
)
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    VerificationPolicy,
    VerificationService,
    _memory,
)

from .conftest import SECRET_KEY, FakeClock

VICTIM = "+8613800138000"
TEST_NUMBER = "+8613700137000"
TEST_CODE = "246810"
ATTACKER_NUMBERS = ("+8613900139000", "+8613900139001", "+8613900139002")
IPS = ("203.0.113.7", "198.51.100.9")
USAGE = "SignIn"
MAX_ATTEMPTS = 3
TTL = timedelta(minutes=10)
HOUR = 3600.0


@dataclass
class Ledger:
    """What really happened, as the attacker's opponent would account for it."""

    # (time, code) of every code handed to Aliyun (or issued to the test number).
    handed: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    # Times of the checks the store evaluated, per number.
    evaluated: dict[str, list[float]] = field(default_factory=dict)
    # Times of WRONG_CODE answers, per number.
    wrong: dict[str, list[float]] = field(default_factory=dict)


class FakeConnector:
    """Sends nothing: records what was handed over, and fails as told."""

    def __init__(self, machine: InterleavingMachine) -> None:
        self.config = SimpleNamespace(strict_phone_region_number_check=False)
        self.machine = machine

    def send_message(self, to: str, usage_type: Any, payload: dict[str, str]) -> SendResult:
        machine = self.machine
        code = payload["code"]
        machine.in_flight = (to, code)
        machine.interleave("send")
        machine.in_flight = None
        outcome = machine.next_send
        if outcome == "unsent":
            raise RateLimitExceededError(
                "flow control", code="isv.BUSINESS_LIMIT_CONTROL", maybe_sent=False
            )
        machine.ledger.handed.setdefault(to, []).append((machine.clock.now, code))
        if outcome == "maybe_sent":
            raise NetworkError("read timeout", code="ReadTimeout", maybe_sent=True)
        return SendResult("biz", "req", to, "SMS_CODE", usage_type)

    async def send_message_async(self, *args: Any) -> SendResult:  # pragma: no cover - sync only
        return self.send_message(*args)


class InterleavingStore:
    """A MemoryStore whose every non-check operation is followed by injected checks."""

    def __init__(self, inner: MemoryStore, machine: InterleavingMachine) -> None:
        self._inner = inner
        self._machine = machine
        self.shared = inner.shared

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target) or name.startswith("check"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            self._machine.interleave(name)
            return result

        return call


class InterleavingMachine(RuleBasedStateMachine):
    """Starts, refused starts, failed sends, checks and clock steps, interleaved at random."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=1_800_000_000.0)
        self.ledger = Ledger()
        self.in_flight: tuple[str, str] | None = None
        # A test number's code is issued by the store step inside start, not by
        # a send: while such a start runs, its code counts as issued.
        self.issuing: tuple[float, str] | None = None
        self.next_send = "ok"
        self.data: Any = None
        self.depth = 0
        self.comparing: str | None = None
        self.compared = False
        self.policy = VerificationPolicy(
            max_attempts=MAX_ATTEMPTS,
            ttl=TTL,
            # No cooldowns, small caps: refusals and re-starts happen often.
            resend_cooldown=timedelta(0),
            per_number_cooldown=timedelta(0),
            per_number_hourly=4,
            per_number_daily=None,
            per_ip_hourly=2,
            test_numbers={TEST_NUMBER: TEST_CODE},
        )
        self.service = VerificationService(
            FakeConnector(self),
            InterleavingStore(MemoryStore(), self),
            secret_key=SECRET_KEY,
            policy=self.policy,
            clock=self.clock,
        )

    @initialize(target=None)
    def spy(self) -> None:
        real = _memory.digests_equal

        def spying(a: str, b: str) -> bool:
            self.compared = True
            return real(a, b)

        self._patch = pytest.MonkeyPatch()
        self._patch.setattr(_memory, "digests_equal", spying)

    def teardown(self) -> None:
        patch = getattr(self, "_patch", None)
        if patch is not None:
            patch.undo()

    # -- what the attacker may do between any two steps ------------------------

    def interleave(self, _step: str) -> None:
        if self.data is None or self.depth:
            return
        self.depth += 1
        try:
            count = self.data.draw(st.integers(0, 3), label="interleaved checks")
            for _ in range(count):
                self.check_once(self.data.draw(st.sampled_from([VICTIM, TEST_NUMBER])))
        finally:
            self.depth -= 1

    def guess_for(self, number: str) -> str:
        handed = [code for _, code in self.ledger.handed.get(number, [])]
        choices = ["000000", "999999"]
        if number == TEST_NUMBER:
            choices.append(TEST_CODE)
        choices.extend(handed[-3:])
        if self.in_flight is not None and self.in_flight[0] == number:
            choices.append(self.in_flight[1])  # the code of the start under way: never sent
        return self.data.draw(st.sampled_from(choices), label="guess")

    def check_once(self, number: str) -> None:
        code = self.guess_for(number)
        self.compared = False
        try:
            result = self.service.check(number, USAGE, code)
        except AliyunSmsError:
            result = None
        now = self.clock.now
        if self.compared:
            self.ledger.evaluated.setdefault(number, []).append(now)
        if result is not None and result.status is CheckStatus.WRONG_CODE:
            self.ledger.wrong.setdefault(number, []).append(now)
        if result is not None and result.status is CheckStatus.APPROVED:
            self.assert_approvable(number, code, now)

    def handed(self, number: str) -> list[tuple[float, str]]:
        handed = self.ledger.handed.get(number, [])
        if number == TEST_NUMBER and self.issuing is not None:
            handed = [*handed, self.issuing]
        return handed

    def assert_approvable(self, number: str, code: str, now: float) -> None:
        handed = self.handed(number)
        assert handed, "a code was approved for a number that was never sent one"
        when, latest = handed[-1]
        assert code == latest, "an approved code was not the latest code handed to Aliyun"
        assert now < when + TTL.total_seconds(), "an approved code had expired"

    # -- rules -------------------------------------------------------------------

    @rule(
        data=st.data(),
        number=st.sampled_from([VICTIM, TEST_NUMBER, *ATTACKER_NUMBERS]),
        ip=st.sampled_from([*IPS, None]),
        outcome=st.sampled_from(["ok", "unsent", "maybe_sent"]),
    )
    def start(self, data: Any, number: str, ip: str | None, outcome: str) -> None:
        self.data = data
        self.next_send = outcome
        if number == TEST_NUMBER:
            self.issuing = (self.clock.now, TEST_CODE)
        try:
            self.service.start(number, USAGE, client_ip=ip)
        except AliyunSmsError:
            pass
        else:
            if self.issuing is not None:
                self.ledger.handed.setdefault(number, []).append(self.issuing)
        finally:
            self.data = None
            self.issuing = None

    @rule(data=st.data(), number=st.sampled_from([VICTIM, TEST_NUMBER]))
    def check(self, data: Any, number: str) -> None:
        self.data = data
        try:
            self.check_once(number)
        finally:
            self.data = None

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0, 300.0, 601.0, 1800.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    # -- the invariant -------------------------------------------------------------

    @invariant()
    def evaluated_within_budget(self) -> None:
        now = self.clock.now
        for number, times in self.ledger.evaluated.items():
            recent = [t for t in times if t > now - HOUR]
            handed = [t for t, _ in self.handed(number) if t > now - HOUR - TTL.total_seconds()]
            assert len(recent) <= MAX_ATTEMPTS * len(handed), (
                f"{len(recent)} guesses evaluated in an hour against "
                f"{len(handed)} codes handed to Aliyun"
            )

    @invariant()
    def wrong_guesses_within_number_budget(self) -> None:
        budget = getattr(self.policy, "per_number_failed_checks_hourly", None)
        if budget is None:
            return
        now = self.clock.now
        for times in self.ledger.wrong.values():
            assert len([t for t in times if t > now - HOUR]) <= budget


TestInterleavings = InterleavingMachine.TestCase
TestInterleavings.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
