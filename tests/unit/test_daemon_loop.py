"""The control loop on fakes: a fake engine and clock, an in-memory store, launches and stops
run inline. Every step is a ``tick(now)``; nothing sleeps except for log pump threads."""

from __future__ import annotations

import random
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any

import pytest

from localbatch import __version__, config, jobdef, logs
from localbatch.awsbatch.requests import SubmitRequest
from localbatch.batch import BatchService
from localbatch.core import naming, outcome
from localbatch.core.definition import JobDefinition
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy, State
from localbatch.core.jobs import Job, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.resources import Resources
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.daemon.loop import ControlLoop
from localbatch.daemon.startup import recover
from localbatch.errors import ContainerRuntimeError, StateStoreError
from localbatch.ports import ContainerRequest
from tests.fakes.clock import FakeClock
from tests.fakes.executor import Inline
from tests.fakes.host import FakeHostProbe
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

S = JobStatus
HOST = Resources(vcpus=2, memory_mib=4096, gpus=2)
GPUS = FakeHostProbe.with_gpus(2).inventory.gpus
DEFINITION = JobDefinition(
    name="work",
    container=ContainerSpec(image="busybox:1.36", command=("sh", "-c", "echo hi"), resources=Resources(1, 512)),
)


@dataclass
class Rig:
    clock: FakeClock
    runtime: FakeRuntime
    store: InMemoryStateStore
    loop: ControlLoop
    service: BatchService
    settings: config.Settings

    def submit(self, **overrides: Any) -> str:
        request = SubmitRequest("work", "default", "work", JobOverrides(**overrides))
        job_id = self.service.submit_job(request).job_id
        self.clock.advance(0.001)  # FIFO is by submission time; give each its own millisecond
        return job_id

    def tick(self, seconds: float = 0.25) -> None:
        self.loop.tick(self.clock.now_ms())
        self.clock.advance(seconds)

    def settle(self, ticks: int = 40, seconds: float = 0.25) -> None:
        for _ in range(ticks):
            self.tick(seconds)

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        assert job is not None
        return job

    def holding(self) -> list[Job]:
        return [j for j in self.store.active_jobs() if j.status in (S.STARTING, S.RUNNING)]


def new_loop(
    settings: config.Settings,
    runtime: FakeRuntime,
    store: InMemoryStateStore,
    clock: FakeClock,
    rng: random.Random | None = None,
    object_store: Any = None,
    sampler: Any = None,
) -> ControlLoop:
    """A loop on the fakes that does everything inline: launches, stops, log pumps."""
    return ControlLoop(
        settings=settings,
        runtime=runtime,
        store=store,
        clock=clock,
        host=HOST,
        gpus=GPUS,
        executor=Inline(),
        in_background=lambda action: action(),
        start_pump=logs.LogPump.run,  # the fake's output never blocks: pump it on the spot
        rng=rng,
        object_store=object_store,
        sampler=sampler,
    )


def make_rig(
    tmp_path: Any,
    environment: ComputeEnvironment | None = None,
    *,
    queue: JobQueue | None = None,
    definition: JobDefinition = DEFINITION,
    rng: random.Random | None = None,
    new_id: Any = None,
    env: dict[str, str] | None = None,
    object_store: Any = None,
    sampler: Any = None,
) -> Rig:
    """The loop and the service on fakes, with one compute environment (default: "local") and
    one queue (default: "default" over it) and the definition "work" registered."""
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    store = InMemoryStateStore()
    settings = config.resolve(
        env={"LOCALBATCH_HOME": str(tmp_path), "LOCALBATCH_STOP_TIMEOUT_SECONDS": "2", **(env or {})}, cwd=tmp_path
    )
    store.put_compute_environment(environment or ComputeEnvironment("local", 2, 4096, ("0", "1")))
    store.put_job_queue(queue or JobQueue("default", 1, ("local",)))
    store.register_job_definition("work", jobdef.to_document(definition), clock.now_ms())
    loop = new_loop(settings, runtime, store, clock, rng, object_store, sampler(runtime, clock) if sampler else None)
    loop.load([], {})
    extra = {"new_id": new_id} if new_id is not None else {}
    service = BatchService(store=store, clock=clock, host=HOST, notifier=loop, live=loop, **extra)
    return Rig(clock, runtime, store, loop, service, settings)


