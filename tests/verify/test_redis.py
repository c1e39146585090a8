"""RedisStore against a real redis-server: round trips, keys, faults, processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from aliyun_sms_connector import AliyunSmsError, ConfigError, ServiceUnavailableError
from aliyun_sms_connector.verify import (
    CheckStatus,
    RedisStore,
    VerificationPolicy,
    VerificationService,
)
from aliyun_sms_connector.verify._guard import pump_keys
from aliyun_sms_connector.verify._scripts import PUMP_START, refusal
from aliyun_sms_connector.verify._watchdog import Watchdog as _Watchdog

from .chaos_proxy import ChaosProxy
from .conftest import NUMBER, OTHER_NUMBER, SECRET_KEY

IP = "203.0.113.77"


class Monitor:
    """The commands a redis-server receives, as MONITOR reports them.

    Commands run inside a script show as ``[0 lua]``; the others are what
    clients sent, one line per command, so they count round trips.
    """

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._monitor = self._client.monitor()
        self._connection = self._monitor.__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._marker_client = redis.Redis.from_url(url)

    def _read(self) -> None:
        try:
            for command in self._connection.listen():
                with self._lock:
                    self._lines.append(f"{command['client_type']} {command['command']}")
        except (redis.ConnectionError, ValueError, AttributeError, OSError):
            return

    def sync(self) -> None:
        """Wait until every command sent so far has been reported."""
        marker = f"marker-{uuid.uuid4().hex}"
        self._marker_client.echo(marker)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self._lock:
                if any(marker in line for line in self._lines):
                    return
            time.sleep(0.005)
        raise AssertionError("MONITOR did not report the marker")

    def commands(self, containing: str) -> list[str]:
        """Commands sent by clients (not by scripts) that mention ``containing``."""
        self.sync()
        with self._lock:
            return [line for line in self._lines if containing in line and "lua" not in line]

    def reset(self) -> None:
        self.sync()
        with self._lock:
            self._lines.clear()

    def close(self) -> None:
        self._client.connection_pool.disconnect()
        self._marker_client.close()


@pytest.fixture
def monitor(redis_url):
    watcher = Monitor(redis_url)
    yield watcher
    watcher.close()


@pytest.fixture
def prefix() -> str:
    return f"rt-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def redis_store(redis_url, prefix):
    store = RedisStore.from_url(redis_url, prefix=prefix)
    yield store
    store.close()


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def make_service(connector, store, clock, **policy):
    return VerificationService(
        connector, store, secret_key=SECRET_KEY, policy=VerificationPolicy(**policy), clock=clock
    )


def keys_of(raw, prefix) -> list[str]:
    return sorted(raw.scan_iter(match=f"{prefix}*"))


class TestRoundTrips:
    """check is exactly one round trip; start at most three, counted by MONITOR."""

    def test_check_is_one_round_trip(
        self, connector, redis_store, clock, emulator, monitor, prefix
    ):
        """A check sends exactly one command: an EVALSHA."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")
        service.check(NUMBER, "SignIn", "000000")  # loads nothing: scripts may be cached
        monitor.reset()
        service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"])
        sent = monitor.commands(prefix)
        assert len(sent) == 1
        assert "EVALSHA" in sent[0]

    def test_async_check_is_one_round_trip(
        self, connector, redis_store, clock, emulator, monitor, prefix
    ):
        """check_async sends exactly one command too."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")

        async def main():
            await service.check_async(NUMBER, "SignIn", "000000")
            monitor.reset()
            await service.check_async(NUMBER, "SignIn", "111111")
            await redis_store.aclose()

        asyncio.run(main())
        assert len(monitor.commands(prefix)) == 1

    @pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
    def test_an_approval_is_counted_in_the_check_s_own_trip(
        self, connector, redis_url, clock, emulator, monitor, raw, run_async
    ):
        """On one node an approving check counts the guard's approval in its one EVALSHA.

        The start's pending entry, ``<number id>:<usage type>``, is the one the
        script reads from the record's key name (here under a prefix full of
        colons); the command carries the check's 2 keys and 6 arguments, plus
        the prefix's 2 keys and the bucket width.
        """
        prefix = f"rt-{uuid.uuid4().hex[:6]}:code::a:b:"  # what the script must skip
        store = RedisStore.from_url(redis_url, prefix=prefix)
        service = make_service(connector, store, clock)
        service.start(OTHER_NUMBER, "SignIn")  # the scripts cached, the probe made
        service.check(OTHER_NUMBER, "SignIn", emulator.outbox[-1].params["code"])
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        (record,) = [k for k in keys_of(raw, prefix) if k.endswith(":code:SignIn")]
        number = record[record.index("{") + 1 : record.index("}")]
        (pending,) = [k for k in keys_of(raw, prefix) if "{pump:" in k and k.endswith(":pending")]
        counts = pending.removesuffix(":pending") + ":counts"
        assert raw.zscore(pending, f"{number}:SignIn") is not None
        approved_before = sum(int(v) for f, v in raw.hgetall(counts).items() if f[0] == "a")
        monitor.reset()
        if run_async:

            async def main():
                result = await service.check_async(NUMBER, "SignIn", code)
                await store.aclose()
                return result

            assert asyncio.run(main()).ok
        else:
            assert service.check(NUMBER, "SignIn", code).ok
        (sent,) = monitor.commands(prefix)
        # The client, EVALSHA, the sha, 4 keys, then 7 arguments (the empty
        # verification id shows as nothing between two spaces).
        words = [word.strip('"') for word in sent.split(" ")]
        assert words[1] == "EVALSHA"
        assert words[3] == "4"
        assert words[4:8] == [
            record,
            record.removesuffix("code:SignIn") + "failed:SignIn",
            counts,
            pending,
        ]
        assert len(words[8:]) == 7, sent
        assert words[-3:] == ["", "0", "300000"]  # unbound, and the default bucket: 5 min
        assert raw.zscore(pending, f"{number}:SignIn") is None
        approved = sum(int(v) for f, v in raw.hgetall(counts).items() if f[0] == "a")
        assert approved == approved_before + 1
        store.close()

    def test_a_start_s_guard_rides_on_its_reservation(
        self, connector, redis_store, clock, monitor, prefix
    ):
        """One EVALSHA: the guard's 3 keys and 3 arguments (its policy in one), then RESERVE's."""
        service = make_service(connector, redis_store, clock)
        service.start("13800138001", "SignIn")  # scripts cached, the probe made
        monitor.reset()
        service.start(NUMBER, "SignIn")
        reserve, commit = monitor.commands(prefix)
        words = [word.strip('"') for word in reserve.split(" ")]
        assert words[1] == "EVALSHA"
        assert words[3] == str(3 + 4)
        assert all("{pump:" in key for key in words[4:7])
        assert all("{pump:" not in key for key in words[7:11])
        # now, the start's entry, then the default policy: 5-minute buckets, 5
        # minutes' grace, 30 starts, 0.3, an hour's block; CN is only monitored.
        assert words[12] == words[7][words[7].index("{") + 1 : words[7].index("}")] + ":SignIn"
        assert words[13] == "300000:300000:30:0.3:3600000:0"
        assert len(words[11:]) == 3 + 8
        assert "EVALSHA" in commit

    def test_a_policy_argument_that_does_not_read_writes_nothing(self, redis_store, raw, prefix):
        """PUMP_START stops before its first write on a policy it cannot read: a fault."""
        keys = pump_keys(prefix, "0" * 32)
        for policy in ("300000:300000:30:0.3:3600000", "300000:300000:30:0.3:3600000:2", ""):
            with pytest.raises(ServiceUnavailableError):
                redis_store._run(PUMP_START, keys, [1_000_000, "n:SignIn", policy], refusal)
        assert keys_of(raw, prefix) == []
        assert (
            redis_store._run(
                PUMP_START, keys, [1_000_000, "n:SignIn", "300000:0:1:1.0:1000:1"], refusal
            )
            is None
        )
        assert raw.zscore(keys[1], "n:SignIn") == 1_000_000

    def test_start_with_ip_and_global_limits_is_three(
        self, connector, redis_store, clock, monitor, prefix
    ):
        """A start with per-IP and global limits: shared limits, the number, the commit."""
        service = make_service(connector, redis_store, clock, global_hourly=1000)
        service.start("13800138001", "SignIn", client_ip=IP)  # scripts cached
        monitor.reset()
        service.start(NUMBER, "SignIn", client_ip=IP)
        sent = monitor.commands(prefix)
        assert len(sent) == 3
        assert all("EVALSHA" in line for line in sent)
        assert "{limits}" in sent[0]

    def test_start_without_shared_limits_is_two(
        self, connector, redis_store, clock, monitor, prefix
    ):
        """With no client IP and no global budget: the number's reservation, then the commit."""
        service = make_service(connector, redis_store, clock)
        service.start("13800138001", "SignIn")
        monitor.reset()
        service.start(NUMBER, "SignIn")
        assert len(monitor.commands(prefix)) == 2

    def test_check_with_client_ip(self, connector, redis_store, clock, emulator, monitor, prefix):
        """A wrong guess from an IP holds its place (two commands); a right one gives it back."""
        service = make_service(connector, redis_store, clock)
        service.start(OTHER_NUMBER, "SignIn")
        # Every script cached: a wrong guess, then a right one.
        service.check(OTHER_NUMBER, "SignIn", "000000", client_ip=IP)
        service.check(OTHER_NUMBER, "SignIn", emulator.outbox[-1].params["code"], client_ip=IP)
        service.start(NUMBER, "SignIn")
        monitor.reset()
        service.check(NUMBER, "SignIn", "111111", client_ip=IP)
        assert len(monitor.commands(prefix)) == 2
        monitor.reset()
        service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"], client_ip=IP)
        assert len(monitor.commands(prefix)) == 3

    def test_failed_send_release(self, connector, redis_store, clock, emulator, monitor, prefix):
        """A send that failed before sending adds one release per slot touched.

        Three slots: the number's, the shared limits' and the pumping guard's prefix.
        """
        service = make_service(connector, redis_store, clock)
        service.start("13800138001", "SignIn", client_ip=IP)
        clock.advance(61)
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AliyunSmsError):
            service.start("13800138001", "SignIn", client_ip=IP)  # loads the release scripts
        monitor.reset()
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH")
        with pytest.raises(AliyunSmsError):
            service.start(NUMBER, "SignIn", client_ip=IP)
        assert len(monitor.commands(prefix)) == 2 + 3

    def test_noscript_reloads_transparently(
        self, connector, redis_store, clock, emulator, monitor, prefix, raw
    ):
        """After SCRIPT FLUSH a check still answers: EVALSHA, NOSCRIPT, then EVAL once."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")
        raw.script_flush()
        monitor.reset()
        assert service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"]).ok
        sent = monitor.commands(prefix)
        assert [line.split()[1].strip('"') for line in sent] == ["EVALSHA", "EVAL"]

    def test_noscript_reloads_async(self, connector, redis_store, clock, emulator, raw):
        """The asyncio path reloads after SCRIPT FLUSH as well."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]

        async def main():
            await service.check_async(NUMBER, "SignIn", "000000" if code != "000000" else "1" * 6)
            raw.script_flush()
            result = await service.check_async(NUMBER, "SignIn", code)
            await redis_store.aclose()
            return result

        assert asyncio.run(main()).ok


