"""The emulator's answers to malformed or unusual requests, as Aliyun gives them."""

import json

import pytest
import requests
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import utils as sdk_utils
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

from aliyun_sms_connector.emulator import Emulator

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES
from .test_emulator_sdk import raw_client


def sdk_client(emulator, key_id, secret, **extra):
    config = Config(
        access_key_id=key_id,
        access_key_secret=secret,
        endpoint=emulator.endpoint,
        protocol="http",
        **extra,
    )
    return Client(config)


def send(emulator, **fields):
    defaults = {"phone_numbers": "13800138000", "sign_name": SIGN, "template_code": "SMS_CODE"}
    request = models.SendSmsRequest(**{**defaults, **fields})
    return raw_client(emulator).send_sms_with_options(request, RuntimeOptions()).body


def gateway_error(call):
    with pytest.raises(ClientException) as info:
        call()
    return info.value.code


class TestAuthentication:
    def test_unsigned_request(self, emulator):
        """A request with no signature at all is IncompleteSignature."""
        answer = requests.post(f"http://{emulator.endpoint}/?Action=SendSms", timeout=5)
        assert answer.status_code == 400
        assert answer.json()["Code"] == "IncompleteSignature"

    def test_incomplete_authorization_header(self, emulator):
        """An ACS3 header without its fields is IncompleteSignature."""
        answer = requests.post(
            f"http://{emulator.endpoint}/",
            headers={"Authorization": "ACS3-HMAC-SHA256 Credential=x", "x-acs-action": "SendSms"},
            timeout=5,
        )
        assert answer.json()["Code"] == "IncompleteSignature"

    def test_body_hash_must_match(self, emulator, mocker):
        """A body whose SHA-256 differs from x-acs-content-sha256 fails the signature."""
        original = sdk_utils.Utils.hash

        def wrong_hash(raw, sign_type):
            return original(raw + b"tampered", sign_type)

        mocker.patch.object(sdk_utils.Utils, "hash", side_effect=wrong_hash)
        assert gateway_error(lambda: send(emulator, template_param="{}")) == "SignatureDoesNotMatch"

    def test_bad_timestamp_format(self, emulator, mocker):
        """A timestamp that is not ISO 8601 is InvalidTimeStamp.Format."""
        mocker.patch.object(sdk_utils.Utils, "get_timestamp", return_value="yesterday")
        assert gateway_error(lambda: send(emulator)) == "InvalidTimeStamp.Format"

    def test_v2_unknown_key(self, emulator):
        """The legacy signature path also checks the key id."""
        stranger = sdk_client(emulator, "LTAInobody", "x", signature_algorithm="v2")
        request = models.SendSmsRequest(phone_numbers="13800138000", sign_name=SIGN)
        code = gateway_error(lambda: stranger.send_sms_with_options(request, RuntimeOptions()))
        assert code == "InvalidAccessKeyId.NotFound"

    def test_token_for_another_key(self, clock):
        """A registered token used with another key is MismatchWithAccessKey."""
        keys = {KEY_ID: KEY_SECRET, "LTAIother": "other"}
        tokens = {"tok": "LTAIother"}
        with Emulator(keys, [SIGN], TEMPLATES, clock, security_tokens=tokens) as emulator:
            client = sdk_client(emulator, KEY_ID, KEY_SECRET, security_token="tok")
            request = models.SendSmsRequest(phone_numbers="13800138000", sign_name=SIGN)
            code = gateway_error(lambda: client.send_sms_with_options(request, RuntimeOptions()))
            assert code == "InvalidSecurityToken.MismatchWithAccessKey"


