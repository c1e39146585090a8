"""The connector's sends, with the Transport mocked (autospec) at the sans-I/O seam."""

import asyncio
import json
import logging

import pytest

from aliyun_sms_connector import (
    AliyunSmsConnector,
    AliyunSmsError,
    BatchMessage,
    ConfigError,
    InvalidPhoneNumberError,
    SendResult,
    TemplateError,
    TemplateNotFoundError,
    TemplateParamError,
    UsageType,
)

from . import wire_fakes
from .conftest import SECRET, TOKEN


class TestSend:
    def test_mainland_verification_code(self, connector, transport):
        """A mainland number is sent as 11 digits with the exact template and params."""
        result = connector.send_message("+86 138-0013-8000", "SignIn", {"code": "123456"})
        params = wire_fakes.sent(transport.send)
        assert params["PhoneNumbers"] == "13800138000"
        assert params["SignName"] == "AcmeSignName"
        assert params["TemplateCode"] == "SMS_SIGNIN"
        assert json.loads(params["TemplateParam"]) == {"code": "123456"}
        assert "OutId" not in params
        assert result == SendResult(
            biz_id="900^1",
            request_id="REQ-9",
            phone_number="13800138000",
            template_code="SMS_SIGNIN",
            usage_type=UsageType.SIGN_IN,
            sent_at=result.sent_at,
        )
        assert result.sent_at.utcoffset().total_seconds() == 8 * 3600

    def test_international_number_and_generic_overseas_template(self, connector, transport):
        """An overseas number falls back to Generic and uses its overseas code."""
        result = connector.send_message(
            "+1 415 555 0100", UsageType.MFA_VERIFICATION, {"code": "9"}
        )
        params = wire_fakes.sent(transport.send)
        assert params["PhoneNumbers"] == "14155550100"
        assert params["TemplateCode"] == "SMS_GENERIC_INTL"
        assert result.usage_type is UsageType.MFA_VERIFICATION

    def test_generic_china_template(self, connector, transport):
        """A mainland number with the Generic fallback uses the china code."""
        connector.send_message("13800138000", "BindMfa", {"code": "1"})
        assert wire_fakes.sent(transport.send)["TemplateCode"] == "SMS_GENERIC_CN"

    def test_logto_payload_context_is_dropped(self, connector, transport):
        """Logto's locale and uiLocales are not sent."""
        payload = {"code": "123456", "locale": "zh-CN", "uiLocales": "zh-CN en"}
        connector.send_message("13800138000", "Register", payload)
        assert json.loads(wire_fakes.sent(transport.send)["TemplateParam"]) == {"code": "123456"}

    def test_out_id_is_passed_through(self, connector, transport):
        """out_id reaches Aliyun as OutId."""
        connector.send_message("13800138000", "Register", {"code": "1"}, out_id="order-7")
        assert wire_fakes.sent(transport.send)["OutId"] == "order-7"

    def test_every_parameter_is_in_the_body(self, connector, transport):
        """Nothing goes in the URL: the target is "/" and the body is a signed form."""
        connector.send_message("13800138000", "Register", {"code": "1"}, out_id="o")
        (request,) = transport.send.call_args.args
        assert (request.method, request.target) == ("POST", "/")
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.headers["x-acs-action"] == "SendSms"
        assert request.headers["Authorization"].startswith("ACS3-HMAC-SHA256 Credential=")
        assert b"13800138000" in request.body

    def test_one_transport_per_endpoint_is_reused(self, connector, transport):
        """All sends go through the one Transport built at construction."""
        connector.send_message("13800138000", "Register", {"code": "1"})
        connector.send_message("13800138000", "SignIn", {"code": "2"})
        assert transport.cls.call_count == 1
        assert transport.send.call_count == 2

    def test_the_deadline_is_absolute_and_passed_on(self, logto_config, transport, mocker):
        """Each attempt gets the call's absolute deadline and the configured timeouts."""
        mocker.patch("aliyun_sms_connector._protocol.calls.time.monotonic", return_value=1000.0)
        connector = AliyunSmsConnector(
            {**logto_config, "deadline": 7000, "connectTimeout": 1500, "readTimeout": 2500}
        )
        connector.send_message("13800138000", "Register", {"code": "1"})
        assert transport.send.call_args.kwargs == {
            "deadline": 1007.0,
            "connect_timeout": 1.5,
            "read_timeout": 2.5,
        }

    def test_accepts_a_mapping(self, logto_config, transport):
        """The connector takes Logto's JSON mapping directly."""
        connector = AliyunSmsConnector(logto_config)
        assert connector.config.sign_name == "AcmeSignName"
        assert "AcmeSignName" not in repr(connector)

    def test_invalid_mapping_is_a_config_error(self, logto_config):
        """A bad mapping fails at construction with ConfigError."""
        logto_config["templates"] = []
        with pytest.raises(ConfigError):
            AliyunSmsConnector(logto_config)

    def test_transport_gets_the_config(self, logto_config, transport):
        """The Transport is built with the protocol, endpoint, CA file and pool size."""
        logto_config.update(
            securityToken=TOKEN, endpoint="127.0.0.1:9", protocol="http", maxConnections=7
        )
        connector = AliyunSmsConnector(logto_config)
        transport.cls.assert_called_once_with(
            protocol="http", host="127.0.0.1:9", ca_file=None, max_connections=7
        )
        credential = connector._lanes["china"].credentials.fixed
        assert (credential.secret, credential.token) == (SECRET, TOKEN)
        assert SECRET not in repr(credential)
        assert TOKEN not in repr(credential)


