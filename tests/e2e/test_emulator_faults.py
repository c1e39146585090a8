"""Queued faults are served in the order they were queued, one answer per request."""

from __future__ import annotations

import time

import pytest
import requests

from .test_emulator_placement import SEND_SMS, acs3_request, code_of


def send(emulator, number: str = "13800138000") -> requests.Response:
    return acs3_request(emulator, "SendSms", body={**SEND_SMS, "PhoneNumbers": number})


def kind(answer: requests.Response) -> str:
    """ "html" for an invalid body, else the Aliyun code."""
    if answer.headers["Content-Type"].startswith("text/html"):
        return "html"
    return code_of(answer)


class TestOrder:
    def test_five_failures_then_the_invalid_body(self, emulator):
        """fail_next(count=5) then send_invalid_body(): 5 failures, the body, then normal."""
        emulator.fail_next("isp.SYSTEM_ERROR", count=5)
        emulator.send_invalid_body()
        kinds = [kind(send(emulator, f"1390013900{i}")) for i in range(7)]
        assert kinds == ["isp.SYSTEM_ERROR"] * 5 + ["html", "OK"]

    def test_the_other_way_round(self, emulator):
        """send_invalid_body() then fail_next(count=2): the body first, then 2 failures."""
        emulator.send_invalid_body()
        emulator.fail_next("isv.AMOUNT_NOT_ENOUGH", count=2)
        kinds = [kind(send(emulator, f"1390013900{i}")) for i in range(4)]
        assert kinds == ["html", "isv.AMOUNT_NOT_ENOUGH", "isv.AMOUNT_NOT_ENOUGH", "OK"]

    def test_a_dropped_connection_waits_its_turn(self, emulator):
        """fail_next then drop_connection: the code first, then the cut answer."""
        emulator.fail_next("ServiceUnavailable", http_status=503)
        emulator.drop_connection()
        assert kind(send(emulator, "13900139001")) == "ServiceUnavailable"
        with pytest.raises(requests.exceptions.RequestException):
            send(emulator, "13900139002")
        assert kind(send(emulator, "13900139003")) == "OK"

    def test_a_fault_for_another_number_is_skipped(self, emulator):
        """A request takes the first fault that matches it; others keep their place."""
        emulator.fail_next("isv.MOBILE_NUMBER_ILLEGAL", phone_number="+86 139 0013 9000")
        emulator.fail_next("isp.SYSTEM_ERROR")
        assert kind(send(emulator, "13800138000")) == "isp.SYSTEM_ERROR"
        assert kind(send(emulator, "13800138000")) == "OK"
        assert kind(send(emulator, "13900139000")) == "isv.MOBILE_NUMBER_ILLEGAL"

    def test_reset_drops_queued_faults(self, emulator):
        """reset() forgets every queued fault."""
        emulator.fail_next("isp.SYSTEM_ERROR", count=3)
        emulator.reset()
        assert kind(send(emulator)) == "OK"


class TestDelays:
    def test_a_delay_holds_the_queued_answer(self, emulator):
        """delay() then fail_next(): the first answer is both held and the failure."""
        emulator.delay(0.3)
        emulator.fail_next("isp.SYSTEM_ERROR")
        started = time.monotonic()
        assert kind(send(emulator, "13900139001")) == "isp.SYSTEM_ERROR"
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        assert kind(send(emulator, "13900139002")) == "OK"
        assert time.monotonic() - started < 0.3

    def test_a_standing_delay_does_not_block_the_queue(self, emulator):
        """delay(count=None) holds every answer, and queued faults still come in order."""
        emulator.delay(0.05, count=None)
        emulator.fail_next("isp.SYSTEM_ERROR")
        emulator.send_invalid_body()
        kinds = [kind(send(emulator, f"1390013900{i}")) for i in range(3)]
        assert kinds == ["isp.SYSTEM_ERROR", "html", "OK"]
