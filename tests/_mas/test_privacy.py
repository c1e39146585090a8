"""Privacy of the Message Authentication Service connector, with the Transport mocked.

The privacy suite's three checks (tests/privacy.py), for every call and every
failure the mocked Transport can produce, sync and async, ACS3 and v2, with an
STS token whose characters every encoding treats differently:

- with the root logger at DEBUG, no log record holds the number, the code,
  the AccessKey secret or the token, in any encoding;
- nothing reachable from the error (its chain, args and attributes) holds them;
- the error's traceback rendered with ``capture_locals=True`` holds none of them
  either: unlike the SMS connector's (which lets the caller's own ``to`` and
  ``payload`` show in its public frames), the number and the code are in no
  frame of this connector's.

Errors raised before any request (a bad number, a bad payload) are checked as
the SMS suite checks them: no secret or token in any frame.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from urllib.parse import quote_plus

import pytest

from aliyun_sms_connector import AliyunMasConnector, AliyunSmsError
from tests import wire_fakes
from tests.conftest import SECRET
from tests.privacy import (
    assert_no_leak,
    assert_no_leak_in_records,
    encodings,
    render_with_locals,
)

from .conftest import LOGTO_MAS_CONFIG

PHONE = "13912345678"
TYPED = "+86 139-1234-5678"  # as the caller typed it
CODE = "482913"
# +, /, =, a space, a quote and a backslash: every encoding writes it differently.
TOKEN = "CAIS+sts/Tok=en 0123'456\\789"
PRIVATE = (PHONE, TYPED, CODE, SECRET, TOKEN)

# The calls, each in a frame of its own whose only local is the connector.
SYNC = {
    "message": lambda c: c.send_message(TYPED, "SignIn", {"code": CODE, "locale": "en"}),
    "verify_code": lambda c: c.send_verify_code(
        TYPED, "SignIn", code_length=6, valid_time=300, interval=60
    ),
    "check": lambda c: c.check_verify_code(TYPED, "SignIn", CODE),
}
ASYNC = {
    "message": lambda c: c.send_message_async(TYPED, "SignIn", {"code": CODE, "locale": "en"}),
    "verify_code": lambda c: c.send_verify_code_async(
        TYPED, "SignIn", code_length=6, valid_time=300, interval=60
    ),
    "check": lambda c: c.check_verify_code_async(TYPED, "SignIn", CODE),
}

_PARAM = json.dumps({"code": CODE, "min": "10"})
# Aliyun's text echoing every private value, raw and encoded (as a signature
# mismatch echoes the string to sign, twice percent-encoded).
_ECHO = (
    f"{PHONE} {_PARAM} {quote_plus(quote_plus(_PARAM))} VerifyCode={CODE} "
    f"{quote_plus(quote_plus(TOKEN))} {json.dumps(TOKEN)} {SECRET}"
)

# What the Transport answers or raises: a function, so each test gets its own.
SCENARIOS = {
    "gateway-echo": lambda: wire_fakes.gateway("InvalidParameter", 400, message=_ECHO),
    "business-echo": lambda: wire_fakes.business("FREQUENCY_FAIL", _ECHO),
    "server-error": lambda: wire_fakes.gateway("ServiceUnavailable", 503, message=_ECHO),
    "unexpected": lambda: RuntimeError(f"bug below: {PHONE} code={CODE} token={TOKEN}"),
    "bytes": lambda: OSError(f"sent {quote_plus(quote_plus(TOKEN))} {PHONE}".encode()),
    "read-timeout": lambda: wire_fakes.failure("read_timeout", maybe_sent=True),
    "connect": lambda: wire_fakes.failure("connect", maybe_sent=False),
    "garbage-result": lambda: wire_fakes.response(
        {"Code": "OK", "RequestId": "R", "Model": {"VerifyResult": f"{CODE}{PHONE}"}}
    ),
}


def _arrange(transport, scenario):
    outcome = SCENARIOS[scenario]()
    for mock in (transport.send, transport.send_async):
        if isinstance(outcome, BaseException):
            mock.side_effect = outcome
        else:
            mock.return_value = outcome


def _outcome(connector, op, mode):
    """The call's error (or its result), caught in a frame that holds no private value."""
    try:
        if mode == "sync":
            return SYNC[op](connector)
        return asyncio.run(ASYNC[op](connector))
    except AliyunSmsError as error:
        return error


