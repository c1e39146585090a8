"""Real redis-server processes for the store tests: one server, or a 6-node Redis Cluster.

Everything listens on 127.0.0.1, on free ports, with no persistence, in a
temporary folder that is removed afterwards, also when start-up fails.

``redis_cluster`` is a session fixture: 3 masters and 3 replicas started with
``redis-server --cluster-enabled yes`` and joined with ``redis-cli --cluster
create``. Without redis-server on PATH it skips, saying how to install it,
unless the ``CI`` environment variable is set: then it fails, because in CI a
skip would hide the cluster suite.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

if TYPE_CHECKING:
    from collections.abc import Iterator

HOST = "127.0.0.1"
# Short, so that a killed master is noticed quickly; failovers sent with
# CLUSTER FAILOVER do not wait for it.
NODE_TIMEOUT_MS = 2000
START_TIMEOUT = 30.0
INSTALL_HINT = (
    "redis-server and redis-cli are not on PATH; install them to run the Redis tests "
    "(Debian/Ubuntu: apt-get install redis-server redis-tools; macOS: brew install redis). "
    ".ci/run installs them in CI."
)


def redis_binaries() -> tuple[str, str] | None:
    """The paths of redis-server and redis-cli, or None when either is missing."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


def require_redis() -> tuple[str, str]:
    """Return the binaries; skip without them, or fail when ``CI`` is set."""
    found = redis_binaries()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Redis tests may not skip: {INSTALL_HINT}")
        pytest.skip(INSTALL_HINT)
    return found


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; with ``with_bus`` its cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536 and _bindable(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def wait_until(predicate: object, timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout``."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what} (last error: {last!r})")


@dataclass
class RedisServer:
    """One redis-server process with no persistence, on a fixed free port.

    ``restart()`` comes back on the same port with an empty data set, as a
    Redis without persistence does after a crash.
    """

    directory: Path
    port: int = 0
    cluster: bool = False
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(with_bus=self.cluster)
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    def command(self) -> list[str]:
        server, _ = require_redis()
        args = [
            server,
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_file),
            # A replica syncs at once instead of after Redis's default 5 s
            # wait, so that failovers can be tested without waiting.
            "--repl-diskless-sync-delay",
            "0",
        ]
        if self.cluster:
            # Absolute: a relative path is resolved inside --dir (shared facts).
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
            ]
        return [*args, *self.extra_args]

    def start(self) -> RedisServer:
        """Start the process and wait until it answers PING."""
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(self._ping, START_TIMEOUT, f"redis-server on {self.address}")
        except BaseException:
            self.stop()
            raise
        return self

    def _ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log[-2000:]}")
        with self.client(socket_timeout=1.0) as client:
            return bool(client.ping())

    def client(self, **kwargs: object) -> redis.Redis:
        """A plain redis-py client on this server, for the tests' own checks."""
        options: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
        options.update(kwargs)
        return redis.Redis(host=HOST, port=self.port, **options)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies with no chance to answer or save."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """End the process. SIGKILL: there is nothing to save, and SIGTERM costs ~0.1 s."""
        self.kill()
        self.process = None

    def restart(self) -> RedisServer:
        """Kill and start again on the same port: without persistence, the data is gone."""
        self.kill()
        self.process = None
        return self.start()


@contextlib.contextmanager
def redis_server(**kwargs: object) -> Iterator[RedisServer]:
    """A started :class:`RedisServer` in a temporary folder, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aliyun-sms-redis-") as tmp:
        server = RedisServer(Path(tmp), **kwargs)  # type: ignore[arg-type]
        try:
            yield server.start()
        finally:
            server.stop()


