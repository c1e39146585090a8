"""The test infrastructure itself: the 6-node cluster fixture and the chaos proxy.

The cluster and fault suites are only as good as these; each test here would
fail if the fixture started a different topology or the proxy faked a fault.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
import redis
from redis.cluster import RedisCluster

from .chaos_proxy import ChaosProxy, ChaosSettings
from .redis_cluster import INSTALL_HINT, LocalRedisCluster, RedisServer, require_redis

_SLOTS = 16384


@pytest.mark.redis_cluster
class TestClusterFixture:
    """The session cluster is a real 3-master, 3-replica Redis Cluster."""

    def test_three_masters_each_with_one_replica(self, redis_cluster: LocalRedisCluster):
        """Three nodes are masters, and each master has exactly one live replica."""
        roles = Counter(redis_cluster.roles().values())
        assert roles == {"master": 3, "slave": 3}
        for master in redis_cluster.masters():
            with master.client() as client:
                assert client.info("replication")["connected_slaves"] == 1

    def test_every_slot_is_served(self, redis_cluster: LocalRedisCluster):
        """All 16384 slots are assigned and every node reports cluster_state:ok."""
        for node in redis_cluster.nodes:
            info = redis_cluster.info(node)
            assert info["cluster_state"] == "ok"
            assert info["cluster_slots_assigned"] == str(_SLOTS)

    def test_nodes_listen_only_on_loopback(self, redis_cluster: LocalRedisCluster):
        """Every node answers on 127.0.0.1 and announces 127.0.0.1 to clients."""
        client = RedisCluster.from_url(redis_cluster.seed_url)
        try:
            hosts = {node.host for node in client.get_nodes()}
        finally:
            client.close()
        assert hosts == {"127.0.0.1"}

    def test_redis_py_cluster_client_reaches_every_master(self, redis_cluster: LocalRedisCluster):
        """Keys written through redis-py's RedisCluster land on all three masters."""
        client = RedisCluster.from_url(redis_cluster.seed_url)
        try:
            for i in range(60):
                client.set(f"fixture-check:{i}", i, ex=60)
        finally:
            client.close()
        per_master = []
        for master in redis_cluster.masters():
            with master.client() as direct:
                per_master.append(len(list(direct.scan_iter("fixture-check:*"))))
        assert len(per_master) == 3
        assert all(per_master), per_master
        assert sum(per_master) == 60


class TestRedisServer:
    """The standalone server helper: no persistence, restarts empty on the same port."""

    def test_restart_loses_the_data_and_keeps_the_port(self, standalone_redis: RedisServer):
        """After restart() the port is the same and the keys are gone, as without persistence."""
        port = standalone_redis.port
        with standalone_redis.client() as client:
            client.set("k", "v")
        standalone_redis.restart()
        assert standalone_redis.port == port
        with standalone_redis.client() as client:
            assert client.get("k") is None
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}

    def test_stop_frees_the_port(self, standalone_redis: RedisServer):
        """stop() ends the process: nothing listens on its port afterwards."""
        standalone_redis.stop()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", standalone_redis.port)) != 0


class TestRequireRedis:
    """Without redis-server the Redis tests skip with a hint, and fail in CI."""

    def test_skips_with_install_hint(self, monkeypatch):
        """No redis-server on PATH and no CI: the test is skipped, saying how to install it."""
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.delenv("CI", raising=False)
        with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
            require_redis()

    def test_fails_in_ci(self, monkeypatch):
        """No redis-server on PATH with CI set: the test fails instead of skipping."""
        monkeypatch.setenv("PATH", "/nonexistent")
        monkeypatch.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception, match="may not skip"):
            require_redis()
        assert "redis-tools" in INSTALL_HINT


def _client(proxy: ChaosProxy, timeout: float = 0.5) -> redis.Redis:
    # No retries: each fault must reach the test as it happened.
    return redis.Redis(
        host="127.0.0.1",
        port=proxy.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=None,
    )