class TestSendSmsChecks:
    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"phone_numbers": ""}, "isv.MOBILE_NUMBER_ILLEGAL"),
            ({"phone_numbers": ",".join(["13800138000"] * 1001)}, "isv.MOBILE_COUNT_OVER_LIMIT"),
            ({"phone_numbers": "+85261234567"}, "isv.MOBILE_NUMBER_ILLEGAL"),
            ({"phone_numbers": "0085261234567"}, "isv.MOBILE_NUMBER_ILLEGAL"),
            ({"template_param": "{code:1}"}, "isv.INVALID_JSON_PARAM"),
            ({"template_param": '["1"]'}, "isv.INVALID_JSON_PARAM"),
            ({"template_param": '{"code":"12 34"}'}, "isv.TEMPLATE_PARAMS_ILLEGAL"),
        ],
    )
    def test_business_rejections(self, emulator, fields, code):
        """Aliyun's HTTP 200 business checks."""
        fields.setdefault("template_param", '{"code":"1"}')
        assert send(emulator, **fields).code == code
        assert emulator.outbox == []

    @pytest.mark.parametrize(
        ("template_param", "code"),
        [
            # Not JSON at all (RFC 8259 has no such literals): Python's parser takes them.
            ('{"code":NaN}', "isv.INVALID_JSON_PARAM"),
            ('{"code":Infinity}', "isv.INVALID_JSON_PARAM"),
            ('{"code":-Infinity}', "isv.INVALID_JSON_PARAM"),
            # JSON, but not a string or a number: refused like null, objects and arrays.
            ('{"code":true}', "isv.INVALID_JSON_PARAM"),
            ('{"code":false}', "isv.INVALID_JSON_PARAM"),
            # Numbers whose printed form is not [A-Za-z0-9]+.
            ('{"code":1e400}', "isv.TEMPLATE_PARAMS_ILLEGAL"),
            ('{"code":1E2}', "isv.TEMPLATE_PARAMS_ILLEGAL"),
            ('{"code":1.0}', "isv.TEMPLATE_PARAMS_ILLEGAL"),
            ('{"code":-5}', "isv.TEMPLATE_PARAMS_ILLEGAL"),
        ],
    )
    def test_verification_code_values_that_are_not_alphanumeric(
        self, emulator, template_param, code
    ):
        """JSON true/false, NaN, Infinity and floats are no verification code; nothing is sent."""
        assert send(emulator, template_param=template_param).code == code
        assert emulator.outbox == []

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "true", "null"])
    def test_notification_values_that_are_not_strings_or_numbers(self, emulator, value):
        """A notification template refuses NaN, Infinity and booleans too."""
        body = send(
            emulator, template_code="SMS_NOTICE", template_param=f'{{"name":"A","order":{value}}}'
        )
        assert body.code == "isv.INVALID_JSON_PARAM"
        assert emulator.outbox == []

    def test_batch_values_that_are_not_json(self, emulator):
        """SendBatchSms's TemplateParamJson refuses NaN as well."""
        request = models.SendBatchSmsRequest(
            phone_number_json='["13800138000"]',
            sign_name_json=json.dumps([SIGN]),
            template_code="SMS_NOTICE",
            template_param_json='[{"name":"A","order":NaN}]',
        )
        body = raw_client(emulator).send_batch_sms_with_options(request, RuntimeOptions()).body
        assert body.code == "isv.INVALID_JSON_PARAM"
        assert emulator.outbox == []

    def test_numbers_still_serve_as_codes(self, emulator):
        """An integer is a code, as before: it renders as its digits."""
        assert send(emulator, template_param='{"code":123456}').code == "OK"
        assert emulator.outbox[0].text == f"【{SIGN}】Your code is 123456."

    def test_several_numbers_in_one_send(self, emulator):
        """Comma-separated numbers each get a message under one biz id."""
        body = send(
            emulator, phone_numbers="13800138000,+8613900139000", template_param='{"code":"1"}'
        )
        assert body.code == "OK"
        assert [(m.phone_number, m.biz_id) for m in emulator.outbox] == [
            ("13800138000", body.biz_id),
            ("13900139000", body.biz_id),
        ]

    def test_delay_for_every_request(self, emulator):
        """delay(count=None) holds every answer, not just the next one."""
        from aliyun_sms_connector import AliyunSmsConnector, NetworkError

        from .conftest import connector_config

        emulator.delay(0.5, count=None)
        connector = AliyunSmsConnector(connector_config(emulator, readTimeout=100))
        for phone in ("13800138000", "13900139000"):
            with pytest.raises(NetworkError, match="may have been sent"):
                connector.send_message(phone, "SignIn", {"code": "1"})


