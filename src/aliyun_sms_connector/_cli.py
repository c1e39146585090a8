"""The ``aliyun-sms`` command: demo, send, status, send-batch, verify, check-config, emulator.

Ctrl-C must end any command quietly, with status 130, even while the package
is still importing. So this module imports nothing but ``sys`` when it loads;
everything else, argparse and the library included, is imported inside
:func:`main`'s ``try``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # not typing's: this module imports nothing it can do without
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, TextIO

    from ._config import AliyunSmsConfig
    from ._delivery import BatchMessage, BatchResult
    from ._errors import AliyunSmsError
    from .emulator import Message

__all__ = [
    "EXIT_CODES",
    "INTERRUPTED",
    "NOT_FOUND",
    "PARTIAL",
    "PORT_UNAVAILABLE",
    "TOO_MANY_ATTEMPTS",
    "WRONG_CODE",
    "main",
]
REDIS_URL_VARIABLE = "ALIYUN_SMS_REDIS_URL"
SECRET_KEY_VARIABLE = "ALIYUN_SMS_VERIFY_SECRET_KEY"  # noqa: S105 - a variable's name

# One exit status per error class, by class name so that this table costs no
# import; the most specific class of an error's MRO wins. Documented in the README.
EXIT_CODES: tuple[tuple[str, int], ...] = (
    ("ConfigError", 3),
    ("InvalidPhoneNumberError", 4),
    ("TemplateNotFoundError", 5),
    ("TemplateParamError", 6),
    ("TemplateError", 7),
    ("SignNameError", 8),
    ("AuthenticationError", 9),
    ("PermissionDeniedError", 10),
    ("AccountError", 11),
    ("RateLimitExceededError", 12),
    ("ServiceUnavailableError", 13),
    ("NetworkError", 14),
    ("InvalidResponseError", 15),
    ("AliyunSmsError", 1),
)
USAGE = 2  # argparse's own status for a wrong command line
PARTIAL = 16  # send-batch: some messages went out and others did not
PORT_UNAVAILABLE = 17  # emulator: the port is taken or not allowed
# verify check: the outcomes that are not an approval (a check is no error).
WRONG_CODE = 18
TOO_MANY_ATTEMPTS = 19
NOT_FOUND = 20
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
BROKEN_PIPE = 141  # stdout closed early, as by `| head` (128 + SIGPIPE)

_DEMO_NUMBER = "13800138000"
_MAX_PORT = 65535


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Anywhere, imports included: no traceback, the conventional status.
        return INTERRUPTED


def exit_code(error: BaseException) -> int:
    """The exit status for ``error``: one per class, see EXIT_CODES."""
    statuses = dict(EXIT_CODES)
    for cls in type(error).__mro__:
        if cls.__name__ in statuses:
            return statuses[cls.__name__]
    return 1


def _main(argv: Sequence[str] | None) -> int:
    from ._errors import AliyunSmsError  # noqa: PLC0415

    _tolerant_output()
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except AliyunSmsError as err:
        _print_error(err, sys.stderr)
        return exit_code(err)
    except BrokenPipeError:
        _drop_stdout()
        return BROKEN_PIPE


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

    from ._config import UsageType  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="aliyun-sms",
        description="Send SMS verification codes through Alibaba Cloud (Aliyun) SMS.",
        epilog="Start with 'aliyun-sms demo': it needs no account and no config.",
    )
    parser.add_argument("--version", action=_version_action(), help="show the version and exit")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="send a code through the official SDK to a local emulator, then check it",
        description="Start the local Aliyun SMS emulator, start a verification: a code is "
        "generated, stored as an HMAC and sent through the connector and the official SDK. "
        "Show the SMS as the phone would, then check a wrong code and the right one. No "
        "account and no config are needed.",
    )
    demo.add_argument("--to", default=_DEMO_NUMBER, help="recipient (default: %(default)s)")
    demo.set_defaults(run=_demo)

    send = commands.add_parser(
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
    status.add_argument(
        "--date", type=_day, help="the day sent, yyyyMMdd (default: today, China time)"
    )
    status.set_defaults(run=_status)

    batch = commands.add_parser(
        "send-batch",
        help="send notifications to the numbers in a CSV file (SendBatchSms)",
        description="Send one templated message per CSV row through SendBatchSms, in chunks "
        "of 100. The CSV (UTF-8) has a header row with a 'phone' column, an optional "
        "'sign_name' column, and one column per template variable. A bad row is reported "
        "with its line number and skipped; the others are sent. Exit status 16 means some "
        "messages went out and others did not.",
    )
    _config_arguments(batch)
    batch.add_argument("--csv", type=_path, required=True, metavar="PATH", help="the recipients")
    batch.add_argument(
        "--usage-type",
        default=UsageType.GENERIC.value,
        help="picks the template (default: %(default)s)",
    )
    batch.set_defaults(run=_send_batch)

    _verify_parsers(commands)

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
    emulator.set_defaults(run=_emulator)
    return parser


def _verify_parsers(commands: Any) -> None:
    verify = commands.add_parser(
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
    start.set_defaults(run=_verify_start)
    check.add_argument("--code", required=True, help="the code the user typed")
    check.set_defaults(run=_verify_check)


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
        help="JSON config, as Logto stores it; without it, ALIYUN_SMS_* variables are read",
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
        raise _argument_error(f"{_one_line(text)!r} is not a port (0 to 65535; 0 picks a free one)")
    return port


def _seconds(text: str) -> float:
    import math  # noqa: PLC0415

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _argument_error(f"{_one_line(text)!r} is not a number of seconds (0 or more)")
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
        raise _argument_error(f"{_one_line(text)!r} is not a day; give yyyyMMdd, such as 20260131")
    return day


# -- loading the config ---------------------------------------------------------


def _load_config(path: Path | None) -> AliyunSmsConfig:
    from ._config import AliyunSmsConfig  # noqa: PLC0415
    from ._errors import ConfigError  # noqa: PLC0415

    if path is None:
        return AliyunSmsConfig.from_env()
    raw, problem = _read(path)
    if raw is None:
        raise ConfigError(problem)
    # Bytes: from_json checks they are UTF-8 and drops a byte-order mark.
    return AliyunSmsConfig.from_json(raw)


def _read(path: Path) -> tuple[bytes | None, str]:
    try:
        return path.read_bytes(), ""
    except OSError as err:
        return None, f"cannot read {_one_line(str(path))}: {err.strerror or type(err).__name__}"


# -- send -------------------------------------------------------------------------


def _code(given: str | None) -> str:
    import secrets  # noqa: PLC0415

    return given if given is not None else f"{secrets.randbelow(10**6):06d}"


def _send(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415
    from ._redact import mask_phone  # noqa: PLC0415

    config = _load_config(args.config)
    code = _code(args.code)
    with AliyunSmsConnector(config) as connector:
        result = connector.send_message(
            args.to, args.usage_type, {"code": code}, out_id=args.out_id
        )
    # The code is shown only when this command made it up: the operator then
    # needs it, and one given with --code is already known (and a secret).
    shown = f" {code}" if args.code is None else ""
    print(f"sent {result.usage_type.value} code{shown} to {mask_phone(result.phone_number)}")
    print(f"  template:   {result.template_code}")
    print(f"  biz id:     {result.biz_id}")
    print(f"  request id: {result.request_id}")
    return 0


# -- status -----------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415
    from ._redact import mask_phone  # noqa: PLC0415

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


# -- send-batch -------------------------------------------------------------------


class _Row:
    """A CSV row to send: the line it starts on, and its message."""

    __slots__ = ("line", "message")

    def __init__(self, line: int, message: BatchMessage) -> None:
        self.line = line
        self.message = message


class _BadRow:
    """A CSV row not sent: its line, its masked number, and why."""

    __slots__ = ("error", "line", "to")

    def __init__(self, line: int, to: str, error: AliyunSmsError) -> None:
        self.line = line
        self.to = to
        self.error = error


def _send_batch(args: argparse.Namespace) -> int:
    from ._connector import AliyunSmsConnector  # noqa: PLC0415

    config = _load_config(args.config)
    rows, bad = _batch_rows(args.csv)
    result = None
    if rows:
        with AliyunSmsConnector(config) as connector:
            result = connector.send_batch([row.message for row in rows], args.usage_type)
        bad += [
            _BadRow(rows[r.index].line, r.to, r.error)
            for r in result.rejected
            if r.index < len(rows)
        ]
    return _report_batch(result, sorted(bad, key=lambda row: row.line))


def _report_batch(result: BatchResult | None, bad: list[_BadRow]) -> int:
    sent = 0
    failures: list[BaseException] = [row.error for row in bad]
    for chunk in result.chunks if result else ():
        if chunk.error is None:
            sent += len(chunk.phone_numbers)
            print(
                f"sent {len(chunk.phone_numbers)} with {chunk.template_code}: "
                f"biz id {chunk.biz_id}, request id {chunk.request_id}"
            )
        else:
            failures.append(chunk.error)
            print(f"failed {len(chunk.phone_numbers)} with {chunk.template_code}:")
            _print_error(chunk.error, sys.stdout)
    for row in bad:
        who = f" ({row.to})" if row.to else ""
        print(
            f"skipped line {row.line}{who}: {type(row.error).__name__}: "
            f"{_one_line(row.error.message)}"
        )
    if not failures:
        return 0
    failed_calls = len(failures) - len(bad)
    print(f"{sent} sent, {len(bad)} line(s) skipped, {failed_calls} call(s) failed")
    return PARTIAL if sent else exit_code(failures[0])


def _batch_rows(path: Path) -> tuple[list[_Row], list[_BadRow]]:
    """Read the CSV: the rows to send, and the bad ones with their line numbers.

    Raises:
        ConfigError: The file cannot be read, is not UTF-8 CSV, has no usable
            header, or has no data row.
    """
    from ._errors import ConfigError  # noqa: PLC0415

    name = _one_line(str(path))
    records = _csv_records(path, name)
    if not records:
        raise ConfigError(f"{name} is empty; it needs a header row and one row per recipient")
    header = [column.strip() for column in records[0][1]]
    _check_header(header, name)
    if len(records) == 1:
        raise ConfigError(f"{name} has a header but no rows to send")
    rows: list[_Row] = []
    bad: list[_BadRow] = []
    for line, record in records[1:]:
        outcome = _batch_row(line, header, record)
        (rows if isinstance(outcome, _Row) else bad).append(outcome)  # type: ignore[arg-type]
    return rows, bad


def _csv_records(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of the CSV file, each with the line it starts on."""
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    from ._errors import ConfigError  # noqa: PLC0415

    raw, problem = _read(path)
    text = None
    if raw is not None:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            problem = f"{name} is not UTF-8 text; save it as UTF-8 CSV"
    records: list[tuple[int, list[str]]] = []
    if text is not None:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            start = 1
            for record in reader:
                if record:  # a blank line is no row
                    records.append((start, record))
                start = reader.line_num + 1
        except csv.Error as err:
            problem = f"{name}, line {reader.line_num}: not valid CSV ({err})"
    if problem:
        # Raised outside the except blocks: the decoding error holds the file's bytes.
        raise ConfigError(problem)
    return records


