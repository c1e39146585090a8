"""The emulator's Dysmsapi actions: their business rules and flow control.

SendSms, SendBatchSms and QuerySendDetails, and Aliyun's default flow control
for verification codes. The readers check a request's parameters against the account's sign names
and templates and return what to send or look up; the emulator keeps the
outbox. The Message Authentication Service's actions (:mod:`._mas_actions`)
reuse the template and parameter rules here.
"""

from __future__ import annotations

import decimal
import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from aliyun_sms_connector._config import TemplateType

from ._gateway import Reject, missing
from ._numbers import number_key, recipient

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from ._models import Message, Template

__all__ = [
    "ACTIONS",
    "FlowControl",
    "Query",
    "Send",
    "check_required",
    "check_variables",
    "find_template",
    "json_object",
    "read_query",
    "read_send_batch_sms",
    "read_send_sms",
]

_MAX_NUMBERS = 1000
_MAX_BATCH = 100
_CODE_VALUE = re.compile(r"[A-Za-z0-9]+")
_SEND_DATE = re.compile(r"[0-9]{8}")
# Parameters an action cannot do without: Aliyun answers Missing<Name>.
_REQUIRED = {
    "SendSms": ("PhoneNumbers", "SignName", "TemplateCode"),
    "SendBatchSms": ("PhoneNumberJson", "SignNameJson", "TemplateCode"),
    "QuerySendDetails": ("PhoneNumber", "SendDate"),
    # Dypnsapi (the Message Authentication Service), on the same endpoint.
    "SendSmsVerifyCode": ("PhoneNumber", "SignName", "TemplateCode", "TemplateParam"),
    "CheckSmsVerifyCode": ("PhoneNumber", "VerifyCode"),
}
# Every action the emulator serves, of both products.
ACTIONS = frozenset(_REQUIRED)
# Aliyun's documented defaults for verification codes, per number and sign name.
_FLOW_LIMITS = (
    (60.0, 1, "触发分钟级流控Permits:1"),
    (3600.0, 5, "触发小时级流控Permits:5"),
    (86400.0, 10, "触发天级流控Permits:10"),
)


def check_required(action: str, params: Mapping[str, str]) -> None:
    """Refuse an unknown action, or a known one missing a mandatory parameter."""
    if action not in _REQUIRED:
        raise Reject(
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            404,
        )
    for name in _REQUIRED[action]:
        if name not in params:
            raise missing(name)


@dataclass(frozen=True)
class Send:
    """A checked send: one text, under one sign name, to ``recipients``."""

    recipients: list[str]
    sign_name: str
    template_code: str
    template: Template
    variables: dict[str, str]


