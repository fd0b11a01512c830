"""Per-job overhead (issue 8a): N trivial containers through a localbatch daemon against the same
containers through the docker SDK directly, at the same concurrency, in the same run.

Inputs: N = 100 (quick: 20) jobs of ``true`` on busybox:1.36, 0.25 vCPU and 64 MiB each, host
networking. The daemon's compute environment holds N x 0.25 vCPUs, so only the host (its CPUs)
bounds how many run at once: ``overhead_concurrency`` = host CPUs / 0.25, capped at N. The direct
side runs create, start, wait and remove for each container on that many threads, with the same
container options localbatch gives (``container_create_kwargs``). Repeats: 3 (quick: 2), the two
sides alternating; figures are the median (``_min``/``_max``: the spread).

    overhead_ratio              localbatch wall time / direct wall time, per repeat (target <= 1.10)
    overhead_localbatch_s       first SubmitJob until every job is seen SUCCEEDED (polled at 0.2 s)
    overhead_direct_s           the direct side's wall time
    overhead_latency_p50_s      submit to SUCCEEDED per job in the localbatch batch (the job's own
    overhead_latency_p95_s      createdAt -> stoppedAt), median over repeats of each repeat's p50/p95
    overhead_direct_latency_p50_s / _p95_s   the direct side: queued at 0 -> container removed
    overhead_idle_latency_p50_s one job at a time on an idle daemon, seen SUCCEEDED by a client
                                polling every 20 ms: the median of 10 (quick: 3) (target <= 0.5)
    overhead_peak_running       the most localbatch containers seen running at once (``docker ps``
                                every 0.1 s): the same concurrency as the direct side

    python -m benchmarks.bench_overhead [--quick]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

from benchmarks import _batch
from benchmarks.bench_daemon import daemon
from localbatch.adapters.docker_runtime import container_create_kwargs
from localbatch.adapters.host import PsutilHostProbe
from localbatch.client import DaemonClient
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.ports import ContainerRequest

VCPUS = 0.25
MEMORY_MIB = 64
QUEUE = "wide"


def concurrency(n: int) -> int:
    """How many 0.25-vCPU jobs localbatch runs at once here: the host's CPUs bound it."""
    cpus = PsutilHostProbe(nvml_loader=None, nvidia_smi=None).probe().cpus
    return max(1, min(n, int(cpus / VCPUS)))


def direct(client: docker.DockerClient, n: int, workers: int, label: str) -> tuple[float, list[float]]:
    """Wall time of N containers run by ``workers`` threads, and each one's time to removal."""
    spec = ContainerSpec(image=_batch.IMAGE, command=("true",), resources=Resources(VCPUS, MEMORY_MIB))

    def one(i: int) -> float:
        request = ContainerRequest(
            name=f"lbbench-direct-{label}-{i}", spec=spec, environment={}, labels={_batch.BENCH_LABEL: label}
        )
        kwargs = container_create_kwargs(request, network_mode="host", cpu_limit="shares")
        container = client.containers.create(**kwargs)
        container.start()
        container.wait()
        container.remove(v=True)
        return time.perf_counter()

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        ends = list(pool.map(one, range(n)))
    return time.perf_counter() - started, [end - started for end in ends]


def _describe(client: DaemonClient) -> Any:
    return lambda ids: client.call("DescribeJobs", {"jobs": ids})["jobs"]


def through_localbatch(client: DaemonClient, n: int) -> tuple[float, list[float]]:
    """Wall time of N jobs, and each job's submit -> SUCCEEDED (s)."""
    started = time.perf_counter()
    ids = [
        client.call("SubmitJob", {"jobName": f"t{i}", "jobQueue": QUEUE, "jobDefinition": "trivial"})["jobId"]
        for i in range(n)
    ]
    seen, jobs = _batch.wait_all(_describe(client), ids, timeout_s=60 + 2 * n, every_s=0.2)
    failed = [j["jobId"] for j in jobs.values() if j["status"] != "SUCCEEDED"]
    if failed:
        raise RuntimeError(f"{len(failed)} trivial jobs failed: {jobs[failed[0]].get('statusReason')}")
    latencies = [(j["stoppedAt"] - j["createdAt"]) / 1000 for j in jobs.values()]
    return seen - started, latencies


