"""verify._service: configuration, logging, failure handling and privacy of the service."""

from __future__ import annotations

import asyncio
import json
import logging
import traceback

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsConnector,
    AliyunSmsError,
    ConfigError,
    RateLimitExceededError,
    ServiceUnavailableError,
    TemplateNotFoundError,
    parse_phone,
)
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    VerificationPolicy,
    VerificationService,
)
from aliyun_sms_connector.verify._store import store_unavailable

from .conftest import NUMBER, SECRET_KEY

LOGGER = "aliyun_sms_connector.verify"


def service_for(connector, clock, store=None, **policy):
    return VerificationService(
        connector, store, secret_key=SECRET_KEY, policy=VerificationPolicy(**policy), clock=clock
    )


class BrokenStore(MemoryStore):
    """A MemoryStore whose chosen operations fail as an unreachable store would."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)
        self.calls: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise store_unavailable()

    def reserve(self, reservation):
        self._maybe_fail("reserve")
        return super().reserve(reservation)

    def reserve_shared(self, reservation):
        self._maybe_fail("reserve_shared")
        return super().reserve_shared(reservation)

    def commit(self, reservation):
        self._maybe_fail("commit")
        return super().commit(reservation)

    def release(self, reservation):
        self._maybe_fail("release")
        return super().release(reservation)

    def release_shared(self, reservation):
        self._maybe_fail("release_shared")
        return super().release_shared(reservation)

    def check(self, guess):
        self._maybe_fail("check")
        return super().check(guess)


def starter(service, run: str):
    """start(NUMBER, "SignIn") on the sync path or the async one."""

    def start():
        if run == "sync":
            return service.start(NUMBER, "SignIn")
        return asyncio.run(service.start_async(NUMBER, "SignIn"))

    return start


class TestConfiguration:
    """What the service needs to be built."""

    def test_memory_store_needs_no_key(self, connector, clock, emulator):
        """A MemoryStore gets a random per-process key when none is given."""
        service = VerificationService(connector, clock=clock)
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"]).ok

    def test_default_stores_are_not_shared(self, connector):
        """Two services made without a store do not share one MemoryStore."""
        assert VerificationService(connector).store is not VerificationService(connector).store

    @pytest.mark.parametrize("key", ["x" * 31, b"x" * 31, ""])
    def test_short_key_is_refused(self, connector, key):
        """A key under 32 bytes is a ConfigError, whatever the store."""
        with pytest.raises(ConfigError, match="32 bytes"):
            VerificationService(connector, secret_key=key)

    def test_bytes_and_str_keys_agree(self, connector, clock, emulator):
        """The same key as str or bytes verifies the same codes."""
        store = MemoryStore()
        one = VerificationService(connector, store, secret_key=SECRET_KEY, clock=clock)
        two = VerificationService(connector, store, secret_key=SECRET_KEY.encode(), clock=clock)
        one.start(NUMBER, "SignIn")
        assert two.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"]).ok

    def test_another_key_does_not_verify(self, connector, clock, emulator):
        """A code stored under one key is not found under another."""
        store = MemoryStore()
        one = VerificationService(connector, store, secret_key=SECRET_KEY, clock=clock)
        two = VerificationService(
            connector, store, secret_key="another-secret-key-of-at-least-32-bytes", clock=clock
        )
        one.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        assert two.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND

    def test_invalid_test_number(self, connector):
        """A test number that does not parse is a ConfigError, not echoed."""
        policy = VerificationPolicy(test_numbers={"12345": "123456"})
        with pytest.raises(ConfigError) as caught:
            VerificationService(connector, policy=policy)
        assert "12345" not in str(caught.value)

    def test_unknown_usage_type(self, connector, clock):
        """An unknown usage type is TemplateNotFoundError UnknownUsageType."""
        service = service_for(connector, clock)
        with pytest.raises(TemplateNotFoundError) as caught:
            service.start(NUMBER, "Nope")
        assert caught.value.code == "UnknownUsageType"

    @pytest.mark.parametrize("method", ["start", "check"])
    def test_usage_type_in_another_case(self, connector, clock, emulator, method):
        """Names are case-sensitive: "signin" is refused, naming SignIn and the valid list."""
        service = service_for(connector, clock)
        call = getattr(service, method)
        args = (NUMBER, "signin") if method == "start" else (NUMBER, "signin", "123456")
        with pytest.raises(TemplateNotFoundError) as caught:
            call(*args)
        message = caught.value.message
        assert "did you mean SignIn? usage types are case-sensitive" in message
        assert "valid usage types are: Register, SignIn, ForgotPassword, Generic" in message
        assert "signin" not in message  # the caller's text is never echoed
        assert emulator.requests == []

    @pytest.mark.parametrize("usage_type", ["Nope", ["SignIn"], None])
    def test_unknown_usage_type_on_check(self, connector, clock, usage_type):
        """check refuses an unknown usage type the same way, whatever its type."""
        service = service_for(connector, clock)
        with pytest.raises(TemplateNotFoundError):
            service.check(NUMBER, usage_type, "123456")

    def test_usage_type_member_and_value_agree(self, connector, clock, emulator):
        """UsageType.SIGN_IN, "SignIn" and "SIGN_IN" check the same verification."""
        from aliyun_sms_connector import UsageType

        service = service_for(connector, clock)
        service.start(NUMBER, UsageType.SIGN_IN)
        code = emulator.outbox[-1].params["code"]
        wrong = service.check(NUMBER, "SIGN_IN", "000000" if code != "000000" else "1" * 6)
        assert (wrong.status, wrong.attempts_left) == (CheckStatus.WRONG_CODE, 4)
        assert service.check(NUMBER, UsageType.SIGN_IN, code).attempts_left == 4
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND

    def test_usage_type_by_member_name(self, connector, clock, emulator):
        """SIGN_IN and SignIn name the same usage type."""
        service = service_for(connector, clock)
        service.start(NUMBER, "SIGN_IN")
        assert service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"]).ok

    def test_code_length(self, connector, clock, emulator):
        """code_length=8 sends 8 digits."""
        service = service_for(connector, clock, code_length=8)
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        assert len(code) == 8
        assert code.isdigit()

    def test_policy_and_repr(self, connector):
        """The service shows its store and policy, nothing private."""
        service = VerificationService(connector)
        assert isinstance(service.policy, VerificationPolicy)
        assert "MemoryStore" in repr(service)


class TestLogging:
    """One INFO line per start and per check, with the outcome and the masked number."""

    def lines(self, caplog):
        return [r.getMessage() for r in caplog.records if r.name == LOGGER]

    def test_start_and_check_lines(self, connector, clock, emulator, caplog):
        """start logs outcome=sent, check logs its status; never the code or the number."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        service = service_for(connector, clock)
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        service.check(NUMBER, "SignIn", "000000" if code != "000000" else "111111")
        service.check(NUMBER, "SignIn", code)
        lines = self.lines(caplog)
        assert len(lines) == 3
        assert "outcome=sent" in lines[0]
        assert "outcome=wrong_code" in lines[1]
        assert "attempts_left=4" in lines[1]
        assert "outcome=approved" in lines[2]
        for line in lines:
            assert "to=***8000" in line
            assert NUMBER not in line
            assert code not in line
        assert all(r.levelno == logging.INFO for r in caplog.records if r.name == LOGGER)

    def test_refusal_and_error_lines(self, connector, clock, caplog):
        """A refused start logs its code; an invalid number logs once too."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        service = service_for(connector, clock)
        service.start(NUMBER, "SignIn")
        with pytest.raises(Exception):  # noqa: B017 - the line is what is checked
            service.start(NUMBER, "SignIn")
        with pytest.raises(Exception):  # noqa: B017
            service.start("12345", "SignIn")
        lines = self.lines(caplog)
        assert len(lines) == 3
        assert "outcome=VerificationCooldown" in lines[1]
        assert "outcome=InvalidPhoneNumber" in lines[2]

    def test_async_lines(self, connector, clock, emulator, caplog):
        """The async twins log the same single lines."""
        caplog.set_level(logging.INFO, logger=LOGGER)
        service = service_for(connector, clock)

        async def main():
            await service.start_async(NUMBER, "SignIn")
            await service.check_async(NUMBER, "SignIn", emulator.outbox[-1].params["code"])

        asyncio.run(main())
        lines = self.lines(caplog)
        assert len(lines) == 2
        assert "outcome=approved" in lines[1]


class TestStoreFailures:
    """A failing store fails closed: no SMS, no verdict."""

    def test_no_sms_unless_the_code_was_stored(self, connector, clock, emulator):
        """reserve failed: StoreUnavailable, and nothing reaches Aliyun."""
        service = service_for(connector, clock, BrokenStore("reserve"))
        with pytest.raises(ServiceUnavailableError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.code == "StoreUnavailable"
        assert emulator.requests == []

    def test_failed_shared_reservation_touches_no_number(self, connector, clock, emulator):
        """The IP/global step comes first: when it fails, no SMS and the number is untouched."""
        store = BrokenStore("reserve_shared")
        service = service_for(connector, clock, store)
        with pytest.raises(ServiceUnavailableError):
            service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
        assert emulator.requests == []
        assert store.calls == ["reserve_shared"]
        store.failing.clear()
        service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
        assert len(emulator.outbox) == 1

    def test_failed_shared_reservation_async(self, connector, clock, emulator):
        """start_async does the same when the IP/global step fails."""
        store = BrokenStore("reserve_shared")
        service = service_for(connector, clock, store)

        async def main():
            with pytest.raises(ServiceUnavailableError):
                await service.start_async(NUMBER, "SignIn", client_ip="203.0.113.9")

        asyncio.run(main())
        assert emulator.requests == []
        assert store.calls == ["reserve_shared"]

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_failed_number_reservation_gives_back_the_shared_one(
        self, connector, clock, emulator, run
    ):
        """reserve failed after reserve_shared: what the shared step took is given back."""
        store = BrokenStore("reserve")
        service = service_for(connector, clock, store, per_ip_hourly=1)

        async def start_async():
            return await service.start_async(NUMBER, "SignIn", client_ip="203.0.113.9")

        def start():
            if run == "sync":
                return service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
            return asyncio.run(start_async())

        with pytest.raises(ServiceUnavailableError):
            start()
        assert store.calls == ["reserve_shared", "reserve", "release_shared"]
        store.failing.clear()
        start()  # the IP's one send an hour was given back
        assert len(emulator.outbox) == 1

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_failed_commit_fails_closed(self, connector, clock, emulator, run):
        """The SMS went out but the commit failed: CodeNotActivated, and the code never approves."""
        store = BrokenStore("commit")
        service = service_for(connector, clock, store)

        start = starter(service, run)

        with pytest.raises(ServiceUnavailableError) as caught:
            start()
        assert caught.value.code == "CodeNotActivated"
        assert caught.value.maybe_sent is True
        assert len(emulator.outbox) == 1
        assert "release" not in store.calls
        result = service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"])
        assert result.status is CheckStatus.NOT_FOUND

    def test_check_gives_no_verdict(self, connector, clock, emulator):
        """check failed: the error, never WRONG_CODE or APPROVED."""
        store = BrokenStore()
        service = service_for(connector, clock, store)
        service.start(NUMBER, "SignIn")
        store.failing.add("check")
        with pytest.raises(ServiceUnavailableError):
            service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"])

    def test_failed_release_keeps_the_send_error(self, connector, clock, emulator, caplog):
        """If the release fails too, the caller still sees the send's own error."""
        store = BrokenStore("release")
        service = service_for(connector, clock, store)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AccountError):
            service.start(NUMBER, "SignIn")
        assert "release" in store.calls
        assert any("release failed" in r.getMessage() for r in caplog.records)

    def test_unexpected_send_exception_fails_closed(self, connector, clock, mocker):
        """A send that fails in an unknown way may have sent: nothing is released, nothing approves.

        Only a send that returned, or failed with ``maybe_sent``, makes its code
        the pending one; the cooldown and the count it took stay.
        """
        store = BrokenStore()
        service = service_for(connector, clock, store)
        sent = []

        def explode(self, to, usage_type, payload=None, *, out_id=None):
            sent.append(payload["code"])
            raise RuntimeError("boom")

        mocker.patch.object(AliyunSmsConnector, "send_message", autospec=True, side_effect=explode)
        with pytest.raises(RuntimeError):
            service.start(NUMBER, "SignIn")
        assert "release" not in store.calls
        assert "commit" not in store.calls
        assert service.check(NUMBER, "SignIn", sent[0]).status is CheckStatus.NOT_FOUND
        with pytest.raises(RateLimitExceededError) as caught:
            service.start(NUMBER, "SignIn")
        assert caught.value.code == "VerificationCooldown"

    def test_cancelled_async_send_fails_closed(self, connector, clock, mocker):
        """A cancelled start_async may have sent: nothing is released, nothing approves."""
        store = BrokenStore()
        service = service_for(connector, clock, store)
        sent = []

        async def cancelled(self, to, usage_type, payload=None, *, out_id=None):
            sent.append(payload["code"])
            raise asyncio.CancelledError

        mocker.patch.object(
            AliyunSmsConnector, "send_message_async", autospec=True, side_effect=cancelled
        )

        async def main():
            with pytest.raises(asyncio.CancelledError):
                await service.start_async(NUMBER, "SignIn")

        asyncio.run(main())
        assert "release" not in store.calls
        assert "commit" not in store.calls
        assert service.check(NUMBER, "SignIn", sent[0]).status is CheckStatus.NOT_FOUND


