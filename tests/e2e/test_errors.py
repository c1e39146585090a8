"""Every row of the error table the emulator can produce, and the deadline, over real HTTP."""

import asyncio
import socket
import time
import traceback

import pytest

from aliyun_sms_connector import (
    AccountError,
    AliyunSmsConnector,
    AliyunSmsError,
    AuthenticationError,
    InvalidPhoneNumberError,
    InvalidResponseError,
    NetworkError,
    PermissionDeniedError,
    RateLimitExceededError,
    ServiceUnavailableError,
    SignNameError,
    TemplateError,
    TemplateParamError,
)
from aliyun_sms_connector._protocol import wire
from aliyun_sms_connector.emulator import Emulator

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES, connector_config

PHONE = "138" + "00138000"
CODE = "4829" + "13"


def send(connector, phone=PHONE, usage="SignIn", payload=None):
    return connector.send_message(phone, usage, payload or {"code": CODE})


def assert_private(error):
    shown = "".join(traceback.format_exception(error))
    assert PHONE not in shown
    assert CODE not in shown
    assert KEY_SECRET not in shown


class TestProducedByTheEmulator:
    def test_unknown_access_key(self, emulator):
        """An unknown key id is InvalidAccessKeyId.NotFound, HTTP 400."""
        connector = AliyunSmsConnector(connector_config(emulator, accessKeyId="LTAInobody"))
        with pytest.raises(AuthenticationError) as info:
            send(connector)
        error = info.value
        assert (error.code, error.http_status) == ("InvalidAccessKeyId.NotFound", 400)
        assert error.request_id
        assert error.recommend.startswith("https://api.aliyun.com/troubleshoot?q=")
        assert error.retryable is False
        # Aliyun's answer is all there is: nothing is chained.
        assert (error.__cause__, error.__context__) == (None, None)
        assert emulator.outbox == []

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_wrong_secret(self, emulator, algorithm):
        """A wrong secret is SignatureDoesNotMatch, and Aliyun's echo is scrubbed."""
        config = connector_config(
            emulator, accessKeySecret="wrong-secret", signatureAlgorithm=algorithm
        )
        with pytest.raises(AuthenticationError) as info:
            send(AliyunSmsConnector(config))
        assert info.value.code == "SignatureDoesNotMatch"
        assert_private(info.value)

    def test_expired_timestamp(self, emulator, mocker):
        """A clock more than 15 minutes off is InvalidTimeStamp.Expired."""
        mocker.patch.object(wire, "timestamp", return_value="2020-01-01T00:00:00Z")
        with pytest.raises(AuthenticationError) as info:
            send(AliyunSmsConnector(connector_config(emulator)))
        assert info.value.code == "InvalidTimeStamp.Expired"

    def test_reused_nonce(self, emulator, connector, mocker):
        """A nonce seen before is SignatureNonceUsed."""
        mocker.patch.object(wire, "new_nonce", return_value="fixed-nonce")
        send(connector)
        with pytest.raises(AuthenticationError) as info:
            send(connector, phone="13900139000")
        assert info.value.code == "SignatureNonceUsed"

    def test_sts_token_checked_when_registered(self, clock):
        """With registered tokens, an unknown token is rejected."""
        tokens = {"good-token": KEY_ID}
        with Emulator(
            {KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock, security_tokens=tokens
        ) as emu:
            AliyunSmsConnector(connector_config(emu, securityToken="good-token")).send_message(
                PHONE, "SignIn", {"code": "1"}
            )
            with pytest.raises(AuthenticationError) as info:
                send(AliyunSmsConnector(connector_config(emu, securityToken="bad-token")))
            assert info.value.code == "InvalidSecurityToken.Expired"
            assert len(emu.outbox) == 1

    def test_unknown_sign_name(self, emulator):
        """An unregistered sign name is isv.SMS_SIGNATURE_ILLEGAL, HTTP 200."""
        with pytest.raises(SignNameError) as info:
            send(AliyunSmsConnector(connector_config(emulator, signName="Nobody")))
        assert (info.value.code, info.value.http_status) == ("isv.SMS_SIGNATURE_ILLEGAL", 200)

    def test_unknown_template(self, emulator):
        """An unregistered template is isv.SMS_TEMPLATE_ILLEGAL."""
        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_NONE"}]
        )
        with pytest.raises(TemplateError) as info:
            send(AliyunSmsConnector(config))
        assert info.value.code == "isv.SMS_TEMPLATE_ILLEGAL"

    def test_missing_variable(self, emulator, connector):
        """A template variable left out is isv.TEMPLATE_MISSING_PARAMETERS."""
        with pytest.raises(TemplateParamError) as info:
            send(connector, payload={"other": "1"})
        assert info.value.code == "isv.TEMPLATE_MISSING_PARAMETERS"

    def test_verification_value_checked_by_aliyun(self, emulator):
        """A config that calls a code template a notification gets Aliyun's own check."""
        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_CODE", "type": 0}]
        )
        with pytest.raises(TemplateParamError) as info:
            send(AliyunSmsConnector(config), payload={"code": "12 34"})
        assert info.value.code == "isv.TEMPLATE_PARAMS_ILLEGAL"

    def test_mainland_number_with_international_template(self, emulator):
        """An international template for a mainland number is DOMESTIC_NUMBER_NOT_SUPPORTED."""
        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_INTL"}]
        )
        with pytest.raises(InvalidPhoneNumberError) as info:
            send(AliyunSmsConnector(config))
        assert info.value.code == "isv.DOMESTIC_NUMBER_NOT_SUPPORTED"
        assert_private(info.value)

    def test_connection_refused(self):
        """Nothing listening: NetworkError, retryable, never sent."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = connector_config(type("E", (), {"endpoint": f"127.0.0.1:{port}"}))
        with pytest.raises(NetworkError) as info:
            send(AliyunSmsConnector(config))
        error = info.value
        assert (error.code, error.retryable, error.maybe_sent) == ("ConnectionFailed", True, False)
        assert_private(error)

    def test_read_timeout(self, emulator):
        """An answer slower than readTimeout: NetworkError, maybe sent, not retryable."""
        emulator.delay(1.5)
        connector = AliyunSmsConnector(connector_config(emulator, readTimeout=300))
        with pytest.raises(NetworkError) as info:
            send(connector)
        error = info.value
        assert (error.code, error.retryable, error.maybe_sent) == ("ReadTimeout", False, True)
        assert error.attempts == 1
        assert_private(error)

    def test_connection_dropped_mid_response(self, emulator, connector):
        """A connection cut mid-answer: NetworkError, maybe sent."""
        emulator.drop_connection()
        with pytest.raises(NetworkError) as info:
            send(connector)
        assert (info.value.code, info.value.maybe_sent) == ("ConnectionLost", True)
        assert_private(info.value)

    def test_503_html_keeps_status(self, emulator, connector):
        """A 503 HTML page is ServiceUnavailableError with http_status 503."""
        emulator.send_invalid_body("<html>503 Service Unavailable</html>", http_status=503, count=3)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("HTTP503", 503)
        assert info.value.retryable is True
        assert info.value.attempts == len(emulator.requests) == 3

    @pytest.mark.parametrize("body", ["not json", "", '{"Message": "no code"}'])
    def test_200_unusable_body(self, emulator, connector, body):
        """A 200 whose body is not JSON, is empty or has no Code: InvalidResponse, maybe sent."""
        emulator.send_invalid_body(body, http_status=200)
        with pytest.raises(InvalidResponseError) as info:
            send(connector)
        assert info.value.http_status == 200
        assert info.value.retryable is False
        assert info.value.maybe_sent is True


BUSINESS = [
    ("isv.SMS_SIGN_ILLEGAL", SignNameError),
    ("isv.SMS_CONTENT_ILLEGAL", TemplateError),
    ("isv.INVALID_JSON_PARAM", TemplateParamError),
    ("isv.BLACK_KEY_CONTROL_LIMIT", TemplateParamError),
    ("isv.MOBILE_NUMBER_ILLEGAL", InvalidPhoneNumberError),
    ("isv.AMOUNT_NOT_ENOUGH", AccountError),
    ("isp.RAM_PERMISSION_DENY", PermissionDeniedError),
    ("isv.DAY_LIMIT_CONTROL", RateLimitExceededError),
    ("isp.SYSTEM_ERROR", ServiceUnavailableError),
    ("isv.SOMETHING_NEW", AliyunSmsError),
]


class TestInjected:
    @pytest.mark.parametrize(("code", "cls"), BUSINESS)
    def test_business_codes(self, emulator, connector, code, cls):
        """Injected HTTP 200 codes come back as their class, through the real SDK."""
        emulator.fail_next(code, message="injected", count=3)
        with pytest.raises(cls) as info:
            send(connector)
        assert type(info.value) is cls
        assert (info.value.code, info.value.http_status) == (code, 200)
        assert info.value.message == "injected"

    def test_gateway_throttling_with_retry_after(self, emulator, connector):
        """A 400 Throttling.User with x-acs-retry-after: retryable, retry_after in seconds."""
        emulator.fail_next(
            "Throttling.User", http_status=400, headers={"x-acs-retry-after": "15"}, count=3
        )
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert (info.value.retry_after, info.value.retryable) == (0.015, True)
        assert info.value.attempts == 3

    def test_503_json(self, emulator, connector):
        """A 503 ServiceUnavailable JSON answer is ServiceUnavailableError."""
        emulator.fail_next("ServiceUnavailable", http_status=503, count=3)
        with pytest.raises(ServiceUnavailableError) as info:
            send(connector)
        assert (info.value.code, info.value.http_status) == ("ServiceUnavailable", 503)

    def test_permission_forbidden(self, emulator, connector):
        """A 403 Forbidden.RAM is PermissionDeniedError."""
        emulator.fail_next("Forbidden.RAM", http_status=403)
        with pytest.raises(PermissionDeniedError):
            send(connector)

    def test_faults_scoped_to_one_number(self, emulator, connector):
        """A fault for one number leaves other numbers alone."""
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH", phone_number="+86 139 0013 9000")
        send(connector, phone="13800138000")
        with pytest.raises(AccountError):
            send(connector, phone="8613900139000")
        send(connector, phone="13900139000", payload={"code": "2"})
        assert [m.phone_number for m in emulator.outbox] == ["13800138000", "13900139000"]

    def test_fault_count(self, emulator, connector, clock):
        """count=N fails exactly N requests."""
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH", count=2)
        for _ in range(2):
            with pytest.raises(AccountError):
                send(connector)
        send(connector)
        assert len(emulator.requests) == 3


class TestFlowControl:
    def test_minute_hour_and_day_limits(self, emulator, connector, clock):
        """1 a minute, 5 an hour, 10 a day per number and sign, with Aliyun's wording."""
        send(connector)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.code == "isv.BUSINESS_LIMIT_CONTROL"
        assert info.value.message == "触发分钟级流控Permits:1"
        assert (info.value.window, info.value.retry_after) == ("minute", 60.0)

        for _ in range(4):
            clock.advance(61)
            send(connector)
        clock.advance(61)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.message == "触发小时级流控Permits:5"
        assert info.value.window == "hour"

        for _ in range(5):
            clock.advance(3601)
            send(connector)
        clock.advance(3601)
        with pytest.raises(RateLimitExceededError) as info:
            send(connector)
        assert info.value.message == "触发天级流控Permits:10"
        assert (info.value.window, info.value.retry_after) == ("day", 86400.0)

        clock.advance(86400)
        send(connector)
        assert len(emulator.outbox) == 11

    def test_limits_are_per_number(self, emulator, connector):
        """Another number is not limited by the first one's sends."""
        send(connector, phone="13800138000")
        send(connector, phone="13900139000")
        assert len(emulator.outbox) == 2

    def test_notifications_are_not_code_limited(self, emulator):
        """Verification-code limits do not apply to notification templates."""
        config = connector_config(
            emulator,
            templates=[{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}],
        )
        connector = AliyunSmsConnector(config)
        for _ in range(3):
            connector.send_message(PHONE, "Generic", {"name": "A", "order": "1"})
        assert len(emulator.outbox) == 3


