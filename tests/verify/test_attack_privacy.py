"""Attacks on privacy: what a log reader, an event consumer or an error tracker learns.

A whole life runs with the root logger at DEBUG: local and Aliyun-made codes,
wrong and right guesses, an Aliyun failure, a store failure, a pumping block.
Then every log record, every event and every error (its chain, attributes and
frame locals, rendered as ``capture_locals`` does) is searched for a code
(str, bytes, hex), a number (digits, E.164, spaced), the client IP, a
verification id and the secret key, in every encoding tests/privacy.py knows.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from aliyun_sms_connector import AliyunSmsError, NetworkError, PermissionDeniedError
from aliyun_sms_connector.verify import (
    MemoryStore,
    PumpingGuard,
    VerificationPolicy,
    VerificationService,
)
from tests.privacy import (
    assert_no_leak,
    assert_no_leak_in_records,
    capture_debug_logs,
    render_with_locals,
)

from .conftest import SECRET_KEY, FakeClock
from .fake_mas import FakeAliyun

IP = "203.0.113.77"
NUMBERS = [f"+86138001380{i:02d}" for i in range(3)]
JUDGED_AFTER = 10 * 60


def number_forms(e164: str) -> list[str]:
    national = e164[3:]
    return [
        e164,
        e164[1:],
        national,
        f"+86 {national[:3]} {national[3:7]} {national[7:]}",
        f"{national[:3]} {national[3:7]} {national[7:]}",
        f"{national[:3]}-{national[3:7]}-{national[7:]}",
    ]


def code_forms(code: str) -> list[str]:
    return [code, code.encode().hex()]


def library_frames(error: BaseException) -> BaseException:
    """``error`` with its traceback cut to the library's frames (the test's hold the values)."""
    tb = error.__traceback__
    while tb is not None and "aliyun_sms_connector" not in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next
    return error.with_traceback(tb)


class Run:
    """One service's life, every private value it met, and what it told."""

    def __init__(self, guard: PumpingGuard) -> None:
        self.clock = FakeClock(start=1_800_000_000.0)
        self.aliyun = FakeAliyun(self.clock)
        self.events: list[object] = []
        self.errors: list[BaseException] = []
        self.private: set[str] = {SECRET_KEY, IP}
        policy = VerificationPolicy(
            pumping_guard=guard, per_ip_hourly=100, resend_cooldown=timedelta(0)
        )
        store = MemoryStore()
        self.services = {
            mode: VerificationService(
                self.aliyun.connector,
                store,
                secret_key=SECRET_KEY,
                policy=policy,
                clock=self.clock,
                codes=mode,
                on_event=self.events.append,
            )
            for mode in ("local", "aliyun")
        }
        for e164 in NUMBERS:
            self.private.update(number_forms(e164))

    def attempt(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except AliyunSmsError as error:
            self.errors.append(error)
            return None

    def life(self) -> None:
        aliyun, local = self.services["aliyun"], self.services["local"]
        # Aliyun-made codes: a wrong guess, an Aliyun failure, the right code.
        verification = aliyun.start(NUMBERS[0], "SignIn", client_ip=IP)
        self.private.add(verification.id)
        code = self.aliyun.code_for(NUMBERS[0], "SignIn")
        assert code is not None
        self.private.update(code_forms(code))
        self.attempt(aliyun.check, NUMBERS[0], "SignIn", "000000", client_ip=IP)
        self.aliyun.fail_next_check(NetworkError("lost", code="ReadTimeout", maybe_sent=True))
        self.attempt(aliyun.check, NUMBERS[0], "SignIn", code, client_ip=IP)
        assert aliyun.check(NUMBERS[0], "SignIn", code, verification_id=verification.id).ok
        # Local codes through the same connector.
        verification = local.start(NUMBERS[1], "Register", client_ip=IP)
        self.private.add(verification.id)
        code = self.aliyun.outbox[-1].params["code"]
        self.private.update(code_forms(code))
        self.attempt(local.check, NUMBERS[1], "Register", code[::-1] + "9", client_ip=IP)
        assert local.check(NUMBERS[1], "Register", f" {code} ", client_ip=IP).ok
        # A failed send, then unanswered codes until the prefix is blocked.
        self.aliyun.fail_next("isv.AMOUNT_NOT_ENOUGH")
        self.attempt(local.start, NUMBERS[2], "SignIn", client_ip=IP)
        for _ in range(3):
            verification = self.attempt(local.start, NUMBERS[2], "SignIn", client_ip=IP)
            assert verification is not None
            self.private.add(verification.id)
            self.private.update(code_forms(self.aliyun.outbox[-1].params["code"]))
            self.clock.advance(61)
        self.clock.advance(JUDGED_AFTER)
        self.attempt(local.start, NUMBERS[2], "ForgotPassword", client_ip=IP)
        self.attempt(aliyun.start, NUMBERS[2], "ForgotPassword", client_ip=IP)
        blocked = [e for e in self.errors if isinstance(e, PermissionDeniedError)]
        assert len(blocked) == 2


@pytest.mark.parametrize("prefix_digits", [6, 13, 15])
def test_nothing_private_in_logs_events_or_errors(prefix_digits):
    """No code, number, IP, verification id or key, whatever prefix_digits names."""
    guard = PumpingGuard(
        prefix_digits=prefix_digits, min_starts=3, min_conversion=0.9, monitor_regions=frozenset()
    )
    run = Run(guard)
    with capture_debug_logs() as logs:
        run.life()
    private = sorted(run.private)
    assert_no_leak_in_records(logs.records, private)
    for event in run.events:
        assert_no_leak(event, private)
    for error in run.errors:
        assert_no_leak(error, private)
        rendered = render_with_locals(library_frames(error))
        leaked = [p for p in private if p in rendered]
        assert not leaked, f"{type(error).__name__} renders {leaked[:3]}"


@pytest.mark.parametrize(
    "e164",
    ["+4520123456", "+4791234567", "+6581234567", "+447400123456", "+8613800138002"],
    ids=["DK", "NO", "SG", "GB", "CN"],
)
def test_the_warning_and_the_info_line_together_leave_digits_hidden(e164):
    """The block's WARNING shows the prefix, the INFO line the last 4: never all of it.

    With the default prefix_digits (6), an 8-digit national number (Denmark,
    Norway, Singapore: 10 digits in E.164) would be whole once the two lines
    of the same start are read together.
    """
    clock = FakeClock(start=1_800_000_000.0)
    aliyun = FakeAliyun(clock, codes="local")
    service = VerificationService(
        aliyun.connector,
        MemoryStore(),
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(
            pumping_guard=PumpingGuard(min_starts=3, monitor_regions=frozenset()),
            allowed_countries=None,
        ),
        clock=clock,
    )
    with capture_debug_logs() as logs:
        for _ in range(3):
            service.start(e164, "SignIn")
            clock.advance(61)
        clock.advance(JUDGED_AFTER)
        with pytest.raises(PermissionDeniedError):
            service.start(e164, "SignIn")
    shown = "".join(r.getMessage() for r in logs.records if r.levelname == "WARNING")
    prefix = re.search(r"codes to \+(\d+)", shown)
    assert prefix is not None, shown
    digits = e164[1:]
    assert digits.startswith(prefix.group(1))
    # With the last 4 of the INFO line, at least 2 digits stay unknown.
    assert len(prefix.group(1)) + 4 <= len(digits) - 2


def test_async_errors_render_nothing_private():
    """check_async (Aliyun fails) and start_async (refused): no number, IP or id in any frame."""
    import asyncio

    clock = FakeClock(start=1_800_000_000.0)
    aliyun = FakeAliyun(clock)
    service = VerificationService(
        aliyun.connector,
        MemoryStore(),
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(pumping_guard=None),
        clock=clock,
        codes="aliyun",
    )
    e164 = NUMBERS[0]
    verification = service.start(e164, "SignIn", client_ip=IP)
    code = aliyun.code_for(e164, "SignIn")
    assert code is not None
    aliyun.fail_next_check(NetworkError("lost", code="ReadTimeout", maybe_sent=True))

    async def attempts():
        bound = {"verification_id": verification.id, "client_ip": IP}
        answers = await asyncio.gather(
            service.check_async(e164, "SignIn", code, **bound),
            service.start_async(e164, "SignIn", client_ip=IP),  # the cooldown refuses it
            return_exceptions=True,
        )
        return [a for a in answers if isinstance(a, AliyunSmsError)]

    errors = asyncio.run(attempts())
    assert len(errors) == 2
    private = [*number_forms(e164), IP, verification.id, *code_forms(code), SECRET_KEY]
    for error in errors:
        assert_no_leak(error, private)
        rendered = render_with_locals(library_frames(error))
        assert not [p for p in private if p in rendered], rendered
