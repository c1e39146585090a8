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


def _texts(error: BaseException, depth: int = 8):
    """Every str and bytes reachable from error: its chain, args, attributes and containers."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(error, 0)]
    while stack:
        obj, level = stack.pop()
        if isinstance(obj, (str, bytes)):
            yield obj
            continue
        if obj is None or id(obj) in seen or level > depth:
            continue
        seen.add(id(obj))
        if type(obj).__name__ in ("SecretStr", "SecretBytes"):
            continue  # opaque by design
        yield repr(obj)
        children: list[object] = []
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, obj.args]
        if isinstance(obj, dict):
            children += [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children += list(obj)
        children += list(getattr(obj, "__dict__", {}).values())
        stack += [(child, level + 1) for child in children]


def assert_not_reachable(error: BaseException, secret: str) -> None:
    """Fail if secret, raw or JSON-escaped, is anywhere in error's chain."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {form.encode() for form in list(forms)}
    for text in _texts(error):
        for form in forms:
            assert type(form) is not type(text) or form not in text, f"{form!r} in {text[:200]!r}"


CONTROL = ["\r\n", "\n", "\r", "\x00", "\t", "\x1b[31m", "\x85", "\u2028"]


class TestControlCharacters:
    @pytest.mark.parametrize("char", CONTROL)
    @pytest.mark.parametrize(
        ("field", "where"),
        [
            ("accessKeyId", "accessKeyId"),
            ("accessKeySecret", "accessKeySecret"),
            ("signName", "signName"),
            ("securityToken", "securityToken"),
            ("endpoint", "endpoint"),
            ("overseasEndpoint", "overseasEndpoint"),
            ("regionId", "regionId"),
        ],
    )
    def test_rejected_inside_every_string(self, logto_config, char, field, where):
        """A control character inside a config string is a ConfigError naming only the field."""
        value = f"Injected{char}Line-{SECRET}"
        logto_config[field] = value
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert [p.field for p in info.value.problems] == [where]
        assert char not in str(info.value).replace("\n  ", "")
        assert_not_reachable(info.value, value)

    @pytest.mark.parametrize("char", CONTROL)
    @pytest.mark.parametrize(
        ("code", "where"),
        [
            ("SMS_1{c}X", "templates.0.templateCode"),
            ({"china": "SMS_1{c}X", "overseas": "SMS_2"}, "templates.0.templateCode.china"),
            ({"china": "SMS_1", "overseas": "SMS_2{c}X"}, "templates.0.templateCode.overseas"),
        ],
    )
    def test_rejected_in_template_codes(self, logto_config, char, code, where):
        """templateCode, plain or regional, may not hold a control character."""
        if isinstance(code, dict):
            code = {k: v.format(c=char) for k, v in code.items()}
        else:
            code = code.format(c=char)
        logto_config["templates"][0]["templateCode"] = code
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert [p.field for p in info.value.problems] == [where]
        assert "control characters" in info.value.problems[0].problem

    def test_rejected_in_the_ca_file_path(self, logto_config, tmp_path):
        """caFile is a string too."""
        logto_config["caFile"] = str(tmp_path / "ca\n.pem")
        with pytest.raises(ConfigError, match="caFile: must not contain control characters"):
            AliyunSmsConfig.model_validate(logto_config)

    def test_rejected_from_the_environment(self, monkeypatch):
        """The same rule holds for ALIYUN_SMS_* variables, named by variable."""
        environ = {
            "ALIYUN_SMS_ACCESS_KEY_ID": "id",
            "ALIYUN_SMS_ACCESS_KEY_SECRET": "s",
            "ALIYUN_SMS_SIGN_NAME": "Acme\r\nX-Forged: 1",
            "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Generic", "templateCode": "SMS_1"}]',
        }
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_env(environ)
        assert info.value.problems[0].field == "ALIYUN_SMS_SIGN_NAME"

    def test_undecodable_environment_bytes(self):
        """A variable that was not UTF-8 (a lone surrogate from os.environ) is rejected."""
        environ = {
            "ALIYUN_SMS_ACCESS_KEY_ID": "id",
            "ALIYUN_SMS_ACCESS_KEY_SECRET": "s\udcff",
            "ALIYUN_SMS_SIGN_NAME": "S",
            "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Generic", "templateCode": "SMS_1"}]',
        }
        with pytest.raises(ConfigError, match="ALIYUN_SMS_ACCESS_KEY_SECRET: must be UTF-8 text"):
            AliyunSmsConfig.from_env(environ)

    def test_surrounding_newlines_are_trimmed_not_kept(self, logto_config):
        """A newline pasted after a value is trimmed, so none reaches a log line."""
        logto_config["signName"] = "Acme\r\n"
        logto_config["templates"][0]["templateCode"] = "\nSMS_1\n"
        config = AliyunSmsConfig.model_validate(logto_config)
        assert config.sign_name == "Acme"
        assert config.templates[0].template_code == "SMS_1"

    def test_unknown_keys_are_shown_escaped(self, logto_config):
        """An unknown key is named, but its control characters are escaped and it is cut short."""
        logto_config["bad\nkey" + "x" * 200] = 1
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        [problem] = info.value.problems
        assert problem.field.startswith("bad\\nkeyxxx")
        assert len(problem.field) <= 65
        assert all(line.startswith(("invalid", "  ")) for line in str(info.value).splitlines())


