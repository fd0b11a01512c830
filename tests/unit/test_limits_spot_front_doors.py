"""Job state time limits and Spot rehearsal at the front doors: the config file, AWS Batch's
infrastructure API, the interrupt extension and the daemon's startup (warnings)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from localbatch import config
from localbatch.awsbatch.infra import SPOT_AFTER_TAG, SPOT_RATE_TAG
from localbatch.core.infra import ComputeEnvironment, JobQueue, JobStateTimeLimitAction
from localbatch.core.inventory import HostInventory
from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.resources import Resources
from localbatch.core.scheduler import CAPACITY, MAX_RESOURCE
from localbatch.core.spec import ContainerSpec
from localbatch.core.spot import SpotRehearsal, host_terminated_reason, instance_id
from localbatch.daemon.startup import apply_infrastructure
from localbatch.errors import ConfigError, InvalidRequest, JobNotFound
from localbatch.extensions import Extensions
from tests.fakes.api_world import World, make_world
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

LIMITED = """
[[compute_environments]]
name = "spot"
max_vcpus = 1
spot = true
spot_interruption_rate = 0.5
spot_interrupt_after_seconds = 90

[[compute_environments]]
name = "steady"

[[job_queues]]
name = "default"
compute_environments = ["spot", "steady"]

[[job_queues.job_state_time_limit_actions]]
reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
max_time_seconds = 30

