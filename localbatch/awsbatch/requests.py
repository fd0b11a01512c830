"""AWS request bodies into localbatch's own values: SubmitJob, ListJobs, and the references
(name, name:revision, ARN) that many operations take.

botocore's model has already checked each body's shape (types, required members) before
these functions run; what they check is what the model cannot say: resource values,
reserved names, the retry rules' syntax. Every problem names the request's field in
camelCase, as the caller wrote it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localbatch import jobdef
from localbatch.awsbatch import consumables
from localbatch.awsbatch.jobdefinition import retry_strategy
from localbatch.core import arrays
from localbatch.core.infra import share_identifier_problem
from localbatch.core.jobs import Dependency, DependencyType, JobStatus
from localbatch.core.lifecycle import JobOverrides, check_overrides
from localbatch.core.multinode import NodeOverrides, NodePropertyOverride
from localbatch.core.naming import AWS_NAME, resource_name
from localbatch.core.resources import AWS_INT_MAX
from localbatch.core.retry import RetryStrategy
from localbatch.errors import InvalidRequest, JobDefinitionError, Problem

MAX_JOB_NAME = 128
_CAMEL = {
    "evaluate_on_exit": "evaluateOnExit",
    "on_exit_code": "onExitCode",
    "on_reason": "onReason",
    "on_status_reason": "onStatusReason",
}
# Paths of check_overrides' problems -> the request fields that set them.
_OVERRIDE_FIELDS = {
    "vcpus": "containerOverrides.resourceRequirements[VCPU]",
    "memory_mib": "containerOverrides.resourceRequirements[MEMORY]",
    "gpus": "containerOverrides.resourceRequirements[GPU]",
    "command": "containerOverrides.command",
    "retry.attempts": "retryStrategy.attempts",
    "timeout": "timeout.attemptDurationSeconds",
    "scheduling_priority": "schedulingPriorityOverride",
}


@dataclass(frozen=True)
class SubmitRequest:
    job_name: str
    job_queue: str  # name or ARN
    job_definition: str  # name, name:revision or ARN
    overrides: JobOverrides
    propagate_tags: bool | None = None
    array_size: int | None = None
    depends_on: tuple[Dependency, ...] = ()
    share_identifier: str | None = None
    node_overrides: NodeOverrides | None = None  # multi-node parallel jobs only


def submit_request(body: Mapping[str, Any]) -> SubmitRequest:
    """SubmitJob's body, checked. Raises InvalidRequest listing every problem."""
    problems: list[Problem] = []
    name = str(body["jobName"])
    if not AWS_NAME.fullmatch(name):
        problems.append(
            Problem(
                "jobName",
                f"{name!r} is not a job name: up to {MAX_JOB_NAME} letters, digits, '-' and '_', "
                "starting with a letter or digit",
            )
        )
    for part in ("eksPropertiesOverride", "ecsPropertiesOverride"):
        if body.get(part):
            problems.append(Problem(part, "not supported by localbatch yet"))
    container = body.get("containerOverrides") or {}
    for legacy in ("vcpus", "memory"):
        if container.get(legacy) is not None:
            problems.append(
                Problem(
                    f"containerOverrides.{legacy}",
                    "AWS ignores it for a job definition with resourceRequirements (as every localbatch "
                    "definition has): use containerOverrides.resourceRequirements",
                )
            )
    if container.get("instanceType"):
        problems.append(Problem("containerOverrides.instanceType", "only for multi-node parallel jobs"))
    vcpus, memory_mib, gpus, resource_problems = _resources(container.get("resourceRequirements") or [])
    problems += resource_problems
    environment, env_problems = _environment(container.get("environment") or [])
    problems += env_problems
    retry = None
    if body.get("retryStrategy") is not None:
        retry, retry_problems = _retry(body["retryStrategy"])
        problems += retry_problems
    timeout = body.get("timeout") or {}
    needs = None
    try:
        needs = consumables.needs_override(body)
    except InvalidRequest as exc:
        problems += exc.problems
    overrides = JobOverrides(
        parameters={str(k): str(v) for k, v in (body.get("parameters") or {}).items()},
        command=tuple(container["command"]) if container.get("command") is not None else None,
        environment=environment,
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        retry_strategy=retry,
        timeout_s=timeout.get("attemptDurationSeconds"),
        tags={str(k): str(v) for k, v in (body.get("tags") or {}).items()},
        scheduling_priority=body.get("schedulingPriorityOverride"),
        consumable_resources=needs,
    )
    problems += [_as_request_field(p) for p in check_overrides(overrides)]
    node_overrides = None
    if body.get("nodeOverrides") is not None:
        node_overrides, node_problems = _node_overrides(body["nodeOverrides"])
        problems += node_problems
    array_size = (body.get("arrayProperties") or {}).get("size")
    if array_size is not None and (why := arrays.size_problem(array_size)) is not None:
        problems.append(Problem("arrayProperties.size", why))
    depends_on, dependency_problems = _dependencies(body.get("dependsOn") or [])
    problems += dependency_problems
    share = body.get("shareIdentifier")
    if share is not None and (why := share_identifier_problem(share)) is not None:
        problems.append(Problem("shareIdentifier", why))
    if problems:
        raise InvalidRequest(problems)
    return SubmitRequest(
        job_name=name,
        job_queue=str(body["jobQueue"]),
        job_definition=str(body["jobDefinition"]),
        overrides=overrides,
        propagate_tags=body.get("propagateTags"),
        array_size=array_size,
        depends_on=depends_on,
        share_identifier=share,
        node_overrides=node_overrides,
    )


