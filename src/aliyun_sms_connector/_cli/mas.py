"""``--product mas``: the Message Authentication Service (短信认证, Dypnsapi) on the command line.

``check-config`` and ``send`` take ``--product sms|mas|auto`` (default auto);
``demo`` takes ``--product sms|mas`` (default sms). :func:`by_product` picks
the command of the config's product, and this module holds the MAS ones.

How ``auto`` tells the products apart, from the config's template codes only
(``templates[].templateCode``, in the ``--config`` file, the file ``ALIYUN_SMS_CONFIG``
names, or ``ALIYUN_SMS_TEMPLATES``):

- Aliyun's SMS template codes always read ``SMS_`` and digits (``SMS_154950909``);
  the Message Authentication Service's system templates are bare numbers
  (``100001`` to ``100005``).
- So a config is taken for a MAS one when it has at least one template and
  **every** template code is a string of ASCII digits alone.
- Anything else is an SMS config, as before this option existed: an ``SMS_``
  code, a regional ``{"china": ..., "overseas": ...}`` code, a config whose
  templates cannot be read (the SMS checks then say what is wrong with it).
  A config that mixes bare numbers with other codes is checked as an SMS one,
  with a note that ``--product mas`` checks it as the other.

Like every command module, it loads only the standard library and :mod:`.common`
at import time; the library is imported inside the commands.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, NamedTuple

from .common import config_path, load_config, one_line, read_file

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from aliyun_sms_connector._mas.config import AliyunMasConfig

__all__ = [
    "PRODUCTS",
    "SYSTEM_SIGN_NAMES",
    "SYSTEM_TEMPLATES",
    "Detected",
    "by_product",
    "check_config",
    "demo",
    "detect",
    "load_mas_config",
    "send",
]

PRODUCTS = ("sms", "mas", "auto")
# Aliyun's system templates for the service (Logto's table uses 100001-100003 and 100005).
SYSTEM_TEMPLATES = ("100001", "100002", "100003", "100004", "100005")
# The system ("gift") sign names Logto's connector-aliyun-sms-mas offers. Aliyun
# rotates them: a name missing here gets a warning, not an error.
SYSTEM_SIGN_NAMES = (
    "云渚科技验证平台",
    "云渚科技验证服务",
    "速通互联验证码",
    "速通互联验证平台",
    "速通互联验证服务",
)
_TEMPLATES_VARIABLE = "ALIYUN_SMS_TEMPLATES"
_NAME = "the Message Authentication Service (Dypnsapi)"
_MASKED_ID = 10  # key ids up to this long are shown as "…" alone

# The library is imported inside each command, not here: Ctrl-C must end a command
# quietly even while it imports (see .main), and each command loads only what it uses.

# -- which product --------------------------------------------------------------------


def by_product(
    sms: Callable[[argparse.Namespace], int], mas: Callable[[argparse.Namespace], int]
) -> Callable[[argparse.Namespace], int]:
    """A command that runs ``mas`` for a MAS config (``--product``, or detected), else ``sms``."""

    def run(args: argparse.Namespace) -> int:
        chosen = getattr(args, "product", "sms")
        if chosen == "auto":
            found = detect(_raw_templates(getattr(args, "config", None)))
        else:
            found = Detected(chosen, f"--product {chosen}")
        if found.note:
            print(f"note: {found.note}", file=sys.stderr)
        args.product_reason = found.reason
        return (mas if found.product == "mas" else sms)(args)

    return run


class Detected(NamedTuple):
    """Which product a config is for, why, and what to tell the user about it."""

    product: str
    reason: str
    note: str | None = None


def detect(templates: object) -> Detected:
    """The product of a config whose raw ``templates`` value is given; see the module's rule."""
    if not isinstance(templates, list) or not templates:
        return Detected("sms", "no templates read")
    codes = [t.get("templateCode") if isinstance(t, dict) else None for t in templates]
    numeric = sorted({c for c in codes if isinstance(c, str) and c.isascii() and c.isdigit()})
    if all(isinstance(c, str) and c in numeric for c in codes):
        return Detected("mas", "detected: every template code is a bare number")
    if numeric:
        note = (
            f"template code(s) {', '.join(numeric)} look like the Message Authentication "
            "Service's system templates, the others do not: checked as an SMS config "
            "(--product mas checks it as a MAS one)"
        )
        return Detected("sms", "detected: SMS template codes among others", note)
    return Detected("sms", "detected: SMS template codes")