@dataclass
class LocalRedisCluster:
    """Six cluster-enabled redis-servers, joined as 3 masters with one replica each."""

    directory: Path
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:PORT``: one seed node is enough for discovery."""
        return f"redis+cluster://{HOST}:{self.nodes[0].port}"

    @property
    def seed_url(self) -> str:
        """``redis://127.0.0.1:PORT`` of one node, for ``redis.cluster.RedisCluster.from_url``."""
        return f"redis://{HOST}:{self.nodes[0].port}"

    def start(self, size: int = 6) -> LocalRedisCluster:
        """Start ``size`` nodes, join them, and wait for ``cluster_state:ok`` everywhere."""
        _, cli = require_redis()
        try:
            for index in range(size):
                node = RedisServer(self.directory / f"node{index}", cluster=True)
                self.nodes.append(node)
                node.process = subprocess.Popen(
                    node.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            for node in self.nodes:
                wait_until(node._ping, START_TIMEOUT, f"cluster node {node.address}")
            subprocess.run(
                [
                    cli,
                    "--cluster",
                    "create",
                    *(node.address for node in self.nodes),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=START_TIMEOUT,
            )
            self.wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def info(self, node: RedisServer) -> dict[str, str]:
        with node.client() as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def roles(self) -> dict[int, str]:
        """Port → ``master`` or ``slave``, as each live node sees itself."""
        result = {}
        for node in self.nodes:
            if node.running:
                with node.client() as client:
                    result[node.port] = str(client.info("replication")["role"])
        return result

    def masters(self) -> list[RedisServer]:
        return [self.node(port) for port, role in sorted(self.roles().items()) if role == "master"]

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A live replica of ``master``."""
        with master.client() as client:
            info = client.info("replication")
        for key, value in info.items():
            if key.startswith("slave") and isinstance(value, dict):
                return self.node(int(value["port"]))
        raise LookupError(f"{master.address} has no replica")

    def _ok_everywhere(self) -> bool:
        for node in self.nodes:
            if not node.running:
                continue
            info = self.info(node)
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return False
            with node.client() as client:
                replication = client.info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
        # A master ignores a manual failover request from a replica it does
        # not yet know as its own, so every node must see the same topology.
        views = {frozenset(self.topology(node)) for node in self.nodes if node.running}
        return len(views) == 1

    def topology(self, node: RedisServer) -> set[tuple[str, str, str]]:
        """(node id, ``master``/``slave``, master id) for every healthy node ``node`` knows."""
        with node.client() as client:
            raw = client.execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        seen = set()
        for line in text.splitlines():
            node_id, _, flags, master_id = line.split()[:4]
            flag_set = set(flags.split(","))
            if flag_set & {"fail", "fail?", "handshake", "noaddr"}:
                continue
            role = "master" if "master" in flag_set else "slave"
            seen.add((node_id, role, master_id))
        return seen

    def node_id(self, node: RedisServer) -> str:
        """The cluster's id of ``node`` (``CLUSTER MYID``)."""
        with node.client() as client:
            raw = client.execute_command("CLUSTER", "MYID")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def serves_slots_everywhere(self, node_id: str) -> bool:
        """Whether every live node reports ``node_id`` as a healthy master serving slots.

        This is what a client that maps the slots anew can learn from any
        node: the switch is over for clients only when all of them say so.
        """
        for node in self.nodes:
            if not node.running:
                continue
            with node.client() as client:
                raw = client.execute_command("CLUSTER", "NODES")
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            fields = next((f for f in map(str.split, text.splitlines()) if f[0] == node_id), [])
            if len(fields) < 9:  # unknown to this node, or a master with no slot
                return False
            flags = set(fields[2].split(","))
            if "master" not in flags or flags & {"fail", "fail?", "handshake", "noaddr"}:
                return False
        return True

    def wait_ok(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until every live node reports ``cluster_state:ok`` with all slots served.

        Every live replica must also be in sync with its master: a manual
        failover is refused by a replica whose link is still down.
        """
        wait_until(self._ok_everywhere, timeout, "cluster_state:ok on every node")

    def failover(self, master: RedisServer, timeout: float = 10.0) -> RedisServer:
        """Promote ``master``'s replica with ``CLUSTER FAILOVER``; return the new master."""
        replica = self.replica_of(master)
        with replica.client() as client:
            client.execute_command("CLUSTER", "FAILOVER")

        def switched() -> bool:
            roles = self.roles()
            return roles[replica.port] == "master" and roles[master.port] == "slave"

        wait_until(switched, timeout, f"{replica.address} to take over from {master.address}")
        self.wait_ok(timeout)
        return replica

    def flushall(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.masters():
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        """End every node."""
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def local_redis_cluster() -> Iterator[LocalRedisCluster]:
    """A started :class:`LocalRedisCluster`, stopped and removed afterwards."""
    require_redis()
    with tempfile.TemporaryDirectory(prefix="aliyun-sms-cluster-") as tmp:
        cluster = LocalRedisCluster(Path(tmp))
        try:
            yield cluster.start()
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A 3-master, 3-replica Redis Cluster on loopback, for the whole session."""
    with local_redis_cluster() as cluster:
        yield cluster


@pytest.fixture
def standalone_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may restart, pause or break."""
    require_redis()
    with redis_server() as server:
        yield server


@dataclass
class RedisSentinel:
    """One ``redis-server --sentinel`` watching a master, with quorum 1 and a short down-after."""

    directory: Path
    master: RedisServer
    name: str = "mymaster"
    down_after_ms: int = 1000
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> RedisSentinel:
        """Start the sentinel and wait until it answers PING."""
        server, _ = require_redis()
        self.port = self.port or free_port()
        config = self.directory / "sentinel.conf"  # Sentinel rewrites it, so it is its own
        config.write_text(
            f"port {self.port}\nbind {HOST}\ndir {self.directory}\n"
            f"sentinel monitor {self.name} {HOST} {self.master.port} 1\n"
            f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.name} 5000\n"
        )
        self.process = subprocess.Popen(
            [server, str(config), "--sentinel", "--logfile", str(self.directory / "sentinel.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def ping() -> bool:
            with redis.Redis(host=HOST, port=self.port, socket_timeout=1.0) as client:
                return bool(client.ping())

        try:
            wait_until(ping, START_TIMEOUT, f"redis sentinel on {HOST}:{self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> redis.Redis:
        """A redis-py client on the sentinel itself."""
        return redis.Redis(host=HOST, port=self.port, socket_timeout=5.0)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@contextlib.contextmanager
def redis_sentinel(master: RedisServer, **kwargs: object) -> Iterator[RedisSentinel]:
    """A started :class:`RedisSentinel` for ``master``, stopped and removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="aliyun-sms-sentinel-") as tmp:
        sentinel = RedisSentinel(Path(tmp), master, **kwargs)  # type: ignore[arg-type]
        try:
            yield sentinel.start()
        finally:
            sentinel.stop()
