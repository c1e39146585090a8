"""Codes, digests and store keys: the pure arithmetic of verification.

Nothing here does I/O, so it can be tested (and mutation-tested) alone.

Every value that leaves the process is an HMAC-SHA256 under the service's
``secret_key``, with a distinct label per use so that no digest of one kind can
stand in for another:

- a code is stored as ``HMAC(key, "code" | usage type | E.164 number | code)``;
- a number is named in store keys by ``HMAC(key, "number" | E.164 number)``;
- an IP address by ``HMAC(key, "ip" | address)``, where an IPv6 address is cut
  to its /64 (one subscriber's usual allocation, so that rotating addresses
  inside it does not escape the per-IP limit). Only an address is named: any
  other text is refused, as each new string would be a fresh bucket.

A store therefore never holds a plaintext number, IP address or code, and a
stolen store dump cannot be brute-forced offline without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from typing import NamedTuple

from aliyun_sms_connector import ConfigError, ConfigProblem

__all__ = [
    "MIN_SECRET_BYTES",
    "MIN_SECRET_DISTINCT_BYTES",
    "Key",
    "NumberKeys",
    "SharedKeys",
    "check_secret",
    "code_digest",
    "digests_equal",
    "failed_key",
    "generate_code",
    "ip_id",
    "normalize_ip",
    "number_id",
    "number_keys",
    "record_key",
    "service_secret",
    "shared_keys",
    "validate_prefix",
]

MIN_SECRET_BYTES = 32
# A random key holds fewer than 10 distinct byte values with odds of 3e-31 for
# 32 random bytes, 6e-27 for token_urlsafe(32) and 1e-12 for token_hex(32), but
# 1e-4 for token_hex(16) (32 hex digits) and 0.3 for 32 random decimal digits:
# hex keys need 64 digits. "a" * 32 or "password" * 4 holds fewer.
MIN_SECRET_DISTINCT_BYTES = 10
_GENERATE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
_IP_REFUSAL = (
    "client_ip must be an IPv4 or IPv6 address, such as 203.0.113.9 or 2001:db8::1: "
    "the peer address of the request, or the one a trusted proxy reports"
)
# 128 bits of an HMAC name a number or an IP: collisions are out of reach,
# and keys stay short.
_ID_BYTES = 16
_BLOCK = 64  # SHA-256's block size
_IPV6_SUBNET = 64


class Key:
    """A secret key for HMAC-SHA256, with its two pads hashed once (RFC 2104).

    ``hmac.new`` hashes both pads again for every message; starting from
    copies of the hashed pads gives the same HMAC in about half the time, and
    a check computes one or two of them.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        block = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under this key."""
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self) -> str:
        return "Key(<hidden>)"


def _mac(key: Key, label: str, *parts: str) -> bytes:
    return key.mac("\0".join((label, *parts)).encode())


def code_digest(key: Key, usage_type: str, e164: str, code: str) -> str:
    """The stored form of a code: hex HMAC of (usage type, number, code)."""
    return _mac(key, "code", usage_type, e164, code).hex()


def digests_equal(a: str, b: str) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


def number_id(key: Key, e164: str) -> str:
    """The name of a number in store keys; it reveals nothing without the key."""
    return _mac(key, "number", e164)[:_ID_BYTES].hex()


def ip_id(key: Key, ip: str) -> str:
    """The name of a client IP in store keys (IPv6 cut to its /64).

    Raises:
        ValueError: ``ip`` is not an IPv4 or IPv6 address (see :func:`normalize_ip`).
    """
    return _mac(key, "ip", normalize_ip(ip))[:_ID_BYTES].hex()


def normalize_ip(ip: str) -> str:
    """``ip`` in canonical form, the one thing per-IP limits count by.

    IPv4 stays as it is; IPv4-mapped IPv6 (``::ffff:203.0.113.9``) becomes
    its IPv4; any other IPv6 becomes its /64, such as ``2001:db8:1:2::/64``.
    A zone id (``fe80::1%eth0``) names an interface of this host, not a
    client, and is dropped with the rest of the host bits. Whitespace around
    the address is stripped; the result is canonical, so padding cannot make
    a new bucket.

    Args:
        ip: The client's address as text.

    Raises:
        ValueError: ``ip`` is not a string holding one IPv4 or IPv6 address:
            empty, a hostname, a proxy's token, a list, an address with a
            port, a network. The message does not show the value.
    """
    address = _address(ip)
    if address is None:
        # Raised here, outside the except clause: ipaddress's error, which
        # echoes the value, is then neither the cause nor the context.
        raise ValueError(_IP_REFUSAL)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        # From the integer, which has no zone id, whichever way ipaddress
        # would carry one into a network.
        return str(ipaddress.IPv6Network((int(address), _IPV6_SUBNET), strict=False))
    return str(address)


def _address(ip: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # ipaddress reads an int or packed bytes as an address too: text only.
    if not isinstance(ip, str):
        return None
    try:
        return ipaddress.ip_address(ip.strip())
    except ValueError:
        return None


def check_secret(key: bytes) -> None:
    """Refuse a secret key too short or too uniform to be random.

    A key needs at least :data:`MIN_SECRET_BYTES` (32) bytes, of at least
    :data:`MIN_SECRET_DISTINCT_BYTES` (10) distinct values: ``"a" * 32``, 32
    NUL bytes or ``"password" * 4`` are refused. ``secrets.token_urlsafe(32)``
    makes a good one (a hex key needs 64 digits: one of 32 is refused about
    once in 10,000 draws).

    Args:
        key: The key, as the bytes the HMACs use.

    Raises:
        ConfigError: The key is too short or too uniform. The problem, on
            ``secret_key``, says how to generate a key; it never shows the key.
    """
    if len(key) < MIN_SECRET_BYTES:
        problem = f"must be at least {MIN_SECRET_BYTES} bytes"
    elif len(set(key)) < MIN_SECRET_DISTINCT_BYTES:
        problem = f"holds fewer than {MIN_SECRET_DISTINCT_BYTES} distinct bytes"
    else:
        return
    raise ConfigError.from_problems(
        [ConfigProblem("secret_key", f"{problem}; {_GENERATE}")], "verification secret_key"
    )


def generate_code(length: int) -> str:
    """``length`` random decimal digits from :mod:`secrets` (leading zeros kept)."""
    return f"{secrets.randbelow(10**length):0{length}d}"


class NumberKeys(NamedTuple):
    """The keys of one number's verifications; all share one hash tag (slot)."""

    record: str
    """The pending code of (number, usage type): a hash."""
    usage_cooldown: str
    """The resend cooldown of (number, usage type)."""
    number_cooldown: str
    """The cooldown of the number across usage types."""
    sends: str
    """A sorted set of the number's sends, for the hourly and daily caps."""
    failed: str
    """A sorted set of the wrong guesses at (number, usage type) in the last hour."""


