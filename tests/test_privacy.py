"""The privacy harness itself: each check must be able to fail."""

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
