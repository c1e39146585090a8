"""The verification service: issue, send and check codes.

The order of a start is what keeps it safe and cheap:

1. Parse the number and check the country: nothing is stored yet.
2. Reserve in the store, atomically: the number's cooldowns and caps are
   checked, and only if all allow are the code's digest stored and the send
   counted. Then the per-IP and global limits, the same way. A refusal here
   costs no SMS.
3. Send the SMS. The code was stored first, so an SMS never carries a code the
   store does not know.
4. If the send failed and surely sent nothing (``maybe_sent=False``), release
   the reservation: code, cooldowns and counts. If it may have gone out, keep
   everything: the user may hold the code.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NoReturn

from aliyun_sms_connector import (
    AliyunSmsError,
    ConfigError,
    PermissionDeniedError,
    RateLimitExceededError,
    TemplateNotFoundError,
    UsageType,
    parse_phone,
)

from ._keys import MIN_SECRET_BYTES, Key, code_digest, generate_code, ip_id, number_id
from ._memory import MemoryStore
from ._policy import VerificationPolicy
from ._results import CheckResult, CheckStatus, Verification
from ._store import Guess, Refusal, Reservation, SharedReservation, VerificationStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Self

    from aliyun_sms_connector import AliyunSmsConnector, PhoneNumber, SendResult

__all__ = ["VerificationService"]

logger = logging.getLogger("aliyun_sms_connector.verify")

_ID_BYTES = 12
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class _Plan:
    """One start, prepared. Its repr shows no number and no code."""

    phone: PhoneNumber
    usage_type: UsageType
    code: str = field(repr=False)
    test_number: bool
    reservation: Reservation = field(repr=False)
    shared: SharedReservation | None = field(repr=False)


class VerificationService:
    """Issues codes by SMS and checks them, safely, on one instance or many.

    Args:
        connector: Sends the codes (its ``send_message`` / ``send_message_async``).
        store: Where pending codes and counters live. A new
            :class:`MemoryStore` when omitted (one process only); a
            :class:`RedisStore` to share them between instances.
        secret_key: The HMAC key for stored codes and store keys, 32 bytes or
            more. Required for a shared store, and the same on every instance;
            a :class:`MemoryStore` gets a random one per process if omitted.
        policy: Code shape, lifetime, attempts and limits.
        clock: Seconds since the epoch; tests pass a fake one and never sleep.

    Raises:
        ConfigError: A shared store without ``secret_key``, a key shorter than
            32 bytes, or a test number that is not valid.
    """

    def __init__(
        self,
        connector: AliyunSmsConnector,
        store: VerificationStore | None = None,
        *,
        secret_key: str | bytes | None = None,
        policy: VerificationPolicy | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._connector = connector
        self._store = MemoryStore() if store is None else store
        self._policy = VerificationPolicy() if policy is None else policy
        self._clock = clock or time.time
        self._strict = bool(connector.config.strict_phone_region_number_check)
        self._key = Key(_secret(secret_key, shared=self._store.shared))
        self._test_codes = self._normalize_test_numbers()

    def __repr__(self) -> str:
        return f"VerificationService(store={self._store!r}, policy={self._policy!r})"

    @property
    def policy(self) -> VerificationPolicy:
        """The policy in force."""
        return self._policy

    @property
    def store(self) -> VerificationStore:
        """The store in use."""
        return self._store

    # -- start -----------------------------------------------------------------

    def start(
        self, to: str, usage_type: UsageType | str, *, client_ip: str | None = None
    ) -> Verification:
        """Generate a code, store its digest, and send it by SMS.

        A new start replaces the pending code of the same number and usage type.

        Args:
            to: The recipient, in any form the connector takes.
            usage_type: What the code is for; picks the template.
            client_ip: The requester's IP address, for ``per_ip_hourly``.

        Raises:
            InvalidPhoneNumberError: The number is not valid.
            PermissionDeniedError: ``CountryNotAllowed``.
            RateLimitExceededError: ``VerificationCooldown``,
                ``NumberHourlyLimit``, ``NumberDailyLimit``, ``IpHourlyLimit``
                or ``GlobalHourlyLimit``, with ``retry_after`` in seconds;
                no SMS was sent.
            ServiceUnavailableError: ``StoreUnavailable``; no SMS was sent.
            AliyunSmsError: The send failed; see its ``maybe_sent``.
        """
        with _Outcome("start", to, usage_type) as outcome:
            plan = self._plan(to, usage_type, client_ip)
            outcome.plan = plan
            refusal = self._store.reserve(plan.reservation)
            if refusal is None and plan.shared is not None:
                try:
                    refusal = self._store.reserve_shared(plan.shared)
                except AliyunSmsError:
                    self._release(plan, shared=False)  # no SMS: no cooldown either
                    raise
                if refusal is not None:
                    self._release(plan, shared=False)
            if refusal is not None:
                _raise_refusal(refusal)
            sent: SendResult | None = None
            failure: AliyunSmsError | None = None
            if not plan.test_number:
                try:
                    sent = self._connector.send_message(
                        plan.phone.e164, plan.usage_type, {"code": plan.code}
                    )
                except AliyunSmsError as error:
                    failure = error
            if failure is not None:
                if not failure.maybe_sent:
                    self._release(plan, shared=True)
                # Without the connector's frames: their locals hold the code,
                # which start's caller never had (an error tracker shows them).
                raise failure.with_traceback(None)
            return self._verification(plan, sent, outcome)

    async def start_async(
        self, to: str, usage_type: UsageType | str, *, client_ip: str | None = None
    ) -> Verification:
        """The async twin of :meth:`start`: same arguments, result and errors."""
        with _Outcome("start", to, usage_type) as outcome:
            plan = self._plan(to, usage_type, client_ip)
            outcome.plan = plan
            refusal = await self._store.reserve_async(plan.reservation)
            if refusal is None and plan.shared is not None:
                try:
                    refusal = await self._store.reserve_shared_async(plan.shared)
                except AliyunSmsError:
                    await self._release_async(plan, shared=False)
                    raise
                if refusal is not None:
                    await self._release_async(plan, shared=False)
            if refusal is not None:
                _raise_refusal(refusal)
            sent: SendResult | None = None
            failure: AliyunSmsError | None = None
            if not plan.test_number:
                try:
                    sent = await self._connector.send_message_async(
                        plan.phone.e164, plan.usage_type, {"code": plan.code}
                    )
                except AliyunSmsError as error:
                    failure = error
            if failure is not None:
                if not failure.maybe_sent:
                    await self._release_async(plan, shared=True)
                raise failure.with_traceback(None)  # no frame holding the code, as in start
            return self._verification(plan, sent, outcome)

    # -- check -----------------------------------------------------------------

    def check(self, to: str, usage_type: UsageType | str, code: str) -> CheckResult:
        """Check a code. A right code is approved once; wrong ones are counted.

        Raises:
            InvalidPhoneNumberError: The number is not valid.
            TemplateNotFoundError: ``UnknownUsageType``.
            ServiceUnavailableError: ``StoreUnavailable``: the store could not
                confirm an outcome, so none is given (never ``WRONG_CODE``).
        """
        try:
            status, left = self._store.check(self._guess(to, usage_type, code))
        except BaseException as error:
            _log_check(to, usage_type, error=error)
            raise
        result = _result(status, left)
        _log_check(to, usage_type, result=result)
        return result

    async def check_async(self, to: str, usage_type: UsageType | str, code: str) -> CheckResult:
        """The async twin of :meth:`check`."""
        # No _Outcome here: checks are the hot path, and the with-block's
        # object was a measurable share of a check's CPU.
        try:
            status, left = await self._store.check_async(self._guess(to, usage_type, code))
        except BaseException as error:
            _log_check(to, usage_type, error=error)
            raise
        result = _result(status, left)
        _log_check(to, usage_type, result=result)
        return result

    # -- internals ---------------------------------------------------------------

    def _parse(self, to: str) -> PhoneNumber:
        return parse_phone(to, strict=self._strict)

    def _number(self, to: str) -> tuple[PhoneNumber, str, str]:
        # Parsed on every call, never remembered: no plaintext number outlives
        # its request, and a cache would only pay off when one instance sees
        # both the start and the checks of a number, which a load balancer
        # does not promise (and it cost CPU when it missed).
        phone = parse_phone(to, strict=self._strict)
        e164 = phone.e164
        return phone, number_id(self._key, e164), e164

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _plan(self, to: str, usage_type: UsageType | str, client_ip: str | None) -> _Plan:
        phone, number, _ = self._number(to)
        usage = _usage_type(usage_type)
        policy = self._policy
        if policy.allowed_countries is not None:
            region = _region(phone)
            if region not in policy.allowed_countries:
                raise PermissionDeniedError(
                    f"SMS codes are not sent to {region or 'this country'}",
                    code="CountryNotAllowed",
                )
        fixed = self._test_codes.get(phone.e164)
        code = fixed if fixed is not None else generate_code(policy.code_length)
        now = self._now_ms()
        verification_id = secrets.token_urlsafe(_ID_BYTES)
        reservation = Reservation(
            number=number,
            usage_type=usage.value,
            verification_id=verification_id,
            digest=code_digest(self._key, usage.value, phone.e164, code),
            now_ms=now,
            expires_ms=now + _ms(policy.ttl.total_seconds()),
            usage_cooldown_ms=_ms(policy.resend_cooldown.total_seconds()),
            number_cooldown_ms=_ms(policy.per_number_cooldown.total_seconds()),
            hourly=policy.per_number_hourly or 0,
            daily=policy.per_number_daily or 0,
        )
        ip_hourly = policy.per_ip_hourly if client_ip else None
        shared = None
        if ip_hourly or policy.global_hourly:
            shared = SharedReservation(
                ip=ip_id(self._key, client_ip) if client_ip and ip_hourly else None,
                verification_id=verification_id,
                now_ms=now,
                ip_hourly=ip_hourly or 0,
                global_hourly=policy.global_hourly or 0,
            )
        return _Plan(phone, usage, code, fixed is not None, reservation, shared)

    def _guess(self, to: str, usage_type: UsageType | str, code: str) -> Guess:
        _, number, e164 = self._number(to)
        # The plain string: Enum's .value is a descriptor call, three per check.
        usage = _USAGE_VALUES.get(usage_type) if isinstance(usage_type, str) else None
        if usage is None:
            usage = _usage_type(usage_type).value
        text = code.strip(_WHITESPACE) if isinstance(code, str) else ""
        # Any text is hashed and checked: a malformed code is a wrong guess
        # like any other, and NOT_FOUND stays indistinguishable from it.
        return Guess(
            number,
            usage,
            code_digest(self._key, usage, e164, text),
            int(self._clock() * 1000),
            self._policy.max_attempts,
        )

    def _release(self, plan: _Plan, *, shared: bool) -> None:
        try:
            self._store.release(plan.reservation, plan.shared if shared else None)
        except AliyunSmsError as error:
            _log_release_failure(error)

    async def _release_async(self, plan: _Plan, *, shared: bool) -> None:
        try:
            await self._store.release_async(plan.reservation, plan.shared if shared else None)
        except AliyunSmsError as error:
            _log_release_failure(error)

    def _verification(
        self, plan: _Plan, sent: SendResult | None, outcome: _Outcome
    ) -> Verification:
        r = plan.reservation
        resend_ms = r.now_ms + max(r.usage_cooldown_ms, r.number_cooldown_ms)
        outcome.result = "test_number" if plan.test_number else "sent"
        return Verification(
            id=r.verification_id,
            masked_number=plan.phone.masked,
            usage_type=plan.usage_type,
            expires_at=_datetime(r.expires_ms),
            resend_after=_datetime(resend_ms),
            send_result=sent,
        )

    def _normalize_test_numbers(self) -> dict[str, str]:
        codes: dict[str, str] = {}
        for raw, code in self._policy.test_numbers.items():
            try:
                phone = self._parse(raw)
            except AliyunSmsError:
                phone = None
            if phone is None:
                raise ConfigError("a test number in the verification policy is not valid")
            codes[phone.e164] = code
        return codes


@functools.lru_cache(maxsize=256)
def _result(status: CheckStatus, attempts_left: int) -> CheckResult:
    # Results are frozen and few (a status and a small count): shared, not rebuilt.
    return CheckResult(status, attempts_left)


def _log_check(
    to: object,
    usage_type: object,
    *,
    result: CheckResult | None = None,
    error: BaseException | None = None,
) -> None:
    """The one INFO line of a check: outcome, masked number, attempts left."""
    if not logger.isEnabledFor(logging.INFO):
        return
    outcome = _Outcome("check", to, usage_type)
    if result is not None:
        outcome.checked(result)
    outcome.__exit__(None, error, None)


class _Outcome:
    """Logs exactly one INFO line per start or check: outcome and masked number."""

    def __init__(self, action: str, to: object, usage_type: object) -> None:
        self.action = action
        self.to = to
        self.usage_type = usage_type
        self.plan: _Plan | None = None
        self.result = "error"
        self.attempts_left: int | None = None

    def checked(self, result: CheckResult) -> CheckResult:
        self.result = result.status.value
        self.attempts_left = result.attempts_left
        return result

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        if isinstance(exc, AliyunSmsError):
            self.result = exc.code
        elif exc is not None:
            self.result = type(exc).__name__
        extra = "" if self.attempts_left is None else f" attempts_left={self.attempts_left}"
        verification = ""
        if self.plan is not None and self.action == "start":
            verification = f" id={self.plan.reservation.verification_id}"
        logger.info(
            "verification %s: outcome=%s to=%s usage_type=%s%s%s",
            self.action,
            self.result,
            _mask(self.to),
            _usage_label(self.usage_type),
            verification,
            extra,
        )


def _mask(value: object) -> str:
    digits = "".join(ch for ch in value if ch.isdigit()) if isinstance(value, str) else ""
    return "***" + digits[-4:] if len(digits) > 4 else "***"  # noqa: PLR2004


def _secret(secret_key: str | bytes | None, *, shared: bool) -> bytes:
    if secret_key is None:
        if shared:
            raise ConfigError(
                "a shared store needs secret_key: the same random value of at least "
                f"{MIN_SECRET_BYTES} bytes on every instance (e.g. secrets.token_urlsafe(32))"
            )
        return secrets.token_bytes(MIN_SECRET_BYTES)
    key = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(f"secret_key must be at least {MIN_SECRET_BYTES} bytes")
    return key


# Values ("SignIn") and member names ("SIGN_IN"), looked up without Enum's call.
_USAGE_TYPES: dict[str, UsageType] = {
    **{member.name: member for member in UsageType},
    **{member.value: member for member in UsageType},
}


_USAGE_VALUES: dict[object, str] = {key: member.value for key, member in _USAGE_TYPES.items()}
_USAGE_VALUES.update({member: member.value for member in UsageType})


def _usage_label(value: object) -> str:
    """A known usage type's value, else "?": caller text never reaches a log line."""
    if isinstance(value, (str, UsageType)):
        return _USAGE_VALUES.get(value, "?")
    return "?"


def _usage_type(value: UsageType | str) -> UsageType:
    if isinstance(value, UsageType):
        return value
    if isinstance(value, str):
        found = _USAGE_TYPES.get(value)
        if found is not None:
            return found
    valid = ", ".join(member.value for member in UsageType)
    raise TemplateNotFoundError(
        f"unknown usage type; valid usage types are: {valid}", code="UnknownUsageType"
    )


def _region(phone: PhoneNumber) -> str | None:
    import phonenumbers  # noqa: PLC0415 - loaded on first use, as the connector does

    number = phonenumbers.parse(phone.e164, None)
    return phonenumbers.region_code_for_number(number)


def _raise_refusal(refusal: Refusal) -> NoReturn:
    seconds = refusal.retry_after_ms / 1000
    raise RateLimitExceededError(
        f"too many verification codes ({refusal.code}); retry after {seconds:g} s",
        code=refusal.code,
        retry_after=seconds,
    )


def _log_release_failure(error: AliyunSmsError) -> None:
    # Failing closed: the code stays pending until it expires and the cooldown
    # holds; the send error, not this one, is what the caller sees.
    logger.warning("verification release failed (%s): the unsent code stays pending", error.code)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
