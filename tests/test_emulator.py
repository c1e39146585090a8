"""The emulator's own pieces, apart from the SDK (see tests/e2e for the wire)."""

import pytest

from aliyun_sms_connector import TemplateType
from aliyun_sms_connector.emulator import (
    DEFAULT_ACCESS_KEYS,
    DEFAULT_SIGN_NAME,
    Emulator,
    Template,
    _number_key,
)


class TestTemplate:
    def test_variables_and_render(self):
        """Placeholders are found in order and filled in."""
        template = Template("Hi ${name}, code ${code}.")
        assert template.variables == ["name", "code"]
        assert template.render({"name": "A", "code": "1"}) == "Hi A, code 1."

    def test_plain_strings_are_verification_templates(self):
        """A template given as text is a verification-code template."""
        emulator = Emulator(templates={"SMS_1": "x ${code}"})
        assert emulator.templates["SMS_1"] == Template("x ${code}", TemplateType.VERIFICATION_CODE)


class TestLifecycle:
    def test_defaults(self):
        """With no arguments the emulator has a key, a sign name and templates."""
        emulator = Emulator()
        assert emulator.access_keys == DEFAULT_ACCESS_KEYS
        assert emulator.sign_names == [DEFAULT_SIGN_NAME]
        assert set(emulator.templates) == {"SMS_000001", "SMS_000002", "SMS_000003"}

    def test_port_needs_a_running_emulator(self):
        """Asking for the endpoint before start() is a clear error."""
        with pytest.raises(RuntimeError, match="not running"):
            _ = Emulator().endpoint

    def test_start_is_idempotent_and_stop_frees_the_port(self):
        """start() twice serves once; stop() twice is harmless."""
        emulator = Emulator().start()
        port = emulator.port
        assert emulator.start() is emulator
        assert emulator.port == port
        emulator.stop()
        emulator.stop()
        with pytest.raises(RuntimeError):
            _ = emulator.port

    def test_busy_port(self):
        """A port in use fails at start() with OSError."""
        with Emulator() as first, pytest.raises(OSError):
            Emulator(port=first.port).start()

    def test_connector_config_overrides(self):
        """connector_config() takes overrides."""
        with Emulator() as emulator:
            config = emulator.connector_config(signName="Other", readTimeout=100)
        assert config["signName"] == "Other"
        assert config["readTimeout"] == 100
        assert config["protocol"] == "http"
        assert "caFile" not in config

    def test_reset_forgets_everything(self):
        """reset() clears outbox, requests and faults."""
        from aliyun_sms_connector import AliyunSmsConnector

        with Emulator() as emulator:
            connector = AliyunSmsConnector(emulator.connector_config())
            connector.send_message("13800138000", "SignIn", {"code": "1"})
            emulator.fail_next("isp.SYSTEM_ERROR")
            emulator.reset()
            assert (emulator.outbox, emulator.requests) == ([], [])
            connector.send_message("13800138000", "SignIn", {"code": "1"})
            assert len(emulator.outbox) == 1


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("+86 138 0013 8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("14155550100", "14155550100"),
        ("+1 415 555 0100", "14155550100"),
        (None, None),
    ],
)
def test_number_keys_match_across_forms(number, key):
    """Fault scoping matches a number in any of its forms."""
    assert _number_key(number) == key
