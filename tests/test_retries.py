"""The retry policy, sync and async, with the SDK client mocked."""

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
from aliyun_sms_connector._connector import _Backoff

from . import sdk_fakes

URL = sdk_fakes.sent_url("13800138000", '{"code":"1"}')


def make(logto_config, **policy):
    return AliyunSmsConnector({**logto_config, "backoffBase": 0, **policy})


def send(connector):
    return connector.send_message("13800138000", "SignIn", {"code": "1"})


class TestWhatIsRetried:
    def test_5xx_recovers_on_the_second_attempt(self, logto_config, send_sms):
        """A retryable error followed by OK succeeds with attempts=2."""
        send_sms.side_effect = [sdk_fakes.server_error("ServiceUnavailable"), sdk_fakes.ok()]
        result = send(make(logto_config))
        assert result.attempts == 2
        assert send_sms.call_count == 2

    @pytest.mark.parametrize(
        "failure",
        [
            lambda: sdk_fakes.business("isp.SYSTEM_ERROR"),
            lambda: sdk_fakes.throttling(1),
            lambda: sdk_fakes.unretryable(sdk_fakes.connection_refused(URL), URL),
            lambda: sdk_fakes.unretryable(sdk_fakes.connect_timeout(URL), URL),
        ],
        ids=["isp.SYSTEM_ERROR", "throttling", "refused", "connect-timeout"],
    )
    def test_retryable_errors_use_every_attempt(self, logto_config, send_sms, failure):
        """Retryable errors are tried maxAttempts times, then raised with attempts."""
        send_sms.side_effect = lambda *_: _raise_or_return(failure())
        with pytest.raises(AliyunSmsError) as info:
            send(make(logto_config, maxAttempts=4))
        assert info.value.retryable is True
        assert info.value.attempts == send_sms.call_count == 4

    @pytest.mark.parametrize(
        ("failure", "cls"),
        [
            (lambda: sdk_fakes.unretryable(sdk_fakes.read_timeout(URL), URL), NetworkError),
            (lambda: sdk_fakes.unretryable(sdk_fakes.connection_dropped(), URL), NetworkError),
            (
                lambda: sdk_fakes.business("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"),
                RateLimitExceededError,
            ),
            (lambda: sdk_fakes.business("isv.MOBILE_NUMBER_ILLEGAL"), AliyunSmsError),
            (lambda: sdk_fakes.client_error("SignatureDoesNotMatch"), AliyunSmsError),
        ],
        ids=["read-timeout", "dropped", "flow-control", "caller-error", "auth"],
    )
    def test_never_retried(self, logto_config, send_sms, failure, cls):
        """Read timeouts, flow control and errors the caller must fix are sent once."""
        send_sms.side_effect = lambda *_: _raise_or_return(failure())
        with pytest.raises(cls) as info:
            send(make(logto_config))
        assert info.value.retryable is False
        assert info.value.attempts == send_sms.call_count == 1


def _raise_or_return(value):
    if isinstance(value, BaseException):
        raise value
    return value


class TestTiming:
    def test_throttling_waits_retry_after(self, logto_config, send_sms, mocker):
        """Gateway throttling waits exactly x-acs-retry-after before the next attempt."""
        sleep = mocker.patch("aliyun_sms_connector._connector.time.sleep")
        send_sms.side_effect = [sdk_fakes.throttling(1500), sdk_fakes.ok()]
        assert send(make(logto_config)).attempts == 2
        sleep.assert_called_once_with(1.5)

    def test_deadline_stops_retries_whose_wait_would_pass_it(self, logto_config, send_sms, mocker):
        """A wait that would end past the deadline is not taken."""
        sleep = mocker.patch("aliyun_sms_connector._connector.time.sleep")
        send_sms.side_effect = lambda *_: _raise_or_return(sdk_fakes.throttling(60_000))
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=5000))
        assert info.value.attempts == 1
        sleep.assert_not_called()

    def test_no_retry_squeezed_into_the_deadlines_last_moments(
        self, logto_config, send_sms, mocker
    ):
        """A retry needs 100 ms left after its wait, or the first error stands."""
        mocker.patch("aliyun_sms_connector._connector.time.sleep")
        send_sms.side_effect = lambda *_: _raise_or_return(sdk_fakes.throttling(60))
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=150))
        assert info.value.attempts == 1
        with pytest.raises(RateLimitExceededError) as info:
            send(make(logto_config, deadline=1000))
        assert info.value.attempts == 3

    def test_each_attempt_gets_at_most_the_remaining_deadline(self, logto_config, send_sms):
        """The SDK's read timeout is capped by what is left of the deadline."""
        send_sms.return_value = sdk_fakes.ok()
        send(make(logto_config, deadline=700, readTimeout=10_000, connectTimeout=5000))
        runtime = send_sms.call_args.args[2]
        assert 0 < runtime.read_timeout <= 700
        assert 0 < runtime.connect_timeout <= 700

    def test_full_jitter_bounds(self):
        """Backoff is uniform in [0, min(cap, base * 2**(n-1))]."""
        backoff = _Backoff(base_ms=100, cap_ms=500)
        random.seed(7)
        state = type("S", (), {"outcome": None, "attempt_number": 1})()
        for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
            state.attempt_number = attempt
            waits = [backoff(state) for _ in range(200)]
            assert all(0 <= w <= ceiling for w in waits)
            assert max(waits) > ceiling * 0.8

    def test_retries_are_logged_with_the_masked_number(self, logto_config, send_sms, caplog):
        """Each retry writes a WARNING with the masked number, never the full one."""
        caplog.set_level(logging.INFO, logger="aliyun_sms_connector")
        send_sms.side_effect = [
            sdk_fakes.server_error("ServiceUnavailable"),
            sdk_fakes.server_error("ServiceUnavailable"),
            sdk_fakes.ok(),
        ]
        send(make(logto_config))
        retries = [r for r in caplog.records if "SMS retry" in r.getMessage()]
        assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
        assert "to=***8000" in retries[0].getMessage()
        assert "attempt=1" in retries[0].getMessage()
        assert "13800138000" not in caplog.text
        assert "attempts=3" in caplog.records[-1].getMessage()


