"""Receipts, batches, the credential chain and per-region endpoints, against the emulator."""

import asyncio

import pytest
from alibabacloud_credentials.utils import auth_util

from aliyun_sms_connector import (
    AliyunSmsConnector,
    AuthenticationError,
    BatchMessage,
    DeliveryStatus,
    TemplateType,
)
from aliyun_sms_connector.emulator import Emulator, Template

from .conftest import KEY_ID, KEY_SECRET, SIGN, TEMPLATES, connector_config

NOTICE = [{"usageType": "Generic", "templateCode": "SMS_NOTICE", "type": 0}]


class TestDelivery:
    def test_receipts_after_sending(self, emulator, connector):
        """Sent messages come back as delivered; a failed one with its receipt code."""
        first = connector.send_message("13800138000", "SignIn", {"code": "1"}, out_id="o-1")
        second = connector.send_message("+8613900139000", "SignIn", {"code": "2"})
        emulator.fail_delivery(second.biz_id, "USER_REJECT")
        [report] = connector.query_delivery("+86 138 0013 8000")
        assert (report.status, report.error_code, report.out_id) == (
            DeliveryStatus.DELIVERED,
            "DELIVERED",
            "o-1",
        )
        assert report.template_code == "SMS_SIGNIN"
        assert report.send_time.utcoffset().total_seconds() == 8 * 3600
        assert report.receive_time > report.send_time
        [failed] = second.query_delivery()
        assert (failed.status, failed.error_code) == (DeliveryStatus.FAILED, "USER_REJECT")
        assert first.query_delivery()[0].content == "【AcmeSign】Sign in with 1."

    def test_paging_over_many_messages(self, emulator):
        """120 messages to one number on one day come back whole, 50 a page."""
        connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))
        for i in range(120):
            connector.send_message("13800138000", "Generic", {"name": "A", "order": str(i)})
        before = len(emulator.requests)
        reports = connector.query_delivery("13800138000")
        assert len(reports) == 120
        assert len(emulator.requests) - before == 3

    def test_filter_by_biz_id_and_date(self, emulator, connector, clock):
        """biz_id narrows the answer; another day has nothing."""
        result = connector.send_message("13800138000", "SignIn", {"code": "1"})
        clock.advance(61)
        connector.send_message("13800138000", "SignIn", {"code": "2"})
        assert len(connector.query_delivery("13800138000", biz_id=result.biz_id)) == 1
        assert connector.query_delivery("13800138000", send_date="20200101") == []

    def test_async(self, emulator, connector):
        """The async twins give the same receipts."""

        async def main():
            async with connector:
                result = await connector.send_message_async("13800138000", "SignIn", {"code": "1"})
                return await result.query_delivery_async()

        [report] = asyncio.run(main())
        assert report.status is DeliveryStatus.DELIVERED


class TestBatch:
    def test_250_recipients_with_one_invalid(self, clock):
        """Chunks of 100, per-recipient sign names and values, the invalid one reported."""
        with Emulator({KEY_ID: KEY_SECRET}, [SIGN, "OtherSign"], TEMPLATES, clock) as emulator:
            connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))
            messages = [
                BatchMessage(
                    f"1380000{i:04d}",
                    {"name": f"n{i}", "order": str(i)},
                    sign_name="OtherSign" if i % 2 else None,
                )
                for i in range(250)
            ]
            messages[3] = BatchMessage("12345", {"name": "x", "order": "x"})
            result = connector.send_batch(messages)
            assert [len(c.phone_numbers) for c in result.chunks] == [100, 100, 49]
            assert [(r.index, r.error.code) for r in result.rejected] == [(3, "InvalidPhoneNumber")]
            assert len(emulator.outbox) == 249
            by_number = {m.phone_number: m for m in emulator.outbox}
            assert by_number["13800000001"].text == "【OtherSign】Hi n1, your order 1 shipped."
            assert by_number["13800000002"].text == "【AcmeSign】Hi n2, your order 2 shipped."
            assert {m.biz_id for m in emulator.outbox} == set(result.biz_ids)

    def test_a_refused_chunk_does_not_stop_the_others(self, emulator):
        """An unknown sign name fails its chunk with SignNameError; nothing else breaks."""
        connector = AliyunSmsConnector(connector_config(emulator, templates=NOTICE))
        result = connector.send_batch(
            [BatchMessage("13800138000", {"name": "a", "order": "1"}, sign_name="Nobody")]
        )
        [chunk] = result.chunks
        assert chunk.error.code == "isv.SMS_SIGNATURE_ILLEGAL"
        assert emulator.outbox == []


