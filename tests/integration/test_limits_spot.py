"""Job state time limits and Spot reclaims on the real engine: a daemon started as a user
would, driven by the real CLI over its socket, with real containers stopped under the jobs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemons import Daemon, started_daemon

CONFIG = """
[[compute_environments]]
name = "small"            # one job at a time
max_vcpus = 1
max_memory_mib = 512

[[compute_environments]]
name = "ondemand"
max_vcpus = 1
max_memory_mib = 512

[[compute_environments]]
name = "spot"
max_vcpus = 1
max_memory_mib = 512
spot = true
spot_interrupt_after_seconds = 2

[[job_queues]]
name = "default"
compute_environments = ["small"]

[[job_queues.job_state_time_limit_actions]]
reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
max_time_seconds = 1      # AWS's minimum is 600: local only, and the daemon warns

[[job_queues]]
name = "plain"
compute_environments = ["ondemand"]

[[job_queues]]
name = "spot"
compute_environments = ["spot"]
"""

# Attempt 1 runs until its host is taken; a later attempt succeeds at once.
JOBDEF = """
name = "{name}"
image = "busybox:1.36"
command = [
  "sh", "-c",
  "if [ \\"$AWS_BATCH_JOB_ATTEMPT\\" = 1 ]; then exec sleep 300; fi; echo attempt $AWS_BATCH_JOB_ATTEMPT",
]

[resources]
vcpus = 1
memory_mib = 64

[retry]
attempts = {attempts}

[[retry.evaluate_on_exit]]
on_status_reason = "Host EC2*"
action = "{action}"

[[retry.evaluate_on_exit]]
on_reason = "*"
action = "exit"
"""
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
HOST_EC2 = re.compile(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.")


@pytest.fixture
def daemon(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Daemon]:
    with started_daemon(tmp_path, docker_client, CONFIG) as running:
        assert "waits 1 s; AWS requires 600 to 86400 s, so this runs locally only" in running.start_stderr
        yield running


def _definition(daemon: Daemon, name: str, action: str, attempts: int = 2) -> str:
    path = daemon.home / f"{name}.toml"
    path.write_text(JOBDEF.format(name=name, action=action, attempts=attempts))
    return str(path)


def _until_running(daemon: Daemon, job_id: str, attempt: int = 1) -> None:
    """RUNNING with ``attempt`` started (a retried job is RUNNING again on a later one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = daemon.detail(job_id)
        if detail["status"] == "RUNNING" and len(detail.get("attempts", [])) >= attempt - 1:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never ran attempt {attempt}: {daemon.detail(job_id)['status']}")


def test_a_head_waiting_past_its_queues_time_limit_is_cancelled_with_awss_reason(daemon: Daemon) -> None:
    holder = daemon.submit("hello", "--command", "sleep 300")
    daemon.wait_for(holder, "RUNNING")
    waiting = daemon.submit("hello")
    detail = daemon.wait_for(waiting, "FAILED", timeout_s=30)
    assert detail["statusReason"] == f"Canceled by JobStateTimeLimit action due to reason: {CAPACITY}"
    assert detail["isCancelled"] is True and detail.get("attempts", []) == []
    (queue,) = daemon.api.call("DescribeJobQueues", {"jobQueues": ["default"]})["jobQueues"]
    (action,) = queue["jobStateTimeLimitActions"]
    assert action == {"reason": CAPACITY, "state": "RUNNABLE", "maxTimeSeconds": 1, "action": "CANCEL"}
    assert daemon.detail(holder)["status"] == "RUNNING"  # a running job is never touched
    daemon.ok("terminate", holder)
    daemon.wait_for(holder, "FAILED")


def test_interrupt_fails_the_attempt_as_a_spot_reclaim_and_a_host_ec2_rule_retries_it(daemon: Daemon) -> None:
    job_id = daemon.submit(_definition(daemon, "reclaimed", "retry"), "--queue", "plain")
    _until_running(daemon, job_id)
    answer = json.loads(daemon.ok("interrupt", job_id, "--json"))
    assert HOST_EC2.fullmatch(answer["statusReason"]) and answer["attempt"] == 1
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED")
    assert detail["status"] == "SUCCEEDED", detail
    first, second = detail["attempts"]
    assert first["statusReason"] == answer["statusReason"]
    assert "exitCode" not in first["container"] and "reason" not in first["container"]
    assert second["container"]["exitCode"] == 0
    assert daemon.ok("logs", job_id) == "attempt 2\n"


def test_interrupt_with_an_exit_rule_ends_the_job_failed_with_the_host_reason(daemon: Daemon) -> None:
    job_id = daemon.submit(_definition(daemon, "stopped", "exit"), "--queue", "plain")
    _until_running(daemon, job_id)
    daemon.ok("interrupt", job_id)
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED")
    assert detail["status"] == "FAILED" and HOST_EC2.fullmatch(detail["statusReason"])
    assert len(detail["attempts"]) == 1 and not detail.get("isTerminated")
    refused = daemon("interrupt", job_id)
    assert refused.returncode != 0
    assert f"job {job_id} is FAILED; only a RUNNING job can be interrupted" in refused.stderr


def test_a_spot_environment_on_a_schedule_reclaims_every_attempt(daemon: Daemon) -> None:
    job_id = daemon.submit(_definition(daemon, "scheduled", "retry", attempts=2), "--queue", "spot")
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    # Attempt 1 sleeps and is reclaimed after 2 s; attempt 2 finishes before its own 2 s are up.
    assert detail["status"] == "SUCCEEDED", detail
    first = detail["attempts"][0]
    assert HOST_EC2.fullmatch(first["statusReason"])
    assert first["stoppedAt"] - first["startedAt"] >= 2_000
    (environment,) = daemon.api.call("DescribeComputeEnvironments", {"computeEnvironments": ["spot"]})[
        "computeEnvironments"
    ]
    assert environment["computeResources"]["type"] == "SPOT"
    assert environment["tags"]["localbatch:spot-interrupt-after-seconds"] == "2"