class TestEncodings:
    def test_utf8_bom_text(self, logto_config):
        """JSON text starting with a byte-order mark is accepted."""
        config = AliyunSmsConfig.from_json("\ufeff" + json.dumps(logto_config))
        assert config.sign_name == "AcmeSignName"

    def test_utf8_bom_bytes(self, logto_config):
        """UTF-8 bytes starting with a byte-order mark are accepted."""
        raw = "\ufeff".encode() + json.dumps(logto_config, ensure_ascii=False).encode()
        assert AliyunSmsConfig.from_json(raw).sign_name == "AcmeSignName"

    def test_non_ascii_utf8_bytes(self, logto_config):
        """UTF-8 bytes with Chinese text are read as such."""
        logto_config["signName"] = "阿里云短信测试"
        raw = json.dumps(logto_config, ensure_ascii=False).encode()
        assert AliyunSmsConfig.from_json(raw).sign_name == "阿里云短信测试"

    @pytest.mark.parametrize(
        ("encoding", "sign"), [("gbk", "短信签名"), ("latin-1", "Café"), ("utf-16", "短信签名")]
    )
    def test_bytes_that_are_not_utf8(self, logto_config, encoding, sign):
        """Bytes in another encoding give a ConfigError that holds none of the input."""
        logto_config["signName"] = sign
        raw = json.dumps(logto_config, ensure_ascii=False).encode(encoding)
        with pytest.raises(ConfigError, match="not UTF-8") as info:
            AliyunSmsConfig.from_json(raw)
        assert info.value.__context__ is None
        assert info.value.__cause__ is None
        assert_not_reachable(info.value, SECRET)

    def test_not_text_at_all(self):
        """A value that is neither text nor bytes is a ConfigError."""
        with pytest.raises(ConfigError, match="expected JSON text, got int"):
            AliyunSmsConfig.from_json(3)

    def test_deep_nesting(self):
        """JSON nested beyond the parser's limit is a ConfigError, not a RecursionError."""
        with pytest.raises(ConfigError, match="nested too deeply"):
            AliyunSmsConfig.from_json("[" * 100_000)


