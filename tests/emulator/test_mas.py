"""The Message Authentication Service (Dypnsapi) as the official SDK sees it on the emulator.

Every request here is built, signed and parsed by the unmodified
``alibabacloud-dypnsapi20170525`` client, over HTTP to 127.0.0.1, with ACS3 or
v2 signatures; one is signed by hand and sent as a form body, as Logto's
``aliyun-sms-mas`` connector sends it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import string
import time
import uuid
from urllib.parse import quote

import pytest
import requests
from alibabacloud_dypnsapi20170525 import models
from alibabacloud_dypnsapi20170525.client import Client
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException
from alibabacloud_tea_openapi.models import Config
from darabonba.runtime import RuntimeOptions

from aliyun_sms_connector import TemplateType
from aliyun_sms_connector.emulator import (
    DEFAULT_MAS_SIGN_NAME,
    DEFAULT_MAS_TEMPLATES,
    DEFAULT_SIGN_NAME,
    Emulator,
    Template,
)

KEY_ID = "LTAI5tMasKeyId"
SECRET = "mas-secret-value-0123456789"
TOKEN = "sts-token-for-mas"
NUMBER = "13800138000"
GENERATE = '{"code":"##code##","min":"5"}'
ALGORITHMS = ["ACS3-HMAC-SHA256", "v2"]


class FakeClock:
    """The emulator's clock, moved by the test instead of sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def emulator(clock):
    with Emulator({KEY_ID: SECRET}, clock=clock, security_tokens={TOKEN: KEY_ID}) as running:
        yield running


def make_client(emulator, algorithm=None, *, key_id=KEY_ID, secret=SECRET, **extra) -> Client:
    """The official client, configured by hand as any SDK user would."""
    return Client(
        Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=emulator.endpoint,
            protocol=emulator.protocol,
            signature_algorithm=algorithm,
            **extra,
        )
    )


@pytest.fixture(params=ALGORITHMS)
def client(request, emulator) -> Client:
    """The official client, once with each signature scheme."""
    return make_client(emulator, request.param)


@pytest.fixture
def acs3(emulator) -> Client:
    return make_client(emulator)


def sms_client(emulator) -> SmsClient:
    """The official Dysmsapi client, on the same emulator."""
    return SmsClient(
        Config(
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            endpoint=emulator.endpoint,
            protocol="http",
        )
    )


def send(client: Client, number: str = NUMBER, **fields) -> models.SendSmsVerifyCodeResponseBody:
    fields.setdefault("sign_name", DEFAULT_MAS_SIGN_NAME)
    fields.setdefault("template_code", "100001")
    fields.setdefault("template_param", GENERATE)
    request = models.SendSmsVerifyCodeRequest(phone_number=number, **fields)
    response = client.send_sms_verify_code_with_options(request, RuntimeOptions())
    assert response.status_code == 200
    return response.body


def check(
    client: Client, code: str, number: str = NUMBER, **fields
) -> models.CheckSmsVerifyCodeResponseBody:
    request = models.CheckSmsVerifyCodeRequest(phone_number=number, verify_code=code, **fields)
    response = client.check_sms_verify_code_with_options(request, RuntimeOptions())
    assert response.status_code == 200
    return response.body


def verdict(client: Client, code: str, number: str = NUMBER, **fields) -> str:
    body = check(client, code, number, **fields)
    assert (body.code, body.success) == ("OK", True)
    return body.model.verify_result


def other_code(code: str) -> str:
    """A code of the same shape that is not ``code``."""
    return code[:-1] + ("1" if code[-1] != "1" else "2")