class TestAsync:
    def test_same_result_as_sync(self, connector, send_sms_async):
        """send_message_async returns the same SendResult."""
        send_sms_async.return_value = sdk_fakes.ok(biz_id="1^0", request_id="R")
        result = asyncio.run(
            connector.send_message_async("+8613800138000", "SignIn", {"code": "7"})
        )
        _client, request, runtime = send_sms_async.call_args.args
        assert (request.phone_numbers, request.template_code) == ("13800138000", "SMS_SIGNIN")
        assert request.template_param == '{"code":"7"}'
        assert runtime.autoretry is False
        assert (result.biz_id, result.request_id, result.attempts) == ("1^0", "R", 1)

    @pytest.mark.parametrize(
        ("failure", "cls"),
        [
            (lambda: sdk_fakes.business("isv.AMOUNT_NOT_ENOUGH"), AliyunSmsError),
            (lambda: sdk_fakes.client_error("InvalidAccessKeyId.NotFound"), AliyunSmsError),
            (lambda: sdk_fakes.unretryable(sdk_fakes.read_timeout(URL), URL), NetworkError),
        ],
    )
    def test_same_errors_as_sync(self, logto_config, send_sms, send_sms_async, failure, cls):
        """The async path raises the same class, code and attributes as the sync one."""
        connector = make(logto_config)
        send_sms.side_effect = lambda *_: _raise_or_return(failure())
        send_sms_async.side_effect = lambda *_: _raise_or_return(failure())
        with pytest.raises(cls) as sync_info:
            send(connector)
        with pytest.raises(cls) as async_info:
            asyncio.run(connector.send_message_async("13800138000", "SignIn", {"code": "1"}))
        for attribute in ("code", "message", "request_id", "http_status", "retryable", "attempts"):
            assert getattr(sync_info.value, attribute) == getattr(async_info.value, attribute)
        assert type(sync_info.value) is type(async_info.value)

    def test_async_retries_and_recovers(self, logto_config, send_sms_async):
        """The async path retries like the sync one."""
        send_sms_async.side_effect = [sdk_fakes.business("isp.SYSTEM_ERROR"), sdk_fakes.ok()]
        result = asyncio.run(
            make(logto_config).send_message_async("13800138000", "SignIn", {"code": "1"})
        )
        assert result.attempts == 2

    def test_backoff_does_not_block_the_loop(self, logto_config, send_sms_async):
        """While a send waits to retry, other tasks keep running."""
        # Throttling with x-acs-retry-after: an exact 200 ms wait, no jitter.
        send_sms_async.side_effect = [sdk_fakes.throttling(200), sdk_fakes.ok()]
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
    def test_context_managers_close(self, logto_config, send_sms, send_sms_async):
        """with and async with close the connector; a closed one refuses to send."""
        with AliyunSmsConnector(logto_config) as connector:
            pass
        with pytest.raises(AliyunSmsError, match="closed") as info:
            send(connector)
        assert info.value.code == "ConnectorClosed"

        async def main():
            async with AliyunSmsConnector(logto_config) as async_connector:
                pass
            return async_connector

        closed = asyncio.run(main())
        with pytest.raises(AliyunSmsError, match="closed"):
            asyncio.run(closed.send_message_async("13800138000", "SignIn", {"code": "1"}))
        send_sms.assert_not_called()
        send_sms_async.assert_not_called()
