"""The aliyun-sms command, run in-process and as a real console script."""

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aliyun_sms_connector._cli import common
from aliyun_sms_connector._cli import verify as cli_verify
from aliyun_sms_connector._cli.common import EXIT_CODES
from aliyun_sms_connector._cli.main import main

from .conftest import KEY_SECRET, connector_config

SAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "logto.json"


@pytest.fixture
def config_file(emulator, tmp_path):
    path = tmp_path / "logto.json"
    path.write_text(json.dumps(connector_config(emulator)), encoding="utf-8")
    return path


class TestDemo:
    def test_demo_sends_through_the_sdk_and_shows_the_sms(self, capsys):
        """demo needs nothing and prints the SMS, with a generated 6-digit code, and its ids."""
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert re.search(r"【AliyunSmsTest】Your code is \d{6}\.", out)
        assert re.search(r"biz id: +\d+\^0", out)
        assert re.search(r"request id: +[0-9A-F-]{36}", out)
        assert "13800138000" not in out

    def test_demo_to_an_overseas_number(self, capsys):
        """A number outside mainland China gets the emulator's international template."""
        assert main(["demo", "--to", "+852 6123 4567"]) == 0
        out = capsys.readouterr().out
        assert "📱 ***4567 received:" in out
        assert "template:   SMS_000002" in out
        assert "APPROVED" in out

    def test_demo_points_at_the_sample_config(self, capsys):
        """The demo's closing hint names examples/logto.json, which exists and checks clean."""
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        assert "examples/logto.json" in out
        assert "aliyun-sms check-config --config logto.json" in out
        assert SAMPLE_CONFIG.is_file()

    def test_demo_to_another_number(self, capsys):
        """--to picks the recipient, shown masked."""
        assert main(["demo", "--to", "+86 139 0013 9000"]) == 0
        out = capsys.readouterr().out
        assert "📱 ***9000 received:" in out
        assert "APPROVED" in out

    def test_console_script_and_module(self):
        """aliyun-sms and python -m aliyun_sms_connector are the same command."""
        by_module = subprocess.run(
            [sys.executable, "-m", "aliyun_sms_connector", "demo"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert re.search(r"Your code is \d{6}\.", by_module.stdout)
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
        """send reads Logto's JSON and prints the result, but not a code given with --code."""
        code = main(
            ["send", "--config", str(config_file), "--to", "13800138000", "--code", "417293"]
        )
        assert code == 0
        out = capsys.readouterr().out
        assert "sent Generic code to ***8000" in out
        assert "417293" not in out
        assert emulator.outbox[0].params == {"code": "417293"}
        assert emulator.outbox[0].template_code == "SMS_CODE"

    def test_a_generated_code_is_printed(self, emulator, config_file, capsys):
        """Without --code, send makes a code up and prints it: the operator needs it."""
        assert main(["send", "--config", str(config_file), "--to", "13800138000"]) == 0
        [message] = emulator.outbox
        assert f"sent Generic code {message.params['code']} to ***8000" in capsys.readouterr().out

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
        assert main(["send", "--to", "+8613800138000", "--usage-type", "SignIn"]) == 0
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
        expected = dict(EXIT_CODES)[expected_class]
        assert status == expected

    def test_aliyun_text_comes_with_an_english_explanation(self, emulator, config_file, capsys):
        """Aliyun's Chinese message is shown as is, with what it means on the next line."""
        emulator.fail_next("isv.SMS_SIGNATURE_ILLEGAL", message="该账号下找不到对应签名")
        assert main(["send", "--config", str(config_file), "--to", "13800138000"]) == 8
        lines = capsys.readouterr().err.splitlines()
        assert lines[0] == "error: SignNameError: 该账号下找不到对应签名"
        assert lines[1] == "  code:       isv.SMS_SIGNATURE_ILLEGAL"
        assert lines[2] == (
            "  means:      the sign name does not exist or is not approved for this "
            "AccessKey's account"
        )

    def test_overseas_number_with_a_domestic_template(self, emulator, tmp_path, capsys):
        """A +1 number and a plain domestic template: TemplateError (7) saying what to give."""
        path = tmp_path / "domestic.json"
        templates = [{"usageType": "Generic", "templateCode": "SMS_CODE"}]
        path.write_text(json.dumps(connector_config(emulator, templates=templates)))
        assert main(["send", "--config", str(path), "--to", "+1 312 555 0100"]) == 7
        err = capsys.readouterr().err
        assert err.startswith(
            "error: TemplateError: template SMS_CODE (Generic) is domestic (type 2); "
            "+1 numbers need an international (overseas) template"
        )
        assert "  code:       TemplateRegionMismatch" in err
        assert emulator.requests == []

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
        """Every error class, and each outcome that is not an error class, has its own status."""
        codes = [code for _, code in EXIT_CODES]
        codes += [common.USAGE, common.PARTIAL, common.PORT_UNAVAILABLE, common.INTERRUPTED]
        codes += [common.BROKEN_PIPE]
        assert len(codes) == len(set(codes))
        assert 0 not in codes
        assert common.USAGE == 2  # argparse's own

    def test_exit_codes_name_every_error_class(self):
        """The table names real classes, and each class maps to its own row."""
        import aliyun_sms_connector as package

        for name, code in EXIT_CODES:
            cls = getattr(package, name)
            assert issubclass(cls, package.AliyunSmsError)
            assert common.exit_code(cls("x")) == code


class TestSampleConfig:
    """examples/logto.json: Logto's format, both template forms, and check-config passes."""

    def test_check_config_passes(self, capsys):
        """The console entry point validates it: exit 0, both forms routed."""
        assert main(["check-config", "--config", str(SAMPLE_CONFIG)]) == 0
        captured = capsys.readouterr()
        assert captured.out.startswith("config is valid\n")
        # A domestic plain-string template, and a {china, overseas} one.
        assert re.search(r"SignIn +SMS_\d+ +- +exact", captured.out)
        assert re.search(r"Generic +SMS_\d+ +SMS_\d+ +exact", captured.out)
        assert "EXAMPLE-not-a-real" not in captured.out + captured.err

    def test_installed_command(self):
        """The installed console script accepts it as well."""
        argv = ["check-config", "--config", str(SAMPLE_CONFIG)]
        result = subprocess.run(
            [sys.executable, "-m", "aliyun_sms_connector", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "config is valid" in result.stdout

    def test_it_is_logtos_format(self):
        """Only Logto's keys, with a plain domestic and a {china, overseas} templateCode."""
        data = json.loads(SAMPLE_CONFIG.read_text(encoding="utf-8"))
        assert set(data) == {
            "accessKeyId",
            "accessKeySecret",
            "signName",
            "templates",
            "strictPhoneRegionNumberCheck",
        }
        codes = [t["templateCode"] for t in data["templates"]]
        assert any(isinstance(c, str) for c in codes)
        assert any(isinstance(c, dict) and set(c) == {"china", "overseas"} for c in codes)
        assert all(set(t) == {"type", "usageType", "templateCode"} for t in data["templates"])
        assert "EXAMPLE" in data["accessKeyId"]
        assert "EXAMPLE" in data["accessKeySecret"]


class TestCheckConfig:
    def test_routing_table_with_masked_secrets(self, config_file, capsys):
        """check-config prints every usage type's route and never the secret."""
        assert main(["check-config", "--config", str(config_file)]) == 0
        out = capsys.readouterr().out
        assert KEY_SECRET not in out
        assert "accessKeySecret: ********" in out
        # SignIn's plain code is domestic (type 2): no overseas route.
        assert re.search(r"SignIn +SMS_SIGNIN +- +exact", out)
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

    @pytest.mark.parametrize("command", ["send", "check-config", "status"])
    def test_no_config_at_all_says_what_to_give(self, monkeypatch, capsys, command):
        """Neither --config nor ALIYUN_SMS_* variables: one line naming both ways, exit 3."""
        for name in list(os.environ):
            if name.startswith("ALIYUN_SMS_"):
                monkeypatch.delenv(name)
        # The verify service's variables are no connector config.
        monkeypatch.setenv("ALIYUN_SMS_REDIS_URL", "redis://127.0.0.1:1/0")
        argv = [command, *(["--to", "13800138000"] if command != "check-config" else [])]
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert err.startswith("error: ConfigError: no config: give --config PATH")
        assert "or set the ALIYUN_SMS_* variables" in err
        assert "examples/logto.json" in err
        assert "Field required" not in err

    def test_config_path_from_the_environment(self, monkeypatch, capsys):
        """ALIYUN_SMS_CONFIG names the file, as --config does; from_env() leaves it alone."""
        for name in list(os.environ):
            if name.startswith("ALIYUN_SMS_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("ALIYUN_SMS_CONFIG", str(SAMPLE_CONFIG))
        assert main(["check-config"]) == 0
        assert "signName:        ExampleApp" in capsys.readouterr().out

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

            with AliyunSmsConnector(
                {
                    "accessKeyId": key_id,
                    "accessKeySecret": secret,
                    "signName": "AliyunSmsTest",
                    "templates": [{"usageType": "Generic", "templateCode": "SMS_000001"}],
                    "endpoint": f"127.0.0.1:{port}",
                    "protocol": "http",
                }
            ) as connector:
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

    monkeypatch.setattr(cli_verify, "demo", interrupted)
    assert main(["demo"]) == 130


def test_emulator_command_in_process(monkeypatch, capsys):
    """The emulator command prints its keys, templates and CA file, then waits."""

    from aliyun_sms_connector.emulator import Emulator

    stopped = []

    def stop_at_once(self):
        self.stop()
        stopped.append(self.ca_file)
        raise KeyboardInterrupt

    monkeypatch.setattr(Emulator, "serve_forever", stop_at_once)
    assert main(["emulator", "--port", "0", "--tls"]) == 130
    assert len(stopped) == 1
    out = capsys.readouterr().out
    assert re.search(r"Aliyun SMS emulator on https://127\.0\.0\.1:\d+", out)
    assert "SMS_000002 (INTERNATIONAL_MESSAGE): Your code is ${code}." in out
    assert "CA file: " in out


def test_python_dash_m_runs_main(monkeypatch, capsys):
    """python -m aliyun_sms_connector runs the same main()."""
    import runpy

    import aliyun_sms_connector

    module = Path(aliyun_sms_connector.__file__).with_name("__main__.py")
    monkeypatch.setattr(sys, "argv", ["aliyun-sms", "demo"])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(module), run_name="__main__")
    assert info.value.code == 0
    assert "APPROVED" in capsys.readouterr().out


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

    @pytest.mark.parametrize(
        "day", ["20991301", "20240230", "20230229", "2020-1-1", "2020011", "x"]
    )
    def test_status_bad_date(self, emulator, config_file, capsys, day):
        """A --date that is not a real yyyyMMdd day is a usage error (2), before any request."""
        args = ["status", "--config", str(config_file), "--to", "13800138000", "--date", day]
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == common.USAGE
        assert "argument --date: " in capsys.readouterr().err
        assert emulator.requests == []

    def test_status_leap_day(self, emulator, config_file, capsys):
        """29 February of a leap year is a day."""
        args = ["status", "--config", str(config_file), "--to", "13800138000", "--date", "20240229"]
        assert main(args) == 0
        assert emulator.requests[-1].params["SendDate"] == "20240229"

    def test_send_batch_from_csv(self, emulator, tmp_path, capsys):
        """send-batch reads phone, sign_name and variable columns; bad rows are skipped."""
        config = tmp_path / "c.json"
        notice = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]
        config.write_text(json.dumps(connector_config(emulator, templates=notice)))
        rows = tmp_path / "rows.csv"
        rows.write_text(
            "phone,name,order\n13800138000,Ann,A-1\n12345,Bob,B-2\n+86 137 0013 7000,Cy,C-3\n",
            encoding="utf-8",
        )
        status = main(["send-batch", "--config", str(config), "--csv", str(rows)])
        out = capsys.readouterr().out
        assert status == common.PARTIAL
        assert "skipped line 3 (***2345): InvalidPhoneNumberError" in out
        assert "2 sent, 1 line(s) skipped, 0 call(s) failed" in out
        assert "sent 2 with SMS_NOTICE" in out
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


def run_cli(*argv, env=None, timeout=60):
    """python -m aliyun_sms_connector ARGV in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "aliyun_sms_connector", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(stderr: str, cls: str) -> None:
    """stderr starts with one 'error: Class: ...' line and holds no traceback."""
    assert stderr.startswith(f"error: {cls}: "), stderr
    assert "Traceback" not in stderr
    first = stderr.splitlines()[0]
    assert all(line.startswith("  ") for line in stderr.splitlines()[1:]), stderr
    assert len(first) > len(f"error: {cls}: ")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestConfigFiles:
    def test_not_utf8(self, tmp_path):
        """A config file in another encoding: exit 3, one line, no traceback, no secret."""
        path = tmp_path / "gbk.json"
        config = {
            "accessKeyId": "LTAIabcdefgh",
            "accessKeySecret": KEY_SECRET,
            "signName": "短信签名",
            "templates": [{"usageType": "Generic", "templateCode": "SMS_1"}],
        }
        path.write_bytes(json.dumps(config, ensure_ascii=False).encode("gbk"))
        result = run_cli("check-config", "--config", str(path))
        assert result.returncode == 3
        assert_one_line_error(result.stderr, "ConfigError")
        assert "not UTF-8" in result.stderr
        assert KEY_SECRET not in result.stderr + result.stdout

    def test_byte_order_mark(self, emulator, tmp_path, capsys):
        """A config saved with a UTF-8 BOM (Windows Notepad) is read."""
        path = tmp_path / "bom.json"
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps(connector_config(emulator)).encode())
        assert main(["check-config", "--config", str(path)]) == 0
        assert "config is valid" in capsys.readouterr().out

    def test_ca_file_that_is_no_certificate(self, emulator, tmp_path):
        """caFile pointing at a non-certificate: exit 3 naming caFile, no traceback."""
        junk = tmp_path / "ca.pem"
        junk.write_text("this is not a certificate\n")
        path = tmp_path / "c.json"
        path.write_text(json.dumps(connector_config(emulator, caFile=str(junk))))
        result = run_cli("check-config", "--config", str(path))
        assert result.returncode == 3
        assert_one_line_error(result.stderr, "ConfigError")
        assert "caFile: is not a readable PEM file" in result.stderr

    def test_every_problem_on_one_line(self, tmp_path, capsys):
        """Several problems are listed on the one error line."""
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"signName": "A\r\nB", "protocol": "ftp", "templates": []}))
        assert main(["check-config", "--config", str(path)]) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "signName: must not contain control characters" in err
        assert "protocol: " in err
        assert "accessKeyId: " in err

    def test_control_characters_in_a_path_are_escaped(self, tmp_path, capsys):
        """A path given on the command line is shown with its line breaks escaped."""
        assert main(["check-config", "--config", str(tmp_path / "a\nb.json")]) == 3
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "a\\nb.json" in err


class TestCheckConfigWarnings:
    def write(self, tmp_path, templates):
        path = tmp_path / "c.json"
        config = {"accessKeyId": "LTAIabcdefgh", "accessKeySecret": "s", "signName": "S"}
        path.write_text(json.dumps({**config, "templates": templates}))
        return path

    def test_plain_domestic_code_cannot_serve_overseas_numbers(self, tmp_path, capsys):
        """A plain domestic templateCode: "-" for overseas, and a warning saying how to fix it."""
        path = self.write(
            tmp_path,
            [
                {"usageType": "SignIn", "templateCode": "SMS_PLAIN"},
                {"usageType": "Generic", "templateCode": {"china": "A", "overseas": "B"}},
            ],
        )
        assert main(["check-config", "--config", str(path)]) == 0
        captured = capsys.readouterr()
        assert re.search(r"SignIn +SMS_PLAIN +- +exact", captured.out)
        assert re.search(r"Register +A +B +Generic", captured.out)
        [warning] = captured.err.splitlines()
        assert warning == (
            "warning: template SMS_PLAIN (SignIn) is domestic (type 2); numbers outside "
            "mainland China need an international (overseas) template: give templateCode as "
            '{"china": ..., "overseas": ...} (until then, such sends raise TemplateError '
            "before any request)"
        )

    def test_plain_international_code_cannot_serve_mainland_numbers(self, tmp_path, capsys):
        """A plain type-6 templateCode: "-" for mainland China, and a warning."""
        path = self.write(tmp_path, [{"usageType": "Generic", "templateCode": "I", "type": 6}])
        assert main(["check-config", "--config", str(path)]) == 0
        captured = capsys.readouterr()
        assert re.search(r"SignIn +- +I +Generic", captured.out)
        [warning] = captured.err.splitlines()
        assert warning.startswith("warning: template I (Generic) is international (type 6)")
        assert "+86 (mainland China) numbers need a domestic template" in warning

    def test_regional_codes_give_no_warning(self, config_file, capsys):
        """{china, overseas} codes, and a config with only those, give no warning."""
        path = config_file.with_name("regional.json")
        config = json.loads(config_file.read_text())
        config["templates"] = [
            {"usageType": "Generic", "templateCode": {"china": "SMS_CODE", "overseas": "SMS_INTL"}}
        ]
        path.write_text(json.dumps(config))
        assert main(["check-config", "--config", str(path)]) == 0
        assert capsys.readouterr().err == ""


def write_csv(tmp_path, text, name="rows.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def notice_config(emulator, tmp_path):
    path = tmp_path / "notice.json"
    notice = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]
    path.write_text(json.dumps(connector_config(emulator, templates=notice)))
    return path


class TestSendBatchCsv:
    def batch(self, config, rows):
        return main(["send-batch", "--config", str(config), "--csv", str(rows)])

    @pytest.mark.parametrize(
        ("bad_line", "reason", "error"),
        [
            ("13900139000,Bo,B-2,extra", "4 values, but the header has 3 columns", "TemplateParam"),
            (
                "13900139000,Bo",
                "2 values, but the header has 3 columns (no 'order')",
                "TemplateParam",
            ),
            ("13900139000,,B-2", "no value for 'name'", "TemplateParam"),
            ("13900139000,Bo,  ", "no value for 'order'", "TemplateParam"),
            (",Bo,B-2", "no phone number", "InvalidPhoneNumber"),
            ("1390013900x,Bo,B-2", "phone number", "InvalidPhoneNumber"),
        ],
    )
    def test_a_bad_row_is_skipped_with_its_line(
        self, emulator, notice_config, tmp_path, capsys, bad_line, reason, error
    ):
        """Each bad row is reported with its line number and why; the others go out (exit 16)."""
        rows = write_csv(
            tmp_path,
            f"phone,name,order\n13800138000,Ann,A-1\n{bad_line}\n+86 137 0013 7000,Cy,C-3\n",
        )
        assert self.batch(notice_config, rows) == common.PARTIAL
        out = capsys.readouterr().out
        [skipped] = [line for line in out.splitlines() if line.startswith("skipped")]
        assert skipped.startswith("skipped line 3")
        assert f": {error}Error: " in skipped
        assert reason in skipped
        assert sorted(m.phone_number for m in emulator.outbox) == ["13700137000", "13800138000"]
        assert "extra" not in "".join(m.text for m in emulator.outbox)

    def test_line_numbers_count_blank_and_quoted_lines(
        self, emulator, notice_config, tmp_path, capsys
    ):
        """Line numbers are the file's: blank lines and line breaks inside quotes count."""
        rows = write_csv(
            tmp_path,
            'phone,name,order\n\n13800138000,"Ann\nLee",A-1\n13900139000,,B-2\n',
        )
        assert self.batch(notice_config, rows) == common.PARTIAL
        out = capsys.readouterr().out
        assert "skipped line 5 (***9000): TemplateParamError: no value for 'name'" in out

    def test_all_rows_bad_is_the_error_class_status(
        self, emulator, notice_config, tmp_path, capsys
    ):
        """When nothing went out, the status is the first failure's class, and nothing is sent."""
        rows = write_csv(tmp_path, "phone,name,order\n13800138000,,A-1\n12345,Bo,B-2\n")
        assert self.batch(notice_config, rows) == 6  # TemplateParamError
        assert "0 sent, 2 line(s) skipped" in capsys.readouterr().out
        assert emulator.requests == []

    def test_full_success_is_zero(self, emulator, notice_config, tmp_path, capsys):
        """Every row sent: status 0, a BOM is fine, and sign_name may be left empty."""
        rows = write_csv(
            tmp_path, "\ufeffphone,sign_name,name,order\n13800138000,,Ann,A-1\n", encoding="utf-8"
        )
        assert self.batch(notice_config, rows) == 0
        assert "skipped" not in capsys.readouterr().out
        [message] = emulator.outbox
        assert message.text == "【AcmeSign】Hi Ann, your order A-1 shipped."

    @pytest.mark.parametrize(
        ("content", "needle"),
        [
            ("", "is empty"),
            ("\n\n", "is empty"),
            ("phone,name,order\n", "has a header but no rows"),
            ("phone,name,order\n\n", "has a header but no rows"),
            ("name,order\nAnn,A-1\n", "no 'phone' column"),
            ("phone,name,name\n1,2,3\n", "'name' more than once"),
            ("phone,,order\n1,2,3\n", "column 2 of the header has no name"),
            ('phone,name\n"13800138000,Ann\n', "not valid CSV"),
        ],
    )
    def test_file_level_problems(self, emulator, notice_config, tmp_path, capsys, content, needle):
        """An empty, header-only or malformed CSV is an error (exit 3) and sends nothing."""
        rows = write_csv(tmp_path, content)
        assert self.batch(notice_config, rows) == 3
        err = capsys.readouterr().err
        assert needle in err
        assert err.count("\n") == 1
        assert emulator.requests == []

    def test_not_utf8(self, emulator, notice_config, tmp_path, capsys):
        """A CSV in another encoding is an error, exit 3."""
        rows = write_csv(tmp_path, "phone,name,order\n13800138000,张三,A-1\n", encoding="gbk")
        assert self.batch(notice_config, rows) == 3
        assert "not UTF-8" in capsys.readouterr().err


class TestEmulatorErrors:
    def test_port_in_use(self):
        """A port in use: one error line, status 17, no traceback."""
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = run_cli("emulator", "--port", str(port))
        assert result.returncode == common.PORT_UNAVAILABLE
        assert_one_line_error(result.stderr, "AliyunSmsError")
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
        assert "code:       PortUnavailable" in result.stderr

    @pytest.mark.parametrize(
        ("argv", "needle"),
        [
            (["--port", "99999"], "argument --port: '99999' is not a port"),
            (["--port", "-1"], "is not a port"),
            (["--port", "http"], "is not a port"),
            (["--latency", "nan"], "argument --latency: 'nan' is not a number of seconds"),
            (["--latency", "-1"], "is not a number of seconds"),
        ],
    )
    def test_bad_arguments_are_usage_errors(self, argv, needle):
        """An impossible port or latency is a usage error (2), with no traceback."""
        result = run_cli("emulator", *argv)
        assert result.returncode == common.USAGE
        assert "Traceback" not in result.stderr
        assert needle in result.stderr


def start_emulator(*extra):
    process = subprocess.Popen(
        [sys.executable, "-m", "aliyun_sms_connector", "emulator", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if not line or line.startswith("Press Ctrl-C"):
            break
    return process, "".join(lines)


class TestStopping:
    @pytest.mark.parametrize(
        ("send", "status"),
        [
            (lambda p: p.send_signal(signal.SIGINT), common.INTERRUPTED),
            (lambda p: p.send_signal(signal.SIGTERM), 0),
        ],
        ids=["SIGINT", "SIGTERM"],
    )
    def test_emulator_stops_cleanly(self, send, status):
        """Ctrl-C (130) and SIGTERM (0, a normal stop) end the emulator quietly, TLS folder gone."""
        process, banner = start_emulator("--tls")
        try:
            ca_file = re.search(r"CA file: (\S+)", banner).group(1)
            assert Path(ca_file).exists()
            send(process)
            _, stderr = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == status
        assert "Traceback" not in stderr
        assert stderr == ""
        assert not Path(ca_file).parent.exists()


# Runs the command as its console script does, but sends SIGINT to itself the
# moment MODULE starts importing: Ctrl-C at a chosen point of the import.
EARLY_INTERRUPT = """
import os, runpy, signal, sys

class InterruptOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, InterruptOnImport())
sys.argv = ["aliyun-sms", *{argv!r}]
{run}
"""
RUNNERS = {
    "console-script": "from aliyun_sms_connector._cli.main import main\nsys.exit(main())",
    "python-m": 'runpy.run_module("aliyun_sms_connector", run_name="__main__", alter_sys=True)',
}


@functools.cache
def package_init_is_eager() -> bool:
    """Whether importing the package imports pydantic: a window no code of ours can guard."""
    probe = "import sys, aliyun_sms_connector; print('pydantic' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip() == "True"


class TestCtrlC:
    @pytest.mark.parametrize("runner", sorted(RUNNERS))
    @pytest.mark.parametrize(
        ("module", "argv"),
        [
            ("pydantic", ["check-config"]),
            ("aliyun_sms_connector._config", ["check-config"]),
            ("aliyun_sms_connector._connector", ["check-config"]),
            ("aliyun_sms_connector._delivery", ["demo"]),
            ("aliyun_sms_connector.emulator", ["emulator", "--port", "0"]),
            ("argparse", ["demo"]),
        ],
    )
    def test_while_the_package_imports(self, tmp_path, runner, module, argv):
        """Ctrl-C while any part of the package is still importing: status 130, no traceback."""
        if module != "argparse" and package_init_is_eager():
            pytest.xfail("the package __init__ imports eagerly (requests.md: make it lazy)")
        script = EARLY_INTERRUPT.format(module=module, argv=argv, run=RUNNERS[runner])
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
            env={**os.environ, "ALIYUN_SMS_SIGN_NAME": "S"},
        )
        assert result.returncode == common.INTERRUPTED, result.stderr
        assert result.stderr == ""
        assert result.stdout == ""

    def test_a_real_signal_during_the_import(self, tmp_path):
        """A real SIGINT from outside, once the command runs and is importing: 130, silent."""
        # A valid config, so that check-config goes on to import the SDK (most of a second).
        config = {
            "ALIYUN_SMS_ACCESS_KEY_ID": "LTAIabcdefgh",
            "ALIYUN_SMS_ACCESS_KEY_SECRET": "s",
            "ALIYUN_SMS_SIGN_NAME": "S",
            "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Generic", "templateCode": "SMS_1"}]',
        }
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "aliyun_sms_connector", "check-config"],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **config},
        )
        try:
            seen = []
            for line in process.stderr:
                seen.append(line)
                if seen[-2:-1] and "aliyun_sms_connector._cli.main" in seen[-2]:
                    break  # the line after _cli.main's: main() is running and importing
            process.send_signal(signal.SIGINT)
            out, rest = process.communicate(timeout=30)
        finally:
            process.kill()
        assert process.returncode == common.INTERRUPTED
        assert "Traceback" not in rest
        assert "KeyboardInterrupt" not in rest
        # The signal landed before the SDK was imported: it cut the import short.
        assert "alibabacloud_dysmsapi20170525.client" not in "".join(seen) + rest
        assert out == ""

    def test_a_terminal_that_cannot_show_the_text(self):
        """A Latin-1 terminal gets escapes for 【】 and 📱, not a UnicodeEncodeError traceback."""
        result = run_cli("demo", env={"PYTHONIOENCODING": "latin-1"})
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "\\u3010AliyunSmsTest\\u3011" in result.stdout

    def test_broken_pipe(self):
        """Output closed early, as by '| head -1': no traceback."""
        process = subprocess.Popen(
            [sys.executable, "-m", "aliyun_sms_connector", "demo"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        process.stdout.close()
        _, stderr = process.communicate(timeout=60)
        assert b"Traceback" not in stderr
        assert process.returncode in (0, common.BROKEN_PIPE)


# -- verify start / check, against the emulator and a real redis-server ----------------


@pytest.fixture(scope="module")
def redis_url():
    """REDIS_URL, or a redis-server of this module's own on a free port, with no persistence."""
    from tests.verify.redis_cluster import redis_server, require_redis

    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    require_redis()  # skips without redis-server, fails under CI
    with redis_server() as server:
        yield server.url


@pytest.fixture
def verify_env(monkeypatch, redis_url, config_file):
    """A fresh secret key per test (so no keys are shared), the Redis URL and the config."""
    import secrets

    monkeypatch.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", secrets.token_hex(32))
    monkeypatch.setenv("ALIYUN_SMS_REDIS_URL", redis_url)
    return ["--config", str(config_file)]


def verify(*argv):
    return main(["verify", *argv])


class TestDemoVerifies:
    def test_demo_checks_a_wrong_code_then_the_right_one(self, capsys):
        """demo sends a code, then shows WRONG_CODE, APPROVED and that a code is used once."""
        assert main(["demo"]) == 0
        out = capsys.readouterr().out
        code = re.search(r"Your code is (\d{6})\.", out).group(1)
        wrong = re.search(r"checking a wrong code, +(\d{6}): WRONG_CODE \(4 attempt", out)
        assert wrong
        assert wrong.group(1) != code
        assert re.search(rf"checking the right code, +{code}: APPROVED", out)
        assert re.search(rf"checking the right code again, +{code}: NOT_FOUND", out)
        assert out.index("WRONG_CODE") < out.index("APPROVED") < out.index("NOT_FOUND")
        assert "13800138000" not in out


class TestVerify:
    def test_start_then_check_across_runs(self, emulator, verify_env, capsys):
        """A code started by one run is checked by the next: wrong, then right, then used."""
        assert verify("start", *verify_env, "--to", "+86 138 0013 8000") == 0
        out = capsys.readouterr().out
        assert "sent a SignIn code to ***8000" in out
        [message] = emulator.outbox
        code = message.params["code"]
        assert code not in out  # the recipient gets it by SMS, the operator does not
        wrong = cli_verify.another_code(code)
        assert verify("check", *verify_env, "--to", "13800138000", "--code", wrong) == 18
        assert "WRONG_CODE (4 attempt(s) left)" in capsys.readouterr().out
        assert verify("check", *verify_env, "--to", "13800138000", "--code", code) == 0
        assert "APPROVED" in capsys.readouterr().out
        assert verify("check", *verify_env, "--to", "13800138000", "--code", code) == 20
        assert "NOT_FOUND" in capsys.readouterr().out

    def test_two_processes(self, emulator, verify_env):
        """start and check in two separate OS processes, sharing only Redis."""
        started = run_cli(
            "verify", "start", *verify_env, "--to", "13800138000", "--usage-type", "Register"
        )
        assert started.returncode == 0, started.stderr
        code = emulator.outbox[-1].params["code"]
        checked = run_cli(
            "verify", "check", *verify_env, "--to", "13800138000", "--code", code,
            "--usage-type", "Register",
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.startswith("APPROVED")

    def test_locked_after_too_many_wrong_codes(self, emulator, verify_env, capsys):
        """After 5 wrong codes (the last leaves 0) even the right one gives TOO_MANY_ATTEMPTS."""
        assert verify("start", *verify_env, "--to", "13800138000") == 0
        code = emulator.outbox[-1].params["code"]
        wrong = cli_verify.another_code(code)
        statuses = [
            verify("check", *verify_env, "--to", "13800138000", "--code", wrong) for _ in range(5)
        ]
        assert statuses == [18, 18, 18, 18, 18]
        assert "WRONG_CODE (0 attempt(s) left)" in capsys.readouterr().out
        assert verify("check", *verify_env, "--to", "13800138000", "--code", code) == 19
        assert "TOO_MANY_ATTEMPTS" in capsys.readouterr().out

    def test_cooldown_is_a_rate_limit(self, emulator, verify_env, capsys):
        """A second start within the cooldown: RateLimitExceededError (12), no second SMS."""
        assert verify("start", *verify_env, "--to", "13800138000") == 0
        capsys.readouterr()
        assert verify("start", *verify_env, "--to", "13800138000") == 12
        err = capsys.readouterr().err
        assert_one_line_error(err, "RateLimitExceededError")
        assert "code:       VerificationCooldown" in err
        assert re.search(r"retry after: \d+(\.\d+)? s", err)
        assert len(emulator.outbox) == 1

    def test_invalid_number(self, emulator, verify_env, capsys):
        """An invalid number is InvalidPhoneNumberError (4), before Redis or Aliyun."""
        assert verify("start", *verify_env, "--to", "12345") == 4
        assert emulator.requests == []

    def test_without_redis_it_says_a_shared_store_is_needed(self, config_file, monkeypatch, capsys):
        """No --redis and no ALIYUN_SMS_REDIS_URL: a ConfigError (3) that explains why."""
        monkeypatch.delenv("ALIYUN_SMS_REDIS_URL", raising=False)
        monkeypatch.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", "k" * 32)
        status = verify("start", "--config", str(config_file), "--to", "13800138000")
        assert status == 3
        err = capsys.readouterr().err
        assert_one_line_error(err, "ConfigError")
        assert "needs a shared store" in err
        assert "--redis URL or set ALIYUN_SMS_REDIS_URL" in err

    @pytest.mark.parametrize(
        ("key", "needle"), [(None, "needs ALIYUN_SMS_VERIFY_SECRET_KEY"), ("short", "32 bytes")]
    )
    def test_secret_key(self, config_file, redis_url, monkeypatch, capsys, key, needle):
        """The secret key is required and must be 32 bytes or more (ConfigError, 3)."""
        if key is None:
            monkeypatch.delenv("ALIYUN_SMS_VERIFY_SECRET_KEY", raising=False)
        else:
            monkeypatch.setenv("ALIYUN_SMS_VERIFY_SECRET_KEY", key)
        args = ["--config", str(config_file), "--redis", redis_url]
        assert verify("check", *args, "--to", "13800138000", "--code", "1") == 3
        err = capsys.readouterr().err
        assert_one_line_error(err, "ConfigError")
        assert needle in err

    def test_redis_unreachable(self, emulator, verify_env, capsys):
        """Redis down: ServiceUnavailableError StoreUnavailable (13), and no SMS."""
        args = [*verify_env, "--redis", f"redis://127.0.0.1:{free_port()}/0"]
        assert verify("start", *args, "--to", "13800138000") == 13
        err = capsys.readouterr().err
        assert_one_line_error(err, "ServiceUnavailableError")
        assert "StoreUnavailable" in err
        assert emulator.requests == []

    def test_not_a_redis_url(self, verify_env, capsys):
        """A URL that is not Redis's is a ConfigError (3)."""
        args = [*verify_env, "--redis", "http://127.0.0.1/"]
        assert verify("check", *args, "--to", "13800138000", "--code", "1") == 3
        assert "not a Redis URL" in capsys.readouterr().err


class TestInProcessPaths:
    """The paths above that run in a child process, run here too, where coverage sees them."""

    def test_port_in_use(self, capsys):
        """A port in use: status 17 and one error line."""
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            assert main(["emulator", "--port", str(port)]) == common.PORT_UNAVAILABLE
        assert_one_line_error(capsys.readouterr().err, "AliyunSmsError")

    @pytest.mark.parametrize(
        "argv", [["--port", "65536"], ["--port", "x"], ["--latency", "inf"], ["--latency", "-0.1"]]
    )
    def test_bad_emulator_arguments(self, capsys, argv):
        """Ports and latencies out of range are usage errors."""
        with pytest.raises(SystemExit) as info:
            main(["emulator", *argv])
        assert info.value.code == common.USAGE
        assert "argument --" in capsys.readouterr().err

    def test_quiet_emulator_prints_no_messages(self, monkeypatch, capsys):
        """--quiet serves without printing what it accepts; the wait ends with stop()."""
        from aliyun_sms_connector import AliyunSmsConnector
        from aliyun_sms_connector.emulator import Emulator

        def serve_one_send(self):
            with AliyunSmsConnector(self.connector_config()) as connector:
                connector.send_message("13800138000", "SignIn", {"code": "123456"})
            self.stop()

        monkeypatch.setattr(Emulator, "serve_forever", serve_one_send)
        assert main(["emulator", "--port", "0", "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "Press Ctrl-C to stop." in out
        assert "123456" not in out

    def test_broken_pipe(self, monkeypatch):
        """A closed output ends the command with 141 and no traceback."""

        def closed(_args):
            raise BrokenPipeError

        monkeypatch.setattr(cli_verify, "demo", closed)
        assert main(["demo"]) == common.BROKEN_PIPE

    def test_an_error_outside_the_table(self):
        """An exception class the table does not name gets 1."""
        assert common.exit_code(ValueError("x")) == 1


# Runs `aliyun-sms emulator --tls` but sends SIGTERM to itself right after the
# emulator has started (its TLS folder exists), before the banner is printed.
EARLY_TERMINATE = """
import os, signal, sys
from aliyun_sms_connector.emulator import Emulator

original = Emulator.start

def start_then_terminate(self):
    result = original(self)
    print("CA=" + self.ca_file, file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    return result

Emulator.start = start_then_terminate
from aliyun_sms_connector._cli.main import main
sys.exit(main(["emulator", "--port", "0", "--tls"]))
"""


def test_sigterm_while_the_emulator_starts():
    """SIGTERM before the emulator waits (its TLS folder made): exit 0, the folder removed."""
    result = subprocess.run(
        [sys.executable, "-c", EARLY_TERMINATE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ca_file = re.search(r"CA=(\S+)", result.stderr).group(1)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Press Ctrl-C" not in result.stdout
    assert not Path(ca_file).parent.exists()
