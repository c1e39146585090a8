"""The shared store: Redis or Redis Cluster, through redis-py (sync and asyncio).

Every read-and-update is one Lua script, run with a raw ``EVALSHA`` (through
``execute_command``, or on the store's own connection pool for the plain
asyncio clients it builds, see _connections.py): redis-py's ``Script``
objects add a ``SCRIPT EXISTS`` in pipelines, and cluster pipelines do not
take ``evalsha``. On ``NOSCRIPT`` (a
restarted node, ``SCRIPT FLUSH``, a new replica) the script is sent once with
``EVAL``, which also caches it; a ``NOSCRIPT`` reply means the script did not
run, so the retry cannot count anything twice.

Round trips: ``check`` is one, or three with a client IP (hold a place in
the IP's count of wrong guesses, check, give the place back unless the guess
was wrong); ``start`` is one for the per-IP and global limits when they
apply, one for the number's limits and the held code, and one to commit the
code once its SMS was handed over; releasing after a failed send is one per
slot touched. The pumping guard adds none on one node, and on Cluster one per
start and one per approving check (see _redis_pump.py).

The keys of one number share the hash tag ``{<number id>}``, so each script
touches one slot and runs on Redis Cluster; the per-IP and global counters
share the tag ``{limits}``. Every key carries a TTL.

Every driver failure (refused, timeout, reset, ``READONLY``, ``CLUSTERDOWN``,
``LOADING``, an unreadable reply, ...) becomes
``ServiceUnavailableError(code="StoreUnavailable")``, raised outside the
``except`` block so that no redis-py exception, and none of its text, is
reachable from it. Nothing is retried that may have run: the clients
:meth:`RedisStore.from_url` builds have redis-py's retries off, and only a
command redis-py could not write at all is sent once more.

Eviction: on its first call the store reads ``maxmemory-policy`` (where the
server allows ``CONFIG GET``) and logs one WARNING unless it is
``noeviction``: a Redis that evicts keys under memory pressure drops send
counters, cooldowns and counted guesses, and so resets the limits. Under
``noeviction`` a full Redis refuses writes and the store fails closed.

redis-py is imported only when a store is built, so that the package imports
without it.
"""

from __future__ import annotations

import asyncio
import secrets
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from aliyun_sms_connector import ConfigError

from ._connections import DirectPool, can_drive
from ._keys import failed_key, number_keys, record_key, shared_keys, validate_prefix
from ._redis_aliyun import AliyunCodesOnRedis
from ._redis_calls import (
    FAILED,
    async_from_url,
    config_policy,
    eval_script,
    faults,
    is_async,
    is_cluster,
    next_try,
    split_url,
    warn_on_eviction,
)
from ._redis_pump import PumpCalls
from ._results import CheckStatus
from ._scripts import (
    CHECK,
    CHECK_PUMP,
    COMMIT,
    GUARD_IP,
    RELEASE,
    RELEASE_SHARED,
    RESERVE,
    RESERVE_SHARED,
    SETTLE_IP,
    Script,
    checked,
    committed,
    ignore,
    refusal,
)
from ._store import (
    ALIYUN_HOLDS,
    Guess,
    Refusal,
    Reservation,
    SharedReservation,
    VerificationStore,
    store_unavailable,
)
from ._watchdog import Watchdog, with_timeout

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    _Command = Callable[..., Awaitable[Any]]

__all__ = ["RedisStore"]

_T = TypeVar("_T")

DEFAULT_PREFIX = "aliyun-sms:"
DEFAULT_STORE_TIMEOUT = 0.5
# How many store_timeouts a cluster client's first slot mapping may take.
_INIT_FACTOR = 4


