"""DescribeJobs / ListJobs shapes, checked against botocore's own output model in every state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from localbatch.awsbatch.jobdetail import job_detail, job_summary
from localbatch.awsbatch.model import validate_output
from localbatch.core import arrays, lifecycle, outcome
from localbatch.core.definition import JobDefinition
from localbatch.core.jobs import Dependency, DependencyType, JobStatus, transition
from localbatch.core.naming import Arns
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec

ARNS = Arns("us-east-1", "000000000000")
T0 = 1_700_000_000_000
DEFINITION = JobDefinition(
    name="render",
    container=ContainerSpec(image="busybox:1.36", command=("echo", "Ref::x"), resources=Resources(2, 512, 1)),
    parameters={"x": "1"},
    retry_strategy=RetryStrategy(2, (EvaluateOnExit(RetryAction.EXIT, on_exit_code="3"),)),
    timeout_s=60,
    tags={"team": "a"},
)


def submitted():
    job, _ = lifecycle.new_job(
        DEFINITION,
        2,
        lifecycle.JobOverrides(tags={"run": "nightly"}),
        job_id="j-1",
        job_name="render",
        job_queue="default",
        now=T0,
    )
    return job


def running():
    job, _ = transition(submitted(), JobStatus.RUNNABLE, T0 + 1)
    job, _ = lifecycle.begin_attempt(
        job,
        T0 + 2,
        task_id="a" * 32,
        container_name="c",
        log_stream_name="render/default/" + "a" * 32,
        compute_environment="local",
    )
    job, _ = lifecycle.mark_running(job, T0 + 3, "cid")
    return job


def failed_twice():
    job, _, _ = lifecycle.finish_attempt(running(), outcome.exited(1, oom_killed=False), T0 + 4)
    job, _ = lifecycle.begin_attempt(
        job,
        T0 + 5,
        task_id="b" * 32,
        container_name="c2",
        log_stream_name="render/default/" + "b" * 32,
        compute_environment="local",
    )
    job, _ = lifecycle.mark_running(job, T0 + 6, "cid2")
    job, _, _ = lifecycle.finish_attempt(job, outcome.exited(137, oom_killed=True), T0 + 7)
    return job


@pytest.mark.parametrize("make", [submitted, running, failed_twice], ids=lambda f: f.__name__)
def test_every_state_matches_botocores_output_shapes(make):
    job = make()
    assert validate_output("DescribeJobs", {"jobs": [job_detail(job, ARNS)]}) == []
    assert validate_output("ListJobs", {"jobSummaryList": [job_summary(job, ARNS)]}) == []


def test_submitted_job_has_no_start_and_no_attempts():
    detail = job_detail(submitted(), ARNS)
    assert detail["status"] == "SUBMITTED" and "startedAt" not in detail and detail["attempts"] == []
    assert detail["jobDefinition"] == "arn:aws:batch:us-east-1:000000000000:job-definition/render:2"
    assert detail["container"]["command"] == ["echo", "1"]
    assert detail["timeout"] == {"attemptDurationSeconds": 60}
    assert detail["tags"] == {"run": "nightly"}  # the submission's tags; the definition's stay on it
    assert detail["retryStrategy"] == {
        "attempts": 2,
        "evaluateOnExit": [{"action": "EXIT", "onExitCode": "3"}],
    }


def test_running_job_shows_its_attempt_in_container_but_not_in_attempts():
    detail = job_detail(running(), ARNS)
    assert detail["startedAt"] == T0 + 3 and detail["attempts"] == []
    assert detail["container"]["logStreamName"] == "render/default/" + "a" * 32
    assert detail["container"]["taskArn"].endswith("/" + "a" * 32)
    assert "exitCode" not in detail["container"]


def test_finished_attempts_are_listed_with_exit_codes_and_reasons():
    detail = job_detail(failed_twice(), ARNS)
    assert [a["container"]["exitCode"] for a in detail["attempts"]] == [1, 137]
    assert detail["attempts"][1]["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert detail["container"]["exitCode"] == 137 and detail["status"] == "FAILED"
    summary = job_summary(failed_twice(), ARNS)
    assert summary["container"] == {
        "exitCode": 137,
        "reason": "OutOfMemoryError: Container killed due to memory usage",
    }
    assert summary["capacityUsage"] == [{"capacityUnit": "VCPU", "quantity": 2}]


def test_cancel_and_terminate_flags_appear_in_summaries_only_when_true():
    job = running()
    assert "isTerminated" not in job_summary(job, ARNS)
    job, _, _ = lifecycle.finish_attempt(job, outcome.terminated(143, "stop"), T0 + 9)
    assert job_summary(job, ARNS)["isTerminated"] is True
    assert job_detail(replace(job, is_cancelled=False), ARNS)["isCancelled"] is False


def test_array_parents_children_and_dependencies_in_aws_shapes() -> None:

    parent = replace(
        submitted(), array_size=3, depends_on=(Dependency("other"), Dependency(None, DependencyType.SEQUENTIAL))
    )
    child = arrays.children(parent)[2][0]
    counts = {JobStatus.RUNNING: 1, JobStatus.SUCCEEDED: 2}
    detail = job_detail(parent, ARNS, counts)
    validate_output("DescribeJobs", {"jobs": [detail, job_detail(child, ARNS)]})
    assert detail["arrayProperties"] == {"size": 3, "statusSummary": arrays.status_summary(counts)}
    assert detail["dependsOn"] == [{"jobId": "other"}, {"type": "SEQUENTIAL"}]
    assert job_detail(child, ARNS)["arrayProperties"] == {"index": 2}
    assert job_detail(child, ARNS)["dependsOn"] == [{"jobId": "other"}, {"jobId": "j-1:1", "type": "SEQUENTIAL"}]
    summaries = [job_summary(parent, ARNS), job_summary(child, ARNS)]
    validate_output("ListJobs", {"jobSummaryList": summaries})
    assert [s["arrayProperties"] for s in summaries] == [{"size": 3}, {"index": 2}]
