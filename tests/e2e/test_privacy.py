"""Privacy under DEBUG logging and error trackers: the real SDK signing against the emulator.

Every path (sync and async, ACS3 and v2, plain keys, STS and the default
credential chain) and every outcome the emulator can produce is checked three ways:

- with the root logger at DEBUG, no log record of any library holds the number,
  a template value, the secret or the token, in any encoding;
- nothing reachable from the error (walked by ``privacy.reachable``) holds them;
- the error's traceback rendered with ``capture_locals=True`` shows no secret or
  token (the caller's own ``to`` and ``payload`` may show there).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import pytest
from alibabacloud_credentials.utils import auth_util

from aliyun_sms_connector import AliyunSmsConnector, AliyunSmsError, BatchMessage
from aliyun_sms_connector.emulator import Emulator

from ..privacy import (  # noqa: TID252 - the harness is shared by both suites
    assert_no_leak,
    assert_no_leak_in_records,
    capture_debug_logs,
    encodings,
    render_with_locals,
)
from .conftest import SIGN, TEMPLATES, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

KEY_ID = "LTAI5tPrivacyKeyId"
# Secrets and tokens with +, / and =: each shows differently in every encoding.
SECRET = "pRiv+Sec/ret=0123456789ab"
WRONG_SECRET = "wRong+Sec/ret=9876543210zz"
TOKEN = "CAIS+sts/Tok=en-0123456789"
WRONG_TOKEN = "CAIS+bad/Tok=en-9876543210"
# Only the default chain can bring a CR/LF in: config rejects it.
CRLF_TOKEN = "CAIS+crlf/Tok=en\r\nX-Evil: 1"
CREDENTIALS = (SECRET, WRONG_SECRET, TOKEN, WRONG_TOKEN, CRLF_TOKEN)

PHONE = "13912345678"
TYPED = "+86 139-1234-5678"  # as the caller typed it
CODE = "482913"
NAME = 'Zhāng "Wei" 李/雷+'
ORDER = "ORD+77/31=x&y"

ANY = "*"


@dataclass(frozen=True)
class Operation:
    """One public call, the private values it sends, and others it may see."""

    name: str
    values: tuple[str, ...]
    seen: tuple[str, ...] = ()


SEND = Operation("send", (CODE,))
BATCH = Operation("batch", (NAME, ORDER))
# A receipt's content is the rendered message: the code shows there.
QUERY = Operation("query", (), seen=(CODE,))


def echo(op: Operation) -> str:
    """An error text that repeats the request, as Aliyun's sometimes do."""
    param = json.dumps(dict(zip(("a", "b"), op.values, strict=False)), ensure_ascii=False)
    # Twice-encoded and under no parameter name: only the values' own forms can catch it.
    twice = quote_plus(quote(param, safe="~"), safe="~")
    return f"bad request for {PHONE}: {param} {' '.join(op.values)} {twice}"


@dataclass(frozen=True)
class Scenario:
    """How the emulator (or the config) makes one call succeed or fail."""

    name: str
    arrange: Callable[[Emulator, Operation], None] = lambda _emulator, _op: None
    code: str | None = None  # the error's code; None: the call succeeds; ANY: any error
    attempts: int = 1  # 0: any number
    config: dict[str, Any] = field(default_factory=dict)
    secret: str = SECRET
    token: str = TOKEN
    ops: tuple[Operation, ...] = (SEND, BATCH, QUERY)


def _html(op: Operation) -> str:
    return f"<html><body>502 Bad Gateway {echo(op)}</body></html>"


def _fail(code: str, status: int = 200, count: int = 1, **extra: Any):
    def arrange(emulator: Emulator, op: Operation) -> None:
        emulator.fail_next(code, http_status=status, message=echo(op), count=count, **extra)

    return arrange


def _body(status: int, count: int = 1, *, html: bool = True):
    def arrange(emulator: Emulator, op: Operation) -> None:
        body = _html(op) if html else '{"Code": "OK", "BizId": ' + json.dumps(echo(op))
        emulator.send_invalid_body(body, http_status=status, count=count)

    return arrange


