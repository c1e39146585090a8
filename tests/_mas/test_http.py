"""AliyunMasConnector over real sockets: a plain-HTTP 127.0.0.1 endpoint, as the emulator's.

A FaultServer (tests/fault_servers.py) answers; the requests it read show
what went over the wire. The emulator's own Dypnsapi side is tested elsewhere.
"""

import asyncio
import time
from urllib.parse import parse_qsl

import pytest

from aliyun_sms_connector import AliyunMasConnector, NetworkError
from tests.fault_servers import FaultServer

from .conftest import LOGTO_MAS_CONFIG


def local(server, **extra):
    return AliyunMasConnector(
        {**LOGTO_MAS_CONFIG, "protocol": "http", "endpoint": server.host, **extra}
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sends_over_plain_http(mode):
    """The signed form body reaches the server; its answer comes back as the SendResult."""
    with FaultServer("ok") as server, local(server) as connector:
        if mode == "sync":
            result = connector.send_verify_code(
                "+8613800138000", "SignIn", code_length=6, valid_time=300, interval=60
            )
        else:

            async def main():
                try:
                    return await connector.send_verify_code_async(
                        "+8613800138000", "SignIn", code_length=6, valid_time=300, interval=60
                    )
                finally:
                    await connector.aclose()

            result = asyncio.run(main())
    assert result.request_id == "r-1"
    assert server.requests == 1
    (head,) = server.heads
    assert head.startswith(b"POST / HTTP/1.1\r\n")
    assert f"host: {server.host}".encode() in head.lower()
    params = dict(parse_qsl(server.bodies[0].decode()))
    assert params["PhoneNumber"] == "13800138000"
    assert params["CodeLength"] == "6"
    assert b"13800138000" not in head


def test_a_request_that_may_have_arrived_is_not_sent_again():
    """The server read the check and never answered: one request, a maybe-sent error in time."""
    with FaultServer("hold") as server, local(server, deadline=600, readTimeout=300) as connector:
        started = time.monotonic()
        with pytest.raises(NetworkError) as caught:
            connector.check_verify_code("13800138000", "SignIn", "482913")
        elapsed = time.monotonic() - started
    assert caught.value.maybe_sent is True
    assert caught.value.retryable is False
    assert server.requests == 1
    assert elapsed < 2
