"""What each public call sends, and what it must keep private. No I/O.

Each ``prepare_*`` function validates a call's input (before any network
call), and returns the API parameters, all strings, with a :class:`Call`: the
call's log labels, its deadline and the private values an error must not show.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from aliyun_sms_connector._config import UsageType
from aliyun_sms_connector._delivery import (
    MAX_PAGE_SIZE,
    BatchMessage,
    RejectedRecipient,
    send_date_text,
)
from aliyun_sms_connector._errors import AliyunSmsError, TemplateNotFoundError
from aliyun_sms_connector._phone import PhoneNumber, Region, parse_phone
from aliyun_sms_connector._redact import Redactor
from aliyun_sms_connector._templates import Route, build_template_param, route

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import date

    from aliyun_sms_connector._config import AliyunSmsConfig

    from .sdk import Credential

__all__ = [
    "Call",
    "Chunk",
    "HiddenParams",
    "Query",
    "Secrets",
    "Send",
    "prepare_batch",
    "prepare_query",
    "prepare_send",
]

_LOGTO_CONTEXT = ("locale", "uiLocales")
_BATCH_LIMIT = 100


class Secrets(tuple[str, ...]):
    """The credentials a call's errors must scrub; ``repr`` shows none of them.

    It is passed to every ``prepare_*`` function, so it is a local in frames
    that local validation errors (a bad number, a bad payload) raise from: an
    error tracker that captures frame locals must find only this repr.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Secrets({len(self)} hidden)"


class HiddenParams(dict[str, str]):
    """API parameters whose ``repr`` names the keys only.

    The drivers hold a call's parameters in their frames; an error tracker
    that captures frame locals renders them with ``repr``, which must not
    show a number or a verification code.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"HiddenParams({', '.join(sorted(self))})"


class Call:
    """One public call (or one page, or one chunk): its labels, clock and private values.

    ``repr`` shows only the labels, the number masked: frame locals captured
    by an error tracker must not show a secret, a token, a code or a number.
    """

    __slots__ = ("_redactor", "deadline", "labels", "phones", "secrets", "started", "values")

    def __init__(
        self,
        labels: tuple[tuple[str, object], ...],
        *,
        phones: tuple[str, ...],
        values: tuple[str, ...],
        secrets: Secrets,
        deadline_ms: int,
    ) -> None:
        self.labels = labels
        self.phones = phones
        self.values = values
        self.secrets: Secrets = secrets
        self.started = time.monotonic()
        # An absolute time.monotonic() value: retries and waits never pass it.
        self.deadline = self.started + deadline_ms / 1000
        self._redactor: Redactor | None = None

    def restarted(self, deadline_ms: int) -> Call:
        """The same call with its own clock: each page and chunk gets a whole deadline."""
        return Call(
            self.labels,
            phones=self.phones,
            values=self.values,
            secrets=self.secrets,
            deadline_ms=deadline_ms,
        )

    def learn(self, credential: Credential) -> None:
        """Remember a credential from the default chain, so that errors scrub it too."""
        known = self.secrets
        if credential.secret not in known or (credential.token and credential.token not in known):
            learned = [s for s in (credential.secret, credential.token) if s]
            self.secrets = Secrets((*known, *learned))
            self._redactor = None

    @property
    def redactor(self) -> Redactor:
        """Built only when an error needs scrubbing: calls that succeed skip it."""
        if self._redactor is None:
            self._redactor = Redactor(phones=self.phones, values=self.values, secrets=self.secrets)
        return self._redactor

    @property
    def summary(self) -> str:
        """``key=value`` pairs for log lines, the number masked."""
        return " ".join(
            f"{key}={self._masked(value) if isinstance(value, PhoneNumber) else value}"
            for key, value in self.labels
        )

    def _masked(self, phone: PhoneNumber) -> str:
        # The mask shows the number's last 4 digits; when a template value
        # holds them (a code 8000 or 138000 sent to 13800138000), they would
        # show part of the code, so the mask shows none.
        mask = phone.masked
        shown = mask[len("***") :]
        if shown and any(shown in value for value in self.values):
            return "***"
        return mask

    def elapsed_ms(self) -> float:
        """Milliseconds since this call's clock started."""
        return (time.monotonic() - self.started) * 1000

    def __repr__(self) -> str:
        return f"Call({self.summary})"


