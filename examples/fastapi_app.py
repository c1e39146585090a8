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

**More than one worker process needs RedisStore.** A ``MemoryStore`` lives in
one process: with ``uvicorn --workers N``, gunicorn's workers, or several
instances behind a load balancer, a code started on one worker is not found on
another, and every limit is multiplied by the number of workers. Set
``ALIYUN_SMS_REDIS_URL`` (``redis://…`` or ``redis+cluster://…``) and the same
``ALIYUN_SMS_VERIFY_SECRET_KEY`` (32 bytes or more) on every instance. The app
refuses to start when ``WEB_CONCURRENCY`` (read by uvicorn and gunicorn as
their default worker count) is above 1 without ``ALIYUN_SMS_REDIS_URL``;
``--workers`` and ``-w`` on the command line cannot be seen from inside a
worker, so with those, setting the URL is up to you.

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
    202 ``{"verification_id", "purpose", "to", "expires_at", "resend_after"}``;
    400 an invalid number, body or client address, or an unknown purpose;
    403 a country or number type (premium-rate, fixed-line, ...) that is not
    allowed; 429 with ``Retry-After`` on every rate limit; 503 with
    ``Retry-After`` when the store or Aliyun fails in a way worth retrying, or
    the code sent could not be activated; 504 when Aliyun did not answer and
    the SMS may have gone out (with the ``verification_id`` that checks its
    code if it arrives; or ask for a new one after ``Retry-After``); 502 when
    the fault is the app's (a template, sign name or account problem).
``POST /sms/{purpose}/check`` ``{"phone": "...", "code": "...", "verification_id": "..."}``
    200 approved; 401 a wrong code, with ``attempts_left``; 404 nothing to
    check (never sent, expired, used, replaced, or another verification's id);
    429 with ``Retry-After`` when the verification is locked or this address
    made too many wrong guesses (``IpFailedChecksLimit``); 400 an invalid
    number or body, or an unknown purpose; 503 when the store cannot answer.

Every error body is ``{"error": CODE, "message": TEXT}``: a fixed text per
kind of error, never Aliyun's own message (it can name Aliyun's hosts). The
server log gets one line per error with its code and Aliyun's request id
(never the number or the code), at WARNING for Aliyun's and the server's
failures, at INFO for the client's (limits, invalid input).
"""

# ruff: noqa: INP001 - an example script, run by path or as examples.fastapi_app

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
from contextlib import AsyncExitStack, asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsConnector,
    AliyunSmsError,
    InvalidPhoneNumberError,
    PermissionDeniedError,
    RateLimitExceededError,
    TemplateNotFoundError,
    UsageType,
)
from aliyun_sms_connector.verify import (
    CheckResult,
    CheckStatus,
    MemoryStore,
    RedisStore,
    VerificationPolicy,
    VerificationService,
    VerificationStore,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping

logger = logging.getLogger("examples.fastapi_app")

#: The purposes this app sends codes for: path segment → usage type (and so
#: template). Only these are served; any other segment is a 400. What an
#: approval grants is decided per purpose, in ``check`` below.
PURPOSES: Mapping[str, UsageType] = MappingProxyType(
    {
        "sign-in": UsageType.SIGN_IN,
        "register": UsageType.REGISTER,
        "forgot-password": UsageType.FORGOT_PASSWORD,
    }
)

# The service's own refusals, whose codes are safe to show the client. Anything
# else (Aliyun's codes) is shown as a generic code of its kind.
_OWN_RATE_LIMITS = frozenset(
    {
        "VerificationCooldown",
        "NumberHourlyLimit",
        "NumberDailyLimit",
        "IpHourlyLimit",
        "GlobalHourlyLimit",
        "IpFailedChecksLimit",
    }
)
_NOT_ALLOWED = frozenset({"CountryNotAllowed", "NumberTypeNotAllowed"})
_STORE_CODES = {
    "StoreUnavailable": "the service is temporarily unavailable; try again shortly",
    "CodeNotActivated": "the code could not be activated; ask for a new one",
}
_DEFAULT_RETRY_AFTER = 60
_CHECK_STATUS = {
    CheckStatus.APPROVED: 200,
    CheckStatus.WRONG_CODE: 401,
    CheckStatus.NOT_FOUND: 404,
}


class StartRequest(BaseModel):
    """Send a code to ``phone``."""

    phone: str = Field(max_length=40)


class CheckRequest(BaseModel):
    """Check the code the user typed, for the verification ``start`` returned."""

    phone: str = Field(max_length=40)
    code: str = Field(max_length=20)
    verification_id: str = Field(min_length=1, max_length=64)


class _BadClientAddressError(Exception):
    """``request.client.host`` is not an IP address (a proxy or server misconfiguration)."""


def _declared_workers() -> int:
    try:
        return int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        return 1


def _default_store() -> VerificationStore:
    url = os.environ.get("ALIYUN_SMS_REDIS_URL")
    if url:
        return RedisStore.from_url(url)
    workers = _declared_workers()
    if workers > 1:
        # A per-process store under several workers: codes not found, limits multiplied.
        message = (
            f"WEB_CONCURRENCY={workers} but no ALIYUN_SMS_REDIS_URL: several worker "
            "processes need RedisStore (a MemoryStore is per process)"
        )
        logger.error(message)
        raise RuntimeError(message)
    return MemoryStore()


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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            verification_store = store() if store is not None else _default_store()
            stack.push_async_callback(_close_store, verification_store)
            connector = AliyunSmsConnector(
                config if config is not None else AliyunSmsConfig.from_env()
            )
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


def _add_routes(app: FastAPI) -> None:
    """The two routes of each purpose, and a 400 for a malformed request."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own 422 echoes the input, number and code included: name the fields only.
        fields = sorted({".".join(str(part) for part in e["loc"]) for e in exc.errors()})
        return _json(400, "InvalidRequest", "the request is not valid", fields=fields)

    @app.post("/sms/{purpose}/start", status_code=202)
    async def start(purpose: str, body: StartRequest, request: Request) -> Any:
        usage_type = PURPOSES.get(purpose)
        if usage_type is None:
            return _unknown_purpose()
        service: VerificationService = request.app.state.verify
        try:
            verification = await service.start_async(
                body.phone, usage_type, client_ip=_client_ip(request)
            )
        except _BadClientAddressError:
            return _bad_client_address()
        except AliyunSmsError as error:
            return _error_response(error, "start", purpose, service.policy)
        return {
            "verification_id": verification.id,
            "purpose": purpose,
            "to": verification.masked_number,
            "expires_at": verification.expires_at.isoformat(),
            "resend_after": verification.resend_after.isoformat(),
        }

    @app.post("/sms/{purpose}/check")
    async def check(purpose: str, body: CheckRequest, request: Request) -> Any:
        # The usage type is the route's, never the client's: a code sent for
        # one purpose is never approved for another.
        usage_type = PURPOSES.get(purpose)
        if usage_type is None:
            return _unknown_purpose()
        service: VerificationService = request.app.state.verify
        try:
            result = await service.check_async(
                body.phone,
                usage_type,
                body.code,
                verification_id=body.verification_id,
                client_ip=_client_ip(request),
            )
        except _BadClientAddressError:
            return _bad_client_address()
        except AliyunSmsError as error:
            return _error_response(error, "check", purpose, service.policy)
        # On approval, a real app now does what this route's purpose grants,
        # and only that: for UsageType.SIGN_IN, sign the user of this number in
        # and set the session cookie; for REGISTER, create the account; for
        # FORGOT_PASSWORD, let the password be reset once.
        return _check_response(result, service.policy)


def _check_response(result: CheckResult, policy: VerificationPolicy) -> JSONResponse:
    content = {"status": result.status.value, "attempts_left": result.attempts_left}
    if result.status is CheckStatus.TOO_MANY_ATTEMPTS:
        # Locked until it expires: a new code may be asked for once the
        # resend cooldowns have passed.
        return JSONResponse(
            content, status_code=429, headers={"Retry-After": _seconds(_cooldown(policy))}
        )
    return JSONResponse(content, status_code=_CHECK_STATUS[result.status])


def _client_ip(request: Request) -> str | None:
    """The address uvicorn reports (the proxy's client with --proxy-headers), or None."""
    if request.client is None:
        return None
    host = request.client.host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _BadClientAddressError from None
    return host


def _json(
    status: int,
    error: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "message": message, **extra}, status_code=status, headers=headers
    )


