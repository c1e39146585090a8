"""What the transport and its drivers share: a request, a response, and a failure.

Plain data and one exception, no I/O (httpcore's ``_models.py`` is the model):
the protocol wing builds a :class:`WireRequest` and reads a :class:`WireResponse`,
and the drivers send the one and receive the other. Both drivers and
:mod:`.transport` import this module, and it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Kind", "TransportError", "WireRequest", "WireResponse", "plaintext_answer"]

Kind = Literal[
    "connect",
    "connect_timeout",
    "certificate",
    "tls_plaintext",
    "read_timeout",
    "connection_lost",
    "deadline",
    "closed",
]


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One HTTP request, ready to send.

    Only ``method`` is shown in its repr: the target, headers and body carry
    signatures, tokens and the SMS itself.
    """

    method: str
    #: ``/`` or ``/?<encoded query>``: sent as is, never re-encoded.
    target: str = field(repr=False)
    #: Every header to send, ``host`` included; ``content-length`` is added here.
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class WireResponse:
    """One complete HTTP response; header names are lower-cased."""

    status: int
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)


_MESSAGES: dict[str, str] = {
    "connect": "could not connect to the SMS endpoint",
    "connect_timeout": "connecting to the SMS endpoint timed out",
    "certificate": "the SMS endpoint's TLS certificate could not be verified",
    "tls_plaintext": "the SMS endpoint answered the TLS handshake in plain HTTP",
    "read_timeout": "the SMS endpoint did not answer in time",
    "connection_lost": "the connection to the SMS endpoint broke before a complete answer",
    "deadline": "the deadline passed before the SMS endpoint answered",
    "closed": "the connector was closed",
}


class TransportError(Exception):
    """A request that did not produce a complete HTTP response.

    ``str(err)`` is a fixed sentence per :attr:`kind`; nothing of the request
    or of the lower layer is reachable from the error.
    """

    kind: Kind
    #: True once any byte of the request may have been written.
    maybe_sent: bool

    def __init__(self, kind: Kind, *, maybe_sent: bool) -> None:
        super().__init__(_MESSAGES[kind])
        self.kind = kind
        self.maybe_sent = maybe_sent

    def __repr__(self) -> str:
        return f"TransportError({self.kind!r}, maybe_sent={self.maybe_sent})"


# OpenSSL's reasons when a TLS handshake reads bytes that are no TLS record,
# as when the server answers "HTTP/1.1 400 ..." in plain HTTP: 1.1.1 and 3.0
# say WRONG_VERSION_NUMBER, 3.2 and later RECORD_LAYER_FAILURE, and older
# releases UNKNOWN_PROTOCOL.
_PLAINTEXT_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL"})


def plaintext_answer(err: BaseException) -> bool:
    """Whether a failed TLS handshake read a plain-HTTP answer (an ``http://`` server).

    ``err`` is the ssl error itself (the sync driver) or aiohttp's wrapper of
    it, which keeps it as ``os_error`` and ``__cause__``.
    """
    for candidate in (err, getattr(err, "os_error", None), err.__cause__):
        if isinstance(candidate, OSError):
            reason = getattr(candidate, "reason", None)
            if reason in _PLAINTEXT_REASONS:
                return True
    return False
