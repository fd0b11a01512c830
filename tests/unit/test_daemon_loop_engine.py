"""The control loop when the engine stops answering and comes back (fakes, fake clock)."""

from __future__ import annotations

import re
from typing import Any

from localbatch.core.jobs import JobStatus
from localbatch.core.retry import RetryStrategy
from tests.unit.test_daemon_loop import Rig, make_rig

S = JobStatus
HOST_EC2 = re.compile(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.")


def _running(rig: Rig, job_id: str) -> str:
    rig.settle(8)
    job = rig.job(job_id)
    assert job.status is S.RUNNING and job.current_attempt is not None
    assert job.current_attempt.container_id is not None
    return job.current_attempt.container_id


def test_an_engine_that_goes_away_takes_its_attempts_as_a_lost_host_and_places_nothing_meanwhile(
    tmp_path: Any,
) -> None:
    rig = make_rig(tmp_path)
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit(retry_strategy=RetryStrategy(attempts=2))
    container = _running(rig, job_id)

    rig.runtime.finish(container, exit_code=143)  # the stopping engine's SIGTERM ...
    rig.tick()
    assert rig.job(job_id).status is S.RUNNING  # ... held: it may be the engine's doing
    rig.runtime.unavailable = True  # ... and then it is gone
    late = rig.submit()
    rig.settle(40)  # 10 s away
    assert rig.job(job_id).status is S.RUNNING
    assert rig.job(late).status is S.RUNNABLE and rig.job(late).attempts == ()
    outage = rig.loop.engine_outage()
    assert outage is not None and "does not answer" in outage[1]

    rig.runtime.unavailable = False
    rig.runtime.script("busybox:1.36", runs_for_s=0)
    rig.settle(40)
    job = rig.job(job_id)
    assert job.status is S.SUCCEEDED, job
    first, second = job.attempts
    assert first.status_reason is not None and HOST_EC2.fullmatch(first.status_reason)
    assert first.reason is not None and first.reason.startswith("EngineUnavailable: the Docker engine went away")
    assert first.exit_code is None and second.exit_code == 0
    assert rig.job(late).status is S.SUCCEEDED and len(rig.job(late).attempts) == 1
    assert rig.loop.engine_outage() is None


def test_a_sigterm_exit_while_the_engine_stays_up_ends_its_attempt_once_the_grace_is_over(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    container = _running(rig, job_id)
    exited_at = rig.clock.now_ms()
    rig.runtime.finish(container, exit_code=143)
    rig.settle(20)  # 5 s: still held
    assert rig.job(job_id).status is S.RUNNING
    rig.settle(40)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.attempts[0].exit_code == 143
    assert job.status_reason == "Essential container in task exited"
    assert job.stopped_at is not None and job.stopped_at - exited_at < 1_000  # when it exited, not when it counted


def test_a_launch_that_finds_the_engine_gone_is_queued_again_without_spending_an_attempt(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    rig.runtime.script("busybox:1.36", runs_for_s=0)
    rig.runtime.unavailable = True
    job_id = rig.submit()
    rig.settle(8)
    job = rig.job(job_id)
    assert job.status is S.RUNNABLE and job.attempts == ()
    assert job.status_reason is not None and job.status_reason.startswith("Queued again: the fake Docker engine")
    rig.runtime.unavailable = False
    rig.settle(40)
    assert rig.job(job_id).status is S.SUCCEEDED and len(rig.job(job_id).attempts) == 1
