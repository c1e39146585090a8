"""The SDK layer: settings, credentials and signers taken from the SDK, which stays untouched."""

import inspect

import pytest
from darabonba.core import DaraCore

from aliyun_sms_connector import AliyunSmsConnector
from aliyun_sms_connector._protocol import sdk
from tests.conftest import SECRET, TOKEN


class TestSdkUntouched:
    def test_no_hook_in_the_sdks_transport(self, connector, transport):
        """Building and using a connector leaves DaraCore's transport calls as shipped."""
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        for name in ("do_action", "async_do_action"):
            function = inspect.getattr_static(DaraCore, name).__func__
            assert function.__module__ == "darabonba.core"
            assert not hasattr(function, "__wrapped__")

    def test_the_sdk_client_never_sends(self, connector, transport, mocker):
        """Sends go through the connector's transport; the SDK client is only read."""
        do_action = mocker.patch.object(DaraCore, "do_action", autospec=True)
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        do_action.assert_not_called()
        transport.send.assert_called_once()


class TestLaneSettings:
    def test_user_agent_is_the_sdks(self, config, transport):
        """The user agent is the SDK's own, for the SDK's own reasons (env included)."""
        from alibabacloud_tea_openapi.utils import Utils

        settings = sdk.lane_settings(config)
        assert settings.user_agent == Utils.get_user_agent(None)
        assert settings.algorithm == "ACS3-HMAC-SHA256"
        assert settings.endpoint == "dysmsapi.aliyuncs.com"

    def test_user_agent_follows_the_sdks_environment_variable(self, config, monkeypatch):
        """ALIBABA_CLOUD_USER_AGENT is appended, as the SDK does."""
        monkeypatch.setenv("ALIBABA_CLOUD_USER_AGENT", "acme-app/1.0")
        assert sdk.lane_settings(config).user_agent.endswith(" acme-app/1.0")

    def test_settings_repr_has_no_secret(self, logto_config, transport):
        """Nothing a lane keeps shows a secret or token in its repr."""
        connector = AliyunSmsConnector({**logto_config, "securityToken": TOKEN})
        lane = connector._lanes["china"]
        shown = repr(lane) + repr(lane.settings) + repr(lane.credentials) + repr(lane.signer)
        shown += repr(lane.credentials.fixed) + repr(connector._driver)
        assert SECRET not in shown
        assert TOKEN not in shown


class TestCredentialSource:
    def test_chain_failure_is_a_fixed_sentence_without_context(self, mocker):
        """The chain's own exception text (paths, environment) is dropped, context and all."""
        from alibabacloud_credentials.client import Client as CredentialClient
        from alibabacloud_credentials.exceptions import CredentialException

        chain = mocker.create_autospec(CredentialClient, instance=True)
        chain.get_credential.side_effect = CredentialException("leaky /home/x/.aliyun SECRET")
        source = sdk.CredentialSource(chain, chain=True)
        with pytest.raises(sdk.CredentialsUnavailableError) as info:
            source.get()
        assert "leaky" not in str(info.value)
        assert info.value.__context__ is None

    def test_a_chain_answer_without_a_key_is_nothing(self, mocker):
        """An answer with no AccessKey is no credential."""
        from alibabacloud_credentials.client import Client as CredentialClient
        from alibabacloud_credentials.models import CredentialModel

        chain = mocker.create_autospec(CredentialClient, instance=True)
        chain.get_credential.return_value = CredentialModel(access_key_id="", type="default")
        with pytest.raises(sdk.CredentialsUnavailableError):
            sdk.CredentialSource(chain, chain=True).get()
