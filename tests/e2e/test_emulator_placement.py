"""Parameters in the query, in a form body or both, signed with ACS3 or v2.

Aliyun's RPC gateway reads API parameters from the query and from an
``application/x-www-form-urlencoded`` body alike. These requests are built by
hand and signed with the SDK's own signing functions (ACS3) or an independent
HMAC-SHA1 implementation (v2, as Logto's connector signs), then sent with
``requests``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import requests
from alibabacloud_tea_openapi.utils import Utils

from .conftest import KEY_ID, KEY_SECRET, SIGN

FORM = "application/x-www-form-urlencoded"
SEND_SMS = {
    "PhoneNumbers": "13800138000",
    "SignName": SIGN,
    "TemplateCode": "SMS_CODE",
    "TemplateParam": '{"code":"4821"}',
}


def _encode(value: str) -> str:
    return quote(value, safe="~")


def v2_signature(params: dict[str, str], secret: str = KEY_SECRET, method: str = "POST") -> str:
    """The legacy RPC signature, written from Aliyun's description, not the SDK's code."""
    canonical = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()))
    to_sign = f"{method}&{_encode('/')}&{_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def v2_common(action: str, *, timestamp: str | None = None) -> dict[str, str]:
    """The v2 common parameters, as Logto's connector sends them."""
    return {
        "AccessKeyId": KEY_ID,
        "Action": action,
        "Format": "JSON",
        "RegionId": "cn-hangzhou",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": uuid.uuid4().hex,
        "SignatureVersion": "1.0",
        # JavaScript's toISOString(): milliseconds and a Z.
        "Timestamp": timestamp or time.strftime("%Y-%m-%dT%H:%M:%S.123Z", time.gmtime()),
        "Version": "2017-05-25",
    }


def v2_request(
    emulator: Any,
    action: str,
    api: dict[str, str],
    *,
    in_query: tuple[str, ...] = (),
    tamper: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """A v2 request: every parameter in the body except those named in ``in_query``."""
    params = {**v2_common(action), **api}
    params["Signature"] = v2_signature(params)
    params.update(tamper or {})
    query = {k: v for k, v in params.items() if k in in_query}
    body = {k: v for k, v in params.items() if k not in in_query}
    target = f"http://{emulator.endpoint}/"
    if query:
        target += "?" + urlencode(query, quote_via=quote)
    return requests.post(
        target,
        data=urlencode(body, quote_via=quote).encode(),
        headers={"Content-Type": FORM, **(headers or {})},
        timeout=10,
    )


def acs3_request(
    emulator: Any,
    action: str,
    *,
    query: dict[str, str] | None = None,
    body: dict[str, str] | None = None,
    raw_body: bytes | None = None,
    unsigned: tuple[str, ...] = (),
    extra_headers: dict[str, str] | None = None,
) -> requests.Response:
    """An ACS3 request signed by the SDK's own ``Utils.get_authorization``.

    ``unsigned`` names headers that are sent but left out of SignedHeaders.
    """
    query = query or {}
    payload = raw_body if raw_body is not None else urlencode(body or {}, quote_via=quote).encode()
    headers = {
        "host": emulator.endpoint,
        "x-acs-action": action,
        "x-acs-version": "2017-05-25",
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(payload).hexdigest(),
        **(extra_headers or {}),
    }
    if payload:
        headers["content-type"] = FORM
    signed = {k: v for k, v in headers.items() if k not in unsigned}
    wire = SimpleNamespace(pathname="/", method="POST", query=query, headers=signed)
    headers["Authorization"] = Utils.get_authorization(
        wire, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], KEY_ID, KEY_SECRET
    )
    target = f"http://{emulator.endpoint}/"
    if query:
        target += "?" + urlencode(query, quote_via=quote)
    return requests.post(target, data=payload, headers=headers, timeout=10)


def code_of(answer: requests.Response) -> str:
    """The Aliyun code of an answer, after checking that it has Aliyun's JSON shape."""
    assert answer.headers["Content-Type"].startswith("application/json"), answer.text
    body = answer.json()
    assert set(body) >= {"Code", "Message", "RequestId"}, body
    return str(body["Code"])


