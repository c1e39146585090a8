"""Connector configuration: Logto's Aliyun SMS JSON, validated by pydantic."""

from __future__ import annotations

import json
import os
import re
from enum import Enum, IntEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    FilePath,
    SecretStr,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from ._errors import ConfigError, ConfigProblem
from ._http.tls import client_context

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from typing_extensions import Self

__all__ = [
    "ENV_PREFIX",
    "SERVICE_VARIABLES",
    "AliyunSmsConfig",
    "ConnectionConfig",
    "NonEmptyStr",
    "RegionalTemplateCode",
    "TemplateConfig",
    "TemplateType",
    "UsageType",
    "unique_usage_types",
]


ENV_PREFIX = "ALIYUN_SMS_"
# Variables of the verification service (the aliyun-sms verify command, the
# example apps), and ALIYUN_SMS_CONFIG, the path of a config file (the command
# line, the example apps): none is a field, and from_env() leaves them alone.
SERVICE_VARIABLES = frozenset(
    {"ALIYUN_SMS_REDIS_URL", "ALIYUN_SMS_VERIFY_SECRET_KEY", "ALIYUN_SMS_CONFIG"}
)


class UsageType(str, Enum):
    """What a message is for; the values are Logto's ``usageType`` strings."""

    REGISTER = "Register"
    SIGN_IN = "SignIn"
    FORGOT_PASSWORD = "ForgotPassword"  # noqa: S105 - a usage name, not a password
    GENERIC = "Generic"
    TEST = "Test"
    ORGANIZATION_INVITATION = "OrganizationInvitation"
    USER_PERMISSION_VALIDATION = "UserPermissionValidation"
    BIND_NEW_IDENTIFIER = "BindNewIdentifier"
    MFA_VERIFICATION = "MfaVerification"
    BIND_MFA = "BindMfa"

    def __str__(self) -> str:
        return self.value


class TemplateType(IntEnum):
    """Logto's template kinds (the ``type`` field of a template)."""

    NOTIFICATION = 0
    PROMOTION = 1
    VERIFICATION_CODE = 2
    INTERNATIONAL_MESSAGE = 6
    PURE_NUMBER = 7


# C0 and C1 controls (CR, LF, TAB, NUL, ...) and the Unicode line and paragraph
# separators: a config string holding one could split or forge a log line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Lone surrogates come from bytes that were not UTF-8 (os.environ, argv); they
# cannot be encoded into a request.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_NO_CONTROL = "must not contain control characters such as CR or LF"
_NOT_TEXT = "must be UTF-8 text"


def _text_problem(value: str) -> str | None:
    if _CONTROL.search(value):
        return _NO_CONTROL
    if _SURROGATE.search(value):
        return _NOT_TEXT
    return None


def _plain_text(value: str) -> str:
    problem = _text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# Surrounding whitespace (a newline pasted after a key) is trimmed first; a
# control character left inside is an error, never written to a log line.
NonEmptyStr = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_plain_text)
]

# host or host:port; a scheme or a path is a mistake the SDK turns into a
# broken Host header, so it is rejected here with a clear message.
_ENDPOINT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")


def _endpoint_form(value: str) -> str:
    value = _plain_text(value.strip())
    if "://" in value:
        raise ValueError("give host[:port] without a scheme; set protocol instead")
    if not _ENDPOINT.fullmatch(value):
        raise ValueError("must be host[:port], such as dysmsapi.aliyuncs.com")
    return value


def _text_or_any(value: Any) -> Any:
    if isinstance(value, str):
        _plain_text(value)
    return value


# A control character is named as such before the pattern would reject it.
Endpoint = Annotated[str, AfterValidator(_endpoint_form)]
RegionId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$"), BeforeValidator(_text_or_any)]

_MODEL_CONFIG = ConfigDict(
    alias_generator=to_camel,
    populate_by_name=True,
    extra="forbid",
    frozen=True,
    # Validators are built on first use, not at import: the import stays
    # cheap, as it does for the SDK.
    defer_build=True,
)


class RegionalTemplateCode(BaseModel):
    """A template code per recipient region, as Logto's ``{china, overseas}``."""

    model_config = _MODEL_CONFIG

    china: NonEmptyStr
    overseas: NonEmptyStr


def _template_code_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "code"
    if isinstance(value, (dict, RegionalTemplateCode)):
        return "regional"
    return None