class TestKeys:
    """What lands in Redis: one slot per number, TTLs, and no plaintext."""

    def test_all_keys_of_a_verification_share_a_slot(
        self, connector, redis_store, clock, raw, prefix
    ):
        """Every key of one number has the same cluster slot (redis-py's key_slot)."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")
        clock.advance(61)
        service.start(NUMBER, "Register")
        keys = [key for key in keys_of(raw, prefix) if "{pump:" not in key]
        assert len(keys) == 6  # 2 codes, 2 usage cooldowns, the number cooldown, sends
        assert len({key_slot(key.encode()) for key in keys}) == 1
        # The pumping guard's keys of the number's prefix share a slot of their own.
        guard = [key for key in keys_of(raw, prefix) if "{pump:" in key]
        assert len(guard) == 2  # the counts and the pending starts (no block)
        assert len({key_slot(key.encode()) for key in guard}) == 1

    def test_numbers_spread_over_slots(self, connector, redis_store, clock, raw, prefix):
        """Different numbers land in different slots."""
        service = make_service(connector, redis_store, clock)
        for i in range(8):
            service.start(f"1380013800{i}", "SignIn")
        keys = [key for key in keys_of(raw, prefix) if "{pump:" not in key]  # one prefix
        assert len({key_slot(key.encode()) for key in keys}) == 8

    def test_shared_limit_keys_share_a_slot(self, connector, redis_store, clock, raw, prefix):
        """The per-IP and global counters share their own slot."""
        service = make_service(connector, redis_store, clock, global_hourly=100)
        service.start(NUMBER, "SignIn", client_ip=IP)
        service.start("13800138001", "SignIn", client_ip="198.51.100.3")
        shared = [key for key in keys_of(raw, prefix) if "{limits}" in key]
        assert len(shared) == 3
        assert len({key_slot(key.encode()) for key in shared}) == 1

    def test_every_key_has_a_ttl(self, connector, redis_store, clock, raw, prefix):
        """No key is left without an expiry."""
        service = make_service(connector, redis_store, clock, global_hourly=100)
        service.start(NUMBER, "SignIn", client_ip=IP)
        service.check(NUMBER, "SignIn", "000000")
        keys = keys_of(raw, prefix)
        assert keys
        for key in keys:
            assert 0 < raw.pttl(key) <= 86_400_000, key

    def test_no_plaintext_number_ip_or_code(
        self, connector, redis_store, clock, raw, prefix, emulator
    ):
        """Keys and values hold no number, IP or code, in any form."""
        service = make_service(connector, redis_store, clock, global_hourly=100)
        service.start(NUMBER, "SignIn", client_ip=IP)
        code = emulator.outbox[-1].params["code"]
        dump = []
        for key in keys_of(raw, prefix):
            dump.append(key)
            kind = raw.type(key)
            if kind == "hash":
                dump.extend(f"{k}={v}" for k, v in raw.hgetall(key).items())
            elif kind == "string":
                dump.append(raw.get(key))
            elif kind == "zset":
                dump.extend(f"{m}={s}" for m, s in raw.zrange(key, 0, -1, withscores=True))
        text = "\n".join(dump)
        for secret in (NUMBER, "8613800138000", "0013 8000", IP, "203.0.113"):
            assert secret not in text
        # The code is 6 digits: look for it outside the hex digests and ms times.
        tokens = {token for line in dump for token in line.replace("=", ":").split(":")}
        assert code not in tokens

    def test_prefix_is_used(self, connector, redis_url, clock, raw):
        """Every key starts with the configured prefix."""
        store = RedisStore.from_url(redis_url, prefix="myapp:otp:")
        try:
            service = make_service(connector, store, clock)
            service.start(NUMBER, "SignIn")
            assert keys_of(raw, "myapp:otp:")
        finally:
            for key in keys_of(raw, "myapp:otp:"):
                raw.delete(key)
            store.close()

    def test_prefix_with_braces_is_refused(self, redis_url):
        """A prefix with braces would break the hash tags: ConfigError."""
        with pytest.raises(ConfigError):
            RedisStore.from_url(redis_url, prefix="{app}:")


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """Accepts connections and never answers: every call times out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


