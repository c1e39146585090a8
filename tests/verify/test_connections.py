"""The store's own pool of redis-py connections: reuse, limits, cancellation, closing, RESP."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.credentials import UsernamePasswordCredentialProvider

from aliyun_sms_connector import ServiceUnavailableError
from aliyun_sms_connector.verify import CheckStatus, RedisStore, VerificationService
from aliyun_sms_connector.verify._connections import DirectPool, can_drive, pack
from aliyun_sms_connector.verify._store import Guess

from .conftest import NUMBER, SECRET_KEY

GUESS = Guess("n" * 32, "SignIn", "d" * 64, 1_800_000_000_000, 5)


class BaseConnection:
    """Just enough of a redis-py asyncio connection, with gates to hold a call."""

    encoder = redis.asyncio.Connection().encoder

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.connected = False
        self.stale = False
        self.events: list[str] = []
        self.sent: list[bytes] = []

    async def connect(self) -> None:
        if not self.connected:
            self.events.append("connect")
            await self.pool.connect_gate.wait()
            self.connected = True

    async def disconnect(self) -> None:
        self.events.append("disconnect")
        self.connected = False
        self.stale = False

    async def send_packed_command(self, data: bytes) -> None:
        self.sent.append(data)

    async def read_response(self) -> int:
        await self.pool.read_gate.wait()
        return len(self.sent)


class FakeConnection(BaseConnection):
    """redis-py 8: the idle check is can_read."""

    async def can_read(self) -> bool:
        if isinstance(self.stale, Exception):
            raise self.stale
        return self.stale


class OldConnection(BaseConnection):
    """redis-py before 8: the idle check is called can_read_destructive."""

    async def can_read_destructive(self) -> bool:
        self.events.append("can_read_destructive")
        return False


class FakePool:
    def __init__(self, max_connections: int, connection_class: type = FakeConnection) -> None:
        self.max_connections = max_connections
        self.connection_class = connection_class
        self.made: list[FakeConnection] = []
        self.connect_gate = asyncio.Event()
        self.connect_gate.set()
        self.read_gate = asyncio.Event()
        self.read_gate.set()

    def make_connection(self) -> FakeConnection:
        connection = self.connection_class(self)
        self.made.append(connection)
        return connection


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def held(max_connections: int, *payloads: str) -> tuple[FakePool, DirectPool, list[Any]]:
    """One call per payload, started on a pool whose reads wait for ``read_gate``."""
    pool = FakePool(max_connections)
    pool.read_gate.clear()
    direct = DirectPool(pool)
    calls = [asyncio.ensure_future(direct("EVAL", payload, 0)) for payload in payloads]
    await settle()
    return pool, direct, calls


class TestReuse:
    def test_an_idle_connection_is_used_again(self):
        """Calls one after another share one connection, connected once."""

        async def main():
            pool = FakePool(10)
            direct = DirectPool(pool)
            for _ in range(5):
                await direct("EVALSHA", "s", 0)
            return pool

        pool = asyncio.run(main())
        assert len(pool.made) == 1
        assert pool.made[0].events == ["connect"]
        assert len(pool.made[0].sent) == 5

    def test_calls_in_flight_get_connections_of_their_own(self):
        async def main():
            pool, _, calls = await held(10, *"xxxx")
            pool.read_gate.set()
            await asyncio.gather(*calls)
            return pool

        assert len(asyncio.run(main()).made) == 4


class TestLimit:
    def test_calls_past_max_connections_wait_their_turn(self):
        """Twelve calls on two connections: all answered, no third connection made."""

        async def main():
            pool, _, calls = await held(2, *"x" * 12)
            in_flight = sum(len(c.sent) for c in pool.made)
            pool.read_gate.set()
            answers = await asyncio.gather(*calls)
            return pool, in_flight, answers

        pool, in_flight, answers = asyncio.run(main())
        assert len(pool.made) == 2
        assert in_flight == 2
        assert len(answers) == 12
        assert sum(len(c.sent) for c in pool.made) == 12

    def test_a_cancelled_waiter_is_passed_over(self):
        """A waiter cut by the deadline is skipped: the connection goes to the next one."""

        async def main():
            pool, _, (first, second, third) = await held(1, "1", "2", "3")
            second.cancel()
            await settle()
            pool.read_gate.set()
            await asyncio.gather(first, third)
            return pool, second

        pool, second = asyncio.run(main())
        assert second.cancelled()
        assert [data.split(b"\r\n")[4] for data in pool.made[0].sent] == [b"1", b"3"]

    def test_a_waiter_cancelled_after_it_was_handed_a_connection_passes_it_on(self):
        """Handed a connection, then cancelled before it ran: the connection is not lost."""

        async def main():
            pool, direct, (first, second) = await held(1, "1", "2")
            hand_over = direct._release

            def hand_over_then_cancel(connection):
                # The deadline strikes just after the hand-over, before the waiter runs.
                hand_over(connection)
                second.cancel()

            direct._release = hand_over_then_cancel
            pool.read_gate.set()
            await first
            await asyncio.gather(second, return_exceptions=True)
            direct._release = hand_over
            # The connection is idle again: a new call gets it, no second one is made.
            answer = await asyncio.wait_for(direct("EVAL", "3", 0), 1)
            return pool, second, answer

        pool, second, answer = asyncio.run(main())
        assert second.cancelled()
        assert len(pool.made) == 1
        assert answer == 2  # the second command sent on the one connection


class TestIdleCheck:
    @pytest.mark.parametrize("stale", [True, ConnectionError("reset")])
    def test_a_stale_idle_connection_is_replaced_before_the_command(self, stale):
        """Unread data, or a failing check, means reconnect; the command still goes out."""

        async def main():
            pool = FakePool(1)
            direct = DirectPool(pool)
            await direct("EVAL", "1", 0)
            pool.made[0].stale = stale
            await direct("EVAL", "2", 0)
            return pool.made[0]

        connection = asyncio.run(main())
        assert connection.events == ["connect", "disconnect", "connect"]
        assert len(connection.sent) == 2

    def test_redis_py_before_8_is_asked_by_its_own_name(self):
        """The check is can_read_destructive where can_read does not exist (no warning on 8)."""

        async def main():
            pool = FakePool(1, OldConnection)
            await DirectPool(pool)("EVAL", "1", 0)
            return pool.made[0]

        assert "can_read_destructive" in asyncio.run(main()).events


class TestClose:
    def test_aclose_disconnects_connections_in_use_too(self):
        async def main():
            pool, direct, calls = await held(3, *"xxx")
            await direct.aclose()
            events = [c.events[-1] for c in pool.made]
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            return events

        assert asyncio.run(main()) == ["disconnect"] * 3

    def test_aclose_fails_waiting_calls_at_once(self):
        """Calls queued for a connection fail when the pool closes, not at their deadline."""

        async def main():
            pool, direct, (holder, *waiters) = await held(1, "1", "2", "2", "2")
            await direct.aclose()
            await settle()
            outcomes = [w.exception() if w.done() else "waiting" for w in waiters]
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
            with pytest.raises(ConnectionError):
                await direct("EVAL", "3", 0)
            return outcomes, len(pool.made)

        outcomes, made = asyncio.run(main())
        assert [type(outcome) for outcome in outcomes] == [ConnectionError] * 3
        assert made == 1

    def test_a_call_connecting_while_closed_disconnects_when_done(self):
        """A socket opened after aclose() is closed by the call that opened it."""

        async def main():
            pool = FakePool(1)
            pool.connect_gate.clear()
            direct = DirectPool(pool)
            call = asyncio.ensure_future(direct("EVAL", "x", 0))
            await settle()
            await direct.aclose()
            pool.connect_gate.set()
            await call
            return pool.made[0]

        connection = asyncio.run(main())
        assert connection.events[-1] == "disconnect"
        assert not connection.connected


class TestCanDrive:
    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ({"protocol": 2}, True),
            ({}, True),
            ({"protocol": 3}, False),
            ({"credential_provider": UsernamePasswordCredentialProvider("u", "p")}, False),
            ({"encoding": "UTF8"}, True),
            ({"encoding": "gbk"}, False),
            ({"encoding_errors": "replace"}, False),
            ({"encoding": "no-such-codec"}, False),
        ],
    )
    def test_only_plain_resp2_pools_are_driven(self, options, expected):
        """RESP3, credential providers and text not in strict UTF-8 keep redis-py's pool."""
        client = redis.asyncio.Redis.from_url("redis://127.0.0.1:9/0", **options)
        assert can_drive(client) is expected

    def test_other_pool_classes_are_not_driven(self):
        """A BlockingConnectionPool (or any subclass) is the caller's choice: kept."""
        pool = redis.asyncio.BlockingConnectionPool.from_url("redis://127.0.0.1:9/0", protocol=2)
        assert not can_drive(redis.asyncio.Redis(connection_pool=pool))

    def test_a_cluster_client_is_not_driven(self):
        assert not can_drive(object())