class SharedKeys(NamedTuple):
    """The keys of limits shared across numbers; they share one hash tag."""

    ip: str | None
    """The sends of one client IP, or None when the caller gave no IP."""
    global_: str
    """The sends of the whole application."""
    ip_failed: str | None
    """The wrong guesses from one client IP in the last hour, or None."""


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start a key; braces would break the hash tags."""
    if "{" in prefix or "}" in prefix:
        raise ValueError("the key prefix must not contain '{' or '}' (they mark hash tags)")
    return prefix


def record_key(prefix: str, number: str, usage_type: str) -> str:
    """The key of the pending code of (number, usage type): ``NumberKeys.record``."""
    return f"{prefix}{{{number}}}:code:{usage_type}"


def failed_key(prefix: str, number: str, usage_type: str) -> str:
    """The key of the wrong guesses at (number, usage type): ``NumberKeys.failed``."""
    return f"{prefix}{{{number}}}:failed:{usage_type}"


def number_keys(prefix: str, number: str, usage_type: str) -> NumberKeys:
    """The store keys of (number, usage type), all tagged ``{number}``."""
    tag = f"{prefix}{{{number}}}"
    return NumberKeys(
        record=record_key(prefix, number, usage_type),
        usage_cooldown=f"{tag}:cooldown:{usage_type}",
        number_cooldown=f"{tag}:cooldown",
        sends=f"{tag}:sends",
        failed=failed_key(prefix, number, usage_type),
    )


def shared_keys(prefix: str, ip: str | None) -> SharedKeys:
    """The keys of the per-IP and global limits, all tagged ``{limits}``.

    They live in one slot, so one script checks both atomically. ``start``
    touches the send counters, bounded by what SMS cost; ``check`` touches the
    per-IP count of wrong guesses only when it is given a client IP. Both stay
    far below what one Redis node serves.
    """
    tag = f"{prefix}{{limits}}"
    return SharedKeys(
        ip=None if ip is None else f"{tag}:ip:{ip}",
        global_=f"{tag}:global",
        ip_failed=None if ip is None else f"{tag}:ip-failed:{ip}",
    )


def service_secret(secret_key: str | bytes | None, *, shared: bool) -> bytes:
    """The service's HMAC key: ``secret_key`` checked, or a random one for a store of its own."""
    if secret_key is None:
        if shared:
            raise ConfigError(
                "a shared store needs secret_key: the same random value of at least "
                f"{MIN_SECRET_BYTES} bytes on every instance (e.g. secrets.token_urlsafe(32))"
            )
        return secrets.token_bytes(MIN_SECRET_BYTES)
    try:
        key = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
    except (UnicodeError, TypeError, ValueError):
        key = None  # raised below, outside the except block: the value is not chained
    if key is None:
        raise ConfigError("secret_key must be a str or bytes that UTF-8 can encode")
    check_secret(key)
    return key
