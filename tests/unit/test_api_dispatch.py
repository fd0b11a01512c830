"""The daemon's AWS Batch API end to end, in-process: ``Api`` -> ``BatchDispatcher`` -> ``BatchService``
on the in-memory store, with a fake clock, a recording notifier and a fake live view.

Every call goes through ``Api.handle`` (what the Unix-socket server calls: route, JSON, botocore's
request validation, dispatch, AWS's error shape), so refusals are checked exactly as a client sees
them: HTTP 400, ``ClientException``, and the message. Every successful response is checked against
botocore's output shape (``World.call``, in ``tests/fakes/api_world.py``). Jobs, job
definitions, the read-only dispatcher and unsupported operations are here; job queues and
compute environments are in ``test_api_dispatch_infra.py``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

import pytest

from localbatch.api.dispatch import BatchDispatcher
from localbatch.api.errors import ApiError
from localbatch.api.server import Api
from localbatch.awsbatch.model import operation_names
from localbatch.core.jobs import JobStatus, StopKind, StopRequest
from tests.fakes.api_world import ARN, ARNS, HOST, RENDER, T0, World, make_world, wire_request


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def registered(world: World) -> World:
    """``world`` with job definition render:1."""
    world.register()
    return world


# -- every operation, botocore's output shapes ---------------------------------------------------------


def test_every_implemented_operation_answers_in_botocore_output_shape(world: World) -> None:
    # World.call checks each response against validate_output; this walks all sixteen operations
    # through a job's life, with jobs in every state described and listed.
    world.register()
    world.call("DescribeJobDefinitions", {})
    ids = [world.submit(f"job-{i}") for i in range(4)]
    world.move(ids[1], JobStatus.RUNNABLE)
    world.move(ids[2], JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    world.move(ids[3], JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    world.call("DescribeJobs", {"jobs": ids})
    world.call("ListJobs", {"jobQueue": "default", "filters": [{"name": "JOB_NAME", "values": ["job*"]}]})
    world.call("CancelJob", {"jobId": ids[0], "reason": "not needed"})
    world.call("TerminateJob", {"jobId": ids[2], "reason": "stop"})
    world.call("DeregisterJobDefinition", {"jobDefinition": "render:1"})
    environment = {
        "computeEnvironmentName": "spare",
        "type": "MANAGED",
        "computeResources": {"type": "EC2", "maxvCpus": 1},
    }
    world.call("CreateComputeEnvironment", environment)
    world.call("DescribeComputeEnvironments", {})
    world.call("UpdateComputeEnvironment", {"computeEnvironment": "spare", "state": "DISABLED"})
    world.call(
        "CreateJobQueue",
        {"jobQueueName": "q2", "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "spare"}]},
    )
    world.call("DescribeJobQueues", {})
    world.call("UpdateJobQueue", {"jobQueue": "q2", "state": "DISABLED"})
    world.call("DeleteJobQueue", {"jobQueue": "q2"})
    world.call("DeleteComputeEnvironment", {"computeEnvironment": "spare"})
    policy = {"shareDecaySeconds": 60, "shareDistribution": [{"shareIdentifier": "a*", "weightFactor": 0.5}]}
    arn = world.call("CreateSchedulingPolicy", {"name": "fair", "fairsharePolicy": policy, "tags": {"k": "v"}})["arn"]
    world.call("DescribeSchedulingPolicies", {"arns": [arn]})
    world.call("UpdateSchedulingPolicy", {"arn": arn, "fairsharePolicy": {"computeReservation": 10}})
    world.call("ListSchedulingPolicies", {})
    world.call("DeleteSchedulingPolicy", {"arn": arn})
    queue_arn = f"{ARN}job-queue/default"
    world.call("TagResource", {"resourceArn": queue_arn, "tags": {"cost": "42"}})
    world.call("ListTagsForResource", {"resourceArn": queue_arn})
    world.call("UntagResource", {"resourceArn": queue_arn, "tagKeys": ["cost"]})
    world.call("GetJobQueueSnapshot", {"jobQueue": "default"})
    world.call("CancelJobs", {"jobs": ids[:2], "reason": "bulk"})
    world.call("TerminateJobs", {"jobs": ids, "reason": "bulk"})
    created = world.call("CreateConsumableResource", {"consumableResourceName": "licences", "totalQuantity": 2})
    world.call("DescribeConsumableResource", {"consumableResource": created["consumableResourceArn"]})
    world.call("UpdateConsumableResource", {"consumableResource": "licences", "operation": "ADD", "quantity": 1})
    world.call("ListConsumableResources", {})
    world.call("ListJobsByConsumableResource", {"consumableResource": "licences"})
    world.call("DeleteConsumableResource", {"consumableResource": "licences"})
    dispatcher_operations = BatchDispatcher(world.service, ARNS, HOST).operations
    assert world.operations_called == dispatcher_operations
    assert dispatcher_operations <= operation_names()


def test_jobs_in_every_state_describe_and_list_in_botocore_output_shape(registered: World) -> None:
    world = registered
    paths: list[tuple[JobStatus, ...]] = [
        (),
        (JobStatus.RUNNABLE,),
        (JobStatus.RUNNABLE, JobStatus.STARTING),
        (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING),
        (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.SUCCEEDED),
        (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.FAILED),
        (JobStatus.RUNNABLE, JobStatus.FAILED),
    ]
    ids = []
    for i, path in enumerate(paths):
        ids.append(world.submit(f"job-{i}"))
        world.move(ids[-1], *path)
        world.clock.advance(1)
    jobs = world.call("DescribeJobs", {"jobs": ids})["jobs"]
    assert [j["status"] for j in jobs] == [
        "SUBMITTED",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "FAILED",
    ]
    summaries = world.call("ListJobs", {"jobQueue": "default", "filters": [{"name": "JOB_NAME", "values": ["job*"]}]})
    assert len(summaries["jobSummaryList"]) == len(paths)


# -- job definitions -------------------------------------------------------------------------------


def test_register_job_definition_makes_revisions_1_then_2(world: World) -> None:
    first = world.register()
    second = world.register()
    assert first == {
        "jobDefinitionName": "render",
        "jobDefinitionArn": f"{ARN}job-definition/render:1",
        "revision": 1,
    }
    assert second["revision"] == 2
    assert second["jobDefinitionArn"] == f"{ARN}job-definition/render:2"


def test_a_refused_registration_uses_up_no_revision(world: World) -> None:
    bad = {**RENDER["containerProperties"], "resourceRequirements": [{"type": "VCPU", "value": "lots"}]}
    message = world.refusal_message("RegisterJobDefinition", {**RENDER, "containerProperties": bad})
    assert "containerProperties.resourceRequirements[0].value: expected a number as a string, got 'lots'" in message
    assert world.register()["revision"] == 1


def test_register_refuses_reserved_aws_batch_environment_names_naming_the_field(world: World) -> None:
    props = {**RENDER["containerProperties"], "environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}
    message = world.refusal_message("RegisterJobDefinition", {**RENDER, "containerProperties": props})
    assert message.startswith("RegisterJobDefinition request: containerProperties.environment[0]")
    assert "AWS_BATCH" in message
    assert world.call("DescribeJobDefinitions", {})["jobDefinitions"] == []


def _revisions(response: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(d["jobDefinitionName"], d["revision"], d["status"]) for d in response["jobDefinitions"]]


@pytest.fixture
def two_revisions_and_train(world: World) -> World:
    world.register()
    world.register(parameters={"frame": "2", "out": "/tmp/out"})
    world.register(jobDefinitionName="train")
    return world


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, [("render", 1, "ACTIVE"), ("render", 2, "ACTIVE"), ("train", 1, "ACTIVE")]),
        ({"jobDefinitionName": "render"}, [("render", 1, "ACTIVE"), ("render", 2, "ACTIVE")]),
        ({"jobDefinitions": ["render:2"]}, [("render", 2, "ACTIVE")]),
        ({"jobDefinitions": [f"{ARN}job-definition/render:1"]}, [("render", 1, "ACTIVE")]),
        ({"jobDefinitions": [f"{ARN}job-definition/train"]}, [("train", 1, "ACTIVE")]),
        ({"jobDefinitions": ["render"]}, [("render", 1, "ACTIVE"), ("render", 2, "ACTIVE")]),
        ({"jobDefinitions": ["render:9", "nope:1", "train:1"]}, [("train", 1, "ACTIVE")]),
        ({"jobDefinitionName": "nope"}, []),
        ({"status": "INACTIVE"}, []),
    ],
    ids=[
        "all",
        "by-name",
        "name:rev",
        "arn:rev",
        "arn-no-rev",
        "bare-name-in-list",
        "unknown-omitted",
        "unknown",
        "inactive",
    ],
)
def test_describe_job_definitions_by_name_revision_arn_and_status(
    two_revisions_and_train: World, params: dict[str, Any], expected: list[tuple[str, int, str]]
) -> None:
    assert _revisions(two_revisions_and_train.call("DescribeJobDefinitions", params)) == expected


def test_describe_job_definitions_gives_the_definition_back_as_registered(registered: World) -> None:
    (definition,) = registered.call("DescribeJobDefinitions", {"jobDefinitions": ["render:1"]})["jobDefinitions"]
    assert definition["jobDefinitionArn"] == f"{ARN}job-definition/render:1"
    assert definition["containerProperties"]["command"] == RENDER["containerProperties"]["command"]
    assert definition["containerProperties"]["environment"] == RENDER["containerProperties"]["environment"]
    assert definition["parameters"] == RENDER["parameters"]
    assert definition["tags"] == {"team": "render"}
    assert definition["retryStrategy"] == {"attempts": 2}
    assert definition["timeout"] == {"attemptDurationSeconds": 600}
    assert definition["containerOrchestrationType"] == "ECS"


def test_describe_job_definitions_filters_by_status_after_a_deregistration(two_revisions_and_train: World) -> None:
    world = two_revisions_and_train
    world.call("DeregisterJobDefinition", {"jobDefinition": f"{ARN}job-definition/render:1"})
    assert _revisions(world.call("DescribeJobDefinitions", {"status": "INACTIVE"})) == [("render", 1, "INACTIVE")]
    active = world.call("DescribeJobDefinitions", {"jobDefinitionName": "render", "status": "ACTIVE"})
    assert _revisions(active) == [("render", 2, "ACTIVE")]


def test_describe_job_definitions_pages_with_max_results_and_next_token(two_revisions_and_train: World) -> None:
    world = two_revisions_and_train
    seen: list[tuple[str, int, str]] = []
    tokens = []
    params: dict[str, Any] = {"maxResults": 2}
    while True:  # as boto3's paginator: stop when nextToken is absent
        page = world.call("DescribeJobDefinitions", params)
        seen += _revisions(page)
        if "nextToken" not in page:
            break
        tokens.append(page["nextToken"])
        params = {"maxResults": 2, "nextToken": page["nextToken"]}
    assert seen == _revisions(world.call("DescribeJobDefinitions", {}))
    assert len(tokens) == 1
    exact = world.call("DescribeJobDefinitions", {"maxResults": 3})
    assert "nextToken" not in exact  # no token when nothing more remains


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"maxResults": 101}, "maxResults: must be between 1 and 100, got 101"),
        ({"nextToken": "not-a-token"}, "nextToken: not a token this API gave out"),
    ],
)
def test_describe_job_definitions_refuses_bad_paging(registered: World, params: dict[str, Any], message: str) -> None:
    assert registered.refusal_message("DescribeJobDefinitions", params) == message


def test_describe_job_definitions_refuses_max_results_zero(registered: World) -> None:
    assert registered.refusal_message("DescribeJobDefinitions", {"maxResults": 0}) == (
        "maxResults: must be between 1 and 100, got 0"
    )


def test_describe_job_definitions_refuses_a_unicode_digit_next_token_as_a_client_error(registered: World) -> None:
    assert registered.refusal_message("DescribeJobDefinitions", {"nextToken": "²"}) == (
        "nextToken: not a token this API gave out"
    )


def test_deregister_makes_the_revision_inactive_and_not_submittable(world: World) -> None:
    world.register()
    world.register()
    assert world.call("DeregisterJobDefinition", {"jobDefinition": "render:2"}) == {}
    assert _revisions(world.call("DescribeJobDefinitions", {"jobDefinitions": ["render:2"]})) == [
        ("render", 2, "INACTIVE")
    ]
    before = world.snapshot()
    message = world.refusal_message("SubmitJob", {"jobName": "x", "jobQueue": "default", "jobDefinition": "render:2"})
    assert message == "jobDefinition: render:2 is INACTIVE"
    assert world.snapshot() == before
    # The bare name now means the latest ACTIVE revision: 1.
    job_id = world.submit(jobDefinition="render")
    assert world.describe(job_id)["jobDefinition"] == f"{ARN}job-definition/render:1"


def test_deregister_of_every_revision_leaves_the_bare_name_unknown(registered: World) -> None:
    world = registered
    world.call("DeregisterJobDefinition", {"jobDefinition": "render:1"})
    message = world.refusal_message("SubmitJob", {"jobName": "x", "jobQueue": "default", "jobDefinition": "render"})
    assert message == "job definition 'render' does not exist"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("render", "jobDefinition: 'render': give name:revision or the ARN"),
        (f"{ARN}job-definition/render", f"jobDefinition: '{ARN}job-definition/render': give name:revision or the ARN"),
        ("render:9", "job definition 'render:9' does not exist"),
        ("nope:1", "job definition 'nope:1' does not exist"),
    ],
)
def test_deregister_refuses_a_bare_name_and_an_unknown_revision(registered: World, ref: str, message: str) -> None:
    assert registered.refusal_message("DeregisterJobDefinition", {"jobDefinition": ref}) == message
    assert _revisions(registered.call("DescribeJobDefinitions", {})) == [("render", 1, "ACTIVE")]


def test_a_unicode_digit_revision_is_a_client_error(registered: World) -> None:
    # "²" is no revision number, so this names no revision at all: a ClientException, not a 500
    assert registered.refusal_message("DeregisterJobDefinition", {"jobDefinition": "render:²"}) == (
        "jobDefinition: 'render:²': give name:revision or the ARN"
    )


# -- SubmitJob ---------------------------------------------------------------------------------------


def test_submit_job_answers_job_id_name_and_arn_and_tells_the_control_loop(registered: World) -> None:
    world = registered
    response = world.call("SubmitJob", {"jobName": "frame-7", "jobQueue": "default", "jobDefinition": "render"})
    job_id = "00000000-0000-4000-8000-000000000001"
    assert response == {"jobId": job_id, "jobName": "frame-7", "jobArn": f"{ARN}job/{job_id}"}
    assert world.notifier.calls == [("job_submitted", job_id)]
    stored = world.store.get_job(job_id)
    assert stored is not None and stored.status is JobStatus.SUBMITTED


def test_describe_jobs_shows_the_submitted_job_as_aws_resolves_it(registered: World) -> None:
    world = registered
    job_id = world.submit("frame-7", parameters={"frame": "7"})
    job = world.describe(job_id)
    assert job["status"] == "SUBMITTED"
    assert job["jobArn"] == f"{ARN}job/{job_id}"
    assert job["jobQueue"] == f"{ARN}job-queue/default"
    assert job["jobDefinition"] == f"{ARN}job-definition/render:1"
    assert job["createdAt"] == T0
    assert "startedAt" not in job and "stoppedAt" not in job
    assert job["parameters"] == {"frame": "7", "out": "/tmp/out"}  # merged: the submission's wins
    assert job["container"]["command"] == ["render", "--frame", "7", "--out", "/tmp/out"]
    assert job["container"]["image"] == "busybox:1.36"
    assert job["retryStrategy"] == {"attempts": 2}
    assert job["timeout"] == {"attemptDurationSeconds": 600}
    assert "tags" not in job  # the definition's tags are not the job's (AWS)
    assert job["attempts"] == []
    assert (job["isCancelled"], job["isTerminated"]) == (False, False)


def test_submit_job_overrides_are_applied(registered: World) -> None:
    world = registered
    job_id = world.submit(
        containerOverrides={
            "command": ["render", "Ref::frame", "--fast"],
            "environment": [{"name": "LEVEL", "value": "9"}, {"name": "EXTRA", "value": "yes"}],
            "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}],
        },
        parameters={"frame": "3"},
        retryStrategy={"attempts": 3, "evaluateOnExit": [{"onExitCode": "137", "action": "exit"}]},
        timeout={"attemptDurationSeconds": 90},
        tags={"run": "nightly"},
        propagateTags=True,
    )
    job = world.describe(job_id)
    container = job["container"]
    assert container["command"] == ["render", "3", "--fast"]
    assert container["environment"] == [
        {"name": "MODE", "value": "draft"},
        {"name": "LEVEL", "value": "9"},
        {"name": "EXTRA", "value": "yes"},
    ]
    assert container["resourceRequirements"] == [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "1024"}]
    assert job["retryStrategy"] == {"attempts": 3, "evaluateOnExit": [{"onExitCode": "137", "action": "EXIT"}]}
    assert job["timeout"] == {"attemptDurationSeconds": 90}
    assert job["tags"] == {"run": "nightly"}  # only the submission's tags
    assert job["propagateTags"] is True


@pytest.mark.parametrize(
    "ref",
    ["render", "render:1", f"{ARN}job-definition/render:1", f"{ARN}job-definition/render"],
    ids=["name", "name:rev", "arn:rev", "arn-latest"],
)
def test_submit_job_takes_the_definition_by_name_revision_or_arn(world: World, ref: str) -> None:
    world.register()
    world.register(parameters={"frame": "2", "out": "/o"})
    job_id = world.submit(jobDefinition=ref)
    expected_revision = 1 if ref.endswith(":1") else 2  # no revision: the latest ACTIVE one
    job = world.describe(job_id)
    assert job["jobDefinition"] == f"{ARN}job-definition/render:{expected_revision}"
    assert job["parameters"]["frame"] == str(expected_revision)


def test_submit_job_takes_the_queue_by_arn(registered: World) -> None:
    job_id = registered.submit(jobQueue=f"{ARN}job-queue/default")
    assert registered.describe(job_id)["jobQueue"] == f"{ARN}job-queue/default"


_NEVER = "resourceRequirements: the job can never run in job queue default: needs "


def _requirements(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"containerOverrides": {"resourceRequirements": [{"type": t, "value": v} for t, v in pairs]}}


SUBMIT_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-queue", {"jobQueue": "nope"}, "job queue 'nope' does not exist"),
    ("unknown-queue-arn", {"jobQueue": f"{ARN}job-queue/nope"}, f"job queue '{ARN}job-queue/nope' does not exist"),
    ("disabled-queue", {"jobQueue": "closed"}, "jobQueue: job queue closed is DISABLED; it accepts no new jobs"),
    ("unknown-definition", {"jobDefinition": "nope"}, "job definition 'nope' does not exist"),
    ("unknown-revision", {"jobDefinition": "render:7"}, "job definition 'render:7' does not exist"),
    ("inactive-revision", {"jobDefinition": "old:1"}, "jobDefinition: old:1 is INACTIVE"),
    (
        "reserved-env",
        {"containerOverrides": {"environment": [{"name": "AWS_BATCH_JOB_ID", "value": "x"}]}},
        "containerOverrides.environment[AWS_BATCH_JOB_ID]: names starting with AWS_BATCH are reserved",
    ),
    (
        "vcpu-not-a-number",
        _requirements(("VCPU", "two")),
        "containerOverrides.resourceRequirements[0].value: VCPU must be a number (as a string), got 'two'",
    ),
    (
        "memory-not-whole",
        _requirements(("VCPU", "1"), ("MEMORY", "1.5")),
        "containerOverrides.resourceRequirements[1].value: MEMORY must be a whole number (as a string), got '1.5'",
    ),
    (
        "vcpu-zero",
        _requirements(("VCPU", "0")),
        "containerOverrides.resourceRequirements[VCPU]: must be greater than 0, got 0",
    ),
    (
        "memory-too-small",
        _requirements(("MEMORY", "2")),
        "containerOverrides.resourceRequirements[MEMORY]: must be at least 4 MiB, got 2",
    ),
    (
        "gpu-negative",
        _requirements(("GPU", "-1")),
        "containerOverrides.resourceRequirements[GPU]: must be 0 or more, got -1",
    ),
    (
        "too-many-vcpus",
        _requirements(("VCPU", "3")),
        _NEVER + "3 vCPU; the largest compute environment of queue default (local) has 2 vCPU",
    ),
    (
        "too-much-memory",
        _requirements(("MEMORY", "8192")),
        _NEVER + "8192 MiB memory; the largest compute environment of queue default (local) has 4096 MiB memory",
    ),
    (
        "too-many-gpus",
        _requirements(("GPU", "1")),
        _NEVER + "1 GPU; the largest compute environment of queue default (local) has 0 GPU",
    ),
    (
        "job-name-start",
        {"jobName": "-frame"},
        "jobName: '-frame' is not a job name: up to 128 letters, digits, '-' and '_', starting with a letter or digit",
    ),
    (
        "job-name-space",
        {"jobName": "frame 7"},
        "jobName: 'frame 7' is not a job name: up to 128 letters, digits, '-' and '_', starting with a letter or digit",
    ),
    (
        "job-name-too-long",
        {"jobName": "a" * 129},
        f"jobName: '{'a' * 129}' is not a job name: up to 128 letters, digits, '-' and '_', "
        "starting with a letter or digit",
    ),
    ("array-too-small", {"arrayProperties": {"size": 1}}, "arrayProperties.size: must be between 2 and 10000, got 1"),
    (
        "array-too-large",
        {"arrayProperties": {"size": 10_001}},
        "arrayProperties.size: must be between 2 and 10000, got 10001",
    ),
    ("depends-on-unknown", {"dependsOn": [{"jobId": "x"}]}, "dependsOn[0].jobId: no job x"),
    (
        "depends-on-too-many",
        {"dependsOn": [{"jobId": f"x{i}"} for i in range(21)]},
        "dependsOn: at most 20 dependencies, got 21",
    ),
    (
        "n-to-n-without-array",
        {"dependsOn": [{"jobId": "x", "type": "N_TO_N"}]},
        "dependsOn[0].type: N_TO_N applies to array jobs only (give arrayProperties)",
    ),
    (
        "sequential-with-job-id",
        {"arrayProperties": {"size": 2}, "dependsOn": [{"jobId": "x", "type": "SEQUENTIAL"}]},
        "dependsOn[0].jobId: a SEQUENTIAL dependency names no job (it orders the array)",
    ),
    ("retry-attempts", {"retryStrategy": {"attempts": 11}}, "retryStrategy.attempts: must be between 1 and 10, got 11"),
    (
        "timeout-zero",
        {"timeout": {"attemptDurationSeconds": 0}},
        "timeout.attemptDurationSeconds: must be between 1 and 2147483647 seconds, got 0",
    ),
    (
        "empty-command",
        {"containerOverrides": {"command": []}},
        "containerOverrides.command: must not be empty",
    ),
    (
        "model-missing-member",
        {"jobName": None},
        "invalid SubmitJob request: jobName: required by AWS Batch, but missing",
    ),
    (
        "several-problems",
        {
            "jobName": "-x",
            "containerOverrides": {
                "environment": [{"name": "AWS_BATCH_CE_NAME", "value": "x"}],
                "resourceRequirements": [{"type": "VCPU", "value": "?"}],
            },
        },
        "jobName: '-x' is not a job name: up to 128 letters, digits, '-' and '_', starting with a letter or digit; "
        "containerOverrides.resourceRequirements[0].value: VCPU must be a number (as a string), got '?'; "
        "containerOverrides.environment[AWS_BATCH_CE_NAME]: names starting with AWS_BATCH are reserved",
    ),
]


@pytest.fixture
def submit_world(registered: World) -> World:
    """render:1, old:1 (INACTIVE), and a DISABLED queue ``closed``."""
    world = registered
    world.register(jobDefinitionName="old")
    world.call("DeregisterJobDefinition", {"jobDefinition": "old:1"})
    order = [{"order": 1, "computeEnvironment": "local"}]
    world.call(
        "CreateJobQueue",
        {"jobQueueName": "closed", "priority": 1, "state": "DISABLED", "computeEnvironmentOrder": order},
    )
    world.submit("already-there")
    world.notifier.calls.clear()
    return world


@pytest.mark.parametrize(("changes", "message"), [c[1:] for c in SUBMIT_REFUSALS], ids=[c[0] for c in SUBMIT_REFUSALS])
def test_submit_job_refusals_name_the_problem_and_write_nothing(
    submit_world: World, changes: dict[str, Any], message: str
) -> None:
    world = submit_world
    params = {"jobName": "frame", "jobQueue": "default", "jobDefinition": "render", **changes}
    params = {k: v for k, v in params.items() if v is not None}
    before = world.snapshot()
    error = world.refused("SubmitJob", params)
    assert (error.code, error.status, error.message) == ("ClientException", 400, message)
    assert world.snapshot() == before  # no job stored, no save made, the control loop not told
    assert world.notifier.calls == []


def test_a_request_bigger_than_the_host_names_the_host(registered: World) -> None:
    world = registered
    big = {"computeEnvironmentName": "big", "type": "MANAGED", "computeResources": {"type": "EC2", "maxvCpus": 8}}
    world.call("CreateComputeEnvironment", big)
    world.call(
        "UpdateJobQueue",
        {"jobQueue": "default", "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "big"}]},
    )
    before = world.snapshot()
    message = world.refusal_message(
        "SubmitJob", {"jobName": "x", "jobQueue": "default", "jobDefinition": "render", **_requirements(("VCPU", "3"))}
    )
    assert message == _NEVER + "3 vCPU; this host has 2 vCPU"
    assert world.snapshot() == before


def test_a_request_that_fits_exactly_is_accepted(registered: World) -> None:
    job_id = registered.submit(**_requirements(("VCPU", "2"), ("MEMORY", "4096")))
    assert registered.describe(job_id)["container"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"},
        {"type": "MEMORY", "value": "4096"},
    ]


def test_submit_job_refuses_an_unknown_resource_type(registered: World) -> None:
    message = registered.refusal_message(
        "SubmitJob", {"jobName": "x", "jobQueue": "default", "jobDefinition": "render", **_requirements(("CPU", "64"))}
    )
    assert message.startswith("containerOverrides.resourceRequirements[0].type")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"vcpus": 4}, "containerOverrides.vcpus: AWS ignores it for a job definition with resourceRequirements"),
        ({"memory": 64}, "containerOverrides.memory: AWS ignores it for a job definition with resourceRequirements"),
        ({"instanceType": "m5.large"}, "containerOverrides.instanceType: only for multi-node parallel jobs"),
    ],
)
def test_submit_job_refuses_overrides_aws_would_silently_ignore(
    registered: World, override: dict[str, Any], message: str
) -> None:
    body = {"jobName": "x", "jobQueue": "default", "jobDefinition": "render", "containerOverrides": override}
    assert registered.refusal_message("SubmitJob", body).startswith(message)


def test_describe_job_definitions_refuses_an_unknown_status(registered: World) -> None:
    message = registered.refusal_message("DescribeJobDefinitions", {"status": "BOGUS"})
    assert message == "status: must be ACTIVE or INACTIVE, got 'BOGUS'"


# -- DescribeJobs ------------------------------------------------------------------------------------


def test_describe_jobs_omits_unknown_ids_and_keeps_the_order_asked(registered: World) -> None:
    world = registered
    first, second = world.submit("a"), world.submit("b")
    jobs = world.call("DescribeJobs", {"jobs": [second, "no-such-job", first]})["jobs"]
    assert [j["jobId"] for j in jobs] == [second, first]
    assert world.call("DescribeJobs", {"jobs": ["no-such-job"]}) == {"jobs": []}


def test_describe_jobs_refuses_more_than_100_ids(registered: World) -> None:
    assert registered.call("DescribeJobs", {"jobs": [f"id-{i}" for i in range(100)]}) == {"jobs": []}
    error = registered.refused("DescribeJobs", {"jobs": [f"id-{i}" for i in range(101)]})
    assert (error.code, error.status, error.message) == (
        "ClientException",
        400,
        "jobs: at most 100 ids per call, got 101",
    )


def test_a_runnable_job_shows_the_live_waiting_reason(registered: World) -> None:
    world = registered
    waiting, submitted = world.submit("waiting"), world.submit("submitted")
    world.move(waiting, JobStatus.RUNNABLE)
    reason = "CAPACITY: needs 2 vCPU, 1 vCPU available in compute environment local"
    world.live.reasons[waiting] = reason
    world.live.reasons[submitted] = "never shown: the job is not RUNNABLE"
    assert world.describe(waiting)["statusReason"] == reason
    assert "statusReason" not in world.describe(submitted)
    summary = world.call("ListJobs", {"jobQueue": "default", "jobStatus": "RUNNABLE"})["jobSummaryList"]
    assert [(s["jobId"], s["statusReason"]) for s in summary] == [(waiting, reason)]
    del world.live.reasons[waiting]
    assert "statusReason" not in world.describe(waiting)  # no live reason: the stored one (none)


def test_describe_jobs_of_a_finished_job_shows_its_attempt(registered: World) -> None:
    world = registered
    job_id = world.submit()
    world.move(job_id, JobStatus.RUNNABLE, JobStatus.STARTING)
    world.clock.advance(1)
    world.move(job_id, JobStatus.RUNNING)
    world.clock.advance(2)
    world.move(job_id, JobStatus.SUCCEEDED)
    job = world.describe(job_id)
    assert (job["status"], job["statusReason"]) == ("SUCCEEDED", "Essential container in task exited")
    assert (job["startedAt"], job["stoppedAt"]) == (T0 + 1000, T0 + 3000)
    (attempt,) = job["attempts"]
    assert attempt["container"]["exitCode"] == 0
    assert attempt["container"]["logStreamName"].startswith("render/default/")
    assert job["container"]["exitCode"] == 0


# -- ListJobs -----------------------------------------------------------------------------------------


@pytest.fixture
def mixed(registered: World) -> dict[str, str]:
    """One job per status of interest, a second apart: name -> id."""
    world = registered
    ids = {}
    for name, path in [
        ("submitted", ()),
        ("runnable", (JobStatus.RUNNABLE,)),
        ("running-a", (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)),
        ("running-b", (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)),
        ("Succeeded", (JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.SUCCEEDED)),
    ]:
        ids[name] = world.submit(name)
        world.move(ids[name], *path)
        world.clock.advance(1)
    return ids


def test_list_jobs_without_status_or_filter_lists_running_jobs_only(registered: World, mixed: dict[str, str]) -> None:
    assert registered.list_ids() == [mixed["running-b"], mixed["running-a"]]


@pytest.mark.parametrize("status", ["SUBMITTED", "RUNNABLE", "SUCCEEDED", "FAILED", "STARTING"])
def test_list_jobs_by_status(registered: World, mixed: dict[str, str], status: str) -> None:
    expected = [job_id for name, job_id in mixed.items() if name.upper() == status]
    assert registered.list_ids(jobStatus=status) == expected


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("running-a", ["running-a"]),
        ("RUNNING-A", ["running-a"]),  # case-insensitive
        ("running", []),  # exact, not a prefix
        ("running*", ["running-b", "running-a"]),  # trailing * = prefix, newest first
        ("SUCC*", ["Succeeded"]),
        ("*", ["Succeeded", "running-b", "running-a", "runnable", "submitted"]),
    ],
)
def test_list_jobs_job_name_filter_is_case_insensitive_exact_or_prefix_and_ignores_status(
    registered: World, mixed: dict[str, str], value: str, names: list[str]
) -> None:
    filters = [{"name": "JOB_NAME", "values": [value]}]
    assert registered.list_ids(filters=filters, jobStatus="SUBMITTED") == [mixed[n] for n in names]


def test_list_jobs_job_definition_filter_takes_a_name_a_revision_an_arn_or_a_prefix(registered: World) -> None:
    registered.register(containerProperties={**RENDER["containerProperties"], "command": ["echo", "2"]})
    registered.register(jobDefinitionName="render-hd")
    first = registered.submit("one", jobDefinition="render:1")
    second = registered.submit("two", jobDefinition="render:2")
    hd = registered.submit("three", jobDefinition="render-hd")

    def listed(value: str) -> set[str]:
        return set(registered.list_ids(filters=[{"name": "JOB_DEFINITION", "values": [value]}]))

    assert listed("render") == {first, second}  # every revision of that name, whatever the status
    assert listed("render:2") == {second}
    assert listed(ARNS.job_definition("render", 1)) == {first}
    assert listed("render*") == {first, second, hd}
    assert listed("Render") == set()  # case-sensitive, as AWS


def test_list_jobs_created_at_filters(registered: World, mixed: dict[str, str]) -> None:
    # Jobs were created at T0, T0+1s, ... T0+4s.
    after = [{"name": "AFTER_CREATED_AT", "values": [str(T0 + 2000)]}]
    assert registered.list_ids(filters=after) == [mixed["Succeeded"], mixed["running-b"]]
    before = [{"name": "BEFORE_CREATED_AT", "values": [str(T0 + 2000)]}]
    assert registered.list_ids(filters=before) == [mixed["runnable"], mixed["submitted"]]


def test_list_jobs_lists_newest_first(registered: World) -> None:
    world = registered
    ids = []
    for i in range(3):
        ids.append(world.submit(f"job-{i}"))
        world.clock.advance(5)
    summaries = world.call("ListJobs", {"jobQueue": "default", "jobStatus": "SUBMITTED"})["jobSummaryList"]
    assert [s["jobId"] for s in summaries] == ids[::-1]
    assert [s["createdAt"] for s in summaries] == [T0 + 10_000, T0 + 5000, T0]


@pytest.mark.parametrize(
    "params",
    [
        {"jobStatus": "SUBMITTED"},
        {"filters": [{"name": "JOB_NAME", "values": ["job*"]}]},
        {"filters": [{"name": "JOB_NAME", "values": ["JOB"]}]},
    ],
    ids=["status", "name-prefix", "exact-name"],
)
@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
def test_list_jobs_pages_walk_every_job_exactly_once(registered: World, params: dict[str, Any], page_size: int) -> None:
    world = registered
    names = ["job", "job-a", "JOB", "job-b", "other", "job", "job-c"]
    for i, name in enumerate(names):
        world.submit(name)
        if i % 2:  # some jobs share createdAt: the order must still be total
            world.clock.advance(1)
    everything = world.list_ids(**params)
    assert everything  # the unpaged answer
    seen: list[str] = []
    request: dict[str, Any] = {"jobQueue": "default", "maxResults": page_size, **params}
    for _ in range(len(names) + 2):
        page = world.call("ListJobs", request)
        assert len(page["jobSummaryList"]) <= page_size
        seen += [s["jobId"] for s in page["jobSummaryList"]]
        if "nextToken" not in page:
            break
        request = {**request, "nextToken": page["nextToken"]}
    else:
        pytest.fail("ListJobs never stopped giving a nextToken")
    assert seen == everything
    assert len(set(seen)) == len(seen)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nextToken": "not a token"}, "nextToken: not a token this API gave out"),
        ({"nextToken": base64.urlsafe_b64encode(b'{"a": 1}').decode()}, "nextToken: not a token this API gave out"),
        ({"nextToken": base64.urlsafe_b64encode(b"[1, 2, 3]").decode()}, "nextToken: not a token this API gave out"),
        ({"maxResults": 1001}, "maxResults: must be between 1 and 1000, got 1001"),
        (
            {"filters": [{"name": "JOB_QUEUE", "values": ["render"]}]},
            "filters[0].name: 'JOB_QUEUE' is not a filter; "
            "allowed: JOB_NAME, JOB_DEFINITION, AFTER_CREATED_AT, BEFORE_CREATED_AT",
        ),
        (
            {"filters": [{"name": "JOB_NAME", "values": ["a"]}, {"name": "JOB_NAME", "values": ["b"]}]},
            "filters: AWS takes one filter at a time",
        ),
        ({"filters": [{"name": "JOB_NAME", "values": []}]}, "filters[0].values: one value is required"),
        (
            {"filters": [{"name": "AFTER_CREATED_AT", "values": ["yesterday"]}]},
            "filters[0].values[0]: expected epoch milliseconds, got 'yesterday'",
        ),
    ],
    ids=[
        "garbage-token",
        "object-token",
        "triple-token",
        "max-results",
        "filter-name",
        "two-filters",
        "no-value",
        "bad-time",
    ],
)
def test_list_jobs_refuses_bad_paging_and_filters(registered: World, params: dict[str, Any], message: str) -> None:
    assert registered.refusal_message("ListJobs", {"jobQueue": "default", **params}) == message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "jobQueue: exactly one of jobQueue, arrayJobId and multiNodeJobId is required"),
        (
            {"jobQueue": "default", "arrayJobId": "x"},
            "jobQueue: exactly one of jobQueue, arrayJobId and multiNodeJobId is required",
        ),
        (
            {"jobQueue": "default", "multiNodeJobId": "x"},
            "jobQueue: exactly one of jobQueue, arrayJobId and multiNodeJobId is required",
        ),
        ({"arrayJobId": "x"}, "arrayJobId: x is not an array job"),
        ({"multiNodeJobId": "x"}, "multiNodeJobId: x is not a multi-node parallel job"),
        ({"jobQueue": "nope"}, "job queue 'nope' does not exist"),
    ],
    ids=["none", "queue-and-array", "queue-and-mnp", "array", "mnp", "unknown-queue"],
)
def test_list_jobs_needs_exactly_one_known_scope(registered: World, params: dict[str, Any], message: str) -> None:
    error = registered.refused("ListJobs", params)
    assert (error.code, error.status, error.message) == ("ClientException", 400, message)


def test_list_jobs_takes_the_queue_by_arn(registered: World) -> None:
    job_id = registered.submit()
    assert registered.list_ids(jobQueue=f"{ARN}job-queue/default", jobStatus="SUBMITTED") == [job_id]


def test_list_jobs_refuses_an_unknown_status_as_a_client_error(registered: World) -> None:
    message = registered.refusal_message("ListJobs", {"jobQueue": "default", "jobStatus": "DONE"})
    assert message.startswith("jobStatus: ")


def test_list_jobs_refuses_a_unicode_digit_time_filter_as_a_client_error(registered: World) -> None:
    filters = [{"name": "AFTER_CREATED_AT", "values": ["²"]}]
    assert registered.refusal_message("ListJobs", {"jobQueue": "default", "filters": filters}) == (
        "filters[0].values[0]: expected epoch milliseconds, got '²'"
    )


def test_list_jobs_refuses_a_forged_token_with_an_infinite_time_as_a_client_error(registered: World) -> None:
    token = base64.urlsafe_b64encode(b'[1e999, "x"]').decode()
    assert registered.refusal_message("ListJobs", {"jobQueue": "default", "nextToken": token}) == (
        "nextToken: not a token this API gave out"
    )


def test_list_jobs_refuses_max_results_zero(registered: World) -> None:
    assert registered.refusal_message("ListJobs", {"jobQueue": "default", "maxResults": 0}) == (
        "maxResults: must be between 1 and 1000, got 0"
    )


# -- CancelJob / TerminateJob ---------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["CancelJob", "TerminateJob"])
def test_stopping_an_unknown_job_is_a_client_error(registered: World, operation: str) -> None:
    error = registered.refused(operation, {"jobId": "no-such-job", "reason": "x"})
    assert (error.code, error.status, error.message) == ("ClientException", 400, "job 'no-such-job' does not exist")
    assert registered.notifier.calls == []


@pytest.mark.parametrize(("operation", "kind"), [("CancelJob", StopKind.CANCEL), ("TerminateJob", StopKind.TERMINATE)])
def test_a_stop_request_is_recorded_on_the_job_and_the_control_loop_told(
    registered: World, operation: str, kind: StopKind
) -> None:
    world = registered
    job_id = world.submit()
    world.notifier.calls.clear()
    world.clock.advance(3)
    assert world.call(operation, {"jobId": job_id, "reason": "not needed any more"}) == {}
    stored = world.store.get_job(job_id)
    assert stored is not None
    assert stored.stop_request == StopRequest(kind, "not needed any more", T0 + 3000)
    assert stored.status is JobStatus.SUBMITTED  # the control loop applies it, not the API
    assert world.notifier.calls == [("stop_requested", job_id)]


def test_terminate_after_cancel_replaces_the_request_but_cancel_after_terminate_does_not(registered: World) -> None:
    world = registered
    first, second = world.submit("a"), world.submit("b")
    world.call("CancelJob", {"jobId": first, "reason": "cancel 1"})
    world.call("CancelJob", {"jobId": first, "reason": "cancel 2"})
    stored = world.store.get_job(first)
    assert stored is not None and stored.stop_request is not None
    assert (stored.stop_request.kind, stored.stop_request.reason) == (StopKind.CANCEL, "cancel 1")
    world.notifier.calls.clear()
    world.call("TerminateJob", {"jobId": first, "reason": "terminate"})
    stored = world.store.get_job(first)
    assert stored is not None and stored.stop_request is not None
    assert (stored.stop_request.kind, stored.stop_request.reason) == (StopKind.TERMINATE, "terminate")
    assert world.notifier.calls == [("stop_requested", first)]

    world.call("TerminateJob", {"jobId": second, "reason": "terminate"})
    world.call("CancelJob", {"jobId": second, "reason": "cancel"})
    stored = world.store.get_job(second)
    assert stored is not None and stored.stop_request is not None
    assert (stored.stop_request.kind, stored.stop_request.reason) == (StopKind.TERMINATE, "terminate")


@pytest.mark.parametrize("operation", ["CancelJob", "TerminateJob"])
@pytest.mark.parametrize("final", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_stopping_a_finished_job_succeeds_and_changes_nothing(
    registered: World, operation: str, final: JobStatus
) -> None:
    world = registered
    job_id = world.submit()
    finished = world.move(job_id, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, final)
    world.notifier.calls.clear()
    assert world.call(operation, {"jobId": job_id, "reason": "too late"}) == {}
    assert world.store.get_job(job_id) == finished
    assert world.notifier.calls == []
    assert world.describe(job_id)["status"] == final.value


@pytest.mark.parametrize("operation", ["CancelJob", "TerminateJob"])
def test_a_stop_request_on_a_running_job_is_recorded_for_the_control_loop(registered: World, operation: str) -> None:
    # AWS: CancelJob has no effect on a RUNNING job, TerminateJob stops it; the loop decides
    # (lifecycle.stop_effect), the API only records and tells.
    world = registered
    job_id = world.submit()
    world.move(job_id, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    world.notifier.calls.clear()
    assert world.call(operation, {"jobId": job_id, "reason": "r"}) == {}
    stored = world.store.get_job(job_id)
    assert stored is not None and stored.stop_request is not None
    assert world.notifier.calls == [("stop_requested", job_id)]
    assert world.describe(job_id)["status"] == "RUNNING"


# -- read-only dispatcher, unsupported operations ----------------------------------------------------------


@pytest.fixture
def read_only(registered: World) -> tuple[World, World]:
    """(the daemon's world, a read-only API over the same store)."""
    job_id = registered.submit()
    registered.move(job_id, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    dispatcher = BatchDispatcher(registered.service, ARNS, HOST, read_only=True)
    return registered, replace(registered, api=Api(dispatcher, supported=dispatcher.operations))


def test_a_read_only_dispatcher_answers_reads(read_only: tuple[World, World]) -> None:
    daemon, reader = read_only
    (job_id,) = reader.list_ids()
    assert reader.describe(job_id) == daemon.describe(job_id)
    assert reader.call("DescribeJobDefinitions", {}) == daemon.call("DescribeJobDefinitions", {})
    assert reader.call("DescribeJobQueues", {})["jobQueues"][0]["jobQueueName"] == "default"
    assert reader.call("DescribeComputeEnvironments", {})["computeEnvironments"][0]["computeEnvironmentName"] == "local"


READ_ONLY_WRITES: list[tuple[str, dict[str, Any]]] = [
    ("SubmitJob", {"jobName": "x", "jobQueue": "default", "jobDefinition": "render"}),
    ("CancelJob", {"jobId": "x", "reason": "r"}),
    ("TerminateJob", {"jobId": "x", "reason": "r"}),
    ("RegisterJobDefinition", RENDER),
    ("DeregisterJobDefinition", {"jobDefinition": "render:1"}),
    (
        "CreateJobQueue",
        {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}]},
    ),
    ("UpdateJobQueue", {"jobQueue": "default", "state": "DISABLED"}),
    ("DeleteJobQueue", {"jobQueue": "default"}),
    (
        "CreateComputeEnvironment",
        {"computeEnvironmentName": "c", "type": "MANAGED", "computeResources": {"type": "EC2", "maxvCpus": 1}},
    ),
    ("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "DISABLED"}),
    ("DeleteComputeEnvironment", {"computeEnvironment": "local"}),
]


@pytest.mark.parametrize(("operation", "params"), READ_ONLY_WRITES, ids=[w[0] for w in READ_ONLY_WRITES])
def test_a_read_only_dispatcher_refuses_writes_saying_they_need_the_daemon(
    read_only: tuple[World, World], operation: str, params: dict[str, Any]
) -> None:
    daemon, reader = read_only
    before = daemon.snapshot()
    queues, definitions = daemon.call("DescribeJobQueues", {}), daemon.call("DescribeJobDefinitions", {})
    error = reader.refused(operation, params)
    assert (error.code, error.status, error.message) == ("ClientException", 400, f"{operation} needs the daemon")
    assert daemon.snapshot() == before
    assert daemon.call("DescribeJobQueues", {}) == queues
    assert daemon.call("DescribeJobDefinitions", {}) == definitions


def test_the_read_only_and_daemon_dispatchers_implement_the_same_operations() -> None:
    world = make_world(infrastructure=False)
    assert (
        BatchDispatcher(world.service, ARNS, HOST, read_only=True).operations
        == BatchDispatcher(world.service, ARNS, HOST).operations
    )


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("SubmitServiceJob", {"jobName": "x"}),
        ("DescribeServiceEnvironments", {}),
        ("CreateServiceEnvironment", {"bogus": True}),  # refused as unsupported before validation
    ],
)
def test_operations_localbatch_does_not_implement_are_client_errors(
    registered: World, operation: str, params: dict[str, Any]
) -> None:
    assert operation in operation_names()
    before = registered.snapshot()
    with pytest.raises(ApiError) as raised:
        registered.api.invoke(operation, params)
    assert (raised.value.code, raised.value.status, raised.value.message) == (
        "ClientException",
        400,
        f"localbatch does not support {operation}",
    )
    assert registered.snapshot() == before


def test_an_unsupported_operation_on_the_wire_is_a_400_client_exception(registered: World) -> None:
    response = registered.api.handle(wire_request("DescribeServiceEnvironments", {}))
    assert (response.status, response.error_code) == (400, "ClientException")
    assert json.loads(response.body) == {
        "__type": "ClientException",
        "message": "localbatch does not support DescribeServiceEnvironments",
    }


def test_api_invoke_raises_api_errors_for_model_validation(registered: World) -> None:
    with pytest.raises(ApiError) as raised:
        registered.api.invoke("SubmitJob", {"jobName": "x", "jobQueue": "default"})
    assert raised.value.message == "invalid SubmitJob request: jobDefinition: required by AWS Batch, but missing"
