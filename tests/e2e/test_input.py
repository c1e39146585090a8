"""Input checks through the whole path, sync and async: what is refused never reaches Aliyun."""

import asyncio
import json
import math

import pytest

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsConnector,
    ConfigError,
    TemplateParamError,
)

from .conftest import connector_config


def fullwidth(text: str) -> str:
    """text as a Chinese keyboard types it."""
    return "".join(
        "\u3000" if c == " " else chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text
    )


def send(connector, mode, *args):
    if mode == "sync":
        return connector.send_message(*args)

    async def run():
        async with connector:
            return await connector.send_message_async(*args)

    return asyncio.run(run())


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
class TestRefusedBeforeSending:
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_nan_and_infinity_codes(self, emulator, mode, value):
        """NaN and infinity are a TemplateParamError, and no request is made."""
        connector = AliyunSmsConnector(connector_config(emulator))
        with pytest.raises(TemplateParamError, match="finite"):
            send(connector, mode, "13800138000", "SignIn", {"code": value})
        assert emulator.requests == []

    def test_crlf_in_the_sign_name(self, emulator, mode):
        """A sign name with CR/LF never builds a connector, so it never reaches a log line."""
        config = connector_config(emulator, signName="Acme\r\nINFO forged line")
        with pytest.raises(ConfigError, match="signName: must not contain control characters"):
            AliyunSmsConnector(config)
        assert emulator.requests == []


@pytest.mark.parametrize("mode", MODES)
class TestAccepted:
    @pytest.mark.parametrize(
        ("raw", "sent", "template"),
        [
            (fullwidth("13800138000"), "13800138000", "SMS_CODE"),
            (fullwidth("+86 138-0013-8000"), "13800138000", "SMS_CODE"),
            (fullwidth("+1 415 555 0100"), "14155550100", "SMS_INTL"),
        ],
    )
    def test_fullwidth_numbers(self, emulator, mode, raw, sent, template):
        """Fullwidth digits are normalised and sent in Aliyun's form."""
        connector = AliyunSmsConnector(connector_config(emulator))
        result = send(connector, mode, raw, "Register", {"code": "123456"})
        assert result.phone_number == sent
        [message] = emulator.outbox
        assert (message.phone_number, message.template_code) == (sent, template)

    def test_config_with_a_byte_order_mark(self, emulator, mode):
        """A config saved with a UTF-8 BOM sends like any other."""
        raw = b"\xef\xbb\xbf" + json.dumps(connector_config(emulator)).encode()
        connector = AliyunSmsConnector(AliyunSmsConfig.from_json(raw))
        assert send(connector, mode, "13800138000", "Register", {"code": "42"}).biz_id
