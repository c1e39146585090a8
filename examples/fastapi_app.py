"""Verification by SMS code with FastAPI: the verification service behind two routes.

Prerequisites: ``pip install aliyun-sms-connector fastapi uvicorn`` (and
``aliyun-sms-connector[redis]`` for more than one worker, below).

Run it against the local emulator, with no account::

    aliyun-sms emulator &            # serves 127.0.0.1:18080 and prints each SMS
    export ALIYUN_SMS_ACCESS_KEY_ID=LTAIemulatorKeyId
    export ALIYUN_SMS_ACCESS_KEY_SECRET=emulator-access-key-secret
    export ALIYUN_SMS_SIGN_NAME=AliyunSmsTest
    export ALIYUN_SMS_TEMPLATES='[{"usageType": "Generic", "templateCode": "SMS_000001"}]'
    export ALIYUN_SMS_ENDPOINT=127.0.0.1:18080 ALIYUN_SMS_PROTOCOL=http
    uvicorn examples.fastapi_app:app

Settings come from the environment (``examples/_settings.py``):
``ALIYUN_SMS_CONFIG`` (a Logto JSON file, such as ``examples/logto.json``) or
the ``ALIYUN_SMS_*`` variables, and ``ALIYUN_SMS_REDIS_URL`` or ``REDIS_URL``.
Run it from the repository's root: it imports ``examples._http_errors`` and
``examples._settings``, which it shares with the Django and Flask examples
(copy all three files into your project, and adjust the imports).

**More than one worker process needs RedisStore.** A ``MemoryStore`` lives in
one process: with ``uvicorn --workers N``, gunicorn's workers, or several
instances behind a load balancer, a code started on one worker is not found on
another, and every limit is multiplied by the number of workers. Set
``ALIYUN_SMS_REDIS_URL`` or ``REDIS_URL`` (``redis://…`` or
``redis+cluster://…``) and the same ``ALIYUN_SMS_VERIFY_SECRET_KEY`` (32 bytes
or more) on every instance. Without a Redis URL the app logs a warning at every
start, and refuses to start when ``WEB_CONCURRENCY`` (read by uvicorn and
gunicorn as their default worker count) is above 1; ``--workers`` and ``-w`` on
the command line cannot be seen from inside a worker, so with those, setting
the URL is up to you.

**The client IP** is ``request.client.host``, what uvicorn reports; it feeds the
per-IP limits of both routes. Behind a reverse proxy, that is the proxy's
address, unless uvicorn is told to trust the proxy's ``X-Forwarded-For``::

    uvicorn examples.fastapi_app:app --proxy-headers --forwarded-allow-ips=10.0.0.5

with the proxy's own address. Never ``*``: uvicorn would then trust every
entry of ``X-Forwarded-For``, the client's own included, and anyone could pick
the address they are counted under. A host that is not an IP address is
refused with 400 (and logged). Starlette's ``TestClient`` reports
``"testclient"``: give it ``client=("203.0.113.5", 50000)``.

**The purpose is the route's.** Each route serves one purpose, named in its
path (``sign-in``, ``register``, ``forgot-password``; see ``PURPOSES``), and
the check uses the usage type of its own route, never one the client picks:
a code sent for ``register`` cannot be approved by ``/sms/sign-in/check``.
Checks are also bound to the verification: ``start`` returns a
``verification_id``, and ``check`` requires it, so that only whoever started a
verification can guess at its code (a stranger who knows the number gets 404
and locks nothing).

``POST /sms/{purpose}/start`` ``{"phone": "..."}``
    202 ``{"verification_id", "purpose", "to", "expires_at", "resend_after"}``.
``POST /sms/{purpose}/check`` ``{"phone": "...", "code": "...", "verification_id": "..."}``
    200 approved; 401 a wrong code, with ``attempts_left``; 404 nothing to
    check (never sent, expired, used, replaced, or another verification's id);
    429 with ``Retry-After`` when the verification is locked.

Every error is answered as ``examples/_http_errors.py`` says, the same in the
three examples: 400 invalid input, 403 a country or number type not allowed,
429 a rate limit, 500 no template for the number's region (``RegionNotServed``),
502 Aliyun refused for a reason that is ours to fix, 503 worth retrying, 504
the SMS may or may not arrive. A body never holds Aliyun's own message.
"""

# ruff: noqa: INP001 - an example script, run by path or as examples.fastapi_app

from __future__ import annotations

