"""verify._numbers: the type and region of a number, by phonenumbers' metadata."""

from __future__ import annotations

import subprocess
import sys

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType

from aliyun_sms_connector import parse_phone
from aliyun_sms_connector.verify import _numbers

NOT_E164 = "not a phone number in E.164 form, such as +8613800138000"


def example(region: str, kind: str) -> str:
    """phonenumbers' own example number of ``kind`` in ``region``, in E.164 form."""
    number = phonenumbers.example_number_for_type(region, getattr(PhoneNumberType, kind))
    assert number is not None, (region, kind)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Every (region, type) below has an example number of that very type in
# phonenumbers' metadata: each refused-by-default type in at least two regions.
REFUSED_EXAMPLES = [
    ("CN", "FIXED_LINE"),
    ("HK", "FIXED_LINE"),
    ("GB", "FIXED_LINE"),
    ("DE", "FIXED_LINE"),
    ("CN", "TOLL_FREE"),
    ("US", "TOLL_FREE"),
    ("GB", "TOLL_FREE"),
    ("JP", "TOLL_FREE"),
    ("CN", "PREMIUM_RATE"),
    ("US", "PREMIUM_RATE"),
    ("HK", "PREMIUM_RATE"),
    ("GB", "PREMIUM_RATE"),
    ("CN", "SHARED_COST"),
    ("DE", "SHARED_COST"),
    ("FR", "SHARED_COST"),
    ("AU", "SHARED_COST"),
    ("GB", "VOIP"),
    ("FR", "VOIP"),
    ("JP", "VOIP"),
    ("AU", "VOIP"),
    ("US", "PERSONAL_NUMBER"),
    ("HK", "PERSONAL_NUMBER"),
    ("GB", "PERSONAL_NUMBER"),
    ("DE", "PERSONAL_NUMBER"),
    ("HK", "PAGER"),
    ("GB", "PAGER"),
    ("JP", "PAGER"),
    ("AU", "PAGER"),
    ("HK", "UAN"),
    ("GB", "UAN"),
    ("FR", "UAN"),
    ("JP", "UAN"),
    ("DE", "VOICEMAIL"),
]


class TestNumberType:
    """number_type names the type as phonenumbers does, for any valid E.164 number."""

    @pytest.mark.parametrize(("region", "kind"), REFUSED_EXAMPLES)
    def test_example_numbers_of_refused_types(self, region, kind):
        """phonenumbers' example of each type is that type."""
        assert _numbers.number_type(example(region, kind)) == kind

    @pytest.mark.parametrize(
        ("region", "kind"),
        [("CN", "MOBILE"), ("HK", "MOBILE"), ("GB", "MOBILE"), ("US", "FIXED_LINE_OR_MOBILE")],
    )
    def test_example_mobiles(self, region, kind):
        """Mobiles are MOBILE; NANP cannot tell them from fixed lines: FIXED_LINE_OR_MOBILE."""
        assert _numbers.number_type(example(region, "MOBILE")) == kind

    def test_a_us_fixed_line_is_fixed_line_or_mobile(self):
        """In the US a landline is no different from a mobile by its number."""
        assert _numbers.number_type(example("US", "FIXED_LINE")) == "FIXED_LINE_OR_MOBILE"

    @pytest.mark.parametrize(
        ("e164", "kind"),
        [
            ("+8613800138000", "MOBILE"),
            ("+8619912345678", "MOBILE"),
            ("+861012345678", "FIXED_LINE"),
            ("+8616812345", "PREMIUM_RATE"),
            ("+85261234567", "MOBILE"),
            ("+447400123456", "MOBILE"),
            ("+14155550100", "FIXED_LINE_OR_MOBILE"),
            ("+80012345678", "TOLL_FREE"),
            ("+8612345", "UNKNOWN"),
            ("+19999999999", "UNKNOWN"),
        ],
    )
    def test_known_numbers(self, e164, kind):
        """Mainland mobiles, a Beijing landline, +86 premium rate, non-geographic freephone."""
        assert _numbers.number_type(e164) == kind

    @pytest.mark.parametrize("raw", ["+861012345678", "861012345678", "+8616812345"])
    def test_non_mobiles_parse_phone_accepts(self, raw):
        """parse_phone accepts +86 non-mobiles; their type tells them apart."""
        assert _numbers.number_type(parse_phone(raw).e164) != "MOBILE"

    def test_answers_are_names_of_number_types(self):
        """Every answer over a spread of examples is one of NUMBER_TYPES."""
        answers = {_numbers.number_type(example(region, kind)) for region, kind in REFUSED_EXAMPLES}
        assert answers <= _numbers.NUMBER_TYPES
        assert answers == {kind for _, kind in REFUSED_EXAMPLES}


