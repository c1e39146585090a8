"""What kind of number a number is: its region and phonenumbers' number type (placeholder)."""

from __future__ import annotations

import phonenumbers

__all__ = ["number_type", "region"]

_NAMES = {
    value: name
    for name, value in vars(phonenumbers.PhoneNumberType).items()
    if name.isupper() and isinstance(value, int)
}


def number_type(e164: str) -> str:
    """Phonenumbers' type name of a valid E.164 number, such as ``"MOBILE"``."""
    return _NAMES[phonenumbers.number_type(phonenumbers.parse(e164, None))]


def region(e164: str) -> str | None:
    """The ISO region of a valid E.164 number, such as ``"CN"``."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