class Send(NamedTuple):
    """A SendSms call, ready to go."""

    call: Call
    region: Region
    params: dict[str, str]
    usage_type: UsageType


def prepare_send(
    config: AliyunSmsConfig,
    secrets: Secrets,
    *,
    to: str,
    usage_type: UsageType | str,
    payload: Mapping[str, Any] | None,
    out_id: str | None,
    routes: dict[tuple[object, Region], Route] | None = None,
) -> Send:
    """Validate one SendSms call and build its parameters.

    ``routes`` keeps the template each usage type and region is routed to: it
    depends on the config alone, so a connector works it out once.

    Raises:
        InvalidPhoneNumberError, TemplateNotFoundError, TemplateParamError,
        TemplateError, AliyunSmsError: The input is not sendable.
    """
    if out_id is not None and not isinstance(out_id, str):
        raise AliyunSmsError(
            f"out_id must be a string, not {type(out_id).__name__}", code="InvalidOutId"
        )
    phone = parse_phone(to, strict=config.strict_phone_region_number_check)
    chosen = _routed(config, routes, usage_type, phone)
    template_param = build_template_param(payload, chosen.template)
    # Lists, not generators, feed these tuples: tuple(generator) leaves CPython's
    # collector a little closer to its next run on every call.
    values = tuple([str(v) for k, v in (payload or {}).items() if k not in _LOGTO_CONTEXT])
    call = Call(
        (
            ("usage_type", chosen.usage_type.value),
            ("template", chosen.template_code),
            ("to", phone),
        ),
        phones=(to, phone.aliyun, phone.e164, phone.national_number),
        values=(*values, template_param),
        secrets=secrets,
        deadline_ms=config.deadline,
    )
    params = {
        "PhoneNumbers": phone.aliyun,
        "SignName": config.sign_name,
        "TemplateCode": chosen.template_code,
        "TemplateParam": template_param,
    }
    if out_id is not None:
        params["OutId"] = out_id
    return Send(call, phone.region, params, chosen.usage_type)


_MAX_ROUTES = 64


def _routed(
    config: AliyunSmsConfig,
    routes: dict[tuple[object, Region], Route] | None,
    usage_type: UsageType | str,
    phone: PhoneNumber,
) -> Route:
    key = (usage_type, phone.region)
    try:
        return routes[key]  # type: ignore[index]  # None or unhashable: routed below
    except (KeyError, TypeError):
        pass
    # A template that cannot serve the region raises here, every time: only
    # routes that exist are kept.
    chosen = route(
        config.templates_by_usage, usage_type, phone.region, country_code=phone.country_code
    )
    # Only routes that exist are kept (an unknown usage type raised above),
    # so the keys are the usage types' values and names: a bounded set.
    if routes is not None and type(usage_type) in (str, UsageType) and len(routes) < _MAX_ROUTES:
        routes[key] = chosen
    return chosen


class Query(NamedTuple):
    """The first page of a QuerySendDetails call."""

    call: Call
    region: Region
    params: dict[str, str]


