"""AliyunMasConfig: Logto's aliyun-sms-mas JSON as is, and AliyunSmsConfig's operational keys."""

import json

import pytest

from aliyun_sms_connector import (
    AliyunMasConfig,
    AliyunSmsConfig,
    ConfigError,
    TemplateType,
    UsageType,
)
from aliyun_sms_connector._config import ConnectionConfig
from tests.conftest import LOGTO_CONFIG, SECRET, TOKEN


def problems(data, cls=AliyunMasConfig):
    with pytest.raises(ConfigError) as caught:
        cls.model_validate(data)
    return {problem.field: problem.problem for problem in caught.value.problems}


class TestLogtoConfig:
    def test_pasted_as_is(self, mas_config):
        """Logto's nine-usage-type config is accepted, each usage type to its code."""
        config = AliyunMasConfig.model_validate(mas_config)
        assert config.sign_name == "速通互联验证码"
        assert config.templates_by_usage[UsageType.FORGOT_PASSWORD].template_code == "100003"
        assert config.templates_by_usage[UsageType.BIND_NEW_IDENTIFIER].template_code == "100002"
        assert len(config.templates) == 9
        assert config.endpoint is None  # the Dypnsapi client's map gives dypnsapi.aliyuncs.com

    def test_from_json(self, mas_config):
        """The console's JSON text parses to the same config."""
        assert AliyunMasConfig.from_json(json.dumps(mas_config)) == AliyunMasConfig(**mas_config)

    def test_one_generic_template_is_enough(self, mas_config):
        """As AliyunSmsConfig: at least one entry, Generic serving the rest (not Logto's nine)."""
        mas_config["templates"] = [{"usageType": "Generic", "templateCode": "100001"}]
        assert AliyunMasConfig.model_validate(mas_config).templates[0].type is (
            TemplateType.VERIFICATION_CODE
        )

    def test_no_templates(self, mas_config):
        """An empty list is refused, naming the field."""
        mas_config["templates"] = []
        assert "templates" in problems(mas_config)

    def test_usage_type_twice(self, mas_config):
        """One usage type listed twice is refused, as for SMS."""
        mas_config["templates"].append({"usageType": "SignIn", "templateCode": "100002"})
        assert "appears more than once" in problems(mas_config)["templates"]

    @pytest.mark.parametrize(
        "entry",
        [
            {"usageType": "SignIn", "templateCode": {"china": "1", "overseas": "2"}},
            {"usageType": "SignIn", "templateCode": "100001", "type": 2},
            {"usageType": "SignIn", "templateCode": ""},
            {"usageType": "Nope", "templateCode": "100001"},
        ],
        ids=["regional-code", "type-key", "empty-code", "unknown-usage"],
    )
    def test_bad_template_entries(self, mas_config, entry):
        """Plain string codes only, no type, known usage types: else ConfigError at templates.0."""
        mas_config["templates"] = [entry]
        assert any(field.startswith("templates.0") for field in problems(mas_config))


class TestSchemeName:
    def test_taken_per_entry(self, mas_config):
        """schemeName is our extension, per template entry."""
        mas_config["templates"][0]["schemeName"] = "登录方案"
        config = AliyunMasConfig.model_validate(mas_config)
        assert config.templates_by_usage[UsageType.SIGN_IN].scheme_name == "登录方案"
        assert config.templates_by_usage[UsageType.REGISTER].scheme_name is None

    @pytest.mark.parametrize("name", ["x" * 21, "", "a\nb"], ids=["too-long", "empty", "crlf"])
    def test_refused(self, mas_config, name):
        """At most 20 characters (Aliyun's limit), not empty, no control characters."""
        mas_config["templates"][0]["schemeName"] = name
        assert "templates.0.schemeName" in problems(mas_config)

    def test_twenty_is_allowed(self, mas_config):
        """Exactly 20 characters pass."""
        mas_config["templates"][0]["schemeName"] = "方" * 20
        assert AliyunMasConfig.model_validate(mas_config).templates[0].scheme_name == "方" * 20


