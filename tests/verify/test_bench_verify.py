"""bench/bench_verify.py works end to end; its figures are never asserted here."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aliyun_sms_connector import parse_phone

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_verify.py"


def test_smoke_run(tmp_path, redis_url):
    """--smoke runs every side once and writes a complete JSON summary."""
    if not os.environ.get("REDIS_URL") and shutil.which("redis-server") is None:
        pytest.skip("the bench starts its own redis-server")
    out = tmp_path / "bench.json"
    env = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert len(summary["rounds"]) == 2
    for round_ in summary["rounds"]:
        assert sorted(round_["order"]) == ["bare", "check", "direct"]
        for side in ("bare", "direct", "check"):
            assert round_[side]["ops"] == 300
            assert round_[side]["cpu_us_per_op"] > 0
            assert round_[side]["server_cpu_us_per_op"] >= 0
            assert 0 <= round_[side]["server_busy"] < 2
    assert summary["start_async"]["ops"] == 200
    guard = summary["guard"]
    assert len(guard["rounds"]) == 1
    for side in ("start_off", "start_on", "approve_off", "approve_on"):
        assert guard["rounds"][0][side]["ops"] == (200 if side.startswith("start") else 300)
        assert guard["rounds"][0][side]["cpu_us_per_op"] > 0
    assert set(guard["ratios"]) == {"start", "approve"}
    assert "guard on / off, approve" in done.stdout
    assert summary["rounds"][0]["order"] != summary["rounds"][1]["order"]
    assert "check_async / bare EVALSHA" in done.stdout
    assert "store's own path" in done.stdout
    assert "redis-server CPU" in done.stdout


def test_numbers_are_distinct():
    """The check side's numbers are all different, so no per-number state can flatter it."""
    spec = importlib.util.spec_from_file_location("bench_verify", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    targets = bench.numbers(10_000 + bench.WARMUP)
    assert len(set(targets)) == len(targets)
    assert all(parse_phone(number).region == "china" for number in targets[::997])


@pytest.mark.parametrize("kind", ["check", "start"])
@pytest.mark.parametrize("guard", ["on", "off"])
def test_guard_instructions_child_runs(kind, guard):
    """bench/guard_instructions.py's child drives the service through its stubbed store."""
    script = BENCH.with_name("guard_instructions.py")
    env = {**os.environ, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    command = [sys.executable, str(script), "--child", kind, "--guard", guard, "--calls", "5"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
