"""The guard against SMS pumping: its policy, and the arithmetic that judges a prefix.

SMS pumping (toll fraud) requests codes for ranges of numbers whose carriers
share the revenue, and nobody types the codes in. Per-number and per-IP caps
do not see it; the conversion of a destination prefix does.

**What is counted.** For each destination prefix, the first ``prefix_digits``
digits of the E.164 number with its country code, the store keeps:

- the starts (codes handed to Aliyun) and the approvals, as two counters per
  time bucket. A window is :data:`BUCKETS` buckets of ``window / 12`` each
  (5 minutes by default); an approval is counted in the bucket of the start
  it approves, not of the check;
- the start time of each of the prefix's codes not approved yet, one entry per
  (number, usage type), so that an approval finds its start's bucket. It is
  the only per-start record, trimmed as it leaves the window and deleted on
  approval; a resend keeps the first start's entry (``ZADD NX``).

**What is judged.** A start is judged once it is ``grace`` old or approved,
whichever comes first. In buckets: a bucket is *old* when it ended ``grace``
or more ago; every start of an old bucket is judged, and of a younger one
only the approved starts. Over the buckets in the window::

    judged   = sum(starts of old buckets) + sum(approvals of young buckets)
    approved = sum(approvals of all buckets)

When ``judged >= min_starts`` and ``approved < min_conversion * judged``, the
prefix is blocked for ``block_for``. Nothing is judged inside ``grace``: a
start is judged only with the whole of its bucket, which ended at least
``grace`` ago (so a start may wait up to ``grace`` plus one bucket).

**Where.** The judgement runs at a start, in the store, atomically with
counting it: on Redis one script on the prefix's own keys, which share one
hash tag (one Cluster slot per prefix). The prefix is named in keys by an
HMAC under the service's secret key, as numbers are: six digits are too few
to hide behind a bare hash.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

from aliyun_sms_connector import ConfigError, ConfigProblem, PermissionDeniedError

from ._numbers import is_region, region

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._keys import Key

__all__ = [
    "BUCKETS",
    "PUMPING_BLOCKED",
    "PUMPING_MONITORED",
    "PUMPING_REFUSALS",
    "PUMPING_SUSPECTED",
    "MemoryGuard",
    "Pump",
    "PumpApproval",
    "PumpStart",
    "PumpingGuard",
    "approval_lost",
    "approve_args",
    "judge",
    "pump_keys",
    "pumping_refusal",
    "region_of",
    "release_args",
    "start_args",
]

#: Buckets per window: the window slides in steps of ``window / BUCKETS``.
BUCKETS = 12
#: The error code of a start refused because its prefix is blocked.
PUMPING_SUSPECTED = "PumpingSuspected"
#: What a store answers when a start just tripped the guard: in block mode
#: the start is refused and the block begins (the service logs it once)...
PUMPING_BLOCKED = "PumpingBlocked"
#: ... in monitor mode the start was counted and allowed; the service reports it.
PUMPING_MONITORED = "PumpingMonitored"

_DAY = timedelta(hours=24)
_MAX_COUNT = 10**9
_MAX_DIGITS = 15  # E.164 numbers hold at most 15 digits
#: The store's answers that refuse a start for pumping.
PUMPING_REFUSALS = frozenset({PUMPING_SUSPECTED, PUMPING_BLOCKED})
_SEPARATORS = re.compile(r"[\s\-().]")
_SAFE = re.compile(r"\+[0-9]{1,15}")
_DEFAULT_REGIONS = frozenset({"CN"})
_ID_BYTES = 16
# Prefix ids one service remembers (6 digits name at most 10**6 prefixes; real
# traffic meets a few thousand): past this, the memory starts again.
_MAX_TAGS = 10_000

logger = logging.getLogger("aliyun_sms_connector.verify")


@dataclass(frozen=True)
class PumpingGuard:
    """Blocks a destination prefix whose codes are requested but rarely approved.

    Attributes:
        prefix_digits: Digits of the E.164 number, country code included,
            that name a prefix (1 to 15; default 6, such as ``447911`` or
            ``861380``).
        window: How far back starts and approvals count (a sliding window,
            in 12 buckets; default 1 hour, at most 24 hours).
        grace: How old a start must be before it is judged unless approved
            (default 5 minutes); less than ``window``.
        min_starts: Judged starts needed before a prefix is judged at all
            (default 30).
        min_conversion: The share of judged starts that must be approved
            (default 0.3): a prefix below it is blocked. More than 0, at most 1.
        block_for: How long a block lasts (default 1 hour, at most 24 hours).
        mode: ``"block"`` refuses starts to a blocked prefix;
            ``"monitor"`` only reports (an event and a WARNING log).
        monitor_regions: Regions (ISO codes) that are only monitored, even in
            block mode (default ``{"CN"}``: the home market, where a false
            block hurts most).
        safe_numbers: Numbers or prefixes never blocked and never counted, in
            international form with ``+`` and the country code, such as
            ``"+44 7911 123456"`` or ``"+1555"``; stored as digits.

    Raises:
        ConfigError: A field out of range or of the wrong type; every
            offending field is named.
    """

    prefix_digits: int = 6
    window: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(minutes=5)
    min_starts: int = 30
    min_conversion: float = 0.3
    block_for: timedelta = timedelta(hours=1)
    mode: Literal["block", "monitor"] = "block"
    monitor_regions: frozenset[str] = _DEFAULT_REGIONS
    safe_numbers: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        if not _is_int(self.prefix_digits) or not 1 <= self.prefix_digits <= _MAX_DIGITS:
            problems.append(ConfigProblem("prefix_digits", "must be an integer from 1 to 15"))
        for name in ("window", "grace", "block_for"):
            value = _duration(getattr(self, name), zero=name == "grace")
            if isinstance(value, str):
                problems.append(ConfigProblem(name, value))
            else:
                object.__setattr__(self, name, value)
        if (
            isinstance(self.window, timedelta)
            and isinstance(self.grace, timedelta)
            and self.grace >= self.window
        ):
            problems.append(ConfigProblem("grace", "must be shorter than window"))
        if not _is_int(self.min_starts) or not 1 <= self.min_starts <= _MAX_COUNT:
            problems.append(
                ConfigProblem("min_starts", f"must be an integer from 1 to {_MAX_COUNT}")
            )
        conversion = self.min_conversion
        if (
            isinstance(conversion, bool)
            or not isinstance(conversion, (int, float))
            or not 0 < conversion <= 1
        ):
            problems.append(ConfigProblem("min_conversion", "must be a number above 0, at most 1"))
        else:
            object.__setattr__(self, "min_conversion", float(conversion))
        if self.mode not in {"block", "monitor"}:
            problems.append(ConfigProblem("mode", "must be 'block' or 'monitor'"))
        self._normalize_regions(problems)
        self._normalize_safe(problems)
        if problems:
            raise ConfigError.from_problems(problems, "pumping guard")

    def _normalize_regions(self, problems: list[ConfigProblem]) -> None:
        regions = self.monitor_regions
        if isinstance(regions, str) or not isinstance(regions, Iterable):
            problems.append(ConfigProblem("monitor_regions", "must be a set of region codes"))
            return
        normalized = frozenset(str(r).strip().upper() for r in regions)
        # The default needs no lookup: validating it would load phonenumbers.
        if normalized != _DEFAULT_REGIONS and not all(is_region(r) for r in normalized):
            problems.append(
                ConfigProblem("monitor_regions", "must hold ISO region codes such as 'CN'")
            )
            return
        object.__setattr__(self, "monitor_regions", normalized)

    def _normalize_safe(self, problems: list[ConfigProblem]) -> None:
        numbers = self.safe_numbers
        if isinstance(numbers, (str, bytes)) or not isinstance(numbers, Iterable):
            problems.append(ConfigProblem("safe_numbers", "must be a set of numbers or prefixes"))
            return
        digits = set()
        for number in numbers:
            text = _SEPARATORS.sub("", number) if isinstance(number, str) else ""
            if not _SAFE.fullmatch(text):
                # The value is not echoed: a safe number is still a number.
                problems.append(
                    ConfigProblem(
                        "safe_numbers",
                        "must hold numbers or prefixes in international form, such as '+447911'",
                    )
                )
                return
            digits.add(text[1:])
        object.__setattr__(self, "safe_numbers", frozenset(digits))

    def __repr__(self) -> str:
        # Safe numbers are numbers: repr shows only how many there are.
        return (
            f"PumpingGuard(prefix_digits={self.prefix_digits}, window={self.window}, "
            f"grace={self.grace}, min_starts={self.min_starts}, "
            f"min_conversion={self.min_conversion}, block_for={self.block_for}, "
            f"mode={self.mode!r}, monitor_regions={sorted(self.monitor_regions)}, "
            f"safe_numbers=<{len(self.safe_numbers)}>)"
        )


class PumpStart(NamedTuple):
    """What a store needs to judge and count one start, in hashed terms only.

    Attributes:
        tag: The HMAC id of the prefix (the keys' hash tag).
        member: The start's entry: the HMAC id of the number and the usage type.
        now_ms: The service's "now".
        bucket_ms: The width of a bucket.
        grace_ms: See :attr:`PumpingGuard.grace`.
        min_starts: See :attr:`PumpingGuard.min_starts`.
        min_conversion: See :attr:`PumpingGuard.min_conversion`.
        block_ms: See :attr:`PumpingGuard.block_for`.
        enforce: True to refuse starts to a blocked prefix; False to monitor.
        prefix_digits: How many digits name the prefix (for the service's
            WARNING; the store never sees the digits).
    """

    tag: str
    member: str
    now_ms: int
    bucket_ms: int
    grace_ms: int
    min_starts: int
    min_conversion: float
    block_ms: int
    enforce: bool
    prefix_digits: int


class PumpApproval(NamedTuple):
    """Count an approval in the bucket of the start it approves.

    Attributes:
        tag: The HMAC id of the prefix (the keys' hash tag).
        member: The start's entry: the HMAC id of the number and the usage
            type, ``<number id>:<usage type>``.
        now_ms: The check's "now" (the guess's own).
        bucket_ms: The width of a bucket.
    """

    tag: str
    member: str
    now_ms: int
    bucket_ms: int


# tuple.__new__ without NamedTuple's own __new__ (and its keywords) in between:
# one call less per start and per check. The fields go in their order.
_new_start = cast("Callable[[type[PumpStart], tuple[Any, ...]], PumpStart]", tuple.__new__)
_new_approval = cast(
    "Callable[[type[PumpApproval], tuple[str, str, int, int]], PumpApproval]", tuple.__new__
)


def pumping_refusal(seconds: float) -> PermissionDeniedError:
    """The error of a start to a blocked prefix, with ``retry_after`` in seconds."""
    error = PermissionDeniedError(
        "SMS codes to this number's prefix are paused (SMS pumping suspected); "
        f"retry after {seconds:g} s",
        code=PUMPING_SUSPECTED,
    )
    # PermissionDeniedError takes no retry_after; this one documents it.
    error.retry_after = seconds  # type: ignore[attr-defined]
    return error


class Pump:
    """One service's guard: its policy's numbers worked out once, and the prefix ids it met.

    ``start`` and ``approval`` are on every start and check, so they do no more
    than slicing, one dictionary look-up and, for a prefix not met yet, one HMAC.
    """

    __slots__ = (
        "_block_ms",
        "_bucket_ms",
        "_digits",
        "_grace_ms",
        "_guard",
        "_key",
        "_safe",
        "_tags",
    )

    def __init__(self, key: Key, guard: PumpingGuard | None) -> None:
        self._key = key
        self._guard = guard
        # Prefix ids by the E.164 prefix, "+" included: no slicing off the "+".
        self._tags: dict[str, str] = {}
        if guard is not None:
            self._digits = guard.prefix_digits + 1
            self._bucket_ms = max(round(guard.window.total_seconds() * 1000 / BUCKETS), 1)
            self._grace_ms = round(guard.grace.total_seconds() * 1000)
            self._block_ms = round(guard.block_for.total_seconds() * 1000)
            self._safe = tuple(f"+{digits}" for digits in guard.safe_numbers)

    def _tag(self, prefix: str) -> str:
        tag = self._tags.get(prefix)
        if tag is None:
            if len(self._tags) >= _MAX_TAGS:
                self._tags.clear()
            tag = self._key.mac(f"pump-prefix\0{prefix[1:]}".encode())[:_ID_BYTES].hex()
            self._tags[prefix] = tag
        return tag

    def start(self, e164: str, number: str, usage_type: str, now_ms: int) -> PumpStart | None:
        """The guard's part of a start; None when it is off, or for a safe number."""
        guard = self._guard
        if guard is None or (self._safe and e164.startswith(self._safe)):
            return None
        monitor = guard.mode == "monitor" or (
            bool(guard.monitor_regions) and region_of(e164) in guard.monitor_regions
        )
        fields = (
            self._tag(e164[: self._digits]),
            f"{number}:{usage_type}",
            now_ms,
            self._bucket_ms,
            self._grace_ms,
            guard.min_starts,
            guard.min_conversion,
            self._block_ms,
            not monitor,
            guard.prefix_digits,
        )
        return _new_start(PumpStart, fields)

    def approval(self, e164: str, number: str, usage_type: str, now_ms: int) -> PumpApproval | None:
        """The guard's part of a check: where to count it if it approves; None when off."""
        # On every check: no call but the dictionary's for a prefix met before.
        if self._guard is None or (self._safe and e164.startswith(self._safe)):
            return None
        prefix = e164[: self._digits]
        tag = self._tags.get(prefix) or self._tag(prefix)
        return _new_approval(PumpApproval, (tag, f"{number}:{usage_type}", now_ms, self._bucket_ms))


def region_of(e164: str) -> str | None:
    """:func:`._numbers.region`, without parsing where the country code has one region.

    Most country codes belong to one region (86 to CN, 33 to FR); for those the
    answer is a look-up. A code shared by several (1, 7, 44, ...) needs the
    number's own pattern, as :func:`._numbers.region` reads it.
    """
    import phonenumbers  # noqa: PLC0415 - loaded on first use, as _numbers does

    for length in (1, 2, 3):  # country codes are prefix-free: the first hit is it
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1 : 1 + length] or 0))
        if regions:
            if len(regions) == 1:
                return str(regions[0])
            break
    return region(e164)


