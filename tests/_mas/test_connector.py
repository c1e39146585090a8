"""AliyunMasConnector over the mocked Transport, sync and async: what it sends and returns."""

import asyncio
import json
import time
from datetime import timedelta

import pytest

from aliyun_sms_connector import (
    AliyunMasConfig,
    AliyunMasConnector,
    AliyunSmsError,
    ConfigError,
    InvalidPhoneNumberError,
    InvalidResponseError,
    NetworkError,
    ServiceUnavailableError,
    TemplateNotFoundError,
    TemplateParamError,
    UsageType,
)
from tests import wire_fakes

PHONE = "13800138000"
CODE = "482913"


def answer(model=None, request_id="REQ-M", **extra):
    body = {"Code": "OK", "Message": "成功", "Success": True, "RequestId": request_id, **extra}
    if model is not None:
        body["Model"] = model
    return wire_fakes.response(body)


@pytest.fixture(params=["sync", "async"])
def run(request):
    """Calls a connector method by name, directly or through asyncio.run of its async twin."""

    def call(connector, name, *args, **kwargs):
        if request.param == "sync":
            return getattr(connector, name)(*args, **kwargs)
        return asyncio.run(getattr(connector, f"{name}_async")(*args, **kwargs))

    call.mode = request.param
    return call


def sender(transport, run):
    return transport.send if run.mode == "sync" else transport.send_async


def answer_with(transport, response):
    transport.send.return_value = response
    transport.send_async.return_value = response


class TestNumbers:
    @pytest.mark.parametrize(
        "to",
        [PHONE, "+8613800138000", "008613800138000", "8613800138000", "+86 138-0013-8000"],
    )
    def test_mainland_mobiles_in_every_form(self, mas, transport, run, to):
        """+86, 0086, 86 and bare 11 digits go out as the national number with CountryCode 86."""
        answer_with(transport, answer({"BizId": "B"}))
        result = run(mas, "send_message", to, "SignIn", {"code": CODE})
        params = wire_fakes.sent(sender(transport, run))
        assert (params["PhoneNumber"], params["CountryCode"]) == (PHONE, "86")
        assert result.phone_number == PHONE

    @pytest.mark.parametrize(
        "to",
        ["+85291234567", "+853 6612 3456", "+886 912 345 678", "+861065529988", "+14155550100"],
        ids=["hong-kong", "macao", "taiwan", "beijing-landline", "us"],
    )
    @pytest.mark.parametrize("name", ["send_message", "send_verify_code", "check_verify_code"])
    def test_anything_else_is_refused_before_the_network(self, mas, transport, run, to, name):
        """Not a mainland mobile: InvalidPhoneNumberError, and no request at all."""
        args = {
            "send_message": ((to, "SignIn", {"code": CODE}), {}),
            "send_verify_code": (
                (to, "SignIn"),
                {"code_length": 6, "valid_time": 300, "interval": 60},
            ),
            "check_verify_code": ((to, "SignIn", CODE), {}),
        }[name]
        with pytest.raises(InvalidPhoneNumberError) as caught:
            run(mas, name, *args[0], **args[1])
        digits = "".join(c for c in to if c.isdigit())
        assert digits not in str(caught.value)
        assert not transport.send.called
        assert not transport.send_async.called


