"""examples/fastapi_app.py, driven through httpx's ASGI transport against the emulator.

Every status code the example promises is produced here, on MemoryStore and on
a real redis-server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from aliyun_sms_connector.verify import MemoryStore, RedisStore, VerificationPolicy
from tests.verify.conftest import NUMBER, SECRET_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
USER_IP = "203.0.113.5"


def load_example():
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fastapi_app = load_example()


@pytest.fixture(params=["memory", "redis"])
def store_factory(request):
    if request.param == "memory":
        return MemoryStore
    url = request.getfixturevalue("redis_url")
    prefix = f"example-{uuid.uuid4().hex[:8]}:"
    # Generous: these tests are about status codes, not the store's deadline.
    return lambda: RedisStore.from_url(url, prefix=prefix, store_timeout=5.0)


def app_config(emulator):
    return emulator.connector_config(
        templates=[{"usageType": "Generic", "templateCode": "SMS_CODE"}],
        backoffBase=1,
        backoffCap=5,
    )


def run(app, scenario, *, ip=USER_IP):
    """Run ``scenario(client)`` inside the app's lifespan, as ``ip``."""

    async def main():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=(ip, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await scenario(client)

    return asyncio.run(main())


def make_app(emulator, store_factory, clock, **policy):
    return fastapi_app.create_app(
        app_config(emulator),
        store_factory,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
    )


class TestStart:
    """POST /sms/start."""

    def test_accepted(self, emulator, store_factory, clock):
        """202 with expires_at and resend_after; the code is only in the SMS."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.post("/sms/start", json={"phone": NUMBER})

        response = run(app, scenario)
        assert response.status_code == 202
        body = response.json()
        assert set(body) == {"verification_id", "to", "expires_at", "resend_after"}
        assert body["to"] == "***8000"
        assert emulator.outbox[-1].params["code"] not in response.text

    def test_rate_limited_with_retry_after(self, emulator, store_factory, clock):
        """A second start within the cooldown is 429 with Retry-After."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            await client.post("/sms/start", json={"phone": NUMBER})
            clock.advance(15.5)
            return await client.post("/sms/start", json={"phone": NUMBER})

        response = run(app, scenario)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "45"
        assert response.json()["error"] == "VerificationCooldown"

    def test_client_ip_comes_from_the_request(self, emulator, store_factory, clock):
        """per_ip_hourly counts the request's client address."""
        app = make_app(emulator, store_factory, clock, per_ip_hourly=1)

        async def scenario(client):
            first = await client.post("/sms/start", json={"phone": "13800138001"})
            second = await client.post("/sms/start", json={"phone": "13800138002"})
            return first, second

        async def other(client):
            return await client.post("/sms/start", json={"phone": "13800138003"})

        async def both():
            async with app.router.lifespan_context(app):
                results = []
                for ip, scenario_ in ((USER_IP, scenario), ("198.51.100.7", other)):
                    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
                    async with httpx.AsyncClient(
                        transport=transport, base_url="http://test"
                    ) as client:
                        results.append(await scenario_(client))
                return results

        (first, second), third = asyncio.run(both())
        assert first.status_code == 202
        assert second.status_code == 429
        assert second.json()["error"] == "IpHourlyLimit"
        assert int(second.headers["Retry-After"]) == 3600
        assert third.status_code == 202

    def test_invalid_number(self, emulator, store_factory, clock):
        """An invalid number is 400."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.post("/sms/start", json={"phone": "12345"})

        response = run(app, scenario)
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidPhoneNumber"

    def test_country_not_allowed(self, emulator, store_factory, clock):
        """A number outside allowed_countries is 403."""
        app = make_app(emulator, store_factory, clock, allowed_countries={"CN"})

        async def scenario(client):
            return await client.post("/sms/start", json={"phone": "+85261234567"})

        response = run(app, scenario)
        assert response.status_code == 403
        assert response.json()["error"] == "CountryNotAllowed"

    def test_retryable_aliyun_failure(self, emulator, store_factory, clock):
        """Aliyun failing on its side (after the connector's retries) is 503."""
        app = make_app(emulator, store_factory, clock)
        emulator.fail_next("isp.SYSTEM_ERROR", count=10)

        async def scenario(client):
            return await client.post("/sms/start", json={"phone": NUMBER})

        response = run(app, scenario)
        assert response.status_code == 503
        assert response.json()["error"] == "isp.SYSTEM_ERROR"

    def test_store_unavailable(self, emulator, clock):
        """A store that cannot be reached is 503, and no SMS is sent."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app = make_app(emulator, lambda: RedisStore.from_url(f"redis://127.0.0.1:{port}/0"), clock)

        async def scenario(client):
            start = await client.post("/sms/start", json={"phone": NUMBER})
            check = await client.post("/sms/check", json={"phone": NUMBER, "code": "123456"})
            return start, check

        start, check = run(app, scenario)
        assert start.status_code == 503
        assert check.status_code == 503
        assert start.json()["error"] == "StoreUnavailable"
        assert emulator.requests == []


class TestCheck:
    """POST /sms/check."""

    def test_approved_then_not_found(self, emulator, store_factory, clock):
        """The right code is 200 once; then 404."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            await client.post("/sms/start", json={"phone": NUMBER})
            code = emulator.outbox[-1].params["code"]
            first = await client.post("/sms/check", json={"phone": NUMBER, "code": code})
            second = await client.post("/sms/check", json={"phone": NUMBER, "code": code})
            return first, second

        first, second = run(app, scenario)
        assert first.status_code == 200
        assert first.json()["status"] == "approved"
        assert second.status_code == 404

    def test_wrong_code_then_locked(self, emulator, store_factory, clock):
        """Wrong codes are 401 with attempts_left; after the last, even the right one is 429."""
        app = make_app(emulator, store_factory, clock, max_attempts=2)

        async def scenario(client):
            await client.post("/sms/start", json={"phone": NUMBER})
            code = emulator.outbox[-1].params["code"]
            wrong = "000000" if code != "000000" else "111111"
            answers = [
                await client.post("/sms/check", json={"phone": NUMBER, "code": wrong})
                for _ in range(2)
            ]
            answers.append(await client.post("/sms/check", json={"phone": NUMBER, "code": code}))
            return answers

        one, two, locked = run(app, scenario)
        assert (one.status_code, one.json()["attempts_left"]) == (401, 1)
        assert (two.status_code, two.json()["attempts_left"]) == (401, 0)
        assert locked.status_code == 429
        assert locked.json()["status"] == "too_many_attempts"

    def test_nothing_to_check(self, emulator, store_factory, clock):
        """A check with no pending code is 404."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.post("/sms/check", json={"phone": NUMBER, "code": "123456"})

        assert run(app, scenario).status_code == 404

    def test_invalid_number(self, emulator, store_factory, clock):
        """An invalid number is 400 on check too."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.post("/sms/check", json={"phone": "12345", "code": "123456"})

        assert run(app, scenario).status_code == 400


def test_module_app_reads_the_environment(monkeypatch, emulator):
    """The module's own ``app`` builds its connector and store from ALIYUN_SMS_* at startup."""
    config = app_config(emulator)
    monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_ID", config["accessKeyId"])
    monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_SECRET", config["accessKeySecret"])
    monkeypatch.setenv("ALIYUN_SMS_SIGN_NAME", config["signName"])
    monkeypatch.setenv(
        "ALIYUN_SMS_TEMPLATES", '[{"usageType": "Generic", "templateCode": "SMS_CODE"}]'
    )
    monkeypatch.setenv("ALIYUN_SMS_ENDPOINT", config["endpoint"])
    monkeypatch.setenv("ALIYUN_SMS_PROTOCOL", "http")
    monkeypatch.delenv("ALIYUN_SMS_REDIS_URL", raising=False)
    module = load_example()

    async def scenario(client):
        return await client.post("/sms/start", json={"phone": NUMBER})

    assert run(module.app, scenario).status_code == 202
    assert len(emulator.outbox) == 1
