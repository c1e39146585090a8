"""verify._policy: defaults, validation and privacy of VerificationPolicy."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import timedelta

import pytest
from phonenumbers import PhoneNumberType

from aliyun_sms_connector import ConfigError
from aliyun_sms_connector.verify import VerificationPolicy, _numbers


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
        assert policy.per_number_failed_checks_hourly == 25
        assert policy.per_ip_failed_checks_hourly == 50
        assert policy.require_verification_id is False
        assert policy.allowed_number_types == frozenset({"MOBILE", "FIXED_LINE_OR_MOBILE"})

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

    def test_ttl_of_a_second_and_a_half(self):
        """A ttl of a second or more is allowed, and seconds become a timedelta."""
        assert VerificationPolicy(ttl=1.5).ttl == timedelta(milliseconds=1500)


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
            "allowed_countries=['CN', 'HK'], test_numbers=<1>, "
            "per_number_failed_checks_hourly=25, per_ip_failed_checks_hourly=50, "
            "require_verification_id=False, "
            "allowed_number_types=['FIXED_LINE_OR_MOBILE', 'MOBILE'], "
            "pumping_guard=PumpingGuard(prefix_digits=6, window=1:00:00, grace=0:05:00, "
            "min_starts=30, min_conversion=0.3, block_for=1:00:00, mode='block', "
            "monitor_regions=['CN'], safe_numbers=<0>))"
        )

    def test_repr_of_caps_turned_off(self):
        """None for every cap and for the number types reads as None."""
        policy = VerificationPolicy(
            per_number_hourly=None,
            per_ip_failed_checks_hourly=None,
            require_verification_id=True,
            allowed_number_types=None,
            pumping_guard=None,
        )
        text = repr(policy)
        assert "per_number_failed_checks_hourly=None, per_ip_failed_checks_hourly=None, " in text
        assert text.endswith(
            "require_verification_id=True, allowed_number_types=None, pumping_guard=None)"
        )

    def test_no_country_list(self):
        """Without a country list, repr says None."""
        assert "allowed_countries=None," in repr(VerificationPolicy())

    def test_empty_lists_are_not_none(self):
        """An empty country or type list allows none, and repr says so, unlike None."""
        text = repr(VerificationPolicy(allowed_countries=set(), allowed_number_types=()))
        assert "allowed_countries=[]," in text
        assert "allowed_number_types=[], pumping_guard=PumpingGuard(" in text


BIG = 10**9


class TestFailedChecks:
    """Wrong guesses are capped per number and per IP, apart from the verification record."""

    def test_per_number_default_is_derived(self):
        """By default a number may take max_attempts guesses for each code of its hourly cap."""
        policy = VerificationPolicy(max_attempts=3, per_number_hourly=4)
        assert policy.per_number_failed_checks_hourly == 12

    @pytest.mark.parametrize(("attempts", "hourly"), [(1, 1), (1, 9), (9, 1)])
    def test_factors_of_one(self, attempts, hourly):
        """A factor of 1 is a valid factor: the product is derived."""
        policy = VerificationPolicy(max_attempts=attempts, per_number_hourly=hourly)
        assert policy.per_number_failed_checks_hourly == attempts * hourly

    def test_no_hourly_cap_no_derived_cap(self):
        """Without per_number_hourly there is nothing to derive from: None."""
        assert VerificationPolicy(per_number_hourly=None).per_number_failed_checks_hourly is None

    @pytest.mark.parametrize("value", [1, 7, 1000, BIG, None])
    def test_a_given_value_wins(self, value):
        """A value given, None included, is kept as given."""
        policy = VerificationPolicy(per_number_failed_checks_hourly=value)
        assert policy.per_number_failed_checks_hourly == value

    def test_the_derived_value_is_a_plain_int(self):
        """After construction the field holds an int, not the default's marker."""
        value = VerificationPolicy().per_number_failed_checks_hourly
        assert type(value) is int

    def test_signature_shows_how_the_default_is_made(self):
        """The constructor's default reads as the product it stands for."""
        default = (
            inspect.signature(VerificationPolicy)
            .parameters["per_number_failed_checks_hourly"]
            .default
        )
        assert repr(default) == "max_attempts * per_number_hourly"

    def test_replace_keeps_the_resolved_value(self):
        """dataclasses.replace copies the resolved cap; it is not derived again."""
        policy = dataclasses.replace(VerificationPolicy(), per_number_hourly=2)
        assert policy.per_number_failed_checks_hourly == 25

    @pytest.mark.parametrize(
        ("attempts", "hourly"), [(10**5, 10**5), (BIG, 5), (BIG, BIG), (1000, 10**6 + 1)]
    )
    def test_a_derived_cap_stops_at_the_limit(self, attempts, hourly):
        """A product over 10**9 is held as 10**9: the largest cap the field accepts."""
        policy = VerificationPolicy(max_attempts=attempts, per_number_hourly=hourly)
        assert policy.per_number_failed_checks_hourly == BIG

    def test_a_derived_cap_at_the_limit_is_the_product(self):
        """A product of exactly 10**9 is kept, and one below it too."""
        policy = VerificationPolicy(max_attempts=1000, per_number_hourly=10**6)
        assert policy.per_number_failed_checks_hourly == BIG
        policy = VerificationPolicy(max_attempts=999, per_number_hourly=10**6)
        assert policy.per_number_failed_checks_hourly == BIG - 10**6

    def test_replace_accepts_what_was_derived(self):
        """The value held is one the constructor accepts again."""
        policy = VerificationPolicy(max_attempts=BIG)
        assert dataclasses.replace(policy) == policy

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"max_attempts": "5"}, "max_attempts"),
            ({"max_attempts": None}, "max_attempts"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": BIG + 1}, "max_attempts"),
            ({"per_number_hourly": 0}, "per_number_hourly"),
            ({"per_number_hourly": "5"}, "per_number_hourly"),
            ({"per_number_hourly": BIG + 1}, "per_number_hourly"),
        ],
    )
    def test_an_invalid_factor_is_the_only_problem(self, options, field):
        """A bad factor is named once, not again through the derived cap."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**options)
        assert [p.field for p in caught.value.problems] == [field]

    def test_per_ip_may_be_off(self):
        """None turns the per-IP cap of wrong guesses off."""
        assert (
            VerificationPolicy(per_ip_failed_checks_hourly=None).per_ip_failed_checks_hourly is None
        )


class TestRequireVerificationId:
    """require_verification_id is a plain bool."""

    @pytest.mark.parametrize("value", [True, False])
    def test_bools(self, value):
        """True and False are kept."""
        assert VerificationPolicy(require_verification_id=value).require_verification_id is value

    @pytest.mark.parametrize("value", [1, 0, "yes", "", None])
    def test_anything_else_is_refused(self, value):
        """1, 0, strings and None are no bool."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(require_verification_id=value)
        assert list(caught.value.problems) == [("require_verification_id", "must be True or False")]


