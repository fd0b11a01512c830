"""Job dependencies (aws-batch-reference.md §5.2): when a job may leave PENDING, and which
``dependsOn`` lists a submission may carry.

A job waits in PENDING until every job it waits for has SUCCEEDED, then becomes RUNNABLE.
When one of them FAILED (cancelled and terminated jobs end FAILED too), the job fails
without running, with AWS's reason, and so in turn do the jobs waiting for it: the failure
runs down the chain. A job may depend only on jobs that already exist, so a cycle cannot be
formed (the new job's id does not exist until it is submitted).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum

from localbatch.core.jobs import Dependency, DependencyType, JobStatus
from localbatch.errors import Problem

MAX_DEPENDENCIES = 20
DEPENDENT_JOB_FAILED = "Dependent Job failed"


class Readiness(str, Enum):
    READY = "READY"  # every dependency SUCCEEDED (or there are none)
    WAIT = "WAIT"  # some dependency has not ended
    FAILED = "FAILED"  # some dependency FAILED: the job fails without running


def readiness(waits_for: Sequence[str], status_of: Callable[[str], JobStatus | None]) -> Readiness:
    """Whether a job waiting for ``waits_for`` may run. ``status_of`` gives a job's status
    (None for a job that no longer exists, which counts as failed: it can never succeed)."""
    ready = Readiness.READY
    for job_id in waits_for:
        status = status_of(job_id)
        if status is None or status is JobStatus.FAILED:
            return Readiness.FAILED
        if status is not JobStatus.SUCCEEDED:
            ready = Readiness.WAIT
    return ready


def check(depends_on: Sequence[Dependency], array_size: int | None, targets: Mapping[str, int | None]) -> list[Problem]:
    """Every problem with a submission's ``dependsOn``. ``targets`` maps each existing job
    named by it to its array size (None when it is not an array parent); a name missing from
    it is an unknown job."""
    if len(depends_on) > MAX_DEPENDENCIES:
        return [Problem("dependsOn", f"at most {MAX_DEPENDENCIES} dependencies, got {len(depends_on)}")]
    problems: list[Problem] = []
    for i, dependency in enumerate(depends_on):
        path = f"dependsOn[{i}]"
        kind = dependency.type
        if kind is not None and array_size is None:
            problems.append(Problem(f"{path}.type", f"{kind.value} applies to array jobs only (give arrayProperties)"))
            continue
        if kind is DependencyType.SEQUENTIAL:
            if dependency.job_id is not None:
                problems.append(Problem(f"{path}.jobId", "a SEQUENTIAL dependency names no job (it orders the array)"))
            continue
        if dependency.job_id is None:
            problems.append(Problem(f"{path}.jobId", "required (only a SEQUENTIAL dependency has none)"))
            continue
        if dependency.job_id not in targets:
            problems.append(Problem(f"{path}.jobId", f"no job {dependency.job_id}"))
            continue
        if kind is DependencyType.N_TO_N:
            other = targets[dependency.job_id]
            if other is None:
                problems.append(Problem(f"{path}.jobId", f"{dependency.job_id} is not an array job; N_TO_N needs one"))
            elif other != array_size:
                problems.append(
                    Problem(
                        f"{path}.jobId",
                        f"N_TO_N needs arrays of one size: {dependency.job_id} has {other} children, "
                        f"this job {array_size}",
                    )
                )
    return problems
