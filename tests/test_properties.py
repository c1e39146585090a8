"""Property-based tests: arbitrary input only ever yields the library's typed errors."""

import asyncio
import string

import pytest
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
from aliyun_sms_connector.emulator import Emulator

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
    # Fullwidth digits, plus and dash, and the ideographic space: a Chinese keyboard.
    | st.text(alphabet="".join(map(chr, range(0xFF10, 0xFF1A))) + "\uff0b\uff0d\u3000", max_size=24)
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


@settings(max_examples=300)
@given(
    field=st.sampled_from(["accessKeyId", "accessKeySecret", "signName", "securityToken"]),
    value=st.text(min_size=1, max_size=12),
)
def test_accepted_strings_hold_no_control_characters(field, value):
    """Whatever string a config accepts holds no control character, and a refusal echoes none."""
    import unicodedata

    try:
        config = AliyunSmsConfig.model_validate({**LOGTO_CONFIG, field: value})
    except ConfigError as err:
        assert value.strip() == "" or value not in str(err)
    else:
        kept = {
            "accessKeyId": lambda c: c.access_key_id,
            "accessKeySecret": lambda c: c.access_key_secret.get_secret_value(),
            "signName": lambda c: c.sign_name,
            "securityToken": lambda c: c.security_token.get_secret_value(),
        }[field](config)
        assert not any(unicodedata.category(ch) == "Cc" for ch in kept)
        assert "\u2028" not in kept
        assert "\u2029" not in kept


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
send_args = {
    "to": phone_text
    | st.sampled_from(
        [
            "13800138000",
            "+14155550100",
            "\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10",
        ]
    ),
    "usage": st.sampled_from(["SignIn", "Register", "Test", "bogus"]) | st.text(max_size=8),
    "payload": st.dictionaries(st.text(max_size=8), payload_values, max_size=4)
    | st.lists(st.text(max_size=3), max_size=2)
    | st.none(),
}


@pytest.fixture(scope="module")
def emulator():
    """An emulator whose clock moves a day per request, so flow control never refuses."""
    import itertools
    import time

    days = itertools.count(time.time(), 86_400)
    with Emulator(clock=lambda: next(days)) as running:
        yield running


@pytest.fixture(scope="module")
def emulator_connector(emulator):
    config = emulator.connector_config(
        templates=[
            {"usageType": "SignIn", "templateCode": "SMS_000001"},
            {
                "usageType": "Generic",
                "templateCode": {"china": "SMS_000001", "overseas": "SMS_000002"},
            },
        ],
        maxAttempts=1,
    )
    with AliyunSmsConnector(config) as connector:
        yield connector


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**send_args)
def test_arbitrary_sends(emulator_connector, to, usage, payload):
    """Any phone, usage type and payload yields a result or a typed error, over real HTTP."""
    try:
        result = emulator_connector.send_message(to, usage, payload)
    except AliyunSmsError:
        pass
    else:
        assert result.biz_id


@pytest.fixture(scope="module")
def event_loop_for_module():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def async_connector(emulator, event_loop_for_module):
    connector = AliyunSmsConnector(emulator.connector_config(maxAttempts=1))
    yield connector
    event_loop_for_module.run_until_complete(connector.aclose())


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(**send_args)
def test_arbitrary_async_sends(async_connector, event_loop_for_module, to, usage, payload):
    """The async path gives the same: a result or a typed error, never anything else."""
    send = async_connector.send_message_async(to, usage, payload)
    try:
        result = event_loop_for_module.run_until_complete(send)
    except AliyunSmsError:
        pass
    else:
        assert result.biz_id


csv_text = st.text(
    alphabet=st.sampled_from(list('phone,name,sign_name"\n\r\x00 1380013800+ab\ufeff\u3000张')),
    max_size=80,
) | st.text(max_size=40)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=csv_text, encoding=st.sampled_from(["utf-8", "utf-16", "gbk"]))
def test_arbitrary_csv_files(tmp_path_factory, text, encoding):
    """Any CSV file gives rows and line-numbered bad rows, or a ConfigError; nothing else."""
    from aliyun_sms_connector._cli.batch import _batch_rows

    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        return
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_bytes(raw)
    try:
        rows, bad = _batch_rows(path)
    except ConfigError as err:
        assert err.__context__ is None
        assert "\n" not in err.message
    else:
        assert rows or bad
        lines = [row.line for row in [*rows, *bad]]
        assert len(set(lines)) == len(lines)
        assert all(2 <= line <= raw.count(b"\n") + raw.count(b"\r") + 1 for line in lines)


@settings(max_examples=300)
@given(raw=st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_arbitrary_config_bytes(raw):
    """Any bytes give a config or a ConfigError with nothing chained."""
    try:
        AliyunSmsConfig.from_json(b"\xef\xbb\xbf" + raw if raw[:1] == b"{" else raw)
    except ConfigError as err:
        assert err.__context__ is None
        assert err.__cause__ is None
