"""``aliyun-sms demo`` and ``aliyun-sms verify``: codes issued and checked by the service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .common import (
    NOT_FOUND,
    REDIS_URL_VARIABLE,
    SECRET_KEY_VARIABLE,
    TOO_MANY_ATTEMPTS,
    WRONG_CODE,
    load_config,
    one_line,
)

if TYPE_CHECKING:
    import argparse
    from typing import Any

__all__ = ["another_code", "check", "check_text", "demo", "start"]

# The library is imported inside each command, not here: Ctrl-C must end a command
# quietly even while it imports (see .main), and each command loads only what it uses.

# -- demo -----------------------------------------------------------------------------


def demo(args: argparse.Namespace) -> int:
    """Send a code to the embedded emulator, then check a wrong and the right one."""
    import os  # noqa: PLC0415

    from aliyun_sms_connector._config import UsageType  # noqa: PLC0415
    from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415
    from aliyun_sms_connector._redact import mask_phone  # noqa: PLC0415
    from aliyun_sms_connector.emulator import Emulator  # noqa: PLC0415
    from aliyun_sms_connector.verify import MemoryStore, VerificationService  # noqa: PLC0415

    # The SDK's credential chain is not used (the keys are explicit), but a
    # machine with no metadata service should not even be asked.
    os.environ.setdefault("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
    with Emulator() as emulator:
        print(f"Started a local Aliyun SMS emulator at http://{emulator.endpoint}")
        print("  (no account, no config: it checks signatures, templates and limits like Aliyun)")
        print(f"Starting a SignIn verification for {mask_phone(args.to)}: a code is generated,")
        print("  stored as an HMAC (in memory here; in Redis across instances), and sent")
        print("  signed by the official Aliyun SDK's own functions...")
        # The emulator's domestic and international templates, as a real config
        # needs both: --to may be a number outside mainland China.
        regional = {"china": "SMS_000001", "overseas": "SMS_000002"}
        config = emulator.connector_config(
            templates=[{"usageType": "Generic", "templateCode": regional}]
        )
        with AliyunSmsConnector(config) as connector:
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
                ("a wrong code", another_code(code)),
                ("the right code", code),
                ("the right code again", code),
            ):
                checked = service.check(args.to, UsageType.SIGN_IN, typed)
                print(f"  checking {label + ',':<22} {typed}: {check_text(checked)}")
        print()
        print("Next: 'aliyun-sms emulator' keeps one running for your app;")
        print("      examples/logto.json (in the source repository) is a sample config in")
        print("      Logto's format: copy it, fill in your AccessKey, sign name and templates,")
        print("      check it with 'aliyun-sms check-config --config logto.json', and")
        print("      'aliyun-sms send --config logto.json --to ...' sends for real;")
        print("      'aliyun-sms verify start|check --redis URL ...' verifies across runs.")
    return 0


def another_code(code: str) -> str:
    """A code of the same shape that is surely not ``code``."""
    return "".join(str((int(c) + 1) % 10) if c.isdigit() else "0" for c in code)


def check_text(result: Any) -> str:
    """The outcome of a check, in words."""
    from aliyun_sms_connector.verify import CheckStatus  # noqa: PLC0415

    texts = {
        CheckStatus.APPROVED: "APPROVED (the code is now used up)",
        CheckStatus.WRONG_CODE: f"WRONG_CODE ({result.attempts_left} attempt(s) left)",
        CheckStatus.TOO_MANY_ATTEMPTS: "TOO_MANY_ATTEMPTS (locked: start a new verification)",
        CheckStatus.NOT_FOUND: "NOT_FOUND (never sent, expired, already used, or replaced)",
    }
    return texts[result.status]


# -- verify -------------------------------------------------------------------------


def start(args: argparse.Namespace) -> int:
    """Start a verification: a new code, stored in Redis and sent by SMS."""
    with _verification_service(args) as service:
        verification = service.start(args.to, args.usage_type, client_ip=args.client_ip)
    print(
        f"sent a {verification.usage_type.value} code to {verification.masked_number} "
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


def check(args: argparse.Namespace) -> int:
    """Check a code; the exit status tells the outcome."""
    from aliyun_sms_connector.verify import CheckStatus  # noqa: PLC0415

    with _verification_service(args) as service:
        result = service.check(args.to, args.usage_type, args.code)
    print(check_text(result))
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

        from aliyun_sms_connector._connector import AliyunSmsConnector  # noqa: PLC0415
        from aliyun_sms_connector._errors import ConfigError  # noqa: PLC0415
        from aliyun_sms_connector.verify import RedisStore, VerificationService  # noqa: PLC0415

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
        config = load_config(self._args.config)
        missing = None
        try:
            store = RedisStore.from_url(url)
        except ImportError:
            missing = "verify needs redis-py: pip install 'aliyun-sms-connector[redis]'"
        except ValueError:
            missing = f"--redis: not a Redis URL ({one_line(url.partition(':')[0])}://...)"
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
