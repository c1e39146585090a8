"""The only module that touches the official Aliyun SDK.

The SDK is imported lazily, when the first client is built: importing it costs
about 300 ms (aiohttp alone is 120 ms), and ``import aliyun_sms_connector``
should not.

One wrapper around the SDK's transport calls (``DaraCore.do_action`` and
``async_do_action``) is installed when the first client is built. It passes
straight through unless a call made by this library is active in the current
context (a context variable). For this library's calls it sends the request
that the SDK built and signed through the connector's own :class:`Transport`,
and records the HTTP status, which the SDK drops before it raises for a
non-JSON body. Other SDK users in the same process see no difference.

Why a transport of our own: the SDK's async path opens a new aiohttp session,
connection and SSL context (loading the CA bundle, ~37 ms of CPU) for every
call, and its sync path creates its shared session without a lock and loads
the CA bundle again for each new pooled connection.
"""

from __future__ import annotations

import functools
import json
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import Failure

if TYPE_CHECKING:
    import ssl

    from ._config import AliyunSmsConfig

__all__ = [
    "BatchRequest",
    "CallFailedError",
    "Observation",
    "QueryRequest",
    "Receipts",
    "Reply",
    "SmsRequest",
    "Timeouts",
    "Transport",
    "call",
    "call_async",
    "endpoint_of",
    "new_client",
]


@dataclass
class Observation:
    """What the transport saw during one of this library's calls."""

    transport: Transport | None = None
    attempts: int = 0
    http_status: int | None = None

    def record(self, response: Any) -> None:
        """Keep the HTTP status of a DaraResponse."""
        self.http_status = getattr(response, "status_code", None)


@dataclass(frozen=True)
class Reply:
    """A SendSms or SendBatchSms answer that came back as HTTP 2xx."""

    code: str | None
    message: str | None
    biz_id: str | None
    request_id: str | None
    http_status: int | None
    attempts: int


class CallFailedError(Exception):
    """Internal: the SDK raised; ``failure`` describes it, ``__cause__`` is the original."""

    def __init__(self, failure: Failure, attempts: int) -> None:
        super().__init__(failure.kind)
        self.failure = failure
        self.attempts = attempts