class TestRoutes:
    def test_a_usage_type_is_routed_once_per_region(self, connector, transport, mocker):
        """A route depends on the config alone: worked out once per usage type and region."""
        from aliyun_sms_connector._protocol import calls

        spy = mocker.spy(calls, "route")
        for code in ("1", "2"):
            connector.send_message("13800138000", "SignIn", {"code": code})
        connector.send_message("13800138000", "Generic", {"code": "3"})
        for code in ("4", "5"):
            # Generic's {china, overseas} code: SignIn's own is domestic.
            connector.send_message("+14155550100", "Generic", {"code": code})
        assert [c.args[1:] for c in spy.call_args_list] == [
            ("SignIn", "china"),
            ("Generic", "china"),
            ("Generic", "overseas"),
        ]
        sent = wire_fakes.all_sent(transport.send)
        assert [p["TemplateParam"] for p in sent] == [f'{{"code":"{i}"}}' for i in "12345"]

    def test_an_unknown_usage_type_is_refused_every_time(self, connector, transport):
        """A usage type that routes nowhere is never kept: each call raises."""
        for _ in range(2):
            with pytest.raises(TemplateNotFoundError):
                connector.send_message("13800138000", "NoSuchUsage", {"code": "1"})
        transport.send.assert_not_called()


class TestBeforeTheNetwork:
    @pytest.mark.parametrize(
        ("to", "usage", "payload", "error"),
        [
            ("123", "SignIn", {"code": "1"}, InvalidPhoneNumberError),
            ("13800138000", "Nope", {"code": "1"}, TemplateNotFoundError),
            ("13800138000", "SignIn", {"code": "1 2"}, TemplateParamError),
            ("13800138000", "SignIn", ["code"], TemplateParamError),
        ],
    )
    def test_local_errors_never_send(self, connector, transport, to, usage, payload, error):
        """Invalid numbers, usage types and payloads fail before any request."""
        with pytest.raises(error):
            connector.send_message(to, usage, payload)
        transport.send.assert_not_called()

    def test_template_not_found_without_generic(self, logto_config, transport):
        """A usage type with no template and no Generic fails before any request."""
        logto_config["templates"] = [{"usageType": "SignIn", "templateCode": "S"}]
        with pytest.raises(TemplateNotFoundError):
            AliyunSmsConnector(logto_config).send_message("13800138000", "Register", {"code": "1"})
        transport.send.assert_not_called()

    def test_strict_mode_rejects_bare_mainland(self, logto_config, transport):
        """strictPhoneRegionNumberCheck requires the country code."""
        logto_config["strictPhoneRegionNumberCheck"] = True
        connector = AliyunSmsConnector(logto_config)
        with pytest.raises(InvalidPhoneNumberError):
            connector.send_message("13800138000", "SignIn", {"code": "1"})
        connector.send_message("8613800138000", "SignIn", {"code": "1"})
        assert wire_fakes.sent(transport.send)["PhoneNumbers"] == "13800138000"

    def test_out_id_must_be_text(self, connector, transport):
        """A non-string out_id is a typed error."""
        with pytest.raises(AliyunSmsError, match="out_id"):
            connector.send_message("13800138000", "SignIn", {"code": "1"}, out_id=5)
        transport.send.assert_not_called()


