"""Shared fixtures. Nothing here reaches the network."""

from __future__ import annotations

import os

# Must be set before the SDK's credential code is imported: the default chain
# would otherwise try the ECS metadata address.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"

import pytest
from alibabacloud_dysmsapi20170525.client import Client

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsConnector

from . import sdk_fakes

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
def connector(config) -> AliyunSmsConnector:
    return AliyunSmsConnector(config)


@pytest.fixture
def send_sms(mocker):
    """The SDK client's send_sms_with_options, mocked with its real signature; OK by default."""
    mock = mocker.patch.object(Client, "send_sms_with_options", autospec=True)
    mock.return_value = sdk_fakes.ok(biz_id="900^1", request_id="REQ-9")
    return mock


@pytest.fixture
def send_sms_async(mocker):
    """The async twin of send_sms."""
    mock = mocker.patch.object(Client, "send_sms_with_options_async", autospec=True)
    mock.return_value = sdk_fakes.ok(biz_id="900^1", request_id="REQ-9")
    return mock
