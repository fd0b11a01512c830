"""The SQLite state store with 100,000 jobs (issue 3: `localbatch ls` with 100,000 jobs under 1 s).

A temporary database is filled through ``save_jobs`` in batches of 10,000 (what the daemon's
control loop writes in one transaction at most): 100,000 jobs (``--quick``: 20,000) across five
queues, newest about 1,000 still in flight (SUBMITTED to RUNNING), the rest SUCCEEDED or (one in
ten) FAILED with one attempt each; jobs come two per millisecond, so ``created_at`` ties are
everywhere, as under a burst of submissions. Then each read the API makes is timed, median over
repeats, on a warm connection (the daemon keeps one open):

    store_save_jobs_10k_batch_ms   one save_jobs call of 10,000 new jobs, each with its event
    store_save_job_ms              one save_job call of one new job and its event (SubmitJob's
                                   write when each request is its own transaction)
    store_list_first_page_ms       ListJobs' first page: 50 newest, every status
    store_list_status_page_ms      50 newest FAILED (one job in ten)
    store_list_queue_status_page_ms   50 newest RUNNING of one queue (a few hundred exist)
    store_list_multi_status_page_ms   50 newest SUCCEEDED or FAILED (two index ranges merged)
    store_list_deep_page_ms        50 jobs after a keyset 90% of the way down the list
    store_list_name_prefix_miss_ms a name prefix no job has: every row is looked at (worst case)
    store_count_jobs_ms            jobs per status, whole store; ..._queue_ms: one queue
    store_active_jobs_ms           the ~1,000 jobs in flight, whole, with attempts
    store_get_job_ms               one job by id

    python -m benchmarks.bench_store            # full run, prints the figures
    python -m benchmarks.bench_store --quick
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.core.jobs import Attempt, Job, JobEvent, JobStatus
from localbatch.core.resources import Resources
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.ports import JobQuery

S = JobStatus
NOW = 1_700_000_000_000
QUEUES = ("default", "gpu", "batch", "urgent", "backfill")
BATCH = 10_000
ACTIVE = 1_000
IN_FLIGHT = (S.SUBMITTED, S.RUNNABLE, S.RUNNABLE, S.RUNNABLE, S.STARTING, S.RUNNING, S.RUNNING)
PAGE = 50


def make_job(n: int) -> tuple[Job, list[JobEvent]]:
    """Job ``n`` (0 the oldest) as submitted, with its submission event."""
    job_id = f"{n:08d}-4f1c-4a2b-9c3d-{n * 7919 % 10**12:012d}"  # unique, not in created order
    created = NOW + n // 2  # two jobs per millisecond: ties everywhere
    container = ContainerSpec(
        image="registry.local/render:1.2",
        command=("python", "render.py", "--frame", str(n)),
        environment={"STAGE": "prod", "FRAME": str(n)},
        resources=Resources(vcpus=(0.5, 1, 2, 4)[n % 4], memory_mib=(512, 2048, 4096)[n % 3]),
    )
    job = Job(
        job_id=job_id,
        job_name=f"render-frame-{n}",
        job_definition_name="render",
        job_definition_revision=3,
        job_queue=QUEUES[n % len(QUEUES)],
        container=container,
        created_at=created,
        parameters={"frame": str(n)},
        retry_strategy=RetryStrategy(attempts=2),
        tags={"team": "vfx"},
    )
    return job, [JobEvent(job_id, created, None, S.SUBMITTED)]


def finish(job: Job, n: int, count: int) -> Job:
    """The job as it is now: in flight if among the newest ACTIVE, else ended with one attempt."""
    if n >= count - ACTIVE:
        status = IN_FLIGHT[n % len(IN_FLIGHT)]
        return dataclasses.replace(job, status=status, runnable_at=job.created_at + 5)
    failed = n % 10 == 0
    attempt = Attempt(
        number=1,
        task_id=f"{n:032x}",
        container_name=f"lb-{job.job_id[:8]}-1",
        log_stream_name=f"render/default/{n:032x}",
        container_id=f"{n:064x}",
        started_at=job.created_at + 1_000,
        stopped_at=job.created_at + 61_000,
        exit_code=1 if failed else 0,
        status_reason="Essential container in task exited",
    )
    return dataclasses.replace(
        job,
        status=S.FAILED if failed else S.SUCCEEDED,
        status_reason="Essential container in task exited",
        compute_environment="local",
        started_at=attempt.started_at,
        stopped_at=attempt.stopped_at,
        runnable_at=job.created_at + 5,
        attempts=(attempt,),
    )


def fill(store: SqliteStateStore, count: int) -> tuple[list[Job], list[float]]:
    """Save ``count`` jobs in batches; every job (in list order) and each batch's time in ms."""
    jobs: list[Job] = []
    batch_ms: list[float] = []
    for start in range(0, count, BATCH):
        changes = []
        for n in range(start, min(start + BATCH, count)):
            job, events = make_job(n)
            changes.append((finish(job, n, count), events))
        began = time.perf_counter()
        store.save_jobs(changes)
        batch_ms.append((time.perf_counter() - began) * 1000)
        jobs.extend(job for job, _ in changes)
    return sorted(jobs, key=lambda j: (-j.created_at, j.job_id)), batch_ms


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: the pages it reads are then in SQLite's cache, as in a running daemon
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


