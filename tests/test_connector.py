import json
import logging

import pytest

from aliyun_sms_connector import (
    AliyunSmsConnector,
    AliyunSmsError,
    ConfigError,
    InvalidPhoneNumberError,
    SendResult,
    TemplateNotFoundError,
    TemplateParamError,
    UsageType,
)

from . import sdk_fakes
from .conftest import SECRET, TOKEN


def sent_request(mock):
    """The SendSmsRequest handed to the SDK in the last call."""
    _client, request, _runtime = mock.call_args.args
    return request


class TestSend:
    def test_mainland_verification_code(self, connector, send_sms):
        """A mainland number is sent as 11 digits with the exact template and params."""
        result = connector.send_message("+86 138-0013-8000", "SignIn", {"code": "123456"})
        request = sent_request(send_sms)
        assert request.phone_numbers == "13800138000"
        assert request.sign_name == "AcmeSignName"
        assert request.template_code == "SMS_SIGNIN"
        assert json.loads(request.template_param) == {"code": "123456"}
        assert request.out_id is None
        assert result == SendResult(
            biz_id="900^1",
            request_id="REQ-9",
            phone_number="13800138000",
            template_code="SMS_SIGNIN",
            usage_type=UsageType.SIGN_IN,
            sent_at=result.sent_at,
        )
        assert result.sent_at.utcoffset().total_seconds() == 8 * 3600

    def test_international_number_and_generic_overseas_template(self, connector, send_sms):
        """An overseas number falls back to Generic and uses its overseas code."""
        result = connector.send_message(
            "+1 415 555 0100", UsageType.MFA_VERIFICATION, {"code": "9"}
        )
        request = sent_request(send_sms)
        assert request.phone_numbers == "14155550100"
        assert request.template_code == "SMS_GENERIC_INTL"
        assert result.usage_type is UsageType.MFA_VERIFICATION

    def test_generic_china_template(self, connector, send_sms):
        """A mainland number with the Generic fallback uses the china code."""
        connector.send_message("13800138000", "BindMfa", {"code": "1"})
        assert sent_request(send_sms).template_code == "SMS_GENERIC_CN"

    def test_logto_payload_context_is_dropped(self, connector, send_sms):
        """Logto's locale and uiLocales are not sent."""
        payload = {"code": "123456", "locale": "zh-CN", "uiLocales": "zh-CN en"}
        connector.send_message("13800138000", "Register", payload)
        assert json.loads(sent_request(send_sms).template_param) == {"code": "123456"}

    def test_out_id_is_passed_through(self, connector, send_sms):
        """out_id reaches the SDK request."""
        connector.send_message("13800138000", "Register", {"code": "1"}, out_id="order-7")
        assert sent_request(send_sms).out_id == "order-7"

    def test_one_client_is_reused(self, connector, send_sms):
        """All sends go through the single client built at construction."""
        client = connector._client
        connector.send_message("13800138000", "Register", {"code": "1"})
        connector.send_message("13800138000", "SignIn", {"code": "2"})
        assert [c.args[0] for c in send_sms.call_args_list] == [client, client]

    def test_sdk_runtime_disables_autoretry(self, connector, send_sms):
        """The SDK is told not to retry; retries are this library's decision."""
        connector.send_message("13800138000", "Register", {"code": "1"})
        runtime = send_sms.call_args.args[2]
        assert runtime.autoretry is False

    def test_accepts_a_mapping(self, logto_config, send_sms):
        """The connector takes Logto's JSON mapping directly."""
        connector = AliyunSmsConnector(logto_config)
        assert connector.config.sign_name == "AcmeSignName"
        assert "AcmeSignName" not in repr(connector)

    def test_invalid_mapping_is_a_config_error(self, logto_config):
        """A bad mapping fails at construction with ConfigError."""
        logto_config["templates"] = []
        with pytest.raises(ConfigError):
            AliyunSmsConnector(logto_config)

    def test_sdk_client_gets_the_config(self, logto_config, mocker):
        """The SDK client is built with the credentials, endpoint and timeouts."""
        logto_config.update(
            securityToken=TOKEN, endpoint="127.0.0.1:9", protocol="http", readTimeout=1234
        )
        connector = AliyunSmsConnector(logto_config)
        client = connector._client
        assert client._endpoint == "127.0.0.1:9"
        assert client._protocol == "http"
        assert client._read_timeout == 1234
        assert client._connect_timeout == 5000
        assert client._retry_options is None
        credential = client._credential.get_credential()
        assert credential.access_key_secret == SECRET
        assert credential.security_token == TOKEN


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
    def test_local_errors_never_call_the_sdk(self, connector, send_sms, to, usage, payload, error):
        """Invalid numbers, usage types and payloads fail before any call."""
        with pytest.raises(error):
            connector.send_message(to, usage, payload)
        send_sms.assert_not_called()

    def test_template_not_found_without_generic(self, logto_config, send_sms):
        """A usage type with no template and no Generic fails before any call."""
        logto_config["templates"] = [{"usageType": "SignIn", "templateCode": "S"}]
        with pytest.raises(TemplateNotFoundError):
            AliyunSmsConnector(logto_config).send_message("13800138000", "Register", {"code": "1"})
        send_sms.assert_not_called()

    def test_strict_mode_rejects_bare_mainland(self, logto_config, send_sms):
        """strictPhoneRegionNumberCheck requires the country code."""
        logto_config["strictPhoneRegionNumberCheck"] = True
        connector = AliyunSmsConnector(logto_config)
        with pytest.raises(InvalidPhoneNumberError):
            connector.send_message("13800138000", "SignIn", {"code": "1"})
        connector.send_message("8613800138000", "SignIn", {"code": "1"})
        assert sent_request(send_sms).phone_numbers == "13800138000"

    def test_out_id_must_be_text(self, connector, send_sms):
        """A non-string out_id is a typed error."""
        with pytest.raises(AliyunSmsError, match="out_id"):
            connector.send_message("13800138000", "SignIn", {"code": "1"}, out_id=5)
        send_sms.assert_not_called()


class TestPrivacy:
    def test_one_info_line_per_send(self, connector, send_sms, caplog):
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

    def test_failure_log_is_masked(self, connector, send_sms, caplog):
        """A failed send logs a WARNING without the number or code."""
        send_sms.return_value = sdk_fakes.business("isv.MOBILE_NUMBER_ILLEGAL", "13800138000 bad")
        with pytest.raises(InvalidPhoneNumberError) as info:
            connector.send_message("13800138000", "SignIn", {"code": "482913"})
        assert "13800138000" not in caplog.text + str(info.value)
        assert "isv.MOBILE_NUMBER_ILLEGAL" in caplog.text
        assert caplog.records[-1].levelno == logging.WARNING

    def test_result_repr_is_masked(self, connector, send_sms):
        """SendResult's repr shows only the last 4 digits."""
        result = connector.send_message("13800138000", "SignIn", {"code": "482913"})
        assert "13800138000" not in repr(result)
        assert "***8000" in repr(result)
        assert result.phone_number == "13800138000"

    def test_result_is_frozen(self, connector, send_sms):
        """SendResult cannot be changed."""
        import dataclasses

        result = connector.send_message("13800138000", "SignIn", {"code": "1"})
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.biz_id = "x"

    def test_connector_repr_has_no_secret(self, connector):
        """The connector's repr shows no credential."""
        assert SECRET not in repr(connector)
        assert "LTAI5t" not in repr(connector)
