"""Verification events: one per outcome, safe to ship anywhere, and a handler cannot hurt."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from datetime import datetime, timezone

import pytest

from aliyun_sms_connector import (
    AliyunSmsError,
    ConfigError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
)
from aliyun_sms_connector.verify import (
    MemoryStore,
    VerificationEvent,
    VerificationPolicy,
    VerificationService,
)

from ..privacy import assert_no_leak  # noqa: TID252 - the harness is shared by every suite
from . import intl
from .conftest import NUMBER, SECRET_KEY

emulator = intl.emulator
connector = intl.connector

LOGGER = "aliyun_sms_connector.verify"
IP = "203.0.113.77"
EPOCH = 1_800_000_000.0  # whole seconds: no microseconds in `at` to look like a code


@pytest.fixture
def events():
    return []


@pytest.fixture
def service(connector, clock, events):
    clock.now = EPOCH
    return VerificationService(
        connector,
        MemoryStore(),
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(allowed_countries={"CN", "GB"}),
        clock=clock,
        on_event=events.append,
    )


def last_code(emulator) -> str:
    return emulator.outbox[-1].params["code"]


class TestKinds:
    """Each outcome gives exactly one event of its kind, with the fields that apply."""

    def test_started(self, service, events, clock):
        """A start: started, the usage type, region, masked number and the clock's time."""
        service.start(NUMBER, "SignIn")
        assert events == [
            VerificationEvent(
                kind="started",
                usage_type="SignIn",
                region="CN",
                masked_number="***8000",
                code=None,
                attempts_left=None,
                blocked=None,
                at=datetime.fromtimestamp(EPOCH, tz=timezone.utc),
            )
        ]
        assert events[0].at.tzinfo is not None

    def test_checks(self, service, events, emulator):
        """wrong_code, approved, not_found and locked, with attempts left where they apply."""
        service.start(NUMBER, "SignIn")
        code = last_code(emulator)
        service.check(NUMBER, "SignIn", "000000" if code != "000000" else "111111")
        service.check(NUMBER, "SignIn", code)
        service.check(NUMBER, "SignIn", code)
        kinds = [(e.kind, e.attempts_left, e.code) for e in events[1:]]
        assert kinds == [("wrong_code", 4, None), ("approved", 4, None), ("not_found", None, None)]

    def test_locked(self, service, events, emulator, clock):
        """After max_attempts wrong codes, a check is locked with 0 attempts left."""
        service.start(NUMBER, "SignIn")
        wrong = "000000" if last_code(emulator) != "000000" else "111111"
        for _ in range(6):
            service.check(NUMBER, "SignIn", wrong)
        assert [e.kind for e in events[-2:]] == ["wrong_code", "locked"]
        assert events[-1].attempts_left == 0

    def test_refusals(self, service, events):
        """A cooldown, a country not allowed and a bad number are refused, with their codes."""
        service.start(NUMBER, "SignIn")
        with pytest.raises(RateLimitExceededError):
            service.start(NUMBER, "SignIn")
        with pytest.raises(PermissionDeniedError):
            service.start("+33612345678", "SignIn")
        with pytest.raises(InvalidPhoneNumberError):
            service.start("12345", "SignIn")
        with pytest.raises(InvalidPhoneNumberError):
            service.check("12345", "SignIn", "123456")
        refused = [(e.kind, e.code, e.region, e.masked_number) for e in events[1:]]
        assert refused == [
            ("refused", "VerificationCooldown", "CN", "***8000"),
            ("refused", "CountryNotAllowed", "FR", "***5678"),
            ("refused", "InvalidPhoneNumber", None, "***2345"),
            ("refused", "InvalidPhoneNumber", None, "***2345"),
        ]

    def test_send_failed(self, service, events, emulator):
        """Aliyun's refusal is send_failed with Aliyun's code."""
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AliyunSmsError):
            service.start(NUMBER, "SignIn")
        assert [(e.kind, e.code) for e in events] == [("send_failed", "isv.AMOUNT_NOT_ENOUGH")]

    def test_unknown_usage_type(self, service, events):
        """An unknown usage type is refused, and the event names none."""
        with pytest.raises(AliyunSmsError):
            service.start(NUMBER, "NoSuchUsage")
        assert [(e.kind, e.code, e.usage_type) for e in events] == [
            ("refused", "UnknownUsageType", None)
        ]

    def test_async_paths_emit_the_same(self, service, events, emulator):
        """start_async and check_async call the same handler with the same events."""

        async def go():
            await service.start_async(NUMBER, "SignIn")
            await service.check_async(NUMBER, "SignIn", last_code(emulator))
            with pytest.raises(RateLimitExceededError):
                await service.start_async(NUMBER, "SignIn")

        asyncio.run(go())
        assert [e.kind for e in events] == ["started", "approved", "refused"]

    def test_no_handler_no_events(self, connector, clock, emulator):
        """Without on_event nothing is built: start and check work as before."""
        service = VerificationService(connector, clock=clock)
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", last_code(emulator)).ok


