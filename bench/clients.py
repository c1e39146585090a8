"""One benchmark client, run by bench/bench.py in a fresh process of its own.

    python bench/clients.py SIDE --host 127.0.0.1:PORT --protocol https --ca CA --sends N

SIDE is one of:

    raw             raw aiohttp: one session, one SSL context, ACS3 signed by hand
    connector       this library's send_message_async
    sdk             the SDK's own send_sms_with_options_async
    connector-sync  this library's send_message, one call after another
    sdk-sync        the SDK's send_sms_with_options, one call after another
    sdk-sync-after  the same, in a process where this library was used first

The client warms up, prints ``{"ready": ...}``, waits for a line on stdin (the
parent resets the server's counters meanwhile), runs the measured sends and
prints one JSON line: sends, errors, wall and CPU seconds of this process,
latency percentiles and gc collections, all over the measured sends only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from server import ACS3, FORM, KEY_ID, KEY_SECRET

os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")

SIGN = "AliyunSmsBench"
TEMPLATE = "SMS_000001"
ASYNC_SIDES = ("raw", "connector", "sdk")
SYNC_SIDES = ("sdk-sync", "connector-sync", "sdk-sync-after")

Send = Callable[[str, str], Any]


def number(index: int) -> str:
    """A distinct mainland mobile number per send."""
    return f"139{index % 10**8:08d}"


def code(index: int) -> str:
    """A distinct six-digit code per send."""
    return f"{index % 10**6:06d}"


class Recorder:
    """Wall time, process CPU, gc collections and latencies of the measured sends."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.first_error = ""

    def start(self) -> None:
        gc.collect()
        self.gc = [generation["collections"] for generation in gc.get_stats()]
        self.cpu = time.process_time()
        self.wall = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.gc = [
            generation["collections"] - before
            for generation, before in zip(gc.get_stats(), self.gc, strict=True)
        ]

    def error(self, error: BaseException) -> None:
        name = type(error).__name__
        self.errors[name] = self.errors.get(name, 0) + 1
        if not self.first_error:
            self.first_error = f"{name}: {str(error)[:300]}"

    def result(self, side: str) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        sends = len(ordered)

        def percentile(q: float) -> float:
            return ordered[min(sends - 1, int(q * sends))] * 1000 if sends else 0.0

        return {
            "side": side,
            "sends": sends,
            "errors": sum(self.errors.values()),
            "error_kinds": self.errors,
            "first_error": self.first_error,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "rate": sends / self.wall if self.wall else 0.0,
            "cpu_us_per_send": self.cpu / sends * 1e6 if sends else 0.0,
            "wall_ms_per_send": self.wall / sends * 1000 if sends else 0.0,
            "p50_ms": percentile(0.50),
            "p90_ms": percentile(0.90),
            "p99_ms": percentile(0.99),
            "max_ms": ordered[-1] * 1000 if sends else 0.0,
            "gc": self.gc,
            "gc0_per_1000": self.gc[0] / sends * 1000 if sends else 0.0,
        }


def wait_for_go(warmup: Recorder) -> None:
    """Tell the parent the warm-up is over; wait until it has reset the server."""
    ready: dict[str, object] = {"ready": True, "warmup_errors": sum(warmup.errors.values())}
    if warmup.first_error:
        ready["first_error"] = warmup.first_error
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    sys.stdin.readline()


async def concurrently(
    send: Callable[[str, str], Awaitable[None]], first: int, count: int, in_flight: int
) -> Recorder:
    """``count`` sends with ``in_flight`` outstanding at any time."""
    recorder = Recorder()
    jobs = iter(range(first, first + count))

    async def worker() -> None:
        for index in jobs:
            started = time.perf_counter()
            try:
                await send(number(index), code(index))
            except Exception as error:  # noqa: BLE001 - counted and reported
                recorder.error(error)
            else:
                recorder.latencies.append(time.perf_counter() - started)

    recorder.start()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    recorder.stop()
    return recorder


def sequentially(send: Callable[[str, str], None], first: int, count: int) -> Recorder:
    """``count`` sends, one after another."""
    recorder = Recorder()
    recorder.start()
    for index in range(first, first + count):
        started = time.perf_counter()
        try:
            send(number(index), code(index))
        except Exception as error:  # noqa: BLE001 - counted and reported
            recorder.error(error)
        else:
            recorder.latencies.append(time.perf_counter() - started)
    recorder.stop()
    return recorder


