"""The connector: the public API over a sans-I/O core, as in h11/httpcore.

:mod:`._protocol.calls` validates a call and builds its parameters, :mod:`._protocol.wire`
signs them into bytes and reads the answer, :mod:`._http` moves the
bytes, and :mod:`._protocol.driver` runs attempts and retries (:mod:`._protocol.policy`),
typing every failure through one table (:mod:`._errors`). This module holds
the lanes (one per endpoint), the lifecycle and the results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._config import AliyunSmsConfig, ConnectionConfig, UsageType
from ._delivery import (
    BatchChunk,
    BatchMessage,
    BatchResult,
    DeliveryReport,
    china_now,
    china_today,
    report_from_record,
)
from ._errors import AliyunSmsError
from ._http.transport import Transport
from ._protocol import sdk
from ._protocol.calls import Call, Secrets, prepare_batch, prepare_query, prepare_send
from ._protocol.driver import Driver, log_success, logger
from ._protocol.policy import RetryPolicy
from ._protocol.wire import ACTIONS, Answer, Signer, records_of
from ._redact import mask_phone

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import date, datetime
    from types import TracebackType

    from typing_extensions import Self

    from ._phone import Region
    from ._templates import Route

__all__ = ["AliyunSmsConnector", "ConnectorBase", "EndpointLane", "SendResult"]


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


class EndpointLane:
    """One endpoint: its settings, its signer and its connection pool.

    Args:
        config: The connector's config (SMS or Message Authentication Service).
        overseas: The SMS connector's overseas endpoint, not the mainland one.
        product: Which SDK resolves the endpoint: Dysmsapi or Dypnsapi.
        actions: The actions the signer prepares (``wire.ACTIONS`` for SMS).
    """

    __slots__ = ("credentials", "endpoint", "settings", "signer", "transport")

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        overseas: bool = False,
        product: sdk.Product = "dysmsapi",
        actions: tuple[str, ...] = ACTIONS,
    ) -> None:
        settings = sdk.lane_settings(config, overseas=overseas, product=product)
        self.settings = settings
        self.endpoint = settings.endpoint
        self.credentials = settings.credentials
        self.signer = Signer(
            host=settings.endpoint,
            user_agent=settings.user_agent,
            algorithm=settings.algorithm,
            actions=actions,
        )
        self.transport = Transport(
            protocol=config.protocol,
            host=settings.endpoint,
            ca_file=str(config.ca_file) if config.ca_file else None,
            max_connections=config.max_connections,
        )

    @property
    def client(self) -> Any:
        """The SDK client this lane's settings came from (it never sends)."""
        return self.settings.client

    def __repr__(self) -> str:
        return f"EndpointLane(endpoint={self.endpoint!r})"


_Config = TypeVar("_Config", bound=ConnectionConfig)


class ConnectorBase(Generic[_Config]):
    """What every connector shares: its config, its driver, the secrets its errors scrub.

    Builds the retry policy and the driver from the config's operational keys,
    and gives the lifecycle (:meth:`close`, :meth:`aclose`, the context
    managers). Subclasses say which transports they hold (:meth:`_transports`).
    """

    def __init__(self, config: _Config) -> None:
        self._config = config
        given = (config.access_key_secret, config.security_token)
        self._secrets = Secrets([secret.get_secret_value() for secret in given if secret])
        self._driver = Driver(
            RetryPolicy(
                max_attempts=config.max_attempts,
                base_ms=config.backoff_base,
                cap_ms=config.backoff_cap,
            ),
            connect_timeout=config.connect_timeout / 1000,
            read_timeout=config.read_timeout / 1000,
        )
        self._closed = False

    @property
    def config(self) -> _Config:
        """The validated configuration."""
        return self._config

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    def close(self) -> None:
        """Release the connection pools. Async sessions need :meth:`aclose`."""
        self._closed = True
        for transport in self._transports():
            transport.close()

    async def aclose(self) -> None:
        """Release this event loop's connections and the sync pools.

        Sends still in flight end with ``AliyunSmsError`` code
        ``ConnectorClosed``, never a bare ``CancelledError``.
        """
        self._closed = True
        for transport in self._transports():
            await transport.aclose()

    def _transports(self) -> list[Transport]:
        raise NotImplementedError

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

    def _ensure_open(self) -> None:
        if self._closed:
            raise AliyunSmsError(
                "the connector is closed; build a new one to send again", code="ConnectorClosed"
            )


