"""The Redis fixture of tests/verify/conftest.py: skip with a hint, but fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Any one test that needs the session Redis.
A_REDIS_TEST = "tests/verify/test_redis.py::TestKeys::test_prefix_with_braces_is_refused"


def run_without_redis(**env):
    """pytest on one Redis test with no REDIS_URL and no redis-server on PATH."""
    clean = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "CI"}}
    clean.update(PATH=str(Path(sys.executable).parent), **env)
    if Path(clean["PATH"], "redis-server").exists():
        pytest.skip("redis-server sits next to the interpreter; cannot hide it")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", A_REDIS_TEST],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env=clean,
    )


class TestRedisFixture:
    """Without Redis the tests say how to get it; CI may not go without."""

    def test_skips_with_a_hint(self):
        """No REDIS_URL, no redis-server: the test skips and the reason says what to do."""
        done = run_without_redis()
        assert done.returncode == 0, done.stdout[-2000:]
        assert "1 skipped" in done.stdout
        assert "REDIS_URL" in done.stdout
        assert "redis-server" in done.stdout

    def test_fails_under_ci(self):
        """With CI set, the same run fails instead of skipping."""
        done = run_without_redis(CI="true")
        assert done.returncode != 0
        assert "CI is set" in done.stdout
        assert "skipped" not in done.stdout
