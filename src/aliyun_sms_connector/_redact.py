"""Keeping phone numbers, template values and secrets out of text and tracebacks."""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["REDACTED", "RedactedError", "Redactor", "mask_phone"]

REDACTED = "[redacted]"

# Query parameters whose values are private, as they show in the SDK's URLs.
_PRIVATE_QUERY = re.compile(
    r"(?i)\b(PhoneNumbers?|PhoneNumberJson|TemplateParam|TemplateParamJson|"
    r"AccessKeySecret|SecurityToken|Signature)=[^&\s'\"]*"
)
_PRIVATE_KEYS = frozenset(
    {
        "phonenumbers",
        "phonenumber",
        "phonenumberjson",
        "templateparam",
        "templateparamjson",
        "x-acs-security-token",
        "securitytoken",
        "authorization",
    }
)
# Values shorter than this are replaced only as whole tokens, so that a
# one-digit variable does not blank out every digit of a message.
_SHORT = 4
_MAX_DEPTH = 8


def mask_phone(value: str) -> str:
    """Return ``value`` as ``***`` plus at most its last 4 digits."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) <= _SHORT:
        return "***"
    return "***" + digits[-_SHORT:]


class RedactedError(Exception):
    """Stands in the chain for an exception whose text could not be cleaned."""


class Redactor:
    """Replaces known private values in text and in exception chains.

    Args:
        phones: Every form of the recipient's number that may show up.
        values: Template variable values (a verification code is a secret).
        secrets: Credentials.
    """

    def __init__(
        self,
        *,
        phones: Iterable[str] = (),
        values: Iterable[str] = (),
        secrets: Iterable[str] = (),
    ) -> None:
        needles: dict[str, str] = {}
        for phone in phones:
            self._add(needles, phone, mask_phone(phone))
        for value in (*values, *secrets):
            self._add(needles, value, REDACTED)
        ordered = sorted(needles.items(), key=lambda item: -len(item[0]))
        self._long = [(n, r) for n, r in ordered if len(n) >= _SHORT]
        short = [re.escape(n) for n, _ in ordered if len(n) < _SHORT]
        self._short = (
            re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(short) + r")(?![A-Za-z0-9])")
            if short
            else None
        )
        self._needles = [n for n, _ in ordered]

    @staticmethod
    def _add(needles: dict[str, str], value: str, replacement: str) -> None:
        if not value:
            return
        for form in {value, quote(value, safe=""), quote_plus(value)}:
            needles.setdefault(form, replacement)

    def text(self, text: str) -> str:
        """Return ``text`` with every private value replaced."""
        text = _PRIVATE_QUERY.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
        for needle, replacement in self._long:
            text = text.replace(needle, replacement)
        if self._short is not None:
            text = self._short.sub(REDACTED, text)
        return text

    def leaks(self, text: str) -> bool:
        """Whether ``text`` still holds a private value of length 4 or more."""
        return any(needle in text for needle, _ in self._long)

    def exception(self, exc: BaseException) -> BaseException:
        """Clean ``exc`` and its whole chain in place; return what to chain.

        Links that still show a private value after cleaning (an exception
        whose ``__str__`` reads state that cannot be reached) are cut. When
        ``exc`` itself stays unclean, a :class:`RedactedError` naming its type
        is returned instead.
        """
        seen: set[int] = set()
        if self._clean_exception(exc, seen, 0):
            return exc
        substitute = RedactedError(f"{type(exc).__name__} (its text was withheld: private data)")
        substitute.__suppress_context__ = True
        return substitute

    def _clean_exception(self, exc: BaseException, seen: set[int], depth: int) -> bool:
        if id(exc) in seen:
            return True
        seen.add(id(exc))
        with contextlib.suppress(AttributeError, TypeError):
            exc.args = tuple(self._clean(arg, seen, depth + 1) for arg in exc.args)
        for name, value in list(vars(exc).items()):
            if name.startswith("__"):
                continue
            with contextlib.suppress(AttributeError, TypeError):  # read-only attributes
                setattr(exc, name, self._clean(value, seen, depth + 1, key=name))
        for link in ("__cause__", "__context__"):
            linked = getattr(exc, link)
            if linked is not None and not self._clean_exception(linked, seen, depth + 1):
                setattr(exc, link, None)
        try:
            shown = f"{exc}\n{exc!r}"
        except Exception:  # noqa: BLE001 - a broken __str__ must not break error handling
            return False
        return not self.leaks(shown) and not _PRIVATE_QUERY.search(_unredacted(shown))

    def _clean(self, value: object, seen: set[int], depth: int, key: str = "") -> object:
        if key.lower() in _PRIVATE_KEYS and value is not None:
            return REDACTED
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, BaseException):
            self._clean_exception(value, seen, depth)
            return value
        if isinstance(value, dict):
            return {k: self._clean(v, seen, depth + 1, key=str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean(v, seen, depth + 1) for v in value]
        if type(value) is tuple:
            return tuple(self._clean(v, seen, depth + 1) for v in value)
        # The SDK's request objects keep the query and headers as dicts.
        for attr in ("query", "headers"):
            inner = getattr(value, attr, None)
            if isinstance(inner, dict):
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(value, attr, self._clean(inner, seen, depth + 1))
        return value


def _unredacted(text: str) -> str:
    # Parameters already replaced by REDACTED are fine; anything else is a leak.
    return text.replace(f"={REDACTED}", "")
