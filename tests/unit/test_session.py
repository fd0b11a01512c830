"""Client-side steps: warnings before a submission, exit codes from a JobDetail."""

from __future__ import annotations

from dataclasses import replace

from localbatch import session
from localbatch.api.dispatch import BatchDispatcher
from localbatch.api.server import Api
from localbatch.batch import BatchService
from localbatch.core.definition import JobDefinition
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.naming import Arns
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.session import LocalBackend
from tests.fakes.clock import FakeClock
from tests.fakes.store import InMemoryStateStore

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
    service = BatchService(store=InMemoryStateStore(), clock=FakeClock(), host=Resources(2, 4096))
    dispatcher = BatchDispatcher(service, Arns("us-east-1", "000000000000"), Resources(2, 4096))
    backend = LocalBackend(Api(dispatcher, supported=dispatcher.operations), None, None, writable=True)  # type: ignore[arg-type]
    assert session.ensure_registered(backend, HELLO) == "hello:1"
    assert session.ensure_registered(backend, HELLO) == "hello:1"
    assert session.ensure_registered(backend, replace(HELLO, parameters={"greeting": "hi"})) == "hello:2"