def _unknown_purpose() -> JSONResponse:
    served = ", ".join(PURPOSES)
    return _json(400, "UnknownUsageType", f"unknown purpose; this app serves: {served}")


def _bad_client_address() -> JSONResponse:
    logger.warning(
        "the client address is not an IP address: behind a proxy, check uvicorn's "
        "--proxy-headers and --forwarded-allow-ips"
    )
    return _json(400, "InvalidRequest", "the request is not valid")


def _cooldown(policy: VerificationPolicy) -> float:
    return max(policy.resend_cooldown, policy.per_number_cooldown).total_seconds()


def _seconds(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def _error_response(
    error: AliyunSmsError, action: str, purpose: str, policy: VerificationPolicy
) -> JSONResponse:
    """A fixed text per kind of error; the code and Aliyun's request id go to the log."""
    response = _classify(error, policy)
    # Aliyun's answer (request_id set) and the server's own failures deserve a
    # look; a client's invalid input or limit is routine.
    level = (
        logging.WARNING
        if response.status_code >= 500 or error.request_id is not None  # noqa: PLR2004
        else logging.INFO
    )
    logger.log(
        level,
        "sms %s failed: purpose=%s status=%d error=%s code=%s request_id=%s",
        action,
        purpose,
        response.status_code,
        type(error).__name__,
        error.code,
        error.request_id,
    )
    return response


def _classify(error: AliyunSmsError, policy: VerificationPolicy) -> JSONResponse:
    if isinstance(error, RateLimitExceededError):
        retry_after = error.retry_after if error.retry_after is not None else _DEFAULT_RETRY_AFTER
        code = error.code if error.code in _OWN_RATE_LIMITS else "RateLimited"
        return _json(
            429,
            code,
            "too many requests; try again later",
            headers={"Retry-After": _seconds(retry_after)},
        )
    if isinstance(error, InvalidPhoneNumberError):
        return _json(400, "InvalidPhoneNumber", "the phone number is not valid")
    if isinstance(error, PermissionDeniedError) and error.code in _NOT_ALLOWED:
        return _json(403, error.code, "codes cannot be sent to this number")
    if isinstance(error, TemplateNotFoundError) and error.code == "UnknownUsageType":
        return _unknown_purpose()  # not reached: PURPOSES holds usage types only
    if error.code in _STORE_CODES:
        return _json(503, error.code, _STORE_CODES[error.code], headers={"Retry-After": "1"})
    if error.retryable:
        return _json(
            503,
            "SmsUnavailable",
            "the code could not be sent; try again shortly",
            headers={"Retry-After": "1"},
        )
    if error.maybe_sent:
        # The SMS may arrive: start's error carries the verification its code
        # belongs to, so the client can still check it, or ask again after
        # the cooldown.
        verification = getattr(error, "verification", None)
        extra = {} if verification is None else {"verification_id": verification.id}
        return _json(
            504,
            "SmsUncertain",
            "the code may or may not arrive; check it if it does, or ask for a new one",
            headers={"Retry-After": _seconds(_cooldown(policy))},
            **extra,
        )
    # Everything else (a template, sign name or account problem) is ours to fix.
    return _json(502, "SmsFailed", "the code could not be sent")


app = create_app()
