"""A local Aliyun Dysmsapi (2017-05-25) endpoint for tests and demos.

The official SDK talks to it over real HTTP (or HTTPS with ``tls=True``),
with ``endpoint=emulator.endpoint`` and ``protocol="http"``. It checks
signatures (ACS3-HMAC-SHA256 and the legacy HMAC-SHA1), timestamps, nonces,
sign names, templates, variables, numbers and Aliyun's default flow control
for verification codes, and keeps every accepted message in ``outbox``::

    with Emulator() as emulator:
        connector = AliyunSmsConnector(emulator.connector_config())
        connector.send_message("13800138000", "SignIn", {"code": "123456"})
        assert emulator.outbox[0].text == "【AliyunSmsTest】Your code is 123456."

API parameters are read from the query and from an
``application/x-www-form-urlencoded`` body alike, as Aliyun's RPC gateway
reads them, and both signature schemes are checked in either placement.

Faults can be injected for one number or for all: ``fail_next``, ``delay``,
``send_invalid_body`` and ``drop_connection``. Faults that answer are served
in the order they were queued, one per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
import signal
import socket
import ssl
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._config import TemplateType
from ._delivery import CHINA_TZ
from ._emulator_actions import (
    FlowControl,
    Send,
    check_required,
    read_query,
    read_send_batch_sms,
    read_send_sms,
)
from ._emulator_auth import ACS3, NonceMemory, authenticate
from ._emulator_faults import Fault, FaultQueue
from ._emulator_http import Reject, drop, error, parameters
from ._emulator_numbers import number_key
from ._http.tls import make_certificates

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from aiohttp import web
    from typing_extensions import Self

__all__ = [
    "DEFAULT_ACCESS_KEYS",
    "DEFAULT_SIGN_NAME",
    "DEFAULT_TEMPLATES",
    "Emulator",
    "Message",
    "ReceivedRequest",
    "Template",
]

DEFAULT_ACCESS_KEYS = {"LTAIemulatorKeyId": "emulator-access-key-secret"}
DEFAULT_SIGN_NAME = "AliyunSmsTest"
DEFAULT_TEMPLATES: dict[str, str | Template] = {}  # filled in below, after Template

_log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{(\w+)\}")
# aiohttp refuses larger bodies before the handler runs; the handler turns
# that into an Aliyun-style answer.
_MAX_BODY = 1024 * 1024
# How long stop() lets answers in flight finish before it cancels them.
_STOP_GRACE = 0.25


@dataclass(frozen=True)
class Template:
    """A template registered with the emulator.

    Args:
        content: The text, with ``${name}`` placeholders.
        type: Logto's template kind. Verification-code templates (the
            default) get Aliyun's ``[A-Za-z0-9]`` rule and flow control;
            ``INTERNATIONAL_MESSAGE`` templates refuse mainland numbers.
    """

    content: str
    type: TemplateType = TemplateType.VERIFICATION_CODE

    @property
    def variables(self) -> list[str]:
        """The placeholder names, in order."""
        return _VARIABLE.findall(self.content)

    def render(self, params: Mapping[str, str]) -> str:
        """Fill in the placeholders from ``params``."""
        return _VARIABLE.sub(lambda m: str(params[m.group(1)]), self.content)


DEFAULT_TEMPLATES.update(
    {
        "SMS_000001": Template("Your code is ${code}."),
        "SMS_000002": Template("Your code is ${code}.", TemplateType.INTERNATIONAL_MESSAGE),
        "SMS_000003": Template("Hello ${name}, ${event}.", TemplateType.NOTIFICATION),
    }
)


@dataclass
class Message:
    """A message the emulator accepted.

    ``text`` is the SMS as a phone shows it: ``【sign name】`` then the content.
    ``status`` is ``"delivered"`` unless :meth:`Emulator.fail_delivery` says
    otherwise; ``receipt_code`` is the matching receipt code.
    """

    phone_number: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    text: str
    biz_id: str
    out_id: str | None
    sent_at: datetime
    status: Literal["delivered", "failed", "pending"] = "delivered"
    receipt_code: str = "DELIVERED"


@dataclass(frozen=True)
class ReceivedRequest:
    """A request that reached the emulator (counted even when it failed)."""

    action: str
    params: dict[str, str]
    received_at: float


class Emulator:
    """A local Dysmsapi endpoint, served on 127.0.0.1 from a background thread.

    Args:
        access_keys: AccessKey id → secret pairs that may sign requests.
        sign_names: Approved sign names.
        templates: Template code → content (a verification-code template) or
            :class:`Template` for another kind.
        clock: Seconds since the epoch, for flow control and message times;
            tests pass a fake one so they never sleep. Signature timestamps
            are checked against the real time, which is what the SDK signs.
        security_tokens: STS token → the AccessKey id it was issued for. When
            given, requests that carry a token must carry one of these.
        port: 0 picks a free port.
        tls: Serve HTTPS with a throwaway CA, whose file is :attr:`ca_file`.
        latency: Seconds added to every answer (a simulated round trip).
        on_message: Called with each accepted :class:`Message`.
    """

    def __init__(
        self,
        access_keys: Mapping[str, str] | None = None,
        sign_names: Iterable[str] | None = None,
        templates: Mapping[str, str | Template] | None = None,
        clock: Callable[[], float] | None = None,
        *,
        security_tokens: Mapping[str, str] | None = None,
        port: int = 0,
        tls: bool = False,
        latency: float = 0.0,
        on_message: Callable[[Message], None] | None = None,
    ) -> None:
        self.access_keys = dict(DEFAULT_ACCESS_KEYS if access_keys is None else access_keys)
        self.sign_names = list([DEFAULT_SIGN_NAME] if sign_names is None else sign_names)
        raw_templates = DEFAULT_TEMPLATES if templates is None else templates
        self.templates = {
            code: t if isinstance(t, Template) else Template(t) for code, t in raw_templates.items()
        }
        self.security_tokens = dict(security_tokens) if security_tokens is not None else None
        self.clock = clock or time.time
        self.latency = latency
        self.on_message = on_message
        self._port = port
        self._tls = tls
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
        self._biz_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()  # ends serve_forever()
        # start() and stop() may race: serve_forever() in one thread, stop() in another.
        self._lifecycle = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._socket: socket.socket | None = None
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self.ca_file: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start serving; returns self. The port is bound before this returns."""
        with self._lifecycle:
            return self._start()

    def _start(self) -> Self:
        if self._thread is not None:
            return self
        self._stop_requested.clear()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._port))
            sock.listen(1024)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        ssl_context = self._make_tls() if self._tls else None
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(sock, ssl_context, ready, errors), daemon=True
        )
        self._thread.start()
        ready.wait()
        if errors:
            self.stop()
            raise errors[0]
        return self

    def serve_forever(self) -> None:
        """Serve until Ctrl-C or SIGTERM, then stop, removing the TLS files.

        Starts the emulator if needed. SIGTERM (as sent by ``kill``, Docker
        or systemd) ends it like Ctrl-C, so that the throwaway CA and key of
        ``tls=True`` are not left in the temporary directory. Ctrl-C
        propagates as :class:`KeyboardInterrupt` after the cleanup; SIGTERM
        returns normally, and so does a :meth:`stop` from another thread.
        Signals reach only the main thread; from another thread this waits
        for :meth:`stop`.
        """
        in_main = threading.current_thread() is threading.main_thread()
        previous: Any = None
        installed = False
        # Everything inside the try: a signal at any point still reaches stop().
        try:
            if in_main:
                previous = signal.signal(signal.SIGTERM, _raise_terminated)
                installed = True
            self.start()
            self._stop_requested.wait()
        except _TerminatedError:
            pass
        finally:
            if installed:
                # None: the previous handler was not set from Python.
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            self.stop()

    def stop(self) -> None:
        """Stop serving and free the port.

        Answers still in flight (held by :meth:`delay`, say) get 0.25 s to
        finish; then they are cancelled and their clients see the connection
        close with no answer.
        """
        self._stop_requested.set()
        with self._lifecycle:
            self._stop()

    def _stop(self) -> None:
        if self._thread is None:
            return
        # The server thread may still be starting (a signal can arrive during
        # start()), so ask again until its loop exists and has ended.
        deadline = time.monotonic() + 10
        while self._thread.is_alive() and time.monotonic() < deadline:
            loop, stopped = self._loop, self._stopped
            if loop is not None and stopped is not None:
                with contextlib.suppress(RuntimeError):  # the loop has just closed
                    loop.call_soon_threadsafe(stopped.set)
            self._thread.join(timeout=0.05)
        self._thread = None
        self._loop = self._stopped = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    @property
    def port(self) -> int:
        """The port served on."""
        if self._socket is None:
            raise RuntimeError("the emulator is not running; call start() or use it in a with")
        return int(self._socket.getsockname()[1])

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, for the connector's ``endpoint``."""
        return f"127.0.0.1:{self.port}"

    @property
    def protocol(self) -> Literal["http", "https"]:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self._tls else "http"

    def connector_config(self, **overrides: Any) -> dict[str, Any]:
        """A Logto-style connector config pointed at this emulator.

        It uses the first AccessKey and sign name, and a Generic template
        with the first template code, unless ``overrides`` says otherwise.
        """
        key_id, secret = next(iter(self.access_keys.items()))
        config: dict[str, Any] = {
            "accessKeyId": key_id,
            "accessKeySecret": secret,
            "signName": self.sign_names[0] if self.sign_names else "",
            "templates": [{"usageType": "Generic", "templateCode": next(iter(self.templates))}],
            "endpoint": self.endpoint,
            "protocol": self.protocol,
        }
        if self.ca_file is not None:
            config["caFile"] = self.ca_file
        config.update(overrides)
        return config

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

    def reset(self) -> None:
        """Forget messages, requests, faults, nonces and flow-control history.

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
    ) -> None:
        """Answer the next ``count`` requests with Aliyun error ``code``.

        ``http_status`` 200 gives a business error (``Code`` in the body);
        4xx and 5xx give gateway errors. ``headers`` are added to the answer,
        for example ``{"x-acs-retry-after": "1500"}``. Faults that answer
        (this one, :meth:`send_invalid_body`, :meth:`drop_connection`) are
        served in the order they were queued, one per request.
        """
        self._faults.add(
            Fault(
                "code",
                count,
                number_key(phone_number),
                code=code,
                http_status=http_status,
                message=message,
                headers=dict(headers or {}),
            )
        )

    def delay(
        self, seconds: float, *, count: int | None = 1, phone_number: str | None = None
    ) -> None:
        """Hold the next ``count`` answers for ``seconds`` (None: all of them).

        A delay holds whatever the answer is, a queued fault included; delays
        are used up in the order they were queued.
        """
        self._faults.add(Fault("delay", count, number_key(phone_number), seconds=seconds))

    def send_invalid_body(
        self,
        body: bytes | str = b"<html><body>502 Bad Gateway</body></html>",
        *,
        http_status: int = 200,
        count: int = 1,
        phone_number: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with a body that is not JSON."""
        raw = body.encode() if isinstance(body, str) else body
        self._faults.add(
            Fault("body", count, number_key(phone_number), http_status=http_status, body=raw)
        )

    def drop_connection(self, *, count: int = 1, phone_number: str | None = None) -> None:
        """Close the connection halfway through the next ``count`` answers."""
        self._faults.add(Fault("drop", count, number_key(phone_number)))

    def fail_delivery(self, biz_id: str, receipt_code: str = "MOBILE_NOT_ON_SERVICE") -> None:
        """Mark accepted messages with ``biz_id`` as failed with ``receipt_code``."""
        with self._lock:
            for message in self._by_biz_id.get(biz_id, ()):
                message.status = "failed"
                message.receipt_code = receipt_code

    # -- server ----------------------------------------------------------

    def _make_tls(self) -> ssl.SSLContext:
        self._tempdir = tempfile.TemporaryDirectory(prefix="aliyun-sms-emulator-")
        ca_file, cert_file, key_file = make_certificates(Path(self._tempdir.name))
        self.ca_file = str(ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def _serve(
        self,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        ready: threading.Event,
        errors: list[BaseException],
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run(sock, ssl_context, ready))
        except BaseException as err:  # noqa: BLE001 - reported to start()
            errors.append(err)
            ready.set()
        finally:
            try:
                _cancel_leftovers(loop)
            finally:
                loop.close()

    async def _run(
        self, sock: socket.socket, ssl_context: ssl.SSLContext | None, ready: threading.Event
    ) -> None:
        from aiohttp import web  # noqa: PLC0415 - loaded with the SDK anyway

        self._stopped = asyncio.Event()
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # SendSms takes up to 1000 numbers in the query string: far past
        # aiohttp's default 8 KiB request line. The limits are generous so
        # that oversized requests reach the handler and get Aliyun's answer
        # (isv.MOBILE_COUNT_OVER_LIMIT) rather than aiohttp's plain-text 400.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=_STOP_GRACE,
            max_line_size=_MAX_BODY,
            max_field_size=65536,
        )
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            # aiohttp's own shutdown: stop listening, give each answer in
            # flight (a delay, say) _STOP_GRACE to finish, then cancel its
            # handler and wait for it, so no task is left pending when the
            # loop closes. Cutting the connections first would hide them
            # from it.
            await runner.cleanup()
            # Kept-alive client connections (TLS ones above all) can outlive
            # the graceful close and would leak their sockets.
            for transport in list(self._transports):
                transport.abort()
            await asyncio.sleep(0)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web  # noqa: PLC0415

        if isinstance(request.transport, asyncio.Transport):
            self._transports.add(request.transport)
        request_id = str(uuid.uuid4()).upper()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(
                "RequestEntityTooLarge",
                f"The request body is larger than {_MAX_BODY} bytes.",
                request_id,
                413,
            )
        malformed: Reject | None = None
        try:
            query, params = parameters(request, body)
        except Reject as reject:
            malformed, query, params = reject, {}, {}
        acs3 = request.headers.get("Authorization", "").startswith(ACS3 + " ")
        # The action is signed where the scheme signs it: the x-acs-action
        # header for ACS3, the Action parameter for v2.
        header_action = request.headers.get("x-acs-action", "")
        action = (header_action if acs3 else params.get("Action")) or header_action
        action = action or params.get("Action", "")
        with self._lock:
            self._requests.append(ReceivedRequest(action, params, self.clock()))
            generation = self._generation
        delay, fault = self._faults.take(params)
        delay += self.latency
        if delay > 0:
            await asyncio.sleep(delay)
            if generation != self._generation:
                # Held across a reset(): sending it now would land a message,
                # and flow-control history, in the next test's clean slate.
                return await drop(request)
        if fault is not None:
            return await fault.answer(request, request_id)
        if malformed is not None:
            return error(malformed.code, malformed.message, request_id, malformed.status)
        try:
            authenticate(
                request,
                acs3,
                query,
                params,
                body,
                access_keys=self.access_keys,
                security_tokens=self.security_tokens,
                nonces=self._nonces,
            )
            payload = self._dispatch(action, params)
        except Reject as reject:
            return error(reject.code, reject.message, request_id, reject.status, reject.headers)
        except Exception:  # noqa: BLE001 - answered as Aliyun's InternalError, and logged
            # A request this emulator did not foresee still gets Aliyun's
            # shape, never aiohttp's text/plain 500; the log says what broke.
            _log.exception("the emulator failed on a %s request", action or "unnamed")
            return error(
                "InternalError",
                "The request processing has failed due to some unknown error.",
                request_id,
                500,
            )
        return web.json_response({**payload, "RequestId": request_id})

    # -- actions and the outbox ------------------------------------------------

    def _dispatch(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        check_required(action, params)
        if action == "SendSms":
            return self._send_sms(params)
        if action == "SendBatchSms":
            return self._send_batch_sms(params)
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
        with self._lock:
            self._outbox.extend(messages)
            for message in messages:
                self._by_number.setdefault(message.phone_number, []).append(message)
                self._by_biz_id.setdefault(message.biz_id, []).append(message)
        if self.on_message is not None:
            for message in messages:
                self.on_message(message)
        return biz_id

    def _next_biz_id(self) -> str:
        return f"{next(self._biz_ids):012d}{secrets.randbelow(10**6):06d}^0"

    def _query_send_details(self, params: Mapping[str, str]) -> dict[str, Any]:
        query = read_query(params)
        with self._lock:
            # Accepted numbers are stored in their key form already.
            matches = [m for m in self._by_number.get(query.number_key, ()) if query.matches(m)]
        return query.answer(matches)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await whatever tasks are left, as asyncio.run() does.

    A task still pending when its loop closes is logged as destroyed.
    """
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


class _TerminatedError(Exception):
    """SIGTERM arrived while serve_forever() was waiting."""


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _TerminatedError
