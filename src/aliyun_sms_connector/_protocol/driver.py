"""The thin drivers: one attempt and the retry loop, once sync and once async.

Everything here moves between the pure parts: :mod:`.wire` signs a request
and reads its answer, the lane's ``Transport`` (``_http.transport``) moves the
bytes, :mod:`.policy` decides on retries, ``_errors`` types the failure.

The final error is raised outside any ``except`` block, so that its
``__context__`` is None; its ``__cause__`` is at most the redactor's scrubbed
stand-in. The raw ``Failure`` (Aliyun's unscrubbed text) lives
only in the attempt's frame, which is gone when the error is raised: an error
tracker that captures frame locals finds nothing private in the frames left.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from aliyun_sms_connector._errors import AliyunSmsError, Failure
from aliyun_sms_connector._errors.translate import error_from_failure
from aliyun_sms_connector._http.models import TransportError

from . import sdk
from .wire import Answer, read

if TYPE_CHECKING:
    from aliyun_sms_connector._http.transport import Transport

    from .calls import Call
    from .policy import RetryPolicy
    from .wire import Signer

__all__ = ["Driver", "Lane", "log_success", "logger"]

logger = logging.getLogger("aliyun_sms_connector")
# A library leaves output to the application; without this, WARNINGs would
# reach stderr through logging's last-resort handler.
logger.addHandler(logging.NullHandler())

_NO_CREDENTIALS = Failure(
    "response",
    code="CredentialsUnavailable",
    message="the Alibaba Cloud credential chain found no usable credentials",
)


class Lane(Protocol):
    """What a driver needs of one endpoint."""

    credentials: sdk.CredentialSource
    signer: Signer
    transport: Transport


class Driver:
    """Runs calls through lanes under one retry policy and one pair of timeouts.

    Args:
        policy: Which failures are retried, and the waits.
        connect_timeout, read_timeout: Per attempt, in seconds; the
            transport cuts each to what is left of the call's deadline.
    """

    __slots__ = ("_connect_timeout", "_policy", "_read_timeout")

    def __init__(self, policy: RetryPolicy, *, connect_timeout: float, read_timeout: float) -> None:
        self._policy = policy
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    def run(
        self, call: Call, lane: Lane, action: str, params: dict[str, str]
    ) -> tuple[Answer, int]:
        """Send ``action`` until it succeeds or the policy stops: the answer, and attempts.

        Raises:
            AliyunSmsError: The typed error of the last attempt.
        """
        number = 0
        while True:
            number += 1
            outcome = self._attempt(call, lane, action, params, number)
            if type(outcome) is Answer:
                return outcome, number
            assert isinstance(outcome, AliyunSmsError)  # noqa: S101 - for the type checker
            wait = self._policy.wait(outcome, number, now=time.monotonic(), deadline=call.deadline)
            if wait is None:
                break
            _log_retry(call, outcome, number, wait)
            time.sleep(wait)
        _log_failure(call, outcome)
        raise outcome

    async def run_async(
        self, call: Call, lane: Lane, action: str, params: dict[str, str]
    ) -> tuple[Answer, int]:
        """The async twin of :meth:`run`: the waits await, the loop runs on."""
        number = 0
        while True:
            number += 1
            outcome = await self._attempt_async(call, lane, action, params, number)
            if type(outcome) is Answer:
                return outcome, number
            assert isinstance(outcome, AliyunSmsError)  # noqa: S101 - for the type checker
            wait = self._policy.wait(outcome, number, now=time.monotonic(), deadline=call.deadline)
            if wait is None:
                break
            _log_retry(call, outcome, number, wait)
            import asyncio  # noqa: PLC0415 - only retries need it

            await asyncio.sleep(wait)
        _log_failure(call, outcome)
        raise outcome

    def _attempt(
        self, call: Call, lane: Lane, action: str, params: dict[str, str], number: int
    ) -> Answer | AliyunSmsError:
        credential = lane.credentials.fixed
        if credential is None:
            found = _from_chain(lane.credentials, call.deadline)
            if isinstance(found, Failure):
                return _error(call, found, number, None)
            credential = found
            call.learn(credential)
        request = lane.signer.sign(action, params, credential)
        cause: BaseException | None = None
        try:
            response = lane.transport.send(
                request,
                deadline=call.deadline,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
            )
        except Exception as err:  # noqa: BLE001 - nothing from below escapes untyped
            failure, cause = _failure_of(err), err.with_traceback(None)
        else:
            outcome = read(response)
            if type(outcome) is Answer:
                return outcome
            assert isinstance(outcome, Failure)  # noqa: S101 - for the type checker
            failure = outcome
        return _error(call, failure, number, cause)

    async def _attempt_async(
        self, call: Call, lane: Lane, action: str, params: dict[str, str], number: int
    ) -> Answer | AliyunSmsError:
        credential = lane.credentials.fixed
        if credential is None:
            found = await _from_chain_async(lane.credentials, call.deadline)
            if isinstance(found, Failure):
                return _error(call, found, number, None)
            credential = found
            call.learn(credential)
        request = lane.signer.sign(action, params, credential)
        cause: BaseException | None = None
        try:
            response = await lane.transport.send_async(
                request,
                deadline=call.deadline,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
            )
        except Exception as err:  # noqa: BLE001 - as in _attempt
            failure, cause = _failure_of(err), err.with_traceback(None)
        else:
            outcome = read(response)
            if type(outcome) is Answer:
                return outcome
            assert isinstance(outcome, Failure)  # noqa: S101 - for the type checker
            failure = outcome
        return _error(call, failure, number, cause)

    def __repr__(self) -> str:
        return f"Driver(max_attempts={self._policy.max_attempts})"


# The chain ran out of the call's deadline before it answered: nothing was sent.
_CHAIN_DEADLINE = Failure("deadline", maybe_sent=False)


def _from_chain(source: sdk.CredentialSource, deadline: float) -> sdk.Credential | Failure:
    """The chain's credential, or the failure, within ``deadline``.

    The chain's own lookups (a metadata service, a credentials URI) block and
    cannot be interrupted, so the lookup runs in a daemon thread and the call
    waits at most what is left of its deadline; a lookup that outlives it is
    left to finish on its own.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        return _CHAIN_DEADLINE
    found: list[sdk.Credential | Failure] = []

    def lookup() -> None:
        try:
            found.append(source.get())
        except sdk.CredentialsUnavailableError:
            found.append(_NO_CREDENTIALS)

    worker = threading.Thread(target=lookup, name="aliyun-sms-credentials", daemon=True)
    worker.start()
    worker.join(left)
    return found[0] if found else _CHAIN_DEADLINE