def assert_scrubbed(error: BaseException) -> None:
    assert isinstance(error, ServiceUnavailableError)
    assert error.code == "StoreUnavailable"
    assert error.retryable is True
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in (str(error), repr(error)):
        assert "8000" not in text
        assert "redis" not in text.lower()


class TestFaults:
    """A store that fails raises StoreUnavailable, scrubbed, and never approves."""

    def test_connection_refused_on_check(self, connector, clock):
        """No server: check raises StoreUnavailable with nothing chained."""
        store = RedisStore.from_url(f"redis://127.0.0.1:{unused_port()}/0")
        service = make_service(connector, store, clock)
        with pytest.raises(ServiceUnavailableError) as caught:
            service.check(NUMBER, "SignIn", "123456")
        assert_scrubbed(caught.value)

    def test_connection_refused_on_start_sends_nothing(self, connector, clock, emulator):
        """No server: start raises StoreUnavailable and no SMS is sent."""
        store = RedisStore.from_url(f"redis://127.0.0.1:{unused_port()}/0")
        service = make_service(connector, store, clock)
        with pytest.raises(ServiceUnavailableError) as caught:
            service.start(NUMBER, "SignIn")
        assert_scrubbed(caught.value)
        assert emulator.requests == []

    def test_async_connection_refused(self, connector, clock, emulator):
        """The asyncio path fails the same way."""
        store = RedisStore.from_url(f"redis://127.0.0.1:{unused_port()}/0")
        service = make_service(connector, store, clock)

        async def main():
            errors = await asyncio.gather(
                service.start_async(NUMBER, "SignIn"),
                service.check_async(NUMBER, "SignIn", "123456"),
                return_exceptions=True,
            )
            await store.aclose()
            return errors

        errors = asyncio.run(main())
        for error in errors:
            assert_scrubbed(error)
        assert emulator.requests == []

    def test_store_timeout_bounds_a_sync_call(self, connector, clock):
        """A server that never answers: the sync call fails after about store_timeout."""
        server = SilentServer()
        try:
            store = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0", store_timeout=0.2)
            service = make_service(connector, store, clock)
            started = time.monotonic()
            with pytest.raises(ServiceUnavailableError) as caught:
                service.check(NUMBER, "SignIn", "123456")
            assert time.monotonic() - started < 2
            assert_scrubbed(caught.value)
        finally:
            server.close()

    def test_store_timeout_bounds_an_async_call(self, connector, clock):
        """The asyncio call is cut at store_timeout, whatever the client's own timeouts."""
        server = SilentServer()
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        store = RedisStore(client, store_timeout=0.2)
        service = make_service(connector, store, clock)

        async def main():
            started = time.monotonic()
            try:
                await service.check_async(NUMBER, "SignIn", "123456")
            except ServiceUnavailableError as error:
                return error, time.monotonic() - started
            finally:
                await client.aclose()
            return None, 0

        try:
            error, elapsed = asyncio.run(main())
        finally:
            server.close()
        assert error is not None
        assert_scrubbed(error)
        assert elapsed < 2

    def test_store_timeout_bounds_many_calls_at_once(self, connector, clock):
        """Twenty calls against a silent server all end with StoreUnavailable, in time."""
        server = SilentServer()
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port, max_connections=32)
        store = RedisStore(client, store_timeout=0.2)
        service = make_service(connector, store, clock)

        async def main():
            started = time.monotonic()
            results = await asyncio.gather(
                *(service.check_async(NUMBER, "SignIn", f"{i:06d}") for i in range(20)),
                return_exceptions=True,
            )
            await client.aclose()
            return results, time.monotonic() - started

        try:
            results, elapsed = asyncio.run(main())
        finally:
            server.close()
        assert all(isinstance(r, ServiceUnavailableError) for r in results), results
        assert elapsed < 2

    def test_outside_cancellation_is_not_a_store_fault(self, connector, clock):
        """A caller's own cancellation stays a CancelledError, never StoreUnavailable."""
        server = SilentServer()
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        store = RedisStore(client, store_timeout=5)
        service = make_service(connector, store, clock)

        async def main():
            task = asyncio.create_task(service.check_async(NUMBER, "SignIn", "123456"))
            await asyncio.sleep(0.1)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return "cancelled"
            finally:
                await client.aclose()
            return "finished"

        try:
            assert asyncio.run(main()) == "cancelled"
        finally:
            server.close()

    @pytest.mark.skipif(sys.version_info < (3, 11), reason="Python 3.10 cannot count cancels")
    def test_a_cancel_in_the_deadline_s_own_tick_still_propagates(
        self, connector, clock, monkeypatch
    ):
        """The caller cancels as the deadline strikes: CancelledError, not StoreUnavailable."""
        server = SilentServer()
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        store = RedisStore(client, store_timeout=0.2)
        service = make_service(connector, store, clock)
        tasks: list[asyncio.Task] = []
        tick = _Watchdog._tick

        def tick_then_caller_cancels(watchdog):
            tick(watchdog)
            for task in tasks:
                task.cancel()  # in the very tick that cut the call

        monkeypatch.setattr(_Watchdog, "_tick", tick_then_caller_cancels)

        async def main():
            tasks.append(asyncio.create_task(service.check_async(NUMBER, "SignIn", "123456")))
            try:
                await tasks[0]
            except asyncio.CancelledError:
                return "cancelled", tasks[0].cancelled()
            except ServiceUnavailableError:
                return "unavailable", False
            finally:
                await client.aclose()
            return "finished", False

        try:
            assert asyncio.run(main()) == ("cancelled", True)
        finally:
            server.close()

    def test_deadline_then_working_calls(self, connector, redis_url, clock, emulator):
        """After calls were cut at the deadline, the same store keeps working."""
        server = SilentServer()
        silent = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        working = redis.asyncio.Redis.from_url(redis_url)
        slow = make_service(connector, RedisStore(silent, store_timeout=0.1), clock)
        prefix = f"wd-{uuid.uuid4().hex[:8]}:"
        fine = make_service(connector, RedisStore(working, prefix=prefix, store_timeout=0.1), clock)

        async def main():
            with pytest.raises(ServiceUnavailableError):
                await slow.check_async(NUMBER, "SignIn", "123456")
            await fine.start_async(NUMBER, "SignIn")
            result = await fine.check_async(NUMBER, "SignIn", emulator.outbox[-1].params["code"])
            await silent.aclose()
            await working.aclose()
            return result

        try:
            assert asyncio.run(main()).ok
        finally:
            server.close()

    def test_lost_data_is_not_found(self, connector, redis_store, clock, emulator, raw, prefix):
        """Keys gone (a restart without persistence): NOT_FOUND, never an error."""
        service = make_service(connector, redis_store, clock)
        service.start(NUMBER, "SignIn")
        for key in keys_of(raw, prefix):
            raw.delete(key)
        code = emulator.outbox[-1].params["code"]
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND


