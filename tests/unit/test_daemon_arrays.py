"""Arrays and dependencies through the service and the control loop, on fakes (fake engine,
clock and store): each step is a ``tick(now)``."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.awsbatch.requests import SubmitRequest
from localbatch.core.jobs import Dependency, DependencyType, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.retry import RetryStrategy
from localbatch.errors import InvalidRequest
from localbatch.ports import JobQuery
from tests.unit.test_daemon_loop import Rig, make_rig, restart

S = JobStatus
SEQUENTIAL = Dependency(None, DependencyType.SEQUENTIAL)


def submit(rig: Rig, *, size: int | None = None, depends_on: tuple[Dependency, ...] = (), **overrides: Any) -> str:
    request = SubmitRequest(
        "work", "default", "work", JobOverrides(**overrides), array_size=size, depends_on=depends_on
    )
    job_id = rig.service.submit_job(request).job_id
    rig.clock.advance(0.001)
    return job_id


def after(*job_ids: str, kind: DependencyType | None = None) -> tuple[Dependency, ...]:
    return tuple(Dependency(job_id, kind) for job_id in job_ids)


def statuses(rig: Rig, *job_ids: str) -> list[S]:
    return [rig.job(job_id).status for job_id in job_ids]


def by_env(name: str, value: str) -> Any:
    return lambda request: request.environment.get(name) == value


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return make_rig(tmp_path)


def test_an_array_runs_each_child_with_its_index_and_the_parent_ends_as_they_did(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    parent = submit(rig, size=4, vcpus=0.5)
    children = [f"{parent}:{i}" for i in range(4)]
    assert statuses(rig, parent, *children) == [S.SUBMITTED] * 5  # one submission, five rows
    rig.tick()
    assert rig.job(parent).status is S.PENDING  # a parent never runs
    assert statuses(rig, *children) == [S.STARTING] * 4
    rig.tick()
    envs = {c.request.environment["AWS_BATCH_JOB_ID"]: c.request.environment for c in rig.runtime.containers()}
    assert {
        job_id: (env["AWS_BATCH_JOB_ARRAY_INDEX"], env["AWS_BATCH_JOB_ARRAY_SIZE"]) for job_id, env in envs.items()
    } == {child: (str(i), "4") for i, child in enumerate(children)}
    assert rig.service.array_counts(rig.job(parent)) == {S.RUNNING: 4}
    rig.settle(8)
    assert statuses(rig, parent, *children) == [S.SUCCEEDED] * 5
    assert rig.service.array_counts(rig.job(parent)) == {S.SUCCEEDED: 4}
    listed = rig.store.list_jobs(JobQuery(job_queue="default"))
    assert [j.job_id for j in listed] == [parent]  # the queue lists the parent only


def test_one_failed_child_fails_the_parent_once_all_children_ended(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    rig.runtime.script(by_env("AWS_BATCH_JOB_ARRAY_INDEX", "0"), exit_code=3, runs_for_s=0)
    rig.runtime.script(by_env("AWS_BATCH_JOB_ARRAY_INDEX", "1"), runs_for_s=5)
    parent = submit(rig, size=2, vcpus=0.5)
    rig.settle(4)
    assert rig.job(f"{parent}:0").status is S.FAILED
    assert rig.job(parent).status is S.PENDING  # child 1 still runs
    rig.settle(30)
    assert rig.job(f"{parent}:1").status is S.SUCCEEDED
    ended = rig.job(parent)
    assert (ended.status, ended.status_reason) == (S.FAILED, "Array Child Job failed")


def test_each_child_retries_on_its_own(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=0)
    rig.runtime.script(
        lambda r: r.environment["AWS_BATCH_JOB_ARRAY_INDEX"] == "1" and r.environment["AWS_BATCH_JOB_ATTEMPT"] == "1",
        exit_code=1,
        runs_for_s=0,
    )
    parent = submit(rig, size=3, vcpus=0.5, retry_strategy=RetryStrategy(attempts=2))
    rig.settle(10)
    assert [len(rig.job(f"{parent}:{i}").attempts) for i in range(3)] == [1, 2, 1]
    assert rig.job(parent).status is S.SUCCEEDED


def test_sequential_children_run_one_at_a_time_and_a_failure_fails_the_rest(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    rig.runtime.script(by_env("AWS_BATCH_JOB_ARRAY_INDEX", "2"), exit_code=1, runs_for_s=1)
    parent = submit(rig, size=5, vcpus=0.5, depends_on=(SEQUENTIAL,))
    children = [f"{parent}:{i}" for i in range(5)]
    rig.tick()
    assert statuses(rig, *children) == [S.STARTING, S.PENDING, S.PENDING, S.PENDING, S.PENDING]
    most_at_once = 0
    for _ in range(40):
        rig.tick()
        most_at_once = max(most_at_once, len(rig.holding()))
    assert most_at_once == 1  # room for four, but each waits for the one before
    assert statuses(rig, *children) == [S.SUCCEEDED, S.SUCCEEDED, S.FAILED, S.FAILED, S.FAILED]
    assert [rig.job(c).status_reason for c in children[3:]] == ["Dependent Job failed"] * 2
    assert not rig.job(children[3]).attempts  # failed without running
    assert rig.job(parent).status is S.FAILED


def test_n_to_n_child_i_waits_for_child_i_of_the_other_array(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    first = submit(rig, size=3, vcpus=0.25)
    second = submit(rig, size=3, vcpus=0.25, depends_on=after(first, kind=DependencyType.N_TO_N))
    rig.tick()
    rig.tick()
    assert statuses(rig, *(f"{second}:{i}" for i in range(3))) == [S.PENDING] * 3
    running = {c.request.environment["AWS_BATCH_JOB_ID"]: c.container_id for c in rig.runtime.containers()}
    rig.runtime.finish(running[f"{first}:1"])
    rig.settle(2)
    assert statuses(rig, *(f"{second}:{i}" for i in range(3))) == [S.PENDING, S.RUNNING, S.PENDING]
    assert rig.job(f"{second}:1").depends_on == (Dependency(f"{first}:1", DependencyType.N_TO_N),)


def test_a_plain_dependency_on_an_array_waits_for_the_whole_array(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    array = submit(rig, size=3, vcpus=0.5)
    rig.runtime.script(by_env("AWS_BATCH_JOB_ARRAY_INDEX", "2"), runs_for_s=6)
    rig.clock.advance(0)
    later = submit(rig, depends_on=after(array))
    rig.settle(10)
    assert (rig.job(array).status, rig.job(later).status) == (S.PENDING, S.PENDING)
    rig.settle(30)
    assert statuses(rig, array, later) == [S.SUCCEEDED, S.SUCCEEDED]
    assert rig.job(later).started_at is not None and rig.job(later).started_at >= (rig.job(array).stopped_at or 0)


def test_a_failure_runs_down_a_1000_job_chain_in_one_tick(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", exit_code=1, runs_for_s=0)
    chain = [submit(rig)]
    for _ in range(999):
        chain.append(submit(rig, depends_on=after(chain[-1])))
    rig.tick()
    assert statuses(rig, chain[0], chain[1], chain[-1]) == [S.STARTING, S.PENDING, S.PENDING]
    rig.tick()  # the head runs and exits 1: everything behind it fails in the same tick
    rig.tick()
    assert {rig.job(j).status for j in chain} == {S.FAILED}
    assert rig.job(chain[-1]).status_reason == "Dependent Job failed"


def test_depending_on_a_job_that_already_succeeded_runs_at_once(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=0)
    done = submit(rig)
    rig.settle(4)
    assert rig.job(done).status is S.SUCCEEDED
    later = submit(rig, depends_on=after(done))
    rig.tick()
    assert rig.job(later).status is S.STARTING


def test_cancelling_a_parent_cancels_its_waiting_children_and_marks_the_parent_cancelled(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    parent = submit(rig, size=6, vcpus=1)  # two run at a time
    rig.tick()
    rig.tick()
    rig.service.cancel_job(parent, "no longer needed")
    rig.tick()
    rig.tick()
    children = [rig.job(f"{parent}:{i}") for i in range(6)]
    assert [c.status for c in children] == [S.RUNNING, S.RUNNING, S.FAILED, S.FAILED, S.FAILED, S.FAILED]
    assert all(c.is_cancelled and c.status_reason == "no longer needed" for c in children[2:])
    assert rig.job(parent).status is S.PENDING  # CancelJob leaves started children alone, as AWS
    rig.service.terminate_job(parent, "stop everything")
    rig.settle(4)
    assert statuses(rig, parent, f"{parent}:0", f"{parent}:1") == [S.FAILED] * 3
    ended = rig.job(parent)
    assert (ended.is_terminated, ended.status_reason) == (True, "stop everything")
    assert not rig.runtime.running()


def test_cancelling_a_dependency_fails_the_jobs_waiting_for_it(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    blocker = submit(rig, vcpus=2)
    first = submit(rig, vcpus=2)  # waits for capacity
    second = submit(rig, depends_on=after(first))
    rig.tick()
    rig.service.cancel_job(first, "changed my mind")
    rig.tick()
    assert statuses(rig, blocker, first, second) == [S.RUNNING, S.FAILED, S.FAILED]
    assert rig.job(second).status_reason == "Dependent Job failed"


def test_a_restarted_daemon_resolves_what_ended_while_it_was_down(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    array = submit(rig, size=2, vcpus=0.5)
    waiting = submit(rig, depends_on=after(array))
    rig.tick()
    rig.tick()
    for container in rig.runtime.containers():
        rig.runtime.finish(container.container_id)  # both children exit while no daemon runs
    rig = restart(rig)
    rig.tick()
    rig.tick()
    assert statuses(rig, array, waiting) == [S.SUCCEEDED, S.RUNNING]


@pytest.mark.parametrize(
    ("size", "depends_on", "message"),
    [
        (None, after("nope"), "dependsOn[0].jobId: no job nope"),
        (3, None, "N_TO_N needs arrays of one size"),
        (None, after("x", kind=DependencyType.N_TO_N), "N_TO_N applies to array jobs only"),
    ],
    ids=["unknown-job", "size-mismatch", "n-to-n-not-array"],
)
def test_bad_dependencies_are_refused_and_nothing_is_stored(
    rig: Rig, size: int | None, depends_on: tuple[Dependency, ...] | None, message: str
) -> None:
    other = submit(rig, size=2)
    before = rig.store.count_jobs()
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        submit(rig, size=size, depends_on=depends_on or after(other, kind=DependencyType.N_TO_N))
    assert rig.store.count_jobs() == before


def test_a_second_terminate_of_a_parent_kills_its_children_at_once(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None, ignores_sigterm=True)
    parent = submit(rig, size=2, vcpus=0.5)
    rig.tick()
    rig.tick()
    rig.service.terminate_job(parent, "stop")
    rig.tick()  # SIGTERM to each child, ignored: they would die only after the 2 s grace
    assert statuses(rig, f"{parent}:0", f"{parent}:1") == [S.RUNNING] * 2
    rig.service.terminate_job(parent, "stop now")  # the second Ctrl-C of `localbatch run`
    rig.tick()
    rig.tick()
    assert statuses(rig, parent, f"{parent}:0", f"{parent}:1") == [S.FAILED] * 3
    assert {grace for _, grace in rig.runtime.stopped} >= {0}
    assert not rig.runtime.running()
