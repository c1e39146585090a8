"""Shared fixtures. Nothing here reaches the network."""

from __future__ import annotations

import os

# Must be set before the SDK's credential code is imported: the default chain
# would otherwise try the ECS metadata address.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"

import pytest

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsConnector

from . import wire_fakes

SECRET = "sEcReT-AccessKey-0123456789"
TOKEN = "sts-TOKEN-abcdefghijklmnop"

# What Logto's console stores for its Aliyun SMS connector, pasted as is.
LOGTO_CONFIG = {
    "accessKeyId": "LTAI5tTestKeyId",
    "accessKeySecret": SECRET,
    "signName": "AcmeSignName",
    "templates": [
        {"type": 2, "usageType": "Register", "templateCode": "SMS_REGISTER"},
        {"type": 2, "usageType": "SignIn", "templateCode": "SMS_SIGNIN"},
        {"type": 2, "usageType": "ForgotPassword", "templateCode": "SMS_FORGOT"},
        {
            "type": 2,
            "usageType": "Generic",
            "templateCode": {"china": "SMS_GENERIC_CN", "overseas": "SMS_GENERIC_INTL"},
        },
    ],
    "strictPhoneRegionNumberCheck": False,
}


@pytest.fixture
def logto_config() -> dict:
    """A fresh copy of Logto's console JSON."""
    return {**LOGTO_CONFIG, "templates": [dict(t) for t in LOGTO_CONFIG["templates"]]}


@pytest.fixture
def config(logto_config) -> AliyunSmsConfig:
    return AliyunSmsConfig.model_validate(logto_config)


@pytest.fixture
def connector(config, transport) -> AliyunSmsConnector:
    """A connector over the mocked transport: no unit test reaches the network."""
    return AliyunSmsConnector(config)


@pytest.fixture
def transport(mocker):
    """The connector's Transport, autospec'd: every instance is this mock; it answers OK.

    This is the seam between the sans-I/O core and the network: tests see the
    exact WireRequest the core built, and answer with WireResponses or raise
    the transport's own TransportError.
    """
    cls = mocker.patch("aliyun_sms_connector._connector.Transport", autospec=True)
    instance = cls.return_value
    instance.send.return_value = wire_fakes.ok(biz_id="900^1", request_id="REQ-9")
    instance.send_async.return_value = wire_fakes.ok(biz_id="900^1", request_id="REQ-9")
    instance.cls = cls
    return instance
