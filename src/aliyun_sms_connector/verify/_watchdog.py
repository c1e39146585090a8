"""One timer per event loop that bounds every asyncio store call."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["Watchdog", "with_timeout"]


class Watchdog:
    """Bounds the store calls of one event loop with one timer, not one per call.

    ``asyncio.timeout`` schedules and cancels a timer for every call, which was
    about a tenth of a check's CPU. Here each call only notes its deadline; a
    single timer wakes at the earliest one (but no more often than every
    ``slack`` seconds) and cancels the calls that overran. A call is therefore
    cut between ``timeout`` and ``timeout + slack`` after it started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._slack = timeout / 8
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def enter(self) -> asyncio.Task[Any]:
        """Start the clock for the current task's store call."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - store calls always run in a task
            raise RuntimeError("a store call must run in an asyncio task")
        deadline = self._loop.time() + self._timeout
        self._deadlines[task] = deadline
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._tick)
        return task

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the cancellation ``task`` got was this watchdog's doing."""
        return task in self._expired

    def leave(self, task: asyncio.Task[Any]) -> int:
        """Stop the clock; take back a cancellation of ours that was delivered.

        Returns how many cancellations of others the task still has pending
        once ours is taken back (always 0 on Python 3.10, which cannot tell).
        """
        self._deadlines.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            if sys.version_info >= (3, 11):
                return task.uncancel()
        return 0

    def _tick(self) -> None:
        self._timer = None
        now = self._loop.time()
        earliest = None
        for task, deadline in self._deadlines.items():
            if deadline <= now:
                if task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._timer = self._loop.call_at(max(earliest, now + self._slack), self._tick)


async def with_timeout(awaitable: Awaitable[Any], seconds: float) -> Any:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)  # pragma: no cover - Python 3.10
