"""What an attempt used: CPU and memory (and GPU) from samples of its running container.

A sample carries the container's cumulative CPU time, so CPU % between two samples is the CPU
time spent over the wall time passed (100 % = one vCPU busy). The first interval starts at
the attempt's start with no CPU spent. Memory is the working set at each sample; its peak is
the largest sampled, so a spike shorter than the sampling interval can be missed (an OOM kill
is recorded on the attempt anyway). Pure: samples come in as values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

MIB = 1024 * 1024


@dataclass(frozen=True)
class UsageSample:
    """One reading of a running container."""

    at_ms: int
    cpu_ns: int  # cumulative CPU time the container has used since it started
    memory_bytes: int  # working set now (usage less reclaimable page cache)
    memory_limit_bytes: int | None = None
    gpu_percent: float | None = None  # mean utilisation of its GPUs (NVML), None without


@dataclass(frozen=True)
class AttemptUsage:
    """What one attempt used, as ``describe`` and ``advise`` show it."""

    samples: int
    cpu_avg_percent: float
    cpu_peak_percent: float
    memory_peak_mib: float
    memory_limit_mib: float | None = None
    gpu_avg_percent: float | None = None
    gpu_peak_percent: float | None = None
    cpu_now_percent: float | None = None  # the last interval's (live views)
    memory_now_mib: float | None = None


@dataclass(frozen=True)
class Tally:
    """Samples folded so far (``observe``), from the attempt's start."""

    started_at_ms: int
    last_at_ms: int
    last_cpu_ns: int = 0
    samples: int = 0
    cpu_peak_percent: float = 0.0
    cpu_now_percent: float | None = None
    memory_peak_bytes: int = 0
    memory_now_bytes: int | None = None
    memory_limit_bytes: int | None = None
    gpu_sum: float = 0.0
    gpu_samples: int = 0
    gpu_peak_percent: float | None = None


def start(started_at_ms: int) -> Tally:
    return Tally(started_at_ms=started_at_ms, last_at_ms=started_at_ms)


def cpu_percent(cpu_ns: int, wall_ms: int) -> float:
    """CPU time over wall time in percent of one CPU (0 for no time passed)."""
    return 0.0 if wall_ms <= 0 else max(cpu_ns, 0) / (wall_ms * 1_000_000) * 100


def observe(tally: Tally, sample: UsageSample) -> Tally:
    """``tally`` with ``sample`` folded in; a sample not later than the last is ignored."""
    if sample.at_ms <= tally.last_at_ms or sample.cpu_ns < tally.last_cpu_ns:
        return tally
    now = cpu_percent(sample.cpu_ns - tally.last_cpu_ns, sample.at_ms - tally.last_at_ms)
    gpu = sample.gpu_percent
    return replace(
        tally,
        last_at_ms=sample.at_ms,
        last_cpu_ns=sample.cpu_ns,
        samples=tally.samples + 1,
        cpu_peak_percent=max(tally.cpu_peak_percent, now),
        cpu_now_percent=now,
        memory_peak_bytes=max(tally.memory_peak_bytes, sample.memory_bytes),
        memory_now_bytes=sample.memory_bytes,
        memory_limit_bytes=sample.memory_limit_bytes or tally.memory_limit_bytes,
        gpu_sum=tally.gpu_sum + (gpu or 0.0),
        gpu_samples=tally.gpu_samples + (gpu is not None),
        gpu_peak_percent=tally.gpu_peak_percent if gpu is None else max(tally.gpu_peak_percent or 0.0, gpu),
    )


def summary(tally: Tally) -> AttemptUsage | None:
    """The attempt's usage so far; None before its first sample."""
    if tally.samples == 0:
        return None
    return AttemptUsage(
        samples=tally.samples,
        cpu_avg_percent=round(cpu_percent(tally.last_cpu_ns, tally.last_at_ms - tally.started_at_ms), 1),
        cpu_peak_percent=round(tally.cpu_peak_percent, 1),
        memory_peak_mib=round(tally.memory_peak_bytes / MIB, 1),
        memory_limit_mib=None if tally.memory_limit_bytes is None else round(tally.memory_limit_bytes / MIB, 1),
        gpu_avg_percent=round(tally.gpu_sum / tally.gpu_samples, 1) if tally.gpu_samples else None,
        gpu_peak_percent=None if tally.gpu_peak_percent is None else round(tally.gpu_peak_percent, 1),
        cpu_now_percent=None if tally.cpu_now_percent is None else round(tally.cpu_now_percent, 1),
        memory_now_mib=None if tally.memory_now_bytes is None else round(tally.memory_now_bytes / MIB, 1),
    )


def settled(usage: AttemptUsage) -> AttemptUsage:
    """``usage`` as kept on an ended attempt: the live readings dropped."""
    return replace(usage, cpu_now_percent=None, memory_now_mib=None)


def to_document(usage: AttemptUsage) -> dict[str, float | int]:
    """The API's spelling (camelCase; absent values left out)."""
    names = {
        "samples": "samples",
        "cpu_avg_percent": "cpuAvgPercent",
        "cpu_peak_percent": "cpuPeakPercent",
        "memory_peak_mib": "memoryPeakMiB",
        "memory_limit_mib": "memoryLimitMiB",
        "gpu_avg_percent": "gpuAvgPercent",
        "gpu_peak_percent": "gpuPeakPercent",
        "cpu_now_percent": "cpuNowPercent",
        "memory_now_mib": "memoryNowMiB",
    }
    return {wire: value for key, wire in names.items() if (value := getattr(usage, key)) is not None}


def from_document(data: dict[str, object]) -> AttemptUsage:
    """Back from ``to_document``'s shape. Raises ValueError for a malformed document."""

    def number(key: str, required: bool = False) -> float | None:
        value = data.get(key)
        if value is None:
            if required:
                raise ValueError(f"usage: {key} is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"usage: {key} must be a number, got {value!r}")
        return float(value)

    samples = number("samples", True)
    assert samples is not None
    return AttemptUsage(
        samples=int(samples),
        cpu_avg_percent=number("cpuAvgPercent", True) or 0.0,
        cpu_peak_percent=number("cpuPeakPercent", True) or 0.0,
        memory_peak_mib=number("memoryPeakMiB", True) or 0.0,
        memory_limit_mib=number("memoryLimitMiB"),
        gpu_avg_percent=number("gpuAvgPercent"),
        gpu_peak_percent=number("gpuPeakPercent"),
        cpu_now_percent=number("cpuNowPercent"),
        memory_now_mib=number("memoryNowMiB"),
    )