class TestPrivacy:
    def test_one_info_line_per_send(self, connector, transport, caplog):
        """A send logs one INFO line with masked number, ids and timing; no code."""
        caplog.set_level(logging.DEBUG, logger="aliyun_sms_connector")
        connector.send_message("13800138000", "SignIn", {"code": "482913"})
        records = [r for r in caplog.records if r.name == "aliyun_sms_connector"]
        assert len(records) == 1
        line = records[0].getMessage()
        assert records[0].levelno == logging.INFO
        for part in ("usage_type=SignIn", "template=SMS_SIGNIN", "to=***8000", "biz_id=900^1"):
            assert part in line
        assert "request_id=REQ-9" in line
        assert "elapsed_ms=" in line
        assert "13800138000" not in line
        assert "482913" not in line
        assert SECRET not in caplog.text

    @pytest.mark.parametrize("code", ["8000", "138000"])
    def test_a_code_that_ends_the_number_is_not_logged(self, connector, transport, caplog, code):
        """A code holding the number's last 4 digits hides the whole mask in the log line."""
        caplog.set_level(logging.INFO, logger="aliyun_sms_connector")
        connector.send_message("13800138000", "SignIn", {"code": code})
        (record,) = [r for r in caplog.records if r.name == "aliyun_sms_connector"]
        line = record.getMessage()
        assert " to=*** " in line
        assert "8000" not in line

    def test_failure_log_is_masked(self, connector, transport, caplog):
        """A failed send logs a WARNING without the number or code."""
        transport.send.return_value = wire_fakes.business(
            "isv.MOBILE_NUMBER_ILLEGAL", "13800138000 bad"
        )
        with pytest.raises(InvalidPhoneNumberError) as info:
            connector.send_message("13800138000", "SignIn", {"code": "482913"})
        assert "13800138000" not in caplog.text + str(info.value)
        assert "isv.MOBILE_NUMBER_ILLEGAL" in caplog.text
        assert caplog.records[-1].levelno == logging.WARNING

    def test_result_repr_is_masked(self, connector, transport):
        """SendResult's repr shows only the last 4 digits."""
        result = connector.send_message("13800138000", "SignIn", {"code": "482913"})
        assert "13800138000" not in repr(result)
        assert "***8000" in repr(result)
        assert result.phone_number == "13800138000"

    def test_result_is_frozen(self, connector, transport):
        """SendResult cannot be changed."""
        import dataclasses

        result = connector.send_message("13800138000", "SignIn", {"code": "1"})
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.biz_id = "x"

    def test_connector_repr_has_no_secret(self, connector):
        """The connector's repr shows no credential."""
        assert SECRET not in repr(connector)
        assert "LTAI5t" not in repr(connector)

    def test_a_half_built_connector_renders_in_a_traceback(self):
        """A failed __init__'s frame (self half built) renders with capture_locals."""
        import traceback

        with pytest.raises(ConfigError) as info:
            AliyunSmsConnector({"accessKeyId": "x"})
        shown = "".join(
            traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
        )
        assert "AliyunSmsConnector(<not built>)" in shown


class TestTemplateRegion:
    """A plain templateCode serves its type's region only; nothing is sent otherwise."""

    def test_overseas_number_and_domestic_template(self, connector, transport):
        """+1 with SignIn's plain type-2 code: TemplateError before any request."""
        with pytest.raises(TemplateError) as info:
            connector.send_message("+1 312 555 0100", "SignIn", {"code": "1"})
        assert info.value.code == "TemplateRegionMismatch"
        assert "SMS_SIGNIN (SignIn) is domestic (type 2); +1 numbers need" in str(info.value)
        transport.send.assert_not_called()
        transport.send_async.assert_not_called()

    def test_async_path(self, connector, transport):
        """The async twin refuses alike, before any request."""

        async def main():
            with pytest.raises(TemplateError, match="is domestic"):
                await connector.send_message_async("+85261234567", "Register", {"code": "1"})

        asyncio.run(main())
        transport.send.assert_not_called()
        transport.send_async.assert_not_called()

    def test_batch_rejects_only_the_recipients_it_cannot_serve(self, connector, transport):
        """In a batch the overseas recipient is rejected, the mainland one is still sent."""
        result = connector.send_batch(
            [
                BatchMessage("+13125550100", {"code": "1"}),
                BatchMessage("13800138000", {"code": "2"}),
            ],
            "SignIn",
        )
        [rejected] = result.rejected
        assert (rejected.index, rejected.error.code) == (0, "TemplateRegionMismatch")
        [sent] = wire_fakes.all_sent(transport.send)
        assert json.loads(sent["PhoneNumberJson"]) == ["13800138000"]

    def test_each_send_is_checked(self, connector, transport):
        """A refusal is never cached as a route: the next send is refused too."""
        for _ in range(2):
            with pytest.raises(TemplateError):
                connector.send_message("+13125550100", "SignIn", {"code": "1"})
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        assert transport.send.call_count == 1