# A tagged union, so that a bad value gets one error from the form it was
# meant to have, not one from each form pydantic tried.
TemplateCode = Annotated[
    Annotated[NonEmptyStr, Tag("code")] | Annotated[RegionalTemplateCode, Tag("regional")],
    Discriminator(
        _template_code_form,
        custom_error_type="template_code_form",
        custom_error_message='must be a template code or {"china": ..., "overseas": ...}',
    ),
]
_UNION_TAGS = ("code", "regional")


class TemplateConfig(BaseModel):
    """One entry of ``templates``: which Aliyun template serves a usage type."""

    model_config = _MODEL_CONFIG

    usage_type: UsageType
    template_code: TemplateCode
    type: TemplateType = TemplateType.VERIFICATION_CODE

    def code_for(self, region: Literal["china", "overseas"]) -> str:
        """Return the template code to use for a recipient in ``region``."""
        if isinstance(self.template_code, str):
            return self.template_code
        return getattr(self.template_code, region)  # type: ignore[no-any-return]


class _UsageEntry(Protocol):
    @property
    def usage_type(self) -> UsageType: ...


_Entry = TypeVar("_Entry", bound=_UsageEntry)


def unique_usage_types(templates: list[_Entry]) -> list[_Entry]:
    """Refuse a config that names one usage type twice (which entry would win is unclear)."""
    seen: set[UsageType] = set()
    for template in templates:
        if template.usage_type in seen:
            raise ValueError(f"usageType {template.usage_type.value} appears more than once")
        seen.add(template.usage_type)
    return templates


class ConnectionConfig(BaseModel):
    """What every product's config shares: credentials, endpoint, timeouts and retries.

    :class:`AliyunSmsConfig` and the Message Authentication Service's
    ``AliyunMasConfig`` add their own sign name and templates. Invalid input
    raises :class:`ConfigError`, never pydantic's own error, because the
    latter echoes input values (secrets included).
    """

    model_config = _MODEL_CONFIG
    # What an invalid one is called in ConfigError's message.
    config_name: ClassVar[str] = "Aliyun SMS config"

    access_key_id: NonEmptyStr | None = None
    access_key_secret: SecretStr | None = None
    security_token: SecretStr | None = None
    credentials: Literal["default"] | None = None
    region_id: RegionId | None = None
    endpoint: Endpoint | None = None
    protocol: Literal["https", "http"] = "https"
    connect_timeout: Annotated[int, Field(gt=0)] = 5000
    read_timeout: Annotated[int, Field(gt=0)] = 10000
    signature_algorithm: Literal["ACS3-HMAC-SHA256", "v2"] = "ACS3-HMAC-SHA256"
    ca_file: FilePath | None = None
    max_connections: Annotated[int, Field(ge=1, le=1024)] = 64

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    backoff_base: Annotated[int, Field(ge=0)] = 200
    backoff_cap: Annotated[int, Field(ge=0)] = 5000
    deadline: Annotated[int, Field(gt=0)] = 20000

    def __init__(self, **data: Any) -> None:
        problems: list[ConfigProblem] | None = None
        try:
            super().__init__(**data)
        except ValidationError as err:
            problems = _problems(err)
        if problems is None:
            return
        # The credential check runs only once every field is valid; run it
        # on the raw input too, so that one error names every problem.
        reported = {problem.field for problem in problems}
        problems += [
            problem
            for problem in _credential_problems(
                key_id=_given(data, "accessKeyId", "access_key_id"),
                secret=_given(data, "accessKeySecret", "access_key_secret"),
                token=_given(data, "securityToken", "security_token"),
                chain=data.get("credentials") == "default",
            )
            if problem.field not in reported
        ]
        del data  # the raw input, secrets included, stays out of the frame's locals
        # Raised outside the except block, so that __context__ is None:
        # pydantic's error holds the input values, secrets included.
        raise ConfigError.from_problems(problems, type(self).config_name)

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Self:
        """Validate a mapping, such as Logto's stored JSON; raise ConfigError."""
        outcome = _outcome(cls, obj)
        del obj
        return _config_or_raise(outcome, cls.config_name)

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse Logto's connector JSON text; raise ConfigError when invalid.

        Bytes must be UTF-8. A leading byte-order mark, as some Windows
        editors write, is ignored.
        """
        outcome = _json_outcome(cls, text)
        del text
        return _config_or_raise(outcome, cls.config_name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read ``ALIYUN_SMS_*`` variables, such as ``ALIYUN_SMS_ACCESS_KEY_ID``.

        ``ALIYUN_SMS_TEMPLATES`` holds the templates as JSON. Unknown
        ``ALIYUN_SMS_*`` variables are rejected, like unknown keys, except
        the verification service's ``ALIYUN_SMS_REDIS_URL`` and
        ``ALIYUN_SMS_VERIFY_SECRET_KEY``, and ``ALIYUN_SMS_CONFIG`` (the path
        the command line reads a config file from), which are left alone.

        Raises:
            ConfigError: Naming the offending variables.
        """
        # The work is done in a helper, so that the frame that raises holds
        # neither the environment (other applications' secrets too) nor the
        # values read from it: error trackers record every frame's locals.
        outcome = _env_outcome(cls, os.environ if environ is None else environ)
        return _config_or_raise(outcome, cls.config_name)

    @classmethod
    def model_validate_strings(cls, obj: Any, **_: Any) -> Self:
        """Same as :meth:`model_validate` (numbers and booleans may be strings there too).

        pydantic's own would wrap the ConfigError in a ValidationError that
        holds the whole input, secrets included.
        """
        return cls.model_validate(obj)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Self:
        """Same as :meth:`from_json`."""
        return cls.from_json(bytes(json_data) if isinstance(json_data, bytearray) else json_data)

    @field_validator("access_key_secret", "security_token", mode="after")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        stripped = value.get_secret_value().strip()
        if not stripped:
            raise ValueError("must not be empty")
        problem = _text_problem(stripped)
        if problem:
            raise ValueError(problem)
        return SecretStr(stripped)

    @field_validator("ca_file", mode="before")
    @classmethod
    def _ca_path_is_text(cls, value: Any) -> Any:
        return _text_or_any(value)

    @field_validator("ca_file", mode="after")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        # Loaded with ssl, as the transport loads it, so that a file that is not
        # a PEM bundle fails here, with the field's name, and not at the first send.
        if value is not None and not _loads_as_ca_bundle(value):
            raise ValueError("is not a readable PEM file of CA certificates")
        return value

    @model_validator(mode="after")
    def _one_credential_form(self) -> Self:
        problems = _credential_problems(
            key_id=self.access_key_id is not None,
            secret=self.access_key_secret is not None,
            token=self.security_token is not None,
            chain=self.credentials == "default",
        )
        if problems:
            raise _FieldProblemsError(problems)
        return self


