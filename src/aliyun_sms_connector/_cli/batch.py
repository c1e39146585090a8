"""``aliyun-sms send-batch``: the CSV file read and checked row by row, then SendBatchSms."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import (
    PARTIAL,
    exit_code,
    load_config,
    one_line,
    print_error,
    read_file,
)

if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from aliyun_sms_connector._delivery import BatchMessage, BatchResult
    from aliyun_sms_connector._errors import AliyunSmsError

__all__ = ["send_batch"]

# The library is imported inside each command, not here: Ctrl-C must end a command
# quietly even while it imports (see .main), and each command loads only what it uses.

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


def send_batch(args: argparse.Namespace) -> int:
    """Send one message per good CSV row; report each bad row by its line."""
    from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415

    config = load_config(args.config)
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
            print_error(chunk.error, sys.stdout)
    for row in bad:
        who = f" ({row.to})" if row.to else ""
        print(
            f"skipped line {row.line}{who}: {type(row.error).__name__}: "
            f"{one_line(row.error.message)}"
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
    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415

    name = one_line(str(path))
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
        if isinstance(outcome, _Row):
            rows.append(outcome)
        else:
            bad.append(outcome)
    return rows, bad


def _csv_records(path: Path, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank records of the CSV file, each with the line it starts on."""
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415

    raw, problem = read_file(path)
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
    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415

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
        raise ConfigError(one_line(problem))


def _batch_row(line: int, header: list[str], record: list[str]) -> _Row | _BadRow:
    from aliyun_sms_connector._delivery import BatchMessage  # noqa: PLC0415
    from aliyun_sms_connector._errors import InvalidPhoneNumberError, TemplateParamError  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415

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
