"""The ``aliyun-sms`` command: demo, send, check-config and emulator."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import _errors as errors
from ._config import AliyunSmsConfig, UsageType
from ._redact import mask_phone
from ._templates import route

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .emulator import Message

__all__ = ["EXIT_CODES", "main"]

# One exit status per error class, most specific first; documented in the README.
EXIT_CODES: tuple[tuple[type[errors.AliyunSmsError], int], ...] = (
    (errors.ConfigError, 3),
    (errors.InvalidPhoneNumberError, 4),
    (errors.TemplateNotFoundError, 5),
    (errors.TemplateParamError, 6),
    (errors.TemplateError, 7),
    (errors.SignNameError, 8),
    (errors.AuthenticationError, 9),
    (errors.PermissionDeniedError, 10),
    (errors.AccountError, 11),
    (errors.RateLimitExceededError, 12),
    (errors.ServiceUnavailableError, 13),
    (errors.NetworkError, 14),
    (errors.InvalidResponseError, 15),
    (errors.AliyunSmsError, 1),
)

_DEMO_NUMBER = "13800138000"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except errors.AliyunSmsError as err:
        _print_error(err, sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        return 130


def exit_code(error: errors.AliyunSmsError) -> int:
    """The exit status for ``error``: one per class, see EXIT_CODES."""
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return 1  # pragma: no cover - AliyunSmsError is the last row


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aliyun-sms",
        description="Send SMS verification codes through Alibaba Cloud (Aliyun) SMS.",
        epilog="Start with 'aliyun-sms demo': it needs no account and no config.",
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="send one code through the official SDK to a local emulator (no account needed)",
        description="Start the local Aliyun SMS emulator, send one verification code to it "
        "through the connector and the official SDK, and show the SMS as the phone would.",
    )
    demo.add_argument("--to", default=_DEMO_NUMBER, help="recipient (default: %(default)s)")
    demo.add_argument("--code", help="the verification code (default: 6 random digits)")
    demo.set_defaults(run=_demo)

    send = commands.add_parser(
        "send",
        help="send a verification code with a real config",
        description="Send one verification code. The config comes from --config (Logto's "
        "connector JSON) or from ALIYUN_SMS_* environment variables.",
    )
    _config_arguments(send)
    send.add_argument("--to", required=True, help="recipient, e.g. +8613800138000")
    send.add_argument(
        "--usage-type",
        default=UsageType.GENERIC.value,
        help="Register, SignIn, ForgotPassword, Generic, ... (default: %(default)s)",
    )
    send.add_argument("--code", help="the verification code (default: 6 random digits)")
    send.add_argument("--out-id", help="your own id for the message")
    send.set_defaults(run=_send)

    status = commands.add_parser(
        "status",
        help="show delivery receipts for a number (QuerySendDetails)",
        description="Show Aliyun's delivery receipts for a number on one day, optionally only "
        "for one biz id. The config comes from --config or ALIYUN_SMS_* variables.",
    )
    _config_arguments(status)
    status.add_argument("--to", required=True, help="the recipient's number")
    status.add_argument("--biz-id", help="only the message(s) with this biz id")
    status.add_argument("--date", help="the day sent, yyyyMMdd (default: today, China time)")
    status.set_defaults(run=_status)

    batch = commands.add_parser(
        "send-batch",
        help="send notifications to the numbers in a CSV file (SendBatchSms)",
        description="Send one templated message per CSV row through SendBatchSms, in chunks "
        "of 100. The CSV has a 'phone' column, an optional 'sign_name' column, and one column "
        "per template variable. Invalid rows are reported and skipped.",
    )
    _config_arguments(batch)
    batch.add_argument("--csv", type=Path, required=True, metavar="PATH", help="the recipients")
    batch.add_argument(
        "--usage-type",
        default=UsageType.GENERIC.value,
        help="picks the template (default: %(default)s)",
    )
    batch.set_defaults(run=_send_batch)

    check = commands.add_parser(
        "check-config",
        help="validate a config and print its routing table",
        description="Validate the config (from --config or ALIYUN_SMS_* variables) and print "
        "which template serves each usage type, for mainland and overseas numbers.",
    )
    _config_arguments(check)
    check.set_defaults(run=_check_config)

    emulator = commands.add_parser(
        "emulator",
        help="run the local Aliyun SMS emulator in the foreground",
        description="Serve a local Dysmsapi endpoint and print every message it accepts. "
        "Point a connector at it with endpoint=127.0.0.1:PORT and protocol=http.",
    )
    emulator.add_argument("--port", type=int, default=18080, help="(default: %(default)s)")
    emulator.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    emulator.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every answer"
    )
    emulator.add_argument(
        "--quiet", action="store_true", help="do not print accepted messages (for load tests)"
    )
    emulator.set_defaults(run=_emulator)
    return parser


class _Version(argparse.Action):
    """--version, looked up only when asked: the metadata scan is not free."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            found = version("aliyun-sms-connector")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            found = "unknown"
        print(f"{parser.prog} {found}")
        parser.exit()


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="JSON config, as Logto stores it; without it, ALIYUN_SMS_* variables are read",
    )


