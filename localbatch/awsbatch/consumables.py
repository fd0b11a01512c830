"""Consumable resources in AWS's words: the request bodies of Create/Update/List* read into the
core's terms, and the resource, its quantities and the jobs that need it rendered back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from localbatch.core.consumables import ConsumableResource, Need, Operation, Quantities, ResourceType
from localbatch.core.jobs import Job, JobStatus
from localbatch.core.naming import Arns, resource_name
from localbatch.errors import InvalidRequest, Problem


def new_resource(body: Mapping[str, Any]) -> ConsumableResource:
    """CreateConsumableResource's body (totalQuantity absent means 0; resourceType absent
    REPLENISHABLE, as AWS)."""
    return ConsumableResource(
        name=str(body["consumableResourceName"]),
        total_quantity=body.get("totalQuantity") or 0,
        resource_type=_enum(ResourceType, body.get("resourceType") or "REPLENISHABLE", "resourceType"),
        tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
    )


def update(body: Mapping[str, Any]) -> tuple[Operation, int]:
    """UpdateConsumableResource's operation (SET when absent) and quantity (required here:
    a change of nothing is a caller's mistake)."""
    if body.get("quantity") is None:
        raise InvalidRequest([Problem("quantity", "required: the new total, or how much to ADD or REMOVE")])
    return _enum(Operation, body.get("operation") or "SET", "operation"), int(body["quantity"])


def needs_override(body: Mapping[str, Any]) -> tuple[Need, ...] | None:
    """SubmitJob's ``consumableResourcePropertiesOverride``: None when absent."""
    override = body.get("consumableResourcePropertiesOverride")
    if override is None:
        return None
    problems = consumable_list_problems(override, "consumableResourcePropertiesOverride")
    if problems:
        raise InvalidRequest(problems)
    return tuple((name, quantity) for name, quantity in consumable_list(override))


def consumable_list(properties: Mapping[str, Any] | None) -> list[tuple[str, int]]:
    """``consumableResourceList`` as (name, quantity) pairs, ARNs read as names."""
    listed = (properties or {}).get("consumableResourceList") or []
    return [(resource_name(str(e.get("consumableResource")), "consumable-resource"), e.get("quantity")) for e in listed]


def consumable_list_problems(properties: Mapping[str, Any] | None, path: str) -> list[Problem]:
    """What is missing or repeated in a ``consumableResourceList`` (the names and quantities
    themselves are checked with the rest of the definition)."""
    problems = []
    seen = set()
    for index, entry in enumerate((properties or {}).get("consumableResourceList") or []):
        at = f"{path}.consumableResourceList[{index}]"
        for key in ("consumableResource", "quantity"):
            if entry.get(key) is None:
                problems.append(Problem(f"{at}.{key}", "required"))
        name = resource_name(str(entry.get("consumableResource")), "consumable-resource")
        if entry.get("consumableResource") is not None and name in seen:
            problems.append(Problem(f"{at}.consumableResource", f"{name!r} is listed twice"))
        seen.add(name)
    return problems


def properties(needs: Sequence[Need]) -> dict[str, Any]:
    """``consumableResourceProperties`` as DescribeJobs and job definitions show it."""
    return {"consumableResourceList": [{"consumableResource": name, "quantity": q} for name, q in needs]}


def name_filter(body: Mapping[str, Any]) -> str | None:
    """ListConsumableResources' CONSUMABLE_RESOURCE_NAME filter, the one AWS has."""
    found = None
    for index, entry in enumerate(body.get("filters") or []):
        if entry.get("name") != "CONSUMABLE_RESOURCE_NAME":
            text = f"{entry.get('name')!r} is not a filter; allowed: CONSUMABLE_RESOURCE_NAME"
            raise InvalidRequest([Problem(f"filters[{index}].name", text)])
        found = _one_value(entry, index)
    return found


def job_filters(body: Mapping[str, Any]) -> tuple[tuple[JobStatus, ...], str | None]:
    """ListJobsByConsumableResource's JOB_STATUS (any of its values) and JOB_NAME filters."""
    statuses: tuple[JobStatus, ...] = ()
    name = None
    for index, entry in enumerate(body.get("filters") or []):
        kind = entry.get("name")
        if kind == "JOB_STATUS":
            values = entry.get("values") or []
            statuses = tuple(_enum(JobStatus, v, f"filters[{index}].values") for v in values)
        elif kind == "JOB_NAME":
            name = _one_value(entry, index)
        else:
            text = f"{kind!r} is not a filter; allowed: JOB_STATUS, JOB_NAME"
            raise InvalidRequest([Problem(f"filters[{index}].name", text)])
    return statuses, name


def detail(found: Quantities, arns: Arns) -> dict[str, Any]:
    """DescribeConsumableResource's answer."""
    resource = found.resource
    return {
        **summary(found, arns),
        "availableQuantity": found.available,
        "createdAt": resource.created_at,
        "tags": dict(resource.tags),
    }


def summary(found: Quantities, arns: Arns) -> dict[str, Any]:
    """ListConsumableResources' entry."""
    resource = found.resource
    return {
        "consumableResourceName": resource.name,
        "consumableResourceArn": arns.consumable_resource(resource.name),
        "totalQuantity": resource.total_quantity,
        "inUseQuantity": found.in_use,
        "resourceType": resource.resource_type.value,
    }


def job_entry(job: Job, resource: str, arns: Arns) -> dict[str, Any]:
    """ListJobsByConsumableResource's entry: the job, and how much of ``resource`` it needs."""
    entry: dict[str, Any] = {
        "jobArn": arns.job(job.job_id),
        "jobQueueArn": arns.job_queue(job.job_queue),
        "jobName": job.job_name,
        "jobDefinitionArn": arns.job_definition(job.job_definition_name, job.job_definition_revision),
        "jobStatus": job.status.value,
        "quantity": next(q for n, q in job.consumable_resources if n == resource),
        "createdAt": job.created_at,
        "consumableResourceProperties": properties(job.consumable_resources),
    }
    optional = {"shareIdentifier": job.share_identifier, "statusReason": job.status_reason, "startedAt": job.started_at}
    entry.update({key: value for key, value in optional.items() if value is not None})
    return entry


def _one_value(entry: Mapping[str, Any], index: int) -> str:
    values = entry.get("values") or []
    if len(values) != 1:
        raise InvalidRequest([Problem(f"filters[{index}].values", f"exactly one value, got {len(values)}")])
    return str(values[0])


def _enum(kind: Any, value: object, field: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidRequest([Problem(field, f"{value!r} is not allowed; allowed: {allowed}")]) from None