class AliyunSmsConnector(ConnectorBase[AliyunSmsConfig]):
    """Sends SMS through Aliyun, signing with the official SDK over one connection pool.

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
        china = EndpointLane(config)
        overseas = EndpointLane(config, overseas=True) if config.has_overseas_route else china
        self._lanes: dict[Region, EndpointLane] = {"china": china, "overseas": overseas}
        super().__init__(config)
        # The template each usage type and region routes to (config-derived).
        self._routes: dict[tuple[object, Region], Route] = {}

    @property
    def _client(self) -> Any:
        return self._lanes["china"].client

    @property
    def _transport(self) -> Transport:
        return self._lanes["china"].transport

    @property
    def endpoints(self) -> dict[Region, str]:
        """The endpoint used for mainland and for overseas recipients."""
        return {region: lane.endpoint for region, lane in self._lanes.items()}

    def __repr__(self) -> str:
        # Never raises, even for a connector whose __init__ failed: error
        # trackers render the locals (self included) of the failing frame.
        lanes = getattr(self, "_lanes", None)
        if lanes is None:
            return "AliyunSmsConnector(<not built>)"
        return f"AliyunSmsConnector(endpoint={lanes['china'].endpoint!r})"

    # -- lifecycle -----------------------------------------------------------

    def _transports(self) -> list[Transport]:
        return list({id(lane.transport): lane.transport for lane in self._lanes.values()}.values())

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
        within ``maxAttempts`` and ``deadline``; nothing that may have been
        sent ever is.

        Args:
            to: The recipient's number, in any form :func:`parse_phone` takes.
            usage_type: Picks the template; Generic serves as the fallback.
            payload: Template variables, such as ``{"code": "123456"}``.
                Logto's ``locale`` and ``uiLocales`` are dropped.
            out_id: Your own id for the message, passed to Aliyun.

        Raises:
            InvalidPhoneNumberError, TemplateNotFoundError, TemplateParamError:
                Before any network call.
            TemplateError: ``TemplateRegionMismatch``, before any network call:
                a plain ``templateCode`` whose ``type`` cannot serve the
                number's region (a domestic one and a number outside mainland
                China, or an international one and a mainland number); give
                ``{china, overseas}``.
            AliyunSmsError: A subclass for every failure of the call itself.
        """
        self._ensure_open()
        send = prepare_send(
            self._config,
            self._secrets,
            to=to,
            usage_type=usage_type,
            payload=payload,
            out_id=out_id,
            routes=self._routes,
        )
        answer, attempts = self._driver.run(
            send.call, self._lanes[send.region], "SendSms", send.params
        )
        return self._sent(send.call, send.params, send.usage_type, answer, attempts)

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
        send = prepare_send(
            self._config,
            self._secrets,
            to=to,
            usage_type=usage_type,
            payload=payload,
            out_id=out_id,
            routes=self._routes,
        )
        answer, attempts = await self._driver.run_async(
            send.call, self._lanes[send.region], "SendSms", send.params
        )
        return self._sent(send.call, send.params, send.usage_type, answer, attempts)

    def _sent(
        self,
        call: Call,
        params: dict[str, str],
        usage: UsageType,
        answer: Answer,
        attempts: int,
    ) -> SendResult:
        biz_id, request_id = answer.biz_id, answer.request_id
        log_success("SMS sent", call, biz_id, request_id, attempts)
        return SendResult(
            biz_id=biz_id,
            request_id=request_id,
            phone_number=params["PhoneNumbers"],
            template_code=params["TemplateCode"],
            usage_type=usage,
            attempts=attempts,
            sent_at=china_now(),
            _connector=self,
        )

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
        self._ensure_open()
        query = prepare_query(
            self._config,
            self._secrets,
            phone_number=phone_number,
            biz_id=biz_id,
            send_date=send_date,
            today=china_today(),
        )
        lane, call, params = self._lanes[query.region], query.call, query.params
        reports: list[DeliveryReport] = []
        while True:
            answer, _ = self._driver.run(call, lane, "QuerySendDetails", params)
            following = self._collect(call, params, answer, reports)
            if following is None:
                return reports
            # The deadline is per request: each page gets its own.
            call, params = call.restarted(self._config.deadline), following

    async def query_delivery_async(
        self,
        phone_number: str,
        *,
        biz_id: str | None = None,
        send_date: date | str | None = None,
    ) -> list[DeliveryReport]:
        """The async twin of :meth:`query_delivery`."""
        self._ensure_open()
        query = prepare_query(
            self._config,
            self._secrets,
            phone_number=phone_number,
            biz_id=biz_id,
            send_date=send_date,
            today=china_today(),
        )
        lane, call, params = self._lanes[query.region], query.call, query.params
        reports: list[DeliveryReport] = []
        while True:
            answer, _ = await self._driver.run_async(call, lane, "QuerySendDetails", params)
            following = self._collect(call, params, answer, reports)
            if following is None:
                return reports
            call, params = call.restarted(self._config.deadline), following

    @staticmethod
    def _collect(
        call: Call, params: dict[str, str], answer: Answer, reports: list[DeliveryReport]
    ) -> dict[str, str] | None:
        """Add one page's reports; return the next page's parameters, or None when done."""
        records, total = records_of(answer)
        reports.extend(report_from_record(record) for record in records)
        page = int(params["CurrentPage"])
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "SMS receipts %s page=%d records=%d total=%d",
                call.summary,
                page,
                len(records),
                total,
            )
        if not records or len(reports) >= total:
            return None
        return {**params, "CurrentPage": str(page + 1)}

    # -- SendBatchSms ------------------------------------------------------------

    def send_batch(
        self,
        messages: Iterable[BatchMessage],
        usage_type: UsageType | str = UsageType.GENERIC,
    ) -> BatchResult:
        """Send notifications to many numbers through ``SendBatchSms``.

        Each number is validated and normalised first; invalid ones, and
        those whose region the template cannot serve (``TemplateError``
        ``TemplateRegionMismatch``), are reported in ``rejected`` and the rest
        are still sent. Mainland and
        overseas numbers go in separate calls when their template codes
        differ, each split into chunks of at most 100.

        Returns:
            A :class:`BatchResult`: one :class:`BatchChunk` per call, with its
            ``biz_id`` or its ``error``, and the rejected recipients.
        """
        self._ensure_open()
        chunks, rejected = prepare_batch(self._config, self._secrets, messages, usage_type)
        results = []
        for chunk in chunks:
            # The deadline is per call: each chunk's clock starts when it is sent.
            call = chunk.call.restarted(self._config.deadline)
            try:
                answer, attempts = self._driver.run(
                    call, self._lanes[chunk.region], "SendBatchSms", chunk.params
                )
            except AliyunSmsError as error:
                # Kept in the result: without its frames, which hold the numbers.
                failed = BatchChunk.failed(
                    chunk.phone_numbers, chunk.template_code, error.with_traceback(None)
                )
                results.append(failed)
            else:
                results.append(
                    _batch_sent(call, chunk.phone_numbers, chunk.template_code, answer, attempts)
                )
        return BatchResult(tuple(results), tuple(rejected))

    async def send_batch_async(
        self,
        messages: Iterable[BatchMessage],
        usage_type: UsageType | str = UsageType.GENERIC,
    ) -> BatchResult:
        """The async twin of :meth:`send_batch`."""
        self._ensure_open()
        chunks, rejected = prepare_batch(self._config, self._secrets, messages, usage_type)
        results = []
        for chunk in chunks:
            call = chunk.call.restarted(self._config.deadline)
            try:
                answer, attempts = await self._driver.run_async(
                    call, self._lanes[chunk.region], "SendBatchSms", chunk.params
                )
            except AliyunSmsError as error:
                failed = BatchChunk.failed(
                    chunk.phone_numbers, chunk.template_code, error.with_traceback(None)
                )
                results.append(failed)
            else:
                results.append(
                    _batch_sent(call, chunk.phone_numbers, chunk.template_code, answer, attempts)
                )
        return BatchResult(tuple(results), tuple(rejected))


def _batch_sent(
    call: Call,
    phone_numbers: tuple[str, ...],
    template_code: str,
    answer: Answer,
    attempts: int,
) -> BatchChunk:
    biz_id, request_id = answer.biz_id, answer.request_id
    log_success("SMS batch sent", call, biz_id, request_id, attempts)
    return BatchChunk(
        biz_id=biz_id,
        request_id=request_id,
        phone_numbers=phone_numbers,
        template_code=template_code,
        attempts=attempts,
    )