class TestRegions:
    """Domestic and international templates do not mix, in either direction."""

    @pytest.mark.parametrize(
        ("number", "template"),
        [
            ("14155550100", "SMS_CODE"),
            ("85261234567", "SMS_CODE"),
            ("447400123456", "SMS_SIGNIN"),
            ("14155550100", "SMS_NOTICE"),
        ],
    )
    def test_domestic_template_to_an_overseas_number(self, emulator, number, template):
        """A domestic template sent abroad is isv.MOBILE_NUMBER_ILLEGAL, as Aliyun answers."""
        params = '{"name":"A","order":"1"}' if template == "SMS_NOTICE" else '{"code":"1"}'
        body = send(emulator, phone_numbers=number, template_code=template, template_param=params)
        assert body.code == "isv.MOBILE_NUMBER_ILLEGAL"
        assert emulator.outbox == []

    def test_one_overseas_number_refuses_the_whole_send(self, emulator):
        """A mainland and an overseas number in one domestic send: nothing goes out."""
        body = send(
            emulator, phone_numbers="13800138000,14155550100", template_param='{"code":"1"}'
        )
        assert body.code == "isv.MOBILE_NUMBER_ILLEGAL"
        assert emulator.outbox == []

    def test_international_template_to_an_overseas_number(self, emulator):
        """The international template still serves overseas numbers."""
        body = send(
            emulator,
            phone_numbers="14155550100",
            template_code="SMS_INTL",
            template_param='{"code":"1"}',
        )
        assert body.code == "OK"
        assert emulator.outbox[0].phone_number == "14155550100"

    def test_international_template_to_a_mainland_number(self, emulator):
        """The reverse case keeps Aliyun's isv.DOMESTIC_NUMBER_NOT_SUPPORTED."""
        body = send(
            emulator,
            phone_numbers="+8613800138000",
            template_code="SMS_INTL",
            template_param='{"code":"1"}',
        )
        assert body.code == "isv.DOMESTIC_NUMBER_NOT_SUPPORTED"

    @pytest.mark.parametrize("to", ["+1 415 555 0100", "+1 312 555 0100", "+852 6123 4567"])
    def test_connector_with_one_template_code_for_everyone(self, emulator, to):
        """A plain domestic templateCode and an overseas number: TemplateError, no request."""
        from aliyun_sms_connector import AliyunSmsConnector, TemplateError

        from .conftest import connector_config

        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_CODE"}]
        )
        connector = AliyunSmsConnector(config)
        with connector, pytest.raises(TemplateError) as info:
            connector.send_message(to, "SignIn", {"code": "1"})
        assert info.value.code == "TemplateRegionMismatch"
        country = to.split()[0]
        assert f"template SMS_CODE (Generic) is domestic (type 2); {country} numbers" in str(
            info.value
        )
        assert emulator.requests == []
        assert emulator.outbox == []

    def test_connector_with_one_template_code_for_everyone_async(self, emulator):
        """The same refusal on the async path, before any request."""
        import asyncio

        from aliyun_sms_connector import AliyunSmsConnector, TemplateError

        from .conftest import connector_config

        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_CODE"}]
        )

        async def attempt() -> str:
            async with AliyunSmsConnector(config) as connector:
                try:
                    await connector.send_message_async("+1 312 555 0100", "SignIn", {"code": "1"})
                except TemplateError as error:
                    return str(error.code)
            return "sent"

        assert asyncio.run(attempt()) == "TemplateRegionMismatch"
        assert emulator.requests == []
        assert emulator.outbox == []

    def test_a_us_number_never_reaches_a_mainland_mobile(self, emulator):
        """Security: +1 312 555 0100 written for a domestic template is 13125550100.

        That is a valid mainland number, which Aliyun (and the emulator) would
        deliver to: the code would reach a stranger in China. The connector
        refuses before any request, on every path.
        """
        from aliyun_sms_connector import AliyunSmsConnector, BatchMessage, TemplateError

        from .conftest import connector_config

        # The premise: the emulator takes those 11 digits for a mainland mobile.
        direct = AliyunSmsConnector(connector_config(emulator))
        with direct:
            direct.send_message("13125550100", "SignIn", {"code": "1"})
        assert [m.phone_number for m in emulator.outbox] == ["13125550100"]
        emulator.reset()

        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_CODE", "type": 2}]
        )
        with AliyunSmsConnector(config) as connector:
            with pytest.raises(TemplateError):
                connector.send_message("+13125550100", "SignIn", {"code": "1"})
            batch = connector.send_batch(
                [
                    BatchMessage("+13125550100", {"code": "2"}),
                    BatchMessage("13800138000", {"code": "3"}),
                ],
                "SignIn",
            )
        [rejected] = batch.rejected
        assert rejected.index == 0
        assert isinstance(rejected.error, TemplateError)
        assert rejected.error.code == "TemplateRegionMismatch"
        # Only the mainland recipient was sent, in its own request.
        assert [m.phone_number for m in emulator.outbox] == ["13800138000"]
        assert len(emulator.requests) == 1

    def test_an_international_template_refuses_mainland_numbers(self, emulator):
        """A plain type-6 templateCode and a mainland number: TemplateError, no request."""
        from aliyun_sms_connector import AliyunSmsConnector, TemplateError

        from .conftest import connector_config

        config = connector_config(
            emulator, templates=[{"usageType": "Generic", "templateCode": "SMS_INTL", "type": 6}]
        )
        with AliyunSmsConnector(config) as connector:
            with pytest.raises(TemplateError, match=r"\+86 \(mainland China\) numbers") as info:
                connector.send_message("13800138000", "SignIn", {"code": "1"})
            assert info.value.code == "TemplateRegionMismatch"
            assert emulator.requests == []
            sent = connector.send_message("+85261234567", "SignIn", {"code": "1"})
        assert sent.template_code == "SMS_INTL"
        assert [m.phone_number for m in emulator.outbox] == ["85261234567"]


