"""The local infrastructure: compute environments (slices of this host) and job queues.

AWS's objects, with local meaning: a compute environment is a slice of the host, its
``max_vcpus``, ``max_memory_mib`` and GPU device ids the most its jobs may hold at once; a
job queue feeds compute environments in order, and queues sharing an environment are
served in descending ``priority`` (aws-batch-reference.md §1.3-1.4, §3.1-3.2). A queue that
names a scheduling policy is a fair-share queue: its jobs run in the order of their shares'
weighted usage (§1.5, §3.4; the scheduler's rule 10). A queue's
``job_state_time_limit_actions`` cancel a head job stuck RUNNABLE too long (§3.6, see
``core.queue_limits``); an environment's ``spot`` rehearses Spot reclaims (``core.spot``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from localbatch.core.resources import Resources
from localbatch.core.spot import SpotRehearsal
from localbatch.errors import Problem

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
    scheduling_policy: str | None = None  # a policy's name: a fair-share queue; None: FIFO
    job_state_time_limit_actions: tuple[JobStateTimeLimitAction, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.state is State.ENABLED


# ---------------------------------------------------------------------------------------------
# Scheduling policies (fair share): aws-batch-reference.md §1.5, §3.4

MAX_SHARE_DECAY_SECONDS = 604_800  # a week
DEFAULT_DECAY_WINDOW_S = 600  # what shareDecaySeconds = 0 means (AWS's model: the minimum window)
MAX_COMPUTE_RESERVATION = 99
MIN_WEIGHT_FACTOR = 0.0001
MAX_WEIGHT_FACTOR = 999.9999
MAX_SHARE_IDENTIFIER = 255
MAX_ACTIVE_SHARES = 500  # share identifiers per queue with unfinished jobs


@dataclass(frozen=True)
class ShareWeight:
    """One ``shareDistribution`` entry: an identifier, or a prefix rule ending in ``*``."""

    share_identifier: str
    weight_factor: float = 1.0

    @property
    def is_prefix(self) -> bool:
        return self.share_identifier.endswith("*")

    def matches(self, share: str) -> bool:
        if self.is_prefix:
            return share.startswith(self.share_identifier[:-1])
        return share == self.share_identifier


@dataclass(frozen=True)
class SchedulingPolicy:
    """A fair-share policy: a queue that names one orders its jobs by share (scheduler rule 10)."""

    name: str
    share_decay_seconds: int = 0
    compute_reservation: int = 0
    share_distribution: tuple[ShareWeight, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def decay_window_s(self) -> int:
        """The window usage is measured over: ``share_decay_seconds``, 0 meaning 600 s."""
        return self.share_decay_seconds or DEFAULT_DECAY_WINDOW_S

    def weight(self, share: str) -> float:
        """The share's ``weight_factor``: its entry's, or 1.0 when no entry matches.
        Entries never overlap (``policy_problems``), so at most one matches."""
        for entry in self.share_distribution:
            if entry.matches(share):
                return entry.weight_factor
        return 1.0


def share_identifier_problem(share: str) -> str | None:
    """Why ``share`` cannot be a share identifier, or None."""
    if not share:
        return "must not be empty"
    if len(share) > MAX_SHARE_IDENTIFIER:
        return f"at most {MAX_SHARE_IDENTIFIER} characters, got {len(share)}"
    return None


def policy_problems(policy: SchedulingPolicy) -> list[Problem]:
    """Everything wrong with ``policy``, each naming its field in snake_case
    (``share_distribution[1].weight_factor``); the API spells them AWS's way."""
    problems = []
    if not 0 <= policy.share_decay_seconds <= MAX_SHARE_DECAY_SECONDS:
        problems.append(
            Problem("share_decay_seconds", f"must be 0 to {MAX_SHARE_DECAY_SECONDS}, got {policy.share_decay_seconds}")
        )
    if not 0 <= policy.compute_reservation <= MAX_COMPUTE_RESERVATION:
        problems.append(
            Problem(
                "compute_reservation",
                f"must be 0 to {MAX_COMPUTE_RESERVATION} (percent), got {policy.compute_reservation}",
            )
        )
    entries = policy.share_distribution
    for i, entry in enumerate(entries):
        where = f"share_distribution[{i}]"
        why = share_identifier_problem(entry.share_identifier)
        if why is None and "*" in entry.share_identifier[:-1]:
            why = "'*' may only end an identifier (a prefix rule)"
        if why is not None:
            problems.append(Problem(f"{where}.share_identifier", f"{entry.share_identifier!r}: {why}"))
        weight = entry.weight_factor
        if not (MIN_WEIGHT_FACTOR <= weight <= MAX_WEIGHT_FACTOR):  # NaN fails too
            problems.append(
                Problem(f"{where}.weight_factor", f"must be {MIN_WEIGHT_FACTOR} to {MAX_WEIGHT_FACTOR}, got {weight}")
            )
        for j, other in enumerate(entries[:i]):
            if _overlap(entry, other):
                problems.append(
                    Problem(
                        f"{where}.share_identifier",
                        f"{entry.share_identifier!r} overlaps share_distribution[{j}] "
                        f"{other.share_identifier!r}: every share identifier may match one entry only",
                    )
                )
    return problems


def _overlap(a: ShareWeight, b: ShareWeight) -> bool:
    """Whether some share identifier would match both entries."""
    if a.share_identifier == b.share_identifier:
        return True
    if a.is_prefix and b.share_identifier.startswith(a.share_identifier[:-1]):
        return True
    return b.is_prefix and a.share_identifier.startswith(b.share_identifier[:-1])