class TestSendAndCheck:
    def test_a_generated_code_passes(self, emulator, client):
        """SendSmsVerifyCode generates a code; CheckSmsVerifyCode says PASS for it."""
        body = send(client)
        assert (body.code, body.message, body.success) == ("OK", "成功", True)
        assert body.model.biz_id == emulator.outbox[0].biz_id
        assert body.model.request_id == body.request_id
        assert verdict(client, emulator.last_code(NUMBER)) == "PASS"

    def test_a_wrong_code_is_unknown(self, emulator, client):
        """A wrong code is UNKNOWN, and the right one still passes after it."""
        send(client)
        code = emulator.last_code(NUMBER)
        assert verdict(client, other_code(code)) == "UNKNOWN"
        assert verdict(client, code) == "PASS"

    def test_a_code_passes_once(self, emulator, client):
        """A PASS uses the code up: the same code checked again is UNKNOWN."""
        send(client)
        code = emulator.last_code(NUMBER)
        assert verdict(client, code) == "PASS"
        assert verdict(client, code) == "UNKNOWN"

    def test_another_number_or_scheme_is_unknown(self, emulator, acs3):
        """A code belongs to its number and scheme (SchemeName, by default 默认方案)."""
        send(acs3, scheme_name="login")
        code = emulator.last_code(NUMBER)
        assert verdict(acs3, code, "13900139000", scheme_name="login") == "UNKNOWN"
        assert verdict(acs3, code) == "UNKNOWN"
        assert verdict(acs3, code, scheme_name="login") == "PASS"

    def test_the_default_scheme_has_aliyuns_name(self, emulator, acs3):
        """A send without SchemeName is checked under 默认方案 as well as without one."""
        send(acs3)
        assert verdict(acs3, emulator.last_code(NUMBER), scheme_name="默认方案") == "PASS"

    def test_a_number_never_sent_to_is_unknown(self, acs3):
        """Checking a number with no code is UNKNOWN, not an error."""
        assert verdict(acs3, "1234") == "UNKNOWN"

    def test_out_id_comes_back(self, emulator, acs3):
        """OutId is kept in the answers and the outbox; absent, it is left out of the answer."""
        assert send(acs3, out_id="order-7").model.out_id == "order-7"
        assert emulator.outbox[0].out_id == "order-7"
        body = check(acs3, emulator.last_code(NUMBER), out_id="order-7")
        assert (body.model.verify_result, body.model.out_id) == ("PASS", "order-7")
        emulator.reset()
        assert "OutId" not in send(acs3).model.to_map()

    def test_async_client(self, emulator, acs3):
        """The SDK's async methods (aiohttp) get the same answers."""

        async def flow():
            request = models.SendSmsVerifyCodeRequest(
                phone_number=NUMBER,
                sign_name=DEFAULT_MAS_SIGN_NAME,
                template_code="100001",
                template_param=GENERATE,
            )
            sent = await acs3.send_sms_verify_code_with_options_async(request, RuntimeOptions())
            checked = await acs3.check_sms_verify_code_with_options_async(
                models.CheckSmsVerifyCodeRequest(
                    phone_number=NUMBER, verify_code=emulator.last_code(NUMBER)
                ),
                RuntimeOptions(),
            )
            return sent.body.code, checked.body.model.verify_result

        assert asyncio.run(flow()) == ("OK", "PASS")


class TestValidity:
    def test_a_code_expires_after_valid_time(self, emulator, acs3, clock):
        """The default ValidTime is 300 s on the emulator's clock."""
        send(acs3)
        code = emulator.last_code(NUMBER)
        clock.advance(300)
        assert verdict(acs3, code) == "UNKNOWN"

    def test_a_code_is_live_until_then(self, emulator, acs3, clock):
        """At 299 s the code still passes."""
        send(acs3)
        clock.advance(299)
        assert verdict(acs3, emulator.last_code(NUMBER)) == "PASS"

    def test_valid_time_is_the_callers(self, emulator, acs3, clock):
        """ValidTime=30 gives a code 30 seconds."""
        send(acs3, valid_time=30)
        code = emulator.last_code(NUMBER)
        clock.advance(29)
        assert verdict(acs3, other_code(code)) == "UNKNOWN"
        clock.advance(1)
        assert verdict(acs3, code) == "UNKNOWN"


