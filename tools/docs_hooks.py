# ruff: noqa: INP001 - an MkDocs hooks file, loaded by path from mkdocs.yml
"""MkDocs hooks: the pages that are generated from the code at build time.

A page asks for a generated part with a marker on a line of its own:

- ``<!-- generated: error-table -->``: the translation table of
  ``aliyun_sms_connector._errors.translate`` (every Aliyun code, its class, whether it
  is retried, and its explanation), then the network failures;
- ``<!-- generated: cli-help -->``: ``aliyun-sms --help`` and each command's
  ``--help``, as the installed command prints them.

So the reference cannot fall behind the code: a new code in the table or a
new option of a command shows on the next build. ``tests/test_docs.py``
checks that each marker's page exists and that the rendering holds every row.

It also checks the API reference as rendered: each name listed under a
``::: module`` directive's ``members:`` must come out with its anchor
(``id="module.Name"``), or the build warns, which ``--strict`` makes fatal.
mkdocstrings skips a member it cannot resolve without a word; this is the
word.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

# Under "mkdocs.", so that mkdocs counts its warnings (and --strict fails on them).
log = logging.getLogger("mkdocs.hooks.docs_hooks")
DIRECTIVE = re.compile(r"^::: (\S+)\n((?:[ ]{4}.*\n|\n)*)", re.MULTILINE)
MEMBER = re.compile(r"^\s+- (\w+)$", re.MULTILINE)

ERROR_TABLE = "<!-- generated: error-table -->"
CLI_HELP = "<!-- generated: cli-help -->"
_HELP_WIDTH = "88"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def error_table() -> str:
    """The Markdown tables of every Aliyun code and every network failure."""
    from aliyun_sms_connector._errors import translate as _translate  # noqa: PLC0415 - only when a page asks

    lines = [
        "| code | class | retried | what it means |",
        "|---|---|---|---|",
    ]
    for row in _translate._TABLE:  # noqa: SLF001 - the table is the source of this page
        code, cls, retryable, explanation = row[0], row[1], row[2], row[3]
        lines.append(
            f"| `{_cell(code)}` | `{cls.__name__}` | {'yes' if retryable else 'no'} "
            f"| {_cell(explanation) or '&nbsp;'} |"
        )
    lines += [
        "",
        "Failures with no answer from Aliyun, by what the transport saw:",
        "",
        "| code | class | maybe sent | retried | message |",
        "|---|---|---|---|---|",
    ]
    for kind, (cls, code, message, maybe_sent, retryable) in _translate._NETWORK.items():  # noqa: SLF001
        # The transport says, per failure, whether these came before or after the first byte.
        by_phase = kind in {"deadline", "closed"}
        sent = "by phase" if by_phase else ("yes" if maybe_sent else "no")
        retried = "yes" if retryable and not maybe_sent else "no"
        lines.append(f"| `{code}` | `{cls.__name__}` | {sent} | {retried} | {_cell(message)} |")
    return "\n".join(lines)


def cli_help() -> str:
    """``aliyun-sms --help`` and every command's ``--help``, each in a console block."""
    import argparse  # noqa: PLC0415

    from aliyun_sms_connector._cli import main  # noqa: PLC0415

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = _HELP_WIDTH  # argparse wraps to the terminal's width
    try:
        parser = main._parser()  # noqa: SLF001 - the command's own parser
        parts = [_block("aliyun-sms --help", parser.format_help())]
        parts += _subcommands("aliyun-sms", parser, argparse)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n\n".join(parts)


def _subcommands(prefix: str, parser: Any, argparse: Any) -> list[str]:
    parts = []
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                command = f"{prefix} {name}"
                parts.append(
                    f"### `{command}`\n\n" + _block(f"{command} --help", sub.format_help())
                )
                parts += _subcommands(command, sub, argparse)
    return parts


def _block(command: str, text: str) -> str:
    return f"```text\n$ {command}\n{text.rstrip()}\n```"


def listed_members(markdown: str) -> list[str]:
    """``module.Name`` for each name the page's directives list under ``members:``."""
    found = []
    for target, options in DIRECTIVE.findall(markdown):
        if "members:" in options:
            found += [f"{target}.{name}" for name in MEMBER.findall(options.split("members:")[1])]
    return found


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace each marker line with what it asks for; note the API members listed."""
    page.meta["api_members"] = listed_members(markdown)
    if ERROR_TABLE in markdown:
        markdown = markdown.replace(ERROR_TABLE, error_table())
    if CLI_HELP in markdown:
        markdown = markdown.replace(CLI_HELP, cli_help())
    return markdown


def on_page_content(html: str, page: Any, **_: Any) -> str:
    """Warn about each listed member that did not come out with its anchor."""
    for name in page.meta.get("api_members", ()):
        if f'id="{name}"' not in html:
            log.warning("%s: %s is listed but was not rendered", page.file.src_path, name)
    return html
