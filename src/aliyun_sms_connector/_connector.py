"""The connector: validate, route, call the SDK, retry what is safe, translate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, TypeVar

from . import _sdk
from ._config import AliyunSmsConfig, UsageType
from ._delivery import (
    MAX_PAGE_SIZE,
    BatchChunk,
    BatchMessage,
    BatchResult,
    DeliveryReport,
    RejectedRecipient,
    china_now,
    china_today,
    report_from_record,
    send_date_text,
)
from ._errors import AliyunSmsError, Failure, TemplateNotFoundError, error_from_failure
from ._phone import PhoneNumber, Region, parse_phone
from ._redact import Redactor, mask_phone
from ._templates import build_template_param, route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping
    from datetime import date, datetime
    from types import TracebackType

    from tenacity import RetryCallState
    from typing_extensions import Self

__all__ = ["AliyunSmsConnector", "SendResult"]

logger = logging.getLogger("aliyun_sms_connector")
# A library leaves output to the application; without this, WARNINGs would
# reach stderr through logging's last-resort handler.
logger.addHandler(logging.NullHandler())

_LOGTO_CONTEXT = ("locale", "uiLocales")
_BATCH_LIMIT = 100
_MIN_ATTEMPT = 0.1
_T = TypeVar("_T")


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
        sent_at: When Aliyun accepted it (aware, China Standard Time).
    """

    biz_id: str | None
    request_id: str | None
    phone_number: str
    template_code: str
    usage_type: UsageType
    attempts: int = 1
    sent_at: datetime | None = None
    _connector: AliyunSmsConnector | None = field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:
        # The number is private data: repr keeps only its last 4 digits.
        return (
            f"SendResult(biz_id={self.biz_id!r}, request_id={self.request_id!r}, "
            f"phone_number={mask_phone(self.phone_number)!r}, "
            f"template_code={self.template_code!r}, usage_type={self.usage_type.value!r}, "
            f"attempts={self.attempts!r})"
        )

    def query_delivery(self) -> list[DeliveryReport]:
        """This message's delivery receipt(s), through the connector that sent it."""
        connector, send_date = self._receipt_lookup()
        return connector.query_delivery(self.phone_number, biz_id=self.biz_id, send_date=send_date)

    async def query_delivery_async(self) -> list[DeliveryReport]:
        """The async twin of :meth:`query_delivery`."""
        connector, send_date = self._receipt_lookup()
        return await connector.query_delivery_async(
            self.phone_number, biz_id=self.biz_id, send_date=send_date
        )

    def _receipt_lookup(self) -> tuple[AliyunSmsConnector, date | None]:
        if self._connector is None:
            raise AliyunSmsError(
                "this SendResult was not made by a connector; use "
                "connector.query_delivery(phone_number, biz_id=...)",
                code="NoConnector",
            )
        return self._connector, self.sent_at.date() if self.sent_at else None


@dataclass(frozen=True)
class _Call:
    """One public call: what its log lines say, and what must be scrubbed."""

    labels: tuple[tuple[str, object], ...]
    phones: tuple[str, ...]
    values: tuple[str, ...]
    secrets: tuple[str, ...]
    started: float = field(default_factory=time.perf_counter)

    @cached_property
    def redactor(self) -> Redactor:
        """Built only when an error needs scrubbing: calls that succeed skip it."""
        return Redactor(phones=self.phones, values=self.values, secrets=self.secrets)

    @cached_property
    def summary(self) -> str:
        """``key=value`` pairs for log lines, the number masked; built when logged."""
        return " ".join(
            f"{key}={value.masked if isinstance(value, PhoneNumber) else value}"
            for key, value in self.labels
        )


