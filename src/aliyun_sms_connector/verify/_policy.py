"""The rules of a verification: code shape, lifetime, attempts and send limits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import ConfigError, ConfigProblem

from ._guard import PumpingGuard
from ._numbers import is_region, type_name

if TYPE_CHECKING:
    from typing import TypeGuard

__all__ = ["VerificationPolicy"]

_MIN_LENGTH = 4
_MAX_LENGTH = 10
_DIGITS = re.compile(r"[0-9]+")
# The store's keys live at most a day, so no duration may outlast one.
_DAY = timedelta(hours=24)
_DAY_SECONDS = _DAY.total_seconds()
# Far above any real cap, and exact in the stores' arithmetic (Lua numbers are
# doubles): a larger count is a mistake, such as a duration put in a count.
_MAX_COUNT = 10**9
_NOT_POSITIVE = "must be a positive duration"
_TOO_LONG = "must be at most 24 hours"
_MIN_DURATION = timedelta(seconds=1)
_TOO_SHORT = "must be at least 1 second"
_TOO_SHORT_OR_ZERO = "must be 0 (none) or at least 1 second"
_TOO_MANY = f"must be at most {_MAX_COUNT}"


class _Derived:
    """The default of ``per_number_failed_checks_hourly`` until ``__post_init__`` resolves it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "max_attempts * per_number_hourly"


# Typed Any so that the field keeps its type, int | None, for type checkers.
_DERIVED: Any = _Derived()


