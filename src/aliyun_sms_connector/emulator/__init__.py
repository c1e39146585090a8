"""A local Aliyun Dysmsapi (2017-05-25) endpoint for tests and demos.

The official SDK talks to it over real HTTP (or HTTPS with ``tls=True``),
with ``endpoint=emulator.endpoint`` and ``protocol="http"``. It checks
signatures (ACS3-HMAC-SHA256 and the legacy HMAC-SHA1), timestamps, nonces,
sign names, templates, variables, numbers and Aliyun's default flow control
for verification codes, and keeps every accepted message in ``outbox``::

    with Emulator() as emulator:
        connector = AliyunSmsConnector(emulator.connector_config())
        connector.send_message("13800138000", "SignIn", {"code": "123456"})
        assert emulator.outbox[0].text == "【AliyunSmsTest】Your code is 123456."

API parameters are read from the query and from an
``application/x-www-form-urlencoded`` body alike, as Aliyun's RPC gateway
reads them, and both signature schemes are checked in either placement.

Faults can be injected for one number or for all: ``fail_next``, ``delay``,
``send_invalid_body`` and ``drop_connection``. Faults that answer are served
in the order they were queued, one per request.

The package holds the request model (:mod:`._models`), the server
(:mod:`._server`) and the tests' control surface (:mod:`._control`). It never
imports the connector, its protocol wing, the CLI or verify: it checks what
the official SDK sends with code of its own.
"""

from ._models import (
    DEFAULT_ACCESS_KEYS,
    DEFAULT_SIGN_NAME,
    DEFAULT_TEMPLATES,
    Message,
    ReceivedRequest,
    Template,
)
from ._server import Emulator

__all__ = [
    "DEFAULT_ACCESS_KEYS",
    "DEFAULT_SIGN_NAME",
    "DEFAULT_TEMPLATES",
    "Emulator",
    "Message",
    "ReceivedRequest",
    "Template",
]
