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

Faults can be injected for one number or for all: ``fail_next``, ``delay``,
``send_invalid_body`` and ``drop_connection``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus

import phonenumbers

from ._config import TemplateType
from ._delivery import CHINA_TZ

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

_MAX_CLOCK_SKEW = 15 * 60
_NONCE_MEMORY = 100_000
_MAX_NUMBERS = 1000
_MAX_BATCH = 100
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_CODE_VALUE = re.compile(r"[A-Za-z0-9]+")
_MAINLAND = re.compile(r"(?:\+86|0086|86)?(1[0-9]{10})")
_DIGITS = re.compile(r"[0-9]{6,16}")
# Aliyun's documented defaults for verification codes, per number and sign name.
_FLOW_LIMITS = (
    (60.0, 1, "触发分钟级流控Permits:1"),
    (3600.0, 5, "触发小时级流控Permits:5"),
    (86400.0, 10, "触发天级流控Permits:10"),
)
_ACS3 = "ACS3-HMAC-SHA256"


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


@dataclass
class _Fault:
    kind: Literal["code", "delay", "body", "drop"]
    remaining: int | None
    phone_number: str | None
    code: str = ""
    http_status: int = 200
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    body: bytes = b""

    def matches(self, numbers: list[str]) -> bool:
        return self.phone_number is None or self.phone_number in numbers


