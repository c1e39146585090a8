"""The emulator's Message Authentication Service actions (短信认证, Dypnsapi 2017-05-25).

``SendSmsVerifyCode`` and ``CheckSmsVerifyCode`` are served on the same
endpoint as Dysmsapi's actions (the action parameter decides), signed the
same ways. Their rules, from Aliyun's API pages and the SDK's docstrings:

- ``PhoneNumber`` is one mainland China mobile, as its 11 national digits, and
  ``CountryCode`` is 86 (the default); anything else is ``MOBILE_NUMBER_ILLEGAL``.
- ``SignName`` and ``TemplateCode`` must be the account's system ("gift") sign
  name and template.
- ``TemplateParam`` is a JSON object. A value holding ``##code##`` makes Aliyun
  generate the code (``CodeLength`` 4-8, default 4; ``CodeType`` 1 digits,
  2 upper case, 3 lower case, 4 both cases, 5 digits and upper case, 6 digits
  and lower case, 7 all three; default 1) and keep it ``ValidTime`` seconds
  (default 300) for ``CheckSmsVerifyCode``. A code of the caller's own is sent
  as is and cannot be checked.
- A second send to the same number and scheme (``SchemeName``, by default
  "默认方案") within ``Interval`` seconds (default 60) is ``FREQUENCY_FAIL``.
- ``DuplicatePolicy`` 1 (default): a new code replaces the scheme's earlier
  ones; 2: every code within its validity can be checked.
- ``ReturnVerifyCode`` true puts the generated code in the answer's ``Model``.

Business errors are HTTP 200 with ``"Success": false``. Aliyun documents
``FREQUENCY_FAIL``, ``BUSINESS_LIMIT_CONTROL`` and ``MOBILE_NUMBER_ILLEGAL``
without the ``isv.`` prefix Dysmsapi uses; the emulator's other Dypnsapi codes
(``SMS_SIGNATURE_ILLEGAL``, ``SMS_TEMPLATE_ILLEGAL``, ``INVALID_PARAMETERS``,
``INVALID_JSON_PARAM``, ``TEMPLATE_MISSING_PARAMETERS``,
``TEMPLATE_PARAMS_ILLEGAL``) are Dysmsapi's rules under the same unprefixed
spelling.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import string
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._actions import check_variables, find_template, json_object
from ._gateway import Reject
from ._numbers import mainland

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator, Mapping

    from ._models import Template

__all__ = [
    "DEFAULT_SCHEME",
    "MAS_ACTIONS",
    "CodeBook",
    "VerifyCheck",
    "VerifySend",
    "check_answer",
    "mas_reject",
    "read_check_sms_verify_code",
    "read_send_sms_verify_code",
    "send_answer",
]

MAS_ACTIONS = frozenset({"SendSmsVerifyCode", "CheckSmsVerifyCode"})
# What Aliyun calls the scheme when SchemeName is left out.
DEFAULT_SCHEME = "默认方案"
_PLACEHOLDER = "##code##"
_NATIONAL = re.compile(r"1[0-9]{10}")
_INTEGER = re.compile(r"[0-9]{1,9}")
_MAX_SCHEME_NAME = 20
# CodeType → the characters a generated code is drawn from.
_ALPHABETS = {
    1: string.digits,
    2: string.ascii_uppercase,
    3: string.ascii_lowercase,
    4: string.ascii_letters,
    5: string.digits + string.ascii_uppercase,
    6: string.digits + string.ascii_lowercase,
    7: string.digits + string.ascii_letters,
}


def mas_reject(code: str, message: str) -> Reject:
    """A Dypnsapi business error: HTTP 200, ``Code``, ``Message`` and ``"Success": false``."""
    return Reject(code, message, extra={"Success": False})


def _illegal_number() -> Reject:
    return mas_reject("MOBILE_NUMBER_ILLEGAL", "手机号码格式错误，仅支持中国内地手机号码")


def _invalid(name: str) -> Reject:
    return mas_reject("INVALID_PARAMETERS", f"参数{name}不合法")


@contextlib.contextmanager
def _as_dypnsapi() -> Iterator[None]:
    """Answer Dysmsapi's business refusals (shared rules) in Dypnsapi's spelling."""
    try:
        yield
    except Reject as reject:
        if reject.status != 200:  # noqa: PLR2004 - gateway errors are the same for both
            raise
        raise mas_reject(reject.code.removeprefix("isv."), reject.message) from None


@dataclass(frozen=True)
class VerifySend:
    """A checked SendSmsVerifyCode request.

    ``variables`` are the template's values with any generated code in them;
    ``code`` is that generated code, or None when the caller sent its own.
    """

    number: str
    scheme: str
    scheme_name: str | None
    sign_name: str
    template_code: str
    template: Template
    variables: dict[str, str]
    code: str | None
    valid_time: int
    interval: int
    duplicate_policy: int
    return_code: bool
    out_id: str | None

    @property
    def text(self) -> str:
        """The SMS as a phone shows it."""
        return f"【{self.sign_name}】{self.template.render(self.variables)}"


@dataclass(frozen=True)
class VerifyCheck:
    """A checked CheckSmsVerifyCode request."""

    number: str
    scheme: str
    code: str
    case_sensitive: bool
    out_id: str | None


def read_send_sms_verify_code(
    params: Mapping[str, str], sign_names: Collection[str], templates: Mapping[str, Template]
) -> VerifySend:
    """The send a SendSmsVerifyCode request asks for, or :class:`Reject`."""
    number = _number(params)
    scheme_name = _scheme_name(params)
    with _as_dypnsapi():
        template = find_template(sign_names, templates, params["SignName"], params["TemplateCode"])
        raw = json_object(params["TemplateParam"])
    length = _integer(params, "CodeLength", 4, 4, 8)
    code_type = _integer(params, "CodeType", 1, 1, 7)
    valid_time = _integer(params, "ValidTime", 300, 1, 10**9)
    interval = _integer(params, "Interval", 60, 0, 10**9)
    duplicate_policy = _integer(params, "DuplicatePolicy", 1, 1, 2)
    return_code = _boolean(params, "ReturnVerifyCode")
    code: str | None = None
    if any(isinstance(v, str) and _PLACEHOLDER in v for v in raw.values()):
        alphabet = _ALPHABETS[code_type]
        code = "".join(secrets.choice(alphabet) for _ in range(length))
        raw = {
            k: v.replace(_PLACEHOLDER, code) if isinstance(v, str) else v for k, v in raw.items()
        }
    with _as_dypnsapi():
        variables = check_variables(template, raw)
    return VerifySend(
        number=number,
        scheme=scheme_name or DEFAULT_SCHEME,
        scheme_name=scheme_name,
        sign_name=params["SignName"],
        template_code=params["TemplateCode"],
        template=template,
        variables=variables,
        code=code,
        valid_time=valid_time,
        interval=interval,
        duplicate_policy=duplicate_policy,
        return_code=return_code,
        out_id=params.get("OutId"),
    )


def read_check_sms_verify_code(params: Mapping[str, str]) -> VerifyCheck:
    """The check a CheckSmsVerifyCode request asks for, or :class:`Reject`."""
    number = _number(params)
    scheme_name = _scheme_name(params)
    code = params["VerifyCode"]
    if not code:
        raise _invalid("VerifyCode")
    policy = _integer(params, "CaseAuthPolicy", 1, 1, 2)
    return VerifyCheck(
        number=number,
        scheme=scheme_name or DEFAULT_SCHEME,
        code=code,
        case_sensitive=policy == 2,  # noqa: PLR2004 - Aliyun's "2: case-sensitive"
        out_id=params.get("OutId"),
    )


def send_answer(biz_id: str, request_id: str, send: VerifySend) -> dict[str, Any]:
    """SendSmsVerifyCode's answer; fields with nothing to say are left out, as Aliyun does."""
    model: dict[str, Any] = {"BizId": biz_id, "RequestId": request_id}
    if send.out_id is not None:
        model["OutId"] = send.out_id
    if send.return_code and send.code is not None:
        model["VerifyCode"] = send.code
    return {"Code": "OK", "Message": "成功", "Success": True, "Model": model}


