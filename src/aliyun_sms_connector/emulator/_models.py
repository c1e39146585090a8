"""What the emulator keeps: its templates and defaults, each accepted message, each request.

Both products are here: Dysmsapi's sign name and templates (``DEFAULT_SIGN_NAME``,
``DEFAULT_TEMPLATES``) and the Message Authentication Service's system ("gift") sign
name and templates (``DEFAULT_MAS_SIGN_NAME``, ``DEFAULT_MAS_TEMPLATES``).
"""

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
    "DEFAULT_MAS_SIGN_NAME",
    "DEFAULT_MAS_TEMPLATES",
    "DEFAULT_SIGN_NAME",
    "DEFAULT_TEMPLATES",
    "Message",
    "Product",
    "ReceivedRequest",
    "Template",
]

DEFAULT_ACCESS_KEYS = {"LTAIemulatorKeyId": "emulator-access-key-secret"}
DEFAULT_SIGN_NAME = "AliyunSmsTest"
DEFAULT_TEMPLATES: dict[str, str | Template] = {}  # filled in below, after Template
# The system ("gift") sign name Aliyun's SendSmsVerifyCode page gives as its example.
# Aliyun rotates its gift sign names; pass ``mas_sign_names`` to match your console.
DEFAULT_MAS_SIGN_NAME = "速通互联验证码"
# The system templates 100001-100005, each with ${code} and ${min}. The codes and
# their purposes are Aliyun's (Logto's table uses 100001, 100002, 100003 and
# 100005); the wording is modelled on the console's, not copied from it.
DEFAULT_MAS_TEMPLATES: dict[str, str | Template] = {
    "100001": "您的验证码为${code}。尊敬的客户，"
    "以上验证码${min}分钟内有效，请注意保密，切勿告知他人。",
    "100002": "尊敬的客户，您正在进行修改手机号操作，您的验证码为${code}。"
    "以上验证码${min}分钟内有效，请注意保密，切勿告知他人。",
    "100003": "尊敬的客户，您正在进行重置密码操作，您的验证码为${code}。"
    "以上验证码${min}分钟内有效，请注意保密，切勿告知他人。",
    "100004": "尊敬的客户，您正在进行绑定手机号操作，您的验证码为${code}。"
    "以上验证码${min}分钟内有效，请注意保密，切勿告知他人。",
    "100005": "尊敬的客户，您正在验证绑定手机号操作，您的验证码为${code}。"
    "以上验证码${min}分钟内有效，请注意保密，切勿告知他人。",
}

#: Which Aliyun product accepted a message: ``"sms"`` (Dysmsapi's SendSms and
#: SendBatchSms) or ``"mas"`` (Dypnsapi's SendSmsVerifyCode).
Product = Literal["sms", "mas"]

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

    ``text`` is the SMS as a phone shows it: ``【sign name】`` then the content,
    with any code Aliyun generated in it. ``status`` is ``"delivered"`` unless
    :meth:`Emulator.fail_delivery` says otherwise; ``receipt_code`` is the
    matching receipt code.

    ``product`` says which API sent it. For the Message Authentication Service
    (``"mas"``), ``scheme_name`` is the request's ``SchemeName`` (None when not
    given) and ``verify_code`` the code Aliyun generated for ``##code##``, which
    ``CheckSmsVerifyCode`` can check; it is None when the caller sent a code of
    its own, and always for SMS.
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
    product: Product = "sms"
    scheme_name: str | None = None
    verify_code: str | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    """A request that reached the emulator (counted even when it failed)."""

    action: str
    params: dict[str, str]
    received_at: float
