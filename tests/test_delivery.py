"""Delivery receipts and batch sending, with the Transport mocked."""

import asyncio
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from aliyun_sms_connector import (
    AliyunSmsConnector,
    AliyunSmsError,
    BatchMessage,
    DeliveryStatus,
    InvalidPhoneNumberError,
    SendResult,
    TemplateNotFoundError,
    UsageType,
)
from aliyun_sms_connector._delivery import china_today, send_date_text

from . import wire_fakes

CHINA = timezone(timedelta(hours=8))


@pytest.fixture
def query(transport):
    """Transport.send, answering QuerySendDetails."""
    return transport.send


@pytest.fixture
def batch(transport):
    """Transport.send, answering SendBatchSms."""
    return transport.send


def action(mock, index=-1):
    return mock.call_args_list[index].args[0].headers["x-acs-action"]


class TestQueryDelivery:
    def test_reports_are_typed(self, connector, query):
        """Records become DeliveryReports with aware China-time datetimes."""
        query.return_value = wire_fakes.receipts(
            [
                wire_fakes.record(3, "DELIVERED", OutId="o-1"),
                wire_fakes.record(2, "MOBILE_NOT_ON_SERVICE"),
                wire_fakes.record(1, ""),
            ]
        )
        reports = connector.query_delivery("+86 138 0013 8000", biz_id="B-1", send_date="20261124")
        assert [r.status for r in reports] == [
            DeliveryStatus.DELIVERED,
            DeliveryStatus.FAILED,
            DeliveryStatus.PENDING,
        ]
        delivered = reports[0]
        assert delivered.error_code == "DELIVERED"
        assert delivered.send_time == datetime(2026, 11, 24, 21, 0, 0, tzinfo=CHINA)
        assert delivered.receive_time == datetime(2026, 11, 24, 21, 0, 5, tzinfo=CHINA)
        assert (delivered.template_code, delivered.out_id) == ("SMS_SIGNIN", "o-1")
        assert delivered.content == "【Acme】Your code is 482913."
        assert reports[2].receive_time is None
        assert reports[2].error_code is None
        params = wire_fakes.sent(query)
        assert (params["PhoneNumber"], params["SendDate"], params["BizId"]) == (
            "13800138000",
            "20261124",
            "B-1",
        )
        assert (params["PageSize"], params["CurrentPage"]) == ("50", "1")
        assert action(query) == "QuerySendDetails"

    def test_repr_hides_number_and_content(self, connector, query):
        """A report's repr shows neither the number nor the text (it holds the code)."""
        query.return_value = wire_fakes.receipts([wire_fakes.record()])
        [report] = connector.query_delivery("13800138000")
        assert "13800138000" not in repr(report)
        assert "482913" not in repr(report)

    def test_pages_until_total(self, connector, query):
        """Pages of 50 are fetched until TotalCount records are in."""
        pages = [
            wire_fakes.receipts([wire_fakes.record()] * 50, total=120),
            wire_fakes.receipts([wire_fakes.record()] * 50, total=120),
            wire_fakes.receipts([wire_fakes.record()] * 20, total=120),
        ]
        query.side_effect = pages
        assert len(connector.query_delivery("13800138000")) == 120
        pages = wire_fakes.all_sent(query)
        assert [p["CurrentPage"] for p in pages] == ["1", "2", "3"]
        assert {p["PageSize"] for p in pages} == {"50"}

    def test_stops_on_an_empty_page(self, connector, query):
        """A TotalCount larger than what Aliyun returns does not loop forever."""
        query.side_effect = [
            wire_fakes.receipts([wire_fakes.record()], total=99),
            wire_fakes.receipts([], total=99),
        ]
        assert len(connector.query_delivery("13800138000")) == 1
        assert query.call_count == 2

    def test_default_date_is_today_in_china(self, connector, query):
        """Without send_date, today in China Standard Time is asked for."""
        query.return_value = wire_fakes.receipts([])
        assert connector.query_delivery("13800138000") == []
        assert wire_fakes.sent(query)["SendDate"] == china_today().strftime("%Y%m%d")

    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (date(2026, 1, 2), "20260102"),
            ("20260102", "20260102"),
            (datetime(2026, 1, 1, 20, 0, tzinfo=timezone.utc), "20260102"),
        ],
    )
    def test_send_date_forms(self, value, text):
        """Dates, yyyyMMdd text and aware datetimes (in China time) are accepted."""
        assert send_date_text(value) == text

    @pytest.mark.parametrize(
        "value", ["2026-01-02", "today", 20260102, "20991301", "20230229", "20260100"]
    )
    def test_bad_send_date(self, connector, query, value):
        """A send_date of another form, or of a day that does not exist, fails before any call."""
        with pytest.raises(AliyunSmsError, match="send_date"):
            connector.query_delivery("13800138000", send_date=value)
        query.assert_not_called()

    def test_invalid_number_before_any_call(self, connector, query):
        """Numbers are validated exactly as when sending."""
        with pytest.raises(InvalidPhoneNumberError):
            connector.query_delivery("12345")
        query.assert_not_called()

    def test_business_error(self, connector, query):
        """A non-OK Code from QuerySendDetails raises its typed error."""
        query.return_value = wire_fakes.receipts([], code="isv.MOBILE_NUMBER_ILLEGAL")
        with pytest.raises(InvalidPhoneNumberError):
            connector.query_delivery("13800138000")

    def test_async_twin(self, connector, transport):
        """query_delivery_async returns the same reports, paging the same way."""
        transport.send_async.side_effect = [
            wire_fakes.receipts([wire_fakes.record()] * 50, total=51),
            wire_fakes.receipts([wire_fakes.record(1, "")], total=51),
        ]
        reports = asyncio.run(connector.query_delivery_async("13800138000"))
        assert [r.status for r in reports[-2:]] == [
            DeliveryStatus.DELIVERED,
            DeliveryStatus.PENDING,
        ]
        assert [p["CurrentPage"] for p in wire_fakes.all_sent(transport.send_async)] == ["1", "2"]

    def test_each_page_gets_its_own_deadline(self, connector, query):
        """The deadline is per request: a later page's clock starts when it is asked."""
        query.side_effect = [
            wire_fakes.receipts([wire_fakes.record()] * 50, total=51),
            wire_fakes.receipts([wire_fakes.record()], total=51),
        ]
        connector.query_delivery("13800138000")
        first, second = (c.kwargs["deadline"] for c in query.call_args_list)
        assert second >= first

    @pytest.mark.parametrize(
        "body",
        [
            {"Code": "OK", "RequestId": "R"},
            {"Code": "OK", "TotalCount": "x", "SmsSendDetailDTOs": {"SmsSendDetailDTO": "no"}},
            {"Code": "OK", "SmsSendDetailDTOs": [1, 2]},
        ],
    )
    def test_odd_answers_give_no_reports(self, connector, query, body):
        """An OK answer without readable records gives no reports, and stops."""
        query.return_value = wire_fakes.response(body)
        assert connector.query_delivery("13800138000") == []
        assert query.call_count == 1

    def test_send_result_queries_its_own_receipt(self, connector, query):
        """SendResult.query_delivery() asks for its biz id on its send date."""
        query.side_effect = [
            wire_fakes.ok(biz_id="900^1"),
            wire_fakes.receipts([wire_fakes.record()]),
        ]
        result = connector.send_message("13800138000", "SignIn", {"code": "1"})
        [report] = result.query_delivery()
        params = wire_fakes.sent(query)
        assert (params["BizId"], params["PhoneNumber"]) == ("900^1", "13800138000")
        assert params["SendDate"] == result.sent_at.strftime("%Y%m%d")
        assert report.status is DeliveryStatus.DELIVERED

    def test_a_hand_made_send_result_cannot_query(self):
        """A SendResult built by hand has no connector to ask."""
        result = SendResult("1", "R", "13800138000", "SMS", UsageType.SIGN_IN)
        with pytest.raises(AliyunSmsError, match="not made by a connector"):
            result.query_delivery()


