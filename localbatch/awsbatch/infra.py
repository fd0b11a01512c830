"""Compute environments, job queues and scheduling policies in AWS's words, both ways.

AWS's CreateComputeEnvironment has no field for memory or GPUs (on AWS they come with the
instance types). A local compute environment is a slice of one host, so localbatch reads
them from two tags, which botocore's model allows and AWS would keep as plain tags:

    localbatch:max-memory-mib = "16384"     (default: the host's memory in proportion to maxvCpus)
    localbatch:gpus           = "0,1"       (device ids; default: none)

A ``computeResources.type`` of ``SPOT`` makes the environment rehearse Spot reclaims
(``core.spot``), tuned by two more tags (SPOT environments only):

    localbatch:spot-interruption-rate         = "0.5"  (reclaims per running-job hour; default 0)
    localbatch:spot-interrupt-after-seconds   = "90"   (reclaim every attempt this long after it started)

Describe output carries them back the same way, so what was created can be read again.
A job queue's ``jobStateTimeLimitActions`` are AWS's (``core.queue_limits``), except that a
``maxTimeSeconds`` below AWS's 600 is accepted (down to 1) and logged as a warning.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from localbatch.awsbatch.requests import aws_name_problem, is_digits
from localbatch.core import queue_limits, spot
from localbatch.core.infra import (
    MAX_ENVIRONMENTS_PER_QUEUE,
    ComputeEnvironment,
    JobQueue,
    JobStateTimeLimitAction,
    SchedulingPolicy,
    ShareWeight,
    State,
    policy_problems,
)
from localbatch.core.naming import Arns, resource_name
from localbatch.core.resources import AWS_INT_MAX, MIN_MEMORY_MIB, Resources
from localbatch.errors import InvalidRequest, Problem

MEMORY_TAG = "localbatch:max-memory-mib"
GPUS_TAG = "localbatch:gpus"
SPOT_RATE_TAG = "localbatch:spot-interruption-rate"
SPOT_AFTER_TAG = "localbatch:spot-interrupt-after-seconds"
_OUR_TAGS = (MEMORY_TAG, GPUS_TAG, SPOT_RATE_TAG, SPOT_AFTER_TAG)
LOCAL_TAGS = frozenset(_OUR_TAGS)  # a compute environment's localbatch settings, shown as tags
_LOCAL_TYPES = ("EC2", "SPOT")  # what a local host can stand in for


def environment_detail(environment: ComputeEnvironment, arns: Arns) -> dict[str, Any]:
    tags = {**environment.tags, MEMORY_TAG: str(environment.max_memory_mib)}
    if environment.gpu_ids:
        tags[GPUS_TAG] = ",".join(environment.gpu_ids)
    if environment.spot is not None and environment.spot.interruption_rate:
        tags[SPOT_RATE_TAG] = _number_text(environment.spot.interruption_rate)
    if environment.spot is not None and environment.spot.interrupt_after_s is not None:
        tags[SPOT_AFTER_TAG] = _number_text(environment.spot.interrupt_after_s)
    return {
        "computeEnvironmentName": environment.name,
        "computeEnvironmentArn": arns.compute_environment(environment.name),
        "type": "MANAGED",
        "state": environment.state.value,
        "status": "VALID",
        "statusReason": "ComputeEnvironment Healthy",
        "computeResources": {
            "type": "EC2" if environment.spot is None else "SPOT",
            "minvCpus": 0,
            "maxvCpus": math.floor(environment.max_vcpus),
            "instanceTypes": ["optimal"],
            "subnets": [],
            "securityGroupIds": [],
        },
        "containerOrchestrationType": "ECS",
        "tags": tags,
    }


def queue_detail(queue: JobQueue, arns: Arns) -> dict[str, Any]:
    return {
        **queue_request(queue, arns.compute_environment, arns.scheduling_policy),
        "jobQueueArn": arns.job_queue(queue.name),
        "status": "VALID",
        "statusReason": "JobQueue Healthy",
        "jobQueueType": "ECS",
    }


def queue_request(
    queue: JobQueue, environment: Callable[[str], object], policy: Callable[[str], object]
) -> dict[str, Any]:
    """CreateJobQueue's body for ``queue``; ``environment`` and ``policy`` name another object
    by its name (an ARN, or a reference the export plan resolves later)."""
    request: dict[str, Any] = {
        "jobQueueName": queue.name,
        "state": queue.state.value,
        "priority": queue.priority,
        "computeEnvironmentOrder": [
            {"order": i + 1, "computeEnvironment": environment(name)}
            for i, name in enumerate(queue.compute_environments)
        ],
    }
    if queue.scheduling_policy is not None:
        request["schedulingPolicyArn"] = policy(queue.scheduling_policy)
    if queue.job_state_time_limit_actions:
        request["jobStateTimeLimitActions"] = [
            {"reason": a.reason, "state": a.state, "maxTimeSeconds": a.max_time_seconds, "action": a.action}
            for a in queue.job_state_time_limit_actions
        ]
    if queue.tags:
        request["tags"] = dict(queue.tags)
    return request


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def new_environment(body: Mapping[str, Any], host: Resources) -> ComputeEnvironment:
    """CreateComputeEnvironment's body as a local compute environment."""
    problems = [p for p in [aws_name_problem("computeEnvironmentName", str(body["computeEnvironmentName"]))] if p]
    if body.get("type") != "MANAGED":
        raise InvalidRequest([Problem("type", "localbatch runs MANAGED compute environments only")])
    resources = body.get("computeResources")
    if resources is None:
        raise InvalidRequest([Problem("computeResources", "required for a MANAGED compute environment")])
    if resources.get("type") not in _LOCAL_TYPES:
        problems.append(
            Problem("computeResources.type", f"{resources.get('type')!r}: a local host stands in for EC2 or SPOT")
        )
    max_vcpus = resources["maxvCpus"]
    if max_vcpus < 1:
        problems.append(Problem("computeResources.maxvCpus", f"must be at least 1, got {max_vcpus}"))
    tags = body.get("tags") or {}
    memory, gpus, tag_problems = _tagged_limits(tags, max_vcpus, host)
    problems += tag_problems
    rehearsal, spot_problems = _tagged_spot(tags, resources.get("type") == "SPOT")
    problems += spot_problems
    if problems:
        raise InvalidRequest(problems)
    return ComputeEnvironment(
        name=str(body["computeEnvironmentName"]),
        max_vcpus=float(max_vcpus),
        max_memory_mib=memory,
        gpu_ids=gpus,
        state=_state(body) or State.ENABLED,
        tags={k: v for k, v in tags.items() if k not in _OUR_TAGS},
        spot=rehearsal,
    )


