"""The docs say what the code does: every public name, key, field, code and exit status.

The site is built by ``tox -e docs`` (``mkdocs build --strict``); these tests
need no MkDocs. They read the Markdown sources, so that a new export, config
key, policy field or exit status fails here until it is documented.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from aliyun_sms_connector import AliyunSmsConfig, _errors
from aliyun_sms_connector._cli import common
from aliyun_sms_connector._errors import translate as _translate
from aliyun_sms_connector.verify import VerificationPolicy

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
# The README's two set-up commands; .ci/run runs the second exactly.
DEMO_COMMAND = "python3 -m pip install --quiet . && aliyun-sms demo"
TEST_COMMAND = "python3 -m pip install --quiet tox && python3 -m tox"
# The bound, in bytes of UTF-8 (not 12 KiB): 12,000.
README_MAX_BYTES = 12_000
PUBLIC_MODULES = (
    "aliyun_sms_connector",
    "aliyun_sms_connector.verify",
    "aliyun_sms_connector.emulator",
    "aliyun_sms_connector.pytest_plugin",
)


def read(path: str) -> str:
    return (DOCS / path).read_text(encoding="utf-8")


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def documented_members() -> dict[str, list[str]]:
    """Module → the names its mkdocstrings directives list under ``members:``."""
    hooks = load_hooks()
    found: dict[str, list[str]] = {}
    for page in sorted((DOCS / "reference" / "api").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target, options in hooks.DIRECTIVE.findall(text):
            assert "members:" in options, f"{page.name}: ::: {target} lists no members"
        for qualified in hooks.listed_members(text):
            module, name = qualified.rsplit(".", 1)
            found.setdefault(module, []).append(name)
    return found


class TestApiReference:
    def test_every_public_name_is_documented(self):
        """Each public module's __all__ is exactly what the API reference lists, once each."""
        documented = documented_members()
        for name in PUBLIC_MODULES:
            exported = importlib.import_module(name).__all__
            listed = documented.get(name, [])
            assert sorted(listed) == sorted(exported), name

    def test_only_public_modules_are_documented(self):
        """No directive points at a private module (their names move; the public ones stay)."""
        assert set(documented_members()) == set(PUBLIC_MODULES)

    def test_the_parser_reads_members_lists(self):
        """Each directive's members list is read, and nothing after it."""
        page = (
            "::: pkg\n    options:\n      heading_level: 3\n      members:\n"
            "        - A\n        - B\n\n- not a member\n\n::: pkg.sub\n    options:\n"
            "      members:\n        - C\n"
        )
        assert load_hooks().listed_members(page) == ["pkg.A", "pkg.B", "pkg.sub.C"]

    def test_an_unrendered_member_warns(self, caplog):
        """The build warns (fatal under --strict) when a listed name has no anchor."""
        hooks = load_hooks()
        page = SimpleNamespace(meta={}, file=SimpleNamespace(src_path="api.md"))
        hooks.on_page_markdown("::: pkg\n    options:\n      members:\n        - A\n", page=page)
        hooks.on_page_content('<h3 id="pkg.A">A</h3>', page=page)
        assert caplog.records == []
        hooks.on_page_content("<p>nothing</p>", page=page)
        assert [r.getMessage() for r in caplog.records] == [
            "api.md: pkg.A is listed but was not rendered"
        ]


class TestGeneratedPages:
    def test_the_error_table_holds_every_code(self):
        """The generated error table has a row for each translation-table code and network kind."""
        table = load_hooks().error_table()
        for code, cls, retryable, _explanation in (row[:4] for row in _translate._TABLE):
            row = f"| `{code}` | `{cls.__name__}` | "
            assert row + ("yes" if retryable else "no") in table, code
        for _cls, code, *_ in _translate._NETWORK.values():
            assert f"| `{code}` |" in table, code

    def test_the_explanations_are_shown(self, monkeypatch):
        """An explanation in the table lands in its row."""
        row = ("isv.EXAMPLE", _errors.SignNameError, False, "the sign name is not approved")
        monkeypatch.setattr(_translate, "_TABLE", (row,))
        assert "| `isv.EXAMPLE` | `SignNameError` | no | the sign name is not approved |" in (
            load_hooks().error_table()
        )

    def test_the_cli_help_covers_every_command(self):
        """The generated CLI reference has each command's --help."""
        text = load_hooks().cli_help()
        for command in ("demo", "send", "status", "send-batch", "check-config", "emulator"):
            assert f"$ aliyun-sms {command} --help" in text, command
        assert "$ aliyun-sms verify start --help" in text
        assert "$ aliyun-sms verify check --help" in text

    @pytest.mark.parametrize(
        ("page", "marker"),
        [("reference/errors.md", "error-table"), ("reference/cli.md", "cli-help")],
    )
    def test_markers_are_replaced(self, page, marker):
        """A page's marker line becomes the generated Markdown."""
        source = read(page)
        out = load_hooks().on_page_markdown(source, page=SimpleNamespace(meta={}))
        assert f"<!-- generated: {marker} -->" not in out
        assert len(out) > len(source)

    @pytest.mark.parametrize(
        ("page", "marker"),
        [("reference/errors.md", "error-table"), ("reference/cli.md", "cli-help")],
    )
    def test_markers_are_on_their_pages(self, page, marker):
        """The pages ask for the generated parts, and mkdocs.yml loads the hooks."""
        assert f"<!-- generated: {marker} -->" in read(page)
        assert "tools/docs_hooks.py" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")