class FakeClient:
    """A sync client whose execute_command fails first as told, then answers."""

    def __init__(self, first_error: Exception, reply=0) -> None:
        self.first_error = first_error
        self.reply = reply
        self.calls: list[str] = []

    def execute_command(self, *args):
        if args[0] == "CONFIG":
            return []  # the store's one look at maxmemory-policy: nothing to say
        self.calls.append(args[0])
        if len(self.calls) == 1:
            raise self.first_error
        return self.reply


class FakeAsyncClient(FakeClient):
    """The asyncio twin of FakeClient."""

    async def execute_command(self, *args):
        return FakeClient.execute_command(self, *args)


def a_guess():
    from aliyun_sms_connector.verify._store import Guess

    return Guess("n" * 32, "SignIn", "d" * 64, 1_800_000_000_000, 5)


class TestUnsentRetry:
    """Only a command that was never written is sent again, once."""

    WRITE = redis.ConnectionError("Error 104 while writing to socket. Connection reset by peer.")
    READ = redis.ConnectionError("Connection closed by server.")

    def test_write_failure_is_retried_once(self):
        """A failure while writing: the script did not run, so it is sent again."""
        client = FakeClient(self.WRITE, reply=3 * 4 + 3)
        store = RedisStore(client)
        assert store.check(a_guess()) == (CheckStatus.WRONG_CODE, 3)
        assert client.calls == ["EVALSHA", "EVALSHA"]

    def test_read_failure_is_not_retried(self):
        """A failure while reading: the script may have run, so no second try."""
        client = FakeClient(self.READ)
        store = RedisStore(client)
        with pytest.raises(ServiceUnavailableError) as caught:
            store.check(a_guess())
        assert_scrubbed(caught.value)
        assert client.calls == ["EVALSHA"]

    def test_timeout_is_not_retried(self):
        """A timeout may hide a script that ran: no second try."""
        client = FakeClient(redis.TimeoutError("Timeout reading from socket"))
        with pytest.raises(ServiceUnavailableError):
            RedisStore(client).check(a_guess())
        assert client.calls == ["EVALSHA"]

    def test_async_write_failure_is_retried_once(self):
        """The asyncio path retries an unsent command too, and only that."""
        sent = FakeAsyncClient(self.WRITE, reply=2)
        unsure = FakeAsyncClient(self.READ)

        async def main():
            first = await RedisStore(sent).check_async(a_guess())
            with pytest.raises(ServiceUnavailableError):
                await RedisStore(unsure).check_async(a_guess())
            return first

        assert asyncio.run(main()) == (CheckStatus.APPROVED, 0)
        assert sent.calls == ["EVALSHA", "EVALSHA"]
        assert unsure.calls == ["EVALSHA"]

    @pytest.mark.parametrize(
        "error",
        [
            AttributeError("'NoneType' object has no attribute '_add_writer'"),
            RuntimeError("anything else"),
        ],
        ids=["asyncio_closed_transport", "runtime_error"],
    )
    def test_any_client_error_is_unavailable(self, error):
        """Whatever the client raises (3.13.0: AttributeError) is StoreUnavailable, sent once."""
        client = FakeClient(error)
        with pytest.raises(ServiceUnavailableError) as caught:
            RedisStore(client).check(a_guess())
        assert_scrubbed(caught.value)
        assert client.calls == ["EVALSHA"]
        async_client = FakeAsyncClient(error)

        async def main():
            await RedisStore(async_client).check_async(a_guess())

        with pytest.raises(ServiceUnavailableError) as caught:
            asyncio.run(main())
        assert_scrubbed(caught.value)
        assert async_client.calls == ["EVALSHA"]

    @pytest.mark.parametrize("reply", [b"garbage", None, [1]])
    def test_unreadable_reply_is_unavailable(self, reply):
        """A reply the store cannot decode confirms nothing: StoreUnavailable."""

        class Garbled(FakeClient):
            def execute_command(self, *args):
                self.calls.append(args[0])
                return self.reply

        with pytest.raises(ServiceUnavailableError) as caught:
            RedisStore(Garbled(RuntimeError(), reply=reply)).check(a_guess())
        assert_scrubbed(caught.value)

        class GarbledAsync(Garbled):
            async def execute_command(self, *args):
                return Garbled.execute_command(self, *args)

        async def main():
            await RedisStore(GarbledAsync(RuntimeError(), reply=reply)).check_async(a_guess())

        with pytest.raises(ServiceUnavailableError) as caught:
            asyncio.run(main())
        assert_scrubbed(caught.value)

    def test_connections_closed_by_the_server_are_replaced(self, redis_url, raw):
        """After Redis closed every idle connection, the next calls still answer."""
        store = RedisStore.from_url(redis_url, prefix=f"kill-{uuid.uuid4().hex[:8]}:")
        guess = a_guess()

        def kill_clients():
            raw.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            time.sleep(0.05)

        async def main():
            await store.check_async(guess)
            raw.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await asyncio.sleep(0.05)  # the loop sees the close, as a running app's would
            try:
                return await store.check_async(guess)
            finally:
                await store.aclose()

        try:
            store.check(guess)
            kill_clients()
            assert store.check(guess) == (CheckStatus.NOT_FOUND, 0)
            assert asyncio.run(main()) == (CheckStatus.NOT_FOUND, 0)
        finally:
            store.close()

    def test_from_url_clients_do_not_retry(self, standalone_redis):
        """A script whose reply was lost reaches Redis once, sync and async: no client retries it.

        Counted by the proxy, not read from redis-py's settings, whose names
        change between releases.
        """
        with ChaosProxy(("127.0.0.1", standalone_redis.port)) as proxy:
            store = RedisStore.from_url(proxy.url, prefix=f"rt-{uuid.uuid4().hex[:10]}:")

            async def main():
                try:
                    assert await store.check_async(a_guess()) == (CheckStatus.NOT_FOUND, 0)
                    proxy.reset_after(0, match=b"EVALSHA", count=5)
                    with pytest.raises(ServiceUnavailableError):
                        await store.check_async(a_guess())
                finally:
                    await store.aclose()

            try:
                # The first call caches the script (NOSCRIPT, then EVAL), so that
                # the cut meets the EVALSHA itself.
                assert store.check(a_guess()) == (CheckStatus.NOT_FOUND, 0)
                proxy.reset_after(0, match=b"EVALSHA", count=5)
                with pytest.raises(ServiceUnavailableError):
                    store.check(a_guess())
                assert proxy.stats["reset_reply"] == 1
                proxy.passthrough()
                asyncio.run(main())
                assert proxy.stats["reset_reply"] == 2
            finally:
                store.close()


