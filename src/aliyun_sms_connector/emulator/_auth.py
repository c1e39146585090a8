"""The emulator's authentication: signatures, timestamps, nonces, STS tokens.

Both of Aliyun's schemes are checked: ACS3-HMAC-SHA256 (the Authorization
header) and the legacy v2 HMAC-SHA1 (the Signature parameter), in the query
or the form body alike.
"""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, quote_plus

from ._gateway import Reject, missing

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiohttp import web

__all__ = ["ACS3", "NonceMemory", "authenticate", "parse_timestamp"]

ACS3 = "ACS3-HMAC-SHA256"
_MAX_CLOCK_SKEW = 15 * 60
_NONCE_MEMORY = 100_000
# ISO 8601 in UTC, with optional fractions: the SDK sends whole seconds,
# JavaScript's Date.toISOString() (Logto's connector) sends milliseconds.
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?Z"
)


class NonceMemory:
    """The signature nonces seen lately: each may be used once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._nonces: OrderedDict[str, None] = OrderedDict()

    def use(self, nonce: str) -> None:
        """Remember ``nonce``; raises :class:`Reject` if it was used already."""
        with self._lock:
            if nonce in self._nonces:
                raise Reject(
                    "SignatureNonceUsed", "Specified signature nonce was used already.", 400
                )
            self._nonces[nonce] = None
            if len(self._nonces) > _NONCE_MEMORY:
                self._nonces.popitem(last=False)

    def clear(self) -> None:
        """Forget every nonce."""
        with self._lock:
            self._nonces.clear()


def authenticate(
    request: web.Request,
    acs3: bool,
    query: Mapping[str, str],
    params: Mapping[str, str],
    body: bytes,
    *,
    access_keys: Mapping[str, str],
    security_tokens: Mapping[str, str] | None,
    nonces: NonceMemory,
) -> None:
    """Check a request's signature, token, timestamp and nonce.

    Raises:
        Reject: With Aliyun's code for the first check that fails.
    """
    if acs3:
        key_id = _check_acs3(request, query, body, access_keys)
        token = request.headers.get("x-acs-security-token")
        timestamp = request.headers.get("x-acs-date", "")
        nonce = request.headers.get("x-acs-signature-nonce", "")
    elif "Signature" in params:
        key_id = _check_v2(request.method, params, access_keys)
        token = params.get("SecurityToken")
        timestamp = params.get("Timestamp", "")
        nonce = params.get("SignatureNonce", "")
    else:
        raise Reject("IncompleteSignature", "The request signature is missing.", 400)
    if not timestamp:
        raise missing("Timestamp")
    if not nonce:
        raise missing("SignatureNonce")
    _check_token(key_id, token, security_tokens)
    _check_timestamp(timestamp)
    nonces.use(nonce)


def _secret(key_id: str, access_keys: Mapping[str, str]) -> str:
    if not key_id:
        raise missing("AccessKeyId")
    secret = access_keys.get(key_id)
    if secret is None:
        raise Reject("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 400)
    return secret


def _check_acs3(
    request: web.Request, query: Mapping[str, str], body: bytes, access_keys: Mapping[str, str]
) -> str:
    authorization = request.headers["Authorization"]
    fields = dict(
        part.strip().split("=", 1)
        for part in authorization[len(ACS3) + 1 :].split(",")
        if "=" in part
    )
    key_id = fields.get("Credential", "")
    signed = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if not (key_id and signed and signature):
        raise Reject("IncompleteSignature", "The Authorization header is incomplete.", 400)
    secret = _secret(key_id, access_keys)
    names = signed.split(";")
    # Aliyun's V3 scheme signs host and every x-acs-* header: one left
    # out could be changed (a nonce, a date, a token) without notice.
    unsigned = sorted(
        name
        for name in {key.lower() for key in request.headers}
        if (name == "host" or name.startswith("x-acs-")) and name not in names
    )
    if unsigned:
        raise Reject("IncompleteSignature", f"The header {unsigned[0]} must be signed.", 400)
    payload_hash = request.headers.get("x-acs-content-sha256", "")
    if payload_hash != hashlib.sha256(body).hexdigest():
        raise Reject("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.", 400)
    headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in request.headers.getall(name, [])))}\n"
        for name in names
    )
    canonical_query = "&".join(
        f"{quote(key, safe='~')}={quote(value, safe='~')}" for key, value in sorted(query.items())
    )
    canonical = (
        f"{request.method}\n{request.path or '/'}\n{canonical_query}\n"
        f"{headers}\n{signed}\n{payload_hash}"
    )
    to_sign = f"{ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Reject(
            "SignatureDoesNotMatch",
            "Specified signature does not match our calculation. "
            f"The server string to sign is: {to_sign}",
            400,
        )
    return key_id


def _check_v2(method: str, params: Mapping[str, str], access_keys: Mapping[str, str]) -> str:
    # v2 signs every parameter, from the query and the body alike.
    key_id = params.get("AccessKeyId", "")
    secret = _secret(key_id, access_keys)
    signed = {k: v for k, v in params.items() if k != "Signature"}
    query = "&".join(
        f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(signed.items())
    )
    to_sign = f"{method}&%2F&{quote_plus(query, safe='~')}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected.encode(), params.get("Signature", "").encode()):
        # Aliyun echoes the whole string to sign, number and code included.
        raise Reject(
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation. "
            f"server string to sign is:{to_sign}",
            400,
        )
    return key_id


def _check_token(key_id: str, token: str | None, security_tokens: Mapping[str, str] | None) -> None:
    if token is None or security_tokens is None:
        return
    owner = security_tokens.get(token)
    if owner is None:
        raise Reject("InvalidSecurityToken.Expired", "Specified SecurityToken is expired.", 400)
    if owner != key_id:
        raise Reject(
            "InvalidSecurityToken.MismatchWithAccessKey",
            "Specified SecurityToken mismatch with the AccessKey.",
            400,
        )


def _check_timestamp(value: str) -> None:
    stamp = parse_timestamp(value)
    if stamp is None:
        raise Reject("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
    if abs(time.time() - stamp) > _MAX_CLOCK_SKEW:
        raise Reject(
            "InvalidTimeStamp.Expired",
            f"Specified time stamp or date value is expired. The time stamp is {value}.",
            400,
        )


@functools.lru_cache(maxsize=256)
def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch; cached, as every request in a second shares one."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    try:
        datetime(year, month, day, hour, minute, second)  # noqa: DTZ001 - checks the date exists
    except ValueError:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second)))
