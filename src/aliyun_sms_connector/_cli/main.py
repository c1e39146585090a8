"""The ``aliyun-sms`` command: its parser and its dispatch.

The commands live in :mod:`.commands` (send, status, check-config, emulator),
:mod:`.batch` (send-batch), :mod:`.verify` (demo, verify) and :mod:`.mas` (the
``--product mas`` side of send, check-config and demo); what they share,
the exit statuses included, lives in :mod:`.common`.

Ctrl-C must end any command quietly, with status 130, even while the package
is still importing. So this module imports nothing but ``sys`` and
:mod:`.common` (which imports nothing but ``sys``) when it loads; everything
else, argparse, the commands and the library included, is imported inside
:func:`main`'s ``try``.
"""

from __future__ import annotations

import sys

from .common import (
    BROKEN_PIPE,
    INTERRUPTED,
    NOT_FOUND,
    REDIS_URL_VARIABLE,
    SECRET_KEY_VARIABLE,
    TOO_MANY_ATTEMPTS,
    WRONG_CODE,
    exit_code,
    one_line,
    print_error,
)

TYPE_CHECKING = False  # not typing's: this module imports nothing it can do without
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

__all__ = ["main"]

_DEMO_NUMBER = "13800138000"
_MAX_PORT = 65535


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Anywhere, imports included: no traceback, the conventional status.
        return INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    from aliyun_sms_connector._errors import AliyunSmsError  # noqa: PLC0415 - Ctrl-C, see above

    _tolerant_output()
    args = _parser().parse_args(argv)
    try:
        try:
            status = int(args.run(args))
        except AliyunSmsError as err:
            print_error(err, sys.stderr)
            status = exit_code(err)
        # Output to a pipe is buffered: a reader that is already gone shows
        # only at this flush, which Python would otherwise do at exit and
        # report as status 120.
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        return BROKEN_PIPE
    return status


def _tolerant_output() -> None:
    # A terminal that cannot show a character (the sign name's 【】 on a
    # Latin-1 console) gets an escape, not a UnicodeEncodeError traceback.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _drop_stdout() -> None:
    # The reader is gone: later writes, and the flush at exit, go nowhere.
    import os  # noqa: PLC0415

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (in-process callers)
        pass


