"""The aliyun_sms_emulator fixture, used from a separate throwaway project."""

import os
import subprocess
import sys
import textwrap


def test_fixture_in_a_throwaway_project(tmp_path):
    """A project that only installs this package gets the fixture through pytest11."""
    project = tmp_path / "someone_elses_app"
    project.mkdir()
    (project / "test_signup.py").write_text(
        textwrap.dedent(
            """
            from aliyun_sms_connector import AliyunSmsConnector, SignNameError
            import pytest

            def test_sign_in_code(aliyun_sms_emulator):
                connector = AliyunSmsConnector(aliyun_sms_emulator.connector_config())
                result = connector.send_message("+86 138 0013 8000", "SignIn", {"code": "123456"})
                [message] = aliyun_sms_emulator.outbox
                assert message.phone_number == "13800138000"
                assert message.params == {"code": "123456"}
                assert message.biz_id == result.biz_id

            def test_each_test_gets_a_fresh_emulator(aliyun_sms_emulator):
                assert aliyun_sms_emulator.outbox == []

            def test_faults(aliyun_sms_emulator):
                aliyun_sms_emulator.fail_next("isv.SMS_SIGNATURE_ILLEGAL")
                connector = AliyunSmsConnector(aliyun_sms_emulator.connector_config())
                with pytest.raises(SignNameError):
                    connector.send_message("13800138000", "SignIn", {"code": "1"})
            """
        )
    )
    # No conftest, no rootdir config, and none of this repository's files on the
    # path: -I (isolated mode) ignores PYTHONPATH and the working directory, so
    # only the installed package can provide the fixture.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "COVERAGE"))}
    result = subprocess.run(
        [sys.executable, "-I", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_fixture_is_registered_here_too(aliyun_sms_emulator):
    """The fixture is available in this project's own suite."""
    assert aliyun_sms_emulator.endpoint.startswith("127.0.0.1:")