def connector_config(args: argparse.Namespace) -> dict[str, Any]:
    """A plain user config: the defaults, 64 connections, the bench's CA."""
    config: dict[str, Any] = {
        "accessKeyId": KEY_ID,
        "accessKeySecret": KEY_SECRET,
        "signName": SIGN,
        "templates": [{"usageType": "Generic", "templateCode": TEMPLATE, "type": 2}],
        "endpoint": args.host,
        "protocol": args.protocol,
        "maxConnections": args.in_flight,
    }
    if args.protocol == "https":
        config["caFile"] = args.ca
    return config


def sdk_client(args: argparse.Namespace, *, patient: bool = False) -> Any:
    """The SDK's client; ``patient`` raises its timeouts from 5 s / 10 s to 60 s.

    The SDK's async path spends tens of ms of CPU per call (a new session, SSL
    context and handshake each time), so 64 calls in flight wait seconds for
    the event loop: on a busy machine its 5 s connect timeout would turn the
    throughput figure into a count of timeouts.
    """
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi.models import Config

    timeouts = {"connect_timeout": 60_000, "read_timeout": 60_000} if patient else {}
    return Client(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=KEY_SECRET,
            endpoint=args.host,
            protocol=args.protocol,
            ca=args.ca if args.protocol == "https" else None,
            max_idle_conns=args.in_flight,
            **timeouts,
        )
    )


def sdk_request(phone: str, digits: str) -> Any:
    from alibabacloud_dysmsapi20170525.models import SendSmsRequest

    return SendSmsRequest(
        phone_numbers=phone,
        sign_name=SIGN,
        template_code=TEMPLATE,
        template_param=json.dumps({"code": digits}),
    )


def acs3_signer(host: str, action: str = "SendSms") -> Callable[[bytes], dict[str, str]]:
    """ACS3-HMAC-SHA256 by hand for a form body: what the raw baseline signs with.

    Everything that does not change per send is computed here, once; the
    signer returns every header to send but ``host``, which aiohttp adds.
    """
    secret = KEY_SECRET.encode()
    signed = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    credential = f"{ACS3} Credential={KEY_ID},SignedHeaders={signed},Signature="
    sha256 = hashlib.sha256

    def sign(body: bytes) -> dict[str, str]:
        digest = sha256(body).hexdigest()
        date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        nonce = uuid.uuid4().hex
        canonical = (
            f"POST\n/\n\nhost:{host}\nx-acs-action:{action}\nx-acs-content-sha256:{digest}\n"
            f"x-acs-date:{date}\nx-acs-signature-nonce:{nonce}\nx-acs-version:2017-05-25\n\n"
            f"{signed}\n{digest}"
        )
        to_sign = f"{ACS3}\n{sha256(canonical.encode()).hexdigest()}"
        return {
            "content-type": FORM,
            "x-acs-action": action,
            "x-acs-version": "2017-05-25",
            "x-acs-date": date,
            "x-acs-signature-nonce": nonce,
            "x-acs-content-sha256": digest,
            "authorization": credential + hmac.new(secret, to_sign.encode(), sha256).hexdigest(),
        }

    return sign


# -- async sides -------------------------------------------------------------


