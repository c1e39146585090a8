"""Usage types as the service reads them: by value or member name, without Enum's call."""

from __future__ import annotations

from aliyun_sms_connector import TemplateNotFoundError, UsageType

__all__ = ["USAGE_VALUES", "to_usage_type", "usage_label"]

# Values ("SignIn") and member names ("SIGN_IN"), looked up without Enum's call.
_USAGE_TYPES: dict[str, UsageType] = {
    **{member.name: member for member in UsageType},
    **{member.value: member for member in UsageType},
}


USAGE_VALUES: dict[object, str] = {key: member.value for key, member in _USAGE_TYPES.items()}
USAGE_VALUES.update({member: member.value for member in UsageType})


def usage_label(value: object) -> str:
    """A known usage type's value, else "?": caller text never reaches a log line."""
    if isinstance(value, (str, UsageType)):
        return USAGE_VALUES.get(value, "?")
    return "?"


def to_usage_type(value: UsageType | str) -> UsageType:
    if isinstance(value, UsageType):
        return value
    if isinstance(value, str):
        found = _USAGE_TYPES.get(value)
        if found is not None:
            return found
    valid = ", ".join(member.value for member in UsageType)
    hint = ""
    if isinstance(value, str):
        # Only a valid name is shown, never the caller's text.
        folded = value.casefold()
        for key, member in _USAGE_TYPES.items():
            if key.casefold() == folded:
                hint = f" (did you mean {member.value}? usage types are case-sensitive)"
                break
    raise TemplateNotFoundError(
        f"unknown usage type{hint}; valid usage types are: {valid}", code="UnknownUsageType"
    )