def _raw_templates(path: Path | None) -> object:
    """The config's ``templates`` as written, or None when it cannot be read as JSON."""
    import os  # noqa: PLC0415

    path = config_path(path)
    if path is None:
        text: str | bytes | None = os.environ.get(_TEMPLATES_VARIABLE)
        if text is None:
            return None
        return _loads(text)
    raw, _ = read_file(path)
    if raw is None:
        return None
    config = _loads(raw)
    return config.get("templates") if isinstance(config, dict) else None


def _loads(text: str | bytes) -> Any:
    import json  # noqa: PLC0415

    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        return json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return None


def load_mas_config(path: Path | None) -> AliyunMasConfig:
    """The MAS config (Logto's ``aliyun-sms-mas`` JSON), read as an SMS one is.

    From ``path``, the file ``ALIYUN_SMS_CONFIG`` names, or the ALIYUN_SMS_* variables.
    """
    from aliyun_sms_connector._mas.config import AliyunMasConfig  # noqa: PLC0415

    return load_config(path, AliyunMasConfig)


# -- check-config ---------------------------------------------------------------------


def check_config(args: argparse.Namespace) -> int:
    """Validate a MAS config, print its routing, warn about what it cannot serve."""
    from aliyun_sms_connector._config import UsageType  # noqa: PLC0415
    from aliyun_sms_connector._errors import TemplateNotFoundError  # noqa: PLC0415
    from aliyun_sms_connector._mas.connector import AliyunMasConnector  # noqa: PLC0415
    from aliyun_sms_connector._templates import route  # noqa: PLC0415

    config = load_mas_config(args.config)
    with AliyunMasConnector(config) as connector:
        endpoint = connector.endpoint
    print(f"config is valid for {_NAME}")
    print(f"  product:         mas ({getattr(args, 'product_reason', '--product mas')})")
    _print_credentials(config)
    print(f"  signName:        {config.sign_name}")
    print(f"  endpoint:        {config.protocol}://{endpoint}")
    print("  numbers:         mainland China mobiles only (CountryCode 86)")
    print()
    print(f"  {'usage type':<26} {'template':<10} {'scheme':<22} via")
    for usage in UsageType:
        try:
            chosen = route(config.templates_by_usage, usage, "china")
        except TemplateNotFoundError:
            print(f"  {usage.value:<26} {'-':<10} {'-':<22} no template")
            continue
        scheme = getattr(chosen.template, "scheme_name", None) or "(Aliyun's default)"
        via = "exact" if chosen.template.usage_type is usage else "Generic"
        print(f"  {usage.value:<26} {chosen.template_code:<10} {scheme:<22} {via}")
    for warning in _warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _print_credentials(config: Any) -> None:
    key_id = config.access_key_id
    if key_id is None:
        print("  credentials:     the Alibaba Cloud default credential chain")
    else:
        shown_id = f"{key_id[:4]}…{key_id[-3:]}" if len(key_id) > _MASKED_ID else "…"
        print(f"  accessKeyId:     {shown_id}")
        print("  accessKeySecret: ********")
    if config.security_token is not None:
        print("  securityToken:   ********")


def _warnings(config: AliyunMasConfig) -> list[str]:
    warnings = [
        (
            "MAS serves mainland China mobiles only: every other number (international, Hong "
            "Kong, Macao, Taiwan, and mainland landlines) is refused before any request; send "
            "those through the SMS service (AliyunSmsConnector, --product sms)"
        )
    ]
    warnings += [
        f"{template.usage_type.value} uses template {one_line(template.template_code)}, "
        f"which is not one of Aliyun's system templates ({SYSTEM_TEMPLATES[0]} to "
        f"{SYSTEM_TEMPLATES[-1]}); with a system signature, Aliyun sends system templates only"
        for template in config.templates
        if template.template_code not in SYSTEM_TEMPLATES
    ]
    if config.sign_name not in SYSTEM_SIGN_NAMES:
        warnings.append(
            f"signName {one_line(config.sign_name)!r} is not one of the system signatures known "
            f"here ({', '.join(SYSTEM_SIGN_NAMES)}); since 2025-11-12 Aliyun allows only its "
            "system signatures in this product. Check the console's list: Aliyun rotates them"
        )
    return warnings


# -- send -----------------------------------------------------------------------------


