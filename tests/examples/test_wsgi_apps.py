"""examples/django_app.py and examples/flask_app.py, through their frameworks' test clients.

Both run against the emulator, on MemoryStore and on a real redis-server, and
must answer every request as the FastAPI example does: one table,
examples/_http_errors.py.
"""

from __future__ import annotations

import importlib
import json
import logging
import socket

import pytest

from aliyun_sms_connector.verify import MemoryStore, RedisStore, VerificationPolicy
from aliyun_sms_connector.verify._store import store_unavailable
from tests.verify.conftest import NUMBER, OTHER_NUMBER, SECRET_KEY

from .conftest import app_config

USER_IP = "203.0.113.5"
STRANGER_IP = "198.51.100.7"
PROXY_IP = "10.0.0.5"
LEAKY_MESSAGE = "签名不合法 upstream sms-gw-07.cn-hangzhou.internal.aliyun-inc.com refused"

django_app = importlib.import_module("examples.django_app")
flask_app = importlib.import_module("examples.flask_app")


class Reply:
    """What either test client answered, in one shape."""

    def __init__(self, status, body, headers) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.text = json.dumps(body, ensure_ascii=False)


class FlaskApp:
    """examples.flask_app through Flask's test client."""

    logger = "examples.flask_app"

    def __init__(self, config, store, *, clock, policy) -> None:
        self.app = flask_app.create_app(
            config, store, secret_key=SECRET_KEY, policy=policy, clock=clock
        )
        self.client = self.app.test_client()

    def post(self, path, body, *, ip=USER_IP, forwarded=None, raw=None):
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        kwargs = {"data": raw, "content_type": "application/json"} if raw else {"json": body}
        response = self.client.post(
            path, environ_base={"REMOTE_ADDR": ip}, headers=headers, **kwargs
        )
        return Reply(response.status_code, response.get_json(), response.headers)

    def get(self, path):
        return self.client.get(path, environ_base={"REMOTE_ADDR": USER_IP}).status_code

    def trust(self, *proxies):
        import ipaddress

        self.app.config["TRUSTED_PROXIES"] = tuple(ipaddress.ip_network(p) for p in proxies)

    def close(self):
        flask_app.close_app(self.app)


class DjangoApp:
    """examples.django_app through Django's test client."""

    logger = "examples.django_app"

    def __init__(self, config, store, *, clock, policy) -> None:
        from examples._settings import build_verifier

        self.verifier = build_verifier(
            config,
            store,
            secret_key=SECRET_KEY,
            policy=policy,
            clock=clock,
            logger=logging.getLogger(self.logger),
        )
        django_app.use_verifier(self.verifier)
        self.overrides = None

    def _client(self, ip, headers=None):
        from django.test import Client

        return Client(REMOTE_ADDR=ip, HTTP_HOST="localhost", headers=headers or {})

    def post(self, path, body, *, ip=USER_IP, forwarded=None, raw=None):
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        data = raw or json.dumps(body)
        response = self._client(ip, headers).post(path, data, content_type="application/json")
        return Reply(response.status_code, json.loads(response.content), response.headers)

    def get(self, path):
        return self._client(USER_IP).get(path).status_code

    def trust(self, *proxies):
        import ipaddress

        from django.test import override_settings

        self.overrides = override_settings(
            TRUSTED_PROXIES=tuple(ipaddress.ip_network(p) for p in proxies)
        )
        self.overrides.enable()

    def close(self):
        if self.overrides is not None:
            self.overrides.disable()
        django_app.use_verifier(None)
        self.verifier.close()


FRAMEWORKS = {"django": DjangoApp, "flask": FlaskApp}


@pytest.fixture(params=sorted(FRAMEWORKS))
def framework(request):
    return FRAMEWORKS[request.param]


@pytest.fixture
def make(framework, emulator, store_factory, clock):
    """Builds the framework's app on the emulator and the store under test; closes it after."""
    apps = []

    def build(store=None, config=None, **policy):
        app = framework(
            config or app_config(emulator),
            store or store_factory,
            clock=clock,
            policy=VerificationPolicy(**policy),
        )
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.close()


def start(app, phone=NUMBER, purpose="sign-in", **kwargs):
    return app.post(f"/sms/{purpose}/start", {"phone": phone}, **kwargs)


def check(app, code, verification_id, phone=NUMBER, purpose="sign-in", **kwargs):
    body = {"phone": phone, "code": code, "verification_id": verification_id}
    return app.post(f"/sms/{purpose}/check", body, **kwargs)


def last_code(emulator):
    return emulator.outbox[-1].params["code"]


def wrong(code):
    return "000000" if code != "000000" else "111111"


