"""Fair-share usage history: what each share of a fair-share queue has consumed, decayed.

The scheduler (rule 10) orders a fair-share queue's jobs by each share's weighted usage, part
of which is the vCPU-seconds its ended attempts consumed, decayed over the policy's window.
The control loop records each ended attempt here and hands ``at(now)`` to ``plan()``. Pure:
time is an argument.

AWS does not publish its decay function (aws-batch-reference.md §3.4). Here it is exponential
with the window as time constant: consumption ``window`` seconds ago counts 1/e (37 %), three
windows ago 5 %, so ``usage / window`` reads as "vCPUs used on average, lately".
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from localbatch.core.jobs import EpochMs

_MILLI = 1000

# (queue name, share identifier): the key of usage, per queue as AWS keeps it.
ShareKey = tuple[str, str]


def decayed_usage(vcpu_seconds: float, elapsed_s: float, window_s: float) -> float:
    """vCPU-seconds consumed ``elapsed_s`` ago, as they count now."""
    if elapsed_s <= 0:
        return vcpu_seconds
    return vcpu_seconds * math.exp(-elapsed_s / window_s)


class UsageHistory:
    """Per (queue, share): decayed vCPU-seconds, and as of when."""

    def __init__(self) -> None:
        self._usage: dict[ShareKey, tuple[float, EpochMs, float]] = {}  # value, as of, window s

    def record(self, key: ShareKey, vcpus: float, ran_ms: int, now: EpochMs, window_s: float) -> None:
        """An attempt of ``key``'s share that held ``vcpus`` for ``ran_ms`` ended at ``now``."""
        spent = vcpus * max(0, ran_ms) / _MILLI
        before = self._usage.get(key)
        if before is not None:
            value, as_of, _ = before
            spent += decayed_usage(value, (now - as_of) / _MILLI, window_s)
        self._usage[key] = (spent, now, window_s)

    def at(self, now: EpochMs) -> dict[ShareKey, float]:
        """Every share's usage decayed to ``now``; shares decayed to almost nothing (after
        about 20 windows) are forgotten."""
        found = {}
        for key, (value, as_of, window_s) in list(self._usage.items()):
            decayed = decayed_usage(value, (now - as_of) / _MILLI, window_s)
            if decayed < 1e-6:
                del self._usage[key]
            else:
                found[key] = decayed
        return found

    def windows(self, windows: Mapping[str, float]) -> None:
        """Queues whose policy changed window: their history decays by the new one from now on.
        Queues not named (no longer fair share) are forgotten."""
        for key in list(self._usage):
            value, as_of, _ = self._usage[key]
            window = windows.get(key[0])
            if window is None:
                del self._usage[key]
            else:
                self._usage[key] = (value, as_of, window)
