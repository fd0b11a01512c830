"""Who submitted a job (issue 7, item 2): the authenticator names the caller, ``Api.handle``
makes that the principal while the request is dispatched, and SubmitJob records it on the job,
its array children and its nodes; a request with no authenticator (the Unix socket) is the
daemon's OS user's. Shown by the events extension, never in DescribeJobs (AWS's shape)."""

from __future__ import annotations

import json
import os
import pwd
from typing import Any

from rich.console import Console

from localbatch import config, render
from localbatch.api.errors import client_error
from localbatch.api.principal import acting_as, current_principal, daemon_owner
from localbatch.api.server import Api, ApiRequest
from localbatch.extensions import Extensions
from tests.fakes.api_world import World, make_world, wire_request
from tests.fakes.runtime import FakeRuntime

MNP: dict[str, Any] = {
    "jobDefinitionName": "mnp",
    "type": "multinode",
    "nodeProperties": {
        "numNodes": 2,
        "mainNode": 0,
        "nodeRangeProperties": [
            {
                "targetNodes": "0:",
                "container": {
                    "image": "busybox:1.36",
                    "command": ["true"],
                    "resourceRequirements": [{"type": "VCPU", "value": "0.5"}, {"type": "MEMORY", "value": "256"}],
                },
            }
        ],
    },
}


class PrincipalRecorder:
    """A dispatcher that answers every operation with the principal it saw."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(current_principal())
        return {}


def list_jobs_request() -> ApiRequest:
    return wire_request("ListJobs", {"jobQueue": "default"})


def signed_as(world: World, name: str) -> World:
    """``world`` behind an authenticator that accepts every request as key ``name``'s."""
    world.api = world.api.with_authenticator(lambda request: name)
    return world


def submitters(world: World) -> dict[str, str | None]:
    return {job.job_id: job.submitted_by for job in world.store.all_jobs()}


def test_the_dispatcher_sees_the_authenticators_principal_during_the_request_only() -> None:
    recorder = PrincipalRecorder()
    api = Api(recorder).with_authenticator(lambda request: "alice")
    assert api.handle(list_jobs_request()).status == 200
    assert recorder.seen == ["alice"]
    assert current_principal() is None  # reset once the request is answered


def test_without_an_authenticator_there_is_no_principal() -> None:
    recorder = PrincipalRecorder()
    with acting_as("left over"):  # whatever the thread had is not the request's
        Api(recorder).handle(list_jobs_request())
        assert current_principal() == "left over"
    assert recorder.seen == [None]


def test_a_failing_request_resets_the_principal_too() -> None:
    class Failing(PrincipalRecorder):
        def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
            super().handle(operation, body)
            raise client_error("refused")

    failing = Failing()
    response = Api(failing).with_authenticator(lambda request: "alice").handle(list_jobs_request())
    assert response.status == 400
    assert failing.seen == ["alice"] and current_principal() is None


def test_a_signed_submit_is_recorded_as_the_keys_name_with_its_array_children() -> None:
    world = signed_as(make_world(), "alice")
    world.register()
    array_id = world.submit("sweep", arrayProperties={"size": 2})
    assert submitters(world) == {array_id: "alice", f"{array_id}:0": "alice", f"{array_id}:1": "alice"}


def test_a_multinode_jobs_nodes_have_its_submitter() -> None:
    world = signed_as(make_world(), "bob")
    world.call("RegisterJobDefinition", MNP)
    job_id = str(world.call("SubmitJob", {"jobName": "gang", "jobQueue": "default", "jobDefinition": "mnp"})["jobId"])
    assert submitters(world) == {job_id: "bob", f"{job_id}#0": "bob", f"{job_id}#1": "bob"}


def test_a_submit_on_the_unix_socket_is_the_daemon_owners() -> None:
    world = make_world()  # no authenticator, as the Unix socket's Api
    world.register()
    job_id = world.submit()
    assert daemon_owner() == pwd.getpwuid(os.getuid()).pw_name
    assert submitters(world) == {job_id: daemon_owner()}


def test_describe_jobs_keeps_awss_shape() -> None:
    world = signed_as(make_world(), "alice")
    world.register()
    detail = world.describe(world.submit())  # World.call checks botocore's output shape
    assert "alice" not in json.dumps(detail)


def test_the_events_extension_and_describe_show_the_submitter(tmp_path: Any) -> None:
    world = signed_as(make_world(), "alice")
    world.register()
    job_id = world.submit()
    settings = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path)}, cwd=tmp_path)
    extensions = Extensions(
        settings=settings,
        store=world.store,
        host=None,
        capacity=None,
        runtime=FakeRuntime(),  # type: ignore[arg-type]
    )
    history = extensions.events({"jobId": job_id}, {})
    assert history["submittedBy"] == "alice"
    parts = render.job_view(world.describe(job_id), history["events"], submitted_by=history["submittedBy"])
    head = render_text(parts[0])
    assert "submitted by" in head and "alice" in head
    assert "submitted by" not in render_text(render.job_view(world.describe(job_id), [])[0])


def render_text(part: Any) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(part)
    return console.export_text()
