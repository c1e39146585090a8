"""Malformed requests get an Aliyun-style JSON error, never aiohttp's text/plain 500."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliyun_sms_connector.emulator import Emulator

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES
from .test_emulator_placement import (
    FORM,
    SEND_SMS,
    acs3_request,
    code_of,
    v2_common,
    v2_signature,
)

DEEP = 100_000  # far past the JSON parser's recursion limit


def post(emulator, body: bytes, content_type: str | None = FORM, target: str = "/"):
    headers = {} if content_type is None else {"Content-Type": content_type}
    url = f"http://{emulator.endpoint}{target}"
    return requests.post(url, data=body, headers=headers, timeout=10)


class TestEncodingAndContentType:
    @pytest.mark.parametrize(
        "body",
        [b"Action=SendSms&PhoneNumbers=\xff\xfe138", b"Action=SendSms&PhoneNumbers=%FF%FE"],
        ids=["raw-bytes", "percent-encoded"],
    )
    def test_body_that_is_not_utf8(self, emulator, body):
        """A form body that does not decode as UTF-8 is a 400 InvalidParameter."""
        answer = post(emulator, body)
        assert answer.status_code == 400
        assert code_of(answer) == "InvalidParameter"

    def test_query_that_is_not_utf8(self, emulator):
        """A query with percent-encoded bytes that are not UTF-8 is a 400 InvalidParameter."""
        answer = post(emulator, b"", target="/?Action=SendSms&SignName=%C3%28")
        assert answer.status_code == 400
        assert code_of(answer) == "InvalidParameter"

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
    def test_body_of_another_content_type(self, emulator, content_type):
        """A body that is not a form is a 415, whatever the signature."""
        answer = post(emulator, json.dumps(SEND_SMS).encode(), content_type)
        assert answer.status_code == 415
        assert code_of(answer) == "UnsupportedMediaType"

    def test_body_over_one_mebibyte(self, emulator):
        """A body larger than 1 MiB is a 413 with Aliyun's JSON shape."""
        answer = post(emulator, b"TemplateParam=" + b"x" * (1024 * 1024 + 1))
        assert answer.status_code == 413
        assert code_of(answer) == "RequestEntityTooLarge"

    def test_malformed_requests_are_recorded(self, emulator):
        """A request refused for its encoding still shows in emulator.requests."""
        post(emulator, b"\xff", content_type=FORM)
        assert len(emulator.requests) == 1


class TestAbsurdContent:
    def test_five_thousand_numbers_in_the_query(self, emulator):
        """A SendSms request line of ~70 KB gets isv.MOBILE_COUNT_OVER_LIMIT, not a plain 400."""
        numbers = ",".join(f"139{i:08d}" for i in range(5000))
        answer = acs3_request(emulator, "SendSms", query={**SEND_SMS, "PhoneNumbers": numbers})
        assert code_of(answer) == "isv.MOBILE_COUNT_OVER_LIMIT"

    @pytest.mark.parametrize(
        ("action", "fields"),
        [
            ("SendBatchSms", {"PhoneNumberJson": "[" * DEEP + "]" * DEEP}),
            ("SendBatchSms", {"SignNameJson": "[" * DEEP + "]" * DEEP}),
            ("SendBatchSms", {"TemplateParamJson": "[" * DEEP + "]" * DEEP}),
            ("SendBatchSms", {"TemplateParamJson": '[{"name":' + "[" * DEEP}),
            ("SendBatchSms", {"PhoneNumberJson": '[{"a":"1"}]'}),
            ("SendBatchSms", {"PhoneNumberJson": '"13800138000"'}),
            ("SendBatchSms", {"TemplateParamJson": "5"}),
            ("SendBatchSms", {"TemplateParamJson": '["x"]'}),
            ("SendBatchSms", {"TemplateParamJson": '[{"name":{"a":"b"},"order":"1"}]'}),
            ("SendSms", {"TemplateParam": '{"code":' + "[" * DEEP + "]" * DEEP + "}"}),
            ("SendSms", {"TemplateParam": '{"code":["1"]}'}),
            ("SendSms", {"TemplateParam": '{"code":null}'}),
        ],
        ids=lambda value: value if isinstance(value, str) else str(value)[:40],
    )
    def test_json_that_is_nested_or_of_the_wrong_shape(self, emulator, action, fields):
        """Nested or misshapen JSON values are isv.INVALID_JSON_PARAM (HTTP 200), as on Aliyun."""
        base = {
            "SendBatchSms": {
                "PhoneNumberJson": '["13800138000"]',
                "SignNameJson": json.dumps([SIGN]),
                "TemplateCode": "SMS_NOTICE",
                "TemplateParamJson": '[{"name":"A","order":"1"}]',
            },
            "SendSms": SEND_SMS,
        }[action]
        answer = acs3_request(emulator, action, body={**base, **fields})
        assert answer.status_code == 200
        assert code_of(answer) == "isv.INVALID_JSON_PARAM"
        assert emulator.outbox == []


