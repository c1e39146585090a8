"""The pumping guard's calls on Redis: which scripts a start and a check run.

A prefix's keys share their own hash tag, ``{pump:<id>}``: another slot than
the number's (``{<number id>}``) or the shared limits' (``{limits}``).

- **One node** (a plain Redis, or a replica set behind Sentinel): a script may
  touch keys of several slots. The guard's start then runs in the same script
  as the step the start makes anyway (``PUMP_RESERVE_SHARED`` when per-IP or
  global limits apply, else ``PUMP_RESERVE``), and an approval's count in the
  check's own script (``CHECK_PUMP``): no round trip is added.
- **Redis Cluster**, or a proxy that keeps each script to one slot (as managed
  Redis in proxy mode does): the guard's scripts run apart, before the step
  (one round trip more per start) and after an approving check (one more per
  approval). A refusal of the step after the guard counted un-counts the start
  (one more, on that path only).

Which one a store is, it learns once: a Cluster client is never one node; any
other client runs ``SPANS_SLOTS``, a script with keys in two slots, on its first
guarded call. If the server refuses it, or the probe fails, the calls go apart
for the life of the store: slower, never wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aliyun_sms_connector import ServiceUnavailableError

from ._guard import (
    PUMPING_MONITORED,
    approval_lost,
    approve_args,
    pump_keys,
    release_args,
    start_args,
)
from ._results import CheckStatus
from ._scripts import (
    CHECK,
    CHECK_PUMP,
    PUMP_APPROVE,
    PUMP_RELEASE,
    PUMP_RESERVE,
    PUMP_RESERVE_SHARED,
    PUMP_START,
    RESERVE,
    SPANS_SLOTS,
    Script,
    ignore,
    refusal,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._guard import PumpApproval, PumpStart
    from ._store import Refusal

    _Run = Callable[[Script, list[str], list[object], Callable[[Any], Any]], Any]
    _RunAsync = Callable[[Script, list[str], list[object], Callable[[Any], Any]], Awaitable[Any]]

__all__ = ["PumpCalls"]

_MAX_TAGS = 10_000
_JOINED = {RESERVE.name: PUMP_RESERVE, "reserve_shared": PUMP_RESERVE_SHARED}


class PumpCalls:
    """The guard's side of one RedisStore: its key prefix, and whether scripts may span slots."""

    def __init__(self, prefix: str, *, cluster: bool) -> None:
        self.prefix = prefix
        # None: not known yet (probed on the first guarded call); False on Cluster.
        self.joined: bool | None = False if cluster else None
        self._tags: dict[str, list[str]] = {}  # prefix id -> its keys
        self._approvals: dict[str, tuple[str, str]] = {}  # prefix id -> counts, pending

    def _keys(self, tag: str) -> list[str]:
        keys = self._tags.get(tag)
        if keys is None:
            if len(self._tags) >= _MAX_TAGS:
                self._tags.clear()
            keys = self._tags[tag] = pump_keys(self.prefix, tag)
        return keys

    def _probe_keys(self) -> list[str]:
        return [f"{self.prefix}{{pump-probe-a}}", f"{self.prefix}{{pump-probe-b}}"]

    # -- a start -----------------------------------------------------------------

    def reserve(
        self, run: _Run, script: Script, keys: list[str], args: list[object], pump: PumpStart | None
    ) -> Refusal | None:
        """``script`` (RESERVE or RESERVE_SHARED) with the guard's start before it."""
        if pump is None:
            return run(script, keys, args, refusal) if keys else None
        pk, pa = start_args(self._keys(pump.tag), pump)
        if not keys:
            return run(PUMP_START, pk, pa, refusal)  # type: ignore[no-any-return]
        if self.joined is None:
            self.probe(run)
        if self.joined:
            return run(_JOINED[script.name], pk + keys, pa + args, refusal)  # type: ignore[no-any-return]
        pumped: Refusal | None = run(PUMP_START, pk, pa, refusal)
        if pumped is not None and pumped.code != PUMPING_MONITORED:
            return pumped
        refused: Refusal | None = run(script, keys, args, refusal)
        if refused is not None:
            run(PUMP_RELEASE, *release_args(self._keys(pump.tag), pump), ignore)
        return refused or pumped

    async def reserve_async(
        self,
        run: _RunAsync,
        script: Script,
        keys: list[str],
        args: list[object],
        pump: PumpStart | None,
    ) -> Refusal | None:
        """The async twin of :meth:`reserve`."""
        if pump is None:
            return await run(script, keys, args, refusal) if keys else None
        pk, pa = start_args(self._keys(pump.tag), pump)
        if not keys:
            return await run(PUMP_START, pk, pa, refusal)  # type: ignore[no-any-return]
        if self.joined is None:
            await self.probe_async(run)
        if self.joined:
            return await run(_JOINED[script.name], pk + keys, pa + args, refusal)  # type: ignore[no-any-return]
        pumped: Refusal | None = await run(PUMP_START, pk, pa, refusal)
        if pumped is not None and pumped.code != PUMPING_MONITORED:
            return pumped
        refused: Refusal | None = await run(script, keys, args, refusal)
        if refused is not None:
            await run(PUMP_RELEASE, *release_args(self._keys(pump.tag), pump), ignore)
        return refused or pumped

    def release(self, run: _Run, pump: PumpStart | None) -> None:
        """Un-count a start whose SMS surely never left (sync)."""
        if pump is not None:
            run(PUMP_RELEASE, *release_args(self._keys(pump.tag), pump), ignore)

    async def release_async(self, run: _RunAsync, pump: PumpStart | None) -> None:
        """The async twin of :meth:`release`."""
        if pump is not None:
            await run(PUMP_RELEASE, *release_args(self._keys(pump.tag), pump), ignore)

    # -- a check -----------------------------------------------------------------

    def check_script(
        self, approval: PumpApproval | None, keys: list[str], args: list[object]
    ) -> tuple[Script, list[str], list[object]]:
        """The check's script: CHECK, or CHECK_PUMP counting an approval in the same trip.

        ``keys`` and ``args`` (the check's own, made for this call) are
        extended in place: the prefix's counts and pending, and the bucket ms.
        """
        if approval is None or not self.joined:
            return CHECK, keys, args
        keys += self.approval_keys(approval.tag)
        args.append(approval.bucket_ms)
        return CHECK_PUMP, keys, args

    def approval_keys(self, tag: str) -> tuple[str, str]:
        """The keys an approval touches: the prefix's counts and pending."""
        keys = self._approvals.get(tag)
        if keys is None:
            if len(self._approvals) >= _MAX_TAGS:
                self._approvals.clear()
            counts, pending, _ = pump_keys(self.prefix, tag)
            keys = self._approvals[tag] = (counts, pending)
        return keys

    def needs_probe(self, approval: PumpApproval | None) -> bool:
        """Whether a check should probe first (a guarded check, and not known yet)."""
        return approval is not None and self.joined is None

    def probe(self, run: _Run) -> None:
        """Learn whether scripts may span slots (sync)."""
        try:
            self.joined = bool(run(SPANS_SLOTS, self._probe_keys(), [], _one))
        except ServiceUnavailableError:
            self.joined = False

    async def probe_async(self, run: _RunAsync) -> None:
        """Learn whether scripts may span slots (async)."""
        try:
            self.joined = bool(await run(SPANS_SLOTS, self._probe_keys(), [], _one))
        except ServiceUnavailableError:
            self.joined = False

    def approved(
        self, run: _Run, approval: PumpApproval | None, answer: tuple[CheckStatus, int] | Refusal
    ) -> None:
        """Count an approval apart, when the check's script could not (sync)."""
        if self.joined or answer[0] is not CheckStatus.APPROVED:
            return
        self.count_approval(run, approval)

    def count_approval(self, run: _Run, approval: PumpApproval | None) -> None:
        """Count an approval in its own trip: a check's apart, or an Aliyun-made code's (sync).

        ``RedisStore.approve`` (``codes="aliyun"``) has no check script to
        join, so it always counts here. A lost count is logged; the approval stands.
        """
        if approval is None:
            return
        try:
            run(PUMP_APPROVE, *approve_args(self._keys(approval.tag), approval), ignore)
        except ServiceUnavailableError:
            approval_lost()

    async def approved_async(
        self,
        run: _RunAsync,
        approval: PumpApproval | None,
        answer: tuple[CheckStatus, int] | Refusal,
    ) -> None:
        """The async twin of :meth:`approved`."""
        if self.joined or answer[0] is not CheckStatus.APPROVED:
            return
        await self.count_approval_async(run, approval)

    async def count_approval_async(self, run: _RunAsync, approval: PumpApproval | None) -> None:
        """The async twin of :meth:`count_approval`."""
        if approval is None:
            return
        try:
            await run(PUMP_APPROVE, *approve_args(self._keys(approval.tag), approval), ignore)
        except ServiceUnavailableError:
            approval_lost()


def _one(reply: Any) -> bool:
    return int(reply) == 1