class TestInterval:
    def test_a_second_send_within_the_interval_is_frequency_fail(self, emulator, client, clock):
        """Within 60 s (the default Interval) a second send is FREQUENCY_FAIL, HTTP 200."""
        send(client)
        clock.advance(59)
        body = send(client)
        assert (body.code, body.success, body.model) == ("FREQUENCY_FAIL", False, None)
        assert len(emulator.outbox) == 1

    def test_after_the_interval_a_send_goes_out(self, emulator, acs3, clock):
        """At 60 s the next send is accepted."""
        send(acs3)
        clock.advance(60)
        assert send(acs3).code == "OK"
        assert len(emulator.outbox) == 2

    def test_interval_is_the_callers(self, acs3, clock):
        """Interval=5 allows a resend after 5 s and not before."""
        send(acs3, interval=5)
        clock.advance(4)
        assert send(acs3, interval=5).code == "FREQUENCY_FAIL"
        clock.advance(1)
        assert send(acs3, interval=5).code == "OK"

    def test_the_interval_is_per_number_and_scheme(self, acs3):
        """Another number, or another scheme for the same number, is not held back."""
        send(acs3)
        assert send(acs3, "13900139000").code == "OK"
        assert send(acs3, scheme_name="bind").code == "OK"

    def test_a_refused_send_does_not_start_the_interval(self, acs3):
        """A send refused for its parameters leaves the interval untouched."""
        assert send(acs3, code_length=9).code == "INVALID_PARAMETERS"
        assert send(acs3).code == "OK"

    def test_a_refused_resend_keeps_the_old_code(self, emulator, acs3, clock):
        """FREQUENCY_FAIL generates nothing: the code sent before still passes."""
        send(acs3)
        code = emulator.last_code(NUMBER)
        clock.advance(10)
        assert send(acs3).code == "FREQUENCY_FAIL"
        assert emulator.last_code(NUMBER) == code
        assert verdict(acs3, code) == "PASS"


class TestDuplicatePolicy:
    def resend(self, emulator, acs3, clock, policy):
        send(acs3, duplicate_policy=policy)
        first = emulator.last_code(NUMBER)
        clock.advance(60)
        send(acs3, duplicate_policy=policy)
        second = emulator.last_code(NUMBER)
        if first == second:  # one chance in 10**4: draw again
            clock.advance(60)
            send(acs3, duplicate_policy=policy)
            second = emulator.last_code(NUMBER)
        assert first != second
        return first, second

    def test_policy_1_a_new_code_replaces_the_old(self, emulator, acs3, clock):
        """DuplicatePolicy=1 (the default): only the latest code passes."""
        first, second = self.resend(emulator, acs3, clock, 1)
        assert verdict(acs3, first) == "UNKNOWN"
        assert verdict(acs3, second) == "PASS"

    def test_the_default_policy_is_1(self, emulator, acs3, clock):
        """Without DuplicatePolicy, a resend makes the earlier code UNKNOWN."""
        first, _ = self.resend(emulator, acs3, clock, None)
        assert verdict(acs3, first) == "UNKNOWN"

    def test_policy_2_every_live_code_passes(self, emulator, acs3, clock):
        """DuplicatePolicy=2: each code within its validity passes, once."""
        first, second = self.resend(emulator, acs3, clock, 2)
        assert verdict(acs3, first) == "PASS"
        assert verdict(acs3, second) == "PASS"
        assert verdict(acs3, first) == "UNKNOWN"

    def test_policy_2_codes_still_expire(self, emulator, acs3, clock):
        """Under DuplicatePolicy=2 the first code still lapses at its own ValidTime."""
        first, second = self.resend(emulator, acs3, clock, 2)
        clock.advance(241)  # the first is 301 s old, the second 241 s
        assert verdict(acs3, first) == "UNKNOWN"
        assert verdict(acs3, second) == "PASS"

    @pytest.mark.parametrize("policy", [0, 3])
    def test_other_policies_are_refused(self, acs3, policy):
        """Only 1 and 2 exist."""
        body = send(acs3, duplicate_policy=policy)
        assert (body.code, body.success) == ("INVALID_PARAMETERS", False)


