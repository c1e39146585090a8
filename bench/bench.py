"""Benchmark this library against raw aiohttp and the SDK, each in a fresh process.

    python bench/bench.py               # full run: a few minutes, under 6 on a busy machine
    python bench/bench.py --smoke       # seconds: every client and the signature check
    python bench/bench.py --json out.json

One lean server process (bench/server.py) verifies every signature and answers
a fixed JSON: over HTTPS after a fixed delay (20 ms) for the async runs, over
plain HTTP at once for the sequential sync runs. Every client runs in a fresh
process of its own (bench/clients.py), and the clients take turns in rotated
order (ABC, BCA, CAB, ...) over several rounds. Each ratio is computed within
a round, and the table shows the median of the per-round ratios. Client CPU per
send is the headline: it does not depend on the server's speed. The server
reports its own CPU per request, so that a reader can check it was not the
bottleneck.

Exit status: 0 every target met; 1 a target missed; 2 the harness is broken (a
client error or crash, or a request the server rejected); 3 inconclusive (the
server used more than 70% of a core during a measured async run).
bench/README.md explains every column.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ASYNC_SIDES = ("raw", "connector", "sdk")
SYNC_SIDES = ("sdk-sync", "connector-sync", "sdk-sync-after")
SERVER_CORE_LIMIT = 0.70
# Others' processes may use this much of a core during a measured run before
# the run is called not quiet.
OTHERS_CORE_LIMIT = 0.15
# What a user writes: the names, not just the package, so that a lazy
# package __init__ cannot make the figure look better than a first use is.
IMPORTS = {
    "connector": "from aliyun_sms_connector import AliyunSmsConnector, AliyunSmsConfig",
    "sdk": "import alibabacloud_dysmsapi20170525.client",
}
CLIENT_TIMEOUT = 300.0
PACKAGES = (
    "aliyun-sms-connector",
    "alibabacloud-dysmsapi20170525",
    "alibabacloud-tea-openapi",
    "darabonba-core",
    "aiohttp",
)
ENV = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}


class HarnessError(RuntimeError):
    """A process of the harness failed or went silent."""


def read_json(process: subprocess.Popen[str], errors: IO[str] | None = None) -> dict[str, Any]:
    """The next JSON line of a child, or HarnessError with what it wrote to stderr."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait()
        detail = ""
        if errors is not None:
            errors.seek(0)
            detail = errors.read()[-3000:]
        raise HarnessError(f"{process.args!r} exited with {process.returncode}:\n{detail}")
    return json.loads(line)  # type: ignore[no-any-return]


