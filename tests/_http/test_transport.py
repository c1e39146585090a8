"""The I/O drivers, sync and async, against small misbehaving servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp  # imported up front, so that no deadline pays for it
import pytest

from aliyun_sms_connector import ConfigError
from aliyun_sms_connector._http.models import TransportError, WireRequest, plaintext_answer
from aliyun_sms_connector._http.sync_driver import _SyncPool
from aliyun_sms_connector._http.transport import Transport, _split_host
from tests.fault_servers import (
    BODY,
    OK_BODY,
    FaultServer,
    full_backlog,
    refused_host,
    request_for,
    tls_material,
)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two throwaway CAs: the server's, and one that did not sign it."""
    return tls_material(tmp_path_factory)


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


@pytest.fixture(params=["http", "https"])
def protocol(request):
    return request.param


def make_transport(server_host, protocol="http", certificates=None, *, ca=None, size=4):
    if protocol == "https" and ca is None:
        ca = certificates["ca"]
    return Transport(protocol=protocol, host=server_host, ca_file=ca, max_connections=size)


def serve(behaviour, protocol="http", certificates=None, **kwargs):
    tls = certificates["server"] if protocol == "https" else None
    return FaultServer(behaviour, tls=tls, **kwargs)


# Generous defaults: the calls that test a timeout pass their own; the others
# must not trip one on a loaded machine.
async def send_async(transport, request, *, within=10.0, connect=5.0, read=5.0):
    return await transport.send_async(
        request, deadline=time.monotonic() + within, connect_timeout=connect, read_timeout=read
    )


def call_open(transport, mode, request, **kwargs):
    """As call(), but an async call leaves the transport open."""
    if mode == "sync":
        return call(transport, mode, request, **kwargs)
    started = time.monotonic()
    return asyncio.run(send_async(transport, request, **kwargs)), time.monotonic() - started


def call(transport, mode, request, *, within=10.0, connect=5.0, read=5.0):
    """One call, sync or async: (response or TransportError, seconds taken)."""
    started = time.monotonic()
    deadline = started + within
    try:
        if mode == "sync":
            outcome = transport.send(
                request, deadline=deadline, connect_timeout=connect, read_timeout=read
            )
        else:

            async def main():
                try:
                    return await transport.send_async(
                        request, deadline=deadline, connect_timeout=connect, read_timeout=read
                    )
                finally:
                    await transport.aclose()

            outcome = asyncio.run(main())
    except TransportError as error:
        outcome = error
    return outcome, time.monotonic() - started


def assert_failure(outcome, kind, *, maybe_sent):
    assert isinstance(outcome, TransportError), outcome
    assert (outcome.kind, outcome.maybe_sent) == (kind, maybe_sent)


