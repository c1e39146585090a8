"""The test infrastructure itself: the 6-node cluster fixture and the chaos proxy.

The cluster and fault suites are only as good as these; each test here would
fail if the fixture started a different topology or the proxy faked a fault.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

import pytest
from redis.cluster import RedisCluster

from .chaos_proxy import ChaosProxy, ChaosSettings
from .raw_resp import RawRedis, ServerError
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


class TestChaosProxy:
    """Each deterministic fault does what it says, and the random ones replay from a seed.

    The proxy is driven by a bare RESP client (raw_resp.py), not redis-py: a
    client library's handshake, health checks, retries and reconnects would
    add requests of their own, so a test through one checks that library's
    habits as much as the proxy.
    """

    @pytest.fixture
    def proxy(self, standalone_redis: RedisServer):
        with ChaosProxy(("127.0.0.1", standalone_redis.port), seed=1) as proxy:
            yield proxy

    def test_passes_traffic_through(self, proxy: ChaosProxy, standalone_redis: RedisServer):
        """With no fault armed, commands and replies go through unchanged."""
        with RawRedis(proxy.address) as client:
            assert client.call("SET", "k", "v") == b"OK"
            assert client.call("GET", "k") == b"v"
        with standalone_redis.client() as direct:
            assert direct.get("k") == b"v"

    def test_refuse_then_accept_again(self, proxy: ChaosProxy):
        """refuse() makes connects fail with ECONNREFUSED and cuts open connections."""
        with RawRedis(proxy.address) as client:
            assert client.call("PING") == b"PONG"  # the proxy holds this connection now
            proxy.refuse()
            assert client.read_until_closed() == b""
            with pytest.raises(ConnectionRefusedError):
                RawRedis(proxy.address)
            proxy.passthrough()
        with RawRedis(proxy.address) as client:
            assert client.call("PING") == b"PONG"

    def test_blackhole_swallows_requests(self, proxy: ChaosProxy, standalone_redis: RedisServer):
        """blackhole() reads requests but never passes them on: no answer, nothing run."""
        with RawRedis(proxy.address) as client:
            assert client.call("PING") == b"PONG"
            proxy.blackhole()
            client.send("INCR", "n")
            assert client.received_within(0.3) == b""
        assert proxy.stats["blackholed"] == 1
        with standalone_redis.client() as direct:
            assert direct.get("n") is None

    def test_reset_after_reply_runs_the_command(
        self, proxy: ChaosProxy, standalone_redis: RedisServer
    ):
        """A reset in the reply leaves the command done on the server, unknown to the client."""
        proxy.reset_after(0, match=b"INCR")
        with RawRedis(proxy.address) as client:
            client.send("INCR", "n")
            assert client.read_until_closed() == b""
        with standalone_redis.client() as direct:
            assert direct.get("n") == b"1"

    def test_reset_after_some_reply_bytes(self, proxy: ChaosProxy, standalone_redis: RedisServer):
        """reset_after(n) lets exactly the first n bytes of the reply through."""
        proxy.reset_after(2, match=b"INCR")
        with RawRedis(proxy.address) as client:
            client.send("INCR", "n")
            assert client.read_until_closed() == b":1"
        with standalone_redis.client() as direct:
            assert direct.get("n") == b"1"

    def test_reset_in_request_never_runs_the_command(
        self, proxy: ChaosProxy, standalone_redis: RedisServer
    ):
        """A reset inside the request means the server never runs it."""
        proxy.reset_after(6, match=b"INCR", reply=False)
        with RawRedis(proxy.address) as client:
            client.send("INCR", "n")
            assert client.read_until_closed() == b""
        with standalone_redis.client() as direct:
            assert direct.get("n") is None

    @pytest.mark.parametrize(
        "error",
        [
            "READONLY You can't write against a read only replica.",
            "CLUSTERDOWN The cluster is down",
            "LOADING Redis is loading the dataset in memory",
        ],
    )
    def test_inject_error_answers_without_forwarding(
        self, proxy: ChaosProxy, standalone_redis: RedisServer, error
    ):
        """inject_error() answers with the given error reply and never runs the command."""
        proxy.inject_error(error, match=b"INCR")
        with RawRedis(proxy.address) as client:
            with pytest.raises(ServerError) as info:
                client.call("INCR", "n")
            assert str(info.value) == error
            with standalone_redis.client() as direct:
                assert direct.get("n") is None
            assert client.call("INCR", "n") == 1  # one-shot, and the connection still works

    def test_same_seed_same_faults(self, standalone_redis: RedisServer):
        """Two runs with one seed make the same decisions, and each did what it says."""
        settings = ChaosSettings(
            delay=0.2, max_delay=0.005, drop=0.05, cut_request=0.05, cut_reply=0.05
        )

        def run() -> tuple[list[tuple[str, str]], list[str]]:
            # Seed 42 draws every kind of fault within 80 requests.
            with ChaosProxy(("127.0.0.1", standalone_redis.port), seed=42) as proxy:
                proxy.chaos(settings)
                seen = pings(proxy, 80)
                return list(proxy.decisions), seen

        (first, seen_first), (second, seen_second) = run(), run()
        assert first == second
        assert seen_first == seen_second
        requests = [what for kind, what in first if kind == "request"]
        assert len(requests) == 80
        # Every kind of fault happened, so the comparisons above cover each.
        faults = {fault_of(what) for what in requests}
        assert faults == {"forward", "drop request", "drop reply", "cut request", "cut reply"}
        assert any(what.startswith("delay ") for what in requests)

    def test_a_different_seed_makes_other_decisions(self, standalone_redis: RedisServer):
        """The seed, not chance, decides: another seed gives another sequence."""
        settings = ChaosSettings(drop=0.05, cut_request=0.05, cut_reply=0.05)
        decided = []
        for seed in (42, 43):
            with ChaosProxy(("127.0.0.1", standalone_redis.port), seed=seed) as proxy:
                proxy.chaos(settings)
                pings(proxy, 40)
                decided.append(list(proxy.decisions))
        assert decided[0] != decided[1]

    def test_seed_from_environment(self, monkeypatch, standalone_redis: RedisServer):
        """CHAOS_SEED forces the seed, so that a failed soak can be replayed."""
        monkeypatch.setenv("CHAOS_SEED", "987654")
        with ChaosProxy(("127.0.0.1", standalone_redis.port)) as proxy:
            assert proxy.seed == 987654


def pings(proxy: ChaosProxy, count: int) -> list[str]:
    """PING ``count`` times through ``proxy``; what the client got for each, checked on the way.

    The client waits for the proxy's decision on each request, so that no
    timing (a slow reply on a busy machine) can change what it does next:
    it reconnects after exactly the requests whose connection the proxy
    ended. Each outcome is checked against the decision it follows.
    """
    seen: list[str] = []
    client: RawRedis | None = None
    try:
        for _ in range(count):
            if client is None:
                client = RawRedis(proxy.address)
            asked = sum(kind == "request" for kind, _ in proxy.decisions)
            client.send("PING")
            what = next_decision(proxy, asked)
            fault = fault_of(what)
            if fault == "forward":
                assert client.read_reply() == b"PONG", what
                seen.append("PONG")
                continue
            if fault.startswith("drop"):
                # Nothing comes back, though the proxy keeps the connection open.
                assert client.received_within(0.05) == b"", what
                seen.append("no reply")
            else:
                # A cut request reaches Redis incomplete (no reply); a cut
                # reply passes its first n bytes; then the connection resets.
                passed = int(what.rsplit(" ", 1)[1]) if fault == "cut reply" else 0
                got = client.read_until_closed()
                assert got == b"+PONG\r\n"[:passed], what
                seen.append(f"reset after {len(got)} bytes")
            client.close()
            client = None
    finally:
        if client is not None:
            client.close()
    return seen


def next_decision(proxy: ChaosProxy, asked: int) -> str:
    """The proxy's decision on request number ``asked`` (0-based), once it has made it."""
    deadline = time.monotonic() + 10
    while True:
        requests = [what for kind, what in proxy.decisions if kind == "request"]
        if len(requests) > asked:
            assert len(requests) == asked + 1, requests[asked:]
            return requests[asked]
        assert time.monotonic() < deadline, "the proxy never decided"
        time.sleep(0.001)


def fault_of(what: str) -> str:
    """A decision without its delay and its byte count: "cut reply", "drop request", ..."""
    if what.startswith("delay "):
        what = what.split(" ", 2)[2]
    return what.split(" at ", 1)[0]
