"""Fixtures of the Message Authentication Service's tests. Nothing here reaches the network."""

from __future__ import annotations

import pytest

from aliyun_sms_connector import AliyunMasConnector
from tests.conftest import SECRET
from tests.privacy import capture_debug_logs

# What Logto's console stores for its aliyun-sms-mas connector, pasted as is:
# all nine usage types, the system template codes of its README.
_CODES = {
    "SignIn": "100001",
    "Register": "100001",
    "Generic": "100001",
    "OrganizationInvitation": "100001",
    "MfaVerification": "100001",
    "BindMfa": "100001",
    "BindNewIdentifier": "100002",
    "ForgotPassword": "100003",
    "UserPermissionValidation": "100005",
}
LOGTO_MAS_CONFIG = {
    "accessKeyId": "LTAI5tTestKeyId",
    "accessKeySecret": SECRET,
    "signName": "速通互联验证码",
    "templates": [{"usageType": usage, "templateCode": code} for usage, code in _CODES.items()],
}


@pytest.fixture
def mas_config() -> dict:
    """A fresh copy of Logto's aliyun-sms-mas JSON."""
    return {**LOGTO_MAS_CONFIG, "templates": [dict(t) for t in LOGTO_MAS_CONFIG["templates"]]}


@pytest.fixture
def mas(mas_config, transport):
    """A connector over the mocked transport (tests/conftest.py), without backoff waits."""
    connector = AliyunMasConnector({**mas_config, "backoffBase": 0})
    yield connector
    connector.close()


@pytest.fixture
def debug_logs():
    """The root logger at DEBUG for one test, every record kept (tests/privacy.py)."""
    with capture_debug_logs() as capture:
        yield capture
