"""The emulator's own pieces, apart from the SDK (see tests/e2e for the wire)."""

import time

import pytest

from aliyun_sms_connector import TemplateType
from aliyun_sms_connector.emulator import (
    DEFAULT_ACCESS_KEYS,
    DEFAULT_SIGN_NAME,
    Emulator,
    Template,
    _faults,
    _numbers,
)
from aliyun_sms_connector.emulator._auth import parse_timestamp
from aliyun_sms_connector.emulator._numbers import mainland, number_key, recipient


class TestTemplate:
    def test_variables_and_render(self):
        """Placeholders are found in order and filled in."""
        template = Template("Hi ${name}, code ${code}.")
        assert template.variables == ["name", "code"]
        assert template.render({"name": "A", "code": "1"}) == "Hi A, code 1."

    def test_plain_strings_are_verification_templates(self):
        """A template given as text is a verification-code template."""
        emulator = Emulator(templates={"SMS_1": "x ${code}"})
        assert emulator.templates["SMS_1"] == Template("x ${code}", TemplateType.VERIFICATION_CODE)


class TestLifecycle:
    def test_defaults(self):
        """With no arguments the emulator has a key, a sign name and templates."""
        emulator = Emulator()
        assert emulator.access_keys == DEFAULT_ACCESS_KEYS
        assert emulator.sign_names == [DEFAULT_SIGN_NAME]
        assert set(emulator.templates) == {"SMS_000001", "SMS_000002", "SMS_000003"}

    def test_port_needs_a_running_emulator(self):
        """Asking for the endpoint before start() is a clear error."""
        with pytest.raises(RuntimeError, match="not running"):
            _ = Emulator().endpoint

    def test_start_is_idempotent_and_stop_frees_the_port(self):
        """start() twice serves once; stop() twice is harmless."""
        emulator = Emulator().start()
        port = emulator.port
        assert emulator.start() is emulator
        assert emulator.port == port
        emulator.stop()
        emulator.stop()
        with pytest.raises(RuntimeError):
            _ = emulator.port

    def test_busy_port(self):
        """A port in use fails at start() with OSError."""
        with Emulator() as first, pytest.raises(OSError):
            Emulator(port=first.port).start()

    def test_connector_config_overrides(self):
        """connector_config() takes overrides."""
        with Emulator() as emulator:
            config = emulator.connector_config(signName="Other", readTimeout=100)
        assert config["signName"] == "Other"
        assert config["readTimeout"] == 100
        assert config["protocol"] == "http"
        assert "caFile" not in config

    def test_reset_forgets_everything(self):
        """reset() clears outbox, requests and faults."""
        from aliyun_sms_connector import AliyunSmsConnector

        with Emulator() as emulator, AliyunSmsConnector(emulator.connector_config()) as connector:
            connector.send_message("13800138000", "SignIn", {"code": "1"})
            emulator.fail_next("isp.SYSTEM_ERROR")
            emulator.reset()
            assert (emulator.outbox, emulator.requests) == ([], [])
            connector.send_message("13800138000", "SignIn", {"code": "1"})
            assert len(emulator.outbox) == 1

    def test_reset_drops_answers_still_held_by_a_delay(self):
        """A request held by delay() across reset() is never recorded: no late message."""
        from aliyun_sms_connector import AliyunSmsConnector, NetworkError

        # A clock that stands still: Aliyun's one-a-minute limit per number
        # would refuse the second send if the held one counted.
        with Emulator(clock=lambda: 1_800_000_000.0) as emulator:
            config = emulator.connector_config(readTimeout=100, maxAttempts=1)
            with AliyunSmsConnector(config) as connector:
                emulator.delay(0.4)
                with pytest.raises(NetworkError):
                    connector.send_message("13800138000", "SignIn", {"code": "1"})
                emulator.reset()
                time.sleep(0.6)  # the held request's wait is over
                assert emulator.outbox == []
                connector.send_message("13800138000", "SignIn", {"code": "2"})
                assert [message.params["code"] for message in emulator.outbox] == ["2"]


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+86 138 0013 8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("14155550100", "14155550100"),
        ("+1 415 555 0100", "14155550100"),
        (None, None),
    ],
)
def test_number_keys_match_across_forms(number, key):
    """Fault scoping matches a number in any of its forms."""
    assert number_key(number) == key


class TestCost:
    """Per-request work does not repeat itself or grow with the outbox."""

    @pytest.mark.parametrize(
        ("stamp", "seconds"),
        [
            ("2026-11-25T02:00:00Z", 1795572000.0),
            ("2026-11-25T02:00:00.123Z", 1795572000.0),
            ("2026-02-30T00:00:00Z", None),
            ("2026-11-25 02:00:00", None),
            ("yesterday", None),
        ],
    )
    def test_timestamps(self, stamp, seconds):
        """ISO 8601 UTC stamps, with or without fractions, parse; impossible dates do not."""
        assert parse_timestamp(stamp) == seconds

    def test_timestamp_parse_is_cached(self):
        """The same second is parsed once, however many requests carry it."""
        parse_timestamp.cache_clear()
        for _ in range(5):
            parse_timestamp("2026-11-25T02:00:01Z")
        assert parse_timestamp.cache_info().misses == 1

    def test_a_number_is_parsed_once_per_request(self, mocker):
        """Fault scoping and the recipient check share one phonenumbers parse."""
        emulator = Emulator()
        emulator.fail_next("isp.SYSTEM_ERROR", phone_number="13900139000")
        mainland.cache_clear()
        spy = mocker.spy(_numbers.phonenumbers, "parse")
        delay, fault = emulator._faults.take({"PhoneNumbers": "13700137000"})
        assert (delay, fault) == (0.0, None)
        number = recipient("13700137000", emulator.templates["SMS_000001"])
        assert number == "13700137000"
        assert [call.args[0] for call in spy.call_args_list].count("13700137000") == 1

    def test_no_number_is_parsed_without_scoped_faults(self, mocker):
        """With no fault for a particular number, the request's numbers are not looked at."""
        emulator = Emulator()
        emulator.fail_next("isp.SYSTEM_ERROR", count=2)
        spy = mocker.spy(_faults, "numbers_in")
        assert emulator._faults.take({"PhoneNumbers": "13700137000"})[1] is not None
        spy.assert_not_called()

    def test_receipts_and_fail_delivery_use_the_index(self):
        """QuerySendDetails and fail_delivery find messages by number and biz id; reset forgets."""
        emulator = Emulator(clock=lambda: 1795579200.0)
        for number in ("13700137000", "13800138000", "13700137000"):
            emulator._send_sms(
                {
                    "PhoneNumbers": number,
                    "SignName": DEFAULT_SIGN_NAME,
                    "TemplateCode": "SMS_000003",
                    "TemplateParam": '{"name":"A","event":"B"}',
                }
            )
        first = emulator.outbox[0]
        emulator.fail_delivery(first.biz_id, "USER_REJECT")
        query = {"PhoneNumber": "+86 137 0013 7000", "SendDate": "20261125"}
        answer = emulator._query_send_details(query)
        details = answer["SmsSendDetailDTOs"]["SmsSendDetailDTO"]
        assert answer["TotalCount"] == "2"
        assert [(d["SendStatus"], d["ErrCode"]) for d in details] == [
            (2, "USER_REJECT"),
            (3, "DELIVERED"),
        ]
        emulator.reset()
        assert emulator._query_send_details(query)["TotalCount"] == "0"