class TestCaFile:
    @pytest.mark.parametrize(
        "content",
        [
            b"",
            b"not a certificate\n",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ],
    )
    def test_not_a_certificate(self, logto_config, tmp_path, content):
        """A caFile that ssl cannot load is a ConfigError at validation, naming caFile."""
        path = tmp_path / "ca.pem"
        path.write_bytes(content)
        logto_config["caFile"] = str(path)
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert [p.field for p in info.value.problems] == ["caFile"]
        assert "PEM" in info.value.problems[0].problem
        assert info.value.__context__ is None

    def test_reported_with_other_problems(self, logto_config, tmp_path):
        """A bad caFile is listed with the other bad fields, in one error."""
        path = tmp_path / "ca.pem"
        path.write_text("junk")
        logto_config.update(caFile=str(path), protocol="ftp")
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert {p.field for p in info.value.problems} == {"caFile", "protocol"}

    def test_a_real_bundle_loads_once(self, logto_config):
        """certifi's bundle is a valid caFile; the transport gets the context validation loaded."""
        import ssl

        import certifi

        from aliyun_sms_connector._http.tls import _load, client_context

        _load.cache_clear()
        logto_config["caFile"] = certifi.where()
        config = AliyunSmsConfig.model_validate(logto_config)
        assert _load.cache_info().misses == 1
        context = client_context(str(config.ca_file))
        assert _load.cache_info().misses == 1
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname


class TestChainHoldsNoInput:
    @pytest.mark.parametrize(
        "mutate",
        [
            lambda c: c.update(signName=5),
            lambda c: c.update(accessKeySecret=["x", SECRET]),
            lambda c: c.update(protocol=SECRET),
            lambda c: c.update(endpoint=f"https://{SECRET}"),
            lambda c: c.update(templates=[{"usageType": SECRET, "templateCode": SECRET}]),
            lambda c: c.update(**{SECRET: 1}),
            lambda c: c.update(accessKeySecret=f"a\n{SECRET}"),
        ],
    )
    def test_validation_errors(self, logto_config, mutate):
        """No ValidationError is chained, and the secret is nowhere in the error."""
        if SECRET not in json.dumps(logto_config):
            logto_config["accessKeySecret"] = SECRET
        mutate(logto_config)
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert info.value.__context__ is None
        assert info.value.__cause__ is None
        # An unknown key is a name, and is named; every other case holds no input.
        if SECRET not in logto_config:
            assert_not_reachable(info.value, SECRET)

    def test_model_validate_strings(self, logto_config):
        """pydantic's string-mode entry point raises ConfigError too, not a ValidationError."""
        logto_config["connectTimeout"] = "abc"
        with pytest.raises(ConfigError, match="connectTimeout") as info:
            AliyunSmsConfig.model_validate_strings(logto_config)
        assert info.value.__context__ is None
        assert_not_reachable(info.value, SECRET)
        logto_config["connectTimeout"] = "1500"
        assert AliyunSmsConfig.model_validate_strings(logto_config).connect_timeout == 1500

    def test_from_json_errors(self, logto_config):
        """A JSON syntax error chains no JSONDecodeError (its doc attribute is the input)."""
        text = json.dumps(logto_config)[:-1] + ",}"
        with pytest.raises(ConfigError, match=r"not valid JSON: .* at line 1 column \d+") as info:
            AliyunSmsConfig.from_json(text)
        assert info.value.__context__ is None
        assert_not_reachable(info.value, SECRET)

    def test_from_env_errors(self):
        """Errors from ALIYUN_SMS_* variables chain nothing either."""
        environ = {
            "ALIYUN_SMS_ACCESS_KEY_SECRET": SECRET,
            "ALIYUN_SMS_SIGN_NAME": "",
            "ALIYUN_SMS_TEMPLATES": f'["{SECRET}"',
        }
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_env(environ)
        assert info.value.__context__ is None
        assert_not_reachable(info.value, SECRET)

    def test_constructor_frame_keeps_no_raw_input(self, logto_config):
        """The constructor's own frame drops the raw input before raising."""
        import traceback

        logto_config["signName"] = 5
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig(**logto_config)
        frames = traceback.TracebackException.from_exception(info.value, capture_locals=True)
        inner = [f for f in frames.stack if f.name == "__init__"]
        assert inner
        assert all(SECRET not in repr(frame.locals) for frame in inner)