# Operational keys with a bad value each: both configs must judge them alike.
BAD_OPERATIONAL = [
    {"endpoint": "https://dypnsapi.aliyuncs.com"},
    {"endpoint": "a b"},
    {"regionId": "CN-Hangzhou"},
    {"regionId": "cn\r\nx"},
    {"protocol": "ftp"},
    {"connectTimeout": 0},
    {"readTimeout": -1},
    {"deadline": 0},
    {"maxAttempts": 11},
    {"backoffBase": -1},
    {"maxConnections": 0},
    {"signatureAlgorithm": "v3"},
    {"caFile": "/nonexistent/ca.pem"},
    {"credentials": "default"},
    {"credentials": "chain"},
    {"accessKeySecret": "   "},
    {"securityToken": "tok\nen"},
    {"accessKeyId": None},
]


class TestOperationalKeys:
    def test_the_same_fields_as_sms(self):
        """Both share ConnectionConfig's fields; MAS adds only its sign name and templates."""
        shared = set(ConnectionConfig.model_fields)
        assert shared <= set(AliyunSmsConfig.model_fields)
        assert set(AliyunMasConfig.model_fields) == shared | {"sign_name", "templates"}
        assert issubclass(AliyunMasConfig, ConnectionConfig)
        assert issubclass(AliyunSmsConfig, ConnectionConfig)

    @pytest.mark.parametrize("bad", BAD_OPERATIONAL, ids=lambda bad: next(iter(bad)))
    def test_validated_as_sms_validates_them(self, mas_config, bad):
        """A bad operational key gives the same problems as AliyunSmsConfig gives."""
        # A None removes the key.
        sms = {k: v for k, v in {**LOGTO_CONFIG, **bad}.items() if v is not None}
        mas = {k: v for k, v in {**mas_config, **bad}.items() if v is not None}
        assert problems(mas) == problems(sms, AliyunSmsConfig)

    def test_good_operational_keys(self, mas_config, tmp_path):
        """Every operational key of AliyunSmsConfig is taken, camelCase, as there."""
        config = AliyunMasConfig.model_validate(
            {
                **mas_config,
                "endpoint": "127.0.0.1:8080",
                "regionId": "cn-hangzhou",
                "protocol": "http",
                "connectTimeout": 1000,
                "readTimeout": 2000,
                "deadline": 3000,
                "maxAttempts": 2,
                "backoffBase": 10,
                "backoffCap": 20,
                "maxConnections": 8,
                "securityToken": TOKEN,
                "signatureAlgorithm": "v2",
            }
        )
        assert (config.endpoint, config.protocol, config.deadline) == (
            "127.0.0.1:8080",
            "http",
            3000,
        )
        assert config.security_token.get_secret_value() == TOKEN


class TestSecrets:
    def test_repr_hides_them(self, mas_config):
        """The AccessKey secret and the STS token never show in repr or str."""
        config = AliyunMasConfig.model_validate({**mas_config, "securityToken": TOKEN})
        for shown in (repr(config), str(config), repr(config.model_dump())):
            assert SECRET not in shown
            assert TOKEN not in shown

    def test_errors_hide_them(self, mas_config):
        """A config error names fields, never the values given, and chains nothing."""
        data = {**mas_config, "securityToken": TOKEN, "signName": "", "unknownKey": SECRET}
        with pytest.raises(ConfigError) as caught:
            AliyunMasConfig.model_validate(data)
        error = caught.value
        assert set(dict(error.problems)) >= {"signName", "unknownKey"}
        assert SECRET not in str(error)
        assert TOKEN not in str(error)
        assert error.__context__ is None
        assert error.__cause__ is None


def test_an_invalid_mas_config_is_named_as_such():
    """The ConfigError of a MAS config names the Message Authentication Service's config."""
    from aliyun_sms_connector import AliyunMasConfig, ConfigError

    with pytest.raises(ConfigError) as caught:
        AliyunMasConfig.model_validate({"accessKeyId": "LTAI5tEXAMPLEkey"})
    assert caught.value.subject == "Aliyun Message Authentication Service config"
    assert str(caught.value).startswith("invalid Aliyun Message Authentication Service config, ")