def _check_header(header: list[str], name: str) -> None:
    from ._errors import ConfigError  # noqa: PLC0415

    problem = None
    if "phone" not in header:
        problem = f"{name} has no 'phone' column in its header row"
    elif "" in header:
        problem = f"{name}: column {header.index('') + 1} of the header has no name"
    else:
        repeated = sorted({column for column in header if header.count(column) > 1})
        if repeated:
            problem = f"{name}: the header names {', '.join(map(repr, repeated))} more than once"
    if problem:
        raise ConfigError(_one_line(problem))


def _batch_row(line: int, header: list[str], record: list[str]) -> _Row | _BadRow:
    from ._delivery import BatchMessage  # noqa: PLC0415
    from ._errors import InvalidPhoneNumberError, TemplateParamError  # noqa: PLC0415
    from ._redact import mask_phone  # noqa: PLC0415

    values = dict(zip(header, record, strict=False))
    to = values.get("phone", "").strip()
    shown = mask_phone(to) if to else ""
    if len(record) != len(header):
        missing = ", ".join(repr(column) for column in header[len(record) :])
        why = f"{len(record)} values, but the header has {len(header)} columns" + (
            f" (no {missing})" if missing else ""
        )
        return _BadRow(line, shown, TemplateParamError(why))
    if not to:
        return _BadRow(line, shown, InvalidPhoneNumberError("no phone number"))
    params = {k: v for k, v in values.items() if k not in ("phone", "sign_name")}
    empty = [k for k, v in params.items() if not v.strip()]
    if empty:
        return _BadRow(
            line, shown, TemplateParamError(f"no value for {', '.join(map(repr, empty))}")
        )
    sign_name = values.get("sign_name", "").strip() or None
    return _Row(line, BatchMessage(to=to, params=params, sign_name=sign_name))


