"""Signing by hand, and the comparison of a request with the official SDK's.

Shared by the conformance tests of each product (tests/_protocol/test_wire.py
for Dysmsapi, tests/_mas/test_wire.py for Dypnsapi). The signatures are
recomputed here with ``hmac`` from the published ACS3 and v2 rules, with
nothing of the SDK or of this library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qsl, quote

from darabonba.core import DaraCore
from darabonba.response import DaraResponse

from tests import wire_fakes
from tests.conftest import SECRET

FORM = "application/x-www-form-urlencoded"
ACS3 = "ACS3-HMAC-SHA256"
# Per-send values: the nonce and the date, and what depends on them.
PER_SEND_HEADERS = {"x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256", "authorization"}
PER_SEND_PARAMS = {"Timestamp", "SignatureNonce", "Signature"}


def capture_sdk(mocker, body):
    """Patch the SDK's transport call (autospec) to capture its DaraRequest and answer ``body``."""
    answer = DaraResponse()
    answer.status_code = 200
    answer.headers = {}
    answer.body = json.dumps(body).encode()
    return mocker.patch.object(DaraCore, "do_action", autospec=True, return_value=answer)


def sdk_params(request):
    body = request.body or ""
    merged = {**request.query, **dict(parse_qsl(body, keep_blank_values=True))}
    return {k: str(v) for k, v in merged.items()}


def lower(headers):
    return {name.lower(): value for name, value in headers.items()}


def authorization(headers):
    scheme, _, rest = lower(headers)["authorization"].partition(" ")
    fields = dict(part.split("=", 1) for part in rest.split(","))
    return scheme, fields


def acs3_signature(method, path, query, headers, body, secret):
    """ACS3-HMAC-SHA256, from the published rules, with nothing of the SDK."""
    canonical_query = "&".join(
        f"{quote(k, safe='~')}={quote(str(v), safe='~')}" for k, v in sorted(query.items())
    )
    signed = {k: v for k, v in lower(headers).items() if k != "authorization"}
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n].strip()}\n" for n in names)
    payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join(
        [method, path, canonical_query, canonical_headers, ";".join(names), payload]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest(), names


def v2_signature(method, params, secret):
    """The v2 (HMAC-SHA1) signature, from the published rules."""
    canonical = "&".join(
        f"{quote(k, safe='~')}={quote(v, safe='~')}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    to_sign = f"{method}&%2F&{quote(canonical, safe='~')}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def assert_acs3_verifies(method, path, query, headers, body):
    """The ACS3 Authorization of a request checks out by hand, with the test secret."""
    scheme, fields = authorization(headers)
    assert scheme == "ACS3-HMAC-SHA256"
    assert lower(headers)["x-acs-content-sha256"] == hashlib.sha256(body).hexdigest()
    expected, names = acs3_signature(method, path, query, headers, body, SECRET)
    assert fields["SignedHeaders"] == ";".join(names)
    assert fields["Signature"] == expected
    return fields


def assert_same_request(ours, theirs, *, sts):
    """Method, path, parameters and headers agree; placement (body, not query) aside."""
    # Method and path; nothing in our URL.
    assert ours.method == theirs.method == "POST"
    assert ours.target == theirs.pathname == "/"

    # Every parameter, by name and value, the per-send ones aside.
    params = wire_fakes.params_of(ours)
    expected = sdk_params(theirs)
    assert {k: v for k, v in params.items() if k not in PER_SEND_PARAMS} == {
        k: v for k, v in expected.items() if k not in PER_SEND_PARAMS
    }
    assert PER_SEND_PARAMS & set(params) == PER_SEND_PARAMS & set(expected)

    # Headers: the SDK's, plus the content type of the body that now
    # carries the parameters the SDK put in the query.
    our_headers = {k: v for k, v in lower(ours.headers).items() if k not in PER_SEND_HEADERS}
    their_headers = {k: v for k, v in lower(theirs.headers).items() if k not in PER_SEND_HEADERS}
    assert our_headers == {**their_headers, "content-type": FORM}
    assert set(lower(ours.headers)) & PER_SEND_HEADERS == set(lower(theirs.headers)) & (
        PER_SEND_HEADERS
    )
    if sts:
        assert lower(ours.headers).get("x-acs-security-token", params.get("SecurityToken"))


def assert_signatures(ours, theirs, *, algorithm, sts):
    """Both requests' signatures check out by hand, over the same signed headers."""
    their_body = (theirs.body or "").encode()
    if algorithm == "v2":
        params = wire_fakes.params_of(ours)
        assert params["SignatureMethod"] == "HMAC-SHA1"
        assert params["Signature"] == v2_signature("POST", params, SECRET)
        assert "authorization" not in lower(ours.headers)
        assert sdk_params(theirs)["Signature"] == v2_signature("POST", sdk_params(theirs), SECRET)
    else:
        ours_fields = assert_acs3_verifies("POST", "/", {}, ours.headers, ours.body)
        theirs_fields = assert_acs3_verifies("POST", "/", theirs.query, theirs.headers, their_body)
        assert ours_fields["Credential"] == theirs_fields["Credential"] == "LTAI5tTestKeyId"
        signed = set(ours_fields["SignedHeaders"].split(";"))
        assert signed == set(theirs_fields["SignedHeaders"].split(";")) | {"content-type"}
        if sts:
            assert {"x-acs-security-token", "x-acs-accesskey-id"} <= signed


def assert_tampering_breaks(ours, *, algorithm, old, new):
    """Replacing ``old`` by ``new`` in the signed body breaks the hand check (it can fail)."""
    tampered = ours.body.replace(old, new)
    assert tampered != ours.body
    if algorithm == "v2":
        params = dict(parse_qsl(tampered.decode(), keep_blank_values=True))
        assert params["Signature"] != v2_signature("POST", params, SECRET)
    else:
        _, fields = authorization(ours.headers)
        expected, _ = acs3_signature("POST", "/", {}, ours.headers, tampered, SECRET)
        assert fields["Signature"] != expected
