"""Packing (issue 8b): a seeded mixed workload on a compute environment of 2 vCPUs and 4 GiB,
through localbatch and through a naive FIFO runner, in the same run.

Inputs: 40 jobs (quick: 12), seed 8; each ``sleep D`` on busybox:1.36 with vCPUs drawn from
{0.25, 0.5, 1, 2}, memory from 128 to 2048 MiB in steps of 128, D from 1 to 6 s (quick: 1 to 3),
submitted in one go in a fixed order. The lower bound of any schedule on 2 vCPUs and 4096 MiB is
max(sum vCPU x D / 2, sum MiB x D / 4096, longest D). Makespan: from the first submission until
the last job is seen ended (localbatch: polled every 0.1 s), or until ``xargs`` returns (FIFO).

The FIFO runner is what one writes without a scheduler: ``xargs -P K`` over
``docker run --rm --cpus V --memory M`` in submission order. K is how many average jobs fit:
min(2 / mean vCPUs, 4096 / mean MiB) rounded to the nearest whole, at least 1 (``fifo_parallelism``;
2 for the full workload, whose mean is 1.01 vCPU and 1,133 MiB). It never holds a
job back for capacity (two 2-vCPU jobs can run at once), and a long job blocks one of its K slots.

Repeats: 3 (quick: 1), localbatch and FIFO alternating; median, ``_min``/``_max`` the spread.

    packing_ratio               localbatch makespan / lower bound (target <= 1.10)
    fifo_packing_ratio          the FIFO runner's makespan / lower bound
    packing_lower_bound_s       the bound, and packing_makespan_s / fifo_makespan_s
    packing_policy_ratio        what localbatch's own policy (``core.scheduler.plan``: FIFO with
                                backfill) achieves with no overhead at all, over the bound: a
                                simulation, each job ending exactly D seconds after it is placed.
                                packing_ratio / packing_policy_ratio is what launching costs.
    packing_peak_reserved_vcpus / fifo_peak_reserved_vcpus   the most vCPUs the running
                                containers had asked for at once (``docker ps`` every 0.1 s)

    python -m benchmarks.bench_packing [--quick]
"""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker

from benchmarks import _batch
from benchmarks.bench_daemon import daemon
from localbatch.client import DaemonClient
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation, RunnableJob, plan

VCPUS = 2
MEMORY_MIB = 4096
QUEUE = "pack"
SEED = 8
VCPUS_LABEL = "localbatch.bench.vcpus"  # on the FIFO runner's containers


@dataclass(frozen=True)
class Job:
    vcpus: float
    memory_mib: int
    seconds: int


def workload(count: int, longest_s: int, seed: int = SEED) -> list[Job]:
    rng = random.Random(seed)
    return [
        Job(rng.choice((0.25, 0.5, 1, 2)), rng.randrange(128, 2049, 128), rng.randint(1, longest_s))
        for _ in range(count)
    ]


def lower_bound(jobs: list[Job]) -> float:
    return max(
        sum(j.vcpus * j.seconds for j in jobs) / VCPUS,
        sum(j.memory_mib * j.seconds for j in jobs) / MEMORY_MIB,
        max(j.seconds for j in jobs),
    )


def fifo_parallelism(jobs: list[Job]) -> int:
    mean_vcpus = sum(j.vcpus for j in jobs) / len(jobs)
    mean_mib = sum(j.memory_mib for j in jobs) / len(jobs)
    return max(1, round(min(VCPUS / mean_vcpus, MEMORY_MIB / mean_mib)))


def policy_makespan(jobs: list[Job]) -> float:
    """The makespan of ``core.scheduler.plan`` on ``jobs`` with no overhead: a discrete-event
    simulation in which a placed job holds its resources for exactly its seconds."""
    environment = ComputeEnvironment(QUEUE, max_vcpus=VCPUS, max_memory_mib=MEMORY_MIB)
    queue = JobQueue(QUEUE, priority=1, compute_environments=(QUEUE,))
    waiting = [
        RunnableJob(str(n), QUEUE, Resources(j.vcpus, j.memory_mib), created_at=n, runnable_at=n)
        for n, j in enumerate(jobs)
    ]
    running: dict[str, tuple[float, Allocation]] = {}
    now = 0.0
    while waiting or running:
        allocations = [a for _, a in running.values()]
        placed = plan(waiting, (queue,), (environment,), allocations, environment.capacity, round(now * 1000))
        for p in placed.placements:
            job = jobs[int(p.job_id)]
            running[p.job_id] = (now + job.seconds, Allocation(p.job_id, QUEUE, Resources(job.vcpus, job.memory_mib)))
        taken = {p.job_id for p in placed.placements}
        waiting = [w for w in waiting if w.job_id not in taken]
        if not running:
            raise RuntimeError("the simulated scheduler placed nothing on an empty environment")
        now = min(end for end, _ in running.values())
        running = {k: v for k, v in running.items() if v[0] > now}
    return now


