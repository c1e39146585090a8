"""The emulator's injected faults: queued, taken one per request, answered.

A fault may be scoped to one number, to one action (``SendSms``,
``SendSmsVerifyCode``, ``CheckSmsVerifyCode``...), or both; unscoped faults
take the next request of either product.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ._gateway import drop, error
from ._mas_actions import MAS_ACTIONS
from ._numbers import numbers_in

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

__all__ = ["Fault", "FaultQueue"]


@dataclass
class Fault:
    """One queued fault; ``remaining`` None means for every request."""

    kind: Literal["code", "delay", "body", "drop"]
    remaining: int | None
    phone_number: str | None
    action: str | None = None
    code: str = ""
    http_status: int = 200
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    body: bytes = b""

    def matches(self, action: str, numbers: list[str]) -> bool:
        """Whether the fault applies to an ``action`` request naming ``numbers``."""
        return (self.action is None or self.action == action) and (
            self.phone_number is None or self.phone_number in numbers
        )

    async def answer(
        self, request: web.Request, request_id: str, action: str = ""
    ) -> web.StreamResponse:
        """Answer ``request`` as this fault says (not for a delay, which only waits).

        A Dypnsapi action's business error (HTTP 200) says ``"Success": false``,
        and its gateway errors name Dypnsapi, as Aliyun's answers do.
        """
        from aiohttp import web  # noqa: PLC0415

        if self.kind == "drop":
            return await drop(request)
        if self.kind == "body":
            return web.Response(body=self.body, status=self.http_status, content_type="text/html")
        message = self.message or f"Injected fault: {self.code}"
        mas = action in MAS_ACTIONS
        return error(
            self.code,
            message,
            request_id,
            self.http_status,
            self.headers,
            product="Dypnsapi" if mas else "Dysmsapi",
            extra={"Success": False} if mas and self.http_status < 400 else None,  # noqa: PLR2004
        )


class FaultQueue:
    """Faults in the order they were queued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` behind the others."""
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        """Forget every queued fault."""
        with self._lock:
            self._faults.clear()

    def take(self, params: Mapping[str, str], action: str = "") -> tuple[float, Fault | None]:
        """The delay and the answer due for an ``action`` request, used up in queue order.

        The first matching delay and the first matching answer (code, body or
        drop) are taken; later ones wait for later requests.
        """
        if not self._faults:  # the common case: no lock, no number parsing
            return 0.0, None
        with self._lock:
            scoped = any(f.phone_number is not None for f in self._faults)
            numbers = numbers_in(params) if scoped else []
            delay: Fault | None = None
            answer: Fault | None = None
            for fault in self._faults:
                if not fault.matches(action, numbers):
                    continue
                if fault.kind == "delay":
                    if delay is None:
                        delay = fault
                elif answer is None:
                    answer = fault
                if delay is not None and answer is not None:
                    break
            for taken in (delay, answer):
                if taken is not None and taken.remaining is not None:
                    taken.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return (delay.seconds if delay is not None else 0.0), answer
