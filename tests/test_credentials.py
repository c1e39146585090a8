"""Credential forms and regions: config rules, the SDK's credentials, and where requests go."""

import asyncio
import traceback

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.exceptions import CredentialException
from alibabacloud_credentials.models import CredentialModel

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsConnector,
    AuthenticationError,
    ConfigError,
)
from aliyun_sms_connector._http.transport import Transport

from . import wire_fakes
from .conftest import SECRET, TOKEN

CHAIN_SECRET = "chain-SECRET-from-the-ecs-role-0001"
CHAIN_TOKEN = "chain-STS-token-rotating-abcdefgh"


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

    def test_sdk_gets_the_credential_chain(self, logto_config, transport):
        """With the chain, the SDK client gets the official CredentialClient."""
        connector = AliyunSmsConnector({**without_keys(logto_config), "credentials": "default"})
        assert isinstance(connector._client._credential, CredentialClient)
        assert connector._lanes["china"].credentials.fixed is None
        assert connector._secrets == ()

    def test_sts_token_with_keys(self, logto_config, transport):
        """An AccessKey with securityToken is resolved once, through the SDK, as STS."""
        connector = AliyunSmsConnector({**logto_config, "securityToken": TOKEN})
        credential = connector._lanes["china"].credentials.fixed
        assert (credential.key_id, credential.secret, credential.token) == (
            "LTAI5tTestKeyId",
            SECRET,
            TOKEN,
        )
        assert credential.provider == "static_sts"
        assert set(connector._secrets) == {SECRET, TOKEN}
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        (request,) = transport.send.call_args.args
        assert request.headers["x-acs-security-token"] == TOKEN
        assert request.headers["x-acs-credentials-provider"] == "static_sts"


def chain_model():
    return CredentialModel(
        access_key_id="LTAIchainKeyId",
        access_key_secret=CHAIN_SECRET,
        security_token=CHAIN_TOKEN,
        type="default",
        provider_name="default/ecs_ram_role",
    )


def send_one(connector, *, is_async):
    if is_async:
        return asyncio.run(connector.send_message_async("13800138000", "SignIn", {"code": "1"}))
    return connector.send_message("13800138000", "SignIn", {"code": "1"})


@pytest.fixture
def chain(logto_config, transport):
    """A connector on the default chain, whose answer the test sets."""
    return AliyunSmsConnector({**without_keys(logto_config), "credentials": "default"})


class TestDefaultChain:
    def test_each_send_asks_the_chain(self, chain, transport, mocker):
        """The chain rotates: every send signs with what it gives now."""
        get = mocker.patch.object(
            CredentialClient, "get_credential", autospec=True, return_value=chain_model()
        )
        chain.send_message("13800138000", "SignIn", {"code": "1"})
        chain.send_message("13800138000", "SignIn", {"code": "2"})
        assert get.call_count == 2
        (request,) = transport.send.call_args.args
        assert request.headers["Authorization"].startswith(
            "ACS3-HMAC-SHA256 Credential=LTAIchainKeyId,"
        )
        assert request.headers["x-acs-security-token"] == CHAIN_TOKEN
        assert request.headers["x-acs-credentials-provider"] == "default/ecs_ram_role"

    def test_async_asks_the_chain_without_blocking(self, chain, transport, mocker):
        """The async path awaits the chain's async lookup."""
        get = mocker.patch.object(
            CredentialClient, "get_credential_async", autospec=True, return_value=chain_model()
        )
        asyncio.run(chain.send_message_async("13800138000", "SignIn", {"code": "1"}))
        get.assert_awaited_once()
        (request,) = transport.send_async.call_args.args
        assert request.headers["x-acs-security-token"] == CHAIN_TOKEN

    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    def test_the_chains_secrets_are_scrubbed(self, chain, transport, mocker, is_async):
        """A secret and token from the chain are scrubbed from errors, as configured ones are."""
        mocker.patch.object(
            CredentialClient, "get_credential", autospec=True, return_value=chain_model()
        )
        mocker.patch.object(
            CredentialClient, "get_credential_async", autospec=True, return_value=chain_model()
        )
        echo = wire_fakes.gateway(
            "SignatureDoesNotMatch", message=f"echo {CHAIN_SECRET} {CHAIN_TOKEN}"
        )
        transport.send.return_value = transport.send_async.return_value = echo
        with pytest.raises(AuthenticationError) as info:
            send_one(chain, is_async=is_async)
        shown = "".join(
            traceback.TracebackException.from_exception(info.value, capture_locals=True).format()
        )
        assert CHAIN_SECRET not in shown
        assert CHAIN_TOKEN not in shown
        assert "echo [redacted] [redacted]" in info.value.message

    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    def test_nothing_found_is_typed_and_unsent(self, chain, transport, mocker, is_async):
        """A chain that finds nothing is CredentialsUnavailable, before any request."""
        failure = CredentialException(f"no provider; env had {CHAIN_SECRET}")
        mocker.patch.object(CredentialClient, "get_credential", autospec=True, side_effect=failure)
        mocker.patch.object(
            CredentialClient, "get_credential_async", autospec=True, side_effect=failure
        )
        with pytest.raises(AuthenticationError) as info:
            send_one(chain, is_async=is_async)
        error = info.value
        assert (error.code, error.retryable, error.attempts) == ("CredentialsUnavailable", False, 1)
        assert error.__context__ is None
        assert error.__cause__ is None
        assert CHAIN_SECRET not in "".join(traceback.format_exception(error))
        transport.send.assert_not_called()
        transport.send_async.assert_not_called()


