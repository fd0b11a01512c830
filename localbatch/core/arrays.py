"""Array jobs (aws-batch-reference.md §5.1): a parent and its children ``parent:0 .. parent:N-1``.

The parent never runs. Its children are ordinary jobs (rows, not threads) that share the
parent's definition, overrides, retry strategy and timeout, each with its own attempts. The
parent shows SUBMITTED, then PENDING while its children run, then SUCCEEDED when every
child succeeded or FAILED when any failed. AWS leaves open whether the parent fails at the
first child failure or once all children are done; localbatch waits for all of them (what
AWS's CancelJob text implies), so a FAILED parent never has children still running.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from localbatch.core.jobs import Dependency, DependencyType, Job, JobEvent, JobStatus

MIN_SIZE, MAX_SIZE = 2, 10_000
ARRAY_CHILD_FAILED = "Array Child Job failed"


def size_problem(size: int) -> str | None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        return f"must be between {MIN_SIZE} and {MAX_SIZE}, got {size}"
    return None


def child_id(parent_id: str, index: int) -> str:
    return f"{parent_id}:{index}"


def children(parent: Job) -> list[tuple[Job, JobEvent]]:
    """The parent's SUBMITTED children, each with its submission event. Each child's
    ``depends_on`` names the jobs it waits for: the parent's plain dependencies (a whole job),
    child i of each N_TO_N array, and child i-1 of its own array when SEQUENTIAL."""
    size = parent.array_size
    if size is None:
        raise ValueError(f"job {parent.job_id} is not an array job")
    plain = tuple(d for d in parent.depends_on if d.type is None)
    n_to_n = [d.job_id for d in parent.depends_on if d.type is DependencyType.N_TO_N and d.job_id]
    sequential = any(d.type is DependencyType.SEQUENTIAL for d in parent.depends_on)
    base = replace(parent, attempts=(), stop_request=None)
    made = []
    for index in range(size):
        depends = plain + tuple(Dependency(child_id(other, index), DependencyType.N_TO_N) for other in n_to_n)
        if sequential and index > 0:
            depends += (Dependency(child_id(parent.job_id, index - 1), DependencyType.SEQUENTIAL),)
        job_id = child_id(parent.job_id, index)
        child = replace(base, job_id=job_id, array_index=index, depends_on=depends)
        made.append((child, JobEvent(job_id, parent.created_at, None, JobStatus.SUBMITTED)))
    return made


def status_summary(counts: Mapping[JobStatus, int]) -> dict[str, int]:
    """``arrayProperties.statusSummary``: every status, zeros included (as clients expect)."""
    return {status.value: int(counts.get(status, 0)) for status in JobStatus}
