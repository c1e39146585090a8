"""The Message Authentication Service connector: the public face of the Dypnsapi backend.

CONTRACT SKELETON (issue 19): the signatures below are what verify/ and the CLI
build on; the bodies are filled in by the mas-core work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

    from typing_extensions import Self

    from aliyun_sms_connector._config import UsageType
    from aliyun_sms_connector._connector import SendResult

__all__ = ["AliyunMasConnector"]


class AliyunMasConnector:
    """Send verification codes through Aliyun's Message Authentication Service.

    Takes Logto's ``aliyun-sms-mas`` connector config as is, plus the
    operational keys of ``AliyunSmsConfig``.
    """

    def __init__(self, config: Mapping[str, Any] | Any) -> None:
        raise NotImplementedError

    @property
    def config(self) -> Any:
        """The validated config (an ``AliyunMasConfig``)."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether ``close``/``aclose`` was called."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection pools."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close the connection pools from async code."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- the connector's contract: the caller's own code, Aliyun as the channel ---

    def send_message(
        self, to: str, usage_type: UsageType | str, payload: Mapping[str, Any]
    ) -> SendResult:
        """``SendSmsVerifyCode`` with the caller's code in ``TemplateParam``.

        ``min`` is ``payload["min"]`` if given, else ``"10"`` (Logto's value).
        Refuses any number that is not a mainland mobile with
        ``InvalidPhoneNumberError`` before the network.
        """
        raise NotImplementedError

    async def send_message_async(
        self, to: str, usage_type: UsageType | str, payload: Mapping[str, Any]
    ) -> SendResult:
        """The async twin of :meth:`send_message`."""
        raise NotImplementedError

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

        ``CodeLength=code_length`` (4-8, else ``ConfigError``), ``ValidTime=valid_time``
        seconds, ``Interval=interval`` seconds, ``DuplicatePolicy=1``, ``CodeType=1``,
        ``SchemeName`` from the usage type's template entry (``schemeName``) when set;
        ``min`` is ``valid_time`` in whole minutes, rounded up. Never ``ReturnVerifyCode``.
        """
        raise NotImplementedError

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
        raise NotImplementedError

    def check_verify_code(self, to: str, usage_type: UsageType | str, code: str) -> bool:
        """``CheckSmsVerifyCode``: True for ``PASS``, False for ``UNKNOWN``.

        ``SchemeName`` as for :meth:`send_verify_code`. Failures raise the typed
        ``AliyunSmsError`` of the translation table (never True on doubt).
        """
        raise NotImplementedError

    async def check_verify_code_async(
        self, to: str, usage_type: UsageType | str, code: str
    ) -> bool:
        """The async twin of :meth:`check_verify_code`."""
        raise NotImplementedError
