"""The scheduler: which runnable jobs start now, where, and why every other job waits.

``plan()`` is a pure function in the manner of Nomad's scheduler: a snapshot of the world goes
in (runnable jobs, queues, compute environments, the jobs holding resources now, the host, the
time) and a ``Plan`` comes out (placements, and a reason for every job left waiting). The daemon
applies the plan; nothing here reads a clock, a store or an engine. The rules, each with why:

1. **Queues in descending priority, ties by name.** AWS Batch evaluates queues that share a
   compute environment in descending ``priority`` (aws-batch-reference.md §3.1); the name breaks
   ties so the same input always gives the same plan.
2. **FIFO within a queue, by (created_at, array_index, job_id).** AWS orders a FIFO queue by
   submission time (§3.3); an array's children, submitted together, go in index order; the job
   id breaks ties between jobs submitted in the same millisecond. A fair-share queue (one that
   names a scheduling policy) orders its jobs by share instead: rule 10.
3. **Compute environments in the queue's order; first that can take the job now wins.** AWS's
   ``computeEnvironmentOrder`` (§3.2): the second environment is a spill-over for the first.
   Names the queue lists that do not exist are ignored, repeated names count once.
4. **Never over-commit.** A job fits an environment when its vCPU, memory and GPU request fits
   the environment's maximum minus what its allocations and this pass's placements hold, *and*
   fits the host minus everything held in every environment: environments are slices a user
   configures and their sum may exceed the machine, the machine may not be exceeded. vCPUs are
   counted in thousandths as integers (no float drift). A dimension already over its limit (an
   update shrank an environment) takes nothing more, but a request of 0 in it still fits.
5. **GPUs are whole devices with names.** A placement gets specific device ids: the free ones of
   its environment's ``gpu_ids``, in that order. A device held by any allocation or placement is
   never handed out again, even when two environments list it, because a device given to two
   containers is a bug a user cannot see.
6. **DISABLED stops dispatch.** A DISABLED queue places nothing; a DISABLED environment takes no
   new job (running ones keep running). Both as AWS.
7. **Backfill.** A job that does not fit now does not block the jobs behind it, in its queue or
   in lower queues: smaller jobs start past it. AWS does not document whether it backfills
   (§3.3); we do, because on one workstation an idle core behind a big job is waste the user sees.
8. **Starvation guarantee (the price of backfill).** Backfill alone can starve a big job forever:
   a stream of small jobs keeps its environment from ever being empty enough. So each queue has
   at most one *starving head*: its first job in FIFO order that waits for capacity (not for a
   DISABLED object, not too big for every environment) and has waited ``max_head_wait_s`` or
   more (``now - runnable_at``); normally simply the queue's head. From its turn in the pass on,

   - the environments that could hold it (enabled, large enough when empty) take no further job,
     from its own queue or any queue served after it; when it needs GPUs, their devices are not
     handed out through other environments that list them either;
   - its request is subtracted from the host-wide free capacity for every job served after it
     (per dimension: later jobs may use only what is free beyond the request; a dimension the
     head is short of takes nothing more, though a request of 0 in it still fits).

   **Guarantee.** Let t0 be the first pass at which H is its queue's starving head, and D the
   longest remaining run time of the jobs holding resources at t0. If, while H waits, nothing
   served *before* H in a pass (see the limits) takes capacity H needs, H starts at the first
   pass at or after t0 + D. By then every job that held its environments at t0 has ended and
   none has replaced it, so its first environment is empty, which H fits (``never_fits`` at
   submit makes sure of that); host-wide, no job served after H took what H needs. Passes run
   every tick, so H waits at most ``max_head_wait_s`` + D + two ticks after it became runnable
   (one tick when passes fall on those moments).

   **Limits.** What is served before H is not held back: the queues of higher priority (and of
   equal priority whose names sort first) and the jobs ahead of H in its own queue. Priority is
   AWS's contract (§3.1), so a higher-priority queue that never runs dry delays H for as long as
   it flows; running jobs are never preempted. A job ahead of H in FIFO order that starves as
   well (one that became runnable after H, or a retry keeping its created_at) becomes the
   queue's starving head in H's place until it starts. Holding back trades throughput for the
   guarantee: an environment with room for small jobs idles while it drains for H. Changing an
   environment (resizing, disabling) changes what H can fit and when.
9. **Every waiting job says why** (Nomad's ``AllocsFit``): a ``WaitReason`` with AWS's
   statusReason code (§3.6) and a message naming the resource and both numbers, as things stood
   when its turn came in the pass. The host when one of the job's environments has room for it
   but the host has not ("on this host"); otherwise the first environment the job could use
   (enabled, large enough when empty).

   - ``ACTION_REQUIRED - job queue q is DISABLED`` / ``... does not exist`` / ``... has no
     compute environment`` / ``every compute environment of job queue q is DISABLED``;
   - ``MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - needs 64 vCPU; the largest compute
     environment of queue q (local) has 16 vCPU`` (an update shrank the environments after submit);
   - ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 4 vCPU, 1.5 vCPU free in compute
     environment local`` / ``... free on this host`` / ``waiting behind job j, which has waited
     75 s and holds back compute environment local``.

10. **Fair share: the share with the lowest weighted usage goes next.** In a queue that names a
    scheduling policy (aws-batch-reference.md §1.5, §3.4-3.5), each job is tried in turn from
    the share whose usage is lowest, where a share's usage is

        weight_factor x (decayed vCPU-seconds its ended attempts consumed / window
                         + vCPUs its jobs hold now)

    ``window`` is the policy's ``share_decay_seconds`` (0 means 600 s); what a job placed earlier
    in the same pass holds counts at once, so one pass interleaves the shares. The history comes
    in as ``usage`` (the control loop keeps it in ``core.fairshare.UsageHistory``, decaying each
    ended attempt's vCPU x run seconds); AWS does not publish its decay function, this one is
    exponential with the window as time constant. A lower weight means more capacity: under contention a share
    of weight 1 gets about 3x what a share of weight 3 gets. Within a share, higher
    ``scheduling_priority`` first, then FIFO (created_at, job_id). Ties between shares go to the
    identifier that sorts first. Backfill (7) and the starving head (8) work as in a FIFO queue,
    over this order. A job with no share identifier (queued before its queue got a policy
    through the config file) counts as the share "".
11. **computeReservation keeps room for new shares.** During a fair-share queue's turn each of
    its environments keeps ``(compute_reservation / 100) ^ active`` of its max vCPUs free, where
    ``active`` counts the queue's share identifiers with jobs waiting or holding resources
    (AWS's formula, §3.4: 50 keeps half with one active share, a quarter with two). The reserved
    vCPUs are free to later queues in the pass, and a job of the queue that waits for capacity
    says how much was kept. A job larger than what the reservation leaves waits until another
    share becomes active (the same trade AWS makes; docs/scheduling.md).
12. **Consumable resources gate a job before capacity does.** A job that lists consumable
    resources (``core.consumables``) is tried only when each has the quantity it needs
    available; a placement takes the quantities at once, so one pass never hands out more than
    there is. A job short of one waits with ``CONSUMABLE_RESOURCE:INSUFFICIENT_QUANTITY - needs
    2 of consumable resource licences, 1 available`` (AWS publishes no code for this wait; the
    code is localbatch's) and, as with backfill, does not block the jobs behind it. It never
    becomes a starving head: holding capacity back would not make the resource come back
    sooner.
13. **Per-user limits gate a job before anything else** (``[policy]``'s ``max_running_vcpus``,
    ``max_running_gpus``, ``max_running_jobs``; ``core.policy``). A job whose owner would go
    over a limit by starting it waits with ``POLICY:USER_LIMIT - user alice runs 6 of
    max_running_vcpus 8; needs 4`` (localbatch's code: AWS has no such limit) and does not
    block the jobs behind it; this pass's placements count at once. A job that alone exceeds a
    limit is refused at submit. A multi-node job counts its nodes as jobs.

Deterministic: inputs are sorted, so their order does not matter (names of jobs, queues and
environments are assumed unique). Fast: one pass is O(n log n) for the FIFO sort and O(n) after
it (a fair-share queue adds O(log shares) per job). Within a queue, capacity only shrinks as the
pass goes on, so a request size that did not fit will not fit later in that queue's turn: it is
not tried again (the "stop early when nothing more can fit" rule, per size). Reasons are built
once per request size until capacity changes, and shared.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from localbatch.core import consumables, policy
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy
from localbatch.core.jobs import EpochMs
from localbatch.core.resources import Resources

CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
MAX_RESOURCE = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
ACTION_REQUIRED = "ACTION_REQUIRED"

_MILLI = 1000

# A request or a capacity in integers: (milli-vCPU, memory MiB, GPUs).
_Vec = tuple[int, int, int]
# A queue's FIFO entry: (created_at, array_index, job_id, request, runnable_at). Tuples sort
# fast and in order.
_Item = tuple[int, int, str, _Vec, int]
# Dimensions in the order a shortfall is reported: the scarcest resource first, as shortfall().
_GPU, _VCPU, _MEMORY = 2, 0, 1
_REPORT_ORDER = (_GPU, _VCPU, _MEMORY)
_UNIT = {_VCPU: "vCPU", _MEMORY: "MiB memory", _GPU: "GPU"}


@dataclass(frozen=True, slots=True)
class RunnableJob:
    job_id: str
    job_queue: str
    resources: Resources
    created_at: EpochMs  # FIFO within a queue: (created_at, array_index, job_id) ascending
    runnable_at: EpochMs  # since when it has been RUNNABLE (the starvation clock)
    share_identifier: str | None = None  # fair-share queues only (rule 10)
    scheduling_priority: int = 0  # higher first among jobs of one share (rule 10); FIFO queues ignore it
    array_index: int = 0  # an array's children, submitted together, run in index order
    consumables: tuple[consumables.Need, ...] = ()  # consumable resources it needs (rule 12)
    owner: str | None = None  # who submitted it: per-user limits apply to them (rule 13)
    jobs: int = 1  # how many running jobs it counts as under the per-user limits: its nodes (rule 13)
    # The job's FIFO entry, made once: the daemon keeps a RunnableJob for as long as the job
    # waits, so a pass over 10,000 waiting jobs does not convert 10,000 requests again.
    fifo_item: _Item = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        res = self.resources
        need = (round(res.vcpus * _MILLI), res.memory_mib, res.gpus)
        object.__setattr__(self, "fifo_item", (self.created_at, self.array_index, self.job_id, need, self.runnable_at))


@dataclass(frozen=True, slots=True)
class Allocation:
    """A job holding resources now (STARTING or RUNNING)."""

    job_id: str
    compute_environment: str
    resources: Resources
    gpu_ids: tuple[str, ...] = ()
    job_queue: str = ""  # with share_identifier: what a fair-share queue's share holds now (rule 10)
    share_identifier: str | None = None
    owner: str | None = None  # who submitted it (rule 13)


@dataclass(frozen=True, slots=True)
class Placement:
    job_id: str
    compute_environment: str
    gpu_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WaitReason:
    code: str  # AWS's statusReason code, e.g. "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    message: str  # human text naming the resource and the numbers

    def __str__(self) -> str:
        return f"{self.code} - {self.message}"  # AWS's "CODE - text" form


@dataclass(frozen=True, slots=True)
class Plan:
    placements: tuple[Placement, ...]
    # every runnable job not placed, by job id; each queue's in the order its turn took them
    waiting: Mapping[str, WaitReason]
    # When a job waiting for capacity next reaches max_head_wait_s (rule 8): the plan can change
    # then with nothing else changing. None when no waiting job will.
    next_starving_at: EpochMs | None = None
    # Each queue's head: the first job of its dispatch order left waiting (for AWS's
    # jobStateTimeLimitActions, core.queue_limits). Queues with no waiting job are absent.
    heads: Mapping[str, str] = field(default_factory=dict)


FRONT_OF_QUEUE = 100  # how many waiting jobs GetJobQueueSnapshot lists per queue, as AWS


@dataclass(frozen=True, slots=True)
class FrontEntry:
    """A waiting job at the front of its queue, and since when it has held that position."""

    job_id: str
    since: EpochMs


def fronts(
    waiting: Iterable[str],
    queue_of: Callable[[str], str],
    previous: Mapping[str, Sequence[FrontEntry]],
    now: EpochMs,
    limit: int = FRONT_OF_QUEUE,
) -> dict[str, tuple[FrontEntry, ...]]:
    """Each queue's first ``limit`` waiting jobs in dispatch order (AWS's frontOfQueue), from a
    plan's waiting jobs in the order the pass took them (``Plan.waiting``). A job at the
    position it held in ``previous`` keeps its ``since``; any other gets ``now``."""
    found: dict[str, list[FrontEntry]] = {}
    for job_id in waiting:
        name = queue_of(job_id)
        entries = found.setdefault(name, [])
        if len(entries) >= limit:
            continue
        before = previous.get(name, ())
        at = len(entries)
        kept = at < len(before) and before[at].job_id == job_id
        entries.append(before[at] if kept else FrontEntry(job_id, now))
    return {name: tuple(entries) for name, entries in found.items()}


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    max_head_wait_s: float = 60.0  # see rule 8; math.inf turns the starvation guarantee off

    def __post_init__(self) -> None:
        if math.isnan(self.max_head_wait_s) or self.max_head_wait_s < 0:
            raise ValueError(f"max_head_wait_s must be 0 or more, got {self.max_head_wait_s}")


# ---------------------------------------------------------------------------------------------
# Numbers and words


def _vec(resources: Resources) -> _Vec:
    return (round(resources.vcpus * _MILLI), resources.memory_mib, resources.gpus)


def _amount(dim: int, value: int) -> str:
    """``value`` in ``dim``'s unit, exact: milli-vCPU print as decimals without float noise."""
    if dim != _VCPU:
        return f"{value} {_UNIT[dim]}"
    whole, milli = divmod(value, _MILLI)
    if not milli:
        return f"{whole} vCPU"
    return f"{whole}.{milli:03d}".rstrip("0") + " vCPU"


