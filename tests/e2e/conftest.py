"""End-to-end fixtures: the real, unmodified SDK over HTTP to the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import time

import pytest

from aliyun_sms_connector import AliyunMasConnector, AliyunSmsConnector, TemplateType
from aliyun_sms_connector.emulator import Emulator, Template

from .mas_helpers import KEY_ID as MAS_KEY_ID
from .mas_helpers import LOGTO_MAS_JSON, Runner
from .mas_helpers import SECRET as MAS_SECRET
from .mas_helpers import TOKEN as MAS_TOKEN

KEY_ID = "LTAI5tE2eKeyId"
KEY_SECRET = "e2e-secret-value-0123456789"
SIGN = "AcmeSign"
TEMPLATES = {
    "SMS_CODE": "Your code is ${code}.",
    "SMS_INTL": Template("Your code is ${code}.", TemplateType.INTERNATIONAL_MESSAGE),
    "SMS_SIGNIN": "Sign in with ${code}.",
    "SMS_NOTICE": Template("Hi ${name}, your order ${order} shipped.", TemplateType.NOTIFICATION),
}


class FakeClock:
    """An injectable clock: tests move time instead of sleeping.

    It starts at the real time, so that the day the emulator files a message
    under is the day the connector asks about by default.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _close_connectors(monkeypatch):
    """Close every connector a test builds, as a careful application does.

    The suite runs with warnings as errors, ResourceWarning included: a
    connector left open keeps its pooled sockets until the collector finds
    them. Tests that check closing itself still call close()/aclose().
    """
    built = []
    init = AliyunSmsConnector.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(AliyunSmsConnector, "__init__", tracked)
    yield
    for connector in built:
        connector.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock):
    with Emulator({KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock=clock) as running:
        yield running


def connector_config(emulator: Emulator, **overrides):
    config = {
        "accessKeyId": KEY_ID,
        "accessKeySecret": KEY_SECRET,
        "signName": SIGN,
        "templates": [
            {"usageType": "SignIn", "templateCode": "SMS_SIGNIN"},
            {"usageType": "Generic", "templateCode": {"china": "SMS_CODE", "overseas": "SMS_INTL"}},
        ],
        "endpoint": emulator.endpoint,
        "protocol": "http",
        "readTimeout": 2000,
        "connectTimeout": 2000,
        # The default policy (3 attempts) with 1 ms backoff, so tests stay fast.
        "backoffBase": 1,
        "backoffCap": 5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def connector(emulator) -> AliyunSmsConnector:
    return AliyunSmsConnector(connector_config(emulator))


# -- the Message Authentication Service (tests/e2e/test_mas*.py) ------------------


@pytest.fixture(autouse=True)
def built_mas(monkeypatch):
    """Every AliyunMasConnector a test builds, closed at the end as _close_connectors does."""
    connectors: list[AliyunMasConnector] = []
    init = AliyunMasConnector.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        connectors.append(self)

    monkeypatch.setattr(AliyunMasConnector, "__init__", tracked)
    yield connectors
    for connector in connectors:
        connector.close()


@pytest.fixture(params=["sync", "async"])
def run(request, built_mas):
    """Calls a connector's method sync, then async (aclose() on the test's loop at the end)."""
    runner = Runner(request.param)
    yield runner
    runner.close(built_mas)


@pytest.fixture
def mas_emulator(clock: FakeClock):
    """The emulator with its default system sign name and templates, and one STS token."""
    keys = {MAS_KEY_ID: MAS_SECRET}
    with Emulator(keys, clock=clock, security_tokens={MAS_TOKEN: MAS_KEY_ID}) as running:
        yield running


@pytest.fixture
def logto_emulator(clock: FakeClock):
    """The emulator holding exactly the AccessKey of Logto's example."""
    config = json.loads(LOGTO_MAS_JSON)
    keys = {config["accessKeyId"]: config["accessKeySecret"]}
    with Emulator(keys, clock=clock) as running:
        yield running