class TestFromEnvLeavesServiceVariables:
    def test_verify_variables_are_not_config(self):
        """ALIYUN_SMS_REDIS_URL, _VERIFY_SECRET_KEY and _CONFIG are no fields of the config."""
        environ = {
            "ALIYUN_SMS_ACCESS_KEY_ID": "id",
            "ALIYUN_SMS_ACCESS_KEY_SECRET": "s",
            "ALIYUN_SMS_SIGN_NAME": "S",
            "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Generic", "templateCode": "SMS_1"}]',
            "ALIYUN_SMS_REDIS_URL": "redis://127.0.0.1:6379/0",
            "ALIYUN_SMS_VERIFY_SECRET_KEY": "k" * 32,
            # The path of a config file, for the command line and the example apps.
            "ALIYUN_SMS_CONFIG": "/etc/aliyun-sms/logto.json",
        }
        assert AliyunSmsConfig.from_env(environ).sign_name == "S"

    def test_other_unknown_variables_still_fail(self):
        """A near miss of them is still an unknown variable."""
        with pytest.raises(ConfigError, match="ALIYUN_SMS_REDIS: unknown variable"):
            AliyunSmsConfig.from_env({"ALIYUN_SMS_REDIS": "x"})


def library_frames_locals(error: BaseException) -> str:
    """The locals of every frame of the error's traceback that is in the library, rendered."""
    import traceback

    rendered = traceback.TracebackException.from_exception(error, capture_locals=True)
    return "".join(
        repr(frame.locals)
        for frame in rendered.stack
        if "aliyun_sms_connector" in frame.filename and "tests" not in frame.filename
    )


class TestFrameLocals:
    """Error trackers record the locals of every frame; the library's hold no secret."""

    def test_from_env_keeps_neither_the_environment_nor_its_values(self, monkeypatch):
        """A bad variable: no frame of the library holds os.environ or the values read."""
        monkeypatch.setenv("UNRELATED_DB_PASSWORD", "UnrelatedDbPassw0rd")
        monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_ID", "id")
        monkeypatch.setenv("ALIYUN_SMS_ACCESS_KEY_SECRET", SECRET)
        monkeypatch.setenv("ALIYUN_SMS_SIGN_NAME", "S")
        monkeypatch.setenv(
            "ALIYUN_SMS_TEMPLATES", '[{"usageType": "Generic", "templateCode": "A"}]'
        )
        monkeypatch.setenv("ALIYUN_SMS_MAX_ATTEMPTS", "three")
        with pytest.raises(ConfigError, match="ALIYUN_SMS_MAX_ATTEMPTS") as info:
            AliyunSmsConfig.from_env()
        shown = library_frames_locals(info.value)
        assert "from_env" in "".join(f.name for f in info.traceback)
        assert "UnrelatedDbPassw0rd" not in shown
        assert SECRET not in shown

    def test_from_json_keeps_no_parsed_config(self, logto_config):
        """A bad config from JSON: the library's frames hold neither the text nor the parse."""
        logto_config["protocol"] = "ftp"
        with pytest.raises(ConfigError, match="protocol") as info:
            AliyunSmsConfig.from_json(json.dumps(logto_config))
        assert SECRET not in library_frames_locals(info.value)

    def test_model_validate_keeps_no_input(self, logto_config):
        """model_validate's frames drop the input before raising."""
        logto_config["protocol"] = "ftp"
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(logto_config)
        assert SECRET not in library_frames_locals(info.value)


ENV = {
    "ALIYUN_SMS_ACCESS_KEY_ID": "id",
    "ALIYUN_SMS_ACCESS_KEY_SECRET": "s",
    "ALIYUN_SMS_SIGN_NAME": "S",
    "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Generic", "templateCode": "SMS_1"}]',
}


