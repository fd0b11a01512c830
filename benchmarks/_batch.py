"""What the end-to-end scenarios (overhead, packing, peer) share: the trivial job, a daemon's
config, waiting for jobs to end, and figures over per-job timings."""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker

from localbatch.config import resolve

IMAGE = "busybox:1.36"
TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
BENCH_LABEL = "localbatch.bench"  # on every container a benchmark starts itself, for clean-up


def config(*environments: tuple[str, float, int], listen: int | None = None) -> str:
    """A daemon config: one ENABLED compute environment per (name, vCPUs, MiB), each with a
    queue of the same name; ``listen`` adds the AWS endpoint on 127.0.0.1."""
    text = "[scheduler]\nmax_head_wait_seconds = 60\n"
    for name, vcpus, memory in environments:
        text += f'\n[[compute_environments]]\nname = "{name}"\nmax_vcpus = {vcpus}\nmax_memory_mib = {memory}\n'
        text += f'\n[[job_queues]]\nname = "{name}"\npriority = 1\ncompute_environments = ["{name}"]\n'
    if listen is not None:
        text += f'\n[api]\nlisten = "127.0.0.1:{listen}"\n'
    return text


def definition(name: str, command: Sequence[str], vcpus: float, memory_mib: int) -> dict[str, Any]:
    """A RegisterJobDefinition request: ``command`` on busybox, with these resources."""
    return {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": {
            "image": IMAGE,
            "command": list(command),
            "resourceRequirements": [
                {"type": "VCPU", "value": f"{vcpus:g}"},
                {"type": "MEMORY", "value": str(memory_mib)},
            ],
        },
    }


def wait_all(
    describe: Callable[[list[str]], list[dict[str, Any]]], ids: Sequence[str], timeout_s: float, every_s: float = 0.1
) -> tuple[float, dict[str, dict[str, Any]]]:
    """Poll ``describe`` (at most 100 ids a call) until every job ended: when the last was seen
    ended (``time.perf_counter()``) and every job's detail. Raises after ``timeout_s``."""
    deadline = time.perf_counter() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while True:
        pending = [i for i in ids if i not in done]
        for start in range(0, len(pending), 100):
            for job in describe(pending[start : start + 100]):
                if job["status"] in TERMINAL:
                    done[job["jobId"]] = job
        now = time.perf_counter()
        if len(done) == len(ids):
            return now, done
        if now > deadline:
            raise RuntimeError(f"{len(ids) - len(done)} of {len(ids)} jobs did not end within {timeout_s:g} s")
        time.sleep(every_s)


def peak_concurrent(intervals: Iterable[tuple[float, float, float]]) -> float:
    """The most of (start, end, amount) held at once: ends before starts at the same instant."""
    points = sorted([(s, 1, a) for s, _, a in intervals] + [(e, 0, -a) for _, e, a in intervals])
    held = peak = 0.0
    for _, _, amount in points:
        held += amount
        peak = max(peak, held)
    return round(peak, 3)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def summary(name: str, values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """``name`` (the median of the repeats), ``name_min`` and ``name_max`` (the spread)."""
    return {
        name: round(statistics.median(values), digits),
        f"{name}_min": round(min(values), digits),
        f"{name}_max": round(max(values), digits),
    }


def home_id(home: Path) -> str:
    """The id on the ``localbatch.home`` label of every container a daemon in ``home`` starts."""
    return resolve(env={"LOCALBATCH_HOME": str(home)}, cwd=home.parent).home_id


def remove_labelled(client: docker.DockerClient, key: str, value: str) -> int:
    """Force-remove every container labelled ``key=value``; how many there were."""
    found = client.api.containers(all=True, filters={"label": f"{key}={value}"})
    for container in found:
        try:
            client.api.remove_container(container["Id"], v=True, force=True)
        except docker.errors.NotFound:
            pass
    return len(found)


def load_average() -> float:
    """The 1-minute load average (the machine is shared: it says how quiet a run was)."""
    return round(os.getloadavg()[0], 2)


class RunningSampler(threading.Thread):
    """Looks at the engine's running containers matching ``filters`` every ``every_s`` while it
    runs; ``peak`` is the most seen at once, each container counting ``weight(its docker ps
    entry)`` (default 1; a lower bound: a short container can fall between two looks). Use as a
    context manager."""

    def __init__(
        self,
        client: docker.DockerClient,
        filters: dict[str, Any],
        every_s: float = 0.1,
        weight: Callable[[Mapping[str, Any]], float] = lambda _: 1,
    ) -> None:
        super().__init__(name="running-sampler", daemon=True)
        self._client = client
        self._filters = filters
        self._every_s = every_s
        self._weight = weight
        self._done = threading.Event()
        self.peak: float = 0

    def run(self) -> None:
        while not self._done.wait(self._every_s):
            try:
                running = self._client.api.containers(filters={**self._filters, "status": "running"})
            except docker.errors.APIError:
                continue
            self.peak = max(self.peak, round(sum(self._weight(c) for c in running), 3))

    def __enter__(self) -> RunningSampler:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self.join(5)
