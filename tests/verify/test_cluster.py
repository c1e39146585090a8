"""RedisStore on a real Redis Cluster (issue 11, item 2), beyond the contract suite.

The contract suite already runs on the session's 6-node cluster (the
``redis_cluster`` entry of conftest.STORE_KINDS). Here: every way of building
the store on a cluster, where the keys land, and the store's guarantees when a
cluster node stalls, forgets its scripts or loses its data.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING

import pytest
import redis.asyncio.cluster
from redis.cluster import RedisCluster
from redis.crc import key_slot

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)

from .chaos_proxy import ProxyGroup
from .conftest import SECRET_KEY
from .redis_cluster import HOST
from .test_store_faults import (
    FAULTS,
    Api,
    assert_store_unavailable,
    scenario_one_recorded_guess,
    scenario_right_code,
    scenario_start,
    scenario_wrong_code,
)
from .test_store_faults import make_service as make_fault_service

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .redis_cluster import LocalRedisCluster, RedisServer

pytestmark = pytest.mark.redis_cluster

STORE_TIMEOUT = 0.3

_numbers = itertools.count(0)
_TAG = re.compile(rb"\{([^}]*)\}")


def fresh_number() -> str:
    return f"1390013{next(_numbers) % 10_000:04d}"


def prefix() -> str:
    return f"cl-{uuid.uuid4().hex[:10]}:"


def make_service(connector, store, **policy) -> VerificationService:
    options = {"per_ip_hourly": None, "per_number_hourly": None, "per_number_daily": None}
    options.update(policy)
    return VerificationService(
        connector, store, secret_key=SECRET_KEY, policy=VerificationPolicy(**options)
    )


def sms_code(emulator, to: str) -> str:
    return next(m.params["code"] for m in reversed(emulator.outbox) if m.phone_number == to)


def keys_by_master(cluster: LocalRedisCluster, pattern: str) -> dict[int, list[bytes]]:
    """Port of each master → the keys matching ``pattern`` that it holds."""
    found = {}
    for master in cluster.masters():
        with master.client() as client:
            found[master.port] = list(client.scan_iter(pattern, count=1000))
    return found


def master_of(cluster: LocalRedisCluster, key: str) -> RedisServer:
    """The master that serves ``key``'s slot now."""
    client = RedisCluster.from_url(cluster.seed_url)
    try:
        node = client.get_node_from_key(key)
        return cluster.node(node.port)
    finally:
        client.close()


class TestBuildingTheStore:
    """RedisStore takes a RedisCluster, its asyncio twin, or a redis+cluster:// URL."""

    def test_sync_cluster_client(self, redis_cluster, connector, emulator):
        """A redis.cluster.RedisCluster passed in serves start and check."""
        client = RedisCluster.from_url(redis_cluster.seed_url, socket_timeout=STORE_TIMEOUT)
        try:
            service = make_service(connector, RedisStore(client, prefix=prefix()))
            to = fresh_number()
            service.start(to, "SignIn")
            assert service.check(to, "SignIn", sms_code(emulator, to)).ok
        finally:
            client.close()

    def test_async_cluster_client(self, redis_cluster, connector, emulator):
        """A redis.asyncio.cluster.RedisCluster passed in serves start_async and check_async."""

        async def main() -> CheckStatus:
            client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.seed_url)
            try:
                service = make_service(connector, RedisStore(client, prefix=prefix()))
                to = fresh_number()
                await service.start_async(to, "SignIn")
                result = await service.check_async(to, "SignIn", sms_code(emulator, to))
                return result.status
            finally:
                await client.aclose()

        assert asyncio.run(main()) is CheckStatus.APPROVED

    def test_both_clients_share_the_verifications(self, redis_cluster, connector, emulator):
        """With a sync and an asyncio cluster client, a code started sync checks async."""
        sync_client = RedisCluster.from_url(redis_cluster.seed_url)

        async def main() -> CheckStatus:
            async_client = redis.asyncio.cluster.RedisCluster.from_url(redis_cluster.seed_url)
            try:
                store = RedisStore(sync_client, async_client=async_client, prefix=prefix())
                service = make_service(connector, store)
                to = fresh_number()
                service.start(to, "SignIn")
                result = await service.check_async(to, "SignIn", sms_code(emulator, to))
                return result.status
            finally:
                await async_client.aclose()

        try:
            assert asyncio.run(main()) is CheckStatus.APPROVED
        finally:
            sync_client.close()

    def test_from_url_sync_and_async(self, redis_cluster, connector, emulator):
        """RedisStore.from_url("redis+cluster://...") serves both paths."""
        store = RedisStore.from_url(redis_cluster.url, prefix=prefix())
        service = make_service(connector, store)
        try:
            assert "cluster" in repr(store)
            first, second = fresh_number(), fresh_number()
            service.start(first, "SignIn")

            async def main() -> CheckStatus:
                try:
                    await service.start_async(second, "SignIn")
                    result = await service.check_async(first, "SignIn", sms_code(emulator, first))
                    return result.status
                finally:
                    await store.aclose()

            assert asyncio.run(main()) is CheckStatus.APPROVED
            assert service.check(second, "SignIn", sms_code(emulator, second)).ok
        finally:
            store.close()