def _first_short(need: _Vec, have: Sequence[int]) -> int | None:
    """The first dimension (GPU, vCPU, memory) in which ``need`` exceeds ``have``."""
    for dim in _REPORT_ORDER:
        if need[dim] > have[dim]:
            return dim
    return None


def _environments_text(names: Sequence[str]) -> str:
    if len(names) == 1:
        return f"compute environment {names[0]}"
    return f"compute environments {', '.join(names)}"


# ---------------------------------------------------------------------------------------------
# Never fits: the submit-time check, and the MISCONFIGURATION reason when an update shrank things


def never_fits(
    request: Resources, queue: JobQueue, environments: Sequence[ComputeEnvironment], host: Resources
) -> str | None:
    """Why a job with this request can never run in this queue (it exceeds every compute environment
    of the queue, considering each environment's max and the host), naming the resource and both
    numbers — e.g. "needs 64 vCPU; the largest compute environment of queue default (local) has 16 vCPU".
    None if some environment could hold it when empty (DISABLED environments count: they can be enabled).
    """
    by_name = {env.name: env for env in environments}
    members = [by_name[name] for name in dict.fromkeys(queue.compute_environments) if name in by_name]
    maxima = [(env.name, _env_max(env)) for env in members]
    return _too_big(_vec(request), queue, maxima, _vec(host))