def _load_config(path: Path | None) -> AliyunSmsConfig:
    if path is None:
        return AliyunSmsConfig.from_env()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise errors.ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    return AliyunSmsConfig.from_json(text)


def _code(given: str | None) -> str:
    return given if given is not None else f"{secrets.randbelow(10**6):06d}"


def _send(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415 - the SDK loads only when sending

    config = _load_config(args.config)
    code = _code(args.code)
    with AliyunSmsConnector(config) as connector:
        result = connector.send_message(
            args.to, args.usage_type, {"code": code}, out_id=args.out_id
        )
    print(f"sent {result.usage_type.value} code {code} to {mask_phone(result.phone_number)}")
    print(f"  template:   {result.template_code}")
    print(f"  biz id:     {result.biz_id}")
    print(f"  request id: {result.request_id}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415

    with AliyunSmsConnector(_load_config(args.config)) as connector:
        reports = connector.query_delivery(args.to, biz_id=args.biz_id, send_date=args.date)
    if not reports:
        print(f"no messages to {mask_phone(args.to)} on that day")
        return 0
    print(f"{len(reports)} message(s) to {mask_phone(args.to)}:")
    for report in reports:
        sent = f"{report.send_time:%Y-%m-%d %H:%M:%S}" if report.send_time else "-"
        received = f"{report.receive_time:%H:%M:%S}" if report.receive_time else "-"
        print(
            f"  {report.status.value:<9} {report.error_code or '-':<22} sent {sent}  "
            f"received {received}  template {report.template_code or '-'}"
            + (f"  out_id {report.out_id}" if report.out_id else "")
        )
    return 0


def _send_batch(args: argparse.Namespace) -> int:
    import csv  # noqa: PLC0415

    from ._connector import AliyunSmsConnector  # noqa: PLC0415
    from ._delivery import BatchMessage  # noqa: PLC0415

    try:
        with args.csv.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise errors.ConfigError(f"cannot read {args.csv}: {err}") from None
    if rows and "phone" not in rows[0]:
        raise errors.ConfigError(f"{args.csv} has no 'phone' column")
    messages = [
        BatchMessage(
            to=row.get("phone") or "",
            params={k: v for k, v in row.items() if k not in ("phone", "sign_name") and k},
            sign_name=row.get("sign_name") or None,
        )
        for row in rows
    ]
    with AliyunSmsConnector(_load_config(args.config)) as connector:
        result = connector.send_batch(messages, args.usage_type)
    for chunk in result.chunks:
        if chunk.ok:
            print(
                f"sent {len(chunk.phone_numbers)} with {chunk.template_code}: "
                f"biz id {chunk.biz_id}, request id {chunk.request_id}"
            )
        else:
            print(f"failed {len(chunk.phone_numbers)} with {chunk.template_code}:")
            _print_error(chunk.error, sys.stdout)  # type: ignore[arg-type]
    for rejected in result.rejected:
        # Row numbers count the header as line 1, as a spreadsheet shows them.
        print(
            f"skipped row {rejected.index + 2} ({rejected.to}): "
            f"{type(rejected.error).__name__}: {rejected.error.message}"
        )
    failures = [c.error for c in result.chunks if c.error] + [r.error for r in result.rejected]
    return exit_code(failures[0]) if failures else 0


def _check_config(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415 - resolves the endpoints

    config = _load_config(args.config)
    with AliyunSmsConnector(config) as connector:
        endpoints = connector.endpoints
    print("config is valid")
    key_id = config.access_key_id
    if key_id is None:
        print("  credentials:     the Alibaba Cloud default credential chain")
    else:
        shown_id = f"{key_id[:4]}…{key_id[-3:]}" if len(key_id) > 10 else "…"  # noqa: PLR2004
        print(f"  accessKeyId:     {shown_id}")
        print("  accessKeySecret: ********")
    if config.security_token is not None:
        print("  securityToken:   ********")
    print(f"  signName:        {config.sign_name}")
    if endpoints["china"] == endpoints["overseas"]:
        print(f"  endpoint:        {config.protocol}://{endpoints['china']}")
    else:
        print(f"  endpoint:        {config.protocol}://{endpoints['china']} (mainland)")
        print(f"                   {config.protocol}://{endpoints['overseas']} (overseas)")
    strict = "on" if config.strict_phone_region_number_check else "off"
    print(f"  strict phone region check: {strict}")
    print()
    print(f"  {'usage type':<26} {'china':<22} {'overseas':<22} via")
    for usage in UsageType:
        try:
            china = route(config.templates_by_usage, usage, "china")
            overseas = route(config.templates_by_usage, usage, "overseas")
        except errors.TemplateNotFoundError:
            print(f"  {usage.value:<26} {'-':<22} {'-':<22} no template")
            continue
        via = "exact" if china.template.usage_type is usage else "Generic"
        print(f"  {usage.value:<26} {china.template_code:<22} {overseas.template_code:<22} {via}")
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import Emulator  # noqa: PLC0415

    out = sys.stdout
    with Emulator(port=args.port, tls=args.tls, latency=args.latency) as emulator:
        if not args.quiet:
            emulator.on_message = lambda message: _print_message(message, out)
        print(f"Aliyun SMS emulator on {emulator.protocol}://{emulator.endpoint}", file=out)
        key_id, secret = next(iter(emulator.access_keys.items()))
        print(f"  accessKeyId={key_id} accessKeySecret={secret}", file=out)
        print(f"  signName={emulator.sign_names[0]}", file=out)
        for template_code, template in emulator.templates.items():
            print(f"  {template_code} ({template.type.name}): {template.content}", file=out)
        if emulator.ca_file:
            print(f"  CA file: {emulator.ca_file}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        _wait_forever()
    return 0  # pragma: no cover - the wait ends only with Ctrl-C


def _wait_forever() -> None:
    threading.Event().wait()


def _demo(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415
    from .emulator import Emulator  # noqa: PLC0415

    code = _code(args.code)
    # The SDK's credential chain is not used (the keys are explicit), but a
    # machine with no metadata service should not even be asked.
    os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    with Emulator() as emulator:
        print(f"Started a local Aliyun SMS emulator at http://{emulator.endpoint}")
        print("  (no account, no config: it checks signatures, templates and limits like Aliyun)")
        print(f"Sending a SignIn code to {mask_phone(args.to)} through the official Aliyun SDK...")
        with AliyunSmsConnector(emulator.connector_config()) as connector:
            result = connector.send_message(args.to, UsageType.SIGN_IN, {"code": code})
        message = emulator.outbox[-1]
        print()
        print(f"  📱 {mask_phone(message.phone_number)} received:")
        print(f"     {message.text}")
        print()
        print(f"  biz id:     {result.biz_id}")
        print(f"  request id: {result.request_id}")
        print(f"  template:   {result.template_code} (SignIn falls back to Generic)")
        print()
        print("Next: 'aliyun-sms emulator' keeps one running for your app;")
        print("      'aliyun-sms send --config logto.json --to ...' sends for real.")
    return 0


def _print_message(message: Message, out: TextIO) -> None:
    print(
        f"[{message.sent_at:%H:%M:%S}] {message.phone_number} {message.template_code} "
        f"biz_id={message.biz_id}\n    {message.text}",
        file=out,
        flush=True,
    )


def _print_error(error: errors.AliyunSmsError, out: TextIO) -> None:
    print(f"error: {type(error).__name__}: {error.message}", file=out)
    if isinstance(error, errors.ConfigError):
        return
    print(f"  code:       {error.code}", file=out)
    if error.request_id:
        print(f"  request id: {error.request_id}", file=out)
    if error.http_status is not None:
        print(f"  HTTP:       {error.http_status}", file=out)
    if error.recommend:
        print(f"  recommend:  {error.recommend}", file=out)
    if error.maybe_sent:
        print("  note:       the SMS may have been sent", file=out)
