"""The aliyun-sms command with the Message Authentication Service: --product and its commands."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aliyun_sms_connector import AliyunMasConnector, verify
from aliyun_sms_connector._cli.common import EXIT_CODES, USAGE
from aliyun_sms_connector._cli.main import main
from aliyun_sms_connector._cli.mas import SYSTEM_SIGN_NAMES, detect

from .conftest import connector_config
from .mas_helpers import KEY_ID, LOGTO_MAS_JSON, NUMBER, SECRET, TOKEN, mas_config

STATUS = dict(EXIT_CODES)


def write(tmp_path, config, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.fixture
def logto_file(tmp_path):
    """Logto's README example, as is (it points at Aliyun: check-config sends nothing)."""
    path = tmp_path / "logto-mas.json"
    path.write_text(LOGTO_MAS_JSON, encoding="utf-8")
    return str(path)


@pytest.fixture
def mas_file(mas_emulator, tmp_path):
    """Logto's config pointed at the emulator, with the suite's AccessKey and an STS token."""
    config = mas_config(
        mas_emulator, accessKeyId=KEY_ID, accessKeySecret=SECRET, securityToken=TOKEN
    )
    return write(tmp_path, config, "mas.json")


def rows(out: str) -> dict[str, list[str]]:
    """The routing table: usage type -> the row's other columns."""
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0][:1].isupper() and not line.startswith("  usage type"):
            table[parts[0]] = parts[1:]
    return table


SAMPLE_MAS_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "logto-mas.json"


class TestDetection:
    @pytest.mark.parametrize(
        ("templates", "product"),
        [
            pytest.param([{"usageType": "SignIn", "templateCode": "100001"}], "mas", id="system"),
            pytest.param([{"usageType": "Generic", "templateCode": "123"}], "mas", id="digits"),
            pytest.param(
                [{"usageType": "Generic", "templateCode": "SMS_154950909"}], "sms", id="sms"
            ),
            pytest.param(
                [{"usageType": "Generic", "templateCode": {"china": "100001", "overseas": "1"}}],
                "sms",
                id="regional",
            ),
            pytest.param(
                [{"usageType": "Generic", "templateCode": "\uff11\uff10\uff10\uff10\uff10\uff11"}],
                "sms",
                id="full-width-digits",
            ),
            pytest.param([{"usageType": "Generic", "templateCode": 100001}], "sms", id="a-number"),
            pytest.param([{"usageType": "Generic"}], "sms", id="no-code"),
            pytest.param([], "sms", id="empty"),
            pytest.param(None, "sms", id="unreadable"),
            pytest.param("100001", "sms", id="not-a-list"),
        ],
    )
    def test_the_rule(self, templates, product):
        """MAS only when every template code is a string of ASCII digits; SMS otherwise."""
        found = detect(templates)
        assert found.product == product
        assert found.note is None

    def test_a_mix_is_sms_with_a_note(self):
        """Bare numbers among SMS_ codes: SMS, and a note naming them and --product mas."""
        found = detect(
            [
                {"usageType": "SignIn", "templateCode": "100001"},
                {"usageType": "Generic", "templateCode": "SMS_1"},
            ]
        )
        assert found.product == "sms"
        assert "100001" in found.note
        assert "--product mas" in found.note