class TestNumberTypes:
    """allowed_number_types holds phonenumbers' type names."""

    @pytest.mark.parametrize(
        ("value", "names"),
        [
            ({"mobile"}, {"MOBILE"}),
            (["Mobile", " voip "], {"MOBILE", "VOIP"}),
            ((PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE), {"MOBILE", "FIXED_LINE"}),
            ({"TOLL_FREE", PhoneNumberType.TOLL_FREE}, {"TOLL_FREE"}),
            ((name for name in ("pager", "uan")), {"PAGER", "UAN"}),
            (frozenset(), set()),
            (_numbers.NUMBER_TYPES, set(_numbers.NUMBER_TYPES)),
        ],
    )
    def test_normalised(self, value, names):
        """Names in any case and PhoneNumberType values become a frozenset of names."""
        policy = VerificationPolicy(allowed_number_types=value)
        assert isinstance(policy.allowed_number_types, frozenset)
        assert policy.allowed_number_types == names

    def test_none_allows_every_type(self):
        """None is kept: no type is refused."""
        assert VerificationPolicy(allowed_number_types=None).allowed_number_types is None

    def test_the_default_is_mobiles(self):
        """The default names only types of numbers that can be mobiles."""
        default = VerificationPolicy().allowed_number_types
        assert default is not None
        assert default <= _numbers.NUMBER_TYPES

    @pytest.mark.parametrize(
        "value", [{"CELL"}, {"MOBILE", "mobiles"}, {11}, {True}, {1.0}, {None}, {"MOBILE", ""}]
    )
    def test_unknown_types_are_refused(self, value):
        """An unknown name, value, bool or other thing is named on the field."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(allowed_number_types=value)
        assert list(caught.value.problems) == [
            ("allowed_number_types", "must hold phone number types such as 'MOBILE'")
        ]

    @pytest.mark.parametrize("value", ["MOBILE", 1, b"MOBILE", True])
    def test_not_a_collection(self, value):
        """A single name or value is not a collection of them."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(allowed_number_types=value)
        assert list(caught.value.problems) == [
            ("allowed_number_types", "must be a set of phone number types")
        ]


