"""The connector: validate, route, send through the SDK, translate failures."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import _sdk
from ._config import AliyunSmsConfig, UsageType
from ._errors import AliyunSmsError, Failure, error_from_failure
from ._phone import PhoneNumber, parse_phone
from ._redact import Redactor, mask_phone
from ._templates import Route, build_template_param, route

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["AliyunSmsConnector", "SendResult"]

logger = logging.getLogger("aliyun_sms_connector")
# A library leaves output to the application; without this, WARNINGs would
# reach stderr through logging's last-resort handler.
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class SendResult:
    """What Aliyun accepted.

    Attributes:
        biz_id: Aliyun's id for the message, the key to its delivery receipt.
        request_id: Aliyun's request id.
        phone_number: The number as sent to Aliyun.
        template_code: The template code used.
        usage_type: The usage type asked for (the Generic template may have
            served it).
    """

    biz_id: str | None
    request_id: str | None
    phone_number: str
    template_code: str
    usage_type: UsageType

    def __repr__(self) -> str:
        # The number is private data: repr keeps only its last 4 digits.
        return (
            f"SendResult(biz_id={self.biz_id!r}, request_id={self.request_id!r}, "
            f"phone_number={mask_phone(self.phone_number)!r}, "
            f"template_code={self.template_code!r}, usage_type={self.usage_type.value!r})"
        )


@dataclass(frozen=True)
class _Prepared:
    phone: PhoneNumber
    route: Route
    template_param: str
    redactor: Redactor


class AliyunSmsConnector:
    """Sends SMS through Aliyun with one reused SDK client.

    Args:
        config: An :class:`AliyunSmsConfig`, or a mapping such as Logto's
            stored connector JSON.

    Raises:
        ConfigError: The config is invalid.
    """

    def __init__(self, config: AliyunSmsConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, AliyunSmsConfig):
            config = AliyunSmsConfig.model_validate(dict(config))
        self._config = config
        self._client = _sdk.new_client(config)

    @property
    def config(self) -> AliyunSmsConfig:
        """The validated configuration."""
        return self._config

    def __repr__(self) -> str:
        return f"AliyunSmsConnector(endpoint={self._config.endpoint!r})"

    def send_message(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None = None,
        *,
        out_id: str | None = None,
    ) -> SendResult:
        """Send one templated SMS, as Logto's ``sendMessage`` does.

        Args:
            to: The recipient's number, in any form :func:`parse_phone` takes.
            usage_type: Picks the template; Generic serves as the fallback.
            payload: Template variables, such as ``{"code": "123456"}``.
                Logto's ``locale`` and ``uiLocales`` are dropped.
            out_id: Your own id for the message, passed to Aliyun.

        Raises:
            InvalidPhoneNumberError, TemplateNotFoundError, TemplateParamError:
                Before any network call.
            AliyunSmsError: A subclass for every failure of the call itself.
        """
        prepared = self._prepare(to, usage_type, payload, out_id)
        started = time.perf_counter()
        try:
            reply = _sdk.send_sms(
                self._client,
                phone_numbers=prepared.phone.aliyun,
                sign_name=self._config.sign_name,
                template_code=prepared.route.template_code,
                template_param=prepared.template_param,
                out_id=out_id,
            )
        except _sdk.CallFailedError as failed:
            error = self._error(prepared, failed.failure, failed.attempts, started)
            raise error from prepared.redactor.exception(failed.__cause__ or failed)
        return self._result(prepared, reply, started)

    def _prepare(
        self,
        to: str,
        usage_type: UsageType | str,
        payload: Mapping[str, Any] | None,
        out_id: str | None,
    ) -> _Prepared:
        if out_id is not None and not isinstance(out_id, str):
            raise AliyunSmsError(
                f"out_id must be a string, not {type(out_id).__name__}", code="InvalidOutId"
            )
        phone = parse_phone(to, strict=self._config.strict_phone_region_number_check)
        chosen = route(self._config.templates, usage_type, phone.region)
        template_param = build_template_param(payload, chosen.template)
        values = [str(v) for k, v in (payload or {}).items() if k not in ("locale", "uiLocales")]
        secrets = [self._config.access_key_secret.get_secret_value()]
        if self._config.security_token is not None:
            secrets.append(self._config.security_token.get_secret_value())
        redactor = Redactor(
            phones=[to, phone.aliyun, phone.e164, phone.national_number],
            values=[*values, template_param],
            secrets=secrets,
        )
        return _Prepared(phone, chosen, template_param, redactor)

    def _result(self, prepared: _Prepared, reply: _sdk.Reply, started: float) -> SendResult:
        if reply.code != "OK":
            failure = Failure(
                "response",
                code=reply.code,
                message=reply.message,
                http_status=reply.http_status,
                request_id=reply.request_id,
            )
            raise self._error(prepared, failure, reply.attempts, started)
        result = SendResult(
            biz_id=reply.biz_id,
            request_id=reply.request_id,
            phone_number=prepared.phone.aliyun,
            template_code=prepared.route.template_code,
            usage_type=prepared.route.usage_type,
        )
        logger.info(
            "SMS sent usage_type=%s template=%s to=%s biz_id=%s request_id=%s elapsed_ms=%.1f",
            prepared.route.usage_type.value,
            prepared.route.template_code,
            prepared.phone.masked,
            reply.biz_id,
            reply.request_id,
            _elapsed_ms(started),
        )
        return result

    @staticmethod
    def _error(
        prepared: _Prepared, failure: Failure, attempts: int, started: float
    ) -> AliyunSmsError:
        if failure.message:
            failure = replace(failure, message=prepared.redactor.text(failure.message))
        error = error_from_failure(failure)
        error.attempts = attempts
        logger.warning(
            "SMS failed usage_type=%s template=%s to=%s error=%s code=%s request_id=%s "
            "elapsed_ms=%.1f",
            prepared.route.usage_type.value,
            prepared.route.template_code,
            prepared.phone.masked,
            type(error).__name__,
            error.code,
            error.request_id,
            _elapsed_ms(started),
        )
        return error


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
