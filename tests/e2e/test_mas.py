"""AliyunMasConnector end to end: Logto's config, both code modes, mainland only, concurrency.

The connector signs with the SDK's own functions (ACS3 or v2, with or without
an STS token) and talks real HTTP to the emulator's Dypnsapi on 127.0.0.1.
Every test runs sync, then async (one event loop per test).
"""

from __future__ import annotations

import asyncio

import pytest

from aliyun_sms_connector import (
    AliyunMasConnector,
    AliyunSmsError,
    AuthenticationError,
    InvalidPhoneNumberError,
    RateLimitExceededError,
    UsageType,
)
from aliyun_sms_connector.emulator import DEFAULT_MAS_SIGN_NAME, DEFAULT_MAS_TEMPLATES, Emulator

from .mas_helpers import CHECK, KEY_ID, NUMBER, SECRET, SEND, TOKEN, mas_config, requests_for

CODE = "482913"
VERIFY = {"code_length": 6, "valid_time": 300, "interval": 60}


def keyed(emulator: Emulator, **overrides):
    """Logto's config with this suite's AccessKey (the one the emulator knows)."""
    return mas_config(emulator, accessKeyId=KEY_ID, accessKeySecret=SECRET, **overrides)


def text_of(template_code: str, code: str, minutes: str) -> str:
    content = str(DEFAULT_MAS_TEMPLATES[template_code])
    body = content.replace("${code}", code).replace("${min}", minutes)
    return f"【{DEFAULT_MAS_SIGN_NAME}】{body}"


class TestLogtoConfig:
    def test_pasted_as_is_sends_a_code(self, logto_emulator, run):
        """Logto's README example, only pointed at the emulator, sends the caller's code."""
        connector = AliyunMasConnector(mas_config(logto_emulator))
        result = run(connector, "send_message", "+8613800138000", "SignIn", {"code": CODE})
        [message] = logto_emulator.outbox
        assert (message.product, message.phone_number) == ("mas", NUMBER)
        assert (message.sign_name, message.template_code) == (DEFAULT_MAS_SIGN_NAME, "100001")
        assert message.params == {"code": CODE, "min": "10"}
        assert message.text == text_of("100001", CODE, "10")
        assert (result.biz_id, result.phone_number) == (message.biz_id, NUMBER)
        assert (result.usage_type, result.attempts) == (UsageType.SIGN_IN, 1)
        [request] = logto_emulator.requests
        assert (request.action, request.params["CountryCode"]) == (SEND, "86")
        assert request.params["PhoneNumber"] == NUMBER

    @pytest.mark.parametrize(
        ("usage_type", "template_code"),
        [
            ("Register", "100001"),
            ("ForgotPassword", "100003"),
            # Not in Logto's example: Generic serves it.
            ("BindNewIdentifier", "100001"),
        ],
    )
    def test_usage_types_pick_logtos_templates(
        self, logto_emulator, run, usage_type, template_code
    ):
        """Each usage type goes out with the template Logto's table gives it."""
        connector = AliyunMasConnector(mas_config(logto_emulator))
        result = run(connector, "send_message", NUMBER, usage_type, {"code": CODE})
        assert result.template_code == template_code
        assert logto_emulator.outbox[0].template_code == template_code


class TestSigning:
    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    @pytest.mark.parametrize("token", [None, TOKEN], ids=["keys", "sts"])
    def test_every_call_is_signed_and_accepted(self, mas_emulator, run, algorithm, token):
        """A message, an Aliyun-made code and its check pass the emulator's signature check."""
        extra = {"signatureAlgorithm": algorithm}
        if token is not None:
            extra["securityToken"] = token
        connector = AliyunMasConnector(keyed(mas_emulator, **extra))
        run(connector, "send_message", "13900139000", "Generic", {"code": CODE})
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        assert run(connector, "check_verify_code", NUMBER, "SignIn", mas_emulator.last_code(NUMBER))
        assert [r.action for r in mas_emulator.requests] == [SEND, SEND, CHECK]

    @pytest.mark.parametrize("algorithm", ["ACS3-HMAC-SHA256", "v2"])
    def test_a_wrong_token_is_refused(self, mas_emulator, run, algorithm):
        """The token is carried and checked: an unknown one is an AuthenticationError."""
        config = keyed(mas_emulator, signatureAlgorithm=algorithm, securityToken="CAIS-unknown")
        error = run.outcome(
            AliyunMasConnector(config), "send_message", NUMBER, "SignIn", {"code": CODE}
        )
        assert isinstance(error, AuthenticationError), repr(error)
        assert error.code.startswith("InvalidSecurityToken")
        assert mas_emulator.outbox == []

    def test_a_wrong_secret_is_refused(self, mas_emulator, run):
        """The emulator checks the signature: another secret is SignatureDoesNotMatch."""
        config = mas_config(mas_emulator, accessKeyId=KEY_ID, accessKeySecret="another-secret")
        error = run.outcome(
            AliyunMasConnector(config), "send_verify_code", NUMBER, "SignIn", **VERIFY
        )
        assert isinstance(error, AuthenticationError), repr(error)
        assert (error.code, error.maybe_sent, error.attempts) == ("SignatureDoesNotMatch", False, 1)