def _amounts(vec: _Vec, dims: Sequence[int]) -> str:
    return " and ".join(_amount(dim, vec[dim]) for dim in dims)


def _env_max(env: ComputeEnvironment) -> _Vec:
    return (round(env.max_vcpus * _MILLI), env.max_memory_mib, len(env.gpu_ids))


def _effective(maximum: _Vec, host: _Vec) -> _Vec:
    """What an environment can hold when empty on this host: its max, but never more than the host."""
    return (min(maximum[0], host[0]), min(maximum[1], host[1]), min(maximum[2], host[2]))


def _too_big(need: _Vec, queue: JobQueue, maxima: Sequence[tuple[str, _Vec]], host: _Vec) -> str | None:
    """``never_fits``'s text for integer vectors; ``maxima`` are the queue's environments in order.

    Names every dimension in which no environment is big enough (the binding limit: the host's
    size when the host is smaller than the largest environment), else each environment's own
    shortfall (each is too small somewhere, in different dimensions).
    """
    if not maxima:
        return f"job queue {queue.name} has no compute environment"
    if any(_first_short(need, _effective(cap, host)) is None for _, cap in maxima):
        return None
    limits: dict[str, tuple[_Vec, list[int]]] = {}  # who limits -> its size, the dimensions it limits
    for dim in _REPORT_ORDER:
        largest_name, largest = maxima[0]
        for name, cap in maxima[1:]:
            if cap[dim] > largest[dim]:
                largest_name, largest = name, cap
        if need[dim] <= min(largest[dim], host[dim]):
            continue
        if host[dim] < largest[dim]:
            limits.setdefault("this host", (host, []))[1].append(dim)
        else:
            who = f"the largest compute environment of queue {queue.name} ({largest_name})"
            limits.setdefault(who, (largest, []))[1].append(dim)
    if limits:
        return "; ".join(
            f"needs {_amounts(need, dims)}; {who} has {_amounts(size, dims)}" for who, (size, dims) in limits.items()
        )
    # Every dimension fits some environment, but no environment fits every dimension. The host
    # cannot be what is short here: a dimension the host is short of was reported above.
    shorts = []
    for name, cap in maxima:
        short = _first_short(need, cap)
        assert short is not None  # no environment fits, and the host is not what is short
        shorts.append(f"{name} has {_amount(short, cap[short])}")
    wanted = ", ".join(_amount(dim, need[dim]) for dim in (_VCPU, _MEMORY, _GPU) if need[dim] or dim != _GPU)
    return f"needs {wanted}; no compute environment of queue {queue.name} holds all of it: {'; '.join(shorts)}"


