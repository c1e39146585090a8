"""Keeping phone numbers, template values and secrets out of text and exception chains.

A private value can show up in many encodings: raw in a message, percent-encoded
once in a URL, twice in the string to sign that Aliyun echoes after a failed
signature check, JSON-escaped in a ``TemplateParam``, or ``repr``-escaped in an
exception's args. :class:`Redactor` knows every one of those forms of every
value it was given, and replaces the longest first, so that a value found inside
another (a code ``8000`` inside a number ``13800138000``) never leaves the rest
of the longer one visible.

Exceptions are never cleaned in place for the caller to see: :meth:`Redactor.stand_in`
builds a chain of :class:`RedactedError` that holds only each original's type
name and scrubbed text. No traceback frame, argument or attribute of the
original is reachable from it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["REDACTED", "RedactedError", "Redactor", "encoded_forms", "mask_phone"]

REDACTED = "[redacted]"
WITHHELD = "(its text was withheld: private data)"

# Parameter names whose values are private wherever they show: in a query
# (``=``), in a percent-encoded query (``%3D``, ``%253D`` in a string to sign),
# or as a JSON / dict-repr key.
_NAMES = (
    r"PhoneNumbers?|PhoneNumberJson|TemplateParam|TemplateParamJson|VerifyCode|"
    r"AccessKeySecret|SecurityToken|Signature|x-acs-security-token"
)
_PRIVATE_QUERY = re.compile(rf"(?i)(?<![A-Za-z])({_NAMES})(=|%3D|%253D)(?:(?!%26|%2526)[^&\s'\"])*")
# One unambiguous branch per quote character: no backtracking blow-up on
# a run of backslashes without a closing quote.
_PRIVATE_KEYED = re.compile(
    rf"""(?i)(["'](?:{_NAMES})["']\s*:\s*)(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)
# Values shorter than this are replaced only as whole tokens, so that a
# one-digit variable does not blank out every digit of a message. A token
# boundary is anything but a letter or digit, and also the end of a
# percent-escape (``%22`` once, ``%2522`` twice encoded) or a JSON ``\\uXXXX``
# escape: there the letters and digits belong to the escape, not the value.
_SHORT = 4
_BEFORE = (
    r"(?:(?<![A-Za-z0-9])|(?<=%[0-9A-Fa-f]{2})|(?<=%25[0-9A-Fa-f]{2})"
    r"|(?<=\\u[0-9A-Fa-f]{4}))"
)
_AFTER = r"(?![A-Za-z0-9])"
# How many links of an exception chain a stand-in keeps.
_MAX_DEPTH = 8
# Private-use characters mark replaced spans while the other needles are
# searched, so that no needle can match inside a replacement.
_MARK = "\ue000"

_E = TypeVar("_E", bound=BaseException)


def mask_phone(value: str) -> str:
    """Return ``value`` as ``***`` plus at most its last 4 digits."""
    digits = "".join(ch for ch in value if ch.isdigit())
    if len(digits) <= _SHORT:
        return "***"
    return "***" + digits[-_SHORT:]


def _percent_forms(value: str) -> set[str]:
    # "~" is never quoted by Python 3.7+, so quote(v, safe="~") == quote(v, safe="").
    return {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")}


def _anchor(value: str) -> str | None:
    """The longest run of ASCII letters and digits: every encoded form keeps it whole.

    None when there is none worth testing, or when the value holds a ``%``
    (its lower-cased escape forms would change the run).
    """
    if "%" in value:
        return None
    best = max(re.findall(r"[A-Za-z0-9]+", value), key=len, default="")
    return best if len(best) >= _SHORT - 1 else None


def _lower_escapes(value: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), value)


def encoded_forms(value: str) -> set[str]:
    """Every form in which ``value`` may be written: raw, escaped, encoded once or twice.

    Raw, JSON-escaped (with and without ``ensure_ascii``), ``repr``-escaped and
    as the ``repr`` of its UTF-8 bytes, each of them also percent-encoded once
    and twice (``quote`` with and without ``/`` safe, ``quote_plus``), in
    upper- and lower-case hex.
    """
    if not value:
        return set()
    escaped = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        # How bytes show in a message: str(OSError(b"...")) is the bytes' repr.
        repr(value.encode())[2:-1],
    }
    forms: set[str] = set()
    for base in escaped:
        once = {base} | _percent_forms(base)
        forms |= once
        for form in once:
            forms |= _percent_forms(form)
    forms |= {_lower_escapes(form) for form in forms}
    forms.discard("")
    return forms


class RedactedError(Exception):
    """Stands in an exception chain for an exception that held private data.

    It keeps only the original's type name (:attr:`type_name`) and its text
    with every private value replaced. It has no traceback, and its only
    links are other stand-ins, chained as ``__cause__``.
    """

    def __init__(self, text: str, *, type_name: str = "") -> None:
        super().__init__(text)
        self.type_name = type_name


class Redactor:
    """Replaces known private values in text, bytes and exception chains.

    Args:
        phones: Every form of the recipient's number that may show up; each
            is replaced by its masked form (``***8000``).
        values: Template variable values (a verification code is a secret).
        secrets: Credentials: the AccessKey secret, the STS token, whether
            from the config or from the default credential chain.
    """

    def __init__(
        self,
        *,
        phones: Iterable[str] = (),
        values: Iterable[str] = (),
        secrets: Iterable[str] = (),
    ) -> None:
        phones, values, secrets = tuple(phones), tuple(values), tuple(secrets)
        needles: dict[str, str] = {}
        groups: dict[str | None, set[str]] = {}
        # Secrets and values first: when a form is shared, the stronger
        # replacement (nothing of it shown) wins over a masked number.
        for value in (*secrets, *values):
            self._add(needles, groups, str(value), REDACTED)
        hidden = [str(v) for v in (*secrets, *values) if len(str(v)) >= _SHORT]
        for phone in phones:
            mask = mask_phone(str(phone))
            # A value that is the number's last digits would show in its mask.
            if any(value in mask for value in hidden):
                mask = "***"
            self._add(needles, groups, str(phone), mask)
        ordered = sorted(needles.items(), key=lambda item: (-len(item[0]), item[0]))
        self._needles = needles
        self._groups = [(anchor, tuple(forms)) for anchor, forms in groups.items()]
        replacements = sorted({r for _, r in ordered})
        self._marks = {r: f"{_MARK}{chr(0xE001 + i)}{_MARK}" for i, r in enumerate(replacements)}
        short = [n for n, _ in ordered if len(n) < _SHORT]
        self._short_replacement = {n: r for n, r in ordered if len(n) < _SHORT}
        self._short = (
            re.compile(_BEFORE + "(" + "|".join(map(re.escape, short)) + ")" + _AFTER)
            if short
            else None
        )

    @staticmethod
    def _add(
        needles: dict[str, str], groups: dict[str | None, set[str]], value: str, replacement: str
    ) -> None:
        forms = encoded_forms(value)
        for form in forms:
            needles.setdefault(form, replacement)
        groups.setdefault(_anchor(value), set()).update(f for f in forms if len(f) >= _SHORT)

    def _present(self, text: str) -> list[str]:
        # A value's forms are looked for only when its anchor is in the text:
        # a failed batch knows thousands of forms, and most messages hold none.
        found = {
            form
            for anchor, forms in self._groups
            if anchor is None or anchor in text
            for form in forms
            if form in text
        }
        return sorted(found, key=lambda form: (-len(form), form))

    # -- text ------------------------------------------------------------------

    def text(self, text: str) -> str:
        """Return ``text`` with every private value replaced, in every encoding."""
        text = _PRIVATE_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _PRIVATE_KEYED.sub(
            lambda m: f"{m.group(1)}{m.group()[-1]}{REDACTED}{m.group()[-1]}", text
        )
        marked = False
        for needle in self._present(text):
            # Longest first: a longer value may have taken a shorter one with it.
            if needle in text:
                text = text.replace(needle, self._marks[self._needles[needle]])
                marked = True
        if self._short is not None:
            replace: Callable[[re.Match[str]], str] = lambda m: self._marks[  # noqa: E731
                self._short_replacement[m.group(1)]
            ]
            text, count = self._short.subn(replace, text)
            marked = marked or count > 0
        if marked:
            for replacement, mark in self._marks.items():
                text = text.replace(mark, replacement)
        return text

    def data(self, data: bytes) -> bytes:
        """Return ``data`` with every private value replaced (UTF-8 forms)."""
        return self.text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    def leaks(self, text: str) -> bool:
        """Whether ``text`` still holds a private value of length 4 or more, in any form."""
        return bool(self._present(text))

    # -- exceptions ------------------------------------------------------------

    def stand_in(self, exc: BaseException) -> RedactedError:
        """A :class:`RedactedError` chain standing in for ``exc`` and its chain.

        Each link keeps the original's type name and its text, scrubbed;
        ``__cause__`` is followed, then ``__context__`` unless it was
        suppressed, for at most 8 links; a loop ends the chain. A text that
        cannot be read, or still shows a private value once scrubbed, is
        withheld. Nothing else of the originals is kept: no traceback, args,
        attributes or ``__context__``.
        """
        head = tail = None
        seen: set[int] = set()
        link: BaseException | None = exc
        while link is not None and id(link) not in seen and len(seen) < _MAX_DEPTH:
            seen.add(id(link))
            current = RedactedError(self._describe(link), type_name=type(link).__name__)
            current.__suppress_context__ = True
            if tail is None:
                head = current
            else:
                tail.__cause__ = current
            tail = current
            link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
        assert head is not None  # noqa: S101 - the loop runs at least once
        return head

    def attach(self, error: _E, cause: BaseException | None) -> _E:
        """Chain to ``error`` a stand-in for ``cause``, and nothing else; return ``error``.

        Raise the result outside any ``except`` block: Python sets
        ``__context__`` to the exception being handled when one is raised
        inside an ``except`` block.
        """
        error.__cause__ = None if cause is None else self.stand_in(cause)
        error.__context__ = None
        error.__suppress_context__ = True
        return error

    def _describe(self, exc: BaseException) -> str:
        try:
            shown = self.text(str(exc))
        except Exception:  # noqa: BLE001 - a broken __str__ must not break error handling
            return f"{type(exc).__name__}: {WITHHELD}"
        if self.leaks(shown):
            return f"{type(exc).__name__}: {WITHHELD}"
        return f"{type(exc).__name__}: {shown}" if shown else type(exc).__name__