class TestSendMessage:
    def test_the_payloads_minutes(self, mas_emulator, run):
        """min from the payload replaces Logto's 10; the outbox shows the text with the code."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_message", NUMBER, "ForgotPassword", {"code": "7291", "min": 5})
        [message] = mas_emulator.outbox
        assert message.params == {"code": "7291", "min": "5"}
        assert message.text == text_of("100003", "7291", "5")
        assert mas_emulator.last_code(NUMBER, product="mas") == "7291"

    @pytest.mark.parametrize("to", [NUMBER, "+86 138 0013 8000", "008613800138000"])
    def test_mainland_forms(self, mas_emulator, run, to):
        """The bare 11 digits and the prefixed forms all reach PhoneNumber as 11 digits."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_message", to, "SignIn", {"code": CODE})
        assert mas_emulator.requests[0].params["PhoneNumber"] == NUMBER


class TestAliyunMadeCodes:
    def test_pass_then_used_up(self, mas_emulator, run):
        """The code Aliyun made passes once; the same code again is UNKNOWN (False)."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        result = run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        [message] = mas_emulator.outbox
        assert result.biz_id == message.biz_id
        code = mas_emulator.last_code(NUMBER)
        assert code.isdigit()
        assert len(code) == 6
        assert code in message.text
        assert message.params["min"] == "5"
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is True
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is False

    def test_wrong_code_is_unknown(self, mas_emulator, run):
        """A wrong code is False, and the right one still passes after it."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        code = mas_emulator.last_code(NUMBER)
        wrong = "".join(str((int(c) + 1) % 10) for c in code)
        assert run(connector, "check_verify_code", NUMBER, "SignIn", wrong) is False
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is True

    def test_the_code_belongs_to_its_number(self, mas_emulator, run):
        """Another number's check with this code is False."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        code = mas_emulator.last_code(NUMBER)
        assert run(connector, "check_verify_code", "13900139000", "SignIn", code) is False

    def test_expiry_on_the_emulators_clock(self, mas_emulator, clock, run):
        """valid_time=120: live at 119 s on a second send's code, gone at 120 s."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(
            connector,
            "send_verify_code",
            NUMBER,
            "SignIn",
            code_length=4,
            valid_time=120,
            interval=0,
        )
        clock.advance(120)
        assert (
            run(connector, "check_verify_code", NUMBER, "SignIn", mas_emulator.last_code(NUMBER))
            is False
        )
        run(
            connector,
            "send_verify_code",
            NUMBER,
            "SignIn",
            code_length=4,
            valid_time=120,
            interval=0,
        )
        clock.advance(119)
        assert (
            run(connector, "check_verify_code", NUMBER, "SignIn", mas_emulator.last_code(NUMBER))
            is True
        )

    def test_interval_is_a_rate_limit_sent_once(self, mas_emulator, clock, run):
        """A resend within Interval: FREQUENCY_FAIL, maybe_sent False, one request, not retried."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        first = mas_emulator.last_code(NUMBER)
        clock.advance(59)
        before = requests_for(mas_emulator, SEND)
        error = run.outcome(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        assert isinstance(error, RateLimitExceededError), repr(error)
        assert (error.code, error.maybe_sent, error.retryable) == ("FREQUENCY_FAIL", False, False)
        assert error.attempts == 1
        assert requests_for(mas_emulator, SEND) == before + 1
        assert len(mas_emulator.outbox) == 1
        # The refused resend kept the first code alive.
        assert run(connector, "check_verify_code", NUMBER, "SignIn", first) is True

    def test_after_the_interval_a_new_code_replaces_the_old(self, mas_emulator, clock, run):
        """DuplicatePolicy 1: after Interval, the new code passes and the old one no longer does."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        old = mas_emulator.last_code(NUMBER)
        clock.advance(60)
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        new = mas_emulator.last_code(NUMBER)
        if new != old:  # one chance in a million that Aliyun makes the same code
            assert run(connector, "check_verify_code", NUMBER, "SignIn", old) is False
        assert run(connector, "check_verify_code", NUMBER, "SignIn", new) is True

    @pytest.mark.parametrize("code", ["", "123", "123456789", "12 34", "\uff11\uff12\uff13\uff14"])
    def test_impossible_codes_ask_nothing(self, mas_emulator, run, code):
        """A code Aliyun cannot have made is False with no request."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is False
        assert mas_emulator.requests == []

    def test_scheme_names_keep_codes_apart(self, mas_emulator, run):
        """A usage type's schemeName goes with its send and its check; other schemes fail."""
        templates = [
            {"usageType": "SignIn", "templateCode": "100001", "schemeName": "login"},
            {"usageType": "Generic", "templateCode": "100001"},
        ]
        connector = AliyunMasConnector(keyed(mas_emulator, templates=templates))
        run(connector, "send_verify_code", NUMBER, "SignIn", **VERIFY)
        assert mas_emulator.outbox[0].scheme_name == "login"
        code = mas_emulator.last_code(NUMBER)
        assert run(connector, "check_verify_code", NUMBER, "Generic", code) is False
        assert run(connector, "check_verify_code", NUMBER, "SignIn", code) is True


