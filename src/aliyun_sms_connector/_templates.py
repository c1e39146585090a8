"""Template routing: which template code serves a message, and its variables."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ._config import RegionalTemplateCode, TemplateType, UsageType
from ._errors import TemplateError, TemplateNotFoundError, TemplateParamError

if TYPE_CHECKING:
    from ._phone import Region

__all__ = [
    "Routable",
    "Route",
    "build_template_param",
    "case_hint",
    "coerce_usage_type",
    "region_problem",
    "route",
]

# Logto adds these to the payload as context; they are not template variables.
_CONTEXT_KEYS = frozenset({"locale", "uiLocales"})
# Logto's template kinds by the region Aliyun lets them serve: an
# international template (type 6) takes only numbers outside the mainland
# (Hong Kong, Macao and Taiwan included), every other kind only mainland ones.
_INTERNATIONAL_TYPES = frozenset({TemplateType.INTERNATIONAL_MESSAGE})
# Aliyun's rule for the variables of a verification-code template.
_CODE_VALUE = re.compile(r"[A-Za-z0-9]+")


class Routable(Protocol):
    """A template entry routing can pick: an SMS ``TemplateConfig`` or a MAS one."""

    @property
    def usage_type(self) -> UsageType: ...

    @property
    def type(self) -> TemplateType: ...

    @property
    def template_code(self) -> str | RegionalTemplateCode: ...

    def code_for(self, region: Literal["china", "overseas"]) -> str:
        """The template code for a recipient in ``region``."""
        ...


@dataclass(frozen=True)
class Route:
    """The outcome of routing: the template entry used and its code."""

    usage_type: UsageType
    template: Routable
    template_code: str


def coerce_usage_type(value: UsageType | str) -> UsageType:
    """Accept a :class:`UsageType`, its value (``"SignIn"``) or its name (``"SIGN_IN"``).

    Raises:
        TemplateNotFoundError: ``value`` names no usage type; the message lists
            the valid ones.
    """
    if isinstance(value, UsageType):
        return value
    if isinstance(value, str):
        try:
            return UsageType(value)
        except ValueError:
            if value in UsageType.__members__:
                return UsageType[value]
    valid = ", ".join(member.value for member in UsageType)
    shown = value if isinstance(value, str) and len(value) <= 40 else type(value).__name__  # noqa: PLR2004
    raise TemplateNotFoundError(
        f"unknown usage type {shown!r}{case_hint(value)}; valid usage types are: {valid}",
        code="UnknownUsageType",
    )


def case_hint(value: object) -> str:
    """`` (did you mean SignIn? ...)`` when ``value`` names a usage type in another case."""
    if isinstance(value, str):
        folded = value.casefold()
        for member in UsageType:
            if folded in {member.value.casefold(), member.name.casefold()}:
                return f" (did you mean {member.value}? usage types are case-sensitive)"
    return ""


def route(
    templates: Mapping[UsageType, Routable],
    usage_type: UsageType | str,
    region: Region,
    *,
    country_code: int | None = None,
) -> Route:
    """Pick the template for ``usage_type``: an exact match, else Generic.

    Args:
        templates: The configured templates by usage type
            (``AliyunSmsConfig.templates_by_usage``).
        usage_type: What the message is for.
        region: The recipient's region, for a ``{china, overseas}`` code.
        country_code: The recipient's calling code, named in the error (only
            the code: never the number).

    Raises:
        TemplateNotFoundError: Neither the usage type nor Generic is configured.
        TemplateError: ``TemplateRegionMismatch``: the template is a single
            code whose ``type`` cannot serve ``region`` (a domestic template and
            an overseas number, or an international one and a mainland number).
            Sending would be refused by Aliyun, or worse: an overseas number
            such as +1 415… written for a domestic template reads as a
            mainland mobile, and could reach someone else.
    """
    wanted = coerce_usage_type(usage_type)
    template = templates.get(wanted) or templates.get(UsageType.GENERIC)
    if template is None:
        configured = ", ".join(usage.value for usage in templates)
        raise TemplateNotFoundError(
            f"no template for usage type {wanted.value} and no Generic template; "
            f"configured: {configured}"
        )
    problem = region_problem(template, region, country_code=country_code)
    if problem is not None:
        raise TemplateError(problem, code="TemplateRegionMismatch")
    return Route(wanted, template, template.code_for(region))


def region_problem(
    template: Routable, region: Region, *, country_code: int | None = None
) -> str | None:
    """Why ``template`` cannot serve a recipient in ``region``, or None when it can.

    A ``{china, overseas}`` code serves both regions. A single code serves
    the region of its ``type``: international (6) for numbers outside the
    mainland, every other kind (0, 1, 2, 7) for mainland numbers.
    """
    code = template.template_code
    if not isinstance(code, str):
        return None
    international = template.type in _INTERNATIONAL_TYPES
    if region == "overseas" and not international:
        numbers = f"+{country_code} numbers" if country_code else "numbers outside mainland China"
        return (
            f"template {code} ({template.usage_type.value}) is domestic (type "
            f"{template.type.value}); {numbers} need an international (overseas) "
            "template: give templateCode as "
            '{"china": ..., "overseas": ...}'
        )
    if region == "china" and international:
        return (
            f"template {code} ({template.usage_type.value}) is international (type 6); "
            "+86 (mainland China) numbers need a domestic template: give templateCode as "
            '{"china": ..., "overseas": ...}'
        )
    return None


def build_template_param(payload: Mapping[str, object] | None, template: Routable) -> str:
    """Turn a Logto-style payload into Aliyun's ``TemplateParam`` JSON.

    ``locale`` and ``uiLocales`` are dropped. Values must be strings or
    finite numbers; for verification-code templates each must match ``[A-Za-z0-9]+``.

    Raises:
        TemplateParamError: A key or value is not acceptable. The message
            names the variable, never its value.
    """
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise TemplateParamError(f"payload must be a mapping, not {type(payload).__name__}")
    params: dict[str, str] = {}
    for key, value in payload.items():
        if not isinstance(key, str) or not key:
            raise TemplateParamError("template variable names must be non-empty strings")
        if key in _CONTEXT_KEYS:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TemplateParamError(
                f"template variable {key!r} must be a string or a number, "
                f"not {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            # str() would send "nan" or "inf": a valid-looking verification code.
            raise TemplateParamError(
                f"template variable {key!r} must be a finite number, not NaN or infinity"
            )
        text = _text(key, value)
        if template.type is TemplateType.VERIFICATION_CODE and not _CODE_VALUE.fullmatch(text):
            raise TemplateParamError(
                f"template variable {key!r} of a verification-code template must match "
                "[A-Za-z0-9]+ (Aliyun's rule)"
            )
        params[key] = text
    return json.dumps(params, ensure_ascii=False, separators=(",", ":"))


def _text(key: str, value: str | float) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except ValueError:
        pass  # an int beyond Python's str() digit limit
    raise TemplateParamError(f"template variable {key!r} is too long a number")
