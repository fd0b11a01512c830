"""Rows and JSON for the SQLite state store: Job (with its specs and stop request), Attempt,
JobEvent, ComputeEnvironment (with its Spot rehearsal) and JobQueue (with its job state time
limit actions).

Explicit on purpose: every field is named once when encoding and once when decoding, so what
goes in comes back equal (tuples stay tuples, enums stay enums, None stays None). Decoding
checks each value's type and leaves a key that is absent to the dataclass default, so a JSON
column written before a field existed still reads back (adding a field with a default needs
no migration). Anything that does not decode raises ``ValueError``; the store turns that into
``StateStoreError`` with the database path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from localbatch.core import usage
from localbatch.core.consumables import ConsumableResource, Need, ResourceType
from localbatch.core.definition import NodeRangeProperty
from localbatch.core.infra import (
    ComputeEnvironment,
    JobQueue,
    JobStateTimeLimitAction,
    SchedulingPolicy,
    ShareWeight,
    State,
)
from localbatch.core.jobs import Attempt, Dependency, DependencyType, Job, JobEvent, JobStatus, StopKind, StopRequest
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import (
    ContainerSpec,
    Device,
    LinuxParameters,
    MountPoint,
    S3Access,
    Tmpfs,
    Ulimit,
    Volume,
)
from localbatch.core.spot import SpotRehearsal
from localbatch.core.staging import StagedInput, StagedOutput

T = TypeVar("T")


class Row(Protocol):
    """One row by column name: a ``sqlite3.Row`` (or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


# ---------------------------------------------------------------------------------------
# JSON text


# One encoder for every call: json.dumps with options builds a new one each time, which costs
# about as much as encoding a small value (saving 10,000 jobs encodes 60,000 of them).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: object) -> str:
    """Compact JSON; NaN and infinities are refused (they are not JSON). Raises ValueError."""
    try:
        return _ENCODER.encode(value)
    except TypeError as exc:  # an object json cannot encode: same family as NaN for the caller
        raise ValueError(str(exc)) from exc


def loads(text: str) -> Any:
    return json.loads(text)


# ---------------------------------------------------------------------------------------
# Checked converters for decoding: each returns its argument or raises ValueError.


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _num(value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value  # an int stays an int: Resources(vcpus=2) reads back as 2, not 2.0


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _opt(convert: Callable[[object], T]) -> Callable[[object], T | None]:
    return lambda value: None if value is None else convert(value)


def _tuple(convert: Callable[[object], T]) -> Callable[[object], tuple[T, ...]]:
    def decode(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        return tuple(convert(item) for item in value)

    return decode


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return {_str(key): _str(item) for key, item in value.items()}


def _obj(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {value!r}")
    return value


def _present(data: object, **convert: Callable[[object], object]) -> dict[str, Any]:
    """The keys of ``data`` that ``convert`` names, converted; absent keys are left out so the
    dataclass default applies. Keys ``convert`` does not name are ignored."""
    obj = _obj(data)
    return {key: fn(obj[key]) for key, fn in convert.items() if key in obj}


def _build(cls: Callable[..., T], kwargs: dict[str, Any]) -> T:
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key was missing
        raise ValueError(str(exc)) from exc


# ---------------------------------------------------------------------------------------
# ContainerSpec and its parts


def encode_container(spec: ContainerSpec) -> dict[str, Any]:
    lp = spec.linux_parameters
    return {
        "image": spec.image,
        "command": list(spec.command),
        "environment": dict(spec.environment),
        "resources": {
            "vcpus": spec.resources.vcpus,
            "memory_mib": spec.resources.memory_mib,
            "gpus": spec.resources.gpus,
        },
        "volumes": [{"name": v.name, "host_source_path": v.host_source_path} for v in spec.volumes],
        "mount_points": [
            {"source_volume": m.source_volume, "container_path": m.container_path, "read_only": m.read_only}
            for m in spec.mount_points
        ],
        "ulimits": [{"name": u.name, "soft_limit": u.soft_limit, "hard_limit": u.hard_limit} for u in spec.ulimits],
        "user": spec.user,
        "privileged": spec.privileged,
        "readonly_root_filesystem": spec.readonly_root_filesystem,
        "linux_parameters": {
            "devices": [
                {
                    "host_path": d.host_path,
                    "container_path": d.container_path,
                    "permissions": list(d.permissions),
                }
                for d in lp.devices
            ],
            "init_process_enabled": lp.init_process_enabled,
            "shared_memory_size_mib": lp.shared_memory_size_mib,
            "tmpfs": [
                {
                    "container_path": t.container_path,
                    "size_mib": t.size_mib,
                    "mount_options": list(t.mount_options),
                }
                for t in lp.tmpfs
            ],
            "max_swap_mib": lp.max_swap_mib,
            "swappiness": lp.swappiness,
        },
        # localbatch only (core.s3_access); rows written before it have none: the default
        "s3_access": {"enabled": spec.s3_access.enabled, "generic_endpoint": spec.s3_access.generic_endpoint},
        # localbatch only (core.staging); rows written before it have none
        "inputs": [{"source": i.source, "path": i.path} for i in spec.inputs],
        "outputs": [{"path": o.path, "destination": o.destination, "on_failure": o.on_failure} for o in spec.outputs],
    }


def _resources(data: object) -> Resources:
    return _build(Resources, _present(data, vcpus=_num, memory_mib=_int, gpus=_int))


def _volume(data: object) -> Volume:
    return _build(Volume, _present(data, name=_str, host_source_path=_opt(_str)))


def _mount_point(data: object) -> MountPoint:
    return _build(MountPoint, _present(data, source_volume=_str, container_path=_str, read_only=_bool))


def _ulimit(data: object) -> Ulimit:
    return _build(Ulimit, _present(data, name=_str, soft_limit=_int, hard_limit=_int))


def _device(data: object) -> Device:
    return _build(Device, _present(data, host_path=_str, container_path=_opt(_str), permissions=_tuple(_str)))


def _tmpfs(data: object) -> Tmpfs:
    return _build(Tmpfs, _present(data, container_path=_str, size_mib=_int, mount_options=_tuple(_str)))


def _linux_parameters(data: object) -> LinuxParameters:
    fields = _present(
        data,
        devices=_tuple(_device),
        init_process_enabled=_opt(_bool),
        shared_memory_size_mib=_opt(_int),
        tmpfs=_tuple(_tmpfs),
        max_swap_mib=_opt(_int),
        swappiness=_opt(_int),
    )
    return _build(LinuxParameters, fields)


def decode_container(data: object) -> ContainerSpec:
    fields = _present(
        data,
        image=_str,
        command=_tuple(_str),
        environment=_str_map,
        resources=_resources,
        volumes=_tuple(_volume),
        mount_points=_tuple(_mount_point),
        ulimits=_tuple(_ulimit),
        user=_opt(_str),
        privileged=_bool,
        readonly_root_filesystem=_bool,
        linux_parameters=_linux_parameters,
        s3_access=_s3_access,
        inputs=_tuple(_input),
        outputs=_tuple(_output),
    )
    return _build(ContainerSpec, fields)


def _input(data: object) -> StagedInput:
    return _build(StagedInput, _present(data, source=_str, path=_str))


def _output(data: object) -> StagedOutput:
    return _build(StagedOutput, _present(data, path=_str, destination=_str, on_failure=_bool))


def _s3_access(data: object) -> S3Access:
    return _build(S3Access, _present(data, enabled=_bool, generic_endpoint=_bool))


# ---------------------------------------------------------------------------------------
# RetryStrategy


def encode_retry(strategy: RetryStrategy) -> dict[str, Any]:
    return {
        "attempts": strategy.attempts,
        "evaluate_on_exit": [
            {
                "action": rule.action.value,
                "on_status_reason": rule.on_status_reason,
                "on_reason": rule.on_reason,
                "on_exit_code": rule.on_exit_code,
            }
            for rule in strategy.evaluate_on_exit
        ],
    }


def _retry_action(value: object) -> RetryAction:
    return RetryAction(_str(value))


def _evaluate_on_exit(data: object) -> EvaluateOnExit:
    fields = _present(
        data,
        action=_retry_action,
        on_status_reason=_opt(_str),
        on_reason=_opt(_str),
        on_exit_code=_opt(_str),
    )
    return _build(EvaluateOnExit, fields)


def decode_retry(data: object) -> RetryStrategy:
    return _build(RetryStrategy, _present(data, attempts=_int, evaluate_on_exit=_tuple(_evaluate_on_exit)))


# ---------------------------------------------------------------------------------------
# Rows: jobs, attempts, events. Scalars are columns; nested values are JSON text columns.

JOB_COLUMNS = (
    "job_id",
    "job_name",
    "job_queue",
    "status",
    "created_at",
    "started_at",
    "stopped_at",
    "job_definition_name",
    "job_definition_revision",
    "status_reason",
    "compute_environment",
    "timeout_s",
    "scheduling_priority",
    "propagate_tags",
    "is_cancelled",
    "is_terminated",
    "container",
    "parameters",
    "retry_strategy",
    "gpu_ids",
    "tags",
    "platform_capabilities",
    "runnable_at",
    "stop_kind",
    "stop_reason",
    "stop_requested_at",
    "array_job_id",
    "array_size",
    "array_index",
    "depends_on",
    "share_identifier",
    "multinode_job_id",
    "num_nodes",
    "main_node",
    "node_index",
    "node_ranges",
    "submitted_by",
    "consumable_resources",
)

ATTEMPT_COLUMNS = (
    "job_id",
    "number",
    "task_id",
    "container_name",
    "log_stream_name",
    "container_id",
    "started_at",
    "stopped_at",
    "exit_code",
    "reason",
    "status_reason",
    "usage",
)


def job_row(job: Job) -> dict[str, object]:
    """The ``jobs`` row for ``job`` (its attempts go to ``attempts``). Raises ValueError."""
    stop = job.stop_request
    return {
        "job_id": job.job_id,
        "job_name": job.job_name,
        "job_queue": job.job_queue,
        "status": job.status.value,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "stopped_at": job.stopped_at,
        "job_definition_name": job.job_definition_name,
        "job_definition_revision": job.job_definition_revision,
        "status_reason": job.status_reason,
        "compute_environment": job.compute_environment,
        "timeout_s": job.timeout_s,
        "scheduling_priority": job.scheduling_priority,
        "propagate_tags": int(job.propagate_tags),
        "is_cancelled": int(job.is_cancelled),
        "is_terminated": int(job.is_terminated),
        "container": dumps(encode_container(job.container)),
        "parameters": dumps(dict(job.parameters)),
        "retry_strategy": dumps(encode_retry(job.retry_strategy)),
        "gpu_ids": dumps(list(job.gpu_ids)),
        "tags": dumps(dict(job.tags)),
        "platform_capabilities": dumps(list(job.platform_capabilities)),
        "runnable_at": job.runnable_at,
        "stop_kind": None if stop is None else stop.kind.value,
        "stop_reason": None if stop is None else stop.reason,
        "stop_requested_at": None if stop is None else stop.requested_at,
        "array_job_id": job.array_job_id,
        "array_size": job.array_size,
        "array_index": job.array_index,
        "depends_on": dumps([_dependency_entry(d) for d in job.depends_on]),
        "share_identifier": job.share_identifier,
        "multinode_job_id": job.multinode_job_id,
        "num_nodes": job.num_nodes,
        "main_node": job.main_node,
        "node_index": job.node_index,
        "node_ranges": dumps([_node_range_entry(r) for r in job.node_ranges]),
        "submitted_by": job.submitted_by,
        "consumable_resources": dumps([[name, _int(quantity)] for name, quantity in job.consumable_resources]),
    }


def _node_range_entry(entry: NodeRangeProperty) -> dict[str, Any]:
    return {
        "target_nodes": entry.target_nodes,
        "container": encode_container(entry.container),
        "instance_types": list(entry.instance_types),
    }


def _node_range(data: object) -> NodeRangeProperty:
    entry = _obj(data)
    return NodeRangeProperty(
        _str(entry.get("target_nodes")),
        decode_container(entry.get("container")),
        _tuple(_str)(entry.get("instance_types", [])),
    )


def _dependency_entry(dependency: Dependency) -> dict[str, str]:
    entry = {} if dependency.job_id is None else {"job_id": dependency.job_id}
    if dependency.type is not None:
        entry["type"] = dependency.type.value
    return entry


def _dependency(data: object) -> Dependency:
    entry = _obj(data)
    kind = entry.get("type")
    return Dependency(_opt(_str)(entry.get("job_id")), None if kind is None else DependencyType(_str(kind)))


def attempt_row(job_id: str, attempt: Attempt) -> dict[str, object]:
    return {
        "job_id": job_id,
        "number": attempt.number,
        "task_id": attempt.task_id,
        "container_name": attempt.container_name,
        "log_stream_name": attempt.log_stream_name,
        "container_id": attempt.container_id,
        "started_at": attempt.started_at,
        "stopped_at": attempt.stopped_at,
        "exit_code": attempt.exit_code,
        "reason": attempt.reason,
        "status_reason": attempt.status_reason,
        "usage": None if attempt.usage is None else dumps(usage.to_document(attempt.usage)),
    }


def decode_attempt(row: Row) -> Attempt:
    return Attempt(
        number=_int(row["number"]),
        task_id=_str(row["task_id"]),
        container_name=_str(row["container_name"]),
        log_stream_name=_str(row["log_stream_name"]),
        container_id=_opt(_str)(row["container_id"]),
        started_at=_opt(_int)(row["started_at"]),
        stopped_at=_opt(_int)(row["stopped_at"]),
        exit_code=_opt(_int)(row["exit_code"]),
        reason=_opt(_str)(row["reason"]),
        status_reason=_opt(_str)(row["status_reason"]),
        usage=None if row["usage"] is None else usage.from_document(_obj(loads(_str(row["usage"])))),
    )


def decode_job(row: Row, attempts: Sequence[Attempt]) -> Job:
    """The Job in ``row`` with ``attempts`` (already in order). Raises ValueError."""
    return Job(
        job_id=_str(row["job_id"]),
        job_name=_str(row["job_name"]),
        job_definition_name=_str(row["job_definition_name"]),
        job_definition_revision=_int(row["job_definition_revision"]),
        job_queue=_str(row["job_queue"]),
        container=decode_container(loads(row["container"])),
        created_at=_int(row["created_at"]),
        status=JobStatus(row["status"]),
        status_reason=_opt(_str)(row["status_reason"]),
        compute_environment=_opt(_str)(row["compute_environment"]),
        started_at=_opt(_int)(row["started_at"]),
        stopped_at=_opt(_int)(row["stopped_at"]),
        parameters=_str_map(loads(row["parameters"])),
        retry_strategy=decode_retry(loads(row["retry_strategy"])),
        timeout_s=_opt(_int)(row["timeout_s"]),
        attempts=tuple(attempts),
        gpu_ids=_tuple(_str)(loads(row["gpu_ids"])),
        tags=_str_map(loads(row["tags"])),
        propagate_tags=bool(_int(row["propagate_tags"])),
        platform_capabilities=_tuple(_str)(loads(row["platform_capabilities"])),
        scheduling_priority=_opt(_int)(row["scheduling_priority"]),
        is_cancelled=bool(_int(row["is_cancelled"])),
        is_terminated=bool(_int(row["is_terminated"])),
        runnable_at=_opt(_int)(row["runnable_at"]),
        stop_request=_stop_request(row),
        array_size=_opt(_int)(row["array_size"]),
        array_index=_opt(_int)(row["array_index"]),
        depends_on=_tuple(_dependency)(loads(row["depends_on"])),
        share_identifier=_opt(_str)(row["share_identifier"]),
        num_nodes=_opt(_int)(row["num_nodes"]),
        main_node=_opt(_int)(row["main_node"]),
        node_index=_opt(_int)(row["node_index"]),
        node_ranges=_tuple(_node_range)(loads(row["node_ranges"])),
        submitted_by=_opt(_str)(row["submitted_by"]),
        consumable_resources=_tuple(_need)(loads(row["consumable_resources"])),
    )


def _stop_request(row: Row) -> StopRequest | None:
    kind, reason, at = row["stop_kind"], row["stop_reason"], row["stop_requested_at"]
    if kind is None and reason is None and at is None:
        return None
    return StopRequest(kind=StopKind(_str(kind)), reason=_str(reason), requested_at=_int(at))


def event_row(event: JobEvent) -> dict[str, object]:
    return {
        "job_id": event.job_id,
        "at": event.at,
        "from_status": None if event.from_status is None else event.from_status.value,
        "to_status": event.to_status.value,
        "reason": event.reason,
        "detail": event.detail,
    }


def decode_event(row: Row) -> JobEvent:
    from_status = row["from_status"]
    return JobEvent(
        job_id=_str(row["job_id"]),
        at=_int(row["at"]),
        from_status=None if from_status is None else JobStatus(from_status),
        to_status=JobStatus(row["to_status"]),
        reason=_opt(_str)(row["reason"]),
        detail=_opt(_str)(row["detail"]),
    )


def log_row(event: JobEvent, job: dict[str, object] | None, attempts: list[dict[str, object]]) -> dict[str, object]:
    """The ``event_log`` row of a state change, with the job (its ``jobs`` and ``attempts``
    rows) as the save left it; ``job`` None when the save did not carry the job."""
    body: dict[str, object] = {**event_row(event)}
    if job is not None:
        body.update(job=job, attempts=attempts)
    return {
        "at": event.at,
        "kind": "job",
        "job_id": event.job_id,
        "job_queue": None if job is None else job["job_queue"],
        "status": event.to_status.value,
        "body": dumps(body),
    }


def decode_log(row: Row) -> tuple[dict[str, Any], JobEvent | None, Job | None]:
    """An ``event_log`` row's body, and for a state change its event and job (if kept)."""
    body = loads(row["body"])
    if not isinstance(body, dict):
        raise ValueError("an event log body is not a JSON object")
    if row["kind"] != "job":
        return body, None, None
    event = decode_event(body)
    job_row_ = body.get("job")
    if not isinstance(job_row_, dict):
        return body, event, None
    attempts = body.get("attempts") or []
    return body, event, decode_job(job_row_, [decode_attempt(a) for a in attempts])


# ---------------------------------------------------------------------------------------
# Compute environments and job queues: one row each, tuples as JSON lists.

ENVIRONMENT_COLUMNS = ("name", "state", "max_vcpus", "max_memory_mib", "gpu_ids", "tags", "spot")
QUEUE_COLUMNS = (
    "name",
    "priority",
    "state",
    "compute_environments",
    "tags",
    "scheduling_policy",
    "job_state_time_limit_actions",
)
CONSUMABLE_COLUMNS = ("name", "total_quantity", "resource_type", "created_at", "tags")


def consumable_row(resource: ConsumableResource) -> dict[str, object]:
    return {
        "name": resource.name,
        "total_quantity": _int(resource.total_quantity),
        "resource_type": resource.resource_type.value,
        "created_at": _int(resource.created_at),
        "tags": dumps(dict(resource.tags)),
    }


def decode_consumable(row: Row) -> ConsumableResource:
    return ConsumableResource(
        name=_str(row["name"]),
        total_quantity=_int(row["total_quantity"]),
        resource_type=ResourceType(_str(row["resource_type"])),
        created_at=_int(row["created_at"]),
        tags=_str_map(loads(row["tags"])),
    )


def _need(data: object) -> Need:
    if not isinstance(data, list) or len(data) != 2:
        raise ValueError(f"consumable_resources: expected [name, quantity], got {data!r}")
    return _str(data[0]), _int(data[1])


POLICY_COLUMNS = ("name", "share_decay_seconds", "compute_reservation", "share_distribution", "tags")


def environment_row(environment: ComputeEnvironment) -> dict[str, object]:
    """Raises ValueError for a ``max_vcpus`` that is not a finite number (SQLite would store
    NaN as NULL). ``max_vcpus`` is stored REAL, so it reads back as a float."""
    vcpus = _num(environment.max_vcpus)
    if not math.isfinite(vcpus):
        raise ValueError(f"max_vcpus must be a finite number, got {vcpus!r}")
    return {
        "name": environment.name,
        "state": environment.state.value,
        "max_vcpus": float(vcpus),
        "max_memory_mib": _int(environment.max_memory_mib),
        "gpu_ids": dumps(list(environment.gpu_ids)),
        "tags": dumps(dict(environment.tags)),
        "spot": None if environment.spot is None else dumps(_spot_entry(environment.spot)),
    }


def _spot_entry(spot: SpotRehearsal) -> dict[str, Any]:
    return {"interruption_rate": spot.interruption_rate, "interrupt_after_s": spot.interrupt_after_s}


def _spot(data: object) -> SpotRehearsal:
    return _build(SpotRehearsal, _present(data, interruption_rate=_num, interrupt_after_s=_opt(_num)))


def decode_environment(row: Row) -> ComputeEnvironment:
    return ComputeEnvironment(
        name=_str(row["name"]),
        max_vcpus=float(_num(row["max_vcpus"])),
        max_memory_mib=_int(row["max_memory_mib"]),
        gpu_ids=_tuple(_str)(loads(row["gpu_ids"])),
        state=State(_str(row["state"])),
        tags=_str_map(loads(row["tags"])),
        spot=None if row["spot"] is None else _spot(loads(row["spot"])),
    )


def queue_row(queue: JobQueue) -> dict[str, object]:
    return {
        "name": queue.name,
        "priority": _int(queue.priority),
        "state": queue.state.value,
        "compute_environments": dumps(list(queue.compute_environments)),
        "tags": dumps(dict(queue.tags)),
        "scheduling_policy": queue.scheduling_policy,
        "job_state_time_limit_actions": dumps([_time_limit_entry(a) for a in queue.job_state_time_limit_actions]),
    }


def _time_limit_entry(action: JobStateTimeLimitAction) -> dict[str, Any]:
    return {
        "reason": action.reason,
        "max_time_seconds": action.max_time_seconds,
        "state": action.state,
        "action": action.action,
    }


def _time_limit(data: object) -> JobStateTimeLimitAction:
    fields = _present(data, reason=_str, max_time_seconds=_int, state=_str, action=_str)
    return _build(JobStateTimeLimitAction, fields)


def decode_queue(row: Row) -> JobQueue:
    return JobQueue(
        name=_str(row["name"]),
        priority=_int(row["priority"]),
        compute_environments=_tuple(_str)(loads(row["compute_environments"])),
        state=State(_str(row["state"])),
        tags=_str_map(loads(row["tags"])),
        scheduling_policy=_opt(_str)(row["scheduling_policy"]),
        job_state_time_limit_actions=_tuple(_time_limit)(loads(row["job_state_time_limit_actions"])),
    )


def policy_row(policy: SchedulingPolicy) -> dict[str, object]:
    """Raises ValueError for a weight that is not a finite number."""
    weights = []
    for entry in policy.share_distribution:
        weight = _num(entry.weight_factor)
        if not math.isfinite(weight):
            raise ValueError(f"weight_factor of {entry.share_identifier!r} must be a finite number, got {weight!r}")
        weights.append([entry.share_identifier, float(weight)])
    return {
        "name": policy.name,
        "share_decay_seconds": _int(policy.share_decay_seconds),
        "compute_reservation": _int(policy.compute_reservation),
        "share_distribution": dumps(weights),
        "tags": dumps(dict(policy.tags)),
    }


def decode_policy(row: Row) -> SchedulingPolicy:
    entries = loads(row["share_distribution"])
    if not isinstance(entries, list):
        raise ValueError(f"share_distribution: expected a list, got {entries!r}")
    distribution = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            raise ValueError(f"share_distribution: expected [identifier, weight], got {entry!r}")
        distribution.append(ShareWeight(_str(entry[0]), float(_num(entry[1]))))
    return SchedulingPolicy(
        name=_str(row["name"]),
        share_decay_seconds=_int(row["share_decay_seconds"]),
        compute_reservation=_int(row["compute_reservation"]),
        share_distribution=tuple(distribution),
        tags=_str_map(loads(row["tags"])),
    )
