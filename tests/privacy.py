"""A privacy harness: every place a private value could hide, and checks that it does not.

Written independently of ``aliyun_sms_connector._redact`` on purpose: these
helpers judge the redactor, so they must not share its idea of an encoding.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import json
import logging
import traceback
import types
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = [
    "LogCapture",
    "assert_no_leak",
    "assert_no_leak_in_records",
    "capture_debug_logs",
    "debug_logs",
    "encodings",
    "reachable",
    "render_with_locals",
]

# Loggers whose records must reach the capture: the HTTP stacks, asyncio,
# the SDK's and this library's. Any of them may have been set to a level
# above DEBUG, or have propagation switched off, by earlier code.
WATCHED = (
    "urllib3",
    "urllib3.connectionpool",
    "requests",
    "aiohttp",
    "aiohttp.client",
    "aiohttp.internal",
    "asyncio",
    "alibabacloud_tea_openapi",
    "alibabacloud_credentials",
    "darabonba",
    "Tea",
    "aliyun_sms_connector",
)
_MAX_NODES = 200_000


def _percent(value: str) -> set[str]:
    return {quote(value, safe=""), quote(value), quote_plus(value)}


def encodings(value: str) -> set[str | bytes]:
    """Every form of ``value`` to look for.

    Raw, ``quote`` (with and without ``/`` safe) and ``quote_plus``, each of
    them applied once and twice (``+`` -> ``%2B`` -> ``%252B``), the inner part
    of ``json.dumps`` with and without ``ensure_ascii`` (also percent-encoded),
    the ``repr`` escape and the ``repr`` of the UTF-8 bytes (``Zh\\xc4\\x81ng``),
    and standard and URL-safe base64 of the UTF-8 bytes.
    Base64 is cheap to check and a 6+ character value's base64 never shows by
    chance. Each text form is also given as UTF-8 bytes.
    """
    if not value:
        return set()
    bases = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
        repr(value.encode())[2:-1],
    }
    texts: set[str] = set()
    for base in bases:
        once = {base} | _percent(base)
        texts |= once
        for form in once:
            texts |= _percent(form)
    raw = value.encode()
    texts |= {
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    texts.discard("")
    return {*texts, *(text.encode() for text in texts)}


# -- walking what an exception holds ------------------------------------------

_OPAQUE_NAMES = frozenset({"SecretStr", "SecretBytes"})
_SKIPPED = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    int,
    float,
    complex,
    bool,
    type(None),
)


def _attributes(obj: object) -> Iterator[tuple[str, object]]:
    with_dict = getattr(obj, "__dict__", None)
    if isinstance(with_dict, dict):
        yield from ((str(k), v) for k, v in with_dict.items())
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name in ("__dict__", "__weakref__"):
                continue
            try:
                yield name, getattr(obj, name)
            except AttributeError:
                continue


def _children(obj: object) -> Iterator[tuple[str, object]]:
    if isinstance(obj, BaseException):
        yield ".__cause__", obj.__cause__
        yield ".__context__", obj.__context__
        yield ".args", obj.args
        yield from ((f".{k}", v) for k, v in _attributes(obj))
        group = getattr(obj, "exceptions", None)  # an ExceptionGroup's members
        if isinstance(group, tuple):
            yield ".exceptions", group
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield "{key}", key
            yield f"[{key!r}]", value
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        yield from ((f"[{i}]", v) for i, v in enumerate(obj))
        return
    if isinstance(obj, functools.partial):
        yield ".func", obj.func
        yield ".args", obj.args
        yield ".keywords", obj.keywords
        return
    if isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        return
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield f".{f.name}", getattr(obj, f.name, None)
    yield from ((f".{k}", v) for k, v in _attributes(obj))


def _shown(path: str, obj: object) -> Iterator[tuple[str, str]]:
    for name, show in (("str", str), ("repr", repr)):
        try:
            text = show(obj)
        except Exception:  # noqa: BLE001, S112 - a broken __str__ shows nothing
            continue
        yield f"{path}<{name}>", text


def _walk(root: object, depth: int) -> Iterator[tuple[str, str | bytes]]:
    seen: set[int] = set()
    stack: list[tuple[str, object, int]] = [("error", root, 0)]
    while stack and len(seen) < _MAX_NODES:
        path, obj, level = stack.pop()
        if isinstance(obj, str):
            yield path, obj
            continue
        if isinstance(obj, (bytes, bytearray, memoryview)):
            yield path, bytes(obj)
            continue
        if obj is None or isinstance(obj, _SKIPPED) or id(obj) in seen:
            continue
        if type(obj).__name__ in _OPAQUE_NAMES:
            continue
        seen.add(id(obj))
        # What the object shows of itself may be computed from state not
        # held in any attribute (a property, a closure).
        yield from _shown(path, obj)
        if level >= depth:
            continue
        stack.extend((f"{path}{step}", child, level + 1) for step, child in _children(obj))


def reachable(exc: object, depth: int = 10) -> Iterator[str | bytes]:
    """Every str and bytes reachable from ``exc``, to ``depth`` steps.

    Follows ``__cause__``, ``__context__``, ``args``, ``__dict__``, ``__slots__``
    and the items of containers, dataclasses and pydantic models, and yields
    ``str()`` and ``repr()`` of each object found. pydantic's ``SecretStr`` is
    opaque. Frames are not followed: :func:`render_with_locals` covers them.
    """
    for _, text in _walk(exc, depth):
        yield text


def _find(text: str | bytes, values: Iterable[str]) -> str | None:
    for value in values:
        for form in encodings(value):
            if type(form) is type(text) and form in text:  # type: ignore[operator]
                return f"{value!r} as {form!r}"
    return None


def _excerpt(text: str | bytes, limit: int = 300) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def assert_no_leak(exc: object, values: Iterable[str], *, depth: int = 10) -> None:
    """Fail if any of ``values``, in any encoding, is reachable from ``exc``."""
    wanted = [v for v in values if v]
    leaks = []
    for path, text in _walk(exc, depth):
        found = _find(text, wanted)
        if found:
            leaks.append(f"{path}: {found} in {_excerpt(text)}")
    assert not leaks, "private data reachable from the error:\n" + "\n".join(leaks[:20])


def _record_texts(record: logging.LogRecord) -> Iterator[tuple[str, str | bytes]]:
    yield "msg", str(record.msg)
    args = record.args
    items = args.values() if isinstance(args, dict) else (args or ())
    for i, arg in enumerate(items):
        for _, text in _walk(arg, 3):
            yield f"args[{i}]", text
    try:
        yield "message", record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the record's own problem
        yield "message", f"<unformattable {record.msg!r}>"
    if record.exc_info and record.exc_info[1] is not None:
        yield "exc_info", logging.Formatter().formatException(record.exc_info)
    for name in ("exc_text", "stack_info"):
        value = getattr(record, name, None)
        if value:
            yield name, str(value)


def assert_no_leak_in_records(records: Iterable[logging.LogRecord], values: Iterable[str]) -> None:
    """Fail if any record's message, args or formatted text holds one of ``values``."""
    wanted = [v for v in values if v]
    leaks = []
    for record in records:
        for where, text in _record_texts(record):
            found = _find(text, wanted)
            if found:
                leaks.append(
                    f"{record.name} {record.levelname} {where}: {found} in {_excerpt(text)}"
                )
    assert not leaks, "private data in log records:\n" + "\n".join(leaks[:20])


