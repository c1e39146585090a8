"""The pumping guard with Aliyun-made codes (``codes="aliyun"``): approvals count.

An Aliyun-made code is approved by the store's ``approve``, not by ``check``;
the guard must count those approvals too, or every prefix of a working
sign-in would look unconverted and be blocked. On MemoryStore, redis-server
and the Cluster, sync and async, with an injected clock.
"""

from __future__ import annotations

import asyncio

import pytest

from aliyun_sms_connector import PermissionDeniedError
from aliyun_sms_connector.verify import PumpingGuard, VerificationPolicy, VerificationService

from .conftest import SECRET_KEY, FakeClock
from .fake_mas import FakeAliyun

# Mainland mobiles, the only numbers the Message Authentication Service serves,
# in two prefixes: 861380 and 861390. CN is monitored by default; these tests
# let the guard block there.
USED = "+86138001380{:02d}"
UNUSED = "+86139001390{:02d}"
JUDGED_AFTER = 10 * 60


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


def make_service(store, clock):
    aliyun = FakeAliyun(clock)
    service = VerificationService(
        aliyun.connector,
        store,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(pumping_guard=PumpingGuard(monitor_regions=())),
        clock=clock,
        codes="aliyun",
    )
    return service, aliyun


def test_approved_aliyun_codes_keep_the_prefix_open(store, clock):
    """30 Aliyun-made codes typed back: open after grace; 30 left unused: blocked."""
    service, aliyun = make_service(store, clock)
    for i in range(30):
        number = USED.format(i)
        service.start(number, "SignIn")
        assert service.check(number, "SignIn", aliyun.code_for(number, "SignIn")).ok
        service.start(UNUSED.format(i), "SignIn")
    clock.advance(JUDGED_AFTER)
    sent = len(aliyun.outbox)
    service.start(USED.format(99), "SignIn")
    with pytest.raises(PermissionDeniedError) as caught:
        service.start(UNUSED.format(99), "SignIn")
    assert caught.value.code == "PumpingSuspected"
    assert len(aliyun.outbox) == sent + 1


def test_async_approvals_count_too(store, clock):
    """The async path counts Aliyun-made approvals the same way."""
    service, aliyun = make_service(store, clock)

    async def run():
        try:
            for i in range(30):
                number = USED.format(i)
                await service.start_async(number, "SignIn")
                code = aliyun.code_for(number, "SignIn")
                assert (await service.check_async(number, "SignIn", code)).ok
            clock.advance(JUDGED_AFTER)
            await service.start_async(USED.format(99), "SignIn")
        finally:
            await store.aclose()  # this loop's client, before the loop closes

    asyncio.run(run())