def read_send_sms(
    params: Mapping[str, str], sign_names: Collection[str], templates: Mapping[str, Template]
) -> Send:
    """The send a SendSms request asks for, or :class:`Reject`."""
    numbers = [n.strip() for n in params["PhoneNumbers"].split(",") if n.strip()]
    if not numbers:
        raise Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
    if len(numbers) > _MAX_NUMBERS:
        raise Reject("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
    sign_name = params["SignName"]
    template_code = params["TemplateCode"]
    template = find_template(sign_names, templates, sign_name, template_code)
    variables = check_variables(template, json_object(params.get("TemplateParam")))
    recipients = [recipient(number, template) for number in numbers]
    return Send(recipients, sign_name, template_code, template, variables)


def read_send_batch_sms(
    params: Mapping[str, str], sign_names: Collection[str], templates: Mapping[str, Template]
) -> list[Send]:
    """The sends a SendBatchSms request asks for, one per number, or :class:`Reject`."""
    numbers = _json_list(params["PhoneNumberJson"], scalars=True)
    batch_sign_names = _json_list(params["SignNameJson"], scalars=True)
    raw_params = _json_list(params.get("TemplateParamJson") or "[]", scalars=False)
    if not numbers:
        raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法")
    if len(numbers) > _MAX_BATCH:
        raise Reject("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
    if len(batch_sign_names) != len(numbers) or (raw_params and len(raw_params) != len(numbers)):
        raise Reject("isv.INVALID_PARAMETERS", "参数个数不一致")
    template_code = params["TemplateCode"]
    sends: list[Send] = []
    for index, number in enumerate(numbers):
        sign_name = str(batch_sign_names[index])
        template = find_template(sign_names, templates, sign_name, template_code)
        values = raw_params[index] if raw_params else {}
        if not isinstance(values, dict):
            raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        variables = check_variables(template, values)
        recipients = [recipient(str(number), template)]
        sends.append(Send(recipients, sign_name, template_code, template, variables))
    return sends


def find_template(
    sign_names: Collection[str],
    templates: Mapping[str, Template],
    sign_name: str,
    template_code: str,
) -> Template:
    """The template ``template_code`` names, under a ``sign_name`` of the account."""
    if sign_name not in sign_names:
        raise Reject("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
    template = templates.get(template_code)
    if template is None:
        raise Reject("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
    return template


def check_variables(template: Template, values: dict[str, Any]) -> dict[str, str]:
    """``values`` as strings, when they fill ``template`` as Aliyun requires; or :class:`Reject`."""
    # Strings and numbers only: true/false are refused like null, which
    # Aliyun's "只接受字符串值" asks for; str(True) would pass as a code.
    if any(isinstance(v, (dict, list, bool)) or v is None for v in values.values()):
        raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
    for name in template.variables:
        if name not in values:
            raise Reject("isv.TEMPLATE_MISSING_PARAMETERS", f"模板缺少变量: {name}")
    params = {str(k): str(v) for k, v in values.items()}
    if template.type is TemplateType.VERIFICATION_CODE:
        for name in template.variables:
            if not _CODE_VALUE.fullmatch(params[name]):
                raise Reject("isv.TEMPLATE_PARAMS_ILLEGAL", "验证码模板变量只能是数字或字母")
    return params


class FlowControl:
    """Aliyun's per-minute, -hour and -day limits, per number and sign name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: dict[tuple[str, str], deque[float]] = {}

    def admit(self, recipients: list[str], sign_name: str, now: float) -> None:
        """Record a send to all of ``recipients``, or :class:`Reject` it for all."""
        with self._lock:
            for number in recipients:
                history = self._history.setdefault((number, sign_name), deque())
                while history and now - history[0] >= _FLOW_LIMITS[-1][0]:
                    history.popleft()
                for window, limit, message in _FLOW_LIMITS:
                    if sum(1 for sent in history if now - sent < window) >= limit:
                        raise Reject("isv.BUSINESS_LIMIT_CONTROL", message)
            for number in recipients:
                self._history[(number, sign_name)].append(now)

    def clear(self) -> None:
        """Forget every send."""
        with self._lock:
            self._history.clear()


@dataclass(frozen=True)
class Query:
    """A checked QuerySendDetails request."""

    number_key: str
    send_date: str
    biz_id: str | None
    page: int
    page_size: int

    def matches(self, message: Message) -> bool:
        """Whether ``message`` (to this number) was sent that day, with that biz id."""
        return message.sent_at.strftime("%Y%m%d") == self.send_date and (
            self.biz_id is None or message.biz_id == self.biz_id
        )

    def answer(self, matches: list[Message]) -> dict[str, Any]:
        """The answer's payload: the total and the asked page of ``matches``."""
        page_items = matches[(self.page - 1) * self.page_size : self.page * self.page_size]
        return {
            "Code": "OK",
            "Message": "OK",
            "TotalCount": str(len(matches)),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": [_detail(m) for m in page_items]},
        }


def read_query(params: Mapping[str, str]) -> Query:
    """The lookup a QuerySendDetails request asks for, or :class:`Reject`."""
    number = params["PhoneNumber"]
    send_date = params["SendDate"]
    if not number:
        raise Reject("isv.MOBILE_NUMBER_ILLEGAL", "手机号码格式错误")
    if not _SEND_DATE.fullmatch(send_date) or not _is_day(send_date):
        raise Reject("isv.INVALID_PARAMETERS", "SendDate格式错误，应为yyyyMMdd")
    try:
        page_size = int(params.get("PageSize", "10"))
        page = int(params.get("CurrentPage", "1"))
    except ValueError:
        raise Reject("isv.INVALID_PARAMETERS", "分页参数错误") from None
    if not 1 <= page_size <= 50 or page < 1:  # noqa: PLR2004 - Aliyun's page size limit
        raise Reject("isv.INVALID_PARAMETERS", "分页参数错误")
    return Query(number_key(number) or "", send_date, params.get("BizId"), page, page_size)


def _detail(message: Message) -> dict[str, Any]:
    status = {"pending": 1, "failed": 2, "delivered": 3}[message.status]
    receive = message.sent_at + timedelta(seconds=2)
    detail: dict[str, Any] = {
        "PhoneNum": message.phone_number,
        "SendStatus": status,
        "ErrCode": message.receipt_code,
        "TemplateCode": message.template_code,
        "Content": message.text,
        "SendDate": message.sent_at.strftime("%Y-%m-%d %H:%M:%S"),
        # A message still on its way has no receipt time yet.
        "ReceiveDate": "" if message.status == "pending" else receive.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if message.out_id is not None:
        detail["OutId"] = message.out_id
    return detail


def _is_day(digits: str) -> bool:
    """Whether eight digits (yyyyMMdd) name a calendar day: 20261399 does not."""
    try:
        datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:]))  # noqa: DTZ001 - a date check
    except ValueError:
        return False
    return True


def _not_json(literal: str) -> Any:
    raise ValueError(literal)


def _json(raw: str) -> Any:
    try:
        # NaN, Infinity and -Infinity are not JSON (RFC 8259), though Python
        # reads them by default. Fractions and exponents are kept as Decimal,
        # which prints as Java's BigDecimal does ("1E+400", "1.0"), so a
        # number that is no [A-Za-z0-9] code is seen as one, and none of them
        # turns into inf.
        return json.loads(raw, parse_constant=_not_json, parse_float=decimal.Decimal)
    # RecursionError: JSON nested thousands deep.
    except (ValueError, RecursionError):
        raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法") from None


def json_object(raw: str | None) -> dict[str, Any]:
    """The JSON object ``raw`` holds (empty when absent), or :class:`Reject`."""
    values = _json(raw) if raw else {}
    if not isinstance(values, dict):
        raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
    return values


def _json_list(raw: str, *, scalars: bool) -> list[Any]:
    values = _json(raw)
    if not isinstance(values, list) or (
        scalars and any(isinstance(v, (dict, list)) or v is None for v in values)
    ):
        raise Reject("isv.INVALID_JSON_PARAM", "JSON参数不合法")
    return values