class TestGeneratedCodes:
    def test_return_verify_code(self, emulator, acs3, clock):
        """ReturnVerifyCode=true puts the code in Model.VerifyCode; otherwise it is absent."""
        plain = send(acs3)
        assert "VerifyCode" not in plain.model.to_map()
        clock.advance(60)
        body = send(acs3, return_verify_code=True)
        assert body.model.verify_code == emulator.last_code(NUMBER)
        assert verdict(acs3, body.model.verify_code) == "PASS"

    def test_the_default_is_four_digits(self, emulator, acs3):
        """Without CodeLength and CodeType, the code is 4 digits."""
        send(acs3)
        assert re.fullmatch(r"[0-9]{4}", emulator.last_code(NUMBER))

    @pytest.mark.parametrize("length", [4, 6, 8])
    def test_code_length(self, emulator, acs3, length):
        """CodeLength 4 to 8 gives that many characters."""
        send(acs3, code_length=length)
        assert len(emulator.last_code(NUMBER)) == length

    @pytest.mark.parametrize("length", [0, 3, 9])
    def test_code_length_out_of_bounds(self, emulator, acs3, length):
        """CodeLength outside 4-8 is refused, and nothing is sent."""
        body = send(acs3, code_length=length)
        assert (body.code, body.success) == ("INVALID_PARAMETERS", False)
        assert emulator.outbox == []

    @pytest.mark.parametrize(
        ("code_type", "alphabet"),
        [
            (1, string.digits),
            (2, string.ascii_uppercase),
            (3, string.ascii_lowercase),
            (4, string.ascii_letters),
            (5, string.digits + string.ascii_uppercase),
            (6, string.digits + string.ascii_lowercase),
            (7, string.digits + string.ascii_letters),
        ],
    )
    def test_code_type(self, emulator, acs3, clock, code_type, alphabet):
        """CodeType 1-7 draws from Aliyun's seven alphabets, and only from them."""
        seen: set[str] = set()
        for _ in range(8):
            send(acs3, code_type=code_type, code_length=8)
            code = emulator.last_code(NUMBER)
            assert set(code) <= set(alphabet)
            seen.update(code)
            clock.advance(60)
        # 64 draws reach beyond a single character class when the alphabet has more.
        classes = [string.digits, string.ascii_uppercase, string.ascii_lowercase]
        assert sum(1 for c in classes if seen & set(c)) == sum(
            1 for c in classes if set(c) <= set(alphabet)
        )

    @pytest.mark.parametrize("code_type", [0, 8])
    def test_code_type_out_of_bounds(self, acs3, code_type):
        """CodeType outside 1-7 is refused."""
        assert send(acs3, code_type=code_type).code == "INVALID_PARAMETERS"

    def test_letters_are_checked_case_insensitively_by_default(self, emulator, acs3, clock):
        """CaseAuthPolicy 1 (the default) ignores case; 2 does not."""
        send(acs3, code_type=2, duplicate_policy=2)
        upper = emulator.last_code(NUMBER)
        assert verdict(acs3, upper.lower(), case_auth_policy=2) == "UNKNOWN"
        assert verdict(acs3, upper.lower()) == "PASS"

    def test_placeholder_inside_a_longer_value(self):
        """##code## is replaced wherever it stands in a value (a free-text template)."""
        templates = {"100009": Template("${content}", TemplateType.NOTIFICATION)}
        with Emulator({KEY_ID: SECRET}, mas_templates=templates) as other:
            client = make_client(other)
            param = json.dumps({"content": "Code ##code##, 5 min."})
            assert send(client, template_code="100009", template_param=param).code == "OK"
            code = other.last_code(NUMBER)
            assert other.outbox[0].text == f"【{DEFAULT_MAS_SIGN_NAME}】Code {code}, 5 min."
            assert verdict(client, code) == "PASS"