def _connector(algorithm):
    return AliyunMasConnector(
        {
            **LOGTO_MAS_CONFIG,
            "securityToken": TOKEN,
            "signatureAlgorithm": algorithm,
            "maxAttempts": 2,
            "backoffBase": 0,
        }
    )


def assert_render_private(error, private=PRIVATE):
    """The traceback with every frame's locals, as Sentry renders it, shows no private value."""
    rendered = render_with_locals(error)
    shown = {
        value
        for value in private
        for form in encodings(value)
        if isinstance(form, str) and form in rendered
    }
    assert not shown, f"the rendering with locals shows {sorted(shown)}:\n{rendered}"


# Every scenario with every call, except that only a check reads VerifyResult.
CASES = [
    (scenario, op)
    for scenario in sorted(SCENARIOS)
    for op in sorted(SYNC)
    if scenario != "garbage-result" or op == "check"
]


@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("scenario", "op"), CASES)
def test_nothing_private_escapes(transport, debug_logs, scenario, op, mode, algorithm):
    """No log record, no object reachable from the error and no frame local leaks."""
    _arrange(transport, scenario)
    with _connector(algorithm) as connector:
        outcome = _outcome(connector, op, mode)
    assert isinstance(outcome, AliyunSmsError), outcome
    # Aliyun makes the code of send_verify_code: the connector never knew it.
    private = tuple(v for v in PRIVATE if op != "verify_code" or v != CODE)
    assert_no_leak(outcome, private)
    assert_render_private(outcome, private)
    assert debug_logs.records  # the failure was logged: the check below saw something
    assert_no_leak_in_records(debug_logs.records, private)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("op", sorted(SYNC))
def test_success_logs_nothing_private(transport, debug_logs, op, mode):
    """The INFO line of a success shows the masked number only."""
    ok = wire_fakes.response(
        {"Code": "OK", "RequestId": "R", "Model": {"BizId": "B", "VerifyResult": "PASS"}}
    )
    transport.send.return_value = ok
    transport.send_async.return_value = ok
    with _connector("ACS3-HMAC-SHA256") as connector:
        outcome = _outcome(connector, op, mode)
    assert not isinstance(outcome, AliyunSmsError)
    messages = [record.getMessage() for record in debug_logs.records]
    assert any("***5678" in message for message in messages)
    assert_no_leak_in_records(debug_logs.records, PRIVATE)


def test_the_harness_can_fail(transport):
    """The same checks catch the code in a frame local (so passing above means something)."""

    def leaky(code):
        raise AliyunSmsError("x")

    with pytest.raises(AliyunSmsError) as caught:
        leaky(CODE)
    with pytest.raises(AssertionError):
        assert_render_private(caught.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.send_message("+85291234567", "SignIn", {"code": CODE}),
        lambda c: c.send_message(PHONE, "SignIn", {"code": "1 2"}),
        lambda c: c.send_verify_code(PHONE, "SignIn", code_length=9, valid_time=1, interval=1),
        lambda c: c.check_verify_code(PHONE, "Nope", CODE),
        lambda c: asyncio.run(c.check_verify_code_async("+1 415 555 0100", "SignIn", CODE)),
    ],
    ids=["number", "value", "code-length", "usage-type", "async-number"],
)
def test_local_validation_errors(transport, call):
    """Errors raised before any request show no secret or token in any library frame."""
    with _connector("ACS3-HMAC-SHA256") as connector, pytest.raises(AliyunSmsError) as caught:
        call(connector)
    summary = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    library = [f for f in summary.stack if "aliyun_sms_connector" in f.filename]
    assert library
    shown = "\n".join(f"{n}={v}" for f in library for n, v in (f.locals or {}).items())
    for private in (SECRET, TOKEN, quote_plus(TOKEN)):
        assert private not in shown
    assert_no_leak(caught.value, (SECRET, TOKEN))