@pytest.fixture
def rig(tmp_path: Any) -> Rig:
    return make_rig(tmp_path)


def test_jobs_are_placed_up_to_capacity_and_the_rest_wait_saying_why(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    ids = [rig.submit() for _ in range(3)]
    rig.tick()
    rig.tick()
    assert [rig.job(i).status for i in ids] == [S.RUNNING, S.RUNNING, S.RUNNABLE]
    [waiting] = rig.service.describe_jobs([ids[2]])
    assert waiting.status_reason == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU, 0 vCPU free in compute environment local"
    )
    [request] = [r for r in rig.runtime.created if r.environment["AWS_BATCH_JOB_ID"] == ids[0]]
    assert request.environment["AWS_BATCH_CE_NAME"] == "local" and request.environment["AWS_BATCH_JQ_NAME"] == "default"


def test_finished_containers_free_capacity_and_are_removed(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=2, output=b"done\n")
    ids = [rig.submit() for _ in range(3)]
    rig.settle(ticks=30)
    assert [rig.job(i).status for i in ids] == [S.SUCCEEDED] * 3
    third = rig.job(ids[2])
    assert third.started_at is not None and third.started_at >= rig.job(ids[0]).stopped_at  # type: ignore[operator]
    assert rig.runtime.containers() == []
    assert logs.read(logs.attempt_log_path(rig.settings.logs_dir, ids[0], 1)) == b"done\n"
    assert [e.to_status for e in rig.store.list_events(ids[0])] == [
        S.SUBMITTED,
        S.RUNNABLE,
        S.STARTING,
        S.RUNNING,
        S.SUCCEEDED,
    ]


