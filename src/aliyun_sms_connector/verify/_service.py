"""The verification service: issue, send and check codes.

The order of a start is what keeps it safe and cheap:

1. Parse the number, check its country and type, and the client IP: nothing
   is stored yet.
2. Count the send against the per-IP and global limits. A refusal here has
   touched nothing of the number.
3. Reserve in the store, atomically: the number's cooldowns and caps are
   checked, and only if all allow is the new code's digest held, apart from
   the pending code, and the send counted. A refusal gives back only what
   step 2 took. No SMS was sent.
4. Send the SMS. Until it was handed over, checks are judged against, and
   counted on, the code that was pending before: a code that never left is
   never approvable.
5. If the send returned, or failed and may have gone out (``maybe_sent``),
   commit: the new code becomes the pending one. If it surely sent nothing,
   release what steps 2 and 3 took; the pending code, its attempts and the
   guesses counted stay exactly as they were.

A check counts the guess before it judges it, in one atomic step of the
store, against the verification's ``max_attempts``, the number's
``per_number_failed_checks_hourly`` (never given back) and, when the caller
names the client IP, ``per_ip_failed_checks_hourly``.
"""

from __future__ import annotations

import functools
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
    UsageType,
    parse_phone,
)

from ._aliyun import ALIYUN_HOLDS, aliyun_codes
from ._events import EventSink
from ._guard import PUMPING_REFUSALS, Pump, pumping_refusal
from ._keys import (
    Key,
    code_digest,
    generate_code,
    ip_id,
    number_id,
    service_secret,
)
from ._memory import MemoryStore
from ._numbers import number_type, region
from ._outcome import Outcome, after_commit, bare, log_check, logger
from ._policy import VerificationPolicy
from ._results import CheckResult, CheckStatus, Verification
from ._store import Guess, Refusal, Reservation, SharedReservation, VerificationStore
from ._usage import USAGE_VALUES, to_usage_type

if TYPE_CHECKING:
    from collections.abc import Callable

    from aliyun_sms_connector import AliyunMasConnector, AliyunSmsConnector, PhoneNumber, SendResult

    from ._events import VerificationEvent

__all__ = ["VerificationService"]

# 96 random bits: a verification id cannot be guessed.
_ID_BYTES = 12
_MAX_ID_LENGTH = 64
# A code longer than this is no code of ours: it is hashed cut, and wrong.
_MAX_CODE_LENGTH = 64
_WHITESPACE = " \t\r\n"


