"""What kind of number a recipient is, and where: the facts a policy judges by.

Pure: the answers come from phonenumbers' metadata, with no I/O. phonenumbers
is imported on first use, as the connector does, so that importing
``aliyun_sms_connector.verify`` does not load it.

A type is named as phonenumbers' ``PhoneNumberType`` names it, such as
``"MOBILE"`` or ``"PREMIUM_RATE"``. Where a country's numbering plan does not
tell mobiles from fixed lines (the United States and Canada, among others),
phonenumbers says ``"FIXED_LINE_OR_MOBILE"`` for both.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["NUMBER_TYPES", "is_region", "number_type", "region", "type_name"]

# phonenumbers' PhoneNumberType values and names (a test holds them equal);
# written out so that validating a policy does not import phonenumbers.
_NAMES = {
    0: "FIXED_LINE",
    1: "MOBILE",
    2: "FIXED_LINE_OR_MOBILE",
    3: "TOLL_FREE",
    4: "PREMIUM_RATE",
    5: "SHARED_COST",
    6: "VOIP",
    7: "PERSONAL_NUMBER",
    8: "PAGER",
    9: "UAN",
    10: "VOICEMAIL",
    99: "UNKNOWN",
}

NUMBER_TYPES: frozenset[str] = frozenset(_NAMES.values())
"""Every name :func:`number_type` may answer."""

_NOT_E164 = "not a phone number in E.164 form, such as +8613800138000"


def number_type(e164: str) -> str:
    """The type of a number, by phonenumbers' metadata for its region.

    Args:
        e164: The number in E.164 form, such as ``+8613800138000``; a
            :class:`~aliyun_sms_connector.PhoneNumber`'s ``e164``.

    Returns:
        One of :data:`NUMBER_TYPES`: ``"MOBILE"``, ``"FIXED_LINE"``,
        ``"FIXED_LINE_OR_MOBILE"``, ``"TOLL_FREE"``, ``"PREMIUM_RATE"``,
        ``"SHARED_COST"``, ``"VOIP"``, ``"PERSONAL_NUMBER"``, ``"PAGER"``,
        ``"UAN"``, ``"VOICEMAIL"``, or ``"UNKNOWN"`` for a number that fits
        none of its region's patterns.

    Raises:
        ValueError: ``e164`` cannot be parsed as a number with its country
            code. The message does not show it.
    """
    import phonenumbers  # noqa: PLC0415 - loaded on first use

    return _NAMES[phonenumbers.number_type(_parse(e164))]


def region(e164: str) -> str | None:
    """The ISO region code of a number, such as ``"CN"`` or ``"HK"``.

    Args:
        e164: The number in E.164 form, such as ``+85261234567``.

    Returns:
        The region whose numbering plan the number belongs to; ``"001"``
        for a number of no region (such as the international freephone
        ``+800``); None when its country code is shared and none of the
        regions' patterns fits it.

    Raises:
        ValueError: ``e164`` cannot be parsed as a number with its country
            code. The message does not show it.
    """
    import phonenumbers  # noqa: PLC0415 - loaded on first use

    found: str | None = phonenumbers.region_code_for_number(_parse(e164))
    return found


def type_name(value: object) -> str | None:
    """The name in :data:`NUMBER_TYPES` of a type given by name or by value.

    Args:
        value: A name in any case, such as ``"mobile"``, or a
            ``phonenumbers.PhoneNumberType`` value, such as
            ``PhoneNumberType.MOBILE``.

    Returns:
        The upper-case name, or None when ``value`` names no type (a bool is
        no type, though it is an int).
    """
    if isinstance(value, str):
        name = value.strip().upper()
        return name if name in NUMBER_TYPES else None
    if isinstance(value, int) and not isinstance(value, bool):
        return _NAMES.get(value)
    return None


def is_region(code: str) -> bool:
    """Whether phonenumbers knows ``code`` as a region, such as ``"CN"`` (upper case)."""
    import phonenumbers  # noqa: PLC0415 - loaded on first use

    return code in phonenumbers.SUPPORTED_REGIONS


def _parse(e164: str) -> Any:  # phonenumbers has no types
    import phonenumbers  # noqa: PLC0415 - loaded on first use

    if isinstance(e164, str):
        with contextlib.suppress(phonenumbers.NumberParseException):
            return phonenumbers.parse(e164, None)
    # Raised outside any except clause: phonenumbers' error echoes the input.
    raise ValueError(_NOT_E164)
