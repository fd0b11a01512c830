"""Job queues and compute environments through the daemon's AWS Batch API, in-process.

Same world as ``test_api_dispatch.py`` (``tests/fakes/api_world.make_world``: the in-memory store, the compute
environment ``local`` of 2 vCPU / 4096 MiB on a 2 vCPU / 4096 MiB host, the queue ``default``):
every success is checked against botocore's output shape, every refusal is a 400
ClientException with the message the user sees, and refusals change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.awsbatch.infra import GPUS_TAG, MEMORY_TAG
from localbatch.core.infra import ComputeEnvironment, JobQueue, State
from localbatch.core.jobs import JobStatus, StopKind
from localbatch.core.resources import Resources
from tests.fakes.api_world import ARN, World, make_world


@pytest.fixture
def world() -> World:
    world = make_world()
    world.register()
    return world


def _order(*names: str, start: int = 1) -> list[dict[str, Any]]:
    return [{"order": start + i, "computeEnvironment": name} for i, name in enumerate(names)]


def _environment(name: str, max_vcpus: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "computeEnvironmentName": name,
        "type": "MANAGED",
        "computeResources": {"type": "EC2", "maxvCpus": max_vcpus},
        **fields,
    }


def _queue(name: str, *environments: str, priority: int = 1, **fields: Any) -> dict[str, Any]:
    return {"jobQueueName": name, "priority": priority, "computeEnvironmentOrder": _order(*environments), **fields}


def _queues(world: World, *refs: str) -> list[dict[str, Any]]:
    params = {"jobQueues": list(refs)} if refs else {}
    return world.call("DescribeJobQueues", params)["jobQueues"]  # type: ignore[no-any-return]


def _environments(world: World, *refs: str) -> list[dict[str, Any]]:
    params = {"computeEnvironments": list(refs)} if refs else {}
    return world.call("DescribeComputeEnvironments", params)["computeEnvironments"]  # type: ignore[no-any-return]


def _order_names(queue: dict[str, Any]) -> list[tuple[int, str]]:
    return [(e["order"], e["computeEnvironment"].rsplit("/", 1)[-1]) for e in queue["computeEnvironmentOrder"]]


def _infra(world: World) -> tuple[list[JobQueue], list[ComputeEnvironment], int]:
    """What a refused infrastructure request must leave unchanged."""
    return world.store.list_job_queues(), world.store.list_compute_environments(), len(world.notifier.calls)


# -- job queues ----------------------------------------------------------------------------------------


def test_create_job_queue_answers_name_and_arn_and_describe_shows_it(world: World) -> None:
    world.call("CreateComputeEnvironment", _environment("b"))
    response = world.call("CreateJobQueue", _queue("urgent", "local", "b", priority=50))
    assert response == {"jobQueueName": "urgent", "jobQueueArn": f"{ARN}job-queue/urgent"}
    (queue,) = _queues(world, "urgent")
    assert queue["jobQueueArn"] == f"{ARN}job-queue/urgent"
    assert (queue["state"], queue["status"], queue["priority"]) == ("ENABLED", "VALID", 50)
    assert queue["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": f"{ARN}compute-environment/local"},
        {"order": 2, "computeEnvironment": f"{ARN}compute-environment/b"},
    ]
    assert world.notifier.calls[-1] == ("infrastructure_changed", None)
    assert world.store.get_job_queue("urgent") == JobQueue("urgent", 50, ("local", "b"), State.ENABLED)


def test_create_job_queue_orders_environments_by_order_value_lowest_first_by_name_or_arn(world: World) -> None:
    world.call("CreateComputeEnvironment", _environment("b"))
    world.call("CreateComputeEnvironment", _environment("c"))
    order = [
        {"order": 30, "computeEnvironment": "local"},
        {"order": 5, "computeEnvironment": f"{ARN}compute-environment/c"},
        {"order": 10, "computeEnvironment": "b"},
    ]
    world.call("CreateJobQueue", {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": order})
    (queue,) = _queues(world, "q")
    assert [name for _, name in _order_names(queue)] == ["c", "b", "local"]
    orders = [o for o, _ in _order_names(queue)]
    assert orders == sorted(orders)
    stored = world.store.get_job_queue("q")
    assert stored is not None and stored.compute_environments == ("c", "b", "local")


def test_create_job_queue_in_the_disabled_state(world: World) -> None:
    world.call("CreateJobQueue", _queue("paused", "local", state="DISABLED"))
    assert _queues(world, "paused")[0]["state"] == "DISABLED"


def test_describe_job_queues_all_by_name_by_arn_and_omits_unknown(world: World) -> None:
    world.call("CreateJobQueue", _queue("a-queue", "local"))
    world.call("CreateJobQueue", _queue("z-queue", "local"))
    assert [q["jobQueueName"] for q in _queues(world)] == ["a-queue", "default", "z-queue"]
    assert [q["jobQueueName"] for q in _queues(world, "z-queue")] == ["z-queue"]
    assert [q["jobQueueName"] for q in _queues(world, f"{ARN}job-queue/a-queue", "nope")] == ["a-queue"]
    assert _queues(world, "nope") == []


def test_describe_job_queues_pages(world: World) -> None:
    for name in ("q1", "q2", "q3", "q4"):
        world.call("CreateJobQueue", _queue(name, "local"))
    seen: list[str] = []
    params: dict[str, Any] = {"maxResults": 2}
    pages = 0
    while True:
        page = world.call("DescribeJobQueues", params)
        pages += 1
        seen += [q["jobQueueName"] for q in page["jobQueues"]]
        if "nextToken" not in page:
            break
        params = {"maxResults": 2, "nextToken": page["nextToken"]}
    assert seen == ["default", "q1", "q2", "q3", "q4"]
    assert pages == 3
    assert world.refusal_message("DescribeJobQueues", {"nextToken": "x"}) == "nextToken: not a token this API gave out"
    assert world.refusal_message("DescribeJobQueues", {"maxResults": 101}) == (
        "maxResults: must be between 1 and 100, got 101"
    )


def test_update_job_queue_keeps_the_queues_tags(world: World) -> None:
    order = [{"order": 1, "computeEnvironment": "local"}]
    world.call(
        "CreateJobQueue",
        {"jobQueueName": "tagged", "priority": 1, "computeEnvironmentOrder": order, "tags": {"team": "render"}},
    )
    world.call("UpdateJobQueue", {"jobQueue": "tagged", "priority": 5})
    (queue,) = _queues(world, "tagged")
    assert (queue["priority"], queue["tags"]) == (5, {"team": "render"})


def test_update_job_queue_changes_state_priority_and_order(world: World) -> None:
    world.call("CreateComputeEnvironment", _environment("b"))
    world.notifier.calls.clear()
    response = world.call("UpdateJobQueue", {"jobQueue": "default", "state": "DISABLED", "priority": 0})
    assert response == {"jobQueueName": "default", "jobQueueArn": f"{ARN}job-queue/default"}
    (queue,) = _queues(world, "default")
    assert (queue["state"], queue["priority"]) == ("DISABLED", 0)
    assert [name for _, name in _order_names(queue)] == ["local"]  # unchanged when not given
    order = [
        {"order": 2, "computeEnvironment": "local"},
        {"order": 1, "computeEnvironment": f"{ARN}compute-environment/b"},
    ]
    world.call("UpdateJobQueue", {"jobQueue": f"{ARN}job-queue/default", "computeEnvironmentOrder": order})
    (queue,) = _queues(world, "default")
    assert [name for _, name in _order_names(queue)] == ["b", "local"]
    assert (queue["state"], queue["priority"]) == ("DISABLED", 0)  # unchanged when not given
    assert world.notifier.calls == [("infrastructure_changed", None)] * 2


def test_a_disabled_queue_refuses_submissions_and_an_enabled_one_takes_them_again(world: World) -> None:
    world.call("UpdateJobQueue", {"jobQueue": "default", "state": "DISABLED"})
    submit = {"jobName": "x", "jobQueue": "default", "jobDefinition": "render"}
    assert (
        world.refusal_message("SubmitJob", submit) == "jobQueue: job queue default is DISABLED; it accepts no new jobs"
    )
    world.call("UpdateJobQueue", {"jobQueue": "default", "state": "ENABLED"})
    assert world.call("SubmitJob", submit)["jobName"] == "x"


def test_delete_job_queue_is_refused_while_enabled(world: World) -> None:
    before = _infra(world)
    error = world.refused("DeleteJobQueue", {"jobQueue": "default"})
    assert (error.code, error.status, error.message) == (
        "ClientException",
        400,
        "jobQueue: default is ENABLED; disable it first",
    )
    assert _infra(world) == before


def test_delete_of_a_disabled_queue_terminates_its_unfinished_jobs_then_removes_it(world: World) -> None:
    world.call("CreateJobQueue", _queue("other", "local"))
    submitted, running, done = world.submit("submitted"), world.submit("running"), world.submit("done")
    elsewhere = world.submit("elsewhere", jobQueue="other")
    world.move(running, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    world.move(done, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    world.call("UpdateJobQueue", {"jobQueue": "default", "state": "DISABLED"})
    world.notifier.calls.clear()

    assert world.call("DeleteJobQueue", {"jobQueue": f"{ARN}job-queue/default"}) == {}

    for job_id in (submitted, running):
        job = world.store.get_job(job_id)
        assert job is not None and job.stop_request is not None
        assert (job.stop_request.kind, job.stop_request.reason) == (StopKind.TERMINATE, "Job queue default was deleted")
    for job_id in (done, elsewhere):
        job = world.store.get_job(job_id)
        assert job is not None and job.stop_request is None
    assert world.notifier.calls == [
        ("stop_requested", submitted),
        ("stop_requested", running),
        ("infrastructure_changed", None),
    ]
    assert _queues(world, "default") == []
    assert world.store.get_job_queue("default") is None
    assert world.refusal_message("ListJobs", {"jobQueue": "default"}) == "job queue 'default' does not exist"
    assert [j["jobId"] for j in world.call("DescribeJobs", {"jobs": [submitted]})["jobs"]] == [submitted]


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("UpdateJobQueue", {"jobQueue": "nope", "state": "DISABLED"}),
        ("DeleteJobQueue", {"jobQueue": "nope"}),
    ],
)
def test_unknown_job_queue_names_are_client_errors(world: World, operation: str, params: dict[str, Any]) -> None:
    before = _infra(world)
    assert world.refusal_message(operation, params) == "job queue 'nope' does not exist"
    assert _infra(world) == before


QUEUE_REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("duplicate-name", "CreateJobQueue", _queue("default", "local"), "jobQueueName: default already exists"),
    (
        "four-environments",
        "CreateJobQueue",
        _queue("q", "local", "b", "c", "d"),
        "computeEnvironmentOrder: at most 3 entries, got 4",
    ),
    (
        "unknown-environment",
        "CreateJobQueue",
        _queue("q", "local", "nope"),
        "computeEnvironmentOrder: no compute environment named nope",
    ),
    (
        "unknown-environment-arn",
        "CreateJobQueue",
        _queue("q", f"{ARN}compute-environment/nope"),
        "computeEnvironmentOrder: no compute environment named nope",
    ),
    (
        "repeated-order-value",
        "CreateJobQueue",
        {"jobQueueName": "q", "priority": 1, "computeEnvironmentOrder": _order("local") + _order("b")},
        "computeEnvironmentOrder: each order value may appear once",
    ),
    (
        "no-environments",
        "CreateJobQueue",
        {"jobQueueName": "q", "priority": 1},
        "computeEnvironmentOrder: required: the compute environments to use",
    ),
    (
        "unknown-scheduling-policy",
        "CreateJobQueue",
        _queue("q", "local", schedulingPolicyArn=f"{ARN}scheduling-policy/fair"),
        "schedulingPolicyArn: no scheduling policy named fair",
    ),
    (
        "fargate-queue-type",
        "CreateJobQueue",
        _queue("q", "local", jobQueueType="ECS_FARGATE"),
        "jobQueueType: localbatch runs ECS-style (container) queues only",
    ),
    (
        "missing-priority",
        "CreateJobQueue",
        {"jobQueueName": "q", "computeEnvironmentOrder": _order("local")},
        "invalid CreateJobQueue request: priority: required by AWS Batch, but missing",
    ),
    (
        "update-four-environments",
        "UpdateJobQueue",
        {"jobQueue": "default", "computeEnvironmentOrder": _order("local", "b", "c", "d")},
        "computeEnvironmentOrder: at most 3 entries, got 4",
    ),
    (
        "update-unknown-environment",
        "UpdateJobQueue",
        {"jobQueue": "default", "computeEnvironmentOrder": _order("nope")},
        "computeEnvironmentOrder: no compute environment named nope",
    ),
    (
        "update-scheduling-policy",
        "UpdateJobQueue",
        {"jobQueue": "default", "schedulingPolicyArn": f"{ARN}scheduling-policy/fair"},
        "schedulingPolicyArn: job queue default was created without one (FIFO); AWS never adds one later",
    ),
]


@pytest.mark.parametrize(
    ("operation", "params", "message"), [r[1:] for r in QUEUE_REFUSALS], ids=[r[0] for r in QUEUE_REFUSALS]
)
def test_job_queue_refusals_name_the_field_and_change_nothing(
    world: World, operation: str, params: dict[str, Any], message: str
) -> None:
    for name in ("b", "c", "d"):
        world.call("CreateComputeEnvironment", _environment(name))
    before = _infra(world)
    error = world.refused(operation, params)
    assert (error.code, error.status, error.message) == ("ClientException", 400, message)
    assert _infra(world) == before


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("CreateJobQueue", _queue("q", "local", state="PAUSED")),
        ("UpdateJobQueue", {"jobQueue": "default", "state": "PAUSED"}),
    ],
)
def test_an_unknown_queue_state_is_a_client_error(world: World, operation: str, params: dict[str, Any]) -> None:
    assert world.refusal_message(operation, params).startswith("state: ")


def test_describe_job_queues_returns_the_tags_given_at_create(world: World) -> None:
    world.call("CreateJobQueue", _queue("q", "local", tags={"team": "render"}))
    assert _queues(world, "q")[0].get("tags") == {"team": "render"}


# -- compute environments ------------------------------------------------------------------------------


def test_create_compute_environment_answers_name_and_arn_and_describe_shows_it(world: World) -> None:
    response = world.call(
        "CreateComputeEnvironment", _environment("gpu", 2, tags={MEMORY_TAG: "3000", GPUS_TAG: "0,1"})
    )
    assert response == {"computeEnvironmentName": "gpu", "computeEnvironmentArn": f"{ARN}compute-environment/gpu"}
    (environment,) = _environments(world, "gpu")
    assert environment["computeEnvironmentArn"] == f"{ARN}compute-environment/gpu"
    assert (environment["type"], environment["state"], environment["status"]) == ("MANAGED", "ENABLED", "VALID")
    assert environment["computeResources"]["maxvCpus"] == 2
    assert environment["computeResources"]["type"] == "EC2"
    assert environment["tags"] == {MEMORY_TAG: "3000", GPUS_TAG: "0,1"}
    assert world.store.get_compute_environment("gpu") == ComputeEnvironment("gpu", 2.0, 3000, ("0", "1"))
    assert world.notifier.calls == [("infrastructure_changed", None)]


@pytest.mark.parametrize(("max_vcpus", "memory"), [(1, "2048"), (2, "4096"), (8, "4096")])
def test_without_tags_memory_is_the_hosts_in_proportion_to_max_vcpus_and_no_gpus(
    world: World, max_vcpus: int, memory: str
) -> None:
    world.call("CreateComputeEnvironment", _environment("plain", max_vcpus))
    (environment,) = _environments(world, "plain")
    assert environment["tags"] == {MEMORY_TAG: memory}
    assert environment["computeResources"]["maxvCpus"] == max_vcpus
    stored = world.store.get_compute_environment("plain")
    assert stored is not None and stored.gpu_ids == ()


def test_create_compute_environment_accepts_spot_and_the_disabled_state(world: World) -> None:
    params = _environment("spot", 1, state="DISABLED")
    params["computeResources"]["type"] = "SPOT"
    world.call("CreateComputeEnvironment", params)
    assert _environments(world, "spot")[0]["state"] == "DISABLED"


def test_describe_compute_environments_all_by_name_by_arn_and_pages(world: World) -> None:
    for name in ("a", "m", "z"):
        world.call("CreateComputeEnvironment", _environment(name))
    assert [e["computeEnvironmentName"] for e in _environments(world)] == ["a", "local", "m", "z"]
    assert [e["computeEnvironmentName"] for e in _environments(world, "m")] == ["m"]
    by_arn = _environments(world, f"{ARN}compute-environment/z", "nope")
    assert [e["computeEnvironmentName"] for e in by_arn] == ["z"]
    seen: list[str] = []
    params: dict[str, Any] = {"maxResults": 3}
    while True:
        page = world.call("DescribeComputeEnvironments", params)
        seen += [e["computeEnvironmentName"] for e in page["computeEnvironments"]]
        if "nextToken" not in page:
            break
        params = {"maxResults": 3, "nextToken": page["nextToken"]}
    assert seen == ["a", "local", "m", "z"]


ENVIRONMENT_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    (
        "unmanaged",
        {"computeEnvironmentName": "u", "type": "UNMANAGED"},
        "type: localbatch runs MANAGED compute environments only",
    ),
    (
        "fargate",
        {"computeEnvironmentName": "f", "type": "MANAGED", "computeResources": {"type": "FARGATE", "maxvCpus": 4}},
        "computeResources.type: 'FARGATE': a local host stands in for EC2 or SPOT",
    ),
    (
        "fargate-spot",
        {"computeEnvironmentName": "f", "type": "MANAGED", "computeResources": {"type": "FARGATE_SPOT", "maxvCpus": 4}},
        "computeResources.type: 'FARGATE_SPOT': a local host stands in for EC2 or SPOT",
    ),
    (
        "managed-without-resources",
        {"computeEnvironmentName": "m", "type": "MANAGED"},
        "computeResources: required for a MANAGED compute environment",
    ),
    ("zero-vcpus", _environment("z", 0), "computeResources.maxvCpus: must be at least 1, got 0"),
    (
        "memory-tag-not-a-number",
        _environment("t", tags={MEMORY_TAG: "lots"}),
        "tags.localbatch:max-memory-mib: must be a whole number of MiB >= 4, got 'lots'",
    ),
    (
        "memory-tag-too-small",
        _environment("t", tags={MEMORY_TAG: "3"}),
        "tags.localbatch:max-memory-mib: must be a whole number of MiB >= 4, got '3'",
    ),
    ("duplicate-name", _environment("local"), "computeEnvironmentName: local already exists"),
    ("gpu-owned", _environment("g2", tags={GPUS_TAG: "1,2"}), "tags.localbatch:gpus: GPU(s) 1 already belong to gpu-a"),
    (
        "missing-max-vcpus",
        {"computeEnvironmentName": "m", "type": "MANAGED", "computeResources": {"type": "EC2"}},
        "invalid CreateComputeEnvironment request: computeResources.maxvCpus: required by AWS Batch, but missing",
    ),
]


@pytest.mark.parametrize(
    ("params", "message"), [r[1:] for r in ENVIRONMENT_REFUSALS], ids=[r[0] for r in ENVIRONMENT_REFUSALS]
)
def test_create_compute_environment_refusals_name_the_field_and_change_nothing(
    world: World, params: dict[str, Any], message: str
) -> None:
    world.call("CreateComputeEnvironment", _environment("gpu-a", tags={GPUS_TAG: "0,1"}))
    before = _infra(world)
    error = world.refused("CreateComputeEnvironment", params)
    assert (error.code, error.status, error.message) == ("ClientException", 400, message)
    assert _infra(world) == before


def test_gpu_ids_not_shared_with_another_environment_are_accepted(world: World) -> None:
    world.call("CreateComputeEnvironment", _environment("gpu-a", tags={GPUS_TAG: "0,1"}))
    world.call("CreateComputeEnvironment", _environment("gpu-b", tags={GPUS_TAG: "2, 3"}))
    assert _environments(world, "gpu-b")[0]["tags"][GPUS_TAG] == "2,3"


def test_a_gpu_the_host_does_not_have_is_refused(world: World) -> None:
    message = world.refusal_message("CreateComputeEnvironment", _environment("g", tags={GPUS_TAG: "7"}))
    assert message == "tags.localbatch:gpus: this host has no GPU 7 (GPUs: 0, 1, 2, 3)"


def test_names_aws_does_not_allow_are_refused(world: World) -> None:
    message = world.refusal_message("CreateComputeEnvironment", _environment("bad name!"))
    assert message == (
        "computeEnvironmentName: 'bad name!': 1 to 128 letters, digits, '-' and '_', starting with a letter or digit"
    )
    queue = {
        "jobQueueName": "bad name!",
        "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}],
    }
    assert world.refusal_message("CreateJobQueue", queue).startswith("jobQueueName: 'bad name!': ")


def test_a_gpu_listed_twice_in_one_environment_is_refused(world: World) -> None:
    message = world.refusal_message("CreateComputeEnvironment", _environment("g", tags={GPUS_TAG: "0,0"}))
    assert message.startswith("tags.localbatch:gpus: ")


def test_a_unicode_digit_memory_tag_is_a_client_error(world: World) -> None:
    message = world.refusal_message("CreateComputeEnvironment", _environment("t", tags={MEMORY_TAG: "²"}))
    assert message == "tags.localbatch:max-memory-mib: must be a whole number of MiB >= 4, got '²'"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("CreateComputeEnvironment", _environment("s", state="PAUSED")),
        ("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "PAUSED"}),
    ],
)
def test_an_unknown_environment_state_is_a_client_error(world: World, operation: str, params: dict[str, Any]) -> None:
    assert world.refusal_message(operation, params).startswith("state: ")


def test_describe_compute_environments_returns_the_tags_given_at_create(world: World) -> None:
    world.call("CreateComputeEnvironment", _environment("t", tags={"team": "render", MEMORY_TAG: "1024"}))
    assert _environments(world, "t")[0]["tags"] == {"team": "render", MEMORY_TAG: "1024"}


def test_update_compute_environment_changes_state_and_max_vcpus(world: World) -> None:
    response = world.call(
        "UpdateComputeEnvironment", {"computeEnvironment": f"{ARN}compute-environment/local", "state": "DISABLED"}
    )
    assert response == {"computeEnvironmentName": "local", "computeEnvironmentArn": f"{ARN}compute-environment/local"}
    (environment,) = _environments(world, "local")
    assert (environment["state"], environment["computeResources"]["maxvCpus"]) == ("DISABLED", 2)
    world.call("UpdateComputeEnvironment", {"computeEnvironment": "local", "computeResources": {"maxvCpus": 1}})
    (environment,) = _environments(world, "local")
    assert (environment["state"], environment["computeResources"]["maxvCpus"]) == ("DISABLED", 1)
    assert environment["tags"] == {MEMORY_TAG: "4096"}  # memory is not rescaled
    assert world.notifier.calls == [("infrastructure_changed", None)] * 2


def test_a_smaller_max_vcpus_makes_bigger_jobs_never_fit(world: World) -> None:
    world.call("UpdateComputeEnvironment", {"computeEnvironment": "local", "computeResources": {"maxvCpus": 1}})
    submit = {
        "jobName": "x",
        "jobQueue": "default",
        "jobDefinition": "render",
        "containerOverrides": {"resourceRequirements": [{"type": "VCPU", "value": "2"}]},
    }
    assert world.refusal_message("SubmitJob", submit) == (
        "resourceRequirements: the job can never run in job queue default: needs 2 vCPU; "
        "the largest compute environment of queue default (local) has 1 vCPU"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"computeEnvironment": "nope", "state": "DISABLED"}, "compute environment 'nope' does not exist"),
        (
            {"computeEnvironment": "local", "computeResources": {"maxvCpus": 0}},
            "computeResources.maxvCpus: must be at least 1, got 0",
        ),
    ],
)
def test_update_compute_environment_refusals(world: World, params: dict[str, Any], message: str) -> None:
    before = _infra(world)
    assert world.refusal_message("UpdateComputeEnvironment", params) == message
    assert _infra(world) == before


def test_delete_compute_environment_needs_it_disabled_and_in_no_queue(world: World) -> None:
    before = _infra(world)
    assert world.refusal_message("DeleteComputeEnvironment", {"computeEnvironment": "local"}) == (
        "computeEnvironment: local is ENABLED; disable it first"
    )
    assert _infra(world) == before

    world.call("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "DISABLED"})
    world.call("CreateJobQueue", _queue("second", "local"))
    before = _infra(world)
    assert world.refusal_message("DeleteComputeEnvironment", {"computeEnvironment": "local"}) == (
        "computeEnvironment: local is used by job queue(s) default, second"
    )
    assert _infra(world) == before

    world.call("CreateComputeEnvironment", _environment("other"))
    world.call("UpdateJobQueue", {"jobQueue": "default", "computeEnvironmentOrder": _order("other")})
    world.call("UpdateJobQueue", {"jobQueue": "second", "state": "DISABLED"})
    world.call("DeleteJobQueue", {"jobQueue": "second"})
    world.notifier.calls.clear()
    assert world.call("DeleteComputeEnvironment", {"computeEnvironment": f"{ARN}compute-environment/local"}) == {}
    assert _environments(world, "local") == []
    assert world.store.get_compute_environment("local") is None
    assert world.notifier.calls == [("infrastructure_changed", None)]
    assert world.refusal_message("DeleteComputeEnvironment", {"computeEnvironment": "local"}) == (
        "compute environment 'local' does not exist"
    )


def test_infrastructure_put_in_the_store_directly_is_served_the_same_way() -> None:
    world = make_world(host=Resources(4, 8192, 0), infrastructure=False)
    world.store.put_compute_environment(ComputeEnvironment("local", 2, 4096))
    world.store.put_job_queue(JobQueue("default", 1, ("local",)))
    world.register()
    job_id = world.submit()
    assert world.describe(job_id)["jobQueue"] == f"{ARN}job-queue/default"
    assert _environments(world)[0]["tags"] == {MEMORY_TAG: "4096"}
    assert _order_names(_queues(world)[0]) == [(1, "local")]
