import random
from types import SimpleNamespace

import phonenumbers
import pytest
from phonenumbers import phonenumberutil

from aliyun_sms_connector import InvalidPhoneNumberError, PhoneNumber, _phone, parse_phone
from aliyun_sms_connector._phone import _EARLIER_TYPES, _Mainland, _mainland


class TestNonStrict:
    @pytest.mark.parametrize(
        ("raw", "sent", "region"),
        [
            ("+8613800138000", "13800138000", "china"),
            ("8613800138000", "13800138000", "china"),
            ("008613800138000", "13800138000", "china"),
            ("13800138000", "13800138000", "china"),
            ("+86 138-0013-8000", "13800138000", "china"),
            (" 138 0013 8000 ", "13800138000", "china"),
            ("+1 415 555 0100", "14155550100", "overseas"),
            ("14155550100", "14155550100", "overseas"),
            ("85261234567", "85261234567", "overseas"),
            ("+852 6123 4567", "85261234567", "overseas"),
            ("85366123456", "85366123456", "overseas"),
            ("886912345678", "886912345678", "overseas"),
            ("+44 7400 123456", "447400123456", "overseas"),
            ("0044 7400 123456", "447400123456", "overseas"),
            ("+39 06 1234 5678", "390612345678", "overseas"),
        ],
    )
    def test_accepted_inputs(self, raw, sent, region):
        """Each accepted form gives Aliyun's PhoneNumbers form and the right region."""
        number = parse_phone(raw)
        assert number.aliyun == sent
        assert number.region == region

    def test_us_number_is_not_mainland(self):
        """14155550100 is a US number, not a China one (Logto issue 7050)."""
        number = parse_phone("14155550100")
        assert (number.country_code, number.region) == (1, "overseas")

    def test_bare_eleven_digits_that_are_no_cn_mobile_read_as_country_code(self):
        """11 digits starting with 1 but not a CN mobile are country code plus number."""
        number = parse_phone("12025550143")
        assert number.country_code == 1
        assert number.e164 == "+12025550143"


def fullwidth(text: str) -> str:
    """text as a Chinese keyboard types it: fullwidth ASCII and the ideographic space."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


class TestFullwidth:
    @pytest.mark.parametrize(
        ("raw", "sent"),
        [
            (fullwidth("13800138000"), "13800138000"),
            (fullwidth("+86 138-0013-8000"), "13800138000"),
            (fullwidth("(+86)13800138000"), "13800138000"),
            (fullwidth("008613800138000"), "13800138000"),
            (fullwidth("+1 415 555 0100"), "14155550100"),
            (fullwidth("14155550100"), "14155550100"),
            ("+86 " + fullwidth("138") + "0013" + fullwidth("8000"), "13800138000"),
        ],
    )
    def test_normalised_then_parsed(self, raw, sent):
        """Fullwidth digits, plus, dashes and spaces, as a Chinese keyboard types them, are read."""
        assert raw.isascii() is False
        assert parse_phone(raw).aliyun == sent

    def test_strict_mode_still_needs_the_country_code(self):
        """Normalising does not relax strict mode."""
        assert parse_phone(fullwidth("+8613800138000"), strict=True).aliyun == "13800138000"
        with pytest.raises(InvalidPhoneNumberError):
            parse_phone(fullwidth("13800138000"), strict=True)

    @pytest.mark.parametrize(
        "raw",
        [
            fullwidth("1380013800a"),
            fullwidth("1" * 200),
            fullwidth("13800138000") + "\n" + fullwidth("1"),
            "\u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660",
        ],
    )
    def test_guards_still_hold(self, raw):
        """Letters, overlong input, newlines and non-ASCII digit sets are still rejected."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.__cause__ is None


