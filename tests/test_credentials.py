"""Credential forms and regions: config rules and how the SDK client is built."""

import pytest
from alibabacloud_dysmsapi20170525.client import Client

from aliyun_sms_connector import AliyunSmsConfig, AliyunSmsConnector, ConfigError

from .conftest import SECRET, TOKEN


def without_keys(config):
    return {k: v for k, v in config.items() if k not in ("accessKeyId", "accessKeySecret")}


class TestCredentialForms:
    def test_default_chain(self, logto_config):
        """credentials: "default" replaces the AccessKey pair."""
        config = AliyunSmsConfig.model_validate(
            {**without_keys(logto_config), "credentials": "default"}
        )
        assert config.credentials == "default"
        assert config.access_key_id is None

    @pytest.mark.parametrize(
        "extra", [{"accessKeyId": "a"}, {"accessKeySecret": "b"}, {"securityToken": TOKEN}]
    )
    def test_default_chain_excludes_keys(self, logto_config, extra):
        """The chain and any part of an AccessKey cannot be combined."""
        data = {**without_keys(logto_config), "credentials": "default", **extra}
        with pytest.raises(ConfigError, match="not both") as info:
            AliyunSmsConfig.model_validate(data)
        assert TOKEN not in str(info.value)

    def test_neither_form(self, logto_config):
        """Without keys or the chain, both key fields are named as missing."""
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(without_keys(logto_config))
        assert [p.field for p in info.value.problems] == ["accessKeyId", "accessKeySecret"]
        assert "credentials" in str(info.value)

    def test_missing_keys_reported_with_other_problems(self, logto_config):
        """A missing key is named in the same error as every other bad field."""
        data = {**without_keys(logto_config), "signName": "", "accessKeyId": "LTAI"}
        with pytest.raises(ConfigError) as info:
            AliyunSmsConfig.model_validate(data)
        assert [p.field for p in info.value.problems] == ["signName", "accessKeySecret"]

    def test_only_a_chain_name_we_know(self, logto_config):
        """credentials accepts only "default"."""
        with pytest.raises(ConfigError, match="credentials"):
            AliyunSmsConfig.model_validate({**without_keys(logto_config), "credentials": "ecs"})

    def test_sdk_gets_the_credential_chain(self, logto_config):
        """With the chain, the SDK client gets the official CredentialClient."""
        from alibabacloud_credentials.client import Client as CredentialClient

        connector = AliyunSmsConnector({**without_keys(logto_config), "credentials": "default"})
        assert isinstance(connector._client._credential, CredentialClient)
        assert connector._secrets == ()

    def test_sts_token_with_keys(self, logto_config):
        """An AccessKey with securityToken makes the SDK sign as STS."""
        connector = AliyunSmsConnector({**logto_config, "securityToken": TOKEN})
        credential = connector._client._credential.get_credential()
        assert (credential.type, credential.security_token) == ("sts", TOKEN)
        assert set(connector._secrets) == {SECRET, TOKEN}


class TestRegions:
    def test_default_endpoint(self, connector):
        """With no region and no endpoint, the SDK's default endpoint is used."""
        assert connector.endpoints == {
            "china": "dysmsapi.aliyuncs.com",
            "overseas": "dysmsapi.aliyuncs.com",
        }

    def test_region_picks_from_the_sdks_map(self, logto_config):
        """regionId ap-southeast-1 gives the international endpoint."""
        connector = AliyunSmsConnector({**logto_config, "regionId": "ap-southeast-1"})
        assert connector.endpoints["china"] == "dysmsapi.ap-southeast-1.aliyuncs.com"

    def test_explicit_endpoint_overrides_region(self, logto_config):
        """An explicit endpoint wins over regionId."""
        data = {**logto_config, "regionId": "ap-southeast-1", "endpoint": "sms.example.test"}
        assert AliyunSmsConnector(data).endpoints["china"] == "sms.example.test"

    def test_overseas_recipients_use_their_own_endpoint(self, logto_config, mocker):
        """overseasRegionId routes overseas numbers through a second client."""
        send = mocker.patch.object(Client, "send_sms_with_options", autospec=True)
        from . import sdk_fakes

        send.return_value = sdk_fakes.ok()
        connector = AliyunSmsConnector({**logto_config, "overseasRegionId": "ap-southeast-1"})
        assert connector.endpoints == {
            "china": "dysmsapi.aliyuncs.com",
            "overseas": "dysmsapi.ap-southeast-1.aliyuncs.com",
        }
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        connector.send_message("+14155550100", "SignIn", {"code": "1"})
        clients = [c.args[0] for c in send.call_args_list]
        assert clients == [connector._lanes["china"].client, connector._lanes["overseas"].client]
        assert clients[0] is not clients[1]
        connector.close()
        assert connector._lanes["overseas"].transport.closed

    @pytest.mark.parametrize("field", ["regionId", "overseasRegionId"])
    def test_region_form(self, logto_config, field):
        """Region ids look like cn-hangzhou."""
        with pytest.raises(ConfigError, match=field):
            AliyunSmsConfig.model_validate({**logto_config, field: "Not A Region"})
