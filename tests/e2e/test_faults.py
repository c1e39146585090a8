"""Fault injection, sync and async: each case ends in its typed error within the deadline."""

import asyncio
import time

import pytest

from aliyun_sms_connector import (
    AliyunSmsConnector,
    InvalidResponseError,
    NetworkError,
    RateLimitExceededError,
    ServiceUnavailableError,
)

from ..fault_servers import full_backlog, refused_host  # noqa: TID252 - shared by both suites
from .conftest import connector_config

DEADLINE_MS = 3000


@pytest.fixture(params=["sync", "async"])
def mode(request):
    return request.param


def send(connector, mode):
    """Send once, sync or async; return (result or error, seconds taken)."""
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
    except Exception as error:  # noqa: BLE001 - the test inspects whatever came out
        outcome = error
    return outcome, time.monotonic() - started


def make(emulator_or_endpoint, **overrides):
    settings = {"deadline": DEADLINE_MS, "readTimeout": 500, "connectTimeout": 300}
    settings.update(overrides)
    return AliyunSmsConnector(connector_config(emulator_or_endpoint, **settings))


class _Endpoint:
    def __init__(self, endpoint):
        self.endpoint = endpoint


@pytest.fixture
def refused_endpoint():
    """A loopback port with nothing listening."""
    return _Endpoint(refused_host())


@pytest.fixture
def blackhole_endpoint():
    """A loopback listener whose accept queue is full, so new connects hang."""
    with full_backlog() as host:
        yield _Endpoint(host)


def test_connection_refused(refused_endpoint, mode):
    """Refused: retried (never sent), then NetworkError after maxAttempts."""
    error, took = send(make(refused_endpoint), mode)
    assert isinstance(error, NetworkError)
    assert (error.code, error.maybe_sent, error.attempts) == ("ConnectionFailed", False, 3)
    assert took < DEADLINE_MS / 1000


def test_connect_timeout(blackhole_endpoint, mode):
    """A connect that times out is never sent: retried, then NetworkError."""
    error, took = send(make(blackhole_endpoint, connectTimeout=200), mode)
    assert isinstance(error, NetworkError)
    assert (error.code, error.retryable, error.maybe_sent) == ("ConnectTimeout", True, False)
    assert error.attempts == 3
    assert took < DEADLINE_MS / 1000


def test_read_timeout(emulator, mode):
    """A read timeout may have delivered the SMS: one attempt, never retried."""
    emulator.delay(1.0)
    error, took = send(make(emulator, readTimeout=200), mode)
    assert isinstance(error, NetworkError)
    assert (error.code, error.maybe_sent, error.attempts) == ("ReadTimeout", True, 1)
    assert len(emulator.requests) == 1
    assert took < DEADLINE_MS / 1000


def test_deadline_bounds_a_slow_answer(emulator, mode):
    """An answer slower than the deadline: DeadlineExceeded at the deadline, sent once."""
    emulator.delay(2.0)
    error, took = send(make(emulator, readTimeout=5000, deadline=500), mode)
    assert isinstance(error, NetworkError)
    assert (error.code, error.maybe_sent, error.attempts) == ("DeadlineExceeded", True, 1)
    assert len(emulator.requests) == 1
    assert took < 0.5 + 0.25


def test_connection_dropped_mid_response(emulator, mode):
    """A broken answer may have delivered the SMS: one attempt."""
    emulator.drop_connection()
    error, _ = send(make(emulator), mode)
    assert isinstance(error, NetworkError)
    assert (error.code, error.maybe_sent, error.attempts) == ("ConnectionLost", True, 1)
    assert len(emulator.requests) == 1


def test_503_html(emulator, mode):
    """503 with an HTML body: retried, then ServiceUnavailableError with the status kept."""
    emulator.send_invalid_body("<html>busy</html>", http_status=503, count=3)
    error, took = send(make(emulator), mode)
    assert isinstance(error, ServiceUnavailableError)
    assert (error.code, error.http_status, error.attempts) == ("HTTP503", 503, 3)
    assert len(emulator.requests) == 3
    assert took < DEADLINE_MS / 1000


def test_200_malformed_json(emulator, mode):
    """A 200 with a broken body is not retried: the SMS may have been accepted."""
    emulator.send_invalid_body('{"Code": "OK", "BizId":', http_status=200)
    error, _ = send(make(emulator), mode)
    assert isinstance(error, InvalidResponseError)
    assert (error.http_status, error.attempts) == (200, 1)
    assert len(emulator.requests) == 1


def test_throttling_with_retry_after(emulator, mode):
    """Gateway throttling waits x-acs-retry-after, then succeeds."""
    emulator.fail_next("Throttling.User", http_status=400, headers={"x-acs-retry-after": "100"})
    result, took = send(make(emulator), mode)
    assert result.attempts == 2
    assert len(emulator.requests) == 2
    assert 0.1 <= took < DEADLINE_MS / 1000


def test_throttling_exhausts_attempts(emulator, mode):
    """Throttling that persists ends as RateLimitExceededError with retry_after."""
    emulator.fail_next(
        "Throttling.User", http_status=400, headers={"x-acs-retry-after": "20"}, count=3
    )
    error, _ = send(make(emulator), mode)
    assert isinstance(error, RateLimitExceededError)
    assert (error.retry_after, error.attempts) == (0.02, 3)
    assert len(emulator.requests) == 3


def test_5xx_recovers_on_second_attempt(emulator, mode):
    """A 5xx then OK: the send succeeds with attempts=2, and the SMS is sent once."""
    emulator.fail_next("ServiceUnavailable", http_status=503)
    result, _ = send(make(emulator), mode)
    assert result.attempts == 2
    assert len(emulator.requests) == 2
    assert [m.biz_id for m in emulator.outbox] == [result.biz_id]


def test_deadline_bounds_a_slow_service(emulator, mode):
    """Repeated 503s with long backoff stop at the deadline, not after all attempts."""
    emulator.fail_next("ServiceUnavailable", http_status=503, count=10)
    connector = make(emulator, maxAttempts=10, backoffBase=400, backoffCap=400, deadline=600)
    error, took = send(connector, mode)
    assert isinstance(error, ServiceUnavailableError)
    assert error.attempts < 10
    # Without the deadline, 10 attempts with 400 ms waits would take seconds.
    assert took < 1.0
