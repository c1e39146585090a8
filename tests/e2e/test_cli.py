"""The aliyun-sms command, run in-process and as a real console script."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

from aliyun_sms_connector import _cli
from aliyun_sms_connector._cli import EXIT_CODES, main

from .conftest import KEY_SECRET, connector_config


@pytest.fixture
def config_file(emulator, tmp_path):
    path = tmp_path / "logto.json"
    path.write_text(json.dumps(connector_config(emulator)), encoding="utf-8")
    return path


class TestDemo:
    def test_demo_sends_through_the_sdk_and_shows_the_sms(self, capsys):
        """demo needs nothing and prints the SMS with its ids."""
        assert main(["demo", "--code", "246810"]) == 0
        out = capsys.readouterr().out
        assert "【AliyunSmsTest】Your code is 246810." in out
        assert re.search(r"biz id: +\d+\^0", out)
        assert re.search(r"request id: +[0-9A-F-]{36}", out)
        assert "13800138000" not in out

    def test_demo_generates_a_code(self, capsys):
        """Without --code, demo makes a 6-digit one."""
        assert main(["demo"]) == 0
        assert re.search(r"Your code is \d{6}\.", capsys.readouterr().out)

    def test_console_script_and_module(self):
        """aliyun-sms and python -m aliyun_sms_connector are the same command."""
        by_module = subprocess.run(
            [sys.executable, "-m", "aliyun_sms_connector", "demo", "--code", "1357"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert "Your code is 1357." in by_module.stdout
        help_text = subprocess.run(
            [sys.executable, "-m", "aliyun_sms_connector", "--help"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for command in ("demo", "send", "check-config", "emulator"):
            assert command in help_text


class TestSend:
    def test_send_with_config_file(self, emulator, config_file, capsys):
        """send reads Logto's JSON and prints the result."""
        code = main(["send", "--config", str(config_file), "--to", "13800138000", "--code", "42"])
        assert code == 0
        out = capsys.readouterr().out
        assert "sent Generic code 42 to ***8000" in out
        assert emulator.outbox[0].params == {"code": "42"}
        assert emulator.outbox[0].template_code == "SMS_CODE"

    def test_send_with_environment(self, emulator, monkeypatch, capsys):
        """Without --config, ALIYUN_SMS_* variables give the config."""
        config = connector_config(emulator)
        for key, value in {
            "ALIYUN_SMS_ACCESS_KEY_ID": config["accessKeyId"],
            "ALIYUN_SMS_ACCESS_KEY_SECRET": config["accessKeySecret"],
            "ALIYUN_SMS_SIGN_NAME": config["signName"],
            "ALIYUN_SMS_TEMPLATES": json.dumps(config["templates"]),
            "ALIYUN_SMS_ENDPOINT": config["endpoint"],
            "ALIYUN_SMS_PROTOCOL": "http",
        }.items():
            monkeypatch.setenv(key, value)
        assert main(["send", "--to", "+14155550100", "--usage-type", "SignIn"]) == 0
        [message] = emulator.outbox
        assert message.template_code == "SMS_SIGNIN"
        assert re.fullmatch(r"[0-9]{6}", message.params["code"])
        assert message.params["code"] in capsys.readouterr().out

    @pytest.mark.parametrize(
        ("setup", "argv_extra", "expected_class"),
        [
            (lambda e: e.fail_next("isv.AMOUNT_NOT_ENOUGH"), [], "AccountError"),
            (
                lambda e: e.fail_next("SignatureDoesNotMatch", http_status=400),
                [],
                "AuthenticationError",
            ),
            (lambda _: None, ["--usage-type", "Bogus"], "TemplateNotFoundError"),
            (
                lambda e: e.send_invalid_body(http_status=503, count=3),
                [],
                "ServiceUnavailableError",
            ),
        ],
    )
    def test_errors_print_the_typed_error(
        self, emulator, config_file, capsys, setup, argv_extra, expected_class
    ):
        """A failure prints class, code and request id, and exits with the class's status."""
        setup(emulator)
        status = main(["send", "--config", str(config_file), "--to", "13800138000", *argv_extra])
        err = capsys.readouterr().err
        assert err.startswith(f"error: {expected_class}: ")
        assert "code:" in err
        expected = {cls.__name__: code for cls, code in EXIT_CODES}[expected_class]
        assert status == expected

    def test_gateway_error_shows_request_id_and_recommend(self, emulator, config_file, capsys):
        """Gateway errors show Aliyun's request id and diagnosis URL."""
        emulator.fail_next("SignatureDoesNotMatch", http_status=400)
        main(["send", "--config", str(config_file), "--to", "13800138000"])
        err = capsys.readouterr().err
        assert re.search(r"request id: +[0-9A-F-]{36}", err)
        assert "recommend:  https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch" in err

    def test_read_timeout_says_it_may_have_been_sent(self, emulator, tmp_path, capsys):
        """A read timeout warns that the SMS may have been sent."""
        path = tmp_path / "slow.json"
        path.write_text(json.dumps(connector_config(emulator, readTimeout=200)))
        emulator.delay(1.0)
        assert main(["send", "--config", str(path), "--to", "13800138000"]) == 14
        assert "the SMS may have been sent" in capsys.readouterr().err

    def test_exit_codes_are_distinct(self):
        """Every error class has its own exit status."""
        codes = [code for _, code in EXIT_CODES]
        assert len(codes) == len(set(codes))
        assert 0 not in codes
        assert 2 not in codes  # argparse's usage error


