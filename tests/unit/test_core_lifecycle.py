import pytest

from localbatch.core import lifecycle, outcome
from localbatch.core.definition import JobDefinition
from localbatch.core.jobs import JobStatus, transition
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.errors import InvalidTransition

T0 = 1_700_000_000_000

DEFINITION = JobDefinition(
    name="render",
    container=ContainerSpec(
        image="busybox:1.36",
        command=("sh", "-c", "echo Ref::greeting Ref::who"),
        environment={"STAGE": "dev", "KEEP": "1"},
        resources=Resources(vcpus=1, memory_mib=512),
    ),
    parameters={"greeting": "hello", "who": "world"},
    retry_strategy=RetryStrategy(attempts=3),
    timeout_s=600,
)


NO_OVERRIDES = lifecycle.JobOverrides()


def submit(overrides=NO_OVERRIDES, definition=DEFINITION):
    job, event = lifecycle.new_job(
        definition, 4, overrides, job_id="j1", job_name="render", job_queue="default", now=T0
    )
    assert event.from_status is None and event.to_status is JobStatus.SUBMITTED
    return job


def start(job, at=T0 + 1000):
    if job.status is JobStatus.SUBMITTED:
        job, _ = transition(job, JobStatus.RUNNABLE, at)
    job, _ = lifecycle.begin_attempt(
        job,
        at,
        task_id="t" * 32,
        container_name="c",
        log_stream_name="render/default/t",
        compute_environment="local",
    )
    job, _ = lifecycle.mark_running(job, at + 500, "cid")
    return job


def test_new_job_applies_definition_defaults_and_substitutes_the_command():
    job = submit()
    assert job.status is JobStatus.SUBMITTED and job.created_at == T0
    assert job.container.command == ("sh", "-c", "echo hello world")
    assert job.job_definition_revision == 4
    assert job.retry_strategy.attempts == 3 and job.timeout_s == 600


def test_overrides_replace_command_merge_environment_and_parameters_and_override_resources():
    job = submit(
        lifecycle.JobOverrides(
            parameters={"who": "you"},
            environment={"STAGE": "test", "NEW": "x"},
            vcpus=0.5,
            memory_mib=64,
            timeout_s=5,
            retry_strategy=RetryStrategy(attempts=1),
        )
    )
    assert job.container.command == ("sh", "-c", "echo hello you")
    assert job.parameters == {"greeting": "hello", "who": "you"}
    assert dict(job.container.environment) == {"STAGE": "test", "KEEP": "1", "NEW": "x"}
    assert job.container.resources == Resources(vcpus=0.5, memory_mib=64, gpus=0)
    assert job.timeout_s == 5 and job.retry_strategy.attempts == 1
    replaced = submit(lifecycle.JobOverrides(command=("sh", "-c", "exit Ref::who")))
    assert replaced.container.command == ("sh", "-c", "exit world")


def test_check_overrides_names_each_bad_override():
    problems = lifecycle.check_overrides(
        lifecycle.JobOverrides(
            environment={"AWS_BATCH_JOB_ID": "x", "A=B": "y"},
            vcpus=0,
            memory_mib=2,
            gpus=-1,
            command=("a", ""),
            retry_strategy=RetryStrategy(attempts=11),
            timeout_s=0,
        )
    )
    assert [str(p) for p in problems] == [
        "environment.AWS_BATCH_JOB_ID: names starting with AWS_BATCH are reserved",
        "environment: 'A=B' is not a variable name",
        "vcpus: must be greater than 0, got 0",
        "memory_mib: must be at least 4 MiB, got 2",
        "gpus: must be 0 or more, got -1",
        "command: must not contain empty arguments (AWS rejects them)",
        "retry.attempts: must be between 1 and 10, got 11",
        "timeout: must be between 1 and 2147483647 seconds, got 0",
    ]


def test_check_overrides_applies_awss_tag_rules_to_a_submissions_tags():
    tags = {"aws:owner": "x", "": "y", "long": "v" * 257, "ok": "v" * 256}
    assert [str(p) for p in lifecycle.check_overrides(lifecycle.JobOverrides(tags=tags))] == [
        "tags.aws:owner: tag keys starting with 'aws:' are reserved for AWS",
        "tags.: tag keys must be 1 to 128 characters, got 0",
        "tags.long: tag values must be at most 256 characters, got 257",
    ]
    many = {f"k{i}": "v" for i in range(51)}
    assert [str(p) for p in lifecycle.check_overrides(lifecycle.JobOverrides(tags=many))] == [
        "tags: at most 50 tags, got 51"
    ]


