"""The retry policy and the deadline, sync and async, with the Transport mocked."""

import asyncio
import logging
import random

import pytest

from aliyun_sms_connector import (
    AliyunSmsConnector,
    AliyunSmsError,
    NetworkError,
    RateLimitExceededError,
)
from aliyun_sms_connector._errors import Failure
from aliyun_sms_connector._errors.translate import error_from_failure
from aliyun_sms_connector._protocol.policy import RetryPolicy
from tests import wire_fakes


def make(logto_config, **policy):
    return AliyunSmsConnector({**logto_config, "backoffBase": 0, **policy})


def send(connector):
    return connector.send_message("13800138000", "SignIn", {"code": "1"})


def _raise_or_return(value):
    if isinstance(value, BaseException):
        raise value
    return value


class TestWhatIsRetried:
    def test_5xx_recovers_on_the_second_attempt(self, logto_config, transport):
        """A retryable error followed by OK succeeds with attempts=2."""
        transport.send.side_effect = [
            wire_fakes.gateway("ServiceUnavailable", status=503),
            wire_fakes.ok(),
        ]
        result = send(make(logto_config))
        assert result.attempts == 2
        assert transport.send.call_count == 2

    def test_each_attempt_is_signed_afresh(self, logto_config, transport):
        """A retry is a new request: a new nonce and signature, the same parameters."""
        transport.send.side_effect = [wire_fakes.business("isp.SYSTEM_ERROR"), wire_fakes.ok()]
        send(make(logto_config))
        first, second = (c.args[0] for c in transport.send.call_args_list)
        assert first.body == second.body
        nonce = "x-acs-signature-nonce"
        assert first.headers[nonce] != second.headers[nonce]
        assert first.headers["Authorization"] != second.headers["Authorization"]

    @pytest.mark.parametrize(
        "failure",
        [
            lambda: wire_fakes.business("isp.SYSTEM_ERROR"),
            lambda: wire_fakes.throttling(1),
            lambda: wire_fakes.failure("connect", maybe_sent=False),
            lambda: wire_fakes.failure("connect_timeout", maybe_sent=False),
        ],
        ids=["isp.SYSTEM_ERROR", "throttling", "refused", "connect-timeout"],
    )
    def test_retryable_errors_use_every_attempt(self, logto_config, transport, failure, mocker):
        """Retryable errors are tried maxAttempts times, then raised with attempts."""
        mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.side_effect = lambda *_, **__: _raise_or_return(failure())
        with pytest.raises(AliyunSmsError) as info:
            send(make(logto_config, maxAttempts=4))
        assert info.value.retryable is True
        assert info.value.attempts == transport.send.call_count == 4

    @pytest.mark.parametrize(
        ("failure", "cls"),
        [
            (lambda: wire_fakes.failure("read_timeout", maybe_sent=True), NetworkError),
            (lambda: wire_fakes.failure("connection_lost", maybe_sent=True), NetworkError),
            (lambda: wire_fakes.failure("deadline", maybe_sent=True), NetworkError),
            (lambda: wire_fakes.failure("deadline", maybe_sent=False), NetworkError),
            (lambda: wire_fakes.failure("certificate", maybe_sent=False), NetworkError),
            (
                lambda: wire_fakes.business(
                    "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"
                ),
                RateLimitExceededError,
            ),
            (lambda: wire_fakes.business("isv.MOBILE_NUMBER_ILLEGAL"), AliyunSmsError),
            (lambda: wire_fakes.gateway("SignatureDoesNotMatch"), AliyunSmsError),
        ],
        ids=[
            "read-timeout",
            "dropped",
            "deadline-sent",
            "deadline-unsent",
            "certificate",
            "flow-control",
            "caller-error",
            "auth",
        ],
    )
    def test_never_retried(self, logto_config, transport, failure, cls):
        """Maybe-sent failures, flow control and errors the caller must fix are sent once."""
        transport.send.side_effect = lambda *_, **__: _raise_or_return(failure())
        with pytest.raises(cls) as info:
            send(make(logto_config))
        assert info.value.retryable is False
        assert info.value.attempts == transport.send.call_count == 1

    def test_policy_refuses_maybe_sent_even_if_marked_retryable(self):
        """The policy itself never retries an error that may have been sent."""
        error = error_from_failure(Failure("connect"))
        error.maybe_sent = True
        policy = RetryPolicy(max_attempts=5, base_ms=0, cap_ms=0)
        assert policy.wait(error, 1, now=0.0, deadline=100.0) is None


