"""The only module that touches the official Aliyun SDK.

The SDK is imported lazily, when the first client is built: importing it costs
about 300 ms (aiohttp alone is 120 ms), and ``import aliyun_sms_connector``
should not.

One wrapper around the SDK's transport calls (``DaraCore.do_action`` and
``async_do_action``) is installed when the first client is built. It passes
straight through unless a call made by this library is active in the current
context, and then records the HTTP status and headers, which the SDK drops
before it raises for a non-JSON body. Other SDK users in the same process see
no difference.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._errors import Failure

if TYPE_CHECKING:
    from ._config import AliyunSmsConfig

__all__ = ["CallFailedError", "Observation", "Reply", "new_client", "send_sms"]


@dataclass
class Observation:
    """What the transport saw during one of this library's calls."""

    attempts: int = 0
    http_status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def record(self, response: Any) -> None:
        """Keep the status and headers of a DaraResponse."""
        self.http_status = getattr(response, "status_code", None)
        self.headers = dict(getattr(response, "headers", None) or {})


@dataclass(frozen=True)
class Reply:
    """A SendSms answer that came back as HTTP 2xx."""

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
            response = sync_original(request, runtime_option)
            observation.record(response)
            return response

        async def async_do_action(request: Any, runtime_option: Any = None) -> Any:
            observation = _observation.get()
            if observation is None:
                return await async_original(request, runtime_option)
            observation.attempts += 1
            response = await async_original(request, runtime_option)
            observation.record(response)
            return response

        do_action.__wrapped__ = sync_original  # type: ignore[attr-defined]
        async_do_action.__wrapped__ = async_original  # type: ignore[attr-defined]
        DaraCore.do_action = staticmethod(do_action)
        DaraCore.async_do_action = staticmethod(async_do_action)
        _installed = True


def new_client(config: AliyunSmsConfig) -> Any:
    """Build the official Dysmsapi client for ``config``."""
    from alibabacloud_dysmsapi20170525.client import Client  # noqa: PLC0415
    from alibabacloud_tea_openapi.models import Config  # noqa: PLC0415

    _install_transport_hook()
    token = config.security_token.get_secret_value() if config.security_token else None
    sdk_config = Config(
        access_key_id=config.access_key_id,
        access_key_secret=config.access_key_secret.get_secret_value(),
        security_token=token,
        endpoint=config.endpoint,
        protocol=config.protocol,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        signature_algorithm=("v2" if config.signature_algorithm == "v2" else None),
        # No retry_options: the SDK never retries then, and retrying is this
        # library's decision, not the SDK's.
    )
    return Client(sdk_config)


def send_sms(
    client: Any,
    *,
    phone_numbers: str,
    sign_name: str,
    template_code: str,
    template_param: str,
    out_id: str | None,
) -> Reply:
    """Call SendSms once through the SDK.

    Raises:
        CallFailedError: The SDK raised; chained from the SDK's exception.
    """
    from alibabacloud_dysmsapi20170525.models import SendSmsRequest  # noqa: PLC0415
    from darabonba.runtime import RuntimeOptions  # noqa: PLC0415

    request = SendSmsRequest(
        phone_numbers=phone_numbers,
        sign_name=sign_name,
        template_code=template_code,
        template_param=template_param,
        out_id=out_id,
    )
    observation = Observation()
    token = _observation.set(observation)
    try:
        response = client.send_sms_with_options(request, RuntimeOptions(autoretry=False))
    except Exception as err:
        raise CallFailedError(describe(err, observation), observation.attempts) from err
    finally:
        _observation.reset(token)
    return _reply(response, observation)


def _reply(response: Any, observation: Observation) -> Reply:
    body = getattr(response, "body", None)
    status = getattr(response, "status_code", None) or observation.http_status
    return Reply(
        code=getattr(body, "code", None),
        message=getattr(body, "message", None),
        biz_id=getattr(body, "biz_id", None),
        request_id=getattr(body, "request_id", None),
        http_status=status,
        attempts=observation.attempts,
    )


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
        network = _network_kind(inner.__context__) if _is_retry_error(inner) else None
        if network is not None:
            return Failure(network)
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


def _network_kind(err: BaseException | None) -> Any:
    """Classify the requests/aiohttp exception behind the SDK's RetryError."""
    import aiohttp  # noqa: PLC0415 - already loaded by the SDK
    import requests  # noqa: PLC0415
    from urllib3.exceptions import NewConnectionError  # noqa: PLC0415

    if err is None:
        return "connection_lost"
    # requests: connect-phase failures mean the request never left.
    if isinstance(err, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
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
        return "connect"
    if isinstance(err, (aiohttp.ServerTimeoutError, TimeoutError)):
        return "read_timeout"
    return "connection_lost"
