"""Garbage: a send makes no reference cycles, so it costs the collector what a raw request does.

Counts, not timings: the number of collections the garbage collector starts
(``gc.callbacks``) over 1,000 sends through a stub transport, against a raw
baseline that does the minimum by hand over the same stub (a dict of
parameters, a form body, hand ACS3 signing, a JSON read). Objects freed by
reference counting never trigger a collection; only objects that survive, or
cycles, do. So a path with no cycles per send stays near the raw count.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import json
import os
import time
from urllib.parse import quote_plus

import pytest

from aliyun_sms_connector import AliyunSmsConnector, BatchMessage
from aliyun_sms_connector._http.models import WireRequest, WireResponse

from .conftest import LOGTO_CONFIG

SENDS = 1000
# First uses fill caches (regular expressions, JSON encoders, phonenumbers'
# metadata) and CPython's tuple free lists (up to 2,000 per size; a tuple freed
# onto a free list never takes back its count towards the next collection):
# a one-time drift, not a per-send cost.
WARM_UP = 1000
OK = WireResponse(
    200,
    {"content-type": "application/json;charset=utf-8"},
    b'{"Code":"OK","Message":"OK","BizId":"900^1","RequestId":"REQ"}',
)


class StubTransport:
    """The Transport's interface, answering OK, recording nothing (a mock would allocate)."""

    def __init__(self, **_options: object) -> None:
        pass

    def send(self, request, *, deadline, connect_timeout, read_timeout):
        return OK

    async def send_async(self, request, *, deadline, connect_timeout, read_timeout):
        return OK

    def close(self):
        pass

    async def aclose(self):
        pass


STUB = StubTransport()


def raw_send():
    """The minimum an expert writes by hand: build, sign (ACS3), send, read."""
    params = {
        "PhoneNumbers": "13800138000",
        "SignName": "AcmeSignName",
        "TemplateCode": "SMS_SIGNIN",
        "TemplateParam": '{"code":"123456"}',
    }
    body = "&".join(f"{k}={quote_plus(v)}" for k, v in sorted(params.items())).encode()
    digest = hashlib.sha256(body).hexdigest()
    headers = {
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": os.urandom(16).hex(),
        "x-acs-content-sha256": digest,
    }
    names = sorted(headers)
    canonical = (
        "POST\n/\n\n"
        + "".join(f"{n}:{headers[n]}\n" for n in names)
        + "\n"
        + ";".join(names)
        + "\n"
        + digest
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(b"secret", to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"ACS3-HMAC-SHA256 Credential=AK,SignedHeaders={';'.join(names)},Signature={signature}"
    )
    request = WireRequest("POST", "/", headers, body)
    response = STUB.send(request, deadline=0.0, connect_timeout=1.0, read_timeout=1.0)
    if json.loads(response.body)["Code"] != "OK":
        raise AssertionError


def collections(run, sends=SENDS):
    """Collections started while ``run`` is called ``sends`` times, after a warm-up."""
    for _ in range(WARM_UP):
        run()
    gc.collect()
    started = 0

    def count(phase, _info):
        nonlocal started
        if phase == "start":
            started += 1

    gc.callbacks.append(count)
    try:
        for _ in range(sends):
            run()
    finally:
        gc.callbacks.remove(count)
    return started


def async_collections(send, sends=SENDS):
    """As :func:`collections`, for ``sends`` awaited in one running event loop."""
    loop = asyncio.new_event_loop()
    try:

        async def many(count):
            for _ in range(count):
                await send()

        loop.run_until_complete(many(WARM_UP))
        gc.collect()
        started = 0

        def count(phase, _info):
            nonlocal started
            if phase == "start":
                started += 1

        gc.callbacks.append(count)
        try:
            loop.run_until_complete(many(sends))
        finally:
            gc.callbacks.remove(count)
        return started
    finally:
        loop.close()


def bound(raw):
    # At most twice raw's; raw often starts none at all over the stub, and
    # one collection from a first-use cache is not a per-send cost.
    return 2 * max(raw, 1)


@pytest.fixture
def connector(mocker):
    mocker.patch("aliyun_sms_connector._connector.Transport", StubTransport)
    return AliyunSmsConnector({**LOGTO_CONFIG, "backoffBase": 0})


@pytest.fixture
def raw():
    return collections(raw_send)


class TestCollections:
    def test_sync_send(self, connector, raw):
        """send_message: at most 2x raw's collections over 1,000 sends."""
        ours = collections(lambda: connector.send_message("13800138000", "SignIn", {"code": "1"}))
        assert ours <= bound(raw), (ours, raw)

    def test_async_send(self, connector):
        """send_message_async: at most 2x raw's, both in one running loop."""

        async def raw_async():
            raw_send()

        raw = async_collections(raw_async)
        ours = async_collections(
            lambda: connector.send_message_async("13800138000", "SignIn", {"code": "1"})
        )
        assert ours <= bound(raw), (ours, raw)

    @pytest.mark.parametrize("algorithm", ["v2"])
    def test_v2_with_sts(self, mocker, raw, algorithm):
        """The v2 signature and an STS token add no garbage either."""
        mocker.patch("aliyun_sms_connector._connector.Transport", StubTransport)
        connector = AliyunSmsConnector(
            {**LOGTO_CONFIG, "signatureAlgorithm": algorithm, "securityToken": "sts-token"}
        )
        ours = collections(lambda: connector.send_message("13800138000", "SignIn", {"code": "1"}))
        assert ours <= bound(raw), (ours, raw)

    def test_batch_and_query(self, connector, raw, mocker):
        """SendBatchSms and QuerySendDetails go through the same lean path."""
        batch = [BatchMessage("13800138000", {"code": "1"})]
        ours = collections(lambda: connector.send_batch(batch, "SignIn"))
        assert ours <= bound(raw), (ours, raw)
        ours = collections(lambda: connector.query_delivery("13800138000"))
        assert ours <= bound(raw), (ours, raw)

    def test_no_object_survives_a_send(self, connector):
        """After 2,000 sends no new tracked object is left, and nothing is cyclic garbage."""
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            for _ in range(2000):
                connector.send_message("13800138000", "SignIn", {"code": "1"})
            grown = len(gc.get_objects()) - before
            assert gc.collect() == 0
        finally:
            gc.enable()
        assert grown < 10


class TestTheInstrument:
    def test_a_cycle_per_send_is_seen(self):
        """The count sees per-send cycles: a raw send that leaves one small cyclic graph fails."""

        class Context:
            # Like a request context that points back at its owner: a few
            # containers in one reference cycle, left for the collector.
            def __init__(self):
                # Enough containers per send to reach the gen0 threshold on
                # every Python: 3.13 raised it from 700 to 2000 allocations.
                parts = [{"header": [index]} for index in range(8)]
                self.owner = {"context": self, "headers": {}, "query": {}, "parts": parts}

        def cyclic_send():
            raw_send()
            Context()

        assert collections(cyclic_send) > bound(collections(raw_send))