class TestTiming:
    def test_throttling_waits_retry_after(self, logto_config, transport, mocker):
        """Gateway throttling waits exactly x-acs-retry-after before the next attempt."""
        sleep = mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.side_effect = [wire_fakes.throttling(1500), wire_fakes.ok()]
        assert send(make(logto_config)).attempts == 2
        sleep.assert_called_once_with(1.5)

    def test_deadline_stops_retries_whose_wait_would_pass_it(self, logto_config, transport, mocker):
        """A wait that would end past the deadline is not taken."""
        sleep = mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.return_value = wire_fakes.throttling(60_000)
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=5000))
        assert info.value.attempts == 1
        sleep.assert_not_called()

    def test_no_retry_squeezed_into_the_deadlines_last_moments(
        self, logto_config, transport, mocker
    ):
        """A retry needs 100 ms left after its wait, or the first error stands."""
        mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.return_value = wire_fakes.throttling(60)
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=150))
        assert info.value.attempts == 1
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=1000))
        assert info.value.attempts == 3

    def test_every_attempt_gets_the_same_absolute_deadline(self, logto_config, transport, mocker):
        """Retries do not extend the deadline: each attempt is bounded by the call's."""
        mocker.patch("aliyun_sms_connector._protocol.driver.time.sleep")
        transport.send.side_effect = [
            wire_fakes.failure("connect", maybe_sent=False),
            wire_fakes.failure("connect", maybe_sent=False),
            wire_fakes.ok(),
        ]
        send(make(logto_config, deadline=20_000))
        deadlines = {c.kwargs["deadline"] for c in transport.send.call_args_list}
        assert len(deadlines) == 1

    def test_waits_are_counted_against_the_deadline(self, logto_config, transport, mocker):
        """The clock moves during backoff; once too little is left, the last error stands."""
        now = [100.0]
        mocker.patch(
            "aliyun_sms_connector._protocol.calls.time.monotonic", side_effect=lambda: now[0]
        )
        mocker.patch(
            "aliyun_sms_connector._protocol.driver.time.monotonic", side_effect=lambda: now[0]
        )
        sleep = mocker.patch(
            "aliyun_sms_connector._protocol.driver.time.sleep",
            side_effect=lambda s: now.__setitem__(0, now[0] + s),
        )
        transport.send.return_value = wire_fakes.throttling(400)
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=1000, maxAttempts=10))
        # 0.4 + 0.4 waited; a third wait would end at 1.2 s, past the 1 s deadline.
        assert info.value.attempts == 3
        assert sleep.call_count == 2

    def test_full_jitter_bounds(self):
        """Backoff is uniform in [0, min(cap, base * 2**(n-1))]."""
        policy = RetryPolicy(max_attempts=3, base_ms=100, cap_ms=500)
        error = error_from_failure(Failure("connect"))
        random.seed(7)
        for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
            waits = [policy.backoff(error, attempt) for _ in range(200)]
            assert all(0 <= w <= ceiling for w in waits)
            assert max(waits) > ceiling * 0.8

    def test_retries_are_logged_with_the_masked_number(self, logto_config, transport, caplog):
        """Each retry writes a WARNING with the masked number, never the full one."""
        caplog.set_level(logging.INFO, logger="aliyun_sms_connector")
        transport.send.side_effect = [
            wire_fakes.gateway("ServiceUnavailable", status=503),
            wire_fakes.gateway("ServiceUnavailable", status=503),
            wire_fakes.ok(),
        ]
        send(make(logto_config))
        retries = [r for r in caplog.records if "SMS retry" in r.getMessage()]
        assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
        assert "to=***8000" in retries[0].getMessage()
        assert "attempt=1" in retries[0].getMessage()
        assert "13800138000" not in caplog.text
        assert "attempts=3" in caplog.records[-1].getMessage()