def _tagged_spot(tags: Mapping[str, str], is_spot: bool) -> tuple[spot.SpotRehearsal | None, list[Problem]]:
    """The Spot rehearsal of a SPOT environment, from its tags; None for EC2."""
    given = [tag for tag in (SPOT_RATE_TAG, SPOT_AFTER_TAG) if tag in tags]
    if not is_spot:
        return None, [Problem(f"tags.{tag}", "applies to computeResources.type SPOT only") for tag in given]
    problems: list[Problem] = []
    numbers: dict[str, float | None] = {SPOT_RATE_TAG: None, SPOT_AFTER_TAG: None}
    for tag in given:
        try:
            numbers[tag] = float(tags[tag])
        except ValueError:
            problems.append(Problem(f"tags.{tag}", f"must be a number, got {tags[tag]!r}"))
    rehearsal = spot.SpotRehearsal(numbers[SPOT_RATE_TAG] or 0.0, numbers[SPOT_AFTER_TAG])
    names = {"interruption_rate": SPOT_RATE_TAG, "interrupt_after_seconds": SPOT_AFTER_TAG}
    problems += [Problem(f"tags.{names[p.path]}", p.message) for p in spot.problems(rehearsal)]
    return rehearsal, problems


def _tagged_limits(
    tags: Mapping[str, str], max_vcpus: float, host: Resources
) -> tuple[int, tuple[str, ...], list[Problem]]:
    problems = []
    share = min(1.0, max_vcpus / host.vcpus) if host.vcpus else 1.0
    memory = math.floor(host.memory_mib * share)
    if MEMORY_TAG in tags:
        text = tags[MEMORY_TAG]
        if not is_digits(text) or int(text) < MIN_MEMORY_MIB:
            problems.append(Problem(f"tags.{MEMORY_TAG}", f"must be a whole number of MiB >= 4, got {text!r}"))
        else:
            memory = int(text)
    gpus = tuple(g.strip() for g in tags.get(GPUS_TAG, "").split(",") if g.strip())
    repeated = sorted({g for g in gpus if gpus.count(g) > 1})
    if repeated:
        problems.append(Problem(f"tags.{GPUS_TAG}", f"GPU(s) {', '.join(repeated)} listed more than once"))
    return memory, gpus, problems


