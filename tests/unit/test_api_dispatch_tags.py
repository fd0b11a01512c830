"""Tags, the bulk stop operations and GetJobQueueSnapshot through the daemon's API, in-process
(``tests/fakes/api_world.py``): requests as botocore sends them (tag ARNs %2F-encoded in one path
segment), AWS's error shape for refusals, botocore's output shape for answers."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.awsbatch.infra import MEMORY_TAG
from localbatch.core.jobs import JobStatus
from localbatch.core.scheduler import FrontEntry
from tests.fakes.api_world import ARN, T0, World, make_world


@pytest.fixture
def world() -> World:
    world = make_world()
    world.register()
    return world


def tags(world: World, arn: str) -> dict[str, str]:
    return world.call("ListTagsForResource", {"resourceArn": arn})["tags"]  # type: ignore[no-any-return]


def described_tags(world: World, kind: str, arn: str) -> dict[str, Any]:
    """The tags the resource's Describe answer shows."""
    if kind == "job":
        return world.describe(arn.rpartition("/")[2]).get("tags") or {}
    if kind == "job-definition":
        (found,) = world.call("DescribeJobDefinitions", {"jobDefinitions": [arn]})["jobDefinitions"]
    elif kind == "job-queue":
        (found,) = world.call("DescribeJobQueues", {"jobQueues": [arn]})["jobQueues"]
    elif kind == "compute-environment":
        (found,) = world.call("DescribeComputeEnvironments", {"computeEnvironments": [arn]})["computeEnvironments"]
    else:
        (found,) = world.call("DescribeSchedulingPolicies", {"arns": [arn]})["schedulingPolicies"]
    return found.get("tags") or {}  # type: ignore[no-any-return]


# -- tags -----------------------------------------------------------------------------------------


def test_every_taggable_resource_tags_untags_and_shows_it_in_describe(world: World) -> None:
    job_id = world.submit(tags={"team": "render"})
    policy = world.call("CreateSchedulingPolicy", {"name": "fair", "fairsharePolicy": {}})["arn"]
    resources = {
        "job": f"{ARN}job/{job_id}",
        "job-definition": f"{ARN}job-definition/render:1",
        "job-queue": f"{ARN}job-queue/default",
        "compute-environment": f"{ARN}compute-environment/local",
        "scheduling-policy": policy,
    }
    for kind, arn in resources.items():
        before = tags(world, arn)
        world.call("TagResource", {"resourceArn": arn, "tags": {"cost": "42", "team": "ops"}})
        assert tags(world, arn) == {**before, "cost": "42", "team": "ops"}, kind
        assert described_tags(world, kind, arn) == tags(world, arn), kind
        world.call("UntagResource", {"resourceArn": arn, "tagKeys": ["team", "never-set"]})
        assert tags(world, arn) == {k: v for k, v in {**before, "cost": "42"}.items() if k != "team"}, kind
        assert described_tags(world, kind, arn) == tags(world, arn), kind


def test_a_compute_environment_lists_its_localbatch_settings_but_they_are_not_tags_to_change(world: World) -> None:
    arn = f"{ARN}compute-environment/local"
    assert tags(world, arn)[MEMORY_TAG] == "4096"
    message = world.refusal_message("TagResource", {"resourceArn": arn, "tags": {MEMORY_TAG: "1"}})
    assert MEMORY_TAG in message and "local" in message
    assert world.refusal_message("UntagResource", {"resourceArn": arn, "tagKeys": [MEMORY_TAG]}) == message


def test_a_job_keeps_tags_the_control_loop_never_saw(world: World) -> None:
    job_id = world.submit()
    world.call("TagResource", {"resourceArn": f"{ARN}job/{job_id}", "tags": {"cost": "42"}})
    world.move(job_id, JobStatus.PENDING, JobStatus.RUNNABLE)  # saves copies read before the tag
    assert world.describe(job_id)["tags"] == {"cost": "42"}


