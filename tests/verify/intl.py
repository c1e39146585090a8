"""An emulator and connector that send to mainland and international numbers alike.

The pumping guard judges destination prefixes, so its tests and the event
tests start codes to numbers in several countries: imported by them, these
fixtures replace conftest's mainland-only pair.
"""

from __future__ import annotations

import pytest

from aliyun_sms_connector import AliyunSmsConnector, TemplateType
from aliyun_sms_connector.emulator import Emulator, Template

from .conftest import SIGN

TEMPLATES = {
    "SMS_CODE": Template("Your code is ${code}."),
    "SMS_INTL": Template("Your code is ${code}.", TemplateType.INTERNATIONAL_MESSAGE),
}


@pytest.fixture
def emulator(clock):
    """The Aliyun emulator with a domestic and an international template, on the fake clock."""
    with Emulator(
        {"LTAIverifyKey": "verify-secret-0123456789"}, [SIGN], TEMPLATES, clock=clock
    ) as em:
        yield em


@pytest.fixture
def connector(emulator):
    config = emulator.connector_config(
        templates=[
            {"usageType": "Generic", "templateCode": {"china": "SMS_CODE", "overseas": "SMS_INTL"}}
        ],
        readTimeout=2000,
        connectTimeout=2000,
        backoffBase=1,
        backoffCap=5,
    )
    with AliyunSmsConnector(config) as connector:
        yield connector
