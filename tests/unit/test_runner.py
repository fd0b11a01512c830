"""The in-process runner, on fakes: a fake clock, a fake engine, an in-memory store. No sleeps."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import replace

import pytest

from localbatch import config, logs
from localbatch.core.definition import JobDefinition
from localbatch.core.inventory import GpuDevice
from localbatch.core.jobs import JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.errors import InvalidOverrides, StateStoreError
from localbatch.runner import Runner, exit_status
from tests.fakes.clock import FakeClock
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

HELLO = JobDefinition(
    name="hello",
    container=ContainerSpec(
        image="busybox:1.36",
        command=("sh", "-c", "echo Ref::greeting"),
        environment={"STAGE": "dev"},
        resources=Resources(vcpus=1, memory_mib=128),
    ),
    parameters={"greeting": "hello"},
)


NO_OVERRIDES = JobOverrides()
FULL_HOST = Resources(2, 4096, 2)


class Observer:
    """Records what the runner tells the front door."""

    def __init__(self) -> None:
        self.statuses: list[JobStatus] = []
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.out = b""

    def transition(self, job, event):
        self.statuses.append(event.to_status)

    def note(self, job, message):
        self.notes.append(message)

    def warn(self, job, message):
        self.warnings.append(message)

    def output(self, chunk):
        self.out += chunk


@pytest.fixture
def world(tmp_path):
    clock = FakeClock()
    runtime = FakeRuntime(clock, wait_advances_clock=True)
    store = InMemoryStateStore()
    settings = config.resolve(
        env={"LOCALBATCH_HOME": str(tmp_path), "LOCALBATCH_STOP_TIMEOUT_SECONDS": "2"}, cwd=tmp_path
    )
    observer = Observer()
    ids = (f"job-{n}" for n in itertools.count(1))
    gpus = tuple(GpuDevice(i, f"GPU-{i}", "Fake GPU", 16384) for i in range(2))

    def make(capacity=FULL_HOST):
        return Runner(
            settings=settings,
            runtime=runtime,
            store=store,
            clock=clock,
            capacity=capacity,
            gpus=gpus,
            observer=observer,
            new_id=lambda: next(ids),
        )

    class World:
        pass

    w = World()
    w.clock, w.runtime, w.store, w.settings, w.observer, w.make = (
        clock,
        runtime,
        store,
        settings,
        observer,
        make,
    )
    return w


def run(world, definition=HELLO, overrides=NO_OVERRIDES, runner=None):
    runner = runner or world.make()
    job = runner.submit(definition, overrides)
    return runner.run(job)


def test_success_walks_aws_states_and_leaves_no_container(world):
    world.runtime.script("busybox:1.36", output=b"hello\n", runs_for_s=3)
    job = run(world)
    assert world.observer.statuses == [
        JobStatus.SUBMITTED,
        JobStatus.RUNNABLE,
        JobStatus.STARTING,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert job.status is JobStatus.SUCCEEDED and exit_status(job) == 0
    assert job.status_reason == "Essential container in task exited"
    assert job.stopped_at - job.started_at >= 3000
    [request] = world.runtime.created
    assert request.name == "localbatch-job-1-1"
    assert request.spec.command == ("sh", "-c", "echo hello")
    assert request.environment == {
        "STAGE": "dev",
        "AWS_BATCH_JOB_ID": "job-1",
        "AWS_BATCH_JOB_ATTEMPT": "1",
        "AWS_BATCH_JQ_NAME": "default",
        "AWS_BATCH_CE_NAME": "local",
    }
    assert request.labels["localbatch.job_id"] == "job-1"
    assert request.labels["localbatch.home"] == world.settings.home_id
    assert world.runtime.containers() == []
    assert world.runtime.running() == []
    path = logs.attempt_log_path(world.settings.logs_dir, "job-1", 1)
    assert logs.read(path) == b"hello\n" == world.observer.out
    stored = world.store.get_job("job-1")
    assert stored == job
    assert [e.to_status for e in world.store.list_events("job-1")] == world.observer.statuses


def test_nonzero_exit_fails_with_the_containers_code(world):
    world.runtime.script("busybox:1.36", exit_code=3)
    job = run(world)
    assert job.status is JobStatus.FAILED and exit_status(job) == 3
    assert job.attempts[0].exit_code == 3


def test_retry_rules_are_applied_per_attempt(world):
    world.runtime.script(lambda r: r.environment["AWS_BATCH_JOB_ATTEMPT"] in ("1", "2"), exit_code=3)
    definition = replace(HELLO, retry_strategy=RetryStrategy(attempts=3))
    job = run(world, definition)
    assert job.status is JobStatus.SUCCEEDED
    assert [a.exit_code for a in job.attempts] == [3, 3, 0]
    assert [r.name for r in world.runtime.created] == [f"localbatch-job-1-{n}" for n in (1, 2, 3)]
    assert world.observer.notes == [
        "retrying: attempt 1 of 3 failed: RETRY",
        "retrying: attempt 2 of 3 failed: RETRY",
    ]


def test_an_exit_rule_stops_retrying(world):
    world.runtime.script("busybox:1.36", exit_code=2)
    strategy = RetryStrategy(attempts=5, evaluate_on_exit=(EvaluateOnExit(RetryAction.EXIT, on_exit_code="2"),))
    job = run(world, replace(HELLO, retry_strategy=strategy))
    assert job.status is JobStatus.FAILED and len(job.attempts) == 1
    assert world.observer.notes == ["not retrying: evaluate_on_exit[0] matched: EXIT"]


def test_oom_kill_is_reported_in_aws_words(world):
    world.runtime.script("busybox:1.36", oom_killed=True)
    job = run(world)
    assert job.status is JobStatus.FAILED and exit_status(job) == 137
    assert job.attempts[0].reason == "OutOfMemoryError: Container killed due to memory usage"


def test_timeout_stops_the_container_and_is_not_retried(world):
    world.runtime.script("busybox:1.36", runs_for_s=None, stop_exit_code=137)
    definition = replace(HELLO, timeout_s=2, retry_strategy=RetryStrategy(attempts=3))
    job = run(world, definition)
    assert job.status is JobStatus.FAILED and job.status_reason == "Job attempt duration exceeded timeout"
    assert len(job.attempts) == 1 and job.attempts[0].exit_code == 137
    assert world.runtime.stopped and world.runtime.stopped[0][1] == 2  # grace from settings
    assert any("timeout" in n for n in world.observer.notes)
    assert world.runtime.running() == []


def test_missing_image_fails_to_start_with_cannot_pull_reason(world):
    world.runtime.missing_images.add("busybox:1.36")
    job = run(world)
    assert job.status is JobStatus.FAILED and exit_status(job) == 1
    assert job.status_reason == "Task failed to start"
    assert job.attempts[0].reason.startswith("CannotPullContainerError: ")
    assert job.started_at is None
    assert world.observer.statuses[-2:] == [JobStatus.STARTING, JobStatus.FAILED]


def test_refused_start_is_cannot_start_and_the_container_is_removed(world):
    world.runtime.refuse_start_with = "exec: no such file"
    job = run(world)
    assert job.status is JobStatus.FAILED
    assert job.attempts[0].reason.startswith("CannotStartContainerError: ")
    assert world.runtime.containers() == []


def test_a_job_that_can_never_fit_fails_at_once_and_says_why(world):
    job = run(world, overrides=JobOverrides(vcpus=4), runner=world.make(capacity=Resources(2, 4096)))
    assert job.status is JobStatus.FAILED and exit_status(job) == 1
    assert job.status_reason == (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - the job needs 4 vCPU, 2 vCPU available in compute "
        "environment local; it can never run on this host"
    )
    assert world.runtime.created == []


def test_gpus_are_pinned_by_device_id(world):
    run(world, overrides=JobOverrides(gpus=1))
    assert world.runtime.created[0].gpu_device_ids == ("0",)


def test_stop_request_terminates_the_running_container(world):
    runner = world.make()
    world.runtime.script("busybox:1.36", runs_for_s=None)
    original_wait = world.runtime.wait

    def wait_then_interrupt(container_id, timeout_s):
        runner.request_stop("Terminated: localbatch run received SIGINT")
        return original_wait(container_id, timeout_s)

    world.runtime.wait = wait_then_interrupt
    job = run(world, runner=runner)
    assert job.status is JobStatus.FAILED and job.is_terminated
    assert job.status_reason == "Terminated: localbatch run received SIGINT"
    assert world.runtime.stopped and world.runtime.running() == []


def test_second_stop_request_kills_at_once(world):
    runner = world.make()
    world.runtime.script("busybox:1.36", runs_for_s=None)
    original_wait = world.runtime.wait

    def wait_then_interrupt_twice(container_id, timeout_s):
        runner.request_stop("first")
        runner.request_stop("second")
        return original_wait(container_id, timeout_s)

    world.runtime.wait = wait_then_interrupt_twice
    job = run(world, runner=runner)
    assert job.is_terminated and job.status_reason == "first"
    assert (job.attempts[0].container_id, 0) in world.runtime.stopped


def test_stop_before_start_fails_without_a_container(world):
    runner = world.make()
    job = runner.submit(HELLO, JobOverrides())
    runner.request_stop("Terminated: stop")
    job = runner.run(job)
    assert job.status is JobStatus.FAILED and world.runtime.created == []
    assert job.is_cancelled and not job.is_terminated  # AWS: stopping a job not yet started cancels it


def test_engine_lost_while_running_is_reported(world):
    world.runtime.script("busybox:1.36", runs_for_s=None)
    original_wait = world.runtime.wait

    def wait_then_vanish(container_id, timeout_s):
        world.runtime.unavailable = True
        return original_wait(container_id, timeout_s)

    world.runtime.wait = wait_then_vanish
    job = run(world)
    assert job.status is JobStatus.FAILED
    assert job.status_reason.startswith("Container engine failed while the job ran")


def test_identical_definition_reuses_its_revision_and_a_changed_one_gets_a_new_one(world):
    assert run(world).job_definition_revision == 1
    assert run(world).job_definition_revision == 1
    assert run(world, replace(HELLO, parameters={"greeting": "hi"})).job_definition_revision == 2


def test_bad_overrides_are_refused_before_anything_is_recorded(world):
    with pytest.raises(InvalidOverrides, match="environment.AWS_BATCH_X: names starting with AWS_BATCH are reserved"):
        world.make().submit(HELLO, JobOverrides(environment={"AWS_BATCH_X": "1"}))
    assert world.store.all_jobs() == []


def test_a_second_stop_during_a_graceful_stop_kills_at_once(world):
    runner = world.make()
    world.runtime.script("busybox:1.36", runs_for_s=None, ignores_sigterm=True)
    original_wait = world.runtime.wait
    waits = []

    def wait_and_interrupt(container_id, timeout_s):
        waits.append(world.clock.now_ms())
        if len(waits) == 1:
            runner.request_stop("first")  # graceful: SIGTERM, which this program ignores
        elif len(waits) == 4:  # the graceful stop is under way: its 2 s grace is still running
            assert (container_id, 2) in world.runtime.stopped and world.runtime.running()
            runner.request_stop("second")
        return original_wait(container_id, timeout_s)

    world.runtime.wait = wait_and_interrupt
    job = run(world, runner=runner)
    assert job.is_terminated and job.status_reason == "first" and job.attempts[0].exit_code == 137
    assert (job.attempts[0].container_id, 0) in world.runtime.stopped
    assert job.stopped_at - waits[0] < 2000  # killed before the grace ran out


def test_a_stop_during_image_pull_ends_the_attempt_at_once_and_leaves_no_container(world):
    runner = world.make()
    pulling, release = threading.Event(), threading.Event()
    original_create = world.runtime.create

    def slow_create(request):
        pulling.set()
        release.wait(timeout=10)
        return original_create(request)

    world.runtime.create = slow_create
    job = runner.submit(HELLO, NO_OVERRIDES)
    stopper = threading.Timer(0.05, lambda: (pulling.wait(5), runner.request_stop("Terminated: SIGINT")))
    stopper.start()
    job = runner.run(job)
    assert job.status is JobStatus.FAILED and job.is_terminated and job.status_reason == "Terminated: SIGINT"
    assert job.attempts[0].started_at is None
    release.set()  # the pull finishes after the runner walked away ...
    deadline = time.monotonic() + 5
    while (world.runtime.created and world.runtime.containers()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert world.runtime.containers() == []  # ... and the late container removed itself


def test_a_stop_between_attempts_cancels_the_job(world):
    runner = world.make()
    world.runtime.script("busybox:1.36", exit_code=3)
    original_remove = world.runtime.remove

    def remove_then_interrupt(container_id):
        original_remove(container_id)
        runner.request_stop("Terminated: SIGTERM")  # arrives while the job waits for attempt 2

    world.runtime.remove = remove_then_interrupt
    job = run(world, replace(HELLO, retry_strategy=RetryStrategy(attempts=3)), runner=runner)
    assert len(job.attempts) == 1 and job.status is JobStatus.FAILED
    assert job.is_cancelled and job.status_reason == "Terminated: SIGTERM"


def test_a_store_failure_mid_attempt_removes_the_container_before_propagating(world):
    world.runtime.script("busybox:1.36", runs_for_s=None)
    runner = world.make()
    job = runner.submit(HELLO, NO_OVERRIDES)
    original_save = world.store.save_job

    def fail_on_running(job, events=()):
        if job.status is JobStatus.RUNNING:
            raise StateStoreError("disk I/O error")
        original_save(job, events)

    world.store.save_job = fail_on_running
    with pytest.raises(StateStoreError):
        runner.run(job)
    assert world.runtime.containers() == []


def test_an_unwritable_log_is_reported_and_the_job_still_runs(world):
    world.settings.logs_dir.parent.mkdir(parents=True, exist_ok=True)
    world.settings.logs_dir.write_text("a file where the logs directory should be")
    world.runtime.script("busybox:1.36", output=b"still shown\n")
    job = run(world)
    assert job.status is JobStatus.SUCCEEDED
    assert world.observer.out == b"still shown\n"
    [warning] = world.observer.warnings
    assert warning.startswith("the output of attempt 1 was not all saved: cannot write ")


def test_a_closed_terminal_does_not_stop_the_log_file(world):
    world.runtime.script("busybox:1.36", output=[b"one\n", b"two\n"])

    def broken_pipe(chunk):
        raise BrokenPipeError

    world.observer.output = broken_pipe
    run(world)
    assert logs.read(logs.attempt_log_path(world.settings.logs_dir, "job-1", 1)) == b"one\ntwo\n"
    assert world.observer.warnings == []


def test_exit_status_names_the_signal_that_stopped_the_job(world):
    world.runtime.script("busybox:1.36", exit_code=3)
    job = run(world)
    assert exit_status(job) == 3 and exit_status(job, interrupted_by=2) == 3  # not stopped by us
    stopped = replace(job, is_terminated=True)
    assert exit_status(stopped, interrupted_by=2) == 130 and exit_status(stopped, interrupted_by=15) == 143