# -- check-config -----------------------------------------------------------------


def _check_config(args: argparse.Namespace) -> int:
    from ._config import UsageType  # noqa: PLC0415
    from ._connector import AliyunSmsConnector  # noqa: PLC0415 - resolves the endpoints
    from ._errors import TemplateNotFoundError  # noqa: PLC0415
    from ._templates import route  # noqa: PLC0415

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
        except TemplateNotFoundError:
            print(f"  {usage.value:<26} {'-':<22} {'-':<22} no template")
            continue
        via = "exact" if china.template.usage_type is usage else "Generic"
        print(f"  {usage.value:<26} {china.template_code:<22} {overseas.template_code:<22} {via}")
    for template in config.templates:
        if isinstance(template.template_code, str):
            # Aliyun keeps domestic and international templates apart: one code
            # for both regions is refused for one of them.
            print(
                f"warning: {template.usage_type.value} sends overseas numbers with the same "
                f"template as mainland ones ({template.template_code}), but Aliyun does not let "
                'domestic and international templates be mixed; give {"china": ..., '
                '"overseas": ...} unless you never send overseas',
                file=sys.stderr,
            )
    return 0


# -- emulator -----------------------------------------------------------------------


def _emulator(args: argparse.Namespace) -> int:
    from ._errors import AliyunSmsError  # noqa: PLC0415
    from .emulator import Emulator  # noqa: PLC0415

    out = sys.stdout
    emulator = Emulator(port=args.port, tls=args.tls, latency=args.latency)
    problem = None
    try:
        emulator.start()
    except OSError as err:
        problem = err.strerror or type(err).__name__
    if problem is not None:
        error = AliyunSmsError(
            f"cannot listen on 127.0.0.1:{args.port}: {problem}", code="PortUnavailable"
        )
        _print_error(error, sys.stderr)
        return PORT_UNAVAILABLE
    try:
        if not args.quiet:
            emulator.on_message = lambda message: _print_message(message, out)
        _print_banner(emulator, out)
    except BaseException:
        emulator.stop()  # Ctrl-C or a closed stdout: still remove the TLS files
        raise
    # Until Ctrl-C (KeyboardInterrupt, after the cleanup) or SIGTERM (a normal
    # return); either way the emulator stops and removes its TLS files.
    emulator.serve_forever()
    return 0


