"""The Message Authentication Service connector: the public face of the Dypnsapi backend.

It runs on the SMS connector's parts: the sans-I/O core (:mod:`.calls` here,
``_protocol`` below it) builds and signs each request with the SDK's own
functions, an ``EndpointLane`` of its own holds the connection pools, and the
``_protocol`` driver runs the attempts under the same deadline and retry
policy, typing every failure through the one table of ``_errors``.

The public methods drop their ``to``, ``payload`` and ``code`` arguments once
the call is prepared: an error tracker that records frame locals (Sentry does
by default) then finds no number or code in these frames, nor in the
drivers', whose parameters hide their values from ``repr``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aliyun_sms_connector._connector import ConnectorBase, EndpointLane, SendResult
from aliyun_sms_connector._delivery import china_now
from aliyun_sms_connector._errors import InvalidResponseError
from aliyun_sms_connector._protocol.driver import log_success, logger
from aliyun_sms_connector._protocol.wire import text_or_none

from .calls import (
    ACTIONS,
    MasCall,
    model_of,
    prepare_check,
    prepare_message,
    prepare_verify_code,
    verify_result,
)
from .config import AliyunMasConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aliyun_sms_connector._config import UsageType
    from aliyun_sms_connector._http.transport import Transport
    from aliyun_sms_connector._protocol.wire import Answer

__all__ = ["AliyunMasConnector"]


class AliyunMasConnector(ConnectorBase[AliyunMasConfig]):
    """Send verification codes through Aliyun's Message Authentication Service (Dypnsapi).

    Takes Logto's ``aliyun-sms-mas`` connector config as is, plus the
    operational keys of ``AliyunSmsConfig`` (see :class:`AliyunMasConfig`).
    Only mainland China mobile numbers are served. Use it as a context manager
    (``with`` or ``async with``), or call :meth:`close` / :meth:`aclose` when
    done; one connector serves many threads and tasks at once.

    Two ways to use it:

    - :meth:`send_message`: the caller's own code, Aliyun as the channel (what
      Logto's connector does);
    - :meth:`send_verify_code` and :meth:`check_verify_code`: Aliyun makes the
      code and checks it.

    Errors with ``retryable=True`` are retried with full-jitter backoff within
    ``maxAttempts`` and ``deadline``; nothing that may have been sent ever is.

    Args:
        config: An :class:`AliyunMasConfig`, or a mapping such as Logto's
            stored connector JSON.

    Raises:
        ConfigError: The config is invalid.
    """

    def __init__(self, config: AliyunMasConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, AliyunMasConfig):
            config = AliyunMasConfig.model_validate(dict(config))
        self._lane = EndpointLane(config, product="dypnsapi", actions=ACTIONS)
        super().__init__(config)

    @property
    def endpoint(self) -> str:
        """The endpoint the requests go to (``dypnsapi.aliyuncs.com`` by default)."""
        return self._lane.endpoint

    def __repr__(self) -> str:
        # Never raises, even for a connector whose __init__ failed: error
        # trackers render the locals (self included) of the failing frame.
        lane = getattr(self, "_lane", None)
        if lane is None:
            return "AliyunMasConnector(<not built>)"
        return f"AliyunMasConnector(endpoint={lane.endpoint!r})"

    def _transports(self) -> list[Transport]:
        return [self._lane.transport]

    # --- the connector's contract: the caller's own code, Aliyun as the channel ---

    def send_message(
        self, to: str, usage_type: UsageType | str, payload: Mapping[str, Any]
    ) -> SendResult:
        """``SendSmsVerifyCode`` with the caller's code in ``TemplateParam``, as Logto sends it.

        ``TemplateParam`` is ``payload`` without ``locale`` (and ``uiLocales``),
        with ``min``, the minutes the code stays valid, from ``payload["min"]``
        if given, else ``"10"`` (Logto's value). ``PhoneNumber`` is the 11-digit
        national number and ``CountryCode`` is 86.

        Args:
            to: A mainland China mobile number: ``+86…``, ``0086…``, ``86…``
                or the bare 11 digits.
            usage_type: Picks the template; Generic serves as the fallback.
            payload: Template variables, such as ``{"code": "123456"}``.

        Returns:
            The :class:`SendResult`; ``biz_id`` is the answer's ``Model.BizId``.

        Raises:
            InvalidPhoneNumberError: The number is not a mainland China mobile,
                before any network call.
            TemplateNotFoundError, TemplateParamError: Before any network call.
            AliyunSmsError: A subclass for every failure of the call itself.
        """
        self._ensure_open()
        prepared = prepare_message(
            self._config, self._secrets, to=to, usage_type=usage_type, payload=payload
        )
        del to, payload  # out of this frame's locals, as the docstring of the module says
        answer, attempts = self._driver.run(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return self._sent(prepared, answer, attempts)

    async def send_message_async(
        self, to: str, usage_type: UsageType | str, payload: Mapping[str, Any]
    ) -> SendResult:
        """The async twin of :meth:`send_message`: same arguments, result and errors."""
        self._ensure_open()
        prepared = prepare_message(
            self._config, self._secrets, to=to, usage_type=usage_type, payload=payload
        )
        del to, payload
        answer, attempts = await self._driver.run_async(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return self._sent(prepared, answer, attempts)

    # --- Aliyun-made codes (verify's codes="aliyun") ---

    def send_verify_code(
        self,
        to: str,
        usage_type: UsageType | str,
        *,
        code_length: int,
        valid_time: int,
        interval: int,
    ) -> SendResult:
        """``SendSmsVerifyCode`` with ``{"code": "##code##", "min": ...}``: Aliyun makes the code.

        The request carries ``CodeLength=code_length``, ``ValidTime=valid_time``,
        ``Interval=interval``, ``DuplicatePolicy=1`` (a new code replaces the
        old), ``CodeType=1`` (digits) and the usage type's ``schemeName`` as
        ``SchemeName`` when set; ``min`` is ``valid_time`` in whole minutes,
        rounded up. It never asks for ``ReturnVerifyCode``: the code stays
        with Aliyun.

        Args:
            to: A mainland China mobile number, as for :meth:`send_message`.
            usage_type: Picks the template (and scheme); Generic as the fallback.
            code_length: Digits in the code, 4 to 8.
            valid_time: Seconds the code stays valid, at least 1.
            interval: Seconds before the number can get another code, at least 0.

        Raises:
            ConfigError: ``code_length``, ``valid_time`` or ``interval`` is out of
                range, before any network call.
            InvalidPhoneNumberError, TemplateNotFoundError: Before any network call.
            AliyunSmsError: A subclass for every failure of the call itself
                (``RateLimitExceededError`` for ``FREQUENCY_FAIL``).
        """
        self._ensure_open()
        prepared = prepare_verify_code(
            self._config,
            self._secrets,
            to=to,
            usage_type=usage_type,
            code_length=code_length,
            valid_time=valid_time,
            interval=interval,
        )
        del to
        answer, attempts = self._driver.run(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return self._sent(prepared, answer, attempts)

    async def send_verify_code_async(
        self,
        to: str,
        usage_type: UsageType | str,
        *,
        code_length: int,
        valid_time: int,
        interval: int,
    ) -> SendResult:
        """The async twin of :meth:`send_verify_code`."""
        self._ensure_open()
        prepared = prepare_verify_code(
            self._config,
            self._secrets,
            to=to,
            usage_type=usage_type,
            code_length=code_length,
            valid_time=valid_time,
            interval=interval,
        )
        del to
        answer, attempts = await self._driver.run_async(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return self._sent(prepared, answer, attempts)

    def check_verify_code(self, to: str, usage_type: UsageType | str, code: str) -> bool:
        """``CheckSmsVerifyCode``: True for ``PASS``, False for ``UNKNOWN``.

        ``SchemeName`` as for :meth:`send_verify_code`. A ``code`` that no code
        Aliyun makes could be (not 4 to 8 letters or digits) is False without
        a request. Failed checks are retried only as sends are: never one that
        may have reached Aliyun.

        Raises:
            InvalidPhoneNumberError, TemplateNotFoundError: Before any network call.
            InvalidResponseError: The answer's ``Model.VerifyResult`` is neither
                ``PASS`` nor ``UNKNOWN`` (never True on doubt).
            AliyunSmsError: The typed error of the translation table for every
                other failure.
        """
        self._ensure_open()
        prepared = prepare_check(
            self._config, self._secrets, to=to, usage_type=usage_type, code=code
        )
        del to, code
        if prepared is None:
            return False
        answer, attempts = self._driver.run(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return _checked(prepared, answer, attempts)

    async def check_verify_code_async(
        self, to: str, usage_type: UsageType | str, code: str
    ) -> bool:
        """The async twin of :meth:`check_verify_code`."""
        self._ensure_open()
        prepared = prepare_check(
            self._config, self._secrets, to=to, usage_type=usage_type, code=code
        )
        del to, code
        if prepared is None:
            return False
        answer, attempts = await self._driver.run_async(
            prepared.call, self._lane, prepared.action, prepared.params
        )
        return _checked(prepared, answer, attempts)

    def _sent(self, prepared: MasCall, answer: Answer, attempts: int) -> SendResult:
        model = model_of(answer)
        biz_id = text_or_none(model.get("BizId"))
        request_id = answer.request_id or text_or_none(model.get("RequestId"))
        log_success("SMS code sent", prepared.call, biz_id, request_id, attempts)
        return SendResult(
            biz_id=biz_id,
            request_id=request_id,
            phone_number=prepared.params["PhoneNumber"],
            template_code=prepared.params["TemplateCode"],
            usage_type=prepared.usage_type,
            attempts=attempts,
            sent_at=china_now(),
        )


def _checked(prepared: MasCall, answer: Answer, attempts: int) -> bool:
    try:
        passed = verify_result(answer, prepared.call)
    except InvalidResponseError as error:
        # As the driver logs a failed call: labels only, the number masked.
        logger.warning(
            "SMS code check failed %s error=%s code=%s request_id=%s attempts=%d",
            prepared.call.summary,
            type(error).__name__,
            error.code,
            error.request_id,
            attempts,
        )
        raise
    log_success("SMS code checked", prepared.call, None, answer.request_id, attempts)
    return passed
