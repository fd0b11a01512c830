"""kill -9 the daemon with a job in each state, start it again on the same home, and check
what AWS would give: the job exists exactly once, ends in the state its run earns, with its
whole output in its log, one attempt spent, and no container of the home left behind.

The waiting states (PENDING, RUNNABLE) and RUNNING are reached from outside; the moments in
between (SUBMITTED, a STARTING launch before, during and after its container is created, a
log half copied) are reached with ``LOCALBATCH_FAULT_POINT`` (``localbatch.faults``), which
makes the daemon SIGKILL itself exactly there."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from localbatch.client import DaemonError
from localbatch.config import resolve
from localbatch.daemon import process
from localbatch.daemon.startup import VANISHED
from localbatch.extensions import EVENTS, LOGS
from localbatch.faults import ENV
from tests.integration.conftest import remove_labelled
from tests.integration.daemons import Daemon, started_daemon

pytestmark = [pytest.mark.faults, pytest.mark.docker]

TWO_LINES = ["sh", "-c", "echo one; sleep 1; echo two"]
BOUND_S = 60


def wait_dead(daemon: Daemon) -> None:
    """Until the killed daemon's lock is free (the kernel drops it with the process)."""
    settings = resolve(env={"LOCALBATCH_HOME": str(daemon.home / "home")}, cwd=daemon.home)
    deadline = time.monotonic() + BOUND_S
    while process.is_locked(settings):
        assert time.monotonic() < deadline, "the daemon never died"
        time.sleep(0.1)


def listed_offline(daemon: Daemon) -> list[dict[str, Any]]:
    """Every job of the home as the store left it: the CLI reads it in-process, no daemon runs."""
    jobs: list[dict[str, Any]] = json.loads(daemon.ok("ls", "--json"))["jobSummaryList"]
    return jobs


STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


def job_ids(daemon: Daemon, queue: str = "default", statuses: tuple[str, ...] = STATUSES) -> list[str]:
    """Every job id the daemon lists in ``queue`` (ListJobs, each status, every page). One call
    per status: a job that moves meanwhile may show twice or not at all, so compare once the
    jobs have settled."""
    found = []
    for status in statuses:
        body: dict[str, Any] = {"jobQueue": queue, "jobStatus": status, "maxResults": 1000}
        while True:
            page = daemon.api.call("ListJobs", body)
            found += [j["jobId"] for j in page["jobSummaryList"]]
            if not page.get("nextToken"):
                break
            body["nextToken"] = page["nextToken"]
    return found


def log_of(daemon: Daemon, job_id: str) -> str:
    """What ``localbatch logs`` prints: the job's log through the daemon's logs endpoint."""
    return b"".join(daemon.api.stream(LOGS, {"jobId": job_id})).decode()


def moves(daemon: Daemon, job_id: str) -> list[tuple[str, str]]:
    return [(e["from"], e["to"]) for e in daemon.api.get(EVENTS, {"jobId": job_id})["events"]]


def no_containers_left(daemon: Daemon) -> None:
    """The home's containers are removed once their jobs end (on a pool thread: bounded wait)."""
    deadline = time.monotonic() + BOUND_S
    while daemon.containers():
        assert time.monotonic() < deadline, daemon.containers()
        time.sleep(0.2)


@pytest.mark.parametrize(
    ("point", "state_at_death"),
    [
        ("after_submit_commit", "SUBMITTED"),
        ("before_container_create", "STARTING"),
        ("after_container_create", "STARTING"),  # a created container must not leak
        ("after_container_start", "STARTING"),
        ("during_log_pump", "RUNNING"),
    ],
)
def test_kill_9_at_a_point_loses_nothing_and_runs_the_job_once(
    tmp_path: Path, docker_client: Any, busybox_image: str, point: str, state_at_death: str
) -> None:
    with started_daemon(tmp_path, docker_client, start_env={ENV: point}) as daemon:
        try:
            job_id: str | None = daemon.submit_api(containerOverrides={"command": TWO_LINES})
        except DaemonError:  # it died after writing the job, before answering
            job_id = None
        wait_dead(daemon)
        [job] = listed_offline(daemon)
        assert job["status"] == state_at_death and job_id in (None, job["jobId"])
        job_id = str(job["jobId"])
        daemon.ok("daemon", "start")
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=BOUND_S)
        assert detail["status"] == "SUCCEEDED", detail.get("statusReason")
        assert len(detail["attempts"]) == 1
        assert log_of(daemon, job_id) == "one\ntwo\n"
        assert job_ids(daemon) == [job_id]
        requeued = moves(daemon, job_id).count(("STARTING", "RUNNABLE"))
        assert requeued == (point in ("before_container_create", "after_container_create"))
        no_containers_left(daemon)


