"""The sans-I/O core: an Aliyun RPC call as bytes, and its answer read back.

No I/O happens here (h11 is the model): :class:`Signer` turns an action and
its parameters into a ``WireRequest`` (``_http.models``), and :func:`read`
turns a ``WireResponse`` into an :class:`Answer` or a ``Failure``
(``_errors``). The drivers of the ``_http`` wing move the bytes.

Every API parameter travels in an ``application/x-www-form-urlencoded`` body,
never in the URL, so that no library that logs request lines (urllib3 does at
DEBUG) ever logs a number, a code or a token:

- ACS3: the body's SHA-256 (``x-acs-content-sha256``) is part of the signed
  canonical request, and every header sent is signed, as the SDK does;
- v2: the protocol fields (``Signature``, ``SignatureNonce``, ``Timestamp``,
  ``AccessKeyId``, ``SecurityToken``...) travel in the body too, as Logto's
  connector sends them.

Everything that does not change between sends (host, user agent, action and
version headers, content type, the v2 constant fields) is built once per
endpoint and action; a send adds only its date, nonce, body hash and
signature. The signatures are the SDK's own (:mod:`.sdk`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from urllib.parse import quote_plus

from aliyun_sms_connector._errors import Failure
from aliyun_sms_connector._http.models import WireRequest

from . import sdk

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aliyun_sms_connector._http.models import WireResponse

__all__ = [
    "ACTIONS",
    "VERSION",
    "Answer",
    "Signer",
    "form",
    "new_nonce",
    "read",
    "records_of",
    "text_or_none",
    "timestamp",
]

VERSION: Final = "2017-05-25"
ACTIONS: Final = ("SendSms", "SendBatchSms", "QuerySendDetails")
FORM: Final = "application/x-www-form-urlencoded"
_POST: Final = "POST"
_ROOT: Final = "/"


def form(params: Mapping[str, str]) -> str:
    """``params`` as a form body: keys sorted, values ``quote_plus``-encoded.

    The SDK's own form encoder (darabonba's ``Form.to_form_string``) writes
    the same text: sorted keys, ``urllib.parse.urlencode``. The keys are
    Aliyun's parameter names, plain ASCII, so they need no quoting.
    """
    return "&".join([f"{key}={_quoted(params[key])}" for key in sorted(params)])


# What quote_plus leaves as it is (its always-safe set): numbers, template
# codes and most sign names skip it, which is most of the body.
_UNQUOTED: Final = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def _quoted(value: str) -> str:
    return value if _UNQUOTED(value) else quote_plus(value)


_stamp: tuple[int, str] = (0, "")


def timestamp() -> str:
    """Now in UTC as Aliyun wants it (``2026-11-25T02:09:26Z``), formatted once a second."""
    global _stamp  # noqa: PLW0603 - a one-entry cache; a race only formats twice
    now = int(time.time())
    second, text = _stamp
    if second != now:
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        _stamp = (now, text)
    return text


def new_nonce() -> str:
    """A fresh signature nonce: 128 random bits, in hex as the SDK's."""
    return os.urandom(16).hex()


# The ACS3 headers that change per send, and their slots in a canonical
# request template: {0} the body hash, {1} the date, {2} the nonce, then the
# credential's key id, provider and token (see Signer._acs3_request).
_PER_SEND: Final = {
    "x-acs-content-sha256": "{0}",
    "x-acs-date": "{1}",
    "x-acs-signature-nonce": "{2}",
}
_ACCESS_KEY_ID: Final = {"x-acs-accesskey-id": "{3}"}
_PROVIDER: Final = {"x-acs-credentials-provider": "{4}"}
_TOKEN: Final = {"x-acs-security-token": "{5}"}


class _Acs3Layout(NamedTuple):
    """One action's ACS3 canonical request with the per-send values left as slots."""

    template: str
    signed_headers: str


