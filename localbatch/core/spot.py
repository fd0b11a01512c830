"""Spot reclaims, rehearsed: which running attempts lose their "host" now.

On AWS a Spot compute environment's instances can be taken back at any time; the attempts on
them fail with ``statusReason`` ``Host EC2 (instance i-...) terminated.`` (aws-batch-reference.md
§4.5), which is what ``evaluateOnExit`` rules such as ``onStatusReason: "Host EC2*"`` are
written for (§4.1-4.2). A local compute environment marked Spot reclaims its attempts the same
way, so those rules can be tried before they meet a real reclaim:

- ``interrupt_after_s``: every attempt is reclaimed that many seconds after it started (a
  schedule: the same every time);
- ``interruption_rate``: each running attempt is reclaimed at random, at this many
  interruptions per running-attempt hour (a Poisson process: over a window of ``dt`` the
  chance is ``1 - exp(-rate * dt)``).

Both may be set; the schedule wins when it is due. Randomness is an input: ``reclaims`` takes
the uniform draws from the caller (a seeded ``random.Random`` in the daemon), so the same draws
give the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from localbatch.errors import Problem

_HOUR_MS = 3_600_000
INSTANCE_ID_HEX = 17  # EC2 instance ids: "i-" and 17 hex digits
# FNV-1a, 128 bits: a stable digest with no import (core is stdlib-pure, hashlib included).
_FNV_OFFSET = 0x6C62272E07BB014262B821756295C58D
_FNV_PRIME = 0x0000000001000000000000000000013B
_MASK_128 = (1 << 128) - 1


@dataclass(frozen=True)
class SpotRehearsal:
    """How a Spot compute environment loses its attempts; neither set: only on demand
    (``localbatch interrupt``)."""

    interruption_rate: float = 0.0  # reclaims per running-attempt hour; 0: none at random
    interrupt_after_s: float | None = None  # reclaim every attempt this long after it started


def problems(spot: SpotRehearsal, path: str = "") -> list[Problem]:
    """What is wrong with ``spot``; paths are ``path`` + the field's name."""
    found = []
    rate = spot.interruption_rate
    if not math.isfinite(rate) or rate < 0:
        found.append(Problem(f"{path}interruption_rate", f"must be a number >= 0 (per running-job hour), got {rate}"))
    after = spot.interrupt_after_s
    if after is not None and (not math.isfinite(after) or after <= 0):
        found.append(Problem(f"{path}interrupt_after_seconds", f"must be a number of seconds > 0, got {after}"))
    return found


def instance_id(job_id: str, attempt: int) -> str:
    """The pretend EC2 instance an attempt ran on: ``i-`` and 17 hex digits, the same for the
    same attempt every time (so a log line and ``describe`` agree)."""
    digest = _FNV_OFFSET
    for byte in f"{job_id}:{attempt}".encode():
        digest = ((digest ^ byte) * _FNV_PRIME) & _MASK_128
    for _ in range(3):  # fold the high bits down and mix again: one changed byte changes every digit
        digest = ((digest ^ (digest >> 61)) * _FNV_PRIME) & _MASK_128
    return f"i-{digest & ((1 << 4 * INSTANCE_ID_HEX) - 1):0{INSTANCE_ID_HEX}x}"


def host_terminated_reason(job_id: str, attempt: int) -> str:
    """AWS's statusReason for an attempt whose host went away."""
    return f"Host EC2 (instance {instance_id(job_id, attempt)}) terminated."


@dataclass(frozen=True, slots=True)
class RunningAttempt:
    job_id: str
    compute_environment: str
    started_at: int  # epoch ms


def reclaims(
    running: Sequence[RunningAttempt],
    spot: Mapping[str, SpotRehearsal | None],
    last_check: int | None,
    now: int,
    draw: Callable[[], float],
) -> list[str]:
    """The ids of the attempts reclaimed now, in job id order.

    ``spot`` maps compute environment names to their rehearsal (None or absent: on-demand).
    ``last_check`` is when this was last asked (None the first time): a random reclaim is drawn
    for the time since then that the attempt ran, so how often this is called does not change
    the rate. ``draw`` returns uniform numbers in [0, 1); it is called once per attempt that
    could be reclaimed at random, in job id order.
    """
    chosen = []
    for attempt in sorted(running, key=lambda a: a.job_id):
        rehearsal = spot.get(attempt.compute_environment)
        if rehearsal is None:
            continue
        after = rehearsal.interrupt_after_s
        if after is not None and now >= attempt.started_at + after * 1000:
            chosen.append(attempt.job_id)
            continue
        if rehearsal.interruption_rate <= 0:
            continue
        since = attempt.started_at if last_check is None else max(last_check, attempt.started_at)
        window_ms = now - since
        if window_ms <= 0:
            continue
        chance = 1.0 - math.exp(-rehearsal.interruption_rate * window_ms / _HOUR_MS)
        if draw() < chance:
            chosen.append(attempt.job_id)
    return chosen
