"""verify._policy: defaults, validation and privacy of VerificationPolicy."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from aliyun_sms_connector import ConfigError
from aliyun_sms_connector.verify import VerificationPolicy


class TestDefaults:
    """The defaults are the issue's table and Aliyun's own limits."""

    def test_table(self):
        """Every default matches the documented table."""
        policy = VerificationPolicy()
        assert policy.code_length == 6
        assert policy.ttl == timedelta(minutes=10)
        assert policy.max_attempts == 5
        assert policy.resend_cooldown == timedelta(seconds=60)
        assert policy.per_number_cooldown == timedelta(seconds=60)
        assert policy.per_number_hourly == 5
        assert policy.per_number_daily == 10
        assert policy.per_ip_hourly == 20
        assert policy.global_hourly is None
        assert policy.allowed_countries is None
        assert dict(policy.test_numbers) == {}

    def test_frozen(self):
        """A policy cannot be changed after it is made."""
        with pytest.raises(dataclasses.FrozenInstanceError):
            VerificationPolicy().max_attempts = 100  # type: ignore[misc]


class TestValidation:
    """Bad values raise one ConfigError naming every bad field."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("code_length", 3),
            ("code_length", 11),
            ("code_length", "6"),
            ("ttl", 0),
            ("ttl", "10m"),
            ("resend_cooldown", -1),
            ("max_attempts", 0),
            ("per_number_hourly", 0),
            ("per_ip_hourly", -5),
            ("global_hourly", 1.5),
            ("allowed_countries", "CN"),
            ("allowed_countries", {"China"}),
            ("test_numbers", {"13800138000": "12"}),
            ("test_numbers", {"13800138000": "abcdef"}),
            ("test_numbers", ["13800138000"]),
        ],
    )
    def test_refused(self, field, value):
        """The field is named in the error's problems."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert [p.field for p in caught.value.problems] == [field]

    def test_every_problem_at_once(self):
        """Two bad fields give one error with two problems."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(code_length=2, max_attempts=0)
        assert {p.field for p in caught.value.problems} == {"code_length", "max_attempts"}

    def test_seconds_become_timedeltas(self):
        """A duration given in seconds is stored as a timedelta."""
        policy = VerificationPolicy(ttl=300, resend_cooldown=30.5)  # type: ignore[arg-type]
        assert policy.ttl == timedelta(minutes=5)
        assert policy.resend_cooldown == timedelta(seconds=30.5)

    def test_countries_are_normalised(self):
        """Region codes are upper-cased into a frozenset."""
        policy = VerificationPolicy(allowed_countries={"cn", " hk"})  # type: ignore[arg-type]
        assert policy.allowed_countries == frozenset({"CN", "HK"})

    def test_caps_may_be_off(self):
        """None turns a cap off; a zero cooldown is allowed."""
        policy = VerificationPolicy(
            per_number_hourly=None,
            per_number_daily=None,
            per_ip_hourly=None,
            per_number_cooldown=timedelta(0),
        )
        assert policy.per_number_hourly is None


class TestPrivacy:
    """Test codes are credentials: neither repr nor errors show them."""

    def test_repr_hides_test_codes(self):
        """repr counts test numbers but shows neither numbers nor codes."""
        policy = VerificationPolicy(test_numbers={"13800138000": "246810"})
        text = repr(policy)
        assert "246810" not in text
        assert "13800138000" not in text
        assert "test_numbers=<1>" in text

    def test_error_hides_test_codes(self):
        """A bad test code is not echoed in the error."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(test_numbers={"13800138000": "12x"})
        assert "12x" not in str(caught.value)
        assert "13800138000" not in str(caught.value)

    def test_test_numbers_are_read_only(self):
        """The mapping cannot be changed through the policy."""
        policy = VerificationPolicy(test_numbers={"13800138000": "246810"})
        with pytest.raises(TypeError):
            policy.test_numbers["13900139000"] = "111111"  # type: ignore[index]
