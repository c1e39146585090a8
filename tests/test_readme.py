"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

from aliyun_sms_connector.emulator import Emulator

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_readme_has_examples():
    """The README shows usage, emulator and fixture examples."""
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs(block, capsys):
    """Each example executes; test functions in it are called with a real emulator."""
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value):
            with Emulator() as emulator:
                value(emulator)


def test_usage_example_output(capsys):
    """The usage example prints what its comments say."""
    exec(compile(BLOCKS[0], str(README), "exec"), {})  # noqa: S102
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(" SMS_000001")
    assert out[1] == "【AliyunSmsTest】Your code is 123456."
    assert out[2] == "isv.BUSINESS_LIMIT_CONTROL minute 60.0"


def test_verification_example_output(capsys):
    """The verification example prints what its comments say."""
    [block] = [b for b in BLOCKS if "VerificationService(connector)" in b]
    exec(compile(block, str(README), "exec"), {})  # noqa: S102
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "***8000 0:09:00"
    assert "WRONG_CODE" in out[1]
    assert out[1].endswith("attempts_left=4)")
    assert out[2:4] == ["True", "not_found"]
    code, retry_after = out[4].split()
    assert code == "VerificationCooldown"
    assert 0 < float(retry_after) <= 60


def exit_status_table() -> dict[int, str]:
    """The README's exit-status table under "Command line": status -> its row's text."""
    section = README.read_text(encoding="utf-8").split("## Command line", 1)[1].split("\n## ", 1)[0]
    return {
        int(status): text
        for status, text in re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    }


def test_exit_status_table_names_each_error_class():
    """Every error class's exit status is in the README's table, on its class's row."""
    from aliyun_sms_connector._cli.common import EXIT_CODES

    table = exit_status_table()
    for name, status in EXIT_CODES:
        assert f"`{name}`" in table[status], (name, status)


def test_exit_status_table_has_every_other_outcome():
    """Usage, partial batch, port, verify outcomes, Ctrl-C and a closed pipe are all documented."""
    from aliyun_sms_connector._cli import common

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