class TestSuccess:
    def test_answer_and_request_on_the_wire(self, mode, protocol, certificates):
        """The whole answer comes back; the server gets the body and a content-length."""
        with serve("ok", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert response.status == 200
        assert response.body == OK_BODY
        assert response.headers["x-acs-request-id"] == "r-1"
        assert all(name == name.lower() for name in response.headers)
        assert server.bodies == [BODY]
        assert b"\r\ncontent-length: %d" % len(BODY) in server.heads[0].lower()
        assert b"\r\nx-acs-action: SendSms" in server.heads[0]

    def test_chunked_answer(self, mode):
        """A chunked answer is reassembled."""
        with serve("chunked") as server:
            transport = make_transport(server.host)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert response.body == OK_BODY

    def test_sync_keeps_the_connection_alive(self, protocol, certificates):
        """Sequential sync calls reuse one pooled connection."""
        with serve("ok", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)
            for _ in range(3):
                response, _ = call(transport, "sync", request_for(server.host))
                assert response.status == 200
            transport.close()
        assert (server.requests, server.connections) == (3, 1)

    def test_long_idle_connection_is_not_reused(self, monkeypatch):
        """A connection idle past the keep-alive limit is replaced before sending."""
        monkeypatch.setattr("aliyun_sms_connector._http.sync_driver._IDLE_LIMIT", 0.05)
        with serve("ok") as server:
            transport = make_transport(server.host)
            call(transport, "sync", request_for(server.host))
            call(transport, "sync", request_for(server.host))
            time.sleep(0.1)
            call(transport, "sync", request_for(server.host))
            transport.close()
        assert (server.requests, server.connections) == (3, 2)

    def test_connection_close_answer_then_a_new_connection(self):
        """After ``Connection: close`` the next call opens a new connection."""
        with serve("close") as server:
            transport = make_transport(server.host)
            for _ in range(2):
                response, _ = call(transport, "sync", request_for(server.host))
                assert response.status == 200
            transport.close()
        assert (server.requests, server.connections) == (2, 2)

    def test_idle_connection_closed_by_the_server_is_not_a_failure(self, mode):
        """A pooled connection the server closed meanwhile is replaced, not failed."""
        with serve("ok") as server:
            transport = make_transport(server.host)

            if mode == "sync":
                first, _ = call_open(transport, "sync", request_for(server.host))
                server.drop_connections()
                server.wait_idle()
                second, _ = call_open(transport, "sync", request_for(server.host))
            else:

                async def main():
                    first = await send_async(transport, request_for(server.host))
                    server.drop_connections()
                    server.wait_idle()
                    await asyncio.sleep(0.05)
                    second = await send_async(transport, request_for(server.host))
                    await transport.aclose()
                    return first, second

                first, second = asyncio.run(main())
            transport.close()
        assert (first.status, second.status) == (200, 200)
        assert (server.requests, server.connections) == (2, 2)

    def test_cold_fan_out_from_threads(self):
        """Many threads at once on a cold pool: every call succeeds, pool bounded."""
        with serve("slow", delay=0.01) as server:
            transport = make_transport(server.host, size=4)
            with ThreadPoolExecutor(16) as pool:
                outcomes = list(
                    pool.map(
                        lambda _: call(transport, "sync", request_for(server.host), within=10)[0],
                        range(64),
                    )
                )
            transport.close()
        assert all(o.status == 200 for o in outcomes)
        assert server.requests == 64
        assert server.connections <= 4


class TestAnswers:
    @pytest.mark.parametrize(
        ("behaviour", "connections"), [("http10", 2), ("http10_keep", 1), ("to_eof", 2)]
    )
    def test_body_and_connection_reuse(self, behaviour, connections):
        """HTTP/1.0, keep-alive and read-to-close answers: body whole, connection reused or not."""
        with serve(behaviour) as server:
            transport = make_transport(server.host)
            for _ in range(2):
                response, _ = call(transport, "sync", request_for(server.host))
                assert response.body == OK_BODY
            transport.close()
        assert server.connections == connections

    def test_interim_answer_is_skipped(self, mode):
        """A 100 Continue before the answer is skipped."""
        with serve("interim") as server:
            transport = make_transport(server.host)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert (response.status, response.body) == (200, OK_BODY)

    def test_repeated_header_and_empty_answer(self, mode):
        """A repeated header is comma-joined; a 204 has an empty body."""
        with serve("repeated") as server:
            transport = make_transport(server.host)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert response.headers["x-dup"] == "a, b"
        with serve("no_body") as server:
            transport = make_transport(server.host)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert (response.status, response.body) == (204, b"")
        assert response.headers["x-acs-request-id"] == "r-2"

    @pytest.mark.parametrize(
        "behaviour", ["bad_chunk", "bad_length", "no_colon", "long_line", "http2"]
    )
    def test_malformed_answer_is_lost_after_sending(self, mode, behaviour):
        """An answer that is not well-formed HTTP/1.x: connection_lost, sent once."""
        with serve(behaviour) as server:
            transport = make_transport(server.host)
            outcome, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert_failure(outcome, "connection_lost", maybe_sent=True)
        assert server.requests == 1


class TestNotSent:
    def test_connection_refused(self, mode, protocol, certificates):
        """Refused: kind connect, nothing sent."""
        transport = make_transport(refused_host(), protocol, certificates)
        outcome, _ = call(transport, mode, request_for("x"))
        assert_failure(outcome, "connect", maybe_sent=False)

    def test_connect_timeout(self, mode, protocol, certificates):
        """A connect that hangs ends as connect_timeout, nothing sent, in time."""
        with full_backlog() as host:
            transport = make_transport(host, protocol, certificates)
            outcome, took = call(transport, mode, request_for(host), connect=0.2)
        assert_failure(outcome, "connect_timeout", maybe_sent=False)
        assert took < 1.5

    def test_stalled_tls_handshake(self, mode, certificates):
        """A server that never answers the ClientHello: connect_timeout, nothing sent."""
        with serve("stall", "https", certificates) as server:
            transport = make_transport(server.host, "https", certificates)
            outcome, took = call(transport, mode, request_for(server.host), connect=0.3)
        assert_failure(outcome, "connect_timeout", maybe_sent=False)
        assert server.requests == 0
        assert took < 1.5

    def test_name_that_does_not_resolve(self, mode, monkeypatch):
        """A DNS failure: kind connect, nothing sent."""
        resolve = socket.getaddrinfo

        def fail(host, *args, **kwargs):
            if host == "sms.example.invalid":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fail)
        transport = make_transport("sms.example.invalid")
        outcome, _ = call(transport, mode, request_for("sms.example.invalid"))
        assert_failure(outcome, "connect", maybe_sent=False)

    def test_unknown_certificate_authority(self, mode, certificates):
        """A certificate from another CA: kind certificate, nothing sent."""
        with serve("ok", "https", certificates) as server:
            transport = make_transport(server.host, "https", ca=certificates["other_ca"])
            outcome, _ = call(transport, mode, request_for(server.host))
        assert_failure(outcome, "certificate", maybe_sent=False)
        assert server.requests == 0

    def test_plain_http_server_behind_https(self, mode, certificates):
        """A TLS client talking to a plain HTTP port: its own kind, in the handshake, not sent."""
        with serve("ok") as server:
            transport = make_transport(server.host, "https", certificates)
            outcome, _ = call(transport, mode, request_for(server.host))
        assert_failure(outcome, "tls_plaintext", maybe_sent=False)
        assert server.requests == 0
        assert server.connections == 1

    @pytest.mark.parametrize("reason", ["WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"])
    def test_plaintext_reasons_of_each_openssl(self, reason):
        """OpenSSL 3.0's and 3.2's words for a plain-HTTP answer, bare or wrapped by aiohttp."""
        import ssl
        from unittest import mock

        err = ssl.SSLError(1, f"[SSL: {reason}] ...")
        err.reason = reason
        assert plaintext_answer(err)
        wrapped = aiohttp.ClientConnectorSSLError(mock.Mock(), err)
        assert plaintext_answer(wrapped)
        other = ssl.SSLError(1, "[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] ...")
        other.reason = "SSLV3_ALERT_HANDSHAKE_FAILURE"
        assert not plaintext_answer(other)
        assert not plaintext_answer(ConnectionResetError())


