"""The control loop forgets what it no longer needs (issue 10's soak): once every job has
ended, its records (``ControlLoop.footprint``) are empty but for the bounded ``ended``. On fakes;
each step is a ``tick(now)``."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.core.jobs import JobStatus
from localbatch.core.retry import RetryStrategy
from localbatch.daemon.usage import UsageSampler
from tests.unit.test_daemon_arrays import after, submit
from tests.unit.test_daemon_loop import Rig, make_rig

S = JobStatus


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return make_rig(tmp_path)


def left(rig: Rig) -> dict[str, int]:
    """What the loop still holds, beyond the statuses of ended jobs."""
    return {name: n for name, n in rig.loop.footprint().items() if n and name != "ended"}


def test_a_mix_of_jobs_leaves_nothing_behind_once_all_ended(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    first = submit(rig)
    array = submit(rig, size=3)
    chain = submit(rig, depends_on=after(first, array))
    retried = submit(rig, retry_strategy=RetryStrategy(attempts=2))
    rig.settle(ticks=60)
    assert {rig.job(j).status for j in (first, array, chain, retried)} == {S.SUCCEEDED}
    assert left(rig) == {}
    assert rig.loop.footprint()["ended"] == 7


def test_a_job_depending_on_one_that_already_ended_leaves_no_record_of_the_wait(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    done = submit(rig)
    rig.settle(ticks=20)
    assert rig.job(done).status is S.SUCCEEDED
    later = [submit(rig, depends_on=after(done)) for _ in range(3)]
    rig.settle(ticks=20)
    assert [rig.job(j).status for j in later] == [S.SUCCEEDED] * 3
    assert left(rig) == {}


def test_a_waiting_job_cancelled_before_its_dependency_ends_is_forgotten_at_once(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    running = submit(rig)
    waiting = submit(rig, depends_on=after(running))
    rig.settle(ticks=4)
    rig.service.cancel_job(waiting, "no longer wanted")
    rig.settle(ticks=4)
    assert rig.job(waiting).status is S.FAILED
    assert left(rig).get("dependents", 0) == 0


def test_a_stop_that_arrives_after_its_job_ended_is_not_kept(rig: Rig) -> None:
    """TerminateJob reads the job still RUNNING in the store, the loop ends it and saves, and
    only then takes in the stop: the stop has nothing left to act on and must not wait forever
    for a submission notice that came long ago."""
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    job_id = submit(rig)
    rig.settle(ticks=20)
    assert rig.job(job_id).status is S.SUCCEEDED
    rig.loop.stop_requested(job_id)  # what the handler does when it saw the job not yet ended
    rig.settle(ticks=2)
    assert left(rig) == {}


def test_running_jobs_that_are_terminated_or_time_out_leave_nothing_sampled_or_held(tmp_path: Any) -> None:
    rig = make_rig(tmp_path, sampler=UsageSampler)  # never started: nothing samples, it only watches
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    stopped = submit(rig)
    timed_out = submit(rig, timeout_s=1)
    rig.settle(ticks=4)
    assert rig.loop.footprint()["sampled"] == 2
    rig.service.terminate_job(stopped, "soak")
    rig.settle(ticks=60)
    assert {rig.job(j).status for j in (stopped, timed_out)} == {S.FAILED}
    assert left(rig) == {}