NOTICE = [
    {"usageType": "Generic", "templateCode": {"china": "SMS_CN", "overseas": "SMS_INTL"}, "type": 0}
]


@pytest.fixture
def notifier(logto_config, transport):
    return AliyunSmsConnector({**logto_config, "templates": NOTICE, "backoffBase": 0})


class TestSendBatch:
    def test_chunks_of_100_with_per_recipient_values(self, notifier, batch):
        """250 mainland recipients go out as 100 + 100 + 50, each with its own values."""
        batch.side_effect = [wire_fakes.batch_ok(f"B-{i}") for i in range(3)]
        messages = [
            BatchMessage(
                f"1380000{i:04d}", {"name": f"n{i}"}, sign_name="Other" if i == 7 else None
            )
            for i in range(250)
        ]
        result = notifier.send_batch(messages)
        assert result.ok
        assert result.biz_ids == ["B-0", "B-1", "B-2"]
        sent = wire_fakes.all_sent(batch)
        sizes = [len(json.loads(p["PhoneNumberJson"])) for p in sent]
        assert sizes == [100, 100, 50]
        assert action(batch, 0) == "SendBatchSms"
        first = sent[0]
        assert first["TemplateCode"] == "SMS_CN"
        assert json.loads(first["TemplateParamJson"])[7] == {"name": "n7"}
        signs = json.loads(first["SignNameJson"])
        assert signs[7] == "Other"
        assert signs[0] == "AcmeSignName"

    def test_regions_get_their_own_template(self, notifier, batch):
        """Mainland and overseas numbers are sent in separate calls with their codes."""
        batch.side_effect = [wire_fakes.batch_ok("CN"), wire_fakes.batch_ok("INTL")]
        result = notifier.send_batch(
            [BatchMessage("13800138000", {"a": "1"}), BatchMessage("+14155550100", {"a": "2"})]
        )
        codes = [p["TemplateCode"] for p in wire_fakes.all_sent(batch)]
        assert codes == ["SMS_CN", "SMS_INTL"]
        assert [c.phone_numbers for c in result.chunks] == [("13800138000",), ("14155550100",)]

    def test_invalid_recipients_are_reported_not_fatal(self, notifier, batch):
        """Invalid numbers and bad values are rejected by index; the rest is sent."""
        batch.return_value = wire_fakes.batch_ok()
        result = notifier.send_batch(
            [
                BatchMessage("13800138000", {"a": "1"}),
                BatchMessage("12345", {"a": "1"}),
                BatchMessage("13900139000", {"a": ["x"]}),
                "not a message",
            ]
        )
        assert [(r.index, type(r.error).__name__) for r in result.rejected] == [
            (1, "InvalidPhoneNumberError"),
            (2, "TemplateParamError"),
            (3, "AliyunSmsError"),
        ]
        assert "12345" not in repr(result)
        assert [c.phone_numbers for c in result.chunks] == [("13800138000",)]
        assert not result.ok

    def test_a_rejected_recipients_error_holds_no_frame(self, notifier, batch):
        """A rejected error keeps no traceback or context: no frame shows the other recipients."""
        import traceback

        batch.return_value = wire_fakes.batch_ok()
        result = notifier.send_batch(
            [BatchMessage("13800138000", {"a": "OtherSecretValue"}), BatchMessage("12345", {})]
        )
        (rejected,) = result.rejected
        error = rejected.error
        assert (error.__traceback__, error.__context__, error.__cause__) == (None, None, None)
        shown = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
        assert "13800138000" not in shown
        assert "OtherSecretValue" not in shown

    def test_none_params_are_no_variables(self, notifier, batch):
        """BatchMessage(to, None) is sent with no template variables, not an untyped error."""
        batch.return_value = wire_fakes.batch_ok()
        result = notifier.send_batch([BatchMessage("13800138000", None)])
        assert result.ok
        assert wire_fakes.sent(batch)["TemplateParamJson"] == "[{}]"

    def test_a_failed_chunk_is_reported_with_its_error(self, notifier, batch):
        """A chunk Aliyun refuses carries its typed error; others still go out."""
        batch.side_effect = [
            wire_fakes.business("isv.AMOUNT_NOT_ENOUGH"),
            wire_fakes.batch_ok("INTL"),
        ]
        result = notifier.send_batch(
            [BatchMessage("13800138000", {"a": "1"}), BatchMessage("+14155550100", {"a": "2"})]
        )
        failed, sent = result.chunks
        assert (failed.ok, failed.error.code, failed.biz_id) == (
            False,
            "isv.AMOUNT_NOT_ENOUGH",
            None,
        )
        assert (sent.ok, sent.biz_id) == (True, "INTL")
        assert "AMOUNT_NOT_ENOUGH" in repr(failed)
        assert failed.error.__traceback__ is None

    def test_unknown_usage_type_is_not_per_recipient(self, notifier, batch):
        """A usage type that does not exist fails the whole call."""
        with pytest.raises(TemplateNotFoundError):
            notifier.send_batch([BatchMessage("13800138000")], "Nope")
        batch.assert_not_called()

    def test_missing_template_is_not_per_recipient(self, logto_config, batch):
        """No template for the usage type (and no Generic) fails the whole call once."""
        only_sign_in = [{"usageType": "SignIn", "templateCode": "SMS_S", "type": 0}]
        connector = AliyunSmsConnector({**logto_config, "templates": only_sign_in})
        with pytest.raises(TemplateNotFoundError, match="no template for usage type Register"):
            connector.send_batch([BatchMessage("13800138000"), BatchMessage("12")], "Register")
        batch.assert_not_called()

    def test_async_twin(self, notifier, transport):
        """send_batch_async sends the same chunks."""
        transport.send_async.return_value = wire_fakes.batch_ok("A")
        result = asyncio.run(notifier.send_batch_async([BatchMessage("13800138000", {"a": "1"})]))
        assert result.biz_ids == ["A"]