def save_one_ms(store: SqliteStateStore, count: int, repeats: int) -> float:
    times = []
    for n in range(count, count + repeats):
        job, events = make_job(n)
        began = time.perf_counter()
        store.save_job(job, events)
        times.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(times), 3)


def measure(quick: bool, count: int | None = None, repeats: int | None = None) -> dict[str, float]:
    count = count or (20_000 if quick else 100_000)
    repeats = repeats or (15 if quick else 50)
    suffix = f"{count // 1000}k"
    with tempfile.TemporaryDirectory(prefix="localbatch-bench-") as home:
        store = SqliteStateStore(Path(home) / "state.db")
        try:
            ordered, batch_ms = fill(store, count)
            deep = ordered[int(len(ordered) * 0.9)]
            checks = {
                "first_page": JobQuery(limit=PAGE),
                "deep_page": JobQuery(after=(deep.created_at, deep.job_id), limit=PAGE),
            }
            first, deep_page = (store.list_jobs(q) for q in checks.values())
            assert [j.job_id for j in first] == [j.job_id for j in ordered[:PAGE]]
            at = ordered.index(deep) + 1
            assert [j.job_id for j in deep_page] == [j.job_id for j in ordered[at : at + PAGE]]
            assert len(store.active_jobs()) == ACTIVE

            def timed(query: JobQuery) -> float:
                return median_ms(lambda: store.list_jobs(query), repeats)

            figures = {
                "store_save_jobs_10k_batch_ms": round(statistics.median(batch_ms), 1),
                "store_list_first_page_ms": timed(checks["first_page"]),
                "store_list_status_page_ms": timed(JobQuery(statuses=(S.FAILED,), limit=PAGE)),
                "store_list_queue_status_page_ms": timed(JobQuery(job_queue="gpu", statuses=(S.RUNNING,), limit=PAGE)),
                "store_list_multi_status_page_ms": timed(JobQuery(statuses=(S.SUCCEEDED, S.FAILED), limit=PAGE)),
                "store_list_deep_page_ms": timed(checks["deep_page"]),
                "store_list_name_prefix_miss_ms": timed(JobQuery(name_prefix="no-such-", limit=PAGE)),
                "store_count_jobs_ms": median_ms(store.count_jobs, repeats),
                "store_count_jobs_queue_ms": median_ms(lambda: store.count_jobs("gpu"), repeats),
                "store_active_jobs_ms": median_ms(store.active_jobs, max(5, repeats // 5)),
                "store_get_job_ms": median_ms(lambda: store.get_job(deep.job_id), repeats),
                "store_save_job_ms": save_one_ms(store, count, repeats * 4),
            }
        finally:
            store.close()
    return {f"{name}_{suffix}": value for name, value in figures.items()}


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return measure(True, count=ACTIVE + 500, repeats=2)


if __name__ == "__main__":
    print(measure(quick="--quick" in sys.argv[1:]))
