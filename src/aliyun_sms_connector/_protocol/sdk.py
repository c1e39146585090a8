"""The only module that touches the official Aliyun SDK.

The SDK is imported lazily, when the first connector is built: importing it
costs about 300 ms, and ``import aliyun_sms_connector`` should not.

What the library takes from the SDK:

- each endpoint's settings, from an SDK client built once per endpoint: the
  endpoint (the SDK's own endpoint map), the user agent and the credential;
- the credential itself: resolved once for an AccessKey (with or without an
  STS token), asked for on every send for the default chain, which rotates;
- the signatures: the SDK's own functions sign every request, ACS3 with the
  hash and HMAC steps of ``Utils.get_authorization`` (``Utils.hash`` and
  ``signature_method``) over a canonical request laid out once per endpoint,
  v2 with ``Utils.get_rpcsignature``.

Requests are assembled by :mod:`.wire` and sent by ``_http.transport``. The
SDK's own request path and transport are never called, nor patched: other SDK
users in the same process see the SDK exactly as it ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aliyun_sms_connector._config import ConnectionConfig

__all__ = [
    "ACS3",
    "Credential",
    "CredentialSource",
    "CredentialsUnavailableError",
    "LaneSettings",
    "Product",
    "acs3_signature",
    "lane_settings",
    "rpc_signature",
]

ACS3 = "ACS3-HMAC-SHA256"
Algorithm = Literal["ACS3-HMAC-SHA256", "v2"]
# The SDK package of each product: Dysmsapi (SMS) and Dypnsapi (the Message
# Authentication Service), both at version 2017-05-25.
Product = Literal["dysmsapi", "dypnsapi"]


@dataclass(frozen=True, slots=True)
class Credential:
    """One AccessKey as used to sign a request. ``repr`` hides the secret and token."""

    key_id: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    provider: str | None = None


class CredentialsUnavailableError(Exception):
    """Internal: the default credential chain found nothing usable (a fixed text)."""


class CredentialSource:
    """Where a lane's credential comes from: fixed at build time, or the chain.

    A fixed AccessKey (with or without STS token) is resolved once, through
    the SDK's own credential client, so that ``x-acs-credentials-provider`` is
    what the SDK sends. The default chain is asked on every send, as the SDK
    does: its credentials expire and rotate.
    """

    __slots__ = ("_chain", "_fixed")

    def __init__(self, client: Any, *, chain: bool) -> None:
        self._chain = client if chain else None
        self._fixed = None if chain else _credential(client.get_credential())

    @property
    def fixed(self) -> Credential | None:
        """The credential, when it never changes."""
        return self._fixed

    def get(self) -> Credential:
        """The credential to sign with now.

        Raises:
            CredentialsUnavailableError: The chain found nothing.
        """
        if self._fixed is not None:
            return self._fixed
        found = _ask(self._chain)
        if found is None:
            raise CredentialsUnavailableError(_NO_CREDENTIALS)
        return found

    async def get_async(self) -> Credential:
        """The async twin of :meth:`get`: the chain's network steps await."""
        if self._fixed is not None:
            return self._fixed
        found = await _ask_async(self._chain)
        if found is None:
            raise CredentialsUnavailableError(_NO_CREDENTIALS)
        return found

    def __repr__(self) -> str:
        return "CredentialSource(chain)" if self._chain is not None else "CredentialSource(fixed)"


_NO_CREDENTIALS = "the Alibaba Cloud credential chain found no usable credentials"


def _credential(model: Any) -> Credential:
    token = model.security_token
    return Credential(
        key_id=str(model.access_key_id),
        secret=str(model.access_key_secret),
        token=str(token) if token else None,
        provider=str(model.provider_name) if model.provider_name else None,
    )


def _ask(chain: Any) -> Credential | None:
    # The chain's own exception lists every provider's complaint, paths and
    # environment included; none of it is worth echoing. Returning None lets
    # the caller raise outside this handler, with no context to leak.
    try:
        model = chain.get_credential()
    except Exception:  # noqa: BLE001 - any failure of the chain is "no credentials"
        return None
    return _usable(model)


async def _ask_async(chain: Any) -> Credential | None:
    try:
        model = await chain.get_credential_async()
    except Exception:  # noqa: BLE001 - as in _ask
        return None
    return _usable(model)