class TestSendMessage:
    def test_logto_payload(self, mas, transport, run):
        """TemplateParam is the payload without locale, plus min "10"; the template is routed."""
        answer_with(transport, answer({"BizId": "900^1", "RequestId": "M"}))
        result = run(
            mas, "send_message", PHONE, "ForgotPassword", {"code": CODE, "locale": "zh-CN"}
        )
        params = wire_fakes.sent(sender(transport, run))
        assert json.loads(params["TemplateParam"]) == {"code": CODE, "min": "10"}
        assert params["TemplateCode"] == "100003"
        assert params["SignName"] == "速通互联验证码"
        assert "SchemeName" not in params
        assert "ReturnVerifyCode" not in params
        assert (result.biz_id, result.request_id) == ("900^1", "REQ-M")
        assert (result.template_code, result.usage_type) == ("100003", UsageType.FORGOT_PASSWORD)
        assert result.attempts == 1
        assert result.sent_at.utcoffset() == timedelta(hours=8)

    def test_min_from_the_payload(self, mas, transport, run):
        """The payload's own min wins over Logto's 10 (numbers become strings)."""
        answer_with(transport, answer({"BizId": "B"}))
        run(mas, "send_message", PHONE, "SignIn", {"code": CODE, "min": 5, "uiLocales": "en"})
        param = json.loads(wire_fakes.sent(sender(transport, run))["TemplateParam"])
        assert param == {"code": CODE, "min": "5"}

    @pytest.mark.parametrize(
        "payload", [{"code": "48 29"}, {"code": None}, {"code": CODE, "min": "1#"}, ["code"]]
    )
    def test_bad_payload_refused_before_the_network(self, mas, transport, run, payload):
        """Verification-code templates take [A-Za-z0-9]+ values only."""
        with pytest.raises(TemplateParamError):
            run(mas, "send_message", PHONE, "SignIn", payload)
        assert not transport.send.called
        assert not transport.send_async.called

    def test_generic_serves_a_missing_usage_type(self, mas_config, transport, run):
        """As for SMS: a usage type without an entry is sent with Generic's template."""
        mas_config["templates"] = [{"usageType": "Generic", "templateCode": "100004"}]
        answer_with(transport, answer({"BizId": "B"}))
        with AliyunMasConnector(mas_config) as connector:
            result = run(connector, "send_message", PHONE, "BindMfa", {"code": CODE})
        assert (result.template_code, result.usage_type) == ("100004", UsageType.BIND_MFA)

    def test_no_template_at_all(self, mas_config, transport, run):
        """Neither the usage type nor Generic: TemplateNotFoundError before the network."""
        mas_config["templates"] = [{"usageType": "SignIn", "templateCode": "100001"}]
        with AliyunMasConnector(mas_config) as connector, pytest.raises(TemplateNotFoundError):
            run(connector, "send_message", PHONE, "Register", {"code": CODE})
        assert not transport.send.called

    def test_model_missing(self, mas, transport, run):
        """An OK answer without Model still succeeds: the biz id is simply unknown."""
        answer_with(transport, answer(None))
        assert run(mas, "send_message", PHONE, "SignIn", {"code": CODE}).biz_id is None


class TestSendVerifyCode:
    def test_parameters(self, mas_config, transport, run):
        """##code##, min rounded up, CodeLength, ValidTime, Interval, policy 1, digits, scheme."""
        mas_config["templates"][0]["schemeName"] = "登录"
        answer_with(transport, answer({"BizId": "B", "RequestId": "M"}))
        with AliyunMasConnector(mas_config) as connector:
            result = run(
                connector,
                "send_verify_code",
                PHONE,
                "SignIn",
                code_length=6,
                valid_time=301,
                interval=45,
            )
        params = wire_fakes.sent(sender(transport, run))
        assert json.loads(params["TemplateParam"]) == {"code": "##code##", "min": "6"}
        assert {k: params[k] for k in ("CodeLength", "ValidTime", "Interval")} == {
            "CodeLength": "6",
            "ValidTime": "301",
            "Interval": "45",
        }
        assert (params["DuplicatePolicy"], params["CodeType"]) == ("1", "1")
        assert params["SchemeName"] == "登录"
        assert "ReturnVerifyCode" not in params
        assert result.biz_id == "B"

    @pytest.mark.parametrize(("valid_time", "minutes"), [(60, "1"), (1, "1"), (600, "10")])
    def test_minutes(self, mas, transport, run, valid_time, minutes):
        """min is valid_time in whole minutes, rounded up."""
        answer_with(transport, answer({"BizId": "B"}))
        run(
            mas,
            "send_verify_code",
            PHONE,
            "SignIn",
            code_length=4,
            valid_time=valid_time,
            interval=0,
        )
        assert (
            json.loads(wire_fakes.sent(sender(transport, run))["TemplateParam"])["min"] == minutes
        )

    @pytest.mark.parametrize("code_length", [4, 8])
    def test_code_length_bounds_accepted(self, mas, transport, run, code_length):
        """4 and 8 are Aliyun's bounds, both allowed."""
        answer_with(transport, answer({"BizId": "B"}))
        kwargs = {"code_length": code_length, "valid_time": 300, "interval": 60}
        run(mas, "send_verify_code", PHONE, "SignIn", **kwargs)
        assert wire_fakes.sent(sender(transport, run))["CodeLength"] == str(code_length)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"code_length": 3},
            {"code_length": 9},
            {"code_length": True},
            {"code_length": "6"},
            {"valid_time": 0},
            {"valid_time": 1.5},
            {"interval": -1},
        ],
    )
    def test_out_of_range_is_a_config_error(self, mas, transport, run, kwargs):
        """ConfigError before any request; the send never happens."""
        full = {"code_length": 6, "valid_time": 300, "interval": 60, **kwargs}
        with pytest.raises(ConfigError):
            run(mas, "send_verify_code", PHONE, "SignIn", **full)
        assert not transport.send.called
        assert not transport.send_async.called