@dataclass
class _Plan:
    """One start, prepared. Its repr shows no number and no code (start empties it)."""

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
        codes: ``"local"``: the service makes and keeps each code. ``"aliyun"``:
            Aliyun makes, keeps and checks it (an ``AliyunMasConnector``).
        on_event: Called with a :class:`VerificationEvent` once per outcome of
            a start or check, synchronously; a handler that raises is logged
            at WARNING (once per exception type) and never breaks the call.

    Raises:
        ConfigError: A shared store without ``secret_key``, a key shorter than
            32 bytes or with fewer than 10 distinct bytes, or a test number
            that is not valid; ``codes="aliyun"`` with a ``code_length`` not 4-8.
    """

    def __init__(
        self,
        connector: AliyunSmsConnector | AliyunMasConnector,
        store: VerificationStore | None = None,
        *,
        secret_key: str | bytes | None = None,
        policy: VerificationPolicy | None = None,
        clock: Callable[[], float] | None = None,
        codes: str = "local",
        on_event: Callable[[VerificationEvent], object] | None = None,
    ) -> None:
        self._store = MemoryStore() if store is None else store
        self._policy = VerificationPolicy() if policy is None else policy
        self._clock = clock or time.time
        self._strict = bool(getattr(connector.config, "strict_phone_region_number_check", False))
        self._key = Key(service_secret(secret_key, shared=self._store.shared))
        self._test_codes = self._normalize_test_numbers()
        test_ids = [number_id(self._key, e164) for e164 in self._test_codes]
        hooks = {"parse": self._parse, "now_ms": self._now_ms, "test_ids": test_ids}
        self._aliyun = aliyun_codes(codes, connector, self._policy, self._store, **hooks)
        self._connector = self._aliyun or connector  # with codes="aliyun", sends go through it
        self._events = EventSink(on_event, self._clock)
        self._pump = Pump(self._key, self._policy.pumping_guard)

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

        A new start replaces the pending code of the same number and usage
        type once its SMS was handed to Aliyun. A refused start, or one whose
        send surely failed, leaves the pending code as it was.

        Args:
            to: The recipient, in any form the connector takes (64 characters
                at most).
            usage_type: What the code is for; picks the template.
            client_ip: The requester's IP address, for ``per_ip_hourly``: the
                address your application trusts (behind a proxy, the one the
                proxy reports), as an IPv4 or IPv6 address.

        Raises:
            ValueError: ``client_ip`` is not an IPv4 or IPv6 address.
            InvalidPhoneNumberError: The number is not valid.
            PermissionDeniedError: ``CountryNotAllowed``, ``NumberTypeNotAllowed``
                or ``PumpingSuspected`` (its ``retry_after`` in seconds, until
                the prefix's block ends); nothing was stored or sent.
            RateLimitExceededError: ``VerificationCooldown``,
                ``NumberHourlyLimit``, ``NumberDailyLimit``, ``IpHourlyLimit``
                or ``GlobalHourlyLimit``, with ``retry_after`` in seconds;
                no SMS was sent.
            TemplateError: ``TemplateRegionMismatch``: no template serves the
                number's region (a config problem); nothing was kept or sent.
            ServiceUnavailableError: ``StoreUnavailable``: no SMS was sent. Or
                ``CodeNotActivated``: the SMS went out but the store did not
                confirm that its code became the pending one. It is approvable
                only if the store made it so and the answer was lost; ask for
                a new one.
            AliyunSmsError: The send failed; see its ``maybe_sent``. When it is
                True, the code may arrive and can be checked: the error's
                ``verification`` is the :class:`Verification` it belongs to.
        """
        try:
            return self._start(to, usage_type, client_ip)
        except AliyunSmsError as error:
            del to, client_ip  # the caller's: out of the frame an error tracker renders
            bare(error)

    def _start(self, to: str, usage_type: UsageType | str, client_ip: str | None) -> Verification:
        with Outcome("start", to, usage_type, self._events) as outcome:
            plan = self._plan(to, usage_type, client_ip)
            outcome.plan = plan
            # Emptied on every way out: no frame an error's traceback reaches
            # holds the code (a test number's included), not even as an
            # attribute of a local.
            try:
                store = self._store
                if plan.shared is not None:
                    refusal = outcome.shared(store.reserve_shared(plan.shared))
                    if refusal is not None:
                        _raise_refusal(refusal)
                try:
                    refusal = outcome.shared(store.reserve(plan.reservation))
                except AliyunSmsError:
                    self._release(plan, number=False)
                    raise
                if refusal is not None:
                    self._release(plan, number=False)
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
                if failure is not None and not failure.maybe_sent:
                    self._release(plan, number=True)
                    # Without the connector's frames: their locals hold the code,
                    # which start's caller never had (an error tracker shows them).
                    raise failure.with_traceback(None)
                try:
                    committed = store.commit(plan.reservation)
                except AliyunSmsError:
                    committed = None
                return after_commit(committed, failure, self._verification(plan, sent, outcome))
            finally:
                plan.code = ""

    async def start_async(
        self, to: str, usage_type: UsageType | str, *, client_ip: str | None = None
    ) -> Verification:
        """The async twin of :meth:`start`: same arguments, result and errors."""
        try:
            return await self._start_async(to, usage_type, client_ip)
        except AliyunSmsError as error:
            del to, client_ip  # as in start
            bare(error)

    async def _start_async(
        self, to: str, usage_type: UsageType | str, client_ip: str | None
    ) -> Verification:
        with Outcome("start", to, usage_type, self._events) as outcome:
            plan = self._plan(to, usage_type, client_ip)
            outcome.plan = plan
            # Emptied on every way out: no frame an error's traceback reaches
            # holds the code (a test number's included), not even as an
            # attribute of a local.
            try:
                store = self._store
                if plan.shared is not None:
                    refusal = outcome.shared(await store.reserve_shared_async(plan.shared))
                    if refusal is not None:
                        _raise_refusal(refusal)
                try:
                    refusal = outcome.shared(await store.reserve_async(plan.reservation))
                except AliyunSmsError:
                    await self._release_async(plan, number=False)
                    raise
                if refusal is not None:
                    await self._release_async(plan, number=False)
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
                if failure is not None and not failure.maybe_sent:
                    await self._release_async(plan, number=True)
                    raise failure.with_traceback(None)  # no frame holding the code, as in start
                try:
                    committed = await store.commit_async(plan.reservation)
                except AliyunSmsError:
                    committed = None
                return after_commit(committed, failure, self._verification(plan, sent, outcome))
            finally:
                plan.code = ""

    # -- check -----------------------------------------------------------------

    def check(
        self,
        to: str,
        usage_type: UsageType | str,
        code: str,
        *,
        verification_id: str | None = None,
        client_ip: str | None = None,
    ) -> CheckResult:
        """Check a code. A right code is approved once; wrong ones are counted.

        Args:
            to: The recipient the code was sent to.
            usage_type: What the code is for.
            code: The code the user typed.
            verification_id: The :attr:`Verification.id` that ``start``
                returned. When given, or when the policy's
                ``require_verification_id`` is set, only that verification is
                checked: any other id answers ``NOT_FOUND`` and counts nothing.
            client_ip: The requester's IP address, for
                ``per_ip_failed_checks_hourly``.

        Raises:
            ValueError: ``client_ip`` is not an IPv4 or IPv6 address.
            InvalidPhoneNumberError: The number is not valid.
            TemplateNotFoundError: ``UnknownUsageType``.
            RateLimitExceededError: ``IpFailedChecksLimit``, with
                ``retry_after`` in seconds: nothing was checked.
            ServiceUnavailableError: ``StoreUnavailable``: the store could not
                confirm an outcome, so none is given (never ``WRONG_CODE``).
            AliyunSmsError: With ``codes="aliyun"``, Aliyun's check failed: the
                guess stays counted, and nothing is approved.
        """
        try:
            guess = self._guess(to, usage_type, code, verification_id, client_ip)
            if guess is None:
                answer: tuple[CheckStatus, int] | Refusal = _UNBOUND
            elif self._aliyun is not None:
                answer = self._aliyun.check(self._store, guess, to, code)
            else:
                answer = self._store.check(guess)
            result = _answer(answer)
        except BaseException as error:
            del code  # no frame of the error holds the guess
            log_check(to, usage_type, error=error, events=self._events)
            if isinstance(error, AliyunSmsError):
                del to, client_ip, verification_id  # as in start
                guess = None  # its repr shows the verification id
                bare(error)
            raise
        log_check(to, usage_type, result=result, events=self._events)
        return result

    async def check_async(
        self,
        to: str,
        usage_type: UsageType | str,
        code: str,
        *,
        verification_id: str | None = None,
        client_ip: str | None = None,
    ) -> CheckResult:
        """The async twin of :meth:`check`."""
        # No _Outcome here: checks are the hot path, and the with-block's
        # object was a measurable share of a check's CPU.
        try:
            guess = self._guess(to, usage_type, code, verification_id, client_ip)
            if guess is None:
                answer: tuple[CheckStatus, int] | Refusal = _UNBOUND
            elif self._aliyun is not None:
                answer = await self._aliyun.check_async(self._store, guess, to, code)
            else:
                answer = await self._store.check_async(guess)
            result = _answer(answer)
        except BaseException as error:
            del code  # no frame of the error holds the guess
            log_check(to, usage_type, error=error, events=self._events)
            if isinstance(error, AliyunSmsError):
                del to, client_ip, verification_id  # as in start
                guess = None  # its repr shows the verification id
                bare(error)
            raise
        log_check(to, usage_type, result=result, events=self._events)
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
        usage = to_usage_type(usage_type)
        policy = self._policy
        ip = None if client_ip is None else ip_id(self._key, client_ip)
        test_number = phone.e164 in self._test_codes
        if policy.allowed_countries is not None:
            found = region(phone.e164)
            if found not in policy.allowed_countries:
                raise PermissionDeniedError(
                    f"SMS codes are not sent to {found or 'this country'}",
                    code="CountryNotAllowed",
                )
        allowed_types = policy.allowed_number_types
        if not test_number and allowed_types is not None:
            kind = number_type(phone.e164)
            if kind not in allowed_types:
                raise PermissionDeniedError(
                    f"SMS codes are not sent to {kind.lower().replace('_', ' ')} numbers",
                    code="NumberTypeNotAllowed",
                )
        # Looked up only now: a refusal above leaves no frame holding a test code.
        fixed = self._test_codes.get(phone.e164)
        # With codes="aliyun" Aliyun makes the code: none here, and a marker for its digest.
        code = fixed or ("" if self._aliyun else generate_code(policy.code_length))
        now = self._now_ms()
        verification_id = secrets.token_urlsafe(_ID_BYTES)
        reservation = Reservation(
            number=number,
            usage_type=usage.value,
            verification_id=verification_id,
            digest=code_digest(self._key, usage.value, phone.e164, code) if code else ALIYUN_HOLDS,
            now_ms=now,
            expires_ms=now + _ms(policy.ttl.total_seconds()),
            usage_cooldown_ms=_ms(policy.resend_cooldown.total_seconds()),
            number_cooldown_ms=_ms(policy.per_number_cooldown.total_seconds()),
            hourly=policy.per_number_hourly or 0,
            daily=policy.per_number_daily or 0,
            siblings=self._aliyun.siblings(usage.value) if self._aliyun and not code else (),
        )
        ip_hourly = policy.per_ip_hourly if ip is not None else None
        # A test number sends no SMS: nothing to count or judge.
        pump = None if test_number else self._pump.start(phone.e164, number, usage.value, now)
        shared = None
        if not (ip_hourly or policy.global_hourly):  # the guard rides on the first step
            reservation = reservation._replace(pump=pump)
        else:
            shared = SharedReservation(
                ip=ip if ip_hourly else None,
                verification_id=verification_id,
                now_ms=now,
                ip_hourly=ip_hourly or 0,
                global_hourly=policy.global_hourly or 0,
                pump=pump,
            )
        return _Plan(phone, usage, code, fixed is not None, reservation, shared)

    def _guess(
        self,
        to: str,
        usage_type: UsageType | str,
        code: str,
        verification_id: str | None,
        client_ip: str | None,
    ) -> Guess | None:
        """The store's question, or None when it is NOT_FOUND without asking."""
        _, number, e164 = self._number(to)
        # The plain string: Enum's .value is a descriptor call, three per check.
        usage = USAGE_VALUES.get(usage_type) if isinstance(usage_type, str) else None
        if usage is None:
            usage = to_usage_type(usage_type).value
        policy = self._policy
        ip = None if client_ip is None else ip_id(self._key, client_ip)
        if verification_id is None:
            if policy.require_verification_id:
                return None
        elif (
            not isinstance(verification_id, str)
            or not verification_id
            or len(verification_id) > _MAX_ID_LENGTH
        ):
            return None  # no verification has such an id
        text = code.strip(_WHITESPACE) if isinstance(code, str) else ""
        # Any text is hashed and checked: a malformed code is a wrong guess
        # like any other, and NOT_FOUND stays indistinguishable from it.
        now = int(self._clock() * 1000)
        return Guess(
            number,
            usage,
            code_digest(self._key, usage, e164, text[:_MAX_CODE_LENGTH]),
            now,
            policy.max_attempts,
            policy.per_number_failed_checks_hourly or 0,
            verification_id,
            ip,
            (policy.per_ip_failed_checks_hourly or 0) if ip is not None else 0,
            self._pump.approval(e164, number, usage, now),
        )

    def _release(self, plan: _Plan, *, number: bool) -> None:
        """Give back what a start took: the shared counts, and the number's reservation."""
        try:
            if number:
                self._store.release(plan.reservation)
            if plan.shared is not None:
                self._store.release_shared(plan.shared)
        except AliyunSmsError as error:
            _log_release_failure(error)

    async def _release_async(self, plan: _Plan, *, number: bool) -> None:
        try:
            if number:
                await self._store.release_async(plan.reservation)
            if plan.shared is not None:
                await self._store.release_shared_async(plan.shared)
        except AliyunSmsError as error:
            _log_release_failure(error)

    def _verification(self, plan: _Plan, sent: SendResult | None, outcome: Outcome) -> Verification:
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


# A check that needs no store: the policy requires a verification id and none
# (or no possible one) was given.
_UNBOUND: tuple[CheckStatus, int] = (CheckStatus.NOT_FOUND, 0)


def _answer(answer: tuple[CheckStatus, int] | Refusal) -> CheckResult:
    if isinstance(answer, Refusal):
        _raise_refusal(answer, "too many wrong codes from this address")
    return _result(*answer)


@functools.lru_cache(maxsize=256)
def _result(status: CheckStatus, attempts_left: int) -> CheckResult:
    # Results are frozen and few (a status and a small count): shared, not rebuilt.
    return CheckResult(status, attempts_left)


def _raise_refusal(refusal: Refusal, what: str = "too many verification codes") -> NoReturn:
    seconds = refusal.retry_after_ms / 1000
    if refusal.code in PUMPING_REFUSALS:
        raise pumping_refusal(seconds)
    raise RateLimitExceededError(
        f"{what} ({refusal.code}); retry after {seconds:g} s",
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
