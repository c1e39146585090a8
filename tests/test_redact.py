import traceback

from aliyun_sms_connector._redact import REDACTED, RedactedError, Redactor, mask_phone

PHONE = "138" + "00138000"
CODE = "4829" + "13"


class TestMaskPhone:
    def test_last_four_digits_only(self):
        """Only the last 4 digits survive."""
        assert mask_phone("+86 138-0013-8000") == "***8000"

    def test_short_inputs_show_nothing(self):
        """Four digits or fewer are hidden entirely."""
        assert mask_phone("1234") == "***"
        assert mask_phone("") == "***"


class TestRedactor:
    redactor = Redactor(phones=["13800138000"], values=["482913", "42"], secrets=["s3cr3t!"])

    def test_values_in_text(self):
        """Numbers, template values and secrets are replaced in text."""
        text = self.redactor.text("to 13800138000 code 482913 key s3cr3t! n=42 x=420")
        assert text == f"to ***8000 code {REDACTED} key {REDACTED} n={REDACTED} x=420"

    def test_url_encoded_query(self):
        """PhoneNumbers and TemplateParam values in a URL are replaced whole."""
        url = "/?PhoneNumbers=8613900001111&TemplateParam=%7B%22code%22%3A%22999%22%7D&SignName=S"
        assert Redactor().text(url) == (
            f"/?PhoneNumbers={REDACTED}&TemplateParam={REDACTED}&SignName=S"
        )

    def test_url_encoded_secret(self):
        """A secret with reserved characters is also caught URL-encoded."""
        assert "s3cr3t" not in self.redactor.text("a=s3cr3t%21")

    def test_exception_chain_is_cleaned_in_place(self):
        """Args, attributes and linked exceptions are cleaned; the object is kept."""
        try:
            try:
                raise OSError(f"connect to /?PhoneNumbers={PHONE} failed")
            except OSError as inner:
                # f-strings: traceback prints these source lines, which must not hold the values.
                raise RuntimeError(f"code {CODE}", {"PhoneNumbers": PHONE}) from inner
        except RuntimeError as caught:
            err = caught
        err.data = {"nested": [PHONE]}
        cleaned = self.redactor.exception(err)
        assert cleaned is err
        shown = "".join(traceback.format_exception(cleaned)) + repr(cleaned.data)
        assert "13800138000" not in shown
        assert "482913" not in shown

    def test_uncleanable_link_is_cut(self):
        """A linked exception whose __str__ cannot be cleaned is dropped from the chain."""

        class Stubborn(Exception):
            def __str__(self):
                return "number 13800138000"

        outer = ValueError("fine")
        outer.__cause__ = Stubborn()
        cleaned = self.redactor.exception(outer)
        assert cleaned is outer
        assert outer.__cause__ is None

    def test_uncleanable_root_is_replaced(self):
        """A root exception that stays unclean is replaced by RedactedError."""

        class Stubborn(Exception):
            def __str__(self):
                return "number 13800138000"

        cleaned = self.redactor.exception(Stubborn())
        assert isinstance(cleaned, RedactedError)
        assert "Stubborn" in str(cleaned)
        assert "13800138000" not in str(cleaned)

    def test_broken_str_is_treated_as_unclean(self):
        """An exception whose __str__ raises is not trusted."""

        class Broken(Exception):
            def __str__(self):
                raise RuntimeError

        assert isinstance(self.redactor.exception(Broken()), RedactedError)

    def test_cycles_terminate(self):
        """A chain that loops back on itself is walked once."""
        a, b = ValueError("a 482913"), ValueError("b")
        a.__context__, b.__context__ = b, a
        self.redactor.exception(a)
        assert "482913" not in str(a)

    def test_request_objects_are_cleaned(self):
        """The SDK's request object keeps its query; private keys are replaced."""
        from darabonba.request import DaraRequest

        request = DaraRequest()
        request.query = {"PhoneNumbers": "13800138000", "SignName": "S"}
        request.headers = {"x-acs-security-token": "tok", "host": "h"}
        err = RuntimeError("x")
        err.last_request = request
        self.redactor.exception(err)
        assert request.query == {"PhoneNumbers": REDACTED, "SignName": "S"}
        assert request.headers == {"x-acs-security-token": REDACTED, "host": "h"}
