"""The benchmark harness works: its server verifies signatures, its smoke run passes.

Timing is never asserted here; full runs of bench/bench.py check the targets.
"""

import copy
import hashlib
import hmac
import http.client
import importlib.util
import json
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

BENCH_DIR = Path(__file__).parent.parent / "bench"


def _load(name, filename):
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load("bench_harness", "bench.py")
bench_server = _load("bench_server", "server.py")


@pytest.fixture(scope="module")
def server():
    """bench/server.py in its own process, as the harness runs it."""
    running = bench.Server(delay=0.0)
    yield running
    running.close()


@pytest.fixture
def stats(server):
    """Read the server's counters after the test's requests, from zero."""
    server.ask("reset")
    return lambda: server.ask("stats")


def _sdk_client(server, *, algorithm="ACS3-HMAC-SHA256", secret=bench_server.KEY_SECRET):
    return Client(
        Config(
            access_key_id=bench_server.KEY_ID,
            access_key_secret=secret,
            endpoint=server.https,
            protocol="https",
            ca=server.ca_file,
            signature_algorithm=algorithm,
        )
    )


def _call_every_action(client):
    runtime = RuntimeOptions()
    sent = client.send_sms_with_options(
        models.SendSmsRequest(
            phone_numbers="13900000001",
            sign_name="Bench",
            template_code="SMS_000001",
            template_param='{"code":"123456"}',
        ),
        runtime,
    )
    batch = client.send_batch_sms_with_options(
        models.SendBatchSmsRequest(
            phone_number_json='["13900000001","13900000002"]',
            sign_name_json='["Bench","Bench"]',
            template_code="SMS_000001",
            template_param_json='[{"code":"1"},{"code":"2"}]',
        ),
        runtime,
    )
    details = client.query_send_details_with_options(
        models.QuerySendDetailsRequest(
            phone_number="13900000001", send_date="20261125", page_size=10, current_page=1
        ),
        runtime,
    )
    return sent.body, batch.body, details.body


def _acs3_request(server, body, *, signed_body=None):
    """POST a form body signed by hand (ACS3); ``signed_body`` is what the signature covers."""
    signed_body = body if signed_body is None else signed_body
    digest = hashlib.sha256(signed_body).hexdigest()
    headers = {
        "host": server.https,
        "x-acs-action": "SendSms",
        "x-acs-content-sha256": digest,
        "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-version": "2017-05-25",
    }
    names = ";".join(headers)
    canonical = "POST\n/\n\n" + "".join(f"{k}:{v}\n" for k, v in headers.items())
    canonical += f"\n{names}\n{digest}"
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(
        bench_server.KEY_SECRET.encode(), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={bench_server.KEY_ID},"
        f"SignedHeaders={names},Signature={signature}"
    )
    headers["content-type"] = "application/x-www-form-urlencoded"
    host, port = server.https.split(":")
    context = ssl.create_default_context(cafile=server.ca_file)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


class TestServer:
    """bench/server.py verifies what the SDK and a hand signer send, and counts the rest."""

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_sdk_requests_verify_for_every_action(self, server, stats, algorithm):
        """SendSms, SendBatchSms and QuerySendDetails, SDK-signed, verify and get their answer."""
        sent, batch, details = _call_every_action(_sdk_client(server, algorithm=algorithm))
        assert (sent.code, batch.code, details.code) == ("OK", "OK", "OK")
        assert sent.biz_id
        assert details.sms_send_detail_dtos.sms_send_detail_dto[0].send_status == 3
        counted = stats()
        scheme = "v2" if algorithm == "v2" else "ACS3-HMAC-SHA256"
        assert counted["verified"][scheme] == 3
        assert counted["actions"] == {"SendSms": 1, "SendBatchSms": 1, "QuerySendDetails": 1}
        assert counted["failed"] == 0
        assert counted["cpu_us_per_request"] > 0

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_wrong_secret_is_rejected_and_counted(self, server, stats, algorithm):
        """A request signed with another secret gets SignatureDoesNotMatch and is counted."""
        client = _sdk_client(server, algorithm=algorithm, secret="not-the-secret")
        with pytest.raises(ClientException) as caught:
            _call_every_action(client)
        assert caught.value.code == "SignatureDoesNotMatch"
        counted = stats()
        assert counted["failures"] == {"signature": 1}
        assert counted["verified"] == {"ACS3-HMAC-SHA256": 0, "v2": 0}

    def test_form_body_parameters_are_read_and_signed(self, server, stats):
        """A hand-signed form body verifies; the same signature over another body does not."""
        body = urlencode({"PhoneNumbers": "13900000001", "SignName": "B", "TemplateCode": "T"})
        assert _acs3_request(server, body.encode())[0] == 200
        tampered = body.replace("13900000001", "13900000002").encode()
        status, answer = _acs3_request(server, tampered, signed_body=body.encode())
        assert (status, answer["Code"]) == (400, "SignatureDoesNotMatch")
        counted = stats()
        assert counted["verified"]["ACS3-HMAC-SHA256"] == 1
        assert counted["failures"] == {"body_hash": 1}

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_this_library_verifies_with_both_algorithms(self, server, stats, algorithm):
        """send_message, signed either way in its own wire layout, verifies."""
        from aliyun_sms_connector import AliyunSmsConnector

        config = {
            "accessKeyId": bench_server.KEY_ID,
            "accessKeySecret": bench_server.KEY_SECRET,
            "signName": "Bench",
            "templates": [{"usageType": "Generic", "templateCode": "SMS_000001", "type": 2}],
            "endpoint": server.https,
            "caFile": server.ca_file,
            "signatureAlgorithm": algorithm,
        }
        with AliyunSmsConnector(config) as connector:
            connector.send_message("13900000001", "Generic", {"code": "123456"})
        counted = stats()
        assert counted["verified"]["v2" if algorithm == "v2" else algorithm] == 1
        assert counted["failed"] == 0

    def test_missing_parameter_is_rejected(self, server, stats):
        """A well-signed SendSms without PhoneNumbers is refused, so parameters are parsed."""
        body = urlencode({"SignName": "B", "TemplateCode": "T"}).encode()
        status, answer = _acs3_request(server, body)
        assert (status, answer["Code"]) == (400, "MissingParameter")
        assert stats()["failures"] == {"params": 1}