async def _from_chain_async(
    source: sdk.CredentialSource, deadline: float
) -> sdk.Credential | Failure:
    """The async twin of :func:`_from_chain`: the lookup is awaited at most until ``deadline``."""
    import asyncio  # noqa: PLC0415 - only the chain needs it here

    left = deadline - time.monotonic()
    if left <= 0:
        return _CHAIN_DEADLINE
    try:
        return await asyncio.wait_for(source.get_async(), left)
    except sdk.CredentialsUnavailableError:
        return _NO_CREDENTIALS
    except asyncio.TimeoutError:
        return _CHAIN_DEADLINE


def _failure_of(err: Exception) -> Failure:
    if isinstance(err, TransportError):
        return Failure(err.kind, maybe_sent=err.maybe_sent)
    if isinstance(err, ValueError):
        # The transport refuses, before any I/O, a header that would split
        # the request on the wire: a CR/LF or non-ASCII character, which only
        # a credential from the chain can still bring in (config rejects them).
        return Failure("invalid_request", maybe_sent=False)
    # A bug below: whether any byte went out is unknown, so assume it did.
    return Failure(
        "unexpected",
        message=f"sending the request failed unexpectedly ({type(err).__name__})",
        maybe_sent=True,
    )


def _error(
    call: Call, failure: Failure, number: int, cause: BaseException | None
) -> AliyunSmsError:
    """The typed error for ``failure``: Aliyun's text scrubbed, a stand-in for ``cause``."""
    redactor = call.redactor
    if failure.message:
        failure = Failure(
            failure.kind,
            code=failure.code,
            message=redactor.text(failure.message),
            http_status=failure.http_status,
            request_id=failure.request_id,
            recommend=failure.recommend,
            retry_after_ms=failure.retry_after_ms,
            maybe_sent=failure.maybe_sent,
        )
    error = error_from_failure(failure)
    error.attempts = number
    return redactor.attach(error, cause)


def log_success(
    what: str, call: Call, biz_id: str | None, request_id: str | None, attempts: int
) -> None:
    """One INFO line for an accepted message, built only when INFO is on."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "%s %s biz_id=%s request_id=%s attempts=%d elapsed_ms=%.1f",
        what,
        call.summary,
        biz_id,
        request_id,
        attempts,
        call.elapsed_ms(),
    )


def _log_retry(call: Call, error: AliyunSmsError, attempt: int, wait: float) -> None:
    logger.warning(
        "SMS retry %s attempt=%d error=%s code=%s request_id=%s wait_ms=%.0f",
        call.summary,
        attempt,
        type(error).__name__,
        error.code,
        error.request_id,
        wait * 1000,
    )


def _log_failure(call: Call, error: AliyunSmsError) -> None:
    logger.warning(
        "SMS failed %s error=%s code=%s request_id=%s attempts=%d elapsed_ms=%.1f",
        call.summary,
        type(error).__name__,
        error.code,
        error.request_id,
        error.attempts,
        call.elapsed_ms(),
    )
