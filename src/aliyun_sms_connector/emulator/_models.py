"""What the emulator keeps: its templates and defaults, each accepted message, each request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from aliyun_sms_connector._config import TemplateType

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

__all__ = [
    "DEFAULT_ACCESS_KEYS",
    "DEFAULT_SIGN_NAME",
    "DEFAULT_TEMPLATES",
    "Message",
    "ReceivedRequest",
    "Template",
]

DEFAULT_ACCESS_KEYS = {"LTAIemulatorKeyId": "emulator-access-key-secret"}
DEFAULT_SIGN_NAME = "AliyunSmsTest"
DEFAULT_TEMPLATES: dict[str, str | Template] = {}  # filled in below, after Template

_VARIABLE = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class Template:
    """A template registered with the emulator.

    Args:
        content: The text, with ``${name}`` placeholders.
        type: Logto's template kind. Verification-code templates (the
            default) get Aliyun's ``[A-Za-z0-9]`` rule and flow control;
            ``INTERNATIONAL_MESSAGE`` templates refuse mainland numbers.
    """

    content: str
    type: TemplateType = TemplateType.VERIFICATION_CODE

    @property
    def variables(self) -> list[str]:
        """The placeholder names, in order."""
        return _VARIABLE.findall(self.content)

    def render(self, params: Mapping[str, str]) -> str:
        """Fill in the placeholders from ``params``."""
        return _VARIABLE.sub(lambda m: str(params[m.group(1)]), self.content)


DEFAULT_TEMPLATES.update(
    {
        "SMS_000001": Template("Your code is ${code}."),
        "SMS_000002": Template("Your code is ${code}.", TemplateType.INTERNATIONAL_MESSAGE),
        "SMS_000003": Template("Hello ${name}, ${event}.", TemplateType.NOTIFICATION),
    }
)


@dataclass
class Message:
    """A message the emulator accepted.

    ``text`` is the SMS as a phone shows it: ``【sign name】`` then the content.
    ``status`` is ``"delivered"`` unless :meth:`Emulator.fail_delivery` says
    otherwise; ``receipt_code`` is the matching receipt code.
    """

    phone_number: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    text: str
    biz_id: str
    out_id: str | None
    sent_at: datetime
    status: Literal["delivered", "failed", "pending"] = "delivered"
    receipt_code: str = "DELIVERED"


@dataclass(frozen=True)
class ReceivedRequest:
    """A request that reached the emulator (counted even when it failed)."""

    action: str
    params: dict[str, str]
    received_at: float