# ---------------------------------------------------------------------------------------------
# The pass's working state


class _Env:
    """One compute environment during a pass: what is free in it, and who holds it back."""

    __slots__ = ("name", "enabled", "gpu_ids", "maximum", "capacity", "free", "held_by")

    def __init__(self, env: ComputeEnvironment, used: Sequence[int], host: _Vec) -> None:
        self.name = env.name
        self.enabled = env.enabled
        self.gpu_ids = env.gpu_ids
        self.maximum = _env_max(env)
        self.capacity = _effective(self.maximum, host)  # what it can hold when empty, on this host
        self.free = [max(0, self.maximum[dim] - used[dim]) for dim in range(3)]
        self.held_by: _Head | None = None


@dataclass(frozen=True, slots=True)
class _Head:
    """A starving head (rule 8): the job holding back, and what it holds back."""

    job_id: str
    waited_s: int
    need: _Vec

    def behind(self, what: str) -> WaitReason:
        return WaitReason(
            CAPACITY,
            f"waiting behind job {self.job_id}, which has waited {self.waited_s} s and holds back {what}",
        )


def _queue_blocked(queue: JobQueue, envs: Sequence[_Env]) -> WaitReason | None:
    """The one reason every job of the queue shares when the queue cannot dispatch at all."""
    if not queue.enabled:
        return WaitReason(ACTION_REQUIRED, f"job queue {queue.name} is DISABLED")
    if not envs:
        return WaitReason(ACTION_REQUIRED, f"job queue {queue.name} has no compute environment")
    return None


class _Members:
    """A queue's compute environments during its turn, and which of them can hold a request size."""

    __slots__ = ("queue", "envs", "host", "floor", "all_usable", "cache")

    def __init__(self, queue: JobQueue, envs: Sequence[_Env], host: _Vec) -> None:
        self.queue = queue
        self.envs = envs
        self.host = host
        # A request within every environment's capacity can use all enabled ones: the common case,
        # answered without building anything.
        self.floor = tuple(min(env.capacity[dim] for env in envs) for dim in range(3))
        self.all_usable = self._usable(self.floor)
        self.cache: dict[_Vec, tuple[_Env, ...] | WaitReason] = {}

    def usable(self, need: _Vec) -> tuple[_Env, ...] | WaitReason:
        """The enabled environments that could hold the job when empty, or why there is none."""
        floor = self.floor
        if need[0] <= floor[0] and need[1] <= floor[1] and need[2] <= floor[2]:
            return self.all_usable
        found = self.cache.get(need)
        if found is None:
            found = self.cache[need] = self._usable(need)
        return found

    def _usable(self, need: Sequence[int]) -> tuple[_Env, ...] | WaitReason:
        vcpu, memory, gpus = need
        big_enough = tuple(
            env
            for env in self.envs
            if vcpu <= env.capacity[0] and memory <= env.capacity[1] and gpus <= env.capacity[2]
        )
        name = self.queue.name
        if not big_enough:
            text = _too_big((vcpu, memory, gpus), self.queue, [(env.name, env.maximum) for env in self.envs], self.host)
            assert text is not None  # no environment can hold it
            return WaitReason(MAX_RESOURCE, text)
        enabled = tuple(env for env in big_enough if env.enabled)
        if enabled:
            return enabled
        if not any(env.enabled for env in self.envs):
            return WaitReason(ACTION_REQUIRED, f"every compute environment of job queue {name} is DISABLED")
        names = ", ".join(env.name for env in big_enough)
        text = f"every compute environment of job queue {name} that can hold this job is DISABLED"
        return WaitReason(ACTION_REQUIRED, f"{text}: {names}")


