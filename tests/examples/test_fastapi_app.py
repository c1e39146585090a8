"""examples/fastapi_app.py, driven through httpx's ASGI transport against the emulator.

Every status code the example promises is produced here, on MemoryStore and on
a real redis-server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import re
import socket
import sys
from pathlib import Path

import httpx
import pytest

from aliyun_sms_connector.verify import MemoryStore, RedisStore, VerificationPolicy
from aliyun_sms_connector.verify._store import store_unavailable
from tests.verify.conftest import NUMBER, OTHER_NUMBER, SECRET_KEY

from .conftest import app_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
USER_IP = "203.0.113.5"
STRANGER_IP = "198.51.100.7"
# Aliyun's messages can name its backend hosts, in English or in Chinese.
LEAKY_HOST = "sms-gw-07.cn-hangzhou.internal.aliyun-inc.com"
LEAKY_MESSAGE = f"签名不合法 upstream {LEAKY_HOST} refused"
REQUEST_ID = re.compile(r"request_id=([0-9A-F-]{36})\b")


def load_example():
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fastapi_app = load_example()


class Client:
    """The example's two routes, as one client address sees them."""

    def __init__(self, http: httpx.AsyncClient, emulator) -> None:
        self.http = http
        self.emulator = emulator

    async def start(self, phone=NUMBER, purpose="sign-in"):
        return await self.http.post(f"/sms/{purpose}/start", json={"phone": phone})

    async def check(self, code, verification_id, phone=NUMBER, purpose="sign-in"):
        body = {"phone": phone, "code": code, "verification_id": verification_id}
        return await self.http.post(f"/sms/{purpose}/check", json=body)

    async def started(self, phone=NUMBER, purpose="sign-in"):
        """Start, and return (the code the SMS carried, the verification id)."""
        response = await self.start(phone, purpose)
        assert response.status_code == 202, response.text
        return self.last_code(), response.json()["verification_id"]

    def last_code(self):
        return self.emulator.outbox[-1].params["code"]


def run(app, emulator, scenario, *, ips=(USER_IP,)):
    """Run ``scenario(*clients)`` inside the app's lifespan, one client per address."""

    async def main():
        async with app.router.lifespan_context(app):
            clients = []
            for ip in ips:
                client = (ip, 40000) if ip is not None else None
                transport = httpx.ASGITransport(app=app, client=client)
                http = httpx.AsyncClient(transport=transport, base_url="http://test")
                clients.append(Client(http, emulator))
            try:
                return await scenario(*clients)
            finally:
                for client in clients:
                    await client.http.aclose()

    return asyncio.run(main())


def make_app(emulator, store_factory, clock, **policy):
    return fastapi_app.create_app(
        app_config(emulator),
        store_factory,
        secret_key=SECRET_KEY,
        policy=VerificationPolicy(**policy),
        clock=clock,
    )


def wrong(code):
    return "000000" if code != "000000" else "111111"


def assert_generic(response, *, leaked=(LEAKY_HOST, "签名", "aliyun-inc", "upstream")):
    """The body is the example's own fixed text: no part of Aliyun's message."""
    assert set(response.json()) - {"verification_id"} == {"error", "message"}
    for text in leaked:
        assert text not in response.text


def example_log(caplog):
    return [r for r in caplog.records if r.name == "examples.fastapi_app"]


def sent_request_ids(caplog):
    """The request ids the connector itself logged for its failed sends."""
    ids = []
    for record in caplog.records:
        if record.name == "aliyun_sms_connector" and record.getMessage().startswith("SMS "):
            found = REQUEST_ID.search(record.getMessage())
            if found:
                ids.append(found.group(1))
    return ids