class TestV2Signatures:
    def test_independent_signer_matches_the_sdk(self):
        """The hand-written v2 signer agrees with the SDK's get_rpcsignature."""
        params = {**v2_common("SendSms"), **SEND_SMS}
        assert v2_signature(params) == Utils.get_rpcsignature(params, "POST", KEY_SECRET)

    def test_everything_in_the_body_as_logto_sends_it(self, emulator):
        """v2 with every parameter, Signature included, in a form body is accepted."""
        answer = v2_request(emulator, "SendSms", SEND_SMS)
        assert code_of(answer) == "OK", answer.text
        [message] = emulator.outbox
        assert (message.phone_number, message.params) == ("13800138000", {"code": "4821"})
        assert emulator.requests[0].params["TemplateParam"] == '{"code":"4821"}'

    def test_split_between_query_and_body(self, emulator):
        """Common parameters in the query and API parameters in the body sign as one set."""
        common = (*v2_common("SendSms"), "Signature")
        answer = v2_request(emulator, "SendSms", SEND_SMS, in_query=common)
        assert code_of(answer) == "OK", answer.text
        assert len(emulator.outbox) == 1

    @pytest.mark.parametrize("field", ["PhoneNumbers", "TemplateParam"])
    def test_a_changed_body_fails_the_signature(self, emulator, field):
        """A body parameter changed after signing is SignatureDoesNotMatch."""
        tamper = {"PhoneNumbers": "13900139000", "TemplateParam": '{"code":"0000"}'}
        answer = v2_request(emulator, "SendSms", SEND_SMS, tamper={field: tamper[field]})
        assert answer.status_code == 400
        assert code_of(answer) == "SignatureDoesNotMatch"
        assert emulator.outbox == []

    def test_the_signed_action_wins_over_the_header(self, emulator):
        """Under v2 the signed Action parameter names the action, not x-acs-action."""
        answer = v2_request(
            emulator, "SendSms", SEND_SMS, headers={"x-acs-action": "QuerySendDetails"}
        )
        assert code_of(answer) == "OK"
        assert "BizId" in answer.json()

    def test_send_batch_sms_in_the_body(self, emulator):
        """SendBatchSms with v2 and every parameter in the body."""
        api = {
            "PhoneNumberJson": json.dumps(["13800138000", "13900139000"]),
            "SignNameJson": json.dumps([SIGN, SIGN]),
            "TemplateCode": "SMS_NOTICE",
            "TemplateParamJson": json.dumps([{"name": "A", "order": "1"}, {"name": "B"}]),
        }
        answer = v2_request(emulator, "SendBatchSms", api)
        assert code_of(answer) == "isv.TEMPLATE_MISSING_PARAMETERS"
        api["TemplateParamJson"] = json.dumps(
            [{"name": "A", "order": "1"}, {"name": "B", "order": "2"}]
        )
        assert code_of(v2_request(emulator, "SendBatchSms", api)) == "OK"
        assert [m.text for m in emulator.outbox] == [
            "【AcmeSign】Hi A, your order 1 shipped.",
            "【AcmeSign】Hi B, your order 2 shipped.",
        ]

    def test_query_send_details_in_the_body(self, emulator):
        """QuerySendDetails with v2 and every parameter in the body finds the message."""
        assert code_of(v2_request(emulator, "SendSms", SEND_SMS)) == "OK"
        send_date = emulator.outbox[0].sent_at.strftime("%Y%m%d")
        api = {"PhoneNumber": "13800138000", "SendDate": send_date, "PageSize": "10"}
        api["CurrentPage"] = "1"
        answer = v2_request(emulator, "QuerySendDetails", api)
        assert code_of(answer) == "OK"
        assert answer.json()["TotalCount"] == "1"

    def test_timestamp_without_fraction_is_accepted_too(self, emulator):
        """Whole-second v2 timestamps, as the SDK sends them, pass as before."""
        params = {**v2_common("SendSms"), **SEND_SMS}
        params["Timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        params["Signature"] = v2_signature(params)
        answer = requests.post(
            f"http://{emulator.endpoint}/",
            data=urlencode(params, quote_via=quote).encode(),
            headers={"Content-Type": FORM},
            timeout=10,
        )
        assert code_of(answer) == "OK"


class TestAcs3Signatures:
    def test_api_parameters_in_the_body(self, emulator):
        """ACS3 with SendSms's parameters in a form body: the body hash is what is signed."""
        answer = acs3_request(emulator, "SendSms", body=SEND_SMS)
        assert code_of(answer) == "OK", answer.text
        assert emulator.outbox[0].params == {"code": "4821"}

    def test_api_parameters_in_the_query(self, emulator):
        """ACS3 with the parameters in the query, as the unmodified SDK sends SendSms."""
        answer = acs3_request(emulator, "SendSms", query=SEND_SMS)
        assert code_of(answer) == "OK", answer.text

    def test_split_between_query_and_body(self, emulator):
        """Some parameters in the query, the rest in the body."""
        query = {"TemplateCode": "SMS_CODE"}
        body = {k: v for k, v in SEND_SMS.items() if k not in query}
        assert code_of(acs3_request(emulator, "SendSms", query=query, body=body)) == "OK"

    def test_a_changed_body_fails_the_signature(self, emulator):
        """A body that is not the one hashed and signed is SignatureDoesNotMatch."""
        payload = urlencode(SEND_SMS, quote_via=quote).encode()
        signed_hash = hashlib.sha256(payload).hexdigest()
        changed = payload.replace(b"4821", b"0000")
        answer = acs3_request(
            emulator,
            "SendSms",
            raw_body=changed,
            extra_headers={"x-acs-content-sha256": signed_hash},
        )
        assert answer.status_code == 400
        assert code_of(answer) == "SignatureDoesNotMatch"
        assert emulator.outbox == []

    @pytest.mark.parametrize("header", ["x-acs-date", "x-acs-signature-nonce", "host"])
    def test_every_acs_header_and_host_must_be_signed(self, emulator, header):
        """A request that leaves host or an x-acs-* header out of SignedHeaders is refused."""
        answer = acs3_request(emulator, "SendSms", body=SEND_SMS, unsigned=(header,))
        assert answer.status_code == 400
        assert code_of(answer) == "IncompleteSignature"
        assert header in answer.json()["Message"]

    def test_send_batch_sms_in_the_body(self, emulator):
        """SendBatchSms under ACS3 with every parameter in the body."""
        body = {
            "PhoneNumberJson": json.dumps(["13800138000"]),
            "SignNameJson": json.dumps([SIGN]),
            "TemplateCode": "SMS_NOTICE",
            "TemplateParamJson": json.dumps([{"name": "A", "order": "1"}]),
        }
        assert code_of(acs3_request(emulator, "SendBatchSms", body=body)) == "OK"

    def test_query_send_details_in_the_body(self, emulator):
        """QuerySendDetails under ACS3 with every parameter in the body."""
        body = {"PhoneNumber": "13800138000", "SendDate": "20260101", "PageSize": "10"}
        body["CurrentPage"] = "1"
        answer = acs3_request(emulator, "QuerySendDetails", body=body)
        assert code_of(answer) == "OK"
        assert answer.json()["TotalCount"] == "0"


class TestMerging:
    def test_a_parameter_in_both_places_is_refused(self, emulator):
        """The same parameter in the query and the body is ambiguous: InvalidParameter."""
        answer = acs3_request(
            emulator, "SendSms", query={"PhoneNumbers": "13900139000"}, body=SEND_SMS
        )
        assert answer.status_code == 400
        assert code_of(answer) == "InvalidParameter"
        assert "PhoneNumbers" in answer.json()["Message"]
        assert emulator.outbox == []

    def test_requests_record_the_merged_parameters(self, emulator):
        """emulator.requests shows the parameters from both places."""
        query = {"TemplateCode": "SMS_CODE"}
        body = {k: v for k, v in SEND_SMS.items() if k not in query}
        acs3_request(emulator, "SendSms", query=query, body=body)
        [received] = emulator.requests
        assert received.action == "SendSms"
        assert received.params == SEND_SMS
