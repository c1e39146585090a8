import json
from urllib.parse import quote, quote_plus

import pytest
from darabonba.request import DaraRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from aliyun_sms_connector._redact import (
    REDACTED,
    RedactedError,
    Redactor,
    _anchor,
    encoded_forms,
    mask_phone,
)

from . import sdk_fakes
from .privacy import assert_no_leak, encodings, reachable, render_with_locals

PHONE = "138" + "00138000"
CODE = "4829" + "13"
SECRET = "s3cr+Et/key=0123"
TOKEN = "CAIS+sts/TOKEN=abc"
NAME = 'Zhāng "Wei" 李/雷+'


def text_forms(value):
    """The independent harness's forms, without base64 (which the redactor does not claim)."""
    import base64

    raw = value.encode()
    b64 = {
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return sorted(f for f in encodings(value) if isinstance(f, str) and f not in b64)


class TestMaskPhone:
    def test_last_four_digits_only(self):
        """Only the last 4 digits survive."""
        assert mask_phone("+86 138-0013-8000") == "***8000"

    def test_short_inputs_show_nothing(self):
        """Four digits or fewer are hidden entirely."""
        assert mask_phone("1234") == "***"
        assert mask_phone("") == "***"


class TestEncodings:
    redactor = Redactor(phones=[PHONE], values=[CODE, NAME], secrets=[SECRET, TOKEN])

    @pytest.mark.parametrize("value", [SECRET, TOKEN, NAME, CODE])
    def test_every_text_form_is_replaced(self, value):
        """Raw, quote, quote_plus, twice-encoded, JSON- and repr-escaped forms all go."""
        for form in text_forms(value):
            assert self.redactor.text(f"<{form}>") == f"<{REDACTED}>", form

    @pytest.mark.parametrize("value", [SECRET, TOKEN, NAME])
    def test_every_bytes_form_is_replaced(self, value):
        """The same forms as UTF-8 bytes are replaced in bytes."""
        for form in text_forms(value):
            assert self.redactor.data(b"<" + form.encode() + b">") == b"<[redacted]>", form

    def test_bytes_that_are_not_utf8_survive(self):
        """Bytes around a value that are not UTF-8 are kept as they were."""
        assert self.redactor.data(b"\xff" + CODE.encode() + b"\xfe") == b"\xff[redacted]\xfe"

    def test_twice_encoded_plus_slash_and_equals(self):
        """+ -> %2B -> %252B, / -> %252F, = -> %253D: the string to sign's encoding."""
        twice = quote_plus(quote(SECRET, safe="~"), safe="~")
        assert "%252B" in twice
        assert "%252F" in twice
        assert "%253D" in twice
        assert self.redactor.text(f"sign {twice}.") == f"sign {REDACTED}."

    def test_secret_with_a_slash(self):
        """A secret with / is caught with the / kept (quote) and encoded (quote safe='')."""
        for form in (quote(SECRET), quote(SECRET, safe=""), quote(quote(SECRET, safe=""))):
            assert "s3cr" not in self.redactor.text(form), form
        assert "/" in quote(SECRET)

    def test_json_escaped_value(self):
        """A value inside a JSON document, escaped either way, is replaced."""
        for ensure_ascii in (True, False):
            doc = json.dumps({"name": NAME}, ensure_ascii=ensure_ascii)
            assert self.redactor.text(doc) == f'{{"name": "{REDACTED}"}}'

    def test_lowercase_percent_escapes(self):
        """Percent-escapes in lower-case hex are caught too."""
        assert self.redactor.text("CAIS%2bsts%2fTOKEN%3dabc") == REDACTED

    def test_forms_are_what_the_harness_expects(self):
        """encoded_forms covers every text form the independent harness looks for."""
        assert set(text_forms(TOKEN)) <= encoded_forms(TOKEN)


class TestProperties:
    # No per-example deadline: the machine is shared, and these check results, not speed.
    @settings(deadline=None)
    @given(st.text(min_size=1, max_size=30))
    def test_every_form_keeps_the_anchor(self, value):
        """The anchor that gates a value's search is in every form of it."""
        anchor = _anchor(value)
        if anchor is not None:
            assert all(anchor in form for form in encoded_forms(value))

    @settings(deadline=None)
    @given(st.text(min_size=4, max_size=30), st.text(max_size=20), st.text(max_size=20))
    def test_no_form_survives(self, value, before, after):
        """Any value of 4+ characters, in any form and any surroundings, is gone."""
        redactor = Redactor(values=[value])
        for form in text_forms(value):
            shown = redactor.text(before + form + after)
            assert form not in shown or form in before + REDACTED + after


class TestNesting:
    def test_value_equal_to_the_numbers_last_digits(self):
        """With a value 8000, the number is masked as *** so 8000 shows nowhere."""
        redactor = Redactor(phones=[PHONE], values=["8000"])
        assert redactor.text(f"to {PHONE} value 8000") == f"to *** value {REDACTED}"

    def test_value_inside_the_number(self):
        """A value found inside the number never leaves the rest of the number visible."""
        for value in ("0013", "3800138", "1380013"):
            shown = Redactor(phones=[PHONE], values=[value]).text(f"0{PHONE}0")
            assert shown == "0***80000", value

    def test_number_inside_a_longer_secret(self):
        """A secret that contains the number is replaced whole, not as a masked number."""
        redactor = Redactor(phones=[PHONE], secrets=[f"ab{PHONE}cd"])
        assert redactor.text(f"x ab{PHONE}cd y") == f"x {REDACTED} y"

    def test_replacement_text_is_not_searched_again(self):
        """A value that occurs in [redacted] itself does not mangle the replacement."""
        redactor = Redactor(values=["dact", CODE])
        assert redactor.text(f"{CODE} dact") == f"{REDACTED} {REDACTED}"


class TestShortValues:
    def test_values_in_text(self):
        """Numbers, template values and secrets are replaced; a short value only as a token."""
        redactor = Redactor(phones=[PHONE], values=[CODE, "42"], secrets=["s3cr3t!"])
        text = redactor.text(f"to {PHONE} code {CODE} key s3cr3t! n=42 x=420")
        assert text == f"to ***8000 code {REDACTED} key {REDACTED} n={REDACTED} x=420"

    def test_exactly_the_short_length_is_replaced_anywhere(self):
        """A 4-character value is replaced even inside a longer token."""
        assert Redactor(values=["1234"]).text("x1234y 1234") == f"x{REDACTED}y {REDACTED}"

    def test_below_the_short_length_only_as_a_whole_token(self):
        """A 3-character value is replaced as a token, not inside one."""
        assert Redactor(values=["123"]).text("x123y 123 a1234") == f"x123y {REDACTED} a1234"

    def test_two_short_values(self):
        """Two short values are both replaced, also side by side."""
        shown = Redactor(values=["1", "22"]).text("1 22 1,22 122 221")
        assert shown == f"{REDACTED} {REDACTED} {REDACTED},{REDACTED} 122 221"

    def test_uppercase_letters_next_to_a_short_value(self):
        """Letters make a token, but the hex letters of a percent-escape do not."""
        redactor = Redactor(values=["42"])
        assert redactor.text("X42 42Y") == "X42 42Y"
        assert redactor.text("%2C42%2C") == f"%2C{REDACTED}%2C"
        assert redactor.text("%2c42") == f"%2c{REDACTED}"

    def test_short_value_in_encoded_json(self):
        """A short value in TemplateParam JSON, percent-encoded once or twice, is replaced."""
        redactor = Redactor(values=["42"])
        once = quote(json.dumps({"n": "42"}), safe="")
        twice = quote(once, safe="")
        assert "42" not in redactor.text(once)
        assert "42" not in redactor.text(twice)

    def test_short_value_after_a_json_unicode_escape(self):
        """\\u4e2d followed by a short value: the escape's digits are not the value's."""
        assert Redactor(values=["42"]).text("\\u4e2d42") == f"\\u4e2d{REDACTED}"


class TestNamedParameters:
    def test_url_encoded_query(self):
        """PhoneNumbers and TemplateParam values in a URL are replaced whole."""
        url = "/?PhoneNumbers=8613900001111&TemplateParam=%7B%22code%22%3A%22999%22%7D&SignName=S"
        assert Redactor().text(url) == (
            f"/?PhoneNumbers={REDACTED}&TemplateParam={REDACTED}&SignName=S"
        )

    def test_string_to_sign(self):
        """In the v2 string to sign (encoded twice) each private parameter is replaced."""
        query = "PhoneNumbers=13900001111&SecurityToken=t%2Bk&SignName=S"
        to_sign = "POST&%2F&" + quote_plus(query, safe="~")
        shown = Redactor().text(to_sign)
        assert "13900001111" not in shown
        assert "t%252Bk" not in shown
        assert "SignName%3DS" in shown

    def test_keyed_json_and_dict_repr(self):
        """ "PhoneNumbers": "..." in JSON and 'SecurityToken': '...' in a repr are replaced."""
        shown = Redactor().text(
            '{"PhoneNumbers": "13900001111", "SignName": "S"} '
            "{'SecurityToken': 'abc\\'d', 'x': 1}"
        )
        assert shown == (
            f'{{"PhoneNumbers": "{REDACTED}", "SignName": "S"}} '
            f"{{'SecurityToken': '{REDACTED}', 'x': 1}}"
        )

    def test_backslashes_without_a_closing_quote(self):
        """A run of backslashes after a private key ends quickly and is left as it is."""
        text = '"PhoneNumbers": "' + "\\" * 5000 + "x"
        assert Redactor().text(text) == text


def raised(exc, cause=None):
    """``exc`` as Python leaves it after a raise: with a traceback and a frame holding a secret."""
    secret_local = SECRET  # noqa: F841 - a frame local, as the SDK's signing code has
    try:
        raise exc from cause
    except BaseException as caught:  # noqa: BLE001
        return caught


class TestStandIn:
    redactor = Redactor(phones=[PHONE], values=[CODE, NAME], secrets=[SECRET, TOKEN])
    private = (PHONE, CODE, NAME, SECRET, TOKEN)

    def sdk_error(self):
        """A real SDK ClientException whose text, data and request hold private values."""
        error = sdk_fakes.client_error(
            "SignatureDoesNotMatch",
            message=f"server string to sign is:POST&%2F&{quote_plus(quote(TOKEN, safe='~'))}",
        )
        error.data["PhoneNumbers"] = PHONE
        request = DaraRequest()
        request.query = {"PhoneNumbers": PHONE, "TemplateParam": json.dumps({"code": CODE})}
        error.last_request = request
        return raised(error)

    def test_holds_only_type_name_and_scrubbed_text(self):
        """The stand-in has the type's name and clean text; no args, attributes or frames."""
        stand = self.redactor.stand_in(self.sdk_error())
        assert isinstance(stand, RedactedError)
        assert stand.type_name == "ClientException"
        assert str(stand).startswith(
            "ClientException: Error: SignatureDoesNotMatch code: 400, server string to sign"
        )
        assert stand.args == (str(stand),)
        assert vars(stand) == {"type_name": "ClientException"}
        assert stand.__traceback__ is None
        assert stand.__context__ is None
        assert stand.__suppress_context__ is True
        assert_no_leak(stand, self.private)

    def test_the_original_is_unreachable(self):
        """Nothing reachable from the stand-in is the original or one of its objects."""
        original = self.sdk_error()
        stand = self.redactor.stand_in(original)
        found = list(reachable(stand))
        assert found
        assert all("DaraRequest" not in text for text in found if isinstance(text, str))
        assert original.last_request.query["PhoneNumbers"] == PHONE  # left untouched

    def test_real_unretryable_exception(self):
        """darabonba's UnretryableException, its RetryPolicyContext and request are left behind."""
        url = sdk_fakes.sent_url(PHONE, json.dumps({"code": CODE}))
        original = sdk_fakes.unretryable(sdk_fakes.read_timeout(url), url)
        stand = self.redactor.stand_in(raised(original))
        assert stand.type_name == "UnretryableException"
        assert_no_leak(stand, self.private)
        assert "RetryPolicyContext" not in repr(list(reachable(stand)))

    def test_chain_is_followed_and_each_link_stands_in(self):
        """__cause__, then an unsuppressed __context__, each become a stand-in link."""
        root = ValueError(f"root {CODE}")
        middle = raised(OSError(f"middle {PHONE}"), cause=root)
        try:
            try:
                raise middle
            except OSError:
                raise KeyError(SECRET)  # noqa: B904 - a context, not a cause, on purpose
        except KeyError as top:
            stand = self.redactor.stand_in(top)
        chain = []
        link = stand
        while link is not None:
            chain.append(link)
            assert link.__context__ is None
            link = link.__cause__
        assert [s.type_name for s in chain] == ["KeyError", "OSError", "ValueError"]
        assert all(isinstance(s, RedactedError) for s in chain)
        assert str(chain[1]) == "OSError: middle ***8000"
        assert_no_leak(stand, self.private)

    def test_suppressed_context_is_cut(self):
        """A context the original suppressed (raise ... from None) is not kept."""
        try:
            try:
                raise ValueError(CODE)
            except ValueError:
                raise KeyError("k") from None
        except KeyError as top:
            stand = self.redactor.stand_in(top)
        assert stand.__cause__ is None

    def test_depth_cap(self):
        """A chain longer than 8 links is cut after 8."""
        link = ValueError("0")
        for i in range(1, 20):
            link = raised(ValueError(str(i)), cause=link)
        stand = self.redactor.stand_in(link)
        count = 0
        while stand is not None:
            count += 1
            stand = stand.__cause__
        assert count == 8

    def test_cycles_terminate(self):
        """A chain that loops back on itself ends at the loop."""
        a, b = ValueError(f"a {CODE}"), ValueError("b")
        a.__context__, b.__context__ = b, a
        stand = self.redactor.stand_in(a)
        assert stand.__cause__ is not None
        assert stand.__cause__.__cause__ is None
        assert_no_leak(stand, self.private)

    def test_broken_str_is_withheld(self):
        """An exception whose __str__ raises gives its type name and no text."""

        class Broken(Exception):
            def __str__(self):
                raise RuntimeError(SECRET)

        stand = self.redactor.stand_in(Broken())
        assert str(stand) == "Broken: (its text was withheld: private data)"

    def test_read_only_attributes(self):
        """An attribute that cannot be set or read safely is simply not carried."""

        class ReadOnly(Exception):
            @property
            def token(self):
                return TOKEN

        stand = self.redactor.stand_in(ReadOnly("ro"))
        assert not hasattr(stand, "token")
        assert_no_leak(stand, self.private)

    def test_tuples_and_exceptions_nested_in_args(self):
        """Args holding tuples, dicts and other exceptions are shown only as clean text."""
        inner = ValueError(f"inner {SECRET}")
        original = RuntimeError((PHONE, {"code": CODE}), [inner], NAME.encode())
        stand = self.redactor.stand_in(original)
        assert "***8000" in str(stand)
        assert stand.args == (str(stand),)
        assert_no_leak(stand, self.private)

    def test_bytes_in_args_are_scrubbed(self):
        """A value given as bytes in args shows scrubbed in the stand-in's text."""
        stand = self.redactor.stand_in(OSError(f"sent {CODE}".encode()))
        assert CODE not in str(stand)

    def test_pickles(self):
        """A stand-in survives pickling (multiprocessing, task queues)."""
        import pickle

        stand = self.redactor.stand_in(ValueError(f"{CODE}"))
        copy = pickle.loads(pickle.dumps(stand))  # noqa: S301 - our own object
        assert (str(copy), copy.type_name) == (str(stand), "ValueError")


class TestAttach:
    redactor = Redactor(phones=[PHONE], values=[CODE], secrets=[SECRET, TOKEN])

    def test_only_the_stand_in_is_chained(self):
        """attach() chains a stand-in as __cause__ and clears __context__."""
        original = raised(sdk_fakes.client_error("X", message=f"bad {PHONE} {CODE} {SECRET}"))
        try:
            raise original
        except Exception as caught:  # noqa: BLE001
            error = self.redactor.attach(RuntimeError("typed"), caught)
        try:
            raise error  # outside the except block: nothing becomes its __context__
        except RuntimeError as final:
            assert isinstance(final.__cause__, RedactedError)
            assert final.__context__ is None
            assert_no_leak(final, (PHONE, CODE, SECRET, TOKEN))
            rendered = render_with_locals(final)
        assert SECRET not in rendered
        assert "secret_local" not in rendered  # the original's frames are gone
        assert "ClientException: Error: X code: 400, bad ***8000 [redacted] [redacted]" in rendered

    def test_raising_inside_except_would_set_the_context(self):
        """Why attach() says to raise outside except: Python links the handled error."""
        original = raised(ValueError(CODE))
        try:
            raise original
        except ValueError as caught:
            error = self.redactor.attach(RuntimeError("typed"), caught)
            try:
                raise error
            except RuntimeError as final:
                assert final.__context__ is caught

    def test_no_cause(self):
        """attach(error, None) leaves no chain at all."""
        error = self.redactor.attach(RuntimeError("typed"), None)
        assert (error.__cause__, error.__context__, error.__suppress_context__) == (
            None,
            None,
            True,
        )


class TestAnchor:
    """The anchor is the value's longest run of ASCII letters and digits, 3 or more long."""

    def test_longest_run(self):
        """The longest run is the anchor, not the first or the greatest."""
        assert _anchor("ab-cdef-gh") == "cdef"

    def test_upper_and_lower_case_letters_and_digits_make_one_run(self):
        """Ab1 is one run of three."""
        assert _anchor("Ab1") == "Ab1"

    def test_three_characters_are_enough(self):
        """A run of 3 is an anchor; a run of 2 is not."""
        assert _anchor("x-xyz") == "xyz"
        assert _anchor("xy-z") is None

    def test_a_percent_sign_means_no_anchor(self):
        """A value holding % has none: its lower-cased escapes would change the run."""
        assert _anchor("ab%41cd") is None

    def test_value_with_a_percent_escape_is_found_in_lower_case(self):
        """A secret holding %4F is replaced where it shows as %4f."""
        assert Redactor(secrets=["x%4Fabc123"]).text("<x%4fabc123>") == f"<{REDACTED}>"


class TestPercentForms:
    """Each way of percent-encoding a value is replaced, in upper- and lower-case hex."""

    VALUE = "a/b c+Q1w2"

    @pytest.mark.parametrize(
        "form",
        [
            "a%2Fb%20c%2BQ1w2",  # quote(safe="")
            "a/b%20c%2BQ1w2",  # quote()
            "a%2Fb+c%2BQ1w2",  # quote_plus()
            "a/b+c%2BQ1w2",  # quote_plus(safe="/")
            "a%2fb%20c%2bQ1w2",
            "a/b+c%2bQ1w2",
        ],
    )
    def test_form(self, form):
        """A value with a slash, a space and a plus, in each of its encodings."""
        assert Redactor(secrets=[self.VALUE]).text(f"<{form}>") == f"<{REDACTED}>"


class TestShortValueOrder:
    def test_longer_short_value_wins(self):
        """With short values 1 and 1-2, the text 1-2 is replaced whole, not as 1 and -2."""
        assert Redactor(values=["1", "1-2"]).text("x 1-2 y") == f"x {REDACTED} y"

    def test_two_letter_value_next_to_a_code(self):
        """A two-letter value and a code side by side are both replaced cleanly."""
        redactor = Redactor(values=["XX", CODE])
        assert redactor.text(f"{CODE} XX") == f"{REDACTED} {REDACTED}"


class TestLeaks:
    def test_leaks(self):
        """leaks() is true while a private value of 4+ characters shows, in any form."""
        redactor = Redactor(values=[CODE], secrets=[SECRET])
        assert redactor.leaks(f"x{CODE}y")
        assert redactor.leaks(quote(SECRET, safe=""))
        assert not redactor.leaks(f"x {REDACTED} y")


class TestStandInText:
    redactor = Redactor(values=[CODE])

    def test_empty_text_gives_the_type_name_alone(self):
        """An exception with no text stands in as its type name, without a colon."""
        assert str(self.redactor.stand_in(KeyError())) == "KeyError"

    def test_unreadable_text_names_the_type(self):
        """A __str__ that raises: the type name, then why the text is missing."""

        class Unreadable(Exception):
            def __str__(self):
                raise ValueError

        stand = self.redactor.stand_in(Unreadable())
        assert str(stand) == "Unreadable: (its text was withheld: private data)"

    def test_type_name_defaults_to_empty(self):
        """A RedactedError made by hand has an empty type_name."""
        assert RedactedError("text").type_name == ""

    def test_text_that_still_leaks_once_scrubbed_is_withheld(self):
        """A value that shows only once another is replaced is withheld."""
        redactor = Redactor(secrets=["abcd1234", "d]]x"])
        stand = redactor.stand_in(ValueError("abcd1234]x"))
        assert str(stand) == "ValueError: (its text was withheld: private data)"