@dataclass(frozen=True)
class EnvironmentUpdate:
    name: str
    state: State | None
    max_vcpus: float | None


def environment_update(body: Mapping[str, Any]) -> EnvironmentUpdate:
    resources = body.get("computeResources") or {}
    max_vcpus = resources.get("maxvCpus")
    if max_vcpus is not None and max_vcpus < 1:
        raise InvalidRequest([Problem("computeResources.maxvCpus", f"must be at least 1, got {max_vcpus}")])
    return EnvironmentUpdate(
        name=resource_name(str(body["computeEnvironment"]), "compute-environment"),
        state=_state(body),
        max_vcpus=None if max_vcpus is None else float(max_vcpus),
    )


def new_queue(body: Mapping[str, Any]) -> JobQueue:
    """CreateJobQueue's body as a local job queue."""
    _refuse_unsupported(body)
    problem = aws_name_problem("jobQueueName", str(body["jobQueueName"]))
    if problem is not None:
        raise InvalidRequest([problem])
    order = body.get("computeEnvironmentOrder")
    if not order:
        raise InvalidRequest([Problem("computeEnvironmentOrder", "required: the compute environments to use")])
    return JobQueue(
        name=str(body["jobQueueName"]),
        priority=_priority(body["priority"]),
        compute_environments=environment_order(order),
        state=_state(body) or State.ENABLED,
        tags=dict(body.get("tags") or {}),
        scheduling_policy=_policy_name(body),
        job_state_time_limit_actions=time_limit_actions(body.get("jobStateTimeLimitActions") or []),
    )


@dataclass(frozen=True)
class QueueUpdate:
    name: str
    state: State | None
    priority: int | None
    compute_environments: tuple[str, ...] | None
    scheduling_policy: str | None = None  # a name; None leaves it as it is
    job_state_time_limit_actions: tuple[JobStateTimeLimitAction, ...] | None = None  # None: unchanged


def queue_update(body: Mapping[str, Any]) -> QueueUpdate:
    _refuse_unsupported(body)
    order = body.get("computeEnvironmentOrder")
    actions = body.get("jobStateTimeLimitActions")
    return QueueUpdate(
        name=resource_name(str(body["jobQueue"]), "job-queue"),
        state=_state(body),
        priority=None if body.get("priority") is None else _priority(body["priority"]),
        compute_environments=None if order is None else environment_order(order),
        scheduling_policy=_policy_name(body),
        job_state_time_limit_actions=None if actions is None else time_limit_actions(actions),
    )


def _priority(value: Any) -> int:
    """A queue's priority: AWS's Integer (32-bit)."""
    priority = int(value)
    if not -AWS_INT_MAX - 1 <= priority <= AWS_INT_MAX:
        bounds = f"{-AWS_INT_MAX - 1} and {AWS_INT_MAX}"
        raise InvalidRequest([Problem("priority", f"must be between {bounds} (AWS's Integer), got {priority}")])
    return priority


def time_limit_actions(entries: list[Mapping[str, Any]]) -> tuple[JobStateTimeLimitAction, ...]:
    """jobStateTimeLimitActions as local actions; refused whole when any entry is wrong."""
    actions = tuple(
        JobStateTimeLimitAction(
            reason=str(entry.get("reason")),
            max_time_seconds=int(entry.get("maxTimeSeconds", 0)),
            state=str(entry.get("state")),
            action=str(entry.get("action")),
        )
        for entry in entries
    )
    problems = queue_limits.problems(actions, "jobStateTimeLimitActions", aws_names=True)
    if problems:
        raise InvalidRequest(problems)
    return actions