def _acs3_layout(constants: Mapping[str, str], *, provider: bool, token: bool) -> _Acs3Layout:
    # Utils.get_authorization's canonicalisation, done once: header names
    # lower-cased and sorted, values stripped, every header signed.
    slots = {**_PER_SEND, **(_PROVIDER if provider else {})}
    if token:
        slots.update(_ACCESS_KEY_ID)
        slots.update(_TOKEN)
    values = {name.lower(): _literal(value.strip()) for name, value in constants.items()}
    values.update(slots)
    names = sorted(values)
    lines = "".join([f"{name}:{values[name]}\n" for name in names])
    signed = ";".join(names)
    return _Acs3Layout(f"{_POST}\n{_ROOT}\n\n{lines}\n{_literal(signed)}\n{{0}}", signed)


def _literal(text: str) -> str:
    """``text`` as a literal in a ``str.format`` template."""
    return text.replace("{", "{{").replace("}", "}}")


class Signer:
    """Builds and signs the requests of one endpoint.

    Everything a request shares with the endpoint's other requests of the same
    action (the constant headers, the v2 fields, the layout of the ACS3
    canonical request) is built here, once, and never changed afterwards: a
    signer is shared by every thread and task that sends through its lane.

    Args:
        host: The endpoint (``host[:port]``), sent as the ``host`` header.
        user_agent: The SDK's user agent for this endpoint.
        algorithm: ``ACS3-HMAC-SHA256`` or ``v2``.
        actions: The RPC actions this endpoint serves, all of version
            ``2017-05-25``: Dysmsapi's by default, Dypnsapi's for the
            Message Authentication Service.
    """

    __slots__ = ("_acs3", "_headers", "_layouts", "_v2_fields")

    def __init__(
        self, *, host: str, user_agent: str, algorithm: str, actions: tuple[str, ...] = ACTIONS
    ) -> None:
        self._acs3 = algorithm == sdk.ACS3
        headers: dict[str, dict[str, str]] = {}
        fields: dict[str, dict[str, str]] = {}
        layouts: dict[tuple[str, bool, bool], _Acs3Layout] = {}
        for action in actions:
            # The SDK's own header set and order for each algorithm; the body
            # makes content-type one more constant.
            base = {
                "host": host,
                "x-acs-version": VERSION,
                "x-acs-action": action,
                "user-agent": user_agent,
            }
            if self._acs3:
                base["accept"] = "application/json"
            base["content-type"] = FORM
            headers[action] = base
            fields[action] = {
                "Action": action,
                "Format": "json",
                "Version": VERSION,
                "SignatureMethod": "HMAC-SHA1",
                "SignatureVersion": "1.0",
            }
            for provider in (False, True):
                for token in (False, True):
                    layouts[action, provider, token] = _acs3_layout(
                        base, provider=provider, token=token
                    )
        self._headers = headers
        self._v2_fields = fields
        self._layouts = layouts

    def sign(
        self, action: str, params: Mapping[str, str], credential: sdk.Credential
    ) -> WireRequest:
        """The signed request for ``action`` with ``params`` (all strings)."""
        if self._acs3:
            return self._acs3_request(action, params, credential)
        return self._v2_request(action, params, credential)

    def _acs3_request(
        self, action: str, params: Mapping[str, str], credential: sdk.Credential
    ) -> WireRequest:
        body = form(params).encode()
        digest = hashlib.sha256(body).hexdigest()
        date = timestamp()
        nonce = new_nonce()
        key_id, provider, token = credential.key_id, credential.provider, credential.token
        # A fresh dict per send: the constants are never handed out.
        headers = self._headers[action].copy()
        headers["x-acs-date"] = date
        headers["x-acs-signature-nonce"] = nonce
        headers["x-acs-content-sha256"] = digest
        if provider:
            headers["x-acs-credentials-provider"] = provider
        if token:
            headers["x-acs-accesskey-id"] = key_id
            headers["x-acs-security-token"] = token
        layout = self._layouts[action, bool(provider), bool(token)]
        canonical = layout.template.format(
            digest,
            date,
            nonce,
            key_id.strip(),
            provider.strip() if provider else "",
            token.strip() if token else "",
        )
        headers["Authorization"] = (
            f"{sdk.ACS3} Credential={key_id},SignedHeaders={layout.signed_headers},"
            f"Signature={sdk.acs3_signature(canonical, credential.secret)}"
        )
        return WireRequest(_POST, _ROOT, headers, body)

    def _v2_request(
        self, action: str, params: Mapping[str, str], credential: sdk.Credential
    ) -> WireRequest:
        fields = self._v2_fields[action].copy()
        fields["Timestamp"] = timestamp()
        fields["SignatureNonce"] = new_nonce()
        fields["AccessKeyId"] = credential.key_id
        if credential.token:
            fields["SecurityToken"] = credential.token
        fields.update(params)
        fields["Signature"] = sdk.rpc_signature(fields, _POST, credential)
        headers = self._headers[action].copy()
        if credential.provider:
            headers["x-acs-credentials-provider"] = credential.provider
        return WireRequest(_POST, _ROOT, headers, form(fields).encode())

    def __repr__(self) -> str:
        return f"Signer(algorithm={'ACS3-HMAC-SHA256' if self._acs3 else 'v2'!r})"


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx answer whose ``Code`` is ``OK``: its JSON object.

    ``repr`` leaves the body out: an answer may echo a number or a code, and
    an error tracker renders the frames' locals, answers included, with ``repr``.
    """

    body: dict[str, Any] = field(repr=False)
    http_status: int

    @property
    def request_id(self) -> str | None:
        """Aliyun's request id."""
        return text_or_none(self.body.get("RequestId"))

    @property
    def biz_id(self) -> str | None:
        """The message's biz id (SendSms, SendBatchSms)."""
        return text_or_none(self.body.get("BizId"))