class TestStrict:
    @pytest.mark.parametrize(
        ("raw", "sent"),
        [
            ("+8613800138000", "13800138000"),
            ("8613800138000", "13800138000"),
            ("008613800138000", "13800138000"),
            ("+1 415 555 0100", "14155550100"),
            ("14155550100", "14155550100"),
            ("85261234567", "85261234567"),
        ],
    )
    def test_numbers_with_country_code(self, raw, sent):
        """Strict mode accepts numbers that carry their country code."""
        assert parse_phone(raw, strict=True).aliyun == sent

    def test_bare_mainland_number_is_never_assumed(self):
        """13800138000 without 86 is rejected in strict mode."""
        with pytest.raises(InvalidPhoneNumberError):
            parse_phone("13800138000", strict=True)


class TestInvalid:
    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "   ",
            "+",
            "abc",
            "1380013800a",
            "+86 138",
            "12345",
            "+999 1234567",
            "1" * 60,
            "+86\u0661\u0663\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660",
            "13800138000\n1",
        ],
    )
    def test_rejected(self, raw):
        """Unparseable or invalid numbers raise InvalidPhoneNumberError."""
        with pytest.raises(InvalidPhoneNumberError):
            parse_phone(raw)

    @pytest.mark.parametrize("raw", ["17951002828", "11853008385"])
    def test_carrier_prefix_lookalikes(self, raw):
        """11 digits that phonenumbers' CN parser raises on (17951 is an IP-dialling prefix)."""
        with pytest.raises(InvalidPhoneNumberError):
            parse_phone(raw)

    def test_eleven_digits_that_are_a_valid_nanp_number(self):
        """12062345678 is no CN mobile, but a valid +1 number."""
        # Seattle's 206, valid in the metadata of every phonenumbers release
        # pyproject allows. (12576005096 was used before: +1 257 entered
        # phonenumbers' metadata only in 9.0.6, so which numbers are valid
        # depends on how new the installed release is, not on this package.)
        assert parse_phone("12062345678").region == "overseas"

    @pytest.mark.parametrize("raw", [None, 13800138000, b"13800138000"])
    def test_not_a_string(self, raw):
        """Non-string input is a typed error, not a TypeError."""
        with pytest.raises(InvalidPhoneNumberError, match="must be a string"):
            parse_phone(raw)

    def test_error_is_a_value_error(self):
        """InvalidPhoneNumberError is also a ValueError."""
        with pytest.raises(ValueError, match="phone number"):
            parse_phone("+999 1234567")

    def test_error_shows_only_last_four_digits(self):
        """The message never shows more than the last 4 digits."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone("+86 1380013", strict=True)
        assert "1380013" not in str(info.value)
        assert "***0013" in str(info.value)
        assert info.value.__cause__ is None


class TestPhoneNumber:
    def test_repr_and_str_are_masked(self):
        """repr and str of a number show only its last 4 digits."""
        number = parse_phone("+8613800138000")
        for text in (repr(number), str(number)):
            assert "13800138000" not in text
            assert "8000" in text

    def test_forms(self):
        """e164, aliyun and masked forms."""
        number = PhoneNumber(852, "61234567")
        assert number.e164 == "+85261234567"
        assert number.aliyun == "85261234567"
        assert number.masked == "***4567"


class TestRejectionReasons:
    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("", "is empty or too long"),
            ("   ", "is empty or too long"),
            ("x8613800138000", "may hold only digits, spaces, dashes and a leading + or 00"),
            ("+x8613800138000", "may hold only digits, spaces, dashes and a leading + or 00"),
            ("+999 1234567", "cannot be parsed"),
            ("+86 138", "is not a valid number"),
        ],
    )
    def test_message_says_why(self, raw, reason):
        """The error names the reason a number was rejected, after the masked number."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.message.endswith(f" {reason}")

    @pytest.mark.parametrize(("raw", "kind"), [(None, "NoneType"), (13800138000, "int")])
    def test_not_a_string_names_the_type(self, raw, kind):
        """A non-string input's error names the type that was given."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.message == f"a phone number must be a string, not {kind}"


class TestInputLengthCaps:
    def test_forty_characters_are_parsed(self):
        """40 characters once separators are gone are parsed, not refused as too long."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone("+" + "1" * 39)
        assert info.value.message.endswith(" cannot be parsed")

    @pytest.mark.parametrize("raw", ["+" + "1" * 40, "1" * 41])
    def test_forty_one_characters_are_too_long(self, raw):
        """41 characters once separators are gone are refused before any parsing."""
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.message.endswith(" is empty or too long")

    def test_sixty_four_characters_are_read(self):
        """A number padded with spaces to 64 characters, the most a ``to`` may hold, is read."""
        raw = "138" + " " * 53 + "00138000"
        assert len(raw) == 64
        assert parse_phone(raw).aliyun == "13800138000"

    def test_non_ascii_input_of_64_characters_is_normalised(self):
        """A fullwidth number padded with ideographic spaces to 64 characters is read."""
        raw = fullwidth("138") + "\u3000" * 53 + fullwidth("00138000")
        assert len(raw) == 64
        assert parse_phone(raw).aliyun == "13800138000"

    @pytest.mark.parametrize(
        "raw",
        [
            "138" + " " * 54 + "00138000",
            fullwidth("138") + "\u3000" * 54 + fullwidth("00138000"),
            " " * 65,
        ],
        ids=["spaces", "fullwidth", "blank"],
    )
    def test_sixty_five_characters_are_too_long(self, raw):
        """One character more than 64 is refused, though the separators would go."""
        assert len(raw) == 65
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.message == "phone number is longer than 64 characters"