def _ping_outcome(client: redis.Redis) -> str:
    try:
        client.ping()
    except redis.RedisError as exc:
        return type(exc).__name__
    return "ok"


class TestChaosProxy:
    """Each deterministic fault does what it says, and the random ones replay from a seed."""

    @pytest.fixture
    def proxy(self, standalone_redis: RedisServer):
        with ChaosProxy(("127.0.0.1", standalone_redis.port), seed=1) as proxy:
            yield proxy

    def test_passes_traffic_through(self, proxy: ChaosProxy):
        """With no fault armed, commands and replies go through unchanged."""
        with _client(proxy) as client:
            assert client.set("k", "v")
            assert client.get("k") == b"v"

    def test_refuse_then_accept_again(self, proxy: ChaosProxy):
        """refuse() makes connects fail with ECONNREFUSED; passthrough() listens again."""
        proxy.refuse()
        with _client(proxy) as client:
            with pytest.raises(redis.ConnectionError, match="refused"):
                client.ping()
            proxy.passthrough()
            assert client.ping()

    def test_blackhole_times_out(self, proxy: ChaosProxy):
        """blackhole() swallows requests, so the client's socket timeout fires."""
        with _client(proxy, timeout=0.2) as client:
            client.ping()
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                client.ping()
            assert time.monotonic() - started < 5

    def test_reset_after_reply_runs_the_command(
        self, proxy: ChaosProxy, standalone_redis: RedisServer
    ):
        """A reset in the reply leaves the command done on the server, unknown to the client."""
        proxy.reset_after(0, match=b"INCR")
        with _client(proxy) as client, pytest.raises(redis.ConnectionError):
            client.incr("n")
        with standalone_redis.client() as direct:
            assert direct.get("n") == b"1"

    def test_reset_in_request_never_runs_the_command(
        self, proxy: ChaosProxy, standalone_redis: RedisServer
    ):
        """A reset inside the request means the server never runs it."""
        proxy.reset_after(6, match=b"INCR", reply=False)
        with _client(proxy) as client, pytest.raises(redis.ConnectionError):
            client.incr("n")
        with standalone_redis.client() as direct:
            assert direct.get("n") is None

    @pytest.mark.parametrize(
        ("error", "exception"),
        [
            ("READONLY You can't write against a read only replica.", redis.ReadOnlyError),
            ("CLUSTERDOWN The cluster is down", redis.exceptions.ClusterDownError),
            ("LOADING Redis is loading the dataset in memory", redis.BusyLoadingError),
        ],
    )
    def test_inject_error_answers_without_forwarding(
        self, proxy: ChaosProxy, standalone_redis: RedisServer, error, exception
    ):
        """inject_error() answers with the given error reply and never runs the command."""
        proxy.inject_error(error, match=b"INCR")
        with _client(proxy) as client:
            with pytest.raises(exception):
                client.incr("n")
            assert client.incr("n") == 1  # one-shot, and the connection still works

    def test_same_seed_same_faults(self, standalone_redis: RedisServer):
        """Two sequential runs with one seed meet the same faults in the same order."""
        settings = ChaosSettings(delay=0.2, max_delay=0.005, drop=0.03, cut_request=0.05)

        def run() -> list[str]:
            outcomes = []
            with ChaosProxy(("127.0.0.1", standalone_redis.port), seed=1234) as proxy:
                proxy.chaos(settings)
                # Long enough that only a dropped request times out, even on a
                # loaded machine: a spurious timeout would reconnect and shift the dice.
                client = _client(proxy, timeout=0.3)
                outcomes.extend(_ping_outcome(client) for _ in range(60))
                client.close()
            return outcomes

        first, second = run(), run()
        assert first == second
        assert set(first) > {"ok"}  # some faults did happen

    def test_seed_from_environment(self, monkeypatch, standalone_redis: RedisServer):
        """CHAOS_SEED forces the seed, so that a failed soak can be replayed."""
        monkeypatch.setenv("CHAOS_SEED", "987654")
        with ChaosProxy(("127.0.0.1", standalone_redis.port)) as proxy:
            assert proxy.seed == 987654
