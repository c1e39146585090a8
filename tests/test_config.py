import json

import pytest

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsError,
    ConfigError,
    RegionalTemplateCode,
    TemplateType,
    UsageType,
)

from .conftest import SECRET, TOKEN


class TestAccept:
    def test_logto_console_json_pasted_as_is(self, logto_config):
        """The JSON Logto stores validates unchanged, camelCase keys and all."""
        config = AliyunSmsConfig.from_json(json.dumps(logto_config))
        assert config.access_key_id == "LTAI5tTestKeyId"
        assert config.sign_name == "AcmeSignName"
        assert [t.usage_type for t in config.templates] == [
            UsageType.REGISTER,
            UsageType.SIGN_IN,
            UsageType.FORGOT_PASSWORD,
            UsageType.GENERIC,
        ]
        generic = config.templates[3]
        assert generic.template_code == RegionalTemplateCode(
            china="SMS_GENERIC_CN", overseas="SMS_GENERIC_INTL"
        )
        assert config.strict_phone_region_number_check is False

    def test_snake_case_names_from_python(self):
        """Python callers may use snake_case names."""
        config = AliyunSmsConfig(
            access_key_id="id",
            access_key_secret="secret",
            sign_name="Sign",
            templates=[{"usage_type": "Generic", "template_code": "SMS_1"}],
            strict_phone_region_number_check=True,
        )
        assert config.strict_phone_region_number_check is True
        assert config.templates[0].usage_type is UsageType.GENERIC

    def test_defaults(self, config):
        """Endpoint, protocol, timeouts and template type have documented defaults."""
        assert (config.endpoint, config.region_id, config.credentials) == (None, None, None)
        assert config.protocol == "https"
        assert (config.connect_timeout, config.read_timeout) == (5000, 10000)
        assert config.security_token is None
        assert config.signature_algorithm == "ACS3-HMAC-SHA256"

    def test_template_type_defaults_to_verification_code(self, logto_config):
        """A template without type is a verification-code template."""
        logto_config["templates"] = [{"usageType": "Generic", "templateCode": "SMS_1"}]
        config = AliyunSmsConfig.model_validate(logto_config)
        assert config.templates[0].type is TemplateType.VERIFICATION_CODE

    @pytest.mark.parametrize("kind", [0, 1, 2, 6, 7])
    def test_every_logto_template_type(self, logto_config, kind):
        """Logto's template kinds 0, 1, 2, 6 and 7 are accepted."""
        logto_config["templates"] = [{"usageType": "Generic", "templateCode": "X", "type": kind}]
        assert AliyunSmsConfig.model_validate(logto_config).templates[0].type == kind

    def test_every_usage_type(self, logto_config):
        """All ten Logto usage types are members with Logto's string values."""
        values = [member.value for member in UsageType]
        assert values == [
            "Register",
            "SignIn",
            "ForgotPassword",
            "Generic",
            "Test",
            "OrganizationInvitation",
            "UserPermissionValidation",
            "BindNewIdentifier",
            "MfaVerification",
            "BindMfa",
        ]
        logto_config["templates"] = [{"usageType": v, "templateCode": "X"} for v in values]
        assert len(AliyunSmsConfig.model_validate(logto_config).templates) == 10
        assert UsageType.SIGN_IN == "SignIn"

    def test_beyond_logto_fields(self, logto_config):
        """STS token, endpoint, protocol and timeouts are accepted in camelCase."""
        logto_config.update(
            securityToken=TOKEN,
            endpoint="127.0.0.1:18080",
            protocol="http",
            connectTimeout=1000,
            readTimeout=2000,
        )
        config = AliyunSmsConfig.model_validate(logto_config)
        assert config.security_token.get_secret_value() == TOKEN
        assert config.endpoint == "127.0.0.1:18080"
        assert config.protocol == "http"
        assert (config.connect_timeout, config.read_timeout) == (1000, 2000)

    def test_values_are_stripped(self, logto_config):
        """Whitespace pasted around a key is removed, not sent."""
        logto_config["accessKeyId"] = "  LTAI5t \n"
        logto_config["accessKeySecret"] = f" {SECRET}\n"
        config = AliyunSmsConfig.model_validate(logto_config)
        assert config.access_key_id == "LTAI5t"
        assert config.access_key_secret.get_secret_value() == SECRET

    def test_config_is_frozen(self, config):
        """A validated config cannot be changed by accident."""
        with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
            config.sign_name = "Other"