@pytest.mark.parametrize(
    ("arn", "words"),
    [
        (f"{ARN}job-queue/nope", ["job-queue/nope", "does not exist"]),
        (f"{ARN}job/00000000-0000-4000-8000-999999999999", ["does not exist"]),
        (f"{ARN}job-definition/render:9", ["render:9", "does not exist"]),
        (f"{ARN}job-definition/render", ["no revision"]),
        (f"{ARN}job/parent-id:3", ["array job's child", "parent"]),
        (f"{ARN}job/parent-id#0", ["node", "parent"]),
        (f"{ARN}consumable-resource/licenses", ["consumable-resource"]),
        ("arn:aws:batch:eu-west-1:000000000000:job-queue/default", ["not an AWS Batch ARN of this endpoint"]),
        ("default", ["not an AWS Batch ARN"]),
    ],
)
def test_an_arn_that_names_nothing_taggable_is_a_client_exception_naming_it(
    world: World, arn: str, words: list[str]
) -> None:
    before = world.snapshot()
    for operation, params in (
        ("ListTagsForResource", {}),
        ("TagResource", {"tags": {"a": "b"}}),
        ("UntagResource", {"tagKeys": ["a"]}),
    ):
        message = world.refusal_message(operation, {"resourceArn": arn, **params})
        assert all(word in message for word in words), message
    assert world.snapshot() == before


def test_tag_rules_are_aws_rules(world: World) -> None:
    arn = f"{ARN}job-queue/default"
    assert "reserved" in world.refusal_message("TagResource", {"resourceArn": arn, "tags": {"aws:owner": "x"}})
    assert "reserved" in world.refusal_message("UntagResource", {"resourceArn": arn, "tagKeys": ["AWS:owner"]})
    world.call("TagResource", {"resourceArn": arn, "tags": {f"k{i}": "v" for i in range(50)}})
    message = world.refusal_message("TagResource", {"resourceArn": arn, "tags": {"one-more": "v"}})
    assert "51 tags" in message
    world.call("TagResource", {"resourceArn": arn, "tags": {"k0": "replaced"}})  # replacing adds none
    assert tags(world, arn)["k0"] == "replaced" and len(tags(world, arn)) == 50


# -- CancelJobs, TerminateJobs ----------------------------------------------------------------------


def test_cancel_jobs_stops_each_and_counts_unknown_ids_as_successful(world: World) -> None:
    ids = [world.submit(f"j{i}") for i in range(3)]
    answer = world.call("CancelJobs", {"jobs": [*ids, "no-such-job"], "reason": "bulk"})
    assert answer == {"successful": [*ids, "no-such-job"], "errors": []}
    for job_id in ids:
        assert world.store.get_job(job_id).stop_request.reason == "bulk"  # type: ignore[union-attr]
    assert [c for c in world.notifier.calls if c[0] == "stop_requested"] == [("stop_requested", i) for i in ids]


def test_terminate_jobs_stops_a_running_job(world: World) -> None:
    job_id = world.submit()
    world.move(job_id, JobStatus.PENDING, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    assert world.call("TerminateJobs", {"jobs": [job_id], "reason": "enough"})["successful"] == [job_id]
    stored = world.store.get_job(job_id)
    assert stored is not None and stored.stop_request is not None and stored.stop_request.kind.value == "TERMINATE"


@pytest.mark.parametrize("operation", ["CancelJobs", "TerminateJobs"])
def test_more_than_50_ids_is_refused_whole(world: World, operation: str) -> None:
    ids = [world.submit(f"j{i}") for i in range(2)]
    before = world.snapshot()
    message = world.refusal_message(operation, {"jobs": ids * 26, "reason": "r"})
    assert "at most 50" in message
    assert world.snapshot() == before


# -- GetJobQueueSnapshot ---------------------------------------------------------------------------


def test_queue_snapshot_lists_the_front_as_the_scheduler_last_ordered_it(world: World) -> None:
    first, second = world.submit("a"), world.submit("b")
    world.live.fronts = {"default": (FrontEntry(second, T0 + 5), FrontEntry(first, T0 + 7))}
    world.live.fronts_at = T0 + 9
    answer = world.call("GetJobQueueSnapshot", {"jobQueue": f"{ARN}job-queue/default"})
    assert answer == {
        "frontOfQueue": {
            "jobs": [
                {"jobArn": f"{ARN}job/{second}", "earliestTimeAtPosition": T0 + 5},
                {"jobArn": f"{ARN}job/{first}", "earliestTimeAtPosition": T0 + 7},
            ],
            "lastUpdatedAt": T0 + 9,
        }
    }


def test_queue_snapshot_before_any_plan_is_empty_as_of_now(world: World) -> None:
    answer = world.call("GetJobQueueSnapshot", {"jobQueue": "default"})
    assert answer == {"frontOfQueue": {"jobs": [], "lastUpdatedAt": world.clock.now_ms()}}


def test_queue_snapshot_of_an_unknown_queue_is_a_client_exception(world: World) -> None:
    assert "nope" in world.refusal_message("GetJobQueueSnapshot", {"jobQueue": "nope"})
