"""The control loop's job state time limits and Spot reclaims, on fakes: a fake engine and clock,
an in-memory store, a seeded RNG; every step is a ``tick(now)``."""

from __future__ import annotations

import random
from dataclasses import fields
from typing import Any

import pytest

from localbatch.awsbatch.requests import SubmitRequest
from localbatch.core import spot
from localbatch.core.definition import JobDefinition
from localbatch.core.infra import ComputeEnvironment, JobQueue, JobStateTimeLimitAction
from localbatch.core.jobs import Job, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.scheduler import CAPACITY, MAX_RESOURCE
from localbatch.core.spec import ContainerSpec
from localbatch.core.spot import SpotRehearsal
from tests.fakes.api_world import SequentialIds
from tests.unit.test_daemon_loop import Rig as LoopRig
from tests.unit.test_daemon_loop import make_rig as loop_rig

S = JobStatus
HOST = Resources(vcpus=2, memory_mib=4096)
DEFINITION = JobDefinition(
    name="work",
    container=ContainerSpec(image="busybox:1.36", command=("sleep", "600"), resources=Resources(1, 512)),
)
CANCELED = "Canceled by JobStateTimeLimit action due to reason: "
RETRY_ON_HOST = RetryStrategy(2, (EvaluateOnExit(RetryAction.RETRY, on_status_reason="Host EC2*"),))
EXIT_ON_HOST = RetryStrategy(2, (EvaluateOnExit(RetryAction.EXIT, on_status_reason="Host EC2*"),))


class Rig(LoopRig):
    """test_daemon_loop's rig, submitting to the queue "q"; ``settle`` is 2 s of ticks."""

    def submit(self, **overrides: Any) -> str:
        job_id = self.service.submit_job(SubmitRequest("work", "q", "work", JobOverrides(**overrides))).job_id
        self.clock.advance(0.001)
        return job_id

    def settle(self, ticks: int = 8, seconds: float = 0.25) -> None:
        super().settle(ticks, seconds)


def make_rig(
    tmp_path: Any,
    *,
    actions: tuple[JobStateTimeLimitAction, ...] = (),
    rehearsal: SpotRehearsal | None = None,
    vcpus: float = 1,
    seed: int = 1,
) -> Rig:
    """test_daemon_loop's rig, with the environment "ce" (maybe Spot), the queue "q" (maybe
    with time limits), a seeded RNG, and jobs that run until stopped."""
    base = loop_rig(
        tmp_path,
        ComputeEnvironment("ce", vcpus, 4096, spot=rehearsal),
        queue=JobQueue("q", 1, ("ce",), job_state_time_limit_actions=actions),
        definition=DEFINITION,
        rng=random.Random(seed),
        new_id=SequentialIds(),
    )
    base.runtime.script("busybox:1.36", runs_for_s=None)
    return Rig(**{f.name: getattr(base, f.name) for f in fields(base)})


# -- job state time limits ------------------------------------------------------------------------


def test_a_head_waiting_for_capacity_past_the_limit_is_cancelled_and_the_next_job_becomes_head(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, actions=(JobStateTimeLimitAction(CAPACITY, 5),))
    holder, first, second = rig.submit(), rig.submit(), rig.submit()
    rig.settle(ticks=4)  # 1 s
    assert [rig.job(i).status for i in (holder, first, second)] == [S.RUNNING, S.RUNNABLE, S.RUNNABLE]
    rig.settle(ticks=17)  # the head has waited for capacity 5 s at the last of these ticks
    cancelled = rig.job(first)
    assert (cancelled.status, cancelled.is_cancelled) == (S.FAILED, True)
    assert cancelled.status_reason == f"{CANCELED}{CAPACITY}"
    assert cancelled.attempts == ()
    assert rig.job(second).status is S.RUNNABLE  # the new head's clock started when it became head
    rig.settle(ticks=19)
    assert rig.job(second).status is S.RUNNABLE
    rig.settle(ticks=1)  # 5 s after it became head
    assert rig.job(second).status_reason == f"{CANCELED}{CAPACITY}"
    assert rig.job(holder).status is S.RUNNING  # running jobs are never touched


def test_an_action_for_another_reason_does_not_fire(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, actions=(JobStateTimeLimitAction(MAX_RESOURCE, 1),))
    rig.submit()
    waiting = rig.submit()
    rig.settle(ticks=20)
    assert rig.job(waiting).status is S.RUNNABLE


