"""How far a batch of jobs is: counts per state, elapsed and estimated remaining time.

A batch is what ``run`` or ``wait`` watches: one job, an array (its children counted), or a
dependency graph (every job in it). The estimate is the simplest honest one: the rate at
which jobs have ended so far, applied to the jobs left; none until one has ended. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")


@dataclass(frozen=True)
class Progress:
    counts: Mapping[str, int]  # status -> jobs in it (zeros may be absent)
    elapsed_s: float
    remaining_s: float | None  # None: no estimate yet (nothing ended) or nothing left

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def succeeded(self) -> int:
        return self.counts.get("SUCCEEDED", 0)

    @property
    def failed(self) -> int:
        return self.counts.get("FAILED", 0)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done == self.total


def progress(counts: Mapping[str, int], elapsed_s: float) -> Progress:
    """``counts`` with the time taken so far and the estimate of what is left."""
    kept = {state: n for state, n in counts.items() if n > 0}
    done = kept.get("SUCCEEDED", 0) + kept.get("FAILED", 0)
    left = sum(kept.values()) - done
    remaining = None
    if done > 0 and left > 0 and elapsed_s > 0:
        remaining = elapsed_s / done * left
    return Progress(kept, max(elapsed_s, 0.0), remaining)


def duration_text(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h01m``; ``-`` for None."""
    if seconds is None:
        return "-"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