class TestKeyPlacement:
    """Keys spread over every master, and each verification's keys share one slot."""

    def test_keys_spread_over_all_masters_one_slot_per_verification(
        self, redis_cluster, connector, emulator
    ):
        """60 numbers put keys on all 3 masters; each number's keys share one slot and master."""
        key_prefix = prefix()
        store = RedisStore.from_url(redis_cluster.url, prefix=key_prefix)
        service = make_service(connector, store)
        try:
            for _ in range(60):
                service.start(fresh_number(), "SignIn")
        finally:
            store.close()
        placed = keys_by_master(redis_cluster, f"{key_prefix}*")
        assert len(placed) == 3
        counts = {port: len(keys) for port, keys in placed.items()}
        assert all(counts.values()), f"a master holds no verification keys: {counts}"
        by_tag: dict[bytes, set[tuple[int, int]]] = defaultdict(set)
        keys_per_tag: dict[bytes, int] = defaultdict(int)
        for port, keys in placed.items():
            for key in keys:
                match = _TAG.search(key)
                assert match is not None, f"a key without a hash tag: {key!r}"
                by_tag[match.group(1)].add((port, key_slot(key)))
                keys_per_tag[match.group(1)] += 1
        # The pumping guard's keys of the numbers' prefix: one tag, one slot of its own.
        guard = {tag for tag in by_tag if tag.startswith(b"pump:")}
        assert len(guard) == 1  # every number here starts +86 1390
        assert all(len(by_tag.pop(tag)) == 1 and keys_per_tag.pop(tag) for tag in guard)
        assert len(by_tag) == 60
        assert all(len(places) == 1 for places in by_tag.values()), "a verification spans slots"
        # The record, both cooldowns and the send log: one slot, so one script.
        assert set(keys_per_tag.values()) == {4}
        # And the slots really differ between numbers.
        assert len({slot for places in by_tag.values() for _, slot in places}) > 50

    def test_shared_limits_share_one_slot(self, redis_cluster, connector, emulator):
        """The per-IP and global counters share the {limits} slot, so one script checks both."""
        key_prefix = prefix()
        store = RedisStore.from_url(redis_cluster.url, prefix=key_prefix)
        service = make_service(connector, store, per_ip_hourly=10, global_hourly=100)
        try:
            for ip in ("203.0.113.1", "203.0.113.2", "2001:db8::1"):
                service.start(fresh_number(), "SignIn", client_ip=ip)
        finally:
            store.close()
        placed = keys_by_master(redis_cluster, f"{key_prefix}{{limits}}*")
        holders = {port for port, keys in placed.items() if keys}
        assert len(holders) == 1
        keys = [key for keys in placed.values() for key in keys]
        assert len(keys) == 4  # three IPs and the global counter
        assert len({key_slot(key) for key in keys}) == 1
        for key in keys:
            assert b"203.0.113" not in key
            assert b"2001" not in key