class TestCheckConfig:
    def test_logtos_example_is_detected(self, logto_file, capsys):
        """Logto's JSON as is: a MAS config, its routing, the mainland warning only."""
        assert main(["check-config", "--config", logto_file]) == 0
        captured = capsys.readouterr()
        out = captured.out
        assert out.startswith("config is valid for the Message Authentication Service (Dypnsapi)")
        assert "product:         mas (detected: every template code is a bare number)" in out
        assert "signName:        速通互联验证码" in out
        assert "endpoint:        https://dypnsapi.aliyuncs.com" in out
        table = rows(out)
        assert table["SignIn"] == ["100001", "(Aliyun's", "default)", "exact"]
        assert table["ForgotPassword"][0] == "100003"
        assert table["ForgotPassword"][-1] == "exact"
        assert table["BindNewIdentifier"][0] == "100001"
        assert table["BindNewIdentifier"][-1] == "Generic"
        warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1
        assert warnings[0].startswith("warning: MAS serves mainland China mobiles only")
        for region in ("Hong Kong", "Macao", "Taiwan", "international"):
            assert region in warnings[0]

    def test_what_it_cannot_serve(self, tmp_path, capsys):
        """A template outside 100001-100005 and a custom sign name are warned about."""
        config = json.loads(LOGTO_MAS_JSON)
        config["signName"] = "我的应用"
        config["templates"].append({"usageType": "BindMfa", "templateCode": "200001"})
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        err = capsys.readouterr().err
        assert "warning: BindMfa uses template 200001, which is not one of Aliyun's system" in err
        assert "(100001 to 100005)" in err
        assert "warning: signName '我的应用' is not one of the system signatures" in err
        assert "since 2025-11-12" in err
        for name in SYSTEM_SIGN_NAMES:
            assert name in err

    @pytest.mark.parametrize("sign_name", SYSTEM_SIGN_NAMES)
    def test_every_system_sign_name_is_accepted(self, tmp_path, capsys, sign_name):
        """No sign-name warning for any of the system signatures."""
        config = {**json.loads(LOGTO_MAS_JSON), "signName": sign_name}
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        assert "signName" not in capsys.readouterr().err

    def test_scheme_names_are_shown(self, tmp_path, capsys):
        """A usage type's schemeName is in its row."""
        config = json.loads(LOGTO_MAS_JSON)
        config["templates"][0]["schemeName"] = "login"
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        assert rows(capsys.readouterr().out)["SignIn"] == ["100001", "login", "exact"]

    def test_a_usage_type_without_a_template(self, tmp_path, capsys):
        """No entry and no Generic: the row says so."""
        config = {**json.loads(LOGTO_MAS_JSON)}
        config["templates"] = [{"usageType": "SignIn", "templateCode": "100001"}]
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        table = rows(capsys.readouterr().out)
        assert table["Register"] == ["-", "-", "no", "template"]

    def test_product_sms_overrides_the_detection(self, logto_file, capsys):
        """--product sms checks Logto's MAS JSON as an SMS config (its routing, no MAS line)."""
        assert main(["check-config", "--product", "sms", "--config", logto_file]) == 0
        out = capsys.readouterr().out
        assert "Message Authentication Service" not in out
        assert "strict phone region check" in out

    def test_product_mas_overrides_the_detection(self, tmp_path, capsys):
        """--product mas on SMS_ codes: checked as MAS, each template warned about."""
        config = json.loads(LOGTO_MAS_JSON)
        config["templates"] = [{"usageType": "Generic", "templateCode": "SMS_154950909"}]
        assert main(["check-config", "--product", "mas", "--config", write(tmp_path, config)]) == 0
        captured = capsys.readouterr()
        assert "product:         mas (--product mas)" in captured.out
        assert "Generic uses template SMS_154950909" in captured.err

    def test_product_mas_on_a_regional_config_is_a_config_error(self, emulator, tmp_path, capsys):
        """A {china, overseas} code cannot be a MAS config: ConfigError, status 3, no secret."""
        path = write(tmp_path, connector_config(emulator))
        assert main(["check-config", "--product", "mas", "--config", path]) == 3
        captured = capsys.readouterr()
        assert captured.err.startswith("error: ConfigError: ")
        assert "templates" in captured.err
        assert "e2e-secret-value" not in captured.out + captured.err

    def test_an_sms_config_is_still_an_sms_config(self, emulator, tmp_path, capsys):
        """auto leaves SMS configs to the SMS check, as before --product existed."""
        path = write(tmp_path, connector_config(emulator))
        assert main(["check-config", "--config", path]) == 0
        captured = capsys.readouterr()
        assert "Message Authentication Service" not in captured.out
        assert "MAS serves" not in captured.err
        assert "note:" not in captured.err

    def test_a_mixed_config_gets_a_note(self, emulator, tmp_path, capsys):
        """System-looking codes among SMS ones: checked as SMS, with a note on stderr."""
        config = connector_config(emulator)
        config["templates"].append({"usageType": "Register", "templateCode": "100001"})
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        captured = capsys.readouterr()
        assert "note: template code(s) 100001 look like" in captured.err
        assert "Message Authentication Service (Dypnsapi)" not in captured.out

    def test_detected_from_the_environment(self, monkeypatch, capsys):
        """Without --config, ALIYUN_SMS_TEMPLATES decides as a file's templates would."""
        config = json.loads(LOGTO_MAS_JSON)
        monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_ID", config["accessKeyId"])
        monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_SECRET", config["accessKeySecret"])
        monkeypatch.setenv("ALIYUN_SMS_SIGN_NAME", config["signName"])
        monkeypatch.setenv("ALIYUN_SMS_TEMPLATES", json.dumps(config["templates"]))
        assert main(["check-config"]) == 0
        assert "product:         mas (detected" in capsys.readouterr().out

    def test_secrets_are_never_printed(self, tmp_path, capsys):
        """The secret and the token never show; the key id only by its ends."""
        config = {
            **json.loads(LOGTO_MAS_JSON),
            "accessKeyId": "LTAI5tAbCdEfGhIjKlMn",
            "accessKeySecret": "pRiv+Sec/ret=0123456789ab",
            "securityToken": "CAIS+mas/Tok=en-0123456789",
        }
        assert main(["check-config", "--config", write(tmp_path, config)]) == 0
        captured = capsys.readouterr()
        shown = captured.out + captured.err
        assert "accessKeyId:     LTAI…lMn" in shown
        assert "securityToken:   ********" in shown
        for private in ("LTAI5tAbCdEfGhIjKlMn", "pRiv+Sec", "0123456789", "CAIS+mas"):
            assert private not in shown
        # Invalid: the problems are named, the values are not.
        config["protocol"] = "gopher"
        assert main(["check-config", "--config", write(tmp_path, config)]) == 3
        captured = capsys.readouterr()
        assert "protocol" in captured.err
        for private in ("LTAI5tAbCdEfGhIjKlMn", "pRiv+Sec", "CAIS+mas"):
            assert private not in captured.out + captured.err

    def test_an_unreadable_file(self, tmp_path, capsys):
        """A missing file under auto: the usual 'cannot read', status 3."""
        assert main(["check-config", "--config", str(tmp_path / "nope.json")]) == 3
        assert "cannot read" in capsys.readouterr().err

    def test_a_wrong_product_is_a_usage_error(self, logto_file, capsys):
        """--product takes sms, mas or auto."""
        with pytest.raises(SystemExit) as exit_info:
            main(["check-config", "--product", "dypns", "--config", logto_file])
        assert exit_info.value.code == USAGE
        assert "invalid choice" in capsys.readouterr().err


