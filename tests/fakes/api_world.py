"""The daemon's API in-process, for tests: ``Api`` -> ``BatchDispatcher`` -> ``BatchService`` on
the in-memory store, with a fake clock, a recording notifier (the control loop's port) and a fake
live view. ``World.call`` checks every success against botocore's output shape; ``refused``
checks AWS's error shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from localbatch.api.dispatch import BatchDispatcher
from localbatch.api.errors import ApiError
from localbatch.api.routes import route_table
from localbatch.api.server import Api, ApiRequest
from localbatch.awsbatch.infra import MEMORY_TAG
from localbatch.awsbatch.model import validate_output
from localbatch.batch import BatchService
from localbatch.core import lifecycle, outcome
from localbatch.core.jobs import EpochMs, Job, JobStatus, transition
from localbatch.core.naming import Arns, container_name, log_stream_name
from localbatch.core.policy import NO_POLICY, Policy
from localbatch.core.resources import Resources
from localbatch.core.scheduler import FrontEntry
from tests.fakes.clock import FakeClock
from tests.fakes.store import InMemoryStateStore

HOST = Resources(vcpus=2, memory_mib=4096, gpus=0)
ARNS = Arns("us-east-1", "000000000000")
ARN = "arn:aws:batch:us-east-1:000000000000:"
T0 = 1_700_000_000_000

RENDER: dict[str, Any] = {
    "jobDefinitionName": "render",
    "type": "container",
    "parameters": {"frame": "1", "out": "/tmp/out"},
    "retryStrategy": {"attempts": 2},
    "timeout": {"attemptDurationSeconds": 600},
    "tags": {"team": "render"},
    "containerProperties": {
        "image": "busybox:1.36",
        "command": ["render", "--frame", "Ref::frame", "--out", "Ref::out"],
        "environment": [{"name": "MODE", "value": "draft"}, {"name": "LEVEL", "value": "1"}],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
    },
}


class RecordingNotifier:
    """What the control loop was told, in order: (what, job id or None)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def job_submitted(self, job: Job) -> None:
        self.calls.append(("job_submitted", job.job_id))

    def stop_requested(self, job_id: str) -> None:
        self.calls.append(("stop_requested", job_id))

    def infrastructure_changed(self) -> None:
        self.calls.append(("infrastructure_changed", None))


class FakeLiveView:
    """Why the control loop last found a RUNNABLE job waiting, and each queue's front as its
    last plan ordered it (``fronts``; ``fronts_at`` None: no plan yet)."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}
        self.fronts: dict[str, tuple[FrontEntry, ...]] = {}
        self.fronts_at: EpochMs | None = None

    def waiting_reason(self, job_id: str) -> str | None:
        return self.reasons.get(job_id)

    def queue_front(self, job_queue: str) -> tuple[tuple[FrontEntry, ...], EpochMs] | None:
        return None if self.fronts_at is None else (self.fronts.get(job_queue, ()), self.fronts_at)


class SequentialIds:
    """UUID-shaped job ids in submission order (so ties on createdAt order predictably)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"00000000-0000-4000-8000-{self.count:012d}"


def wire_request(operation: str, params: dict[str, Any]) -> ApiRequest:
    """The request botocore sends for ``operation``: POST /v1/<operation lower-cased> with a JSON
    body, or for tags the ARN %2F-encoded in the path (``RouteTable.prepare``)."""
    prepared = route_table().prepare(operation, params)
    body = b"" if prepared.body is None else json.dumps(prepared.body).encode()
    return ApiRequest(prepared.method, prepared.target, {"content-type": "application/json"}, body)


