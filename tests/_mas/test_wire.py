"""Conformance: Dypnsapi requests are the ones the official alibabacloud_dypnsapi20170525 builds.

As tests/_protocol/test_wire.py does for Dysmsapi: for each action, both
signature algorithms, with and without an STS token, the SDK's client (the
connector's own, built by the Dypnsapi package) builds its request with its
transport call captured (autospec), the connector builds its own through the
public API over the mocked Transport, and the two must agree on method, path,
every parameter, the headers and the signed headers, placement aside (the
connector puts every parameter in the signed body). Both signatures are then
checked by hand.
"""

from __future__ import annotations

import json

import pytest
from alibabacloud_dypnsapi20170525 import models
from darabonba.runtime import RuntimeOptions

from aliyun_sms_connector import AliyunMasConnector
from tests import wire_fakes
from tests.conftest import SECRET, TOKEN
from tests.signing import (
    assert_same_request,
    assert_signatures,
    assert_tampering_breaks,
    capture_sdk,
)

from .conftest import LOGTO_MAS_CONFIG

PHONE = "13800138000"
SIGN = "速通互联验证码"
SCHEME = "登录 scheme+/=&"
# The three calls: Logto's own code, an Aliyun-made code, and its check.
CALLS = ["message", "verify_code", "check"]
OK = {
    "Code": "OK",
    "Message": "成功",
    "RequestId": "R",
    "Model": {"BizId": "B", "VerifyResult": "PASS"},
}


def config(algorithm, *, sts):
    data = {
        **LOGTO_MAS_CONFIG,
        "templates": [
            {"usageType": "SignIn", "templateCode": "100001", "schemeName": SCHEME},
            {"usageType": "Generic", "templateCode": "100001"},
        ],
        "signatureAlgorithm": algorithm,
    }
    if sts:
        data["securityToken"] = TOKEN
    return data


@pytest.fixture
def sdk_transport(mocker):
    """The SDK's own transport call, captured; it answers OK with a Model."""
    return capture_sdk(mocker, OK)


def core_request(transport, connector, call):
    """The WireRequest the connector builds, through its public API."""
    transport.send.return_value = wire_fakes.response(OK)
    if call == "message":
        connector.send_message(PHONE, "SignIn", {"code": "482913", "locale": "zh-CN"})
    elif call == "verify_code":
        connector.send_verify_code(PHONE, "SignIn", code_length=6, valid_time=300, interval=60)
    else:
        assert connector.check_verify_code(PHONE, "SignIn", "482913") is True
    (request,) = transport.send.call_args.args
    return request


def sdk_request(sdk_transport, connector, call):
    """The DaraRequest the official Dypnsapi client builds for the same call."""
    client = connector._lane.client
    runtime = RuntimeOptions()
    common = {"phone_number": PHONE, "country_code": "86", "scheme_name": SCHEME}
    if call == "message":
        client.send_sms_verify_code_with_options(
            models.SendSmsVerifyCodeRequest(
                **common,
                sign_name=SIGN,
                template_code="100001",
                template_param=json.dumps({"code": "482913", "min": "10"}, separators=(",", ":")),
            ),
            runtime,
        )
    elif call == "verify_code":
        client.send_sms_verify_code_with_options(
            models.SendSmsVerifyCodeRequest(
                **common,
                sign_name=SIGN,
                template_code="100001",
                template_param='{"code":"##code##","min":"5"}',
                code_length=6,
                valid_time=300,
                interval=60,
                duplicate_policy=1,
                code_type=1,
            ),
            runtime,
        )
    else:
        client.check_sms_verify_code_with_options(
            models.CheckSmsVerifyCodeRequest(**common, verify_code="482913"), runtime
        )
    (request, _runtime) = sdk_transport.call_args.args
    return request


@pytest.mark.parametrize("sts", [False, True], ids=["ak", "sts"])
@pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
@pytest.mark.parametrize("call", CALLS)
class TestConformance:
    def test_same_request_as_the_sdk(self, transport, sdk_transport, call, algorithm, sts):
        """Method, path, parameters, headers and signature scheme match the SDK's request."""
        connector = AliyunMasConnector(config(algorithm, sts=sts))
        ours = core_request(transport, connector, call)
        theirs = sdk_request(sdk_transport, connector, call)
        assert theirs.headers["host"] == "dypnsapi.aliyuncs.com"
        assert theirs.headers["x-acs-action"] in {"SendSmsVerifyCode", "CheckSmsVerifyCode"}
        assert_same_request(ours, theirs, sts=sts)

    def test_signature_verifies(self, transport, sdk_transport, call, algorithm, sts):
        """The connector's signature checks out by hand; so does the SDK's, by the same hand."""
        connector = AliyunMasConnector(config(algorithm, sts=sts))
        ours = core_request(transport, connector, call)
        theirs = sdk_request(sdk_transport, connector, call)
        assert_signatures(ours, theirs, algorithm=algorithm, sts=sts)

    def test_a_changed_body_breaks_the_signature(self, transport, call, algorithm, sts):
        """The body is signed: the hand check fails on a tampered number (the test can fail)."""
        connector = AliyunMasConnector(config(algorithm, sts=sts))
        ours = core_request(transport, connector, call)
        assert_tampering_breaks(ours, algorithm=algorithm, old=PHONE.encode(), new=b"13800138001")


class TestNothingInTheUrl:
    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    @pytest.mark.parametrize("call", CALLS)
    def test_no_private_value_outside_the_body(self, transport, algorithm, call):
        """The request line and headers hold no number, code or secret: urllib3 logs the line."""
        connector = AliyunMasConnector(config(algorithm, sts=True))
        request = core_request(transport, connector, call)
        outside = request.target + json.dumps(dict(request.headers))
        for private in (PHONE, "482913", SECRET):
            assert private not in outside
        assert PHONE.encode() in request.body


class TestEndpoint:
    def test_default_is_dypnsapi(self, transport):
        """With no endpoint, the Dypnsapi client's own map gives dypnsapi.aliyuncs.com."""
        assert AliyunMasConnector(LOGTO_MAS_CONFIG).endpoint == "dypnsapi.aliyuncs.com"

    def test_local_plain_http_endpoint(self, transport):
        """protocol http and 127.0.0.1:PORT reach the Transport as given (the emulator's case)."""
        connector = AliyunMasConnector(
            {**LOGTO_MAS_CONFIG, "protocol": "http", "endpoint": "127.0.0.1:8765"}
        )
        assert connector.endpoint == "127.0.0.1:8765"
        assert transport.cls.call_args.kwargs["protocol"] == "http"
        assert transport.cls.call_args.kwargs["host"] == "127.0.0.1:8765"
        request = core_request(transport, connector, "check")
        assert request.headers["host"] == "127.0.0.1:8765"
