"""verify._keys: codes, digests, ids and key names."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from redis.crc import key_slot

from aliyun_sms_connector import ConfigError
from aliyun_sms_connector.verify import _keys

KEY = _keys.Key(b"k" * 32)
OTHER_KEY = _keys.Key(b"o" * 32)
IP_REFUSAL = (
    "client_ip must be an IPv4 or IPv6 address, such as 203.0.113.9 or 2001:db8::1: "
    "the peer address of the request, or the one a trusted proxy reports"
)
# 200 fixed bytes that look random; fixed, so that test ids stay the same run to run.
RANDOM = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(7))[:200]
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class TestKey:
    """Key is HMAC-SHA256, only faster."""

    @pytest.mark.parametrize("length", [32, 63, 64, 65, 200])
    def test_same_as_hmac_new(self, length):
        """For keys shorter and longer than a block, the MAC is hmac.new's."""
        secret = bytes(range(256))[:length] if length <= 256 else b"x" * length
        key = _keys.Key(secret)
        for message in (b"", b"abc", b"x" * 1000):
            expected = hmac.new(secret, message, hashlib.sha256).digest()
            assert key.mac(message) == expected
        assert key.mac(b"abc") == key.mac(b"abc")

    def test_repr_hides_the_secret(self):
        """A Key shows nothing of its secret."""
        assert repr(_keys.Key(b"s" * 32)) == "Key(<hidden>)"

    def test_code_digest_is_the_documented_hmac(self):
        """The digest is HMAC(key, 'code' NUL usage NUL number NUL code)."""
        secret = b"k" * 32
        expected = hmac.new(
            secret, b"code\x00SignIn\x00+8613800138000\x00123456", hashlib.sha256
        ).hexdigest()
        assert _keys.code_digest(_keys.Key(secret), "SignIn", "+8613800138000", "123456") == (
            expected
        )


class TestDigests:
    """Digests bind the code to its usage type and number, under the key."""

    def test_code_digest_is_hex_sha256(self):
        """A digest is 64 hex characters and deterministic."""
        digest = _keys.code_digest(KEY, "SignIn", "+8613800138000", "123456")
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert digest == _keys.code_digest(KEY, "SignIn", "+8613800138000", "123456")

    @pytest.mark.parametrize(
        "changed",
        [
            (KEY, "Register", "+8613800138000", "123456"),
            (KEY, "SignIn", "+8613800138001", "123456"),
            (KEY, "SignIn", "+8613800138000", "123457"),
            (OTHER_KEY, "SignIn", "+8613800138000", "123456"),
        ],
    )
    def test_every_input_changes_the_digest(self, changed):
        """Another usage type, number, code or key gives another digest."""
        base = _keys.code_digest(KEY, "SignIn", "+8613800138000", "123456")
        assert _keys.code_digest(*changed) != base

    def test_fields_cannot_slide_into_each_other(self):
        """('Sign', 'In…') and ('SignIn', '…') are different messages."""
        a = _keys.code_digest(KEY, "SignIn", "+86138", "001")
        b = _keys.code_digest(KEY, "SignIn", "+861380", "01")
        assert a != b

    def test_digest_is_not_a_number_id(self):
        """The labels keep one kind of HMAC from standing in for another."""
        assert _keys.number_id(KEY, "x")[:32] != _keys.code_digest(KEY, "", "x", "")[:32]

    def test_digests_equal(self):
        """digests_equal compares exactly."""
        assert _keys.digests_equal("ab" * 32, "ab" * 32)
        assert not _keys.digests_equal("ab" * 32, "ab" * 31 + "ac")
        assert not _keys.digests_equal("ab", "abc")