def test_kill_9_while_jobs_wait_pending_and_runnable(daemon: Daemon) -> None:
    two_vcpus = [{"type": "VCPU", "value": "2"}]
    first = daemon.submit_api(
        jobName="first",
        containerOverrides={"command": ["sh", "-c", "sleep 2; echo first"], "resourceRequirements": two_vcpus},
    )
    after = daemon.submit_api(
        jobName="after", dependsOn=[{"jobId": first}], containerOverrides={"command": ["echo", "after"]}
    )
    crowded = daemon.submit_api(jobName="crowded", containerOverrides={"command": ["echo", "crowded"]})
    daemon.wait_for(first, "RUNNING")
    assert daemon.wait_for(after, "PENDING")["status"] == "PENDING"
    assert daemon.wait_for(crowded, "RUNNABLE")["status"] == "RUNNABLE"
    os.kill(daemon.pid(), signal.SIGKILL)
    wait_dead(daemon)
    daemon.ok("daemon", "start")
    ended = {j: daemon.wait_for(j, "SUCCEEDED", "FAILED", timeout_s=BOUND_S) for j in (first, after, crowded)}
    assert {j: d["status"] for j, d in ended.items()} == dict.fromkeys(ended, "SUCCEEDED")
    assert [len(d["attempts"]) for d in ended.values()] == [1, 1, 1]
    assert ended[after]["startedAt"] >= ended[first]["stoppedAt"]
    assert [log_of(daemon, j) for j in (first, after, crowded)] == ["first\n", "after\n", "crowded\n"]
    assert sorted(job_ids(daemon)) == sorted(ended)
    no_containers_left(daemon)


def test_a_container_removed_while_the_daemon_is_down_fails_its_attempt_and_the_job_retries(
    daemon: Daemon, docker_client: Any
) -> None:
    command = 'if [ "$AWS_BATCH_JOB_ATTEMPT" = 1 ]; then sleep 60; fi; echo attempt $AWS_BATCH_JOB_ATTEMPT'
    job_id = daemon.submit_api(retryStrategy={"attempts": 2}, containerOverrides={"command": ["sh", "-c", command]})
    daemon.wait_for(job_id, "RUNNING")
    os.kill(daemon.pid(), signal.SIGKILL)
    wait_dead(daemon)
    remove_labelled(docker_client, daemon.labels)
    daemon.ok("daemon", "start")
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=BOUND_S)
    assert detail["status"] == "SUCCEEDED"
    assert [a["statusReason"] for a in detail["attempts"]][0] == VANISHED
    assert log_of(daemon, job_id) == "attempt 2\n"


@pytest.mark.parametrize("while_down", ["exits", "is_removed"])
def test_a_terminate_request_survives_kill_9_and_the_job_ends_terminated_not_retried(
    daemon: Daemon, docker_client: Any, while_down: str
) -> None:
    # PID 1 of a container ignores SIGTERM: the container outlives its stop's grace period.
    job_id = daemon.submit_api(retryStrategy={"attempts": 2}, containerOverrides={"command": ["sleep", "60"]})
    daemon.wait_for(job_id, "RUNNING")
    daemon.api.call("TerminateJob", {"jobId": job_id, "reason": "no longer wanted"})
    os.kill(daemon.pid(), signal.SIGKILL)
    wait_dead(daemon)
    if while_down == "exits":  # as the engine's own SIGKILL at the end of the grace period
        for container in daemon.containers():
            with contextlib.suppress(docker.errors.APIError):
                docker_client.api.kill(container["Id"])
    else:
        remove_labelled(docker_client, daemon.labels)
    daemon.ok("daemon", "start")
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=BOUND_S)
    assert (detail["status"], detail["statusReason"], detail["isTerminated"]) == ("FAILED", "no longer wanted", True)
    assert len(detail["attempts"]) == 1
    no_containers_left(daemon)


def test_a_daemon_killed_again_while_it_recovers_recovers_on_the_next_start(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    with started_daemon(tmp_path, docker_client, start_env={ENV: "during_log_pump"}) as daemon:
        job_id = daemon.submit_api(containerOverrides={"command": TWO_LINES})
        wait_dead(daemon)
        # The next start copies the output of the container it finds: killed there too.
        # It dies while it recovers, before or just after its socket answers: `daemon start` may
        # report either, so only what the third start makes of the home is checked.
        replace(daemon, env={**daemon.env, ENV: "during_log_pump"})("daemon", "start")
        wait_dead(daemon)
        daemon.ok("daemon", "start")
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=BOUND_S)
        assert detail["status"] == "SUCCEEDED" and len(detail["attempts"]) == 1
        assert log_of(daemon, job_id) == "one\ntwo\n"
        assert job_ids(daemon) == [job_id]
        no_containers_left(daemon)
