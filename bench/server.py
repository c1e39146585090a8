"""A lean fixed-answer Aliyun SMS server for the benchmark, in its own process.

    python bench/server.py [--delay 0.020]

It listens on two ports of 127.0.0.1: HTTPS (a throwaway CA made at start)
with a fixed ``--delay`` before each answer, for the async runs, and plain
HTTP with no delay, for the sequential sync runs. Both answer every request
with a fixed SendSms-, SendBatchSms- or QuerySendDetails-shaped JSON, and
both verify every signature first: ACS3-HMAC-SHA256 (with the body's SHA-256)
and the legacy v2 HMAC-SHA1, reading parameters from the query and from a
form body alike. A request that fails verification gets Aliyun's 400 answer
and is counted.

It is written on raw asyncio (a Protocol and a minimal HTTP/1.1 keep-alive
parser) so that it costs less CPU per request than any client it serves, and
it measures that cost itself. The parent drives it with lines on stdin:

    reset  ->  {"reset": true}          zero the counters and the CPU clock
    stats  ->  {"requests": ..., ...}   counters and CPU since the last reset
    EOF or "quit" ends it.

On start it prints one JSON line: ``{"https": PORT, "http": PORT, "ca": PATH}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import hashlib
import hmac
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus

# The emulator's throwaway CA and 127.0.0.1 certificate: TLS set-up is not
# what this server is independent of; its signature check is.
from aliyun_sms_connector._http.tls import make_certificates

KEY_ID = "LTAIbenchKeyId"
KEY_SECRET = "bench-access-key-secret"
ACS3 = "ACS3-HMAC-SHA256"
FORM = "application/x-www-form-urlencoded"
# Aliyun refuses an ACS3 request that does not sign these.
REQUIRED_SIGNED = frozenset(
    {
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    }
)
# Parameters each action must carry, wherever they are (query or form body).
REQUIRED_PARAMS = {
    "SendSms": ("PhoneNumbers", "SignName", "TemplateCode"),
    "SendBatchSms": ("PhoneNumberJson", "SignNameJson", "TemplateCode"),
    "QuerySendDetails": ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"),
}
REQUEST_ID = "B3E5C2F8-0B1A-4C39-9D5E-2D5F7A1B0C42"
ANSWERS = {
    "SendSms": {
        "Code": "OK",
        "Message": "OK",
        "BizId": "900619746936498440^0",
        "RequestId": REQUEST_ID,
    },
    "SendBatchSms": {
        "Code": "OK",
        "Message": "OK",
        "BizId": "900619746936498441^0",
        "RequestId": REQUEST_ID,
    },
    "QuerySendDetails": {
        "Code": "OK",
        "Message": "OK",
        "RequestId": REQUEST_ID,
        "TotalCount": 1,
        "SmsSendDetailDTOs": {
            "SmsSendDetailDTO": [
                {
                    "PhoneNum": "13900000000",
                    "SendStatus": 3,
                    "ErrCode": "DELIVERED",
                    "TemplateCode": "SMS_000001",
                    "Content": "Your code is 123456",
                    "SendDate": "2026-11-25 00:00:00",
                    "ReceiveDate": "2026-11-25 00:00:01",
                    "OutId": "",
                }
            ]
        },
    },
}
MAX_HEAD = 65536


def _response(status: int, reason: str, payload: object) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json;charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


OK_RESPONSES = {action: _response(200, "OK", answer) for action, answer in ANSWERS.items()}


def _rejection(code: str, message: str) -> bytes:
    return _response(
        400, "Bad Request", {"Code": code, "Message": message, "RequestId": REQUEST_ID}
    )


class Rejected(Exception):  # noqa: N818 - control flow inside the server
    """A request that fails verification; ``kind`` names the counter."""

    def __init__(self, kind: str, code: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.answer = _rejection(code, message)


class Stats:
    """Counters and the CPU clock since the last ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.verified = {ACS3: 0, "v2": 0}
        self.actions: dict[str, int] = {}
        # Where the verified requests carried their parameters: "query",
        # "form" (the body) or "query+form".
        self.layouts: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.connections = 0
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        self.gc0 = gc.get_stats()[0]["collections"]

    def report(self) -> dict[str, object]:
        cpu = time.process_time() - self.cpu
        return {
            "requests": self.requests,
            "verified": self.verified,
            "actions": self.actions,
            "layouts": self.layouts,
            "failures": self.failures,
            "failed": sum(self.failures.values()),
            "connections": self.connections,
            "cpu_s": cpu,
            "wall_s": time.perf_counter() - self.wall,
            "cpu_us_per_request": cpu / self.requests * 1e6 if self.requests else None,
            "gc0": gc.get_stats()[0]["collections"] - self.gc0,
        }

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


def verify(
    method: str, target: str, headers: dict[str, str], body: bytes, secret: str = KEY_SECRET
) -> str:
    """Check one request's signature; return its action or raise :class:`Rejected`."""
    path, _, query_string = target.partition("?")
    if method != "POST" or path != "/":
        raise Rejected("route", "InvalidAction.NotFound", "Only POST / is served.")
    query = parse_qsl(query_string, keep_blank_values=True) if query_string else []
    params = dict(query)
    if body:
        if not headers.get("content-type", "").startswith(FORM):
            raise Rejected("body", "InvalidParameter", "The body is not a form.")
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
    authorization = headers.get("authorization", "")
    if authorization.startswith(ACS3 + " "):
        _verify_acs3(authorization, query, headers, body, secret)
        action = headers.get("x-acs-action", "")
    elif "Signature" in params:
        _verify_v2(method, params, secret)
        action = params.get("Action", "")
    else:
        raise Rejected("unsigned", "IncompleteSignature", "The request signature is missing.")
    required = REQUIRED_PARAMS.get(action)
    if required is None:
        raise Rejected("action", "InvalidAction.NotFound", "Unknown action.")
    if not all(params.get(name) for name in required):
        raise Rejected("params", "MissingParameter", "A required parameter is missing.")
    return action