def through_localbatch(client: DaemonClient, jobs: list[Job], timeout_s: float, vcpus_of: dict[str, float]) -> float:
    """Makespan through the daemon; ``vcpus_of`` gets each job id's vCPUs as it is submitted."""
    started = time.perf_counter()
    ids = []
    for n, job in enumerate(jobs):
        body = {
            "jobName": f"p{n}",
            "jobQueue": QUEUE,
            "jobDefinition": "sleeper",
            "containerOverrides": {
                "command": ["sleep", str(job.seconds)],
                "resourceRequirements": [
                    {"type": "VCPU", "value": f"{job.vcpus:g}"},
                    {"type": "MEMORY", "value": str(job.memory_mib)},
                ],
            },
        }
        ids.append(client.call("SubmitJob", body)["jobId"])
        vcpus_of[ids[-1]] = job.vcpus
    seen, details = _batch.wait_all(
        lambda batch: client.call("DescribeJobs", {"jobs": batch})["jobs"], ids, timeout_s, every_s=0.1
    )
    failed = [d for d in details.values() if d["status"] != "SUCCEEDED"]
    if failed:
        raise RuntimeError(f"{len(failed)} packing jobs failed: {failed[0].get('statusReason')}")
    return seen - started


def through_fifo(jobs: list[Job], parallelism: int, label: str, timeout_s: float) -> float:
    lines = "".join(f"{j.vcpus:g} {j.memory_mib} {j.seconds}\n" for j in jobs)
    run = (
        f"docker run --rm --network host --label {_batch.BENCH_LABEL}={label} --label {VCPUS_LABEL}=$0 "
        f'--cpus "$0" --memory "$1"m {shlex.quote(_batch.IMAGE)} sleep "$2" >/dev/null'
    )
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(parallelism), "-L", "1", "sh", "-c", run],
        input=lines.encode(),
        check=True,
        timeout=timeout_s,
    )
    return time.perf_counter() - started


def run(count: int, longest_s: int, repeats: int) -> dict[str, float]:
    jobs = workload(count, longest_s)
    bound = lower_bound(jobs)
    parallelism = fifo_parallelism(jobs)
    timeout_s = 60 + 3 * sum(j.seconds for j in jobs)
    label = uuid.uuid4().hex[:12]
    engine = docker.from_env()
    ours: list[float] = []
    fifo: list[float] = []
    peaks: list[float] = []
    fifo_peaks: list[float] = []
    vcpus_of: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
            config = _batch.config((QUEUE, VCPUS, MEMORY_MIB))
            home = Path(tmp) / "home"
            ours_filter = {"label": f"localbatch.home={_batch.home_id(home)}"}
            fifo_filter = {"label": f"{_batch.BENCH_LABEL}={label}"}
            with daemon(home, config) as (client, _):
                client.call("RegisterJobDefinition", _batch.definition("sleeper", ["sleep", "1"], 1, 128))
                for _ in range(repeats):
                    weight = lambda c: vcpus_of.get(c["Labels"].get("localbatch.job_id", ""), 0)  # noqa: E731
                    with _batch.RunningSampler(engine, ours_filter, weight=weight) as sampler:
                        ours.append(through_localbatch(client, jobs, timeout_s, vcpus_of))
                    peaks.append(sampler.peak)
                    weight = lambda c: float(c["Labels"].get(VCPUS_LABEL, 0))  # noqa: E731
                    with _batch.RunningSampler(engine, fifo_filter, weight=weight) as sampler:
                        fifo.append(through_fifo(jobs, parallelism, label, timeout_s))
                    fifo_peaks.append(sampler.peak)
    finally:
        _batch.remove_labelled(engine, _batch.BENCH_LABEL, label)
        engine.close()
    return {
        "packing_jobs": count,
        "packing_repeats": repeats,
        "packing_lower_bound_s": round(bound, 3),
        **_batch.summary("packing_ratio", [m / bound for m in ours]),
        **_batch.summary("packing_makespan_s", ours),
        "packing_policy_ratio": round(policy_makespan(jobs) / bound, 3),
        "packing_peak_reserved_vcpus": max(peaks),
        "fifo_peak_reserved_vcpus": max(fifo_peaks),
        "fifo_parallelism": parallelism,
        **_batch.summary("fifo_packing_ratio", [m / bound for m in fifo]),
        **_batch.summary("fifo_makespan_s", fifo),
    }


def measure(quick: bool) -> dict[str, float]:
    if quick:
        return run(count=12, longest_s=3, repeats=1)
    return run(count=40, longest_s=6, repeats=3)


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return run(count=3, longest_s=1, repeats=1)


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:]), indent=2))
