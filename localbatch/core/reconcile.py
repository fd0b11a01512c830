"""After a restart: what the store says is in flight, against what the engine actually holds.

A daemon can die at any moment (kill -9, a crash, a reboot of the daemon but not of the
engine). On start it lists the containers carrying its home's label and compares them with
its STARTING and RUNNING jobs. Each container and each in-flight job ends in exactly one
bucket (Nomad's reconciler idea: sort, then act):

- ``Adopt``: the job's current attempt has a running container. Keep watching it.
- ``Collect``: the container stopped while the daemon was away. Read its exit and its output.
- ``Lost``: the job was STARTING or RUNNING but its attempt has no container (it vanished, or
  the daemon died before creating it). The caller decides what that costs: a launch that never
  started is queued again, a RUNNING attempt failed and the retry strategy decides.
- ``RemoveOrphan``: a container of ours that belongs to no job in flight (a finished job, an
  older attempt, a job the store never saw). It is removed.

Pure: the caller observes, this decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from localbatch.core.jobs import Job, JobStatus


@dataclass(frozen=True)
class ObservedContainer:
    container_id: str
    job_id: str | None  # from its labels; None if the label is missing or unreadable
    attempt: int | None
    running: bool


@dataclass(frozen=True)
class Adopt:
    job_id: str
    container_id: str


@dataclass(frozen=True)
class Collect:
    job_id: str
    container_id: str


@dataclass(frozen=True)
class Lost:
    job_id: str


@dataclass(frozen=True)
class RemoveOrphan:
    container_id: str


Action = Adopt | Collect | Lost | RemoveOrphan


def reconcile(active: Sequence[Job], observed: Sequence[ObservedContainer]) -> list[Action]:
    """The actions that bring the engine and the store back into agreement, jobs first (in
    the order given), then orphans (by container id)."""
    in_flight = {
        job.job_id: job
        for job in active
        if job.status in (JobStatus.STARTING, JobStatus.RUNNING) and job.current_attempt is not None
    }
    claimed: set[str] = set()
    actions: list[Action] = []
    by_attempt = {(c.job_id, c.attempt): c for c in observed if c.job_id is not None}
    for job in active:
        if job.job_id not in in_flight:
            continue
        attempt = job.current_attempt
        assert attempt is not None
        container = by_attempt.get((job.job_id, attempt.number))
        if container is None:
            actions.append(Lost(job.job_id))
            continue
        claimed.add(container.container_id)
        if container.running:
            actions.append(Adopt(job.job_id, container.container_id))
        else:
            actions.append(Collect(job.job_id, container.container_id))
    orphans = sorted(c.container_id for c in observed if c.container_id not in claimed)
    actions.extend(RemoveOrphan(container_id) for container_id in orphans)
    return actions
