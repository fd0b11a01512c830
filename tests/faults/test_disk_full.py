"""Issue 10 §1: the disk that holds the attempts' logs fills up while a job writes output.

The logs directory is a small tmpfs; the database stays on the home's own file system (the
layout to recommend: logs can be put on their own disk, and then a flood of output never
reaches the database). The daemon keeps scheduling; the output that did not fit is counted,
and the log gets a marker line where it is missing once space is back; the database is
intact.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.engine import PrivateEngine, daemon_on, until
from tests.integration.conftest import unavailable
from tests.integration.daemons import CONFIG, Daemon

pytestmark = [pytest.mark.faults, pytest.mark.docker]

MIB = 1024 * 1024
# Writes 4 MiB, which cannot all fit, then waits (at most 60 s) for the test's go-ahead.
SCRIPT = (
    "echo before the gap; head -c 4194304 /dev/zero | tr '\\0' y; echo; i=0; "
    "while [ ! -e /signal/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo after the gap"
)
JOBDEF = """
name = "filler"
image = "busybox:1.36"
command = ["sh", "-c", {script}]

[resources]
vcpus = 1
memory_mib = 64

[[volumes]]
name = "signal"
host_source_path = "{signal}"

[[mount_points]]
source_volume = "signal"
container_path = "/signal"
"""
LOST = re.compile(rb"\n\[localbatch: (\d+) bytes of output lost here: no space left on device\]\n")


@pytest.fixture
def small_logs_disk(tmp_path: Path) -> Iterator[Path]:
    """The home's logs directory on an 8 MiB tmpfs, 7 MiB of it taken by a filler file."""
    logs = tmp_path / "home" / "logs"
    logs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(logs)], capture_output=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs for the logs: {mounted.stderr.decode().strip()}")
    try:
        (logs / "filler").write_bytes(b"\0" * 7 * MIB)
        yield logs
    finally:
        subprocess.run(["umount", "-l", str(logs)], capture_output=True, check=False)


@pytest.fixture
def daemon(
    tmp_path: Path, small_logs_disk: Path, own_engine: PrivateEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemon]:
    with daemon_on(own_engine, tmp_path, CONFIG, monkeypatch) as running:
        yield running


def test_a_full_logs_disk_leaves_a_marked_gap_and_scheduling_and_the_database_intact(
    daemon: Daemon, small_logs_disk: Path
) -> None:
    signal = daemon.home / "signal"
    signal.mkdir()
    definition = daemon.home / "filler.toml"
    definition.write_text(JOBDEF.format(signal=signal, script=json.dumps(SCRIPT)))  # a JSON string is a TOML one
    filler = daemon.submit(str(definition))
    daemon_log = daemon.home / "home" / "daemon.log"
    until("the daemon notices the full disk", lambda: "No space left on device" in daemon_log.read_text() or None)

    hello = daemon.submit("hello")  # the daemon keeps scheduling, and keeps its state
    assert daemon.wait_for(hello, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"

    (small_logs_disk / "filler").unlink()  # space is back
    (signal / "go").touch()
    assert daemon.wait_for(filler, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
    path = small_logs_disk / filler / "1.log"
    until("the filler's log complete", lambda: path.read_bytes().endswith(b"after the gap\n") or None)
    log = path.read_bytes()
    markers = LOST.findall(log)  # one per stretch that did not fit
    lost = sum(int(n) for n in markers)
    written = len(log) - sum(len(m.group(0)) for m in LOST.finditer(log))
    assert markers and written + lost == len(b"before the gap\n") + 4 * MIB + 1 + len(b"after the gap\n")
    assert log.startswith(b"before the gap\n")
    shown = daemon.ok("logs", filler)
    assert "bytes of output lost here: no space left on device]\n" in shown and shown.endswith("after the gap\n")

    with sqlite3.connect(daemon.home / "home" / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    """The whole home (database, logs, socket) on a 16 MiB tmpfs."""
    home = tmp_path / "home"
    home.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(home)], capture_output=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs for the home: {mounted.stderr.decode().strip()}")
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], capture_output=True, check=False)


def _fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for _ in range(64 * 16):  # at most 64 MiB, in 64 KiB blocks
            try:
                out.write(b"\0" * 65536)
            except OSError:
                break
        for _ in range(64):  # and what a 64 KiB block did not fit
            try:
                out.write(b"\0" * 1024)
            except OSError:
                break
    return filler


def test_a_full_database_disk_refuses_changes_clearly_and_resumes_without_corruption(  # the home on one disk
    tmp_path: Path, small_home: Path, own_engine: PrivateEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with daemon_on(own_engine, tmp_path, CONFIG, monkeypatch) as daemon:
        before = daemon.submit("hello")
        daemon.wait_for(before, "SUCCEEDED")
        filler = _fill(small_home)
        refused = daemon("submit", "hello", "--json")
        assert refused.returncode != 0
        assert "the state store's disk is full: free space under LOCALBATCH_HOME (request id" in refused.stderr
        filler.unlink()  # space is back: the daemon goes on as if nothing happened
        after = daemon.submit("hello")
        assert daemon.wait_for(after, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
        assert daemon.detail(before)["status"] == "SUCCEEDED"
    with sqlite3.connect(small_home / "state.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
