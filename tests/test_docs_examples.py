"""Every code block of the README and the docs works as written, pasted on its own.

- A ```python block runs in a fresh interpreter, in an empty folder, with a
  timeout: it must exit 0 and write nothing to stderr. A block that defines
  ``test_`` functions runs under pytest instead (the ``aliyun_sms_emulator``
  fixture comes from this package's plugin). A block that reads ``REDIS_URL``
  gets the tests' Redis (tests/verify's ``redis_url``: ``REDIS_URL``, else a
  redis-server of the session's own).
- Where a ``print(...)`` line ends with a comment, the comment is what it
  prints: each such line must appear in the output, in that order; ``...``
  matches anything.
- A ```py block cannot run here (it names production hosts): it must compile.
- Every block, ```python or ```py, is complete: each name it uses is
  imported or defined in it, as a user who pastes it needs.
"""

from __future__ import annotations

import builtins
import io
import os
import re
import subprocess
import symtable
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

import pytest

from .verify.conftest import redis_url  # noqa: F401 - the Redis fixture, for blocks that need it

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(python|py)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
TIMEOUT = 120
BUILTINS = frozenset(dir(builtins))


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and its source."""

    path: Path
    line: int
    lang: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def collect() -> list[Block]:
    found = []
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(path, line, match.group(1), match.group(2)))
    return found


BLOCKS = collect()
RUNNABLE = [b for b in BLOCKS if b.lang == "python"]


def undefined_names(source: str) -> set[str]:
    """Names the code reads that it neither defines nor imports (builtins aside)."""
    top = symtable.symtable(source, "<block>", "exec")
    defined = {
        s.get_name()
        for s in top.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    }
    missing: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for symbol in table.get_symbols():
            name = symbol.get_name()
            is_global = table is top or symbol.is_global()
            if symbol.is_referenced() and is_global and name not in defined | BUILTINS:
                missing.add(name)
        for child in table.get_children():
            walk(child)

    walk(top)
    return missing


def expected_lines(source: str) -> list[str]:
    """The comments that end ``print(...)`` lines: what the block says it prints."""
    lines = source.splitlines()
    expected = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line = lines[token.start[0] - 1]
            if line.lstrip().startswith("print(") and token.start[1] > len(line) - len(
                line.lstrip()
            ):
                expected.append(token.string[1:].strip())
    return expected


def matches_in_order(expected: list[str], output: list[str]) -> str | None:
    """None if each expected line matches an output line, in order; else the first that does not."""
    remaining = iter(output)
    for want in expected:
        pattern = re.compile(".*".join(re.escape(part) for part in want.split("...")))
        if not any(pattern.fullmatch(line.strip()) for line in remaining):
            return want
    return None


def run(block: Block, folder: Path, redis: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIYUN_SMS_", "PYTEST_"))}
    env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    env.pop("REDIS_URL", None)
    if redis is not None:
        env["REDIS_URL"] = redis
    if re.search(r"^def test_", block.source, re.MULTILINE):
        script = folder / "test_example.py"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", script.name]
    else:
        script = folder / "example.py"
        command = [sys.executable, script.name]
    script.write_text(block.source, encoding="utf-8")
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_blocks_are_found():
    """The collector sees the README's example and the docs' blocks of both kinds."""
    readme = [b for b in BLOCKS if b.path.name == "README.md"]
    assert [b.lang for b in readme] == ["python", "python"]  # the SMS and the MAS examples
    assert len(RUNNABLE) >= 12
    assert any(b.lang == "py" for b in BLOCKS)


def test_expected_lines_reads_print_comments_only():
    """Only a comment that ends a print line is an expectation."""
    source = 'x = 1  # not output\nprint(x)  # 1\n# print("no")\nprint("#")\n'
    assert expected_lines(source) == ["1"]


def test_matches_in_order():
    """Expectations match in order, with ... as a wildcard; a missing one is reported."""
    assert matches_in_order(["a", "c ... e"], ["a", "b", "c d e"]) is None
    assert matches_in_order(["c", "a"], ["a", "b", "c"]) == "a"


def test_undefined_names():
    """A block that uses a name it never defines or imports is caught."""
    assert undefined_names("import os\nos.getcwd()\nprint(len([]))\n") == set()
    assert undefined_names("service = VerificationService(connector)\n") == {
        "VerificationService",
        "connector",
    }
    assert undefined_names("def f(a):\n    return a + b\n") == {"b"}


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block_is_complete(block):
    """Each block compiles and defines or imports every name it uses."""
    compile(block.source, block.id, "exec")
    assert undefined_names(block.source) == set(), block.id


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_python_block_runs(block, tmp_path, request):
    """Each ```python block runs on its own and prints what its comments say."""
    redis = request.getfixturevalue("redis_url") if "REDIS_URL" in block.source else None
    result = run(block, tmp_path, redis)
    assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"
    if "def test_" not in block.source:
        assert result.stderr == "", f"{block.id}\n{result.stderr}"
        missing = matches_in_order(expected_lines(block.source), result.stdout.splitlines())
        assert missing is None, f"{block.id}: no output line matches {missing!r}\n{result.stdout}"