class TestAsync:
    def test_same_result_as_sync(self, connector, transport):
        """send_message_async sends the same parameters and returns the same SendResult."""
        transport.send_async.return_value = wire_fakes.ok(biz_id="1^0", request_id="R")
        result = asyncio.run(
            connector.send_message_async("+8613800138000", "SignIn", {"code": "7"})
        )
        params = wire_fakes.sent(transport.send_async)
        assert (params["PhoneNumbers"], params["TemplateCode"]) == ("13800138000", "SMS_SIGNIN")
        assert params["TemplateParam"] == '{"code":"7"}'
        assert (result.biz_id, result.request_id, result.attempts) == ("1^0", "R", 1)
        transport.send.assert_not_called()

    @pytest.mark.parametrize(
        ("failure", "cls"),
        [
            (lambda: wire_fakes.business("isv.AMOUNT_NOT_ENOUGH"), AliyunSmsError),
            (lambda: wire_fakes.gateway("InvalidAccessKeyId.NotFound"), AliyunSmsError),
            (lambda: wire_fakes.failure("read_timeout", maybe_sent=True), NetworkError),
            (lambda: wire_fakes.failure("deadline", maybe_sent=False), NetworkError),
        ],
    )
    def test_same_errors_as_sync(self, logto_config, transport, failure, cls):
        """The async path raises the same class, code and attributes as the sync one."""
        connector = make(logto_config)
        transport.send.side_effect = lambda *_, **__: _raise_or_return(failure())
        transport.send_async.side_effect = lambda *_, **__: _raise_or_return(failure())
        with pytest.raises(cls) as sync_info:
            send(connector)
        with pytest.raises(cls) as async_info:
            asyncio.run(connector.send_message_async("13800138000", "SignIn", {"code": "1"}))
        for attribute in (
            "code",
            "message",
            "request_id",
            "http_status",
            "retryable",
            "maybe_sent",
            "attempts",
        ):
            assert getattr(sync_info.value, attribute) == getattr(async_info.value, attribute)
        assert type(sync_info.value) is type(async_info.value)
        assert async_info.value.__context__ is None

    def test_async_retries_and_recovers(self, logto_config, transport):
        """The async path retries like the sync one."""
        transport.send_async.side_effect = [
            wire_fakes.business("isp.SYSTEM_ERROR"),
            wire_fakes.ok(),
        ]
        result = asyncio.run(
            make(logto_config).send_message_async("13800138000", "SignIn", {"code": "1"})
        )
        assert result.attempts == 2

    def test_backoff_does_not_block_the_loop(self, logto_config, transport):
        """While a send waits to retry, other tasks keep running."""
        # Throttling with x-acs-retry-after: an exact 200 ms wait, no jitter.
        transport.send_async.side_effect = [wire_fakes.throttling(200), wire_fakes.ok()]
        connector = make(logto_config)
        ticks = 0

        async def ticker(stop):
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.005)

        async def main():
            stop = asyncio.Event()
            task = asyncio.create_task(ticker(stop))
            await asyncio.sleep(0)
            before = ticks
            await connector.send_message_async("13800138000", "SignIn", {"code": "1"})
            during.append(ticks - before)
            stop.set()
            await task

        during = []
        asyncio.run(main())
        # A blocking sleep would have frozen the ticker for all 200 ms.
        assert during[0] >= 5


class TestLifecycle:
    def test_context_managers_close(self, logto_config, transport):
        """with and async with close the connector; a closed one refuses to send."""
        with AliyunSmsConnector(logto_config) as connector:
            pass
        transport.close.assert_called_once_with()
        assert connector.closed
        with pytest.raises(AliyunSmsError, match="closed") as info:
            send(connector)
        assert info.value.code == "ConnectorClosed"
        assert info.value.maybe_sent is False

        async def main():
            async with AliyunSmsConnector(logto_config) as async_connector:
                pass
            return async_connector

        closed = asyncio.run(main())
        transport.aclose.assert_awaited_once_with()
        with pytest.raises(AliyunSmsError, match="closed"):
            asyncio.run(closed.send_message_async("13800138000", "SignIn", {"code": "1"}))
        transport.send.assert_not_called()
        transport.send_async.assert_not_called()