class TestRegion:
    """region is the ISO region of a number, as phonenumbers finds it."""

    @pytest.mark.parametrize(
        ("e164", "code"),
        [
            ("+8613800138000", "CN"),
            ("+85261234567", "HK"),
            ("+85366123456", "MO"),
            ("+886912345678", "TW"),
            ("+447400123456", "GB"),
            ("+14155550100", "US"),
            ("+16135550123", "CA"),
            ("+80012345678", "001"),
            ("+19999999999", None),
        ],
    )
    def test_region(self, e164, code):
        """Shared country codes are told apart; non-geographic is 001; a misfit None."""
        assert _numbers.region(e164) == code


class TestNotE164:
    """Input that is no number with its country code is a ValueError that shows nothing."""

    @pytest.mark.parametrize("function", [_numbers.number_type, _numbers.region])
    @pytest.mark.parametrize(
        "raw", ["", "13800138000", "+", "+999123", "secret-13800138000x", None, 8613800138000]
    )
    def test_refused(self, function, raw):
        """No country code, an unknown one, no digits or no string: refused, not echoed."""
        with pytest.raises(ValueError) as caught:
            function(raw)
        assert str(caught.value) == NOT_E164
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None


class TestTypeNames:
    """Types are named by phonenumbers' names, and may be given by value."""

    def test_the_names_are_phonenumbers_names(self):
        """NUMBER_TYPES holds the name of every PhoneNumberType value, and nothing else."""
        names = {PhoneNumberType.to_string(value) for value in PhoneNumberType.values()}
        assert names == _numbers.NUMBER_TYPES
        assert len(_numbers.NUMBER_TYPES) == 12

    @pytest.mark.parametrize("value", PhoneNumberType.values())
    def test_each_value_has_its_name(self, value):
        """type_name maps each PhoneNumberType value to phonenumbers' name for it."""
        assert _numbers.type_name(value) == PhoneNumberType.to_string(value)

    @pytest.mark.parametrize(
        ("value", "name"),
        [
            ("MOBILE", "MOBILE"),
            ("mobile", "MOBILE"),
            (" Fixed_Line_Or_Mobile ", "FIXED_LINE_OR_MOBILE"),
            ("voicemail", "VOICEMAIL"),
            ("unknown", "UNKNOWN"),
            (PhoneNumberType.PREMIUM_RATE, "PREMIUM_RATE"),
        ],
    )
    def test_names_in_any_case(self, value, name):
        """A name in any case, padded or not, is its upper-case name."""
        assert _numbers.type_name(value) == name

    @pytest.mark.parametrize(
        "value", ["CELL", "", "MOBILE,VOIP", "FIXED LINE", 11, -1, 98, 100, True, False, 1.0, None]
    )
    def test_unknown(self, value):
        """Other names, other ints, bools, floats and None name no type."""
        assert _numbers.type_name(value) is None


class TestIsRegion:
    """is_region answers by phonenumbers' supported regions."""

    @pytest.mark.parametrize("code", ["CN", "HK", "MO", "TW", "US", "GB", "XK"])
    def test_known(self, code):
        """Regions phonenumbers has metadata for."""
        assert _numbers.is_region(code)

    @pytest.mark.parametrize("code", ["ZZ", "AQ", "001", "cn", "EU", "UK", ""])
    def test_unknown(self, code):
        """User-assigned, non-geographic, lower-case and non-ISO codes are not regions."""
        assert not _numbers.is_region(code)


def test_importing_verify_does_not_load_phonenumbers():
    """phonenumbers is loaded on first use, not when the verify package is imported."""
    script = "import sys, aliyun_sms_connector.verify; print('phonenumbers' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