@dataclass(frozen=True)
class _Lane:
    """The SDK client and connection pool for one endpoint."""

    client: Any
    transport: _sdk.Transport
    endpoint: str


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
        import random  # noqa: PLC0415 - only retries need it

        ceiling = min(self._cap, self._base * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


class _PastDeadline:
    """Stop unless the next attempt, after its wait, still has time to run.

    Counted from the call's start. An attempt squeezed into the deadline's
    last milliseconds would only end in a read timeout, reported as "maybe
    sent", hiding the real cause; it needs at least ``_MIN_ATTEMPT`` seconds.
    """

    def __init__(self, started: float, deadline: float) -> None:
        self._started = started
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        elapsed = time.perf_counter() - self._started
        return elapsed + (state.upcoming_sleep or 0) + _MIN_ATTEMPT > self._deadline


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
        china = self._lane(overseas=False)
        overseas = self._lane(overseas=True) if config.has_overseas_route else china
        self._lanes: dict[Region, _Lane] = {"china": china, "overseas": overseas}
        given = (config.access_key_secret, config.security_token)
        self._secrets = tuple(secret.get_secret_value() for secret in given if secret)
        self._backoff = _Backoff(config.backoff_base, config.backoff_cap)

    def _lane(self, *, overseas: bool) -> _Lane:
        config = self._config
        client = _sdk.new_client(config, overseas=overseas)
        endpoint = _sdk.endpoint_of(client)
        transport = _sdk.Transport(
            protocol=config.protocol,
            endpoint=endpoint,
            ca_file=str(config.ca_file) if config.ca_file else None,
            max_connections=config.max_connections,
        )
        return _Lane(client, transport, endpoint)

    @property
    def _client(self) -> Any:
        return self._lanes["china"].client

    @property
    def _transport(self) -> _sdk.Transport:
        return self._lanes["china"].transport

    @property
    def config(self) -> AliyunSmsConfig:
        """The validated configuration."""
        return self._config

    @property
    def endpoints(self) -> dict[Region, str]:
        """The endpoint used for mainland and for overseas recipients."""
        return {region: lane.endpoint for region, lane in self._lanes.items()}

    def __repr__(self) -> str:
        return f"AliyunSmsConnector(endpoint={self._lanes['china'].endpoint!r})"

    # -- lifecycle -----------------------------------------------------------

    def close(self) -> None:
        """Release the connection pools. Async sessions need :meth:`aclose`."""
        for transport in self._transports():
            transport.close()

    async def aclose(self) -> None:
        """Release this event loop's connections and the sync pools."""
        for transport in self._transports():
            await transport.aclose()

    def _transports(self) -> list[_sdk.Transport]:
        return list({id(lane.transport): lane.transport for lane in self._lanes.values()}.values())

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

    # -- SendSms ---------------------------------------------------------------

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
        call, lane, request, usage = self._prepare_send(to, usage_type, payload, out_id)
        reply = self._execute(call, partial(self._once, call, lane, request))
        return self._sent(call, request, usage, reply)

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
        call, lane, request, usage = self._prepare_send(to, usage_type, payload, out_id)
        reply = await self._execute_async(call, partial(self._once_async, call, lane, request))
        return self._sent(call, request, usage, reply)

    def _prepare_send(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None,
        out_id: str | None,
    ) -> tuple[_Call, _Lane, _sdk.SmsRequest, UsageType]:
        self._ensure_open()
        if out_id is not None and not isinstance(out_id, str):
            raise AliyunSmsError(
                f"out_id must be a string, not {type(out_id).__name__}", code="InvalidOutId"
            )
        phone = parse_phone(to, strict=self._config.strict_phone_region_number_check)
        chosen = route(self._config.templates_by_usage, usage_type, phone.region)
        template_param = build_template_param(payload, chosen.template)
        values = tuple(str(v) for k, v in (payload or {}).items() if k not in _LOGTO_CONTEXT)
        call = _Call(
            labels=(
                ("usage_type", chosen.usage_type.value),
                ("template", chosen.template_code),
                ("to", phone),
            ),
            phones=(to, phone.aliyun, phone.e164, phone.national_number),
            values=(*values, template_param),
            secrets=self._secrets,
        )
        request = _sdk.SmsRequest(
            phone_numbers=phone.aliyun,
            sign_name=self._config.sign_name,
            template_code=chosen.template_code,
            template_param=template_param,
            out_id=out_id,
        )
        return call, self._lanes[phone.region], request, chosen.usage_type

    def _sent(
        self, call: _Call, request: _sdk.SmsRequest, usage: UsageType, reply: _sdk.Reply
    ) -> SendResult:
        result = SendResult(
            biz_id=reply.biz_id,
            request_id=reply.request_id,
            phone_number=request.phone_numbers,
            template_code=request.template_code,
            usage_type=usage,
            attempts=reply.attempts,
            sent_at=china_now(),
            _connector=self,
        )
        _log_success("SMS sent", call, reply)
        return result

    # -- QuerySendDetails ------------------------------------------------------

    def query_delivery(
        self,
        phone_number: str,
        *,
        biz_id: str | None = None,
        send_date: date | str | None = None,
    ) -> list[DeliveryReport]:
        """Delivery receipts for a number on one day, through ``QuerySendDetails``.

        Args:
            phone_number: Normalised exactly as when sending.
            biz_id: Only the message(s) with this biz id.
            send_date: The day they were sent (a date, or ``yyyyMMdd``);
                today in China Standard Time by default.

        Raises:
            InvalidPhoneNumberError: Before any network call.
            AliyunSmsError: A subclass for every failure of the call itself.
        """
        call, lane, first = self._prepare_query(phone_number, biz_id, send_date)
        reports: list[DeliveryReport] = []
        page: _sdk.QueryRequest | None = first
        while page is not None:
            # The deadline is per request: each page gets its own.
            request, paged = page, replace(call, started=time.perf_counter())
            receipts = self._execute(paged, partial(self._once, paged, lane, request))
            page = self._collect(call, request, receipts, reports)
        return reports

    async def query_delivery_async(
        self,
        phone_number: str,
        *,
        biz_id: str | None = None,
        send_date: date | str | None = None,
    ) -> list[DeliveryReport]:
        """The async twin of :meth:`query_delivery`."""
        call, lane, first = self._prepare_query(phone_number, biz_id, send_date)
        reports: list[DeliveryReport] = []
        page: _sdk.QueryRequest | None = first
        while page is not None:
            request, paged = page, replace(call, started=time.perf_counter())
            receipts = await self._execute_async(
                paged, partial(self._once_async, paged, lane, request)
            )
            page = self._collect(call, request, receipts, reports)
        return reports

    def _prepare_query(
        self, phone_number: str, biz_id: str | None, send_date: date | str | None
    ) -> tuple[_Call, _Lane, _sdk.QueryRequest]:
        self._ensure_open()
        phone = parse_phone(phone_number, strict=self._config.strict_phone_region_number_check)
        if biz_id is not None and not isinstance(biz_id, str):
            raise AliyunSmsError(
                f"biz_id must be a string, not {type(biz_id).__name__}", code="InvalidBizId"
            )
        day = send_date_text(send_date if send_date is not None else china_today())
        call = _Call(
            labels=(("operation", "QuerySendDetails"), ("to", phone), ("send_date", day)),
            phones=(phone_number, phone.aliyun, phone.e164, phone.national_number),
            values=(),
            secrets=self._secrets,
        )
        request = _sdk.QueryRequest(phone.aliyun, day, MAX_PAGE_SIZE, 1, biz_id)
        return call, self._lanes[phone.region], request

    @staticmethod
    def _collect(
        call: _Call,
        request: _sdk.QueryRequest,
        receipts: _sdk.Receipts,
        reports: list[DeliveryReport],
    ) -> _sdk.QueryRequest | None:
        reports.extend(report_from_record(record) for record in receipts.records)
        done = not receipts.records or len(reports) >= receipts.total_count
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "SMS receipts %s page=%d records=%d total=%d",
                call.summary,
                request.current_page,
                len(receipts.records),
                receipts.total_count,
            )
        return None if done else replace(request, current_page=request.current_page + 1)

    # -- SendBatchSms ------------------------------------------------------------

    def send_batch(
        self,
        messages: Iterable[BatchMessage],
        usage_type: UsageType | str = UsageType.GENERIC,
    ) -> BatchResult:
        """Send notifications to many numbers through ``SendBatchSms``.

        Each number is validated and normalised first; invalid ones are
        reported in ``rejected`` and the rest are still sent. Mainland and
        overseas numbers go in separate calls when their template codes
        differ, each split into chunks of at most 100.

        Returns:
            A :class:`BatchResult`: one :class:`BatchChunk` per call, with its
            ``biz_id`` or its ``error``, and the rejected recipients.
        """
        plan, rejected = self._plan_batch(messages, usage_type)
        chunks = []
        for planned, lane, request in plan:
            # The deadline is per call: each chunk's clock starts when it is sent.
            call = replace(planned, started=time.perf_counter())
            try:
                reply = self._execute(call, partial(self._once, call, lane, request))
            except AliyunSmsError as error:
                chunks.append(BatchChunk.failed(request, error))
            else:
                chunks.append(self._batch_sent(call, request, reply))
        return BatchResult(tuple(chunks), tuple(rejected))

    async def send_batch_async(
        self,
        messages: Iterable[BatchMessage],
        usage_type: UsageType | str = UsageType.GENERIC,
    ) -> BatchResult:
        """The async twin of :meth:`send_batch`."""
        plan, rejected = self._plan_batch(messages, usage_type)
        chunks = []
        for planned, lane, request in plan:
            call = replace(planned, started=time.perf_counter())
            try:
                reply = await self._execute_async(
                    call, partial(self._once_async, call, lane, request)
                )
            except AliyunSmsError as error:
                chunks.append(BatchChunk.failed(request, error))
            else:
                chunks.append(self._batch_sent(call, request, reply))
        return BatchResult(tuple(chunks), tuple(rejected))

    def _plan_batch(
        self, messages: Iterable[BatchMessage], usage_type: UsageType | str
    ) -> tuple[list[tuple[_Call, _Lane, _sdk.BatchRequest]], list[RejectedRecipient]]:
        self._ensure_open()
        groups: dict[tuple[Region, str], list[tuple[PhoneNumber, str, str, BatchMessage]]] = {}
        rejected: list[RejectedRecipient] = []
        for index, message in enumerate(messages):
            try:
                if not isinstance(message, BatchMessage):
                    raise AliyunSmsError(  # noqa: TRY301 - reported per recipient below
                        f"expected a BatchMessage, not {type(message).__name__}",
                        code="InvalidBatchMessage",
                    )
                phone = parse_phone(
                    message.to, strict=self._config.strict_phone_region_number_check
                )
                chosen = route(self._config.templates_by_usage, usage_type, phone.region)
                param = build_template_param(message.params, chosen.template)
                sign_name = message.sign_name or self._config.sign_name
            except TemplateNotFoundError:
                # No template for this usage type is the same for every
                # recipient: a config problem, not a recipient's.
                raise
            except AliyunSmsError as error:
                rejected.append(RejectedRecipient.of(index, message, error))
                continue
            key = (phone.region, chosen.template_code)
            groups.setdefault(key, []).append((phone, sign_name, param, message))
        plan = []
        for (region, template_code), members in groups.items():
            for start in range(0, len(members), _BATCH_LIMIT):
                chunk = members[start : start + _BATCH_LIMIT]
                request = _sdk.BatchRequest(
                    phone_numbers=tuple(phone.aliyun for phone, _, _, _ in chunk),
                    sign_names=tuple(sign for _, sign, _, _ in chunk),
                    template_code=template_code,
                    template_params=tuple(param for _, _, param, _ in chunk),
                )
                call = _Call(
                    labels=(
                        ("operation", "SendBatchSms"),
                        ("template", template_code),
                        ("recipients", len(chunk)),
                    ),
                    phones=tuple(
                        form
                        for phone, _, _, message in chunk
                        for form in (message.to, phone.aliyun, phone.e164, phone.national_number)
                    ),
                    values=tuple(
                        str(v) for _, _, _, message in chunk for v in message.params.values()
                    ),
                    secrets=self._secrets,
                )
                plan.append((call, self._lanes[region], request))
        return plan, rejected

    @staticmethod
    def _batch_sent(call: _Call, request: _sdk.BatchRequest, reply: _sdk.Reply) -> BatchChunk:
        _log_success("SMS batch sent", call, reply)
        return BatchChunk(
            biz_id=reply.biz_id,
            request_id=reply.request_id,
            phone_numbers=request.phone_numbers,
            template_code=request.template_code,
            attempts=reply.attempts,
        )

    # -- one attempt, and the retry policy ---------------------------------------

    def _ensure_open(self) -> None:
        if self._transport.closed:
            raise AliyunSmsError(
                "the connector is closed; build a new one to send again", code="ConnectorClosed"
            )

    def _timeouts(self, call: _Call) -> _sdk.Timeouts:
        # Each attempt gets at most what is left of the deadline.
        remaining = max(1, int(self._config.deadline - _elapsed_ms(call.started)))
        return _sdk.Timeouts(
            connect_ms=min(self._config.connect_timeout, remaining),
            read_ms=min(self._config.read_timeout, remaining),
        )

    def _once(self, call: _Call, lane: _Lane, request: Any, number: int) -> Any:
        try:
            answer = _sdk.call(lane.client, lane.transport, request, self._timeouts(call))
        except _sdk.CallFailedError as failed:
            raise self._error(call, failed.failure, number) from call.redactor.exception(
                failed.__cause__ or failed
            )
        return self._check(call, answer, number)

    async def _once_async(self, call: _Call, lane: _Lane, request: Any, number: int) -> Any:
        try:
            answer = await _sdk.call_async(
                lane.client, lane.transport, request, self._timeouts(call)
            )
        except _sdk.CallFailedError as failed:
            raise self._error(call, failed.failure, number) from call.redactor.exception(
                failed.__cause__ or failed
            )
        return self._check(call, answer, number)

    def _check(self, call: _Call, answer: Any, number: int) -> Any:
        reply: _sdk.Reply = answer.reply if isinstance(answer, _sdk.Receipts) else answer
        if reply.code == "OK":
            if reply.attempts == number:
                return answer
            fixed = replace(reply, attempts=number)
            return replace(answer, reply=fixed) if isinstance(answer, _sdk.Receipts) else fixed
        failure = Failure(
            "response",
            code=reply.code,
            message=reply.message,
            http_status=reply.http_status,
            request_id=reply.request_id,
        )
        raise self._error(call, failure, number)

    @staticmethod
    def _error(call: _Call, failure: Failure, number: int) -> AliyunSmsError:
        if failure.message:
            failure = replace(failure, message=call.redactor.text(failure.message))
        error = error_from_failure(failure)
        error.attempts = number
        return error

    # The first attempt runs outside tenacity: its objects form a reference
    # cycle per use, which under load made the garbage collector a third of
    # the async path's CPU. Only a call that needs a retry pays for it.

    def _execute(self, call: _Call, attempt: Callable[[int], _T]) -> _T:
        try:
            try:
                return attempt(1)
            except AliyunSmsError as first:
                if not self._may_retry(first):
                    raise
                return self._retry(call, first, attempt)
        except AliyunSmsError as error:
            self._log_failure(call, error)
            raise

    async def _execute_async(self, call: _Call, attempt: Callable[[int], Awaitable[_T]]) -> _T:
        try:
            try:
                return await attempt(1)
            except AliyunSmsError as first:
                if not self._may_retry(first):
                    raise
                return await self._retry_async(call, first, attempt)
        except AliyunSmsError as error:
            self._log_failure(call, error)
            raise

    def _may_retry(self, error: AliyunSmsError) -> bool:
        return error.retryable and self._config.max_attempts > 1

    def _policy(self, call: _Call) -> dict[str, Any]:
        # tenacity is imported here, on the first retry: most calls never need it.
        from tenacity import retry_if_exception, stop_after_attempt, stop_any  # noqa: PLC0415

        past_deadline = _PastDeadline(call.started, self._config.deadline / 1000)
        return {
            "stop": stop_any(stop_after_attempt(self._config.max_attempts), past_deadline),  # type: ignore[arg-type]
            "wait": self._backoff,
            "retry": retry_if_exception(_retryable),
            "before_sleep": lambda state: self._log_retry(call, state),
            "reraise": True,
        }

    def _retry(self, call: _Call, first: AliyunSmsError, attempt: Callable[[int], _T]) -> _T:
        from tenacity import Retrying  # noqa: PLC0415

        # Attempt 1 already failed with `first`: replaying it lets tenacity
        # apply the whole policy (wait, deadline, logging) from the start.
        for state in Retrying(sleep=time.sleep, **self._policy(call)):
            with state:
                number = state.retry_state.attempt_number
                if number == 1:
                    raise first
                result = attempt(number)
        return result

    async def _retry_async(
        self, call: _Call, first: AliyunSmsError, attempt: Callable[[int], Awaitable[_T]]
    ) -> _T:
        from tenacity import AsyncRetrying  # noqa: PLC0415

        async for state in AsyncRetrying(**self._policy(call)):
            with state:
                number = state.retry_state.attempt_number
                if number == 1:
                    raise first
                result = await attempt(number)
        return result

    @staticmethod
    def _log_retry(call: _Call, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "SMS retry %s attempt=%d error=%s code=%s request_id=%s wait_ms=%.0f",
            call.summary,
            state.attempt_number,
            type(error).__name__,
            getattr(error, "code", None),
            getattr(error, "request_id", None),
            (state.upcoming_sleep or 0) * 1000,
        )

    @staticmethod
    def _log_failure(call: _Call, error: AliyunSmsError) -> None:
        logger.warning(
            "SMS failed %s error=%s code=%s request_id=%s attempts=%d elapsed_ms=%.1f",
            call.summary,
            type(error).__name__,
            error.code,
            error.request_id,
            error.attempts,
            _elapsed_ms(call.started),
        )


def _log_success(what: str, call: _Call, reply: _sdk.Reply) -> None:
    # The summary is built only when INFO is on: most applications run without.
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "%s %s biz_id=%s request_id=%s attempts=%d elapsed_ms=%.1f",
        what,
        call.summary,
        reply.biz_id,
        reply.request_id,
        reply.attempts,
        _elapsed_ms(call.started),
    )


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