class _Reject(Exception):  # noqa: N818 - internal control flow, not an error class
    """Answer the request with an Aliyun error."""

    def __init__(
        self, code: str, message: str, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.status = status
        self.headers = dict(headers or {})


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
        self._outbox: list[Message] = []
        self._requests: list[ReceivedRequest] = []
        self._faults: list[_Fault] = []
        self._nonces: OrderedDict[str, None] = OrderedDict()
        self._flow: dict[tuple[str, str], deque[float]] = {}
        self._biz_ids = itertools.count(1)
        self._thread: threading.Thread | None = None
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
        if self._thread is not None:
            return self
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

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)
        self._thread = None
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
        """Forget messages, requests, faults, nonces and flow-control history."""
        with self._lock:
            self._outbox.clear()
            self._requests.clear()
            self._faults.clear()
            self._nonces.clear()
            self._flow.clear()

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
        for example ``{"x-acs-retry-after": "1500"}``.
        """
        self._add_fault(
            _Fault(
                "code",
                count,
                _number_key(phone_number),
                code=code,
                http_status=http_status,
                message=message,
                headers=dict(headers or {}),
            )
        )

    def delay(
        self, seconds: float, *, count: int | None = 1, phone_number: str | None = None
    ) -> None:
        """Hold the next ``count`` answers for ``seconds`` (None: all of them)."""
        self._add_fault(_Fault("delay", count, _number_key(phone_number), seconds=seconds))

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
        self._add_fault(
            _Fault("body", count, _number_key(phone_number), http_status=http_status, body=raw)
        )

    def drop_connection(self, *, count: int = 1, phone_number: str | None = None) -> None:
        """Close the connection halfway through the next ``count`` answers."""
        self._add_fault(_Fault("drop", count, _number_key(phone_number)))

    def fail_delivery(self, biz_id: str, receipt_code: str = "MOBILE_NOT_ON_SERVICE") -> None:
        """Mark accepted messages with ``biz_id`` as failed with ``receipt_code``."""
        with self._lock:
            for message in self._outbox:
                if message.biz_id == biz_id:
                    message.status = "failed"
                    message.receipt_code = receipt_code

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, numbers: list[str]) -> list[_Fault]:
        taken: list[_Fault] = []
        kinds: set[str] = set()
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds or not fault.matches(numbers):
                    continue
                kinds.add(fault.kind)
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return taken

    # -- server ----------------------------------------------------------

    def _make_tls(self) -> ssl.SSLContext:
        from ._tls import make_certificates  # noqa: PLC0415 - cryptography only when asked

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
            loop.close()

    async def _run(
        self, sock: socket.socket, ssl_context: ssl.SSLContext | None, ready: threading.Event
    ) -> None:
        from aiohttp import web  # noqa: PLC0415 - loaded with the SDK anyway

        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # SendSms takes up to 1000 numbers in the query string: far past
        # aiohttp's default 8 KiB request line.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            max_line_size=65536,
        )
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        await site.start()
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            # Kept-alive client connections (TLS ones above all) would outlive a
            # graceful shutdown and leak their sockets once the loop closes.
            for transport in list(self._transports):
                transport.abort()
            await runner.cleanup()
            await asyncio.sleep(0)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web  # noqa: PLC0415

        if isinstance(request.transport, asyncio.Transport):
            self._transports.add(request.transport)
        body = await request.read()
        params = dict(request.query)
        if body and request.content_type == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action = request.headers.get("x-acs-action") or params.get("Action", "")
        with self._lock:
            self._requests.append(ReceivedRequest(action, dict(params), self.clock()))
        numbers = _numbers_in(params)
        faults = self._take_faults(numbers)
        request_id = str(uuid.uuid4()).upper()
        delay = self.latency + sum(f.seconds for f in faults if f.kind == "delay")
        if delay > 0:
            await asyncio.sleep(delay)
        for fault in faults:
            if fault.kind == "drop":
                return await _drop(request)
            if fault.kind == "body":
                return web.Response(
                    body=fault.body, status=fault.http_status, content_type="text/html"
                )
            if fault.kind == "code":
                message = fault.message or f"Injected fault: {fault.code}"
                return _error(fault.code, message, request_id, fault.http_status, fault.headers)
        try:
            self._authenticate(request, params, body)
            payload = self._dispatch(action, params)
        except _Reject as reject:
            return _error(reject.code, reject.message, request_id, reject.status, reject.headers)
        return web.json_response({**payload, "RequestId": request_id})

    # -- authentication ----------------------------------------------------

    def _authenticate(self, request: web.Request, params: dict[str, str], body: bytes) -> None:
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith(_ACS3 + " "):
            key_id = self._check_acs3(request, authorization, body)
            token = request.headers.get("x-acs-security-token")
            timestamp = request.headers.get("x-acs-date", "")
            nonce = request.headers.get("x-acs-signature-nonce", "")
        elif "Signature" in params:
            key_id = self._check_v2(request.method, params)
            token = params.get("SecurityToken")
            timestamp = params.get("Timestamp", "")
            nonce = params.get("SignatureNonce", "")
        else:
            raise _Reject("IncompleteSignature", "The request signature is missing.", 400)
        self._check_token(key_id, token)
        self._check_timestamp(timestamp)
        self._check_nonce(nonce)

    def _secret(self, key_id: str) -> str:
        secret = self.access_keys.get(key_id)
        if secret is None:
            raise _Reject("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 400)
        return secret

    def _check_acs3(self, request: web.Request, authorization: str, body: bytes) -> str:
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization[len(_ACS3) + 1 :].split(",")
            if "=" in part
        )
        key_id = fields.get("Credential", "")
        signed = fields.get("SignedHeaders", "")
        signature = fields.get("Signature", "")
        if not (key_id and signed and signature):
            raise _Reject("IncompleteSignature", "The Authorization header is incomplete.", 400)
        secret = self._secret(key_id)
        payload_hash = request.headers.get("x-acs-content-sha256", "")
        if payload_hash != hashlib.sha256(body).hexdigest():
            raise _Reject(
                "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.", 400
            )
        names = signed.split(";")
        headers = "".join(
            f"{name}:{','.join(sorted(v.strip() for v in request.headers.getall(name, [])))}\n"
            for name in names
        )
        query = "&".join(
            f"{key}={quote(value, safe='~')}" for key, value in sorted(request.query.items())
        )
        canonical = (
            f"{request.method}\n{request.path or '/'}\n{query}\n{headers}\n{signed}\n{payload_hash}"
        )
        to_sign = f"{_ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise _Reject(
                "SignatureDoesNotMatch",
                "Specified signature does not match our calculation. "
                f"The server string to sign is: {to_sign}",
                400,
            )
        return key_id

    def _check_v2(self, method: str, params: dict[str, str]) -> str:
        key_id = params.get("AccessKeyId", "")
        secret = self._secret(key_id)
        signed = {k: v for k, v in params.items() if k != "Signature"}
        query = "&".join(
            f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(signed.items())
        )
        to_sign = f"{method}&%2F&{quote_plus(query, safe='~')}"
        digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(expected, params.get("Signature", "")):
            # Aliyun echoes the whole string to sign, number and code included.
            raise _Reject(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{to_sign}",
                400,
            )
        return key_id

    def _check_token(self, key_id: str, token: str | None) -> None:
        if token is None or self.security_tokens is None:
            return
        owner = self.security_tokens.get(token)
        if owner is None:
            raise _Reject(
                "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.", 400
            )
        if owner != key_id:
            raise _Reject(
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
                400,
            )

    @staticmethod
    def _check_timestamp(value: str) -> None:
        try:
            stamp = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            raise _Reject(
                "InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400
            ) from None
        if abs(time.time() - stamp.timestamp()) > _MAX_CLOCK_SKEW:
            raise _Reject(
                "InvalidTimeStamp.Expired",
                f"Specified time stamp or date value is expired. The time stamp is {value}.",
                400,
            )

    def _check_nonce(self, nonce: str) -> None:
        with self._lock:
            if nonce in self._nonces:
                raise _Reject(
                    "SignatureNonceUsed", "Specified signature nonce was used already.", 400
                )
            self._nonces[nonce] = None
            if len(self._nonces) > _NONCE_MEMORY:
                self._nonces.popitem(last=False)

    # -- actions -------------------------------------------------------------

    def _dispatch(self, action: str, params: dict[str, str]) -> dict[str, Any]:
        if action == "SendSms":
            return self._send_sms(params)
        if action == "SendBatchSms":
            return self._send_batch_sms(params)
        if action == "QuerySendDetails":
            return self._query_send_details(params)
        raise _Reject(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            404,
        )

    def _send_sms(self, params: dict[str, str]) -> dict[str, Any]:
        numbers = [n.strip() for n in params.get("PhoneNumbers", "").split(",") if n.strip()]
        if not numbers:
            raise _Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
        if len(numbers) > _MAX_NUMBERS:
            raise _Reject("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        sign_name = params.get("SignName", "")
        template_code = params.get("TemplateCode", "")
        template = self._template(sign_name, template_code)
        variables = self._variables(template, params.get("TemplateParam"))
        recipients = [self._recipient(number, template) for number in numbers]
        return self._accept(
            recipients, sign_name, template_code, template, variables=variables, params=params
        )

    def _send_batch_sms(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            numbers = json.loads(params.get("PhoneNumberJson", ""))
            sign_names = json.loads(params.get("SignNameJson", ""))
            raw_params = json.loads(params.get("TemplateParamJson", "[]") or "[]")
        except ValueError:
            raise _Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法") from None
        if not isinstance(numbers, list) or not isinstance(sign_names, list) or not numbers:
            raise _Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if len(numbers) > _MAX_BATCH:
            raise _Reject("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        if len(sign_names) != len(numbers) or (raw_params and len(raw_params) != len(numbers)):
            raise _Reject("isv.INVALID_PARAMETERS", "参数个数不一致")
        template_code = params.get("TemplateCode", "")
        accepted: list[tuple[list[str], str, Template, dict[str, str]]] = []
        for index, number in enumerate(numbers):
            sign_name = str(sign_names[index])
            template = self._template(sign_name, template_code)
            variables = self._variables(
                template, json.dumps(raw_params[index]) if raw_params else None
            )
            accepted.append(
                ([self._recipient(str(number), template)], sign_name, template, variables)
            )
        biz_id = self._next_biz_id()
        for recipients, sign_name, template, variables in accepted:
            self._accept(
                recipients,
                sign_name,
                template_code,
                template,
                variables=variables,
                params=params,
                biz_id=biz_id,
            )
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    def _template(self, sign_name: str, template_code: str) -> Template:
        if sign_name not in self.sign_names:
            raise _Reject("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        template = self.templates.get(template_code)
        if template is None:
            raise _Reject("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        return template

    @staticmethod
    def _variables(template: Template, raw: str | None) -> dict[str, str]:
        try:
            values = json.loads(raw) if raw else {}
        except ValueError:
            raise _Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值") from None
        if not isinstance(values, dict):
            raise _Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        for name in template.variables:
            if name not in values:
                raise _Reject("isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量: {name}")
        params = {str(k): str(v) for k, v in values.items()}
        if template.type is TemplateType.VERIFICATION_CODE:
            for name in template.variables:
                if not _CODE_VALUE.fullmatch(params[name]):
                    raise _Reject("isv.TEMPLATE_PARAMS_ILLEGAL", "验证码模板变量只能是数字或字母")
        return params

    @staticmethod
    def _recipient(number: str, template: Template) -> str:
        mainland = _mainland(number)
        if mainland is not None:
            if template.type is TemplateType.INTERNATIONAL_MESSAGE:
                raise _Reject(
                    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED", "国际/港澳台消息模板不支持发送境内号码"
                )
            return mainland
        if not _DIGITS.fullmatch(number) or not _valid_international(number):
            raise _Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
        return number

    def _accept(
        self,
        recipients: list[str],
        sign_name: str,
        template_code: str,
        template: Template,
        *,
        variables: dict[str, str],
        params: dict[str, str],
        biz_id: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        if template.type is TemplateType.VERIFICATION_CODE:
            self._flow_control(recipients, sign_name, now)
        biz_id = biz_id or self._next_biz_id()
        sent_at = datetime.fromtimestamp(now, CHINA_TZ)
        text = f"【{sign_name}】{template.render(variables)}"
        messages = [
            Message(
                phone_number=number,
                sign_name=sign_name,
                template_code=template_code,
                params=dict(variables),
                text=text,
                biz_id=biz_id,
                out_id=params.get("OutId"),
                sent_at=sent_at,
            )
            for number in recipients
        ]
        with self._lock:
            self._outbox.extend(messages)
        if self.on_message is not None:
            for message in messages:
                self.on_message(message)
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    def _flow_control(self, recipients: list[str], sign_name: str, now: float) -> None:
        with self._lock:
            for number in recipients:
                history = self._flow.setdefault((number, sign_name), deque())
                while history and now - history[0] >= _FLOW_LIMITS[-1][0]:
                    history.popleft()
                for window, limit, message in _FLOW_LIMITS:
                    if sum(1 for sent in history if now - sent < window) >= limit:
                        raise _Reject("isv.BUSINESS_LIMIT_CONTROL", message)
            for number in recipients:
                self._flow[(number, sign_name)].append(now)

    def _next_biz_id(self) -> str:
        return f"{next(self._biz_ids):012d}{secrets.randbelow(10**6):06d}^0"

    def _query_send_details(self, params: dict[str, str]) -> dict[str, Any]:
        number = params.get("PhoneNumber", "")
        send_date = params.get("SendDate", "")
        if not number:
            raise _Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
        if not re.fullmatch(r"[0-9]{8}", send_date):
            raise _Reject("isv.INVALID_PARAMETERS", "SendDate格式错误，应为yyyyMMdd")
        try:
            page_size = int(params.get("PageSize", "10"))
            page = int(params.get("CurrentPage", "1"))
        except ValueError:
            raise _Reject("isv.INVALID_PARAMETERS", "分页参数错误") from None
        if not 1 <= page_size <= 50 or page < 1:  # noqa: PLR2004 - Aliyun's page size limit
            raise _Reject("isv.INVALID_PARAMETERS", "分页参数错误")
        key = _number_key(number)
        biz_id = params.get("BizId")
        with self._lock:
            matches = [
                m
                for m in self._outbox
                if _number_key(m.phone_number) == key
                and m.sent_at.strftime("%Y%m%d") == send_date
                and (biz_id is None or m.biz_id == biz_id)
            ]
        page_items = matches[(page - 1) * page_size : page * page_size]
        return {
            "Code": "OK",
            "Message": "OK",
            "TotalCount": str(len(matches)),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": [_detail(m) for m in page_items]},
        }


def _detail(message: Message) -> dict[str, Any]:
    status = {"pending": 1, "failed": 2, "delivered": 3}[message.status]
    receive = message.sent_at + timedelta(seconds=2)
    detail: dict[str, Any] = {
        "PhoneNum": message.phone_number,
        "SendStatus": status,
        "ErrCode": message.receipt_code,
        "TemplateCode": message.template_code,
        "Content": message.text,
        "SendDate": message.sent_at.strftime("%Y-%m-%d %H:%M:%S"),
        # A message still on its way has no receipt time yet.
        "ReceiveDate": "" if message.status == "pending" else receive.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if message.out_id is not None:
        detail["OutId"] = message.out_id
    return detail


def _error(
    code: str, message: str, request_id: str, status: int, headers: Mapping[str, str] | None = None
) -> web.Response:
    from aiohttp import web  # noqa: PLC0415

    body: dict[str, Any] = {"Code": code, "Message": message, "RequestId": request_id}
    if status >= 400:  # noqa: PLR2004
        body["HostId"] = "dysmsapi.aliyuncs.com"
        body["Recommend"] = (
            f"https://api.aliyun.com/troubleshoot?q={quote(code)}&product=Dysmsapi"
            f"&requestId={request_id}"
        )
    return web.json_response(body, status=status, headers=headers)


async def _drop(request: web.Request) -> web.StreamResponse:
    from aiohttp import web  # noqa: PLC0415

    # Promise a body, send part of it, then cut the connection: the client
    # has sent its request and sees the answer break off.
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.content_length = 64
    await response.prepare(request)
    await response.write(b'{"Code":"OK","Mes')
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response


def _numbers_in(params: Mapping[str, str]) -> list[str]:
    raw = params.get("PhoneNumbers") or params.get("PhoneNumber") or ""
    numbers = [n for n in raw.split(",") if n.strip()]
    with contextlib.suppress(ValueError, TypeError):
        batch = json.loads(params.get("PhoneNumberJson", "") or "[]")
        if isinstance(batch, list):
            numbers.extend(str(n) for n in batch)
    return [key for key in (_number_key(n) for n in numbers) if key]


def _number_key(number: str | None) -> str | None:
    """Digits only, with a mainland prefix removed, so +86138… matches 138…."""
    if number is None:
        return None
    digits = "".join(ch for ch in number if ch in "0123456789")
    return _mainland(digits) or digits


def _mainland(number: str) -> str | None:
    """The 11-digit national number when ``number`` is a mainland China mobile."""
    match = _MAINLAND.fullmatch(number)
    if match is None:
        return None
    national = match.group(1)
    # 1 + 10 digits is also how a NANP number looks; only a real CN number is mainland.
    parsed = phonenumbers.parse(national, "CN")
    return national if phonenumbers.is_valid_number(parsed) else None


def _valid_international(digits: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False
