"""Aliyun-made codes (``codes="aliyun"``): Aliyun generates, sends and checks the code.

A start keeps the service's order and guarantees (see :mod:`._service`):
parse, country and type, the shared limits, the reservation with its
cooldowns and caps, the send, then commit or release. Two things differ:

- the reservation holds :data:`~._store.ALIYUN_HOLDS` where a digest
  would be, so nothing of the code is stored (Aliyun holds it), and the
  local comparison can never approve it;
- the send is ``SendSmsVerifyCode`` with ``##code##``
  (:meth:`AliyunCodes.send_message`): ``CodeLength`` is the policy's
  ``code_length``, ``ValidTime`` its ``ttl`` and ``Interval`` its
  ``resend_cooldown``, in whole seconds.

A check:

1. counts the guess in the store first (:meth:`~._store.VerificationStore.count`),
   under every limit a local check has: the verification id, ``max_attempts``,
   the number's and the client IP's wrong guesses an hour. A missing, expired,
   locked or already approved verification, or one whose code is a local one,
   answers there, and Aliyun is never asked;
2. asks Aliyun (``CheckSmsVerifyCode``), once per guess counted, and only for
   a guess that can be a code at all (``code_length`` ASCII digits; any other
   stays a counted wrong guess);
3. on ``PASS``, approves in the store, once and atomically
   (:meth:`~._store.VerificationStore.approve`): the verification it was
   counted on must still be the pending one. Of two right guesses at once,
   one is ``APPROVED`` and the other ``NOT_FOUND``, as in local mode (or
   ``WRONG_CODE``, should Aliyun use a code up on its first ``PASS``). On
   ``UNKNOWN`` the answer is ``WRONG_CODE``, already counted.

When Aliyun's check fails the guess stays counted and its error is raised:
nothing is approved on doubt. Test numbers (``VerificationPolicy.test_numbers``)
keep their fixed codes, stored and checked locally, in both modes: no SMS, and
Aliyun is never asked.

Aliyun holds one code per number and ``SchemeName``, and Logto's config names
no scheme, so its usage types share one. A start's commit therefore drops the
number's pending Aliyun verifications of every usage type sharing its scheme
(``Reservation.siblings``): their codes are dead at Aliyun, and the new one,
sent with another usage type's template, must not pass their checks (a
"sign-in" code read out to an attacker would otherwise reset a password).
With a ``schemeName`` per usage type in the connector's templates, each keeps
its own code.

Aliyun holds only its newest code (``DuplicatePolicy=1``). While a new
code's SMS is on its way, or after a start raised ``CodeNotActivated``,
guesses are counted on the verification pending before, and Aliyun judges
them against the new code: its holder is approved on that verification,
within its attempts.

Switching modes: a verification made in the other mode is never approved.
An aliyun-mode check of a local one answers ``NOT_FOUND`` and counts nothing;
a local-mode check of an Aliyun one counts a wrong guess. Its user asks for
a new code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import AliyunSmsError, ConfigError, ConfigProblem, UsageType

from ._results import CheckStatus
from ._store import ALIYUN_HOLDS, Refusal, VerificationStore

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from aliyun_sms_connector import AliyunMasConnector, PhoneNumber, SendResult

    from ._policy import VerificationPolicy
    from ._store import Guess

__all__ = ["ALIYUN_HOLDS", "AliyunCodes", "aliyun_codes"]

# Aliyun's CodeLength bounds.
_MIN_LENGTH = 4
_MAX_LENGTH = 8
_WHITESPACE = " \t\r\n"


def aliyun_codes(
    codes: object,
    connector: object,
    policy: VerificationPolicy,
    store: VerificationStore,
    **hooks: Any,
) -> AliyunCodes | None:
    """The Aliyun-code flow for ``codes="aliyun"``, None for ``"local"``.

    Raises:
        ConfigError: ``codes`` is neither; ``"aliyun"`` without an
            ``AliyunMasConnector``, with a ``code_length`` outside 4-8, or
            with a store that cannot keep such verifications.
    """
    if codes == "local":
        return None
    if codes != "aliyun":
        raise ConfigError('codes must be "local" or "aliyun"')
    from aliyun_sms_connector import AliyunMasConnector  # noqa: PLC0415 - only when asked for

    if not isinstance(connector, AliyunMasConnector):
        raise ConfigError(
            'codes="aliyun" needs an AliyunMasConnector: only the Message Authentication '
            "Service makes and checks codes"
        )
    if connector.config.protocol == "http" and not _loopback(connector.endpoint):
        # Anyone on the path could answer CheckSmsVerifyCode with PASS.
        raise ConfigError(
            'codes="aliyun" needs protocol "https": over plain HTTP anyone on the path can '
            "forge Aliyun's PASS (plain HTTP is allowed to a loopback address, the emulator)"
        )
    if not _MIN_LENGTH <= policy.code_length <= _MAX_LENGTH:
        raise ConfigError.from_problems(
            [ConfigProblem("code_length", 'must be 4 to 8 with codes="aliyun" (CodeLength)')],
            "verification policy",
        )
    if getattr(store.count, "__func__", None) is VerificationStore.count:
        raise ConfigError(f'codes="aliyun" needs a store with count and approve, not {store!r}')
    return AliyunCodes(connector, policy, **hooks)


class AliyunCodes:
    """The send and the check of Aliyun-made codes, for one service.

    Args:
        connector: The Message Authentication Service connector.
        policy: The service's policy.
        parse: The service's number parser.
        now_ms: The service's clock, in milliseconds.
        test_ids: The store ids of the policy's test numbers (checked locally).
    """

    def __init__(
        self,
        connector: AliyunMasConnector,
        policy: VerificationPolicy,
        *,
        parse: Callable[[str], PhoneNumber],
        now_ms: Callable[[], int],
        test_ids: Collection[str],
    ) -> None:
        self._connector = connector
        self._length = policy.code_length
        self._valid_time = int(policy.ttl.total_seconds())
        self._interval = int(policy.resend_cooldown.total_seconds())
        self._parse = parse
        self._now_ms = now_ms
        self._test_ids = frozenset(test_ids)
        self._siblings = _scheme_siblings(connector)

    def __repr__(self) -> str:
        return f"AliyunCodes(code_length={self._length}, valid_time={self._valid_time})"

    def siblings(self, usage_type: str) -> tuple[str, ...]:
        """The other usage types whose codes share this one's SchemeName at Aliyun."""
        return self._siblings.get(usage_type, ())

    # -- the start's send: the service calls it as it calls a connector ----------

    def send_message(
        self, to: str, usage_type: UsageType | str, payload: object = None
    ) -> SendResult:
        """``SendSmsVerifyCode`` with ``##code##``: Aliyun makes the code (the payload has none)."""
        del payload
        return self._connector.send_verify_code(
            to,
            usage_type,
            code_length=self._length,
            valid_time=self._valid_time,
            interval=self._interval,
        )

    async def send_message_async(
        self, to: str, usage_type: UsageType | str, payload: object = None
    ) -> SendResult:
        """The async twin of :meth:`send_message`."""
        del payload
        return await self._connector.send_verify_code_async(
            to,
            usage_type,
            code_length=self._length,
            valid_time=self._valid_time,
            interval=self._interval,
        )

    # -- the check -------------------------------------------------------------------

    def check(
        self, store: VerificationStore, guess: Guess, to: str, code: object
    ) -> tuple[CheckStatus, int] | Refusal:
        """Count the guess, ask Aliyun, approve once: what ``VerificationService.check`` answers.

        Raises:
            AliyunSmsError: Aliyun's check failed; the guess stays counted.
        """
        text = self._candidate(code)
        del code
        try:
            if guess.number in self._test_ids:
                return store.check(guess)
            counted = store.count(guess._replace(digest=""))
            if isinstance(counted, Refusal):
                return counted
            if counted.status is not CheckStatus.WRONG_CODE or not text:
                return counted.status, counted.attempts_left
            failure: AliyunSmsError | None = None
            try:
                passed = self._connector.check_verify_code(
                    self._parse(to).e164, guess.usage_type, text
                )
            except AliyunSmsError as error:
                failure = error
            if failure is not None:
                # Without the connector's frames (their locals hold the guess), and
                # raised outside the except block, so that nothing is chained.
                raise failure.with_traceback(None)
            # Only a True is a PASS: anything else leaves the counted wrong guess.
            if passed is not True:
                return CheckStatus.WRONG_CODE, counted.attempts_left
            return store.approve(guess._replace(now_ms=self._now_ms()), counted)
        finally:
            text = ""  # whatever way out: no frame of an error holds the guess

    async def check_async(
        self, store: VerificationStore, guess: Guess, to: str, code: object
    ) -> tuple[CheckStatus, int] | Refusal:
        """The async twin of :meth:`check`."""
        text = self._candidate(code)
        del code
        try:
            if guess.number in self._test_ids:
                return await store.check_async(guess)
            counted = await store.count_async(guess._replace(digest=""))
            if isinstance(counted, Refusal):
                return counted
            if counted.status is not CheckStatus.WRONG_CODE or not text:
                return counted.status, counted.attempts_left
            failure: AliyunSmsError | None = None
            try:
                passed = await self._connector.check_verify_code_async(
                    self._parse(to).e164, guess.usage_type, text
                )
            except AliyunSmsError as error:
                failure = error
            if failure is not None:
                raise failure.with_traceback(None)  # as in check
            if passed is not True:
                return CheckStatus.WRONG_CODE, counted.attempts_left
            return await store.approve_async(guess._replace(now_ms=self._now_ms()), counted)
        finally:
            text = ""  # as in check

    def _candidate(self, code: object) -> str:
        """The guess as Aliyun would take it, or "" when it cannot be a code of ours."""
        text = code.strip(_WHITESPACE) if isinstance(code, str) else ""
        if len(text) != self._length or not (text.isascii() and text.isdigit()):
            return ""
        return text


def _scheme_siblings(connector: AliyunMasConnector) -> dict[str, tuple[str, ...]]:
    """For each usage type, the others sent under the same ``SchemeName``.

    Aliyun keeps one code per number and scheme (``DuplicatePolicy`` 1): a
    code sent for SignIn replaces a ForgotPassword code of the same scheme,
    and would pass a check of it. Logto's config names no scheme, so every
    usage type shares Aliyun's default one unless its template sets
    ``schemeName``. A usage type without a template (nor a Generic one) is
    never sent, and has no siblings.
    """
    templates = connector.config.templates_by_usage
    generic = templates.get(UsageType.GENERIC)
    schemes: dict[str, str | None] = {}
    for usage in UsageType:
        template = templates.get(usage, generic)
        if template is not None:
            schemes[usage.value] = template.scheme_name
    return {
        usage: tuple(other for other, its in schemes.items() if other != usage and its == scheme)
        for usage, scheme in schemes.items()
    }


def _loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` (``host[:port]``) names this machine: localhost or a loopback IP."""
    import ipaddress  # noqa: PLC0415
    from urllib.parse import urlsplit  # noqa: PLC0415

    host = urlsplit(f"//{endpoint}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
