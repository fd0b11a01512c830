"""Job state time limits: cancel a queue's head job stuck RUNNABLE too long (AWS's
``jobStateTimeLimitActions``, aws-batch-reference.md §3.6).

AWS: when the job at the head of a queue has sat RUNNABLE with a statusReason code equal to an
action's ``reason`` for at least ``maxTimeSeconds``, Batch cancels it and the next job advances;
its statusReason becomes ``Canceled by JobStateTimeLimit action due to reason: <CODE>``.

Here, with each queue's head taken from the scheduler's plan (the first job of the queue's
dispatch order left waiting, ``Plan.heads``):

- a head's clock starts when it is the head *and* has that code, and restarts when either
  changes (a new head, or the same head waiting for another reason). AWS documents the actions
  as applying to "jobs that remain at the head of the job queue"; whether time spent with the
  code before becoming head counts is not documented, and we do not count it, so a queue of
  stuck jobs loses one per ``maxTimeSeconds``, not all of them at once;
- ``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`` is accepted but never fires: the local
  scheduler never gives it (a job no environment can hold waits with
  ``MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE``);
- AWS allows ``maxTimeSeconds`` from 600 to 86400; localbatch allows 1 to 86400 so a rehearsal
  need not wait ten minutes, and ``warnings`` says when a value is below AWS's minimum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from localbatch.core.infra import JobQueue, JobStateTimeLimitAction
from localbatch.core.jobs import EpochMs
from localbatch.core.scheduler import CAPACITY, MAX_RESOURCE
from localbatch.errors import Problem

JOB_RESOURCE_REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
REASONS = (CAPACITY, MAX_RESOURCE, JOB_RESOURCE_REQUIREMENT)  # the codes AWS supports
STATES = ("RUNNABLE",)
ACTIONS = ("CANCEL",)
AWS_MIN_SECONDS = 600
MAX_SECONDS = 86_400
LOCAL_MIN_SECONDS = 1
CANCELED_PREFIX = "Canceled by JobStateTimeLimit action due to reason: "


def status_reason(code: str) -> str:
    return f"{CANCELED_PREFIX}{code}"


def problems(actions: Sequence[JobStateTimeLimitAction], path: str, *, aws_names: bool = False) -> list[Problem]:
    """What is wrong with ``actions``; each problem's path is ``path[i].field``, the field as
    AWS spells it with ``aws_names`` (``maxTimeSeconds``), else as the config file does."""
    seconds_field = "maxTimeSeconds" if aws_names else "max_time_seconds"
    found = []
    for i, action in enumerate(actions):
        where = f"{path}[{i}]"
        if action.reason not in REASONS:
            found.append(Problem(f"{where}.reason", f"{action.reason!r}: allowed: {', '.join(REASONS)}"))
        if action.state not in STATES:
            found.append(Problem(f"{where}.state", f"{action.state!r}: allowed: {', '.join(STATES)}"))
        if action.action not in ACTIONS:
            found.append(Problem(f"{where}.action", f"{action.action!r}: allowed: {', '.join(ACTIONS)}"))
        seconds = action.max_time_seconds
        if not LOCAL_MIN_SECONDS <= seconds <= MAX_SECONDS:
            found.append(
                Problem(
                    f"{where}.{seconds_field}",
                    f"must be between {LOCAL_MIN_SECONDS} and {MAX_SECONDS} seconds "
                    f"(AWS: {AWS_MIN_SECONDS} to {MAX_SECONDS}), got {seconds}",
                )
            )
    return found


def warnings(queue: JobQueue) -> list[str]:
    """What runs locally but AWS would refuse: a ``max_time_seconds`` below 600."""
    return [
        f"job queue {queue.name}: job state time limit action {i} ({action.reason}) waits "
        f"{action.max_time_seconds} s; AWS requires {AWS_MIN_SECONDS} to {MAX_SECONDS} s, so this "
        "runs locally only"
        for i, action in enumerate(queue.job_state_time_limit_actions)
        if action.max_time_seconds < AWS_MIN_SECONDS
    ]


@dataclass(frozen=True, slots=True)
class HeadWait:
    """A queue's head job, the code it waits with, and since when both have held."""

    job_id: str
    code: str
    since: EpochMs


@dataclass(frozen=True, slots=True)
class Cancellation:
    job_queue: str
    job_id: str
    status_reason: str


def track(previous: Mapping[str, HeadWait], heads: Mapping[str, tuple[str, str]], now: EpochMs) -> dict[str, HeadWait]:
    """Each queue's head as of a new plan (``heads``: queue -> (job id, reason code)): the clock
    kept where the head and its code are unchanged, started at ``now`` where either changed."""
    tracked = {}
    for queue, (job_id, code) in heads.items():
        before = previous.get(queue)
        same = before is not None and before.job_id == job_id and before.code == code
        tracked[queue] = before if same and before is not None else HeadWait(job_id, code, now)
    return tracked


def due(heads: Mapping[str, HeadWait], queues: Iterable[JobQueue], now: EpochMs) -> list[Cancellation]:
    """The head jobs to cancel now: those whose code matches an action of their queue and has
    held for at least its ``max_time_seconds``. In queue name order."""
    found = []
    for queue in sorted(queues, key=lambda q: q.name):
        head = heads.get(queue.name)
        if head is None:
            continue
        for action in queue.job_state_time_limit_actions:
            if action.reason == head.code and now - head.since >= action.max_time_seconds * 1000:
                found.append(Cancellation(queue.name, head.job_id, status_reason(head.code)))
                break
    return found
