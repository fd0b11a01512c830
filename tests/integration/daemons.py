"""A localbatch daemon for one integration test: started as a user starts it, in the test's
own home with its own config, reached through the CLI and its socket. ``started_daemon``
stops it afterwards and fails the test if a container of that home is left running."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from localbatch.client import DaemonClient
from localbatch.extensions import EVENTS
from tests.integration.conftest import LocalbatchCli, home_environment, remove_labelled

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "jobdefs" / "hello.toml"
CONFIG = """
[[compute_environments]]
name = "local"
max_vcpus = 2
max_memory_mib = 1024

[[job_queues]]
name = "default"
priority = 1
compute_environments = ["local"]
"""


@dataclass
class Daemon(LocalbatchCli):
    api: DaemonClient  # the daemon's socket, for polling without a CLI process per look
    start_stderr: str = ""
    start_stdout: str = ""

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, f"{args}: {result.stderr}"
        return result.stdout

    def submit(self, *args: str) -> str:
        return str(json.loads(self.ok("submit", *args, "--json"))["jobId"])

    def detail(self, job_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = self.api.call("DescribeJobs", {"jobs": [job_id]})["jobs"][0]
        return detail

    def submit_api(self, **overrides: Any) -> str:
        body = {"jobName": "hello", "jobQueue": "default", "jobDefinition": "hello", **overrides}
        return str(self.api.call("SubmitJob", body)["jobId"])

    def wait_for(self, job_id: str, *statuses: str, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            detail = self.detail(job_id)
            if detail["status"] in statuses:
                return detail
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} never reached {statuses}: {self.detail(job_id)['status']}")

    def held_from(self, job_id: str) -> int:
        """When the job took its capacity: its move to STARTING (before the container runs)."""
        events = self.api.get(EVENTS, {"jobId": job_id})["events"]
        return int(next(e["at"] for e in events if e["to"] == "STARTING"))

    def pid(self) -> int:
        return int((self.home / "home" / "daemon.pid").read_text())


@contextmanager
def started_daemon(
    tmp_path: Path,
    docker_client: Any,
    config: str = CONFIG,
    *,
    register: bool = True,
    start_env: Mapping[str, str] | None = None,
) -> Iterator[Daemon]:
    """A daemon started with ``config`` (``hello`` registered unless ``register`` is False) and
    ``start_env`` added to its environment (this start only; a restart goes without);
    ``start_stdout``/``start_stderr`` keep what ``daemon start`` printed."""
    (tmp_path / "localbatch.toml").write_text(config)
    env, settings = home_environment(tmp_path, tmp_path / "localbatch.toml")
    labels = {"localbatch.home": settings.home_id}
    running = Daemon(tmp_path, env, labels, docker_client, DaemonClient(str(settings.socket_path)))
    started = replace(running, env={**env, **(start_env or {})})("daemon", "start")
    assert started.returncode == 0, started.stderr
    running.start_stderr, running.start_stdout = started.stderr, started.stdout
    if register:
        running.ok("register", str(HELLO))
    try:
        yield running
    finally:
        running.api.close()
        running("daemon", "stop")
        leftovers = [c for c in running.containers() if c["State"] != "exited"]
        remove_labelled(docker_client, labels)
        assert leftovers == [], "the daemon left running containers behind"
