"""Broken networks through the connector, sync and async, over real TLS on 127.0.0.1.

Each case asks one question: may the SMS have gone out? The server counts the
requests it read in full, so a retry that would send a second SMS shows.
"""

import asyncio
import gc
import logging
import threading
import time
from pathlib import Path

import pytest

from aliyun_sms_connector import AliyunSmsConnector, AliyunSmsError, NetworkError

from ..fault_servers import (  # noqa: TID252 - the servers are shared by both suites
    FaultServer,
    full_backlog,
    refused_host,
    request_for,
    tls_material,
)
from .conftest import connector_config


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The server's TLS context, its CA, and a CA that did not sign it."""
    return tls_material(tmp_path_factory)


class _Endpoint:
    def __init__(self, endpoint):
        self.endpoint = endpoint


def make(host, tls=None, **overrides):
    # Generous: the tests of a timeout set their own.
    settings = {"deadline": 5000, "readTimeout": 1000, "connectTimeout": 2000}
    if tls is not None:
        settings.update(protocol="https", caFile=tls["ca"])
    settings.update(overrides)
    return AliyunSmsConnector(connector_config(_Endpoint(host), **settings))


def send(connector, mode):
    """Send once, sync or async: (result or error, seconds taken)."""
    started = time.monotonic()
    try:
        if mode == "sync":
            outcome = connector.send_message("13800138000", "SignIn", {"code": "4829"})
        else:

            async def run():
                async with connector:
                    return await connector.send_message_async(
                        "13800138000", "SignIn", {"code": "4829"}
                    )

            outcome = asyncio.run(run())
    except AliyunSmsError as error:
        outcome = error
    return outcome, time.monotonic() - started


def assert_network(error, code, *, maybe_sent, attempts):
    assert isinstance(error, NetworkError), error
    assert (error.code, error.maybe_sent, error.attempts) == (code, maybe_sent, attempts)
    assert error.retryable is False or not maybe_sent


class TestNeverSent:
    def test_refused_is_retried(self, mode, tls):
        """Connection refused: nothing sent, so every attempt is made."""
        error, _ = send(make(refused_host(), tls), mode)
        assert_network(error, "ConnectionFailed", maybe_sent=False, attempts=3)

    def test_connect_timeout_is_retried(self, mode, tls):
        """A connect that hangs: ConnectTimeout after every attempt, in time."""
        with full_backlog() as host:
            error, took = send(make(host, tls, connectTimeout=150), mode)
        assert_network(error, "ConnectTimeout", maybe_sent=False, attempts=3)
        assert took < 3.0

    def test_stalled_handshake_is_a_connect_timeout(self, mode, tls):
        """A server that never answers the ClientHello: nothing sent, retried."""
        with FaultServer("stall", tls=tls["server"]) as server:
            error, took = send(make(server.host, tls, connectTimeout=150), mode)
        assert_network(error, "ConnectTimeout", maybe_sent=False, attempts=3)
        assert server.requests == 0
        assert server.connections == 3
        assert took < 3.0

    def test_unknown_certificate_is_not_retried(self, mode, tls):
        """A certificate from another CA: CertificateInvalid, one attempt, nothing sent."""
        with FaultServer("ok", tls=tls["server"]) as server:
            connector = make(server.host, tls, caFile=tls["other_ca"])
            error, _ = send(connector, mode)
        assert_network(error, "CertificateInvalid", maybe_sent=False, attempts=1)
        assert server.requests == 0


class TestMaybeSent:
    @pytest.mark.parametrize("behaviour", ["tls_garbage", "reset", "partial", "garbage"])
    def test_broken_after_the_request_is_sent_once(self, mode, tls, behaviour):
        """The server read the whole request, then broke: ConnectionLost, exactly 1 request."""
        with FaultServer(behaviour, tls=tls["server"]) as server:
            error, _ = send(make(server.host, tls), mode)
        assert_network(error, "ConnectionLost", maybe_sent=True, attempts=1)
        assert server.requests == 1

    def test_read_timeout_is_sent_once(self, mode, tls):
        """No answer in time: ReadTimeout, exactly 1 request."""
        with FaultServer("slow", tls=tls["server"], delay=1.0) as server:
            error, _ = send(make(server.host, tls, readTimeout=200), mode)
        assert_network(error, "ReadTimeout", maybe_sent=True, attempts=1)
        assert server.requests == 1