def prepare_query(
    config: AliyunSmsConfig,
    secrets: Secrets,
    *,
    phone_number: str,
    biz_id: str | None,
    send_date: date | str | None,
    today: date,
) -> Query:
    """Validate a QuerySendDetails call and build its first page's parameters."""
    phone = parse_phone(phone_number, strict=config.strict_phone_region_number_check)
    if biz_id is not None and not isinstance(biz_id, str):
        raise AliyunSmsError(
            f"biz_id must be a string, not {type(biz_id).__name__}", code="InvalidBizId"
        )
    day = send_date_text(send_date if send_date is not None else today)
    call = Call(
        (("operation", "QuerySendDetails"), ("to", phone), ("send_date", day)),
        phones=(phone_number, phone.aliyun, phone.e164, phone.national_number),
        values=(),
        secrets=secrets,
        deadline_ms=config.deadline,
    )
    params = {
        "PhoneNumber": phone.aliyun,
        "SendDate": day,
        "PageSize": str(MAX_PAGE_SIZE),
        "CurrentPage": "1",
    }
    if biz_id is not None:
        params["BizId"] = biz_id
    return Query(call, phone.region, params)


class Chunk(NamedTuple):
    """One SendBatchSms call of a batch: at most 100 recipients of one region and template."""

    call: Call
    region: Region
    params: dict[str, str]
    phone_numbers: tuple[str, ...]
    template_code: str


def prepare_batch(
    config: AliyunSmsConfig,
    secrets: Secrets,
    messages: Iterable[BatchMessage],
    usage_type: UsageType | str,
) -> tuple[list[Chunk], list[RejectedRecipient]]:
    """Validate every recipient, group them by region and template, and chunk them.

    A recipient whose region the template cannot serve (a plain domestic
    code and an overseas number, or the reverse) is rejected with its
    ``TemplateError``, as an invalid number is: the other region may be served.

    Raises:
        TemplateNotFoundError: No template serves ``usage_type``: a config
            problem, the same for every recipient.
    """
    groups: dict[tuple[Region, str], list[tuple[PhoneNumber, str, str, BatchMessage]]] = {}
    rejected: list[RejectedRecipient] = []
    for index, message in enumerate(messages):
        try:
            if not isinstance(message, BatchMessage):
                raise AliyunSmsError(  # noqa: TRY301 - reported per recipient below
                    f"expected a BatchMessage, not {type(message).__name__}",
                    code="InvalidBatchMessage",
                )
            phone = parse_phone(message.to, strict=config.strict_phone_region_number_check)
            # A template that cannot serve this recipient's region rejects
            # this recipient only: the batch's other region may be served.
            chosen = route(
                config.templates_by_usage,
                usage_type,
                phone.region,
                country_code=phone.country_code,
            )
            param = build_template_param(message.params, chosen.template)
            sign_name = message.sign_name or config.sign_name
        except TemplateNotFoundError:
            raise
        except AliyunSmsError as error:
            rejected.append(RejectedRecipient.of(index, message, error))
            continue
        groups.setdefault((phone.region, chosen.template_code), []).append(
            (phone, sign_name, param, message)
        )
    chunks = []
    for (region, template_code), members in groups.items():
        for start in range(0, len(members), _BATCH_LIMIT):
            chunk = members[start : start + _BATCH_LIMIT]
            numbers = tuple([phone.aliyun for phone, _, _, _ in chunk])
            params = {
                "PhoneNumberJson": json.dumps(list(numbers)),
                "SignNameJson": json.dumps([sign for _, sign, _, _ in chunk], ensure_ascii=False),
                "TemplateCode": template_code,
                # Each entry is already a JSON object's text.
                "TemplateParamJson": "[" + ",".join(param for _, _, param, _ in chunk) + "]",
            }
            call = Call(
                (
                    ("operation", "SendBatchSms"),
                    ("template", template_code),
                    ("recipients", len(chunk)),
                ),
                phones=tuple(
                    [
                        form
                        for phone, _, _, message in chunk
                        for form in (message.to, phone.aliyun, phone.e164, phone.national_number)
                    ]
                ),
                values=tuple(
                    [str(v) for _, _, _, message in chunk for v in (message.params or {}).values()]
                ),
                secrets=secrets,
                deadline_ms=config.deadline,
            )
            chunks.append(Chunk(call, region, params, numbers, template_code))
    return chunks, rejected