class TestOtherActions:
    def test_batch_invalid_json(self, emulator):
        """SendBatchSms with broken JSON is isv.INVALID_JSON_PARAM."""
        request = models.SendBatchSmsRequest(
            phone_number_json="[13800138000", sign_name_json="[]", template_code="SMS_NOTICE"
        )
        body = raw_client(emulator).send_batch_sms_with_options(request, RuntimeOptions()).body
        assert body.code == "isv.INVALID_JSON_PARAM"

    @pytest.mark.parametrize(
        "fields",
        [
            {"phone_number": "", "send_date": "20260101"},
            {"phone_number": "13800138000", "send_date": "2026-01-01"},
            {"phone_number": "13800138000", "send_date": "20260101", "page_size": 51},
            {"phone_number": "13800138000", "send_date": "20260101", "current_page": 0},
        ],
    )
    def test_query_send_details_checks(self, emulator, fields):
        """QuerySendDetails checks the number, the date and the paging."""
        fields = {"page_size": 10, "current_page": 1, **fields}
        request = models.QuerySendDetailsRequest(**fields)
        body = raw_client(emulator).query_send_details_with_options(request, RuntimeOptions()).body
        assert body.code != "OK"

    @pytest.mark.parametrize(
        "send_date", ["20261399", "20260230", "20260001", "20261300", "00000101"]
    )
    def test_query_send_details_on_a_day_that_does_not_exist(self, emulator, send_date):
        """A SendDate of eight digits that is no calendar day is isv.INVALID_PARAMETERS."""
        request = models.QuerySendDetailsRequest(
            phone_number="13800138000", send_date=send_date, page_size=10, current_page=1
        )
        body = raw_client(emulator).query_send_details_with_options(request, RuntimeOptions()).body
        assert body.code == "isv.INVALID_PARAMETERS"

    def test_query_send_details_on_a_leap_day(self, emulator):
        """29 February of a leap year is a day: answered OK."""
        request = models.QuerySendDetailsRequest(
            phone_number="13800138000", send_date="20280229", page_size=10, current_page=1
        )
        body = raw_client(emulator).query_send_details_with_options(request, RuntimeOptions()).body
        assert body.code == "OK"

    def test_query_send_details_paging_not_a_number(self, emulator):
        """Paging values that are not numbers are rejected."""
        request = models.QuerySendDetailsRequest(
            phone_number="13800138000", send_date="20260101", page_size="ten", current_page=1
        )
        body = raw_client(emulator).query_send_details_with_options(request, RuntimeOptions()).body
        assert body.code == "isv.INVALID_PARAMETERS"

    def test_gateway_error_body_shape(self, emulator):
        """Gateway errors carry RequestId, HostId and a Recommend URL, as Aliyun's do."""
        answer = requests.post(f"http://{emulator.endpoint}/?Action=SendSms", timeout=5)
        body = json.loads(answer.text)
        assert body["HostId"] == "dysmsapi.aliyuncs.com"
        assert body["Recommend"].endswith(f"&requestId={body['RequestId']}")