def assert_generic(reply):
    """The body is the example's own fixed text: nothing of Aliyun's message."""
    assert set(reply.body) - {"verification_id"} == {"error", "message"}
    for text in ("aliyun-inc", "签名", "upstream", "isv."):
        assert text not in reply.text


class TestStartAndCheck:
    def test_start_then_check_wrong_right_and_again(self, make, emulator):
        """202; a wrong code is 401 with attempts_left; the right one 200 once; then 404."""
        app = make()
        started = start(app)
        assert started.status == 202
        assert set(started.body) == {
            "verification_id",
            "purpose",
            "to",
            "expires_at",
            "resend_after",
        }
        assert started.body["to"] == "***8000"
        code, verification_id = last_code(emulator), started.body["verification_id"]
        assert code not in started.text
        missed = check(app, wrong(code), verification_id)
        assert (missed.status, missed.body["attempts_left"]) == (401, 4)
        approved = check(app, code, verification_id)
        assert (approved.status, approved.body["status"]) == (200, "approved")
        again = check(app, code, verification_id)
        assert (again.status, again.body["status"]) == (404, "not_found")

    @pytest.mark.parametrize(
        ("purpose", "template"),
        [("sign-in", "SMS_SIGN_IN"), ("register", "SMS_REGISTER"), ("forgot-password", "SMS_CODE")],
    )
    def test_the_route_picks_the_usage_type(self, make, emulator, purpose, template):
        """Each purpose sends its own usage type's template."""
        assert start(make(), purpose=purpose).status == 202
        assert [m.template_code for m in emulator.outbox] == [template]

    def test_another_purpose_cannot_approve(self, make, emulator):
        """A code sent for register is 404 on the sign-in route."""
        app = make()
        started = start(app, purpose="register")
        code = last_code(emulator)
        verification_id = started.body["verification_id"]
        assert check(app, code, verification_id, purpose="sign-in").status == 404
        assert check(app, code, verification_id, purpose="register").status == 200

    def test_locked_after_the_last_attempt(self, make, emulator):
        """After max_attempts wrong codes, even the right one is 429 with Retry-After."""
        app = make(max_attempts=2)
        verification_id = start(app).body["verification_id"]
        code = last_code(emulator)
        assert [check(app, wrong(code), verification_id).status for _ in range(2)] == [401, 401]
        locked = check(app, code, verification_id)
        assert (locked.status, locked.body["status"]) == (429, "too_many_attempts")
        assert locked.headers["Retry-After"] == "60"

    def test_only_post(self, make):
        """GET is 405: the routes change state."""
        assert make().get("/sms/sign-in/start") == 405


