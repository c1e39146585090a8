"""The Message Authentication Service's config: Logto's ``aliyun-sms-mas`` JSON, validated."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from aliyun_sms_connector._config import (
    _MODEL_CONFIG,
    ConnectionConfig,
    NonEmptyStr,
    TemplateType,
    UsageType,
    unique_usage_types,
)

__all__ = ["MAX_SCHEME_NAME", "AliyunMasConfig", "MasTemplateConfig"]

# Aliyun's limit on SchemeName (the "verification service name").
MAX_SCHEME_NAME = 20


class MasTemplateConfig(BaseModel):
    """One entry of ``templates``: the system template that serves a usage type.

    Attributes:
        usage_type: Logto's ``usageType``.
        template_code: A system template code, such as ``"100001"``.
        scheme_name: This library's extension: the ``SchemeName`` (at most 20
            characters) sent with this usage type's codes and checks; Aliyun's
            default scheme when left out.
    """

    model_config = _MODEL_CONFIG

    usage_type: UsageType
    template_code: NonEmptyStr
    scheme_name: Annotated[NonEmptyStr, StringConstraints(max_length=MAX_SCHEME_NAME)] | None = None

    @property
    def type(self) -> TemplateType:
        """Always a verification-code template: the service sends nothing else."""
        return TemplateType.VERIFICATION_CODE

    def code_for(self, region: Literal["china", "overseas"]) -> str:  # noqa: ARG002 - mainland only
        """The template code; the service serves mainland numbers only."""
        return self.template_code


class AliyunMasConfig(ConnectionConfig):
    """The Message Authentication Service connector's configuration.

    Accepts Logto's ``aliyun-sms-mas`` connector JSON as is (``accessKeyId``,
    ``accessKeySecret``, ``signName``, ``templates`` of ``{usageType,
    templateCode}``), plus the operational keys of ``AliyunSmsConfig``
    (``endpoint``, ``regionId``, ``protocol``, timeouts, ``deadline``,
    ``maxAttempts``, backoff, ``maxConnections``, ``caFile``,
    ``credentials: "default"``, ``securityToken``, ``signatureAlgorithm``) with
    the same meaning and validation. The endpoint defaults to
    ``dypnsapi.aliyuncs.com``.

    Usage types follow ``AliyunSmsConfig``'s rule, not Logto's: Logto's MAS
    config must list all nine usage types, this one needs at least one entry,
    and a usage type without its own entry is sent with the Generic template
    (``TemplateNotFoundError`` when there is no Generic either). A Logto config
    with all nine is accepted as is.

    Invalid input raises ``ConfigError``, which names fields, never values.
    """

    config_name: ClassVar[str] = "Aliyun Message Authentication Service config"

    sign_name: NonEmptyStr
    templates: Annotated[
        list[MasTemplateConfig], Field(min_length=1), AfterValidator(unique_usage_types)
    ]

    @cached_property
    def templates_by_usage(self) -> dict[UsageType, MasTemplateConfig]:
        """The templates keyed by usage type (routing reads this on every send)."""
        return {template.usage_type: template for template in self.templates}
