import json

import pytest

from aliyun_sms_connector import (
    TemplateConfig,
    TemplateError,
    TemplateNotFoundError,
    TemplateParamError,
    TemplateType,
    UsageType,
)
from aliyun_sms_connector._templates import build_template_param, coerce_usage_type, route


def templates(*entries):
    parsed = [TemplateConfig.model_validate(e) for e in entries]
    return {template.usage_type: template for template in parsed}


REGIONAL = {"usageType": "Generic", "templateCode": {"china": "SMS_CN", "overseas": "SMS_INTL"}}


class TestRouting:
    def test_exact_match_wins(self):
        """An exact usage-type match beats Generic."""
        chosen = route(
            templates({"usageType": "SignIn", "templateCode": "SMS_S"}, REGIONAL),
            UsageType.SIGN_IN,
            "china",
        )
        assert chosen.template_code == "SMS_S"
        assert chosen.usage_type is UsageType.SIGN_IN

    def test_generic_fallback(self):
        """Without an exact match, the Generic template serves."""
        chosen = route(templates(REGIONAL), "Register", "china")
        assert chosen.template_code == "SMS_CN"
        assert chosen.usage_type is UsageType.REGISTER
        assert chosen.template.usage_type is UsageType.GENERIC

    @pytest.mark.parametrize(("region", "code"), [("china", "SMS_CN"), ("overseas", "SMS_INTL")])
    def test_regional_code_by_region(self, region, code):
        """{china, overseas} picks by the recipient's region."""
        assert route(templates(REGIONAL), UsageType.GENERIC, region).template_code == code

    @pytest.mark.parametrize("kind", [0, 1, 2, 7])
    def test_plain_domestic_code_serves_mainland_only(self, kind):
        """Types 0, 1, 2 and 7 are domestic: mainland numbers only, else TemplateError."""
        entries = templates({"usageType": "SignIn", "templateCode": "SMS_S", "type": kind})
        assert route(entries, "SignIn", "china").template_code == "SMS_S"
        with pytest.raises(TemplateError) as info:
            route(entries, "SignIn", "overseas", country_code=1)
        error = info.value
        assert type(error) is TemplateError
        assert error.code == "TemplateRegionMismatch"
        assert error.message == (
            f"template SMS_S (SignIn) is domestic (type {kind}); +1 numbers need an "
            'international (overseas) template: give templateCode as {"china": ..., '
            '"overseas": ...}'
        )
        assert (error.retryable, error.maybe_sent) == (False, False)

    def test_plain_international_code_serves_overseas_only(self):
        """Type 6 is international: numbers outside the mainland only, else TemplateError."""
        entries = templates({"usageType": "Generic", "templateCode": "SMS_I", "type": 6})
        assert route(entries, "SignIn", "overseas").template_code == "SMS_I"
        with pytest.raises(TemplateError, match=r"SMS_I \(Generic\) is international") as info:
            route(entries, "SignIn", "china", country_code=86)
        assert info.value.code == "TemplateRegionMismatch"
        assert "+86 (mainland China) numbers need a domestic template" in info.value.message

    def test_region_named_without_a_country_code(self):
        """Without the calling code the message still names the region."""
        entries = templates({"usageType": "SignIn", "templateCode": "SMS_S"})
        with pytest.raises(TemplateError, match="numbers outside mainland China need"):
            route(entries, "SignIn", "overseas")

    @pytest.mark.parametrize("kind", [2, 6])
    def test_regional_code_serves_both_regions_whatever_its_type(self, kind):
        """{china, overseas} serves both regions: its type does not decide."""
        entries = templates({**REGIONAL, "type": kind})
        assert route(entries, "SignIn", "china").template_code == "SMS_CN"
        assert route(entries, "SignIn", "overseas").template_code == "SMS_INTL"

    def test_no_template_and_no_generic(self):
        """Neither the usage type nor Generic: TemplateNotFoundError."""
        with pytest.raises(TemplateNotFoundError, match="no template for usage type Register"):
            route(templates({"usageType": "SignIn", "templateCode": "S"}), "Register", "china")

    @pytest.mark.parametrize("value", ["Login", "signin", "", 3, None])
    def test_unknown_usage_type_lists_valid_names(self, value):
        """An unknown usage type is a TemplateNotFoundError listing the valid names."""
        with pytest.raises(TemplateNotFoundError) as info:
            coerce_usage_type(value)
        for member in UsageType:
            assert member.value in str(info.value)
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize(
        ("value", "meant"),
        [("signin", "SignIn"), ("SIGNIN", "SignIn"), ("Sign_In", "SignIn"), ("generic", "Generic")],
    )
    def test_another_case_is_refused_with_a_hint(self, value, meant):
        """Names are case-sensitive; one that matches in another case says which was meant."""
        with pytest.raises(TemplateNotFoundError) as info:
            coerce_usage_type(value)
        assert f"did you mean {meant}? usage types are case-sensitive" in info.value.message
        assert info.value.code == "UnknownUsageType"

    def test_no_hint_for_a_name_that_matches_nothing(self):
        """A name that matches no usage type in any case gets the list, and no guess."""
        with pytest.raises(TemplateNotFoundError) as info:
            coerce_usage_type("Login")
        assert "did you mean" not in info.value.message

    def test_member_names_are_accepted(self):
        """SIGN_IN and SignIn both name UsageType.SIGN_IN."""
        assert coerce_usage_type("SIGN_IN") is UsageType.SIGN_IN
        assert coerce_usage_type("SignIn") is UsageType.SIGN_IN


