"""Consumable resources on the real engine: a daemon whose config declares a licence pool and an
API quota, jobs that need them, and what a user sees through the CLI.

The compute environment has room for four jobs at once; the licence pool for one. So any
overlap of two licence holders would be the scheduler's fault, not the host's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch.extensions import EVENTS
from tests.integration import daemons
from tests.integration.daemons import Daemon, started_daemon

CONFIG = (
    daemons.CONFIG
    + """
[[consumable_resources]]
name = "licences"
total_quantity = 1

[[consumable_resources]]
name = "quota"
total_quantity = 2
resource_type = "NON_REPLENISHABLE"
"""
)
LICENSED = """
name = "licensed"
image = "busybox:1.36"
command = ["sleep", "1"]
[resources]
vcpus = 0.5
memory_mib = 64
[consumable_resources]
licences = 1
"""
SMALL = [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "64"}]


@pytest.fixture
def daemon(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Daemon]:
    with started_daemon(tmp_path, docker_client, CONFIG, register=False) as running:
        (tmp_path / "licensed.toml").write_text(LICENSED)
        running.ok("register", str(tmp_path / "licensed.toml"))
        yield running


def _held(daemon: Daemon, job_id: str) -> tuple[int, int]:
    """From STARTING (when the job took its quantity) to its end."""
    events = daemon.api.get(EVENTS, {"jobId": job_id})["events"]
    start = next(e["at"] for e in events if e["to"] == "STARTING")
    end = next(e["at"] for e in events if e["to"] in ("SUCCEEDED", "FAILED"))
    return int(start), int(end)


def test_a_licence_pool_of_one_runs_its_jobs_one_at_a_time(daemon: Daemon) -> None:
    ids = [daemon.submit("licensed", "--name", f"l{i}") for i in range(3)]
    waiting = daemon.detail(ids[-1])
    if waiting["status"] == "RUNNABLE":  # caught waiting: it says for what, with the numbers
        assert "consumable resource licences" in waiting.get("statusReason", "")
    for job_id in ids:
        assert daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)["status"] == "SUCCEEDED"
    spans = sorted(_held(daemon, job_id) for job_id in ids)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, f"two licence holders overlapped: {spans}"
    listed = json.loads(daemon.ok("consumables", "ls", "--json"))["consumableResources"]
    licences = next(r for r in listed if r["consumableResourceName"] == "licences")
    assert (licences["totalQuantity"], licences["inUseQuantity"]) == (1, 0)  # all given back


def test_a_non_replenishable_quota_is_used_up_and_the_next_job_says_why_it_waits(daemon: Daemon) -> None:
    need = {"consumableResourceList": [{"consumableResource": "quota", "quantity": 1}]}
    body = {"containerOverrides": {"resourceRequirements": SMALL, "command": ["true"]}}
    first, second = (
        daemon.submit_api(jobDefinition="licensed", consumableResourcePropertiesOverride=need, **body) for _ in range(2)
    )
    for job_id in (first, second):
        assert daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)["status"] == "SUCCEEDED"
    third = daemon.submit_api(jobDefinition="licensed", consumableResourcePropertiesOverride=need, **body)
    deadline = time.monotonic() + 30
    detail = daemon.wait_for(third, "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED")
    while "consumable resource" not in detail.get("statusReason", "") and time.monotonic() < deadline:
        time.sleep(0.2)  # the reason comes with the next plan
        detail = daemon.detail(third)
    reason = detail.get("statusReason", "")
    assert detail["status"] == "RUNNABLE", detail
    assert reason == "CONSUMABLE_RESOURCE:INSUFFICIENT_QUANTITY - needs 1 of consumable resource quota, 0 available"
    assert "quota" in daemon.ok("consumables", "ls")  # the table a user reads
    daemon.ok("consumables", "add", "quota", "1")  # more quota: the job goes
    assert daemon.wait_for(third, "SUCCEEDED", "FAILED", timeout_s=90)["status"] == "SUCCEEDED"
    described = daemon.api.call("DescribeConsumableResource", {"consumableResource": "quota"})
    assert (described["totalQuantity"], described["inUseQuantity"]) == (0, 0)


def test_consumables_cli_creates_updates_and_refuses_with_the_field(daemon: Daemon) -> None:
    assert (
        daemon.ok("consumables", "create", "db-slots", "--total", "3").strip().endswith(":consumable-resource/db-slots")
    )
    assert daemon.ok("consumables", "set", "db-slots", "5").strip() == "db-slots: total 5"
    refused = daemon("consumables", "remove", "db-slots", "9")
    assert refused.returncode != 0
    assert "cannot REMOVE 9: totalQuantity is 5" in refused.stderr
    daemon.ok("consumables", "delete", "db-slots")
    assert "db-slots" not in daemon.ok("consumables", "ls")
