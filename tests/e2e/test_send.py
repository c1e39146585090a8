"""Sending through the real SDK to the emulator: what goes over the wire."""

import json
from datetime import datetime

import pytest

from aliyun_sms_connector import AliyunSmsConnector, BatchMessage, SendResult, UsageType

from .conftest import SIGN, connector_config


def last_params(emulator):
    request = emulator.requests[-1]
    assert request.action == "SendSms"
    return request.params


class TestWire:
    def test_mainland(self, emulator, connector):
        """A mainland send carries the 11-digit number, sign, template and exact JSON."""
        result = connector.send_message("+86 138-0013-8000", "SignIn", {"code": "482913"})
        params = last_params(emulator)
        assert params["PhoneNumbers"] == "13800138000"
        assert params["SignName"] == SIGN
        assert params["TemplateCode"] == "SMS_SIGNIN"
        assert params["TemplateParam"] == '{"code":"482913"}'
        assert "OutId" not in params
        [message] = emulator.outbox
        assert isinstance(result, SendResult)
        assert result.biz_id == message.biz_id
        assert result.request_id
        assert result.phone_number == "13800138000"
        assert message.text == "【AcmeSign】Sign in with 482913."
        assert message.params == {"code": "482913"}

    def test_international_uses_generic_overseas_code(self, emulator, connector):
        """An overseas number gets country code + number and the overseas template."""
        result = connector.send_message("+1 415 555 0100", "Register", {"code": "1234"})
        params = last_params(emulator)
        assert params["PhoneNumbers"] == "14155550100"
        assert params["TemplateCode"] == "SMS_INTL"
        assert json.loads(params["TemplateParam"]) == {"code": "1234"}
        assert result.template_code == "SMS_INTL"
        assert result.usage_type is UsageType.REGISTER

    def test_hong_kong_is_overseas(self, emulator, connector):
        """+852 is sent as digits only with the overseas template."""
        connector.send_message("+852 6123 4567", "ForgotPassword", {"code": "99"})
        params = last_params(emulator)
        assert (params["PhoneNumbers"], params["TemplateCode"]) == ("85261234567", "SMS_INTL")

    def test_generic_fallback_for_mainland(self, emulator, connector):
        """A usage type without its own template uses Generic's china code."""
        connector.send_message("13800138000", "BindMfa", {"code": "7", "locale": "en"})
        params = last_params(emulator)
        assert params["TemplateCode"] == "SMS_CODE"
        assert params["TemplateParam"] == '{"code":"7"}'

    def test_us_number_without_plus_is_not_mainland(self, emulator, connector):
        """14155550100 goes out with the overseas template (Logto issue 7050)."""
        connector.send_message("14155550100", "Register", {"code": "5"})
        assert last_params(emulator)["TemplateCode"] == "SMS_INTL"

    def test_out_id_reaches_aliyun(self, emulator, connector):
        """out_id is sent as OutId and kept with the message."""
        connector.send_message("13800138000", "SignIn", {"code": "1"}, out_id="order-42")
        assert last_params(emulator)["OutId"] == "order-42"
        assert emulator.outbox[0].out_id == "order-42"

    def test_notification_template_renders_text(self, emulator):
        """Notification templates take free text and render it in the outbox."""
        config = connector_config(
            emulator,
            templates=[{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}],
        )
        AliyunSmsConnector(config).send_message(
            "13800138000", "Generic", {"name": "张三", "order": "A-1"}
        )
        assert emulator.outbox[0].text == "【AcmeSign】Hi 张三, your order A-1 shipped."

    def test_message_time_comes_from_the_clock(self, emulator, connector, clock):
        """The outbox time is the injected clock's, in China time."""
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        sent_at = emulator.outbox[0].sent_at
        assert sent_at == datetime.fromtimestamp(clock.now, sent_at.tzinfo)
        assert sent_at.utcoffset().total_seconds() == 8 * 3600


class TestSignatures:
    def test_legacy_hmac_sha1_signature(self, emulator):
        """The SDK's legacy v2 signature passes the emulator's check too."""
        config = connector_config(emulator, signatureAlgorithm="v2")
        result = AliyunSmsConnector(config).send_message("13800138000", "SignIn", {"code": "42"})
        params = last_params(emulator)
        assert params["SignatureMethod"] == "HMAC-SHA1"
        assert params["PhoneNumbers"] == "13800138000"
        assert emulator.outbox[0].biz_id == result.biz_id

    def test_sts_token_is_accepted(self, emulator):
        """An AccessKey with an STS token signs and sends."""
        config = connector_config(emulator, securityToken="sts-token-123")
        AliyunSmsConnector(config).send_message("13800138000", "SignIn", {"code": "42"})
        assert len(emulator.outbox) == 1


@pytest.mark.parametrize("sts", [False, True], ids=["ak", "sts"])
@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
class TestEveryActionEverySignature:
    """The emulator checks every signature: each action passes with each algorithm."""

    def test_send_batch_and_query(self, emulator, algorithm, sts):
        """SendSms, SendBatchSms and QuerySendDetails, signed in the body, are accepted."""
        extra = {"securityToken": "sts-token-123"} if sts else {}
        config = connector_config(
            emulator,
            signatureAlgorithm=algorithm,
            templates=[
                {"usageType": "SignIn", "templateCode": "SMS_SIGNIN"},
                {"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0},
            ],
            **extra,
        )
        connector = AliyunSmsConnector(config)
        sent = connector.send_message("13800138000", "SignIn", {"code": "482913"}, out_id="o 1")
        batch = connector.send_batch(
            [BatchMessage("13900139000", {"name": "张三", "order": "A&B=1+2"})], "Generic"
        )
        assert batch.ok, batch
        [report] = sent.query_delivery()
        assert report.out_id == "o 1"
        assert [r.action for r in emulator.requests] == [
            "SendSms",
            "SendBatchSms",
            "QuerySendDetails",
        ]
        assert emulator.outbox[1].text == "【AcmeSign】Hi 张三, your order A&B=1+2 shipped."
        for request in emulator.requests:
            assert ("SecurityToken" in request.params) is (sts and algorithm == "v2")