class TestCheckConfig:
    def test_routing_table_with_masked_secrets(self, config_file, capsys):
        """check-config prints every usage type's route and never the secret."""
        assert main(["check-config", "--config", str(config_file)]) == 0
        out = capsys.readouterr().out
        assert KEY_SECRET not in out
        assert "accessKeySecret: ********" in out
        assert re.search(r"SignIn +SMS_SIGNIN +SMS_SIGNIN +exact", out)
        assert re.search(r"Register +SMS_CODE +SMS_INTL +Generic", out)
        assert "LTAI5tE2eKeyId" not in out

    def test_usage_type_without_template(self, tmp_path, capsys):
        """Usage types with no route are listed as such."""
        path = tmp_path / "c.json"
        path.write_text(
            json.dumps(
                {
                    "accessKeyId": "LTAIabcdefgh",
                    "accessKeySecret": "s",
                    "signName": "S",
                    "securityToken": "tok-secret",
                    "templates": [{"usageType": "SignIn", "templateCode": "SMS_1"}],
                }
            )
        )
        assert main(["check-config", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert re.search(r"Register +- +- +no template", out)
        assert "tok-secret" not in out
        assert "securityToken:   ********" in out

    @pytest.mark.parametrize(
        ("content", "needle"),
        [
            ("{not json", "not valid JSON"),
            ('{"accessKeyId": ""}', "accessKeyId"),
            (json.dumps({"accessKeySecret": KEY_SECRET, "typo": 1}), "typo"),
        ],
    )
    def test_invalid_config_is_readable(self, tmp_path, capsys, content, needle):
        """An invalid config prints a readable error, exit 3, no traceback, no secret."""
        path = tmp_path / "bad.json"
        path.write_text(content)
        assert main(["check-config", "--config", str(path)]) == 3
        captured = capsys.readouterr()
        assert needle in captured.err
        assert "Traceback" not in captured.err
        assert KEY_SECRET not in captured.err + captured.out

    def test_missing_file(self, tmp_path, capsys):
        """A config path that does not exist is a ConfigError."""
        assert main(["check-config", "--config", str(tmp_path / "nope.json")]) == 3
        assert "cannot read" in capsys.readouterr().err

    def test_environment_problems_name_the_variables(self, monkeypatch, capsys):
        """Without --config, problems are named by their ALIYUN_SMS_* variable."""
        monkeypatch.setenv("ALIYUN_SMS_SIGN_NAME", "S")
        monkeypatch.setenv("ALIYUN_SMS_TEMPLATE", "[]")
        assert main(["check-config"]) == 3
        assert "ALIYUN_SMS_TEMPLATE: unknown variable" in capsys.readouterr().err

    def test_no_traceback_from_the_console_script(self, tmp_path):
        """The installed command prints no traceback for a bad config."""
        path = tmp_path / "bad.json"
        path.write_text("[]")
        result = subprocess.run(
            [sys.executable, "-m", "aliyun_sms_connector", "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 3
        assert "Traceback" not in result.stderr
        assert "expected a JSON object" in result.stderr


class TestEmulatorCommand:
    def test_emulator_serves_and_prints_messages(self, tmp_path):
        """aliyun-sms emulator serves in the foreground and prints each accepted message."""
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            [sys.executable, "-m", "aliyun_sms_connector", "emulator", "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            lines = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                lines.append(line)
                if line.startswith("Press Ctrl-C"):
                    break
            banner = "".join(lines)
            assert f"127.0.0.1:{port}" in banner
            key_id, secret = re.search(r"accessKeyId=(\S+) accessKeySecret=(\S+)", banner).groups()
            from aliyun_sms_connector import AliyunSmsConnector

            connector = AliyunSmsConnector(
                {
                    "accessKeyId": key_id,
                    "accessKeySecret": secret,
                    "signName": "AliyunSmsTest",
                    "templates": [{"usageType": "Generic", "templateCode": "SMS_000001"}],
                    "endpoint": f"127.0.0.1:{port}",
                    "protocol": "http",
                }
            )
            connector.send_message("13800138000", "SignIn", {"code": "8642"})
            printed = process.stdout.readline() + process.stdout.readline()
            assert "13800138000 SMS_000001" in printed
            assert "【AliyunSmsTest】Your code is 8642." in printed
        finally:
            process.terminate()
            process.communicate(timeout=30)


def test_version(capsys):
    """--version prints the installed distribution's version."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"aliyun-sms {version('aliyun-sms-connector')}"


def test_keyboard_interrupt_exits_130(monkeypatch):
    """Ctrl-C ends any command with status 130 and no traceback."""

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_demo", interrupted)
    assert main(["demo"]) == 130


def test_emulator_command_in_process(monkeypatch, capsys):
    """The emulator command prints its keys, templates and CA file, then waits."""

    def stop_at_once():
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_wait_forever", stop_at_once)
    assert main(["emulator", "--port", "0", "--tls"]) == 130
    out = capsys.readouterr().out
    assert re.search(r"Aliyun SMS emulator on https://127\.0\.0\.1:\d+", out)
    assert "SMS_000002 (INTERNATIONAL_MESSAGE): Your code is ${code}." in out
    assert "CA file: " in out


def test_python_dash_m_runs_main(monkeypatch, capsys):
    """python -m aliyun_sms_connector runs the same main()."""
    import runpy
    from pathlib import Path

    import aliyun_sms_connector

    module = Path(aliyun_sms_connector.__file__).with_name("__main__.py")
    monkeypatch.setattr(sys, "argv", ["aliyun-sms", "demo", "--code", "99"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(module), run_name="__main__")
    assert info.value.code == 0
    assert "Your code is 99." in capsys.readouterr().out


class TestStatusAndBatch:
    def test_status_lists_receipts(self, emulator, config_file, capsys):
        """status prints each receipt for the number, masked."""
        assert main(["send", "--config", str(config_file), "--to", "13800138000"]) == 0
        biz_id = emulator.outbox[0].biz_id
        emulator.fail_delivery(biz_id, "MOBILE_NOT_ON_SERVICE")
        capsys.readouterr()
        assert main(["status", "--config", str(config_file), "--to", "+8613800138000"]) == 0
        out = capsys.readouterr().out
        assert "1 message(s) to ***8000" in out
        assert re.search(r"failed +MOBILE_NOT_ON_SERVICE +sent \d{4}-\d\d-\d\d", out)
        assert "13800138000" not in out
        args = ["status", "--config", str(config_file), "--to", "13800138000", "--date", "20200101"]
        assert main(args) == 0
        assert "no messages to ***8000" in capsys.readouterr().out

    def test_status_bad_date(self, config_file, capsys):
        """A malformed --date is a typed error with its own exit status."""
        args = ["status", "--config", str(config_file), "--to", "13800138000", "--date", "2020-1-1"]
        assert main(args) == 1
        assert "send_date" in capsys.readouterr().err

    def test_send_batch_from_csv(self, emulator, tmp_path, capsys):
        """send-batch reads phone, sign_name and variable columns; bad rows are skipped."""
        config = tmp_path / "c.json"
        notice = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]
        config.write_text(json.dumps(connector_config(emulator, templates=notice)))
        rows = tmp_path / "rows.csv"
        rows.write_text(
            "phone,name,order\n13800138000,Ann,A-1\n12345,Bob,B-2\n+14155550100,Cy,C-3\n",
            encoding="utf-8",
        )
        status = main(["send-batch", "--config", str(config), "--csv", str(rows)])
        out = capsys.readouterr().out
        assert status == 4
        assert "skipped row 3 (***2345): InvalidPhoneNumberError" in out
        assert out.count("sent 1 with SMS_NOTICE") == 2
        texts = sorted(m.text for m in emulator.outbox)
        assert texts == [
            "【AcmeSign】Hi Ann, your order A-1 shipped.",
            "【AcmeSign】Hi Cy, your order C-3 shipped.",
        ]

    def test_send_batch_needs_a_phone_column(self, emulator, config_file, tmp_path, capsys):
        """A CSV without a phone column is a readable config error."""
        rows = tmp_path / "rows.csv"
        rows.write_text("number,name\n1,2\n")
        assert main(["send-batch", "--config", str(config_file), "--csv", str(rows)]) == 3
        assert "no 'phone' column" in capsys.readouterr().err

    def test_send_batch_reports_a_failed_chunk(self, emulator, config_file, tmp_path, capsys):
        """A chunk that Aliyun refuses is printed with its error and sets the exit status."""
        rows = tmp_path / "rows.csv"
        rows.write_text("phone,sign_name,code\n13800138000,Nobody,1\n")
        assert main(["send-batch", "--config", str(config_file), "--csv", str(rows)]) == 8
        out = capsys.readouterr().out
        assert "failed 1 with SMS_CODE" in out
        assert "isv.SMS_SIGNATURE_ILLEGAL" in out


def test_check_config_with_the_chain_and_two_endpoints(tmp_path, capsys):
    """check-config shows the credential chain and both endpoints."""
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "credentials": "default",
                "signName": "S",
                "templates": [{"usageType": "Generic", "templateCode": "SMS_1"}],
                "overseasRegionId": "ap-southeast-1",
            }
        )
    )
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "credentials:     the Alibaba Cloud default credential chain" in out
    assert "https://dysmsapi.aliyuncs.com (mainland)" in out
    assert "https://dysmsapi.ap-southeast-1.aliyuncs.com (overseas)" in out