class TestIds:
    """Numbers and IPs are named by 128-bit HMACs."""

    def test_number_id(self):
        """32 hex characters, stable, and key-dependent."""
        one = _keys.number_id(KEY, "+8613800138000")
        assert re.fullmatch(r"[0-9a-f]{32}", one)
        assert one == _keys.number_id(KEY, "+8613800138000")
        assert one != _keys.number_id(OTHER_KEY, "+8613800138000")
        assert "13800138000" not in one

    @pytest.mark.parametrize(
        ("raw", "normal"),
        [
            ("203.0.113.9", "203.0.113.9"),
            (" 203.0.113.9 ", "203.0.113.9"),
            ("\t203.0.113.9\r\n", "203.0.113.9"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("0:0:0:0:0:ffff:cb00:7109", "203.0.113.9"),
            ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
            ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
            (" 2001:db8:1:2::1 ", "2001:db8:1:2::/64"),
            ("fe80::1%eth0", "fe80::/64"),
            ("fe80::1%2", "fe80::/64"),
            ("2001:db8:1:2::1%eth0", "2001:db8:1:2::/64"),
            ("::ffff:203.0.113.9%eth0", "203.0.113.9"),
        ],
    )
    def test_normalize_ip(self, raw, normal):
        """IPv4 as is, IPv4-mapped as IPv4, IPv6 cut to /64 whatever its zone; padding stripped."""
        assert _keys.normalize_ip(raw) == normal

    def test_zone_ids_share_the_bucket(self):
        """Another zone id is no new bucket: each names the same /64, as does no zone."""
        ids = {_keys.ip_id(KEY, f"fe80::1%{zone}") for zone in ("eth0", "eth1", "x" * 40)}
        assert ids == {_keys.ip_id(KEY, "fe80::9")}

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            " ",
            "\t\n",
            "not-an-ip",
            "example.com",
            "localhost",
            "unknown",
            "_hidden",
            "203.0.113.9, 198.51.100.1",
            "203.0.113.9:443",
            "[2001:db8::1]",
            "203.0.113.9/32",
            "2001:db8::/64",
            "203.0.113",
            "203.0.113.256",
            "0203.0.113.9",
            "203 .0.113.9",
            "1.2.3.4%eth0",
            "fe80::1%",
            "\u0662\u0660\u0663.0.113.9",
            "203.0.113.9\x00",
        ],
    )
    def test_anything_but_an_address_is_refused(self, raw):
        """Hostnames, proxy tokens, lists, ports, networks and blanks are no address."""
        with pytest.raises(ValueError) as caught:
            _keys.normalize_ip(raw)
        assert str(caught.value) == IP_REFUSAL
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None

    @pytest.mark.parametrize("raw", [None, 3405803785, True, b"\xcb\x00\x71\x09", 1.5])
    def test_a_non_string_is_refused(self, raw):
        """ipaddress reads ints and packed bytes as addresses; client_ip must be text."""
        with pytest.raises(ValueError) as caught:
            _keys.normalize_ip(raw)
        assert str(caught.value) == IP_REFUSAL

    def test_the_refusal_does_not_echo_the_value(self):
        """The message holds nothing of what was given."""
        with pytest.raises(ValueError) as caught:
            _keys.normalize_ip("secret-proxy-token-4711")
        assert "4711" not in str(caught.value)
        assert "secret" not in str(caught.value)

    def test_ip_id_refuses_what_normalize_ip_refuses(self):
        """No bucket is made for a string that is no address."""
        with pytest.raises(ValueError, match="client_ip must be an IPv4 or IPv6 address"):
            _keys.ip_id(KEY, "not-an-ip")

    def test_ip_id_groups_a_64(self):
        """Two addresses in one /64 share an id; another /64 does not."""
        a = _keys.ip_id(KEY, "2001:db8:1:2::1")
        assert a == _keys.ip_id(KEY, "2001:db8:1:2:ffff::9")
        assert a != _keys.ip_id(KEY, "2001:db8:1:3::1")


class TestCodes:
    """Codes are uniform random digits of the asked length."""

    @pytest.mark.parametrize("length", [4, 6, 10])
    def test_length_and_digits(self, length):
        """Every code has exactly ``length`` decimal digits."""
        for _ in range(50):
            code = _keys.generate_code(length)
            assert len(code) == length
            assert code.isdigit()

    def test_leading_zeros_are_kept(self, mocker):
        """A small random number is zero-padded, not shortened."""
        randbelow = mocker.patch.object(_keys.secrets, "randbelow", return_value=42)
        assert _keys.generate_code(6) == "000042"
        randbelow.assert_called_once_with(1_000_000)

    def test_codes_vary(self):
        """Codes come from a random source, not a constant."""
        assert len({_keys.generate_code(6) for _ in range(50)}) > 40