def render_with_locals(exc: BaseException) -> str:
    """The traceback of ``exc`` and its chain with every frame's locals, as Sentry sees it."""
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


# -- capturing every log record ---------------------------------------------------


class LogCapture(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def by_thread(self, excluded: Iterable[int | None]) -> list[logging.LogRecord]:
        """The records not emitted from the ``excluded`` threads (a server's, say)."""
        skip = set(excluded)
        return [r for r in self.records if r.thread not in skip]


@contextlib.contextmanager
def capture_debug_logs() -> Iterator[LogCapture]:
    """The root logger at DEBUG while the block runs, every record kept.

    Loggers (the watched libraries' and every one that exists) that were set
    above DEBUG, disabled, or cut from the root are opened meanwhile. Every
    level, flag and handler is restored afterwards, so nothing changes for
    the rest of the process.
    """
    capture = LogCapture()
    root = logging.getLogger()
    saved_root = root.level
    saved: list[tuple[logging.Logger, int, bool]] = []
    known = logging.root.manager.loggerDict
    existing = [name for name, item in known.items() if isinstance(item, logging.Logger)]
    for name in sorted({*WATCHED, *existing}):
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.disabled))
        if logger.level > logging.DEBUG:
            logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(capture)
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved_root)
        for logger, level, disabled in saved:
            logger.removeHandler(capture)
            logger.setLevel(level)
            logger.disabled = disabled


@pytest.fixture
def debug_logs() -> Iterator[LogCapture]:
    """The root logger at DEBUG for one test; see :func:`capture_debug_logs`."""
    with capture_debug_logs() as capture:
        yield capture