class TestOutbox:
    def test_the_outbox_shows_the_text_with_the_code(self, emulator, acs3):
        """The message is Aliyun's system template with the generated code, marked as MAS."""
        send(acs3, scheme_name="login", out_id="o-1")
        [message] = emulator.outbox
        code = emulator.last_code(NUMBER)
        expected = DEFAULT_MAS_TEMPLATES["100001"]
        assert isinstance(expected, str)
        text = expected.replace("${code}", code).replace("${min}", "5")
        assert message.text == f"【{DEFAULT_MAS_SIGN_NAME}】{text}"
        assert (message.product, message.verify_code, message.scheme_name) == ("mas", code, "login")
        assert (message.phone_number, message.template_code) == (NUMBER, "100001")
        assert message.params == {"code": code, "min": "5"}

    def test_a_code_of_the_callers_is_sent_as_is_and_cannot_be_checked(self, emulator, acs3):
        """A literal code goes out unchanged; CheckSmsVerifyCode cannot pass it."""
        body = send(acs3, template_param='{"code":"482913","min":"10"}', return_verify_code=True)
        assert body.code == "OK"
        assert "VerifyCode" not in body.model.to_map()
        [message] = emulator.outbox
        assert "482913" in message.text
        assert message.verify_code is None
        assert emulator.last_code(NUMBER) == "482913"
        assert verdict(acs3, "482913") == "UNKNOWN"

    def test_a_literal_code_still_counts_for_the_interval(self, acs3):
        """A send with the caller's code is a send: the next one within 60 s is refused."""
        send(acs3, template_param='{"code":"4829","min":"10"}')
        assert send(acs3).code == "FREQUENCY_FAIL"

    def test_last_code_by_product(self, emulator, acs3):
        """last_code reads either product's latest message, or one product's."""
        sms = sms_client(emulator)
        send(acs3)
        mas_code = emulator.last_code(NUMBER)
        sms.send_sms_with_options(
            sms_models.SendSmsRequest(
                phone_numbers=NUMBER,
                sign_name=DEFAULT_SIGN_NAME,
                template_code="SMS_000001",
                template_param='{"code":"777777"}',
            ),
            RuntimeOptions(),
        )
        assert emulator.last_code("+86 138 0013 8000") == "777777"
        assert emulator.last_code(NUMBER, product="mas") == mas_code
        assert emulator.last_code(NUMBER, product="sms") == "777777"
        with pytest.raises(LookupError):
            emulator.last_code("13900139000")

    def test_query_send_details_lists_sms_only(self, emulator, acs3):
        """Dysmsapi's QuerySendDetails does not list the other product's messages."""
        sms = sms_client(emulator)
        send(acs3)
        day = emulator.outbox[0].sent_at.strftime("%Y%m%d")
        answer = sms.query_send_details_with_options(
            sms_models.QuerySendDetailsRequest(
                phone_number=NUMBER, send_date=day, page_size=10, current_page=1
            ),
            RuntimeOptions(),
        )
        assert (answer.body.code, answer.body.total_count) == ("OK", "0")

    def test_reset_forgets_codes_and_intervals(self, emulator, acs3):
        """After reset() an old code is UNKNOWN and a send goes out at once."""
        send(acs3)
        code = emulator.last_code(NUMBER)
        emulator.reset()
        assert verdict(acs3, code) == "UNKNOWN"
        assert send(acs3).code == "OK"

    def test_on_message_sees_mas_messages(self, clock):
        """The on_message callback gets MAS messages too."""
        seen = []
        with Emulator({KEY_ID: SECRET}, clock=clock, on_message=seen.append) as emulator:
            send(make_client(emulator))
        assert [m.product for m in seen] == ["mas"]


