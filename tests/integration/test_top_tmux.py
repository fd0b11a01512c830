"""``localbatch top`` in a real terminal (tmux): it draws, q quits, Ctrl-C quits, and the
terminal is left as it was (canonical mode and echo back on, the normal screen back)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import unavailable

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _tmux() -> None:
    if shutil.which("tmux") is None:
        unavailable("tmux is not installed (apt-get install tmux; `make test` does it as root on Debian)")


def pane(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_for(session: str, text: str, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        screen = pane(session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never showed; the pane:\n{pane(session)}")


@pytest.mark.parametrize("key", ["q", "C-c"])
def test_top_draws_and_quits_cleanly_on_a_key(tmp_path: Path, key: str) -> None:
    session = f"lbtop-{uuid.uuid4().hex[:8]}"
    env = {
        "PYTHONPATH": str(REPO),
        "LOCALBATCH_HOME": str(tmp_path / "home"),
        "LOCALBATCH_CONFIG": "",
        "TERM": "xterm-256color",
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    script = (
        f"cd {shlex.quote(str(tmp_path))}; env {exports} {shlex.quote(sys.executable)} -m localbatch top"
        " --interval 0.5;"
        " echo EXITED $?; stty -a | tr ' ' '\\n' | grep -x -e '-\\?icanon' -e '-\\?echo'; sleep 60"
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", script], check=True)
    try:
        screen = wait_for(session, "q or Ctrl-C quits")
        assert "compute environments" in screen and "queues: first waiting jobs" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
        after = wait_for(session, "EXITED")
        assert "EXITED 0" in after
        restored = wait_for(session, "echo")
        assert "\nicanon" in restored and "\necho" in restored  # not -icanon, -echo
        assert "q or Ctrl-C quits" not in restored  # the alternate screen is gone
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