# -- the parser ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    import argparse  # noqa: PLC0415

    # Here, not at the top: they load the library, which Ctrl-C may interrupt.
    from aliyun_sms_connector._config import UsageType  # noqa: PLC0415

    from . import batch, commands, mas, verify  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="aliyun-sms",
        description="Send SMS verification codes through Alibaba Cloud (Aliyun) SMS.",
        epilog="Start with 'aliyun-sms demo': it needs no account and no config.",
    )
    parser.add_argument("--version", action=_version_action(), help="show the version and exit")
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = subparsers.add_parser(
        "demo",
        help="send a code through the official SDK to a local emulator, then check it",
        description="Start the local Aliyun SMS emulator, start a verification: a code is "
        "generated, stored as an HMAC and sent through the connector and the official SDK. "
        "Show the SMS as the phone would, then check a wrong code and the right one. No "
        "account and no config are needed.",
    )
    demo.add_argument("--to", default=_DEMO_NUMBER, help="recipient (default: %(default)s)")
    demo.add_argument(
        "--product",
        choices=mas.PRODUCTS[:2],
        default="sms",
        help="sms: a code made and checked here, sent by SMS; mas: a code made and checked by "
        "the Message Authentication Service (default: %(default)s)",
    )
    demo.set_defaults(run=mas.by_product(verify.demo, mas.demo))

    send = subparsers.add_parser(
        "send",
        help="send a verification code with a real config",
        description="Send one verification code. The config comes from --config (Logto's "
        "connector JSON) or from ALIYUN_SMS_* environment variables. The code is printed "
        "only when this command made it up.",
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
    _product_argument(send, mas.PRODUCTS)
    send.set_defaults(run=mas.by_product(commands.send, mas.send))

    status = subparsers.add_parser(
        "status",
        help="show delivery receipts for a number (QuerySendDetails)",
        description="Show Aliyun's delivery receipts for a number on one day, optionally only "
        "for one biz id. The config comes from --config or ALIYUN_SMS_* variables.",
    )
    _config_arguments(status)
    status.add_argument("--to", required=True, help="the recipient's number")
    status.add_argument("--biz-id", help="only the message(s) with this biz id")
    status.add_argument(
        "--date", type=_day, help="the day sent, yyyyMMdd (default: today, China time)"
    )
    status.set_defaults(run=commands.status)

    send_batch = subparsers.add_parser(
        "send-batch",
        help="send notifications to the numbers in a CSV file (SendBatchSms)",
        description="Send one templated message per CSV row through SendBatchSms, in chunks "
        "of 100. The CSV (UTF-8) has a header row with a 'phone' column, an optional "
        "'sign_name' column, and one column per template variable. A bad row is reported "
        "with its line number and skipped; the others are sent. Exit status 16 means some "
        "messages went out and others did not.",
    )
    _config_arguments(send_batch)
    send_batch.add_argument(
        "--csv", type=_path, required=True, metavar="PATH", help="the recipients"
    )
    send_batch.add_argument(
        "--usage-type",
        default=UsageType.GENERIC.value,
        help="picks the template (default: %(default)s)",
    )
    send_batch.set_defaults(run=batch.send_batch)

    _verify_parsers(subparsers, verify)

    check = subparsers.add_parser(
        "check-config",
        help="validate a config and print its routing table",
        description="Validate the config (from --config or ALIYUN_SMS_* variables) and print "
        "which template serves each usage type, for mainland and overseas numbers.",
    )
    _config_arguments(check)
    _product_argument(check, mas.PRODUCTS)
    check.set_defaults(run=mas.by_product(commands.check_config, mas.check_config))

    emulator = subparsers.add_parser(
        "emulator",
        help="run the local Aliyun SMS emulator in the foreground",
        description="Serve a local Dysmsapi endpoint and print every message it accepts. "
        "Point a connector at it with endpoint=127.0.0.1:PORT and protocol=http. "
        "Exit status 17 means the port is taken or not allowed.",
    )
    emulator.add_argument(
        "--port", type=_port, default=18080, help="0 picks a free one (default: %(default)s)"
    )
    emulator.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    emulator.add_argument(
        "--latency", type=_seconds, default=0.0, help="seconds added to every answer"
    )
    emulator.add_argument(
        "--quiet", action="store_true", help="do not print accepted messages (for load tests)"
    )
    emulator.set_defaults(run=commands.emulator)
    return parser


def _verify_parsers(subparsers: Any, verify_module: Any) -> None:
    verify = subparsers.add_parser(
        "verify",
        help="start and check verification codes, with the codes kept in Redis",
        description="Start a verification (a code is generated, stored as an HMAC and sent "
        "by SMS) and check the code the user typed, in two runs of this command. The runs "
        f"share the pending code through Redis: --redis URL or {REDIS_URL_VARIABLE}. Codes "
        f"are stored under the key in {SECRET_KEY_VARIABLE} (32 bytes or more, the same for "
        "every run). The connector config comes from --config or ALIYUN_SMS_* variables.",
    )
    actions = verify.add_subparsers(title="actions", required=True, metavar="ACTION")
    start = actions.add_parser(
        "start",
        help="send a new code",
        description="Send a new code to a number; it replaces any pending one. The code is "
        "not printed: the recipient gets it by SMS.",
    )
    check = actions.add_parser(
        "check",
        help="check a code",
        description=f"Check a code. Exit status 0: approved; {WRONG_CODE}: wrong code; "
        f"{TOO_MANY_ATTEMPTS}: locked after too many wrong codes; {NOT_FOUND}: no pending "
        "code (never sent, expired, used or replaced).",
    )
    for parser in (start, check):
        _config_arguments(parser)
        parser.add_argument(
            "--redis",
            metavar="URL",
            help=f"redis://, rediss:// or redis+cluster:// URL (default: ${REDIS_URL_VARIABLE})",
        )
        parser.add_argument("--to", required=True, help="the recipient's number")
        parser.add_argument(
            "--usage-type", default="SignIn", help="what the code is for (default: %(default)s)"
        )
    start.add_argument("--client-ip", help="the requester's IP address, for the per-IP limit")
    start.set_defaults(run=verify_module.start)
    check.add_argument("--code", required=True, help="the code the user typed")
    check.set_defaults(run=verify_module.check)


def _version_action() -> type[argparse.Action]:
    import argparse  # noqa: PLC0415

    class Version(argparse.Action):
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

    return Version


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=_path,
        metavar="PATH",
        help="JSON config, as Logto stores it (default: $ALIYUN_SMS_CONFIG); without either, "
        "ALIYUN_SMS_* variables are read",
    )


def _product_argument(parser: argparse.ArgumentParser, products: Sequence[str]) -> None:
    parser.add_argument(
        "--product",
        choices=products,
        default="auto",
        help="sms: the SMS service (Dysmsapi); mas: the Message Authentication Service "
        "(Dypnsapi); auto: mas when every template code is a bare number, as Aliyun's system "
        "templates 100001-100005 are (default: %(default)s)",
    )


def _path(text: str) -> Path:
    from pathlib import Path  # noqa: PLC0415

    return Path(text)


def _argument_error(message: str) -> Exception:
    import argparse  # noqa: PLC0415

    return argparse.ArgumentTypeError(message)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= _MAX_PORT:
        raise _argument_error(f"{one_line(text)!r} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _seconds(text: str) -> float:
    import math  # noqa: PLC0415

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _argument_error(f"{one_line(text)!r} is not a number of seconds (0 or more)")
    return seconds


def _day(text: str) -> Any:
    import re  # noqa: PLC0415
    from datetime import datetime  # noqa: PLC0415

    day = None
    if re.fullmatch(r"[0-9]{8}", text):
        try:
            day = datetime.strptime(text, "%Y%m%d").date()  # noqa: DTZ007 - a calendar day
        except ValueError:
            day = None
    if day is None:
        raise _argument_error(f"{one_line(text)!r} is not a day; give yyyyMMdd, such as 20260131")
    return day