class TestPrivacy:
    """No number or code is reachable from what the service returns or raises."""

    def test_refusal_error_is_clean(self, connector, clock, emulator):
        """A rate-limit error names no number, code or IP, and chains nothing."""
        service = service_for(connector, clock)
        service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
        code = emulator.outbox[-1].params["code"]
        with pytest.raises(Exception) as caught:
            service.start(NUMBER, "SignIn", client_ip="203.0.113.9")
        error = caught.value
        text = "".join(traceback.format_exception(error)) + repr(error)
        for secret in ("13800138000", code, "203.0.113.9"):
            assert secret not in str(error)
            assert secret not in repr(error)
        assert error.__cause__ is None
        assert error.__context__ is None
        assert "Traceback" in text

    @pytest.mark.parametrize("fault", ["drop", "business"])
    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_failed_start_error_holds_no_code(self, connector, clock, emulator, fault, run):
        """A failed start's error, its chain and their frames' locals hold no generated code."""
        service = service_for(connector, clock)
        if fault == "drop":
            emulator.drop_connection()
        else:
            emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")

        start = starter(service, run)

        with pytest.raises(Exception) as caught:
            start()
        error = caught.value
        # Rendered first: this test's own frame is in the traceback too.
        rendered = "".join(
            traceback.TracebackException(
                type(error), error, error.__traceback__, capture_locals=True
            ).format()
        )
        code = json.loads(emulator.requests[-1].params["TemplateParam"])["code"]
        assert "Traceback" in rendered
        assert f"'{code}'" not in rendered
        assert code not in rendered.replace(NUMBER, "")

    @pytest.mark.parametrize("usage_type", ["SignIn\nCRITICAL root: forged", "x" * 5, 7])
    def test_unknown_usage_type_is_not_logged_raw(self, connector, clock, caplog, usage_type):
        """An unknown usage type is logged as "?", so caller text cannot forge log lines."""
        service = service_for(connector, clock)
        caplog.set_level(logging.INFO, logger=LOGGER)
        for call in (service.start, lambda to, usage: service.check(to, usage, "123456")):
            with pytest.raises(TemplateNotFoundError):
                call(NUMBER, usage_type)
        lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert len(lines) == 2
        for line in lines:
            assert line.endswith("usage_type=?")
            assert "forged" not in line

    def test_known_usage_type_is_logged_by_value(self, connector, clock, caplog):
        """A usage type given by member or member name is logged by its value."""
        service = service_for(connector, clock)
        caplog.set_level(logging.INFO, logger=LOGGER)
        service.check(NUMBER, "SIGN_IN", "123456")
        assert caplog.records[-1].getMessage().endswith("usage_type=SignIn attempts_left=0")

    def test_numbers_are_not_remembered(self, connector, clock, mocker):
        """Each check parses its number afresh: the service keeps no number between calls."""
        service = service_for(connector, clock)
        parse = mocker.patch(
            "aliyun_sms_connector.verify._service.parse_phone",
            autospec=True,
            side_effect=parse_phone,
        )
        for _ in range(3):
            service.check(NUMBER, "SignIn", "123456")
        assert parse.call_count == 3
        assert not any(NUMBER in repr(value) for value in vars(service).values())

    def test_plan_repr_hides_code(self, connector, clock):
        """The prepared start, a local in the service's frames, hides its code."""
        service = service_for(connector, clock)
        plan = service._plan(NUMBER, "SignIn", "203.0.113.9")
        text = repr(plan)
        assert plan.code not in text
        assert NUMBER not in text

    def test_verification_repr_masks_the_number(self, connector, clock):
        """Verification shows the masked number only."""
        service = service_for(connector, clock)
        verification = service.start(NUMBER, "SignIn")
        assert NUMBER not in repr(verification)
        assert "***8000" in repr(verification)

    def test_non_string_code_is_a_wrong_guess(self, connector, clock, emulator):
        """A code that is not a string is checked (and counted) like any wrong code."""
        service = service_for(connector, clock)
        service.start(NUMBER, "SignIn")
        result = service.check(NUMBER, "SignIn", 123456)  # type: ignore[arg-type]
        assert result.status is CheckStatus.WRONG_CODE