async def raw_side(args: argparse.Namespace) -> Recorder:
    """What an expert writes with aiohttp, and no more.

    One session and TCPConnector, one SSL context, the URL parsed once, ACS3
    signed by hand with the signed header names fixed, parameters in a form
    body as this library sends them, built per send, and the JSON answer
    parsed and checked.
    """
    import ssl

    import aiohttp
    from yarl import URL

    url = URL(f"https://{args.host}/")
    sign = acs3_signer(args.host)

    async def send(phone: str, digits: str) -> None:
        body = urlencode(
            {
                "PhoneNumbers": phone,
                "SignName": SIGN,
                "TemplateCode": TEMPLATE,
                "TemplateParam": json.dumps({"code": digits}),
            }
        ).encode()
        async with session.post(url, data=body, headers=sign(body)) as response:
            answer = json.loads(await response.read())
        if response.status != 200 or answer.get("Code") != "OK":
            raise RuntimeError(f"HTTP {response.status}: {answer}")

    context = ssl.create_default_context(cafile=args.ca)
    connector = aiohttp.TCPConnector(limit=args.in_flight, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        warmup = await concurrently(send, 90_000_000, args.warmup, args.in_flight)
        wait_for_go(warmup)
        return await concurrently(send, 0, args.sends, args.in_flight)


async def connector_side(args: argparse.Namespace) -> Recorder:
    """This library's public async API, as a user calls it."""
    from aliyun_sms_connector import AliyunSmsConnector

    async with AliyunSmsConnector(connector_config(args)) as connector:

        async def send(phone: str, digits: str) -> None:
            await connector.send_message_async(phone, "Generic", {"code": digits})

        warmup = await concurrently(send, 90_000_000, args.warmup, args.in_flight)
        wait_for_go(warmup)
        return await concurrently(send, 0, args.sends, args.in_flight)


async def sdk_side(args: argparse.Namespace) -> Recorder:
    """The SDK's own async path, with one client and a request built per send."""
    from darabonba.runtime import RuntimeOptions

    client = sdk_client(args, patient=True)

    async def send(phone: str, digits: str) -> None:
        response = await client.send_sms_with_options_async(
            sdk_request(phone, digits), RuntimeOptions()
        )
        if response.body.code != "OK":
            raise RuntimeError(response.body.code)

    warmup = await concurrently(send, 90_000_000, args.warmup, args.in_flight)
    wait_for_go(warmup)
    return await concurrently(send, 0, args.sends, args.in_flight)


# -- sync sides --------------------------------------------------------------


def connector_sync_side(args: argparse.Namespace) -> Recorder:
    """This library's public sync API, one call after another."""
    from aliyun_sms_connector import AliyunSmsConnector

    with AliyunSmsConnector(connector_config(args)) as connector:

        def send(phone: str, digits: str) -> None:
            connector.send_message(phone, "Generic", {"code": digits})

        warmup = sequentially(send, 90_000_000, args.warmup)
        wait_for_go(warmup)
        return sequentially(send, 0, args.sends)


def use_connector_first(args: argparse.Namespace) -> Recorder:
    """Build this library's connector and send with it, sync and async; count errors."""
    from aliyun_sms_connector import AliyunSmsConnector

    config = connector_config(args)
    with AliyunSmsConnector(config) as connector:

        def send(phone: str, digits: str) -> None:
            connector.send_message(phone, "Generic", {"code": digits})

        recorder = sequentially(send, 80_000_000, 20)

    async def use_async() -> None:
        async with AliyunSmsConnector(config) as connector:

            async def send(phone: str, digits: str) -> None:
                await connector.send_message_async(phone, "Generic", {"code": digits})

            used = await concurrently(send, 80_000_100, 8, 8)
        for name, count in used.errors.items():
            recorder.errors[name] = recorder.errors.get(name, 0) + count

    asyncio.run(use_async())
    return recorder


def sdk_sync_side(args: argparse.Namespace, *, after_connector: bool = False) -> Recorder:
    """A raw SDK call per send: one client, a request and RuntimeOptions per call.

    With ``after_connector``, this library is built and used first (sync and
    async) in the same process: the SDK must behave the same for its users.
    """
    from darabonba.runtime import RuntimeOptions

    before = Recorder()
    if after_connector:
        before = use_connector_first(args)
    client = sdk_client(args)

    def send(phone: str, digits: str) -> None:
        response = client.send_sms_with_options(sdk_request(phone, digits), RuntimeOptions())
        if response.body.code != "OK":
            raise RuntimeError(response.body.code)

    warmup = sequentially(send, 90_000_000, args.warmup)
    for name, count in before.errors.items():
        warmup.errors[name] = warmup.errors.get(name, 0) + count
    warmup.first_error = before.first_error or warmup.first_error
    wait_for_go(warmup)
    return sequentially(send, 0, args.sends)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=ASYNC_SIDES + SYNC_SIDES)
    parser.add_argument("--host", required=True, help="127.0.0.1:PORT")
    parser.add_argument("--protocol", choices=("http", "https"), required=True)
    parser.add_argument("--ca", help="the server's CA file (https)")
    parser.add_argument("--sends", type=int, required=True, help="measured sends")
    parser.add_argument("--warmup", type=int, default=128, help="sends before measuring")
    parser.add_argument("--in-flight", type=int, default=64, help="async concurrency")
    args = parser.parse_args(argv)
    if args.side == "raw":
        recorder = asyncio.run(raw_side(args))
    elif args.side == "connector":
        recorder = asyncio.run(connector_side(args))
    elif args.side == "sdk":
        recorder = asyncio.run(sdk_side(args))
    elif args.side == "connector-sync":
        recorder = connector_sync_side(args)
    else:
        recorder = sdk_sync_side(args, after_connector=args.side == "sdk-sync-after")
    sys.stdout.write(json.dumps(recorder.result(args.side)) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