class TestChainUnderTheDeadline:
    @pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
    def test_a_slow_chain_ends_at_the_deadline(self, logto_config, transport, mocker, is_async):
        """A chain that hangs ends as DeadlineExceeded, not sent, near the deadline."""
        import threading
        import time

        from aliyun_sms_connector import NetworkError

        release = threading.Event()

        def hang(_self):
            release.wait(10)
            return chain_model()

        async def hang_async(_self):
            await asyncio.sleep(10)
            return chain_model()

        mocker.patch.object(CredentialClient, "get_credential", autospec=True, side_effect=hang)
        mocker.patch.object(
            CredentialClient, "get_credential_async", autospec=True, side_effect=hang_async
        )
        connector = AliyunSmsConnector(
            {**without_keys(logto_config), "credentials": "default", "deadline": 300}
        )
        started = time.monotonic()
        try:
            with pytest.raises(NetworkError) as info:
                send_one(connector, is_async=is_async)
        finally:
            release.set()
        took = time.monotonic() - started
        error = info.value
        assert (error.code, error.maybe_sent, error.retryable) == ("DeadlineExceeded", False, False)
        assert error.__context__ is None
        # The chain would take 10 s; the send ends near its 0.3 s deadline (a wide margin
        # for a busy machine, and still far from 10 s).
        assert took < 3
        transport.send.assert_not_called()
        transport.send_async.assert_not_called()


class TestRegions:
    def test_default_endpoint(self, connector):
        """With no region and no endpoint, the SDK's default endpoint is used."""
        assert connector.endpoints == {
            "china": "dysmsapi.aliyuncs.com",
            "overseas": "dysmsapi.aliyuncs.com",
        }

    def test_region_picks_from_the_sdks_map(self, logto_config, transport):
        """regionId ap-southeast-1 gives the international endpoint."""
        connector = AliyunSmsConnector({**logto_config, "regionId": "ap-southeast-1"})
        assert connector.endpoints["china"] == "dysmsapi.ap-southeast-1.aliyuncs.com"

    def test_explicit_endpoint_overrides_region(self, logto_config, transport):
        """An explicit endpoint wins over regionId."""
        data = {**logto_config, "regionId": "ap-southeast-1", "endpoint": "sms.example.test"}
        assert AliyunSmsConnector(data).endpoints["china"] == "sms.example.test"

    def test_overseas_recipients_use_their_own_endpoint(self, logto_config, transport, mocker):
        """overseasRegionId routes overseas numbers through a second endpoint and pool."""
        pools = []

        def pool(**_):
            instance = mocker.create_autospec(Transport, instance=True)
            instance.send.return_value = wire_fakes.ok()
            pools.append(instance)
            return instance

        transport.cls.side_effect = pool
        connector = AliyunSmsConnector({**logto_config, "overseasRegionId": "ap-southeast-1"})
        assert connector.endpoints == {
            "china": "dysmsapi.aliyuncs.com",
            "overseas": "dysmsapi.ap-southeast-1.aliyuncs.com",
        }
        assert [c.kwargs["host"] for c in transport.cls.call_args_list] == [
            "dysmsapi.aliyuncs.com",
            "dysmsapi.ap-southeast-1.aliyuncs.com",
        ]
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        # Generic's {china, overseas} code: SignIn's own is domestic.
        connector.send_message("+14155550100", "Generic", {"code": "1"})
        hosts = [[c.args[0].headers["host"] for c in p.send.call_args_list] for p in pools]
        assert hosts == [["dysmsapi.aliyuncs.com"], ["dysmsapi.ap-southeast-1.aliyuncs.com"]]
        connector.close()
        for each in pools:
            each.close.assert_called_once_with()

    @pytest.mark.parametrize("field", ["regionId", "overseasRegionId"])
    def test_region_form(self, logto_config, field):
        """Region ids look like cn-hangzhou."""
        with pytest.raises(ConfigError, match=field):
            AliyunSmsConfig.model_validate({**logto_config, field: "Not A Region"})
