"""The emulator's number rules: mainland mobiles, international numbers, keys.

A domestic template takes only mainland China mobiles; an international one
takes only valid numbers elsewhere, as digits with the country code.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from typing import TYPE_CHECKING

import phonenumbers

from aliyun_sms_connector._config import TemplateType

from ._gateway import Reject

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ._models import Template

__all__ = ["mainland", "number_key", "numbers_in", "recipient"]

_MAINLAND = re.compile(r"(?:\+86|0086|86)?(1[0-9]{10})")
_DIGITS = re.compile(r"[0-9]{6,16}")


def recipient(number: str, template: Template) -> str:
    """The number a message under ``template`` goes to, or :class:`Reject`."""
    national = mainland(number)
    if template.type is not TemplateType.INTERNATIONAL_MESSAGE:
        # Domestic and international templates do not mix: a domestic
        # template takes only mainland numbers (Hong Kong, Macao and
        # Taiwan are international), as Aliyun's PhoneNumbers format says.
        if national is None:
            raise Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
        return national
    if national is not None:
        raise Reject("isv.DOMESTIC_NUMBER_NOT_SUPPORTED", "国际/港澳台消息模板不支持发送境内号码")
    if not _DIGITS.fullmatch(number) or not _valid_international(number):
        raise Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
    return number


def numbers_in(params: Mapping[str, str]) -> list[str]:
    """The keys of the numbers a request names, in any action's parameters."""
    raw = params.get("PhoneNumbers") or params.get("PhoneNumber") or ""
    numbers = [n for n in raw.split(",") if n.strip()]
    with contextlib.suppress(ValueError, TypeError, RecursionError):
        batch = json.loads(params.get("PhoneNumberJson", "") or "[]")
        if isinstance(batch, list):
            numbers.extend(str(n) for n in batch)
    return [key for key in (number_key(n) for n in numbers) if key]


def number_key(number: str | None) -> str | None:
    """Digits only, with a mainland prefix removed, so +86138… matches 138…."""
    if number is None:
        return None
    digits = "".join(ch for ch in number if ch in "0123456789")
    return mainland(digits) or digits


@functools.lru_cache(maxsize=4096)
def mainland(number: str) -> str | None:
    """The 11-digit national number when ``number`` is a mainland China mobile.

    Cached: a number is looked at for fault scoping, then as the recipient.
    """
    match = _MAINLAND.fullmatch(number)
    if match is None:
        return None
    national = match.group(1)
    # 1 + 10 digits is also how a NANP number looks; only a real CN number is mainland.
    parsed = phonenumbers.parse(national, "CN")
    return national if phonenumbers.is_valid_number(parsed) else None


@functools.lru_cache(maxsize=4096)
def _valid_international(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False
