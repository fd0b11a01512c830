"""Fair share on the real engine: a daemon whose config declares a scheduling policy with two
shares weighted 1 and 3, and many short jobs of each share contending for one environment.

The environment holds four jobs at once (2 vCPU, jobs of 0.5 vCPU: any host with two CPUs
can run it). It is DISABLED while the jobs are submitted, so every job is RUNNABLE when it is
enabled and the scheduler sees both shares from the first pass; the order in which jobs took
capacity (their STARTING events) is then compared with the weights.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch.client import RequestRejected
from tests.integration.daemons import Daemon, started_daemon

CONFIG = """
[[compute_environments]]
name = "local"
max_vcpus = 2
max_memory_mib = 1024

[[scheduling_policies]]
name = "teams"
[[scheduling_policies.share_distribution]]
share_identifier = "light"
weight_factor = 1
[[scheduling_policies.share_distribution]]
share_identifier = "heavy"
weight_factor = 3

[[job_queues]]
name = "default"
priority = 1
compute_environments = ["local"]

[[job_queues]]
name = "fair"
priority = 1
compute_environments = ["local"]
scheduling_policy = "teams"
"""
PER_SHARE = 8
SLOTS = 4  # 2 vCPU / 0.5 vCPU
SMALL = [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "64"}]


@pytest.fixture
def daemon(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Daemon]:
    with started_daemon(tmp_path, docker_client, CONFIG) as running:
        yield running


def _submit(daemon: Daemon, share: str) -> str:
    overrides = {"resourceRequirements": SMALL, "command": ["sleep", "1"]}
    return daemon.submit_api(jobQueue="fair", shareIdentifier=share, containerOverrides=overrides)


def _wait_all(daemon: Daemon, ids: list[str], timeout_s: float = 45) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        found = daemon.api.call("DescribeJobs", {"jobs": sorted(pending)})["jobs"]
        pending -= {j["jobId"] for j in found if j["status"] in ("SUCCEEDED", "FAILED")}
        time.sleep(0.3)
    assert not pending, f"{len(pending)} jobs never finished"


def test_the_lighter_share_gets_about_three_times_the_capacity(daemon: Daemon) -> None:
    queue = daemon.api.call("DescribeJobQueues", {"jobQueues": ["fair"]})["jobQueues"][0]
    assert queue["schedulingPolicyArn"].endswith(":scheduling-policy/teams")
    daemon.api.call("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "DISABLED"})
    share_of: dict[str, str] = {}
    for _ in range(PER_SHARE):  # interleaved, heavy first: submission order favours neither
        for share in ("heavy", "light"):
            share_of[_submit(daemon, share)] = share
    daemon.api.call("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "ENABLED"})
    _wait_all(daemon, list(share_of))

    held_from = {job_id: daemon.held_from(job_id) for job_id in share_of}
    starts = sorted(share_of, key=lambda job_id: (held_from[job_id], job_id))
    # The first wave: one scheduling pass filled all four slots at once (one STARTING instant).
    assert len({held_from[j] for j in starts[:SLOTS]}) == 1
    assert held_from[starts[SLOTS]] > held_from[starts[0]]
    first_wave = [share_of[j] for j in starts[:SLOTS]]
    assert first_wave.count("light") == 3 and first_wave.count("heavy") == 1, first_wave
    # Over two waves, while both shares still have jobs waiting, light keeps about 3 of 4 slots.
    two_waves = [share_of[j] for j in starts[: 2 * SLOTS]]
    assert 5 <= two_waves.count("light") <= 7, two_waves
    details = {d["jobId"]: d for d in daemon.api.call("DescribeJobs", {"jobs": starts})["jobs"]}
    assert all(details[j]["status"] == "SUCCEEDED" for j in starts)
    assert all(details[j]["shareIdentifier"] == share_of[j] for j in starts)


def test_bad_share_identifiers_are_refused_at_submit(daemon: Daemon) -> None:
    overrides = {"resourceRequirements": SMALL}
    missing = daemon("submit", "hello", "--queue", "fair")
    assert missing.returncode != 0 and "shareIdentifier: required" in missing.stderr
    with pytest.raises(RequestRejected, match="takes no share identifier"):
        daemon.submit_api(jobQueue="default", shareIdentifier="light", containerOverrides=overrides)