def _node_overrides(body: Mapping[str, Any]) -> tuple[NodeOverrides, list[Problem]]:
    """``nodeOverrides``: the node count, and container overrides per node range. Ranges are
    checked against the job definition when the job is submitted (``core.multinode.resolve``)."""
    problems: list[Problem] = []
    entries = []
    for index, entry in enumerate(body.get("nodePropertyOverrides") or []):
        path = f"nodeOverrides.nodePropertyOverrides[{index}]"
        for part in ("ecsPropertiesOverride", "eksPropertiesOverride", "consumableResourcePropertiesOverride"):
            if entry.get(part):
                problems.append(Problem(f"{path}.{part}", "not supported by localbatch"))
        if entry.get("instanceTypes"):
            problems.append(Problem(f"{path}.instanceTypes", "not supported: every node runs on this one host"))
        container = entry.get("containerOverrides") or {}
        prefix = f"{path}.containerOverrides"
        for legacy in ("vcpus", "memory", "instanceType"):
            if container.get(legacy) is not None:
                problems.append(Problem(f"{prefix}.{legacy}", "not supported: use resourceRequirements"))
        vcpus, memory_mib, gpus, resource_problems = _resources(container.get("resourceRequirements") or [], prefix)
        environment, env_problems = _environment(container.get("environment") or [], prefix)
        problems += resource_problems + env_problems
        overrides = JobOverrides(
            command=tuple(container["command"]) if container.get("command") is not None else None,
            environment=environment,
            vcpus=vcpus,
            memory_mib=memory_mib,
            gpus=gpus,
        )
        entries.append(NodePropertyOverride(str(entry["targetNodes"]), overrides))
    return NodeOverrides(body.get("numNodes"), tuple(entries)), problems


def _dependencies(entries: list[Mapping[str, Any]]) -> tuple[tuple[Dependency, ...], list[Problem]]:
    found: list[Dependency] = []
    problems = []
    for i, entry in enumerate(entries):
        kind = entry.get("type")
        try:
            found.append(Dependency(entry.get("jobId") or None, None if kind is None else DependencyType(kind)))
        except ValueError:
            allowed = ", ".join(t.value for t in DependencyType)
            problems.append(Problem(f"dependsOn[{i}].type", f"{kind!r}: allowed: {allowed}"))
    return tuple(found), problems


