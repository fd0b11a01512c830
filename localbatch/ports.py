"""The ports: what the service layer needs from the outside world, as Protocols.

Adapters in ``localbatch.adapters`` implement them against real SDKs; ``tests/fakes/``
implements them in memory. Both pass the same contract suites (``tests/contract/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from localbatch.core.consumables import ConsumableResource
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy
from localbatch.core.inventory import HostInventory
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopRequest
from localbatch.core.spec import ContainerSpec

# ---------------------------------------------------------------------------------------
# Container runtime


@dataclass(frozen=True)
class Bind:
    """A host path mounted into the container (S3 staging's inputs and output directories)."""

    source: Path  # on the host: a file or a directory that exists
    target: str  # absolute path in the container
    read_only: bool = False


@dataclass(frozen=True)
class ContainerRequest:
    """One attempt's container, fully resolved."""

    name: str
    spec: ContainerSpec  # command already substituted
    # the job's environment plus AWS_BATCH_* and the store's variables (secrets: not in repr)
    environment: Mapping[str, str] = field(repr=False)
    labels: Mapping[str, str]
    gpu_device_ids: tuple[str, ...] = ()
    # name -> address added to the container's /etc/hosts; "host-gateway": the host's address
    # on the container's network (core.s3_access.HOST_ALIAS for a store on the host's loopback)
    extra_hosts: Mapping[str, str] = field(default_factory=dict)
    binds: tuple[Bind, ...] = ()  # besides the spec's own volumes and mount points


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int
    oom_killed: bool = False
    error: str | None = None  # the engine's own error text, if it gave one
    # When it stopped, as the engine recorded it (None: unknown). Not compared: two reads of one
    # exit are the same exit.
    finished_at_ms: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ContainerStats:
    """One reading of a running container's resource use."""

    cpu_ns: int  # cumulative CPU time since it started
    memory_bytes: int  # working set: usage less reclaimable page cache
    memory_limit_bytes: int | None = None


@dataclass(frozen=True)
class ContainerInfo:
    container_id: str
    name: str
    labels: Mapping[str, str]
    running: bool


@dataclass(frozen=True)
class EngineInfo:
    name: str  # "docker"
    version: str
    api_version: str
    network_mode: str  # what containers get: "host", "bridge", ...


class ContainerRuntime(Protocol):
    def engine_info(self) -> EngineInfo:
        """Ask the engine who it is. Raises RuntimeUnavailable when it does not answer."""
        ...

    def create(self, request: ContainerRequest) -> str:
        """Create (not start) the container, pulling the image if the pull policy says so.

        Returns the container id. Raises ImageError when the image is missing and cannot be
        pulled, ContainerRuntimeError when the engine refuses the container.
        """
        ...

    def start(self, container_id: str) -> None: ...

    def wait(self, container_id: str, timeout_s: float) -> ContainerExit | None:
        """Block until the container exits or ``timeout_s`` passes (then None).

        ``timeout_s <= 0`` only looks. A container never started gives None; one whose start
        the engine refused gives its exit with ``error`` set.
        """
        ...

    def stop(self, container_id: str, grace_s: float) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``. A container already gone is not an error."""
        ...

    def remove(self, container_id: str) -> None:
        """Remove the container (killing it if it still runs) and its anonymous volumes.
        A container already gone is not an error."""
        ...

    def logs(self, container_id: str) -> Iterator[bytes]:
        """Stdout and stderr interleaved, from the start, following until the container exits."""
        ...

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Every container (running or not) that carries all of ``labels``."""
        ...

    def stats(self, container_id: str) -> ContainerStats | None:
        """One reading of a running container's CPU time and memory, at once (no streaming,
        no waiting for a second reading); None when it is not running. Raises
        ContainerRuntimeError (a container the engine does not know, say)."""
        ...

    def address(self, container_id: str) -> str:
        """The IPv4 address other containers reach this running container at (a multi-node
        job's main node): 127.0.0.1 under host networking, else its address on its network.
        Raises ContainerRuntimeError when it has none."""
        ...

    def copy_out(self, container_id: str, path: str, into: Path) -> list[Path]:
        """Copy ``path`` (a file, or a directory and everything under it) out of the container,
        running or exited, into the host directory ``into``: a file lands as ``into/<name>``,
        a directory as ``into/<name>/...``. Returns the regular files written. Links and special
        files are not copied, and nothing is written outside ``into``. Raises
        ContainerRuntimeError naming ``path`` when the container has no such path."""
        ...

    def close(self) -> None:
        """Release the connection to the engine."""
        ...


# ---------------------------------------------------------------------------------------
# State store


ACTIVE, INACTIVE = "ACTIVE", "INACTIVE"  # a job definition revision's status, as AWS names it


@dataclass(frozen=True)
class JobDefinitionRecord:
    """One registered revision. ``document`` is the definition as a TOML-shaped dict
    (``jobdef.to_document``), so the store need not know the definition's fields."""

    name: str
    revision: int
    status: str  # ACTIVE | INACTIVE
    document: Mapping[str, object]
    created_at: EpochMs


@dataclass(frozen=True)
class JobQuery:
    """Which jobs to list, newest ``created_at`` first (ties: ``job_id`` ascending).

    ``after`` is the (created_at, job_id) of the last job of the previous page: keyset
    pagination, so page N costs the same as page 1.
    """

    statuses: tuple[JobStatus, ...] = ()  # empty: every status
    job_queue: str | None = None
    name_prefix: str | None = None  # case-insensitive prefix of job_name (ListJobs' JOB_NAME filter)
    created_after: EpochMs | None = None  # exclusive bounds on created_at
    created_before: EpochMs | None = None
    after: tuple[EpochMs, str] | None = None
    limit: int = 100
    # The children of this array job, by index (``after`` is then (index, job_id)). Without
    # it, array children are left out: a queue lists its array jobs by their parents, as AWS.
    array_job_id: str | None = None
    # The nodes of this multi-node job, by index (``after`` is then (index, job_id)). Without
    # it, nodes are left out: a queue lists a multi-node job by its parent.
    multi_node_job_id: str | None = None
    # ListJobs' JOB_DEFINITION filter: the definition's name (case-sensitive; every revision
    # unless ``job_definition_revision``), or the start of it when ``job_definition_prefix``.
    job_definition: str | None = None
    job_definition_revision: int | None = None
    job_definition_prefix: bool = False
    # The jobs that need this consumable resource (ListJobsByConsumableResource): array
    # children included, array parents (which never hold any) left out.
    consumable_resource: str | None = None


TAGGABLE = ("job", "job-definition", "job-queue", "compute-environment", "scheduling-policy", "consumable-resource")


@dataclass(frozen=True)
class TagTarget:
    """A resource that has tags, as its ARN names it: ``kind`` one of ``TAGGABLE``, ``name``
    the job id or the name, ``revision`` for a job definition (and only for one)."""

    kind: str
    name: str
    revision: int | None = None


@dataclass(frozen=True)
class LoggedEvent:
    """One entry of the event log, in ``seq`` order (1, 2, 3 ... never reused).

    ``kind`` ``"job"``: a job's state change (its ``event``; ``job`` the job as saved with
    it). Any other kind is a note the daemon wrote (a failed delivery, say): ``note`` holds
    what it says, and ``job_id``/``job_queue``/``status`` the job event it is about, if any.
    """

    seq: int
    at: EpochMs
    kind: str
    job_id: str | None = None
    job_queue: str | None = None
    status: str | None = None
    job: Job | None = None
    event: JobEvent | None = None
    note: Mapping[str, object] = field(default_factory=dict)


JOB_EVENT = "job"  # LoggedEvent.kind of a job's state change


@dataclass(frozen=True)
class EventLogQuery:
    """Which entries of the event log to read, oldest first: those after ``after_seq``."""

    after_seq: int = 0
    job_queue: str | None = None
    statuses: tuple[str, ...] = ()  # empty: every status (and notes about no job event)
    kinds: tuple[str, ...] = ()  # empty: every kind
    since: EpochMs | None = None  # only entries at or after this time
    limit: int = 100


@dataclass(frozen=True)
class Note:
    """What the daemon appends to the event log besides state changes (``kind`` not "job")."""

    at: EpochMs
    kind: str
    body: Mapping[str, object]
    job_id: str | None = None
    job_queue: str | None = None
    status: str | None = None


class StateStore(Protocol):
    def register_job_definition(self, name: str, document: Mapping[str, object], now: EpochMs) -> JobDefinitionRecord:
        """Store a new ACTIVE revision (1, 2, 3, ... per name; never reused)."""
        ...

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        """A given revision, or the latest ACTIVE one when ``revision`` is None."""
        ...

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None:
        """Mark a revision INACTIVE; the record as it now is, or None if there is none."""
        ...

    def list_job_definitions(self, name: str | None = None, status: str | None = None) -> list[JobDefinitionRecord]:
        """Revisions, by name then revision; optionally one name and/or one status."""
        ...

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        """Insert or update ``job`` (with its attempts) and append ``events``, atomically.
        An update keeps the stored job's tags: after the insert only ``update_tags`` changes
        them (the control loop saves copies it read before a TagResource)."""
        ...

    def save_jobs(self, changes: Sequence[tuple[Job, Sequence[JobEvent]]]) -> None:
        """``save_job`` for many jobs in one transaction (the control loop's batch). A job
        saved out of STARTING or RUNNING (as stored) uses up its NON_REPLENISHABLE consumable
        resources' quantities in the same transaction (``core.consumables.holds``)."""
        ...

    def request_stop(self, job_id: str, request: StopRequest) -> Job | None:
        """Record a cancel/terminate request on a job that has none yet (a TERMINATE also
        replaces a pending CANCEL); the job as it now is (unchanged if the request was not
        recorded or the job is terminal), or None if there is no job.

        A recorded request survives every ``save_job``: a save carrying no request keeps the
        stored one, so the control loop cannot lose a request it had not yet seen. Only
        ``clear_stop_request`` removes one."""
        ...

    def clear_stop_request(self, job_id: str, request: StopRequest) -> None:
        """Forget ``request`` (for a CancelJob a started job ignores), but not a request
        recorded since."""
        ...

    def active_jobs(self) -> list[Job]:
        """Every job not yet SUCCEEDED or FAILED (what a starting daemon takes over)."""
        ...

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        """The share identifiers of the queue's jobs not yet SUCCEEDED or FAILED."""
        ...

    def count_jobs(self, job_queue: str | None = None, array_job_id: str | None = None) -> dict[JobStatus, int]:
        """How many jobs are in each status (zeros omitted): all, one queue's, or the
        children of one array job."""
        ...

    def get_job(self, job_id: str) -> Job | None: ...

    def list_jobs(self, query: JobQuery) -> list[Job]:
        """Jobs matching ``query``, newest ``created_at`` first."""
        ...

    def list_events(self, job_id: str) -> list[JobEvent]:
        """The job's state changes, oldest first."""
        ...

    def recent_jobs(self, job_definition_name: str, limit: int) -> list[Job]:
        """Up to ``limit`` ended jobs of the definition (any revision) that ran containers
        (array and multi-node parents left out), most recently stopped first; ties by job id."""
        ...

    def read_event_log(self, query: EventLogQuery) -> list[LoggedEvent]:
        """Entries after ``query.after_seq`` that match it, oldest first, at most ``limit``.

        Every state change saved through ``save_job(s)`` is an entry of kind "job", written
        in the same transaction, except a job's first event (its submission: AWS sends no
        event for it either); its ``job`` is the job as that save left it."""
        ...

    def last_event_seq(self) -> int:
        """The newest entry's ``seq``; 0 when the log is empty."""
        ...

    def append_notes(self, notes: Sequence[Note]) -> list[int]:
        """Append ``notes`` in order, in one transaction; their ``seq`` numbers."""
        ...

    def get_rule_states(self) -> dict[str, Mapping[str, object]]:
        """What the daemon's schedules and triggers recorded about themselves, by name."""
        ...

    def put_rule_state(self, name: str, state: Mapping[str, object]) -> None:
        """Insert or replace one rule's record (a JSON object)."""
        ...

    def put_compute_environment(self, environment: ComputeEnvironment) -> None:
        """Insert or replace (by name)."""
        ...

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None: ...

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        """By name."""
        ...

    def delete_compute_environment(self, name: str) -> bool:
        """True if there was one."""
        ...

    def put_job_queue(self, queue: JobQueue) -> None:
        """Insert or replace (by name)."""
        ...

    def get_job_queue(self, name: str) -> JobQueue | None: ...

    def list_job_queues(self) -> list[JobQueue]:
        """By name."""
        ...

    def delete_job_queue(self, name: str) -> bool:
        """True if there was one."""
        ...

    def put_scheduling_policy(self, policy: SchedulingPolicy) -> None:
        """Insert or replace (by name)."""
        ...

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None: ...

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        """By name."""
        ...

    def delete_scheduling_policy(self, name: str) -> bool:
        """True if there was one."""
        ...

    def put_consumable_resource(self, resource: ConsumableResource) -> None:
        """Insert or replace (by name)."""
        ...

    def get_consumable_resource(self, name: str) -> ConsumableResource | None: ...

    def list_consumable_resources(self) -> list[ConsumableResource]:
        """By name."""
        ...

    def delete_consumable_resource(self, name: str) -> bool:
        """True if there was one."""
        ...

    def update_consumable_total(
        self, name: str, change: Callable[[ConsumableResource], int]
    ) -> ConsumableResource | None:
        """Set the total to ``change(resource)`` (which may raise to change nothing), read and
        written in one transaction; the resource as it now is, or None when there is none."""
        ...

    def update_tags(self, target: TagTarget, add: Mapping[str, str], remove: Sequence[str]) -> dict[str, str] | None:
        """Drop the keys in ``remove``, then set ``add`` (keys not named stay), on the tags of
        ``target`` in one transaction; the tags as they now are (with nothing to change, as
        they are), or None when there is no such resource. Works on any job, job definition
        revision (ACTIVE or not), queue, compute environment or scheduling policy."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------
# Host and clock


@dataclass(frozen=True)
class StoredObject:
    """An object in the S3-compatible store."""

    bucket: str
    key: str
    size: int
    etag: str | None = None


class ObjectStore(Protocol):
    """The S3-compatible object store. Errors are ObjectStoreError (StoreUnreachable,
    StoreAccessDenied, NoSuchBucket)."""

    def buckets(self) -> list[str]: ...

    def make_bucket(self, bucket: str) -> None:
        """Create ``bucket``; one that exists already is left as it is."""
        ...

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        """Every object whose key starts with ``prefix``, by key."""
        ...

    def upload(self, path: Path, bucket: str, key: str) -> StoredObject:
        """Write the file at ``path`` (multipart when large) and return what the store holds.
        Both directions are checked by size and checksum (ObjectStoreError)."""
        ...

    def download(self, bucket: str, key: str, path: Path) -> StoredObject:
        """Write the object to ``path`` (parents created) and return what was read."""
        ...

    def delete(self, bucket: str, key: str) -> None:
        """Remove the object; one that does not exist is not an error."""
        ...


class HostProbe(Protocol):
    def probe(self) -> HostInventory:
        """CPUs, memory and GPUs of this host. Raises HostProbeError if they cannot be read."""
        ...


class Clock(Protocol):
    def now_ms(self) -> EpochMs:
        """Wall-clock time in epoch milliseconds (what AWS reports as createdAt and friends)."""
        ...