class TestMaybeSent:
    @pytest.mark.parametrize("behaviour", ["reset", "partial", "garbage", "tls_garbage"])
    def test_broken_after_the_request(self, mode, protocol, certificates, behaviour):
        """The server read the whole request, then broke: maybe sent, exactly 1 request."""
        if behaviour == "tls_garbage" and protocol == "http":
            pytest.skip("a TLS fault")
        with serve(behaviour, protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)
            outcome, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert_failure(outcome, "connection_lost", maybe_sent=True)
        assert server.requests == 1

    def test_reset_while_writing(self, mode):
        """The connection breaks while the request is being written: maybe sent."""
        with serve("reset_unread") as server:
            transport = make_transport(server.host)
            # Sync: more than any socket buffer, so the write itself fails. Async:
            # under 1 MiB, past which aiohttp warns (an error here) before sending.
            size = 64 * 1024 * 1024 if mode == "sync" else 1024 * 1024 - 1
            big = request_for(server.host, body=b"x" * size)
            outcome, _ = call(transport, mode, big, within=5, read=5)
            transport.close()
        assert_failure(outcome, "connection_lost", maybe_sent=True)

    def test_read_timeout(self, mode, protocol, certificates):
        """No answer within the read timeout: read_timeout, maybe sent."""
        with serve("slow", protocol, certificates, delay=3.0) as server:
            transport = make_transport(server.host, protocol, certificates)
            outcome, took = call(transport, mode, request_for(server.host), read=0.2)
            transport.close()
        assert_failure(outcome, "read_timeout", maybe_sent=True)
        assert server.requests == 1
        assert took < 2.0  # well before the answer at 3 s


