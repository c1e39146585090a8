"""The example apps' settings, from the environment: the connector, the store, the proxies.

No web framework is imported here. Each app calls :func:`build_service` once
per worker process, and keeps the service for every request: the connector
holds the connection pools, the store its Redis connections.

=================================  ===================================================
variable                           meaning
=================================  ===================================================
``ALIYUN_SMS_CONFIG``              path of Logto's connector JSON (examples/logto.json
                                   shows the format); else the ``ALIYUN_SMS_*``
                                   variables (``AliyunSmsConfig.from_env``)
``ALIYUN_SMS_REDIS_URL``,          ``redis://…`` or ``redis+cluster://…``: a
``REDIS_URL``                      ``RedisStore`` shared by every worker (the first
                                   one set wins); else a ``MemoryStore``, with a
                                   loud warning
``ALIYUN_SMS_VERIFY_SECRET_KEY``   the HMAC key of stored codes, 32 bytes or more, the
                                   same on every instance (required with Redis)
``WEB_CONCURRENCY``                the worker count gunicorn and uvicorn read: above 1
                                   without Redis, the app refuses to start
``TRUSTED_PROXIES``                comma-separated addresses or networks of your
                                   reverse proxies (``10.0.0.5,10.1.0.0/16``); only a
                                   request from one of them has its
                                   ``X-Forwarded-For`` read (Django and Flask)
=================================  ===================================================

**A MemoryStore lives in one process.** Under ``gunicorn -w 4`` each worker
has its own: a code started on one worker is not found on another (the user's
right code is refused), and every limit is multiplied by the number of
workers. gunicorn's ``-w`` cannot be seen from inside a worker, so this module
warns at every start without Redis, and refuses when ``WEB_CONCURRENCY`` says
there are several workers.
"""

# ruff: noqa: INP001 - an example module, imported as examples._settings

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsConnector
from aliyun_sms_connector.verify import (
    MemoryStore,
    RedisStore,
    VerificationPolicy,
    VerificationService,
    VerificationStore,
)

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping

__all__ = [
    "Verifier",
    "build_verifier",
    "connector_config",
    "default_store",
    "secret_key_from_env",
    "trusted_proxies",
]

_REDIS_VARIABLES = ("ALIYUN_SMS_REDIS_URL", "REDIS_URL")


def connector_config() -> AliyunSmsConfig:
    """``ALIYUN_SMS_CONFIG``'s file (Logto's JSON), else the ``ALIYUN_SMS_*`` variables."""
    path = os.environ.get("ALIYUN_SMS_CONFIG")
    if path:
        return AliyunSmsConfig.from_json(Path(path).read_bytes())
    return AliyunSmsConfig.from_env()


def secret_key_from_env() -> str | None:
    """``ALIYUN_SMS_VERIFY_SECRET_KEY``: required with a shared store."""
    return os.environ.get("ALIYUN_SMS_VERIFY_SECRET_KEY") or None


def trusted_proxies() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``TRUSTED_PROXIES``: the reverse proxies whose ``X-Forwarded-For`` is believed.

    Raises:
        ValueError: An entry is not an address or a network.
    """
    entries = os.environ.get("TRUSTED_PROXIES", "").split(",")
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _declared_workers() -> int:
    try:
        return int(os.environ.get("WEB_CONCURRENCY", "1"))
    except ValueError:
        return 1


def default_store(logger: logging.Logger) -> VerificationStore:
    """A RedisStore when a Redis URL is set; else a MemoryStore, loudly.

    Raises:
        RuntimeError: ``WEB_CONCURRENCY`` is above 1 and no Redis URL is set.
    """
    url = next((os.environ[name] for name in _REDIS_VARIABLES if os.environ.get(name)), None)
    if url:
        return RedisStore.from_url(url)
    workers = _declared_workers()
    if workers > 1:
        # A per-process store under several workers: codes not found, limits multiplied.
        message = (
            f"WEB_CONCURRENCY={workers} but no ALIYUN_SMS_REDIS_URL or REDIS_URL: several "
            "worker processes need RedisStore (a MemoryStore is per process)"
        )
        logger.error(message)
        raise RuntimeError(message)
    logger.warning(
        "no ALIYUN_SMS_REDIS_URL or REDIS_URL: codes are kept in a MemoryStore, in this "
        "process only. Under several workers (gunicorn -w 4, uvicorn --workers 4) or "
        "instances, a code started on one is not found on another and every limit is "
        "multiplied: set a Redis URL and ALIYUN_SMS_VERIFY_SECRET_KEY"
    )
    return MemoryStore()


@dataclasses.dataclass(frozen=True)
class Verifier:
    """What a worker process builds once: the service, and what to close at exit."""

    service: VerificationService
    connector: AliyunSmsConnector

    def close(self) -> None:
        """Close the store's connections and the connector's pools."""
        self.service.store.close()
        self.connector.close()


def build_verifier(
    config: AliyunSmsConfig | Mapping[str, Any] | None = None,
    store: Callable[[], VerificationStore] | None = None,
    *,
    secret_key: str | None = None,
    policy: VerificationPolicy | None = None,
    clock: Callable[[], float] | None = None,
    logger: logging.Logger,
) -> Verifier:
    """The connector and the verification service, once per process.

    Everything not given comes from the environment (see the module
    docstring). The policy's ``require_verification_id`` is always turned on:
    only whoever started a verification can guess at its code.
    """
    bound_policy = dataclasses.replace(
        policy if policy is not None else VerificationPolicy(), require_verification_id=True
    )
    connector = AliyunSmsConnector(config if config is not None else connector_config())
    verification_store: VerificationStore | None = None
    try:
        verification_store = store() if store is not None else default_store(logger)
        service = VerificationService(
            connector,
            verification_store,
            secret_key=secret_key or secret_key_from_env(),
            policy=bound_policy,
            clock=clock,
        )
    except BaseException:
        if verification_store is not None:
            verification_store.close()
        connector.close()
        raise
    return Verifier(service, connector)
