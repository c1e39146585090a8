"""The examples of the pumping guard's and the events' pages run as written.

Each ```python block of docs/explanation/pumping.md and docs/how-to/events.md
runs alone in a fresh interpreter, in an empty folder: it must exit 0 and write
nothing to stderr. Where a ``print(...)`` line ends with a comment, the
comment is what it prints, and each such line must appear in the output, in
order. (The docs' general runner does the same for every page.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "docs" / "explanation" / "pumping.md", ROOT / "docs" / "how-to" / "events.md"]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PRINTED = re.compile(r"^\s*print\(.*\)\s+# (.+)$")


def blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


BLOCKS = blocks()


def test_each_page_has_its_examples():
    """The guard's tuning example and both event uses are there to run."""
    assert len(BLOCKS) == 3


@pytest.mark.parametrize(("where", "source"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_block_runs(where, source, tmp_path):
    """The block exits 0, writes nothing to stderr, and prints what its comments say."""
    env = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, "-c", source],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr[-3000:]}"
    assert done.stderr == "", where
    expected = [m.group(1) for line in source.splitlines() if (m := PRINTED.match(line))]
    assert expected, f"{where} shows none of its output"
    output = iter(done.stdout.splitlines())
    for line in expected:
        assert any(got == line for got in output), f"{where}: {line!r} not printed (in order)"
