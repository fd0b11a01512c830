"""What the daemon counts for ``/metrics`` (Prometheus): jobs started and finished by queue
and outcome, and how long RUNNABLE jobs waited to be placed (scheduling latency). The control
loop reports every state change (``observe``); queue depths and allocations are read when
scraped (``families``). Thread-safe: the loop writes, HTTP handler threads read."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

from localbatch.core.infra import ComputeEnvironment
from localbatch.core.jobs import Job, JobEvent, JobStatus
from localbatch.core.metrics import Family, Labels, Sample, counter_samples, histogram_samples, labels
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation
from localbatch.ports import StateStore

# Seconds from RUNNABLE to placed: most placements take a tick, a queue backs up for minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started: dict[Labels, float] = {}
        self._finished: dict[Labels, float] = {}
        self._latency: dict[str, list[int]] = {}  # queue -> per-bucket counts (+1 over the last)
        self._latency_sum: dict[str, float] = {}

    def observe(self, job: Job, event: JobEvent) -> None:
        """One state change of ``job`` (after it), as the control loop records it."""
        if job.is_array_parent or job.is_multinode_parent:
            return  # their children and nodes are counted; a parent never runs
        queue = job.job_queue
        with self._lock:
            if event.to_status is JobStatus.RUNNING:
                key = labels(queue=queue)
                self._started[key] = self._started.get(key, 0) + 1
            elif event.to_status.is_terminal:
                key = labels(queue=queue, outcome=event.to_status.value.lower())
                self._finished[key] = self._finished.get(key, 0) + 1
            elif event.to_status is JobStatus.STARTING and job.runnable_at is not None:
                waited_s = max(0, event.at - job.runnable_at) / 1000
                counts = self._latency.setdefault(queue, [0] * (len(LATENCY_BUCKETS) + 1))
                counts[bisect.bisect_left(LATENCY_BUCKETS, waited_s)] += 1
                self._latency_sum[queue] = self._latency_sum.get(queue, 0.0) + waited_s

    def families(
        self,
        store: StateStore,
        allocations: Callable[[], Sequence[Allocation]],
        host: Resources,
    ) -> list[Family]:
        """Every family, the gauges read now from the store and the allocations."""
        with self._lock:
            started, finished = dict(self._started), dict(self._finished)
            latency = {q: list(c) for q, c in self._latency.items()}
            sums = dict(self._latency_sum)
        depth: list[Sample] = []
        for queue in store.list_job_queues():
            counts = store.count_jobs(queue.name)
            for status in JobStatus:
                depth.append(Sample(labels(queue=queue.name, status=status.value), counts.get(status, 0)))
        held = tuple(allocations())
        allocated: list[Sample] = []
        capacity: list[Sample] = []
        for env in store.list_compute_environments():
            mine = sum((a.resources for a in held if a.compute_environment == env.name), Resources(0, 0, 0))
            allocated += _resource_samples(env.name, mine)
            capacity += _resource_samples(env.name, _capacity(env))
        return [
            Family("localbatch_jobs", "gauge", "Jobs in each queue and status, now.", tuple(depth)),
            Family(
                "localbatch_jobs_started_total",
                "counter",
                "Attempts that reached RUNNING since the daemon started, by queue.",
                counter_samples(started),
            ),
            Family(
                "localbatch_jobs_finished_total",
                "counter",
                "Jobs that ended since the daemon started, by queue and outcome (succeeded, failed).",
                counter_samples(finished),
            ),
            Family(
                "localbatch_scheduling_latency_seconds",
                "histogram",
                "Seconds from RUNNABLE to placed (STARTING), by queue.",
                tuple(
                    s
                    for queue in sorted(latency)
                    for s in histogram_samples(labels(queue=queue), LATENCY_BUCKETS, latency[queue], sums[queue])
                ),
            ),
            Family(
                "localbatch_allocated",
                "gauge",
                "Resources held by STARTING and RUNNING jobs, by compute environment and resource.",
                tuple(allocated),
            ),
            Family(
                "localbatch_capacity",
                "gauge",
                "Each compute environment's maximum, by resource (vcpus, memory_mib, gpus).",
                tuple(capacity),
            ),
            Family(
                "localbatch_host_capacity", "gauge", "What the host offers, by resource.", _resource_samples("", host)
            ),
        ]


def _capacity(env: ComputeEnvironment) -> Resources:
    return env.capacity


def _resource_samples(environment: str, resources: Resources) -> tuple[Sample, ...]:
    base = labels(compute_environment=environment) if environment else ()
    return (
        Sample((*base, ("resource", "vcpus")), resources.vcpus),
        Sample((*base, ("resource", "memory_mib")), resources.memory_mib),
        Sample((*base, ("resource", "gpus")), resources.gpus),
    )