class TestCountries:
    """allowed_countries holds regions phonenumbers knows."""

    @pytest.mark.parametrize("value", [{"ZZ"}, {"CN", "ZZ"}, {"001"}, {"UK"}, {"EU"}, {86}])
    def test_unknown_regions_are_refused(self, value):
        """A code of the right shape is not enough: it must be a known region."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(allowed_countries=value)
        assert list(caught.value.problems) == [
            ("allowed_countries", "must hold ISO region codes such as 'CN'")
        ]

    def test_known_regions(self):
        """Mainland, Hong Kong, Macao, Taiwan and Kosovo are known regions."""
        policy = VerificationPolicy(allowed_countries=["cn", "HK", "mo", "TW", "xk"])
        assert policy.allowed_countries == frozenset({"CN", "HK", "MO", "TW", "XK"})


DURATIONS = ["ttl", "resend_cooldown", "per_number_cooldown"]
TOO_LONG = "must be at most 24 hours"
NOT_POSITIVE = "must be a positive duration"


class TestDurations:
    """Durations are finite, not negative, and at most the 24 hours a store key lives."""

    @pytest.mark.parametrize("field", DURATIONS)
    @pytest.mark.parametrize(
        "value",
        [
            float("inf"),
            1e20,
            10**20,
            10**400,
            86400.001,
            86401,
            timedelta(hours=24, microseconds=1),
            timedelta(days=2),
            timedelta.max,
        ],
    )
    def test_too_long(self, field, value):
        """More than 24 hours, infinity and huge numbers are a ConfigError, not an overflow."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, TOO_LONG)]

    @pytest.mark.parametrize("field", DURATIONS)
    @pytest.mark.parametrize(
        "value",
        [float("nan"), float("-inf"), -1e20, -(10**400), -0.001, timedelta.min, "60", None, True],
    )
    def test_not_a_positive_duration(self, field, value):
        """NaN, negatives of any size, strings, None and bools are refused."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, NOT_POSITIVE)]

    @pytest.mark.parametrize("field", DURATIONS)
    @pytest.mark.parametrize("value", [86400, 86400.0, timedelta(hours=24)])
    def test_a_day_is_allowed(self, field, value):
        """Exactly 24 hours is allowed, in seconds or as a timedelta."""
        assert getattr(VerificationPolicy(**{field: value}), field) == timedelta(hours=24)

    def test_every_duration_at_once(self):
        """Each bad duration is its own problem."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(
                ttl=float("nan"), resend_cooldown=1e20, per_number_cooldown=float("inf")
            )
        assert list(caught.value.problems) == [
            ("ttl", NOT_POSITIVE),
            ("resend_cooldown", TOO_LONG),
            ("per_number_cooldown", TOO_LONG),
        ]


INTEGERS = [
    "max_attempts",
    "per_number_hourly",
    "per_number_daily",
    "per_ip_hourly",
    "global_hourly",
    "per_number_failed_checks_hourly",
    "per_ip_failed_checks_hourly",
]
CAPS = INTEGERS[1:]


