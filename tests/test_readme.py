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
