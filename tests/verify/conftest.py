"""Fixtures of the verification suite: stores, a fake clock, the emulator and Redis.

The contract suite runs once per entry of STORE_KINDS. Each entry ``name``
is served by a fixture ``<name>_store_factory``: a callable that returns a
fresh, isolated store (sync and asyncio both usable). To run the whole
contract suite on another backend, add one entry and its fixture.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid

import pytest

from aliyun_sms_connector import AliyunSmsConnector
from aliyun_sms_connector.emulator import Emulator
from aliyun_sms_connector.verify import MemoryStore, RedisStore, VerificationPolicy

# The 6-node Redis Cluster (session) and a per-test redis-server that a test may restart or break
# (issue 11); defined in redis_cluster.py, registered here once so that the cluster starts once.
from .redis_cluster import redis_cluster, redis_server, standalone_redis  # noqa: F401

SECRET_KEY = "test-secret-key-of-at-least-32-bytes!!"
SIGN = "AcmeSign"
TEMPLATES = {"SMS_CODE": "Your code is ${code}."}
NUMBER = "13800138000"
OTHER_NUMBER = "13900139000"

REDIS_HINT = (
    "set REDIS_URL=redis://HOST:PORT/DB, or put redis-server on PATH "
    "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"
)

STORE_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis"),
    pytest.param("redis_cluster", id="redis_cluster", marks=pytest.mark.redis_cluster),
]


class FakeClock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def sms_emulator(clock) -> Emulator:
    """The Aliyun emulator, on the same fake clock as the service (a context manager)."""
    return Emulator({"LTAIverifyKey": "verify-secret-0123456789"}, [SIGN], TEMPLATES, clock=clock)


def sms_connector(emulator) -> AliyunSmsConnector:
    """The SMS connector, pointed at ``emulator`` (a context manager)."""
    config = emulator.connector_config(
        templates=[{"usageType": "Generic", "templateCode": "SMS_CODE"}],
        readTimeout=2000,
        connectTimeout=2000,
        backoffBase=1,
        backoffCap=5,
    )
    return AliyunSmsConnector(config)


@pytest.fixture
def emulator(clock):
    """The Aliyun emulator, on the same fake clock as the service."""
    with sms_emulator(clock) as em:
        yield em


@pytest.fixture
def connector(emulator):
    with sms_connector(emulator) as connector:
        yield connector


@pytest.fixture(scope="session")
def redis_url():
    """REDIS_URL, or a redis-server of the session's own; skips (fails under CI) without either."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Redis tests may not skip: {REDIS_HINT}")
        pytest.skip(f"no Redis for the verification tests: {REDIS_HINT}")
    with redis_server() as server:
        yield server.url


def redis_store(url: str, **options) -> RedisStore:
    """A store on ``url`` whose keys no other test shares.

    The contract suite is about outcomes, not deadlines: a generous
    store_timeout keeps it from failing on a loaded CI machine (a cluster
    client's first call also discovers the topology). test_redis.py and the
    fault suites test the deadline itself.
    """
    options.setdefault("store_timeout", 5.0)
    return RedisStore.from_url(url, prefix=f"test-{uuid.uuid4().hex[:12]}:", **options)


@pytest.fixture
def memory_store_factory():
    return MemoryStore


@pytest.fixture
def redis_store_factory(redis_url):
    stores: list[RedisStore] = []

    def make() -> RedisStore:
        store = redis_store(redis_url)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def redis_cluster_store_factory(redis_cluster):  # noqa: F811 - the fixture imported above
    """Stores on the session's 6-node Redis Cluster, through ``redis+cluster://``."""
    stores: list[RedisStore] = []

    def make() -> RedisStore:
        store = redis_store(redis_cluster.url)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store_factory(request, store_kind):
    """Makes fresh stores of the kind under test."""
    return request.getfixturevalue(f"{store_kind}_store_factory")


@pytest.fixture
def store(store_factory):
    return store_factory()


@pytest.fixture
def policy() -> VerificationPolicy:
    return VerificationPolicy()
