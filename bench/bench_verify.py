"""Benchmark VerificationService.check_async on Redis, next to a bare EVALSHA.

    python bench/bench_verify.py             # full run: a few minutes on 2 idle cores
    python bench/bench_verify.py --smoke     # seconds: every side runs once, briefly
    python bench/bench_verify.py --json out.json

Three sides take turns, each in a fresh process, over several rounds in
rotating order (every order of the three, in turn), against one local
redis-server (REDIS_URL if set, else redis-server from PATH on a free port,
with no persistence):

- ``bare``: redis-py asyncio, ``EVALSHA`` of a trivial script (``return 1``)
  through ``execute_command``, with one key and one argument, on the very
  client a RedisStore builds for itself (same class, pool size, RESP2, no
  retries, no per-read socket timeout): the target's yardstick;
- ``direct``: the same ``EVALSHA``, sent the way the store sends its own
  scripts (its own pool of redis-py connections, without execute_command's
  and redis-py's pool's per-call layers): what the check's own work costs on
  top of the store's transport;
- ``check``: ``VerificationService.check_async`` with a wrong code on pending
  verifications (the costliest path: number parsing, two HMACs, one EVALSHA
  that reads, compares and counts), on a RedisStore. Every call checks a
  different number, as real traffic does, and the codes were started by
  another service object (another instance behind a load balancer), so no
  per-number state of the measured one is warm.

All run ``--concurrency`` calls in flight on one event loop, in processes of
the same shape (all build the service and start the same pending codes; only
the measured call differs). Each process reports its own CPU per call and
redis-server's (from ``INFO cpu`` before and after), so that one can see
whether the server or the client was the bottleneck. The ratios check/bare
(the target: 0.8) and check/direct are computed within each round; the table
shows their medians.

Then ``start_async`` runs through the Aliyun emulator (in a process of its
own, no added latency) on a RedisStore, and its rate and latencies are shown.

Last, what the pumping guard costs: ``start_async`` (through the emulator)
and an approving ``check_async`` (a right code, so that the guard counts the
approval), each with the default guard and with ``pumping_guard=None``, four
sides in fresh processes over ``--guard-rounds`` rounds in rotating order.
The table shows each side's medians and the per-round ratios guard on / off.

Exit status: 0 the target met; 1 missed; 2 the harness failed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

TARGET = 0.8
SECRET_KEY = "bench-secret-key-0123456789abcdef0123"
ENV = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}
WARMUP = 200
SIDES = ("bare", "direct", "check")
GUARD_SIDES = ("start_off", "start_on", "approve_off", "approve_on")
SETUP_BATCH = 64


def numbers(count: int, first: int = 0) -> list[str]:
    """``count`` distinct mainland mobile numbers (bare 11 digits, as typed in China)."""
    return [f"{13800000000 + first + i}" for i in range(count)]


def _server_cpu(url: str) -> Callable[[], float]:
    """Seconds of CPU redis-server has used so far (user + system, all threads)."""
    import redis

    client = redis.Redis.from_url(url)

    def used() -> float:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    return used


# -- children ------------------------------------------------------------------


async def _measure(
    call: Callable[[int], Awaitable[None]], total: int, concurrency: int, url: str
) -> dict[str, Any]:
    latencies: list[float] = []
    counter = iter(range(total))
    server_cpu = _server_cpu(url)

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    # Connections and scripts, with as many calls in flight as measured, so
    # that every connection is open before the clock starts; indices past
    # the measured ones.
    warm = iter(range(total, total + WARMUP))

    async def warm_up() -> None:
        for i in warm:
            await call(i)

    await asyncio.gather(*(warm_up() for _ in range(concurrency)))
    server = server_cpu()
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    server = server_cpu() - server
    latencies.sort()
    return {
        "ops": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "cpu_us_per_op": cpu / len(latencies) * 1e6,
        "server_cpu_us_per_op": server / len(latencies) * 1e6,
        # The share of one core redis-server used: near 1.0, the server was the limit.
        "server_busy": server / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


async def _pending(url: str, prefix: str, targets: list[str], concurrency: int) -> None:
    """Start a code for each target through a service object of its own."""
    connector, store, service = _service(url, concurrency, targets=targets, prefix=prefix)
    for first in range(0, len(targets), SETUP_BATCH):
        batch = targets[first : first + SETUP_BATCH]
        await asyncio.gather(*(service.start_async(number, "SignIn") for number in batch))
    await store.aclose()
    await connector.aclose()


async def child_bare(url: str, total: int, concurrency: int, *, direct: bool) -> dict[str, Any]:
    # The same process shape as the check side (the library imported, the
    # same pending codes started, a service built), so that both pay for the
    # same heap in garbage collection; only the measured call differs.
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    targets = numbers(total + WARMUP)
    await _pending(url, prefix, targets, concurrency)
    connector, store, _ = _service(url, concurrency, targets=targets, prefix=prefix)

    # The store's own asyncio client: the same class, pool, protocol (RESP2),
    # retries (none) and socket settings as the check side's calls go through.
    client = store._async_client()  # noqa: SLF001 - the bench compares against it
    sha = await client.script_load("return 1")
    key = f"bench-bare:{{{uuid.uuid4().hex}}}"

    execute = client.execute_command
    if direct:
        _, _, execute = store._for_loop()  # noqa: SLF001 - the store's own path

    async def call(_: int) -> None:
        await execute("EVALSHA", sha, 1, key, "1")

    result = await _measure(call, total, concurrency, url)
    await store.aclose()
    await connector.aclose()
    return result


def _service(
    url: str,
    concurrency: int,
    endpoint: str | None = None,
    *,
    targets: list[str] | None = None,
    prefix: str | None = None,
    guard: bool = True,
) -> Any:
    from aliyun_sms_connector import AliyunSmsConnector
    from aliyun_sms_connector.verify import RedisStore, VerificationPolicy, VerificationService

    config = {
        "accessKeyId": "LTAIemulatorKeyId",
        "accessKeySecret": "emulator-access-key-secret",
        "signName": "AliyunSmsTest",
        "templates": [{"usageType": "Generic", "templateCode": "SMS_000001"}],
        "endpoint": endpoint or "127.0.0.1:9",
        "protocol": "http",
    }
    # A generous deadline: this measures throughput, and on a busy machine 64
    # calls in flight can wait longer than the default 0.5 s for the CPU.
    store = RedisStore.from_url(
        url,
        prefix=prefix or f"bench-{uuid.uuid4().hex[:8]}:",
        store_timeout=5.0,
        max_connections=concurrency + 8,
    )
    limits: dict[str, Any] = {
        "per_number_hourly": None,
        "per_number_daily": None,
        "per_ip_hourly": None,
    }
    if not guard:
        limits["pumping_guard"] = None
    if endpoint:
        policy = VerificationPolicy(**limits)
    else:
        # Test numbers are stored but never sent: the checks need pending codes only.
        test_numbers = dict.fromkeys(targets or (), "246810")
        policy = VerificationPolicy(max_attempts=10**9, test_numbers=test_numbers, **limits)
    connector = AliyunSmsConnector(config)
    service = VerificationService(connector, store, secret_key=SECRET_KEY, policy=policy)
    return connector, store, service


async def child_check(url: str, total: int, concurrency: int) -> dict[str, Any]:
    from aliyun_sms_connector.verify import CheckStatus

    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    targets = numbers(total + WARMUP)
    await _pending(url, prefix, targets, concurrency)  # test numbers: stored, no SMS
    connector, store, service = _service(url, concurrency, targets=targets, prefix=prefix)
    wrong = CheckStatus.WRONG_CODE

    async def call(i: int) -> None:
        result = await service.check_async(targets[i], "SignIn", "135791")
        if result.status is not wrong:
            raise RuntimeError(f"unexpected status {result.status}")

    result = await _measure(call, total, concurrency, url)
    await store.aclose()
    await connector.aclose()
    return result


async def child_approve(url: str, total: int, concurrency: int, *, guard: bool) -> dict[str, Any]:
    """check_async with the right code: each call approves (and the guard counts it)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    targets = numbers(total + WARMUP)
    await _pending(url, prefix, targets, concurrency)
    connector, store, service = _service(
        url, concurrency, targets=targets, prefix=prefix, guard=guard
    )

    async def call(i: int) -> None:
        result = await service.check_async(targets[i], "SignIn", "246810")
        if not result.ok:
            raise RuntimeError(f"unexpected status {result.status}")

    result = await _measure(call, total, concurrency, url)
    await store.aclose()
    await connector.aclose()
    return result


