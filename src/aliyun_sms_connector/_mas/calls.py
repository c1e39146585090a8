"""What each Dypnsapi call sends, and what it must keep private. No I/O.

Each ``prepare_*`` function validates a call's input before any network call
and returns a :class:`MasCall`: the ``Call`` of the SMS core (log labels,
deadline, the private values its errors scrub), the action and its
parameters, all strings, in a :class:`~aliyun_sms_connector._protocol.calls.HiddenParams`.
:func:`model_of` and :func:`verify_result` read the answers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from aliyun_sms_connector._errors import ConfigError, InvalidResponseError
from aliyun_sms_connector._phone import parse_mainland_mobile
from aliyun_sms_connector._protocol.calls import Call, HiddenParams, Secrets
from aliyun_sms_connector._templates import Route, build_template_param, route

if TYPE_CHECKING:
    from aliyun_sms_connector._config import UsageType
    from aliyun_sms_connector._phone import PhoneNumber
    from aliyun_sms_connector._protocol.wire import Answer

    from .config import AliyunMasConfig, MasTemplateConfig

__all__ = [
    "ACTIONS",
    "CHECK",
    "SEND",
    "MasCall",
    "model_of",
    "prepare_check",
    "prepare_message",
    "prepare_verify_code",
    "verify_result",
]

SEND: Final = "SendSmsVerifyCode"
CHECK: Final = "CheckSmsVerifyCode"
ACTIONS: Final = (SEND, CHECK)
# The service serves mainland China only.
_COUNTRY_CODE: Final = "86"
# Logto's codes stay valid 10 minutes; its template says so through ${min}.
_LOGTO_MINUTES: Final = "10"
# Aliyun's bounds on CodeLength.
MIN_CODE_LENGTH: Final = 4
MAX_CODE_LENGTH: Final = 8
# The longest unknown VerifyResult an error quotes.
_MAX_SHOWN: Final = 20
# The placeholder that makes Aliyun generate the code.
_GENERATED: Final = "##code##"
# A code Aliyun can have made: CodeLength 4-8, CodeType digits to mixed letters.
_POSSIBLE_CODE: Final = re.compile(rf"[A-Za-z0-9]{{{MIN_CODE_LENGTH},{MAX_CODE_LENGTH}}}")


class MasCall(NamedTuple):
    """One Dypnsapi call, ready to go: its ``repr`` shows no number and no code."""

    call: Call
    action: str
    params: HiddenParams
    usage_type: UsageType


class _Target(NamedTuple):
    """Who a call is for, and the template entry serving it."""

    to: str
    phone: PhoneNumber
    route: Route

    def __repr__(self) -> str:
        # The number as given stays out of frame-local renderings.
        return f"_Target(phone={self.phone!r}, template={self.route.template_code!r})"


def _target(config: AliyunMasConfig, to: str, usage_type: UsageType | str) -> _Target:
    # The number first: a number the service cannot serve is the first problem to name.
    phone = parse_mainland_mobile(to)
    return _Target(to, phone, route(config.templates_by_usage, usage_type, "china"))


def prepare_message(
    config: AliyunMasConfig,
    secrets: Secrets,
    *,
    to: str,
    usage_type: UsageType | str,
    payload: Mapping[str, Any] | None,
) -> MasCall:
    """SendSmsVerifyCode with the caller's own code, as Logto's connector sends it.

    ``TemplateParam`` is ``payload`` without Logto's ``locale`` and
    ``uiLocales``, with ``min`` the payload's own or ``"10"``; each value must
    be a string or number matching ``[A-Za-z0-9]+``, as for any
    verification-code template.

    Raises:
        InvalidPhoneNumberError, TemplateNotFoundError, TemplateParamError:
            The input is not sendable.
    """
    target = _target(config, to, usage_type)
    # Anything but a mapping is refused by build_template_param, by its type.
    full: Any = {**payload} if isinstance(payload, Mapping) else payload
    if payload is None:
        full = {}
    if isinstance(full, dict):
        full.setdefault("min", _LOGTO_MINUTES)
    template_param = build_template_param(full, target.route.template)
    # What was sent, the minutes aside: they are no secret.
    sent = json.loads(template_param)
    values = tuple([value for key, value in sent.items() if key != "min"])
    return _send(config, secrets, target, template_param, values=values)


def prepare_verify_code(
    config: AliyunMasConfig,
    secrets: Secrets,
    *,
    to: str,
    usage_type: UsageType | str,
    code_length: int,
    valid_time: int,
    interval: int,
) -> MasCall:
    """SendSmsVerifyCode for a code Aliyun makes and later checks.

    Raises:
        ConfigError: ``code_length`` is not 4 to 8, or ``valid_time`` or
            ``interval`` is not a whole number of seconds (``valid_time`` at
            least 1, ``interval`` at least 0).
        InvalidPhoneNumberError, TemplateNotFoundError: As for a message.
    """
    _check_int("code_length", code_length, MIN_CODE_LENGTH, MAX_CODE_LENGTH)
    _check_int("valid_time", valid_time, 1, None)
    _check_int("interval", interval, 0, None)
    target = _target(config, to, usage_type)
    minutes = str(math.ceil(valid_time / 60))
    template_param = json.dumps({"code": _GENERATED, "min": minutes}, separators=(",", ":"))
    extra = {
        "CodeLength": str(code_length),
        "ValidTime": str(valid_time),
        "Interval": str(interval),
        # A new code replaces the one before it, as the verification service does.
        "DuplicatePolicy": "1",
        # Digits only.
        "CodeType": "1",
    }
    return _send(config, secrets, target, template_param, extra=extra)


def _send(
    config: AliyunMasConfig,
    secrets: Secrets,
    target: _Target,
    template_param: str,
    *,
    values: tuple[str, ...] = (),
    extra: Mapping[str, str] | None = None,
) -> MasCall:
    call = _call(config, secrets, target, SEND, (*values, template_param))
    params = HiddenParams(
        PhoneNumber=target.phone.national_number,
        CountryCode=_COUNTRY_CODE,
        SignName=config.sign_name,
        TemplateCode=target.route.template_code,
        TemplateParam=template_param,
        **(extra or {}),
    )
    _add_scheme(params, target.route)
    return MasCall(call, SEND, params, target.route.usage_type)


def prepare_check(
    config: AliyunMasConfig,
    secrets: Secrets,
    *,
    to: str,
    usage_type: UsageType | str,
    code: str,
) -> MasCall | None:
    """CheckSmsVerifyCode for ``code``; None when no code Aliyun made could be ``code``.

    Aliyun makes 4 to 8 letters or digits: anything else cannot pass, and is
    answered False without asking.

    Raises:
        InvalidPhoneNumberError, TemplateNotFoundError: As for a send.
    """
    target = _target(config, to, usage_type)
    if not isinstance(code, str) or not _POSSIBLE_CODE.fullmatch(code):
        return None
    call = _call(config, secrets, target, CHECK, (code,))
    params = HiddenParams(
        PhoneNumber=target.phone.national_number, CountryCode=_COUNTRY_CODE, VerifyCode=code
    )
    _add_scheme(params, target.route)
    return MasCall(call, CHECK, params, target.route.usage_type)


def _call(
    config: AliyunMasConfig,
    secrets: Secrets,
    target: _Target,
    action: str,
    values: tuple[str, ...],
) -> Call:
    phone = target.phone
    return Call(
        (
            ("operation", action),
            ("usage_type", target.route.usage_type.value),
            ("template", target.route.template_code),
            ("to", phone),
        ),
        phones=(target.to, phone.aliyun, phone.e164, phone.national_number),
        values=values,
        secrets=secrets,
        deadline_ms=config.deadline,
    )


def _add_scheme(params: HiddenParams, chosen: Route) -> None:
    template: MasTemplateConfig = chosen.template  # type: ignore[assignment]
    if template.scheme_name is not None:
        params["SchemeName"] = template.scheme_name


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bounds} (Aliyun's rule), not {value}")


def model_of(answer: Answer) -> dict[str, Any]:
    """The answer's ``Model`` object (empty when absent or not an object)."""
    model = answer.body.get("Model")
    return model if isinstance(model, dict) else {}


def verify_result(answer: Answer, call: Call) -> bool:
    """True for ``Model.VerifyResult == "PASS"``, False for ``"UNKNOWN"``.

    Raises:
        InvalidResponseError: Anything else, or nothing: never True on doubt.
            Its message shows the value scrubbed by ``call``'s redactor.
    """
    result = model_of(answer).get("VerifyResult")
    if result == "PASS":
        return True
    if result == "UNKNOWN":
        return False
    error = _unknown_result(result, answer, call)
    del result  # Aliyun's own value, out of the raising frame's locals
    raise error


def _unknown_result(result: object, answer: Answer, call: Call) -> InvalidResponseError:
    if isinstance(result, str) and len(result) <= _MAX_SHOWN:
        shown = repr(call.redactor.text(result))
    else:
        shown = type(result).__name__
    return InvalidResponseError(
        f"CheckSmsVerifyCode answered an unknown VerifyResult ({shown}); not approved",
        request_id=answer.request_id,
        http_status=answer.http_status,
    )
