"""Issue 10 §1: the Docker engine stops and starts again while jobs run.

Without live-restore (Docker's default) a stopping engine stops its containers, so every
running attempt dies with it. The daemon notices, keeps serving, asks the engine again with a
growing pause, starts nothing meanwhile, and once the engine is back fails those attempts as
AWS fails an attempt whose instance went away ("Host EC2 (instance i-...) terminated.", with
``container.reason`` naming the engine); the retry strategy then decides.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.engine import PrivateEngine, daemon_on, until
from tests.integration.daemons import Daemon

pytestmark = [pytest.mark.faults, pytest.mark.docker, pytest.mark.timeout(400)]

CONFIG = """
[[compute_environments]]
name = "local"
max_vcpus = 4
max_memory_mib = 1024

[[job_queues]]
name = "default"
priority = 1
compute_environments = ["local"]
"""

# Attempt 1 sleeps until the engine goes away under it (and exits at once on the engine's
# SIGTERM, as most programs do: 143); later attempts end at once.
JOBDEF = """
name = "sleeper"
image = "busybox:1.36"
command = [
  "sh", "-c",
  "echo attempt $AWS_BATCH_JOB_ATTEMPT;[ $AWS_BATCH_JOB_ATTEMPT = 1 ] || exit 0; trap 'exit 143' TERM; sleep 99 & wait",
]

[resources]
vcpus = 1
memory_mib = 64

[retry]
attempts = 3
"""
HOST_EC2 = re.compile(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.")


@pytest.fixture
def daemon(tmp_path: Path, own_engine: PrivateEngine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    with daemon_on(own_engine, tmp_path, CONFIG, monkeypatch) as running:
        yield running


def test_an_engine_restart_fails_the_running_attempts_as_a_lost_host_and_retries_them(
    daemon: Daemon, own_engine: PrivateEngine
) -> None:
    engine = own_engine
    definition = daemon.home / "sleeper.toml"
    definition.write_text(JOBDEF)
    running = [daemon.submit(str(definition)) for _ in range(2)]
    for job_id in running:
        daemon.wait_for(job_id, "RUNNING")
    engine.stop()  # stops both containers (SIGTERM: they exit 143), then goes away
    late = daemon.submit("hello")  # submitted while the engine is away: waits, spends no attempt

    def engine_down() -> dict[str, str] | None:
        engine_state = json.loads(daemon.ok("daemon", "status", "--json"))["engine"]
        return None if engine_state["available"] else engine_state

    down = until("daemon status shows the engine unavailable", engine_down)
    assert "does not answer at " + engine.host in down["error"]
    assert "UNAVAILABLE: the Docker engine does not answer" in daemon.ok("daemon", "status")
    daemon_log = daemon.home / "home" / "daemon.log"
    time.sleep(2)  # the daemon keeps asking, with a growing pause, and says so once
    assert daemon_log.read_text().count("does not answer at") == 1
    assert daemon.detail(late)["status"] == "RUNNABLE" and not daemon.detail(late).get("attempts")

    engine.start()
    for job_id in [*running, late]:
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        assert detail["status"] == "SUCCEEDED", detail
    for job_id in running:
        first, second = daemon.detail(job_id)["attempts"]
        assert HOST_EC2.fullmatch(first["statusReason"]), first
        assert first["container"]["reason"].startswith(
            "EngineUnavailable: the Docker engine went away while the container ran (the Docker engine does not answer"
        )
        assert "exitCode" not in first["container"]
        assert second["container"]["exitCode"] == 0
        assert daemon.ok("logs", job_id, "--attempt", "2") == "attempt 2\n"
    assert len(daemon.detail(late)["attempts"]) == 1
    assert json.loads(daemon.ok("daemon", "status", "--json"))["engine"] == {"available": True}
    assert "the Docker engine answers again, after" in daemon_log.read_text()
    until("every container of the home removed", lambda: not engine.containers(**daemon.labels) or None)