def _resources(
    requirements: list[Mapping[str, Any]], prefix: str = "containerOverrides"
) -> tuple[float | None, int | None, int | None, list[Problem]]:
    values: dict[str, float | int] = {}
    problems = []
    for i, requirement in enumerate(requirements):
        kind, text = str(requirement["type"]), str(requirement["value"])
        path = f"{prefix}.resourceRequirements[{i}].value"
        if kind not in ("VCPU", "MEMORY", "GPU"):
            problems.append(
                Problem(f"{prefix}.resourceRequirements[{i}].type", f"{kind!r}: allowed: VCPU, MEMORY, GPU")
            )
            continue
        if kind in values:
            problems.append(Problem(f"{prefix}.resourceRequirements[{i}].type", f"{kind} is given more than once"))
            continue
        try:
            values[kind] = float(text) if kind == "VCPU" else int(text)
        except ValueError:
            wanted = "a number" if kind == "VCPU" else "a whole number"
            problems.append(Problem(path, f"{kind} must be {wanted} (as a string), got {text!r}"))
    vcpus = values.get("VCPU")
    memory = values.get("MEMORY")
    gpus = values.get("GPU")
    return (
        None if vcpus is None else float(vcpus),
        None if memory is None else int(memory),
        None if gpus is None else int(gpus),
        problems,
    )


def _environment(
    pairs: list[Mapping[str, Any]], prefix: str = "containerOverrides"
) -> tuple[dict[str, str], list[Problem]]:
    environment: dict[str, str] = {}
    problems = []
    for i, pair in enumerate(pairs):
        name = pair.get("name")
        if not name:
            problems.append(Problem(f"{prefix}.environment[{i}].name", "required"))
            continue
        environment[str(name)] = str(pair.get("value", ""))
    return environment, problems


def _retry(strategy: Mapping[str, Any]) -> tuple[RetryStrategy | None, list[Problem]]:
    table: dict[str, Any] = {}
    if "attempts" in strategy:
        table["attempts"] = strategy["attempts"]
    if strategy.get("evaluateOnExit"):
        snake = {camel: snake for snake, camel in _CAMEL.items()}
        table["evaluate_on_exit"] = [
            {snake.get(k, k): v for k, v in rule.items()} for rule in strategy["evaluateOnExit"]
        ]
    try:
        return jobdef.parse_retry(table, "retryStrategy"), []
    except JobDefinitionError as exc:
        return None, [Problem(_camel_path("retryStrategy." + p.path), p.message) for p in exc.problems]


def _camel_path(path: str) -> str:
    for snake, camel in _CAMEL.items():
        path = path.replace(snake, camel)
    return path


def _as_request_field(problem: Problem) -> Problem:
    head, _, rest = problem.path.partition(".")
    if head == "environment" and rest:
        return Problem(f"containerOverrides.environment[{rest}]", problem.message)
    if head.startswith("consumable_resources"):
        at = head.removeprefix("consumable_resources")
        return Problem(f"consumableResourcePropertiesOverride.consumableResourceList{at}", problem.message)
    return Problem(_OVERRIDE_FIELDS.get(problem.path, problem.path), problem.message)


# -- references --------------------------------------------------------------------------------


def aws_name_problem(field: str, name: str) -> Problem | None:
    """AWS's rule for queue, compute environment and definition names."""
    if AWS_NAME.fullmatch(name):
        return None
    return Problem(field, f"{name!r}: 1 to 128 letters, digits, '-' and '_', starting with a letter or digit")


def job_definition_ref(ref: str) -> tuple[str, int | None]:
    """(name, revision or None for the latest ACTIVE) from name, name:revision or an ARN.
    Raises InvalidRequest for a revision beyond AWS's Integer (no store could hold it)."""
    text = resource_name(ref, "job-definition")
    name, sep, revision = text.rpartition(":")
    if sep and is_digits(revision) and name:
        if int(revision) > AWS_INT_MAX:
            raise InvalidRequest([Problem("", f"{text}: a revision is at most {AWS_INT_MAX}")])
        return name, int(revision)
    return text, None