class TestDirectCalls:
    """The asyncio clients from_url builds are driven below execute_command, safely."""

    def test_execute_command_is_skipped(self, redis_url, prefix, mocker):
        """A from_url store's asyncio calls go straight to the pool's connections."""
        spy = mocker.spy(redis.asyncio.Redis, "execute_command")
        store = RedisStore.from_url(redis_url, prefix=prefix)

        async def main():
            try:
                return await store.check_async(a_guess())
            finally:
                await store.aclose()

        assert asyncio.run(main()) == (CheckStatus.NOT_FOUND, 0)
        assert spy.call_count == 0

    def test_call_cut_while_reading_leaves_no_reply_behind(
        self, connector, redis_url, prefix, clock, emulator, raw
    ):
        """A check cut at the deadline drops its connection: the next call reads its own reply."""
        # One connection, so that a stale reply left on it would be read next;
        # the second check is sent while the first one's command still waits in
        # Redis, so the pool's check for unread data cannot save it either.
        store = RedisStore.from_url(redis_url, prefix=prefix, store_timeout=0.6, max_connections=1)
        service = make_service(connector, store, clock)

        async def main():
            try:
                await service.start_async(NUMBER, "SignIn")
                code = emulator.outbox[-1].params["code"]
                raw.execute_command("CLIENT", "PAUSE", 1000, "ALL")
                with pytest.raises(ServiceUnavailableError):
                    await service.check_async(OTHER_NUMBER, "SignIn", "000000")
                return await service.check_async(NUMBER, "SignIn", code)
            finally:
                await store.aclose()

        assert asyncio.run(main()).status is CheckStatus.APPROVED