# -- the deadline: a hard bound on every send -------------------------------------

SLACK = 0.25  # the promise: a send returns or raises within deadline + 250 ms


def timed(call):
    start = time.monotonic()
    try:
        call()
    except AliyunSmsError as error:
        return error, time.monotonic() - start
    return None, time.monotonic() - start


def send_async(connector, phone=PHONE):
    return asyncio.run(connector.send_message_async(phone, "SignIn", {"code": CODE}))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
class TestDeadline:
    def test_a_slow_answer_ends_at_the_deadline(self, emulator, is_async):
        """An answer slower than the deadline (readTimeout longer): DeadlineExceeded, maybe sent."""
        emulator.delay(3)
        connector = AliyunSmsConnector(connector_config(emulator, deadline=800, readTimeout=5000))
        error, elapsed = timed(lambda: (send_async if is_async else send)(connector))
        assert isinstance(error, NetworkError)
        assert (error.code, error.maybe_sent, error.retryable) == ("DeadlineExceeded", True, False)
        assert error.attempts == len(emulator.requests) == 1
        assert elapsed < 0.8 + SLACK
        assert_private(error)

    def test_retry_waits_never_cross_it(self, emulator, is_async):
        """Throttled again and again: the retries stop before a wait would pass the deadline."""
        emulator.fail_next(
            "Throttling.User", http_status=400, count=10, headers={"x-acs-retry-after": "300"}
        )
        connector = AliyunSmsConnector(connector_config(emulator, deadline=1000, maxAttempts=10))
        error, elapsed = timed(lambda: (send_async if is_async else send)(connector))
        assert isinstance(error, RateLimitExceededError)
        assert 2 <= error.attempts == len(emulator.requests) <= 4
        assert elapsed < 1.0 + SLACK

    def test_backoff_is_cut_to_the_deadline(self, is_async):
        """Refused with a long backoff: no wait runs past the deadline."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = connector_config(
            type("E", (), {"endpoint": f"127.0.0.1:{port}"}),
            deadline=700,
            backoffBase=3000,
            backoffCap=3000,
            maxAttempts=10,
        )
        connector = AliyunSmsConnector(config)
        error, elapsed = timed(lambda: (send_async if is_async else send)(connector))
        assert isinstance(error, NetworkError)
        assert error.code == "ConnectionFailed"
        assert elapsed < 0.7 + SLACK


def test_waiting_for_a_pooled_connection_counts(emulator):
    """A saturated pool: waiting for a connection is part of the deadline, and never sent."""
    emulator.delay(1.5, count=None)
    connector = AliyunSmsConnector(
        connector_config(emulator, deadline=600, readTimeout=5000, maxConnections=1)
    )

    async def main():
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(
                connector.send_message_async(f"1390013900{i}", "SignIn", {"code": "1"})
                for i in range(3)
            ),
            return_exceptions=True,
        )
        return outcomes, time.monotonic() - started

    outcomes, elapsed = asyncio.run(main())
    assert all(isinstance(o, NetworkError) for o in outcomes), outcomes
    assert {o.code for o in outcomes} == {"DeadlineExceeded"}
    # The first had the connection and may have been sent. The others waited
    # for it; on a busy machine their deadlines start a little later than the
    # first's, so one may get the connection freed by the first's deadline and
    # be written just before its own: then it is maybe_sent too, rightly. What
    # must hold: a send reported not sent never reached the server.
    received = {r.params.get("PhoneNumbers") for r in emulator.requests}
    numbers = [f"1390013900{i}" for i in range(3)]
    assert any(o.maybe_sent for o in outcomes)
    assert all(o.maybe_sent for n, o in zip(numbers, outcomes, strict=True) if n in received)
    assert elapsed < 0.6 + SLACK


def test_aclose_with_sends_in_flight(emulator):
    """aclose() during sends gives each a typed ConnectorClosed, never a bare CancelledError."""
    emulator.delay(2, count=None)
    connector = AliyunSmsConnector(connector_config(emulator, readTimeout=5000))

    async def main():
        sends = [
            asyncio.ensure_future(
                connector.send_message_async(f"139001{i:05d}", "SignIn", {"code": "1"})
            )
            for i in range(30)
        ]
        await asyncio.sleep(0.3)
        await connector.aclose()
        return await asyncio.gather(*sends, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert not [o for o in outcomes if not isinstance(o, AliyunSmsError)], outcomes
    assert {o.code for o in outcomes} == {"ConnectorClosed"}
    assert all(o.retryable is False for o in outcomes)
    with pytest.raises(AliyunSmsError, match="closed"):
        send(connector)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_chain_token_with_a_line_break_never_leaves(emulator, mocker, is_async):
    """A CR/LF in a token from the credential chain: a typed error, nothing on the wire, no echo."""
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import CredentialModel

    token = "sts-token\r\nX-Injected: evil"
    model = CredentialModel(
        access_key_id=KEY_ID,
        access_key_secret=KEY_SECRET,
        security_token=token,
        type="default",
        provider_name="env",
    )
    mocker.patch.object(CredentialClient, "get_credential", autospec=True, return_value=model)
    mocker.patch.object(CredentialClient, "get_credential_async", autospec=True, return_value=model)
    config = {
        k: v
        for k, v in connector_config(emulator, credentials="default").items()
        if k not in ("accessKeyId", "accessKeySecret")
    }
    connector = AliyunSmsConnector(config)
    error, _ = timed(lambda: (send_async if is_async else send)(connector))
    assert isinstance(error, AliyunSmsError)
    assert (error.code, error.maybe_sent, error.attempts) == ("InvalidRequest", False, 1)
    assert emulator.requests == []
    assert "evil" not in "".join(traceback.format_exception(error))