class Transport:
    """The HTTP layer behind one connector: pooled, with one TLS context.

    The sync side is a ``requests.Session`` built here, so that first use from
    many threads at once is safe. The async side keeps one ``aiohttp``
    session per event loop, made on first use in that loop. Both verify TLS
    with a single SSL context that loads the CA bundle (or ``caFile``) once.
    """

    def __init__(
        self, *, protocol: str, endpoint: str, ca_file: str | None, max_connections: int
    ) -> None:
        import requests  # noqa: PLC0415 - loaded with the SDK
        from requests.adapters import HTTPAdapter  # noqa: PLC0415

        self._max_connections = max_connections
        # The SDK honours HTTP(S)_PROXY and NO_PROXY; so does this transport.
        # The endpoint is fixed, so the lookup is done once: per request it
        # cost aiohttp two thread hops (netrc and proxy) with trust_env=True.
        self._proxy = _environment_proxy(protocol, endpoint)
        self._proxies = {protocol: self._proxy} if self._proxy else {}
        self._ssl: ssl.SSLContext | None = None
        if protocol == "https":
            import ssl  # noqa: PLC0415 - only HTTPS needs it

            import certifi  # noqa: PLC0415 - a requests dependency

            self._ssl = ssl.create_default_context(cafile=ca_file or certifi.where())
        context = self._ssl

        class _Adapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                if context is not None:
                    kwargs["ssl_context"] = context
                super().init_poolmanager(*args, **kwargs)

        self._session = requests.Session()
        adapter = _Adapter(pool_connections=4, pool_maxsize=max_connections)
        self._session.mount(f"{protocol}://", adapter)
        self._async: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def send(self, request: Any, runtime_option: Any = None) -> Any:
        """Send a DaraRequest built by the SDK, as ``DaraCore.do_action`` does."""
        import requests  # noqa: PLC0415
        from darabonba.core import DaraCore  # noqa: PLC0415
        from darabonba.exceptions import RetryError  # noqa: PLC0415

        url = DaraCore.compose_url(request)
        connect, read = _timeouts(runtime_option)
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=request.method.upper(), url=url, data=_body(request), headers=request.headers
        )
        try:
            response = self._session.send(
                prepared, timeout=(connect, read), proxies=self._proxies, allow_redirects=False
            )
        except OSError as err:
            # As darabonba does: the SDK treats RetryError as the network
            # failure, and the requests exception stays as its __context__.
            raise RetryError(str(err))  # noqa: B904
        return _dara_response(
            response.status_code, response.reason, response.headers, response.content, response
        )

    async def send_async(self, request: Any, runtime_option: Any = None) -> Any:
        """Send a DaraRequest over this loop's shared aiohttp session."""
        import aiohttp  # noqa: PLC0415
        import yarl  # noqa: PLC0415 - an aiohttp dependency
        from darabonba.core import DaraCore  # noqa: PLC0415
        from darabonba.exceptions import RetryError  # noqa: PLC0415

        session = self._async_session()
        # compose_url percent-encodes the query already; yarl need not again.
        url = yarl.URL(DaraCore.compose_url(request), encoded=True)
        timeout = _client_timeout(*_timeouts(runtime_option))
        try:
            async with session.request(
                request.method,
                url,
                data=_body(request) or b"",
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
                proxy=self._proxy,
            ) as response:
                body = await response.read()
                result = _dara_response(
                    response.status, response.reason, response.headers, body, response
                )
        except (OSError, aiohttp.ClientError, _asyncio_timeout()) as err:
            raise RetryError(str(err))  # noqa: B904 - as above
        return result

    def _async_session(self) -> Any:
        import asyncio  # noqa: PLC0415 - only async callers need it

        import aiohttp  # noqa: PLC0415

        loop = asyncio.get_running_loop()
        session = self._async.get(loop)
        if session is not None and not session.closed:
            return session
        # The lock guards the dict against other threads' loops; within one
        # loop nothing awaits between the check above and the insert below.
        with self._lock:
            if self._closed:
                raise RuntimeError("the connector is closed")
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                # HTTP has no TLS to verify; HTTPS always gets the one context.
                ssl=self._ssl if self._ssl is not None else True,
            )
            session = aiohttp.ClientSession(connector=connector)
            self._async = {k: v for k, v in self._async.items() if not k.is_closed()}
            self._async[loop] = session
        return session

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` or :meth:`aclose` was called."""
        return self._closed

    def close(self) -> None:
        """Close the sync pool; async sessions are closed by :meth:`aclose`."""
        with self._lock:
            self._closed = True
        self._session.close()

    async def aclose(self) -> None:
        """Close this loop's aiohttp session and the sync pool."""
        import asyncio  # noqa: PLC0415

        session = self._async.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()
        self.close()


def _environment_proxy(protocol: str, endpoint: str) -> str | None:
    import requests  # noqa: PLC0415

    proxies = requests.utils.get_environ_proxies(f"{protocol}://{endpoint}/")
    proxy = proxies.get(protocol)
    return str(proxy) if proxy else None


def _body(request: Any) -> Any:
    body = request.body
    return body.encode("utf-8") if isinstance(body, str) else body


def _dara_response(status: int, reason: Any, headers: Any, body: bytes, raw: Any) -> Any:
    """The DaraResponse the SDK expects from its transport, as darabonba builds it."""
    from darabonba.response import DaraResponse  # noqa: PLC0415

    result = DaraResponse()
    result.status_code = status
    result.status_message = reason
    result.headers = {k.lower(): v for k, v in headers.items()}
    result.body = body
    result.response = raw
    return result


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float, read: float) -> Any:
    import aiohttp  # noqa: PLC0415

    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)


def _timeouts(runtime_option: Any) -> tuple[float, float]:
    options = runtime_option or {}
    connect = options.get("connectTimeout") or options.get("timeout") or 5000
    read = options.get("readTimeout") or options.get("timeout") or 10000
    return int(connect) / 1000, int(read) / 1000


_observation: ContextVar[Observation | None] = ContextVar(
    "aliyun_sms_connector_observation", default=None
)
_install_lock = threading.Lock()
_installed = False


def _install_transport_hook() -> None:
    global _installed  # noqa: PLW0603 - a process-wide, install-once flag
    with _install_lock:
        if _installed:
            return
        from darabonba.core import DaraCore  # noqa: PLC0415 - lazy SDK import

        sync_original = DaraCore.do_action
        async_original = DaraCore.async_do_action

        def do_action(request: Any, runtime_option: Any = None) -> Any:
            observation = _observation.get()
            if observation is None:
                return sync_original(request, runtime_option)
            observation.attempts += 1
            send = observation.transport.send if observation.transport else sync_original
            response = send(request, runtime_option)
            observation.record(response)
            return response

        async def async_do_action(request: Any, runtime_option: Any = None) -> Any:
            observation = _observation.get()
            if observation is None:
                return await async_original(request, runtime_option)
            observation.attempts += 1
            transport = observation.transport
            send = transport.send_async if transport else async_original
            response = await send(request, runtime_option)
            observation.record(response)
            return response

        do_action.__wrapped__ = sync_original  # type: ignore[attr-defined]
        async_do_action.__wrapped__ = async_original  # type: ignore[attr-defined]
        DaraCore.do_action = staticmethod(do_action)
        DaraCore.async_do_action = staticmethod(async_do_action)
        _installed = True


def new_client(config: AliyunSmsConfig, *, overseas: bool = False) -> Any:
    """Build the official Dysmsapi client for ``config``.

    With ``overseas``, the client uses ``overseasRegionId``/``overseasEndpoint``.
    The endpoint is resolved by the SDK's own endpoint map: an explicit
    endpoint wins, then the region's entry, then ``dysmsapi.aliyuncs.com``.
    """
    from alibabacloud_dysmsapi20170525.client import Client  # noqa: PLC0415
    from alibabacloud_tea_openapi.models import Config  # noqa: PLC0415

    _install_transport_hook()
    if config.credentials == "default":
        from alibabacloud_credentials.client import (  # noqa: PLC0415
            Client as CredentialClient,
        )

        # The official default chain: environment variables, the config
        # files, OIDC role ARN, then the ECS RAM role (unless disabled).
        credentials: dict[str, Any] = {"credential": CredentialClient()}
    else:
        secret = config.access_key_secret
        token = config.security_token
        credentials = {
            "access_key_id": config.access_key_id,
            "access_key_secret": secret.get_secret_value() if secret else None,
            "security_token": token.get_secret_value() if token else None,
        }
    sdk_config = Config(
        **credentials,
        region_id=config.overseas_region_id if overseas else config.region_id,
        endpoint=config.overseas_endpoint if overseas else config.endpoint,
        protocol=config.protocol,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        signature_algorithm=("v2" if config.signature_algorithm == "v2" else None),
        # No retry_options: the SDK never retries then, and retrying is this
        # library's decision, not the SDK's.
    )
    return Client(sdk_config)


def endpoint_of(client: Any) -> str:
    """The endpoint the SDK resolved for ``client``."""
    return str(client._endpoint)  # noqa: SLF001 - the SDK keeps it only there


@dataclass(frozen=True)
class Timeouts:
    """What one attempt may take, in milliseconds."""

    connect_ms: int
    read_ms: int

    def runtime(self) -> Any:
        """The SDK's RuntimeOptions for one attempt, with its retry off."""
        from darabonba.runtime import RuntimeOptions  # noqa: PLC0415

        return RuntimeOptions(
            autoretry=False, connect_timeout=self.connect_ms, read_timeout=self.read_ms
        )


@dataclass(frozen=True)
class SmsRequest:
    """One SendSms call's fields."""

    phone_numbers: str
    sign_name: str
    template_code: str
    template_param: str
    out_id: str | None

    def sdk(self) -> Any:
        """The SDK's SendSmsRequest."""
        from alibabacloud_dysmsapi20170525.models import SendSmsRequest  # noqa: PLC0415

        return SendSmsRequest(
            phone_numbers=self.phone_numbers,
            sign_name=self.sign_name,
            template_code=self.template_code,
            template_param=self.template_param,
            out_id=self.out_id,
        )


@dataclass(frozen=True)
class BatchRequest:
    """One SendBatchSms call: up to 100 numbers, a sign name and variables each."""

    phone_numbers: tuple[str, ...]
    sign_names: tuple[str, ...]
    template_code: str
    template_params: tuple[str, ...]

    def sdk(self) -> Any:
        """The SDK's SendBatchSmsRequest (its fields are JSON arrays)."""
        from alibabacloud_dysmsapi20170525.models import SendBatchSmsRequest  # noqa: PLC0415

        return SendBatchSmsRequest(
            phone_number_json=json.dumps(list(self.phone_numbers)),
            sign_name_json=json.dumps(list(self.sign_names), ensure_ascii=False),
            template_code=self.template_code,
            # Each entry is already a JSON object's text.
            template_param_json="[" + ",".join(self.template_params) + "]",
        )


@dataclass(frozen=True)
class QueryRequest:
    """One page of QuerySendDetails."""

    phone_number: str
    send_date: str
    page_size: int
    current_page: int
    biz_id: str | None

    def sdk(self) -> Any:
        """The SDK's QuerySendDetailsRequest."""
        from alibabacloud_dysmsapi20170525.models import (  # noqa: PLC0415
            QuerySendDetailsRequest,
        )

        return QuerySendDetailsRequest(
            phone_number=self.phone_number,
            send_date=self.send_date,
            page_size=self.page_size,
            current_page=self.current_page,
            biz_id=self.biz_id,
        )


@dataclass(frozen=True)
class Receipts:
    """One page of QuerySendDetails' answer."""

    reply: Reply
    total_count: int
    records: tuple[dict[str, Any], ...]


_METHODS = {
    SmsRequest: "send_sms_with_options",
    BatchRequest: "send_batch_sms_with_options",
    QueryRequest: "query_send_details_with_options",
}


def call(
    client: Any,
    transport: Transport | None,
    request: SmsRequest | BatchRequest | QueryRequest,
    timeouts: Timeouts,
) -> Any:
    """Make one API call through the SDK, over ``transport``.

    Returns a :class:`Reply` (SendSms, SendBatchSms) or :class:`Receipts`.

    Raises:
        CallFailedError: The SDK raised; chained from the SDK's exception.
    """
    method = getattr(client, _METHODS[type(request)])
    observation = Observation(transport)
    token = _observation.set(observation)
    try:
        response = method(request.sdk(), timeouts.runtime())
    except Exception as err:
        raise CallFailedError(describe(err, observation), observation.attempts) from err
    finally:
        _observation.reset(token)
    return _answer(request, response, observation)


async def call_async(
    client: Any,
    transport: Transport | None,
    request: SmsRequest | BatchRequest | QueryRequest,
    timeouts: Timeouts,
) -> Any:
    """The async twin of :func:`call`."""
    method = getattr(client, _METHODS[type(request)] + "_async")
    observation = Observation(transport)
    # Each task runs in its own copy of the context, so concurrent calls in
    # one loop never see each other's observation.
    token = _observation.set(observation)
    try:
        response = await method(request.sdk(), timeouts.runtime())
    except Exception as err:
        raise CallFailedError(describe(err, observation), observation.attempts) from err
    finally:
        _observation.reset(token)
    return _answer(request, response, observation)


def _answer(request: object, response: Any, observation: Observation) -> Any:
    body = getattr(response, "body", None)
    reply = Reply(
        code=getattr(body, "code", None),
        message=getattr(body, "message", None),
        biz_id=getattr(body, "biz_id", None),
        request_id=getattr(body, "request_id", None),
        http_status=getattr(response, "status_code", None) or observation.http_status,
        attempts=observation.attempts,
    )
    if not isinstance(request, QueryRequest):
        return reply
    dtos = getattr(getattr(body, "sms_send_detail_dtos", None), "sms_send_detail_dto", None)
    records = tuple(dto.to_map() for dto in dtos or ())
    try:
        total = int(getattr(body, "total_count", None) or 0)
    except (TypeError, ValueError):
        total = len(records)
    return Receipts(reply, total, records)


def describe(err: BaseException, observation: Observation) -> Failure:
    """Describe an exception raised by the SDK as a :class:`Failure`."""
    from alibabacloud_tea_openapi.exceptions import (  # noqa: PLC0415
        AlibabaCloudException,
        ThrottlingException,
    )
    from Tea.exceptions import UnretryableException  # noqa: PLC0415

    if isinstance(err, AlibabaCloudException):
        data = err.data if isinstance(err.data, dict) else {}
        retry_after = err.retry_after if isinstance(err, ThrottlingException) else None
        return Failure(
            "response",
            code=_text(err.code),
            message=_text(data.get("Message") or data.get("message")) or _text(err.message),
            http_status=err.status_code or observation.http_status,
            request_id=_text(err.request_id) or _text(data.get("RequestId")),
            recommend=_text(data.get("Recommend") or data.get("recommend")),
            retry_after_ms=float(retry_after) if retry_after else None,
        )
    if isinstance(err, UnretryableException):
        inner = err.inner_exception
        # darabonba wraps OSErrors in RetryError (the original is its
        # __context__); on Python 3.10 an aiohttp timeout is no OSError and
        # arrives unwrapped.
        if _is_retry_error(inner):
            return Failure(_network_kind(inner.__context__))
        if _is_network_error(inner):
            return Failure(_network_kind(inner))
        if type(inner).__name__ == "CredentialException":
            # Its text lists every provider's complaint; none is worth echoing.
            return Failure(
                "response",
                code="CredentialsUnavailable",
                message="the Alibaba Cloud credential chain found no usable credentials",
            )
        if observation.http_status is not None:
            return Failure("bad_body", http_status=observation.http_status)
    return Failure("unexpected", message=f"the Aliyun SDK raised {type(err).__name__}")


def _text(value: object) -> str | None:
    # The SDK formats missing fields as the string "None".
    if value is None or value in ("", "None"):
        return None
    return str(value)


def _is_retry_error(err: BaseException | None) -> bool:
    return type(err).__name__ == "RetryError"


def _is_network_error(err: BaseException | None) -> bool:
    import aiohttp  # noqa: PLC0415 - already loaded by the SDK
    import requests  # noqa: PLC0415

    return isinstance(
        err, (OSError, requests.RequestException, aiohttp.ClientError, _asyncio_timeout())
    )


def _asyncio_timeout() -> type[BaseException]:
    # Python 3.10's asyncio.TimeoutError is not the builtin TimeoutError.
    import asyncio  # noqa: PLC0415

    return asyncio.TimeoutError


def _network_kind(err: BaseException | None) -> Any:
    """Classify the requests/aiohttp exception behind the SDK's RetryError."""
    import aiohttp  # noqa: PLC0415 - already loaded by the SDK
    import requests  # noqa: PLC0415
    from urllib3.exceptions import NewConnectionError  # noqa: PLC0415

    if err is None:
        return "connection_lost"
    # requests: connect-phase failures mean the request never left.
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect_timeout"
    if isinstance(err, requests.exceptions.SSLError):
        return "connect"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return "read_timeout"
    if isinstance(err, requests.exceptions.ConnectionError):
        reason = getattr(err.args[0], "reason", None) if err.args else None
        if isinstance(reason, NewConnectionError) or isinstance(
            err, requests.exceptions.ProxyError
        ):
            return "connect"
        return "connection_lost"
    # aiohttp: ClientConnectorError covers refused, DNS and TLS handshake.
    if isinstance(err, aiohttp.ClientConnectorError):
        return "connect"
    connection_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connection_timeout is not None and isinstance(err, connection_timeout):
        return "connect_timeout"
    if isinstance(err, (aiohttp.ServerTimeoutError, TimeoutError, _asyncio_timeout())):
        return "read_timeout"
    return "connection_lost"
