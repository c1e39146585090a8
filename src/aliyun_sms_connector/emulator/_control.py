"""The tests' control surface: the outbox, the requests, faults, codes and delivery receipts.

:class:`Controls` is the half of :class:`~._server.Emulator` that a test reads
and steers; the server half (:mod:`._server`) records each request here, takes
its faults from here, and hands each authenticated request to :meth:`Controls._dispatch`.
It serves both products: Dysmsapi's actions (:mod:`._actions`) and the Message
Authentication Service's (:mod:`._mas_actions`), whose messages share the outbox.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector._config import TemplateType
from aliyun_sms_connector._delivery import CHINA_TZ

from ._actions import (
    ACTIONS,
    FlowControl,
    Send,
    check_required,
    read_query,
    read_send_batch_sms,
    read_send_sms,
)
from ._auth import NonceMemory
from ._faults import Fault, FaultQueue
from ._mas_actions import (
    CodeBook,
    check_answer,
    read_check_sms_verify_code,
    read_send_sms_verify_code,
    send_answer,
)
from ._models import Message, ReceivedRequest
from ._numbers import number_key

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ._models import Product, Template

__all__ = ["Controls"]


class Controls:
    """The outbox, the requests received, the fault queue and the receipts of an emulator."""

    # Set by Emulator.__init__, which documents them.
    sign_names: list[str]
    templates: dict[str, Template]
    mas_sign_names: list[str]
    mas_templates: dict[str, Template]
    clock: Callable[[], float]
    on_message: Callable[[Message], None] | None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Bumped by reset(): a request held by a delay across it is dropped.
        self._generation = 0
        self._outbox: list[Message] = []
        # Indexes into the outbox, so that receipts and fail_delivery cost
        # the same however many messages have been accepted.
        self._by_number: dict[str, list[Message]] = {}
        self._by_biz_id: dict[str, list[Message]] = {}
        self._requests: list[ReceivedRequest] = []
        self._faults = FaultQueue()
        self._nonces = NonceMemory()
        self._flow = FlowControl()
        self._codes = CodeBook()
        self._biz_ids = itertools.count(1)

    # -- what tests read -----------------------------------------------------

    @property
    def outbox(self) -> list[Message]:
        """The accepted messages, oldest first (a snapshot)."""
        with self._lock:
            return list(self._outbox)

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received, including rejected ones (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def last_code(self, phone_number: str, *, product: Product | None = None) -> str:
        """The verification code in the latest message to ``phone_number``.

        That is the code Aliyun generated for a Message Authentication Service
        send, else the message's ``code`` variable. ``phone_number`` may be in
        any form (``+86 138 0013 8000``); ``product`` (``"sms"`` or ``"mas"``)
        looks at that product's messages only.

        Raises:
            LookupError: No such message, or it carries no ``code``.
        """
        key = number_key(phone_number)
        with self._lock:
            messages = [
                m
                for m in self._by_number.get(key or "", ())
                if product is None or m.product == product
            ]
        code = (messages[-1].verify_code or messages[-1].params.get("code")) if messages else None
        if code is None:
            raise LookupError("no message with a code to that number in the outbox")
        return code

    def reset(self) -> None:
        """Forget messages, requests, faults, nonces, codes and flow-control history.

        A request still held by :meth:`delay` (or ``latency``) is dropped
        unanswered when its wait ends, and never recorded: it belongs to
        whatever ran before the reset.
        """
        with self._lock:
            self._generation += 1
            self._outbox.clear()
            self._by_number.clear()
            self._by_biz_id.clear()
            self._requests.clear()
        self._flow.clear()
        self._codes.clear()
        self._faults.clear()
        self._nonces.clear()

    # -- fault injection -------------------------------------------------

    def fail_next(
        self,
        code: str,
        *,
        http_status: int = 200,
        message: str | None = None,
        count: int = 1,
        phone_number: str | None = None,
        headers: Mapping[str, str] | None = None,
        action: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with Aliyun error ``code``.

        ``http_status`` 200 gives a business error (``Code`` in the body, and
        ``"Success": false`` for the Message Authentication Service's actions);
        4xx and 5xx give gateway errors. ``headers`` are added to the answer,
        for example ``{"x-acs-retry-after": "1500"}``. Faults that answer
        (this one, :meth:`send_invalid_body`, :meth:`drop_connection`) are
        served in the order they were queued, one per request.

        Every fault method takes ``phone_number`` (only requests naming that
        number) and ``action`` (only that action's requests, such as
        ``"SendSms"``, ``"SendSmsVerifyCode"`` or ``"CheckSmsVerifyCode"``).
        """
        self._faults.add(
            Fault(
                "code",
                count,
                number_key(phone_number),
                _action(action),
                code=code,
                http_status=http_status,
                message=message,
                headers=dict(headers or {}),
            )
        )

    def delay(
        self,
        seconds: float,
        *,
        count: int | None = 1,
        phone_number: str | None = None,
        action: str | None = None,
    ) -> None:
        """Hold the next ``count`` answers for ``seconds`` (None: all of them).

        A delay holds whatever the answer is, a queued fault included; delays
        are used up in the order they were queued.
        """
        self._faults.add(
            Fault("delay", count, number_key(phone_number), _action(action), seconds=seconds)
        )

    def send_invalid_body(
        self,
        body: bytes | str = b"<html><body>502 Bad Gateway</body></html>",
        *,
        http_status: int = 200,
        count: int = 1,
        phone_number: str | None = None,
        action: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with a body that is not JSON."""
        raw = body.encode() if isinstance(body, str) else body
        key = number_key(phone_number)
        self._faults.add(
            Fault("body", count, key, _action(action), http_status=http_status, body=raw)
        )

    def drop_connection(
        self, *, count: int = 1, phone_number: str | None = None, action: str | None = None
    ) -> None:
        """Close the connection halfway through the next ``count`` answers."""
        self._faults.add(Fault("drop", count, number_key(phone_number), _action(action)))

    def fail_delivery(self, biz_id: str, receipt_code: str = "MOBILE_NOT_ON_SERVICE") -> None:
        """Mark accepted messages with ``biz_id`` as failed with ``receipt_code``."""
        with self._lock:
            for message in self._by_biz_id.get(biz_id, ()):
                message.status = "failed"
                message.receipt_code = receipt_code

    # -- actions and the outbox ------------------------------------------------

    def _record(self, action: str, params: dict[str, str]) -> int:
        """Log a request as received; returns the generation it arrived in."""
        with self._lock:
            self._requests.append(ReceivedRequest(action, params, self.clock()))
            return self._generation

    def _dispatch(
        self, action: str, params: Mapping[str, str], request_id: str = ""
    ) -> dict[str, Any]:
        check_required(action, params)
        if action == "SendSms":
            return self._send_sms(params)
        if action == "SendBatchSms":
            return self._send_batch_sms(params)
        if action == "SendSmsVerifyCode":
            return self._send_sms_verify_code(params, request_id)
        if action == "CheckSmsVerifyCode":
            return self._check_sms_verify_code(params)
        return self._query_send_details(params)

    def _send_sms(self, params: Mapping[str, str]) -> dict[str, Any]:
        send = read_send_sms(params, self.sign_names, self.templates)
        return {"Code": "OK", "Message": "OK", "BizId": self._accept(send, params)}

    def _send_batch_sms(self, params: Mapping[str, str]) -> dict[str, Any]:
        sends = read_send_batch_sms(params, self.sign_names, self.templates)
        biz_id = self._next_biz_id()
        for send in sends:
            self._accept(send, params, biz_id=biz_id)
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    def _accept(self, send: Send, params: Mapping[str, str], biz_id: str | None = None) -> str:
        """Put ``send`` in the outbox, after flow control; returns its biz id."""
        now = self.clock()
        if send.template.type is TemplateType.VERIFICATION_CODE:
            self._flow.admit(send.recipients, send.sign_name, now)
        biz_id = biz_id or self._next_biz_id()
        sent_at = datetime.fromtimestamp(now, CHINA_TZ)
        text = f"【{send.sign_name}】{send.template.render(send.variables)}"
        messages = [
            Message(
                phone_number=number,
                sign_name=send.sign_name,
                template_code=send.template_code,
                params=dict(send.variables),
                text=text,
                biz_id=biz_id,
                out_id=params.get("OutId"),
                sent_at=sent_at,
            )
            for number in send.recipients
        ]
        self._store(messages)
        return biz_id

    def _store(self, messages: list[Message]) -> None:
        with self._lock:
            self._outbox.extend(messages)
            for message in messages:
                self._by_number.setdefault(message.phone_number, []).append(message)
                self._by_biz_id.setdefault(message.biz_id, []).append(message)
        if self.on_message is not None:
            for message in messages:
                self.on_message(message)

    def _send_sms_verify_code(self, params: Mapping[str, str], request_id: str) -> dict[str, Any]:
        send = read_send_sms_verify_code(params, self.mas_sign_names, self.mas_templates)
        now = self.clock()
        self._codes.issue(send, now)
        biz_id = self._next_biz_id()
        message = Message(
            phone_number=send.number,
            sign_name=send.sign_name,
            template_code=send.template_code,
            params=dict(send.variables),
            text=send.text,
            biz_id=biz_id,
            out_id=send.out_id,
            sent_at=datetime.fromtimestamp(now, CHINA_TZ),
            product="mas",
            scheme_name=send.scheme_name,
            verify_code=send.code,
        )
        self._store([message])
        return send_answer(biz_id, request_id, send)

    def _check_sms_verify_code(self, params: Mapping[str, str]) -> dict[str, Any]:
        check = read_check_sms_verify_code(params)
        return check_answer(self._codes.check(check, self.clock()), check)

    def _next_biz_id(self) -> str:
        return f"{next(self._biz_ids):012d}{secrets.randbelow(10**6):06d}^0"

    def _query_send_details(self, params: Mapping[str, str]) -> dict[str, Any]:
        query = read_query(params)
        with self._lock:
            # Accepted numbers are stored in their key form already. Messages
            # of the Message Authentication Service are another product's.
            matches = [
                m
                for m in self._by_number.get(query.number_key, ())
                if m.product == "sms" and query.matches(m)
            ]
        return query.answer(matches)


def _action(action: str | None) -> str | None:
    """``action``, when the emulator serves it: a fault for a misspelt one would never fire."""
    if action is not None and action not in ACTIONS:
        raise ValueError(f"the emulator serves no action {action!r}; one of {sorted(ACTIONS)}")
    return action
