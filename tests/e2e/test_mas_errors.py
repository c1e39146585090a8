"""AliyunMasConnector's failures end to end: every fault the emulator injects, and privacy.

Faults are injected per action (``SendSmsVerifyCode`` or
``CheckSmsVerifyCode``); each ends in its typed error, retried only when
nothing can have been sent, within the deadline. With the root logger at
DEBUG, nothing of the number, the code, the secret or the token reaches a log
record, the error graph or the frames' locals.
"""

from __future__ import annotations

import os
import time
import traceback

import pytest

from aliyun_sms_connector import (
    AliyunMasConnector,
    AliyunSmsError,
    InvalidResponseError,
    NetworkError,
    RateLimitExceededError,
    ServiceUnavailableError,
)
from aliyun_sms_connector._errors.translate import _DYPNSAPI

from ..privacy import (  # noqa: TID252 - the harness is shared by both suites
    assert_no_leak,
    assert_no_leak_in_records,
    capture_debug_logs,
    encodings,
)
from .mas_helpers import CHECK, KEY_ID, NUMBER, SECRET, SEND, TOKEN, mas_config, requests_for

CODE = "482913"
VERIFY = {"code_length": 6, "valid_time": 300, "interval": 60}
FAST = {"backoffBase": 1, "backoffCap": 5, "readTimeout": 2000, "connectTimeout": 2000}


def make(emulator, **overrides) -> AliyunMasConnector:
    settings = {"accessKeyId": KEY_ID, "accessKeySecret": SECRET, **FAST, **overrides}
    return AliyunMasConnector(mas_config(emulator, **settings))