class TestCheckVerifyCode:
    @pytest.mark.parametrize(("result", "expected"), [("PASS", True), ("UNKNOWN", False)])
    def test_verify_result(self, mas_config, transport, run, result, expected):
        """PASS is True, UNKNOWN is False; the check carries number, code and scheme."""
        mas_config["templates"][0]["schemeName"] = "登录"
        answer_with(transport, answer({"VerifyResult": result}))
        with AliyunMasConnector(mas_config) as connector:
            assert run(connector, "check_verify_code", PHONE, "SignIn", CODE) is expected
        params = wire_fakes.sent(sender(transport, run))
        assert params == {
            "PhoneNumber": PHONE,
            "CountryCode": "86",
            "VerifyCode": CODE,
            "SchemeName": "登录",
        }

    @pytest.mark.parametrize(
        "model", [None, {}, {"VerifyResult": "FAIL"}, {"VerifyResult": None}, "PASS", ["PASS"]]
    )
    def test_anything_else_is_an_invalid_response(self, mas, transport, run, model):
        """Never True on doubt: a missing or unknown VerifyResult raises InvalidResponseError."""
        answer_with(transport, answer(model))
        with pytest.raises(InvalidResponseError) as caught:
            run(mas, "check_verify_code", PHONE, "SignIn", CODE)
        assert caught.value.request_id == "REQ-M"

    def test_pass_outside_model_is_not_enough(self, mas, transport, run):
        """Only Model.VerifyResult counts, not a field elsewhere."""
        answer_with(transport, answer({}, VerifyResult="PASS"))
        with pytest.raises(InvalidResponseError):
            run(mas, "check_verify_code", PHONE, "SignIn", CODE)

    @pytest.mark.parametrize(
        "code", ["", "123", "123456789", "12 34", "\uff11\uff12\uff13\uff14", None, 482913]
    )
    def test_impossible_codes_are_false_without_a_request(self, mas, transport, run, code):
        """No code Aliyun makes (4-8 letters or digits) could match: False, no request."""
        assert run(mas, "check_verify_code", PHONE, "SignIn", code) is False
        assert not transport.send.called
        assert not transport.send_async.called