class TestNumbersSignsAndTemplates:
    @pytest.mark.parametrize(
        ("number", "country"),
        [
            ("13800138000", "852"),
            ("+8613800138000", None),
            ("8613800138000", None),
            ("138 0013 8000", None),
            ("1380013800", None),
            ("14155550100", None),  # 1 and ten digits, but a US number
            ("12345678901", None),
            ("85291234567", "86"),
        ],
    )
    def test_only_mainland_mobiles(self, emulator, acs3, number, country):
        """Anything but an 11-digit mainland mobile with CountryCode 86 is MOBILE_NUMBER_ILLEGAL."""
        body = send(acs3, number, country_code=country)
        assert (body.code, body.success) == ("MOBILE_NUMBER_ILLEGAL", False)
        assert emulator.outbox == []

    def test_country_code_86_is_accepted(self, acs3):
        """CountryCode 86, the default, given explicitly."""
        assert send(acs3, country_code="86").code == "OK"

    def test_check_refuses_non_mainland_numbers(self, acs3):
        """CheckSmsVerifyCode applies the same number rule."""
        body = check(acs3, "1234", "+8613800138000")
        assert (body.code, body.success, body.model) == ("MOBILE_NUMBER_ILLEGAL", False, None)

    def test_unknown_sign_name(self, emulator, acs3):
        """A sign name that is not a system one is refused: custom signatures are not allowed."""
        body = send(acs3, sign_name="AcmeShop")
        assert (body.code, body.success) == ("SMS_SIGNATURE_ILLEGAL", False)
        assert emulator.outbox == []

    def test_unknown_template(self, acs3):
        """A template code that is not a system one is refused."""
        body = send(acs3, template_code="SMS_000001")
        assert (body.code, body.success) == ("SMS_TEMPLATE_ILLEGAL", False)

    @pytest.mark.parametrize(
        ("param", "code"),
        [
            ('{"code":"##code##"}', "TEMPLATE_MISSING_PARAMETERS"),
            ("not json", "INVALID_JSON_PARAM"),
            ('{"code":"12 34","min":"5"}', "TEMPLATE_PARAMS_ILLEGAL"),
        ],
    )
    def test_template_param_rules(self, acs3, param, code):
        """TemplateParam must fill the template with [A-Za-z0-9] values, as JSON."""
        assert send(acs3, template_param=param).code == code

    def test_scheme_name_is_at_most_20_characters(self, acs3):
        """SchemeName longer than 20 characters is refused."""
        assert send(acs3, scheme_name="x" * 21).code == "INVALID_PARAMETERS"
        assert send(acs3, scheme_name="x" * 20).code == "OK"

    def test_sign_names_and_templates_are_configurable(self):
        """mas_sign_names and mas_templates replace the defaults."""
        with Emulator(
            {KEY_ID: SECRET}, mas_sign_names=["阿里云验证"], mas_templates={"200001": "码${code}"}
        ) as emulator:
            client = make_client(emulator)
            assert send(client).code == "SMS_SIGNATURE_ILLEGAL"
            body = send(
                client,
                sign_name="阿里云验证",
                template_code="200001",
                template_param='{"code":"##code##"}',
            )
            assert body.code == "OK"
            assert emulator.outbox[0].text == f"【阿里云验证】码{emulator.last_code(NUMBER)}"

    def test_defaults(self):
        """By default: one system sign name and the templates 100001-100005."""
        emulator = Emulator()
        assert emulator.mas_sign_names == [DEFAULT_MAS_SIGN_NAME]
        assert sorted(emulator.mas_templates) == ["100001", "100002", "100003", "100004", "100005"]
        assert all(t.variables == ["code", "min"] for t in emulator.mas_templates.values()), (
            "every system template has a code and its minutes"
        )

    def test_a_missing_parameter_is_a_gateway_error(self, emulator, acs3):
        """Without PhoneNumber the gateway answers MissingPhoneNumber, HTTP 400, naming Dypnsapi."""
        with pytest.raises(ClientException) as caught:
            acs3.check_sms_verify_code_with_options(
                models.CheckSmsVerifyCodeRequest(verify_code="1234"), RuntimeOptions()
            )
        assert (caught.value.code, caught.value.status_code) == ("MissingPhoneNumber", 400)
        assert caught.value.data["HostId"] == "dypnsapi.aliyuncs.com"


