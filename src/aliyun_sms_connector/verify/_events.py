"""Verification events: one per outcome of a start or a check, for metrics and alerts.

An event says what happened and to which masked number, never a code, a full
number, an IP address, a verification id or a secret, so that a handler may
ship it anywhere (a log, a metrics backend, a webhook).

The handler is called synchronously, on the thread (or event loop) of the
start or check, after its outcome is known. It should be quick: count,
enqueue, return. A handler that raises never breaks the start or check; its
exception is logged at WARNING once per service and exception type, without
its message or traceback (they may quote the event's fields), and dropped.
"""

from __future__ import annotations

import inspect
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from aliyun_sms_connector import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EventKind", "EventSink", "VerificationEvent"]

logger = logging.getLogger("aliyun_sms_connector.verify")

EventKind = Literal[
    "started",
    "send_failed",
    "refused",
    "wrong_code",
    "approved",
    "locked",
    "not_found",
    "pumping_suspected",
]


@dataclass(frozen=True)
class VerificationEvent:
    """What happened to one start or check.

    Attributes:
        kind: ``"started"`` (a code was sent, or stored for a test number),
            ``"send_failed"`` (Aliyun refused or could not be reached),
            ``"refused"`` (a limit, the policy or the store refused; nothing
            was sent), ``"wrong_code"``, ``"approved"``, ``"locked"`` (too
            many wrong codes), ``"not_found"``, or ``"pumping_suspected"``
            (the pumping guard blocked the number's prefix, or reports it).
        usage_type: The usage type's value, such as ``"SignIn"``; None when
            the one given is unknown.
        region: The number's ISO region code, such as ``"CN"``; None when the
            number is not valid or has no region.
        masked_number: The number with all but its last 4 digits hidden.
        code: The error code of a refusal or failed send, such as
            ``"NumberHourlyLimit"`` or ``"PumpingSuspected"``; None otherwise.
            Never a verification code.
        attempts_left: Wrong codes that may still be tried, for
            ``wrong_code``, ``approved`` and ``locked``; None otherwise.
        blocked: For ``pumping_suspected``: True when the start was refused,
            False when the guard only reports (monitor mode or a monitored
            region). None for other kinds.
        at: When it happened, on the service's clock (aware, UTC).
    """

    kind: EventKind
    usage_type: str | None
    region: str | None
    masked_number: str
    code: str | None
    attempts_left: int | None
    blocked: bool | None
    at: datetime


class EventSink:
    """Calls the service's ``on_event`` handler, and survives it."""

    __slots__ = ("_clock", "_handler", "_lock", "_warned")

    def __init__(
        self, handler: Callable[[VerificationEvent], object] | None, clock: Callable[[], float]
    ) -> None:
        if handler is not None and not callable(handler):
            raise ConfigError("on_event must be a callable taking a VerificationEvent")
        if inspect.iscoroutinefunction(handler):
            raise ConfigError(
                "on_event must be a plain function: it is called synchronously; "
                "schedule async work from it (e.g. put the event on a queue)"
            )
        self._handler = handler
        self._clock = clock
        self._warned: set[type[BaseException]] = set()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether there is a handler to call."""
        return self._handler is not None

    def emit(
        self,
        kind: EventKind,
        usage_type: str | None,
        region: str | None,
        masked_number: str,
        *,
        code: str | None = None,
        attempts_left: int | None = None,
        blocked: bool | None = None,
    ) -> None:
        """Build the event and hand it to the handler; never raises."""
        handler = self._handler
        if handler is None:
            return
        event = VerificationEvent(
            kind,
            usage_type,
            region,
            masked_number,
            code,
            attempts_left,
            blocked,
            datetime.fromtimestamp(self._clock(), tz=timezone.utc),
        )
        try:
            handler(event)
        except Exception as error:  # noqa: BLE001 - a handler's bug must not break a start or check
            kind_of_error = type(error)
        else:
            return
        with self._lock:
            first = kind_of_error not in self._warned
            self._warned.add(kind_of_error)
        if first:
            logger.warning(
                "the on_event handler raised %s; the event was dropped (logged once per "
                "exception type)",
                kind_of_error.__name__,
            )