class TestPrivacy:
    """No event holds a code, a full number, an IP, a verification id or the secret."""

    def test_no_private_value_anywhere(self, service, events, emulator):
        """Every field and the repr of every event of a whole session is free of them."""
        verification = service.start(NUMBER, "SignIn", client_ip=IP)
        code = last_code(emulator)
        service.check(NUMBER, "SignIn", "999999" if code != "999999" else "888888", client_ip=IP)
        service.check(NUMBER, "SignIn", code, verification_id=verification.id, client_ip=IP)
        with pytest.raises(RateLimitExceededError):
            service.start(NUMBER, "SignIn", client_ip=IP)
        assert len(events) == 4
        private = [
            code,
            "13800138000",
            "+8613800138000",
            "8613800138000",
            IP,
            verification.id,
            SECRET_KEY,
        ]
        for event in events:
            assert_no_leak(event, private)
            for name in (f.name for f in dataclasses.fields(event)):
                assert_no_leak(getattr(event, name), private)
            text = repr(event) + str(event)
            assert all(value not in text for value in private)

    def test_frozen(self, service, events):
        """An event cannot be changed by a handler."""
        service.start(NUMBER, "SignIn")
        with pytest.raises(dataclasses.FrozenInstanceError):
            events[0].masked_number = "+8613800138000"  # type: ignore[misc]


class TestHandlerFailures:
    """A handler that raises is logged once per exception type and breaks nothing."""

    def test_raising_handler_breaks_nothing(self, connector, clock, emulator, caplog):
        """Starts and checks succeed; one WARNING per exception type, naming only the type."""
        raised = []

        def handler(event):
            raised.append(event.kind)
            if event.kind == "started":
                raise RuntimeError(f"boom {event.masked_number}")
            raise KeyError(event.kind)

        service = VerificationService(connector, clock=clock, on_event=handler)
        caplog.set_level(logging.WARNING, logger=LOGGER)
        for number in (NUMBER, "13900139000"):
            service.start(number, "SignIn")
            assert service.check(number, "SignIn", last_code(emulator)).ok

        async def again():
            await service.start_async("13700137000", "SignIn")

        asyncio.run(again())
        assert raised == ["started", "approved", "started", "approved", "started"]
        warnings = [r.getMessage() for r in caplog.records if "on_event" in r.getMessage()]
        assert len(warnings) == 2
        assert any("RuntimeError" in w for w in warnings)
        assert any("KeyError" in w for w in warnings)
        assert all("8000" not in w and "boom" not in w for w in warnings)

    def test_each_service_warns_on_its_own(self, connector, clock, emulator, caplog):
        """The once-per-type memory belongs to a service instance."""

        def handler(event):
            raise ValueError(event.kind)

        caplog.set_level(logging.WARNING, logger=LOGGER)
        for number in (NUMBER, "13900139000"):
            VerificationService(connector, clock=clock, on_event=handler).start(number, "SignIn")
        assert sum("on_event" in r.getMessage() for r in caplog.records) == 2

    def test_async_handler_is_refused(self, connector):
        """A coroutine function would never run: ConfigError at construction."""

        async def handler(event):
            return None

        with pytest.raises(ConfigError, match="plain function"):
            VerificationService(connector, on_event=handler)

    def test_not_callable_is_refused(self, connector):
        """on_event must be callable."""
        with pytest.raises(ConfigError, match="callable"):
            VerificationService(connector, on_event="print")
