"""One scheduling pass over 10,000 runnable jobs in 5 queues (issue 3: under 50 ms; issue 8: also
1,000 and 100,000 jobs, ``scheduler_pass_ms_1k`` / ``_100k``, 100k under 0.5 s).

The input is seeded and realistic for a big workstation: a 32-vCPU, 128 GiB, 4-GPU host cut into
three compute environments whose sum exceeds it, five queues of different priorities sharing
them, mixed job sizes (a quarter vCPU to 16 vCPU, some GPU jobs), the host already full of jobs
a previous pass started, and some jobs waiting long enough to be starving heads. What is timed is
``plan()`` alone: the daemon builds its inputs from rows it already holds. Also (issue 4): a pass
over one array's 10,000 children, and over 10,000 jobs of 100 shares in a fair-share queue.

    python -m benchmarks.bench_scheduler            # full run, prints the figures
    python -m benchmarks.bench_scheduler --quick
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
import sys
import time

from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy, ShareWeight
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation, RunnableJob, SchedulerSettings, plan

JOBS = 10_000
NOW = 1_700_000_000_000
HOST = Resources(vcpus=32, memory_mib=131_072, gpus=4)
ENVIRONMENTS = (
    ComputeEnvironment("cpu", max_vcpus=24, max_memory_mib=98_304),
    ComputeEnvironment("gpu", max_vcpus=8, max_memory_mib=32_768, gpu_ids=("0", "1", "2", "3")),
    ComputeEnvironment("spill", max_vcpus=16, max_memory_mib=65_536),
)
QUEUES = (
    JobQueue("urgent", priority=100, compute_environments=("cpu", "spill")),
    JobQueue("training", priority=50, compute_environments=("gpu",)),
    JobQueue("default", priority=10, compute_environments=("cpu", "spill")),
    JobQueue("batch", priority=10, compute_environments=("spill", "cpu")),
    JobQueue("backfill", priority=1, compute_environments=("spill",)),
)
# (vCPU, MiB), weighted toward small jobs as real workloads are; GPU jobs go to "training".
SIZES = (
    ((0.25, 256), 10),
    ((0.5, 512), 15),
    ((1, 2048), 25),
    ((2, 4096), 20),
    ((4, 8192), 12),
    ((8, 16_384), 6),
    ((16, 32_768), 2),
    ((1.5, 3000), 5),
    ((0.1, 64), 5),
)
GPU_SIZES: tuple[tuple[float, int, int], ...] = ((1, 4096, 1), (2, 8192, 1), (4, 16_384, 2))


def build_input(seed: int = 7, count: int = JOBS) -> tuple[list[RunnableJob], list[Allocation]]:
    """``count`` runnable jobs, plus the allocations a first pass over a larger set started."""
    rng = random.Random(seed)
    sizes = [size for size, _ in SIZES]
    weights = [weight for _, weight in SIZES]
    jobs = []
    for n in range(count + 200):
        queue = rng.choice(QUEUES)
        vcpus: float
        if queue.name == "training":
            vcpus, memory, gpus = rng.choice(GPU_SIZES)
        else:
            (vcpus, memory), gpus = rng.choices(sizes, weights)[0], 0
        created = NOW - rng.randrange(3_600_000)
        waited = rng.randrange(created, NOW) if rng.random() < 0.5 else NOW - rng.randrange(30_000)
        jobs.append(RunnableJob(f"job-{n:06d}", queue.name, Resources(vcpus, memory, gpus), created, waited))
    # The jobs running now: what a pass without hold-backs started on an empty host.
    first = plan(jobs, QUEUES, ENVIRONMENTS, (), HOST, NOW, SchedulerSettings(max_head_wait_s=math.inf))
    by_id = {job.job_id: job for job in jobs}
    allocations = [
        Allocation(p.job_id, p.compute_environment, by_id[p.job_id].resources, p.gpu_ids) for p in first.placements
    ]
    started = {p.job_id for p in first.placements}
    runnable = [job for job in jobs if job.job_id not in started][:count]
    # A third of them have just ended, so this pass has room to place jobs, and to backfill.
    return runnable, allocations[::3] + allocations[1::3]


def with_distinct_sizes(runnable: list[RunnableJob], seed: int = 11) -> list[RunnableJob]:
    """The same jobs, each with a size of its own: no two share a reason (the adversarial case)."""
    rng = random.Random(seed)
    return [
        dataclasses.replace(
            job,
            resources=Resources(rng.randrange(500, 8000) / 1000, rng.randrange(64, 30_000), job.resources.gpus),
        )
        for job in runnable
    ]


def _time_ms(settings: SchedulerSettings, repeats: int, distinct_sizes: bool = False, count: int = JOBS) -> list[float]:
    runnable, allocations = build_input(count=count)
    if distinct_sizes:
        runnable = with_distinct_sizes(runnable)
    plan(runnable, QUEUES, ENVIRONMENTS, allocations, HOST, NOW, settings)  # warm-up
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        plan(runnable, QUEUES, ENVIRONMENTS, allocations, HOST, NOW, settings)
        times_ms.append((time.perf_counter() - start) * 1000)
    return sorted(times_ms)


def _array_pass_ms(repeats: int) -> list[float]:
    """One array of 10,000 children of one size in one queue, the host full but for a few."""
    children = [
        RunnableJob(f"array:{i}", "default", Resources(1, 2048), NOW - 60_000, NOW - 60_000, array_index=i)
        for i in range(JOBS)
    ]
    times_ms = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        plan(children, QUEUES, ENVIRONMENTS, [], HOST, NOW, SchedulerSettings())
        times_ms.append((time.perf_counter() - start) * 1000)
    return sorted(times_ms[1:])  # the first is a warm-up


def _fair_share_pass_ms(repeats: int, seed: int = 5) -> list[float]:
    """10,000 jobs of mixed sizes and priorities in one fair-share queue, 100 shares (a tenth of
    them weighted), with history and jobs already holding capacity."""
    rng = random.Random(seed)
    shares = [f"team-{n:03d}" for n in range(100)]
    policy = SchedulingPolicy(
        "fair",
        share_decay_seconds=3600,
        compute_reservation=10,
        share_distribution=tuple(ShareWeight(s, rng.choice((0.5, 2.0))) for s in shares[::10]),
    )
    queue = JobQueue("fair", 1, ("cpu", "spill"), scheduling_policy="fair")
    jobs = [
        RunnableJob(
            f"f{n}",
            "fair",
            Resources(*rng.choice([size for size, _ in SIZES])),
            NOW - 10_000_000 + n,
            NOW - 30_000,
            share_identifier=rng.choice(shares),
            scheduling_priority=rng.randrange(10),
        )
        for n in range(JOBS)
    ]
    held = [
        Allocation(f"h{n}", "cpu", Resources(1, 2048), job_queue="fair", share_identifier=rng.choice(shares))
        for n in range(20)
    ]
    usage = {("fair", share): rng.uniform(0, 50_000) for share in shares}
    times_ms = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        plan(jobs, (queue,), ENVIRONMENTS, held, HOST, NOW, SchedulerSettings(), policies=(policy,), usage=usage)
        times_ms.append((time.perf_counter() - start) * 1000)
    return sorted(times_ms[1:])  # the first is a warm-up


def _size_name(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 else str(size)


def _p95(sorted_ms: list[float]) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, math.ceil(0.95 * len(sorted_ms)) - 1)]


def measure(quick: bool) -> dict[str, float]:
    return run(repeats=15 if quick else 100, sizes=(1_000, 100_000), large_repeats=3 if quick else 10)


def run(repeats: int, sizes: tuple[int, ...], large_repeats: int, count: int = JOBS) -> dict[str, float]:
    """Median and p95 of one pass over ``count`` jobs; also without hold-backs (backfill scans every
    queue to its end) and, on top of that, with every job of a different size (no reason can be
    shared). Then the default pass over each of ``sizes`` jobs (issue 8: 1k and 100k), median of
    ``repeats`` (``large_repeats`` above 10,000 jobs), each figure named by its size (``_1k``).
    """
    default = _time_ms(SchedulerSettings(), repeats, count=count)
    scan_all = _time_ms(SchedulerSettings(max_head_wait_s=math.inf), repeats, count=count)
    worst = _time_ms(SchedulerSettings(max_head_wait_s=math.inf), repeats, distinct_sizes=True, count=count)
    by_size = {
        f"scheduler_pass_ms_{_size_name(size)}": round(
            statistics.median(_time_ms(SchedulerSettings(), repeats if size <= JOBS else large_repeats, count=size)),
            2,
        )
        for size in sizes
    }
    return {
        **by_size,
        "scheduler_pass_ms_10k": round(statistics.median(default), 2),
        "scheduler_pass_ms_10k_p95": round(_p95(default), 2),
        "scheduler_pass_ms_10k_no_holdback": round(statistics.median(scan_all), 2),
        "scheduler_pass_ms_10k_distinct_sizes": round(statistics.median(worst), 2),
        "scheduler_pass_ms_10k_distinct_sizes_p95": round(_p95(worst), 2),
        "scheduler_pass_ms_10k_array_children": round(statistics.median(_array_pass_ms(repeats)), 2),
        "scheduler_pass_ms_10k_fair_share": round(statistics.median(_fair_share_pass_ms(repeats)), 2),
    }


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return run(repeats=1, sizes=(1_000,), large_repeats=1, count=500)


if __name__ == "__main__":
    print(measure(quick="--quick" in sys.argv[1:]))
