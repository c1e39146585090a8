"""serve_forever(): SIGTERM and Ctrl-C stop the emulator and remove its TLS files."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests

from aliyun_sms_connector.emulator import Emulator

SCRIPT = textwrap.dedent(
    """
    import signal
    import threading
    import time
    from aliyun_sms_connector.emulator import Emulator

    emulator = Emulator(tls=True)

    def announce():
        # Ready once serve_forever() has taken SIGTERM over and started.
        while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or emulator.ca_file is None:
            time.sleep(0.01)
        print(emulator.ca_file, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        raise SystemExit(130)
    print("returned", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    """
)


def serve_in_child() -> tuple[subprocess.Popen[str], Path]:
    """A child process serving TLS; returns it and its CA folder, once that exists."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    ca_file = Path(child.stdout.readline().strip())
    assert ca_file.is_file(), child.stderr.read() if child.stderr else ""
    return child, ca_file.parent


class TestSignals:
    def test_sigterm_removes_the_tls_folder(self):
        """SIGTERM ends serve_forever() normally, removes the key folder and restores SIGTERM."""
        child, folder = serve_in_child()
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        assert out.strip() == "returned True"
        assert not folder.exists()
        assert "Traceback" not in err

    def test_ctrl_c_removes_the_tls_folder(self):
        """Ctrl-C (SIGINT) removes the key folder too and propagates as KeyboardInterrupt."""
        child, folder = serve_in_child()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 130, err
        assert out.strip() == "interrupted"
        assert not folder.exists()


class TestThreads:
    def test_stop_from_another_thread_ends_serve_forever(self):
        """serve_forever() in a worker thread returns when stop() is called, and cleans up."""
        emulator = Emulator(tls=True)
        worker = threading.Thread(target=emulator.serve_forever)
        worker.start()
        try:
            while emulator.ca_file is None:  # set by start(), inside the worker
                worker.join(0.01)
            folder = Path(emulator.ca_file).parent
            assert folder.is_dir()
        finally:
            emulator.stop()
            worker.join(10)
        assert not worker.is_alive()
        assert not folder.exists()

    def test_serve_forever_starts_a_stopped_emulator(self):
        """An emulator stopped once can serve_forever() again."""
        emulator = Emulator().start()
        emulator.stop()
        worker = threading.Thread(target=emulator.serve_forever)
        worker.start()
        try:
            while emulator._socket is None:  # wait for the bind
                worker.join(0.01)
            assert emulator.endpoint.startswith("127.0.0.1:")
        finally:
            emulator.stop()
            worker.join(10)
        assert not worker.is_alive()
        with pytest.raises(RuntimeError):
            _ = emulator.port


STOP_IN_FLIGHT = textwrap.dedent(
    """
    import gc
    import threading
    import requests
    from aliyun_sms_connector.emulator import Emulator

    emulator = Emulator().start()
    emulator.delay(60.0, count=None)
    outcome = []

    def ask():
        try:
            requests.post(f"http://{emulator.endpoint}/", data={"Action": "SendSms"}, timeout=60)
            outcome.append("answered")
        except requests.ConnectionError:
            outcome.append("cut")

    asker = threading.Thread(target=ask)
    asker.start()
    while not emulator.requests:  # the answer is now held by the delay
        asker.join(0.01)
    emulator.stop()
    asker.join(60)
    gc.collect()
    print(outcome, flush=True)
    """
)


class TestStopWithAnswersInFlight:
    @pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
    def test_stop_cancels_held_answers_cleanly(self, caplog, tls):
        """stop() while an answer is held cancels it: the client is cut, asyncio logs nothing."""
        emulator = Emulator(tls=tls).start()
        url = f"{emulator.protocol}://{emulator.endpoint}/"
        verify = emulator.ca_file or True
        emulator.delay(60.0, count=None)
        outcome: list[str] = []

        def ask() -> None:
            try:
                requests.post(url, data={"Action": "SendSms"}, verify=verify, timeout=60)
                outcome.append("answered")
            except requests.ConnectionError:
                outcome.append("cut")

        asker = threading.Thread(target=ask)
        asker.start()
        while not emulator.requests:
            asker.join(0.01)
        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            emulator.stop()
            asker.join(60)
            gc.collect()
        assert outcome == ["cut"]
        assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []

    def test_stop_in_dev_mode(self):
        """Under -X dev, stop() with an answer in flight prints no warning or error at all."""
        child = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", "-c", STOP_IN_FLIGHT],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.returncode == 0, child.stderr
        assert child.stdout.strip() == "['cut']"
        # Debug mode also reports callbacks slower than 0.1 s ("Executing <Task ...>
        # took 0.3 seconds"): a matter of load, not of stop().
        reported = [
            line
            for line in child.stderr.splitlines()
            if not (line.startswith("Executing <") and " took " in line)
        ]
        assert reported == []


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (Linux's SigCgt mask)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_cli_sigterm_removes_the_tls_folder():
    """aliyun-sms emulator --tls ends with status 0 on SIGTERM and leaves no key folder."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "aliyun_sms_connector", "emulator", "--tls", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        folder = None
        for line in child.stdout:
            if line.strip().startswith("CA file:"):
                folder = Path(line.split(":", 1)[1].strip()).parent
            if line.startswith("Press Ctrl-C"):
                break
        assert folder is not None
        assert folder.is_dir()
        # The banner is printed just before serve_forever() takes SIGTERM over.
        deadline = time.monotonic() + 30
        while not catches_sigterm(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "Traceback" not in err
    assert not folder.exists()