[[job_queues.job_state_time_limit_actions]]
reason = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
max_time_seconds = 600
state = "RUNNABLE"
action = "CANCEL"
"""


def resolve(tmp_path: Path, text: str) -> config.Settings:
    (tmp_path / "localbatch.toml").write_text(text)
    return config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home")}, cwd=tmp_path)


# -- the config file --------------------------------------------------------------------------------


def test_the_config_declares_spot_environments_and_queue_time_limits(tmp_path: Path) -> None:
    settings = resolve(tmp_path, LIMITED)
    spot, steady = settings.compute_environments
    assert spot.spot == SpotRehearsal(interruption_rate=0.5, interrupt_after_s=90)
    assert steady.spot is None
    (queue,) = settings.job_queues
    assert queue.job_state_time_limit_actions == (
        JobStateTimeLimitAction(CAPACITY, 30),
        JobStateTimeLimitAction(MAX_RESOURCE, 600),
    )
    assert settings.warnings == [
        "job queue default: job state time limit action 0 (CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY) waits 30 s; "
        "AWS requires 600 to 86400 s, so this runs locally only"
    ]


def test_spot_alone_rehearses_only_on_demand_interrupts(tmp_path: Path) -> None:
    settings = resolve(tmp_path, '[[compute_environments]]\nname = "s"\nspot = true\n')
    assert settings.compute_environments[0].spot == SpotRehearsal()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[compute_environments]]\nname = "local"\nspot_interrupt_after_seconds = 5\n',
            "compute_environments[0].spot_interrupt_after_seconds: applies to a Spot environment; add spot = true",
        ),
        (
            '[[compute_environments]]\nname = "local"\nspot = true\nspot_interruption_rate = -1\n',
            "compute_environments[0].spot_interruption_rate:",
        ),
        (
            '[[job_queues]]\nname = "default"\ncompute_environments = ["local"]\n'
            '[[job_queues.job_state_time_limit_actions]]\nreason = "ACTION_REQUIRED"\nmax_time_seconds = 600\n',
            "job_queues[0].job_state_time_limit_actions[0].reason:",
        ),
        (
            '[[job_queues]]\nname = "default"\ncompute_environments = ["local"]\n'
            '[[job_queues.job_state_time_limit_actions]]\nreason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"\n'
            "max_time_seconds = 0\n",
            "job_queues[0].job_state_time_limit_actions[0].max_time_seconds:",
        ),
        (
            '[[job_queues]]\nname = "default"\ncompute_environments = ["local"]\n'
            '[[job_queues.job_state_time_limit_actions]]\nreason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"\n'
            'max_time_seconds = 600\naction = "TERMINATE"\n',
            "job_queues[0].job_state_time_limit_actions[0].action:",
        ),
    ],
    ids=["after-without-spot", "negative-rate", "unsupported-reason", "zero-seconds", "terminate"],
)
def test_config_refusals_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="localbatch.toml: " + message.replace("[", r"\[").replace("]", r"\]")):
        resolve(tmp_path, text)


def test_startup_applies_them_and_warns_in_the_daemon_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = resolve(tmp_path, LIMITED)
    store = InMemoryStateStore()
    with caplog.at_level(logging.WARNING):
        apply_infrastructure(settings, store, HostInventory(cpus=4, memory_mib=8192))
    environment = store.get_compute_environment("spot")
    assert environment is not None and environment.spot == SpotRehearsal(0.5, 90)
    queue = store.get_job_queue("default")
    assert queue is not None and len(queue.job_state_time_limit_actions) == 2
    assert "waits 30 s; AWS requires 600 to 86400 s" in caplog.text


# -- AWS Batch's API -------------------------------------------------------------------------------


@pytest.fixture
def world() -> World:
    return make_world()


def _queue(name: str, **fields: Any) -> dict[str, Any]:
    order = [{"order": 1, "computeEnvironment": "local"}]
    return {"jobQueueName": name, "priority": 1, "computeEnvironmentOrder": order, **fields}


def _action(reason: str = CAPACITY, seconds: int = 600, **fields: Any) -> dict[str, Any]:
    return {"reason": reason, "state": "RUNNABLE", "maxTimeSeconds": seconds, "action": "CANCEL", **fields}


def test_create_and_describe_job_queue_with_time_limit_actions(world: World, caplog: pytest.LogCaptureFixture) -> None:
    actions = [_action(), _action(MAX_RESOURCE, 5)]
    with caplog.at_level(logging.WARNING):
        world.call("CreateJobQueue", _queue("limited", jobStateTimeLimitActions=actions))
    (described,) = world.call("DescribeJobQueues", {"jobQueues": ["limited"]})["jobQueues"]
    assert described["jobStateTimeLimitActions"] == actions
    stored = world.store.get_job_queue("limited")
    assert stored is not None
    assert stored.job_state_time_limit_actions == (
        JobStateTimeLimitAction(CAPACITY, 600),
        JobStateTimeLimitAction(MAX_RESOURCE, 5),
    )
    assert "job queue limited: job state time limit action 1" in caplog.text  # 5 s < AWS's 600


def test_update_job_queue_replaces_the_actions_keeps_them_when_absent_and_clears_them_when_empty(
    world: World,
) -> None:
    world.call("UpdateJobQueue", {"jobQueue": "default", "jobStateTimeLimitActions": [_action(seconds=900)]})
    world.call("UpdateJobQueue", {"jobQueue": "default", "priority": 3})
    (described,) = world.call("DescribeJobQueues", {"jobQueues": ["default"]})["jobQueues"]
    assert described["jobStateTimeLimitActions"] == [_action(seconds=900)]
    world.call("UpdateJobQueue", {"jobQueue": "default", "jobStateTimeLimitActions": []})
    (described,) = world.call("DescribeJobQueues", {"jobQueues": ["default"]})["jobQueues"]
    assert "jobStateTimeLimitActions" not in described


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            _action("ACTION_REQUIRED"),
            "jobStateTimeLimitActions[0].reason: 'ACTION_REQUIRED': allowed: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY, "
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE, MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        ),
        (_action(state="STARTING"), "jobStateTimeLimitActions[0].state: 'STARTING': allowed: RUNNABLE"),
        (_action(action="TERMINATE"), "jobStateTimeLimitActions[0].action: 'TERMINATE': allowed: CANCEL"),
        (
            _action(seconds=86_401),
            "jobStateTimeLimitActions[0].maxTimeSeconds: must be between 1 and 86400 seconds "
            "(AWS: 600 to 86400), got 86401",
        ),
    ],
    ids=["reason", "state", "action", "too-long"],
)
def test_bad_time_limit_actions_are_refused_naming_the_field(
    world: World, action: dict[str, Any], message: str
) -> None:
    before = world.store.list_job_queues()
    assert world.refusal_message("CreateJobQueue", _queue("q", jobStateTimeLimitActions=[action])) == message
    assert world.refusal_message("UpdateJobQueue", {"jobQueue": "default", "jobStateTimeLimitActions": [action]}) == (
        message
    )
    assert world.store.list_job_queues() == before


def _spot_environment(name: str, tags: dict[str, str], kind: str = "SPOT") -> dict[str, Any]:
    return {
        "computeEnvironmentName": name,
        "type": "MANAGED",
        "computeResources": {"type": kind, "maxvCpus": 1},
        "tags": tags,
    }


def test_a_spot_environment_takes_its_rehearsal_from_tags_and_describe_gives_it_back(world: World) -> None:
    world.call("CreateComputeEnvironment", _spot_environment("spot", {SPOT_RATE_TAG: "0.5", SPOT_AFTER_TAG: "90"}))
    world.call("CreateComputeEnvironment", _spot_environment("bare", {"team": "x"}))
    stored = world.store.get_compute_environment("spot")
    assert stored is not None and stored.spot == SpotRehearsal(0.5, 90) and stored.tags == {}
    bare = world.store.get_compute_environment("bare")
    assert bare is not None and bare.spot == SpotRehearsal() and bare.tags == {"team": "x"}
    described = {
        e["computeEnvironmentName"]: e for e in world.call("DescribeComputeEnvironments", {})["computeEnvironments"]
    }
    assert described["spot"]["computeResources"]["type"] == "SPOT"
    assert described["spot"]["tags"][SPOT_RATE_TAG] == "0.5" and described["spot"]["tags"][SPOT_AFTER_TAG] == "90"
    assert described["bare"]["computeResources"]["type"] == "SPOT" and SPOT_RATE_TAG not in described["bare"]["tags"]
    assert described["local"]["computeResources"]["type"] == "EC2"


@pytest.mark.parametrize(
    ("kind", "tags", "message"),
    [
        ("EC2", {SPOT_AFTER_TAG: "5"}, f"tags.{SPOT_AFTER_TAG}: applies to computeResources.type SPOT only"),
        ("SPOT", {SPOT_RATE_TAG: "often"}, f"tags.{SPOT_RATE_TAG}: must be a number, got 'often'"),
        ("SPOT", {SPOT_AFTER_TAG: "0"}, f"tags.{SPOT_AFTER_TAG}: must be a number of seconds > 0, got 0.0"),
    ],
    ids=["tag-on-ec2", "not-a-number", "zero"],
)
def test_bad_spot_tags_are_refused(world: World, kind: str, tags: dict[str, str], message: str) -> None:
    before = world.store.list_compute_environments()
    assert world.refusal_message("CreateComputeEnvironment", _spot_environment("s", tags, kind)) == message
    assert world.store.list_compute_environments() == before


# -- the interrupt extension -----------------------------------------------------------------------


def _job(status: JobStatus, attempts: int) -> Job:
    return Job(
        job_id="j1",
        job_name="train",
        job_definition_name="train",
        job_definition_revision=1,
        job_queue="default",
        container=ContainerSpec(image="i", resources=Resources(1, 512)),
        created_at=1,
        status=status,
        attempts=tuple(Attempt(n, f"t{n}", f"c{n}", f"s{n}", started_at=10) for n in range(1, attempts + 1)),
    )


def _extensions(tmp_path: Path, store: InMemoryStateStore, asked: list[str] | None) -> Extensions:
    return Extensions(
        settings=config.resolve(env={"LOCALBATCH_HOME": str(tmp_path)}, cwd=tmp_path),
        store=store,
        host=HostInventory(cpus=2, memory_mib=4096),
        capacity=Resources(2, 4096),
        runtime=FakeRuntime(),
        interrupt=None if asked is None else asked.append,
    )


def test_interrupt_asks_the_loop_to_reclaim_a_running_job_and_says_what_it_will_read(tmp_path: Path) -> None:
    store = InMemoryStateStore()
    store.put_compute_environment(ComputeEnvironment("local", 2, 4096))
    store.save_job(_job(JobStatus.RUNNING, 2))
    asked: list[str] = []
    answer = _extensions(tmp_path, store, asked).interrupt({}, {"jobId": "j1"})
    assert asked == ["j1"]
    assert answer == {
        "jobId": "j1",
        "attempt": 2,
        "instanceId": instance_id("j1", 2),
        "statusReason": host_terminated_reason("j1", 2),
    }


@pytest.mark.parametrize("status", [JobStatus.RUNNABLE, JobStatus.STARTING, JobStatus.SUCCEEDED])
def test_interrupting_a_job_that_is_not_running_is_a_clear_error(tmp_path: Path, status: JobStatus) -> None:
    store = InMemoryStateStore()
    store.save_job(_job(status, 1 if status is not JobStatus.RUNNABLE else 0))
    asked: list[str] = []
    with pytest.raises(InvalidRequest, match=f"job j1 is {status.value}; only a RUNNING job can be interrupted"):
        _extensions(tmp_path, store, asked).interrupt({}, {"jobId": "j1"})
    assert asked == []


def test_interrupt_needs_a_known_job_and_a_daemon(tmp_path: Path) -> None:
    store = InMemoryStateStore()
    with pytest.raises(JobNotFound):
        _extensions(tmp_path, store, []).interrupt({}, {"jobId": "nope"})
    with pytest.raises(InvalidRequest, match="jobId: required"):
        _extensions(tmp_path, store, []).interrupt({}, {})
    store.save_job(_job(JobStatus.RUNNING, 1))
    with pytest.raises(InvalidRequest, match="needs the daemon"):
        _extensions(tmp_path, store, None).interrupt({}, {"jobId": "j1"})


def test_queues_declared_in_settings_keep_their_actions_through_the_store(tmp_path: Path) -> None:
    settings = resolve(tmp_path, LIMITED)
    store = InMemoryStateStore()
    apply_infrastructure(settings, store, HostInventory(cpus=4, memory_mib=8192))
    assert store.list_job_queues() == [
        JobQueue(
            "default",
            1,
            ("spot", "steady"),
            job_state_time_limit_actions=settings.job_queues[0].job_state_time_limit_actions,
        )
    ]


def test_interrupting_a_multi_node_job_reclaims_its_main_nodes_host(tmp_path: Path) -> None:
    store = InMemoryStateStore()
    parent = dataclasses.replace(_job(JobStatus.RUNNING, 1), num_nodes=2, main_node=1)
    main = dataclasses.replace(parent, job_id="j1#1", node_index=1)
    store.save_jobs([(parent, []), (main, [])])
    asked: list[str] = []
    answer = _extensions(tmp_path, store, asked).interrupt({}, {"jobId": "j1"})
    assert asked == ["j1#1"] and answer["statusReason"] == host_terminated_reason("j1#1", 1)