def _state(body: Mapping[str, Any]) -> State | None:
    """The request's ``state``; botocore's model does not check enum values, so this does."""
    value = body.get("state")
    if value is None:
        return None
    try:
        return State(value)
    except ValueError:
        raise InvalidRequest([Problem("state", f"must be ENABLED or DISABLED, got {value!r}")]) from None


def environment_order(order: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """computeEnvironmentOrder as names, lowest ``order`` first (AWS tries them that way)."""
    if not order:
        raise InvalidRequest([Problem("computeEnvironmentOrder", "at least one compute environment is required")])
    if len(order) > MAX_ENVIRONMENTS_PER_QUEUE:
        raise InvalidRequest(
            [
                Problem(
                    "computeEnvironmentOrder",
                    f"at most {MAX_ENVIRONMENTS_PER_QUEUE} entries, got {len(order)}",
                )
            ]
        )
    orders = [int(entry["order"]) for entry in order]
    if len(set(orders)) != len(orders):
        raise InvalidRequest([Problem("computeEnvironmentOrder", "each order value may appear once")])
    ranked = sorted(order, key=lambda entry: int(entry["order"]))
    return tuple(resource_name(str(e["computeEnvironment"]), "compute-environment") for e in ranked)


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    for part in ("serviceEnvironmentOrder",):
        if body.get(part):
            raise InvalidRequest([Problem(part, "not supported by localbatch yet")])
    if body.get("jobQueueType") not in (None, "ECS"):
        raise InvalidRequest([Problem("jobQueueType", "localbatch runs ECS-style (container) queues only")])


def _policy_name(body: Mapping[str, Any]) -> str | None:
    """The scheduling policy ``schedulingPolicyArn`` names (an ARN, or locally a bare name)."""
    ref = body.get("schedulingPolicyArn")
    return None if not ref else resource_name(str(ref), "scheduling-policy")


# ---------------------------------------------------------------------------------------------
# Scheduling policies


def policy_detail(policy: SchedulingPolicy, arns: Arns) -> dict[str, Any]:
    return {**policy_request(policy), "arn": arns.scheduling_policy(policy.name)}


def policy_request(policy: SchedulingPolicy) -> dict[str, Any]:
    """CreateSchedulingPolicy's body for ``policy`` (fair share)."""
    request: dict[str, Any] = {
        "name": policy.name,
        "fairsharePolicy": {
            "shareDecaySeconds": policy.share_decay_seconds,
            "computeReservation": policy.compute_reservation,
            "shareDistribution": [
                {"shareIdentifier": e.share_identifier, "weightFactor": e.weight_factor}
                for e in policy.share_distribution
            ],
        },
    }
    if policy.tags:
        request["tags"] = dict(policy.tags)
    return request


def new_policy(body: Mapping[str, Any]) -> SchedulingPolicy:
    """CreateSchedulingPolicy's body as a scheduling policy (fair share; quota share is refused)."""
    name = str(body["name"])
    problem = aws_name_problem("name", name)
    if problem is not None:
        raise InvalidRequest([problem])
    return fairshare_policy(name, body, tags=dict(body.get("tags") or {}))


def fairshare_policy(name: str, body: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> SchedulingPolicy:
    """``body``'s ``fairsharePolicy`` (absent: all defaults), checked; every problem is named
    by its AWS key path (``fairsharePolicy.shareDistribution[1].weightFactor``)."""
    if body.get("quotaSharePolicy"):
        raise InvalidRequest([Problem("quotaSharePolicy", "localbatch supports fair-share policies only")])
    fair = body.get("fairsharePolicy") or {}
    policy = SchedulingPolicy(
        name=name,
        share_decay_seconds=int(fair.get("shareDecaySeconds") or 0),
        compute_reservation=int(fair.get("computeReservation") or 0),
        share_distribution=tuple(
            ShareWeight(str(entry["shareIdentifier"]), float(entry.get("weightFactor", 1.0)))
            for entry in fair.get("shareDistribution") or []
        ),
        tags=tags or {},
    )
    problems = policy_problems(policy)
    if problems:
        raise InvalidRequest([Problem(f"fairsharePolicy.{_camel(p.path)}", p.message) for p in problems])
    return policy


def _camel(path: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)