class TestDeadline:
    def test_trickling_answer(self, mode, protocol, certificates):
        """A byte every 0.4 s never trips the read timeout; the deadline still holds."""
        with serve("trickle", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)
            outcome, took = call(transport, mode, request_for(server.host), within=2.0)
            transport.close()
        assert_failure(outcome, "deadline", maybe_sent=True)
        assert took < 2.0 + 0.25

    def test_silent_server_past_the_deadline(self, mode):
        """Silence longer than the deadline but within the read timeout: deadline, sent."""
        with serve("slow", delay=1.0) as server:
            transport = make_transport(server.host)
            outcome, took = call(transport, mode, request_for(server.host), within=0.3, read=5)
            transport.close()
        assert_failure(outcome, "deadline", maybe_sent=True)
        assert server.requests == 1
        assert took < 0.3 + 0.25

    def test_connection_handed_over_after_the_deadline_is_not_written(self, monkeypatch):
        """A busy loop runs the deadline timer late: a connection got past it is not used."""
        handed_over = aiohttp.TCPConnector.connect

        async def late(self, req, traces, timeout):
            conn = await handed_over(self, req, traces, timeout)
            time.sleep(0.3)  # noqa: ASYNC251 - a busy loop: no timer can run meanwhile
            return conn

        monkeypatch.setattr(aiohttp.TCPConnector, "connect", late)
        with serve("ok") as server:
            transport = make_transport(server.host)

            async def main():
                try:
                    await transport.send_async(
                        request_for(server.host),
                        deadline=time.monotonic() + 0.2,
                        connect_timeout=5,
                        read_timeout=5,
                    )
                finally:
                    await transport.aclose()

            with pytest.raises(TransportError) as caught:
                asyncio.run(main())
            time.sleep(0.2)  # time for a request that was wrongly written to arrive
            assert (caught.value.kind, caught.value.maybe_sent) == ("deadline", False)
            assert server.requests == 0

    def test_saturated_pool(self, mode):
        """Waiting for a pooled connection counts: deadline, nothing sent."""
        with serve("slow", delay=1.5) as server:
            transport = make_transport(server.host, size=1)
            holder = threading.Thread(
                target=call,
                args=(transport, "sync", request_for(server.host)),
                kwargs={"within": 5, "read": 5},
            )
            if mode == "sync":
                holder.start()
                while server.requests < 1:
                    time.sleep(0.01)
                outcome, took = call(transport, "sync", request_for(server.host), within=0.5)
                holder.join()
            else:

                async def main():
                    first = asyncio.create_task(
                        transport.send_async(
                            request_for(server.host),
                            deadline=time.monotonic() + 5,
                            connect_timeout=5,
                            read_timeout=5,
                        )
                    )
                    while server.requests < 1:  # noqa: ASYNC110 - the server runs in threads
                        await asyncio.sleep(0.01)
                    started = time.monotonic()
                    try:
                        await transport.send_async(
                            request_for(server.host),
                            deadline=started + 0.5,
                            connect_timeout=1,
                            read_timeout=3,
                        )
                    except TransportError as error:
                        outcome = error
                    took = time.monotonic() - started
                    await first
                    await transport.aclose()
                    return outcome, took

                outcome, took = asyncio.run(main())
            transport.close()
        assert_failure(outcome, "deadline", maybe_sent=False)
        assert server.requests == 1
        assert took < 0.5 + 0.25

    def test_stalled_handshake_past_the_deadline(self, mode, certificates):
        """A handshake stall longer than the deadline: deadline, nothing sent."""
        with serve("stall", "https", certificates) as server:
            transport = make_transport(server.host, "https", certificates)
            outcome, took = call(transport, mode, request_for(server.host), within=0.4, connect=5)
        assert_failure(outcome, "deadline", maybe_sent=False)
        assert took < 0.4 + 0.25

    def test_hanging_name_resolution(self, mode, monkeypatch):
        """A resolver that hangs: the deadline holds, nothing sent."""
        resolve = socket.getaddrinfo

        def slow(host, *args, **kwargs):
            if host == "localhost":
                time.sleep(1.0)
            return resolve(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", slow)
        with serve("ok") as server:
            host = f"localhost:{server.port}"
            transport = make_transport(host)
            if mode == "sync":
                outcome, took = call(transport, "sync", request_for(host), within=0.3)
            else:

                async def main():
                    started = time.monotonic()
                    try:
                        await send_async(transport, request_for(host), within=0.3)
                    except TransportError as error:
                        return error, time.monotonic() - started
                    finally:
                        await transport.aclose()

                outcome, took = asyncio.run(main())
            transport.close()
        assert_failure(outcome, "deadline", maybe_sent=False)
        assert server.requests == 0
        assert took < 0.3 + 0.25

    def test_deadline_already_passed(self, mode):
        """A deadline in the past fails at once, nothing sent."""
        with serve("ok") as server:
            transport = make_transport(server.host)
            outcome, _ = call(transport, mode, request_for(server.host), within=-0.1)
            transport.close()
        assert_failure(outcome, "deadline", maybe_sent=False)
        assert server.requests == 0


class TestLifecycle:
    def test_call_after_close(self, mode):
        """A call after close: closed, nothing sent."""
        with serve("ok") as server:
            transport = make_transport(server.host)
            transport.close()
            outcome, _ = call(transport, mode, request_for(server.host))
        assert_failure(outcome, "closed", maybe_sent=False)
        assert server.requests == 0

    def test_aclose_with_300_calls_in_flight(self):
        """aclose() ends each call in flight with closed, never a bare CancelledError."""
        with serve("hold") as server:
            transport = make_transport(server.host, size=10)

            async def main():
                tasks = [
                    asyncio.create_task(
                        transport.send_async(
                            request_for(server.host),
                            deadline=time.monotonic() + 5,
                            connect_timeout=1,
                            read_timeout=5,
                        )
                    )
                    for _ in range(300)
                ]
                while server.requests < 10:  # noqa: ASYNC110 - the server runs in threads
                    await asyncio.sleep(0.01)
                await transport.aclose()
                return await asyncio.gather(*tasks, return_exceptions=True)

            outcomes = asyncio.run(main())
        assert all(isinstance(o, TransportError) for o in outcomes), {type(o) for o in outcomes}
        assert {o.kind for o in outcomes} == {"closed"}
        assert sum(o.maybe_sent for o in outcomes) == 10
        assert server.requests == 10

    def test_close_with_sync_calls_in_flight(self, protocol, certificates):
        """close() from another thread ends each blocked sync call with closed."""
        with serve("hold", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates, size=4)
            with ThreadPoolExecutor(8) as pool:
                futures = [
                    pool.submit(call, transport, "sync", request_for(server.host), within=5, read=5)
                    for _ in range(8)
                ]
                while server.requests < 4:
                    time.sleep(0.01)
                started = time.monotonic()
                transport.close()
                outcomes = [f.result()[0] for f in futures]
                took = time.monotonic() - started
        assert {o.kind for o in outcomes} == {"closed"}
        assert sum(o.maybe_sent for o in outcomes) == 4
        assert took < 1.0

    def test_close_from_another_thread_stops_a_loops_calls(self):
        """close() from outside a running loop's thread ends its calls there with closed."""
        with serve("hold") as server:
            transport = make_transport(server.host, size=2)
            outcomes = []

            async def main():
                tasks = [
                    asyncio.create_task(send_async(transport, request_for(server.host), within=5))
                    for _ in range(4)
                ]
                outcomes.extend(await asyncio.gather(*tasks, return_exceptions=True))

            runner = threading.Thread(target=asyncio.run, args=(main(),))
            runner.start()
            while server.requests < 2:
                time.sleep(0.01)
            started = time.monotonic()
            transport.close()
            runner.join(5)
            took = time.monotonic() - started
        assert sorted((o.kind, o.maybe_sent) for o in outcomes) == [
            ("closed", False),
            ("closed", False),
            ("closed", True),
            ("closed", True),
        ]
        assert took < 1.0

    def test_callers_own_cancellation_propagates(self):
        """A caller's cancel is a CancelledError, and the transport stays usable."""
        with serve("hold") as server:
            transport = make_transport(server.host)

            async def main():
                task = asyncio.create_task(
                    transport.send_async(
                        request_for(server.host),
                        deadline=time.monotonic() + 5,
                        connect_timeout=1,
                        read_timeout=5,
                    )
                )
                while server.requests < 1:  # noqa: ASYNC110 - the server runs in threads
                    await asyncio.sleep(0.01)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                current = asyncio.current_task()
                assert current is not None
                if sys.version_info >= (3, 11):
                    assert current.cancelling() == 0
                await transport.aclose()

            asyncio.run(main())

    @pytest.mark.skipif(
        sys.version_info < (3, 11), reason="Task.uncancel(): 3.10 cannot tell two cancels apart"
    )
    def test_cancel_within_a_deadline_expiry_still_propagates(self):
        """The caller's cancel wins over an expiring deadline at the same moment."""
        with serve("hold") as server:
            transport = make_transport(server.host)

            async def main():
                deadline = time.monotonic() + 0.5
                task = asyncio.create_task(
                    transport.send_async(
                        request_for(server.host),
                        deadline=deadline,
                        connect_timeout=1,
                        read_timeout=5,
                    )
                )
                loop = asyncio.get_running_loop()
                # Scheduled just after the transport's own deadline timer.
                loop.call_at(loop.time() + (deadline - time.monotonic()), task.cancel)
                with pytest.raises(asyncio.CancelledError):
                    await task
                await transport.aclose()

            asyncio.run(main())

    def test_asyncio_run_in_a_loop_leaks_no_descriptors(self, protocol, certificates, caplog):
        """50 x asyncio.run(send_async): no more open fds than 1 run, no warnings."""
        caplog.set_level(logging.DEBUG)
        with serve("ok", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)

            def once():
                response, _ = call_keep_open(transport, request_for(server.host))
                assert response.status == 200

            once()
            # Closed as asyncio.run shut its loop down, not later on next use.
            assert transport._async._sessions == {}
            server.wait_idle()
            gc.collect()
            after_one = len(list(Path("/proc/self/fd").iterdir()))
            for _ in range(50):
                once()
            server.wait_idle()
            gc.collect()
            after_fifty = len(list(Path("/proc/self/fd").iterdir()))
            transport.close()
        assert after_fifty <= after_one
        assert server.connections == 51
        assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]

    def test_transport_dropped_unclosed_closes_quietly(self, caplog):
        """A transport collected unclosed closes its pool and its running loop's session."""
        caplog.set_level(logging.DEBUG)
        with serve("ok") as server:

            async def main():
                transport = make_transport(server.host)
                transport.send(
                    request_for(server.host),
                    deadline=time.monotonic() + 10,
                    connect_timeout=5,
                    read_timeout=5,
                )
                await send_async(transport, request_for(server.host))
                session = transport._async._sessions[asyncio.get_running_loop()].session
                del transport
                gc.collect()
                for _ in range(20):
                    if session.closed:
                        break
                    await asyncio.sleep(0.01)
                return session.closed

            assert asyncio.run(main())
            server.wait_idle()
            gc.collect()
        assert server.connections == 2
        assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]

    @pytest.mark.parametrize("then", ["next_send", "aclose", "close"])
    def test_session_of_a_loop_closed_without_shutdown_is_released(
        self, protocol, certificates, then
    ):
        """A loop closed without shutdown_asyncgens: its sockets are closed quietly, later."""
        with serve("ok", protocol, certificates) as server:
            transport = make_transport(server.host, protocol, certificates)
            loop = asyncio.new_event_loop()
            response = loop.run_until_complete(send_async(transport, request_for(server.host)))
            loop.close()
            assert response.status == 200
            assert not server.wait_idle(0.1)  # the dead loop's connection is still open
            if then == "next_send":
                outcome, _ = call_keep_open(transport, request_for(server.host))
                assert outcome.status == 200
            elif then == "aclose":
                asyncio.run(transport.aclose())
            else:
                transport.close()
            assert server.wait_idle()
            assert transport._async._sessions == {}
            gc.collect()
            transport.close()