class TestIntegers:
    """Counts are ints, never bools, from 1 to 10**9."""

    @pytest.mark.parametrize("field", ["code_length", *INTEGERS])
    @pytest.mark.parametrize("value", [True, False])
    def test_a_bool_is_no_int(self, field, value):
        """True and False are refused, though bool is a subclass of int."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert [p.field for p in caught.value.problems] == [field]

    @pytest.mark.parametrize("field", INTEGERS)
    @pytest.mark.parametrize("value", [BIG + 1, 10**18, 10**400])
    def test_absurd_counts_are_refused(self, field, value):
        """More than 10**9 is refused."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, "must be at most 1000000000")]

    @pytest.mark.parametrize("field", INTEGERS)
    def test_a_billion_is_allowed(self, field):
        """10**9 itself is allowed."""
        assert getattr(VerificationPolicy(**{field: BIG}), field) == BIG

    @pytest.mark.parametrize("field", CAPS)
    @pytest.mark.parametrize("value", [0, -1, 1.0, "5"])
    def test_caps_refuse_non_positive_and_non_ints(self, field, value):
        """Each cap refuses 0, negatives, floats and strings with its own problem."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, "must be None or an integer of at least 1")]

    def test_max_attempts_bool_text(self):
        """max_attempts=True is refused with the integer rule."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(max_attempts=True)
        assert list(caught.value.problems) == [("max_attempts", "must be an integer of at least 1")]

    def test_code_length_bool_text(self):
        """code_length=True is refused with the integer rule."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(code_length=True)
        assert list(caught.value.problems) == [("code_length", "must be an integer from 4 to 10")]


class TestEveryProblem:
    """Problems of the new fields are collected with the others."""

    def test_all_at_once(self):
        """One error lists every bad field, in field order."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(
                code_length=True,
                ttl=float("inf"),
                max_attempts=True,
                global_hourly=10**10,
                allowed_countries={"ZZ"},
                per_ip_failed_checks_hourly=0,
                require_verification_id="no",
                allowed_number_types={"CELL"},
            )
        assert [p.field for p in caught.value.problems] == [
            "code_length",
            "ttl",
            "max_attempts",
            "global_hourly",
            "allowed_countries",
            "per_ip_failed_checks_hourly",
            "require_verification_id",
            "allowed_number_types",
        ]

    def test_the_error_is_a_config_error_only(self):
        """NaN and overflowing values raise ConfigError, with no cause or context."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(ttl=1e20, resend_cooldown=float("nan"))
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None


class TestShortestDurations:
    """The store counts whole milliseconds: nothing shorter than a second but a zero cooldown."""

    @pytest.mark.parametrize(
        ("field", "value", "problem"),
        [
            ("ttl", timedelta(microseconds=1), "must be at least 1 second"),
            ("ttl", 0.999, "must be at least 1 second"),
            ("resend_cooldown", 0.0004, "must be 0 (none) or at least 1 second"),
            (
                "per_number_cooldown",
                timedelta(milliseconds=999),
                "must be 0 (none) or at least 1 second",
            ),
        ],
    )
    def test_under_a_second_is_refused(self, field, value, problem):
        """A ttl dead on arrival, or a cooldown that rounds to none, is a ConfigError naming it."""
        with pytest.raises(ConfigError) as caught:
            VerificationPolicy(**{field: value})
        assert list(caught.value.problems) == [(field, problem)]

    def test_a_second_and_a_zero_cooldown_pass(self):
        """1 s is the shortest ttl and cooldown; 0 still turns a cooldown off."""
        policy = VerificationPolicy(ttl=1, resend_cooldown=0, per_number_cooldown=1)
        assert policy.ttl == timedelta(seconds=1)
        assert policy.resend_cooldown == timedelta(0)


def test_an_invalid_policy_is_named_as_such():
    """A bad policy's ConfigError says it is the verification policy, not the SMS config."""
    with pytest.raises(ConfigError) as caught:
        VerificationPolicy(max_attempts=0)
    assert caught.value.subject == "verification policy"
    assert str(caught.value).startswith("invalid verification policy, 1 problem:")