SCENARIOS = (
    Scenario("ok"),
    Scenario(
        "https-ok", config={"endpoint": "tls", "protocol": "https", "caFile": "tls"}, ops=(SEND,)
    ),
    Scenario("retried-then-ok", _fail("ServiceUnavailable", 503), attempts=2, ops=(SEND,)),
    Scenario(
        "business-code",
        _fail("isv.MOBILE_NUMBER_ILLEGAL"),
        "isv.MOBILE_NUMBER_ILLEGAL",
        ops=(SEND, BATCH),
    ),
    Scenario("4xx-json", _fail("InvalidParameter", 400), "InvalidParameter"),
    Scenario(
        "5xx-json-retried",
        _fail("ServiceUnavailable", 503, count=3),
        "ServiceUnavailable",
        attempts=3,
        ops=(SEND,),
    ),
    Scenario(
        "throttled",
        _fail("Throttling.User", 400, count=3, headers={"x-acs-retry-after": "5"}),
        "Throttling.User",
        attempts=3,
        ops=(SEND,),
    ),
    Scenario("4xx-html", _body(400), "HTTP400", ops=(SEND,)),
    Scenario("5xx-html", _body(502, count=3), "HTTP502", attempts=3, ops=(SEND, BATCH)),
    Scenario("invalid-body", _body(200, html=False), "InvalidResponse", ops=(SEND, QUERY)),
    Scenario("dropped", lambda e, _op: e.drop_connection(), "ConnectionLost"),
    Scenario(
        "read-timeout",
        lambda e, _op: e.delay(3.0),
        "ReadTimeout",
        config={"readTimeout": 250},
        ops=(SEND,),
    ),
    Scenario(
        "refused", code="ConnectionFailed", attempts=3, config={"endpoint": "closed"}, ops=(SEND,)
    ),
    # TLS spoken to a plain-HTTP port: the handshake fails before anything is sent.
    Scenario("tls-handshake", code=ANY, attempts=0, config={"protocol": "https"}, ops=(SEND,)),
    Scenario(
        "bad-certificate",
        code=ANY,
        attempts=0,
        config={"endpoint": "tls", "protocol": "https"},
        ops=(SEND,),
    ),
    Scenario(
        "deadline",
        lambda e, _op: e.delay(3.0),
        code=ANY,
        attempts=0,
        config={"deadline": 300, "readTimeout": 2000},
        ops=(SEND,),
    ),
    Scenario("no-credentials", code="CredentialsUnavailable", secret="", token="", ops=(SEND,)),
    # A gateway that quotes the token back, raw and URL-encoded: only knowing
    # the token (for the chain: learning it from the chain) can scrub it.
    Scenario(
        "token-echoed",
        lambda e, _op: e.fail_next(
            "InvalidSecurityToken.Malformed",
            http_status=400,
            message=f"Specified SecurityToken {TOKEN} ({quote(TOKEN, safe='')}) is malformed.",
        ),
        code="InvalidSecurityToken.Malformed",
        ops=(SEND,),
    ),
    Scenario("crlf-token", code=ANY, attempts=0, token=CRLF_TOKEN, ops=(SEND,)),
    Scenario("bad-signature", code="SignatureDoesNotMatch", secret=WRONG_SECRET),
    Scenario("bad-token", code="InvalidSecurityToken.Expired", token=WRONG_TOKEN),
)
MODES = ("sync", "async")
SIGNINGS = ("ACS3", "v2")
CREDENTIAL_FORMS = ("keys", "sts", "chain")


def _applies(scenario: Scenario, credentials: str) -> bool:
    if scenario.name in {"bad-token", "token-echoed"}:
        return credentials != "keys"  # only a call that carries a token can carry a wrong one
    if scenario.name in {"no-credentials", "crlf-token"}:
        return credentials == "chain"
    return True


CASES = [
    pytest.param(
        op,
        scenario,
        mode,
        signing,
        credentials,
        id=f"{op.name}-{scenario.name}-{mode}-{signing}-{credentials}",
    )
    for op in (SEND, BATCH, QUERY)
    for scenario in SCENARIOS
    if op in scenario.ops
    for mode in MODES
    for signing in SIGNINGS
    for credentials in CREDENTIAL_FORMS
    if _applies(scenario, credentials)
]


# The emulators stand for Aliyun's servers: what their threads log is not the
# application's, and is left out of the checks.
SERVER_THREADS: set[int | None] = set()


@pytest.fixture(scope="module")
def emulator():
    clock = FakeClock()
    with Emulator(
        {KEY_ID: SECRET}, [SIGN], TEMPLATES, clock=clock, security_tokens={TOKEN: KEY_ID}
    ) as running:
        SERVER_THREADS.add(running._thread.ident)
        yield running


@pytest.fixture(scope="module")
def tls_emulator():
    with Emulator({KEY_ID: SECRET}, [SIGN], TEMPLATES, clock=FakeClock(), tls=True) as running:
        SERVER_THREADS.add(running._thread.ident)
        yield running


@pytest.fixture
def fresh(emulator):
    emulator.reset()
    return emulator