@pytest.fixture
def chain(monkeypatch):
    """The default chain finds only what a test puts in its environment provider."""
    for name in ("access_key_id", "access_key_secret", "security_token"):
        monkeypatch.setattr(auth_util, f"environment_{name}", None)
    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
    monkeypatch.setattr(auth_util, "environment_cli_profile_disabled", "true")
    monkeypatch.setattr(auth_util, "environment_credentials_file", "/nonexistent/credentials")
    return monkeypatch


def chain_config(emulator):
    config = connector_config(emulator)
    del config["accessKeyId"], config["accessKeySecret"]
    return {**config, "credentials": "default"}


class TestCredentialChain:
    def test_environment_provider(self, emulator, chain):
        """The default chain's environment provider signs requests the emulator accepts."""
        chain.setattr(auth_util, "environment_access_key_id", KEY_ID)
        chain.setattr(auth_util, "environment_access_key_secret", KEY_SECRET)
        AliyunSmsConnector(chain_config(emulator)).send_message(
            "13800138000", "SignIn", {"code": "1"}
        )
        assert len(emulator.outbox) == 1

    def test_sts_token_from_the_chain_is_validated(self, clock, chain):
        """An STS token from the chain is checked by the emulator."""
        tokens = {"good-token": KEY_ID}
        with Emulator(
            {KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock, security_tokens=tokens
        ) as emu:
            chain.setattr(auth_util, "environment_access_key_id", KEY_ID)
            chain.setattr(auth_util, "environment_access_key_secret", KEY_SECRET)
            chain.setattr(auth_util, "environment_security_token", "good-token")
            AliyunSmsConnector(chain_config(emu)).send_message(
                "13800138000", "SignIn", {"code": "1"}
            )
            chain.setattr(auth_util, "environment_security_token", "stolen-token")
            with pytest.raises(AuthenticationError) as info:
                AliyunSmsConnector(chain_config(emu)).send_message(
                    "13900139000", "SignIn", {"code": "1"}
                )
            assert info.value.code == "InvalidSecurityToken.Expired"
            assert "stolen-token" not in str(info.value)

    def test_nothing_found(self, emulator, chain):
        """A chain that finds nothing is AuthenticationError, before any request."""
        connector = AliyunSmsConnector(chain_config(emulator))
        with pytest.raises(AuthenticationError) as info:
            connector.send_message("13800138000", "SignIn", {"code": "1"})
        assert info.value.code == "CredentialsUnavailable"
        assert emulator.requests == []


def test_overseas_endpoint(clock):
    """Mainland codes go to one endpoint, overseas codes to the other."""
    overseas_templates = {"SMS_INTL": Template("Code ${code}", TemplateType.INTERNATIONAL_MESSAGE)}
    with (
        Emulator({KEY_ID: KEY_SECRET}, [SIGN], TEMPLATES, clock) as mainland,
        Emulator({KEY_ID: KEY_SECRET}, [SIGN], overseas_templates, clock) as international,
    ):
        connector = AliyunSmsConnector(
            connector_config(mainland, overseasEndpoint=international.endpoint)
        )
        connector.send_message("13800138000", "SignIn", {"code": "1"})
        connector.send_message("+14155550100", "Register", {"code": "2"})
        assert [m.phone_number for m in mainland.outbox] == ["13800138000"]
        assert [m.phone_number for m in international.outbox] == ["14155550100"]