class TestRegionalCodes:
    def test_code_for_each_region(self):
        """A {china, overseas} template code gives each region its own code."""
        from aliyun_sms_connector import TemplateConfig

        template = TemplateConfig.model_validate(
            {"usageType": "Generic", "templateCode": {"china": "SMS_CN", "overseas": "SMS_INTL"}}
        )
        assert (template.code_for("china"), template.code_for("overseas")) == (
            "SMS_CN",
            "SMS_INTL",
        )


class TestJsonProblems:
    def _problems(self, text):
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_json(text)
        return list(info.value.problems)

    def test_json_text_as_a_bytearray_or_str(self, logto_config):
        """model_validate_json takes text, bytes or a bytearray."""
        text = json.dumps(logto_config)
        for given in (text, text.encode(), bytearray(text.encode())):
            assert AliyunSmsConfig.model_validate_json(given).sign_name == "AcmeSignName"

    def test_not_utf8(self):
        """Bytes that are not UTF-8: one problem of the whole config, saying what to do."""
        assert self._problems(b"\xff{}") == [("", "not UTF-8 text; save the file as UTF-8")]

    def test_number_too_long(self):
        """A number beyond Python's digit limit is a problem of the JSON, not a ValueError."""
        assert self._problems('{"n": ' + "1" * 5000 + "}") == [
            ("", "not valid JSON: a number is too long")
        ]

    def test_nested_too_deeply(self):
        """JSON nested beyond the parser's limit: the problem names the nesting."""
        assert self._problems("[" * 100_000) == [("", "not valid JSON: nested too deeply")]

    def test_message_names_the_whole_config(self):
        """A problem of the whole config shows as (config)."""
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_json("[" * 100_000)
        assert "  (config): not valid JSON: nested too deeply" in str(info.value)


class TestEnvironmentProblems:
    def test_templates_that_are_not_json(self):
        """ALIYUN_SMS_TEMPLATES that is not JSON is named with the form it must have."""
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_env({**ENV, "ALIYUN_SMS_TEMPLATES": "[{"})
        assert list(info.value.problems) == [
            ("ALIYUN_SMS_TEMPLATES", "must be a JSON list of templates")
        ]

    def test_problem_inside_the_templates_is_named_by_variable_and_path(self):
        """A bad template entry is named ALIYUN_SMS_TEMPLATES.<index>.<field>."""
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.from_env(
                {**ENV, "ALIYUN_SMS_TEMPLATES": '[{"usageType": "Nope", "templateCode": "S"}]'}
            )
        assert [p.field for p in info.value.problems] == ["ALIYUN_SMS_TEMPLATES.0.usageType"]


MISSING = 'Field required (or credentials: "default" for the credential chain)'
NOT_BOTH = 'give either accessKeyId/accessKeySecret or credentials: "default", not both'
BAD_SIGN = ("signName", "Input should be a valid string")


def problems_of(data):
    with pytest.raises(ConfigError) as info:
        AliyunSmsConfig.model_validate(data)
    return list(info.value.problems)


# A config with a bad signName and no credentials, for the credential checks below.
BAD_BASE = {"signName": 5, "templates": [{"usageType": "Generic", "templateCode": "S1"}]}


