"""Attack: get a number that is not a mainland mobile past AliyunMasConnector to the network.

Random numbers of several countries are written in every way a form, a bot
or a Chinese keyboard writes them: +, 00 or nothing before the country code,
a national 0, spaces, dashes, dots, parentheses, tabs and newlines, full-width
digits and plus signs, ideographic spaces. Whatever the input, either the
connector refuses it before any request, or the request carries CountryCode 86
and an 11-digit mainland mobile that the input really names: its digits are
that number, after 86, 0086 or nothing (and a national 0).
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliyun_sms_connector import InvalidPhoneNumberError
from tests import wire_fakes

from .test_connector import answer

_FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)} | {"+": "\uff0b", "-": "\uff0d"}

NATIONALS = {
    "86": ["13800138000", "15912345678", "19912345678", "1065529988", "10123456789", "2012345678"],
    "852": ["91234567", "61234567"],
    "853": ["66123456"],
    "886": ["912345678"],
    "1": ["4155550100", "3800138000"],
    "44": ["7400123456"],
    "7": ["9123456789"],
    "8": ["613800138000"],
    "": ["13800138000", "8613800138000", "14155550100", "0013800138000"],
}


@st.composite
def written(draw):
    country = draw(st.sampled_from(sorted(NATIONALS)))
    national = draw(st.sampled_from(NATIONALS[country]))
    lead = draw(st.sampled_from(["+", "00", "", "+0", "0", "+ "])) if country else ""
    trunk = draw(st.sampled_from(["", "", "0", "(0)"]))
    text = f"{lead}{country}{trunk}{national}"
    out = []
    for ch in text:
        if draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from([" ", "-", ".", "(", ")", "\t", "\n", "\u3000"])))
        out.append(_FULLWIDTH.get(ch, ch) if draw(st.booleans()) and draw(st.booleans()) else ch)
    return "".join(out)


def _is_mainland_mobile(national: str) -> bool:
    number = phonenumbers.parse("+86" + national)
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    )


def _digits(text: str) -> str:
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch.isdigit())


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(to=written())
@pytest.mark.parametrize("name", ["send_message", "send_verify_code", "check_verify_code"])
def test_only_real_mainland_mobiles_reach_the_network(mas, transport, name, to):
    transport.reset_mock()
    transport.send.return_value = answer({"BizId": "B", "VerifyResult": "UNKNOWN"})
    args = {
        "send_message": ((to, "SignIn", {"code": "482913"}), {}),
        "send_verify_code": ((to, "SignIn"), {"code_length": 6, "valid_time": 300, "interval": 60}),
        "check_verify_code": ((to, "SignIn", "482913"), {}),
    }[name]
    try:
        getattr(mas, name)(*args[0], **args[1])
    except InvalidPhoneNumberError:
        assert not transport.send.called
        return
    params = wire_fakes.sent(transport.send)
    phone = params["PhoneNumber"]
    assert params["CountryCode"] == "86"
    assert len(phone) == 11
    assert _is_mainland_mobile(phone), f"{to!r} went out as {phone}"
    digits = _digits(to)
    # The same number, with a national 0 after the country code ("+86 (0)138…") at most.
    forms = {lead + trunk + phone for lead in ("", "86", "0086") for trunk in ("", "0")}
    assert digits in forms, f"{to!r} went out as {phone}"
