"""The connector: validate, route, send through the SDK, retry what is safe, translate."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from . import _sdk
from ._config import AliyunSmsConfig, UsageType
from ._errors import AliyunSmsError, Failure, error_from_failure
from ._phone import PhoneNumber, parse_phone
from ._redact import Redactor, mask_phone
from ._templates import Route, build_template_param, route

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from tenacity import RetryCallState
    from typing_extensions import Self

__all__ = ["AliyunSmsConnector", "SendResult"]

logger = logging.getLogger("aliyun_sms_connector")
# A library leaves output to the application; without this, WARNINGs would
# reach stderr through logging's last-resort handler.
logger.addHandler(logging.NullHandler())

_LOGTO_CONTEXT = ("locale", "uiLocales")


@dataclass(frozen=True)
class SendResult:
    """What Aliyun accepted.

    Attributes:
        biz_id: Aliyun's id for the message, the key to its delivery receipt.
        request_id: Aliyun's request id.
        phone_number: The number as sent to Aliyun.
        template_code: The template code used.
        usage_type: The usage type asked for (the Generic template may have
            served it).
        attempts: How many requests it took (more than 1 after a retry).
    """

    biz_id: str | None
    request_id: str | None
    phone_number: str
    template_code: str
    usage_type: UsageType
    attempts: int = 1

    def __repr__(self) -> str:
        # The number is private data: repr keeps only its last 4 digits.
        return (
            f"SendResult(biz_id={self.biz_id!r}, request_id={self.request_id!r}, "
            f"phone_number={mask_phone(self.phone_number)!r}, "
            f"template_code={self.template_code!r}, usage_type={self.usage_type.value!r}, "
            f"attempts={self.attempts!r})"
        )


@dataclass(frozen=True)
class _Prepared:
    to: str
    phone: PhoneNumber
    route: Route
    template_param: str
    values: tuple[str, ...]
    secrets: tuple[str, ...]
    out_id: str | None
    started: float

    @cached_property
    def redactor(self) -> Redactor:
        """Built only when an error needs scrubbing: sends that succeed skip it."""
        return Redactor(
            phones=[self.to, self.phone.aliyun, self.phone.e164, self.phone.national_number],
            values=[*self.values, self.template_param],
            secrets=self.secrets,
        )


class _Backoff:
    """Full-jitter exponential backoff that honours Aliyun's x-acs-retry-after."""

    def __init__(self, base_ms: int, cap_ms: int) -> None:
        self._base = base_ms / 1000
        self._cap = cap_ms / 1000

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after:
            return float(retry_after)
        ceiling = min(self._cap, self._base * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


class _PastDeadline:
    """Stop when the next wait would end past the deadline, counted from the send's start."""

    def __init__(self, started: float, deadline: float) -> None:
        self._started = started
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        elapsed = time.perf_counter() - self._started
        return elapsed + (state.upcoming_sleep or 0) >= self._deadline


def _retryable(error: BaseException) -> bool:
    return isinstance(error, AliyunSmsError) and error.retryable


class AliyunSmsConnector:
    """Sends SMS through Aliyun with one reused SDK client and connection pool.

    Use it as a context manager (``with`` or ``async with``), or call
    :meth:`close` / :meth:`aclose` when done. One connector serves many
    threads and tasks at once.

    Args:
        config: An :class:`AliyunSmsConfig`, or a mapping such as Logto's
            stored connector JSON.

    Raises:
        ConfigError: The config is invalid.
    """

    def __init__(self, config: AliyunSmsConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, AliyunSmsConfig):
            config = AliyunSmsConfig.model_validate(dict(config))
        self._config = config
        self._client = _sdk.new_client(config)
        self._transport = _sdk.Transport(
            protocol=config.protocol,
            endpoint=config.endpoint,
            ca_file=str(config.ca_file) if config.ca_file else None,
            max_connections=config.max_connections,
        )
        secrets = [config.access_key_secret.get_secret_value()]
        if config.security_token is not None:
            secrets.append(config.security_token.get_secret_value())
        self._secrets = tuple(secrets)
        self._backoff = _Backoff(config.backoff_base, config.backoff_cap)

    @property
    def config(self) -> AliyunSmsConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"AliyunSmsConnector(endpoint={self._config.endpoint!r})"

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Release the connection pool. Async sessions need :meth:`aclose`."""
        self._transport.close()

    async def aclose(self) -> None:
        """Release this event loop's connections and the sync pool."""
        await self._transport.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------

    def send_message(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None = None,
        *,
        out_id: str | None = None,
    ) -> SendResult:
        """Send one templated SMS, as Logto's ``sendMessage`` does.

        Errors with ``retryable=True`` are retried with full-jitter backoff
        within ``maxAttempts`` and ``deadline``; read timeouts never are.

        Args:
            to: The recipient's number, in any form :func:`parse_phone` takes.
            usage_type: Picks the template; Generic serves as the fallback.
            payload: Template variables, such as ``{"code": "123456"}``.
                Logto's ``locale`` and ``uiLocales`` are dropped.
            out_id: Your own id for the message, passed to Aliyun.

        Raises:
            InvalidPhoneNumberError, TemplateNotFoundError, TemplateParamError:
                Before any network call.
            AliyunSmsError: A subclass for every failure of the call itself.
        """
        self._ensure_open()
        prepared = self._prepare(to, usage_type, payload, out_id)
        try:
            try:
                reply = self._attempt(prepared, 1)
            except AliyunSmsError as first:
                if not self._may_retry(first):
                    raise
                reply = self._retry(prepared, first)
        except AliyunSmsError as error:
            self._log_failure(prepared, error)
            raise
        return self._result(prepared, reply)

    async def send_message_async(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None = None,
        *,
        out_id: str | None = None,
    ) -> SendResult:
        """The async twin of :meth:`send_message`: same arguments, result and errors.

        Concurrent sends share this event loop's connections and one TLS
        context; retry backoff awaits, it never blocks the loop.
        """
        self._ensure_open()
        prepared = self._prepare(to, usage_type, payload, out_id)
        try:
            try:
                reply = await self._attempt_async(prepared, 1)
            except AliyunSmsError as first:
                if not self._may_retry(first):
                    raise
                reply = await self._retry_async(prepared, first)
        except AliyunSmsError as error:
            self._log_failure(prepared, error)
            raise
        return self._result(prepared, reply)

    def _ensure_open(self) -> None:
        if self._transport.closed:
            raise AliyunSmsError(
                "the connector is closed; build a new one to send again", code="ConnectorClosed"
            )

    def _prepare(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None,
        out_id: str | None,
    ) -> _Prepared:
        if out_id is not None and not isinstance(out_id, str):
            raise AliyunSmsError(
                f"out_id must be a string, not {type(out_id).__name__}", code="InvalidOutId"
            )
        phone = parse_phone(to, strict=self._config.strict_phone_region_number_check)
        chosen = route(self._config.templates, usage_type, phone.region)
        template_param = build_template_param(payload, chosen.template)
        values = tuple(str(v) for k, v in (payload or {}).items() if k not in _LOGTO_CONTEXT)
        return _Prepared(
            to, phone, chosen, template_param, values, self._secrets, out_id, time.perf_counter()
        )

    # The first attempt runs outside tenacity: its objects form a reference
    # cycle per use, which under load made the garbage collector a third of
    # the async path's CPU. Only a send that needs a retry pays for it.

    def _may_retry(self, error: AliyunSmsError) -> bool:
        return error.retryable and self._config.max_attempts > 1

    def _policy(self, prepared: _Prepared) -> dict[str, Any]:
        # tenacity is imported here, on the first retry: most sends never need it.
        from tenacity import retry_if_exception, stop_after_attempt, stop_any  # noqa: PLC0415

        past_deadline = _PastDeadline(prepared.started, self._config.deadline / 1000)
        return {
            "stop": stop_any(stop_after_attempt(self._config.max_attempts), past_deadline),  # type: ignore[arg-type]
            "wait": self._backoff,
            "retry": retry_if_exception(_retryable),
            "before_sleep": lambda state: self._log_retry(prepared, state),
            "reraise": True,
        }

    def _retry(self, prepared: _Prepared, first: AliyunSmsError) -> _sdk.Reply:
        # Attempt 1 already failed with `first`: replaying it lets tenacity
        # apply the whole policy (wait, deadline, logging) from the start.
        from tenacity import Retrying  # noqa: PLC0415

        for attempt in Retrying(sleep=time.sleep, **self._policy(prepared)):
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first
                reply = self._attempt(prepared, number)
        return reply

    async def _retry_async(self, prepared: _Prepared, first: AliyunSmsError) -> _sdk.Reply:
        from tenacity import AsyncRetrying  # noqa: PLC0415

        async for attempt in AsyncRetrying(**self._policy(prepared)):
            with attempt:
                number = attempt.retry_state.attempt_number
                if number == 1:
                    raise first
                reply = await self._attempt_async(prepared, number)
        return reply

    def _request(self, prepared: _Prepared) -> _sdk.SmsRequest:
        # Each attempt gets at most what is left of the deadline.
        remaining = self._config.deadline - _elapsed_ms(prepared.started)
        remaining_ms = max(1, int(remaining))
        return _sdk.SmsRequest(
            phone_numbers=prepared.phone.aliyun,
            sign_name=self._config.sign_name,
            template_code=prepared.route.template_code,
            template_param=prepared.template_param,
            out_id=prepared.out_id,
            connect_timeout_ms=min(self._config.connect_timeout, remaining_ms),
            read_timeout_ms=min(self._config.read_timeout, remaining_ms),
        )

    def _attempt(self, prepared: _Prepared, number: int) -> _sdk.Reply:
        try:
            reply = _sdk.send_sms(self._client, self._transport, self._request(prepared))
        except _sdk.CallFailedError as failed:
            raise self._error(prepared, failed.failure, number) from prepared.redactor.exception(
                failed.__cause__ or failed
            )
        return self._check(prepared, reply, number)

    async def _attempt_async(self, prepared: _Prepared, number: int) -> _sdk.Reply:
        try:
            reply = await _sdk.send_sms_async(
                self._client, self._transport, self._request(prepared)
            )
        except _sdk.CallFailedError as failed:
            raise self._error(prepared, failed.failure, number) from prepared.redactor.exception(
                failed.__cause__ or failed
            )
        return self._check(prepared, reply, number)

    def _check(self, prepared: _Prepared, reply: _sdk.Reply, number: int) -> _sdk.Reply:
        if reply.code == "OK":
            return reply if reply.attempts == number else replace(reply, attempts=number)
        failure = Failure(
            "response",
            code=reply.code,
            message=reply.message,
            http_status=reply.http_status,
            request_id=reply.request_id,
        )
        raise self._error(prepared, failure, number)

    @staticmethod
    def _error(prepared: _Prepared, failure: Failure, number: int) -> AliyunSmsError:
        if failure.message:
            failure = replace(failure, message=prepared.redactor.text(failure.message))
        error = error_from_failure(failure)
        error.attempts = number
        return error

    @staticmethod
    def _result(prepared: _Prepared, reply: _sdk.Reply) -> SendResult:
        result = SendResult(
            biz_id=reply.biz_id,
            request_id=reply.request_id,
            phone_number=prepared.phone.aliyun,
            template_code=prepared.route.template_code,
            usage_type=prepared.route.usage_type,
            attempts=reply.attempts,
        )
        logger.info(
            "SMS sent usage_type=%s template=%s to=%s biz_id=%s request_id=%s attempts=%d "
            "elapsed_ms=%.1f",
            prepared.route.usage_type.value,
            prepared.route.template_code,
            prepared.phone.masked,
            reply.biz_id,
            reply.request_id,
            reply.attempts,
            _elapsed_ms(prepared.started),
        )
        return result

    @staticmethod
    def _log_retry(prepared: _Prepared, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "SMS retry usage_type=%s template=%s to=%s attempt=%d error=%s code=%s "
            "request_id=%s wait_ms=%.0f",
            prepared.route.usage_type.value,
            prepared.route.template_code,
            prepared.phone.masked,
            state.attempt_number,
            type(error).__name__,
            getattr(error, "code", None),
            getattr(error, "request_id", None),
            (state.upcoming_sleep or 0) * 1000,
        )

    @staticmethod
    def _log_failure(prepared: _Prepared, error: AliyunSmsError) -> None:
        logger.warning(
            "SMS failed usage_type=%s template=%s to=%s error=%s code=%s request_id=%s "
            "attempts=%d elapsed_ms=%.1f",
            prepared.route.usage_type.value,
            prepared.route.template_code,
            prepared.phone.masked,
            type(error).__name__,
            error.code,
            error.request_id,
            error.attempts,
            _elapsed_ms(prepared.started),
        )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