class AliyunSmsConfig(ConnectionConfig):
    """The connector's configuration.

    Accepts the JSON that Logto's console stores for its Aliyun SMS connector
    as is (camelCase), and the snake_case names from Python. Unknown keys are
    rejected. Invalid input raises :class:`ConfigError`, never pydantic's own
    error, because the latter echoes input values (secrets included).

    ``templates`` needs at least one entry; a usage type without its own entry
    is sent with the Generic template, and with no Generic either the send
    fails with ``TemplateNotFoundError``.
    """

    sign_name: NonEmptyStr
    templates: Annotated[
        list[TemplateConfig], Field(min_length=1), AfterValidator(unique_usage_types)
    ]
    strict_phone_region_number_check: bool = False

    overseas_region_id: RegionId | None = None
    overseas_endpoint: Endpoint | None = None

    @cached_property
    def templates_by_usage(self) -> dict[UsageType, TemplateConfig]:
        """The templates keyed by usage type (routing reads this on every send)."""
        return {template.usage_type: template for template in self.templates}

    @property
    def has_overseas_route(self) -> bool:
        """Whether overseas recipients go through their own endpoint."""
        return self.overseas_region_id is not None or self.overseas_endpoint is not None


_C = TypeVar("_C", bound=ConnectionConfig)


def _loads_as_ca_bundle(path: Path) -> bool:
    # The transport's own loader: it caches the context per file, so the
    # connector reuses what validation loaded, and both judge the file alike.
    try:
        client_context(str(path))
    except ConfigError:
        return False
    return True


def _outcome(cls: type[_C], obj: Any) -> _C | list[ConfigProblem]:
    """Validate ``obj``: the config, or the problems (the ConfigError is not kept)."""
    problems: list[ConfigProblem] = []
    if not isinstance(obj, dict):
        problems.append(ConfigProblem("", f"expected a JSON object, got {type(obj).__name__}"))
    elif any(not isinstance(key, str) for key in obj):
        bad = next(key for key in obj if not isinstance(key, str))
        problems.append(ConfigProblem("", f"keys must be strings, got {type(bad).__name__}"))
    else:
        try:
            # Through __init__, the single place that turns pydantic's error
            # into ConfigError: pydantic calls a custom __init__ from
            # model_validate too, and would wrap a ConfigError raised there.
            return cls(**obj)
        except ConfigError as err:
            problems.extend(err.problems)
    return problems