class TestSend:
    def test_a_mas_config_sends_through_dypnsapi(self, mas_emulator, mas_file, capsys):
        """auto: Logto's MAS JSON sends SendSmsVerifyCode; a made-up code is printed."""
        assert main(["send", "--config", mas_file, "--to", "+86" + NUMBER]) == 0
        [message] = mas_emulator.outbox
        assert (message.product, message.template_code) == ("mas", "100001")
        assert message.params["min"] == "10"
        out = capsys.readouterr().out
        assert f"sent Generic code {message.params['code']} to ***8000" in out
        assert "product:    mas (detected" in out
        assert f"biz id:     {message.biz_id}" in out
        assert [r.action for r in mas_emulator.requests] == ["SendSmsVerifyCode"]

    def test_a_given_code_is_not_printed(self, mas_emulator, mas_file, capsys):
        """--code goes out, and is not echoed."""
        argv = ["send", "--product", "mas", "--config", mas_file, "--to", NUMBER]
        assert main([*argv, "--code", "417293", "--usage-type", "ForgotPassword"]) == 0
        assert mas_emulator.outbox[0].params["code"] == "417293"
        assert mas_emulator.outbox[0].template_code == "100003"
        assert "417293" not in capsys.readouterr().out

    def test_out_id_is_refused(self, mas_emulator, mas_file, capsys):
        """The MAS connector sends no OutId: a ConfigError before any request."""
        assert main(["send", "--config", mas_file, "--to", NUMBER, "--out-id", "x"]) == 3
        assert "--out-id" in capsys.readouterr().err
        assert mas_emulator.requests == []

    def test_a_number_outside_mainland_china(self, mas_emulator, mas_file, capsys):
        """Refused before any request, with InvalidPhoneNumberError's status."""
        status = main(["send", "--config", mas_file, "--to", "+85261234567"])
        assert status == STATUS["InvalidPhoneNumberError"]
        assert capsys.readouterr().err.startswith("error: InvalidPhoneNumberError: ")
        assert mas_emulator.requests == []

    def test_frequency_fail_is_a_rate_limit(self, mas_emulator, mas_file, capsys):
        """FREQUENCY_FAIL: RateLimitExceededError's status, sent once, not 'may have been sent'."""
        mas_emulator.fail_next("FREQUENCY_FAIL", action="SendSmsVerifyCode")
        status = main(["send", "--config", mas_file, "--to", NUMBER])
        assert status == STATUS["RateLimitExceededError"]
        err = capsys.readouterr().err
        assert "code:       FREQUENCY_FAIL" in err
        assert "may have been sent" not in err
        assert len(mas_emulator.requests) == 1

    def test_an_sms_config_still_sends_sms(self, emulator, tmp_path, capsys):
        """auto with SMS_ codes: SendSms, as before."""
        path = write(tmp_path, connector_config(emulator))
        assert main(["send", "--config", path, "--to", NUMBER, "--code", "1234"]) == 0
        assert [r.action for r in emulator.requests] == ["SendSms"]


