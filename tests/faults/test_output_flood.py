"""Issue 10 §1: a container floods its output.

``[logs] max_attempt_mib`` caps each attempt's log file: its first half is kept as it comes,
and of the rest only the end, after a marker line saying how many bytes were dropped. The
pump holds one chunk at a time, so the daemon's memory does not grow with the output. It floods
1 GiB into a 10 MiB cap (LOCALBATCH_FLOOD_MIB sets another size).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.faults.engine import PrivateEngine, daemon_on, until
from tests.integration import daemons
from tests.integration.daemons import Daemon

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.timeout(600)]  # 1 GiB: ~2 min here

MIB = 1024 * 1024
FLOOD_MIB = int(os.environ.get("LOCALBATCH_FLOOD_MIB") or 1024)
CAP_MIB = 10
CONFIG = f"[logs]\nmax_attempt_mib = {CAP_MIB}\n" + daemons.CONFIG
# 1 KiB lines (1023 x and a line break), between a first and a last line.
JOBDEF = f"""
name = "flood"
image = "busybox:1.36"
command = [
  "sh", "-c",
  "echo first line; yes $(head -c 1023 /dev/zero | tr '\\\\0' x) | head -c {FLOOD_MIB * MIB}; echo last line",
]

[resources]
vcpus = 1
memory_mib = 64
"""
DROPPED = re.compile(rb"\n\[localbatch: (\d+) bytes of output dropped here: [^\n]*\]\n")


@pytest.fixture
def daemon(tmp_path: Path, own_engine: PrivateEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    with daemon_on(own_engine, tmp_path, CONFIG, monkeypatch) as running:
        yield running


def test_a_flood_of_output_is_capped_with_a_marker_and_memory_stays_bounded(daemon: Daemon) -> None:
    definition = daemon.home / "flood.toml"
    definition.write_text(JOBDEF)
    process = psutil.Process(daemon.pid())
    before = process.memory_info().rss
    job_id = daemon.submit(str(definition))
    peak = before
    detail = daemon.detail(job_id)
    for _ in range(3000):  # at most 10 min: 0.2 s apart
        peak = max(peak, process.memory_info().rss)
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", "RUNNING", "STARTING", "RUNNABLE", timeout_s=5)
        if detail["status"] in ("SUCCEEDED", "FAILED"):
            break
        time.sleep(0.2)
    assert detail["status"] == "SUCCEEDED", detail
    assert peak - before < 100 * MIB, f"the daemon grew by {(peak - before) / MIB:.0f} MiB"

    # The job ends once its container has; its output may still be on its way to the file.
    path = daemon.home / "home" / "logs" / job_id / "1.log"
    until("the log's tail appended", lambda: not list(path.parent.glob("*.tail-*")) or None, timeout_s=120)
    log = path.read_bytes()
    total = len(b"first line\n") + FLOOD_MIB * MIB + len(b"last line\n")
    assert len(log) <= CAP_MIB * MIB + 1024
    (marker,) = DROPPED.findall(log)
    kept = len(log) - len(DROPPED.search(log).group(0))  # type: ignore[union-attr]
    assert kept + int(marker) == total
    assert log.startswith(b"first line\n") and log.endswith(b"x\nlast line\n")
    shown = daemon("logs", job_id, timeout=120)
    assert shown.returncode == 0 and "bytes of output dropped here" in shown.stdout
    assert list(daemon.home.glob("home/logs/*/*.tail-*")) == []
