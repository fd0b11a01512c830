"""Pure steps of a job's life: submit, start an attempt, see it run, see it end, stop it.

Each step takes the job and what happened (with the time) and returns the new job and the
events to record. The caller (the daemon's control loop) does the I/O between
steps; these functions decide. Retry rules come from ``core.retry``, AWS's wording from
``core.outcome``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from localbatch.core import params
from localbatch.core.consumables import Need, need_problems
from localbatch.core.definition import (
    MAX_SCHEDULING_PRIORITY,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS,
    RESERVED_ENV_PREFIX,
    JobDefinition,
    tag_key_problem,
)
from localbatch.core.jobs import (
    Attempt,
    EpochMs,
    Job,
    JobEvent,
    JobStatus,
    StopKind,
    transition,
    with_attempt,
)
from localbatch.core.outcome import ESSENTIAL_CONTAINER_EXITED, AttemptOutcome, Ending
from localbatch.core.resources import (
    AWS_INT_MAX,
    Resources,
    gpus_problem,
    memory_mib_problem,
    vcpus_problem,
)
from localbatch.core.retry import MAX_ATTEMPTS, RetryDecision, RetryStrategy, decide
from localbatch.core.spec import ContainerSpec
from localbatch.errors import Problem


@dataclass(frozen=True)
class JobOverrides:
    """What a submission may change (AWS's SubmitJob parameters and containerOverrides).

    ``command`` replaces the whole command; ``environment`` merges by name; each resource
    overrides the definition's value of that type; ``parameters`` override defaults per key.
    """

    parameters: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    vcpus: float | None = None
    memory_mib: int | None = None
    gpus: int | None = None
    retry_strategy: RetryStrategy | None = None
    timeout_s: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    scheduling_priority: int | None = None  # SubmitJob's schedulingPriorityOverride
    consumable_resources: tuple[Need, ...] | None = None  # consumableResourcePropertiesOverride


def check_overrides(overrides: JobOverrides) -> list[Problem]:
    """Every problem with ``overrides``; paths name the override (``environment.NAME``)."""
    problems: list[Problem] = []
    for name in overrides.environment:
        if name.startswith(RESERVED_ENV_PREFIX):
            problems.append(Problem(f"environment.{name}", f"names starting with {RESERVED_ENV_PREFIX} are reserved"))
        elif not name or "=" in name:
            problems.append(Problem("environment", f"{name!r} is not a variable name"))
    resource_messages = (
        ("vcpus", None if overrides.vcpus is None else vcpus_problem(overrides.vcpus)),
        ("memory_mib", None if overrides.memory_mib is None else memory_mib_problem(overrides.memory_mib)),
        ("gpus", None if overrides.gpus is None else gpus_problem(overrides.gpus)),
    )
    problems += [Problem(path, message) for path, message in resource_messages if message is not None]
    if overrides.command is not None:
        if not overrides.command:
            problems.append(Problem("command", "must not be empty"))
        elif any(arg == "" for arg in overrides.command):
            problems.append(Problem("command", "must not contain empty arguments (AWS rejects them)"))
    if overrides.retry_strategy is not None and not 1 <= overrides.retry_strategy.attempts <= MAX_ATTEMPTS:
        got = overrides.retry_strategy.attempts
        problems.append(Problem("retry.attempts", f"must be between 1 and {MAX_ATTEMPTS}, got {got}"))
    if overrides.timeout_s is not None and not 1 <= overrides.timeout_s <= AWS_INT_MAX:
        problems.append(Problem("timeout", f"must be between 1 and {AWS_INT_MAX} seconds, got {overrides.timeout_s}"))
    priority = overrides.scheduling_priority
    if priority is not None and not 0 <= priority <= MAX_SCHEDULING_PRIORITY:
        problems.append(
            Problem("scheduling_priority", f"must be between 0 and {MAX_SCHEDULING_PRIORITY}, got {priority}")
        )
    if overrides.consumable_resources is not None:
        problems += need_problems(overrides.consumable_resources, "consumable_resources")
    return problems + _tag_problems(overrides.tags)


def _tag_problems(tags: Mapping[str, str]) -> list[Problem]:
    """AWS's tag rules for a submission's tags (paths ``tags.KEY``, or ``tags`` for the count)."""
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(Problem("tags", f"at most {MAX_TAGS} tags, got {len(tags)}"))
    for key, value in tags.items():
        why = tag_key_problem(key)
        if why is None and len(value) > MAX_TAG_VALUE_CHARS:
            why = f"tag values must be at most {MAX_TAG_VALUE_CHARS} characters, got {len(value)}"
        if why is not None:
            problems.append(Problem(f"tags.{key}", why))
    return problems


def new_job(
    definition: JobDefinition,
    revision: int,
    overrides: JobOverrides,
    *,
    job_id: str,
    job_name: str,
    job_queue: str,
    now: EpochMs,
) -> tuple[Job, JobEvent]:
    """A SUBMITTED job: the definition with the overrides applied and ``Ref::`` substituted."""
    parameters = params.merge(definition.parameters, overrides.parameters)
    container = substitute(apply_container_overrides(definition.container, overrides), parameters)
    job = Job(
        job_id=job_id,
        job_name=job_name,
        job_definition_name=definition.name,
        job_definition_revision=revision,
        job_queue=job_queue,
        container=container,
        created_at=now,
        parameters=parameters,
        retry_strategy=overrides.retry_strategy or definition.retry_strategy,
        timeout_s=overrides.timeout_s if overrides.timeout_s is not None else definition.timeout_s,
        tags=dict(overrides.tags),  # AWS: a job carries its submission's tags, not its definition's
        propagate_tags=definition.propagate_tags,
        platform_capabilities=tuple(p.value for p in definition.platform_capabilities),
        scheduling_priority=(
            overrides.scheduling_priority
            if overrides.scheduling_priority is not None
            else definition.scheduling_priority
        ),
        consumable_resources=(
            overrides.consumable_resources
            if overrides.consumable_resources is not None
            else definition.consumable_resources
        ),
    )
    return job, JobEvent(job_id, now, None, JobStatus.SUBMITTED)


def apply_container_overrides(base: ContainerSpec, overrides: JobOverrides) -> ContainerSpec:
    """``base`` with the container parts of ``overrides``: command, environment, resources."""
    resources = Resources(
        vcpus=overrides.vcpus if overrides.vcpus is not None else base.resources.vcpus,
        memory_mib=overrides.memory_mib if overrides.memory_mib is not None else base.resources.memory_mib,
        gpus=overrides.gpus if overrides.gpus is not None else base.resources.gpus,
    )
    command = overrides.command if overrides.command is not None else base.command
    return replace(
        base, command=command, environment={**base.environment, **overrides.environment}, resources=resources
    )


def substitute(container: ContainerSpec, parameters: Mapping[str, str]) -> ContainerSpec:
    """``Ref::`` placeholders in the command replaced by ``parameters``."""
    return replace(container, command=params.substitute(container.command, parameters))


def begin_attempt(
    job: Job,
    now: EpochMs,
    *,
    task_id: str,
    container_name: str,
    log_stream_name: str,
    compute_environment: str,
    gpu_ids: tuple[str, ...] = (),
) -> tuple[Job, JobEvent]:
    """RUNNABLE -> STARTING: the job was placed and its next attempt's container is being made."""
    attempt = Attempt(
        number=len(job.attempts) + 1,
        task_id=task_id,
        container_name=container_name,
        log_stream_name=log_stream_name,
    )
    placed = replace(job, compute_environment=compute_environment, gpu_ids=gpu_ids)
    moved, event = transition(with_attempt(placed, attempt), JobStatus.STARTING, now)
    return moved, event


def mark_running(job: Job, now: EpochMs, container_id: str) -> tuple[Job, JobEvent]:
    """STARTING -> RUNNING: the container started; the attempt's clock starts here."""
    attempt = _current(job)
    started = replace(attempt, container_id=container_id, started_at=now)
    return transition(with_attempt(job, started), JobStatus.RUNNING, now)


def finish_attempt(job: Job, outcome: AttemptOutcome, now: EpochMs) -> tuple[Job, JobEvent, RetryDecision | None]:
    """The current attempt ended: record it, then succeed, retry (-> RUNNABLE) or fail.

    Returns the retry decision when the attempt failed, so callers can say why it was or
    was not retried.
    """
    attempt = replace(
        _current(job),
        stopped_at=now,
        exit_code=outcome.exit_code,
        reason=outcome.reason,
        status_reason=outcome.status_reason,
    )
    job = replace(with_attempt(job, attempt), gpu_ids=())
    if outcome.succeeded:
        moved, event = transition(job, JobStatus.SUCCEEDED, now, ESSENTIAL_CONTAINER_EXITED)
        return moved, event, None
    decision = decide(
        job.retry_strategy,
        attempt.number,
        retryable=outcome.retryable,
        status_reason=outcome.status_reason,
        reason=outcome.reason,
        exit_code=outcome.exit_code,
    )
    detail = f"{'retrying' if decision.retry else 'not retrying'}: {decision.why}"
    if decision.retry:
        moved, event = transition(job, JobStatus.RUNNABLE, now, outcome.status_reason)
        return moved, replace(event, detail=detail), decision
    if outcome.ending is Ending.TERMINATED:
        job = replace(job, is_terminated=True)
    moved, event = transition(job, JobStatus.FAILED, now, outcome.status_reason)
    return moved, replace(event, detail=detail), decision


def requeue(job: Job, now: EpochMs, reason: str) -> tuple[Job, JobEvent]:
    """STARTING -> RUNNABLE for an attempt whose container never started (the daemon went
    away first): the attempt never ran, so it is dropped and does not count against the retry
    strategy; the job waits to be placed again."""
    attempt = _current(job)
    if attempt.started_at is not None:
        raise ValueError(f"job {job.job_id}: attempt {attempt.number} started; it cannot be requeued")
    dropped = replace(job, attempts=job.attempts[:-1], gpu_ids=(), compute_environment=None)
    return transition(dropped, JobStatus.RUNNABLE, now, reason)


def fail_before_start(
    job: Job, now: EpochMs, reason: str, *, cancelled: bool = False, terminated: bool = False
) -> tuple[Job, JobEvent]:
    """A job that has no attempt in flight ends FAILED (cancel, terminate, never fits)."""
    flagged = replace(
        job,
        is_cancelled=job.is_cancelled or cancelled,
        is_terminated=job.is_terminated or terminated,
    )
    return transition(flagged, JobStatus.FAILED, now, reason)


def _current(job: Job) -> Attempt:
    attempt = job.current_attempt
    if attempt is None or attempt.finished:
        raise ValueError(f"job {job.job_id} has no attempt in flight")
    return attempt


class StopEffect(str, Enum):
    """What a recorded CancelJob/TerminateJob does to a job in its current state (AWS §4.4)."""

    FAIL = "FAIL"  # not started: the job ends FAILED, cancelled
    STOP_CONTAINER = "STOP_CONTAINER"  # TerminateJob on STARTING/RUNNING: stop the container
    IGNORE = "IGNORE"  # CancelJob on STARTING/RUNNING: no effect, as on AWS
    NONE = "NONE"  # no request, or the job already ended


def stop_effect(job: Job) -> StopEffect:
    request = job.stop_request
    if request is None or job.status.is_terminal:
        return StopEffect.NONE
    if job.status in (JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.RUNNABLE):
        return StopEffect.FAIL
    return StopEffect.STOP_CONTAINER if request.kind is StopKind.TERMINATE else StopEffect.IGNORE