def judge(counts: dict[tuple[str, int], int], p: PumpStart) -> bool:
    """Whether the prefix's counts call for a block: the arithmetic the Lua script repeats.

    ``counts`` maps ("s" for starts or "a" for approvals, bucket) to a count.
    """
    current = p.now_ms // p.bucket_ms
    oldest = current - BUCKETS + 1
    judged = approved = 0
    for (kind, bucket), count in counts.items():
        if not oldest <= bucket <= current:
            continue
        if kind == "a":
            approved += count
        if (bucket + 1) * p.bucket_ms <= p.now_ms - p.grace_ms:
            judged += count if kind == "s" else 0
        elif kind == "a":
            judged += count
    return judged >= p.min_starts and approved < p.min_conversion * judged


def pump_keys(prefix: str, tag: str) -> list[str]:
    """The keys of one prefix's guard, all tagged ``{pump:<id>}``: counts, pending, block."""
    base = f"{prefix}{{pump:{tag}}}"
    return [f"{base}:counts", f"{base}:pending", f"{base}:block"]


@dataclass
class _Prefix:
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    blocked_until: int = 0
    last_ms: int = 0


class MemoryGuard:
    """The guard's state in a :class:`MemoryStore`; its lock is the store's."""

    def __init__(self) -> None:
        self._prefixes: dict[str, _Prefix] = {}

    def start(self, p: PumpStart) -> tuple[str, int] | None:
        """Judge and count a start: None, or (code, ms) as the Redis script answers."""
        state = self._prefixes.setdefault(p.tag, _Prefix())
        state.last_ms = max(state.last_ms, p.now_ms)
        tripped = False
        if state.blocked_until > p.now_ms:
            if p.enforce:
                return PUMPING_SUSPECTED, state.blocked_until - p.now_ms
        elif judge(state.counts, p):
            state.blocked_until = p.now_ms + p.block_ms
            if p.enforce:
                return PUMPING_BLOCKED, p.block_ms
            tripped = True
        current = p.now_ms // p.bucket_ms
        state.counts["s", current] = state.counts.get(("s", current), 0) + 1
        state.pending.setdefault(p.member, p.now_ms)
        oldest = current - BUCKETS + 1
        state.counts = {k: v for k, v in state.counts.items() if k[1] >= oldest}
        floor = oldest * p.bucket_ms
        state.pending = {m: t for m, t in state.pending.items() if t >= floor}
        return (PUMPING_MONITORED, p.block_ms) if tripped else None

    def release(self, p: PumpStart) -> None:
        """Un-count a start that was refused later on, or whose SMS surely never left."""
        state = self._prefixes.get(p.tag)
        if state is None:
            return
        key = ("s", p.now_ms // p.bucket_ms)
        if state.counts.get(key, 0) > 0:
            state.counts[key] -= 1
        if state.pending.get(p.member) == p.now_ms:
            del state.pending[p.member]

    def approve(self, a: PumpApproval) -> None:
        """Count an approval in its start's bucket."""
        state = self._prefixes.get(a.tag)
        started = None if state is None else state.pending.pop(a.member, None)
        if state is None or started is None:
            return
        bucket = started // a.bucket_ms
        if bucket >= a.now_ms // a.bucket_ms - BUCKETS + 1:
            state.counts["a", bucket] = state.counts.get(("a", bucket), 0) + 1

    def sweep(self, now_ms: int, horizon_ms: int) -> None:
        """Forget prefixes with nothing in the window and no block."""
        self._prefixes = {
            tag: s
            for tag, s in self._prefixes.items()
            if s.blocked_until > now_ms or s.last_ms > now_ms - horizon_ms
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration(value: Any, *, zero: bool) -> timedelta | str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 <= value <= _DAY.total_seconds():  # NaN fails too
            return "must be a duration from 0 to 24 hours" if zero else "must be 1 s to 24 hours"
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        return "must be a timedelta or a number of seconds"
    if value > _DAY:
        return "must be at most 24 hours"
    if value < timedelta(0) or (not zero and value < timedelta(seconds=1)):
        return "must be a duration from 0 to 24 hours" if zero else "must be 1 s to 24 hours"
    return value


def start_args(keys: list[str], p: PumpStart) -> tuple[list[str], list[object]]:
    """``PUMP_START``'s keys and arguments, given :func:`pump_keys`' of its prefix."""
    # The policy in one argument: five fewer to send on every start.
    policy = (
        f"{p.bucket_ms}:{p.grace_ms}:{p.min_starts}:{p.min_conversion!r}:{p.block_ms}:"
        f"{1 if p.enforce else 0}"
    )
    return keys, [p.now_ms, p.member, policy]


def release_args(keys: list[str], p: PumpStart) -> tuple[list[str], list[object]]:
    """``PUMP_RELEASE``'s keys and arguments."""
    return keys[:2], [p.now_ms, p.member, p.bucket_ms]


def approve_args(keys: list[str], a: PumpApproval) -> tuple[list[str], list[object]]:
    """``PUMP_APPROVE``'s keys and arguments."""
    return keys[:2], [a.now_ms, a.member, a.bucket_ms]


def approval_lost() -> None:
    """Log that a store could not count an approval."""
    # The code was approved and used up, and the check answers so. The guard
    # only misses one approval, which makes its prefix look worse, not better.
    logger.warning("the pumping guard could not count an approval (store unavailable)")