class RedisStore(AliyunCodesOnRedis, VerificationStore):
    """Keeps verifications in Redis or Redis Cluster, shared by every instance.

    Args:
        client: A ``redis.Redis``, ``redis.cluster.RedisCluster``, or their
            ``redis.asyncio`` twins. A sync client serves ``start``/``check``;
            an asyncio one serves ``start_async``/``check_async``.
        async_client: The asyncio client, when ``client`` is the sync one and
            both are wanted.
        prefix: Prepended to every key (no braces).
        store_timeout: Seconds that bound every store call (default 0.5).

    Timeouts: an asyncio call is cut between ``store_timeout`` and 1.125 times
    ``store_timeout`` after it started, whatever the client. A sync call is
    bounded by the client's own socket timeouts: :meth:`from_url` sets
    ``socket_connect_timeout`` and ``socket_timeout`` to ``store_timeout``, so
    a call that must first connect can take up to twice ``store_timeout``.

    Clients you pass in are used as they are. Build them as :meth:`from_url`
    does: ``retry=Retry(NoBackoff(), 0)`` (redis-py retries by default, and a
    script retried after its reply was lost may have run twice),
    ``socket_timeout=store_timeout`` for sync clients, and ``protocol=2`` for
    asyncio ones (over RESP3, redis-py 8's asyncio pool does not replace
    connections Redis closed while idle). The store does not close clients
    passed in; :meth:`from_url`'s are closed by :meth:`close` / :meth:`aclose`.

    The asyncio calls on a plain Redis client that :meth:`from_url` built
    (RESP2, no credential provider, text in strict UTF-8) run on redis-py
    connections that the store pools itself, without ``execute_command``'s
    and the pool's per-call layers: faster, but redis-py's OpenTelemetry
    metrics, if enabled, do not count them. ``max_connections`` still caps
    the connections; past it, calls wait for one, within ``store_timeout``.
    """

    shared = True

    def __init__(
        self,
        client: Any = None,
        *,
        async_client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
    ) -> None:
        if client is not None and is_async(client):
            if async_client is not None:
                raise ConfigError("pass one asyncio client, as client or as async_client")
            client, async_client = None, client
        if client is None and async_client is None:
            raise ConfigError("RedisStore needs a redis-py client, or use RedisStore.from_url")
        if async_client is not None and not is_async(async_client):
            raise ConfigError("async_client must be a redis.asyncio client")
        if not store_timeout > 0:
            raise ConfigError("store_timeout must be a positive number of seconds")
        try:
            self._prefix = validate_prefix(prefix)
        except ValueError as error:
            message = str(error)
        else:
            message = ""
        if message:
            raise ConfigError(message)
        self._faults = faults()
        self._sync = client
        self._async = async_client
        self._timeout = float(store_timeout)
        self._url: str | None = None
        self._url_options: dict[str, Any] = {}
        self._owned = False
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._watchdogs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdog] = (
            weakref.WeakKeyDictionary()
        )
        self._direct: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DirectPool] = (
            weakref.WeakKeyDictionary()
        )
        self._last_loop: (
            tuple[weakref.ref[asyncio.AbstractEventLoop], Any, Watchdog, _Command] | None
        ) = None
        # Whether maxmemory-policy was read (once per store, on its first call).
        self._policy_read = False
        self._pump = PumpCalls(self._prefix, cluster=is_cluster(client or async_client))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        store_timeout: float = DEFAULT_STORE_TIMEOUT,
        **options: Any,
    ) -> RedisStore:
        """Build a store on ``redis://``, ``rediss://``, ``unix://`` or ``redis+cluster://``.

        ``redis+cluster://host:port`` (or ``rediss+cluster://``) connects to a
        Redis Cluster through any of its nodes. The clients get
        ``socket_timeout`` and ``socket_connect_timeout`` of ``store_timeout``,
        and plain Redis clients no retries (a retried script could count a
        guess twice). ``options`` go to redis-py's ``from_url``. The asyncio
        client is made on first use, one per event loop.
        """
        faults()  # a clear ImportError without redis-py
        import redis  # noqa: PLC0415

        cluster, plain = split_url(url)
        store = cls.__new__(cls)
        options = {
            "socket_timeout": store_timeout,
            "socket_connect_timeout": store_timeout,
            **options,
        }
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415

        # No retries: a script retried after its reply was lost may have run
        # twice (a guess counted twice, a code consumed unseen). Cluster
        # clients still follow MOVED/ASK and refresh their slot map.
        sync_options = {"retry": Retry(NoBackoff(), 0), **options}
        if cluster:
            client: Any = redis.cluster.RedisCluster.from_url(plain, **sync_options)
        else:
            client = redis.Redis.from_url(plain, **sync_options)
        RedisStore.__init__(store, client, prefix=prefix, store_timeout=store_timeout)
        store._url = url  # noqa: SLF001 - same class
        store._url_options = options  # noqa: SLF001
        store._owned = True  # noqa: SLF001
        return store

    def __repr__(self) -> str:
        kind = "cluster" if is_cluster(self._sync or self._async) else "redis"
        return f"RedisStore({kind}, prefix={self._prefix!r}, store_timeout={self._timeout})"

    # -- the protocol ----------------------------------------------------------

    def reserve(self, reservation: Reservation) -> Refusal | None:
        """Check the number's limits; if all allow, hold the new code and count the send."""
        keys, args = self._reserve_args(reservation)
        return self._pump.reserve(self._run, RESERVE, keys, args, reservation.pump)

    async def reserve_async(self, reservation: Reservation) -> Refusal | None:
        """The async twin of :meth:`reserve`."""
        keys, args = self._reserve_args(reservation)
        return await self._pump.reserve_async(
            self._run_async, RESERVE, keys, args, reservation.pump
        )

    def reserve_shared(self, reservation: SharedReservation) -> Refusal | None:
        """Check the per-IP and global limits; if both allow, count the send."""
        keys, args = self._shared_args(reservation)
        return self._pump.reserve(self._run, RESERVE_SHARED, keys, args, reservation.pump)

    async def reserve_shared_async(self, reservation: SharedReservation) -> Refusal | None:
        """The async twin of :meth:`reserve_shared`."""
        keys, args = self._shared_args(reservation)
        return await self._pump.reserve_async(
            self._run_async, RESERVE_SHARED, keys, args, reservation.pump
        )

    def commit(self, reservation: Reservation) -> bool:
        """Make the reserved code the pending one, now that its SMS was handed over."""
        keys, args = self._commit_args(reservation)
        return self._run(COMMIT, keys, args, committed)

    async def commit_async(self, reservation: Reservation) -> bool:
        """The async twin of :meth:`commit`."""
        keys, args = self._commit_args(reservation)
        return await self._run_async(COMMIT, keys, args, committed)

    def release(self, reservation: Reservation) -> None:
        """Undo a reservation whose SMS surely never left: its code, cooldowns and count."""
        keys = self._reservation_keys(reservation)
        self._run(RELEASE, keys, [reservation.verification_id], ignore)
        self._pump.release(self._run, reservation.pump)

    async def release_async(self, reservation: Reservation) -> None:
        """The async twin of :meth:`release`."""
        keys = self._reservation_keys(reservation)
        await self._run_async(RELEASE, keys, [reservation.verification_id], ignore)
        await self._pump.release_async(self._run_async, reservation.pump)

    def release_shared(self, reservation: SharedReservation) -> None:
        """Undo a shared reservation: its per-IP and global counts."""
        keys, _ = self._shared_args(reservation)
        if keys:
            self._run(RELEASE_SHARED, keys, [reservation.verification_id], ignore)
        self._pump.release(self._run, reservation.pump)

    async def release_shared_async(self, reservation: SharedReservation) -> None:
        """The async twin of :meth:`release_shared`."""
        keys, _ = self._shared_args(reservation)
        if keys:
            await self._run_async(RELEASE_SHARED, keys, [reservation.verification_id], ignore)
        await self._pump.release_async(self._run_async, reservation.pump)

    def check(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        """Count the guess, then approve (and delete) or say why not: one round trip.

        With a per-IP cap, a place in the IP's count is held first and given
        back unless the guess was wrong: three round trips.
        """
        pump = guess.pump
        if self._pump.needs_probe(pump):
            self._pump.probe(self._run)
        script, keys, args = self._pump.check_script(pump, *self._check_args(guess))
        ip = self._ip_guard(guess)
        if ip is None:
            answer = self._run(script, keys, args, checked)
        else:
            held = self._run(GUARD_IP, ip[0], ip[1], refusal)
            if held is not None:
                return held
            answer = self._run(script, keys, args, checked)
            if answer[0] is not CheckStatus.WRONG_CODE:
                self._run(SETTLE_IP, ip[0], ip[1][2:], ignore)
        self._pump.approved(self._run, pump, answer)
        return answer

    def check_async(self, guess: Guess) -> Coroutine[Any, Any, tuple[CheckStatus, int] | Refusal]:
        """The async twin of :meth:`check`."""
        # Returns _run_async's coroutine itself rather than awaiting it in one
        # more: every resumption of a task walks its chain of awaits, and
        # checks are the hot path.
        pump = guess.pump
        keys, args = self._check_args(guess)
        script = CHECK
        if pump is not None:
            if not self._pump.joined:
                return self._check_pumped_async(guess)
            # PumpCalls.check_script, inline: CHECK_PUMP counts an approval in the same trip.
            script = CHECK_PUMP
            keys += self._pump.approval_keys(pump.tag)
            args.append(pump.bucket_ms)
        ip = self._ip_guard(guess)
        if ip is None:
            return self._run_async(script, keys, args, checked)
        return self._check_from_ip_async(keys, args, ip, script)

    async def _check_pumped_async(self, guess: Guess) -> tuple[CheckStatus, int] | Refusal:
        """A guarded check before the probe, or on Cluster: the approval counted apart."""
        if self._pump.needs_probe(guess.pump):
            await self._pump.probe_async(self._run_async)
        script, keys, args = self._pump.check_script(guess.pump, *self._check_args(guess))
        ip = self._ip_guard(guess)
        answer: tuple[CheckStatus, int] | Refusal
        if ip is None:
            answer = await self._run_async(script, keys, args, checked)
        else:
            answer = await self._check_from_ip_async(keys, args, ip, script)
        await self._pump.approved_async(self._run_async, guess.pump, answer)
        return answer

    async def _check_from_ip_async(
        self,
        keys: list[str],
        args: list[object],
        ip: tuple[list[str], list[object]],
        script: Script = CHECK,
    ) -> tuple[CheckStatus, int] | Refusal:
        held = await self._run_async(GUARD_IP, ip[0], ip[1], refusal)
        if held is not None:
            return held
        answer = await self._run_async(script, keys, args, checked)
        if answer[0] is not CheckStatus.WRONG_CODE:
            await self._run_async(SETTLE_IP, ip[0], ip[1][2:], ignore)
        return answer

    def close(self) -> None:
        """Close the sync client, if :meth:`from_url` made it."""
        if self._owned and self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        """Close this event loop's client, if :meth:`from_url` made it."""
        if not self._owned:
            return
        loop = asyncio.get_running_loop()
        self._last_loop = None
        client = self._loop_clients.pop(loop, None)
        direct = self._direct.pop(loop, None)
        if direct is not None:
            await direct.aclose()
        if client is not None:
            await client.aclose()

    # -- keys and arguments ------------------------------------------------------

    def _reserve_args(self, r: Reservation) -> tuple[list[str], list[object]]:
        keys = self._reservation_keys(r)
        args: list[object] = [
            r.now_ms,
            r.verification_id,
            r.digest,
            r.expires_ms,
            r.usage_cooldown_ms,
            r.number_cooldown_ms,
            r.hourly,
            r.daily,
        ]
        return keys, args

    def _commit_args(self, r: Reservation) -> tuple[list[str], list[object]]:
        # The siblings' records share the number's slot (its hash tag).
        keys = [record_key(self._prefix, r.number, usage) for usage in (r.usage_type, *r.siblings)]
        return keys, [r.verification_id, r.now_ms, ALIYUN_HOLDS]

    def _reservation_keys(self, r: Reservation) -> list[str]:
        """The keys RESERVE and RELEASE touch: the record, both cooldowns, the sends."""
        k = number_keys(self._prefix, r.number, r.usage_type)
        return [k.record, k.usage_cooldown, k.number_cooldown, k.sends]

    def _shared_args(self, r: SharedReservation) -> tuple[list[str], list[object]]:
        shared = shared_keys(self._prefix, r.ip)
        keys: list[str] = []
        args: list[object] = [r.now_ms, r.verification_id]
        for key, cap, code in (
            (shared.global_, r.global_hourly, "GlobalHourlyLimit"),
            (shared.ip, r.ip_hourly, "IpHourlyLimit"),
        ):
            if key is not None and cap > 0:
                keys.append(key)
                args.extend((cap, code))
        return keys, args

    def _check_args(self, g: Guess) -> tuple[list[str], list[object]]:
        keys = [record_key(self._prefix, g.number, g.usage_type)]
        if g.failed_hourly > 0:
            keys.append(failed_key(self._prefix, g.number, g.usage_type))
        else:
            keys.append(keys[0])  # unused without a cap; same slot
        bound = g.verification_id is not None
        return keys, [
            g.now_ms,
            g.digest,
            g.max_attempts,
            g.failed_hourly,
            g.verification_id if bound else "",
            1 if bound else 0,
        ]

    def _ip_guard(self, g: Guess) -> tuple[list[str], list[object]] | None:
        """The per-IP guard's keys and arguments (now, cap, place), or None."""
        if g.ip is None or g.ip_failed_hourly <= 0:
            return None
        key = shared_keys(self._prefix, g.ip).ip_failed
        # The place's name: unique per guess, so that giving it back takes this one only.
        return [str(key)], [g.now_ms, g.ip_failed_hourly, f"{g.now_ms}:{secrets.token_hex(8)}"]

    # -- running scripts ---------------------------------------------------------

    def _run(
        self,
        script: Script,
        keys: list[str],
        args: list[object],
        decode: Callable[[Any], _T],
    ) -> _T:
        client = self._sync
        if client is None:
            raise ConfigError(
                "this RedisStore has only an asyncio client: use start_async/check_async, "
                "or pass a sync client too"
            )
        if not self._policy_read:
            self._policy_read = True
            warn_on_eviction(config_policy(client))
        try:
            reply = eval_script(client, script, keys, args)
        except Exception:  # noqa: BLE001 - any failure of the client call is the store's
            reply = FAILED  # raised below, outside the except block: nothing chained
        if reply is not FAILED:
            try:
                return decode(reply)
            except self._faults:
                pass
        raise store_unavailable()

    async def _run_async(
        self,
        script: Script,
        keys: list[str],
        args: list[object],
        decode: Callable[[Any], _T],
    ) -> _T:
        client, watchdog, execute = self._for_loop()
        try:
            if not self._policy_read or getattr(client, "_initialize", False) is True:
                await self._prepare(client, execute)
            # The deadline is kept inline, not in a wrapping coroutine: every
            # resumption of a task walks its whole chain of awaits.
            task = watchdog.enter()
            try:
                # EVALSHA; on NOSCRIPT once EVAL; an unsent command once more.
                command, body, resent = "EVALSHA", script.sha, False
                while True:
                    try:
                        reply = await execute(command, body, len(keys), *keys, *args)
                    except Exception as error:  # noqa: PERF203, BLE001 - rare; any failure is the store's
                        again = next_try(script, command, resent, error)
                        if again is None:
                            break
                        command, body, resent = again
                    else:
                        return decode(reply)
            except asyncio.CancelledError:
                if not watchdog.expired(task):
                    raise  # cancelled by the caller: not ours to swallow
            finally:
                caller_cancels = watchdog.leave(task)
            if caller_cancels:
                # The caller cancelled too, in the same tick as the deadline:
                # its cancellation wins over the store's fault.
                raise asyncio.CancelledError
        except self._faults:
            pass  # raised below, outside the except block: nothing chained
        raise store_unavailable()

    async def _prepare(self, client: Any, execute: _Command) -> None:
        """What an asyncio client needs before its first call: slots, and the policy read."""
        if getattr(client, "_initialize", False) is True:
            # A new (or reset) asyncio cluster client first maps the slots
            # (CLUSTER SLOTS, COMMAND): a few hundred ms, once, bounded
            # apart from the per-call deadline.
            await with_timeout(client.initialize(), self._timeout * _INIT_FACTOR)
        if not self._policy_read:
            self._policy_read = True
            try:
                # Through the calls' own path: no connection of its own.
                reply = await with_timeout(
                    execute("CONFIG", "GET", "maxmemory-policy"), self._timeout
                )
            except Exception:  # noqa: BLE001 - not allowed or not answered: nothing to say
                return
            warn_on_eviction(reply)

    def _for_loop(self) -> tuple[Any, Watchdog, _Command]:
        """This event loop's client, watchdog and command runner; the last loop's are remembered."""
        loop = asyncio.get_running_loop()
        last = self._last_loop
        if last is not None and last[0]() is loop:
            return last[1], last[2], last[3]
        client, watchdog = self._async_client(), self._watchdog()
        execute = client.execute_command
        if self._url is not None and can_drive(client):
            # A plain client this store built: no single connection, retries or
            # response callbacks to honour, so its commands skip execute_command
            # and its pool (see _connections.py).
            execute = self._direct.get(loop)
            if execute is None:
                execute = self._direct[loop] = DirectPool(client.connection_pool)
        # A weak reference: remembering a loop must not keep it alive.
        self._last_loop = (weakref.ref(loop), client, watchdog, execute)
        return client, watchdog, execute

    def _watchdog(self) -> Watchdog:
        loop = asyncio.get_running_loop()
        watchdog = self._watchdogs.get(loop)
        if watchdog is None:
            watchdog = self._watchdogs[loop] = Watchdog(loop, self._timeout)
        return watchdog

    def _async_client(self) -> Any:
        if self._async is not None:
            return self._async
        if self._url is None:
            raise ConfigError(
                "this RedisStore has only a sync client: use start/check, "
                "or pass a redis.asyncio client too"
            )
        # An asyncio client belongs to the loop it first ran in: one per loop.
        loop = asyncio.get_running_loop()
        client = self._loop_clients.get(loop)
        if client is None:
            client = async_from_url(self._url, self._url_options)
            self._loop_clients[loop] = client
        return client
