"""Sign-in by SMS code with FastAPI: the verification service behind two endpoints.

Run it against the local emulator, with no account::

    aliyun-sms emulator &            # serves 127.0.0.1:18080 and prints each SMS
    export ALIYUN_SMS_ACCESS_KEY_ID=LTAIemulatorKeyId
    export ALIYUN_SMS_ACCESS_KEY_SECRET=emulator-access-key-secret
    export ALIYUN_SMS_SIGN_NAME=AliyunSmsTest
    export ALIYUN_SMS_TEMPLATES='[{"usageType": "Generic", "templateCode": "SMS_000001"}]'
    export ALIYUN_SMS_ENDPOINT=127.0.0.1:18080 ALIYUN_SMS_PROTOCOL=http
    uvicorn examples.fastapi_app:app

Several instances behind a load balancer share codes and limits through Redis:
set ``ALIYUN_SMS_REDIS_URL`` (``redis://…`` or ``redis+cluster://…``) and the same
``ALIYUN_SMS_VERIFY_SECRET_KEY`` (32 bytes or more) on every instance.

``POST /sms/start`` ``{"phone": "...", "usage_type": "SignIn"}``
    202 with ``expires_at`` and ``resend_after``; 429 with ``Retry-After`` on every
    rate limit; 400 on an invalid number; 403 on a country that is not allowed;
    503 when Aliyun or the store fails in a way worth retrying.
``POST /sms/check`` ``{"phone": "...", "code": "...", "usage_type": "SignIn"}``
    200 on approval; 401 on a wrong code, with ``attempts_left``; 429 when locked;
    404 when there is nothing to check; 503 when the store cannot answer.
"""

# ruff: noqa: INP001 - an example script, run by path or as examples.fastapi_app

from __future__ import annotations

import math
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsConnector,
    AliyunSmsError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
)
from aliyun_sms_connector.verify import (
    CheckStatus,
    MemoryStore,
    RedisStore,
    VerificationPolicy,
    VerificationService,
    VerificationStore,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping


class StartRequest(BaseModel):
    """Send a code to ``phone``."""

    phone: str = Field(max_length=40)
    usage_type: str = "SignIn"


class CheckRequest(BaseModel):
    """Check the code the user typed."""

    phone: str = Field(max_length=40)
    code: str = Field(max_length=20)
    usage_type: str = "SignIn"


def _default_store() -> VerificationStore:
    url = os.environ.get("ALIYUN_SMS_REDIS_URL")
    return RedisStore.from_url(url) if url else MemoryStore()


def create_app(
    config: AliyunSmsConfig | Mapping[str, Any] | None = None,
    store: Callable[[], VerificationStore] | None = None,
    *,
    secret_key: str | None = None,
    policy: VerificationPolicy | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """Build the app. Everything defaults to the environment (see the module docstring)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = AliyunSmsConnector(config if config is not None else AliyunSmsConfig.from_env())
        verification_store = store() if store is not None else _default_store()
        app.state.verify = VerificationService(
            connector,
            verification_store,
            secret_key=secret_key or os.environ.get("ALIYUN_SMS_VERIFY_SECRET_KEY"),
            policy=policy,
            clock=clock,
        )
        try:
            yield
        finally:
            await verification_store.aclose()
            verification_store.close()
            await connector.aclose()

    app = FastAPI(title="Sign in by SMS", lifespan=lifespan)

    @app.post("/sms/start", status_code=202)
    async def start(body: StartRequest, request: Request) -> Any:
        service: VerificationService = request.app.state.verify
        # Behind a proxy, run uvicorn with --proxy-headers (and --forwarded-allow-ips)
        # so that request.client is the user's address, not the proxy's.
        client_ip = request.client.host if request.client else None
        try:
            verification = await service.start_async(
                body.phone, body.usage_type, client_ip=client_ip
            )
        except AliyunSmsError as error:
            return _error_response(error)
        return {
            "verification_id": verification.id,
            "to": verification.masked_number,
            "expires_at": verification.expires_at.isoformat(),
            "resend_after": verification.resend_after.isoformat(),
        }

    @app.post("/sms/check")
    async def check(body: CheckRequest, request: Request) -> Any:
        service: VerificationService = request.app.state.verify
        try:
            result = await service.check_async(body.phone, body.usage_type, body.code)
        except AliyunSmsError as error:
            return _error_response(error)
        status = {
            CheckStatus.APPROVED: 200,
            CheckStatus.WRONG_CODE: 401,
            CheckStatus.TOO_MANY_ATTEMPTS: 429,
            CheckStatus.NOT_FOUND: 404,
        }[result.status]
        # A real app would now sign the user in and set its session cookie.
        return JSONResponse(
            {"status": result.status.value, "attempts_left": result.attempts_left},
            status_code=status,
        )

    return app


def _error_response(error: AliyunSmsError) -> JSONResponse:
    body = {"error": error.code, "message": error.message}
    if isinstance(error, RateLimitExceededError):
        retry_after = error.retry_after if error.retry_after is not None else 60
        return JSONResponse(
            body, status_code=429, headers={"Retry-After": str(math.ceil(retry_after))}
        )
    if isinstance(error, InvalidPhoneNumberError):
        return JSONResponse(body, status_code=400)
    if isinstance(error, PermissionDeniedError) and error.code == "CountryNotAllowed":
        return JSONResponse(body, status_code=403)
    if error.retryable:
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    if error.maybe_sent:
        # The code stays valid: the user may still receive it and check it.
        message = "the SMS may have been sent; if a code arrives, use it"
        return JSONResponse({"error": error.code, "message": message}, status_code=504)
    # Everything else (a bad template, an account problem) is ours to fix, not the user's.
    return JSONResponse({"error": error.code, "message": "the code could not be sent"}, 502)


app = create_app()
