"""Right-sizing: what recent runs of a job used against what they asked for, the request to
make instead, and what one run would cost on AWS. Pure: runs and prices come in as values.

The rules (``recommend``), each stated in ``localbatch advise``'s output and the docs:

- **memory_mib** = the largest peak working set of the runs, plus ``margin`` (default 20 %)
  against out-of-memory kills, rounded up to 128 MiB. A run killed for memory says only that
  its limit was too small: the recommendation is then at least twice that run's request.
- **vcpus** = the largest average CPU of the runs (100 % = one vCPU), plus the margin,
  rounded up to a whole vCPU (EC2 needs whole numbers), at least 1 and never more than asked.
  A run that averaged 90 % or more of its vCPUs was CPU-bound: the request is kept (more
  only helps a job that uses more threads).

Costs (``estimate``): EC2 (On-Demand and Spot) charges the instance, so a job is charged the
share of the cheapest instance type that fits it which it occupies (the largest of its vCPU,
memory and GPU fractions), for its duration, as if AWS Batch packed the rest of the instance
with other jobs. Spot is On-Demand times the table's Spot factor (Spot prices move hourly).
Fargate charges the task size AWS rounds the request up to, per second, one minute at least;
it has no GPUs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from localbatch.core.usage import AttemptUsage

DEFAULT_MARGIN = 0.2
MEMORY_STEP_MIB = 128
CPU_BOUND = 0.9  # average CPU / vCPUs asked at or above which a run counts as CPU-bound


@dataclass(frozen=True)
class RunUsage:
    """One ended attempt: what it asked for, how long it ran, what it used."""

    job_id: str
    vcpus: float
    memory_mib: int
    gpus: int
    duration_s: float
    usage: AttemptUsage | None  # None: never sampled (too short, or from before sampling)
    oom_killed: bool = False


@dataclass(frozen=True)
class Recommendation:
    runs: int  # runs with usage that the recommendation rests on
    requested_vcpus: float
    requested_memory_mib: int
    cpu_used_vcpus: float  # largest average CPU, in vCPUs
    memory_peak_mib: float
    vcpus: float
    memory_mib: int
    margin: float
    oom_runs: int
    notes: tuple[str, ...]


def recommend(runs: Sequence[RunUsage], margin: float = DEFAULT_MARGIN) -> Recommendation | None:
    """The request to make, from ``runs`` (newest first; the newest's request is "asked");
    None when no run has usage to go on."""
    measured = [r for r in runs if r.usage is not None]
    if not measured:
        return None
    latest = measured[0]
    notes: list[str] = []
    peak = max(r.usage.memory_peak_mib for r in measured if r.usage is not None)
    memory = _round_up(peak * (1 + margin), MEMORY_STEP_MIB)
    ooms = [r for r in runs if r.oom_killed]
    if ooms:
        floor = 2 * max(r.memory_mib for r in ooms)
        memory = max(memory, floor)
        notes.append(
            f"{len(ooms)} run(s) were killed for memory: their peak is only their limit; "
            f"recommending at least twice the largest such request ({floor} MiB)"
        )
    cpu = max(r.usage.cpu_avg_percent for r in measured if r.usage is not None) / 100
    bound = [r for r in measured if r.usage is not None and r.usage.cpu_avg_percent / 100 >= CPU_BOUND * r.vcpus]
    if bound:
        vcpus = latest.vcpus
        notes.append("CPU-bound (averaged 90 % or more of its vCPUs): vCPUs kept; more only help a multi-threaded job")
    else:
        vcpus = float(min(max(1, math.ceil(cpu * (1 + margin))), max(latest.vcpus, 1)))
    if len(measured) < 3:
        notes.append(f"based on {len(measured)} run(s) only: run it a few more times for a firmer answer")
    return Recommendation(
        runs=len(measured),
        requested_vcpus=latest.vcpus,
        requested_memory_mib=latest.memory_mib,
        cpu_used_vcpus=round(cpu, 2),
        memory_peak_mib=peak,
        vcpus=vcpus,
        memory_mib=memory,
        margin=margin,
        oom_runs=len(ooms),
        notes=tuple(notes),
    )


def _round_up(value: float, step: int) -> int:
    return max(step, math.ceil(value / step) * step)


# -- prices and costs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int
    on_demand_per_hour: float


@dataclass(frozen=True)
class RegionPrices:
    region: str
    instances: tuple[InstanceType, ...]
    spot_factor: float  # Spot price / On-Demand price, an assumed typical value
    fargate_vcpu_per_hour: float
    fargate_gb_per_hour: float


@dataclass(frozen=True)
class CostEstimate:
    """USD for one run; None where the platform cannot run the job."""

    on_demand: float | None
    spot: float | None
    fargate: float | None
    instance_type: str | None  # what the EC2 figures assume
    fargate_vcpus: float | None  # the task size the Fargate figure assumes
    fargate_memory_gb: float | None


# Fargate's task sizes: vCPU -> the memory (GB) it allows, in AWS's steps.
FARGATE_SIZES: tuple[tuple[float, tuple[float, ...]], ...] = (
    (0.25, (0.5, 1, 2)),
    (0.5, (1, 2, 3, 4)),
    (1, tuple(range(2, 9))),
    (2, tuple(range(4, 17))),
    (4, tuple(range(8, 31))),
    (8, tuple(range(16, 61, 4))),
    (16, tuple(range(32, 121, 8))),
)
FARGATE_MINIMUM_S = 60


def fargate_size(vcpus: float, memory_mib: int) -> tuple[float, float] | None:
    """The smallest Fargate task size (vCPU, GB) that holds the request; None when none does."""
    need_gb = memory_mib / 1024
    for size, memories in FARGATE_SIZES:
        if size + 1e-9 < vcpus:
            continue
        for memory in memories:
            if memory + 1e-9 >= need_gb:
                return size, float(memory)
    return None


def cheapest_instance(prices: RegionPrices, vcpus: float, memory_mib: int, gpus: int) -> InstanceType | None:
    """The instance type that fits the request and costs least for it (its share of the
    instance, see the module docstring); ties: the smaller instance, then by name."""
    fitting = [
        i
        for i in prices.instances
        if i.vcpus >= vcpus and i.memory_mib >= memory_mib and i.gpus >= gpus and (gpus > 0 or i.gpus == 0)
    ]
    if not fitting:
        return None
    return min(
        fitting, key=lambda i: (round(_share(i, vcpus, memory_mib, gpus) * i.on_demand_per_hour, 9), i.vcpus, i.name)
    )


def _share(instance: InstanceType, vcpus: float, memory_mib: int, gpus: int) -> float:
    parts = [vcpus / instance.vcpus, memory_mib / instance.memory_mib]
    if gpus:
        parts.append(gpus / instance.gpus)
    return min(1.0, max(parts))


def estimate(prices: RegionPrices, vcpus: float, memory_mib: int, gpus: int, duration_s: float) -> CostEstimate:
    """What one run of ``duration_s`` asking for this much costs on each platform."""
    hours = max(duration_s, 0) / 3600
    instance = cheapest_instance(prices, vcpus, memory_mib, gpus)
    on_demand = None
    if instance is not None:
        on_demand = instance.on_demand_per_hour * _share(instance, vcpus, memory_mib, gpus) * hours
    size = None if gpus else fargate_size(vcpus, memory_mib)
    fargate = None
    if size is not None:
        billed_h = max(duration_s, FARGATE_MINIMUM_S) / 3600
        fargate = (size[0] * prices.fargate_vcpu_per_hour + size[1] * prices.fargate_gb_per_hour) * billed_h
    return CostEstimate(
        on_demand=on_demand,
        spot=None if on_demand is None else on_demand * prices.spot_factor,
        fargate=fargate,
        instance_type=None if instance is None else instance.name,
        fargate_vcpus=None if size is None else size[0],
        fargate_memory_gb=None if size is None else size[1],
    )