class TestMaybeSent:
    """A send that may have gone out still hands out the verification its code belongs to."""

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_error_carries_the_verification(self, connector, clock, emulator, run):
        """The maybe_sent error's verification id checks the code, if it arrives."""
        service = service_for(connector, clock, require_verification_id=True)
        emulator.drop_connection()  # Aliyun accepted; the answer was lost

        start = starter(service, run)

        with pytest.raises(AliyunSmsError) as caught:
            start()
        error = caught.value
        assert error.maybe_sent
        verification = error.verification
        assert verification.masked_number == "***8000"
        assert verification.send_result is None
        code = json.loads(emulator.requests[-1].params["TemplateParam"])["code"]
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND
        assert service.check(NUMBER, "SignIn", code, verification_id=verification.id).ok


def reachable_strings(error: BaseException, depth: int = 3) -> list[str]:
    """Every string reachable from the library's frames of an error: locals and their attributes.

    Breadth first, so that each object is met at its shortest distance. The
    test's own frames are left out: they hold the emulator, which holds the code.
    """
    roots: list[object] = [vars(error)]
    tb = error.__traceback__
    while tb is not None:
        if "aliyun_sms_connector" in tb.tb_frame.f_code.co_filename:
            roots.append(dict(tb.tb_frame.f_locals))
        tb = tb.tb_next
    found: list[str] = []
    seen: dict[int, object] = {}  # keeps what it saw alive, so that no id is reused
    level = [(value, 0) for value in roots]
    while level:
        following: list[tuple[object, int]] = []
        for value, distance in level:
            if id(value) in seen or distance > depth:
                continue
            seen[id(value)] = value
            children: list[object] = []
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, dict):
                children = [*value.keys(), *value.values()]
            elif isinstance(value, (list, tuple, set, frozenset)):
                children = list(value)
            elif hasattr(value, "__dict__") and not isinstance(value, type):
                children = [vars(value)]
            following += [(child, distance + 1) for child in children]
        level = following
    return found


