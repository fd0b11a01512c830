"""The ports: what the service layer needs from the outside world, as Protocols.

Adapters in ``localbatch.adapters`` implement them against real SDKs; ``tests/fakes/``
implements them in memory. Both pass the same contract suites (``tests/contract/``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from localbatch.core.inventory import HostInventory
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus
from localbatch.core.spec import ContainerSpec

# ---------------------------------------------------------------------------------------
# Container runtime


@dataclass(frozen=True)
class ContainerRequest:
    """One attempt's container, fully resolved."""

    name: str
    spec: ContainerSpec  # command already substituted
    environment: Mapping[str, str]  # the job's environment plus AWS_BATCH_*
    labels: Mapping[str, str]
    gpu_device_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerExit:
    exit_code: int
    oom_killed: bool = False
    error: str | None = None  # the engine's own error text, if it gave one


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

    def close(self) -> None:
        """Release the connection to the engine."""
        ...


# ---------------------------------------------------------------------------------------
# State store


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
    statuses: tuple[JobStatus, ...] = ()  # empty: every status
    job_queue: str | None = None
    limit: int = 100


class StateStore(Protocol):
    def register_job_definition(
        self, name: str, document: Mapping[str, object], now: EpochMs
    ) -> JobDefinitionRecord:
        """Store a new ACTIVE revision (1, 2, 3, ... per name; never reused)."""
        ...

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        """A given revision, or the latest ACTIVE one when ``revision`` is None."""
        ...

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        """Insert or update ``job`` (with its attempts) and append ``events``, atomically."""
        ...

    def get_job(self, job_id: str) -> Job | None: ...

    def list_jobs(self, query: JobQuery) -> list[Job]:
        """Jobs matching ``query``, newest ``created_at`` first."""
        ...

    def list_events(self, job_id: str) -> list[JobEvent]:
        """The job's state changes, oldest first."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------
# Host and clock


class HostProbe(Protocol):
    def probe(self) -> HostInventory:
        """CPUs, memory and GPUs of this host. Raises HostProbeError if they cannot be read."""
        ...


class Clock(Protocol):
    def now_ms(self) -> EpochMs:
        """Wall-clock time in epoch milliseconds (what AWS reports as createdAt and friends)."""
        ...