VERIFY = TemplateConfig(usage_type=UsageType.GENERIC, template_code="S")
NOTIFY = TemplateConfig(
    usage_type=UsageType.GENERIC, template_code="S", type=TemplateType.NOTIFICATION
)


class TestPayload:
    def test_logto_context_keys_are_dropped(self):
        """locale and uiLocales never reach TemplateParam."""
        text = build_template_param({"code": "123456", "locale": "en", "uiLocales": "zh"}, VERIFY)
        assert json.loads(text) == {"code": "123456"}

    def test_numbers_become_strings(self):
        """Numeric values are sent as strings."""
        assert json.loads(build_template_param({"code": 123456}, VERIFY)) == {"code": "123456"}

    def test_empty_payload(self):
        """No payload gives an empty JSON object."""
        assert build_template_param(None, VERIFY) == "{}"

    @pytest.mark.parametrize("value", ["12 34", "12-34", "", "码123", "abc\n"])
    def test_verification_values_must_be_alphanumeric(self, value):
        """Verification-code values follow Aliyun's [A-Za-z0-9]+ rule."""
        with pytest.raises(TemplateParamError, match="'code'") as info:
            build_template_param({"code": value}, VERIFY)
        if value:
            assert value not in str(info.value)

    def test_notification_values_may_hold_any_text(self):
        """Other template kinds accept any text and keep non-ASCII as is."""
        text = build_template_param({"name": "张三", "time": "10:00"}, NOTIFY)
        assert text == '{"name":"张三","time":"10:00"}'

    @pytest.mark.parametrize("value", [None, True, ["1"], {"a": 1}, b"12"])
    def test_value_types(self, value):
        """Only strings and numbers are template values."""
        with pytest.raises(TemplateParamError, match="string or a number"):
            build_template_param({"code": value}, NOTIFY)

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -float("nan")])
    @pytest.mark.parametrize("template", [VERIFY, NOTIFY], ids=["verify", "notify"])
    def test_nan_and_infinity_are_not_values(self, value, template):
        """NaN and infinity are refused for every template kind, never sent as "nan" or "inf"."""
        with pytest.raises(TemplateParamError, match="'code' must be a finite number"):
            build_template_param({"code": value}, template)

    def test_float_subclasses_too(self):
        """A float subclass holding NaN (numpy's float64 is one) is refused too."""

        class Float(float):
            pass

        with pytest.raises(TemplateParamError, match="finite"):
            build_template_param({"code": Float("nan")}, NOTIFY)

    def test_finite_floats_still_pass(self):
        """Finite floats are still sent as their text."""
        assert json.loads(build_template_param({"n": 1.5}, NOTIFY)) == {"n": "1.5"}

    def test_strings_that_spell_nan_are_text(self):
        """The string "NaN" is text, sent as a JSON string, so it is left to the template's rule."""
        assert json.loads(build_template_param({"code": "NaN"}, VERIFY)) == {"code": "NaN"}

    def test_number_too_long_for_str(self):
        """An int beyond str()'s digit limit is a TemplateParamError, not a ValueError."""
        with pytest.raises(TemplateParamError, match="too long a number") as info:
            build_template_param({"code": 10**5000}, NOTIFY)
        assert info.value.__context__ is None

    @pytest.mark.parametrize("payload", [["code"], "code=1", 5])
    def test_payload_must_be_a_mapping(self, payload):
        """A payload that is not a mapping is rejected."""
        with pytest.raises(TemplateParamError, match="mapping"):
            build_template_param(payload, VERIFY)

    @pytest.mark.parametrize("key", ["", 1])
    def test_keys_must_be_names(self, key):
        """Variable names are non-empty strings."""
        with pytest.raises(TemplateParamError, match="names"):
            build_template_param({key: "1"}, VERIFY)

    def test_template_param_error_is_a_template_error(self):
        """TemplateParamError is a TemplateError and a ValueError."""
        from aliyun_sms_connector import TemplateError

        assert issubclass(TemplateParamError, TemplateError)
        assert issubclass(TemplateParamError, ValueError)