def _print_banner(emulator: Any, out: TextIO) -> None:
    print(f"Aliyun SMS emulator on {emulator.protocol}://{emulator.endpoint}", file=out)
    key_id, secret = next(iter(emulator.access_keys.items()))
    print(f"  accessKeyId={key_id} accessKeySecret={secret}", file=out)
    print(f"  signName={emulator.sign_names[0]}", file=out)
    for template_code, template in emulator.templates.items():
        print(f"  {template_code} ({template.type.name}): {template.content}", file=out)
    if emulator.ca_file:
        print(f"  CA file: {emulator.ca_file}", file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)


# -- demo -----------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    import os  # noqa: PLC0415

    from ._config import UsageType  # noqa: PLC0415
    from ._connector import AliyunSmsConnector  # noqa: PLC0415
    from ._redact import mask_phone  # noqa: PLC0415
    from .emulator import Emulator  # noqa: PLC0415
    from .verify import MemoryStore, VerificationService  # noqa: PLC0415

    # The SDK's credential chain is not used (the keys are explicit), but a
    # machine with no metadata service should not even be asked.
    os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    with Emulator() as emulator:
        print(f"Started a local Aliyun SMS emulator at http://{emulator.endpoint}")
        print("  (no account, no config: it checks signatures, templates and limits like Aliyun)")
        print(f"Starting a SignIn verification for {mask_phone(args.to)}: a code is generated,")
        print("  stored as an HMAC (in memory here; in Redis across instances), and sent")
        print("  through the official Aliyun SDK...")
        with AliyunSmsConnector(emulator.connector_config()) as connector:
            service = VerificationService(connector, MemoryStore())
            verification = service.start(args.to, UsageType.SIGN_IN)
            message = emulator.outbox[-1]
            print()
            print(f"  📱 {mask_phone(message.phone_number)} received:")
            print(f"     {message.text}")
            print()
            result = verification.send_result
            if result is not None:
                print(f"  biz id:     {result.biz_id}")
                print(f"  request id: {result.request_id}")
                print(f"  template:   {result.template_code} (SignIn falls back to Generic)")
            print(f"  expires:    {verification.expires_at:%H:%M:%S} UTC")
            print()
            code = str(message.params["code"])
            for label, typed in (
                ("a wrong code", _another_code(code)),
                ("the right code", code),
                ("the right code again", code),
            ):
                checked = service.check(args.to, UsageType.SIGN_IN, typed)
                print(f"  checking {label + ',':<22} {typed}: {_check_text(checked)}")
        print()
        print("Next: 'aliyun-sms emulator' keeps one running for your app;")
        print("      'aliyun-sms send --config logto.json --to ...' sends for real;")
        print("      'aliyun-sms verify start|check --redis URL ...' verifies across runs.")
    return 0