def call_keep_open(transport, request):
    """One asyncio.run(send_async) that does not close the transport."""
    started = time.monotonic()

    async def main():
        return await transport.send_async(
            request, deadline=started + 10, connect_timeout=5, read_timeout=5
        )

    return asyncio.run(main()), time.monotonic() - started


class TestSafety:
    def test_error_holds_nothing_of_the_request(self, mode):
        """str() is a fixed sentence; no cause, no context, no request data."""
        with serve("reset") as server:
            transport = make_transport(server.host)
            outcome, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert isinstance(outcome, TransportError)
        assert str(outcome) == "the connection to the SMS endpoint broke before a complete answer"
        assert outcome.__cause__ is None
        assert outcome.__context__ is None
        assert set(vars(outcome)) == {"kind", "maybe_sent"}
        assert outcome.args == (str(outcome),)
        assert server.host not in repr(outcome)

    @pytest.mark.parametrize("behaviour", ["reset", "partial", "slow"])
    def test_traceback_locals_hold_no_secret(self, mode, behaviour):
        """capture_locals over a TransportError's traceback shows no token, number or code."""
        token = "STS.TOKEN-must-not-show-0123456789"
        with serve(behaviour, delay=1.0) as server:
            transport = make_transport(server.host)
            request = WireRequest(
                "POST",
                "/",
                {"host": server.host, "x-acs-security-token": token},
                BODY,
            )
            outcome, _ = call(transport, mode, request, read=0.2)
            transport.close()
        assert isinstance(outcome, TransportError)
        text = "".join(
            traceback.TracebackException(
                type(outcome), outcome, outcome.__traceback__, capture_locals=True
            ).format()
        )
        assert "AsyncDriver" in text or "SyncDriver" in text
        # Six digits: a four-digit code can turn up in a hex address of a repr.
        for secret in (token, "13800138000", "482913", "TemplateParam"):
            assert secret not in text

    @pytest.mark.parametrize(
        ("name", "value", "target"),
        [
            ("x-acs-security-token", "tok\r\nen", "/"),
            ("x-acs-security-token", "tok\nen", "/"),
            ("bad\r\nname", "v", "/"),
            ("x", "v", "/ HTTP/1.1\r\nx: y"),
            ("x", "\u4e2d", "/"),
            ("x", "nul\x00", "/"),
        ],
    )
    def test_line_breaks_are_refused_before_any_io(self, mode, name, value, target):
        """CR/LF, NUL or non-ASCII in a header or the target: ValueError, nothing sent."""
        with serve("ok") as server:
            transport = make_transport(server.host)
            request = WireRequest("POST", target, {"host": server.host, name: value}, b"")
            with pytest.raises(ValueError, match=r"^a request header|^the request target") as info:
                call(transport, mode, request)
            transport.close()
        assert server.connections == 0
        assert value not in str(info.value)
        assert info.value.__context__ is None

    def test_a_bug_below_is_not_a_network_error(self, monkeypatch):
        """A non-network exception is not passed off as a retryable connect failure."""

        def broken(*args, **kwargs):
            raise RuntimeError

        with serve("ok") as server:
            transport = make_transport(server.host, size=1)
            monkeypatch.setattr("aliyun_sms_connector._http.sync_driver._read_answer", broken)
            with pytest.raises(RuntimeError):
                call(transport, "sync", request_for(server.host))
            monkeypatch.undo()
            # The connection was given back: the one-slot pool still serves.
            response, _ = call(transport, "sync", request_for(server.host))
            transport.close()
        assert response.status == 200

    def test_a_warning_turned_error_below_aiohttp_propagates(self):
        """aiohttp's warning about a body over 1 MiB, an error here, is not a connect failure."""
        with serve("ok") as server:
            transport = make_transport(server.host)
            big = request_for(server.host, body=b"x" * (2 * 1024 * 1024))
            with pytest.raises(ResourceWarning):
                call(transport, "async", big)
        assert server.requests == 0

    def test_request_repr_hides_its_contents(self):
        """A WireRequest's repr shows the method only."""
        request = request_for("127.0.0.1:1")
        assert repr(request) == "WireRequest(method='POST')"