@dataclass(frozen=True)
class VerificationPolicy:
    """How codes are made, how long they live, and how often they may be sent.

    The defaults follow Aliyun's own flow control for verification codes (1 a
    minute, 5 an hour, 10 a day per number and sign name), so that the service
    refuses before Aliyun has to.

    Every count is an ``int`` from 1 to 10**9 (a ``bool`` is none), and every
    duration a ``timedelta`` or a number of seconds, finite and at most 24
    hours: the store's keys live at most a day.

    Attributes:
        code_length: Digits per code, 4 to 10.
        ttl: How long a code stays valid, at most 24 hours.
        max_attempts: Wrong codes allowed per verification; after that it is
            locked and even the right code gives ``TOO_MANY_ATTEMPTS``.
        resend_cooldown: Minimum time between two codes for the same number
            and usage type (``VerificationCooldown``).
        per_number_cooldown: Minimum time between two codes for the same
            number whatever the usage type (``VerificationCooldown``). Aliyun
            counts its per-minute limit per number and sign name across usage
            types, so a Register code followed 30 s later by a SignIn code
            would be refused by Aliyun without it. ``timedelta(0)`` turns it off.
        per_number_hourly: Codes per number in any sliding hour, all usage
            types together (``NumberHourlyLimit``); None for no cap.
        per_number_daily: Codes per number in any sliding 24 hours
            (``NumberDailyLimit``); None for no cap.
        per_ip_hourly: Codes requested from one client IP (an IPv6 /64) in any
            sliding hour (``IpHourlyLimit``); None for no cap. Applies only
            when ``start`` is given ``client_ip``.
        global_hourly: Codes for the whole application in any sliding hour
            (``GlobalHourlyLimit``): a budget against SMS pumping; None for no cap.
        allowed_countries: Region codes such as ``{"CN", "HK"}`` that may
            receive codes, in any case; each must be a region phonenumbers
            knows (``"ZZ"`` is refused). None allows every country
            (``CountryNotAllowed`` otherwise).
        test_numbers: Number → fixed code. No SMS is sent for these numbers,
            and the fixed code verifies; limits still apply. For app-store
            reviewers and automated tests.
        per_number_failed_checks_hourly: Wrong codes allowed per number and
            usage type in any sliding hour, over all its verifications. The
            count is kept apart from the verification record, so a new code
            does not reset it, and a guess once counted is never given back.
            None for no cap. By default ``max_attempts * per_number_hourly``
            (at most 10**9): every code the hourly cap allows may take its
            full attempts, and no more; None when ``per_number_hourly`` is
            None. The value given, or derived, is what the attribute holds
            after construction (so ``dataclasses.replace`` copies it rather
            than deriving it again).
        per_ip_failed_checks_hourly: Wrong codes allowed from one client IP
            (an IPv6 /64) in any sliding hour, over all numbers: a guesser
            spreading over many numbers meets it. None for no cap.
        require_verification_id: When True, a check must name the
            verification it answers (the ``id`` of the ``Verification`` that
            ``start`` returned); a ``bool``.
        allowed_number_types: The types of number that may receive codes, as
            phonenumbers names them (``"MOBILE"``, ``"FIXED_LINE_OR_MOBILE"``,
            ``"PREMIUM_RATE"``, ...; see ``PhoneNumberType``). Any collection
            of names in any case, or of ``PhoneNumberType`` values; stored as
            a frozenset of upper-case names. The default allows mobiles, and
            numbers whose plan cannot tell a mobile from a landline (as in
            the US); None allows every type.
        pumping_guard: The :class:`PumpingGuard` that blocks destination
            prefixes whose codes are requested but rarely approved (SMS
            pumping); on by default, None turns it off.
    """

    code_length: int = 6
    ttl: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    resend_cooldown: timedelta = timedelta(seconds=60)
    per_number_cooldown: timedelta = timedelta(seconds=60)
    per_number_hourly: int | None = 5
    per_number_daily: int | None = 10
    per_ip_hourly: int | None = 20
    global_hourly: int | None = None
    allowed_countries: frozenset[str] | None = None
    test_numbers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    per_number_failed_checks_hourly: int | None = _DERIVED
    per_ip_failed_checks_hourly: int | None = 50
    require_verification_id: bool = False
    allowed_number_types: frozenset[str] | None = frozenset({"MOBILE", "FIXED_LINE_OR_MOBILE"})
    pumping_guard: PumpingGuard | None = field(default_factory=PumpingGuard)

    def __post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        if not _is_int(self.code_length) or not (_MIN_LENGTH <= self.code_length <= _MAX_LENGTH):
            problems.append(ConfigProblem("code_length", "must be an integer from 4 to 10"))
        for name in ("ttl", "resend_cooldown", "per_number_cooldown"):
            value = _duration(getattr(self, name), zero=name != "ttl")
            if isinstance(value, str):
                problems.append(ConfigProblem(name, value))
            else:
                object.__setattr__(self, name, value)
        self._check_count("max_attempts", problems, optional=False)
        for name in ("per_number_hourly", "per_number_daily", "per_ip_hourly", "global_hourly"):
            self._check_count(name, problems)
        self._normalize_countries(problems)
        self._normalize_test_numbers(problems)
        self._resolve_failed_checks()
        self._check_count("per_number_failed_checks_hourly", problems)
        self._check_count("per_ip_failed_checks_hourly", problems)
        if not isinstance(self.require_verification_id, bool):
            problems.append(ConfigProblem("require_verification_id", "must be True or False"))
        self._normalize_number_types(problems)
        if self.pumping_guard is not None and not isinstance(self.pumping_guard, PumpingGuard):
            problems.append(ConfigProblem("pumping_guard", "must be a PumpingGuard or None"))
        if problems:
            raise ConfigError.from_problems(problems, "verification policy")

    def _check_count(
        self, name: str, problems: list[ConfigProblem], *, optional: bool = True
    ) -> None:
        problem = _count_problem(getattr(self, name), optional=optional)
        if problem is not None:
            problems.append(ConfigProblem(name, problem))

    def _resolve_failed_checks(self) -> None:
        if self.per_number_failed_checks_hourly is not _DERIVED:
            return
        attempts = _valid_count(self.max_attempts)
        hourly = _valid_count(self.per_number_hourly)
        # None without an hourly cap, and when a factor is bad: its problem is
        # named already, and None adds none of its own.
        derived = None
        if attempts is not None and hourly is not None:
            # At most the largest count a caller may give, so that the value
            # held is one the constructor accepts (dataclasses.replace gives it back).
            derived = min(attempts * hourly, _MAX_COUNT)
        object.__setattr__(self, "per_number_failed_checks_hourly", derived)

    def _normalize_countries(self, problems: list[ConfigProblem]) -> None:
        countries = self.allowed_countries
        if countries is None:
            return
        if isinstance(countries, str) or not isinstance(countries, Iterable):
            problems.append(ConfigProblem("allowed_countries", "must be a set of region codes"))
            return
        normalized = frozenset(str(c).strip().upper() for c in countries)
        if not all(is_region(c) for c in normalized):
            problems.append(
                ConfigProblem("allowed_countries", "must hold ISO region codes such as 'CN'")
            )
            return
        object.__setattr__(self, "allowed_countries", normalized)

    def _normalize_number_types(self, problems: list[ConfigProblem]) -> None:
        types = self.allowed_number_types
        if types is None:
            return
        if isinstance(types, (str, bytes)) or not isinstance(types, Iterable):
            problems.append(
                ConfigProblem("allowed_number_types", "must be a set of phone number types")
            )
            return
        names = [type_name(t) for t in types]
        if None in names:
            problems.append(
                ConfigProblem(
                    "allowed_number_types", "must hold phone number types such as 'MOBILE'"
                )
            )
            return
        object.__setattr__(self, "allowed_number_types", frozenset(names))

    def _normalize_test_numbers(self, problems: list[ConfigProblem]) -> None:
        numbers = self.test_numbers
        if not isinstance(numbers, Mapping):
            problems.append(ConfigProblem("test_numbers", "must map numbers to codes"))
            return
        for code in numbers.values():
            if (
                not isinstance(code, str)
                or not _DIGITS.fullmatch(code)
                or not (_MIN_LENGTH <= len(code) <= _MAX_LENGTH)
            ):
                # The code itself is not echoed: a test code is still a credential.
                problems.append(ConfigProblem("test_numbers", "codes must be 4 to 10 digits"))
                return
        object.__setattr__(self, "test_numbers", MappingProxyType(dict(numbers)))

    def __repr__(self) -> str:
        # test_numbers hold working codes: repr shows only how many there are.
        return (
            f"VerificationPolicy(code_length={self.code_length}, ttl={self.ttl}, "
            f"max_attempts={self.max_attempts}, resend_cooldown={self.resend_cooldown}, "
            f"per_number_cooldown={self.per_number_cooldown}, "
            f"per_number_hourly={self.per_number_hourly}, "
            f"per_number_daily={self.per_number_daily}, per_ip_hourly={self.per_ip_hourly}, "
            f"global_hourly={self.global_hourly}, "
            f"allowed_countries={_sorted(self.allowed_countries)}, "
            f"test_numbers=<{len(self.test_numbers)}>, "
            f"per_number_failed_checks_hourly={self.per_number_failed_checks_hourly}, "
            f"per_ip_failed_checks_hourly={self.per_ip_failed_checks_hourly}, "
            f"require_verification_id={self.require_verification_id}, "
            f"allowed_number_types={_sorted(self.allowed_number_types)}, "
            f"pumping_guard={self.pumping_guard!r})"
        )