def write_line(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


class Server:
    """bench/server.py in a child process, driven over its stdin."""

    def __init__(self, delay: float, secret: str | None = None) -> None:
        command = [sys.executable, str(HERE / "server.py"), "--delay", str(delay)]
        self.process = subprocess.Popen(
            command + (["--secret", secret] if secret else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        info = read_json(self.process)
        self.https = f"127.0.0.1:{info['https']}"
        self.http = f"127.0.0.1:{info['http']}"
        self.ca_file: str = info["ca"]

    def ask(self, command: str) -> dict[str, Any]:
        write_line(self.process, command)
        return read_json(self.process)

    def close(self) -> None:
        if self.process.poll() is None:
            write_line(self.process, "quit")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@dataclass
class Settings:
    """How much to measure."""

    rounds: int
    sends: int
    sdk_sends: int
    sync_calls: int
    import_repeats: int
    warmup: int
    sdk_warmup: int
    sync_warmup: int
    in_flight: int
    delay: float


def run_client(
    side: str, server: Server, settings: Settings, env: dict[str, str]
) -> dict[str, Any]:
    """One client in a fresh process: warm up, reset the server, measure, collect both."""
    sync = side in SYNC_SIDES
    sends = settings.sync_calls if sync else settings.sdk_sends if side == "sdk" else settings.sends
    # The SDK's async path builds a new session per send, so it has no pool
    # to warm: a few sends load its modules.
    warmup = (
        settings.sync_warmup if sync else settings.sdk_warmup if side == "sdk" else settings.warmup
    )
    command = [
        sys.executable,
        str(HERE / "clients.py"),
        side,
        "--host",
        server.http if sync else server.https,
        "--protocol",
        "http" if sync else "https",
        "--ca",
        server.ca_file,
        "--sends",
        str(sends),
        "--warmup",
        str(warmup),
        "--in-flight",
        str(settings.in_flight),
    ]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
        watchdog = threading.Timer(CLIENT_TIMEOUT, process.kill)
        watchdog.start()
        try:
            ready = read_json(process, errors)
            server.ask("reset")
            busy, window = machine_busy_seconds(), time.perf_counter()
            write_line(process, "go")
            result = read_json(process, errors)
            result["server"] = server.ask("stats")
            busy, window = machine_busy_seconds() - busy, time.perf_counter() - window
            process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
    result["warmup_errors"] = ready.get("warmup_errors", 0)
    if ready.get("first_error") and not result["first_error"]:
        result["first_error"] = ready["first_error"]
    result["server_core"] = result["server"]["cpu_s"] / result["wall_s"]
    # Whatever else ran on the machine meanwhile: the busy CPU time of all
    # processes minus the client's and the server's own (None off Linux).
    others = busy - result["cpu_s"] - result["server"]["cpu_s"]
    result["others_core"] = None if math.isnan(others) else max(0.0, others / window)
    result["client_core"] = result["cpu_s"] / result["wall_s"]
    return result


def machine_busy_seconds() -> float:
    """CPU seconds spent by every process on the machine so far (Linux), else NaN."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    # user, nice, system, irq, softirq: not idle, iowait, steal, or guest
    # (which user already counts).
    user, nice, system, _, _, irq, softirq = (int(field) for field in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def import_seconds(statement: str, env: dict[str, str]) -> float:
    """How long ``statement`` takes in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(done.stdout)


def rotated(sides: tuple[str, ...], round_number: int) -> tuple[str, ...]:
    """ABC, BCA, CAB, ABC, ...: no side always runs first or right after another."""
    shift = round_number % len(sides)
    return sides[shift:] + sides[:shift]


# -- the tables --------------------------------------------------------------

# (key, label, kind, target). kind "target" rows decide the verdict.
ROWS = (
    ("cpu", "client CPU per async send / raw aiohttp", "target", "<= 1.35"),
    ("throughput", "async throughput / raw aiohttp", "target", ">= 0.85"),
    ("p99", "async p99 / raw aiohttp p99", "target", "<= 1.5"),
    ("sdk", "async throughput / the SDK's own async path", "target", ">= 50"),
    ("sync", "sync per call / raw SDK call (HTTP, 0 ms)", "target", "<= 1.05"),
    ("import", "import / the SDK client's import", "target", "<= 0.5"),
    ("sdk_after", "SDK call CPU, after this library was used / before", "target", "0.9-1.1"),
    ("sync_cpu", "sync client CPU per call / raw SDK call", "info", ""),
    ("gc0", "gc gen0 per 1,000 async sends / raw aiohttp", "info", ""),
)


def meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written as '>= x', '<= x' or 'a-b'."""
    if target.startswith(">="):
        return value >= float(target[2:])
    if target.startswith("<="):
        return value <= float(target[2:])
    low, high = target.split("-")
    return float(low) <= value <= float(high)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


def round_ratios(async_runs: dict[str, Any], sync_runs: dict[str, Any]) -> dict[str, float]:
    """The ratios of one round, each between two runs of that round."""
    ours, raw, sdk = async_runs["connector"], async_runs["raw"], async_runs["sdk"]
    sdk_sync, ours_sync = sync_runs["sdk-sync"], sync_runs["connector-sync"]
    sdk_after = sync_runs["sdk-sync-after"]
    return {
        "cpu": ratio(ours["cpu_us_per_send"], raw["cpu_us_per_send"]),
        "throughput": ratio(ours["rate"], raw["rate"]),
        "p99": ratio(ours["p99_ms"], raw["p99_ms"]),
        "sdk": ratio(ours["rate"], sdk["rate"]),
        "sync": ratio(ours_sync["wall_ms_per_send"], sdk_sync["wall_ms_per_send"]),
        # CPU, not wall time: the SDK's own cost is the question, and the
        # server's share of each call would only dilute it.
        "sdk_after": ratio(sdk_after["cpu_us_per_send"], sdk_sync["cpu_us_per_send"]),
        "sync_cpu": ratio(ours_sync["cpu_us_per_send"], sdk_sync["cpu_us_per_send"]),
        "gc0": ratio(ours["gc0_per_1000"], raw["gc0_per_1000"]),
    }


NAMES = {
    "raw": "raw aiohttp",
    "connector": "send_message_async",
    "sdk": "SDK send_sms_with_options_async",
    "sdk-sync": "SDK send_sms_with_options",
    "connector-sync": "send_message",
    "sdk-sync-after": "SDK call, library used first",
}


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def print_runs(kind: str, runs: dict[str, Any]) -> None:
    """One round's runs of one kind, in the order they ran."""
    first, cpu = ("sends/s", "cpu µs/send") if kind == "async" else ("ms/call", "cpu µs/call")
    print(
        f"  {kind + ' side':<32} {first:>8} {'p50 ms':>7} {'p99 ms':>7} {cpu:>12}"
        f" {'gc0/1k':>7} {'srv µs/req':>11} {'srv core':>9} {'others':>7} {'errors':>6}"
    )
    for side, run in runs.items():
        speed = f"{run['rate']:>8.0f}" if kind == "async" else f"{run['wall_ms_per_send']:>8.3f}"
        flag = "!" if run["server_core"] > SERVER_CORE_LIMIT else " "
        print(
            f"  {NAMES[side]:<32} {speed} {run['p50_ms']:>7.2f} {run['p99_ms']:>7.2f}"
            f" {run['cpu_us_per_send']:>12.0f} {run['gc0_per_1000']:>7.1f}"
            f" {run['server']['cpu_us_per_request'] or 0:>11.0f}"
            f" {percent(run['server_core']):>8}{flag} {percent(run.get('others_core')):>7}"
            f" {run['errors'] + run['warmup_errors'] + run['server']['failed']:>6}"
        )


def median_of(rounds: list[dict[str, Any]], kind: str, side: str, key: str) -> float:
    return float(statistics.median(r[kind][side][key] for r in rounds))


def print_medians(rounds: list[dict[str, Any]]) -> None:
    print(f"\nMedians over {len(rounds)} rounds")
    print(
        f"  {'side':<32} {'sends/s':>8} {'ms/send':>8} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'cpu µs/send':>12} {'gc0/1k':>7} {'srv µs/req':>11} {'srv core':>9}"
    )
    for kind, sides in (("async", ASYNC_SIDES), ("sync", SYNC_SIDES)):
        for side in sides:

            def med(key: str, side: str = side, kind: str = kind) -> float:
                return median_of(rounds, kind, side, key)

            server_us = statistics.median(
                r[kind][side]["server"]["cpu_us_per_request"] or 0 for r in rounds
            )
            print(
                f"  {NAMES[side]:<32} {med('rate'):>8.0f} {med('wall_ms_per_send'):>8.3f}"
                f" {med('p50_ms'):>7.1f} {med('p99_ms'):>7.1f} {med('cpu_us_per_send'):>12.0f}"
                f" {med('gc0_per_1000'):>7.1f} {server_us:>11.0f} {med('server_core'):>8.0%}"
            )


# -- the run -----------------------------------------------------------------


def measure(
    settings: Settings, env: dict[str, str], server_secret: str | None = None
) -> dict[str, Any]:
    """Every round of every side, then the imports; print as it goes."""
    server = Server(settings.delay, server_secret)
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(settings.rounds):
            async_order, sync_order = rotated(ASYNC_SIDES, number), rotated(SYNC_SIDES, number)
            print(f"\nRound {number + 1}/{settings.rounds}", flush=True)
            async_runs = {side: run_client(side, server, settings, env) for side in async_order}
            print_runs("async", async_runs)
            sync_runs = {side: run_client(side, server, settings, env) for side in sync_order}
            print_runs("sync", sync_runs)
            ratios = round_ratios(async_runs, sync_runs)
            print(
                "  ratios: " + ", ".join(f"{key} {value:.3f}" for key, value in ratios.items()),
                flush=True,
            )
            rounds.append({"async": async_runs, "sync": sync_runs, "ratios": ratios})
    finally:
        server.close()
    imports: dict[str, list[float]] = {"connector": [], "sdk": []}
    for repeat in range(settings.import_repeats):
        pair = [
            ("connector", IMPORTS["connector"]),
            ("sdk", IMPORTS["sdk"]),
        ]
        for name, module in pair if repeat % 2 == 0 else reversed(pair):
            imports[name].append(import_seconds(module, env))
    return {"rounds": rounds, "imports": imports}


def problems(rounds: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """What breaks the run (errors, rejected signatures), and bottleneck warnings."""
    broken, warnings = [], []
    for number, each in enumerate(rounds, 1):
        for kind in ("async", "sync"):
            for side, run in each[kind].items():
                where = f"round {number}, {NAMES[side]}"
                bad = run["errors"] + run["warmup_errors"]
                if bad:
                    broken.append(f"{where}: {bad} client errors, first: {run['first_error']}")
                if run["server"]["failed"]:
                    broken.append(f"{where}: the server rejected {run['server']['failures']}")
                if run["sends"] == 0:
                    broken.append(f"{where}: no send completed")
                elif run["server"]["requests"] < run["sends"]:
                    broken.append(f"{where}: the server saw fewer requests than the client sent")
                if run["server_core"] > SERVER_CORE_LIMIT:
                    warnings.append(
                        f"{where}: the server used {run['server_core']:.0%} of a core"
                        " (bottleneck warning)"
                    )
    others = [
        run["others_core"]
        for each in rounds
        for kind in ("async", "sync")
        for run in each[kind].values()
        if run.get("others_core") is not None
    ]
    noisy = [value for value in others if value > OTHERS_CORE_LIMIT]
    if noisy:
        warnings.append(
            f"{len(noisy)} of {len(others)} measured runs were not quiet: other processes"
            f" used up to {max(noisy):.0%} of a core (limit {OTHERS_CORE_LIMIT:.0%});"
            " do not publish these figures"
        )
    return broken, warnings


def summarize(data: dict[str, Any], *, smoke: bool) -> dict[str, Any]:
    """Median ratios, the target rows, warnings and the verdict."""
    rounds, imports = data["rounds"], data["imports"]
    per_round = {key: [r["ratios"][key] for r in rounds] for key, *_ in ROWS if key != "import"}
    import_ours, import_sdk = (statistics.median(imports[name]) for name in ("connector", "sdk"))
    medians = {key: statistics.median(values) for key, values in per_round.items()}
    medians["import"] = import_ours / import_sdk
    per_round["import"] = [ours / sdk for ours, sdk in zip(*imports.values(), strict=True)]
    rows = [
        {
            "key": key,
            "measure": label,
            "kind": kind,
            "target": target,
            "median": medians[key],
            "rounds": per_round[key],
            "passed": meets(medians[key], target) if kind == "target" else None,
        }
        for key, label, kind, target in ROWS
    ]
    broken, warnings = problems(rounds)
    bottleneck = any(
        each["async"][side]["server_core"] > SERVER_CORE_LIMIT
        for each in rounds
        for side in ("raw", "connector")
    )
    if broken:
        verdict = "broken"
    elif smoke:
        verdict = "smoke"
    elif bottleneck:
        verdict = "inconclusive"
    elif all(row["passed"] for row in rows if row["kind"] == "target"):
        verdict = "pass"
    else:
        verdict = "fail"
    return {
        "rows": rows,
        "imports_ms": {"connector": import_ours * 1000, "sdk": import_sdk * 1000},
        "broken": broken,
        "warnings": warnings,
        "verdict": verdict,
    }


def print_summary(summary: dict[str, Any], *, smoke: bool) -> None:
    imports = summary["imports_ms"]
    print(
        f"\nImport (median, fresh processes): this library {imports['connector']:.0f} ms,"
        f" SDK client {imports['sdk']:.0f} ms"
    )
    print("\nTargets (issue 10): median of the per-round ratios, and their range")
    print(f"  {'measure':<52} {'median':>8} {'rounds':>15}  {'target':<9} result")
    for row in summary["rows"]:
        low, high = min(row["rounds"]), max(row["rounds"])
        result = "" if row["passed"] is None else "pass" if row["passed"] else "FAIL"
        if smoke and result:
            result = "not checked (smoke)"
        print(
            f"  {row['measure']:<52} {row['median']:>8.3f} {low:>7.3f}-{high:<7.3f}"
            f"  {row['target']:<9} {result}"
        )
    for warning in summary["warnings"]:
        print(f"WARNING {warning}")
    for problem in summary["broken"]:
        print(f"BROKEN {problem}")
    print(f"\nVerdict: {summary['verdict']}")


def provenance(src: Path | None) -> dict[str, str]:
    """The code measured: the git commit of this tree and the packages' versions."""
    from importlib import metadata

    found = {}
    git = subprocess.run(
        ["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    found["commit"] = git.stdout.strip() or "unknown"
    found["src"] = str(src.resolve()) if src else "installed"
    installed = {dist.metadata["Name"].lower() for dist in metadata.distributions()}
    for name in PACKAGES:
        found[name] = metadata.version(name) if name in installed else "absent"
    found["python"] = sys.version.split()[0]
    return found


def settings_for(args: argparse.Namespace) -> Settings:
    if args.smoke:
        return Settings(
            rounds=args.rounds or 1,
            sends=args.sends or 96,
            sdk_sends=args.sdk_sends or 8,
            sync_calls=args.sync_calls or 20,
            import_repeats=args.import_repeats or 1,
            warmup=16,
            sdk_warmup=2,
            sync_warmup=4,
            in_flight=args.in_flight,
            delay=args.delay,
        )
    return Settings(
        rounds=args.rounds or 6,
        sends=args.sends or 6000,
        sdk_sends=args.sdk_sends or 150,
        sync_calls=args.sync_calls or 2000,
        import_repeats=args.import_repeats or 9,
        warmup=2 * args.in_flight,
        sdk_warmup=8,
        sync_warmup=50,
        in_flight=args.in_flight,
        delay=args.delay,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds; targets not checked")
    parser.add_argument("--rounds", type=int, help="rotated rounds (default 6)")
    parser.add_argument("--sends", type=int, help="measured sends per async run (6000)")
    parser.add_argument("--sdk-sends", type=int, help="sends on the SDK's async path (150)")
    parser.add_argument("--sync-calls", type=int, help="calls per sync run (2000)")
    parser.add_argument("--import-repeats", type=int, help="imports per module (9)")
    parser.add_argument("--in-flight", type=int, default=64, help="async concurrency (64)")
    parser.add_argument("--delay", type=float, default=0.020, help="HTTPS answer delay (s)")
    parser.add_argument("--src", type=Path, help="import aliyun_sms_connector from this src/")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    # Tests give the server another secret: every signature must then fail the run.
    parser.add_argument("--server-secret", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = settings_for(args)
    if not args.smoke and settings.rounds < len(ASYNC_SIDES):
        # Fewer rounds than sides: some side would never run first, or last.
        parser.error(f"a full run needs at least {len(ASYNC_SIDES)} rounds")
    env = dict(ENV)
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(args.src.resolve()), env.get("PYTHONPATH")])
        )
    code = provenance(args.src)
    print(
        f"{settings.rounds} rounds; async: {settings.sends} sends ({settings.sdk_sends} on the"
        f" SDK's path), {settings.in_flight} in flight, HTTPS, {settings.delay * 1000:.0f} ms"
        f" server delay; sync: {settings.sync_calls} calls, HTTP, no delay; {os.cpu_count()} CPUs"
    )
    print("code: " + ", ".join(f"{name} {value}" for name, value in code.items()))
    try:
        data = measure(settings, env, args.server_secret)
    except HarnessError as error:
        print(f"BROKEN {error}\n\nVerdict: broken")
        if args.json:
            args.json.write_text(json.dumps({"verdict": "broken", "broken": [str(error)]}))
        return 2
    print_medians(data["rounds"])
    summary = summarize(data, smoke=args.smoke)
    print_summary(summary, smoke=args.smoke)
    if args.json:
        args.json.write_text(
            json.dumps({"settings": settings.__dict__, "code": code, **data, **summary}, indent=1)
        )
    return {"pass": 0, "smoke": 0, "fail": 1, "broken": 2, "inconclusive": 3}[summary["verdict"]]


if __name__ == "__main__":
    raise SystemExit(main())