class TestAuthentication:
    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_a_bad_signature_is_refused(self, emulator, algorithm):
        """A wrong secret gets SignatureDoesNotMatch (HTTP 400), and nothing is sent."""
        client = make_client(emulator, algorithm, secret="not-the-secret")
        with pytest.raises(ClientException) as caught:
            send(client)
        assert (caught.value.code, caught.value.status_code) == ("SignatureDoesNotMatch", 400)
        assert emulator.outbox == []

    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_an_unknown_key_is_refused(self, emulator, algorithm):
        """An AccessKey the emulator does not know is InvalidAccessKeyId.NotFound."""
        client = make_client(emulator, algorithm, key_id="LTAInobody")
        with pytest.raises(ClientException) as caught:
            check(client, "1234")
        assert caught.value.code == "InvalidAccessKeyId.NotFound"

    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_sts_token(self, emulator, algorithm):
        """A known STS token is accepted for both actions; an unknown one is refused."""
        client = make_client(emulator, algorithm, security_token=TOKEN)
        assert send(client).code == "OK"
        assert verdict(client, emulator.last_code(NUMBER)) == "PASS"
        stranger = make_client(emulator, algorithm, security_token="sts-token-nobody-issued")
        with pytest.raises(ClientException) as caught:
            check(stranger, "1234")
        assert caught.value.code == "InvalidSecurityToken.Expired"

    def test_form_body_with_v1_signature(self, emulator):
        """Logto's transport: every parameter in a form body, HMAC-SHA1 signed by hand."""
        params = {
            "AccessKeyId": KEY_ID,
            "Action": "SendSmsVerifyCode",
            "CountryCode": "86",
            "Format": "json",
            "PhoneNumber": NUMBER,
            "RegionId": "cn-hangzhou",
            "SignName": DEFAULT_MAS_SIGN_NAME,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": "100001",
            "TemplateParam": '{"code":"5821","min":"10"}',
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "Version": "2017-05-25",
        }
        canonical = "&".join(
            f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items())
        )
        to_sign = f"POST&%2F&{quote(canonical, safe='~')}"
        digest = hmac.new(f"{SECRET}&".encode(), to_sign.encode(), hashlib.sha1).digest()
        params["Signature"] = base64.b64encode(digest).decode()
        answer = requests.post(f"http://{emulator.endpoint}/", data=params, timeout=5)
        assert answer.status_code == 200
        assert answer.json()["Code"] == "OK"
        assert "5821" in emulator.outbox[0].text


class TestFaults:
    def test_a_fault_for_check_leaves_send_alone(self, emulator, acs3):
        """fail_next(action="CheckSmsVerifyCode") waits for the check; the send goes through."""
        emulator.fail_next("BUSINESS_LIMIT_CONTROL", action="CheckSmsVerifyCode")
        assert send(acs3).code == "OK"
        body = check(acs3, emulator.last_code(NUMBER))
        assert (body.code, body.success, body.model) == ("BUSINESS_LIMIT_CONTROL", False, None)
        assert verdict(acs3, emulator.last_code(NUMBER)) == "PASS"

    def test_a_fault_for_send(self, emulator, acs3):
        """fail_next(action="SendSmsVerifyCode") answers the send; nothing reaches the outbox."""
        emulator.fail_next("BUSINESS_LIMIT_CONTROL", action="SendSmsVerifyCode")
        assert verdict(acs3, "1234") == "UNKNOWN"
        body = send(acs3)
        assert (body.code, body.success) == ("BUSINESS_LIMIT_CONTROL", False)
        assert emulator.outbox == []

    def test_a_gateway_fault_names_dypnsapi(self, emulator, acs3):
        """A 503 fault on a Dypnsapi action is the SDK's ServerException, with Dypnsapi's host."""
        emulator.fail_next("ServiceUnavailable", http_status=503, action="SendSmsVerifyCode")
        with pytest.raises(ServerException) as caught:
            send(acs3)
        assert (caught.value.code, caught.value.status_code) == ("ServiceUnavailable", 503)
        assert caught.value.data["HostId"] == "dypnsapi.aliyuncs.com"

    def test_a_fault_for_sms_skips_mas(self, emulator, acs3):
        """A fault scoped to SendSms is not served to SendSmsVerifyCode."""
        emulator.fail_next("isp.SYSTEM_ERROR", action="SendSms")
        assert send(acs3).code == "OK"
        assert len(emulator._faults._faults) == 1

    def test_an_unscoped_fault_serves_either_product(self, emulator, acs3):
        """A fault with no action takes the next request, of whichever product."""
        emulator.fail_next("isp.SYSTEM_ERROR")
        assert send(acs3).code == "isp.SYSTEM_ERROR"

    def test_faults_by_number_work_for_mas(self, emulator, acs3):
        """phone_number scoping reads Dypnsapi's PhoneNumber."""
        emulator.fail_next("FREQUENCY_FAIL", phone_number="+86 139 0013 9000")
        assert send(acs3).code == "OK"
        assert send(acs3, "13900139000").code == "FREQUENCY_FAIL"

    def test_drop_and_invalid_body_by_action(self, emulator, acs3):
        """drop_connection and send_invalid_body take an action too."""
        from darabonba.exceptions import UnretryableException

        emulator.send_invalid_body(action="CheckSmsVerifyCode")
        emulator.drop_connection(action="SendSmsVerifyCode")
        with pytest.raises(UnretryableException):
            send(acs3)
        with pytest.raises(UnretryableException):
            check(acs3, "1234")

    def test_a_misspelt_action_is_refused(self, emulator):
        """An action the emulator does not serve is a ValueError, not a fault that never fires."""
        with pytest.raises(ValueError, match="SendSmsVerifyCod"):
            emulator.fail_next("X", action="SendSmsVerifyCod")
        with pytest.raises(ValueError, match="no action"):
            emulator.delay(1, action="sendsms")