class TunnelProxy:
    """An HTTP proxy on 127.0.0.1: CONNECT tunnels to the target; plain requests it answers.

    ``lines`` keeps each request line it got, ``auth`` each Proxy-Authorization.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.lines: list[bytes] = []
        self.auth: list[bytes] = []
        self.refuse = False
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.lines.append(lines[0])
        self.auth.extend(
            line.split(b":", 1)[1].strip()
            for line in lines[1:]
            if line.lower().startswith(b"proxy-authorization:")
        )
        method, target, _ = lines[0].split(b" ", 2)
        if self.refuse:
            sock.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        if method != b"CONNECT":
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(OK_BODY), OK_BODY)
            )
            return
        host, _, port = target.decode().rpartition(":")
        upstream = socket.create_connection((host, int(port)))
        self._sockets.append(upstream)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        back = threading.Thread(target=_pipe, args=(upstream, sock), daemon=True)
        self._threads.append(back)
        back.start()
        _pipe(sock, upstream)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sink, socket.SHUT_WR)


class TestProxy:
    @pytest.fixture
    def proxy(self, monkeypatch):
        for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        with TunnelProxy() as running:
            yield running

    def test_https_through_a_connect_tunnel(self, mode, proxy, monkeypatch, certificates):
        """HTTPS_PROXY: a CONNECT tunnel, with the proxy's credentials, TLS inside."""
        monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("//", "//user:p%40ss@"))
        with serve("ok", "https", certificates) as server:
            transport = make_transport(server.host, "https", certificates)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert response.body == OK_BODY
        assert proxy.lines == [f"CONNECT {server.host} HTTP/1.1".encode()]
        assert proxy.auth == [b"Basic dXNlcjpwQHNz"]  # user:p@ss
        assert server.bodies == [BODY]

    def test_refused_tunnel_is_not_sent(self, mode, proxy, monkeypatch, certificates):
        """A proxy that refuses the CONNECT: kind connect, nothing sent."""
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        proxy.refuse = True
        with serve("ok", "https", certificates) as server:
            transport = make_transport(server.host, "https", certificates)
            outcome, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert_failure(outcome, "connect", maybe_sent=False)
        assert server.connections == 0

    def test_http_with_the_absolute_uri(self, mode, proxy, monkeypatch):
        """HTTP_PROXY: the request goes to the proxy, with the absolute URI."""
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        transport = make_transport("127.0.0.1:9")
        response, _ = call(transport, mode, request_for("127.0.0.1:9"))
        transport.close()
        assert response.body == OK_BODY
        assert proxy.lines == [b"POST http://127.0.0.1:9/ HTTP/1.1"]

    def test_no_proxy_is_honoured(self, mode, proxy, monkeypatch):
        """NO_PROXY naming the host: the proxy is not used."""
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with serve("ok") as server:
            transport = make_transport(server.host)
            response, _ = call(transport, mode, request_for(server.host))
            transport.close()
        assert response.status == 200
        assert proxy.lines == []
        assert server.requests == 1

    def test_proxy_is_looked_up_once(self, proxy, monkeypatch):
        """The environment is read when the transport is built, not per request."""
        with serve("ok") as server:
            transport = make_transport(server.host)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            response, _ = call(transport, "sync", request_for(server.host))
            transport.close()
        assert response.status == 200
        assert proxy.lines == []


