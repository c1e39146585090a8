"""Phone numbers: parsing, region detection, and the form Aliyun expects."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from ._errors import InvalidPhoneNumberError
from ._redact import mask_phone

__all__ = ["PhoneNumber", "parse_phone"]

Region = Literal["china", "overseas"]

_CHINA = 86
# Formatting people type between digits; anything else makes the input invalid.
_SEPARATORS = re.compile(r"[\s\-().\u00a0]")
_DIGITS = re.compile(r"[0-9]+")
_MAX_INPUT = 40
# Bounds the work of normalising non-ASCII input (NFKC can expand text).
_MAX_RAW = 4 * _MAX_INPUT
_CN_MOBILE_LENGTH = 11


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
        InvalidPhoneNumberError: The input cannot be parsed or is not a valid
            number. The message shows at most the last 4 digits.
    """
    # Imported on first use: it is a tenth of the package's import time.
    import phonenumbers  # noqa: PLC0415

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
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException:
        raise _invalid(raw, "cannot be parsed") from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(raw, "is not a valid number")
    national = phonenumbers.national_significant_number(number)
    return PhoneNumber(int(number.country_code or 0), national)


def _ascii_forms(raw: str) -> str:
    text = raw.strip()
    if text.isascii():
        return text
    if len(text) > _MAX_RAW:
        raise _invalid(raw, "is empty or too long")
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
    import phonenumbers  # noqa: PLC0415

    # 11 digits starting with 1 are the national number as is (no national
    # prefix to strip), so the number is built directly: parse() was half of
    # the library's per-send overhead. number_type() is UNKNOWN for an invalid
    # number, so it checks validity too.
    number = phonenumbers.PhoneNumber(country_code=_CHINA, national_number=int(digits))
    kind = phonenumbers.number_type(number)
    return kind in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )


def _invalid(raw: str, why: str) -> InvalidPhoneNumberError:
    # from None at the raise sites: phonenumbers' exception texts echo the input.
    return InvalidPhoneNumberError(f"phone number {mask_phone(raw)} {why}")