class TestMasConnectorConfig:
    def test_logto_shape(self, emulator):
        """Logto's aliyun-sms-mas keys, all nine usage types on their system templates."""
        config = emulator.mas_connector_config()
        assert config == {
            "accessKeyId": KEY_ID,
            "accessKeySecret": SECRET,
            "signName": DEFAULT_MAS_SIGN_NAME,
            "templates": [
                {"usageType": "SignIn", "templateCode": "100001"},
                {"usageType": "Register", "templateCode": "100001"},
                {"usageType": "ForgotPassword", "templateCode": "100003"},
                {"usageType": "Generic", "templateCode": "100001"},
                {"usageType": "UserPermissionValidation", "templateCode": "100005"},
                {"usageType": "BindNewIdentifier", "templateCode": "100002"},
                {"usageType": "OrganizationInvitation", "templateCode": "100001"},
                {"usageType": "MfaVerification", "templateCode": "100001"},
                {"usageType": "BindMfa", "templateCode": "100001"},
            ],
            "endpoint": f"127.0.0.1:{emulator.port}",
            "protocol": "http",
        }

    def test_overrides(self, emulator):
        """Overrides replace or add keys."""
        config = emulator.mas_connector_config(signName="阿里云验证", readTimeout=100)
        assert (config["signName"], config["readTimeout"]) == ("阿里云验证", 100)

    def test_the_config_drives_the_sdk(self, emulator):
        """Its key, sign name, endpoint and each template code work as they are."""
        config = emulator.mas_connector_config()
        client = Client(
            Config(
                access_key_id=config["accessKeyId"],
                access_key_secret=config["accessKeySecret"],
                endpoint=config["endpoint"],
                protocol=config["protocol"],
            )
        )
        for index, code in enumerate(sorted({t["templateCode"] for t in config["templates"]})):
            body = send(
                client,
                f"1390013900{index}",
                sign_name=config["signName"],
                template_code=code,
            )
            assert body.code == "OK"
        assert [m.template_code for m in emulator.outbox] == [
            "100001",
            "100002",
            "100003",
            "100005",
        ]

    def test_tls(self, clock):
        """With tls=True the config says https and names the CA, and the SDK sends over it."""
        with Emulator({KEY_ID: SECRET}, clock=clock, tls=True) as emulator:
            config = emulator.mas_connector_config()
            assert (config["protocol"], config["caFile"]) == ("https", emulator.ca_file)
            client = Client(
                Config(
                    access_key_id=KEY_ID,
                    access_key_secret=SECRET,
                    endpoint=config["endpoint"],
                    protocol=config["protocol"],
                    ca=config["caFile"],
                )
            )
            assert send(client).code == "OK"
            assert verdict(client, emulator.last_code(NUMBER)) == "PASS"