class TestErrorMapping:
    """Every error class maps to the same status and body as in the FastAPI example."""

    def test_cooldown(self, make, clock):
        """A second start within the cooldown is 429 VerificationCooldown with Retry-After."""
        app = make()
        start(app)
        clock.advance(15.5)
        reply = start(app)
        assert reply.status == 429
        assert reply.body["error"] == "VerificationCooldown"
        assert reply.headers["Retry-After"] == "45"

    def test_aliyun_rate_limit(self, make, emulator):
        """Aliyun's flow control is 429 RateLimited, with its window as Retry-After."""
        app = make()
        emulator.fail_next("isv.BUSINESS_LIMIT_CONTROL", message="触发小时级流控Permits:5")
        reply = start(app)
        assert (reply.status, reply.body["error"]) == (429, "RateLimited")
        assert reply.headers["Retry-After"] == "3600"
        assert "流控" not in reply.text

    @pytest.mark.parametrize("phone", ["12345", "+86 10 1234"])
    def test_invalid_number(self, make, emulator, phone):
        """An invalid number is 400 InvalidPhoneNumber, on start and on check; nothing is sent."""
        app = make()
        for reply in (start(app, phone), check(app, "123456", "A" * 16, phone=phone)):
            assert reply.status == 400
            assert reply.body == {
                "error": "InvalidPhoneNumber",
                "message": "the phone number is not valid",
            }
        assert emulator.requests == []

    def test_aliyun_invalid_number(self, make, emulator):
        """Aliyun judging the number invalid is 400 with the example's own text."""
        app = make()
        emulator.fail_next("isv.MOBILE_NUMBER_ILLEGAL", message=LEAKY_MESSAGE)
        reply = start(app)
        assert (reply.status, reply.body["error"]) == (400, "InvalidPhoneNumber")
        assert_generic(reply)

    def test_country_not_allowed(self, make, emulator):
        """A number outside allowed_countries is 403 CountryNotAllowed."""
        reply = start(make(allowed_countries={"CN"}), "+85261234567")
        assert (reply.status, reply.body["error"]) == (403, "CountryNotAllowed")
        assert emulator.requests == []

    @pytest.mark.parametrize("phone", ["+85261234567", "+1 312 555 0100"])
    def test_no_template_for_the_region(self, make, emulator, caplog, phone):
        """A plain domestic template and an overseas number: 500 RegionNotServed, nothing sent.

        Not the user's fault (no 4xx), not temporary (no 503): the config
        lacks an international template, and the log says which to give.
        """
        caplog.set_level(logging.INFO)
        app = make()
        reply = start(app, phone)
        assert reply.status == 500
        assert reply.body == {
            "error": "RegionNotServed",
            "message": "codes cannot be sent to numbers in this region",
        }
        assert "Retry-After" not in reply.headers
        assert emulator.requests == []
        [line] = [r for r in caplog.records if r.name == app.logger]
        assert line.levelno == logging.ERROR
        assert "TemplateRegionMismatch" in line.getMessage()
        assert '{"china": ..., "overseas": ...}' in line.getMessage()
        assert phone.replace(" ", "")[-8:] not in line.getMessage()

    def test_aliyun_failure_that_is_ours(self, make, emulator):
        """A sign-name refusal is 502 SmsFailed with a fixed text."""
        app = make()
        emulator.fail_next("isv.SMS_SIGNATURE_ILLEGAL", message=LEAKY_MESSAGE)
        reply = start(app)
        assert reply.status == 502
        assert reply.body == {"error": "SmsFailed", "message": "the code could not be sent"}

    def test_aliyun_unavailable(self, make, emulator):
        """Aliyun failing in a retryable way, every attempt: 503 SmsUnavailable."""
        app = make()
        emulator.fail_next("isp.SYSTEM_ERROR", message=LEAKY_MESSAGE, count=3)
        reply = start(app)
        assert (reply.status, reply.body["error"]) == (503, "SmsUnavailable")
        assert reply.headers["Retry-After"] == "1"
        assert_generic(reply)

    def test_maybe_sent(self, make, emulator):
        """The connection broke after the request: 504 with the id that checks the code."""
        app = make()
        emulator.drop_connection()
        reply = start(app)
        assert (reply.status, reply.body["error"]) == (504, "SmsUncertain")
        assert reply.headers["Retry-After"] == "60"
        code = json.loads(emulator.requests[-1].params["TemplateParam"])["code"]
        assert check(app, code, reply.body["verification_id"]).status == 200

    def test_store_unavailable(self, make, emulator):
        """A store that cannot be reached is 503 StoreUnavailable; no SMS is sent."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app = make(store=lambda: RedisStore.from_url(f"redis://127.0.0.1:{port}/0"))
        for reply in (start(app), check(app, "123456", "A" * 16)):
            assert (reply.status, reply.body["error"]) == (503, "StoreUnavailable")
            assert reply.headers["Retry-After"] == "1"
        assert emulator.requests == []

    def test_code_not_activated(self, make, emulator):
        """The SMS went out but its code could not be committed: 503 CodeNotActivated."""

        class CommitFails(MemoryStore):
            def commit(self, reservation):
                raise store_unavailable()

        store = CommitFails()
        reply = start(make(store=lambda: store))
        assert (reply.status, reply.body["error"]) == (503, "CodeNotActivated")
        assert len(emulator.outbox) == 1

    @pytest.mark.parametrize("purpose", ["SignIn", "generic", "x" * 200])
    def test_unknown_purpose(self, make, emulator, purpose):
        """A purpose the app does not serve is 400 UnknownUsageType; nothing is sent."""
        app = make()
        for reply in (start(app, purpose=purpose), check(app, "1", "a", purpose=purpose)):
            assert (reply.status, reply.body["error"]) == (400, "UnknownUsageType")
            assert "Generic" not in reply.text
        assert emulator.requests == []

    @pytest.mark.parametrize(
        ("body", "raw", "fields"),
        [
            ({}, None, ["body.phone"]),
            ({"phone": 13800138000}, None, ["body.phone"]),
            ({"phone": "1" * 41}, None, ["body.phone"]),
            (None, "{not json", ["body.phone"]),
        ],
    )
    def test_invalid_body(self, make, emulator, body, raw, fields):
        """A malformed body is 400 naming the fields, never echoing the input."""
        reply = make().post("/sms/sign-in/start", body, raw=raw)
        assert reply.status == 400
        assert reply.body == {
            "error": "InvalidRequest",
            "message": "the request is not valid",
            "fields": fields,
        }
        assert "13800138000" not in reply.text
        assert emulator.requests == []

    def test_check_needs_the_verification_id(self, make, emulator):
        """A check without a verification id is 400 naming it, and neither approves nor counts."""
        app = make(max_attempts=1)
        verification_id = start(app).body["verification_id"]
        code = last_code(emulator)
        reply = app.post("/sms/sign-in/check", {"phone": NUMBER, "code": wrong(code)})
        assert (reply.status, reply.body["fields"]) == (400, ["body.verification_id"])
        assert check(app, code, verification_id).status == 200


class TestClientIp:
    def test_per_ip_limit_counts_the_peer(self, make):
        """Without trusted proxies, X-Forwarded-For is ignored: the peer is counted."""
        app = make(per_ip_hourly=1)
        assert start(app, "13800138001", forwarded="192.0.2.1").status == 202
        refused = start(app, "13800138002", forwarded="192.0.2.2")
        assert (refused.status, refused.body["error"]) == (429, "IpHourlyLimit")
        assert start(app, "13800138003", ip=STRANGER_IP).status == 202

    def test_behind_a_trusted_proxy(self, make):
        """From a trusted proxy, the right-most untrusted X-Forwarded-For entry is the client."""
        app = make(per_ip_hourly=1)
        app.trust(PROXY_IP)
        # The client wrote a fake first entry; the proxy appended the real peer.
        assert start(app, "13800138001", ip=PROXY_IP, forwarded=f"1.2.3.4, {USER_IP}").status == 202
        same_user = start(app, "13800138002", ip=PROXY_IP, forwarded=f"5.6.7.8, {USER_IP}")
        assert (same_user.status, same_user.body["error"]) == (429, "IpHourlyLimit")
        other = start(app, "13800138003", ip=PROXY_IP, forwarded=STRANGER_IP)
        assert other.status == 202

    def test_forwarded_entry_that_is_no_ip(self, make, emulator, caplog):
        """A garbled X-Forwarded-For from a trusted proxy is 400, logged with the fix."""
        caplog.set_level(logging.INFO)
        app = make()
        app.trust(PROXY_IP)
        reply = start(app, ip=PROXY_IP, forwarded="not-an-ip")
        assert (reply.status, reply.body["error"]) == (400, "InvalidRequest")
        assert emulator.requests == []
        assert any("TRUSTED_PROXIES" in r.getMessage() for r in caplog.records)


class TestEnvironment:
    """Built from the environment, once per process."""

    @pytest.fixture
    def env(self, monkeypatch, emulator, tmp_path):
        path = tmp_path / "logto.json"
        path.write_text(json.dumps(app_config(emulator)), encoding="utf-8")
        for name in ("ALIYUN_SMS_REDIS_URL", "REDIS_URL", "ALIYUN_SMS_VERIFY_SECRET_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
        monkeypatch.setenv("ALIYUN_SMS_CONFIG", str(path))
        return monkeypatch

    def test_flask_factory_reads_the_environment(self, env, emulator, caplog):
        """create_app() with no argument: ALIYUN_SMS_CONFIG's file, and a loud MemoryStore."""
        app = flask_app.create_app()
        try:
            store = app.extensions["aliyun_sms_verify"].service.store
            assert type(store) is MemoryStore
            warning = next(r for r in caplog.records if r.name == "examples.flask_app")
            assert warning.levelno == logging.WARNING
            assert "gunicorn -w 4" in warning.getMessage()
            reply = app.test_client().post(
                "/sms/sign-in/start",
                json={"phone": NUMBER},
                environ_base={"REMOTE_ADDR": USER_IP},
            )
            assert reply.status_code == 202
        finally:
            flask_app.close_app(app)

    def test_django_builds_once_on_first_use(self, env, emulator, redis_url):
        """get_service() builds from the environment (REDIS_URL here) once, then reuses it."""
        env.setenv("REDIS_URL", redis_url)
        env.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", SECRET_KEY)
        previous = django_app.use_verifier(None)
        try:
            first = django_app.get_service()
            assert django_app.get_service() is first
            assert type(first.store) is RedisStore
        finally:
            built = django_app.use_verifier(previous)
            if built is not None:
                built.close()

    @pytest.mark.parametrize("name", ["REDIS_URL", None])
    def test_several_workers(self, env, emulator, redis_url, name):
        """WEB_CONCURRENCY above 1 needs a Redis URL; with one, it starts."""
        env.setenv("WEB_CONCURRENCY", "4")
        if name is None:
            with pytest.raises(RuntimeError, match="RedisStore"):
                flask_app.create_app()
            return
        env.setenv(name, redis_url)
        env.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", SECRET_KEY)
        app = flask_app.create_app(store=None)
        try:
            assert type(app.extensions["aliyun_sms_verify"].service.store) is RedisStore
        finally:
            flask_app.close_app(app)


def test_other_numbers_are_independent(make, emulator):
    """Two numbers verify independently (a smoke test of the store under the app)."""
    app = make(per_number_cooldown=0)
    first = start(app)
    first_code = last_code(emulator)
    second = start(app, OTHER_NUMBER)
    second_code = last_code(emulator)
    assert check(app, second_code, second.body["verification_id"], phone=OTHER_NUMBER).status == 200
    assert check(app, first_code, first.body["verification_id"]).status == 200