class TestKeyNames:
    """One hash tag per number; one for the shared limits."""

    def test_number_keys_share_one_tag(self):
        """All keys of (number, usage type) are in one cluster slot."""
        keys = _keys.number_keys("app:", "abc123", "SignIn")
        assert all(key.startswith("app:{abc123}:") for key in keys)
        assert len(set(keys)) == 5
        assert len({key_slot(key.encode()) for key in keys}) == 1
        other = _keys.number_keys("app:", "abc123", "Register")
        assert other.number_cooldown == keys.number_cooldown
        assert other.sends == keys.sends
        assert other.record != keys.record
        assert other.failed != keys.failed
        assert keys.failed == _keys.failed_key("app:", "abc123", "SignIn")

    def test_shared_keys(self):
        """IP and global counters share the {limits} tag; no IP, no IP key."""
        keys = _keys.shared_keys("app:", "ipid")
        assert keys.ip == "app:{limits}:ip:ipid"
        assert keys.global_ == "app:{limits}:global"
        assert keys.ip_failed == "app:{limits}:ip-failed:ipid"
        assert len({key_slot(key.encode()) for key in keys}) == 1
        assert _keys.shared_keys("app:", None).ip is None
        assert _keys.shared_keys("app:", None).ip_failed is None

    @pytest.mark.parametrize("prefix", ["{x}", "a{", "b}"])
    def test_prefix_without_braces(self, prefix):
        """A prefix with a brace is refused."""
        with pytest.raises(ValueError, match="hash tags"):
            _keys.validate_prefix(prefix)

    def test_prefix_ok(self):
        """An ordinary prefix is returned as is."""
        assert _keys.validate_prefix("myapp:otp:") == "myapp:otp:"


class TestDocumentedIds:
    """Numbers and IPs are named by the first 128 bits of the documented HMACs."""

    SECRET = b"k" * 32

    def test_number_id_is_the_documented_hmac(self):
        """number_id is HMAC(key, 'number' NUL number), cut to 16 bytes."""
        expected = hmac.new(self.SECRET, b"number\x00+8613800138000", hashlib.sha256).digest()
        assert _keys.number_id(_keys.Key(self.SECRET), "+8613800138000") == expected[:16].hex()

    def test_ip_id_is_the_documented_hmac(self):
        """ip_id is HMAC(key, 'ip' NUL normalised address), cut to 16 bytes."""
        expected = hmac.new(self.SECRET, b"ip\x002001:db8:1:2::/64", hashlib.sha256).digest()
        assert _keys.ip_id(_keys.Key(self.SECRET), "2001:db8:1:2::7") == expected[:16].hex()

    def test_minimum_secret_length(self):
        """The documented minimum length of the service's secret key is 32 bytes."""
        assert _keys.MIN_SECRET_BYTES == 32

    def test_minimum_distinct_bytes(self):
        """The documented minimum of distinct byte values in the secret key is 10."""
        assert _keys.MIN_SECRET_DISTINCT_BYTES == 10

    def test_prefix_error_says_why(self):
        """A prefix with a brace is refused with the reason."""
        with pytest.raises(ValueError) as caught:
            _keys.validate_prefix("a{b}")
        assert str(caught.value) == (
            "the key prefix must not contain '{' or '}' (they mark hash tags)"
        )


