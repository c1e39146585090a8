"""The connector's commands: send, status, check-config and emulator."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .common import (
    PORT_UNAVAILABLE,
    load_config,
    print_error,
)

if TYPE_CHECKING:
    import argparse
    from typing import Any, TextIO

    from aliyun_sms_connector.emulator import Message

__all__ = ["check_config", "code_for", "emulator", "send", "status"]

# The library is imported inside each command, not here: Ctrl-C must end a command
# quietly even while it imports (see .main), and each command loads only what it uses.

# -- send -------------------------------------------------------------------------


def code_for(given: str | None) -> str:
    """The code given, or 6 random digits."""
    import secrets  # noqa: PLC0415

    return given if given is not None else f"{secrets.randbelow(10**6):06d}"


def send(args: argparse.Namespace) -> int:
    """Send one verification code; print the code only if this command made it up."""
    from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415

    config = load_config(args.config)
    code = code_for(args.code)
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


def status(args: argparse.Namespace) -> int:
    """Print the delivery receipts for a number on one day."""
    from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415

    with AliyunSmsConnector(load_config(args.config)) as connector:
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


# -- check-config -----------------------------------------------------------------


def check_config(args: argparse.Namespace) -> int:
    """Validate the config, print its routing table, warn about regions a template cannot serve."""
    from aliyun_sms_connector._config import UsageType  # noqa: PLC0415
    from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415 - resolves the endpoints
    from aliyun_sms_connector._templates import region_problem  # noqa: PLC0415

    config = load_config(args.config)
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
        template = config.templates_by_usage.get(usage) or config.templates_by_usage.get(
            UsageType.GENERIC
        )
        if template is None:
            print(f"  {usage.value:<26} {'-':<22} {'-':<22} no template")
            continue
        # A region the template cannot serve is shown as "-": a send there
        # raises TemplateError (TemplateRegionMismatch) before any request.
        china, overseas = (
            "-" if region_problem(template, region) else template.code_for(region)
            for region in ("china", "overseas")
        )
        via = "exact" if template.usage_type is usage else "Generic"
        print(f"  {usage.value:<26} {china:<22} {overseas:<22} {via}")
    for template in config.templates:
        for region in ("china", "overseas"):
            problem = region_problem(template, region)
            if problem is not None:
                # The config is valid (an app may never send to that region),
                # but every send there would fail: say so, and how to fix it.
                print(
                    f"warning: {problem} (until then, such sends raise TemplateError "
                    "before any request)",
                    file=sys.stderr,
                )
    return 0


# -- emulator -----------------------------------------------------------------------


def emulator(args: argparse.Namespace) -> int:
    """Run the emulator in the foreground until Ctrl-C or SIGTERM."""
    from aliyun_sms_connector._errors import AliyunSmsError  # noqa: PLC0415
    from aliyun_sms_connector.emulator import Emulator  # noqa: PLC0415

    out = sys.stdout
    emulator = Emulator(port=args.port, tls=args.tls, latency=args.latency)
    problem = None
    try:
        # SIGTERM before serve_forever() takes over (while the TLS files are
        # made, or the banner printed) must clean up too.
        with _terminate_raises():
            problem = _start(emulator)
            if problem is None:
                if not args.quiet:
                    emulator.on_message = lambda message: _print_message(message, out)
                _print_banner(emulator, out)
                # Until Ctrl-C (KeyboardInterrupt, after the cleanup) or SIGTERM
                # (a normal return); either way the emulator removes its TLS files.
                emulator.serve_forever()
    except _TerminatedError:
        pass  # a normal stop, as in serve_forever()
    finally:
        emulator.stop()  # also after Ctrl-C or a closed stdout
    if problem is not None:
        error = AliyunSmsError(
            f"cannot listen on 127.0.0.1:{args.port}: {problem}", code="PortUnavailable"
        )
        print_error(error, sys.stderr)
        return PORT_UNAVAILABLE
    return 0


def _start(emulator: Any) -> str | None:
    """Start serving; None, or why the port cannot be had."""
    try:
        emulator.start()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


class _TerminatedError(Exception):
    """SIGTERM arrived before serve_forever() had its own handler in place."""


class _terminate_raises:  # noqa: N801 - used like a function, as a context manager
    """While inside, SIGTERM raises _TerminatedError (main thread only)."""

    def __enter__(self) -> None:
        import signal  # noqa: PLC0415
        import threading  # noqa: PLC0415

        self._installed = threading.current_thread() is threading.main_thread()
        if self._installed:
            self._previous = signal.signal(signal.SIGTERM, _raise_terminated)

    def __exit__(self, *_: object) -> None:
        import signal  # noqa: PLC0415

        if self._installed:
            # None: the previous handler was not set from Python.
            previous = signal.SIG_DFL if self._previous is None else self._previous
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _TerminatedError


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


def _print_message(message: Message, out: TextIO) -> None:
    print(
        f"[{message.sent_at:%H:%M:%S}] {message.phone_number} {message.template_code} "
        f"biz_id={message.biz_id}\n    {message.text}",
        file=out,
        flush=True,
    )