async def child_start(
    url: str, total: int, concurrency: int, endpoint: str, *, guard: bool = True, first: int = 0
) -> dict[str, Any]:
    connector, store, service = _service(url, concurrency, endpoint, guard=guard)
    # Numbers no other start side used: the emulator keeps Aliyun's per-number flow control.
    targets = numbers(total + WARMUP, first)

    async def call(i: int) -> None:
        await service.start_async(targets[i], "SignIn")

    result = await _measure(call, total, concurrency, url)
    await store.aclose()
    await connector.aclose()
    return result


def run_child(args: argparse.Namespace) -> None:
    if args.child in ("bare", "direct"):
        direct = args.child == "direct"
        result = asyncio.run(child_bare(args.redis, args.total, args.concurrency, direct=direct))
    elif args.child == "check":
        result = asyncio.run(child_check(args.redis, args.total, args.concurrency))
    elif args.child.startswith("approve_"):
        guard = args.child.endswith("_on")
        result = asyncio.run(child_approve(args.redis, args.total, args.concurrency, guard=guard))
    elif args.child.startswith("start_"):
        guard = args.child.endswith("_on")
        result = asyncio.run(
            child_start(
                args.redis,
                args.total,
                args.concurrency,
                args.endpoint,
                guard=guard,
                first=args.first,
            )
        )
    else:
        result = asyncio.run(child_start(args.redis, args.total, args.concurrency, args.endpoint))
    print(json.dumps(result))


