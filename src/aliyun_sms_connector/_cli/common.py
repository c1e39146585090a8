"""What every command of ``aliyun-sms`` shares: exit statuses, the config, and errors shown.

Every command module imports this one, and it imports none of them. Like
:mod:`.main`, it imports nothing but ``sys`` when it loads, so that Ctrl-C
ends a command quietly even while it is still importing: the library is
imported inside the functions that need it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: this module imports nothing it can do without
if TYPE_CHECKING:
    from pathlib import Path
    from typing import TextIO, TypeVar

    from aliyun_sms_connector._config import AliyunSmsConfig
    from aliyun_sms_connector._errors import AliyunSmsError
    from aliyun_sms_connector._mas.config import AliyunMasConfig

    _Config = TypeVar("_Config", AliyunSmsConfig, AliyunMasConfig)

__all__ = [
    "BROKEN_PIPE",
    "CONFIG_VARIABLE",
    "EXIT_CODES",
    "INTERRUPTED",
    "NOT_FOUND",
    "PARTIAL",
    "PORT_UNAVAILABLE",
    "REDIS_URL_VARIABLE",
    "SECRET_KEY_VARIABLE",
    "TOO_MANY_ATTEMPTS",
    "USAGE",
    "WRONG_CODE",
    "exit_code",
    "load_config",
    "one_line",
    "print_error",
    "read_file",
]
REDIS_URL_VARIABLE = "ALIYUN_SMS_REDIS_URL"
CONFIG_VARIABLE = "ALIYUN_SMS_CONFIG"  # the path of a config file, as --config
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


def exit_code(error: BaseException) -> int:
    """The exit status for ``error``: one per class, see EXIT_CODES."""
    statuses = dict(EXIT_CODES)
    for cls in type(error).__mro__:
        if cls.__name__ in statuses:
            return statuses[cls.__name__]
    return 1


# -- loading the config ---------------------------------------------------------


def load_config(path: Path | None, kind: type[_Config] | None = None) -> _Config:
    """The config from ``path`` or ``ALIYUN_SMS_CONFIG`` (JSON files), or ALIYUN_SMS_* variables.

    ``kind`` is the config class: ``AliyunSmsConfig`` unless given
    (``AliyunMasConfig`` for the Message Authentication Service).
    """
    import os  # noqa: PLC0415

    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415

    if kind is None:
        from aliyun_sms_connector._config import AliyunSmsConfig  # noqa: PLC0415

        return load_config(path, AliyunSmsConfig)  # type: ignore[return-value]
    path = config_path(path)
    if path is None:
        if not any(_is_config_variable(name) for name in os.environ):
            # Naming the first missing field would hide the choice to make.
            raise ConfigError(
                "no config: give --config PATH or ALIYUN_SMS_CONFIG=PATH (Logto's "
                "connector JSON, such as examples/logto.json), or set the ALIYUN_SMS_* variables "
                "(ALIYUN_SMS_ACCESS_KEY_ID, ALIYUN_SMS_ACCESS_KEY_SECRET, "
                "ALIYUN_SMS_SIGN_NAME, ALIYUN_SMS_TEMPLATES, ...)"
            )
        return kind.from_env()
    raw, problem = read_file(path)
    if raw is None:
        raise ConfigError(problem)
    # Bytes: from_json checks they are UTF-8 and drops a byte-order mark.
    return kind.from_json(raw)


def config_path(path: Path | None) -> Path | None:
    """``path``, else the file ``ALIYUN_SMS_CONFIG`` names, else None (the variables)."""
    import os  # noqa: PLC0415

    if path is None and os.environ.get(CONFIG_VARIABLE):
        from pathlib import Path  # noqa: PLC0415

        return Path(os.environ[CONFIG_VARIABLE])
    return path


def _is_config_variable(name: str) -> bool:
    """An ALIYUN_SMS_* variable of the connector's config (not of the verify service)."""
    return name.startswith("ALIYUN_SMS_") and name not in {
        REDIS_URL_VARIABLE,
        SECRET_KEY_VARIABLE,
        CONFIG_VARIABLE,
    }


def read_file(path: Path) -> tuple[bytes | None, str]:
    """The file's bytes, or None and why it cannot be read."""
    try:
        return path.read_bytes(), ""
    except OSError as err:
        return None, f"cannot read {one_line(str(path))}: {err.strerror or type(err).__name__}"


# -- output -----------------------------------------------------------------------------


def one_line(text: str) -> str:
    """Show ``text`` with every line break and control character as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def print_error(error: AliyunSmsError, out: TextIO) -> None:
    """One line ``error: Class: message``, then the details on indented lines."""
    from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415

    if isinstance(error, ConfigError) and error.problems:
        problems = "; ".join(f"{p.field or '(config)'}: {p.problem}" for p in error.problems)
        count = len(error.problems)
        message = f"invalid {error.subject}, {count} problem{'s' if count > 1 else ''}: {problems}"
    else:
        message = error.message
    print(f"error: {type(error).__name__}: {one_line(message)}", file=out)
    if isinstance(error, ConfigError):
        return
    print(f"  code:       {one_line(error.code)}", file=out)
    if error.explanation:
        print(f"  means:      {error.explanation}", file=out)
    if error.request_id:
        print(f"  request id: {one_line(error.request_id)}", file=out)
    if error.http_status is not None:
        print(f"  HTTP:       {error.http_status}", file=out)
    if error.recommend:
        print(f"  recommend:  {one_line(error.recommend)}", file=out)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        print(f"  retry after: {retry_after:g} s", file=out)
    if error.maybe_sent:
        print("  note:       the SMS may have been sent", file=out)
