"""Fixtures for the examples: the verification suite's Redis and clock, and an emulator."""

from __future__ import annotations

import pytest

from aliyun_sms_connector.emulator import Emulator

# Registered here as well: examples/ is a sibling of verify/, not below it.
from tests.verify.conftest import SIGN, clock, redis_url  # noqa: F401

#: One template per purpose the example serves, and Generic for the rest, so
#: that the outbox shows which usage type a code was sent for.
TEMPLATES = {
    "SMS_CODE": "Your code is ${code}.",
    "SMS_SIGN_IN": "Your sign-in code is ${code}.",
    "SMS_REGISTER": "Your registration code is ${code}.",
}


@pytest.fixture
def emulator(clock):  # noqa: F811 - clock is the fixture imported above
    """The Aliyun emulator, on the same fake clock as the service."""
    with Emulator(
        {"LTAIverifyKey": "verify-secret-0123456789"}, [SIGN], TEMPLATES, clock=clock
    ) as em:
        yield em
