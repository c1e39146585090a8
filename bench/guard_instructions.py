"""Count the CPU instructions the pumping guard adds to check_async and start_async.

    python bench/guard_instructions.py       # needs valgrind; a few minutes

A shared machine drowns a few µs of client CPU; instruction counts do not
depend on what else runs. Each call runs on a RedisStore whose command sender
packs the command as the store's own path does and answers at once, and whose
scripts may span slots (one node): everything of a call but the socket and
redis-py's reply parser. A start's SMS is a stub that returns at once.

``valgrind --tool=callgrind`` counts a child process that makes 1,000 warm-up
calls and then N more, for two N; the difference over the difference of N is
the instructions per call, for the guard off (``pumping_guard=None``) and on.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import weakref
from typing import Any

SECRET_KEY = "bench-secret-key-0123456789abcdef0123"
WARM = 1000
CALLS = {"check": (1000, 6000), "start": (1000, 4000)}
CONFIG = {
    "accessKeyId": "LTAIemulatorKeyId",
    "accessKeySecret": "emulator-access-key-secret",
    "signName": "AliyunSmsTest",
    "templates": [{"usageType": "Generic", "templateCode": "SMS_000001"}],
    "endpoint": "127.0.0.1:9",
    "protocol": "http",
}


async def _child(kind: str, *, guard: bool, calls: int) -> None:
    import redis.asyncio

    from aliyun_sms_connector import AliyunSmsConnector
    from aliyun_sms_connector.verify import RedisStore, VerificationPolicy, VerificationService
    from aliyun_sms_connector.verify._connections import pack
    from aliyun_sms_connector.verify._watchdog import Watchdog

    async def execute(*command: Any) -> Any:
        pack(command, None)
        if kind == "check":
            return 1000 * 4 + 3  # WRONG_CODE, 1,000 attempts left
        return 1 if int(command[2]) == 1 else [1]  # COMMIT: 1 key; the reservations: {1}

    async def send(*_: Any, **__: Any) -> None:
        return None

    store = RedisStore(redis.asyncio.Redis(), prefix="bench-guard:", store_timeout=5.0)
    store._policy_read = True  # noqa: SLF001 - no CONFIG GET: there is no server
    store._pump.joined = True  # noqa: SLF001 - one node: the guard joins the calls' scripts
    limits: dict[str, Any] = {"per_number_hourly": None, "per_number_daily": None}
    limits["per_ip_hourly"] = None
    if not guard:
        limits["pumping_guard"] = None
    policy = VerificationPolicy(max_attempts=10**9, **limits)
    service = VerificationService(
        AliyunSmsConnector(CONFIG), store, secret_key=SECRET_KEY, policy=policy
    )
    service._connector = type("Stub", (), {"send_message_async": staticmethod(send)})()  # noqa: SLF001
    loop = asyncio.get_running_loop()
    store._last_loop = (weakref.ref(loop), None, Watchdog(loop, 5.0), execute)  # noqa: SLF001
    for i in range(WARM + calls):
        number = f"{13800000000 + i}"
        if kind == "check":
            await service.check_async(number, "SignIn", "135791")
        else:
            await service.start_async(number, "SignIn")


def _instructions(kind: str, *, guard: bool, calls: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += [__file__, "--child", kind, "--guard", "on" if guard else "off"]
    command += ["--calls", str(calls)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if found is None:
        raise SystemExit(done.stderr[-2000:])
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", choices=sorted(CALLS), help=argparse.SUPPRESS)
    parser.add_argument("--guard", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, guard=args.guard == "on", calls=args.calls))
        return 0
    for kind, (few, many) in CALLS.items():
        per_call = {}
        for guard in (False, True):
            counts = [_instructions(kind, guard=guard, calls=n) for n in (few, many)]
            per_call[guard] = (counts[1] - counts[0]) / (many - few)
        added = per_call[True] / per_call[False] - 1
        print(
            f"{kind}_async: {per_call[False]:,.0f} instructions per call with the guard off, "
            f"{per_call[True]:,.0f} on (+{added:.1%})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