import dataclasses
import logging
import os
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from examples._http_errors import (
    PURPOSES,
    Answer,
    BadClientAddressError,
    bad_client_address,
    check_answer,
    client_ip,
    error_answer,
    invalid_request,
    start_answer,
    unknown_purpose,
)
from examples._settings import connector_config, default_store
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsConnector, AliyunSmsError
from aliyun_sms_connector.verify import (
    VerificationPolicy,
    VerificationService,
    VerificationStore,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

logger = logging.getLogger("examples.fastapi_app")

_PROXY_HINT = "check uvicorn's --proxy-headers and --forwarded-allow-ips"


class StartRequest(BaseModel):
    """Send a code to ``phone``."""

    phone: str = Field(max_length=40)


class CheckRequest(BaseModel):
    """Check the code the user typed, for the verification ``start`` returned."""

    phone: str = Field(max_length=40)
    code: str = Field(max_length=20)
    verification_id: str = Field(min_length=1, max_length=64)


async def _close_store(store: VerificationStore) -> None:
    await store.aclose()
    store.close()


def create_app(
    config: AliyunSmsConfig | Mapping[str, Any] | None = None,
    store: Callable[[], VerificationStore] | None = None,
    *,
    secret_key: str | None = None,
    policy: VerificationPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the app. Everything defaults to the environment (see the module docstring).

    The policy's ``require_verification_id`` is always turned on.
    """
    bound_policy = dataclasses.replace(
        policy if policy is not None else VerificationPolicy(), require_verification_id=True
    )

    # The lifespan runs once per worker process: the connector (its connection
    # pools) and the store are built there, and closed when the worker stops.
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            verification_store = store() if store is not None else default_store(logger)
            stack.push_async_callback(_close_store, verification_store)
            connector = AliyunSmsConnector(config if config is not None else connector_config())
            stack.push_async_callback(connector.aclose)
            app.state.verify = VerificationService(
                connector,
                verification_store,
                secret_key=secret_key or os.environ.get("ALIYUN_SMS_VERIFY_SECRET_KEY"),
                policy=bound_policy,
                clock=clock,
            )
            yield

    app = FastAPI(title="Verification by SMS", lifespan=lifespan)
    _add_routes(app)
    return app


def _response(answer: Answer) -> JSONResponse:
    return JSONResponse(dict(answer.body), status_code=answer.status, headers=answer.headers)


def _add_routes(app: FastAPI) -> None:
    """The two routes of each purpose, and a 400 for a malformed request."""

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input, number and code included: name the fields only.
        fields = {".".join(str(part) for part in e["loc"]) for e in exc.errors()}
        return _response(invalid_request(sorted(fields)))

    @app.post("/sms/{purpose}/start", status_code=202)
    async def start(purpose: str, body: StartRequest, request: Request) -> Any:
        usage_type = PURPOSES.get(purpose)
        if usage_type is None:
            return _response(unknown_purpose())
        service: VerificationService = request.app.state.verify
        try:
            verification = await service.start_async(
                body.phone, usage_type, client_ip=_client_ip(request)
            )
        except BadClientAddressError:
            return _response(bad_client_address(logger, _PROXY_HINT))
        except AliyunSmsError as error:
            return _response(
                error_answer(
                    error, action="start", purpose=purpose, policy=service.policy, logger=logger
                )
            )
        return _response(start_answer(verification, purpose))

    @app.post("/sms/{purpose}/check")
    async def check(purpose: str, body: CheckRequest, request: Request) -> Any:
        # The usage type is the route's, never the client's: a code sent for
        # one purpose is never approved for another.
        usage_type = PURPOSES.get(purpose)
        if usage_type is None:
            return _response(unknown_purpose())
        service: VerificationService = request.app.state.verify
        try:
            result = await service.check_async(
                body.phone,
                usage_type,
                body.code,
                verification_id=body.verification_id,
                client_ip=_client_ip(request),
            )
        except BadClientAddressError:
            return _response(bad_client_address(logger, _PROXY_HINT))
        except AliyunSmsError as error:
            return _response(
                error_answer(
                    error, action="check", purpose=purpose, policy=service.policy, logger=logger
                )
            )
        # On approval, a real app now does what this route's purpose grants,
        # and only that: for UsageType.SIGN_IN, sign the user of this number in
        # and set the session cookie; for REGISTER, create the account; for
        # FORGOT_PASSWORD, let the password be reset once.
        return _response(check_answer(result, service.policy))


def _client_ip(request: Request) -> str | None:
    """The address uvicorn reports (the proxy's client with --proxy-headers), or None."""
    return client_ip(request.client.host if request.client is not None else None)


app = create_app()