def _smoke_run(out, *options):
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / "bench.py"), "--smoke", "--json", str(out), *options],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run of the whole harness, with its JSON."""
    return _smoke_run(tmp_path_factory.mktemp("bench") / "bench.json")


class TestSmokeRun:
    """bench/bench.py --smoke runs every client against the verifying server."""

    def test_exits_zero_with_a_smoke_verdict(self, smoke):
        """The run completes without client errors or rejected signatures."""
        result, data = smoke
        assert result.returncode == 0, result.stdout + result.stderr
        assert data["verdict"] == "smoke"
        assert data["broken"] == []
        assert "Verdict: smoke" in result.stdout

    def test_every_client_sent_and_every_request_verified(self, smoke):
        """Each side sent in its own run, and the server verified each of its requests."""
        _, data = smoke
        (only_round,) = data["rounds"]
        assert set(only_round["async"]) == set(bench.ASYNC_SIDES)
        assert set(only_round["sync"]) == set(bench.SYNC_SIDES)
        for kind in ("async", "sync"):
            for run in only_round[kind].values():
                assert run["sends"] > 0
                assert run["errors"] == 0
                assert run["server"]["failed"] == 0
                verified = sum(run["server"]["verified"].values())
                assert verified == run["server"]["requests"] >= run["sends"]
                assert run["cpu_s"] > 0
                assert run["server"]["cpu_s"] > 0
                assert run["others_core"] is None or run["others_core"] >= 0
                assert 0 < run["p50_ms"] <= run["p99_ms"]

    def test_raw_aiohttp_sends_the_same_layout_as_this_library(self, smoke):
        """The raw baseline carries its parameters where this library does (the form body)."""
        _, data = smoke
        (only_round,) = data["rounds"]
        raw = only_round["async"]["raw"]["server"]["layouts"]
        ours = only_round["async"]["connector"]["server"]["layouts"]
        assert set(raw) == set(ours) == {"form"}

    def test_every_row_is_reported(self, smoke):
        """The table has every target of issue 10 and every informational row, with values."""
        _, data = smoke
        assert [row["key"] for row in data["rows"]] == [key for key, *_ in bench.ROWS]
        assert all(row["median"] > 0 for row in data["rows"])
        assert all(len(data["imports"][name]) == 1 for name in ("connector", "sdk"))

    def test_a_server_that_rejects_every_signature_fails_the_run(self, tmp_path):
        """Against a server with another secret, every side is rejected and the run exits 2."""
        result, data = _smoke_run(tmp_path / "bench.json", "--server-secret", "not-the-secret")
        assert result.returncode == 2, result.stdout + result.stderr
        assert data["verdict"] == "broken"
        assert "Verdict: broken" in result.stdout
        (only_round,) = data["rounds"]
        runs = [*only_round["async"].values(), *only_round["sync"].values()]
        assert len(runs) == len(bench.ASYNC_SIDES) + len(bench.SYNC_SIDES)
        for run in runs:
            assert run["server"]["failures"].get("signature", 0) > 0
            assert run["errors"] + run["warmup_errors"] > 0

    def test_a_rejected_signature_breaks_the_run(self, smoke):
        """The same figures with one signature failure give the verdict broken."""
        _, data = smoke
        spoiled = copy.deepcopy(data)
        spoiled["rounds"][0]["async"]["connector"]["server"]["failed"] = 1
        assert bench.summarize(spoiled, smoke=True)["verdict"] == "broken"
        assert bench.summarize(copy.deepcopy(data), smoke=True)["verdict"] == "smoke"

    def test_a_busy_server_makes_a_full_run_inconclusive(self, smoke):
        """A server that used most of a core during an async run voids the targets."""
        _, data = smoke
        busy = copy.deepcopy(data)
        busy["rounds"][0]["async"]["raw"]["server_core"] = 0.9
        summary = bench.summarize(busy, smoke=False)
        assert summary["verdict"] == "inconclusive"
        assert any("bottleneck" in warning for warning in summary["warnings"])


class TestHarness:
    """The pieces of the harness that decide order and verdicts."""

    def test_rotation_puts_each_side_first_once_per_cycle(self):
        """ABC, BCA, CAB: each side leads one round in three."""
        orders = [bench.rotated(("a", "b", "c"), number) for number in range(3)]
        assert orders == [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")]

    @pytest.mark.parametrize(
        ("value", "target", "expected"),
        [
            (1.35, "<= 1.35", True),
            (1.36, "<= 1.35", False),
            (0.85, ">= 0.85", True),
            (0.84, ">= 0.85", False),
            (1.0, "0.9-1.1", True),
            (1.2, "0.9-1.1", False),
        ],
    )
    def test_targets_are_read_as_written(self, value, target, expected):
        """'<= x', '>= x' and 'a-b' bound inclusively."""
        assert bench.meets(value, target) is expected
