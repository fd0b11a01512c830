"""The local infrastructure: compute environments (slices of this host) and job queues.

AWS's objects, with local meaning: a compute environment is a slice of the host, its
``max_vcpus``, ``max_memory_mib`` and GPU device ids the most its jobs may hold at once; a
job queue feeds compute environments in order, and queues sharing an environment are
served in descending ``priority`` (aws-batch-reference.md §1.3-1.4, §3.1-3.2). A queue's
``job_state_time_limit_actions`` cancel a head job stuck RUNNABLE too long (§3.6, see
``core.queue_limits``); an environment's ``spot`` rehearses Spot reclaims (``core.spot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from localbatch.core.resources import Resources
from localbatch.core.spot import SpotRehearsal

MAX_ENVIRONMENTS_PER_QUEUE = 3  # AWS's limit on computeEnvironmentOrder


class State(str, Enum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class ComputeEnvironment:
    name: str
    max_vcpus: float
    max_memory_mib: int
    gpu_ids: tuple[str, ...] = ()  # device ids (NVML indices) this environment owns
    state: State = State.ENABLED
    tags: Mapping[str, str] = field(default_factory=dict)
    spot: SpotRehearsal | None = None  # None: on-demand; else Spot, reclaimed as it says

    @property
    def capacity(self) -> Resources:
        return Resources(vcpus=self.max_vcpus, memory_mib=self.max_memory_mib, gpus=len(self.gpu_ids))

    @property
    def enabled(self) -> bool:
        return self.state is State.ENABLED


@dataclass(frozen=True)
class JobStateTimeLimitAction:
    """AWS's ``jobStateTimeLimitActions`` entry: cancel the queue's head job once it has waited
    ``max_time_seconds`` in ``state`` with ``reason`` as its statusReason code (§3.6)."""

    reason: str  # one of core.queue_limits.REASONS
    max_time_seconds: int
    state: str = "RUNNABLE"  # the only state AWS allows
    action: str = "CANCEL"  # the only action AWS allows for ECS queues


@dataclass(frozen=True)
class JobQueue:
    name: str
    priority: int
    compute_environments: tuple[str, ...]  # in the order jobs try them
    state: State = State.ENABLED
    tags: Mapping[str, str] = field(default_factory=dict)
    job_state_time_limit_actions: tuple[JobStateTimeLimitAction, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.state is State.ENABLED
