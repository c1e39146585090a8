"""Send SMS verification codes through Alibaba Cloud (Aliyun) SMS.

A Python counterpart of Logto's Aliyun SMS connector, on the official SDK.
"""

from ._config import AliyunSmsConfig, RegionalTemplateCode, TemplateConfig, TemplateType, UsageType
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
from ._phone import PhoneNumber, parse_phone

__all__ = [
    "AccountError",
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
