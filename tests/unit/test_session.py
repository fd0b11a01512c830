"""Client-side steps: warnings before a submission, register-if-changed, listing across
queues, exit codes from a JobDetail."""

from __future__ import annotations

from dataclasses import replace

from localbatch import session
from localbatch.core.definition import JobDefinition
from localbatch.core.jobs import JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.core.staging import StagedInput
from localbatch.session import LocalBackend
from tests.fakes.api_world import World, make_world

HELLO = JobDefinition(
    name="hello",
    container=ContainerSpec(image="busybox:1.36", command=("echo", "Ref::greeting"), resources=Resources(1, 128)),
    parameters={"greeting": "hello"},
)


def test_overrides_aws_would_refuse_are_warned_about():
    assert session.warnings(HELLO, JobOverrides(timeout_s=1, vcpus=0.5)) == [
        "not portable to AWS Batch: timeout.attempt_duration_seconds: 1 is below AWS Batch's minimum of 60 "
        "seconds; localbatch runs it, but AWS Batch would refuse it",
        "not portable to AWS Batch: resources.vcpus: 0.5 is fractional, and AWS Batch on EC2 takes whole "
        "vCPUs; localbatch runs it, but AWS Batch would refuse it",
    ]
    assert session.warnings(HELLO, JobOverrides()) == []


def test_for_a_definition_known_by_name_only_the_overrides_own_timeout_is_warned_about():
    assert session.warnings(None, JobOverrides(timeout_s=59)) == [
        "not portable to AWS Batch: timeout.attempt_duration_seconds: 59 is below AWS Batch's minimum of 60 "
        "seconds; localbatch runs it, but AWS Batch would refuse it"
    ]
    assert session.warnings(None, JobOverrides(timeout_s=60, vcpus=0.5)) == []


def test_a_placeholder_nobody_gives_a_value_is_warned_about():
    definition = replace(HELLO, container=replace(HELLO.container, command=("echo", "Ref::nope", "Ref::greeting")))
    assert session.warnings(definition, JobOverrides()) == ["no value for Ref::nope; left as written"]


def test_exit_status_from_a_job_detail():
    assert session.exit_status({"status": "SUCCEEDED", "container": {"exitCode": 0}}) == 0
    assert session.exit_status({"status": "FAILED", "container": {"exitCode": 3}}) == 3
    assert session.exit_status({"status": "FAILED", "container": {}}) == 1  # never ran
    terminated = {"status": "FAILED", "isTerminated": True, "container": {"exitCode": 143}}
    assert session.exit_status(terminated, interrupted_by=2) == 130
    assert session.exit_status(terminated) == 143


def test_an_unchanged_definition_reuses_its_revision_and_a_changed_one_gets_a_new_one():
    backend = _backend(make_world(infrastructure=False))
    assert session.ensure_registered(backend, HELLO) == "hello:1"
    assert session.ensure_registered(backend, HELLO) == "hello:1"
    assert session.ensure_registered(backend, replace(HELLO, parameters={"greeting": "hi"})) == "hello:2"


def test_list_jobs_spans_queues_and_statuses_newest_first():
    world = make_world()
    world.register()
    world.call(
        "CreateJobQueue",
        {
            "jobQueueName": "other",
            "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}],
        },
    )
    ids = []
    for i in range(5):
        ids.append(world.submit(f"d{i}"))
        world.clock.advance(1)
    ids.append(world.submit("elsewhere", jobQueue="other"))
    world.move(ids[0], JobStatus.RUNNABLE)
    backend = _backend(world)

    everything = session.list_jobs(backend, [], [], limit=100)
    assert [j["jobId"] for j in everything] == ids[::-1]
    assert {j["jobQueue"] for j in everything} == {"default", "other"}
    assert [j["jobId"] for j in session.list_jobs(backend, ["default"], ["RUNNABLE"], limit=100)] == [ids[0]]
    assert [j["jobId"] for j in session.list_jobs(backend, ["default"], ["SUBMITTED", "RUNNABLE"], limit=2)] == [
        ids[4],
        ids[3],
    ]


def test_list_jobs_follows_next_token_past_a_page():
    world = make_world()
    world.register()
    for i in range(102):
        world.submit(f"j{i}")
        world.clock.advance(1)
    listed = session.list_jobs(_backend(world), ["default"], ["SUBMITTED"], limit=101)
    assert [j["jobName"] for j in listed] == [f"j{i}" for i in range(101, 0, -1)]


def _backend(world: World) -> LocalBackend:
    return LocalBackend(world.api, None, None, writable=True)  # type: ignore[arg-type]


def test_a_definitions_staging_reaches_the_daemon_and_an_unchanged_one_is_not_registered_again() -> None:
    world = make_world()
    plain = JobDefinition(name="d", container=ContainerSpec("busybox", resources=Resources(1, 64)))
    container = replace(plain.container, inputs=(StagedInput("s3://inbox/a", "/data/a"),))
    staged = replace(plain, container=container)
    assert session.ensure_registered(_backend(world), plain) == "d:1"
    assert session.ensure_registered(_backend(world), staged) == "d:2"
    assert session.ensure_registered(_backend(world), staged) == "d:2"
    assert world.service.job_definition("d:2")[0] == staged
