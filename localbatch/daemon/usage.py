"""Usage sampling: what each running attempt's container uses, read on a thread of its own.

The control loop says which containers run (``watch``) and takes an attempt's usage when it
ends (``finish``); the sampler never blocks it. Every ``interval_s`` the sampler reads each
watched container once (``ContainerRuntime.stats``, the engine's one-shot reading, and the
GPUs' utilisation through a ``GpuMeter``), pacing itself to at most ``max_per_s`` readings a
second, so a thousand running containers cost the engine a bounded rate, not a burst.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from localbatch.core import usage
from localbatch.core.usage import AttemptUsage, Tally, UsageSample
from localbatch.daemon.ticker import Ticker
from localbatch.errors import LocalbatchError
from localbatch.ports import Clock, ContainerRuntime

logger = logging.getLogger(__name__)


class GpuMeter(Protocol):
    def utilization(self, device_ids: tuple[str, ...]) -> float | None:
        """Mean utilisation (percent) of these devices now; None when it cannot be read."""
        ...


class NoGpus:
    def utilization(self, device_ids: tuple[str, ...]) -> float | None:
        return None


@dataclass
class _Watched:
    container_id: str
    gpu_ids: tuple[str, ...]
    tally: Tally


class UsageSampler:
    def __init__(
        self,
        runtime: ContainerRuntime,
        clock: Clock,
        *,
        gpus: GpuMeter | None = None,
        interval_s: float = 2.0,
        max_per_s: float = 20.0,
    ) -> None:
        self._runtime = runtime
        self._clock = clock
        self._gpus = gpus or NoGpus()
        self._pace_s = 1 / max_per_s if max_per_s > 0 else 0.0
        self._lock = threading.Lock()
        self._watched: dict[str, _Watched] = {}
        self._ticker = Ticker("usage-sampler", lambda: self.sample_once(self._ticker.stopping.wait), interval_s)

    # -- the control loop's side ------------------------------------------------------------

    def watch(self, job_id: str, container_id: str, started_at_ms: int, gpu_ids: tuple[str, ...] = ()) -> None:
        """Sample ``container_id`` as ``job_id``'s attempt from now on (a re-adopted one again)."""
        with self._lock:
            self._watched[job_id] = _Watched(container_id, gpu_ids, usage.start(started_at_ms))

    def finish(self, job_id: str) -> AttemptUsage | None:
        """Stop sampling ``job_id``; what its attempt used (None: never sampled)."""
        with self._lock:
            found = self._watched.pop(job_id, None)
        summary = None if found is None else usage.summary(found.tally)
        return None if summary is None else usage.settled(summary)

    # -- readers --------------------------------------------------------------------------------

    def watching(self) -> int:
        """How many attempts are sampled now (0 once none runs: see ``ControlLoop.footprint``)."""
        with self._lock:
            return len(self._watched)

    def live(self) -> dict[str, AttemptUsage]:
        """Each sampled running job's usage so far, with its latest readings."""
        with self._lock:
            tallies = {job_id: w.tally for job_id, w in self._watched.items()}
        return {job_id: found for job_id, t in tallies.items() if (found := usage.summary(t)) is not None}

    # -- sampling -------------------------------------------------------------------------------

    def sample_once(self, pause: Callable[[float], object] | None = None) -> int:
        """Read every watched container once (``pause`` between readings: the pacing);
        the number read."""
        with self._lock:
            targets = [(job_id, w.container_id, w.gpu_ids) for job_id, w in self._watched.items()]
        read = 0
        for number, (job_id, container_id, gpu_ids) in enumerate(targets):
            if number and pause is not None and pause(self._pace_s):
                break  # stopping
            try:
                stats = self._runtime.stats(container_id)
            except LocalbatchError as exc:  # gone between the listing and the reading, say
                logger.debug("job=%s: no usage reading: %s", job_id, exc)
                continue
            if stats is None:
                continue
            gpu = self._gpus.utilization(gpu_ids) if gpu_ids else None
            sample = UsageSample(self._clock.now_ms(), stats.cpu_ns, stats.memory_bytes, stats.memory_limit_bytes, gpu)
            with self._lock:
                found = self._watched.get(job_id)
                if found is not None and found.container_id == container_id:
                    found.tally = usage.observe(found.tally, sample)
            read += 1
        return read

    def start(self) -> None:
        self._ticker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._ticker.stop(timeout_s)
