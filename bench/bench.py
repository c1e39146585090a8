"""Side-by-side benchmarks against the local emulator, in one invocation.

    python bench/bench.py            # full run, prints the table and checks the targets
    python bench/bench.py --smoke    # tiny N: checks that the harness works, not the targets

The emulator runs in its own process (``aliyun-sms emulator``), over HTTPS with
a throwaway CA and a simulated round trip (``--delay``, default 20 ms), so
that client and server each have a core. Every row is a ratio measured in the
same run, so the machine's speed cancels out.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")

KEY_ID = "LTAIemulatorKeyId"
KEY_SECRET = "emulator-access-key-secret"
SIGN = "AliyunSmsTest"
# The emulator's notification template: no per-number flow control.
TEMPLATE = "SMS_000003"
PARAMS = '{"name":"bench","event":"ok"}'
IN_FLIGHT = 64


@dataclass
class Run:
    """One measured path."""

    name: str
    sends: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.sends / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class EmulatorProcess:
    """``aliyun-sms emulator`` in a child process."""

    def __init__(self, *, tls: bool, delay: float) -> None:
        command = [sys.executable, "-m", "aliyun_sms_connector", "emulator", "--port", "0"]
        command += ["--quiet", "--latency", str(delay)] + (["--tls"] if tls else [])
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        banner = ""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            banner += line
            if line.startswith("Press Ctrl-C"):
                break
        self.endpoint = re.search(r"://(127\.0\.0\.1:\d+)", banner).group(1)  # type: ignore[union-attr]
        found = re.search(r"CA file: (\S+)", banner)
        self.ca_file = found.group(1) if found else None
        self.protocol = "https" if tls else "http"

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def numbers(count: int, offset: int = 0) -> list[str]:
    return [f"139{(offset + i) % 10**8:08d}" for i in range(count)]


def connector_config(emulator: EmulatorProcess) -> dict[str, Any]:
    config: dict[str, Any] = {
        "accessKeyId": KEY_ID,
        "accessKeySecret": KEY_SECRET,
        "signName": SIGN,
        "templates": [{"usageType": "Generic", "templateCode": TEMPLATE, "type": 0}],
        "endpoint": emulator.endpoint,
        "protocol": emulator.protocol,
        "maxConnections": IN_FLIGHT,
    }
    if emulator.ca_file:
        config["caFile"] = emulator.ca_file
    return config


def sdk_client(emulator: EmulatorProcess) -> Any:
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=KEY_SECRET,
            endpoint=emulator.endpoint,
            protocol=emulator.protocol,
            ca=emulator.ca_file,
            max_idle_conns=IN_FLIGHT,
        )
    )


def sdk_request(number: str) -> Any:
    from alibabacloud_dysmsapi20170525.models import SendSmsRequest

    return SendSmsRequest(
        phone_numbers=number, sign_name=SIGN, template_code=TEMPLATE, template_param=PARAMS
    )


async def run_concurrently(name: str, targets: list[str], send: Any) -> Run:
    """Send to every target with IN_FLIGHT sends outstanding at once."""
    queue = list(reversed(targets))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            number = queue.pop()
            started = time.perf_counter()
            await send(number)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return Run(name, len(targets), time.perf_counter() - started, latencies)


async def ours_async(emulator: EmulatorProcess, count: int) -> Run:
    from aliyun_sms_connector import AliyunSmsConnector

    async with AliyunSmsConnector(connector_config(emulator)) as connector:

        async def send(number: str) -> None:
            await connector.send_message_async(number, "Generic", {"name": "bench", "event": "ok"})

        await run_concurrently("warm-up", numbers(IN_FLIGHT, 9_000_000), send)
        return await run_concurrently("this library, async", numbers(count), send)


async def sdk_async(emulator: EmulatorProcess, count: int, name: str) -> Run:
    from darabonba.runtime import RuntimeOptions

    client = sdk_client(emulator)

    async def send(number: str) -> None:
        response = await client.send_sms_with_options_async(sdk_request(number), RuntimeOptions())
        assert response.body.code == "OK", response.body.code

    return await run_concurrently(name, numbers(count, 5_000_000), send)


def acs3_headers(endpoint: str, query: dict[str, str]) -> dict[str, str]:
    """ACS3-HMAC-SHA256 by hand, for the raw-aiohttp baseline only."""
    headers = {
        "host": endpoint,
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(b"").hexdigest(),
        "accept": "application/json",
        "user-agent": "bench",
    }
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n]}\n" for n in names)
    canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query.items()))
    signed = ";".join(names)
    canonical = (
        f"POST\n/\n{canonical_query}\n{canonical_headers}\n{signed}\n"
        f"{headers['x-acs-content-sha256']}"
    )
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(KEY_SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders={signed},Signature={signature}"
    )
    return headers


async def raw_aiohttp(emulator: EmulatorProcess, count: int) -> Run:
    import ssl

    import aiohttp

    context = ssl.create_default_context(cafile=emulator.ca_file)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(number: str) -> None:
            query = {
                "PhoneNumbers": number,
                "SignName": SIGN,
                "TemplateCode": TEMPLATE,
                "TemplateParam": PARAMS,
            }
            url = f"https://{emulator.endpoint}/?{urlencode(query)}"
            async with session.post(url, headers=acs3_headers(emulator.endpoint, query)) as answer:
                body = await answer.json(content_type=None)
                assert body["Code"] == "OK", body

        await run_concurrently("warm-up", numbers(IN_FLIGHT, 8_000_000), send)
        return await run_concurrently("raw aiohttp, one session", numbers(count, 1_000_000), send)


def sync_per_call(emulator: EmulatorProcess, calls: int, rounds: int) -> tuple[float, float]:
    """Median per-call seconds: the raw SDK and this library, interleaved rounds."""
    from darabonba.runtime import RuntimeOptions

    from aliyun_sms_connector import AliyunSmsConnector

    client = sdk_client(emulator)
    connector = AliyunSmsConnector(connector_config(emulator))
    payload = {"name": "bench", "event": "ok"}
    targets = numbers(calls, 2_000_000)

    def raw() -> float:
        started = time.perf_counter()
        for number in targets:
            client.send_sms_with_options(sdk_request(number), RuntimeOptions())
        return (time.perf_counter() - started) / calls

    def ours() -> float:
        started = time.perf_counter()
        for number in targets:
            connector.send_message(number, "Generic", payload)
        return (time.perf_counter() - started) / calls

    raw(), ours()  # warm both pools
    raw_times: list[float] = []
    our_times: list[float] = []
    # ABBA order: the emulator's state grows with every call, so neither path
    # may always run second.
    for round_number in range(rounds):
        pair = [(raw, raw_times), (ours, our_times)]
        for measure, times in pair if round_number % 2 == 0 else reversed(pair):
            times.append(measure())
    connector.close()
    return statistics.median(raw_times), statistics.median(our_times)


def import_seconds(module: str, repeats: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeats)
    ]
    return statistics.median(samples)


def meets(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written as '>= x', '<= x' or 'a-b'."""
    if target.startswith(">="):
        return value >= float(target[2:])
    if target.startswith("<="):
        return value <= float(target[2:])
    low, high = target.split("-")
    return float(low) <= value <= float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny N; do not check targets")
    parser.add_argument("--delay", type=float, default=0.020, help="simulated round trip (s)")
    parser.add_argument("--sends", type=int, default=4000, help="async sends per path")
    parser.add_argument("--sdk-sends", type=int, default=300, help="sends on the SDK's slow path")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sends, args.sdk_sends = 2 * IN_FLIGHT, 16
    sync_calls, sync_rounds, import_repeats = (20, 2, 2) if args.smoke else (400, 10, 9)

    https = EmulatorProcess(tls=True, delay=args.delay)
    http = EmulatorProcess(tls=False, delay=0.0)
    try:
        # The SDK's own async path first, before this library has built anything.
        sdk_before = asyncio.run(sdk_async(https, args.sdk_sends, "SDK async, before"))
        ours = asyncio.run(ours_async(https, args.sends))
        sdk_after = asyncio.run(sdk_async(https, args.sdk_sends, "SDK async, after"))
        raw = asyncio.run(raw_aiohttp(https, args.sends))
        raw_call, our_call = sync_per_call(http, sync_calls, sync_rounds)
    finally:
        https.close()
        http.close()
    import_ours = import_seconds("aliyun_sms_connector", import_repeats)
    import_sdk = import_seconds("alibabacloud_dysmsapi20170525.client", import_repeats)

    bound = IN_FLIGHT / args.delay
    sdk_rate = statistics.mean([sdk_before.rate, sdk_after.rate])
    p99_ratio = ours.percentile(0.99) / raw.percentile(0.99)
    sdk_drift = sdk_after.rate / sdk_before.rate
    rows = [
        ("async throughput / round-trip bound", ours.rate / bound, ">= 0.80"),
        ("async throughput / SDK async", ours.rate / sdk_rate, ">= 50"),
        ("async throughput / raw aiohttp", ours.rate / raw.rate, ">= 0.90"),
        ("async p99 / raw aiohttp p99", p99_ratio, "<= 2"),
        ("SDK async after / before this library", sdk_drift, "0.85-1.15"),
        ("sync per call / raw SDK call (0 ms, HTTP)", our_call / raw_call, "<= 1.10"),
        ("import time / SDK client import", import_ours / import_sdk, "<= 0.5"),
    ]
    results = [(label, value, target, meets(value, target)) for label, value, target in rows]

    print(f"delay {args.delay * 1000:.0f} ms, {IN_FLIGHT} in flight, bound {bound:.0f} sends/s")
    print(f"{'path':<34} {'sends/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for run in (ours, raw, sdk_before, sdk_after):
        p50, p99 = run.percentile(0.5), run.percentile(0.99)
        print(f"{run.name:<34} {run.rate:>9.0f} {p50:>8.1f} {p99:>8.1f}")
    print(f"sync per call: raw SDK {raw_call * 1000:.3f} ms, this library {our_call * 1000:.3f} ms")
    print(
        f"import: this library {import_ours * 1000:.0f} ms, SDK client {import_sdk * 1000:.0f} ms"
    )
    print()
    print(f"{'ratio':<44} {'measured':>9}  {'target':<10} result")
    for label, value, target, ok in results:
        print(f"{label:<44} {value:>9.3f}  {target:<10} {'pass' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "delay": args.delay,
                    "runs": {
                        r.name: {
                            "rate": r.rate,
                            "p50": r.percentile(0.5),
                            "p99": r.percentile(0.99),
                        }
                        for r in (ours, raw, sdk_before, sdk_after)
                    },
                    "ratios": {label: value for label, value, _, _ in results},
                    "passed": {label: ok for label, _, _, ok in results},
                },
                indent=2,
            )
        )
    if args.smoke:
        return 0
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