_NOT_JSON: Final = object()


def read(response: WireResponse) -> Answer | Failure:
    """Read an answer as the SDK does: 4xx/5xx carry an error object, 2xx a Code.

    Returns:
        An :class:`Answer` for ``Code: OK``; otherwise the :class:`Failure`
        that :func:`~._errors.translate.error_from_failure` turns into a typed error.
    """
    status = response.status
    try:
        data: Any = json.loads(response.body)
    except (ValueError, RecursionError):
        # Not JSON, not UTF-8 (a UnicodeDecodeError is a ValueError), or
        # nested deeper than the parser goes.
        data = _NOT_JSON
    if 400 <= status < 600:  # noqa: PLR2004 - the SDK's own error range
        if not isinstance(data, dict):
            return Failure("bad_body", http_status=status)
        retry_after = response.headers.get("x-acs-retry-after")
        return Failure(
            "response",
            code=text_or_none(data.get("Code") or data.get("code")),
            message=text_or_none(data.get("Message") or data.get("message")),
            http_status=status,
            request_id=text_or_none(data.get("RequestId") or data.get("requestId")),
            recommend=text_or_none(data.get("Recommend") or data.get("recommend")),
            retry_after_ms=_retry_after_ms(retry_after),
        )
    if data is _NOT_JSON:
        return Failure("bad_body", http_status=status)
    if not isinstance(data, dict):
        # JSON, but no object: no Code to read.
        return Failure("response", http_status=status)
    if data.get("Code") == "OK":
        return Answer(data, status)
    return Failure(
        "response",
        code=text_or_none(data.get("Code")),
        message=text_or_none(data.get("Message")),
        http_status=status,
        request_id=text_or_none(data.get("RequestId")),
        recommend=text_or_none(data.get("Recommend")),
    )


def records_of(answer: Answer) -> tuple[tuple[dict[str, Any], ...], int]:
    """QuerySendDetails' records and ``TotalCount`` (the record count if unreadable)."""
    details = answer.body.get("SmsSendDetailDTOs")
    listed = details.get("SmsSendDetailDTO") if isinstance(details, dict) else None
    records = tuple([r for r in listed if isinstance(r, dict)]) if isinstance(listed, list) else ()
    try:
        total = int(answer.body.get("TotalCount") or 0)
    except (TypeError, ValueError):
        total = len(records)
    return records, total


def _retry_after_ms(value: str | None) -> float | None:
    # As the SDK's Utils.get_throttling_time_left: a positive integer, else none.
    if not value:
        return None
    try:
        wait = int(value)
    except ValueError:
        return None
    return float(wait) if wait > 0 else None


def text_or_none(value: object) -> str | None:
    """A field of an answer as text; None when missing, empty, or the SDK's "None"."""
    # The SDK formats missing fields as the string "None".
    if value is None or value in ("", "None"):
        return None
    return str(value)