class TestClusterFaults:
    """The fail-closed rules hold when a node of the cluster misbehaves."""

    @pytest.fixture
    def store(self, redis_cluster) -> Iterator[RedisStore]:
        store = RedisStore.from_url(redis_cluster.url, prefix=prefix(), store_timeout=STORE_TIMEOUT)
        yield store
        store.close()

    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_paused_master_times_out_within_store_timeout(
        self, redis_cluster, connector, emulator, store, mode
    ):
        """With the code's master paused, check fails with StoreUnavailable, bounded in time."""
        service = make_service(connector, store)
        to = fresh_number()
        service.start(to, "SignIn")
        code = sms_code(emulator, to)
        key = next(
            key
            for keys in keys_by_master(redis_cluster, f"{store._prefix}*").values()
            for key in keys
            if b"{pump:" not in key  # the number's keys, not its prefix's guard
        ).decode()
        master = master_of(redis_cluster, key)

        async def check_async() -> object:
            try:
                return await service.check_async(to, "SignIn", code)
            finally:
                await store.aclose()

        with master.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 4000, "WRITE")
            started = time.monotonic()
            try:
                if mode == "sync":
                    service.check(to, "SignIn", code)
                else:
                    asyncio.run(check_async())
            except ServiceUnavailableError as error:
                assert_store_unavailable(error, to, code, port=master.port)
            else:
                pytest.fail("a paused master gave an answer")
            finally:
                took = time.monotonic() - started
                admin.execute_command("CLIENT", "UNPAUSE")
        assert took < STORE_TIMEOUT + 1.0, took
        assert service.check(to, "SignIn", code).ok  # nothing ran while paused

    def test_script_flush_on_every_node_is_transparent(
        self, redis_cluster, connector, emulator, store
    ):
        """SCRIPT FLUSH on every node between calls changes nothing the caller sees."""
        service = make_service(connector, store, max_attempts=3)

        def flush() -> None:
            for node in redis_cluster.nodes:
                with node.client() as client:
                    client.script_flush()

        to = fresh_number()
        flush()
        service.start(to, "SignIn")
        flush()
        assert service.check(to, "SignIn", "000000").attempts_left == 2
        flush()
        assert service.check(to, "SignIn", sms_code(emulator, to)).ok

    def test_flushed_cluster_gives_not_found(self, redis_cluster, connector, emulator, store):
        """After every master lost its data, the right code gives NOT_FOUND, not an error."""
        service = make_service(connector, store)
        to = fresh_number()
        service.start(to, "SignIn")
        redis_cluster.flushall()
        assert service.check(to, "SignIn", sms_code(emulator, to)).status is CheckStatus.NOT_FOUND


@pytest.fixture
def proxied_cluster(redis_cluster) -> Iterator[ProxyGroup]:
    """A ChaosProxy in front of every node of the session cluster."""
    with ProxyGroup([(HOST, node.port) for node in redis_cluster.nodes]) as group:
        yield group


@pytest.fixture(params=["sync", "async"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def cluster_api(redis_cluster, proxied_cluster, connector, emulator, mode) -> Iterator[Api]:
    """The service on the cluster, every node reached through its proxy."""
    store = RedisStore.from_url(
        proxied_cluster.cluster_url,
        prefix=prefix(),
        store_timeout=STORE_TIMEOUT,
        address_remap=proxied_cluster.remap,
    )
    api = Api(make_fault_service(connector, store), mode, emulator)
    yield api
    proxied_cluster.passthrough()
    api.close()


# The black hole is left out: on the cluster, TestClusterFaults pauses a real
# master instead.
CLUSTER_FAULTS = [fault for fault in FAULTS if fault.name != "timeout"]


# start's scripts meet the other faults exactly as on one Redis (test_store_faults);
# these three depend on how the cluster client connects, redirects and fails.
_START_FAULT_NAMES = {"refused", "reset_mid_script", "clusterdown"}
START_FAULTS = [fault for fault in CLUSTER_FAULTS if fault.name in _START_FAULT_NAMES]


class TestClusterStart:
    """start under faults on every cluster node."""

    @pytest.mark.parametrize("fault", START_FAULTS, ids=[f.name for f in START_FAULTS])
    def test_start_on_the_cluster(self, cluster_api, proxied_cluster, fault):
        """A start hit by the fault on every node raises StoreUnavailable and sends no SMS."""
        scenario_start(cluster_api, proxied_cluster, fault)


@pytest.mark.parametrize("fault", CLUSTER_FAULTS, ids=[f.name for f in CLUSTER_FAULTS])
class TestClusterFaultMatrix:
    """The fault matrix of test_store_faults, with the faults on every cluster node."""

    def test_right_code(self, cluster_api, proxied_cluster, fault):
        """A right code hit by the fault is neither approved nor approvable twice."""
        scenario_right_code(cluster_api, proxied_cluster, fault)

    def test_wrong_code(self, cluster_api, proxied_cluster, fault):
        """Wrong guesses hit by the fault get the error; only recorded ones count."""
        scenario_wrong_code(cluster_api, proxied_cluster, fault)


class TestClusterRetries:
    """A script whose reply was lost is never sent again: that would count a guess twice."""

    def test_lost_reply_counts_once(self, cluster_api, proxied_cluster):
        """After a wrong guess whose reply was cut, exactly one attempt fewer is left."""
        scenario_one_recorded_guess(cluster_api, proxied_cluster)
