"""Conformance: the core's requests are the ones the unmodified SDK builds, all in the body.

For every action and both signature algorithms, with and without an STS
token, the SDK builds its own request for the same call (its transport call,
``DaraCore.do_action``, is patched with autospec to capture the DaraRequest),
and the core builds its own (the Transport is patched with autospec). The two
must agree on method, path, every parameter (query and body merged: the core
puts them all in the body), the headers and the signed headers, the signature
scheme and the key id, nonce and date aside. The core's signature is then
recomputed here with ``hmac`` from the published ACS3 and v2 rules; the same
recomputation must accept the SDK's own request, so it is checked too.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from alibabacloud_dysmsapi20170525 import models
from darabonba.runtime import RuntimeOptions
from darabonba.utils.form import Form

from aliyun_sms_connector import AliyunSmsConnector, BatchMessage
from aliyun_sms_connector._errors import Failure
from aliyun_sms_connector._http.models import WireResponse
from aliyun_sms_connector._protocol.wire import Answer, form, read, records_of, timestamp
from tests import wire_fakes
from tests.conftest import LOGTO_CONFIG, SECRET, TOKEN
from tests.signing import (
    ACS3,
    assert_same_request,
    assert_signatures,
    assert_tampering_breaks,
    capture_sdk,
)

NOTICE = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]
# Values with every character class the encoders treat differently.
ODD = "a b+c/d=e&f~g%h*i'j(k)!中文😀\t"


def config(algorithm, *, sts):
    data = {
        **LOGTO_CONFIG,
        "templates": LOGTO_CONFIG["templates"],
        "signatureAlgorithm": algorithm,
        "signName": "Acme 签名",
    }
    if sts:
        data["securityToken"] = TOKEN
    return data


@pytest.fixture
def sdk_transport(mocker):
    """The SDK's own transport call, captured; it answers OK for every action."""
    return capture_sdk(
        mocker,
        {
            "Code": "OK",
            "BizId": "1",
            "RequestId": "R",
            "TotalCount": 0,
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": []},
        },
    )


def sdk_request(sdk_transport, connector, action):
    """The DaraRequest the SDK builds for the same call, on the connector's own SDK client."""
    client = connector._client
    runtime = RuntimeOptions()
    if action == "SendSms":
        client.send_sms_with_options(
            models.SendSmsRequest(
                phone_numbers="13800138000",
                sign_name="Acme 签名",
                template_code="SMS_SIGNIN",
                template_param=json.dumps({"code": "482913"}, separators=(",", ":")),
                out_id=ODD,
            ),
            runtime,
        )
    elif action == "SendBatchSms":
        client.send_batch_sms_with_options(
            models.SendBatchSmsRequest(
                phone_number_json=json.dumps(["13800138000", "13900139000"]),
                sign_name_json=json.dumps(["Acme 签名", "Other"], ensure_ascii=False),
                template_code="SMS_NOTICE",
                template_param_json='[{"name":"' + ODD.replace("\t", "") + '"},{"name":"B"}]',
            ),
            runtime,
        )
    else:
        client.query_send_details_with_options(
            models.QuerySendDetailsRequest(
                phone_number="13800138000",
                send_date="20261124",
                page_size=50,
                current_page=1,
                biz_id="900^1",
            ),
            runtime,
        )
    (request, _runtime) = sdk_transport.call_args.args
    return request


def core_request(transport, connector, action):
    """The WireRequest the core builds for the same call, through the public API."""
    if action == "SendSms":
        connector.send_message("13800138000", "SignIn", {"code": "482913"}, out_id=ODD)
    elif action == "SendBatchSms":
        transport.send.return_value = wire_fakes.batch_ok()
        connector.send_batch(
            [
                BatchMessage("13800138000", {"name": ODD.replace("\t", "")}),
                BatchMessage("13900139000", {"name": "B"}, sign_name="Other"),
            ]
        )
    else:
        transport.send.return_value = wire_fakes.receipts([])
        connector.query_delivery("13800138000", biz_id="900^1", send_date="20261124")
    (request,) = transport.send.call_args.args
    return request