def test_a_head_that_gets_placed_before_its_time_is_not_cancelled(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, actions=(JobStateTimeLimitAction(CAPACITY, 5),))
    holder, waiting = rig.submit(), rig.submit()
    rig.settle(ticks=8)  # 2 s
    rig.runtime.finish(rig.job(holder).attempts[-1].container_id or "", exit_code=0)
    rig.settle(ticks=20)
    assert rig.job(holder).status is S.SUCCEEDED
    assert rig.job(waiting).status is S.RUNNING


def test_actions_added_by_update_job_queue_apply_from_the_next_tick(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    rig.submit()
    waiting = rig.submit()
    rig.settle(ticks=20)
    assert rig.job(waiting).status is S.RUNNABLE
    rig.service.update_job_queue(
        "q", None, None, None, job_state_time_limit_actions=(JobStateTimeLimitAction(CAPACITY, 2),)
    )
    rig.settle(ticks=12)
    assert rig.job(waiting).status_reason == f"{CANCELED}{CAPACITY}"


# -- Spot reclaims ----------------------------------------------------------------------------------


def _host_terminated(job: Job, attempt: int) -> str:
    return spot.host_terminated_reason(job.job_id, attempt)


def test_interrupt_fails_the_attempt_with_awss_reason_and_a_host_ec2_rule_retries_it(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    job_id = rig.submit(retry_strategy=RETRY_ON_HOST)
    rig.settle(ticks=2)
    assert rig.job(job_id).status is S.RUNNING
    rig.loop.interrupt(job_id)
    rig.settle(ticks=4)
    job = rig.job(job_id)
    first = job.attempts[0]
    assert first.status_reason == _host_terminated(job, 1)
    assert (first.exit_code, first.reason) == (None, None)  # the host went: no exit code, no container reason
    assert len(job.attempts) == 2 and job.status is S.RUNNING  # retried at once: the capacity is free
    assert [c for c, grace in rig.runtime.stopped] == [first.container_id]
    assert rig.runtime.stopped[0][1] == 2  # stopped with the configured grace, as a drain would


def test_interrupt_with_an_exit_rule_ends_the_job_failed_with_the_host_reason(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    job_id = rig.submit(retry_strategy=EXIT_ON_HOST)
    rig.settle(ticks=2)
    rig.loop.interrupt(job_id)
    rig.settle(ticks=4)
    job = rig.job(job_id)
    assert job.status is S.FAILED and not job.is_terminated and not job.is_cancelled
    assert job.status_reason == _host_terminated(job, 1)


def test_interrupting_a_job_that_is_not_running_does_nothing(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    holder, waiting = rig.submit(), rig.submit()
    rig.settle(ticks=2)
    rig.loop.interrupt(waiting)
    rig.loop.interrupt("no-such-job")
    rig.settle(ticks=4)
    assert [rig.job(i).status for i in (holder, waiting)] == [S.RUNNING, S.RUNNABLE]
    assert rig.runtime.stopped == []


def test_a_spot_schedule_reclaims_every_attempt_after_its_time(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, rehearsal=SpotRehearsal(interrupt_after_s=3))
    job_id = rig.submit(retry_strategy=RetryStrategy(3))
    rig.settle(ticks=8)  # 2 s: still on its first attempt
    assert len(rig.job(job_id).attempts) == 1
    rig.settle(ticks=40)  # 10 s: three attempts of 3 s each
    job = rig.job(job_id)
    assert job.status is S.FAILED
    assert [a.status_reason for a in job.attempts] == [_host_terminated(job, n) for n in (1, 2, 3)]
    for attempt in job.attempts:
        assert attempt.started_at is not None and attempt.stopped_at is not None
        assert attempt.stopped_at - attempt.started_at >= 3_000


def test_an_on_demand_environment_is_never_reclaimed(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, rehearsal=None)
    job_id = rig.submit()
    rig.settle(ticks=200, seconds=60)  # over three hours
    assert rig.job(job_id).status is S.RUNNING


@pytest.mark.parametrize("seed", [1, 2])
def test_random_reclaims_follow_the_seed(tmp_path: Any, seed: int) -> None:
    def run(path: Any) -> list[tuple[int | None, int | None]]:
        rig = make_rig(path, rehearsal=SpotRehearsal(interruption_rate=360), vcpus=2, seed=seed)
        ids = [rig.submit(retry_strategy=RetryStrategy(5)) for _ in range(2)]
        rig.settle(ticks=40, seconds=1)
        return [(a.started_at, a.stopped_at) for i in ids for a in rig.job(i).attempts]

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = run(tmp_path / "a")
    assert len(first) > 2  # at 360 reclaims an hour (one per 10 s), 40 s of two jobs sees some
    assert [stopped - started for started, stopped in first if started and stopped] == [
        stopped - started for started, stopped in run(tmp_path / "b") if started and stopped
    ]