class TestRetries:
    def test_not_sent_failures_are_retried(self, mas, transport, run):
        """A refused connection and a 503 were never handled: the send is tried again."""
        responses = [
            wire_fakes.failure("connect", maybe_sent=False),
            wire_fakes.gateway("ServiceUnavailable", 503),
            answer({"BizId": "B"}),
        ]
        transport.send.side_effect = responses
        transport.send_async.side_effect = responses
        result = run(
            mas, "send_verify_code", PHONE, "SignIn", code_length=6, valid_time=300, interval=60
        )
        assert result.attempts == 3
        assert sender(transport, run).call_count == 3

    @pytest.mark.parametrize("kind", ["read_timeout", "connection_lost"])
    @pytest.mark.parametrize("name", ["send_verify_code", "check_verify_code"])
    def test_maybe_sent_is_never_retried(self, mas, transport, run, kind, name):
        """A request that may have reached Aliyun is not sent again: send or check."""
        failure = wire_fakes.failure(kind, maybe_sent=True)
        transport.send.side_effect = failure
        transport.send_async.side_effect = failure
        args = (
            {"code_length": 6, "valid_time": 300, "interval": 60}
            if name == "send_verify_code"
            else {"code": CODE}
        )
        with pytest.raises(NetworkError) as caught:
            run(mas, name, PHONE, "SignIn", **args)
        assert caught.value.maybe_sent is True
        assert sender(transport, run).call_count == 1

    def test_retries_stop_at_max_attempts(self, mas_config, transport, run):
        """maxAttempts bounds a retryable failure, as for SMS."""
        failure = wire_fakes.gateway("ServiceUnavailable", 503)
        answer_with(transport, failure)
        connector = AliyunMasConnector({**mas_config, "maxAttempts": 2, "backoffBase": 0})
        with connector, pytest.raises(ServiceUnavailableError) as caught:
            run(connector, "check_verify_code", PHONE, "SignIn", CODE)
        assert caught.value.attempts == 2

    def test_one_absolute_deadline_for_every_attempt(self, mas_config, transport, run):
        """Each attempt gets the call's deadline (config.deadline from the start), not its own."""
        responses = [wire_fakes.failure("connect", maybe_sent=False), answer({"BizId": "B"})]
        transport.send.side_effect = responses
        transport.send_async.side_effect = responses
        started = time.monotonic()
        with AliyunMasConnector({**mas_config, "deadline": 7000, "backoffBase": 0}) as connector:
            run(connector, "send_message", PHONE, "SignIn", {"code": CODE})
        deadlines = {c.kwargs["deadline"] for c in sender(transport, run).call_args_list}
        (deadline,) = deadlines
        assert started + 7 <= deadline <= time.monotonic() + 7
        assert transport.cls.call_args.kwargs["max_connections"] == 64


class TestLifecycle:
    def test_close(self, mas, transport):
        """close releases the pool; later calls raise ConnectorClosed before any request."""
        mas.close()
        assert mas.closed
        transport.close.assert_called_once_with()
        with pytest.raises(AliyunSmsError) as caught:
            mas.send_message(PHONE, "SignIn", {"code": CODE})
        assert caught.value.code == "ConnectorClosed"
        assert not transport.send.called

    def test_aclose_and_async_context(self, mas_config, transport):
        """async with closes through aclose; the async calls then refuse too."""

        async def main():
            async with AliyunMasConnector(mas_config) as connector:
                pass
            with pytest.raises(AliyunSmsError) as caught:
                await connector.check_verify_code_async(PHONE, "SignIn", CODE)
            return connector, caught.value

        connector, error = asyncio.run(main())
        assert connector.closed
        assert error.code == "ConnectorClosed"
        transport.aclose.assert_awaited_once_with()

    def test_config_object_and_repr(self, mas_config, transport):
        """A validated AliyunMasConfig is taken as is; repr shows the endpoint only."""
        config = AliyunMasConfig.model_validate(mas_config)
        with AliyunMasConnector(config) as connector:
            assert connector.config is config
            assert repr(connector) == "AliyunMasConnector(endpoint='dypnsapi.aliyuncs.com')"
            assert mas_config["accessKeySecret"] not in repr(connector)

    def test_invalid_config(self, transport):
        """A broken mapping is a ConfigError, before any pool is built."""
        with pytest.raises(ConfigError):
            AliyunMasConnector({"signName": "x"})
        assert not transport.cls.called