def check_answer(passed: bool, check: VerifyCheck) -> dict[str, Any]:
    """CheckSmsVerifyCode's answer: ``Model.VerifyResult`` is ``PASS`` or ``UNKNOWN``."""
    model: dict[str, Any] = {"VerifyResult": "PASS" if passed else "UNKNOWN"}
    if check.out_id is not None:
        model["OutId"] = check.out_id
    return {"Code": "OK", "Message": "成功", "Success": True, "Model": model}


@dataclass
class _Issued:
    code: str
    expires_at: float


class CodeBook:
    """The codes Aliyun generated, and the last send, per number and scheme.

    A code passes once: a ``PASS`` uses it up, and checking it again answers
    ``UNKNOWN``. Aliyun's pages say the service manages the code's whole life
    and show no second ``PASS``; the stricter reading catches a caller that
    relies on checking the same code twice. Wrong guesses are not counted
    here: Aliyun documents no lock, so the caller's own limits apply.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[tuple[str, str], list[_Issued]] = {}
        self._sent: dict[tuple[str, str], float] = {}

    def issue(self, send: VerifySend, now: float) -> None:
        """Record ``send`` at ``now``: its code, if generated; or :class:`Reject` it.

        Raises:
            Reject: ``FREQUENCY_FAIL`` when the scheme sent to the number less
                than ``send.interval`` seconds ago.
        """
        key = (send.number, send.scheme)
        with self._lock:
            last = self._sent.get(key)
            if last is not None and now - last < send.interval:
                raise mas_reject("FREQUENCY_FAIL", "Check frequency fail.")
            self._sent[key] = now
            if send.code is None:
                return  # a code of the caller's own: Aliyun cannot check it
            codes = self._codes.setdefault(key, [])
            if send.duplicate_policy == 1:
                codes.clear()
            codes[:] = [c for c in codes if now < c.expires_at]
            codes.append(_Issued(send.code, now + send.valid_time))

    def check(self, check: VerifyCheck, now: float) -> bool:
        """Whether ``check.code`` is a live code of its number and scheme; uses it up if so."""
        key = (check.number, check.scheme)
        with self._lock:
            codes = self._codes.get(key, [])
            for issued in codes:
                same = (
                    issued.code == check.code
                    if check.case_sensitive
                    else issued.code.lower() == check.code.lower()
                )
                if same and now < issued.expires_at:
                    codes.remove(issued)
                    return True
        return False

    def clear(self) -> None:
        """Forget every code and send."""
        with self._lock:
            self._codes.clear()
            self._sent.clear()


def _number(params: Mapping[str, str]) -> str:
    if params.get("CountryCode", "86") != "86":
        raise _illegal_number()
    number = params["PhoneNumber"]
    # The national number only: no +86, no spaces; and a real mainland mobile.
    if not _NATIONAL.fullmatch(number) or mainland(number) != number:
        raise _illegal_number()
    return number


def _scheme_name(params: Mapping[str, str]) -> str | None:
    name = params.get("SchemeName")
    if name is not None and len(name) > _MAX_SCHEME_NAME:
        raise _invalid("SchemeName")
    return name or None


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise _invalid(name)
    return int(raw)


def _boolean(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in {"true", "false"}:
        raise _invalid(name)
    return raw == "true"
