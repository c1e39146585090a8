"""The emulator as any SDK user sees it, and the SDK's own behaviour beside this library."""

import json
from pathlib import Path

import pytest
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

from aliyun_sms_connector import AliyunSmsConnector
from aliyun_sms_connector.emulator import Emulator

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES


def raw_client(emulator, **extra):
    """The official client, configured by hand, with no help from this library."""
    return Client(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=KEY_SECRET,
            endpoint=emulator.endpoint,
            protocol=emulator.protocol,
            **extra,
        )
    )


def test_sdk_used_directly_still_works_beside_the_connector(emulator, connector):
    """Plain SDK calls in the same process keep working and stay unobserved."""
    connector.send_message("13800138000", "SignIn", {"code": "1"})
    response = raw_client(emulator).send_sms_with_options(
        models.SendSmsRequest(
            phone_numbers="13900139000",
            sign_name=SIGN,
            template_code="SMS_CODE",
            template_param='{"code":"2"}',
        ),
        RuntimeOptions(),
    )
    assert response.status_code == 200
    assert response.body.code == "OK"
    assert [m.phone_number for m in emulator.outbox] == ["13800138000", "13900139000"]


def test_sdk_errors_unchanged_beside_the_connector(emulator, connector):
    """The SDK's own exceptions reach its direct users as before."""
    connector.send_message("13800138000", "SignIn", {"code": "1"})
    client = Client(
        Config(
            access_key_id="LTAInobody",
            access_key_secret="x",
            endpoint=emulator.endpoint,
            protocol="http",
        )
    )
    with pytest.raises(ClientException) as info:
        client.send_sms_with_options(
            models.SendSmsRequest(
                phone_numbers="13900139000", sign_name=SIGN, template_code="SMS_CODE"
            ),
            RuntimeOptions(),
        )
    assert info.value.code == "InvalidAccessKeyId.NotFound"


def test_send_batch_sms(emulator):
    """SendBatchSms: one biz id, a sign name and variables per number."""
    response = raw_client(emulator).send_batch_sms_with_options(
        models.SendBatchSmsRequest(
            phone_number_json=json.dumps(["13800138000", "13900139000"]),
            sign_name_json=json.dumps([SIGN, SIGN]),
            template_code="SMS_NOTICE",
            template_param_json=json.dumps(
                [{"name": "A", "order": "1"}, {"name": "B", "order": "2"}]
            ),
        ),
        RuntimeOptions(),
    )
    assert response.body.code == "OK"
    texts = [(m.phone_number, m.text, m.biz_id) for m in emulator.outbox]
    assert texts == [
        ("13800138000", "【AcmeSign】Hi A, your order 1 shipped.", response.body.biz_id),
        ("13900139000", "【AcmeSign】Hi B, your order 2 shipped.", response.body.biz_id),
    ]


@pytest.mark.parametrize(
    ("numbers", "signs", "code"),
    [
        (["13800138000"], [SIGN, SIGN], "isv.INVALID_PARAMETERS"),
        (["13800138000"] * 101, [SIGN] * 101, "isv.MOBILE_COUNT_OVER_LIMIT"),
        (["12"], [SIGN], "isv.MOBILE_NUMBER_ILLEGAL"),
    ],
)
def test_send_batch_sms_rejections(emulator, numbers, signs, code):
    """SendBatchSms checks counts and numbers."""
    response = raw_client(emulator).send_batch_sms_with_options(
        models.SendBatchSmsRequest(
            phone_number_json=json.dumps(numbers),
            sign_name_json=json.dumps(signs),
            template_code="SMS_NOTICE",
            template_param_json=json.dumps([{"name": "A", "order": "1"}] * len(numbers)),
        ),
        RuntimeOptions(),
    )
    assert response.body.code == code
    assert emulator.outbox == []


def test_query_send_details(emulator, connector, clock):
    """QuerySendDetails lists the outbox as delivered, with paging and biz id filter."""
    first = connector.send_message("13800138000", "SignIn", {"code": "1"}, out_id="o-1")
    clock.advance(61)
    second = connector.send_message("13800138000", "SignIn", {"code": "2"})
    emulator.fail_delivery(second.biz_id, "USER_REJECT")
    day = emulator.outbox[0].sent_at.strftime("%Y%m%d")
    client = raw_client(emulator)

    def query(**extra):
        request = models.QuerySendDetailsRequest(
            phone_number="13800138000", send_date=day, page_size=1, current_page=1, **extra
        )
        return client.query_send_details_with_options(request, RuntimeOptions()).body

    body = query()
    assert (body.code, body.total_count) == ("OK", "2")
    [detail] = body.sms_send_detail_dtos.sms_send_detail_dto
    assert (detail.send_status, detail.err_code, detail.out_id) == (3, "DELIVERED", "o-1")
    assert detail.content == "【AcmeSign】Sign in with 1."
    failed = query(biz_id=second.biz_id).sms_send_detail_dtos.sms_send_detail_dto
    assert [(d.send_status, d.err_code) for d in failed] == [(2, "USER_REJECT")]
    assert first.biz_id != second.biz_id


def test_unknown_action(emulator):
    """An action the emulator does not serve is InvalidAction.NotFound."""
    with pytest.raises(ClientException) as info:
        raw_client(emulator).query_sms_sign_list_with_options(
            models.QuerySmsSignListRequest(), RuntimeOptions()
        )
    assert (info.value.code, info.value.status_code) == ("InvalidAction.NotFound", 404)


def test_tls(clock):
    """With tls=True the SDK speaks HTTPS to the emulator, trusting its CA file."""
    with Emulator({KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock, tls=True) as emulator:
        assert emulator.protocol == "https"
        assert "BEGIN CERTIFICATE" in Path(emulator.ca_file).read_text(encoding="ascii")
        response = raw_client(emulator, ca=emulator.ca_file).send_sms_with_options(
            models.SendSmsRequest(
                phone_numbers="13800138000",
                sign_name=SIGN,
                template_code="SMS_CODE",
                template_param='{"code":"1"}',
            ),
            RuntimeOptions(),
        )
        assert response.body.code == "OK"


def test_connector_config_helper(clock):
    """connector_config() points a connector at the emulator with its defaults."""
    with Emulator() as emulator:
        connector = AliyunSmsConnector(emulator.connector_config())
        connector.send_message("13800138000", "SignIn", {"code": "123456"})
        assert emulator.outbox[0].text == "【AliyunSmsTest】Your code is 123456."