class TestContextKeysAnywhere:
    @pytest.mark.parametrize(
        "payload",
        [
            {"locale": "en", "code": "1"},
            {"uiLocales": "zh", "code": "1", "locale": "en"},
            {"code": "1", "locale": "en", "uiLocales": "zh"},
        ],
    )
    def test_variables_after_a_context_key_are_kept(self, payload):
        """locale and uiLocales are dropped wherever they stand; the variables after them stay."""
        assert build_template_param(payload, VERIFY) == '{"code":"1"}'


class TestPayloadErrorMessages:
    def _message(self, payload, template=VERIFY):
        with pytest.raises(TemplateParamError) as info:
            build_template_param(payload, template)
        return info.value.message

    def test_payload_not_a_mapping_names_its_type(self):
        """The message names the type given instead of a mapping."""
        assert self._message(["code"]) == "payload must be a mapping, not list"

    def test_bad_key(self):
        """An empty variable name is refused with the rule it broke."""
        assert self._message({"": "1"}) == "template variable names must be non-empty strings"

    def test_bad_value_type_names_the_variable_and_type(self):
        """A value of the wrong type: the message names the variable and the type."""
        assert self._message({"code": ["1"]}, NOTIFY) == (
            "template variable 'code' must be a string or a number, not list"
        )

    def test_verification_code_rule(self):
        """A verification-code value breaking Aliyun's rule: the message quotes the rule."""
        assert self._message({"code": "12 34"}) == (
            "template variable 'code' of a verification-code template must match "
            "[A-Za-z0-9]+ (Aliyun's rule)"
        )

    def test_too_long_number_names_the_variable(self):
        """An int too long for str(): the message names the variable."""
        assert self._message({"amount": 10**5000}, NOTIFY) == (
            "template variable 'amount' is too long a number"
        )


class TestUsageTypeErrorMessages:
    VALID = ", ".join(member.value for member in UsageType)

    def _error(self, value):
        with pytest.raises(TemplateNotFoundError) as info:
            coerce_usage_type(value)
        return info.value

    @pytest.mark.parametrize(
        ("value", "shown"),
        [("Login", "'Login'"), ("x" * 40, repr("x" * 40)), ("x" * 41, "'str'"), (3, "'int'")],
    )
    def test_message_shows_the_value_up_to_forty_characters(self, value, shown):
        """A string of up to 40 characters is quoted, a longer one or a non-string by type."""
        error = self._error(value)
        assert error.message == f"unknown usage type {shown}; valid usage types are: {self.VALID}"

    def test_valid_names_are_comma_separated(self):
        """The valid usage types are listed as Register, SignIn, ..."""
        assert "Register, SignIn, ForgotPassword" in self._error("Login").message

    def test_code(self):
        """An unknown usage type has the code UnknownUsageType."""
        assert self._error("Login").code == "UnknownUsageType"

    def test_no_template_lists_the_configured_ones(self):
        """Without the usage type or Generic, the message lists the configured usage types."""
        entries = templates(
            {"usageType": "SignIn", "templateCode": "S"},
            {"usageType": "ForgotPassword", "templateCode": "F"},
        )
        with pytest.raises(TemplateNotFoundError) as info:
            route(entries, "Register", "china")
        assert info.value.message == (
            "no template for usage type Register and no Generic template; "
            "configured: SignIn, ForgotPassword"
        )