def is_digits(text: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is True, but ``int("²")`` fails)."""
    return text.isascii() and text.isdigit()


# AWS's Long is 64-bit: the largest epoch milliseconds a filter may name.
AWS_LONG_MAX = 2**63 - 1


# -- ListJobs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListRequest:
    job_queue: str | None
    statuses: tuple[JobStatus, ...]
    name_prefix: str | None
    created_after: int | None
    created_before: int | None
    exact_name: str | None
    limit: int
    after: tuple[int, str] | None
    array_job_id: str | None = None  # list this array's children (job_queue is None)
    multi_node_job_id: str | None = None  # list this multi-node job's nodes (job_queue is None)
    job_definition: str | None = None  # JOB_DEFINITION filter: a name, or a prefix (definition_prefix)
    job_definition_revision: int | None = None
    job_definition_prefix: bool = False


def list_request(body: Mapping[str, Any]) -> ListRequest:
    """ListJobs' body with AWS's rules: one of jobQueue / arrayJobId / multiNodeJobId; no
    status and no filter lists RUNNING jobs only; with a filter the status is ignored."""
    scopes = [k for k in ("jobQueue", "arrayJobId", "multiNodeJobId") if body.get(k)]
    if len(scopes) != 1:
        raise InvalidRequest(
            [Problem("jobQueue", "exactly one of jobQueue, arrayJobId and multiNodeJobId is required")]
        )
    filters = body.get("filters") or []
    if len(filters) > 1:
        raise InvalidRequest([Problem("filters", "AWS takes one filter at a time")])
    name_prefix = exact_name = definition = revision = None
    definition_prefix = False
    after_ms = before_ms = None
    statuses: tuple[JobStatus, ...] = (_status(body.get("jobStatus")),)
    for f in filters:
        kind, values = f.get("name"), f.get("values") or []
        if not values:
            raise InvalidRequest([Problem("filters[0].values", "one value is required")])
        value = str(values[0])
        statuses = ()
        if kind == "JOB_NAME":
            if value.endswith("*"):
                name_prefix = value[:-1]
            else:
                exact_name = value
        elif kind == "JOB_DEFINITION":  # a name (every revision), name:revision, an ARN, or name*
            definition_prefix = value.endswith("*")
            if definition_prefix:
                definition = value[:-1]
            else:
                definition, revision = job_definition_ref(value)
        elif kind in ("AFTER_CREATED_AT", "BEFORE_CREATED_AT"):
            if not is_digits(value):
                raise InvalidRequest([Problem("filters[0].values[0]", f"expected epoch milliseconds, got {value!r}")])
            if int(value) > AWS_LONG_MAX:
                raise InvalidRequest([Problem("filters[0].values[0]", f"must be at most {AWS_LONG_MAX}, got {value}")])
            if kind == "AFTER_CREATED_AT":
                after_ms = int(value)
            else:
                before_ms = int(value)
        else:
            raise InvalidRequest(
                [
                    Problem(
                        "filters[0].name",
                        f"{kind!r} is not a filter; allowed: JOB_NAME, JOB_DEFINITION, AFTER_CREATED_AT, "
                        "BEFORE_CREATED_AT",
                    )
                ]
            )
    given = body.get("maxResults")
    max_results = int(given) if given is not None else (100 if filters else 1000)
    if not 1 <= max_results <= 1000:
        raise InvalidRequest([Problem("maxResults", f"must be between 1 and 1000, got {max_results}")])
    return ListRequest(
        job_queue=str(body["jobQueue"]) if body.get("jobQueue") else None,
        array_job_id=str(body["arrayJobId"]) if body.get("arrayJobId") else None,
        multi_node_job_id=str(body["multiNodeJobId"]) if body.get("multiNodeJobId") else None,
        statuses=statuses,
        name_prefix=name_prefix if name_prefix is not None else exact_name,
        created_after=after_ms,
        created_before=before_ms,
        exact_name=exact_name,
        job_definition=definition,
        job_definition_revision=revision,
        job_definition_prefix=definition_prefix,
        limit=max_results,
        after=decode_token(body.get("nextToken")),
    )


def _status(value: object) -> JobStatus:
    """ListJobs' jobStatus (RUNNING when absent, as AWS); botocore does not check enum values."""
    if value is None:
        return JobStatus.RUNNING
    try:
        return JobStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in JobStatus)
        raise InvalidRequest([Problem("jobStatus", f"{value!r} is not a job status; allowed: {allowed}")]) from None


