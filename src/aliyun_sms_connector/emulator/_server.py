"""The server half of the emulator: its lifecycle, and each HTTP request from arrival to answer.

A request is read (:mod:`._gateway`), recorded and held by any delay or fault
(:mod:`._control`), authenticated (:mod:`._auth`), then dispatched to the
actions of either product (:mod:`._actions` for Dysmsapi, :mod:`._mas_actions`
for the Message Authentication Service) through :class:`~._control.Controls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aliyun_sms_connector._http.tls import make_certificates

from ._auth import ACS3, authenticate
from ._control import Controls
from ._gateway import Reject, drop, error, parameters
from ._mas_actions import MAS_ACTIONS
from ._models import (
    DEFAULT_ACCESS_KEYS,
    DEFAULT_MAS_SIGN_NAME,
    DEFAULT_MAS_TEMPLATES,
    DEFAULT_SIGN_NAME,
    DEFAULT_TEMPLATES,
    Template,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from aiohttp import web
    from typing_extensions import Self

    from ._models import Message

__all__ = ["Emulator"]

_log = logging.getLogger("aliyun_sms_connector.emulator")  # its name before the split

# aiohttp refuses larger bodies before the handler runs; the handler turns
# that into an Aliyun-style answer.
_MAX_BODY = 1024 * 1024
# How long stop() lets answers in flight finish before it cancels them.
_STOP_GRACE = 0.25
# Logto's aliyun-sms-mas table: each of its nine usage types → a system template.
_MAS_USAGE_TEMPLATES = {
    "SignIn": "100001",
    "Register": "100001",
    "ForgotPassword": "100003",
    "Generic": "100001",
    "UserPermissionValidation": "100005",
    "BindNewIdentifier": "100002",
    "OrganizationInvitation": "100001",
    "MfaVerification": "100001",
    "BindMfa": "100001",
}


class Emulator(Controls):
    """A local Dysmsapi and Dypnsapi endpoint, served on 127.0.0.1 from a background thread.

    One port serves both products: the SMS service (SendSms, SendBatchSms,
    QuerySendDetails) and the Message Authentication Service
    (SendSmsVerifyCode, CheckSmsVerifyCode); the action parameter decides.

    Args:
        access_keys: AccessKey id → secret pairs that may sign requests.
        sign_names: Approved sign names (SMS service).
        templates: Template code → content (a verification-code template) or
            :class:`Template` for another kind (SMS service).
        clock: Seconds since the epoch, for flow control, code validity and
            ``Interval``, and message times; tests pass a fake one so they
            never sleep. Signature timestamps are checked against the real
            time, which is what the SDK signs.
        security_tokens: STS token → the AccessKey id it was issued for. When
            given, requests that carry a token must carry one of these.
        port: 0 picks a free port.
        tls: Serve HTTPS with a throwaway CA, whose file is :attr:`ca_file`.
        latency: Seconds added to every answer (a simulated round trip).
        on_message: Called with each accepted :class:`Message`.
        mas_sign_names: The Message Authentication Service's system sign
            names; by default ``[DEFAULT_MAS_SIGN_NAME]``.
        mas_templates: Its system templates, code → content; by default
            ``DEFAULT_MAS_TEMPLATES`` (100001-100005).
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
        mas_sign_names: Iterable[str] | None = None,
        mas_templates: Mapping[str, str | Template] | None = None,
    ) -> None:
        self.access_keys = dict(DEFAULT_ACCESS_KEYS if access_keys is None else access_keys)
        self.sign_names = list([DEFAULT_SIGN_NAME] if sign_names is None else sign_names)
        self.templates = _templates(DEFAULT_TEMPLATES if templates is None else templates)
        self.mas_sign_names = list(
            [DEFAULT_MAS_SIGN_NAME] if mas_sign_names is None else mas_sign_names
        )
        self.mas_templates = _templates(
            DEFAULT_MAS_TEMPLATES if mas_templates is None else mas_templates
        )
        self.security_tokens = dict(security_tokens) if security_tokens is not None else None
        self.clock = clock or time.time
        self.latency = latency
        self.on_message = on_message
        self._port = port
        self._tls = tls
        super().__init__()
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

    def mas_connector_config(self, **overrides: Any) -> dict[str, Any]:
        """A Logto-style ``aliyun-sms-mas`` config pointed at this emulator.

        It uses the first AccessKey and the first system sign name, and all
        nine of Logto's usage types with their system templates (SignIn,
        Register, Generic, OrganizationInvitation, MfaVerification and BindMfa
        → 100001; BindNewIdentifier → 100002; ForgotPassword → 100003;
        UserPermissionValidation → 100005), unless ``overrides`` says
        otherwise. ``endpoint`` and ``protocol`` (and ``caFile`` with
        ``tls=True``) point at this emulator, as in :meth:`connector_config`.
        """
        key_id, secret = next(iter(self.access_keys.items()))
        config: dict[str, Any] = {
            "accessKeyId": key_id,
            "accessKeySecret": secret,
            "signName": self.mas_sign_names[0] if self.mas_sign_names else "",
            "templates": [
                {"usageType": usage_type, "templateCode": code}
                for usage_type, code in _MAS_USAGE_TEMPLATES.items()
            ],
            "endpoint": self.endpoint,
            "protocol": self.protocol,
        }
        if self.ca_file is not None:
            config["caFile"] = self.ca_file
        config.update(overrides)
        return config

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
        generation = self._record(action, params)
        delay, fault = self._faults.take(params, action)
        delay += self.latency
        if delay > 0:
            await asyncio.sleep(delay)
            if generation != self._generation:
                # Held across a reset(): sending it now would land a message,
                # and flow-control history, in the next test's clean slate.
                return await drop(request)
        if fault is not None:
            return await fault.answer(request, request_id, action)
        product = "Dypnsapi" if action in MAS_ACTIONS else "Dysmsapi"
        if malformed is not None:
            return error(
                malformed.code, malformed.message, request_id, malformed.status, product=product
            )
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
            payload = self._dispatch(action, params, request_id)
        except Reject as reject:
            return error(
                reject.code,
                reject.message,
                request_id,
                reject.status,
                reject.headers,
                product=product,
                extra=reject.extra,
            )
        except Exception:  # noqa: BLE001 - answered as Aliyun's InternalError, and logged
            # A request this emulator did not foresee still gets Aliyun's
            # shape, never aiohttp's text/plain 500; the log says what broke.
            _log.exception("the emulator failed on a %s request", action or "unnamed")
            return error(
                "InternalError",
                "The request processing has failed due to some unknown error.",
                request_id,
                500,
                product=product,
            )
        return web.json_response({**payload, "RequestId": request_id})


def _templates(raw: Mapping[str, str | Template]) -> dict[str, Template]:
    """Template code → :class:`Template`; plain text is a verification-code template."""
    return {code: t if isinstance(t, Template) else Template(t) for code, t in raw.items()}


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