def _config_or_raise(outcome: _C | list[ConfigProblem], name: str) -> _C:
    if isinstance(outcome, list):
        # Raised afresh, outside any except block: nothing is chained, and this
        # frame holds only the problems, which name fields, never values.
        raise ConfigError.from_problems(outcome, name)
    return outcome


def _json_outcome(cls: type[_C], text: str | bytes) -> _C | list[ConfigProblem]:
    problem = None
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError:
            problem = "not UTF-8 text; save the file as UTF-8"
    if problem is None:
        if not isinstance(text, str):
            problem = f"expected JSON text, got {type(text).__name__}"
        else:
            try:
                return _outcome(cls, json.loads(text.removeprefix("\ufeff")))
            except json.JSONDecodeError as err:
                # Only the position: the exception's doc attribute is the input.
                problem = f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
            except ValueError:
                problem = "not valid JSON: a number is too long"
            except RecursionError:
                problem = "not valid JSON: nested too deeply"
    return [ConfigProblem("", problem)]


def _env_outcome(cls: type[_C], environ: Mapping[str, str]) -> _C | list[ConfigProblem]:
    fields = {ENV_PREFIX + name.upper(): name for name in cls.model_fields}
    aliases = {name: ENV_PREFIX + name.upper() for name in cls.model_fields}
    aliases.update(
        {info.alias: aliases[name] for name, info in cls.model_fields.items() if info.alias}
    )
    data: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable in SERVICE_VARIABLES:
            continue
        name = fields.get(variable)
        if name is None:
            problems.append(ConfigProblem(_shown_name(variable), "unknown variable"))
        elif name == "templates":
            try:
                data[name] = json.loads(value)
            except (ValueError, RecursionError):
                problems.append(ConfigProblem(variable, "must be a JSON list of templates"))
        else:
            data[name] = value
    if not problems:
        outcome = _outcome(cls, data)
        if not isinstance(outcome, list):
            return outcome
        problems = outcome
    return [_env_problem(problem, aliases) for problem in problems]


def _env_problem(problem: ConfigProblem, aliases: Mapping[str, str]) -> ConfigProblem:
    head, _, rest = problem.field.partition(".")
    if head in aliases:
        return ConfigProblem(aliases[head] + (f".{rest}" if rest else ""), problem.problem)
    return problem


def _credential_problems(
    *, key_id: bool, secret: bool, token: bool, chain: bool
) -> list[ConfigProblem]:
    """Exactly one credential form: the AccessKey pair, or the default chain."""
    if chain:
        if key_id or secret or token:
            return [
                ConfigProblem(
                    "credentials",
                    'give either accessKeyId/accessKeySecret or credentials: "default", not both',
                )
            ]
        return []
    missing = 'Field required (or credentials: "default" for the credential chain)'
    return [
        ConfigProblem(name, missing)
        for name, given in (("accessKeyId", key_id), ("accessKeySecret", secret))
        if not given
    ]


def _given(data: Mapping[str, Any], *names: str) -> bool:
    return any(data.get(name) is not None for name in names)


class _FieldProblemsError(ValueError):
    """Raised by a model validator to report problems at named fields."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


def _problems(err: ValidationError) -> list[ConfigProblem]:
    # Only the location and pydantic's message are kept: the message names the
    # expected form, never the input, so secrets cannot leak through it.
    problems = []
    for item in err.errors(include_url=False, include_input=False):
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, _FieldProblemsError):
            problems.extend(cause.problems)
            continue
        loc = list(item["loc"])
        # Drop the union tag that follows templateCode: it names pydantic's branch.
        for index in range(len(loc) - 1):
            if loc[index] in ("templateCode", "template_code") and loc[index + 1] in _UNION_TAGS:
                del loc[index + 1]
                break
        field = ".".join(_shown_name(str(part)) for part in loc)
        message = item["msg"]
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        problems.append(ConfigProblem(field, message))
    return problems


_MAX_NAME = 64


def _shown_name(name: str) -> str:
    """A key as the error shows it: unknown keys come from the input, so escape and cut them."""
    if _text_problem(name) or len(name) > _MAX_NAME:
        escaped = name.encode("unicode_escape", "backslashreplace").decode("ascii")
        return escaped[:_MAX_NAME] + ("…" if len(escaped) > _MAX_NAME else "")
    return name