def encode_token(created_at: int, job_id: str) -> str:
    raw = json.dumps([created_at, job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_token(token: object) -> tuple[int, str] | None:
    if token is None:
        return None
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(str(token).encode()))
        if type(created_at) is not int or type(job_id) is not str:
            raise ValueError("not a token of ours")
        return created_at, job_id
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest([Problem("nextToken", "not a token this API gave out")]) from None


def submit_body(request: SubmitRequest) -> dict[str, Any]:
    """The SubmitJob body for ``request`` (what ``submit_request`` reads back)."""
    overrides = request.overrides
    body: dict[str, Any] = {
        "jobName": request.job_name,
        "jobQueue": request.job_queue,
        "jobDefinition": request.job_definition,
    }
    if request.array_size is not None:
        body["arrayProperties"] = {"size": request.array_size}
    if request.depends_on:
        body["dependsOn"] = [dependency_entry(d) for d in request.depends_on]
    if request.share_identifier is not None:
        body["shareIdentifier"] = request.share_identifier
    if request.propagate_tags is not None:
        body["propagateTags"] = request.propagate_tags
    if overrides.scheduling_priority is not None:
        body["schedulingPriorityOverride"] = overrides.scheduling_priority
    if overrides.parameters:
        body["parameters"] = dict(overrides.parameters)
    container = _container_overrides(overrides)
    if container:
        body["containerOverrides"] = container
    if overrides.retry_strategy is not None:
        body["retryStrategy"] = retry_strategy(overrides.retry_strategy)
    if overrides.timeout_s is not None:
        body["timeout"] = {"attemptDurationSeconds": overrides.timeout_s}
    if overrides.tags:
        body["tags"] = dict(overrides.tags)
    if overrides.consumable_resources is not None:
        body["consumableResourcePropertiesOverride"] = consumables.properties(overrides.consumable_resources)
    if request.node_overrides is not None:
        body["nodeOverrides"] = node_overrides_body(request.node_overrides)
    return body


def node_overrides_body(overrides: NodeOverrides) -> dict[str, Any]:
    """``nodeOverrides`` in AWS's shape (what ``submit_request`` reads back)."""
    body: dict[str, Any] = {}
    if overrides.num_nodes is not None:
        body["numNodes"] = overrides.num_nodes
    entries = []
    for entry in overrides.node_property_overrides:
        container = _container_overrides(entry.overrides)
        entries.append({"targetNodes": entry.target_nodes, **({"containerOverrides": container} if container else {})})
    if entries:
        body["nodePropertyOverrides"] = entries
    return body


def _container_overrides(overrides: JobOverrides) -> dict[str, Any]:
    container: dict[str, Any] = {}
    if overrides.command is not None:
        container["command"] = list(overrides.command)
    if overrides.environment:
        container["environment"] = [{"name": k, "value": v} for k, v in overrides.environment.items()]
    requirements = [
        {"type": kind, "value": f"{value:g}" if isinstance(value, float) else str(value)}
        for kind, value in (
            ("VCPU", overrides.vcpus),
            ("MEMORY", overrides.memory_mib),
            ("GPU", overrides.gpus),
        )
        if value is not None
    ]
    if requirements:
        container["resourceRequirements"] = requirements
    return container


def dependency_entry(dependency: Dependency) -> dict[str, str]:
    """A ``dependsOn`` entry in AWS's shape."""
    entry = {}
    if dependency.job_id is not None:
        entry["jobId"] = dependency.job_id
    if dependency.type is not None:
        entry["type"] = dependency.type.value
    return entry


_MAX_DEFINITION_PAGES = 1000  # DescribeJobDefinitions pages read at most (100 revisions each)


def latest_definition(call: Callable[[str, Mapping[str, Any]], dict[str, Any]], ref: str) -> dict[str, Any] | None:
    """The DescribeJobDefinitions entry for ``ref``: ``NAME:REVISION`` or an ARN that names a
    revision, else the latest ACTIVE revision of ``NAME``; None when there is none. ``call``
    sends one operation (the daemon's API or AWS's)."""
    name, revision = job_definition_ref(ref)
    if ref.startswith("arn:"):
        body: dict[str, Any] = {"jobDefinitions": [ref]}
    elif revision is not None:  # every revision of the name, filtered below (as AWS and its emulators agree)
        body = {"jobDefinitionName": name}
    else:
        body = {"jobDefinitionName": name, "status": "ACTIVE"}
    found: list[dict[str, Any]] = []
    for _ in range(_MAX_DEFINITION_PAGES):
        page = call("DescribeJobDefinitions", body)
        found += [d for d in page.get("jobDefinitions", []) if d.get("jobDefinitionName") == name]
        if not page.get("nextToken"):
            break
        body = {**body, "nextToken": page["nextToken"]}
    if revision is not None:
        found = [d for d in found if int(d["revision"]) == revision]
    return max(found, key=lambda d: int(d["revision"])) if found else None