@pytest.fixture
def debug_logs():
    with capture_debug_logs() as capture:
        yield capture


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(emulator: Emulator, scenario: Scenario, signing: str, credentials: str, request):
    config: dict[str, Any] = {
        "signName": SIGN,
        "templates": [
            {"usageType": "SignIn", "templateCode": "SMS_SIGNIN"},
            {"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0},
        ],
        "endpoint": emulator.endpoint,
        "protocol": "http",
        "readTimeout": 2000,
        "connectTimeout": 2000,
        "backoffBase": 1,
        "backoffCap": 5,
        "signatureAlgorithm": "v2" if signing == "v2" else "ACS3-HMAC-SHA256",
    }
    if credentials == "chain":
        # The default chain finds exactly what the environment provider is given.
        monkeypatch = request.getfixturevalue("monkeypatch")
        values = {
            "access_key_id": KEY_ID,
            "access_key_secret": scenario.secret,
            "security_token": scenario.token,
        }
        for name, value in values.items():
            monkeypatch.setattr(auth_util, f"environment_{name}", value)
        monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
        monkeypatch.setattr(auth_util, "environment_cli_profile_disabled", "true")
        monkeypatch.setattr(auth_util, "environment_credentials_file", "/nonexistent/credentials")
        config["credentials"] = "default"
    else:
        config.update(accessKeyId=KEY_ID, accessKeySecret=scenario.secret)
        if credentials == "sts":
            config["securityToken"] = scenario.token
    config.update(scenario.config)
    if config["endpoint"] == "closed":
        config["endpoint"] = f"127.0.0.1:{_closed_port()}"
    if config["endpoint"] == "tls":
        # A server whose certificate no CA in the default bundle signed.
        tls = request.getfixturevalue("tls_emulator")
        tls.reset()
        config["endpoint"] = tls.endpoint
        if config.get("caFile") == "tls":
            config["caFile"] = tls.ca_file
    return config


def _call(connector: AliyunSmsConnector, op: str) -> Any:
    """The caller's frame: its locals are what an application's would be."""
    to, payload = TYPED, {"code": CODE}
    try:
        if op == "send":
            return connector.send_message(to, "SignIn", payload)
        if op == "batch":
            result = connector.send_batch([BatchMessage(to, {"name": NAME, "order": ORDER})])
            return result.chunks[0].error or result
        return connector.query_delivery(to)
    except AliyunSmsError as error:
        return error


async def _call_async(connector: AliyunSmsConnector, op: str) -> Any:
    """The async twin of _call."""
    to, payload = TYPED, {"code": CODE}
    try:
        async with connector:
            if op == "send":
                return await connector.send_message_async(to, "SignIn", payload)
            if op == "batch":
                messages = [BatchMessage(to, {"name": NAME, "order": ORDER})]
                result = await connector.send_batch_async(messages)
                return result.chunks[0].error or result
            return await connector.query_delivery_async(to)
    except AliyunSmsError as error:
        return error


@pytest.mark.parametrize(("op", "scenario", "mode", "signing", "credentials"), CASES)
def test_nothing_private_escapes(
    fresh, debug_logs, request, op, scenario, mode, signing, credentials
):
    """No log record, no object reachable from the error and no frame local leaks."""
    if op is QUERY:
        # A message to look up, sent the same way; its records are checked too.
        ok = _config(fresh, Scenario("ok"), signing, credentials, request)
        with AliyunSmsConnector(ok) as sender:
            sender.send_message(PHONE, "SignIn", {"code": CODE})
    scenario.arrange(fresh, op)
    connector = AliyunSmsConnector(_config(fresh, scenario, signing, credentials, request))
    if mode == "sync":
        with connector:
            outcome = _call(connector, op.name)
    else:
        # asyncio's debug mode logs slow callbacks with their arguments; it
        # doubles the run time, so one credential form in three gets it.
        outcome = asyncio.run(_call_async(connector, op.name), debug=credentials == "sts")

    # The scenario produced the outcome it names.
    code = getattr(outcome, "code", None)
    assert code == scenario.code or (scenario.code is ANY and code), repr(outcome)
    if scenario.attempts:
        assert getattr(outcome, "attempts", scenario.attempts) == scenario.attempts, repr(outcome)
    private = (PHONE, TYPED, *op.values, *op.seen, *CREDENTIALS)
    records = debug_logs.by_thread(SERVER_THREADS)
    checks = [lambda: assert_no_leak_in_records(records, private)]
    if isinstance(outcome, AliyunSmsError):
        checks += [lambda: assert_no_leak(outcome, private), lambda: _no_credentials(outcome)]
    problems = [problem for check in checks if (problem := _failure(check))]
    assert not problems, "\n\n".join(problems)


def _failure(check: Callable[[], None]) -> str | None:
    try:
        check()
    except AssertionError as problem:
        return str(problem)
    return None


def _no_credentials(error: BaseException) -> None:
    rendered = render_with_locals(error)
    shown = {
        value
        for value in CREDENTIALS
        for form in encodings(value)
        if isinstance(form, str) and form in rendered
    }
    assert not shown, f"frame locals show {sorted(shown)}"