@dataclass
class World:
    store: InMemoryStateStore
    clock: FakeClock
    notifier: RecordingNotifier
    live: FakeLiveView
    service: BatchService
    api: Api
    operations_called: set[str] = field(default_factory=set)

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """A successful call; its response must match botocore's output shape for ``operation``."""
        response = self.api.handle(wire_request(operation, params))
        body = json.loads(response.body)
        assert response.status == 200, body
        assert validate_output(operation, body) == [], body
        self.operations_called.add(operation)
        return body  # type: ignore[no-any-return]

    def refused(self, operation: str, params: dict[str, Any]) -> ApiError:
        """A refused call: HTTP 400 ClientException in AWS's error shape; returns the error."""
        response = self.api.handle(wire_request(operation, params))
        body = json.loads(response.body)
        assert (response.status, response.error_code) == (400, "ClientException"), body
        assert set(body) == {"__type", "message"} and body["__type"] == "ClientException", body
        return ApiError(body["__type"], response.status, body["message"])

    def refusal_message(self, operation: str, params: dict[str, Any]) -> str:
        return self.refused(operation, params).message

    # -- shortcuts ---------------------------------------------------------------------------------

    def register(self, **changes: Any) -> dict[str, Any]:
        return self.call("RegisterJobDefinition", {**RENDER, **changes})

    def submit(self, name: str = "frame", **fields: Any) -> str:
        params = {"jobName": name, "jobQueue": "default", "jobDefinition": "render", **fields}
        return str(self.call("SubmitJob", params)["jobId"])

    def describe(self, job_id: str) -> dict[str, Any]:
        jobs = self.call("DescribeJobs", {"jobs": [job_id]})["jobs"]
        assert len(jobs) == 1
        return jobs[0]  # type: ignore[no-any-return]

    def list_ids(self, **params: Any) -> list[str]:
        return [s["jobId"] for s in self.call("ListJobs", {"jobQueue": "default", **params})["jobSummaryList"]]

    def move(self, job_id: str, *path: JobStatus) -> Job:
        """Drive a stored job along ``path`` the way the control loop does (lifecycle steps)."""
        for to in path:
            job = self.store.get_job(job_id)
            assert job is not None
            now = self.clock.now_ms()
            if to is JobStatus.STARTING:
                number = len(job.attempts) + 1
                task_id = f"{number:032x}"
                job, event = lifecycle.begin_attempt(
                    job,
                    now,
                    task_id=task_id,
                    container_name=container_name(job_id, number),
                    log_stream_name=log_stream_name(job.job_definition_name, task_id),
                    compute_environment="local",
                )
            elif to is JobStatus.RUNNING:
                job, event = lifecycle.mark_running(job, now, f"container-{job_id}")
            elif job.status is JobStatus.RUNNING and to is JobStatus.SUCCEEDED:
                job, event, _ = lifecycle.finish_attempt(job, outcome.exited(0, oom_killed=False), now)
            elif job.status is JobStatus.RUNNING and to is JobStatus.FAILED:
                job, event, _ = lifecycle.finish_attempt(job, outcome.terminated(137, "stopped"), now)
            else:
                job, event = transition(job, to, now)
            assert job.status is to
            self.store.save_job(job, [event])
        stored = self.store.get_job(job_id)
        assert stored is not None
        return stored

    def snapshot(self) -> tuple[int, int, list[tuple[str, str | None]]]:
        """What a refused request must leave unchanged: jobs stored, saves made, notifications."""
        return len(self.store.all_jobs()), self.store.saves, list(self.notifier.calls)


def make_world(*, host: Resources = HOST, infrastructure: bool = True, policy: Policy = NO_POLICY) -> World:
    """The service on an in-memory store, under the host ``policy``; with ``infrastructure``, the
    compute environment ``local`` (2 vCPU, 4096 MiB) and the queue ``default`` made through the
    API, and the notifications they caused forgotten."""
    store, clock, notifier, live = InMemoryStateStore(), FakeClock(T0), RecordingNotifier(), FakeLiveView()
    service = BatchService(
        store=store,
        clock=clock,
        host=host,
        gpu_ids=("0", "1", "2", "3"),  # the fake host's GPUs
        notifier=notifier,
        live=live,
        new_id=SequentialIds(),
        host_policy=policy,
    )
    dispatcher = BatchDispatcher(service, ARNS, host, policy=policy)
    world = World(store, clock, notifier, live, service, Api(dispatcher, supported=dispatcher.operations))
    if infrastructure:
        environment = {
            "computeEnvironmentName": "local",
            "type": "MANAGED",
            "computeResources": {"type": "EC2", "maxvCpus": 2, "subnets": []},
            "tags": {MEMORY_TAG: "4096"},
        }
        world.call("CreateComputeEnvironment", environment)
        order = [{"order": 1, "computeEnvironment": "local"}]
        world.call("CreateJobQueue", {"jobQueueName": "default", "priority": 10, "computeEnvironmentOrder": order})
        notifier.calls.clear()
    return world
