"""Array jobs and dependencies on the real engine, through the daemon's AWS API and the CLI."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.daemons import Daemon


def shell(script: str, vcpus: str = "0.25") -> dict[str, Any]:
    return {
        "command": ["sh", "-c", script],
        "resourceRequirements": [{"type": "VCPU", "value": vcpus}],
    }


def test_an_array_fans_out_with_its_index_and_the_parent_reports_its_children(daemon: Daemon) -> None:
    parent = daemon.submit_api(
        arrayProperties={"size": 4},
        containerOverrides=shell('echo "child $AWS_BATCH_JOB_ARRAY_INDEX of $AWS_BATCH_JOB_ARRAY_SIZE"; sleep 1'),
    )
    waiting = daemon.wait_for(parent, "PENDING", "SUCCEEDED")
    assert waiting["arrayProperties"]["size"] == 4
    done = daemon.wait_for(parent, "SUCCEEDED", "FAILED")
    assert done["status"] == "SUCCEEDED"
    assert done["arrayProperties"]["statusSummary"] == {
        "SUBMITTED": 0,
        "PENDING": 0,
        "RUNNABLE": 0,
        "STARTING": 0,
        "RUNNING": 0,
        "SUCCEEDED": 4,
        "FAILED": 0,
    }
    listed = daemon.api.call("ListJobs", {"arrayJobId": parent, "jobStatus": "SUCCEEDED"})["jobSummaryList"]
    assert [(j["jobId"], j["arrayProperties"]["index"]) for j in listed] == [(f"{parent}:{i}", i) for i in range(4)]
    for index in range(4):
        assert daemon.ok("logs", f"{parent}:{index}").strip() == f"child {index} of 4"
    shown = json.loads(daemon.ok("ls", "--array-job", parent, "--json"))["jobSummaryList"]
    assert [j["jobId"] for j in shown] == [f"{parent}:{i}" for i in range(4)]
    queue = daemon.api.call("ListJobs", {"jobQueue": "default", "jobStatus": "SUCCEEDED"})["jobSummaryList"]
    assert [j["jobId"] for j in queue] == [parent]  # children are listed under their parent only


def test_failures_run_down_sequential_arrays_and_dependency_chains(daemon: Daemon) -> None:
    sequential = daemon.submit_api(
        arrayProperties={"size": 3},
        dependsOn=[{"type": "SEQUENTIAL"}],
        containerOverrides=shell('echo "$AWS_BATCH_JOB_ARRAY_INDEX"; test "$AWS_BATCH_JOB_ARRAY_INDEX" != 1'),
    )
    after_array = daemon.submit_api(dependsOn=[{"jobId": sequential}])
    after_that = daemon.submit_api(dependsOn=[{"jobId": after_array}])
    ended = daemon.wait_for(after_that, "SUCCEEDED", "FAILED")
    assert (ended["status"], ended["statusReason"]) == ("FAILED", "Dependent Job failed")
    assert ended["dependsOn"] == [{"jobId": after_array}]
    children = [daemon.detail(f"{sequential}:{i}") for i in range(3)]
    assert [c["status"] for c in children] == ["SUCCEEDED", "FAILED", "FAILED"]
    assert children[2]["statusReason"] == "Dependent Job failed" and not children[2]["attempts"]
    assert children[2]["dependsOn"] == [{"jobId": f"{sequential}:1", "type": "SEQUENTIAL"}]
    assert (children[1]["stoppedAt"] or 0) <= children[2]["stoppedAt"]
    parent = daemon.detail(sequential)
    assert (parent["status"], parent["statusReason"]) == ("FAILED", "Array Child Job failed")
    assert daemon.detail(after_array)["statusReason"] == "Dependent Job failed"


def test_n_to_n_children_wait_for_their_partner_and_time_out_each_on_its_own(daemon: Daemon) -> None:
    first = daemon.submit_api(
        arrayProperties={"size": 2},
        containerOverrides=shell('sleep "$((AWS_BATCH_JOB_ARRAY_INDEX * 3))"'),
    )
    second = daemon.submit_api(
        arrayProperties={"size": 2},
        dependsOn=[{"jobId": first, "type": "N_TO_N"}],
        timeout={"attemptDurationSeconds": 2},
        containerOverrides=shell('trap "exit 143" TERM; sleep "$((4 - AWS_BATCH_JOB_ARRAY_INDEX * 4))" & wait'),
    )
    daemon.wait_for(second, "SUCCEEDED", "FAILED")
    partners = [(daemon.detail(f"{first}:{i}"), daemon.detail(f"{second}:{i}")) for i in range(2)]
    for before, after in partners:
        assert before["status"] == "SUCCEEDED"
        assert after["startedAt"] >= before["stoppedAt"]  # each waited for its own partner only
    assert partners[1][1]["startedAt"] >= partners[0][1]["startedAt"]
    timed_out, quick = partners[0][1], partners[1][1]
    assert (timed_out["status"], timed_out["statusReason"]) == ("FAILED", "Job attempt duration exceeded timeout")
    assert quick["status"] == "SUCCEEDED"  # child 1 sleeps 0 s: the timeout is per child


def test_terminating_an_array_parent_stops_every_child(daemon: Daemon) -> None:
    parent = daemon.submit_api(
        arrayProperties={"size": 3},
        containerOverrides=shell('trap "exit 143" TERM; sleep 60 & wait'),
    )
    for index in range(3):
        daemon.wait_for(f"{parent}:{index}", "RUNNING")
    daemon.ok("terminate", parent, "--reason", "enough")
    ended = daemon.wait_for(parent, "FAILED", "SUCCEEDED", timeout_s=30)
    assert (ended["statusReason"], ended["isTerminated"]) == ("enough", True)
    assert {daemon.detail(f"{parent}:{i}")["statusReason"] for i in range(3)} == {"enough"}