class TestCheckSecret:
    """A secret key must be long and varied enough to be random."""

    @pytest.mark.parametrize(
        "key",
        [
            bytes(range(32)),
            bytes(range(10)) * 4,
            b"0123456789" + b"0" * 22,
            base64.urlsafe_b64encode(RANDOM[:32]).rstrip(b"="),
            RANDOM[:32],
            RANDOM,
            b"test-secret-key-of-at-least-32-bytes!!",
        ],
        ids=["32-distinct", "10-distinct", "10-distinct-text", "urlsafe", "random", "long", "text"],
    )
    def test_accepted(self, key):
        """32 bytes or more, of 10 or more distinct values, pass."""
        assert _keys.check_secret(key) is None

    @pytest.mark.parametrize(
        ("key", "problem"),
        [
            (b"", "must be at least 32 bytes"),
            (RANDOM[:31], "must be at least 32 bytes"),
            (bytes(range(31)), "must be at least 32 bytes"),
            (b"a" * 31, "must be at least 32 bytes"),
            (b"a" * 32, "holds fewer than 10 distinct bytes"),
            (b"\0" * 32, "holds fewer than 10 distinct bytes"),
            (b"password" * 4, "holds fewer than 10 distinct bytes"),
            (bytes(range(9)) * 100, "holds fewer than 10 distinct bytes"),
            (b"012345678" + b"0" * 23, "holds fewer than 10 distinct bytes"),
        ],
        ids=[
            "empty",
            "random-31",
            "distinct-31",
            "same-31",
            "a-32",
            "nul-32",
            "password-4",
            "9-distinct-900",
            "9-distinct-32",
        ],
    )
    def test_refused(self, key, problem):
        """Short keys and keys of few distinct bytes are a ConfigError on secret_key."""
        with pytest.raises(ConfigError) as caught:
            _keys.check_secret(key)
        assert list(caught.value.problems) == [
            ("secret_key", f"{problem}; generate one with: {GENERATE}")
        ]

    def test_message_says_how_to_generate_one(self):
        """The message gives the command that makes a good key."""
        with pytest.raises(ConfigError) as caught:
            _keys.check_secret(b"short")
        assert GENERATE in str(caught.value)
        assert "secret_key" in str(caught.value)

    @pytest.mark.parametrize("key", [b"hunter2hunter2", b"passwordpasswordpasswordpassword"])
    def test_message_does_not_echo_the_key(self, key):
        """Nothing of the key is in the error."""
        with pytest.raises(ConfigError) as caught:
            _keys.check_secret(key)
        assert "hunter" not in str(caught.value)
        assert "password" not in str(caught.value)
        assert "hunter" not in repr(caught.value)
        assert "password" not in repr(caught.value)


class TestServiceSecret:
    GOOD = "k7Qp2vX9mR4tL8wN3bZ6yH1cF5dJ0sAeGuIoKx"

    def test_a_shared_store_needs_one(self):
        """No key for a shared store: a ConfigError that says how to make one."""
        with pytest.raises(ConfigError, match="a shared store needs secret_key") as caught:
            _keys.service_secret(None, shared=True)
        assert f"at least {_keys.MIN_SECRET_BYTES} bytes" in str(caught.value)

    def test_a_store_of_its_own_gets_a_random_one(self):
        """No key for a store of its own: 32 random bytes, new each time."""
        first = _keys.service_secret(None, shared=False)
        second = _keys.service_secret(None, shared=False)
        assert len(first) == len(second) == _keys.MIN_SECRET_BYTES
        assert first != second

    @pytest.mark.parametrize("shared", [True, False])
    def test_str_and_bytes_give_the_same_key(self, shared):
        """A str is UTF-8 encoded; bytes and bytearray are taken as they are."""
        key = self.GOOD.encode()
        assert _keys.service_secret(self.GOOD, shared=shared) == key
        assert _keys.service_secret(key, shared=shared) == key
        assert _keys.service_secret(bytearray(key), shared=shared) == key

    @pytest.mark.parametrize("bad", ["\ud800" * 40, object(), 1.5])
    def test_what_cannot_be_a_key(self, bad):
        """A str UTF-8 cannot encode, or no str or bytes: a ConfigError, nothing chained."""
        with pytest.raises(ConfigError, match="must be a str or bytes") as caught:
            _keys.service_secret(bad, shared=True)
        assert caught.value.__context__ is None
        assert caught.value.__cause__ is None

    def test_a_weak_key_is_checked(self):
        """A key that is given is held to check_secret's rules."""
        with pytest.raises(ConfigError, match="secret_key"):
            _keys.service_secret("short", shared=False)
