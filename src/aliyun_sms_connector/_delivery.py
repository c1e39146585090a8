"""Delivery receipts (QuerySendDetails) and batch sending (SendBatchSms): the result types."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any

from ._errors import AliyunSmsError
from ._redact import mask_phone

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "CHINA_TZ",
    "MAX_PAGE_SIZE",
    "BatchChunk",
    "BatchMessage",
    "BatchResult",
    "DeliveryReport",
    "DeliveryStatus",
    "RejectedRecipient",
    "china_now",
    "china_today",
    "report_from_record",
    "send_date_text",
]

# Aliyun keeps SendDate in China Standard Time, which has no daylight saving;
# a fixed offset needs no time-zone database on the host.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
MAX_PAGE_SIZE = 50
_SEND_DATE = re.compile(r"[0-9]{8}")


class DeliveryStatus(str, Enum):
    """Where a message is, from Aliyun's ``SendStatus`` (1, 3, 2)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


_STATUSES = {1: DeliveryStatus.PENDING, 2: DeliveryStatus.FAILED, 3: DeliveryStatus.DELIVERED}


@dataclass(frozen=True)
class DeliveryReport:
    """One message's delivery receipt.

    Attributes:
        phone_number: The number as Aliyun reports it.
        status: Pending, delivered or failed.
        error_code: Aliyun's receipt code: ``DELIVERED``, ``MOBILE_NOT_ON_SERVICE``,
            ``USER_REJECT``, ``MOBILE_IN_BLACK``, ...
        send_time: When Aliyun sent it (aware, China Standard Time).
        receive_time: When the phone received it, if it did.
        template_code, out_id: As sent.
        content: The SMS text; it holds the code, so repr leaves it out.
    """

    phone_number: str
    status: DeliveryStatus
    error_code: str | None
    send_time: datetime | None
    receive_time: datetime | None
    template_code: str | None
    out_id: str | None
    content: str | None = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"DeliveryReport(phone_number={mask_phone(self.phone_number)!r}, "
            f"status={self.status.value!r}, error_code={self.error_code!r}, "
            f"send_time={self.send_time!r}, receive_time={self.receive_time!r}, "
            f"template_code={self.template_code!r}, out_id={self.out_id!r})"
        )


def report_from_record(record: Mapping[str, Any]) -> DeliveryReport:
    """Build a report from one ``SmsSendDetailDTO`` as the SDK maps it."""
    try:
        status = _STATUSES.get(int(record.get("SendStatus") or 0), DeliveryStatus.PENDING)
    except (TypeError, ValueError):
        # Not a final state Aliyun documents: the message is still on its way.
        status = DeliveryStatus.PENDING
    return DeliveryReport(
        phone_number=str(record.get("PhoneNum") or ""),
        status=status,
        error_code=_text(record.get("ErrCode")),
        send_time=_china_time(record.get("SendDate")),
        receive_time=_china_time(record.get("ReceiveDate")),
        template_code=_text(record.get("TemplateCode")),
        out_id=_text(record.get("OutId")),
        content=_text(record.get("Content")),
    )


def china_now() -> datetime:
    """Now, in China Standard Time."""
    return datetime.now(CHINA_TZ)


def china_today() -> date:
    """Today's date in China Standard Time, the default ``SendDate``."""
    return china_now().date()


def send_date_text(value: date | str) -> str:
    """``SendDate`` as Aliyun wants it: ``yyyyMMdd``.

    Raises:
        AliyunSmsError: ``value`` is not a date or an 8-digit string.
    """
    if isinstance(value, datetime):
        value = value.astimezone(CHINA_TZ).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    if isinstance(value, str) and _SEND_DATE.fullmatch(value) and _is_a_day(value):
        return value
    raise AliyunSmsError(
        "send_date must be a date or a yyyyMMdd string of a day that exists",
        code="InvalidSendDate",
    )


def _is_a_day(text: str) -> bool:
    # 20991301 or 20230229 match the pattern but name no day.
    try:
        datetime.strptime(text, "%Y%m%d")  # noqa: DTZ007 - a calendar check, no time zone involved
    except ValueError:
        return False
    return True


def _china_time(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA_TZ)
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class BatchMessage:
    """One recipient of :meth:`AliyunSmsConnector.send_batch`.

    Attributes:
        to: The number, in any form the connector takes.
        params: This recipient's template variables.
        sign_name: This recipient's sign name; the config's by default.
    """

    to: str
    params: Mapping[str, Any] = field(default_factory=dict)
    sign_name: str | None = None

    def __repr__(self) -> str:
        return f"BatchMessage(to={mask_phone(self.to)!r}, sign_name={self.sign_name!r})"


@dataclass(frozen=True)
class RejectedRecipient:
    """A batch recipient that was not sent: its position, masked number and why."""

    index: int
    to: str
    error: AliyunSmsError

    @classmethod
    def of(cls, index: int, message: object, error: AliyunSmsError) -> RejectedRecipient:
        """Describe the ``index``-th message, whatever it is, without its number."""
        to = getattr(message, "to", None)
        # The error outlives the batch call: it keeps no frame of it (whose
        # locals hold the other recipients) and no exception it was raised in.
        error.__context__ = None
        error.__cause__ = None
        masked = mask_phone(to) if isinstance(to, str) else "***"
        return cls(index, masked, error.with_traceback(None))


@dataclass(frozen=True)
class BatchChunk:
    """One SendBatchSms call: its biz id, or the error that stopped it."""

    biz_id: str | None
    request_id: str | None
    phone_numbers: tuple[str, ...]
    template_code: str
    attempts: int = 1
    error: AliyunSmsError | None = None

    @classmethod
    def failed(
        cls, phone_numbers: tuple[str, ...], template_code: str, error: AliyunSmsError
    ) -> BatchChunk:
        """A chunk that Aliyun did not accept."""
        return cls(
            biz_id=None,
            request_id=error.request_id,
            phone_numbers=phone_numbers,
            template_code=template_code,
            attempts=error.attempts,
            error=error,
        )

    @property
    def ok(self) -> bool:
        """Whether Aliyun accepted this chunk."""
        return self.error is None

    def __repr__(self) -> str:
        outcome = f"biz_id={self.biz_id!r}" if self.ok else f"error={self.error!r}"
        return (
            f"BatchChunk({outcome}, recipients={len(self.phone_numbers)}, "
            f"template_code={self.template_code!r})"
        )


@dataclass(frozen=True)
class BatchResult:
    """What :meth:`AliyunSmsConnector.send_batch` did."""

    chunks: tuple[BatchChunk, ...]
    rejected: tuple[RejectedRecipient, ...]

    @property
    def ok(self) -> bool:
        """Every recipient valid, and every chunk accepted."""
        return not self.rejected and all(chunk.ok for chunk in self.chunks)

    @property
    def biz_ids(self) -> list[str]:
        """The biz ids of the accepted chunks."""
        return [chunk.biz_id for chunk in self.chunks if chunk.biz_id]