@pytest.mark.parametrize("sts", [False, True], ids=["ak", "sts"])
@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
@pytest.mark.parametrize("action", ["SendSms", "SendBatchSms", "QuerySendDetails"])
class TestConformance:
    def test_same_request_as_the_sdk(self, transport, sdk_transport, action, algorithm, sts):
        """Method, path, parameters, headers and signature scheme match the SDK's request."""
        connector = AliyunSmsConnector(
            config(algorithm, sts=sts) | ({"templates": NOTICE} if action == "SendBatchSms" else {})
        )
        ours = core_request(transport, connector, action)
        theirs = sdk_request(sdk_transport, connector, action)

        assert_same_request(ours, theirs, sts=sts)

    def test_signature_verifies(self, transport, sdk_transport, action, algorithm, sts):
        """The core's signature checks out by hand; so does the SDK's, by the same hand."""
        connector = AliyunSmsConnector(
            config(algorithm, sts=sts) | ({"templates": NOTICE} if action == "SendBatchSms" else {})
        )
        ours = core_request(transport, connector, action)
        theirs = sdk_request(sdk_transport, connector, action)
        assert_signatures(ours, theirs, algorithm=algorithm, sts=sts)

    def test_a_changed_body_breaks_the_signature(self, transport, action, algorithm, sts):
        """The body is signed: the hand check fails on a tampered body (the test can fail)."""
        connector = AliyunSmsConnector(
            config(algorithm, sts=sts) | ({"templates": NOTICE} if action == "SendBatchSms" else {})
        )
        ours = core_request(transport, connector, action)
        assert_tampering_breaks(ours, algorithm=algorithm, old=b"13800138000", new=b"13800138001")


class TestNothingInTheUrl:
    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_no_private_value_outside_the_body(self, transport, algorithm):
        """The request line and headers hold no number, code or template value."""
        connector = AliyunSmsConnector(config(algorithm, sts=False))
        connector.send_message("13800138000", "SignIn", {"code": "482913"})
        (request,) = transport.send.call_args.args
        outside = request.target + json.dumps(dict(request.headers))
        for private in ("13800138000", "482913", SECRET):
            assert private not in outside
        assert b"13800138000" in request.body


