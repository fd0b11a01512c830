"""Jobs, attempts and the AWS Batch state machine.

A job moves through AWS Batch's states (aws-batch-reference.md §2):

    SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED
                   |           |  ^        |          |  |
                   +-----------+--|--------+----------+--+--> FAILED
                                  +--------(retry)----+

There is no CANCELLED state: a cancelled or terminated job ends FAILED with
``is_cancelled`` / ``is_terminated`` set. Every attempt (one container run) is recorded with
its exit code, reasons, log stream and times. Times are epoch milliseconds, as AWS reports
them, and always come in as arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from localbatch.core.consumables import Need
from localbatch.core.definition import NodeRangeProperty
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.core.usage import AttemptUsage
from localbatch.errors import InvalidTransition

EpochMs = int


class JobStatus(str, Enum):
    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNABLE = "RUNNABLE"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED)


S = JobStatus
TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    S.SUBMITTED: frozenset({S.PENDING, S.RUNNABLE, S.FAILED}),
    S.PENDING: frozenset({S.RUNNABLE, S.FAILED}),
    S.RUNNABLE: frozenset({S.STARTING, S.FAILED}),
    # STARTING -> RUNNABLE: the container failed to start and a retry remains.
    S.STARTING: frozenset({S.RUNNING, S.RUNNABLE, S.FAILED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.RUNNABLE}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}
# An array parent never runs: it waits (PENDING) while its children do, then ends as they did.
PARENT_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    S.SUBMITTED: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED}),
    S.PENDING: frozenset({S.SUCCEEDED, S.FAILED}),
    S.RUNNABLE: frozenset(),
    S.STARTING: frozenset(),
    S.RUNNING: frozenset(),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
}


@dataclass(frozen=True)
class Attempt:
    """One try of a job: one container (AWS's AttemptDetail).

    ``task_id`` plays the role of the ECS task id (32 hex characters) in AWS's log stream
    name ``<definition>/default/<task id>``.
    """

    number: int  # 1-based, as AWS_BATCH_JOB_ATTEMPT
    task_id: str
    container_name: str
    log_stream_name: str
    container_id: str | None = None
    started_at: EpochMs | None = None
    stopped_at: EpochMs | None = None
    exit_code: int | None = None
    reason: str | None = None  # container.reason, e.g. "OutOfMemoryError: ..."
    status_reason: str | None = None  # e.g. "Essential container in task exited"
    usage: AttemptUsage | None = None  # what it used, sampled while it ran (core.usage)

    @property
    def finished(self) -> bool:
        return self.stopped_at is not None


class DependencyType(str, Enum):
    """How an array job depends (aws-batch-reference.md §5.2); a plain dependency has none."""

    N_TO_N = "N_TO_N"  # child i waits for child i of the array named by job_id
    SEQUENTIAL = "SEQUENTIAL"  # child i waits for child i-1 of the same array (no job_id)


@dataclass(frozen=True)
class Dependency:
    """One ``dependsOn`` entry. On an array child it is resolved to the one job it waits for
    (``parent:i`` of the other array, or ``parent:i-1`` of its own)."""

    job_id: str | None = None
    type: DependencyType | None = None


class StopKind(str, Enum):
    CANCEL = "CANCEL"  # CancelJob: only jobs not yet STARTING
    TERMINATE = "TERMINATE"  # TerminateJob: any job; a running container is stopped


@dataclass(frozen=True)
class StopRequest:
    """A CancelJob/TerminateJob call recorded on the job, so it survives until the control
    loop applies it (and a daemon restart in between)."""

    kind: StopKind
    reason: str
    requested_at: EpochMs


@dataclass(frozen=True)
class Job:
    """A submitted job. ``container`` is resolved: overrides applied, ``Ref::`` substituted."""

    job_id: str
    job_name: str
    job_definition_name: str
    job_definition_revision: int
    job_queue: str
    container: ContainerSpec
    created_at: EpochMs
    status: JobStatus = JobStatus.SUBMITTED
    status_reason: str | None = None
    compute_environment: str | None = None
    started_at: EpochMs | None = None
    stopped_at: EpochMs | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    retry_strategy: RetryStrategy = field(default_factory=RetryStrategy)
    timeout_s: int | None = None
    attempts: tuple[Attempt, ...] = ()
    gpu_ids: tuple[str, ...] = ()  # devices held by the current attempt
    tags: Mapping[str, str] = field(default_factory=dict)
    propagate_tags: bool = False
    platform_capabilities: tuple[str, ...] = ("EC2",)
    scheduling_priority: int | None = None
    is_cancelled: bool = False
    is_terminated: bool = False
    runnable_at: EpochMs | None = None  # when it last became RUNNABLE (how long it has waited)
    stop_request: StopRequest | None = None
    depends_on: tuple[Dependency, ...] = ()
    # An array parent has array_size and no array_index; its children ``parent:i`` have both.
    array_size: int | None = None
    array_index: int | None = None
    share_identifier: str | None = None  # fair-share queues only
    # A multi-node parallel job (core.multinode) has num_nodes and main_node and no
    # node_index, and node_ranges as resolved at submit; its nodes ``<id>#i`` have all three.
    num_nodes: int | None = None
    main_node: int | None = None
    node_index: int | None = None
    node_ranges: tuple[NodeRangeProperty, ...] = ()
    # Who submitted it: the API key's name, or the daemon's OS user for its Unix socket;
    # None for jobs recorded before localbatch kept it. Array children and nodes inherit it.
    submitted_by: str | None = None
    consumable_resources: tuple[Need, ...] = ()  # (name, quantity) held while STARTING or RUNNING

    @property
    def is_multinode_parent(self) -> bool:
        """A multi-node parallel job's parent: it never runs; it follows its main node."""
        return self.num_nodes is not None and self.node_index is None

    @property
    def multinode_job_id(self) -> str | None:
        """The MNP job's id, for one of its nodes."""
        return self.job_id.rpartition("#")[0] if self.node_index is not None else None

    @property
    def is_main_node(self) -> bool:
        return self.node_index is not None and self.node_index == self.main_node

    @property
    def is_array_parent(self) -> bool:
        """An array job's parent: it never runs; its status follows its children's."""
        return self.array_size is not None and self.array_index is None

    @property
    def array_job_id(self) -> str | None:
        """The parent's id, for an array child."""
        return self.job_id.rpartition(":")[0] if self.array_index is not None else None

    @property
    def waits_for(self) -> tuple[str, ...]:
        """The ids of the jobs this job waits for (a SEQUENTIAL entry on a parent names none)."""
        return tuple(d.job_id for d in self.depends_on if d.job_id is not None)

    @property
    def current_attempt(self) -> Attempt | None:
        """The attempt in flight (STARTING/RUNNING), or the last one."""
        return self.attempts[-1] if self.attempts else None

    @property
    def exit_code(self) -> int | None:
        attempt = self.current_attempt
        return attempt.exit_code if attempt else None


@dataclass(frozen=True)
class JobEvent:
    """One state change, kept in the store as an append-only history."""

    job_id: str
    at: EpochMs
    from_status: JobStatus | None  # None for the submission itself
    to_status: JobStatus
    reason: str | None = None
    detail: str | None = None  # localbatch's word on it, e.g. why an attempt was (not) retried


def transition(job: Job, to: JobStatus, at: EpochMs, reason: str | None = None) -> tuple[Job, JobEvent]:
    """``job`` moved to ``to``, with the event that records it.

    Raises InvalidTransition for a change AWS Batch does not make. Sets ``runnable_at`` on
    entering RUNNABLE, ``started_at`` on entering RUNNING (AWS's startedAt) and
    ``stopped_at`` on reaching a terminal state.
    """
    allowed = PARENT_TRANSITIONS if job.is_array_parent else TRANSITIONS
    if to not in allowed[job.status]:
        raise InvalidTransition(job.job_id, job.status.value, to.value)
    changes: dict[str, object] = {"status": to, "status_reason": reason}
    if to is JobStatus.RUNNABLE:
        changes["runnable_at"] = at
    if to is JobStatus.RUNNING:
        changes["started_at"] = at
    if to.is_terminal:
        changes["stopped_at"] = at
    moved = replace(job, **changes)  # type: ignore[arg-type]
    return moved, JobEvent(job.job_id, at, job.status, to, reason)


def with_attempt(job: Job, attempt: Attempt) -> Job:
    """``job`` with its current attempt replaced by ``attempt`` (or appended if new)."""
    if job.attempts and job.attempts[-1].number == attempt.number:
        return replace(job, attempts=job.attempts[:-1] + (attempt,))
    return replace(job, attempts=job.attempts + (attempt,))
