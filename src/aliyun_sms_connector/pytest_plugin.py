"""The ``aliyun_sms_emulator`` pytest fixture, registered through ``pytest11``.

Any project that installs aliyun-sms-connector can use it::

    def test_sign_in_sends_a_code(aliyun_sms_emulator):
        connector = AliyunSmsConnector(aliyun_sms_emulator.connector_config())
        connector.send_message("13800138000", "SignIn", {"code": "123456"})
        assert aliyun_sms_emulator.outbox[0].params == {"code": "123456"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["aliyun_sms_emulator"]


@pytest.fixture
def aliyun_sms_emulator() -> Iterator[Emulator]:
    """A running :class:`~aliyun_sms_connector.emulator.Emulator` with its defaults."""
    with Emulator() as emulator:
        yield emulator
