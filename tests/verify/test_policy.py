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


class TestBoundaries:
    """Each limit accepts its edge value and refuses the one just past it."""

    @pytest.mark.parametrize("length", [4, 10])
    def test_code_length_edges_are_accepted(self, length):
        """Codes of 4 and of 10 digits are allowed."""
        assert VerificationPolicy(code_length=length).code_length == length

    @pytest.mark.parametrize("code", ["1234", "1234567890"])
    def test_test_code_length_edges_are_accepted(self, code):
        """Fixed test codes of 4 and of 10 digits are allowed."""
        policy = VerificationPolicy(test_numbers={"13800138000": code})
        assert dict(policy.test_numbers) == {"13800138000": code}

    @pytest.mark.parametrize("code", ["123", "12345678901", 123456, "12345a"])
    def test_test_codes_past_the_edges_are_refused(self, code):
        """A test code of 3 or 11 digits, a number or a non-digit is refused."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(test_numbers={"13800138000": "123456", "13900139000": code})
        assert list(caught.value.problems) == [
            ("test_numbers", "codes must be 4 to 10 digits"),
        ]

    def test_one_attempt_and_caps_of_one_are_allowed(self):
        """max_attempts and every cap may be 1."""
        policy = VerificationPolicy(
            max_attempts=1,
            per_number_hourly=1,
            per_number_daily=1,
            per_ip_hourly=1,
            global_hourly=1,
        )
        assert (policy.max_attempts, policy.global_hourly) == (1, 1)

    @pytest.mark.parametrize(
        "field", ["per_number_hourly", "per_number_daily", "per_ip_hourly", "global_hourly"]
    )
    def test_every_cap_refuses_zero(self, field):
        """Each cap refuses 0 with its own problem."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: 0})
        assert list(caught.value.problems) == [(field, "must be None or an integer of at least 1")]

    @pytest.mark.parametrize("field", ["resend_cooldown", "per_number_cooldown"])
    def test_cooldowns_may_be_zero_but_not_negative(self, field):
        """A cooldown of 0 turns it off; a negative one is refused."""
        assert getattr(VerificationPolicy(**{field: 0}), field) == timedelta(0)
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: timedelta(seconds=-1)})
        assert list(caught.value.problems) == [(field, "must be a positive duration")]

    @pytest.mark.parametrize("value", [0, timedelta(0), -1, True, None])
    def test_ttl_must_be_a_positive_duration(self, value):
        """A ttl of zero, below zero, a bool or None is refused."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(ttl=value)
        assert list(caught.value.problems) == [("ttl", "must be a positive duration")]

    def test_ttl_of_a_fraction_of_a_second(self):
        """Any positive ttl is allowed, and seconds become a timedelta."""
        assert VerificationPolicy(ttl=0.5).ttl == timedelta(milliseconds=500)


class TestProblemTexts:
    """Each refusal says what the field must be."""

    @pytest.mark.parametrize(
        ("field", "value", "problem"),
        [
            ("code_length", 3, "must be an integer from 4 to 10"),
            ("code_length", 6.0, "must be an integer from 4 to 10"),
            ("max_attempts", 0, "must be an integer of at least 1"),
            ("max_attempts", "5", "must be an integer of at least 1"),
            ("allowed_countries", "CN", "must be a set of region codes"),
            ("allowed_countries", 86, "must be a set of region codes"),
            ("allowed_countries", {"CN", "CHN"}, "must hold ISO region codes such as 'CN'"),
            ("test_numbers", ["13800138000"], "must map numbers to codes"),
        ],
    )
    def test_problem(self, field, value, problem):
        """The problem names the field and the rule, never the value."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, problem)]


class TestRepr:
    """repr shows every setting but the test codes."""

    def test_whole_repr(self):
        """Durations, caps, sorted countries, and only the count of test numbers."""
        policy = VerificationPolicy(
            allowed_countries={"hk", "CN"}, test_numbers={"13800138000": "2468"}
        )
        assert repr(policy) == (
            "VerificationPolicy(code_length=6, ttl=0:10:00, max_attempts=5, "
            "resend_cooldown=0:01:00, per_number_cooldown=0:01:00, per_number_hourly=5, "
            "per_number_daily=10, per_ip_hourly=20, global_hourly=None, "
            "allowed_countries=['CN', 'HK'], test_numbers=<1>)"
        )

    def test_no_country_list(self):
        """Without a country list, repr says None."""
        assert "allowed_countries=None," in repr(VerificationPolicy())
