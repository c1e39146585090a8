"""Phone numbers: parsing, region detection, and the form Aliyun expects."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ._errors import InvalidPhoneNumberError
from ._redact import mask_phone

if TYPE_CHECKING:
    from collections.abc import Container

__all__ = ["PhoneNumber", "parse_mainland_mobile", "parse_phone"]

Region = Literal["china", "overseas"]

_CHINA = 86
# Formatting people type between digits; anything else makes the input invalid.
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")
_DIGITS = re.compile(r"[0-9]+")
_MAX_INPUT = 40
# The most a ``to`` may hold as given, separators and all. It is checked before
# anything else looks at the text, so that 10 MB of input costs no more than
# 64 characters: stripping, NFKC and masking all walk the whole string.
_MAX_RAW = 64
_CN_MOBILE_LENGTH = 11
_CN_E164_LENGTH = len("+86") + _CN_MOBILE_LENGTH


@dataclass(frozen=True)
class PhoneNumber:
    """A validated recipient number.

    Attributes:
        country_code: The calling code, such as 86 or 1.
        national_number: The national significant number, digits only.
    """

    country_code: int
    national_number: str

    @property
    def region(self) -> Region:
        """``"china"`` for mainland China (+86), else ``"overseas"``."""
        return "china" if self.country_code == _CHINA else "overseas"

    @property
    def aliyun(self) -> str:
        """The number as Aliyun's ``PhoneNumbers`` wants it.

        Mainland China: the 11-digit national number. Everywhere else: country
        code plus national number, digits only, with no ``+`` or ``00``.
        """
        if self.country_code == _CHINA:
            return self.national_number
        return f"{self.country_code}{self.national_number}"

    @property
    def e164(self) -> str:
        """The number in E.164 form, such as ``+8613800138000``."""
        return f"+{self.country_code}{self.national_number}"

    @property
    def masked(self) -> str:
        """The number with all but its last 4 digits hidden."""
        return mask_phone(self.national_number)

    def __repr__(self) -> str:
        return f"PhoneNumber({self.masked!r}, region={self.region!r})"

    __str__ = __repr__


def parse_phone(raw: str, *, strict: bool = False) -> PhoneNumber:
    """Parse and validate a recipient number.

    Args:
        raw: The number as given: ``+8613800138000``, ``0086…``, ``86…``,
            ``13800138000``, ``+1 415 555 0100``, ``14155550100``, …
        strict: Logto's ``strictPhoneRegionNumberCheck``. When true the input
            must carry its country code and a bare mainland number is never
            assumed.

    Raises:
        InvalidPhoneNumberError: The input is not a string, is longer than 64
            characters, cannot be parsed or is not a valid number. The message
            shows at most the last 4 digits.
    """
    if not isinstance(raw, str):
        raise InvalidPhoneNumberError(f"a phone number must be a string, not {type(raw).__name__}")
    text = _ascii_forms(raw)
    compact = _SEPARATORS.sub("", text)
    if not compact or len(compact) > _MAX_INPUT:
        raise _invalid(raw, "is empty or too long")
    if compact.startswith("+"):
        candidate = compact
    elif compact.startswith("00"):
        candidate = "+" + compact[2:]
    else:
        candidate = "+" + compact
        if not strict and _is_bare_china_mobile(compact):
            return PhoneNumber(_CHINA, compact)
    if not _DIGITS.fullmatch(candidate[1:]):
        raise _invalid(raw, "may hold only digits, spaces, dashes and a leading + or 00")
    mainland = _plus_86(candidate)
    if mainland is not None:
        return PhoneNumber(_CHINA, mainland)
    # Imported on first use: it is a tenth of the package's import time.
    import phonenumbers  # noqa: PLC0415

    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        raise _invalid(raw, "cannot be parsed") from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(raw, "is not a valid number")
    national = phonenumbers.national_significant_number(number)
    return PhoneNumber(int(number.country_code or 0), national)


def parse_mainland_mobile(raw: str) -> PhoneNumber:
    """Parse a number that must be a mainland China mobile, in any form :func:`parse_phone` takes.

    ``+8613800138000``, ``008613800138000``, ``8613800138000`` and the bare
    ``13800138000`` are accepted; Hong Kong, Macao, Taiwan, a landline or
    any other country's number is refused.

    Raises:
        InvalidPhoneNumberError: The number is not a mainland mobile. The
            message shows at most the last 4 digits.
    """
    phone = parse_phone(raw)
    if phone.country_code != _CHINA or not _mainland().is_mobile(phone.national_number):
        raise _invalid(raw, "is not a mainland China mobile number")
    return phone


def _ascii_forms(raw: str) -> str:
    if len(raw) > _MAX_RAW:
        # No digit of it is shown: masking would walk the whole input.
        raise InvalidPhoneNumberError(f"phone number is longer than {_MAX_RAW} characters")
    text = raw.strip()
    if text.isascii():
        return text
    # A Chinese keyboard types fullwidth digits, plus signs and dashes, and an
    # ideographic space; NFKC maps each to its ASCII form. Other scripts' digits
    # stay as they are, and are rejected below.
    return unicodedata.normalize("NFKC", text)


def _is_bare_china_mobile(digits: str) -> bool:
    # Logto treats any 11 digits as mainland; only a real CN mobile is, so that
    # 14155550100 (US) is not sent with the China template (Logto issue 7050).
    if (
        len(digits) != _CN_MOBILE_LENGTH
        or not digits.startswith("1")
        or not _DIGITS.fullmatch(digits)
    ):
        return False
    return _mainland().is_mobile(digits)


def _plus_86(candidate: str) -> str | None:
    """The 11 digits of ``+86`` plus a mainland mobile, which parse() would keep as they are."""
    if len(candidate) != _CN_E164_LENGTH or not candidate.startswith("+861"):
        return None
    digits = candidate[3:]
    rules = _mainland()
    if rules.keeps_as_is(digits) and rules.is_mobile(digits):
        return digits
    return None


class _Mainland:
    """phonenumbers' own answers for 11 digits of +86, without its per-call layers.

    ``number_type()`` looks the region up, and compiles and tries up to eleven
    patterns of the metadata on every call: the larger part of a verification
    check's CPU. Here the patterns that can match 11 digits are compiled once,
    and the same rules are applied to them (``_number_type_helper`` and
    ``_maybe_strip_national_prefix_carrier_code`` in phonenumberutil.py); a
    test compares the answers with phonenumbers' on every mobile prefix.
    """

    __slots__ = ("_general", "_kind", "_others", "_prefix", "_unique_code")

    def __init__(self, metadata: Any, calling_codes: Container[int]) -> None:
        def pattern(name: str) -> re.Pattern[str] | None:
            desc = getattr(metadata, name)
            if desc is None or not desc.national_number_pattern:
                return None
            if desc.possible_length and _CN_MOBILE_LENGTH not in desc.possible_length:
                return None
            return re.compile(desc.national_number_pattern)

        self._general = pattern("general_desc")
        # A type that number_type() tries before fixed line and mobile makes
        # the number that type instead.
        # (With none, the empty pattern: it never matches 11 digits whole.)
        earlier = [p.pattern for p in map(pattern, _EARLIER_TYPES) if p is not None]
        self._others = re.compile("|".join(f"(?:{p})" for p in earlier))
        # MOBILE or FIXED_LINE_OR_MOBILE: when the two share one pattern,
        # number_type() answers FIXED_LINE_OR_MOBILE for a fixed-line match;
        # otherwise a mobile match is one, whether or not fixed line matches too.
        same = metadata.same_mobile_and_fixed_line_pattern
        self._kind = pattern("fixed_line" if same else "mobile")
        prefix = metadata.national_prefix_for_parsing
        self._prefix = re.compile(prefix) if prefix else None
        # "+86…" is country code 86 only while no calling code is "8".
        self._unique_code = _EIGHT not in calling_codes

    def is_mobile(self, digits: str) -> bool:
        """Whether ``number_type()`` calls +86 ``digits`` MOBILE or FIXED_LINE_OR_MOBILE."""
        general, others, kind = self._general, self._others, self._kind
        return (
            general is not None
            and kind is not None
            and general.fullmatch(digits) is not None
            and others.fullmatch(digits) is None
            and kind.fullmatch(digits) is not None
        )

    def keeps_as_is(self, digits: str) -> bool:
        """Whether ``parse("+86" + digits)`` keeps ``digits`` whole as the national number."""
        # A national prefix is stripped only where its pattern matches at the start.
        return self._unique_code and (self._prefix is None or self._prefix.match(digits) is None)


_EARLIER_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)
# The calling code that would make "+86…" ambiguous; no country has it.
_EIGHT = 8
_MAINLAND: list[_Mainland] = []


def _mainland() -> _Mainland:
    if not _MAINLAND:
        import phonenumbers  # noqa: PLC0415

        metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
        _MAINLAND.append(_Mainland(metadata, phonenumbers.COUNTRY_CODE_TO_REGION_CODE))
    return _MAINLAND[0]


def _invalid(raw: str, why: str) -> InvalidPhoneNumberError:
    # from None at the raise sites: phonenumbers' exception texts echo the input.
    return InvalidPhoneNumberError(f"phone number {mask_phone(raw)} {why}")