def exit_status_table() -> dict[int, str]:
    """The CLI reference's exit-status table: status → its row's text."""
    section = read("reference/cli.md").split("## Exit statuses", 1)[1].split("\n## ", 1)[0]
    return {
        int(status): text
        for status, text in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    }


class TestReferenceTables:
    def test_exit_status_table_names_each_error_class(self):
        """Every error class's exit status is in the table, on its class's row."""
        table = exit_status_table()
        for name, status in common.EXIT_CODES:
            assert f"`{name}`" in table[status], (name, status)

    def test_exit_status_table_has_every_other_outcome(self):
        """Usage, partial batch, port, verify outcomes, Ctrl-C and a closed pipe are documented."""
        table = exit_status_table()
        for status in (
            common.USAGE,
            common.PARTIAL,
            common.PORT_UNAVAILABLE,
            common.WRONG_CODE,
            common.TOO_MANY_ATTEMPTS,
            common.NOT_FOUND,
            common.INTERRUPTED,
            common.BROKEN_PIPE,
        ):
            assert status in table, status

    def test_every_config_key_is_documented(self):
        """Each key of AliyunSmsConfig, as Logto spells it, is on the config page."""
        page = read("reference/config.md")
        for name, field in AliyunSmsConfig.model_fields.items():
            assert f"`{field.alias or name}`" in page, name

    def test_every_policy_field_is_documented(self):
        """Each field of VerificationPolicy has a row in the policy table."""
        page = read("reference/policy.md")
        for field in dataclasses.fields(VerificationPolicy):
            assert f"\n| `{field.name}` |" in page, field.name


class TestReadme:
    def test_size(self):
        """The README is at most 12,000 bytes: the rest lives in docs/."""
        assert len(README.read_bytes()) <= README_MAX_BYTES

    def test_set_up_commands(self):
        """The README shows the two set-up commands, and CI runs the test command exactly."""
        text = README.read_text(encoding="utf-8")
        assert f"```console\n{DEMO_COMMAND}\n```" in text
        assert f"```console\n{TEST_COMMAND}\n```" in text
        assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")

    def test_links_resolve(self):
        """Every relative link of the README points at a file that exists."""
        text = README.read_text(encoding="utf-8")
        links = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", text)
        assert links
        for link in links:
            assert (ROOT / link).exists(), link

    def test_mas_example_is_the_sample_config(self):
        """The README's Logto aliyun-sms-mas JSON is examples/logto-mas.json, key for key."""
        text = README.read_text(encoding="utf-8")
        [literal] = re.findall(r'json\.loads\("""(.*?)"""\)', text, re.DOTALL)
        sample = (ROOT / "examples" / "logto-mas.json").read_text(encoding="utf-8")
        assert json.loads(literal) == json.loads(sample)


class TestSite:
    def test_nav_and_pages_agree(self):
        """Every page in docs/ is in mkdocs.yml's nav, and every nav entry exists."""
        config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
        nav = set(re.findall(r"^\s*- (?:[^:\n]+: )?([\w/.-]+\.md)$", config, re.MULTILINE))
        pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
        assert nav == pages

    def test_docs_extra_is_pinned(self):
        """The docs tools are pinned exactly, as the lint tools are."""
        pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        extra = pyproject.split("docs = [", 1)[1].split("]", 1)[0]
        pins = re.findall(r'"([\w-]+(?:\[\w+\])?)==([\d.]+)"', extra)
        assert {name for name, _ in pins} == {
            "mkdocs",
            "mkdocs-material",
            "mkdocstrings",
            "mkdocstrings-python",
        }
