"""The invariant of Aliyun-made codes (issue 19 item 4), as a property over random interleavings.

With ``codes="aliyun"`` the store never compares a code: Aliyun does. What
must hold, whatever starts are refused, sends fail, Aliyun errs, and checks
interleave with the steps of a start and of other checks:

- the store counts every guess before Aliyun is asked: each
  ``CheckSmsVerifyCode`` belongs to a check whose guess ``count`` counted just
  before, once; so Aliyun is never asked more times than guesses counted, and
  a locked, expired, missing or approved verification (which ``count`` does
  not count) never reaches Aliyun;
- a verification is ``APPROVED`` at most once per start, only in a check that
  Aliyun passed, only if that start committed, and never past its ``ttl``;
- the guesses counted in any sliding hour stay within ``max_attempts`` times
  the codes Aliyun made in that hour (or one ``ttl`` before), and the wrong
  ones within ``per_number_failed_checks_hourly``;
- test numbers stay local: Aliyun is never asked about them.

The machine drives a real :class:`VerificationService` on a
:class:`MemoryStore` with a fake clock and FakeAliyun (an autospec'd
``AliyunMasConnector``), which may or may not use a code up on ``PASS``.
Between any two store operations, during a send, and between a check's
count and its approval, it runs other checks chosen by hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from aliyun_sms_connector import AliyunSmsError, ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    VerificationPolicy,
    VerificationService,
)
from aliyun_sms_connector.verify._keys import number_keys

from .conftest import SECRET_KEY, FakeClock
from .fake_mas import FakeAliyun

VICTIM = "+8613800138000"
TEST_NUMBER = "+8613700137000"
TEST_CODE = "246810"
OTHERS = ("+8613900139000", "+8613900139001")
IPS = ("203.0.113.7", "198.51.100.9")
USAGE = "SignIn"
MAX_ATTEMPTS = 3
FAILED_HOURLY = 7
TTL = timedelta(minutes=10)
HOUR = 3600.0


@dataclass
class Context:
    """One check under way: what the store counted and what Aliyun said, for it alone."""

    number: str
    counted: bool = False
    asked: int = 0
    passed: bool = False


@dataclass
class Ledger:
    # (time, code) of every code Aliyun made, per number.
    made: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    # Times of guesses the store counted, per number.
    counted: dict[str, list[float]] = field(default_factory=dict)
    # Times of WRONG_CODE answers, per number.
    wrong: dict[str, list[float]] = field(default_factory=dict)
    asked: int = 0
    counted_total: int = 0
    # verification id -> expiry (ms), of the reservations that were committed.
    committed: dict[str, int] = field(default_factory=dict)
    approved: set[str] = field(default_factory=set)


class SpyingStore:
    """A MemoryStore that reports counts and approvals, and interleaves checks after each step."""

    def __init__(self, inner: MemoryStore, machine: AliyunMachine) -> None:
        self._inner = inner
        self._machine = machine
        self.shared = inner.shared

    def count(self, guess: Any) -> Any:
        answer = self._inner.count(guess)
        self._machine.on_count(guess, answer)
        self._machine.interleave()
        return answer

    def approve(self, guess: Any, counted: Any) -> Any:
        key = number_keys("", guess.number, guess.usage_type).record
        record = self._inner._state.records.get(key)
        pending = None if record is None or record.pending is None else record.pending
        answer = self._inner.approve(guess, counted)
        if answer[0] is CheckStatus.APPROVED:
            assert pending is not None
            assert pending.verification_id == counted.verification_id, (
                "approved a verification other than the one the guess was counted on"
            )
        self._machine.on_approve(guess, counted, answer)
        return answer

    def commit(self, reservation: Any) -> bool:
        done = self._inner.commit(reservation)
        if done:
            self._machine.ledger.committed[reservation.verification_id] = reservation.expires_ms
        self._machine.interleave()
        return done

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target) or name.startswith("check"):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            self._machine.interleave()
            return result

        return call


class AliyunMachine(RuleBasedStateMachine):
    """Starts, failed sends, checks (right, old, wrong, in flight), Aliyun errors, clock steps."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(start=1_800_000_000.0)
        self.ledger = Ledger()
        self.contexts: list[Context] = []
        self.data: Any = None
        self.depth = 0
        self.policy = VerificationPolicy(
            max_attempts=MAX_ATTEMPTS,
            ttl=TTL,
            resend_cooldown=timedelta(0),
            per_number_cooldown=timedelta(0),
            per_number_hourly=12,
            per_number_daily=None,
            per_ip_hourly=3,
            per_number_failed_checks_hourly=FAILED_HOURLY,
            test_numbers={TEST_NUMBER: TEST_CODE},
        )

    @initialize(consume=st.booleans())
    def build(self, consume: bool) -> None:
        self.aliyun = FakeAliyun(self.clock, consume=consume)
        connector = self.aliyun.connector
        sending = connector.send_verify_code.side_effect
        checking = connector.check_verify_code.side_effect

        def send(to: str, usage_type: Any, **kwargs: Any) -> Any:
            before = len(self.aliyun.outbox)
            try:
                return sending(to, usage_type, **kwargs)
            finally:
                if len(self.aliyun.outbox) > before:  # Aliyun made a code and sent it
                    made = (self.clock.now, self.aliyun.outbox[-1].params["code"])
                    self.ledger.made.setdefault(to, []).append(made)
                self.interleave()  # in flight: Aliyun holds the new code already

        def check(to: str, usage_type: Any, code: str) -> bool:
            assert to != TEST_NUMBER, "Aliyun was asked about a test number"
            context = self.contexts[-1]
            assert context.number == to
            assert context.counted, "Aliyun was asked about a guess the store had not counted"
            assert context.asked == 0, "Aliyun was asked twice for one counted guess"
            context.asked += 1
            self.ledger.asked += 1
            if self.data is not None and self.data.draw(st.booleans(), label="aliyun fails"):
                raise ServiceUnavailableError("busy", code="ServiceUnavailable", retryable=True)
            passed = checking(to, usage_type, code)
            context.passed = passed
            self.interleave()  # other checks, and re-starts, while its answer travels back
            return passed

        connector.send_verify_code.side_effect = send
        connector.check_verify_code.side_effect = check
        self.service = VerificationService(
            connector,
            SpyingStore(MemoryStore(), self),
            secret_key=SECRET_KEY,
            policy=self.policy,
            clock=self.clock,
            codes="aliyun",
        )

    # -- the spies -------------------------------------------------------------------

    def on_count(self, guess: Any, answer: Any) -> None:
        context = self.contexts[-1]
        assert not context.counted, "one check counted twice"
        if getattr(answer, "status", None) is CheckStatus.WRONG_CODE:
            context.counted = True
            self.ledger.counted_total += 1
            self.ledger.counted.setdefault(context.number, []).append(self.clock.now)

    def on_approve(self, guess: Any, counted: Any, answer: Any) -> None:
        context = self.contexts[-1]
        assert context.passed, "approve was asked without Aliyun's PASS"
        if answer[0] is CheckStatus.APPROVED:
            vid = counted.verification_id
            assert vid not in self.ledger.approved, "a verification was approved twice"
            assert vid in self.ledger.committed, "a verification never committed was approved"
            assert guess.now_ms < self.ledger.committed[vid], "an expired verification approved"
            self.ledger.approved.add(vid)

    # -- checks, at the top or interleaved ---------------------------------------------

    def interleave(self) -> None:
        if self.data is None or self.depth:
            return
        self.depth += 1
        try:
            count = self.data.draw(st.integers(0, 2), label="interleaved checks")
            for _ in range(count):
                self.check_once(self.data.draw(st.sampled_from([VICTIM, TEST_NUMBER])))
            if self.data.draw(st.booleans(), label="interleaved re-start"):
                self.start_once(VICTIM, None, "ok")
        finally:
            self.depth -= 1

    def guess_for(self, number: str) -> str:
        choices = ["000000", "999999"]
        if number == TEST_NUMBER:
            choices.append(TEST_CODE)
        made = [code for _, code in self.ledger.made.get(number, [])[-3:]]
        choices.extend(made[-1:] * 2 + made)  # the latest code, most often
        return self.data.draw(st.sampled_from(choices), label="guess")

    def check_once(self, number: str) -> None:
        code = self.guess_for(number)
        context = Context(number)
        self.contexts.append(context)
        try:
            result = self.service.check(number, USAGE, code)
        except AliyunSmsError:
            result = None
        finally:
            self.contexts.pop()
        if number == TEST_NUMBER:
            assert not context.counted, "a test number's guess went the Aliyun way"
        if result is None:
            return
        if result.status is CheckStatus.WRONG_CODE:
            self.ledger.wrong.setdefault(number, []).append(self.clock.now)
        if result.status is CheckStatus.APPROVED and number != TEST_NUMBER:
            assert context.passed, "APPROVED without Aliyun's PASS"

    # -- rules -------------------------------------------------------------------------

    @rule(
        data=st.data(),
        number=st.sampled_from([VICTIM, TEST_NUMBER, *OTHERS]),
        ip=st.sampled_from([*IPS, None]),
        outcome=st.sampled_from(["ok", "unsent", "maybe_sent"]),
    )
    def start(self, data: Any, number: str, ip: str | None, outcome: str) -> None:
        self.data = data
        try:
            self.start_once(number, ip, outcome)
        finally:
            self.data = None

    def start_once(self, number: str, ip: str | None, outcome: str) -> None:
        self.aliyun.send_failures.clear()
        if outcome == "unsent":
            self.aliyun.fail_next("isv.BUSINESS_LIMIT_CONTROL")
        elif outcome == "maybe_sent":
            self.aliyun.drop_connection()
        try:
            self.service.start(number, USAGE, client_ip=ip)
        except AliyunSmsError:
            pass
        finally:
            self.aliyun.send_failures.clear()  # a start refused before its send used none

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

    # -- the invariant -------------------------------------------------------------------

    @invariant()
    def aliyun_never_asked_more_than_counted(self) -> None:
        assert self.ledger.asked <= self.ledger.counted_total

    @invariant()
    def counted_within_budget(self) -> None:
        now = self.clock.now
        for number, times in self.ledger.counted.items():
            recent = [t for t in times if t > now - HOUR]
            made = [t for t, _ in self.ledger.made.get(number, []) if t > now - HOUR - 600]
            assert len(recent) <= MAX_ATTEMPTS * len(made), (
                f"{len(recent)} guesses counted in an hour against {len(made)} codes made"
            )

    @invariant()
    def wrong_within_number_budget(self) -> None:
        now = self.clock.now
        for times in self.ledger.wrong.values():
            assert len([t for t in times if t > now - HOUR]) <= FAILED_HOURLY


TestAliyunInterleavings = AliyunMachine.TestCase
TestAliyunInterleavings.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