class TestReject:
    @pytest.mark.parametrize("field", ["accessKeyId", "accessKeySecret", "signName"])
    @pytest.mark.parametrize("value", ["", "   ", "\n\t"])
    def test_blank_required_strings(self, logto_config, field, value):
        """Empty and whitespace-only credentials and sign names are rejected by name."""
        logto_config[field] = value
        with pytest.raises(ConfigError, match=field) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert [p.field for p in info.value.problems] == [field]

    @pytest.mark.parametrize("field", ["accessKeyId", "accessKeySecret", "signName", "templates"])
    def test_missing_required(self, logto_config, field):
        """Each required field is reported when missing."""
        del logto_config[field]
        with pytest.raises(ConfigError, match=field):
            AliyunSmsConfig.model_validate(logto_config)

    def test_unknown_key_is_a_typo(self, logto_config):
        """Unknown keys are rejected so that typos are caught."""
        logto_config["signname"] = "typo"
        with pytest.raises(ConfigError, match="signname"):
            AliyunSmsConfig.model_validate(logto_config)

    def test_unknown_key_inside_a_template(self, logto_config):
        """Unknown keys inside a template entry are rejected too."""
        logto_config["templates"][0]["templateCod"] = "x"
        with pytest.raises(ConfigError, match=r"templates\.0\.templateCod"):
            AliyunSmsConfig.model_validate(logto_config)

    def test_empty_templates(self, logto_config):
        """At least one template is needed."""
        logto_config["templates"] = []
        with pytest.raises(ConfigError, match="templates"):
            AliyunSmsConfig.model_validate(logto_config)

    def test_duplicate_usage_type(self, logto_config):
        """A usage type may appear only once."""
        logto_config["templates"].append({"usageType": "SignIn", "templateCode": "SMS_2"})
        with pytest.raises(ConfigError, match="SignIn appears more than once"):
            AliyunSmsConfig.model_validate(logto_config)

    def test_unknown_usage_type_lists_valid_ones(self, logto_config):
        """A wrong usageType names the valid choices."""
        logto_config["templates"][0]["usageType"] = "Login"
        with pytest.raises(ConfigError, match=r"templates\.0\.usageType") as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert "SignIn" in str(info.value)

    @pytest.mark.parametrize(
        "code",
        ["", "  ", {"china": "SMS_1"}, {"china": "", "overseas": "SMS_2"}, 12, None],
    )
    def test_bad_template_code(self, logto_config, code):
        """templateCode is a non-empty string or a complete {china, overseas}."""
        logto_config["templates"][0]["templateCode"] = code
        with pytest.raises(ConfigError, match=r"templates\.0\.templateCode"):
            AliyunSmsConfig.model_validate(logto_config)

    @pytest.mark.parametrize("kind", [3, 5, 8, -1, "promo"])
    def test_bad_template_type(self, logto_config, kind):
        """Only Logto's template kinds are accepted."""
        logto_config["templates"][0]["type"] = kind
        with pytest.raises(ConfigError, match=r"templates\.0\.type"):
            AliyunSmsConfig.model_validate(logto_config)

    @pytest.mark.parametrize(
        "endpoint",
        ["https://dysmsapi.aliyuncs.com", "dysmsapi.aliyuncs.com/", "host:port", "", "a b"],
    )
    def test_bad_endpoint(self, logto_config, endpoint):
        """The endpoint is host[:port], with no scheme or path."""
        logto_config["endpoint"] = endpoint
        with pytest.raises(ConfigError, match="endpoint"):
            AliyunSmsConfig.model_validate(logto_config)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("protocol", "ftp"), ("connectTimeout", 0), ("readTimeout", -5), ("readTimeout", "x")],
    )
    def test_bad_transport_settings(self, logto_config, field, value):
        """Protocol and timeouts are checked."""
        logto_config[field] = value
        with pytest.raises(ConfigError, match=field):
            AliyunSmsConfig.model_validate(logto_config)

    def test_every_offending_field_is_named(self, logto_config):
        """One error lists all the problems, not just the first."""
        logto_config["signName"] = ""
        logto_config["protocol"] = "ftp"
        logto_config["extra"] = 1
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        fields = {p.field for p in info.value.problems}
        assert fields == {"signName", "protocol", "extra"}
        assert "3 problems" in str(info.value)

    @pytest.mark.parametrize("bad", [[], "text", 3, None])
    def test_not_an_object(self, bad):
        """A JSON value that is not an object is a ConfigError."""
        with pytest.raises(ConfigError, match="expected a JSON object"):
            AliyunSmsConfig.model_validate(bad)

    def test_not_json(self):
        """Text that is not JSON is a ConfigError."""
        with pytest.raises(ConfigError, match="not valid JSON"):
            AliyunSmsConfig.from_json("{accessKeyId:")

    def test_constructor_raises_config_error_too(self):
        """Building the model directly also raises ConfigError."""
        with pytest.raises(ConfigError, match="signName"):
            AliyunSmsConfig(access_key_id="x", access_key_secret="y", templates=[])

    def test_config_error_is_a_value_error_and_an_aliyun_error(self):
        """ConfigError is both an AliyunSmsError and a ValueError."""
        assert issubclass(ConfigError, AliyunSmsError)
        assert issubclass(ConfigError, ValueError)


class TestSecrets:
    def test_secret_not_in_repr_or_str(self, logto_config):
        """The AccessKey secret and STS token never show in repr or str."""
        logto_config["securityToken"] = TOKEN
        config = AliyunSmsConfig.model_validate(logto_config)
        for text in (repr(config), str(config), repr(config.templates)):
            assert SECRET not in text
            assert TOKEN not in text

    def test_secret_not_in_json_dump(self, config):
        """Dumping the config to JSON masks the secret."""
        assert SECRET not in config.model_dump_json()

    @pytest.mark.parametrize("field", ["accessKeySecret", "securityToken"])
    def test_secret_not_echoed_by_errors(self, logto_config, field):
        """A rejected secret value never appears in the error or its chain."""
        import traceback

        logto_config[field] = ["not", "a", SECRET]
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        shown = "".join(traceback.format_exception(info.value))
        assert SECRET not in shown
        assert field in shown

    def test_secret_not_echoed_when_another_field_fails(self, logto_config):
        """Errors about other fields do not echo the secret either."""
        logto_config["signName"] = 5
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert SECRET not in str(info.value) + repr(info.value)