class TestForm:
    @pytest.mark.parametrize(
        "params",
        [
            {"B": "2", "A": "1"},
            {"TemplateParam": json.dumps({"code": ODD}, ensure_ascii=False), "X": ODD},
            {"Empty": ""},
            # Left as they are, and the characters just outside that set.
            {"A": "SMS_000001", "B": "a.b~c-d_e", "C": "13900000001", "D": "Zz09"},
            {"A": "a!b", "B": "a+b", "C": "a/b", "D": "a:b", "E": "é", "F": "a\nb", "G": "@"},
        ],
    )
    def test_same_text_as_the_sdks_encoder(self, params):
        """form() writes what darabonba's Form.to_form_string writes."""
        assert form(params) == Form.to_form_string(params)

    def test_timestamp_format(self):
        """The date is ISO 8601 in UTC, to the second, as Aliyun wants it."""
        from datetime import datetime, timezone

        stamp = datetime.strptime(timestamp(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 2


class TestRead:
    def test_ok(self):
        """Code OK is an Answer with the body, the ids and the status."""
        answer = read(wire_fakes.ok(biz_id="B", request_id="R"))
        assert isinstance(answer, Answer)
        assert (answer.biz_id, answer.request_id, answer.http_status) == ("B", "R", 200)

    def test_lowercase_keys_in_gateway_errors(self):
        """The gateway's error object may use lowercase keys, as the SDK allows."""
        response = wire_fakes.response(
            {"code": "Throttling", "message": "slow", "requestId": "R", "recommend": "u"}, 400
        )
        assert read(response) == Failure(
            "response",
            code="Throttling",
            message="slow",
            http_status=400,
            request_id="R",
            recommend="u",
        )

    def test_a_none_string_is_no_value(self):
        """The string 'None' (how the SDK wrote missing fields) counts as missing."""
        failure = read(wire_fakes.response({"Code": "X", "RequestId": "None"}))
        assert failure.request_id is None

    def test_records(self):
        """Receipt records are the dicts of SmsSendDetailDTO, with TotalCount."""
        records, total = records_of(
            read(wire_fakes.receipts([wire_fakes.record(), "junk"], total=7))
        )
        assert total == 7
        assert [r["PhoneNum"] for r in records] == ["13800138000"]

    def test_headers_are_looked_up_lowercase(self):
        """x-acs-retry-after is read from the lower-cased headers the transport gives."""
        response = WireResponse(
            400, {"x-acs-retry-after": "250"}, json.dumps({"Code": "Throttling.User"}).encode()
        )
        assert read(response).retry_after_ms == 250.0


class TestSigner:
    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_constants_are_built_once_and_never_changed(self, algorithm):
        """The per-action constants are shared by every send and never mutated by one."""
        from aliyun_sms_connector._protocol.sdk import Credential
        from aliyun_sms_connector._protocol.wire import Signer

        signer = Signer(host="h", user_agent="ua", algorithm=algorithm)
        before = {action: dict(headers) for action, headers in signer._headers.items()}
        fields = {action: dict(f) for action, f in signer._v2_fields.items()}
        credential = Credential("AK", "secret", "token", "static_sts")
        first = signer.sign("SendSms", {"PhoneNumbers": "1"}, credential)
        second = signer.sign("SendSms", {"PhoneNumbers": "2"}, credential)
        assert first.headers is not second.headers
        assert all(first.headers is not h for h in signer._headers.values())
        assert {a: dict(h) for a, h in signer._headers.items()} == before
        assert {a: dict(f) for a, f in signer._v2_fields.items()} == fields
        assert "secret" not in repr(signer)

    @pytest.mark.parametrize("action", ["SendSms", "SendBatchSms", "QuerySendDetails"])
    @pytest.mark.parametrize(
        ("token", "provider"),
        [(None, None), (None, "static_ak"), ("tok en", "static_sts"), (" tok{0}", None)],
        ids=["plain", "provider", "sts", "odd-token"],
    )
    def test_acs3_authorization_is_the_sdks(self, action, token, provider):
        """The Authorization is exactly what the SDK's own get_authorization computes."""
        from types import SimpleNamespace

        from alibabacloud_tea_openapi.utils import Utils

        from aliyun_sms_connector._protocol.sdk import Credential, _load_signers
        from aliyun_sms_connector._protocol.wire import Signer

        _load_signers()
        # Braces, spaces and a trailing blank: the values the layout must escape and strip.
        signer = Signer(host="h:1", user_agent="AlibabaCloud {x} ua/1.0 ", algorithm=ACS3)
        credential = Credential(" AK{1} ", "sec}ret{", token, provider)
        request = signer.sign(action, {"PhoneNumbers": "1", "B": ODD}, credential)
        headers = {k: v for k, v in request.headers.items() if k != "Authorization"}
        view = SimpleNamespace(method="POST", pathname="/", headers=headers, query=None)
        digest = hashlib.sha256(request.body).hexdigest()
        expected = Utils.get_authorization(view, ACS3, digest, " AK{1} ", "sec}ret{")
        assert request.headers["Authorization"] == expected
        assert headers["x-acs-content-sha256"] == digest
        tampered = dict(headers, **{"x-acs-signature-nonce": "0" * 32})
        view.headers = tampered
        assert Utils.get_authorization(view, ACS3, digest, " AK{1} ", "sec}ret{") != expected
