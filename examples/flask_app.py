"""Verification by SMS code with Flask: the verification service behind two routes.

Prerequisites: ``pip install aliyun-sms-connector flask`` (a WSGI server such as
gunicorn for production, and ``aliyun-sms-connector[redis]`` for more than one
worker). Run it from the repository's root: it imports ``examples._http_errors``
and ``examples._settings``, which it shares with the FastAPI and Django examples.

Against the local emulator, with no account::

    aliyun-sms emulator &            # serves 127.0.0.1:18080 and prints each SMS
    export ALIYUN_SMS_ACCESS_KEY_ID=LTAIemulatorKeyId
    export ALIYUN_SMS_ACCESS_KEY_SECRET=emulator-access-key-secret
    export ALIYUN_SMS_SIGN_NAME=AliyunSmsTest
    export ALIYUN_SMS_TEMPLATES='[{"usageType": "Generic", "templateCode": "SMS_000001"}]'
    export ALIYUN_SMS_ENDPOINT=127.0.0.1:18080 ALIYUN_SMS_PROTOCOL=http
    flask --app examples.flask_app run

In production, ``gunicorn -w 4 'examples.flask_app:create_app()'`` with
``REDIS_URL`` and ``ALIYUN_SMS_VERIFY_SECRET_KEY`` set: the factory runs in
every worker, and builds the connector and the service once for it (not once
per request). ``examples/_settings.py`` lists every variable; without a Redis
URL, codes live in one process's ``MemoryStore`` and the app warns at start.

**The client IP** feeds the per-IP limits. It is the TCP peer
(``REMOTE_ADDR``), unless that peer is one of ``TRUSTED_PROXIES`` (your
reverse proxies' addresses or networks): then it is the right-most
``X-Forwarded-For`` entry that is not a trusted proxy. Never trust every
peer: ``X-Forwarded-For`` is whatever the client wrote, up to your proxy's
own entry. (werkzeug's ``ProxyFix`` with ``x_for=1`` is the equivalent when
exactly one proxy is always in front.)

``POST /sms/<purpose>/start`` ``{"phone": "..."}`` and
``POST /sms/<purpose>/check`` ``{"phone": "...", "code": "...", "verification_id": "..."}``
answer exactly as the FastAPI example's routes do: every error as
``examples/_http_errors.py`` maps it.
"""

# ruff: noqa: INP001 - an example script, run as examples.flask_app

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from examples._http_errors import (
    PURPOSES,
    Answer,
    BadClientAddressError,
    bad_client_address,
    check_answer,
    client_ip,
    error_answer,
    read_body,
    start_answer,
    unknown_purpose,
)
from examples._settings import Verifier, build_verifier, trusted_proxies
from flask import Flask, Response, current_app, jsonify, request

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aliyun_sms_connector.verify import (
        VerificationPolicy,
        VerificationService,
        VerificationStore,
    )

logger = logging.getLogger("examples.flask_app")

_PROXY_HINT = "set TRUSTED_PROXIES to your reverse proxies' addresses"
# Where create_app keeps what it built, in the app's extensions.
_EXTENSION = "aliyun_sms_verify"


def create_app(
    config: AliyunSmsConfig | Mapping[str, Any] | None = None,
    store: Callable[[], VerificationStore] | None = None,
    *,
    secret_key: str | None = None,
    policy: VerificationPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> Flask:
    """The app factory: the connector and the service are built here, once per process.

    Everything not given comes from the environment (``examples/_settings.py``).
    ``close_app(app)`` closes the store and the connector's pools.
    """
    app = Flask(__name__)
    app.extensions[_EXTENSION] = build_verifier(
        config, store, secret_key=secret_key, policy=policy, clock=clock, logger=logger
    )
    app.config["TRUSTED_PROXIES"] = trusted_proxies()
    app.add_url_rule("/sms/<purpose>/start", view_func=start, methods=["POST"])
    app.add_url_rule("/sms/<purpose>/check", view_func=check, methods=["POST"])
    return app


def close_app(app: Flask) -> None:
    """Close what :func:`create_app` built (at the worker's exit, or a test's end)."""
    verifier: Verifier = app.extensions[_EXTENSION]
    verifier.close()


def _service() -> VerificationService:
    verifier: Verifier = current_app.extensions[_EXTENSION]
    return verifier.service


def _response(answer: Answer) -> Response:
    response = jsonify(dict(answer.body))
    response.status_code = answer.status
    response.headers.update(answer.headers)
    return response


def _client_ip() -> str | None:
    return client_ip(
        request.remote_addr,
        request.headers.get("X-Forwarded-For"),
        current_app.config["TRUSTED_PROXIES"],
    )


def start(purpose: str) -> Response:
    """POST /sms/<purpose>/start: send a code."""
    usage_type = PURPOSES.get(purpose)
    if usage_type is None:
        return _response(unknown_purpose())
    body = read_body(request.get_json(silent=True), "phone")
    if isinstance(body, Answer):
        return _response(body)
    service = _service()
    try:
        verification = service.start(body["phone"], usage_type, client_ip=_client_ip())
    except BadClientAddressError:
        return _response(bad_client_address(logger, _PROXY_HINT))
    except AliyunSmsError as error:
        return _response(
            error_answer(
                error, action="start", purpose=purpose, policy=service.policy, logger=logger
            )
        )
    return _response(start_answer(verification, purpose))


def check(purpose: str) -> Response:
    """POST /sms/<purpose>/check: check a code, for this route's purpose only."""
    usage_type = PURPOSES.get(purpose)
    if usage_type is None:
        return _response(unknown_purpose())
    body = read_body(request.get_json(silent=True), "phone", "code", "verification_id")
    if isinstance(body, Answer):
        return _response(body)
    service = _service()
    try:
        result = service.check(
            body["phone"],
            usage_type,
            body["code"],
            verification_id=body["verification_id"],
            client_ip=_client_ip(),
        )
    except BadClientAddressError:
        return _response(bad_client_address(logger, _PROXY_HINT))
    except AliyunSmsError as error:
        return _response(
            error_answer(
                error, action="check", purpose=purpose, policy=service.policy, logger=logger
            )
        )
    # On approval, a real app now does what this route's purpose grants, and
    # only that: sign the user in, create the account, or allow one reset.
    return _response(check_answer(result, service.policy))