@pytest.fixture
def raw(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def check_once(store: RedisStore) -> tuple[CheckStatus, int]:
    """One check_async in an event loop of its own; then both of the store's clients are closed."""

    async def main() -> tuple[CheckStatus, int]:
        try:
            return await store.check_async(GUESS)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    finally:
        store.close()


class TestOnRedis:
    """Against a real redis-server: what the server sees of the store's connections."""

    @staticmethod
    def named(raw: redis.Redis, name: str) -> int:
        return sum(1 for client in raw.client_list() if client.get("name") == name)

    def test_connections_are_reused_capped_and_closed(self, redis_url, raw):
        """60 concurrent checks on max_connections=3: 3 connections at most, none after aclose."""
        name = f"pool-{uuid.uuid4().hex[:8]}"
        store = RedisStore.from_url(redis_url, client_name=name, max_connections=3)
        seen = []

        async def main():
            try:
                for _ in range(3):
                    answers = await asyncio.gather(*(store.check_async(GUESS) for _ in range(60)))
                    assert set(answers) == {(CheckStatus.NOT_FOUND, 0)}
                    seen.append(self.named(raw, name))
            finally:
                await store.aclose()

        try:
            asyncio.run(main())
        finally:
            store.close()
        assert seen == [3, 3, 3]
        deadline = time.monotonic() + 2
        while self.named(raw, name) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.named(raw, name) == 0

    def test_a_non_utf8_client_names_keys_as_its_sync_twin(self, redis_url, connector, emulator):
        """encoding="gbk" and a Chinese prefix: a code started sync is approved async."""
        store = RedisStore.from_url(
            redis_url, prefix=f"验证-{uuid.uuid4().hex[:6]}:", encoding="gbk", store_timeout=5
        )
        service = VerificationService(connector, store, secret_key=SECRET_KEY)

        async def check(code):
            try:
                return await service.check_async(NUMBER, "SignIn", code)
            finally:
                await store.aclose()

        try:
            service.start(NUMBER, "SignIn")
            code = emulator.outbox[-1].params["code"]
            assert asyncio.run(check(code)).status is CheckStatus.APPROVED
        finally:
            store.close()

    def test_an_unknown_encoding_is_a_store_fault(self, redis_url):
        """encoding="no-such-codec": StoreUnavailable, as on redis-py's own path, no LookupError."""
        store = RedisStore.from_url(redis_url, encoding="no-such-codec")
        with pytest.raises(ServiceUnavailableError) as info:
            check_once(store)
        assert info.value.code == "StoreUnavailable"

    def test_resp3_clients_keep_redis_py_pool(self, redis_url, mocker):
        """A protocol=3 store goes through redis-py's own pool, and still answers."""
        spy = mocker.spy(redis.asyncio.ConnectionPool, "get_connection")
        store = RedisStore.from_url(redis_url, protocol=3)
        assert check_once(store) == (CheckStatus.NOT_FOUND, 0)
        assert spy.call_count >= 1


class TestPack:
    @pytest.mark.parametrize(
        "command",
        [
            ("EVALSHA", "a" * 40, 1, "p:{0123abcd}:code:SignIn", 1732500000000, "f" * 64, 5),
            ("EVAL", "return 'é'", 0),
            ("EVALSHA", "b" * 40, 2, "préfixe:{x}:a", "", -5, 0, 10**20),
            ("EVALSHA", "c" * 40, 0, b"raw\r\nbytes", 1.5, memoryview(b"mv")),
        ],
    )
    def test_commands_are_packed_as_redis_py_packs_them(self, command):
        """The store's own RESP encoding gives redis-py's bytes, odd argument types included."""
        connection = redis.asyncio.Connection()
        assert pack(command, connection.encoder) == b"".join(connection.pack_command(*command))

    def test_arguments_redis_py_refuses_are_refused(self):
        """A bool is no Redis value: refused as redis-py refuses it, not sent as 1."""
        connection = redis.asyncio.Connection()
        with pytest.raises(redis.DataError):
            pack(("EVALSHA", "a" * 40, 0, True), connection.encoder)