TEN_MB = 10 * 1024 * 1024


class TestHugeInput:
    """A ``to`` of any size is refused for its length before any other work."""

    @pytest.mark.parametrize(
        "raw",
        [
            "-" * TEN_MB + "13800138000",
            " " * TEN_MB + "+8613800138000",
            "13800138000" + "\u3000" * TEN_MB,
            fullwidth("13800138000") * (TEN_MB // 11),
        ],
        ids=["dashes", "spaces", "ideographic-spaces", "fullwidth-digits"],
    )
    def test_ten_megabytes_are_refused(self, raw, mocker):
        """10 MB of separators around a number are refused, unnormalised and unmasked."""
        normalize = mocker.spy(_phone.unicodedata, "normalize")
        mask = mocker.spy(_phone, "mask_phone")
        with pytest.raises(InvalidPhoneNumberError) as info:
            parse_phone(raw)
        assert info.value.message == "phone number is longer than 64 characters"
        assert info.value.__cause__ is None
        assert normalize.call_count == 0
        assert mask.call_count == 0

    @pytest.mark.parametrize("raw", [None, 13800138000, b"1" * 100])
    def test_a_non_string_is_still_refused_for_its_type(self, raw):
        """The type is checked first: a long bytes value is refused as not a string."""
        with pytest.raises(InvalidPhoneNumberError, match="must be a string"):
            parse_phone(raw)


OK_TYPES = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def reference(raw: str) -> tuple[int, str] | None:
    """What parse_phone answered when phonenumbers did all the work: (code, national) or None."""
    compact = raw[2:] if raw.startswith("00") else raw.removeprefix("+")
    if not raw.startswith(("+", "00")):
        national = phonenumbers.PhoneNumber(country_code=86, national_number=int(compact))
        if len(compact) == 11 and phonenumbers.number_type(national) in OK_TYPES:
            return 86, compact
    try:
        number = phonenumbers.parse("+" + compact, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return number.country_code, phonenumbers.national_significant_number(number)


def answer(raw: str) -> tuple[int, str] | None:
    try:
        number = parse_phone(raw)
    except InvalidPhoneNumberError:
        return None
    return number.country_code, number.national_number


def spread() -> list[str]:
    """11 digits starting with 1: every 4-digit prefix, each with 12 tails."""
    rng = random.Random(20261125)  # noqa: S311 - a fixed spread of test numbers
    return [f"1{prefix:03d}{rng.randrange(10**7):07d}" for prefix in range(1000) for _ in range(12)]


class TestMainlandShortcut:
    """Bare and +86 mainland numbers skip phonenumbers' parse; the answers must not change."""

    def test_bare_eleven_digits_answer_as_phonenumbers_does(self):
        """12,000 numbers over every 4-digit prefix: the same number, or the same refusal."""
        numbers = spread()
        answers = [(answer(digits), reference(digits)) for digits in numbers]
        assert [pair for pair in answers if pair[0] != pair[1]] == []
        # Both kinds were tried: mainland mobiles, and 11 digits that are not.
        kinds = {got[0] if got else None for got, _ in answers}
        assert kinds == {86, 1, None}

    @pytest.mark.parametrize("form", ["+86{}", "0086{}", "86{}", "+86 {}"])
    def test_plus_86_answers_as_phonenumbers_does(self, form):
        """+86 and its spellings give the number phonenumbers' parse() gives, or its refusal."""
        for digits in spread()[::3]:
            assert answer(form.format(digits)) == reference("+86" + digits), digits

    @pytest.mark.parametrize(
        "raw",
        [
            "+8613800138000",
            "+86 138 0013 8000",
            "008613800138000",
            "8613800138000",
            "13800138000",
            " 138-0013-8000 ",
            "\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10",
        ],
    )
    def test_mainland_mobiles_need_no_phonenumbers_call(self, raw, monkeypatch):
        """The shortcut is taken: phonenumbers' parse and number_type are never asked."""

        def refuse(*args, **kwargs):
            raise AssertionError("phonenumbers was asked")

        for name in ("parse", "number_type", "is_valid_number"):
            monkeypatch.setattr(phonenumbers, name, refuse)
        assert parse_phone(raw) == PhoneNumber(86, "13800138000")

    @pytest.mark.parametrize(
        "raw",
        [
            "+1213800138000",
            "+4413800138000",
            "+8513800138000",
            "+86013800138000",
            "+861380013800",
            "+86138001380000",
            "+8610012345678",
        ],
    )
    def test_near_misses_answer_as_phonenumbers_does(self, raw):
        """Lengths and prefixes next to +86 plus a mobile: phonenumbers' answer, shortcut or not."""
        assert answer(raw) == reference(raw)

    def test_digits_of_other_scripts_are_no_mainland_mobile(self):
        """13 and Arabic-Indic digits: refused, though the patterns' \\d matches them."""
        with pytest.raises(InvalidPhoneNumberError):
            parse_phone("13" + "\u0668\u0660\u0660\u0661\u0663\u0668\u0660\u0660\u0660")

    @pytest.mark.parametrize("raw", ["+8611234567890", "+8612912345678", "+8617951002828"])
    def test_carrier_prefixes_still_go_through_phonenumbers(self, raw):
        """Where CN's national prefix pattern matches, parse() may strip it: no shortcut."""
        assert not _mainland().keeps_as_is(raw[3:])
        assert answer(raw) == reference(raw)


CODES = phonenumbers.COUNTRY_CODE_TO_REGION_CODE


def desc(pattern: str | None, lengths: tuple[int, ...] = ()) -> SimpleNamespace:
    return SimpleNamespace(national_number_pattern=pattern, possible_length=lengths)


def metadata(**overrides: object) -> SimpleNamespace:
    fields: dict[str, object] = dict.fromkeys(_EARLIER_TYPES)
    fields.update(
        general_desc=desc(r"1\d{10}"),
        fixed_line=desc(r"10\d{9}"),
        mobile=desc(r"1[3-9]\d{9}", (11,)),
        same_mobile_and_fixed_line_pattern=False,
        national_prefix_for_parsing="0",
    )
    fields.update(overrides)
    return SimpleNamespace(**fields)


class TestMainlandRules:
    """The compiled rules against phonenumbers' own _number_type_helper, on made-up metadata."""

    DIGITS = ("13800138000", "10012345678", "11012345678", "16012345678", "19999999999")

    @pytest.mark.parametrize(
        "overrides",
        [
            {},
            {"same_mobile_and_fixed_line_pattern": True},
            {"same_mobile_and_fixed_line_pattern": True, "fixed_line": None},
            {"premium_rate": desc(r"160\d{8}")},
            {"premium_rate": desc(r"160\d{8}"), "uan": desc(r"138\d{8}", (11,))},
            {"voicemail": desc(r"1\d{10}", (8, 12))},
            {"toll_free": desc("")},
            {"pager": desc(None)},
            {"mobile": desc(r"1[3-9]\d{9}", (10, 12))},
            {"mobile": desc(r"1\d{10}|10\d{8}", ())},
            {"mobile": None},
            {"mobile": desc("")},
            {"general_desc": None},
            {"general_desc": desc(r"13\d{9}")},
            {"general_desc": desc(r"1\d{10}", (10,))},
        ],
    )
    def test_same_answer_as_phonenumbers(self, overrides):
        """MOBILE or FIXED_LINE_OR_MOBILE exactly when phonenumbers says so."""
        meta = metadata(**overrides)
        rules = _Mainland(meta, CODES)
        for digits in self.DIGITS:
            expected = phonenumberutil._number_type_helper(digits, meta) in OK_TYPES
            assert rules.is_mobile(digits) is expected, digits

    def test_national_prefix_is_matched_at_the_start_only(self):
        """Digits are kept as they are unless the prefix pattern matches at their start."""
        cn_prefix = r"(1(?:[12]\d|79)\d\d)|0"
        rules = _Mainland(metadata(national_prefix_for_parsing=cn_prefix), CODES)
        assert rules.keeps_as_is("13800138000")
        assert rules.keeps_as_is("13811000000")
        assert not rules.keeps_as_is("11800138000")
        assert not rules.keeps_as_is("17951002828")

    @pytest.mark.parametrize("prefix", [None, ""])
    def test_no_national_prefix_keeps_the_digits(self, prefix):
        rules = _Mainland(metadata(national_prefix_for_parsing=prefix), CODES)
        assert rules.keeps_as_is("11800138000")

    def test_a_calling_code_8_would_end_the_shortcut(self):
        """ "+86…" is +86 only while no calling code is "8"."""
        rules = _Mainland(metadata(national_prefix_for_parsing=None), {**CODES, 8: ["XX"]})
        assert not rules.keeps_as_is("13800138000")

    def test_the_rules_are_built_once(self):
        assert _mainland() is _mainland()


class TestMainlandMobile:
    """parse_mainland_mobile: the Message Authentication Service's rule."""

    @pytest.mark.parametrize(
        "raw",
        ["13800138000", "+8613800138000", "008613800138000", "8613800138000", "+86 138 0013 8000"],
    )
    def test_accepted(self, raw):
        """Every form of a mainland mobile gives the 11-digit national number."""
        phone = _phone.parse_mainland_mobile(raw)
        assert (phone.country_code, phone.national_number) == (86, "13800138000")

    @pytest.mark.parametrize(
        "raw",
        ["+85291234567", "+85366123456", "+886912345678", "+861065529988", "+14155550100", "12"],
        ids=["hong-kong", "macao", "taiwan", "beijing-landline", "us", "short"],
    )
    def test_refused(self, raw):
        """Anything else is InvalidPhoneNumberError, showing at most 4 digits."""
        with pytest.raises(InvalidPhoneNumberError) as caught:
            _phone.parse_mainland_mobile(raw)
        assert raw.lstrip("+") not in str(caught.value)

    def test_landline_is_valid_for_sms(self):
        """The same landline is a valid number for the SMS connector: the rule is MAS's own."""
        assert parse_phone("+861065529988").region == "china"