class TestConstruction:
    @pytest.mark.parametrize(
        ("host", "expected"),
        [
            ("dysmsapi.aliyuncs.com", ("dysmsapi.aliyuncs.com", 443)),
            ("127.0.0.1:8443", ("127.0.0.1", 8443)),
            ("[::1]:8443", ("::1", 8443)),
            ("[::1]", ("::1", 443)),
            ("::1", ("::1", 443)),
        ],
    )
    def test_host_and_port(self, host, expected):
        """The endpoint's host and port, IPv6 literals included."""
        assert _split_host(host, 443) == expected

    def test_unreadable_ca_file_is_a_config_error(self, tmp_path):
        """A caFile that is no PEM bundle: ConfigError, with no ssl error chained."""
        bad = tmp_path / "ca.pem"
        bad.write_text("not a certificate")
        with pytest.raises(ConfigError, match="caFile") as info:
            Transport(protocol="https", host="127.0.0.1:1", ca_file=str(bad), max_connections=1)
        assert info.value.__cause__ is None
        assert info.value.__context__ is None

    def test_closed_flag(self):
        """closed is False until close(), True after."""
        transport = make_transport("127.0.0.1:1")
        assert not transport.closed
        transport.close()
        assert transport.closed


class TestSyncPool:
    def test_release_after_close_closes_the_socket(self):
        """A call that finishes after close() gives its socket back closed, not pooled."""
        pool = _SyncPool(1)
        conn = pool.acquire(time.monotonic() + 1)
        ours, theirs = socket.socketpair()
        conn.sock = ours
        pool.close()
        pool.release(conn, keep=True)
        assert ours.fileno() == -1
        assert conn.sock is None
        theirs.close()