NOT_MAINLAND = [
    pytest.param("+85261234567", id="hong-kong"),
    pytest.param("+85366123456", id="macao"),
    pytest.param("+886912345678", id="taiwan"),
    pytest.param("+14155550100", id="us"),
    pytest.param("14155550100", id="us-looking-like-mainland"),
    pytest.param("+861012345678", id="beijing-landline"),
    pytest.param("01012345678", id="landline-national"),
    pytest.param("1380013800", id="ten-digits"),
]


class TestMainlandOnly:
    @pytest.mark.parametrize("to", NOT_MAINLAND)
    @pytest.mark.parametrize("method", ["send_message", "send_verify_code", "check_verify_code"])
    def test_refused_before_any_request(self, mas_emulator, run, to, method):
        """Not a mainland China mobile: InvalidPhoneNumberError; the emulator saw nothing."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        args = {
            "send_message": ({"code": CODE},),
            "send_verify_code": (),
            "check_verify_code": ("1234",),
        }[method]
        kwargs = VERIFY if method == "send_verify_code" else {}
        error = run.outcome(connector, method, to, "SignIn", *args, **kwargs)
        assert isinstance(error, InvalidPhoneNumberError), repr(error)
        assert error.maybe_sent is False
        assert mas_emulator.requests == []


class TestConcurrency:
    def test_many_sends_in_flight_then_aclose(self, mas_emulator):
        """40 async sends at once, each to its number with its code; then aclose() refuses more."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        numbers = [f"139{i:08d}" for i in range(40)]

        async def main():
            results = await asyncio.gather(
                *(
                    connector.send_message_async(n, "SignIn", {"code": f"{i:06d}"})
                    for i, n in enumerate(numbers)
                )
            )
            await connector.aclose()
            try:
                await connector.send_message_async(NUMBER, "SignIn", {"code": CODE})
            except AliyunSmsError as error:
                return results, error
            return results, None

        results, closed = asyncio.run(main())
        assert len({r.biz_id for r in results}) == 40
        for i, number in enumerate(numbers):
            assert mas_emulator.last_code(number) == f"{i:06d}"
        assert closed is not None
        assert closed.code == "ConnectorClosed"
        assert len(mas_emulator.requests) == 40

    def test_two_right_checks_at_once_pass_once(self, mas_emulator):
        """Two concurrent checks of the right code: Aliyun says PASS to exactly one."""
        connector = AliyunMasConnector(keyed(mas_emulator))

        async def main():
            async with connector:
                await connector.send_verify_code_async(NUMBER, "SignIn", **VERIFY)
                code = mas_emulator.last_code(NUMBER)
                return await asyncio.gather(
                    *(connector.check_verify_code_async(NUMBER, "SignIn", code) for _ in range(2))
                )

        assert sorted(asyncio.run(main())) == [False, True]
        assert requests_for(mas_emulator, CHECK) == 2

    def test_codes_for_many_numbers_at_once(self, mas_emulator):
        """Aliyun-made codes sent and checked concurrently each pass for their own number."""
        connector = AliyunMasConnector(keyed(mas_emulator))
        numbers = [f"137{i:08d}" for i in range(20)]

        async def main():
            async with connector:
                await asyncio.gather(
                    *(connector.send_verify_code_async(n, "SignIn", **VERIFY) for n in numbers)
                )
                codes = [mas_emulator.last_code(n) for n in numbers]
                return await asyncio.gather(
                    *(
                        connector.check_verify_code_async(n, "SignIn", c)
                        for n, c in zip(numbers, codes, strict=True)
                    )
                )

        assert asyncio.run(main()) == [True] * 20

    def test_aclose_with_sends_in_flight(self, mas_emulator, built_mas):
        """aclose() while sends wait: a typed ConnectorClosed each, maybe-sent if received."""
        mas_emulator.delay(2, count=None)
        connector = AliyunMasConnector(keyed(mas_emulator, readTimeout=5000))

        async def main():
            sends = [
                asyncio.ensure_future(
                    connector.send_verify_code_async(f"136{i:08d}", "SignIn", **VERIFY)
                )
                for i in range(20)
            ]
            await asyncio.sleep(0.3)
            await connector.aclose()
            return await asyncio.gather(*sends, return_exceptions=True)

        outcomes = asyncio.run(main())
        assert all(isinstance(o, AliyunSmsError) for o in outcomes), outcomes
        assert {o.code for o in outcomes} == {"ConnectorClosed"}
        assert all(o.retryable is False for o in outcomes)
        # A request the emulator received may have sent a code: the error says so.
        received = {r.params["PhoneNumber"] for r in mas_emulator.requests}
        numbers = [f"136{i:08d}" for i in range(20)]
        assert received
        assert all(o.maybe_sent for n, o in zip(numbers, outcomes, strict=True) if n in received)