class TestStart:
    """POST /sms/{purpose}/start."""

    def test_accepted(self, emulator, store_factory, clock):
        """202 with the verification id and times; the code is only in the SMS."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 202
        body = response.json()
        assert set(body) == {"verification_id", "purpose", "to", "expires_at", "resend_after"}
        assert body["purpose"] == "sign-in"
        assert body["to"] == "***8000"
        assert len(body["verification_id"]) == 16  # 96 random bits, URL-safe base64
        assert emulator.outbox[-1].params["code"] not in response.text

    @pytest.mark.parametrize(
        ("purpose", "template"),
        [
            ("sign-in", "SMS_SIGN_IN"),
            ("register", "SMS_REGISTER"),
            ("forgot-password", "SMS_CODE"),  # no template of its own: Generic's
        ],
    )
    def test_the_route_picks_the_usage_type(
        self, emulator, store_factory, clock, purpose, template
    ):
        """Each purpose sends its own usage type's template."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.start(purpose=purpose)

        response = run(app, emulator, scenario)
        assert response.status_code == 202
        assert response.json()["purpose"] == purpose
        assert [m.template_code for m in emulator.outbox] == [template]

    @pytest.mark.parametrize("purpose", ["SignIn", "Test", "generic", "sign_in", "x" * 200])
    def test_unknown_purpose(self, emulator, store_factory, clock, purpose):
        """Anything but a served purpose is 400, even a usage type's own name; nothing is sent."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            start = await client.start(purpose=purpose)
            check = await client.check("123456", "a" * 16, purpose=purpose)
            return start, check

        for response in run(app, emulator, scenario):
            assert response.status_code == 400
            assert response.json()["error"] == "UnknownUsageType"
            assert "Generic" not in response.text  # the library's own list of usage types
        assert emulator.requests == []

    def test_rate_limited_with_retry_after(self, emulator, store_factory, clock):
        """A second start within the cooldown is 429 with Retry-After."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            await client.start()
            clock.advance(15.5)
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "45"
        assert response.json()["error"] == "VerificationCooldown"

    def test_cooldown_spans_purposes(self, emulator, store_factory, clock):
        """A register code right after a sign-in code is refused: the number's cooldown."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            await client.start(purpose="sign-in")
            return await client.start(purpose="register")

        response = run(app, emulator, scenario)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "60"

    def test_client_ip_comes_from_the_request(self, emulator, store_factory, clock):
        """per_ip_hourly counts the request's client address."""
        app = make_app(emulator, store_factory, clock, per_ip_hourly=1)

        async def scenario(user, stranger):
            first = await user.start("13800138001")
            second = await user.start("13800138002")
            third = await stranger.start("13800138003")
            return first, second, third

        first, second, third = run(app, emulator, scenario, ips=(USER_IP, STRANGER_IP))
        assert first.status_code == 202
        assert second.status_code == 429
        assert second.json()["error"] == "IpHourlyLimit"
        assert int(second.headers["Retry-After"]) == 3600
        assert third.status_code == 202

    def test_no_client_address(self, emulator, store_factory, clock):
        """A transport that reports no client still works (no per-IP limit applies)."""
        app = make_app(emulator, store_factory, clock, per_ip_hourly=1)

        async def scenario(client):
            return [await client.start(phone) for phone in ("13800138001", "13800138002")]

        responses = run(app, emulator, scenario, ips=(None,))
        assert [r.status_code for r in responses] == [202, 202]

    def test_client_host_that_is_no_ip(self, emulator, store_factory, clock, caplog):
        """A host that is not an IP address (Starlette's "testclient") is 400; nothing is sent."""
        app = make_app(emulator, store_factory, clock)
        caplog.set_level(logging.INFO)

        async def scenario(client):
            return await client.start(), await client.check("123456", "a" * 16)

        for response in run(app, emulator, scenario, ips=("testclient",)):
            assert response.status_code == 400
            assert response.json()["error"] == "InvalidRequest"
        assert emulator.requests == []
        assert any("forwarded-allow-ips" in r.getMessage() for r in example_log(caplog))

    @pytest.mark.parametrize("body", [{}, {"phone": 13800138000}, {"phone": "1" * 41}])
    def test_invalid_body(self, emulator, store_factory, clock, body):
        """A malformed body is 400 naming the field, not FastAPI's 422 echoing the input."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.http.post("/sms/sign-in/start", json=body)

        response = run(app, emulator, scenario)
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidRequest"
        assert response.json()["fields"] == ["body.phone"]
        assert "13800138000" not in response.text
        assert emulator.requests == []

    def test_invalid_number(self, emulator, store_factory, clock):
        """An invalid number is 400."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.start("12345")

        response = run(app, emulator, scenario)
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidPhoneNumber"

    def test_country_not_allowed(self, emulator, store_factory, clock):
        """A number outside allowed_countries is 403."""
        app = make_app(emulator, store_factory, clock, allowed_countries={"CN"})

        async def scenario(client):
            return await client.start("+85261234567")

        response = run(app, emulator, scenario)
        assert response.status_code == 403
        assert response.json()["error"] == "CountryNotAllowed"
        assert emulator.requests == []

    @pytest.mark.parametrize(
        "phone",
        [
            "+44 909 876 5432",  # a UK premium-rate number
            "+33 8 99 12 34 56",  # a French premium-rate number
            "+86 10 1234 5678",  # a Beijing fixed line
        ],
    )
    def test_number_type_not_allowed(self, emulator, store_factory, clock, phone, caplog):
        """Premium-rate and fixed-line numbers are 403, with a text that does not echo them."""
        app = make_app(emulator, store_factory, clock)
        caplog.set_level(logging.INFO)

        async def scenario(client):
            return await client.start(phone)

        response = run(app, emulator, scenario)
        assert response.status_code == 403
        assert response.json()["error"] == "NumberTypeNotAllowed"
        assert "premium" not in response.text
        assert "fixed" not in response.text
        assert emulator.requests == []
        digits = "".join(ch for ch in phone if ch.isdigit())
        assert all(digits[-8:] not in r.getMessage() for r in example_log(caplog))

    def test_aliyun_failure_does_not_leak(self, emulator, store_factory, clock, caplog):
        """A non-retryable Aliyun failure is 502 with a fixed text; the log holds the request id."""
        app = make_app(emulator, store_factory, clock)
        emulator.fail_next("isv.SMS_SIGNATURE_ILLEGAL", message=LEAKY_MESSAGE)
        caplog.set_level(logging.INFO)

        async def scenario(client):
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 502
        assert response.json() == {"error": "SmsFailed", "message": "the code could not be sent"}
        assert_generic(response)
        assert "SIGNATURE" not in response.text
        [request_id] = sent_request_ids(caplog)
        assert request_id not in response.text
        [line] = [r for r in example_log(caplog) if r.levelno == logging.WARNING]
        message = line.getMessage()
        assert f"request_id={request_id}" in message
        assert "code=isv.SMS_SIGNATURE_ILLEGAL" in message
        assert LEAKY_HOST not in message
        assert NUMBER not in message
        assert emulator.outbox == []

    def test_retryable_aliyun_failure(self, emulator, store_factory, clock, caplog):
        """Aliyun failing on its side (after the connector's retries) is 503 with Retry-After."""
        app = make_app(emulator, store_factory, clock)
        emulator.fail_next("isp.SYSTEM_ERROR", message=LEAKY_MESSAGE, count=10)
        caplog.set_level(logging.WARNING)

        async def scenario(client):
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"] == "SmsUnavailable"
        assert_generic(response)
        assert "isp." not in response.text
        request_ids = sent_request_ids(caplog)
        assert request_ids
        [line] = example_log(caplog)
        assert f"request_id={request_ids[-1]}" in line.getMessage()

    def test_aliyun_rate_limit(self, emulator, store_factory, clock):
        """Aliyun's own flow control is 429 with Retry-After, and its message stays out."""
        app = make_app(emulator, store_factory, clock)
        emulator.fail_next(
            "isv.BUSINESS_LIMIT_CONTROL", message=f"触发小时级流控Permits:5 {LEAKY_HOST}"
        )

        async def scenario(client):
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "3600"
        assert response.json()["error"] == "RateLimited"
        assert_generic(response, leaked=(LEAKY_HOST, "流控", "isv."))

    def test_aliyun_invalid_number(self, emulator, store_factory, clock):
        """Aliyun judging the number invalid is 400 with the example's own text."""
        app = make_app(emulator, store_factory, clock)
        emulator.fail_next("isv.MOBILE_NUMBER_ILLEGAL", message=LEAKY_MESSAGE)

        async def scenario(client):
            return await client.start()

        response = run(app, emulator, scenario)
        assert response.status_code == 400
        assert response.json() == {
            "error": "InvalidPhoneNumber",
            "message": "the phone number is not valid",
        }

    @pytest.mark.parametrize("phone", ["+85261234567", "+1 312 555 0100"])
    def test_no_template_for_the_region(self, emulator, store_factory, clock, phone, caplog):
        """A plain domestic template and an overseas number: 500 RegionNotServed, not 400.

        The user's number is valid: the config lacks an international
        template, which the log (at ERROR) names. Nothing is sent.
        """
        app = make_app(emulator, store_factory, clock)
        caplog.set_level(logging.INFO)

        async def scenario(client):
            return await client.start(phone)

        response = run(app, emulator, scenario)
        assert response.status_code == 500
        assert response.json() == {
            "error": "RegionNotServed",
            "message": "codes cannot be sent to numbers in this region",
        }
        assert "retry-after" not in response.headers
        assert emulator.requests == []
        [line] = example_log(caplog)
        assert line.levelno == logging.ERROR
        assert "template SMS_SIGN_IN (SignIn) is domestic" in line.getMessage()

    def test_maybe_sent(self, emulator, store_factory, clock):
        """The connection broke after the request: 504 with the verification id, which checks it."""
        app = make_app(emulator, store_factory, clock)
        emulator.drop_connection()

        async def scenario(client):
            response = await client.start()
            code = json.loads(emulator.requests[-1].params["TemplateParam"])["code"]
            return response, await client.check(code, response.json()["verification_id"])

        response, check = run(app, emulator, scenario)
        assert response.status_code == 504
        assert response.json()["error"] == "SmsUncertain"
        assert response.headers["Retry-After"] == "60"
        assert_generic(response)
        # The code may arrive: the id in the 504 checks it.
        assert check.status_code == 200

    def test_store_unavailable(self, emulator, clock):
        """A store that cannot be reached is 503 with Retry-After, and no SMS is sent."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app = make_app(emulator, lambda: RedisStore.from_url(f"redis://127.0.0.1:{port}/0"), clock)

        async def scenario(client):
            return await client.start(), await client.check("123456", "a" * 16)

        start, check = run(app, emulator, scenario)
        for response in (start, check):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "1"
            assert response.json()["error"] == "StoreUnavailable"
        assert emulator.requests == []

    def test_code_not_activated(self, emulator, clock):
        """The SMS went out but the store could not commit its code: 503, and it never approves."""

        class CommitFails(MemoryStore):
            async def commit_async(self, reservation):
                raise store_unavailable()

        store = CommitFails()
        app = make_app(emulator, lambda: store, clock)

        async def scenario(client):
            response = await client.start()
            code = client.last_code()
            return response, code

        response, code = run(app, emulator, scenario)
        assert response.status_code == 503
        assert response.json()["error"] == "CodeNotActivated"
        assert response.headers["Retry-After"] == "1"
        assert "verification_id" not in response.json()
        assert len(emulator.outbox) == 1
        assert code not in response.text


class TestCheck:
    """POST /sms/{purpose}/check."""

    def test_approved_then_not_found(self, emulator, store_factory, clock):
        """The right code with its verification id is 200 once; then 404."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            code, verification_id = await client.started()
            first = await client.check(code, verification_id)
            second = await client.check(code, verification_id)
            return first, second

        first, second = run(app, emulator, scenario)
        assert first.status_code == 200
        assert first.json()["status"] == "approved"
        assert second.status_code == 404
        assert second.json()["status"] == "not_found"

    @pytest.mark.parametrize("verification_id", [None, "", "x" * 65])
    def test_verification_id_is_required(self, emulator, store_factory, clock, verification_id):
        """A check without a (plausible) verification id is 400, and neither approves nor counts."""
        app = make_app(emulator, store_factory, clock, max_attempts=2)

        async def scenario(client):
            code, real_id = await client.started()
            body = {"phone": NUMBER, "code": code}
            if verification_id is not None:
                body["verification_id"] = verification_id
            rejected = [
                await client.http.post("/sms/sign-in/check", json={**body, "code": c})
                for c in (wrong(code), wrong(code), code)
            ]
            return rejected, await client.check(code, real_id)

        rejected, approved = run(app, emulator, scenario)
        for response in rejected:
            assert response.status_code == 400
            assert response.json()["error"] == "InvalidRequest"
            assert response.json()["fields"] == ["body.verification_id"]
            assert NUMBER not in response.text
        assert approved.status_code == 200

    def test_policy_requires_the_id(self, emulator, store_factory, clock):
        """create_app turns require_verification_id on whatever policy it is given."""
        app = make_app(emulator, store_factory, clock, require_verification_id=False)

        async def scenario(client):
            return app.state.verify.policy

        assert run(app, emulator, scenario).require_verification_id is True

    def test_stranger_with_a_wrong_id(self, emulator, store_factory, clock):
        """A stranger's guesses with another id are 404, as with nothing pending; nothing locks."""
        app = make_app(emulator, store_factory, clock, max_attempts=2)

        async def scenario(user, stranger):
            nothing = await stranger.check("123456", "A" * 16, phone=OTHER_NUMBER)
            code, verification_id = await user.started()
            guesses = [
                await stranger.check(c, "A" * 16) for c in ("123456", "654321", wrong(code), code)
            ]
            return nothing, guesses, await user.check(code, verification_id)

        nothing, guesses, owner = run(app, emulator, scenario, ips=(USER_IP, STRANGER_IP))
        assert nothing.status_code == 404
        for guess in guesses:
            assert guess.status_code == nothing.status_code
            assert guess.json() == nothing.json()
            assert "retry-after" not in guess.headers
        assert owner.status_code == 200

    def test_another_purpose_cannot_approve(self, emulator, store_factory, clock):
        """A code sent for one purpose is 404 on another purpose's route, and good on its own."""
        app = make_app(emulator, store_factory, clock, per_number_cooldown=0)

        async def scenario(client):
            register_code, register_id = await client.started(purpose="register")
            sign_in = await client.check(register_code, register_id, purpose="sign-in")
            forgot = await client.check(register_code, register_id, purpose="forgot-password")
            own = await client.check(register_code, register_id, purpose="register")
            return sign_in, forgot, own

        sign_in, forgot, own = run(app, emulator, scenario)
        assert sign_in.status_code == 404
        assert forgot.status_code == 404
        assert own.status_code == 200

    def test_the_body_cannot_pick_the_usage_type(self, emulator, store_factory, clock):
        """A usage_type in the check's body is ignored: the route's is used."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            code, verification_id = await client.started(purpose="register")
            body = {
                "phone": NUMBER,
                "code": code,
                "verification_id": verification_id,
                "usage_type": "Register",
            }
            return await client.http.post("/sms/sign-in/check", json=body)

        assert run(app, emulator, scenario).status_code == 404

    def test_wrong_code_then_locked(self, emulator, store_factory, clock):
        """Wrong codes are 401 with attempts_left; after the last, even the right one is 429."""
        app = make_app(emulator, store_factory, clock, max_attempts=2)

        async def scenario(client):
            code, verification_id = await client.started()
            answers = [await client.check(wrong(code), verification_id) for _ in range(2)]
            answers.append(await client.check(code, verification_id))
            return answers

        one, two, locked = run(app, emulator, scenario)
        assert (one.status_code, one.json()["attempts_left"]) == (401, 1)
        assert (two.status_code, two.json()["attempts_left"]) == (401, 0)
        assert locked.status_code == 429
        assert locked.json()["status"] == "too_many_attempts"
        assert locked.headers["Retry-After"] == "60"

    def test_too_many_wrong_guesses_from_one_address(self, emulator, store_factory, clock):
        """Past per_ip_failed_checks_hourly, an address's checks are 429 with Retry-After."""
        app = make_app(
            emulator, store_factory, clock, per_ip_failed_checks_hourly=2, per_number_cooldown=0
        )

        async def scenario(user, stranger):
            code, verification_id = await user.started()
            other_code, other_id = await user.started(OTHER_NUMBER)
            misses = [await user.check(wrong(code), verification_id) for _ in range(2)]
            refused = await user.check(code, verification_id)
            # Another address is not affected: the limit is the address's.
            elsewhere = await stranger.check(other_code, other_id, phone=OTHER_NUMBER)
            return misses, refused, elsewhere

        misses, refused, elsewhere = run(app, emulator, scenario, ips=(USER_IP, STRANGER_IP))
        assert [m.status_code for m in misses] == [401, 401]
        assert refused.status_code == 429
        assert refused.json()["error"] == "IpFailedChecksLimit"
        assert refused.headers["Retry-After"] == "3600"
        assert_generic(refused)
        assert elsewhere.status_code == 200

    def test_nothing_to_check(self, emulator, store_factory, clock):
        """A check with no pending code is 404."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.check("123456", "A" * 16)

        assert run(app, emulator, scenario).status_code == 404

    def test_invalid_number(self, emulator, store_factory, clock):
        """An invalid number is 400 on check too."""
        app = make_app(emulator, store_factory, clock)

        async def scenario(client):
            return await client.check("123456", "A" * 16, phone="12345")

        response = run(app, emulator, scenario)
        assert response.status_code == 400
        assert response.json()["error"] == "InvalidPhoneNumber"


class TestEnvironment:
    """The module's own ``app``, built from the environment at startup."""

    @pytest.fixture
    def env(self, monkeypatch, emulator):
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
        monkeypatch.delenv("ALIYUN_SMS_VERIFY_SECRET_KEY", raising=False)
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        return monkeypatch

    @staticmethod
    async def sign_in(client):
        code, verification_id = await client.started()
        return await client.check(code, verification_id)

    def test_module_app_reads_the_environment(self, env, emulator):
        """The connector and a MemoryStore come from ALIYUN_SMS_* at startup."""
        module = load_example()
        assert run(module.app, emulator, self.sign_in).status_code == 200
        assert len(emulator.outbox) == 1

    def test_several_workers_without_redis(self, env, emulator, caplog):
        """WEB_CONCURRENCY above 1 without ALIYUN_SMS_REDIS_URL: the app refuses to start."""
        env.setenv("WEB_CONCURRENCY", "4")
        module = load_example()
        with pytest.raises(RuntimeError, match="RedisStore"):
            run(module.app, emulator, self.sign_in)
        assert any(r.levelno == logging.ERROR for r in example_log(caplog))
        assert emulator.requests == []

    def test_several_workers_with_redis(self, env, emulator, redis_url):
        """With ALIYUN_SMS_REDIS_URL (and the secret key), several workers are fine."""
        env.setenv("WEB_CONCURRENCY", "4")
        env.setenv("ALIYUN_SMS_REDIS_URL", redis_url)
        env.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", SECRET_KEY)
        module = load_example()
        app = module.app

        async def scenario(client):
            store = app.state.verify.store
            return type(store), await self.sign_in(client)

        store_type, response = run(app, emulator, scenario)
        assert store_type is RedisStore
        assert response.status_code == 200

    def test_one_worker_declared(self, env, emulator):
        """WEB_CONCURRENCY=1 keeps the MemoryStore."""
        env.setenv("WEB_CONCURRENCY", "1")
        module = load_example()

        async def scenario(client):
            return type(module.app.state.verify.store)

        assert run(module.app, emulator, scenario) is MemoryStore
