"""The rules of a verification: code shape, lifetime, attempts and send limits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

from aliyun_sms_connector._errors import ConfigError, ConfigProblem

__all__ = ["VerificationPolicy"]

_MIN_LENGTH = 4
_MAX_LENGTH = 10
_REGION = re.compile(r"[A-Z]{2}")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class VerificationPolicy:
    """How codes are made, how long they live, and how often they may be sent.

    The defaults follow Aliyun's own flow control for verification codes (1 a
    minute, 5 an hour, 10 a day per number and sign name), so that the service
    refuses before Aliyun has to.

    Attributes:
        code_length: Digits per code, 4 to 10.
        ttl: How long a code stays valid.
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
        allowed_countries: ISO region codes such as ``{"CN", "HK"}`` that
            may receive codes; None allows every country
            (``CountryNotAllowed`` otherwise).
        test_numbers: Number → fixed code. No SMS is sent for these numbers,
            and the fixed code verifies; limits still apply. For app-store
            reviewers and automated tests.
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
    # Placeholders until the validated fields land (issue 18).
    per_number_failed_checks_hourly: int | None = 25
    per_ip_failed_checks_hourly: int | None = 50
    require_verification_id: bool = False
    allowed_number_types: frozenset[str] | None = frozenset({"MOBILE", "FIXED_LINE_OR_MOBILE"})

    def __post_init__(self) -> None:
        problems: list[ConfigProblem] = []
        if not isinstance(self.code_length, int) or not (
            _MIN_LENGTH <= self.code_length <= _MAX_LENGTH
        ):
            problems.append(ConfigProblem("code_length", "must be an integer from 4 to 10"))
        for name in ("ttl", "resend_cooldown", "per_number_cooldown"):
            value = _as_timedelta(getattr(self, name))
            if value is None or value < timedelta(0) or (name == "ttl" and not value):
                problems.append(ConfigProblem(name, "must be a positive duration"))
            else:
                object.__setattr__(self, name, value)
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            problems.append(ConfigProblem("max_attempts", "must be an integer of at least 1"))
        for name in ("per_number_hourly", "per_number_daily", "per_ip_hourly", "global_hourly"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(ConfigProblem(name, "must be None or an integer of at least 1"))
        self._normalize_countries(problems)
        self._normalize_test_numbers(problems)
        if problems:
            raise ConfigError.from_problems(problems)

    def _normalize_countries(self, problems: list[ConfigProblem]) -> None:
        countries = self.allowed_countries
        if countries is None:
            return
        if isinstance(countries, str) or not isinstance(countries, Iterable):
            problems.append(ConfigProblem("allowed_countries", "must be a set of region codes"))
            return
        normalized = frozenset(str(c).strip().upper() for c in countries)
        if not all(_REGION.fullmatch(c) for c in normalized):
            problems.append(
                ConfigProblem("allowed_countries", "must hold ISO region codes such as 'CN'")
            )
            return
        object.__setattr__(self, "allowed_countries", normalized)

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
            f"allowed_countries={sorted(self.allowed_countries or ()) or None}, "
            f"test_numbers=<{len(self.test_numbers)}>)"
        )


def _as_timedelta(value: object) -> timedelta | None:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return None
