"""Send SMS verification codes through Alibaba Cloud (Aliyun) SMS.

A Python counterpart of Logto's Aliyun SMS connector, on the official SDK.
"""

# The public names are imported on first use (PEP 562), not here: importing the
# package then runs no code of ours, so that the aliyun-sms command catches
# Ctrl-C from its first line, and `import aliyun_sms_connector` costs nothing.
# The imports below are for type checkers and IDEs only; not even typing is
# imported at run time.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._config import (
        AliyunSmsConfig,
        RegionalTemplateCode,
        TemplateConfig,
        TemplateType,
        UsageType,
    )
    from ._connector import AliyunSmsConnector, SendResult
    from ._delivery import (
        BatchChunk,
        BatchMessage,
        BatchResult,
        DeliveryReport,
        DeliveryStatus,
        RejectedRecipient,
    )
    from ._errors import (
        AccountError,
        AliyunSmsError,
        AuthenticationError,
        ConfigError,
        ConfigProblem,
        InvalidPhoneNumberError,
        InvalidResponseError,
        NetworkError,
        PermissionDeniedError,
        RateLimitExceededError,
        ServiceUnavailableError,
        SignNameError,
        TemplateError,
        TemplateNotFoundError,
        TemplateParamError,
    )
    from ._mas.config import AliyunMasConfig
    from ._mas.connector import AliyunMasConnector
    from ._phone import PhoneNumber, parse_phone
    from ._redact import RedactedError

__all__ = [
    "AccountError",
    "AliyunMasConfig",
    "AliyunMasConnector",
    "AliyunSmsConfig",
    "AliyunSmsConnector",
    "AliyunSmsError",
    "AuthenticationError",
    "BatchChunk",
    "BatchMessage",
    "BatchResult",
    "ConfigError",
    "ConfigProblem",
    "DeliveryReport",
    "DeliveryStatus",
    "InvalidPhoneNumberError",
    "InvalidResponseError",
    "NetworkError",
    "PermissionDeniedError",
    "PhoneNumber",
    "RateLimitExceededError",
    "RedactedError",
    "RegionalTemplateCode",
    "RejectedRecipient",
    "SendResult",
    "ServiceUnavailableError",
    "SignNameError",
    "TemplateConfig",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateParamError",
    "TemplateType",
    "UsageType",
    "parse_phone",
]

# The module that defines each public name.
_WHERE = {
    "AccountError": "_errors",
    "AliyunMasConfig": "_mas.config",
    "AliyunMasConnector": "_mas.connector",
    "AliyunSmsConfig": "_config",
    "AliyunSmsConnector": "_connector",
    "AliyunSmsError": "_errors",
    "AuthenticationError": "_errors",
    "BatchChunk": "_delivery",
    "BatchMessage": "_delivery",
    "BatchResult": "_delivery",
    "ConfigError": "_errors",
    "ConfigProblem": "_errors",
    "DeliveryReport": "_delivery",
    "DeliveryStatus": "_delivery",
    "InvalidPhoneNumberError": "_errors",
    "InvalidResponseError": "_errors",
    "NetworkError": "_errors",
    "PermissionDeniedError": "_errors",
    "PhoneNumber": "_phone",
    "RateLimitExceededError": "_errors",
    "RedactedError": "_redact",
    "RegionalTemplateCode": "_config",
    "RejectedRecipient": "_delivery",
    "SendResult": "_connector",
    "ServiceUnavailableError": "_errors",
    "SignNameError": "_errors",
    "TemplateConfig": "_config",
    "TemplateError": "_errors",
    "TemplateNotFoundError": "_errors",
    "TemplateParamError": "_errors",
    "TemplateType": "_config",
    "UsageType": "_config",
    "parse_phone": "_phone",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415

    value = getattr(import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
