"""Fixtures for the examples: the verification suite's Redis and clock, and an emulator."""

from __future__ import annotations

import uuid

import pytest

from aliyun_sms_connector.emulator import Emulator
from aliyun_sms_connector.verify import MemoryStore, RedisStore

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


@pytest.fixture(params=["memory", "redis"])
def store_factory(request):
    """Makes the example's store: a MemoryStore, or a RedisStore on a real redis-server."""
    if request.param == "memory":
        return MemoryStore
    url = request.getfixturevalue("redis_url")
    prefix = f"example-{uuid.uuid4().hex[:8]}:"
    # Generous: these tests are about status codes, not the store's deadline.
    return lambda: RedisStore.from_url(url, prefix=prefix, store_timeout=5.0)


def app_config(emulator, **overrides):
    """A connector config on the emulator, with one template per purpose."""
    return emulator.connector_config(
        templates=[
            {"usageType": "Generic", "templateCode": "SMS_CODE"},
            {"usageType": "SignIn", "templateCode": "SMS_SIGN_IN"},
            {"usageType": "Register", "templateCode": "SMS_REGISTER"},
        ],
        backoffBase=1,
        backoffCap=5,
        **overrides,
    )
