"""The public faces: each __all__ is exactly the names meant, so that exporting is deliberate."""

import importlib

import pytest

import aliyun_sms_connector
from tests.verify.test_exported_members import EXPECTED as VERIFY_EXPECTED

PUBLIC = {
    "AccountError",
    "AliyunMasConfig",
    "AliyunMasConnector",
    "AliyunSmsConfig",
    "AliyunSmsConnector",
    "AliyunSmsError",
    "AuthenticationError",
    "BatchChunk",
    "BatchMessage",
    "BatchResult",
    "ConfigError",
    "ConfigProblem",
    "DeliveryReport",
    "DeliveryStatus",
    "InvalidPhoneNumberError",
    "InvalidResponseError",
    "NetworkError",
    "PermissionDeniedError",
    "PhoneNumber",
    "RateLimitExceededError",
    "RedactedError",
    "RegionalTemplateCode",
    "RejectedRecipient",
    "SendResult",
    "ServiceUnavailableError",
    "SignNameError",
    "TemplateConfig",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateParamError",
    "TemplateType",
    "UsageType",
    "parse_phone",
}


def test_all_is_exactly_the_public_api():
    """__all__ lists the public names, no more and no fewer."""
    assert set(aliyun_sms_connector.__all__) == PUBLIC
    assert len(aliyun_sms_connector.__all__) == len(PUBLIC)


# The public submodules: what `from aliyun_sms_connector.<module> import ...` offers.
SUBMODULES = {
    "emulator": {
        "DEFAULT_ACCESS_KEYS",
        "DEFAULT_MAS_SIGN_NAME",
        "DEFAULT_MAS_TEMPLATES",
        "DEFAULT_SIGN_NAME",
        "DEFAULT_TEMPLATES",
        "Emulator",
        "Message",
        "ReceivedRequest",
        "Template",
    },
    # Pinned once, where the verify wing's tests live.
    "verify": VERIFY_EXPECTED,
}


@pytest.mark.parametrize("name", sorted(SUBMODULES))
def test_all_of_each_public_submodule_is_exactly_its_public_api(name):
    """emulator's and verify's __all__ list their public names, and each one resolves."""
    module = importlib.import_module(f"aliyun_sms_connector.{name}")
    assert set(module.__all__) == SUBMODULES[name]
    assert len(module.__all__) == len(SUBMODULES[name])
    for exported in module.__all__:
        assert getattr(module, exported) is not None


def test_every_exported_name_resolves_and_is_public():
    """Each exported name exists and does not come from a private path by accident."""
    for name in aliyun_sms_connector.__all__:
        obj = getattr(aliyun_sms_connector, name)
        assert obj is not None
        assert not name.startswith("_")


def test_importing_the_package_does_not_import_the_sdk():
    """The SDK is loaded only when the first connector is built."""
    import subprocess
    import sys

    code = (
        "import sys, aliyun_sms_connector; "
        "print(any(m.startswith(('alibabacloud_', 'darabonba', 'aiohttp')) for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_importing_the_connector_does_not_import_the_sdk_or_the_http_stacks():
    """What a user writes, `from aliyun_sms_connector import AliyunSmsConnector`, stays light.

    The SDK is loaded when the first connector is built, aiohttp on the first
    async send, phonenumbers on the first number.
    """
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from aliyun_sms_connector import AliyunSmsConnector, AliyunSmsConfig\n"
        "from aliyun_sms_connector import AliyunMasConnector, AliyunMasConfig\n"
        "heavy = ('alibabacloud_', 'darabonba', 'aiohttp', 'requests', 'urllib3', 'phonenumbers')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