class TestClients:
    """RedisStore takes clients of every kind and says clearly what it lacks."""

    def test_existing_sync_client(self, connector, redis_url, clock, emulator):
        """A redis.Redis passed in serves start and check."""
        client = redis.Redis.from_url(redis_url, socket_timeout=1)
        store = RedisStore(client, prefix=f"c-{uuid.uuid4().hex[:8]}:")
        service = make_service(connector, store, clock)
        service.start(NUMBER, "SignIn")
        assert service.check(NUMBER, "SignIn", emulator.outbox[-1].params["code"]).ok
        client.close()

    def test_existing_async_client(self, connector, redis_url, clock, emulator):
        """A redis.asyncio.Redis passed in serves start_async and check_async."""

        async def main():
            client = redis.asyncio.Redis.from_url(redis_url)
            store = RedisStore(client, prefix=f"c-{uuid.uuid4().hex[:8]}:")
            service = make_service(connector, store, clock)
            await service.start_async(NUMBER, "SignIn")
            result = await service.check_async(NUMBER, "SignIn", emulator.outbox[-1].params["code"])
            await client.aclose()
            return result

        assert asyncio.run(main()).ok

    def test_sync_only_store_used_async(self, connector, redis_url, clock):
        """A store with only a sync client says so when used from asyncio."""
        client = redis.Redis.from_url(redis_url)
        service = make_service(connector, RedisStore(client), clock)
        with pytest.raises(ConfigError, match="only a sync client"):
            asyncio.run(service.check_async(NUMBER, "SignIn", "123456"))
        client.close()

    def test_async_only_store_used_sync(self, connector, redis_url, clock):
        """A store with only an asyncio client says so when used synchronously."""
        client = redis.asyncio.Redis.from_url(redis_url)
        service = make_service(connector, RedisStore(client), clock)
        with pytest.raises(ConfigError, match="only an asyncio client"):
            service.check(NUMBER, "SignIn", "123456")

    def test_no_client(self):
        """RedisStore() with nothing to talk to is a ConfigError."""
        with pytest.raises(ConfigError):
            RedisStore()

    def test_shared_store_needs_a_secret_key(self, connector, redis_url):
        """A RedisStore without secret_key is refused: every instance must share it."""
        store = RedisStore.from_url(redis_url)
        with pytest.raises(ConfigError, match="secret_key"):
            VerificationService(connector, store)
        with pytest.raises(ConfigError, match="32 bytes"):
            VerificationService(connector, store, secret_key="short")
        store.close()

    def test_cluster_url_builds_a_cluster_client(self):
        """redis+cluster:// gives a RedisCluster client (no connection until used)."""
        from aliyun_sms_connector.verify._redis_calls import split_url as _split_url

        assert _split_url("redis+cluster://h:7000") == (True, "redis://h:7000")
        assert _split_url("rediss+cluster://h:7000/0") == (True, "rediss://h:7000/0")
        assert _split_url("redis://h:6379/0") == (False, "redis://h:6379/0")


