"""A local Aliyun endpoint for tests and demos: Dysmsapi and Dypnsapi (both 2017-05-25).

It serves the SMS service (SendSms, SendBatchSms, QuerySendDetails) and the
Message Authentication Service (短信认证: SendSmsVerifyCode,
CheckSmsVerifyCode) on one port; the action parameter decides. The official
SDKs talk to it over real HTTP (or HTTPS with ``tls=True``), with
``endpoint=emulator.endpoint`` and ``protocol="http"``. It checks signatures
(ACS3-HMAC-SHA256 and the legacy HMAC-SHA1), STS tokens, timestamps, nonces,
sign names, templates, variables, numbers and Aliyun's default flow control
for verification codes, and keeps every accepted message in ``outbox``::

    with Emulator() as emulator:
        connector = AliyunSmsConnector(emulator.connector_config())
        connector.send_message("13800138000", "SignIn", {"code": "123456"})
        assert emulator.outbox[0].text == "【AliyunSmsTest】Your code is 123456."

The Message Authentication Service uses system sign names and templates
(``DEFAULT_MAS_SIGN_NAME``, ``DEFAULT_MAS_TEMPLATES`` 100001-100005), takes
mainland China mobiles only, generates the code for ``##code##`` in
``TemplateParam`` (``CodeLength``, ``CodeType``), keeps it ``ValidTime``
seconds on the emulator's clock, refuses a resend within ``Interval``
(``FREQUENCY_FAIL``), honours ``DuplicatePolicy`` and ``ReturnVerifyCode``,
and answers ``CheckSmsVerifyCode`` with ``PASS`` or ``UNKNOWN``. Its
messages are in the same ``outbox``, with ``product == "mas"``;
``last_code(number)`` reads the latest code sent to a number, of either
product, and ``mas_connector_config()`` is a Logto-style ``aliyun-sms-mas``
config pointed at the emulator.

API parameters are read from the query and from an
``application/x-www-form-urlencoded`` body alike, as Aliyun's RPC gateway
reads them, and both signature schemes are checked in either placement.

Faults can be injected for one number, one action, or all: ``fail_next``,
``delay``, ``send_invalid_body`` and ``drop_connection``. Faults that answer
are served in the order they were queued, one per request.

The package holds the request model (:mod:`._models`), the server
(:mod:`._server`), each product's actions (:mod:`._actions`,
:mod:`._mas_actions`) and the tests' control surface (:mod:`._control`). It
never imports the connector, its protocol wing, the Message Authentication
Service connector (``_mas``), the CLI or verify: it checks what the official
SDKs send with code of its own.
"""

from ._models import (
    DEFAULT_ACCESS_KEYS,
    DEFAULT_MAS_SIGN_NAME,
    DEFAULT_MAS_TEMPLATES,
    DEFAULT_SIGN_NAME,
    DEFAULT_TEMPLATES,
    Message,
    ReceivedRequest,
    Template,
)
from ._server import Emulator

__all__ = [
    "DEFAULT_ACCESS_KEYS",
    "DEFAULT_MAS_SIGN_NAME",
    "DEFAULT_MAS_TEMPLATES",
    "DEFAULT_SIGN_NAME",
    "DEFAULT_TEMPLATES",
    "Emulator",
    "Message",
    "ReceivedRequest",
    "Template",
]
