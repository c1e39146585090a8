"""Property-based tests: arbitrary input only ever yields the library's typed errors."""

import string

import pytest
from alibabacloud_dysmsapi20170525.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aliyun_sms_connector import (
    AliyunSmsConfig,
    AliyunSmsConnector,
    AliyunSmsError,
    ConfigError,
    InvalidPhoneNumberError,
    parse_phone,
)

from . import sdk_fakes
from .conftest import LOGTO_CONFIG, SECRET

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
config_keys = st.sampled_from(
    [
        "accessKeyId",
        "accessKeySecret",
        "signName",
        "templates",
        "strictPhoneRegionNumberCheck",
        "securityToken",
        "endpoint",
        "protocol",
        "connectTimeout",
        "readTimeout",
        "usageType",
        "templateCode",
    ]
) | st.text(max_size=12)
template = st.fixed_dictionaries(
    {},
    optional={
        "usageType": st.sampled_from(["Generic", "SignIn", "Nope"]) | json_values,
        "templateCode": st.text(max_size=8) | json_values,
        "type": st.sampled_from([0, 1, 2, 6, 7, 3]) | json_values,
    },
)
phone_text = (
    st.text(alphabet=string.digits + " +-()x\u0661", max_size=24)
    | st.text(max_size=24)
    # Bare 11-digit numbers starting with 1: the non-strict mainland guess.
    | st.from_regex(r"1[0-9]{10}", fullmatch=True)
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    overrides=st.dictionaries(config_keys, json_values | st.lists(template, max_size=3), max_size=6)
)
def test_arbitrary_config_dicts(overrides):
    """Any config dict is valid or a ConfigError, and no error shows the secret."""
    data = {**LOGTO_CONFIG, **overrides}
    try:
        AliyunSmsConfig.model_validate(data)
    except ConfigError as err:
        assert SECRET not in str(err)
        assert err.problems


@settings(max_examples=500)
@given(raw=phone_text, strict=st.booleans())
def test_arbitrary_phone_strings(raw, strict):
    """Any string parses, or raises InvalidPhoneNumberError showing ≤4 digits."""
    try:
        number = parse_phone(raw, strict=strict)
    except InvalidPhoneNumberError as err:
        digits = "".join(c for c in raw if c.isdigit())
        shown = str(err)
        # No run of 5 of the input's digits may appear: at most the last 4 show.
        assert not any(digits[i : i + 5] in shown for i in range(len(digits) - 4))
    else:
        assert number.aliyun.isdigit()
        if number.region == "china":
            assert len(number.aliyun) == 11 or number.country_code == 86


payload_values = st.text(max_size=12) | st.integers() | st.floats() | st.none() | st.booleans()


@pytest.fixture(scope="module")
def mocked_connector():
    from unittest import mock

    with mock.patch.object(Client, "send_sms_with_options", autospec=True) as send:
        send.return_value = sdk_fakes.ok()
        yield AliyunSmsConnector(LOGTO_CONFIG)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    to=phone_text | st.sampled_from(["13800138000", "+14155550100"]),
    usage=st.sampled_from(["SignIn", "Register", "Test", "bogus"]) | st.text(max_size=8),
    payload=st.dictionaries(st.text(max_size=8), payload_values, max_size=4)
    | st.lists(st.text(max_size=3), max_size=2)
    | st.none(),
)
def test_arbitrary_sends(mocked_connector, to, usage, payload):
    """Any phone, usage type and payload yields a result or a typed error."""
    try:
        result = mocked_connector.send_message(to, usage, payload)
    except AliyunSmsError:
        pass
    else:
        assert result.biz_id
