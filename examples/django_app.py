"""Verification by SMS code with Django: a one-file project with two views.

Prerequisites: ``pip install aliyun-sms-connector django`` (a WSGI server such
as gunicorn for production, and ``aliyun-sms-connector[redis]`` for more than
one worker). Run it from the repository's root: it imports
``examples._http_errors`` and ``examples._settings``, which it shares with the
FastAPI and Flask examples.

Against the local emulator, with no account::

    aliyun-sms emulator &            # serves 127.0.0.1:18080 and prints each SMS
    export ALIYUN_SMS_ACCESS_KEY_ID=LTAIemulatorKeyId
    export ALIYUN_SMS_ACCESS_KEY_SECRET=emulator-access-key-secret
    export ALIYUN_SMS_SIGN_NAME=AliyunSmsTest
    export ALIYUN_SMS_TEMPLATES='[{"usageType": "Generic", "templateCode": "SMS_000001"}]'
    export ALIYUN_SMS_ENDPOINT=127.0.0.1:18080 ALIYUN_SMS_PROTOCOL=http
    export DJANGO_SECRET_KEY=change-me DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1
    gunicorn examples.django_app:application      # or: python -m examples.django_app runserver

In an existing project, copy the two views, ``urlpatterns`` and
:func:`get_service` into an app of yours; the settings below are only what
this file needs to run alone.

**Built once per process.** :func:`get_service` builds the connector (its
connection pools) and the verification service on the first request of each
worker process, and every later request reuses them. Building them per request
would open a new connection pool for every SMS. It is not built at import
time: under ``gunicorn --preload`` the import happens before the workers
fork, and they must not share sockets.

**Several workers need Redis.** ``gunicorn -w 4`` runs four processes, each
with its own ``MemoryStore``: set ``REDIS_URL`` (or ``ALIYUN_SMS_REDIS_URL``)
and ``ALIYUN_SMS_VERIFY_SECRET_KEY``. ``examples/_settings.py`` lists every
variable; without a Redis URL, the first request of each worker logs a warning.

**The client IP** feeds the per-IP limits. It is ``REMOTE_ADDR``, unless that
peer is one of ``TRUSTED_PROXIES`` (your reverse proxies' addresses or
networks): then it is the right-most ``X-Forwarded-For`` entry that is not a
trusted proxy. Never read ``X-Forwarded-For`` from any peer: a client can
write whatever it likes there.

``POST /sms/<purpose>/start`` ``{"phone": "..."}`` and
``POST /sms/<purpose>/check`` ``{"phone": "...", "code": "...", "verification_id": "..."}``
answer exactly as the FastAPI example's routes do: every error as
``examples/_http_errors.py`` maps it.
"""

# ruff: noqa: INP001 - an example script, run as examples.django_app

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
from typing import TYPE_CHECKING

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
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

from aliyun_sms_connector import AliyunSmsError

if TYPE_CHECKING:
    from aliyun_sms_connector.verify import VerificationService

logger = logging.getLogger("examples.django_app")

if not settings.configured:
    settings.configure(
        DEBUG=False,
        # Nothing here is signed (no sessions, no CSRF cookie); Django requires one anyway.
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32),
        ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(","),
        ROOT_URLCONF=__name__,
        # No sessions, no CSRF cookie, no database: a JSON API of two views.
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        TRUSTED_PROXIES=trusted_proxies(),
    )
    django.setup()

_PROXY_HINT = "set TRUSTED_PROXIES to your reverse proxies' addresses"
_lock = threading.Lock()
_verifier: Verifier | None = None


def get_service() -> VerificationService:
    """The process's verification service, built on first use from the environment."""
    global _verifier  # noqa: PLW0603 - one per process, by design
    if _verifier is None:
        with _lock:  # threaded workers: one build, not one per thread
            if _verifier is None:
                _verifier = build_verifier(logger=logger)
    return _verifier.service


def use_verifier(verifier: Verifier | None) -> Verifier | None:
    """Put ``verifier`` in place of the process's one (tests, embedding); return the old."""
    global _verifier
    with _lock:
        previous, _verifier = _verifier, verifier
    return previous


def _response(answer: Answer) -> JsonResponse:
    response = JsonResponse(dict(answer.body), status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


def _json(request: HttpRequest) -> object:
    try:
        return json.loads(request.body)
    except ValueError:
        return None


def _client_ip(request: HttpRequest) -> str | None:
    return client_ip(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        settings.TRUSTED_PROXIES,
    )


@csrf_exempt  # a JSON API called by your front end; protect it as the rest of your API
@require_POST
def start(request: HttpRequest, purpose: str) -> JsonResponse:
    """POST /sms/<purpose>/start: send a code."""
    usage_type = PURPOSES.get(purpose)
    if usage_type is None:
        return _response(unknown_purpose())
    body = read_body(_json(request), "phone")
    if isinstance(body, Answer):
        return _response(body)
    service = get_service()
    try:
        verification = service.start(body["phone"], usage_type, client_ip=_client_ip(request))
    except BadClientAddressError:
        return _response(bad_client_address(logger, _PROXY_HINT))
    except AliyunSmsError as error:
        return _response(
            error_answer(
                error, action="start", purpose=purpose, policy=service.policy, logger=logger
            )
        )
    return _response(start_answer(verification, purpose))


@csrf_exempt
@require_POST
def check(request: HttpRequest, purpose: str) -> JsonResponse:
    """POST /sms/<purpose>/check: check a code, for this route's purpose only."""
    usage_type = PURPOSES.get(purpose)
    if usage_type is None:
        return _response(unknown_purpose())
    body = read_body(_json(request), "phone", "code", "verification_id")
    if isinstance(body, Answer):
        return _response(body)
    service = get_service()
    try:
        result = service.check(
            body["phone"],
            usage_type,
            body["code"],
            verification_id=body["verification_id"],
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
    # On approval, a real app now does what this route's purpose grants, and
    # only that: log the user in (django.contrib.auth.login), create the
    # account, or allow one password reset.
    return _response(check_answer(result, service.policy))


urlpatterns = [
    path("sms/<str:purpose>/start", start),
    path("sms/<str:purpose>/check", check),
]


def _wsgi() -> object:
    from django.core.wsgi import get_wsgi_application  # noqa: PLC0415

    return get_wsgi_application()


application = _wsgi()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
