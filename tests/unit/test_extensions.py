"""The /v1/localbatch/ extensions on fakes: GPU holders, logs (follow through attempts), events."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from localbatch import config, logs
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.inventory import GpuDevice, HostInventory
from localbatch.core.jobs import Attempt, Job, JobEvent, JobStatus
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation
from localbatch.core.spec import ContainerSpec
from localbatch.errors import InvalidRequest, JobNotFound
from localbatch.extensions import Extensions
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

S = JobStatus
GPUS = (GpuDevice(0, "GPU-aaa", "Fake A100", 40960), GpuDevice(1, "GPU-bbb", "Fake A100", 40960))
JOB = Job(
    job_id="j1",
    job_name="train",
    job_definition_name="train",
    job_definition_revision=1,
    job_queue="default",
    container=ContainerSpec(image="i", resources=Resources(1, 512, 1)),
    created_at=1,
)


def attempts(n: int, finished: int) -> tuple[Attempt, ...]:
    return tuple(
        Attempt(i, f"t{i}", f"c{i}", f"s{i}", started_at=10 * i, stopped_at=10 * i + 5 if i <= finished else None)
        for i in range(1, n + 1)
    )


@pytest.fixture
def world(tmp_path: Any) -> Any:
    store = InMemoryStateStore()
    store.put_compute_environment(ComputeEnvironment("gpu", 4, 8192, ("0", "1")))
    store.put_job_queue(JobQueue("default", 1, ("gpu",)))
    settings = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path)}, cwd=tmp_path)
    held = (Allocation("j1", "gpu", Resources(1, 512, 1), ("1",)),)

    class World:
        pass

    w = World()
    w.store, w.settings = store, settings
    w.ext = Extensions(
        settings=settings,
        store=store,
        host=HostInventory(cpus=8, memory_mib=16384, gpus=GPUS, gpu_source="nvml"),
        capacity=Resources(8, 16384, 2),
        runtime=FakeRuntime(),
        allocations=lambda: held,
        poll_s=0.01,
    )
    return w


def test_resources_names_each_gpus_environment_and_holder(world: Any) -> None:
    world.store.save_job(replace(JOB, status=S.RUNNING, compute_environment="gpu", gpu_ids=("1",)))
    report = world.ext.resources({}, {})
    assert [(g["id"], g["computeEnvironment"], g["jobId"]) for g in report["gpus"]] == [
        ("0", "gpu", None),
        ("1", "gpu", "j1"),
    ]
    [environment] = report["computeEnvironments"]
    assert environment["allocated"] == {"vcpus": 1, "memoryMiB": 512, "gpus": 1} and environment["jobs"] == ["j1"]
    assert report["jobQueues"][0]["jobs"] == {"RUNNING": 1}
    assert report["engine"]["name"] == "fake" and report["host"]["gpuSource"] == "nvml"


def test_logs_of_an_attempt_and_of_the_latest(world: Any) -> None:
    world.store.save_job(replace(JOB, status=S.FAILED, attempts=attempts(2, 2)))
    for number, text in ((1, b"first\n"), (2, b"second\n")):
        path = logs.attempt_log_path(world.settings.logs_dir, "j1", number)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    assert b"".join(world.ext.logs({"jobId": "j1"}, {})) == b"second\n"
    assert b"".join(world.ext.logs({"jobId": "j1", "attempt": "1"}, {})) == b"first\n"
    assert b"".join(world.ext.logs({"jobId": "j1", "follow": "true", "attempt": "1"}, {})) == b"first\nsecond\n"
    with pytest.raises(InvalidRequest, match="has attempts 1..2, not 3"):
        world.ext.logs({"jobId": "j1", "attempt": "3"}, {})
    with pytest.raises(JobNotFound):
        world.ext.logs({"jobId": "nope"}, {})


def test_follow_waits_for_the_first_attempt_and_ends_with_the_job(world: Any) -> None:
    world.store.save_job(replace(JOB, status=S.RUNNABLE))
    stream = world.ext.logs({"jobId": "j1", "follow": "true"}, {})
    assert next(stream) == b""  # nothing yet: a heartbeat, so the server can tell a reader left
    world.store.save_job(replace(JOB, status=S.SUCCEEDED, attempts=attempts(1, 1)))
    path = logs.attempt_log_path(world.settings.logs_dir, "j1", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"done\n")
    assert b"".join(stream) == b"done\n"


def test_logs_of_a_job_that_has_not_started_say_so(world: Any) -> None:
    world.store.save_job(replace(JOB, status=S.RUNNABLE))
    with pytest.raises(InvalidRequest, match="has not started an attempt yet"):
        world.ext.logs({"jobId": "j1"}, {})


def test_events_are_the_jobs_history(world: Any) -> None:
    world.store.save_job(JOB, [JobEvent("j1", 1, None, S.SUBMITTED), JobEvent("j1", 2, S.SUBMITTED, S.RUNNABLE, "r")])
    assert world.ext.events({"jobId": "j1"}, {})["events"] == [
        {"at": 1, "from": None, "to": "SUBMITTED", "reason": None, "detail": None},
        {"at": 2, "from": "SUBMITTED", "to": "RUNNABLE", "reason": "r", "detail": None},
    ]
    assert world.ext.events({"jobId": "j1"}, {})["submittedBy"] is None  # not recorded for this job
    world.store.save_job(replace(JOB, job_id="j2", submitted_by="alice"), [JobEvent("j2", 1, None, S.SUBMITTED)])
    assert world.ext.events({"jobId": "j2"}, {})["submittedBy"] == "alice"


# -- the event stream -------------------------------------------------------------------------


def test_event_stream_pages_as_eventbridge_events_and_long_polls(world: Any) -> None:
    world.store.save_job(JOB, [JobEvent("j1", 1, None, S.SUBMITTED)])  # no event for a submission
    world.store.save_job(replace(JOB, status=S.RUNNABLE), [JobEvent("j1", 1_000, S.SUBMITTED, S.RUNNABLE)])
    world.store.save_job(replace(JOB, status=S.FAILED), [JobEvent("j1", 2_000, S.RUNNABLE, S.FAILED, "Cancelled")])
    page = world.ext.event_stream({"limit": "1"}, {})
    assert page["lastSeq"] == 1 and [e["seq"] for e in page["events"]] == [1]
    event = page["events"][0]["event"]
    assert (event["detail-type"], event["source"], event["time"]) == (
        "Batch Job State Change",
        "aws.batch",
        "1970-01-01T00:00:01Z",
    )
    # the job as saved was FAILED by then; the event says the change it is about
    assert event["detail"]["status"] == "RUNNABLE" and event["detail"]["jobId"] == "j1"
    failed = world.ext.event_stream({"after": "1", "status": "failed"}, {})["events"]
    assert [e["event"]["detail"]["statusReason"] for e in failed] == ["Cancelled"]
    assert world.ext.event_stream({"jobQueue": "other"}, {}) == {"events": [], "lastSeq": 0}
    empty = world.ext.event_stream({"after": "2", "waitSeconds": "1"}, {})  # waits its second, then answers
    assert empty == {"events": [], "lastSeq": 2}


@pytest.mark.parametrize(
    ("query", "says"),
    [({"status": "DONE"}, "DONE: not a job status"), ({"after": "-1"}, "after"), ({"limit": "0"}, "limit")],
)
def test_event_stream_refuses_bad_queries(world: Any, query: dict[str, str], says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        world.ext.event_stream(query, {})


def test_schedules_lists_rules_with_next_and_last_run(world: Any, tmp_path: Any) -> None:
    (tmp_path / "localbatch.toml").write_text(
        '[[schedules]]\nname = "nightly"\nexpression = "cron(0 2 * * ? *)"\njob_definition = "hello"\n'
        '[[triggers]]\nname = "after"\non_statuses = ["FAILED"]\njob_definition = "hello"\nstate = "DISABLED"\n'
        '[[webhooks]]\nurl = "http://127.0.0.1:9/x"\nstatuses = ["FAILED"]\n'
    )
    settings = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path)}, cwd=tmp_path)
    ext = Extensions(
        settings=settings,
        store=world.store,
        host=HostInventory(cpus=1, memory_mib=1024),
        capacity=Resources(1, 1024, 0),
        runtime=FakeRuntime(),
        now_ms=lambda: 0,
    )
    world.store.put_rule_state("after", {"lastRunAt": 5, "lastOutcome": "submitted", "lastJobId": "j9"})
    found = ext.schedules({}, {})
    [nightly] = found["schedules"]
    assert (nightly["nextRunAt"], nightly["lastRunAt"], nightly["jobName"]) == (2 * 3_600_000, None, "nightly")
    [after] = found["triggers"]
    assert (after["state"], after["onStatuses"], after["lastJobId"]) == ("DISABLED", ["FAILED"], "j9")
    assert found["webhooks"] == [
        {
            "name": "webhook-1",
            "url": "http://127.0.0.1:9/x",
            "jobQueues": [],
            "statuses": ["FAILED"],
            "jobNamePrefix": None,
            "jobDefinitions": [],
            "maxAttempts": 5,
        }
    ]


def test_a_long_poll_answers_at_once_when_the_server_closes(world: Any) -> None:
    world.ext.close()  # the server stops: a 20 s wait is not waited out
    assert world.ext.event_stream({"waitSeconds": "20"}, {}) == {"events": [], "lastSeq": 0}