def run_emulator() -> None:
    from aliyun_sms_connector.emulator import Emulator

    with Emulator() as emulator:
        print(json.dumps({"endpoint": emulator.endpoint}), flush=True)
        sys.stdin.readline()  # until the parent closes stdin


# -- parent --------------------------------------------------------------------


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Redis:
    """REDIS_URL, or a redis-server of our own with no persistence."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.tmp: tempfile.TemporaryDirectory[str] | None = None
        url = os.environ.get("REDIS_URL")
        if url:
            self.url = url
            return
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("no Redis: set REDIS_URL or put redis-server on PATH")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-verify-redis-")
        self.process = subprocess.Popen(
            [
                server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.tmp.name,
            ],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _pong(port):
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        if self.tmp is not None:
            self.tmp.cleanup()


def child(  # noqa: PLR0917 - the child's command line, in order
    kind: str, redis_url: str, total: int, concurrency: int, endpoint: str = "", first: int = 0
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--redis",
        redis_url,
        "--total",
        str(total),
        "--concurrency",
        str(concurrency),
        "--endpoint",
        endpoint,
        "--first",
        str(first),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=600, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(2)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds and the start_async side; return everything measured."""
    redis = Redis()
    emulator = subprocess.Popen(
        [sys.executable, __file__, "--emulator"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert emulator.stdout is not None
        endpoint = json.loads(emulator.stdout.readline())["endpoint"]
        rounds = []
        orders = list(itertools.permutations(SIDES))
        for number in range(args.rounds):
            order = orders[number % len(orders)]
            results = {kind: child(kind, redis.url, args.total, args.concurrency) for kind in order}
            check = results["check"]
            ratio = check["rate"] / results["bare"]["rate"]
            cpu_ratio = results["bare"]["cpu_us_per_op"] / check["cpu_us_per_op"]
            direct_ratio = check["rate"] / results["direct"]["rate"]
            rounds.append(
                {
                    "order": order,
                    "ratio": ratio,
                    "cpu_ratio": cpu_ratio,
                    "direct_ratio": direct_ratio,
                    **results,
                }
            )
            sides = "  ".join(
                f"{kind} {results[kind]['rate']:6.0f}/s {results[kind]['cpu_us_per_op']:4.0f} µs "
                f"(server {results[kind]['server_cpu_us_per_op']:3.0f} µs, "
                f"{results[kind]['server_busy']:.0%})"
                for kind in SIDES
            )
            print(
                f"round {number + 1} ({'-'.join(order)}): {sides}  check/bare {ratio:.2f} "
                f"(CPU {cpu_ratio:.2f})  check/direct {direct_ratio:.2f}",
                flush=True,
            )
        start_total = 200 if args.smoke else 3000
        start = child("start", redis.url, start_total, args.concurrency, endpoint)
        guard = measure_guard(args, redis.url, endpoint, start_total)
    finally:
        if emulator.stdin is not None:
            emulator.stdin.close()
        emulator.wait(10)
        redis.close()
    return {
        "concurrency": args.concurrency,
        "rounds": rounds,
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "median_cpu_ratio": statistics.median(r["cpu_ratio"] for r in rounds),
        "median_direct_ratio": statistics.median(r["direct_ratio"] for r in rounds),
        "target": TARGET,
        "start_async": start,
        "guard": guard,
    }


def measure_guard(
    args: argparse.Namespace, url: str, endpoint: str, start_total: int
) -> dict[str, Any]:
    """The guard's cost: start_async and approving check_async, guard on and off."""
    rounds = []
    for number in range(args.guard_rounds):
        # Rotated, so that no side always runs first (or last) in a round.
        order = GUARD_SIDES[number % 4 :] + GUARD_SIDES[: number % 4]
        results = {}
        for kind in order:
            total = start_total if kind.startswith("start") else args.total
            first = (1 + number * len(GUARD_SIDES) + GUARD_SIDES.index(kind)) * 100_000
            results[kind] = child(kind, url, total, args.concurrency, endpoint, first)
        rounds.append({"order": order, **results})
        sides = "  ".join(
            f"{kind} {results[kind]['rate']:6.0f}/s {results[kind]['cpu_us_per_op']:4.0f} µs"
            for kind in GUARD_SIDES
        )
        print(f"guard round {number + 1}: {sides}", flush=True)
    ratios = {}
    for call in ("start", "approve"):
        ratios[call] = {
            "rate": statistics.median(
                r[f"{call}_on"]["rate"] / r[f"{call}_off"]["rate"] for r in rounds
            ),
            "cpu": statistics.median(
                r[f"{call}_on"]["cpu_us_per_op"] / r[f"{call}_off"]["cpu_us_per_op"] for r in rounds
            ),
        }
    return {"rounds": rounds, "ratios": ratios}


def report(summary: dict[str, Any]) -> None:
    """Print the table and the ratio."""
    rounds, start = summary["rounds"], summary["start_async"]
    print()
    print(
        "| side | calls/s (median) | client CPU µs/call | redis-server CPU µs/call "
        "(busy) | p50 / p99 ms |"
    )
    print("|---|---|---|---|---|")
    for kind, label in (
        ("bare", "bare EVALSHA (`return 1`), `execute_command`"),
        ("direct", "the same EVALSHA on the store's own path"),
        ("check", "`check_async`"),
    ):
        rate = statistics.median(r[kind]["rate"] for r in rounds)
        cpu = statistics.median(r[kind]["cpu_us_per_op"] for r in rounds)
        server = statistics.median(r[kind]["server_cpu_us_per_op"] for r in rounds)
        busy = statistics.median(r[kind]["server_busy"] for r in rounds)
        p50 = statistics.median(r[kind]["p50_ms"] for r in rounds)
        p99 = statistics.median(r[kind]["p99_ms"] for r in rounds)
        print(
            f"| {label} | {rate:.0f} | {cpu:.0f} | {server:.0f} ({busy:.0%}) | "
            f"{p50:.1f} / {p99:.1f} |"
        )
    print(
        f"| `start_async` via the emulator | {start['rate']:.0f} | "
        f"{start['cpu_us_per_op']:.0f} | {start['server_cpu_us_per_op']:.0f} "
        f"({start['server_busy']:.0%}) | {start['p50_ms']:.1f} / {start['p99_ms']:.1f} |"
    )
    guard = summary["guard"]
    print()
    print("| guard | call | calls/s (median) | client CPU µs/call | p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for kind in GUARD_SIDES:
        call, state = kind.split("_")
        rows = [r[kind] for r in guard["rounds"]]
        rate = statistics.median(r["rate"] for r in rows)
        cpu = statistics.median(r["cpu_us_per_op"] for r in rows)
        p50 = statistics.median(r["p50_ms"] for r in rows)
        p99 = statistics.median(r["p99_ms"] for r in rows)
        label = "`start_async`" if call == "start" else "`check_async` (approving)"
        print(f"| {state} | {label} | {rate:.0f} | {cpu:.0f} | {p50:.1f} / {p99:.1f} |")
    for call, ratio in guard["ratios"].items():
        print(
            f"guard on / off, {call}: throughput median {ratio['rate']:.2f}, "
            f"client CPU per call median {ratio['cpu']:.2f}"
        )
    print(
        f"\ncheck_async / bare EVALSHA: median {summary['median_ratio']:.2f} over "
        f"{len(rounds)} rounds (target >= {TARGET}); client CPU per call, bare / check: "
        f"median {summary['median_cpu_ratio']:.2f}; check_async / the same EVALSHA on the "
        f"store's own path: median {summary['median_direct_ratio']:.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run that checks the harness")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--total", type=int, default=20000, help="calls per side and round")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--guard-rounds", type=int, default=4, help="rounds of the guard's on/off sides"
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--child",
        choices=["bare", "direct", "check", "start", *GUARD_SIDES],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--emulator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return 0
    if args.emulator:
        run_emulator()
        return 0
    if args.smoke:
        args.rounds, args.total, args.guard_rounds = 2, 300, 1
    if not 0 < args.concurrency <= WARMUP:
        parser.error(f"--concurrency must be between 1 and {WARMUP}")
    summary = measure(args)
    report(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.smoke:
        return 0
    return 0 if summary["median_ratio"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