class TestMissingParameters:
    @pytest.mark.parametrize(
        ("action", "fields", "missing"),
        [
            ("SendSms", SEND_SMS, "PhoneNumbers"),
            ("SendSms", SEND_SMS, "SignName"),
            ("SendSms", SEND_SMS, "TemplateCode"),
            (
                "SendBatchSms",
                {"PhoneNumberJson": "[]", "SignNameJson": "[]", "TemplateCode": "SMS_NOTICE"},
                "PhoneNumberJson",
            ),
            (
                "SendBatchSms",
                {"PhoneNumberJson": "[]", "SignNameJson": "[]", "TemplateCode": "SMS_NOTICE"},
                "SignNameJson",
            ),
            (
                "SendBatchSms",
                {"PhoneNumberJson": "[]", "SignNameJson": "[]", "TemplateCode": "SMS_NOTICE"},
                "TemplateCode",
            ),
            (
                "QuerySendDetails",
                {"PhoneNumber": "13800138000", "SendDate": "20260101"},
                "SendDate",
            ),
            (
                "QuerySendDetails",
                {"PhoneNumber": "13800138000", "SendDate": "20260101"},
                "PhoneNumber",
            ),
        ],
    )
    def test_api_parameter(self, emulator, action, fields, missing):
        """An absent mandatory API parameter is a 400 Missing<Name>."""
        body = {k: v for k, v in fields.items() if k != missing}
        answer = acs3_request(emulator, action, body=body)
        assert answer.status_code == 400
        assert code_of(answer) == f"Missing{missing}"
        assert answer.json()["Message"] == f"{missing} is mandatory for this action."

    @pytest.mark.parametrize("missing", ["SignatureNonce", "Timestamp", "AccessKeyId"])
    def test_v2_signature_parameter(self, emulator, missing):
        """v2 without its nonce, timestamp or key id is a 400 Missing<Name>."""
        params = {**v2_common("SendSms"), **SEND_SMS}
        del params[missing]
        params["Signature"] = v2_signature(params)
        answer = post(emulator, urlencode(params, quote_via=quote).encode())
        assert answer.status_code == 400
        assert code_of(answer) == f"Missing{missing}"

    def test_acs3_nonce(self, emulator):
        """ACS3 without x-acs-signature-nonce is a 400 MissingSignatureNonce."""
        answer = acs3_request(
            emulator, "SendSms", body=SEND_SMS, extra_headers={"x-acs-signature-nonce": ""}
        )
        assert code_of(answer) == "MissingSignatureNonce"


@pytest.fixture(scope="module")
def shared_emulator():
    with Emulator({KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES) as running:
        yield running


# A valid request per action: the fuzzer replaces or drops some of its fields,
# so that it reaches the checks behind the first one.
VALID = {
    "SendSms": {**SEND_SMS, "OutId": "o-1"},
    "SendBatchSms": {
        "PhoneNumberJson": '["13800138000","13900139000"]',
        "SignNameJson": json.dumps([SIGN, SIGN]),
        "TemplateCode": "SMS_NOTICE",
        "TemplateParamJson": '[{"name":"A","order":"1"},{"name":"B","order":"2"}]',
    },
    "QuerySendDetails": {
        "PhoneNumber": "13800138000",
        "SendDate": "20260101",
        "PageSize": "10",
        "CurrentPage": "1",
        "BizId": "1^0",
    },
}
json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "order", "code", "x"]) | st.text(max_size=4), inner
        )
    ),
    max_leaves=8,
).map(json.dumps)
value = st.one_of(
    st.text(max_size=30),
    json_text,
    st.sampled_from(["13800138000", "14155550100", SIGN, "SMS_CODE", "SMS_INTL", "SMS_NOTICE"]),
)


class TestFuzz:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        action=st.sampled_from(sorted(VALID)),
        data=st.data(),
        placement=st.sampled_from(["query", "body"]),
    )
    def test_signed_requests_with_any_values(self, shared_emulator, action, data, placement):
        """Any values for any action's parameters get Aliyun's JSON shape and no 5xx."""
        fields = dict(VALID[action])
        for name in data.draw(st.lists(st.sampled_from(sorted(fields)), unique=True)):
            if data.draw(st.booleans()):
                del fields[name]
            else:
                fields[name] = data.draw(value)
        where = {"query": fields} if placement == "query" else {"body": fields}
        answer = acs3_request(shared_emulator, action, **where)
        assert answer.status_code < 500, answer.text
        code_of(answer)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        body=st.binary(max_size=200),
        content_type=st.sampled_from([FORM, "application/json", None]),
    )
    def test_any_bytes(self, shared_emulator, body, content_type):
        """Any body bytes get Aliyun's JSON shape and no 5xx."""
        answer = post(shared_emulator, body, content_type)
        assert answer.status_code < 500, answer.text
        code_of(answer)