def send(args: argparse.Namespace) -> int:
    """Send one code through SendSmsVerifyCode (the caller's code, as Logto sends it)."""
    import secrets  # noqa: PLC0415

    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415
    from aliyun_sms_connector._mas.connector import AliyunMasConnector  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415

    if args.out_id is not None:
        raise ConfigError("--out-id: the Message Authentication Service connector sends no OutId")
    config = load_mas_config(args.config)
    code = args.code if args.code is not None else f"{secrets.randbelow(10**6):06d}"
    with AliyunMasConnector(config) as connector:
        result = connector.send_message(args.to, args.usage_type, {"code": code})
    # As send for SMS: the code is shown only when this command made it up.
    shown = f" {code}" if args.code is None else ""
    print(f"sent {result.usage_type.value} code{shown} to {mask_phone(result.phone_number)}")
    print(f"  product:    mas ({getattr(args, 'product_reason', '--product mas')})")
    print(f"  template:   {result.template_code}")
    print(f"  biz id:     {result.biz_id}")
    print(f"  request id: {result.request_id}")
    return 0


# -- demo -----------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """The life of an Aliyun-made code on the embedded emulator: send, wrong, right, again."""
    import os  # noqa: PLC0415

    from aliyun_sms_connector._config import UsageType  # noqa: PLC0415
    from aliyun_sms_connector._mas.connector import AliyunMasConnector  # noqa: PLC0415
    from aliyun_sms_connector._phone import parse_mainland_mobile  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415
    from aliyun_sms_connector.emulator import Emulator  # noqa: PLC0415

    parse_mainland_mobile(args.to)  # a number the service cannot serve: before anything starts
    # The keys are explicit; a machine with no metadata service should not even be asked.
    os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    with Emulator() as emulator:
        print(f"Started a local Aliyun emulator at http://{emulator.endpoint}")
        print(f"  serving {_NAME}, with no account and no config:")
        print("  system signature and templates, mainland mobiles only, Interval and ValidTime")
        print(f"Starting a SignIn verification for {mask_phone(args.to)} with an Aliyun-made code:")
        print("  Aliyun generates it, sends it with its system signature, and checks it later;")
        print("  nothing of the code is stored here...")
        with AliyunMasConnector(emulator.mas_connector_config()) as connector:
            flow = _Flow(connector, args.to, UsageType.SIGN_IN)
            result, expires = flow.start()
            message = emulator.outbox[-1]
            print()
            print(f"  📱 {mask_phone(message.phone_number)} received:")
            print(f"     {message.text}")
            print()
            if result is not None:
                print(f"  biz id:     {result.biz_id}")
                print(f"  request id: {result.request_id}")
                print(f"  template:   {result.template_code} (a system template)")
            print(f"  expires:    {expires:%H:%M:%S} UTC")
            print(f"  checked by: {flow.checked_by}")
            print()
            code = emulator.last_code(args.to, product="mas")
            for label, typed in (
                ("a wrong code", _another_code(code)),
                ("the right code", code),
                ("the right code again", code),
            ):
                print(f"  checking {label + ',':<22} {typed}: {flow.check(typed)}")
        print()
        print("Next: 'aliyun-sms check-config --config examples/logto-mas.json' checks a sample")
        print("      MAS config; 'aliyun-sms send --config yours.json --to ...' sends for real.")
    return 0


def _another_code(code: str) -> str:
    """A code of the same shape that is surely not ``code``."""
    return "".join(str((int(c) + 1) % 10) if c.isdigit() else "0" for c in code)


class _Flow:
    """A verification with an Aliyun-made code, through ``VerificationService(codes="aliyun")``."""

    checked_by = "Aliyun, each guess counted first by VerificationService"

    def __init__(self, connector: Any, to: str, usage_type: Any) -> None:
        from aliyun_sms_connector.verify import MemoryStore, VerificationService  # noqa: PLC0415

        self._to = to
        self._usage_type = usage_type
        self._service = VerificationService(connector, MemoryStore(), codes="aliyun")

    def start(self) -> tuple[Any, Any]:
        """Send the code; the SendResult and when the code expires."""
        verification = self._service.start(self._to, self._usage_type)
        return verification.send_result, verification.expires_at

    def check(self, typed: str) -> str:
        """Check a code; the outcome in words."""
        return _status_text(self._service.check(self._to, self._usage_type, typed))


def _status_text(result: Any) -> str:
    texts = {
        "approved": "APPROVED (the code is now used up)",
        "wrong_code": f"WRONG_CODE ({getattr(result, 'attempts_left', '?')} attempt(s) left)",
        "too_many_attempts": "TOO_MANY_ATTEMPTS (locked: start a new verification)",
        "not_found": "NOT_FOUND (never sent, expired, already used, or replaced)",
    }
    status = result.status
    return texts.get(getattr(status, "value", str(status)), str(status).upper())