@pytest.mark.parametrize("vcpus", [float("nan"), float("inf"), 0.0001])
def test_check_overrides_refuses_vcpus_no_scheduler_could_pack(vcpus):
    [problem] = lifecycle.check_overrides(lifecycle.JobOverrides(vcpus=vcpus))
    assert problem.path == "vcpus"


def test_a_successful_attempt_ends_the_job_succeeded_with_aws_reason():
    job = start(submit())
    assert job.status is JobStatus.RUNNING and job.started_at == T0 + 1500
    attempt = job.current_attempt
    assert attempt.number == 1 and attempt.started_at == T0 + 1500 and attempt.container_id == "cid"
    job, event, decision = lifecycle.finish_attempt(job, outcome.exited(0, oom_killed=False), T0 + 9000)
    assert decision is None
    assert job.status is JobStatus.SUCCEEDED and job.stopped_at == T0 + 9000
    assert job.status_reason == "Essential container in task exited" == event.reason
    assert job.attempts[0].exit_code == 0 and job.attempts[0].stopped_at == T0 + 9000


def test_failed_attempts_go_back_to_runnable_until_attempts_are_used():
    job = submit()
    for number in (1, 2, 3):
        job = start(job)
        assert job.current_attempt.number == number
        job, event, decision = lifecycle.finish_attempt(job, outcome.exited(3, oom_killed=False), T0 + 5000)
        assert decision.retry is (number < 3)
        verdict = "retrying" if number < 3 else "not retrying"
        assert event.detail == f"{verdict}: {decision.why}"  # the history says why
    assert job.status is JobStatus.FAILED and job.exit_code == 3
    assert [a.number for a in job.attempts] == [1, 2, 3]


def test_oom_is_reported_as_ecs_reports_it_and_rules_can_match_it():
    strategy = RetryStrategy(attempts=3, evaluate_on_exit=(EvaluateOnExit(RetryAction.EXIT, on_reason="OutOfMemory*"),))
    job = start(submit(lifecycle.JobOverrides(retry_strategy=strategy)))
    job, _, decision = lifecycle.finish_attempt(job, outcome.exited(137, oom_killed=True), T0 + 5000)
    assert not decision.retry and job.status is JobStatus.FAILED
    assert job.attempts[0].reason == "OutOfMemoryError: Container killed due to memory usage"
    assert job.status_reason == "Essential container in task exited"


def test_timeout_fails_without_retry_even_with_attempts_left():
    job = start(submit())
    job, _, decision = lifecycle.finish_attempt(job, outcome.timed_out(137), T0 + 5000)
    assert not decision.retry
    assert job.status is JobStatus.FAILED and job.status_reason == "Job attempt duration exceeded timeout"


def test_terminated_attempt_marks_the_job_terminated():
    job = start(submit())
    job, _, _ = lifecycle.finish_attempt(job, outcome.terminated(143, "Terminated: SIGINT"), T0 + 5000)
    assert job.status is JobStatus.FAILED and job.is_terminated and not job.is_cancelled
    assert job.status_reason == "Terminated: SIGINT"


def test_a_container_that_cannot_start_goes_from_starting_to_runnable_or_failed():
    job, _ = transition(submit(), JobStatus.RUNNABLE, T0)
    job, _ = lifecycle.begin_attempt(
        job, T0, task_id="t", container_name="c", log_stream_name="s", compute_environment="local"
    )
    failure = outcome.failed_to_start("pull access denied", image_missing=True)
    job, _, decision = lifecycle.finish_attempt(job, failure, T0 + 10)
    assert job.status is JobStatus.RUNNABLE and decision.retry
    assert job.attempts[0].started_at is None
    assert job.attempts[0].reason == "CannotPullContainerError: pull access denied"
    assert job.attempts[0].status_reason == "Task failed to start"
    assert job.started_at is None


def test_fail_before_start_sets_flags():
    job, _ = transition(submit(), JobStatus.RUNNABLE, T0)
    job, event = lifecycle.fail_before_start(job, T0 + 1, "stop", terminated=True)
    assert job.status is JobStatus.FAILED and job.is_terminated and event.reason == "stop"


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ((), JobStatus.RUNNING),
        ((), JobStatus.SUCCEEDED),
        ((JobStatus.RUNNABLE,), JobStatus.RUNNING),
        ((JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.RUNNING, JobStatus.SUCCEEDED), JobStatus.FAILED),
    ],
)
def test_transitions_aws_does_not_make_are_refused(path, bad):
    job = submit()
    for status in path:
        job, _ = transition(job, status, T0)
    with pytest.raises(InvalidTransition, match=f"-> {bad.value}"):
        transition(job, bad, T0)


def test_finishing_without_an_attempt_in_flight_is_a_bug():
    with pytest.raises(ValueError, match="no attempt in flight"):
        lifecycle.finish_attempt(submit(), outcome.exited(0, False), T0)