CHILD = textwrap.dedent(
    """
    import json, sys, threading
    from aliyun_sms_connector import AliyunSmsConnector
    from aliyun_sms_connector.verify import RedisStore, VerificationService

    url, prefix, secret, number, mode, *codes = sys.argv[1:]
    connector = AliyunSmsConnector({
        "accessKeyId": "LTAIunused", "accessKeySecret": "unused-secret-0123",
        "signName": "Unused", "templates": [{"usageType": "Generic", "templateCode": "SMS_1"}],
        "endpoint": "127.0.0.1:9", "protocol": "http",
    })
    service = VerificationService(connector, RedisStore.from_url(url, prefix=prefix),
                                  secret_key=secret)
    barrier = threading.Barrier(len(codes))
    statuses = [None] * len(codes)
    def check(i):
        barrier.wait()
        statuses[i] = service.check(number, "SignIn", codes[i]).status.value
    threads = [threading.Thread(target=check, args=(i,)) for i in range(len(codes))]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(statuses))
    """
)


class TestTwoProcesses:
    """Two OS processes on one Redis are one verification service."""

    def run_children(self, redis_url, prefix, codes_per_child):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    redis_url,
                    prefix,
                    SECRET_KEY,
                    NUMBER,
                    "check",
                    *codes,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"},
                cwd=Path(__file__).parent,
            )
            for codes in codes_per_child
        ]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(json.loads(out))
        return results

    def test_started_here_checked_there(self, connector, redis_url, emulator):
        """A code started in this process is approved by a check in another."""
        prefix = f"p2-{uuid.uuid4().hex[:8]}:"
        store = RedisStore.from_url(redis_url, prefix=prefix)
        service = VerificationService(connector, store, secret_key=SECRET_KEY)
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        [statuses] = self.run_children(redis_url, prefix, [[code]])
        assert statuses == ["approved"]
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.NOT_FOUND
        store.close()

    def test_wrong_checks_share_the_attempt_limit(self, connector, redis_url, emulator):
        """Two processes guessing at once get max_attempts WRONG_CODE between them."""
        prefix = f"p2-{uuid.uuid4().hex[:8]}:"
        store = RedisStore.from_url(redis_url, prefix=prefix)
        service = VerificationService(connector, store, secret_key=SECRET_KEY)
        service.start(NUMBER, "SignIn")
        code = emulator.outbox[-1].params["code"]
        wrong = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 21)]
        results = self.run_children(redis_url, prefix, [wrong[:10], wrong[10:]])
        statuses = results[0] + results[1]
        assert statuses.count("wrong_code") == 5
        assert statuses.count("too_many_attempts") == 15
        assert service.check(NUMBER, "SignIn", code).status is CheckStatus.TOO_MANY_ATTEMPTS
        store.close()