class TestDeadline:
    def test_trickling_answer(self, mode, tls):
        """A byte every 0.4 s: DeadlineExceeded at the deadline, sent once."""
        with FaultServer("trickle", tls=tls["server"]) as server:
            error, took = send(make(server.host, tls, deadline=2000), mode)
        assert_network(error, "DeadlineExceeded", maybe_sent=True, attempts=1)
        assert server.requests == 1
        assert took < 2.0 + 0.25

    def test_stalled_handshake_longer_than_the_deadline(self, mode, tls):
        """A handshake stall past the deadline: DeadlineExceeded, nothing sent."""
        with FaultServer("stall", tls=tls["server"]) as server:
            connector = make(server.host, tls, connectTimeout=5000, deadline=500)
            error, took = send(connector, mode)
        assert_network(error, "DeadlineExceeded", maybe_sent=False, attempts=1)
        assert took < 0.5 + 0.25

    def test_saturated_pool(self, mode, tls):
        """The only connection is busy: the wait counts, DeadlineExceeded, nothing sent."""
        with FaultServer("slow", tls=tls["server"], delay=1.2) as server:
            connector = make(server.host, tls, maxConnections=1, deadline=500)
            transport = connector._lanes["china"].transport
            # Holds the pool's one connection for 1.2 s, past the send's deadline.
            hold = {"request": request_for(server.host), "connect_timeout": 1, "read_timeout": 3}
            if mode == "sync":
                holder = threading.Thread(
                    target=transport.send, kwargs={**hold, "deadline": time.monotonic() + 3}
                )
                holder.start()
                while server.requests < 1:
                    time.sleep(0.01)
                error, took = send(connector, "sync")
                holder.join()
            else:

                async def main():
                    first = asyncio.create_task(
                        transport.send_async(**hold, deadline=time.monotonic() + 3)
                    )
                    while server.requests < 1:  # noqa: ASYNC110 - the server runs in threads
                        await asyncio.sleep(0.01)
                    started = time.monotonic()
                    try:
                        await connector.send_message_async("13900139000", "SignIn", {"code": "2"})
                    except NetworkError as caught:
                        outcome = caught
                    took = time.monotonic() - started
                    await first
                    await connector.aclose()
                    return outcome, took

                error, took = asyncio.run(main())
        assert_network(error, "DeadlineExceeded", maybe_sent=False, attempts=1)
        assert server.requests == 1
        assert took < 0.5 + 0.25


class TestLifecycle:
    def test_aclose_with_300_sends_in_flight(self, tls):
        """aclose() gives every send in flight a typed error, never a bare CancelledError."""
        with FaultServer("hold", tls=tls["server"]) as server:
            connector = make(server.host, tls, maxConnections=10, readTimeout=5000)

            async def main():
                tasks = [
                    asyncio.create_task(
                        connector.send_message_async(f"1380013{i:04d}", "SignIn", {"code": "1"})
                    )
                    for i in range(300)
                ]
                while server.requests < 10:  # noqa: ASYNC110 - the server runs in threads
                    await asyncio.sleep(0.01)
                await connector.aclose()
                return await asyncio.gather(*tasks, return_exceptions=True)

            outcomes = asyncio.run(main())
        assert all(isinstance(o, AliyunSmsError) for o in outcomes), {type(o) for o in outcomes}
        assert {o.code for o in outcomes} == {"ConnectorClosed"}
        assert sum(o.maybe_sent for o in outcomes) == 10
        assert server.requests == 10

    def test_callers_cancel_propagates(self, tls):
        """The caller's own cancellation is still a CancelledError."""
        with FaultServer("hold", tls=tls["server"]) as server:
            connector = make(server.host, tls, readTimeout=5000)

            async def main():
                task = asyncio.create_task(
                    connector.send_message_async("13800138000", "SignIn", {"code": "1"})
                )
                while server.requests < 1:  # noqa: ASYNC110 - the server runs in threads
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                await connector.aclose()

            asyncio.run(main())
        assert server.requests == 1

    def test_asyncio_run_per_send_leaks_nothing(self, tls, caplog):
        """asyncio.run(send_message_async(...)) 50 times: no more fds than once, no warnings."""
        caplog.set_level(logging.DEBUG)
        with FaultServer("ok", tls=tls["server"]) as server:
            connector = make(server.host, tls)

            def once():
                result = asyncio.run(
                    connector.send_message_async("13800138000", "SignIn", {"code": "1"})
                )
                assert result.biz_id == "b-1"

            once()
            server.wait_idle()
            gc.collect()
            after_one = len(list(Path("/proc/self/fd").iterdir()))
            for _ in range(50):
                once()
            server.wait_idle()
            gc.collect()
            after_fifty = len(list(Path("/proc/self/fd").iterdir()))
            connector.close()
        assert after_fifty <= after_one
        assert server.requests == 51
        assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]