def _another_code(code: str) -> str:
    """A code of the same shape that is surely not ``code``."""
    return "".join(str((int(c) + 1) % 10) if c.isdigit() else "0" for c in code)


def _check_text(result: Any) -> str:
    from .verify import CheckStatus  # noqa: PLC0415

    texts = {
        CheckStatus.APPROVED: "APPROVED (the code is now used up)",
        CheckStatus.WRONG_CODE: f"WRONG_CODE ({result.attempts_left} attempt(s) left)",
        CheckStatus.TOO_MANY_ATTEMPTS: "TOO_MANY_ATTEMPTS (locked: start a new verification)",
        CheckStatus.NOT_FOUND: "NOT_FOUND (never sent, expired, already used, or replaced)",
    }
    return texts[result.status]


# -- verify -------------------------------------------------------------------------


def _verify_start(args: argparse.Namespace) -> int:
    from ._redact import mask_phone  # noqa: PLC0415

    with _verification_service(args) as service:
        verification = service.start(args.to, args.usage_type, client_ip=args.client_ip)
    print(
        f"sent a {verification.usage_type.value} code to {mask_phone(args.to)} "
        f"(verification {verification.id})"
    )
    print(f"  expires:      {verification.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    print(f"  resend after: {verification.resend_after:%Y-%m-%d %H:%M:%S} UTC")
    result = verification.send_result
    if result is not None:
        print(f"  template:     {result.template_code}")
        print(f"  biz id:       {result.biz_id}")
        print(f"  request id:   {result.request_id}")
    return 0


def _verify_check(args: argparse.Namespace) -> int:
    from .verify import CheckStatus  # noqa: PLC0415

    with _verification_service(args) as service:
        result = service.check(args.to, args.usage_type, args.code)
    print(_check_text(result))
    return {
        CheckStatus.APPROVED: 0,
        CheckStatus.WRONG_CODE: WRONG_CODE,
        CheckStatus.TOO_MANY_ATTEMPTS: TOO_MANY_ATTEMPTS,
        CheckStatus.NOT_FOUND: NOT_FOUND,
    }[result.status]


class _verification_service:  # noqa: N801 - used like a function, as a context manager
    """A VerificationService on Redis for one run; closes the store and the connector."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._closing: list[Any] = []

    def __enter__(self) -> Any:
        import os  # noqa: PLC0415

        from ._connector import AliyunSmsConnector  # noqa: PLC0415
        from ._errors import ConfigError  # noqa: PLC0415
        from .verify import RedisStore, VerificationService  # noqa: PLC0415

        url = self._args.redis or os.environ.get(REDIS_URL_VARIABLE)
        if not url:
            raise ConfigError(
                f"verify needs a shared store: give --redis URL or set {REDIS_URL_VARIABLE}. "
                "The code started by one run must still be there for the check in the next; "
                "an in-memory store is gone when the command exits"
            )
        secret_key = os.environ.get(SECRET_KEY_VARIABLE)
        if not secret_key:
            raise ConfigError(
                f"verify needs {SECRET_KEY_VARIABLE}: a secret of 32 bytes or more, the same "
                "for every run and instance (codes are stored only as HMACs under it)"
            )
        config = _load_config(self._args.config)
        missing = None
        try:
            store = RedisStore.from_url(url)
        except ImportError:
            missing = "verify needs redis-py: pip install 'aliyun-sms-connector[redis]'"
        except ValueError:
            missing = f"--redis: not a Redis URL ({_one_line(url.partition(':')[0])}://...)"
        if missing is not None:
            raise ConfigError(missing)
        self._closing.append(store)
        try:
            connector = AliyunSmsConnector(config)
            self._closing.append(connector)
            return VerificationService(connector, store, secret_key=secret_key)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        while self._closing:
            self._closing.pop().close()


# -- output -----------------------------------------------------------------------------


def _print_message(message: Message, out: TextIO) -> None:
    print(
        f"[{message.sent_at:%H:%M:%S}] {message.phone_number} {message.template_code} "
        f"biz_id={message.biz_id}\n    {message.text}",
        file=out,
        flush=True,
    )


def _one_line(text: str) -> str:
    """Show ``text`` with every line break and control character as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _print_error(error: AliyunSmsError, out: TextIO) -> None:
    from ._errors import ConfigError  # noqa: PLC0415

    if isinstance(error, ConfigError) and error.problems:
        problems = "; ".join(f"{p.field or '(config)'}: {p.problem}" for p in error.problems)
        count = len(error.problems)
        message = (
            f"invalid Aliyun SMS config, {count} problem{'s' if count > 1 else ''}: {problems}"
        )
    else:
        message = error.message
    print(f"error: {type(error).__name__}: {_one_line(message)}", file=out)
    if isinstance(error, ConfigError):
        return
    print(f"  code:       {_one_line(error.code)}", file=out)
    if error.request_id:
        print(f"  request id: {_one_line(error.request_id)}", file=out)
    if error.http_status is not None:
        print(f"  HTTP:       {error.http_status}", file=out)
    if error.recommend:
        print(f"  recommend:  {_one_line(error.recommend)}", file=out)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        print(f"  retry after: {retry_after:g} s", file=out)
    if error.maybe_sent:
        print("  note:       the SMS may have been sent", file=out)