CODE_LINE = re.compile(r"checking (a wrong code|the right code|the right code again), +(\d+): (.*)")


class TestDemo:
    def test_the_life_of_an_aliyun_made_code(self, capsys):
        """demo --product mas: the SMS with Aliyun's code, a wrong guess, the right one, again."""
        assert main(["demo", "--product", "mas"]) == 0
        out = capsys.readouterr().out
        assert NUMBER not in out
        sms = re.search(r"📱 \*\*\*8000 received:\n +【速通互联验证码】您的验证码为(\d{6})。", out)
        assert sms
        code = sms.group(1)
        assert re.search(r"biz id: +\d+\^0", out)
        assert re.search(r"request id: +[0-9A-F-]{36}", out)
        assert "template:   100001" in out
        checks = CODE_LINE.findall(out)
        assert [label for label, _, _ in checks] == [
            "a wrong code",
            "the right code",
            "the right code again",
        ]
        (_, wrong, first), (_, right, second), (_, again, third) = checks
        assert wrong != code
        assert right == again == code
        assert first == "WRONG_CODE (4 attempt(s) left)"
        assert second == "APPROVED (the code is now used up)"
        assert third == "NOT_FOUND (never sent, expired, already used, or replaced)"
        assert "checked by: Aliyun, each guess counted first by VerificationService" in out
        assert re.search(r"expires: +\d\d:\d\d:\d\d UTC", out)

    def test_through_a_service_with_aliyun_codes(self, mocker, capsys):
        """The demo checks through VerificationService(codes="aliyun"): the store counts first."""
        service = mocker.spy(verify.VerificationService, "check")
        count = mocker.spy(verify.MemoryStore, "count")
        asked = mocker.spy(AliyunMasConnector, "check_verify_code")
        assert main(["demo", "--product", "mas"]) == 0
        capsys.readouterr()
        assert service.call_count == 3
        # The third check finds the verification approved: the store answers, Aliyun is not asked.
        assert count.call_count == 3
        assert asked.call_count == 2

    def test_points_at_the_sample_mas_config(self, capsys):
        """The closing hint names examples/logto-mas.json, which checks clean as a MAS config."""
        assert main(["demo", "--product", "mas"]) == 0
        assert "check-config --config examples/logto-mas.json" in capsys.readouterr().out
        assert main(["check-config", "--config", str(SAMPLE_MAS_CONFIG)]) == 0
        captured = capsys.readouterr()
        assert "product:         mas (detected: every template code is a bare number)" in (
            captured.out
        )
        assert "BindNewIdentifier          100002" in captured.out
        # The one warning every MAS config gets; no template or sign-name warning.
        assert captured.err.count("warning:") == 1
        assert "mainland China mobiles only" in captured.err

    def test_a_number_outside_mainland_china(self, capsys):
        """The demo refuses it before starting anything."""
        assert main(["demo", "--product", "mas", "--to", "+85261234567"]) == 4
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("error: InvalidPhoneNumberError: ")

    def test_the_sms_demo_is_the_default(self, capsys):
        """Without --product, demo is the SMS one."""
        assert main(["demo"]) == 0
        assert "【AliyunSmsTest】" in capsys.readouterr().out

    def test_help_names_the_products(self, capsys):
        """--help of demo, send and check-config lists --product."""
        for command in ("demo", "send", "check-config"):
            with pytest.raises(SystemExit):
                main([command, "--help"])
            assert "--product" in capsys.readouterr().out


def test_expires_is_about_ten_minutes_out(capsys):
    """The demo's code lives the default policy's ttl (10 minutes) on either path."""
    assert main(["demo", "--product", "mas"]) == 0
    match = re.search(r"expires: +(\d\d):(\d\d):(\d\d) UTC", capsys.readouterr().out)
    assert match
    now = datetime.now(timezone.utc)
    expires = now.replace(hour=int(match[1]), minute=int(match[2]), second=int(match[3]))
    gap = (expires - now) % timedelta(days=1)
    assert timedelta(minutes=9) < gap <= timedelta(minutes=10)
