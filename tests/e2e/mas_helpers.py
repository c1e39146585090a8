"""What the Message Authentication Service's end-to-end tests share: configs and a runner.

Every request is built and signed by the SDK's own functions, in the
connector, and goes over real HTTP to the emulator on 127.0.0.1, which checks
the signature (ACS3 or v2) and the STS token before it answers. The fixtures
(``mas_emulator``, ``logto_emulator``, ``run``, ``built_mas``) are in conftest.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aliyun_sms_connector import AliyunMasConnector
    from aliyun_sms_connector.emulator import Emulator

__all__ = [
    "ACTIONS",
    "CHECK",
    "KEY_ID",
    "LOGTO_MAS_JSON",
    "NUMBER",
    "SECRET",
    "SEND",
    "TOKEN",
    "Runner",
    "mas_config",
    "requests_for",
]

SEND = "SendSmsVerifyCode"
CHECK = "CheckSmsVerifyCode"
ACTIONS = (SEND, CHECK)

# The example of Logto's connector-aliyun-sms-mas README, pasted as is: its
# placeholder AccessKey is the emulator's here.
LOGTO_MAS_JSON = """
{
  "accessKeyId": "your-access-key-id",
  "accessKeySecret": "your-access-key-secret",
  "signName": "速通互联验证码",
  "templates": [
    { "usageType": "SignIn", "templateCode": "100001" },
    { "usageType": "Register", "templateCode": "100001" },
    { "usageType": "ForgotPassword", "templateCode": "100003" },
    { "usageType": "Generic", "templateCode": "100001" }
  ]
}
"""
KEY_ID = "your-access-key-id"
# Secrets and tokens with +, / and =: each shows differently in every encoding.
SECRET = "mAs+Sec/ret=0123456789ab"
TOKEN = "CAIS+mas/Tok=en-0123456789"
NUMBER = "13800138000"


def mas_config(emulator: Emulator, **overrides: Any) -> dict[str, Any]:
    """Logto's JSON with its endpoint and protocol pointed at ``emulator``, then ``overrides``."""
    config = json.loads(LOGTO_MAS_JSON)
    config.update(endpoint=emulator.endpoint, protocol=emulator.protocol)
    config.update(overrides)
    return config


def requests_for(emulator: Emulator, action: str) -> int:
    """How many requests for ``action`` the emulator received."""
    return sum(1 for request in emulator.requests if request.action == action)


class Runner:
    """Calls a connector's method, or its async twin on one event loop kept for the test."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.loop = asyncio.new_event_loop() if mode == "async" else None

    def __call__(self, connector: AliyunMasConnector, method: str, *args: Any, **kwargs: Any):
        if self.loop is None:
            return getattr(connector, method)(*args, **kwargs)
        return self.loop.run_until_complete(getattr(connector, f"{method}_async")(*args, **kwargs))

    def outcome(self, connector: AliyunMasConnector, method: str, *args: Any, **kwargs: Any):
        """The result, or the exception raised."""
        try:
            return self(connector, method, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - the test inspects whatever came out
            return error

    def close(self, connectors: list[AliyunMasConnector]) -> None:
        for connector in connectors:
            if self.loop is None:
                connector.close()
            else:
                self.loop.run_until_complete(connector.aclose())
        if self.loop is not None:
            self.loop.close()