class TestCredentialProblemsWithOthers:
    """One error lists the credential problem beside every other one, however keys are spelt."""

    def test_only_the_credential_problem(self):
        """A config whose only fault is a missing secret has exactly that problem."""
        data = {**BAD_BASE, "signName": "S", "accessKeyId": "id"}
        assert problems_of(data) == [("accessKeySecret", MISSING)]

    @pytest.mark.parametrize(
        ("given", "missing"),
        [
            ({"access_key_id": "id"}, "accessKeySecret"),
            ({"accessKeyId": "id"}, "accessKeySecret"),
            ({"access_key_secret": "s"}, "accessKeyId"),
            ({"accessKeySecret": "s"}, "accessKeyId"),
        ],
    )
    def test_half_a_key_pair(self, given, missing):
        """The half of the pair that is given, in either spelling, is not reported missing."""
        assert problems_of({**BAD_BASE, **given}) == [BAD_SIGN, (missing, MISSING)]

    @pytest.mark.parametrize(
        "given",
        [
            {"securityToken": "t"},
            {"security_token": "t"},
            {"accessKeyId": "id"},
            {"accessKeySecret": "s"},
        ],
    )
    def test_chain_and_a_credential(self, given):
        """The default chain with any credential of the pair form is one problem."""
        data = {**BAD_BASE, "credentials": "default", **given}
        assert problems_of(data) == [BAD_SIGN, ("credentials", NOT_BOTH)]

    def test_chain_alone(self):
        """The default chain alone needs no key pair."""
        assert problems_of({**BAD_BASE, "credentials": "default"}) == [BAD_SIGN]

    def test_chain_and_a_secret_when_all_else_is_valid(self):
        """The chain and a secret, in an otherwise valid config, is the same one problem."""
        data = {**BAD_BASE, "signName": "S", "credentials": "default", "accessKeySecret": "s"}
        assert problems_of(data) == [("credentials", NOT_BOTH)]


class TestShapeProblems:
    def test_not_an_object(self):
        """A list instead of an object is named with the type given."""
        assert problems_of([1]) == [("", "expected a JSON object, got list")]

    def test_a_key_that_is_not_a_string(self):
        """The first key that is not a string is named by its type."""
        assert problems_of({"signName": "x", 1: "y"}) == [("", "keys must be strings, got int")]


class TestUnknownKeyNames:
    """An unknown key is shown escaped and cut to 64 characters, as it comes from the input."""

    EXTRA = "Extra inputs are not permitted"

    @pytest.mark.parametrize(
        ("key", "shown"),
        [
            ("é" * 64, "é" * 64),
            ("a\nb", "a\\nb"),
            ("x" * 100, "x" * 64 + "…"),
            ("\n" + "x" * 62, "\\n" + "x" * 62),
            ("\n" + "x" * 63, "\\n" + "x" * 62 + "…"),
        ],
    )
    def test_shown_name(self, key, shown, logto_config):
        """Printable keys up to 64 characters as they are; others escaped, then cut with …."""
        assert problems_of({**logto_config, key: 1}) == [(shown, self.EXTRA)]


class TestDocumentedDefaults:
    def test_retry_and_connection_defaults(self, logto_config):
        """Without them, the retry, deadline, pool and strictness settings take their defaults."""
        del logto_config["strictPhoneRegionNumberCheck"]
        config = AliyunSmsConfig.model_validate(logto_config)
        assert (
            config.max_attempts,
            config.backoff_base,
            config.backoff_cap,
            config.deadline,
            config.max_connections,
            config.strict_phone_region_number_check,
        ) == (3, 200, 5000, 20000, 64, False)


class TestTemplateCodeProblemNames:
    """A problem inside a template code is named by the key as given, without pydantic's branch."""

    @pytest.mark.parametrize(
        ("entry", "field"),
        [
            (
                {"usageType": "Generic", "templateCode": {"china": "", "overseas": "x"}},
                "templates.0.templateCode.china",
            ),
            (
                {"usage_type": "Generic", "template_code": {"china": "", "overseas": "x"}},
                "templates.0.template_code.china",
            ),
            (
                {"usageType": "Generic", "templateCode": "S", "regional": 1},
                "templates.0.regional",
            ),
        ],
    )
    def test_field(self, entry, field, logto_config):
        """templateCode or template_code, then the region; an unknown key keeps its name."""
        logto_config["templates"] = [entry]
        assert [p.field for p in problems_of(logto_config)] == [field]
