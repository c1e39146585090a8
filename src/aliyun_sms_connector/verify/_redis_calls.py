"""How one script call goes over redis-py: clients, EVALSHA and EVAL, faults, eviction.

Everything here speaks redis-py and nothing else: which exceptions are the
store's faults, when a command may be sent once more (it was never written
whole), the clients built from a URL, and the one-time eviction warning.
:mod:`._redis` builds the store on top of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._scripts import Script

__all__ = [
    "FAILED",
    "async_from_url",
    "config_policy",
    "eval_script",
    "faults",
    "is_async",
    "is_cluster",
    "next_try",
    "split_url",
    "warn_on_eviction",
]

logger = logging.getLogger("aliyun_sms_connector.verify")

_INSTALL_HINT = "RedisStore needs redis-py: pip install 'aliyun-sms-connector[redis]'"


def faults() -> tuple[type[BaseException], ...]:
    # Everything redis-py raises: RedisError covers connection, timeout,
    # READONLY, LOADING, CLUSTERDOWN, TRYAGAIN, MOVED/ASK left unresolved and
    # script errors; RedisClusterException is outside that tree; OSError and
    # TimeoutError come from sockets and from the asyncio deadline.
    try:
        from redis.exceptions import RedisClusterException, RedisError  # noqa: PLC0415
    except ImportError:
        missing = True
    else:
        missing = False
    if missing:
        raise ImportError(_INSTALL_HINT)

    # A reply the store's decoding cannot read (ValueError, IndexError, ...) is
    # as unconfirmed as no reply.
    return (
        RedisError,
        RedisClusterException,
        OSError,
        TimeoutError,
        asyncio.TimeoutError,
        ValueError,
        TypeError,
        LookupError,
    )


def config_policy(client: Any) -> Any:
    """``CONFIG GET maxmemory-policy``'s reply, or None where it is not allowed or fails."""
    try:
        return client.config_get("maxmemory-policy")
    except Exception:  # noqa: BLE001 - managed Redis often forbids CONFIG: nothing to say
        return None


def warn_on_eviction(reply: Any) -> None:
    """Log one WARNING when the server evicts keys under memory pressure."""
    policy = None
    if isinstance(reply, (list, tuple)):  # RESP2, unparsed: name, value, ...
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    if isinstance(reply, dict):
        for key, value in reply.items():
            if _as_text(key) == "maxmemory-policy":
                policy = _as_text(value)
    if policy is None or policy == "noeviction":
        return
    logger.warning(
        "Redis evicts keys when memory runs out (maxmemory-policy %s): send counters, "
        "cooldowns and counted guesses of the verification store can be evicted, which "
        "resets its limits. Use noeviction: a full Redis then refuses writes and the "
        "store fails closed.",
        policy,
    )


def _as_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def next_try(
    script: Script, command: str, resent: bool, error: Exception
) -> tuple[str, str, bool] | None:
    """What to send after ``error``: (command, body, resent), or None to give up."""
    if command == "EVALSHA" and isinstance(error, _no_script_error()):
        return "EVAL", script.source, resent
    if not resent and _unsent(error):
        return command, script.sha if command == "EVALSHA" else script.source, True
    # Whatever else the client raised (a redis-py error, or asyncio's own on a
    # transport closed mid-write, as CPython 3.13.0 does), no outcome was
    # confirmed.
    return None


# What _run's client call gives back when it raised: no reply at all.
FAILED: Any = object()


def _no_script_error() -> type[Exception]:
    from redis.exceptions import NoScriptError  # noqa: PLC0415

    return NoScriptError


def _unsent(error: BaseException) -> bool:
    """Whether redis-py failed before the command was written whole.

    redis-py says so with ``ConnectionError("Error N while writing to socket.
    ...")``; Redis runs only complete commands, so the script did not run and
    sending it again cannot count anything twice. This is what a pooled
    connection that the server closed while idle (a restart, a failover,
    Redis's ``timeout``, a NAT cut) gives on its next use. A failure while
    reading is never retried: the script may have run.
    """
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415

    return isinstance(error, RedisConnectionError) and "while writing to socket" in str(error)


def eval_script(client: Any, script: Script, keys: list[str], args: list[object]) -> Any:
    try:
        return _evalsha(client, script, keys, args)
    except Exception as error:
        if not _unsent(error):
            raise
    return _evalsha(client, script, keys, args)


def _evalsha(client: Any, script: Script, keys: list[str], args: list[object]) -> Any:
    try:
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except _no_script_error():
        pass  # the script did not run: send it once, which also caches it
    return client.execute_command("EVAL", script.source, len(keys), *keys, *args)


def split_url(url: str) -> tuple[bool, str]:
    for scheme in ("redis+cluster://", "rediss+cluster://"):
        if url.startswith(scheme):
            return True, url.replace("+cluster", "", 1)
    return False, url


def async_from_url(url: str, options: dict[str, Any]) -> Any:
    import redis.asyncio  # noqa: PLC0415
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    cluster, plain = split_url(url)
    # No socket_timeout: the store's own deadline bounds every call, and
    # redis-py's would cost a second timer per call. No retries (see from_url).
    # RESP2 unless asked otherwise: over RESP3, redis-py 8's asyncio pool skips
    # its check for connections the server closed while idle (it expects
    # maintenance push messages), so the first call after a Redis restart,
    # a failover or an idle timeout would fail.
    options = {
        "protocol": 2,
        **options,
        "socket_timeout": None,
        "retry": Retry(NoBackoff(), 0),
    }
    if cluster:
        return redis.asyncio.cluster.RedisCluster.from_url(plain, **options)
    return redis.asyncio.Redis.from_url(plain, **options)


def is_async(client: Any) -> bool:
    import inspect  # noqa: PLC0415

    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


def is_cluster(client: Any) -> bool:
    return "cluster" in type(client).__module__.lower() or "Cluster" in type(client).__name__