class TestNoCodeInFrames:
    """No frame of a raised start error holds the code, not even as an attribute of a local."""

    @pytest.mark.parametrize("run", ["sync", "async"])
    def test_maybe_sent(self, connector, clock, emulator, run):
        """A maybe-sent error (its code is live): the code is in no local, at any depth."""
        service = service_for(connector, clock)
        emulator.drop_connection()

        start = starter(service, run)

        with pytest.raises(AliyunSmsError) as caught:
            start()
        code = json.loads(emulator.requests[-1].params["TemplateParam"])["code"]
        assert service.check(NUMBER, "SignIn", code).ok  # the code was live
        assert not [s for s in reachable_strings(caught.value) if code in s]

    def test_refused_test_number(self, connector, clock):
        """A test number's fixed code: not in the frames of a refused start."""
        service = service_for(connector, clock, test_numbers={NUMBER: "86420"})
        service.start(NUMBER, "SignIn")
        with pytest.raises(RateLimitExceededError) as caught:
            service.start(NUMBER, "SignIn")
        assert not [s for s in reachable_strings(caught.value) if "86420" in s]

    def test_lone_surrogate_key(self, connector):
        """A secret_key UTF-8 cannot encode is a ConfigError that chains nothing."""
        with pytest.raises(ConfigError) as caught:
            VerificationService(connector, secret_key="\ud800" + "k" * 40)
        assert caught.value.__context__ is None
        assert caught.value.__cause__ is None