def test_never_over_commits_under_a_random_workload(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    rng = random.Random(7)
    durations: dict[str, float] = {}
    for _ in range(25):
        job_id = rig.submit(vcpus=rng.choice([0.25, 0.5, 1, 2]), memory_mib=rng.choice([128, 1024, 2048, 4096]))
        durations[job_id] = rng.choice([0.5, 1, 2, 3])
    for job_id, seconds in durations.items():
        rig.runtime.script(lambda r, j=job_id: r.environment["AWS_BATCH_JOB_ID"] == j, runs_for_s=seconds)
    for _ in range(400):
        rig.tick()
        held = [j.container.resources for j in rig.holding()]
        assert sum(r.vcpus for r in held) <= 2 and sum(r.memory_mib for r in held) <= 4096
        if all(rig.job(j).status.is_terminal for j in durations):
            break
    assert all(rig.job(j).status is S.SUCCEEDED for j in durations)


def test_gpus_go_to_distinct_devices_and_are_named_in_the_environment(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    ids = [rig.submit(gpus=1, vcpus=0.5) for _ in range(3)]
    rig.tick()
    rig.tick()
    first, second, third = (rig.job(i) for i in ids)
    assert {first.gpu_ids, second.gpu_ids} == {("0",), ("1",)}
    assert third.status is S.RUNNABLE
    assert "needs 1 GPU, 0 GPU free" in (rig.service.describe_jobs([ids[2]])[0].status_reason or "")
    visible = sorted(r.environment["NVIDIA_VISIBLE_DEVICES"] for r in rig.runtime.created)
    assert visible == ["0", "1"] and sorted(r.gpu_device_ids for r in rig.runtime.created) == [("0",), ("1",)]


def test_cancel_fails_a_job_that_has_not_started(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    ids = [rig.submit(vcpus=2), rig.submit()]
    rig.tick()
    rig.service.cancel_job(ids[1], "not needed")
    rig.tick()
    job = rig.job(ids[1])
    assert job.status is S.FAILED and job.is_cancelled and job.status_reason == "not needed"


def test_cancel_of_a_running_job_has_no_effect_and_is_forgotten(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=3)
    job_id = rig.submit()
    rig.tick()
    rig.tick()
    rig.service.cancel_job(job_id, "too late")
    rig.settle(ticks=20)
    job = rig.job(job_id)
    assert job.status is S.SUCCEEDED and not job.is_cancelled and job.stop_request is None


def test_terminate_stops_a_running_container(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit(retry_strategy=RetryStrategy(attempts=3))
    rig.tick()
    rig.tick()
    rig.service.terminate_job(job_id, "stop it")
    rig.settle(ticks=4)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.is_terminated and job.status_reason == "stop it"
    assert len(job.attempts) == 1  # terminated attempts are never retried
    assert rig.runtime.stopped and rig.runtime.stopped[0][1] == 2


def test_attempt_timeout_stops_the_container_with_aws_reason(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit(timeout_s=2, retry_strategy=RetryStrategy(attempts=2))
    rig.settle(ticks=20)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.status_reason == "Job attempt duration exceeded timeout"
    assert len(job.attempts) == 1


def test_failed_attempts_are_retried_and_the_next_one_runs(rig: Rig) -> None:
    rig.runtime.script(lambda r: r.environment["AWS_BATCH_JOB_ATTEMPT"] == "1", exit_code=3, runs_for_s=0.5)
    rig.runtime.script(lambda r: r.environment["AWS_BATCH_JOB_ATTEMPT"] == "2", exit_code=0, runs_for_s=0.5)
    job_id = rig.submit(retry_strategy=RetryStrategy(attempts=2))
    rig.settle(ticks=20)
    job = rig.job(job_id)
    assert job.status is S.SUCCEEDED and [a.exit_code for a in job.attempts] == [3, 0]


def test_an_image_that_cannot_be_pulled_fails_the_attempt(rig: Rig) -> None:
    rig.runtime.missing_images.add("busybox:1.36")
    job_id = rig.submit()
    rig.settle(ticks=4)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.status_reason == "Task failed to start"
    assert (job.attempts[0].reason or "").startswith("CannotPullContainerError: ")


def test_a_container_removed_behind_the_daemons_back_is_lost(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.tick()
    rig.tick()
    rig.runtime.remove(rig.job(job_id).attempts[0].container_id or "")
    rig.settle(ticks=3)
    job = rig.job(job_id)
    assert job.status is S.FAILED and (job.status_reason or "").startswith("Container vanished")


def test_a_disabled_queue_dispatches_nothing_until_enabled(rig: Rig) -> None:
    rig.service.update_job_queue("default", State.DISABLED, None, None)
    rig.store.put_job_queue(JobQueue("default", 1, ("local",)))  # submit needs it ENABLED ...
    job_id = rig.submit()
    rig.service.update_job_queue("default", State.DISABLED, None, None)  # ... then it is disabled
    rig.settle(ticks=3)
    assert rig.job(job_id).status is S.RUNNABLE
    assert rig.service.describe_jobs([job_id])[0].status_reason == "ACTION_REQUIRED - job queue default is DISABLED"
    rig.service.update_job_queue("default", State.ENABLED, None, None)
    rig.settle(ticks=3)
    assert rig.job(job_id).status is S.SUCCEEDED


# -- a restarted daemon ---------------------------------------------------------------------------


def restart(rig: Rig) -> Rig:
    """The same store and engine, a new loop (the old one died)."""
    loop = new_loop(rig.settings, rig.runtime, rig.store, rig.clock)
    recover(loop, rig.settings, rig.store, rig.runtime, rig.clock)
    service = BatchService(store=rig.store, clock=rig.clock, host=HOST, notifier=loop, live=loop)
    return replace(rig, loop=loop, service=service)


def test_restart_adopts_running_collects_exited_and_retries_vanished(rig: Rig) -> None:
    rig.runtime.script(lambda r: r.environment["AWS_BATCH_JOB_ATTEMPT"] == "1", runs_for_s=None, output=b"out\n")
    keeps, exits, vanishes = (
        rig.submit(vcpus=0.5),
        rig.submit(vcpus=0.5),
        rig.submit(vcpus=0.5, retry_strategy=RetryStrategy(attempts=2)),
    )
    rig.tick()
    rig.tick()
    assert all(rig.job(j).status is S.RUNNING for j in (keeps, exits, vanishes))
    # The daemon dies. Meanwhile one container exits and one is removed by hand.
    rig.runtime.finish(rig.job(exits).attempts[0].container_id or "", exit_code=4)
    rig.runtime.remove(rig.job(vanishes).attempts[0].container_id or "")
    rig = restart(rig)
    assert rig.job(exits).status is S.FAILED and rig.job(exits).exit_code == 4
    assert logs.read(logs.attempt_log_path(rig.settings.logs_dir, exits, 1)) == b"out\n"
    assert rig.job(vanishes).status is S.RUNNABLE  # retried per its strategy
    assert rig.job(vanishes).attempts[0].status_reason == "Container vanished while the daemon was down"
    assert rig.job(keeps).status is S.RUNNING
    rig.runtime.finish(rig.job(keeps).attempts[0].container_id or "", exit_code=0)
    rig.settle(ticks=6)
    assert rig.job(keeps).status is S.SUCCEEDED
    retried = rig.job(vanishes)  # its second attempt has no script: it exits 0 at once
    assert retried.status is S.SUCCEEDED and len(retried.attempts) == 2


def test_a_terminate_recorded_before_a_restart_ends_the_attempt_terminated_not_retried(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    exits, vanishes = (rig.submit(vcpus=0.5, retry_strategy=RetryStrategy(attempts=2)) for _ in range(2))
    rig.tick()
    rig.tick()
    for job_id in (exits, vanishes):  # recorded; the daemon dies before its loop stops them
        rig.service.terminate_job(job_id, "no longer wanted")
    rig.runtime.finish(rig.job(exits).attempts[0].container_id or "", exit_code=137)  # the grace ran out
    rig.runtime.remove(rig.job(vanishes).attempts[0].container_id or "")
    rig = restart(rig)
    for job_id in (exits, vanishes):
        job = rig.job(job_id)
        assert (job.status, job.status_reason, job.is_terminated) == (S.FAILED, "no longer wanted", True)
        assert len(job.attempts) == 1


def test_a_container_that_stopped_past_its_timeout_while_the_daemon_was_down_timed_out(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    late, early = (rig.submit(vcpus=0.5, timeout_s=60, retry_strategy=RetryStrategy(attempts=2)) for _ in range(2))
    rig.tick()
    rig.tick()
    # The daemon dies. One container exits on its own within its 60 s; the other is stopped at
    # its deadline (by the daemon's stop, which the engine finished after the daemon died).
    rig.clock.advance(30)
    rig.runtime.finish(rig.job(early).attempts[0].container_id or "", exit_code=1)
    rig.clock.advance(31)
    rig.runtime.finish(rig.job(late).attempts[0].container_id or "", exit_code=137)
    rig = restart(rig)
    timed_out = rig.job(late).attempts[0]
    assert (timed_out.status_reason, timed_out.exit_code) == (outcome.TIMEOUT, 137)
    assert rig.job(early).attempts[0].status_reason == "Essential container in task exited"


def test_restart_removes_containers_no_job_owns(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.tick()
    rig.tick()
    rig.service.terminate_job(job_id, "x")
    rig.store.save_job(replace(rig.job(job_id), status=S.SUCCEEDED))  # the store says it ended
    container = rig.job(job_id).attempts[0].container_id
    rig = restart(rig)
    assert container not in [c.container_id for c in rig.runtime.containers()]


def test_restart_moves_a_starting_job_with_a_running_container_to_running(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.tick()
    rig.tick()
    running = rig.job(job_id)
    attempt = replace(running.attempts[0], started_at=None)
    rig.store.save_job(replace(running, status=S.STARTING, attempts=(attempt,), started_at=None))
    rig = restart(rig)
    assert rig.job(job_id).status is S.RUNNING


def test_with_nothing_changing_the_loop_plans_again_only_when_a_wait_crosses_the_threshold(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import localbatch.daemon.loop as loop_module

    plans: list[int] = []
    real_plan = loop_module.plan

    def counting_plan(*args: Any, **kwargs: Any) -> Any:
        plans.append(rig.clock.now_ms())
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(loop_module, "plan", counting_plan)
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    rig.submit(vcpus=2)
    waiting = rig.submit(vcpus=2)
    rig.tick()
    rig.tick()
    planned_at_start = len(plans)
    for _ in range(40):  # 10 s with nothing new: no plan at all
        rig.tick()
    assert len(plans) == planned_at_start
    rig.settle(ticks=220)  # past the 60 s starvation threshold of the waiting job: one more plan
    assert len(plans) == planned_at_start + 1
    assert plans[-1] >= rig.job(waiting).runnable_at + 60_000  # type: ignore[operator]


def test_an_oom_kill_is_reported_in_ecs_words(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", oom_killed=True, runs_for_s=0.5)
    job_id = rig.submit()
    rig.settle(ticks=8)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.exit_code == 137
    assert job.attempts[0].reason == "OutOfMemoryError: Container killed due to memory usage"


def test_a_container_the_engine_refuses_to_start_fails_the_attempt(rig: Rig) -> None:
    rig.runtime.refuse_start_with = "exec: no such file or directory"
    job_id = rig.submit()
    rig.settle(ticks=4)
    job = rig.job(job_id)
    assert job.status is S.FAILED and (job.attempts[0].reason or "").startswith("CannotStartContainerError: ")
    assert rig.runtime.containers() == []


def test_a_second_terminate_kills_a_container_still_in_its_grace_period(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None, ignores_sigterm=True)
    job_id = rig.submit()
    rig.tick()
    rig.tick()
    rig.service.terminate_job(job_id, "stop")
    rig.tick()  # SIGTERM, ignored: the container would die only after the 2 s grace
    assert rig.job(job_id).status is S.RUNNING
    rig.service.terminate_job(job_id, "stop now")  # the second Ctrl-C of `localbatch run`
    rig.tick()
    rig.tick()
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.is_terminated and job.status_reason == "stop"
    assert (job.attempts[0].container_id, 0) in rig.runtime.stopped


class Pending(Executor):
    """Holds what is submitted until the test runs it (an image pull that takes its time)."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Any]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.held.append((future, lambda: fn(*args, **kwargs)))
        return future

    def release(self) -> None:
        for future, call in self.held:
            future.set_result(call())
        self.held = []


def test_terminate_during_an_image_pull_ends_the_job_at_once_and_the_late_container_is_removed(
    tmp_path: Any,
) -> None:
    rig = make_rig(tmp_path)
    pending = Pending()
    rig.loop._pool = pending  # launches wait until released
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.tick()
    assert rig.job(job_id).status is S.STARTING
    rig.service.terminate_job(job_id, "Terminated: localbatch run received SIGINT")
    rig.tick()
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.is_terminated and job.attempts[0].started_at is None
    pending.release()  # the pull finishes after the job ended ...
    rig.settle(ticks=3)
    assert rig.runtime.containers() == []  # ... and its container is removed


def test_restart_requeues_a_job_whose_container_never_started_without_spending_an_attempt(rig: Rig) -> None:
    pending = Pending()
    rig.loop._pool = pending  # the daemon dies while the launch is still pulling
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    job_id = rig.submit()
    rig.tick()
    assert rig.job(job_id).status is S.STARTING and rig.runtime.created == []
    rig = restart(rig)
    job = rig.job(job_id)
    assert job.status is S.RUNNABLE and job.attempts == ()
    assert [e.reason for e in rig.store.list_events(job_id)][-1] == (
        "Queued again: the daemon stopped before the job's container started"
    )
    rig.settle(ticks=10)
    assert rig.job(job_id).status is S.SUCCEEDED and len(rig.job(job_id).attempts) == 1


def test_restart_requeues_a_job_whose_container_was_created_but_never_started(rig: Rig) -> None:
    rig.loop._pool = Pending()  # the launch never gets to run ...
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    job_id = rig.submit()
    rig.tick()
    job = rig.job(job_id)
    attempt = job.attempts[0]
    labels = naming.container_labels(job, 1, rig.settings.home_id, __version__)
    # ... and the daemon dies between create and start: a container exists that never started
    created = rig.runtime.create(ContainerRequest(attempt.container_name, job.container, {}, labels))
    rig = restart(rig)
    assert rig.job(job_id).status is S.RUNNABLE and rig.job(job_id).attempts == ()
    assert created not in [c.container_id for c in rig.runtime.containers()]


def test_a_failed_save_is_written_next_tick_and_nothing_is_launched_before(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    job_id = rig.submit()
    rig.store.fail_next_save()
    with pytest.raises(StateStoreError):
        rig.loop.tick(rig.clock.now_ms())
    assert rig.runtime.created == []  # placed in memory, not saved: not launched
    assert rig.job(job_id).status is S.SUBMITTED
    rig.settle(ticks=10)
    job = rig.job(job_id)
    assert job.status is S.SUCCEEDED
    assert [e.to_status for e in rig.store.list_events(job_id)] == [
        S.SUBMITTED,
        S.RUNNABLE,
        S.STARTING,
        S.RUNNING,
        S.SUCCEEDED,
    ]


def test_an_engine_error_reading_an_exit_is_retried_next_tick(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=0.5)
    job_id = rig.submit()
    real = rig.runtime.wait
    failures = [1]

    def flaky_wait(container_id: str, timeout_s: float) -> Any:
        if failures:
            failures.pop()
            raise ContainerRuntimeError("the engine is restarting")
        return real(container_id, timeout_s)

    rig.runtime.wait = flaky_wait  # type: ignore[method-assign]
    rig.settle(ticks=12)
    assert rig.job(job_id).status is S.SUCCEEDED and not failures
    assert rig.runtime.containers() == []


def test_a_cancel_that_overtakes_its_jobs_submission_notice_still_applies(rig: Rig) -> None:
    request = SubmitRequest("work", "default", "work", JobOverrides())
    notices: list[Job] = []
    real_notice = rig.loop.job_submitted
    rig.loop.job_submitted = notices.append  # type: ignore[method-assign]
    job_id = rig.service.submit_job(request).job_id
    rig.service.cancel_job(job_id, "changed my mind")  # the loop hears of the stop first ...
    rig.tick()
    real_notice(notices[0])  # ... and of the job only now
    rig.settle(ticks=3)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.is_cancelled and rig.runtime.created == []


def test_an_abandoned_launch_never_starts_its_container(tmp_path: Any) -> None:
    rig = make_rig(tmp_path)
    pending = Pending()
    rig.loop._pool = pending
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.tick()
    rig.service.terminate_job(job_id, "stop")
    rig.tick()
    pending.release()
    assert rig.runtime.started == []  # created after the job ended, removed without starting
    rig.settle(ticks=2)
    assert rig.runtime.containers() == []


def test_a_waiting_job_that_reaches_max_head_wait_is_replanned_with_nothing_else_changing(rig: Rig) -> None:
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    rig.submit()
    big = rig.submit(vcpus=2)
    rig.submit()  # backfills past the big job
    rig.settle(ticks=4)
    before = rig.loop.waiting_reason(big)
    assert before is not None and "waited" not in before
    rig.settle(ticks=60, seconds=1)  # no job ends, nothing is submitted
    after = rig.loop.waiting_reason(big)
    assert (
        after is not None
        and "it has waited 60 s, so compute environment local takes no other job until it starts" in after
    ), after


# -- fair share ---------------------------------------------------------------------------------


def _fair_rig(tmp_path: Any) -> Rig:
    rig = make_rig(tmp_path, ComputeEnvironment("local", 1, 4096))  # one job at a time
    rig.store.put_scheduling_policy(SchedulingPolicy("teams"))
    rig.store.put_job_queue(JobQueue("fq", 1, ("local",), scheduling_policy="teams"))
    rig.loop.infrastructure_changed()
    return rig


def _submit_share(rig: Rig, share: str) -> str:
    request = SubmitRequest("work", "fq", "work", JobOverrides(), share_identifier=share)
    job_id = rig.service.submit_job(request).job_id
    rig.clock.advance(0.001)
    return job_id


def test_a_share_that_consumed_more_waits_behind_one_that_did_not(rig: Rig, tmp_path: Any) -> None:
    rig = _fair_rig(tmp_path / "fair")
    rig.runtime.script("busybox:1.36", runs_for_s=30)
    first = _submit_share(rig, "a")
    rig.settle(ticks=200)  # a's job runs its 30 s and ends: a has used 30 vCPU-seconds
    assert rig.job(first).status is S.SUCCEEDED
    a_again = _submit_share(rig, "a")  # submitted first, and "a" sorts first: FIFO would pick it
    b_first = _submit_share(rig, "b")
    rig.tick()
    assert rig.job(b_first).status in (S.STARTING, S.RUNNING)
    assert rig.job(a_again).status is S.RUNNABLE


def test_with_no_history_ties_go_to_the_share_that_sorts_first(rig: Rig, tmp_path: Any) -> None:
    rig = _fair_rig(tmp_path / "fair")
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    b_job = _submit_share(rig, "b")
    a_job = _submit_share(rig, "a")
    rig.tick()
    assert rig.job(a_job).status in (S.STARTING, S.RUNNING)
    assert rig.job(b_job).status is S.RUNNABLE
