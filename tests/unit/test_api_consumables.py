"""The consumable-resource operations through the API dispatcher, on the in-memory store: AWS's
shapes (World.call checks every answer against botocore's output model), the quantities a
running job holds, and the refusals, each naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.core.jobs import JobStatus
from tests.fakes.api_world import ARN, RENDER, World, make_world

LICENCES = f"{ARN}consumable-resource/licences"


@pytest.fixture
def world() -> World:
    world = make_world()
    world.call("CreateConsumableResource", {"consumableResourceName": "licences", "totalQuantity": 3})
    world.call(
        "CreateConsumableResource",
        {"consumableResourceName": "tokens", "totalQuantity": 10, "resourceType": "NON_REPLENISHABLE"},
    )
    needs = [
        {"consumableResource": "licences", "quantity": 2},
        {"consumableResource": LICENCES.replace("licences", "tokens"), "quantity": 1},
    ]
    world.register(consumableResourceProperties={"consumableResourceList": needs})
    return world


def refused(world: World, operation: str, params: dict[str, Any]) -> str:
    before = world.snapshot()
    message = world.refusal_message(operation, params)
    assert world.snapshot() == before
    return message


def test_describe_shows_total_in_use_and_available(world: World) -> None:
    job_id = world.submit("a")
    assert world.describe(job_id)["consumableResourceProperties"] == {
        "consumableResourceList": [
            {"consumableResource": "licences", "quantity": 2},
            {"consumableResource": "tokens", "quantity": 1},  # an ARN in the definition reads as the name
        ]
    }
    world.move(job_id, JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING)
    found = world.call("DescribeConsumableResource", {"consumableResource": LICENCES})
    assert (found["totalQuantity"], found["inUseQuantity"], found["availableQuantity"]) == (3, 2, 1)
    assert found["resourceType"] == "REPLENISHABLE" and found["consumableResourceArn"] == LICENCES
    world.move(job_id, JobStatus.SUCCEEDED)
    licences = world.call("DescribeConsumableResource", {"consumableResource": "licences"})
    tokens = world.call("DescribeConsumableResource", {"consumableResource": "tokens"})
    assert (licences["totalQuantity"], licences["inUseQuantity"]) == (3, 0)  # given back
    assert (tokens["totalQuantity"], tokens["inUseQuantity"]) == (9, 0)  # used up


def test_update_sets_adds_and_removes(world: World) -> None:
    def update(**params: Any) -> int:
        answer = world.call("UpdateConsumableResource", {"consumableResource": "licences", **params})
        return int(answer["totalQuantity"])

    assert update(operation="ADD", quantity=2) == 5
    assert update(operation="REMOVE", quantity=4) == 1
    assert update(quantity=7) == 7  # SET when no operation is given
    message = refused(
        world, "UpdateConsumableResource", {"consumableResource": "licences", "operation": "REMOVE", "quantity": 8}
    )
    assert message == "quantity: cannot REMOVE 8: totalQuantity is 7"
    message = refused(
        world, "UpdateConsumableResource", {"consumableResource": "licences", "operation": "HALVE", "quantity": 1}
    )
    assert message == "operation: 'HALVE' is not allowed; allowed: SET, ADD, REMOVE"


def test_list_filters_by_name_case_insensitively_and_pages(world: World) -> None:
    def names(**params: Any) -> list[str]:
        return [
            r["consumableResourceName"] for r in world.call("ListConsumableResources", params)["consumableResources"]
        ]

    assert names() == ["licences", "tokens"]
    assert names(filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["LIC*"]}]) == ["licences"]
    assert names(filters=[{"name": "CONSUMABLE_RESOURCE_NAME", "values": ["lic"]}]) == []
    first = world.call("ListConsumableResources", {"maxResults": 1})
    assert [r["consumableResourceName"] for r in first["consumableResources"]] == ["licences"]
    assert names(maxResults=1, nextToken=first["nextToken"]) == ["tokens"]


def test_list_jobs_by_consumable_resource_with_filters_and_paging(world: World) -> None:
    ids = []
    for i in range(3):
        world.clock.advance(1)
        ids.append(world.submit(f"job-{i}"))
    world.submit("plain", consumableResourcePropertiesOverride={"consumableResourceList": []})
    world.move(ids[0], JobStatus.RUNNABLE)

    def listed(**params: Any) -> list[str]:
        answer = world.call("ListJobsByConsumableResource", {"consumableResource": "licences", **params})
        return [j["jobArn"].rsplit("/", 1)[1] for j in answer["jobs"]]

    assert listed() == ids[::-1]  # newest first; the job that overrode its needs away is not there
    assert listed(filters=[{"name": "JOB_STATUS", "values": ["RUNNABLE"]}]) == [ids[0]]
    assert listed(filters=[{"name": "JOB_NAME", "values": ["job-1"]}]) == [ids[1]]
    page = world.call("ListJobsByConsumableResource", {"consumableResource": "licences", "maxResults": 2})
    assert len(page["jobs"]) == 2 and page["jobs"][0]["quantity"] == 2
    assert listed(maxResults=2, nextToken=page["nextToken"]) == [ids[0]]


def test_submit_may_override_the_needs_and_must_name_resources_that_exist(world: World) -> None:
    override = {"consumableResourceList": [{"consumableResource": "tokens", "quantity": 5}]}
    job_id = world.submit("x", consumableResourcePropertiesOverride=override)
    assert world.describe(job_id)["consumableResourceProperties"] == override

    def submit_needing(needs: list[dict[str, Any]]) -> str:
        body = {"jobName": "y", "jobQueue": "default", "jobDefinition": "render"}
        return refused(
            world, "SubmitJob", {**body, "consumableResourcePropertiesOverride": {"consumableResourceList": needs}}
        )

    message = submit_needing([{"consumableResource": "gone", "quantity": 1}])
    assert message == "consumableResourcePropertiesOverride: no consumable resource named gone"
    message = submit_needing([{"consumableResource": "tokens", "quantity": 0}])
    assert "consumableResourcePropertiesOverride.consumableResourceList[0]: quantity must be 1 to" in message


def test_a_definition_naming_an_unknown_resource_registers_but_its_jobs_are_refused(world: World) -> None:
    world.register(
        jobDefinitionName="later",
        consumableResourceProperties={
            "consumableResourceList": [{"consumableResource": "gpus-licence", "quantity": 1}]
        },
    )
    message = refused(world, "SubmitJob", {"jobName": "y", "jobQueue": "default", "jobDefinition": "later"})
    assert message == "jobDefinition: no consumable resource named gpus-licence"


def test_create_and_delete_refusals(world: World) -> None:
    assert refused(world, "CreateConsumableResource", {"consumableResourceName": "licences"}) == (
        "name: consumable resource licences already exists"
    )
    assert "letters, digits, hyphens and underscores only" in refused(
        world, "CreateConsumableResource", {"consumableResourceName": "no spaces"}
    )
    assert "not allowed; allowed: REPLENISHABLE, NON_REPLENISHABLE" in refused(
        world, "CreateConsumableResource", {"consumableResourceName": "x", "resourceType": "FOREVER"}
    )
    job_id = world.submit("holder")
    message = refused(world, "DeleteConsumableResource", {"consumableResource": "licences"})
    assert message == f"consumableResource: consumable resource licences is needed by unfinished job(s) {job_id}"
    world.call("CancelJob", {"jobId": job_id, "reason": "done"})
    world.move(job_id, JobStatus.FAILED)
    world.call("DeleteConsumableResource", {"consumableResource": "licences"})
    assert "does not exist" in refused(world, "DescribeConsumableResource", {"consumableResource": "licences"})


def test_consumable_resources_take_tags(world: World) -> None:
    world.call("TagResource", {"resourceArn": LICENCES, "tags": {"team": "vfx"}})
    assert world.call("ListTagsForResource", {"resourceArn": LICENCES})["tags"] == {"team": "vfx"}
    assert world.call("DescribeConsumableResource", {"consumableResource": "licences"})["tags"] == {"team": "vfx"}


def test_the_definition_keeps_its_needs_through_describe(world: World) -> None:
    described = world.call("DescribeJobDefinitions", {"jobDefinitionName": "render"})["jobDefinitions"][0]
    assert described["consumableResourceProperties"]["consumableResourceList"][0] == {
        "consumableResource": "licences",
        "quantity": 2,
    }
    assert RENDER["jobDefinitionName"] == described["jobDefinitionName"]