def _is_int(value: object) -> TypeGuard[int]:
    # bool is a subclass of int, but True is no count.
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_count(value: object) -> int | None:
    """``value`` if it is a count a caller may give, else None."""
    return value if _is_int(value) and 1 <= value <= _MAX_COUNT else None


def _count_problem(value: object, *, optional: bool) -> str | None:
    """What is wrong with a count (None allowed when ``optional``), or None."""
    if optional and value is None:
        return None
    if not _is_int(value) or value < 1:
        return (
            "must be None or an integer of at least 1"
            if optional
            else "must be an integer of at least 1"
        )
    if value > _MAX_COUNT:
        return _TOO_MANY
    return None


def _duration(value: object, *, zero: bool) -> timedelta | str:
    """``value`` as a timedelta, or what is wrong with it; ``zero`` allows a zero duration."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Compared before timedelta() sees it, which raises on NaN and on
        # anything past 10**9 days; NaN fails every comparison.
        if value > _DAY_SECONDS:
            return _TOO_LONG
        if not value >= 0:
            return _NOT_POSITIVE
        value = timedelta(seconds=value)
    if not isinstance(value, timedelta):
        return _NOT_POSITIVE
    if value > _DAY:
        return _TOO_LONG
    if value < timedelta(0) or not (zero or value):
        return _NOT_POSITIVE
    if value and value < _MIN_DURATION:
        # The store counts whole milliseconds: a shorter ttl would be dead on
        # arrival, a shorter cooldown none at all.
        return _TOO_SHORT_OR_ZERO if zero else _TOO_SHORT
    return value


def _sorted(names: frozenset[str] | None) -> list[str] | None:
    return None if names is None else sorted(names)
