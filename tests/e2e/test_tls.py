"""HTTPS: caFile on the sync and async paths, and no silent loss of verification."""

import asyncio

import pytest
from alibabacloud_dysmsapi20170525 import models
from darabonba.runtime import RuntimeOptions

from aliyun_sms_connector import AliyunSmsConnector, ConfigError, NetworkError
from aliyun_sms_connector.emulator import Emulator

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES, connector_config
from .test_emulator_sdk import raw_client


@pytest.fixture
def tls_emulator(clock):
    with Emulator({KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock, tls=True) as emulator:
        yield emulator


def https_config(emulator, **overrides):
    return connector_config(emulator, protocol="https", **overrides)


def test_ca_file_sync_and_async(tls_emulator):
    """With caFile, both paths verify the emulator's certificate and send."""
    connector = AliyunSmsConnector(https_config(tls_emulator, caFile=tls_emulator.ca_file))
    connector.send_message("13800138000", "SignIn", {"code": "1"})

    async def main():
        async with connector:
            return await connector.send_message_async("13900139000", "SignIn", {"code": "2"})

    result = asyncio.run(main())
    assert result.attempts == 1
    assert [m.phone_number for m in tls_emulator.outbox] == ["13800138000", "13900139000"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_unknown_ca_is_refused(tls_emulator, mode):
    """Without caFile the throwaway CA is not trusted: CertificateInvalid, never retried."""
    connector = AliyunSmsConnector(https_config(tls_emulator))

    def send():
        if mode == "sync":
            return connector.send_message("13800138000", "SignIn", {"code": "1"})

        async def main():
            async with connector:
                await connector.send_message_async("13800138000", "SignIn", {"code": "1"})

        return asyncio.run(main())

    with pytest.raises(NetworkError) as info:
        send()
    error = info.value
    assert (error.code, error.maybe_sent, error.retryable) == ("CertificateInvalid", False, False)
    # maxAttempts is 3: a certificate that failed once cannot heal.
    assert error.attempts == 1
    assert tls_emulator.requests == []


def test_ca_file_must_exist(tls_emulator, tmp_path):
    """A caFile that does not exist is a ConfigError."""
    with pytest.raises(ConfigError, match="caFile"):
        AliyunSmsConnector(https_config(tls_emulator, caFile=str(tmp_path / "missing.pem")))


def test_sdk_async_path_untouched_beside_the_connector(tls_emulator):
    """The SDK's own async call in the same loop keeps its own behaviour and works."""
    connector = AliyunSmsConnector(https_config(tls_emulator, caFile=tls_emulator.ca_file))
    client = raw_client(tls_emulator, ca=tls_emulator.ca_file)
    transport = connector._lanes["china"].transport

    async def main():
        await connector.send_message_async("13800138000", "SignIn", {"code": "1"})
        sessions_before = dict(transport._async._sessions)
        request = models.SendSmsRequest(
            phone_numbers="13900139000",
            sign_name=SIGN,
            template_code="SMS_CODE",
            template_param='{"code":"2"}',
        )
        response = await client.send_sms_with_options_async(request, RuntimeOptions())
        sessions_after = dict(transport._async._sessions)
        await connector.aclose()
        return response, sessions_before, sessions_after

    response, before, after = asyncio.run(main())
    assert response.body.code == "OK"
    assert before == after
    assert len(before) == 1
    assert len(tls_emulator.requests) == 2


def test_one_tls_context_for_both_paths(tls_emulator):
    """The sync pool and the async session verify with the same loaded SSL context."""
    connector = AliyunSmsConnector(https_config(tls_emulator, caFile=tls_emulator.ca_file))
    other = AliyunSmsConnector(https_config(tls_emulator, caFile=tls_emulator.ca_file))
    transport = connector._lanes["china"].transport
    connector.send_message("13800138000", "SignIn", {"code": "1"})

    async def main():
        await connector.send_message_async("13900139000", "SignIn", {"code": "2"})
        session = transport._async._sessions[asyncio.get_running_loop()].session
        context = session.connector._ssl
        await connector.aclose()
        return context

    assert asyncio.run(main()) is transport._ssl
    # The CA bundle is loaded once per file, not once per connector.
    assert other._lanes["china"].transport._ssl is transport._ssl


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_https_to_the_plain_http_emulator(emulator, mode):
    """Forgetting protocol: http names the cause and the fix, and is never retried."""
    from tests.fault_servers import FaultServer

    def send(connector):
        if mode == "sync":
            with connector:
                return connector.send_message("13800138000", "SignIn", {"code": "1"})

        async def main():
            async with connector:
                await connector.send_message_async("13800138000", "SignIn", {"code": "1"})

        return asyncio.run(main())

    # The emulator itself: what a user who forgot the protocol meets.
    with pytest.raises(NetworkError) as info:
        send(AliyunSmsConnector(https_config(emulator)))
    error = info.value
    assert error.code == "PlainHttpEndpoint"
    assert "answered the TLS handshake in plain HTTP" in str(error)
    assert "set protocol: http" in str(error)
    assert (error.maybe_sent, error.retryable) == (False, False)
    # maxAttempts is 3: a server that speaks http:// will not learn TLS.
    assert error.attempts == 1
    assert emulator.requests == []

    # A plain-HTTP server that counts connections: one handshake, and no other.
    with FaultServer("ok") as server:
        config = https_config(emulator, endpoint=server.host)
        with pytest.raises(NetworkError) as info:
            send(AliyunSmsConnector(config))
        assert info.value.code == "PlainHttpEndpoint"
        assert server.connections == 1
        assert server.requests == 0
