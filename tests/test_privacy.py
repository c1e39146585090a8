"""The privacy harness itself: each check must be able to fail."""

import json
import logging
from urllib.parse import quote_plus

import pytest
from pydantic import SecretStr

from aliyun_sms_connector import AliyunSmsError, BatchMessage

from .privacy import (
    assert_no_leak,
    assert_no_leak_in_records,
    capture_debug_logs,
    encodings,
    reachable,
    render_with_locals,
)

TOKEN = "CAIS+sts/Tok=en-0123456789"
PHONE = "13912345678"


class TestEncodings:
    def test_twice_encoded_forms(self):
        """+ / = encoded twice are among the forms."""
        forms = encodings(TOKEN)
        assert "CAIS%252Bsts%252FTok%253Den-0123456789" in forms
        assert quote_plus(TOKEN) in forms
        assert TOKEN.encode() in forms

    def test_empty_value_has_no_forms(self):
        """An empty value would match everywhere; it has no forms."""
        assert encodings("") == set()


class TestReachable:
    def test_value_deep_in_the_context(self):
        """A value held three objects deep in an error's context is found."""
        error = AliyunSmsError("clean")
        error.__context__ = RuntimeError("x")
        error.__context__.holder = {"request": [BatchMessage(PHONE)]}
        with pytest.raises(AssertionError, match=r"__context__\.holder"):
            assert_no_leak(error, [PHONE])

    def test_slots_and_bytes(self):
        """Objects with __slots__ and bytes values are walked."""

        class Slotted:
            __slots__ = ("body",)

            def __init__(self):
                self.body = b"x=" + quote_plus(TOKEN).encode()

        error = ValueError(Slotted())
        assert any(isinstance(t, bytes) for t in reachable(error))
        with pytest.raises(AssertionError):
            assert_no_leak(error, [TOKEN])

    def test_secret_str_is_opaque(self):
        """pydantic's SecretStr hides its value; the walk does not open it."""
        error = ValueError(SecretStr(TOKEN))
        assert_no_leak(error, [TOKEN])

    def test_pydantic_models_are_walked(self):
        """A pydantic model's fields are walked; its SecretStr fields are not opened."""
        from pydantic import BaseModel

        class Held(BaseModel):
            number: str
            token: SecretStr

        error = ValueError(Held(number="x", token=SecretStr(TOKEN)))
        assert_no_leak(error, [TOKEN])
        error.args[0].number = PHONE
        with pytest.raises(AssertionError, match=r"\.number"):
            assert_no_leak(error, [PHONE])

    def test_depth_is_bounded(self):
        """Beyond the depth the walk stops (objects whose repr hides what they hold)."""

        class Node:
            def __init__(self, inner):
                self.inner = inner

        holder: object = PHONE
        for _ in range(30):
            holder = Node(holder)
        assert_no_leak(ValueError(holder), [PHONE], depth=5)
        with pytest.raises(AssertionError):
            assert_no_leak(ValueError(holder), [PHONE], depth=40)

    def test_render_with_locals(self):
        """Frame locals show in the rendering."""

        def fail(secret):
            raise ValueError("x")

        try:
            fail(TOKEN)
        except ValueError as error:
            assert TOKEN in render_with_locals(error)


class TestRecords:
    def test_args_and_message_are_checked(self):
        """A value in a record's args is caught, as is one in its message."""
        with capture_debug_logs() as capture:
            logging.getLogger("urllib3.connectionpool").debug(
                "GET /?t=%s", quote_plus(quote_plus(TOKEN))
            )
        with pytest.raises(AssertionError, match=r"urllib3\.connectionpool DEBUG"):
            assert_no_leak_in_records(capture.records, [TOKEN])

    def test_exc_info_is_checked(self):
        """A value in the traceback text of a logged exception is caught."""
        with capture_debug_logs() as capture:
            try:
                raise ValueError(PHONE)
            except ValueError:
                logging.getLogger("some.library").exception("failed")
        with pytest.raises(AssertionError, match="exc_info"):
            assert_no_leak_in_records(capture.records, [PHONE])

    def test_everything_is_restored(self):
        """Levels, disabled flags, propagation handlers and the root are as before."""
        root = logging.getLogger()
        quiet = logging.getLogger("privacy.test.quiet")
        quiet.setLevel(logging.ERROR)
        cut = logging.getLogger("privacy.test.cut")
        cut.propagate = False
        cut.disabled = True
        before = (root.level, list(root.handlers), quiet.level, cut.disabled, list(cut.handlers))
        try:
            with capture_debug_logs() as capture:
                quiet.debug("seen")
                cut.debug("seen too")
                assert root.level == logging.DEBUG
            assert [r.name for r in capture.records] == ["privacy.test.quiet", "privacy.test.cut"]
            after = (root.level, list(root.handlers), quiet.level, cut.disabled, list(cut.handlers))
            assert after == before
        finally:
            cut.propagate = True
            cut.disabled = False
            quiet.setLevel(logging.NOTSET)


# A token with a space, a quote and a backslash: raw, quote, quote_plus and repr all differ.
ODD_TOKEN = "CAIS+sts/Tok=en 0123'456\\789"


def _send(connector):
    """The caller's frame, as an application's: only its own arguments are locals."""
    try:
        connector.send_message(PHONE, "SignIn", {"code": "482913"})
    except AliyunSmsError as error:
        return error
    pytest.fail("no error")  # pragma: no cover - the test failed


class TestConnectorUnit:
    """Failures the emulator cannot produce, through the real connector over a mocked transport."""

    @pytest.fixture
    def sts(self, logto_config, transport):
        from aliyun_sms_connector import AliyunSmsConnector

        connector = AliyunSmsConnector(
            {**logto_config, "securityToken": ODD_TOKEN, "maxAttempts": 1}
        )
        yield connector, transport
        connector.close()

    def private(self, logto_config):
        return (PHONE, "482913", ODD_TOKEN, logto_config["accessKeySecret"])

    @pytest.mark.parametrize(
        "raised",
        [
            RuntimeError(f"bug below: {PHONE} code=482913 token={ODD_TOKEN}"),
            ValueError(f"invalid header value {ODD_TOKEN!r}"),
            OSError(f"sent {quote_plus(quote_plus(ODD_TOKEN))}".encode()),
        ],
        ids=["unexpected", "invalid-header", "bytes"],
    )
    def test_a_lower_exception_stands_in_scrubbed(self, sts, logto_config, raised):
        """Whatever the transport raises is chained only as a scrubbed RedactedError."""
        from aliyun_sms_connector._redact import RedactedError

        connector, transport = sts
        transport.send.side_effect = raised
        error = _send(connector)
        assert type(error.__cause__) is RedactedError
        assert error.__cause__.type_name == type(raised).__name__
        assert error.__context__ is None
        assert_no_leak(error, self.private(logto_config))
        assert ODD_TOKEN not in render_with_locals(error)

    def test_aliyun_text_in_every_encoding(self, sts, logto_config):
        """A gateway message with the values raw, encoded twice and JSON-escaped is scrubbed."""
        from . import wire_fakes

        connector, transport = sts
        param = '{"code":"482913"}'
        message = (
            f"{PHONE} {param} {quote_plus(quote_plus(param))} "
            f"{quote_plus(quote_plus(ODD_TOKEN))} {json.dumps(ODD_TOKEN)}"
        )
        transport.send.return_value = wire_fakes.gateway("InvalidParameter", message=message)
        assert_no_leak(_send(connector), self.private(logto_config))
