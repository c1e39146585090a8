"""A smoke run of bench/bench.py with tiny N: the harness works end to end.

The targets themselves are checked by full runs of the harness, never here.
"""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench" / "bench.py"


def test_bench_harness_smoke(tmp_path):
    """The harness measures every row against live emulators and writes JSON."""
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    assert set(data["ratios"]) == {
        "async throughput / round-trip bound",
        "async throughput / SDK async",
        "async throughput / raw aiohttp",
        "async p99 / raw aiohttp p99",
        "SDK async after / before this library",
        "sync per call / raw SDK call (0 ms, HTTP)",
        "import time / SDK client import",
    }
    assert all(value > 0 for value in data["ratios"].values())
    for run in data["runs"].values():
        assert run["rate"] > 0
        assert 0 < run["p50"] <= run["p99"]
    assert "async throughput / raw aiohttp" in result.stdout