class _Host:
    """Host-wide free capacity, and the part of it starving heads hold back from later jobs."""

    __slots__ = ("free", "held", "avail", "holders")

    def __init__(self, total: _Vec, used: Sequence[int]) -> None:
        self.free = [max(0, total[dim] - used[dim]) for dim in range(3)]
        self.held = [0, 0, 0]
        self.holders: list[_Head] = []
        self.avail = list(self.free)

    def take(self, need: _Vec) -> None:
        for dim in range(3):
            self.free[dim] -= need[dim]
        self._refresh()

    def hold(self, head: _Head) -> None:
        for dim in range(3):
            self.held[dim] += head.need[dim]
        self.holders.append(head)
        self._refresh()

    def _refresh(self) -> None:
        # Per dimension: later jobs may use what is free beyond what is held; none of it if
        # less is free than held, which a request of 0 in that dimension still fits.
        self.avail = [max(0, self.free[dim] - self.held[dim]) for dim in range(3)]


class _Pass:
    """One scheduling pass: serves queues in order, mutating the free capacity as it places jobs."""

    def __init__(
        self,
        environments: Sequence[ComputeEnvironment],
        allocations: Sequence[Allocation],
        host: Resources,
        now: EpochMs,
        settings: SchedulerSettings,
        needs: Mapping[str, tuple[consumables.Need, ...]],
        free_consumables: Mapping[str, int],
    ) -> None:
        self.needs = needs
        self.free_consumables = dict(free_consumables)
        used: dict[str, list[int]] = {}
        host_used = [0, 0, 0]
        self.taken_gpus: set[str] = set()
        for alloc in allocations:
            need = _vec(alloc.resources)
            env_used = used.setdefault(alloc.compute_environment, [0, 0, 0])
            for dim in range(3):
                env_used[dim] += need[dim]
                host_used[dim] += need[dim]
            self.taken_gpus.update(alloc.gpu_ids)
        self.host_total = _vec(host)
        self.environments = {
            env.name: _Env(env, used.get(env.name, (0, 0, 0)), self.host_total) for env in environments
        }
        self.host = _Host(self.host_total, host_used)
        self.reserved_gpus: set[str] = set()
        self.shortfalls: dict[tuple[int, int, int, str], WaitReason] = {}
        self.now = now
        wait_ms = settings.max_head_wait_s * _MILLI
        self.wait_ms = wait_ms
        self.starving_since = -math.inf if math.isinf(wait_ms) else now - wait_ms
        self.first_unstarved: float = math.inf  # the earliest runnable_at of a job not starving yet
        self.placements: list[Placement] = []
        self.waiting: dict[str, WaitReason] = {}
        self.heads: dict[str, str] = {}
        self.limits: policy.UserLimits | None = None  # rule 13, with the two maps below
        self.owners: dict[str, tuple[str, Resources, int]] = {}  # job id -> (owner, request, jobs)
        self.running: dict[str, policy.Running] = {}  # owner -> what they hold, this pass's placements too

    def limit_users(
        self, limits: policy.UserLimits, runnable: Sequence[RunnableJob], allocations: Sequence[Allocation]
    ) -> None:
        """Apply per-user limits (rule 13) in this pass."""
        self.limits = limits
        self.owners = {job.job_id: (job.owner, job.resources, job.jobs) for job in runnable if job.owner is not None}
        for alloc in allocations:
            if alloc.owner is not None:
                self.running[alloc.owner] = self.running.get(alloc.owner, policy.Running()).plus(alloc.resources)

    def _over_limit(self, job_id: str) -> WaitReason | None:
        assert self.limits is not None
        found = self.owners.get(job_id)
        if found is None:
            return None
        owner, need, jobs = found
        why = policy.limit_reason(owner, self.running.get(owner, policy.Running()), need, jobs, self.limits)
        return None if why is None else WaitReason(policy.USER_LIMIT, why)

    def _took(self, job_id: str) -> None:
        found = self.owners.get(job_id)
        if found is not None:
            owner, need, jobs = found
            self.running[owner] = self.running.get(owner, policy.Running()).plus(need, jobs)

    # -- serving a queue ----------------------------------------------------------------------

    def serve(self, queue: JobQueue, items: Iterable[_Item], fair: _FairShares | None = None) -> None:
        """Place what fits of one queue's jobs, in FIFO order (or ``fair``'s, rule 10) with
        backfill; give the rest reasons."""
        envs = [self.environments[n] for n in dict.fromkeys(queue.compute_environments) if n in self.environments]
        blocked = _queue_blocked(queue, envs)
        if blocked is not None:
            for item in items:
                self.waiting[item[2]] = blocked
                self.heads.setdefault(queue.name, item[2])  # the first in dispatch order
            return
        kept = self._keep_free(envs, fair.reserved_fraction) if fair is not None else {}
        self._serve(queue, envs, items, fair)
        if kept:
            self._give_back(fair, kept)

    def _serve(self, queue: JobQueue, envs: list[_Env], items: Iterable[_Item], fair: _FairShares | None) -> None:
        members = _Members(queue, envs, self.host_total)
        failed: set[_Vec] = set()  # sizes that did not fit: capacity only shrinks, so they never will
        reasons: dict[_Vec, WaitReason] = {}  # per size, until capacity changes: shared, built once
        open_envs = [env for env in envs if env.enabled and env.held_by is None]
        room_vcpu, room_memory = self._room(open_envs)
        head: _Head | None = None
        head_id: str | None = None  # the first job left waiting: the queue's head (Plan.heads)
        waiting = self.waiting
        starving_since = self.starving_since
        first_unstarved = self.first_unstarved
        needs_of = self.needs
        limited = self.limits is not None
        for _, _, job_id, need, runnable_at in items:
            if limited:
                over = self._over_limit(job_id)
                if over is not None:
                    waiting[job_id] = over
                    if head_id is None:
                        head_id = self.heads[queue.name] = job_id
                    continue
            wanted = needs_of.get(job_id) if needs_of else None
            if wanted is not None:
                short = consumables.shortfall(wanted, self.free_consumables)
                if short is not None:
                    waiting[job_id] = WaitReason(consumables.WAITING, short)
                    if head_id is None:
                        head_id = self.heads[queue.name] = job_id
                    continue
            if need[0] <= room_vcpu and need[1] <= room_memory and need not in failed:
                if self._try_place(job_id, need, open_envs):
                    if limited:
                        self._took(job_id)
                    if wanted is not None:
                        consumables.take(wanted, self.free_consumables)
                    if fair is not None:
                        fair.placed(need)
                    reasons = {}
                    room_vcpu, room_memory = self._room(open_envs)
                    continue
                failed.add(need)
            reason = reasons.get(need)
            if reason is None:
                usable = members.usable(need)
                reason = usable if isinstance(usable, WaitReason) else self._capacity_reason(usable, need)
                reasons[need] = reason
            if reason.code == CAPACITY:
                if runnable_at > starving_since:
                    if runnable_at < first_unstarved:
                        first_unstarved = runnable_at
                elif head is None and (fair is None or fair.fits_reservation(need, members.usable(need))):
                    head, reason = self._hold_back(job_id, need, runnable_at, members.usable(need), reason)
                    open_envs = [env for env in open_envs if env.held_by is None]
                    reasons = {}
                    room_vcpu, room_memory = self._room(open_envs)
            waiting[job_id] = reason
            if head_id is None:
                head_id = self.heads[queue.name] = job_id
        self.first_unstarved = first_unstarved

    def _keep_free(self, envs: Sequence[_Env], fraction: float) -> dict[str, int]:
        """computeReservation (rule 11): take the reserved milli-vCPUs out of what is free in
        each environment for this queue's turn; what was taken, by environment."""
        kept = {}
        for env in envs:
            reserve = min(env.free[_VCPU], math.floor(env.maximum[_VCPU] * fraction))
            if reserve > 0:
                env.free[_VCPU] -= reserve
                kept[env.name] = reserve
        return kept

    def _give_back(self, fair: _FairShares | None, kept: Mapping[str, int]) -> None:
        """Put the reservation back for the queues served later, and tell the jobs of this
        queue that wait for capacity that it was kept."""
        for name, reserve in kept.items():
            self.environments[name].free[_VCPU] += reserve
        assert fair is not None
        amounts = ", ".join(
            f"{_amount(_VCPU, reserve)} of compute environment {name}" for name, reserve in kept.items()
        )
        note = f"; computeReservation keeps {amounts} free for share identifiers not yet active"
        told: dict[WaitReason, WaitReason] = {}
        for job_id in fair.tried:
            reason = self.waiting.get(job_id)
            if reason is not None and reason.code == CAPACITY:
                if reason not in told:
                    told[reason] = WaitReason(CAPACITY, reason.message + note)
                self.waiting[job_id] = told[reason]

    def _room(self, open_envs: Sequence[_Env]) -> tuple[int, int]:
        """The most vCPU and memory any one job could still get: a cheap test that skips the rest."""
        if not open_envs:
            return -1, -1
        avail = self.host.avail
        return (
            min(avail[_VCPU], max(env.free[_VCPU] for env in open_envs)),
            min(avail[_MEMORY], max(env.free[_MEMORY] for env in open_envs)),
        )

    def _try_place(self, job_id: str, need: _Vec, open_envs: Sequence[_Env]) -> bool:
        """Place the job in the first open environment that can take it now, if any (rules 3-5)."""
        avail = self.host.avail
        if need[0] > avail[0] or need[1] > avail[1] or need[2] > avail[2]:
            return False
        for env in open_envs:
            free = env.free
            if need[0] > free[0] or need[1] > free[1] or need[2] > free[2]:
                continue
            gpu_ids: tuple[str, ...] = ()
            if need[_GPU]:
                devices = self._free_devices(env)
                if len(devices) < need[_GPU]:
                    continue
                gpu_ids = devices[: need[_GPU]]
                self.taken_gpus.update(gpu_ids)
            for dim in range(3):
                free[dim] -= need[dim]
            self.host.take(need)
            self.placements.append(Placement(job_id, env.name, gpu_ids))
            return True
        return False

    def _free_devices(self, env: _Env) -> tuple[str, ...]:
        """The environment's devices nobody holds and no starving head holds back, in its order."""
        return tuple(gpu for gpu in env.gpu_ids if gpu not in self.taken_gpus and gpu not in self.reserved_gpus)

    def _hold_back(
        self,
        job_id: str,
        need: _Vec,
        runnable_at: int,
        usable: tuple[_Env, ...] | WaitReason,
        reason: WaitReason,
    ) -> tuple[_Head, WaitReason]:
        """Make the job its queue's starving head (rule 8); returns it and its own reason."""
        assert isinstance(usable, tuple)  # it waits for capacity, so some enabled environment can hold it
        names = tuple(env.name for env in usable)
        head = _Head(job_id, (self.now - runnable_at) // _MILLI, need)
        for env in usable:
            if env.held_by is None:
                env.held_by = head
            if need[_GPU]:  # devices it may get are not handed out through other environments
                self.reserved_gpus.update(env.gpu_ids)
        self.host.hold(head)
        text = (
            f"{reason.message}; it has waited {head.waited_s} s, so {_environments_text(names)} "
            f"{'takes' if len(names) == 1 else 'take'} no other job until it starts"
        )
        return head, WaitReason(CAPACITY, text)

    # -- reasons ------------------------------------------------------------------------------

    def _capacity_reason(self, usable: tuple[_Env, ...], need: _Vec) -> WaitReason:
        """Why the job does not fit now: the host, when one of its environments has room for it;
        else the first environment it could use (held back, or short of something).
        """
        for env in usable:
            if env.held_by is None and self._room_in(env, need):
                return self._host_reason(env, need)
        env = usable[0]
        if env.held_by is not None:
            return env.held_by.behind(f"compute environment {env.name}")
        dim = _first_short(need, env.free)
        if dim is not None:
            return self._short(need, dim, env.free[dim], f"in compute environment {env.name}")
        return self._short(need, _GPU, len(self._free_devices(env)), f"in compute environment {env.name}")

    def _room_in(self, env: _Env, need: _Vec) -> bool:
        return _first_short(need, env.free) is None and (not need[_GPU] or len(self._free_devices(env)) >= need[_GPU])

    def _host_reason(self, env: _Env, need: _Vec) -> WaitReason:
        """The host-wide shortfall: what is free, or what a starving head holds back."""
        host = self.host
        dim = _first_short(need, host.free)
        if dim is not None:
            return self._short(need, dim, host.free[dim], "on this host")
        dim = _first_short(need, host.avail)
        if dim is not None:
            holder = next(h for h in host.holders if h.need[dim])  # it holds back what is missing
            return holder.behind(f"{_amount(dim, holder.need[dim])} on this host")
        # Unreachable: a job with room in an open environment and on the host is placed.
        return WaitReason(CAPACITY, f"no room now in compute environment {env.name}")

    def _short(self, need: _Vec, dim: int, free: int, where: str) -> WaitReason:
        """ "needs 4 vCPU, 1.5 vCPU free in ...": jobs of different sizes short of the same amount of
        the same thing share it, so it is built once per pass.
        """
        key = (dim, need[dim], free, where)
        reason = self.shortfalls.get(key)
        if reason is None:
            text = f"needs {_amount(dim, need[dim])}, {_amount(dim, free)} free {where}"
            reason = self.shortfalls[key] = WaitReason(CAPACITY, text)
        return reason


# ---------------------------------------------------------------------------------------------
# The pass


def plan(
    runnable: Sequence[RunnableJob],
    queues: Sequence[JobQueue],
    environments: Sequence[ComputeEnvironment],
    allocations: Sequence[Allocation],
    host: Resources,
    now: EpochMs,
    settings: SchedulerSettings = SchedulerSettings(),
    *,
    policies: Sequence[SchedulingPolicy] = (),
    usage: Mapping[tuple[str, str], float] | None = None,
    consumable_quantities: Mapping[str, int] | None = None,
    user_limits: policy.UserLimits | None = None,
) -> Plan:
    """Decide which runnable jobs start now and where; say why each of the others waits.

    The rules and their reasons are in the module docstring. ``host`` is the capacity jobs may
    use (the machine minus its reserve); ``allocations`` are the jobs holding resources now.
    ``policies`` are the scheduling policies fair-share queues name; ``usage`` is, per (queue,
    share identifier), the vCPU-seconds its ended attempts consumed, decayed to ``now``
    (``core.fairshare.UsageHistory``; rule 10). ``consumable_quantities`` is each consumable
    resource's available quantity (rule 12). ``user_limits``: what each job's owner may run at
    once (``[policy]``, rule 13).
    """
    fifo, needs = _fifo_by_queue(runnable)
    limited = user_limits is not None and user_limits.any
    fair = _fair_queues(queues, policies)
    shares = _by_share(runnable, fair) if fair else {}
    state = _Pass(environments, allocations, host, now, settings, needs, consumable_quantities or {})
    if limited:
        assert user_limits is not None
        state.limit_users(user_limits, runnable, allocations)
    for queue in sorted(queues, key=lambda q: (-q.priority, q.name)):
        items = fifo.pop(queue.name, None)
        if not items:
            continue
        policy = fair.get(queue.name)
        if policy is None:
            state.serve(queue, items)
        else:
            order = _FairShares(queue.name, policy, shares[queue.name], allocations, usage or {})
            state.serve(queue, order, order)
    for name in sorted(fifo):  # jobs of queues that do not exist (deleted under them)
        reason = WaitReason(ACTION_REQUIRED, f"job queue {name} does not exist")
        for item in fifo[name]:
            state.waiting[item[2]] = reason
    crossing = state.first_unstarved + state.wait_ms
    next_starving_at = math.ceil(crossing) if math.isfinite(crossing) else None
    return Plan(tuple(state.placements), state.waiting, next_starving_at, state.heads)


def _fifo_by_queue(
    runnable: Sequence[RunnableJob],
) -> tuple[dict[str, list[_Item]], dict[str, tuple[consumables.Need, ...]]]:
    """Each queue's jobs in FIFO order, with their requests in integers (``fifo_item``, made
    once per RunnableJob); and the consumable resources of the jobs that need any (rule 12),
    gathered in the same walk."""
    fifo: dict[str, list[_Item]] = {}
    needs: dict[str, tuple[consumables.Need, ...]] = {}
    for job in runnable:
        if job.consumables:
            needs[job.job_id] = job.consumables
        item = job.fifo_item
        items = fifo.get(job.job_queue)
        if items is None:
            fifo[job.job_queue] = [item]
        else:
            items.append(item)
    for items in fifo.values():
        items.sort()
    return fifo, needs


# ---------------------------------------------------------------------------------------------
# Fair share (rules 10 and 11)


def _fair_queues(queues: Sequence[JobQueue], policies: Sequence[SchedulingPolicy]) -> dict[str, SchedulingPolicy]:
    """The fair-share queues and their policies. A queue naming a policy that does not exist
    (deleted under it: the service refuses that) is served FIFO."""
    by_name = {policy.name: policy for policy in policies}
    found = {}
    for queue in queues:
        policy = by_name.get(queue.scheduling_policy or "")
        if policy is not None:
            found[queue.name] = policy
    return found


def _by_share(
    runnable: Sequence[RunnableJob], fair: Mapping[str, SchedulingPolicy]
) -> dict[str, dict[str, list[RunnableJob]]]:
    """Each fair-share queue's runnable jobs by share identifier."""
    shares: dict[str, dict[str, list[RunnableJob]]] = {name: {} for name in fair}
    for job in runnable:
        queue = shares.get(job.job_queue)
        if queue is not None:
            queue.setdefault(job.share_identifier or "", []).append(job)
    return shares


class _FairShares:
    """A fair-share queue's jobs in the order its turn tries them (rule 10): the next job comes
    from the share with the lowest weighted usage, which grows as the pass places its jobs.
    Iterating yields the queue's items; ``placed`` tells it the last one yielded was placed.
    """

    def __init__(
        self,
        queue: str,
        policy: SchedulingPolicy,
        jobs: Mapping[str, Sequence[RunnableJob]],
        allocations: Sequence[Allocation],
        usage: Mapping[tuple[str, str], float],
    ) -> None:
        held: dict[str, int] = {}
        for alloc in allocations:
            if alloc.job_queue == queue:
                share = alloc.share_identifier or ""
                held[share] = held.get(share, 0) + round(alloc.resources.vcpus * _MILLI)
        window = policy.decay_window_s
        self.weights = {share: policy.weight(share) for share in jobs}
        self.usage = {
            share: weight * (usage.get((queue, share), 0.0) / window + held.get(share, 0) / _MILLI)
            for share, weight in self.weights.items()
        }
        self.jobs = {
            share: sorted(
                (
                    (-job.scheduling_priority, job.created_at, job.array_index, job.job_id),
                    (job.created_at, job.array_index, job.job_id, _vec(job.resources), job.runnable_at),
                )
                for job in share_jobs
            )
            for share, share_jobs in jobs.items()
        }
        active = len(set(jobs) | set(held))  # shares with jobs waiting or holding resources
        cr = policy.compute_reservation
        self.reserved_fraction = (cr / 100) ** active if cr else 0.0
        self.tried: list[str] = []  # job ids, in the order they were yielded
        self._last: str | None = None

    def __iter__(self) -> Iterator[_Item]:
        heap = [(self.usage[share], share) for share in self.jobs]
        heapq.heapify(heap)
        cursor = dict.fromkeys(self.jobs, 0)
        while heap:
            _, share = heapq.heappop(heap)
            at = cursor[share]
            item = self.jobs[share][at][1]
            cursor[share] = at + 1
            self._last = share
            self.tried.append(item[2])
            yield item
            if at + 1 < len(self.jobs[share]):
                heapq.heappush(heap, (self.usage[share], share))

    def fits_reservation(self, need: _Vec, usable: tuple[_Env, ...] | WaitReason) -> bool:
        """Whether some environment could hold the job when empty with the reservation kept: a
        job that could not never becomes a starving head (it would hold everything back for
        nothing)."""
        if not self.reserved_fraction:
            return True
        assert isinstance(usable, tuple)  # it waits for capacity
        return any(
            need[_VCPU] <= env.capacity[_VCPU] - math.floor(env.maximum[_VCPU] * self.reserved_fraction)
            for env in usable
        )

    def placed(self, need: _Vec) -> None:
        share = self._last
        assert share is not None
        self.usage[share] += self.weights[share] * need[_VCPU] / _MILLI
