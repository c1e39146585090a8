"""A fake Message Authentication Service behind an autospec'd ``AliyunMasConnector``.

``FakeAliyun(clock).connector`` is ``create_autospec(AliyunMasConnector,
instance=True)``: calls that do not match the real signatures fail. Behind
it, the fake behaves as Aliyun documents ``SendSmsVerifyCode`` and
``CheckSmsVerifyCode``:

- ``send_verify_code`` makes a code of ``code_length`` digits and holds it for
  ``valid_time`` seconds of the given clock. ``DuplicatePolicy=1``: a new code
  replaces the one held for the same number and usage type (the fake gives
  each usage type its own ``SchemeName``). A send within ``interval``
  seconds of the last is ``FREQUENCY_FAIL``, as Aliyun refuses it.
- ``check_verify_code`` is True (``PASS``) iff the guess equals the code held
  and not expired, else False (``UNKNOWN``). With ``consume=True`` a PASS
  also uses the code up (Aliyun does not document either way).
- ``send_message`` (the caller's code, ``codes="local"``) delivers the
  payload's code and holds nothing: Aliyun cannot check such a code.

It also speaks the emulator's test API that the contract suite uses:
``outbox[-1].params["code"]``, ``requests``, ``fail_next(code)`` and
``drop_connection()``.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from unittest import mock

from aliyun_sms_connector import (
    AccountError,
    AliyunMasConnector,
    AliyunSmsError,
    NetworkError,
    RateLimitExceededError,
    SendResult,
    UsageType,
)

# What fail_next(code) raises, as the emulator maps those codes.
_FAILURES: dict[str, Any] = {
    "isv.AMOUNT_NOT_ENOUGH": lambda: AccountError(
        "balance", code="isv.AMOUNT_NOT_ENOUGH", maybe_sent=False
    ),
    "isv.BUSINESS_LIMIT_CONTROL": lambda: RateLimitExceededError(
        "flow control", code="isv.BUSINESS_LIMIT_CONTROL", maybe_sent=False
    ),
}


@dataclass
class Sent:
    """One message Aliyun handed to a carrier."""

    to: str
    usage_type: str
    params: dict[str, str] = field(default_factory=dict)


def usage_value(usage_type: Any) -> str:
    return str(getattr(usage_type, "value", usage_type))


class FakeAliyun:
    """See the module docstring."""

    def __init__(self, clock: Any, *, consume: bool = False, codes: str = "aliyun") -> None:
        self.clock = clock
        self.consume = consume
        self.codes = codes
        self.lock = threading.Lock()
        self.held: dict[tuple[str, str], tuple[str, float]] = {}
        self.last_send: dict[tuple[str, str], float] = {}
        self.outbox: list[Sent] = []
        self.requests: list[tuple[str, str]] = []
        self.checks: list[tuple[str, str, str, bool]] = []
        self.send_failures: list[AliyunSmsError | str] = []
        self.check_failures: list[AliyunSmsError] = []
        connector = mock.create_autospec(AliyunMasConnector, instance=True)
        # A scheme per usage type, as the fake holds a code per (number, usage type).
        connector.config = SimpleNamespace(
            strict_phone_region_number_check=False,
            protocol="https",
            templates_by_usage={
                usage: SimpleNamespace(scheme_name=usage.value) for usage in UsageType
            },
        )
        connector.send_verify_code.side_effect = self._send_verify_code
        connector.send_verify_code_async.side_effect = self._send_verify_code
        connector.check_verify_code.side_effect = self._check_verify_code
        connector.check_verify_code_async.side_effect = self._check_verify_code
        connector.send_message.side_effect = self._send_message
        connector.send_message_async.side_effect = self._send_message
        connector.fake = self  # how the contract suite's make_service finds the mode
        self.connector = connector

    # -- the emulator's test API --------------------------------------------------

    def fail_next(self, code: str, count: int = 1, phone_number: str | None = None) -> None:
        """The next ``count`` sends fail with Aliyun's ``code``, before any code is made.

        ``phone_number`` is accepted for the emulator's signature; the fake
        fails the next sends whatever their number.
        """
        del phone_number
        self.send_failures.extend([code] * count)

    def drop_connection(self) -> None:
        """The next send reaches Aliyun, which makes and sends the code; the answer is lost."""
        self.send_failures.append("drop")

    def fail_next_check(self, error: AliyunSmsError) -> None:
        """The next check raises ``error`` (Aliyun's answer is not PASS or UNKNOWN)."""
        self.check_failures.append(error)

    def code_for(self, to: str, usage_type: Any) -> str | None:
        held = self.held.get((to, usage_value(usage_type)))
        return None if held is None else held[0]

    # -- behind the connector -------------------------------------------------------

    def _send(self, to: str, usage: str, code: str, *, hold: bool, valid_time: float) -> SendResult:
        failure = self.send_failures.pop(0) if self.send_failures else None
        if isinstance(failure, str) and failure != "drop":
            raise _FAILURES[failure]()  # noqa: RSE102 - a factory: a fresh error each time
        if isinstance(failure, AliyunSmsError):
            raise failure
        if hold:
            self.held[(to, usage)] = (code, self.clock.now + valid_time)
            self.last_send[(to, usage)] = self.clock.now
        self.outbox.append(Sent(to, usage, {"code": code}))
        if failure == "drop":
            raise NetworkError("connection dropped", code="ReadTimeout", maybe_sent=True)
        return SendResult(f"biz-{len(self.outbox)}", "req", to, "100001", usage, attempts=1)

    def _send_verify_code(
        self, to: str, usage_type: Any, *, code_length: int, valid_time: int, interval: int
    ) -> SendResult:
        usage = usage_value(usage_type)
        with self.lock:
            self.requests.append(("SendSmsVerifyCode", to))
            assert 4 <= code_length <= 8
            assert isinstance(valid_time, int)
            assert isinstance(interval, int)
            last = self.last_send.get((to, usage))
            if last is not None and self.clock.now < last + interval:
                raise RateLimitExceededError("too often", code="FREQUENCY_FAIL", maybe_sent=False)
            code = f"{secrets.randbelow(10**code_length):0{code_length}d}"
            return self._send(to, usage, code, hold=True, valid_time=valid_time)

    def _send_message(self, to: str, usage_type: Any, payload: Any) -> SendResult:
        with self.lock:
            self.requests.append(("SendSmsVerifyCode", to))
            usage = usage_value(usage_type)
            return self._send(to, usage, payload["code"], hold=False, valid_time=0)

    def _check_verify_code(self, to: str, usage_type: Any, code: str) -> bool:
        usage = usage_value(usage_type)
        with self.lock:
            self.requests.append(("CheckSmsVerifyCode", to))
            if self.check_failures:
                raise self.check_failures.pop(0)
            held = self.held.get((to, usage))
            passed = held is not None and held[0] == code and self.clock.now < held[1]
            if passed and self.consume:
                del self.held[(to, usage)]
            self.checks.append((to, usage, code, passed))
            return passed