def _usable(model: Any) -> Credential | None:
    if not model.access_key_id or not model.access_key_secret:
        return None
    return _credential(model)


@dataclass(frozen=True, slots=True)
class LaneSettings:
    """What one endpoint's requests share, computed once per connector."""

    endpoint: str
    user_agent: str
    algorithm: Algorithm
    credentials: CredentialSource
    client: Any = field(repr=False)


def lane_settings(
    config: ConnectionConfig, *, overseas: bool = False, product: Product = "dysmsapi"
) -> LaneSettings:
    """Resolve one endpoint's settings through an SDK client built for ``config``.

    With ``overseas`` (SMS only), the client uses ``overseasRegionId``/``overseasEndpoint``.
    The endpoint is resolved by the product's SDK client and its endpoint map:
    an explicit endpoint wins, then the region's entry, then the product's
    central endpoint (``dysmsapi.aliyuncs.com``, ``dypnsapi.aliyuncs.com``).
    The client is kept (``client``) for inspection; it never sends.
    """
    from importlib import import_module  # noqa: PLC0415

    from alibabacloud_tea_openapi.models import Config  # noqa: PLC0415
    from alibabacloud_tea_openapi.utils import Utils  # noqa: PLC0415

    client_class = import_module(f"alibabacloud_{product}20170525.client").Client
    chain = config.credentials == "default"
    common: dict[str, Any] = {
        "region_id": getattr(config, "overseas_region_id", None) if overseas else config.region_id,
        "endpoint": getattr(config, "overseas_endpoint", None) if overseas else config.endpoint,
        "protocol": config.protocol,
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        "signature_algorithm": "v2" if config.signature_algorithm == "v2" else None,
    }
    # The plain secrets go straight into the SDK's Config: no local of this
    # frame holds them, should anything below raise.
    if chain:
        from alibabacloud_credentials.client import (  # noqa: PLC0415
            Client as CredentialClient,
        )

        # The official default chain: environment variables, the config
        # files, OIDC role ARN, then the ECS RAM role (unless disabled).
        client = client_class(Config(credential=CredentialClient(), **common))
    else:
        client = client_class(
            Config(
                access_key_id=config.access_key_id,
                access_key_secret=_plain(config.access_key_secret),
                security_token=_plain(config.security_token),
                **common,
            )
        )
    _load_signers()
    return LaneSettings(
        endpoint=str(client._endpoint),  # noqa: SLF001 - the SDK keeps it only there
        user_agent=Utils.get_user_agent(client._user_agent),  # noqa: SLF001 - likewise
        algorithm="v2" if config.signature_algorithm == "v2" else "ACS3-HMAC-SHA256",
        credentials=CredentialSource(client._credential, chain=chain),  # noqa: SLF001
        client=client,
    )


def _plain(secret: Any) -> str | None:
    return None if secret is None else str(secret.get_secret_value())


_hash: Any = None
_signature_method: Any = None
_get_rpcsignature: Any = None


def _load_signers() -> None:
    global _hash, _signature_method, _get_rpcsignature  # noqa: PLW0603 - resolved once, lazily
    if _signature_method is None:
        from alibabacloud_tea_openapi.utils import (  # noqa: PLC0415
            Utils,
            signature_method,
        )

        _hash = Utils.hash
        _signature_method = signature_method
        _get_rpcsignature = Utils.get_rpcsignature


def acs3_signature(canonical_request: str, secret: str) -> str:
    """The hex ACS3-HMAC-SHA256 signature of a canonical request, by the SDK's own functions.

    These are the two steps of the SDK's ``Utils.get_authorization`` after
    its canonicalisation: the SHA-256 of the canonical request
    (``Utils.hash``), then the HMAC of the string to sign
    (``signature_method``). :class:`~.wire.Signer` lays the canonical
    request out once per endpoint, action and credential shape, the way
    ``get_authorization`` does for every request (headers lower-cased and
    sorted, values stripped), and fills in only what changes per send.
    """
    digest = _hash(canonical_request.encode(), ACS3).hex()
    return str(_signature_method(secret, f"{ACS3}\n{digest}", ACS3).hex())


def rpc_signature(params: Mapping[str, str], method: str, credential: Credential) -> str:
    """The v2 (HMAC-SHA1) ``Signature`` of ``params``, by the SDK's own signer."""
    return str(_get_rpcsignature(params, method, credential.secret))