class TestEviction:
    """One WARNING when Redis may evict the store's counters under memory pressure."""

    @staticmethod
    def warnings(caplog) -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "aliyun_sms_connector.verify" and r.levelname == "WARNING"
        ]

    @pytest.mark.parametrize("run", ["sync", "async"])
    @pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
    def test_an_evicting_policy_is_named_once(
        self, connector, clock, emulator, standalone_redis, caplog, run, policy
    ):
        """allkeys-* or volatile-*: one WARNING naming the policy, however many calls follow."""
        with standalone_redis.client() as admin:
            admin.config_set("maxmemory-policy", policy)
        store = RedisStore.from_url(standalone_redis.url, prefix=f"ev-{uuid.uuid4().hex[:8]}:")
        service = make_service(connector, store, clock)

        async def checks():
            try:
                for _ in range(3):
                    await service.check_async(NUMBER, "SignIn", "123456")
            finally:
                await store.aclose()

        try:
            if run == "sync":
                for _ in range(3):
                    service.check(NUMBER, "SignIn", "123456")
            else:
                asyncio.run(checks())
        finally:
            store.close()
        found = self.warnings(caplog)
        assert len(found) == 1
        assert policy in found[0]
        assert "noeviction" in found[0]

    def test_noeviction_says_nothing(self, connector, clock, standalone_redis, caplog):
        """Redis's default policy is safe: no warning."""
        store = RedisStore.from_url(standalone_redis.url, prefix=f"ev-{uuid.uuid4().hex[:8]}:")
        try:
            make_service(connector, store, clock).check(NUMBER, "SignIn", "123456")
        finally:
            store.close()
        assert self.warnings(caplog) == []

    def test_a_forbidden_config_get_says_nothing(self, connector, clock, standalone_redis, caplog):
        """A managed Redis that forbids CONFIG: the store works and logs nothing."""
        with standalone_redis.client() as admin:
            admin.config_set("maxmemory-policy", "allkeys-lru")
            admin.acl_setuser(
                "app",
                enabled=True,
                passwords=["+app-password"],
                commands=["+@all", "-config"],
                keys=["*"],
                channels=["*"],
            )
        url = standalone_redis.url.replace("redis://", "redis://app:app-password@")
        store = RedisStore.from_url(url, prefix=f"ev-{uuid.uuid4().hex[:8]}:")
        try:
            result = make_service(connector, store, clock).check(NUMBER, "SignIn", "123456")
        finally:
            store.close()
        assert result.status.value == "not_found"
        assert self.warnings(caplog) == []