def call(run, connector, action: str, code: str = "1234"):
    """The action's call: an Aliyun-made code for a send, ``code`` for a check."""
    if action == SEND:
        return run.outcome(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
    return run.outcome(connector, "check_verify_code", NUMBER, "SignIn", code)


class TestDypnsapiCodes:
    @pytest.mark.parametrize("action", [SEND, CHECK])
    @pytest.mark.parametrize(
        ("code", "cls", "retryable"), [pytest.param(*row[:3], id=row[0]) for row in _DYPNSAPI]
    )
    def test_each_code_is_its_typed_error(self, mas_emulator, run, action, code, cls, retryable):
        """HTTP 200 with a Dypnsapi code: its class, never maybe-sent, retried if retryable."""
        mas_emulator.fail_next(code, count=3, action=action)
        error = call(run, make(mas_emulator), action)
        assert type(error) is cls, repr(error)
        assert (error.code, error.maybe_sent, error.retryable) == (code, False, retryable)
        attempts = 3 if retryable else 1
        assert error.attempts == attempts
        assert requests_for(mas_emulator, action) == attempts
        assert mas_emulator.outbox == []

    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_a_retryable_code_then_success(self, mas_emulator, run, action):
        """SMS_SYSTEM_ERROR once, then OK: the call succeeds on its second attempt."""
        connector = make(mas_emulator)
        if action == CHECK:
            run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        mas_emulator.fail_next("SMS_SYSTEM_ERROR", action=action)
        if action == SEND:
            result = run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
            assert result.attempts == 2
        else:
            assert run(
                connector, "check_verify_code", NUMBER, "SignIn", mas_emulator.last_code(NUMBER)
            )
        assert requests_for(mas_emulator, action) == 2
        assert len(mas_emulator.outbox) == 1

    def test_a_fault_for_the_check_leaves_the_send_alone(self, mas_emulator, run):
        """action= scopes a fault: the send goes through, the check gets it."""
        connector = make(mas_emulator)
        mas_emulator.fail_next("BUSINESS_LIMIT_CONTROL", action=CHECK)
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        code = mas_emulator.last_code(NUMBER)
        error = call(run, connector, CHECK, code)
        assert isinstance(error, RateLimitExceededError)
        assert error.code == "BUSINESS_LIMIT_CONTROL"
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is True

    def test_send_message_gets_the_same_table(self, mas_emulator, run):
        """The caller's own code (send_message) fails the same way: MOBILE_NUMBER_ILLEGAL."""
        mas_emulator.fail_next("MOBILE_NUMBER_ILLEGAL", action=SEND)
        error = run.outcome(make(mas_emulator), "send_message", NUMBER, "SignIn", {"code": CODE})
        assert (type(error).__name__, error.code, error.maybe_sent) == (
            "InvalidPhoneNumberError",
            "MOBILE_NUMBER_ILLEGAL",
            False,
        )


class TestGatewayAndServer:
    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_5xx_json_is_retried(self, mas_emulator, run, action):
        """503 ServiceUnavailable (an answer: nothing done) is retried, and the call succeeds."""
        mas_emulator.fail_next("ServiceUnavailable", http_status=503, action=action)
        outcome = call(run, make(mas_emulator), action)
        assert not isinstance(outcome, Exception), repr(outcome)
        assert requests_for(mas_emulator, action) == 2

    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_5xx_html_until_attempts_run_out(self, mas_emulator, run, action):
        """502 pages every time: ServiceUnavailableError after maxAttempts, the status kept."""
        mas_emulator.send_invalid_body(http_status=502, count=3, action=action)
        error = call(run, make(mas_emulator), action)
        assert isinstance(error, ServiceUnavailableError), repr(error)
        assert (error.http_status, error.attempts, error.maybe_sent) == (502, 3, False)
        assert requests_for(mas_emulator, action) == 3

    def test_throttling_waits_retry_after(self, mas_emulator, run):
        """Gateway throttling with x-acs-retry-after is waited out, then retried."""
        mas_emulator.fail_next(
            "Throttling.User", http_status=400, headers={"x-acs-retry-after": "50"}, action=SEND
        )
        started = time.monotonic()
        result = call(run, make(mas_emulator), SEND)
        assert result.attempts == 2
        assert time.monotonic() - started >= 0.05


class TestMaybeSent:
    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_read_timeout(self, mas_emulator, run, action):
        """A slow answer past readTimeout: ReadTimeout, maybe_sent, one request, no retry."""
        mas_emulator.delay(1.0, action=action)
        error = call(run, make(mas_emulator, readTimeout=200), action)
        assert isinstance(error, NetworkError), repr(error)
        assert (error.code, error.maybe_sent, error.retryable) == ("ReadTimeout", True, False)
        assert error.attempts == 1
        assert requests_for(mas_emulator, action) == 1

    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_deadline(self, mas_emulator, run, action):
        """A slow answer past the deadline: DeadlineExceeded at the deadline, sent once."""
        mas_emulator.delay(2.0, action=action)
        started = time.monotonic()
        error = call(run, make(mas_emulator, readTimeout=5000, deadline=400), action)
        took = time.monotonic() - started
        assert isinstance(error, NetworkError), repr(error)
        assert (error.code, error.maybe_sent, error.attempts) == ("DeadlineExceeded", True, 1)
        assert requests_for(mas_emulator, action) == 1
        assert took < 0.4 + 0.3

    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_connection_dropped(self, mas_emulator, run, action):
        """The connection closed halfway through the answer: ConnectionLost, maybe_sent, once."""
        mas_emulator.drop_connection(action=action)
        error = call(run, make(mas_emulator), action)
        assert isinstance(error, NetworkError), repr(error)
        assert (error.code, error.maybe_sent, error.attempts) == ("ConnectionLost", True, 1)
        assert requests_for(mas_emulator, action) == 1

    @pytest.mark.parametrize("action", [SEND, CHECK])
    def test_invalid_body(self, mas_emulator, run, action):
        """A 200 that is not JSON: InvalidResponseError, maybe_sent, never retried."""
        mas_emulator.send_invalid_body('{"Code": "OK", "Model":', action=action)
        error = call(run, make(mas_emulator), action)
        assert isinstance(error, InvalidResponseError), repr(error)
        assert (error.http_status, error.maybe_sent, error.attempts) == (200, True, 1)
        assert requests_for(mas_emulator, action) == 1

    @pytest.mark.parametrize(
        "model",
        ['{"VerifyResult": "MAYBE"}', "{}", '{"VerifyResult": null}', '"PASS"'],
    )
    def test_a_doubtful_verdict_is_never_true(self, mas_emulator, run, model):
        """A check answered OK without PASS or UNKNOWN in Model: InvalidResponseError."""
        body = '{"Code": "OK", "Success": true, "RequestId": "R-1", "Model": ' + model + "}"
        mas_emulator.send_invalid_body(body, action=CHECK)
        error = call(run, make(mas_emulator), CHECK)
        assert isinstance(error, InvalidResponseError), repr(error)
        assert error.request_id == "R-1"


# -- privacy --------------------------------------------------------------------

TYPED = "+86 138-0013-8000"  # as the caller typed it
PRIVATE = (NUMBER, TYPED, "+8613800138000", "8613800138000", CODE, SECRET, TOKEN)


def _fault(name: str):
    """Arrange the emulator so that the next call fails as ``name`` says (echoing the input)."""
    echo = f"bad request for {NUMBER} (+86{NUMBER}) with {CODE}"

    def arrange(emulator, action):
        if name == "business":
            emulator.fail_next("MOBILE_NUMBER_ILLEGAL", message=echo, action=action)
        elif name == "gateway":
            emulator.fail_next("InvalidParameter", http_status=400, message=echo, action=action)
        elif name == "server":
            emulator.fail_next("InternalError", http_status=500, message=echo, count=3)
        elif name == "html":
            emulator.send_invalid_body(f"<html>{echo}</html>", http_status=502, count=3)
        elif name == "body":
            emulator.send_invalid_body('{"Code": "OK", "Echo": "' + echo + '"', action=action)
        elif name == "dropped":
            emulator.drop_connection(action=action)
        elif name == "timeout":
            emulator.delay(1.0, action=action)

    return arrange


SCENARIOS = ("ok", "business", "gateway", "server", "html", "body", "dropped", "timeout")


def _calls(run, connector, op: str, code: str):
    """The operation, as an application calls it; returns the outcome."""
    if op == "message":
        return run.outcome(connector, "send_message", TYPED, "SignIn", {"code": code})
    if op == "verify":
        return run.outcome(connector, "send_verify_code", TYPED, "SignIn", **VERIFY)
    return run.outcome(connector, "check_verify_code", TYPED, "SignIn", code)


def _frames(error: BaseException) -> list[tuple[str, str]]:
    """(file, rendered locals) of every frame of the error and its chain, as Sentry records them."""
    frames = []
    exception: traceback.TracebackException | None = traceback.TracebackException.from_exception(
        error, capture_locals=True
    )
    seen = set()
    while exception is not None and id(exception) not in seen:
        seen.add(id(exception))
        frames += [(f.filename, repr(f.locals)) for f in exception.stack]
        exception = exception.__cause__ or exception.__context__
    return frames


def _shown(text: str, values: list[str]) -> set[str]:
    return {v for v in values for f in encodings(v) if isinstance(f, str) and f in text}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("op", ["message", "verify", "check"])
@pytest.mark.parametrize("signing", ["ACS3-HMAC-SHA256", "v2"])
def test_nothing_private_escapes(mas_emulator, run, scenario, op, signing):
    """DEBUG logs, the error graph and frame locals hold no number, code, secret or token."""
    server_thread = mas_emulator._thread.ident
    connector = make(mas_emulator, signatureAlgorithm=signing, securityToken=TOKEN, readTimeout=250)
    code = CODE
    # An Aliyun-made code is unknown here until the emulator tells: a verify send holds none.
    private = [v for v in PRIVATE if op == "message" or v != CODE]
    with capture_debug_logs() as logs:
        if op == "check":
            # An Aliyun-made code to check: the harness learns it from the emulator.
            run(connector, "send_verify_code", TYPED, "SignIn", **VERIFY)
            code = mas_emulator.last_code(NUMBER)
            private.append(code)
        if scenario != "ok":
            _fault(scenario)(mas_emulator, SEND if op != "check" else CHECK)
        outcome = _calls(run, connector, op, code)
    if scenario == "ok":
        assert not isinstance(outcome, Exception), repr(outcome)
    else:
        assert isinstance(outcome, AliyunSmsError), repr(outcome)
        assert_no_leak(outcome, private)
        frames = _frames(outcome)
        library = f"{os.sep}aliyun_sms_connector{os.sep}"
        assert any(library in filename for filename, _ in frames)
        for filename, local_values in frames:
            # The caller's frames hold what it passed; the library's frames hold nothing.
            held = private if library in filename else [SECRET, TOKEN]
            shown = _shown(local_values, held)
            assert not shown, f"{filename}: frame locals show {sorted(shown)}"
    records = logs.by_thread({server_thread})
    assert records, "the capture saw no record: the test would prove nothing"
    assert_no_leak_in_records(records, private)