def idle_latency(client: DaemonClient, count: int) -> list[float]:
    """Submit one job, poll it every 20 ms until SUCCEEDED; ``count`` times, idle in between."""
    times = []
    for i in range(count):
        time.sleep(0.5)
        started = time.perf_counter()
        job_id = client.call("SubmitJob", {"jobName": f"idle{i}", "jobQueue": QUEUE, "jobDefinition": "trivial"})
        seen, _ = _batch.wait_all(_describe(client), [job_id["jobId"]], timeout_s=30, every_s=0.02)
        times.append(seen - started)
    return times


def run(n: int, repeats: int, idle_jobs: int) -> dict[str, float]:
    workers = concurrency(n)
    label = uuid.uuid4().hex[:12]
    engine = docker.from_env(max_pool_size=workers + 4)
    rows: dict[str, list[float]] = {k: [] for k in ("ratio", "lb", "direct", "p50", "p95", "dp50", "dp95", "peak")}
    try:
        with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
            home = Path(tmp) / "home"
            home_id = _batch.home_id(home)
            config = _batch.config((QUEUE, n * VCPUS, n * MEMORY_MIB + 256))
            with daemon(home, config) as (client, _):
                client.call("RegisterJobDefinition", _batch.definition("trivial", ["true"], VCPUS, MEMORY_MIB))
                through_localbatch(client, min(n, workers))  # warm-up: the image, the daemon's paths
                for _ in range(repeats):
                    direct_s, direct_latencies = direct(engine, n, workers, label)
                    with _batch.RunningSampler(engine, {"label": f"localbatch.home={home_id}"}) as sampler:
                        lb_s, latencies = through_localbatch(client, n)
                    peak = sampler.peak
                    rows["ratio"].append(lb_s / direct_s)
                    rows["lb"].append(lb_s)
                    rows["direct"].append(direct_s)
                    rows["p50"].append(_batch.percentile(latencies, 0.5))
                    rows["p95"].append(_batch.percentile(latencies, 0.95))
                    rows["dp50"].append(_batch.percentile(direct_latencies, 0.5))
                    rows["dp95"].append(_batch.percentile(direct_latencies, 0.95))
                    rows["peak"].append(peak)
                idle = idle_latency(client, idle_jobs)
    finally:
        _batch.remove_labelled(engine, _batch.BENCH_LABEL, label)
        engine.close()
    return {
        "overhead_jobs": n,
        "overhead_concurrency": workers,
        "overhead_repeats": repeats,
        **_batch.summary("overhead_ratio", rows["ratio"]),
        **_batch.summary("overhead_localbatch_s", rows["lb"]),
        **_batch.summary("overhead_direct_s", rows["direct"]),
        **_batch.summary("overhead_latency_p50_s", rows["p50"]),
        **_batch.summary("overhead_latency_p95_s", rows["p95"]),
        **_batch.summary("overhead_direct_latency_p50_s", rows["dp50"]),
        **_batch.summary("overhead_direct_latency_p95_s", rows["dp95"]),
        "overhead_idle_latency_p50_s": round(_batch.percentile(idle, 0.5), 3),
        "overhead_idle_latency_max_s": round(max(idle), 3),
        "overhead_peak_running": max(rows["peak"]),
    }


def measure(quick: bool) -> dict[str, float]:
    return run(n=20 if quick else 100, repeats=2 if quick else 3, idle_jobs=3 if quick else 10)


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return run(n=2, repeats=1, idle_jobs=1)


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:]), indent=2))