def _verify_acs3(
    authorization: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    secret: str,
) -> None:
    fields = dict(part.strip().split("=", 1) for part in authorization[len(ACS3) + 1 :].split(","))
    signed = fields.get("SignedHeaders", "")
    names = signed.split(";")
    if fields.get("Credential") != KEY_ID or not REQUIRED_SIGNED.issubset(names):
        raise Rejected("incomplete", "IncompleteSignature", "The Authorization is incomplete.")
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-acs-content-sha256") != payload_hash:
        raise Rejected("body_hash", "SignatureDoesNotMatch", "The body hash does not match.")
    canonical_headers = "".join(f"{name}:{headers.get(name, '')}\n" for name in names)
    canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in sorted(query))
    canonical = f"POST\n/\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload_hash}"
    to_sign = f"{ACS3}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        raise Rejected("signature", "SignatureDoesNotMatch", "The signature does not match.")


def _verify_v2(method: str, params: dict[str, str], secret: str) -> None:
    if params.get("AccessKeyId") != KEY_ID:
        raise Rejected("key_id", "InvalidAccessKeyId.NotFound", "Unknown AccessKeyId.")
    canonical = "&".join(
        f"{quote(k, safe='~')}={quote(v, safe='~')}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )
    to_sign = f"{method}&%2F&{quote_plus(canonical, safe='~')}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), params["Signature"]):
        raise Rejected("signature", "SignatureDoesNotMatch", "The signature does not match.")


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: Content-Length bodies, answers in order."""

    def __init__(self, stats: Stats, delay: float, secret: str) -> None:
        self.stats = stats
        self.delay = delay
        self.secret = secret
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: ARG002 - asyncio's API
        self.transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        while buffer:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._malformed()
                    return
                break
            lines = buffer[:end].decode("latin-1").split("\r\n")
            try:
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                repeated: dict[str, list[str]] = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    value = value.strip()
                    if name in headers:
                        # A repeated header is signed as its sorted values, joined.
                        values = repeated.setdefault(name, [headers[name]])
                        values.append(value)
                        value = ",".join(sorted(values))
                    headers[name] = value
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._malformed()
                return
            if "chunked" in headers.get("transfer-encoding", ""):
                self._malformed()
                return
            start = end + 4
            if len(buffer) < start + length:
                break
            body = buffer[start : start + length]
            buffer = buffer[start + length :]
            self._handle(method, target, headers, body)
        self.buffer = buffer

    def _handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        stats = self.stats
        stats.requests += 1
        try:
            action = verify(method, target, headers, body, self.secret)
        except Rejected as rejected:
            stats.fail(rejected.kind)
            answer = rejected.answer
        else:
            stats.actions[action] = stats.actions.get(action, 0) + 1
            scheme = ACS3 if "authorization" in headers else "v2"
            stats.verified[scheme] += 1
            layout = ("query+form" if "?" in target else "form") if body else "query"
            stats.layouts[layout] = stats.layouts.get(layout, 0) + 1
            answer = OK_RESPONSES[action]
        if self.delay:
            self.loop.call_later(self.delay, self._write, answer)
        else:
            self._write(answer)

    def _write(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)

    def _malformed(self) -> None:
        self.stats.fail("malformed")
        if self.transport is not None:
            self.transport.write(_rejection("MalformedRequest", "Malformed HTTP request."))
            self.transport.close()
        self.buffer = b""


async def serve(delay: float, directory: Path, secret: str = KEY_SECRET) -> None:
    """Serve until stdin says quit or closes."""
    loop = asyncio.get_running_loop()
    ca_file, cert_file, key_file = make_certificates(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    stats = Stats()
    secure = await loop.create_server(
        lambda: HttpProtocol(stats, delay, secret), "127.0.0.1", 0, ssl=context, backlog=1024
    )
    plain = await loop.create_server(
        lambda: HttpProtocol(stats, 0.0, secret), "127.0.0.1", 0, backlog=1024
    )
    done = asyncio.Event()

    def command() -> None:
        line = sys.stdin.readline().strip()
        if line == "reset":
            stats.reset()
            reply: dict[str, object] = {"reset": True}
        elif line == "stats":
            reply = stats.report()
        else:  # "quit", or EOF: the parent is gone
            done.set()
            return
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    loop.add_reader(sys.stdin.fileno(), command)
    ports = {
        "https": secure.sockets[0].getsockname()[1],
        "http": plain.sockets[0].getsockname()[1],
        "ca": str(ca_file),
        "pid": os.getpid(),
    }
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()
    await done.wait()
    loop.remove_reader(sys.stdin.fileno())
    for server in (secure, plain):
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.020, help="HTTPS answer delay (s)")
    # Tests start a server with another secret, to see a run fail as it must.
    parser.add_argument("--secret", default=KEY_SECRET, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="aliyun-sms-bench-") as directory,
        contextlib.suppress(KeyboardInterrupt),
    ):
        asyncio.run(serve(args.delay, Path(directory), args.secret))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
