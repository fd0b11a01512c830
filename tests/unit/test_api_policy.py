"""The shared host's policy through the API (dispatcher and service): refused submissions name
the rule and store nothing; the Unix socket's peer is the job's owner; only owners and admins
stop a job."""

from __future__ import annotations

import copy
import json
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from localbatch import config
from localbatch.api.principal import acting_as, daemon_owner, peer_user, user_name
from localbatch.api.server import ApiRequest
from localbatch.core.infra import ComputeEnvironment
from localbatch.core.inventory import HostInventory
from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.policy import Policy, UserLimits
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import InvalidRequest
from localbatch.extensions import Extensions
from tests.fakes.api_world import RENDER, World, make_world, wire_request
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

SUBMIT = {"jobName": "j", "jobQueue": "default", "jobDefinition": "render"}


def shared(tmp_path: Path, **changes: Any) -> Policy:
    return Policy(shared=True, scratch_root=str(tmp_path / "scratch"), **changes)


def definition(*, paths: tuple[str, ...] = (), **container: Any) -> dict[str, Any]:
    body = copy.deepcopy(RENDER)
    props = body["containerProperties"]
    props["volumes"] = [{"name": f"v{i}", "host": {"sourcePath": path}} for i, path in enumerate(paths)]
    props["mountPoints"] = [{"sourceVolume": f"v{i}", "containerPath": f"/m{i}"} for i in range(len(paths))]
    props.update(container)
    return body


def as_peer(world: World, user: str, operation: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``operation`` as the Unix socket's peer ``user`` would send it."""
    request = wire_request(operation, params)
    response = world.api.handle(ApiRequest(request.method, request.target, request.headers, request.body, user))
    return response.status, json.loads(response.body)


def test_a_job_mounting_etc_is_refused_naming_the_rule_and_nothing_is_stored(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path, allowed_mount_paths=("/srv/data",)))
    world.call("RegisterJobDefinition", definition(paths=("/etc",)))  # registering is AWS's: allowed
    before = world.snapshot()
    message = world.refusal_message("SubmitJob", SUBMIT)
    assert "policy.allowed_mount_paths: host path /etc of volume v0 is not allowed; allowed: /srv/data" in message
    assert world.snapshot() == before


def test_the_users_scratch_area_and_the_allow_list_may_be_mounted(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path, allowed_mount_paths=("/srv/data",)))
    world.call("RegisterJobDefinition", definition(paths=(str(tmp_path / "scratch" / "alice" / "in"), "/srv/data/x")))
    status, body = as_peer(world, "alice", "SubmitJob", SUBMIT)
    assert status == 200, body
    status, body = as_peer(world, "bob", "SubmitJob", SUBMIT)
    assert status == 400 and "policy.allowed_mount_paths" in body["message"]


def test_privileged_containers_and_devices_are_refused_even_without_a_policy_table() -> None:
    world = make_world()
    devices = {"devices": [{"hostPath": "/dev/fuse"}]}
    world.call("RegisterJobDefinition", definition(privileged=True, linuxParameters=devices))
    message = world.refusal_message("SubmitJob", SUBMIT)
    assert "policy.allow_privileged: privileged containers are not allowed" in message
    assert "policy.allow_devices: host devices are not allowed on this host: /dev/fuse" in message
    world.call("RegisterJobDefinition", definition(paths=("/etc",)))  # without [policy], host paths are as before
    world.submit()


def test_a_job_alone_over_a_user_limit_is_refused_at_submit(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path, limits=UserLimits(max_running_vcpus=0.5)))
    world.register()
    message = world.refusal_message("SubmitJob", SUBMIT)
    assert "policy.max_running_vcpus: the job needs 1; a user may run at most 0.5" in message


def test_the_socket_peer_owns_the_job_and_only_owners_and_admins_stop_it(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path, admins=frozenset({"carol"})))
    world.register()
    status, body = as_peer(world, "alice", "SubmitJob", SUBMIT)
    assert status == 200
    job_id = body["jobId"]
    stored = world.store.get_job(job_id)
    assert stored is not None and stored.submitted_by == "alice"
    status, body = as_peer(world, "bob", "CancelJob", {"jobId": job_id, "reason": "mine now"})
    assert status == 400
    assert body["message"].startswith("policy.admins: the job belongs to user alice; bob may cancel or terminate")
    status, body = as_peer(world, "bob", "TerminateJobs", {"jobs": [job_id], "reason": "x"})
    assert status == 200 and body["successful"] == [] and "policy.admins" in body["errors"][0]["message"]
    job = world.store.get_job(job_id)
    assert job is not None and job.stop_request is None
    assert as_peer(world, "carol", "TerminateJob", {"jobId": job_id, "reason": "admin"})[0] == 200
    assert as_peer(world, "alice", "CancelJob", {"jobId": job_id, "reason": "own"})[0] == 200


def test_the_daemons_own_user_is_an_admin(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path))
    world.register()
    status, body = as_peer(world, "alice", "SubmitJob", SUBMIT)
    assert as_peer(world, daemon_owner(), "CancelJob", {"jobId": body["jobId"], "reason": "operator"})[0] == 200


def test_without_a_policy_table_anyone_may_stop_any_job() -> None:
    world = make_world()
    world.register()
    status, body = as_peer(world, "alice", "SubmitJob", SUBMIT)
    assert as_peer(world, "bob", "CancelJob", {"jobId": body["jobId"], "reason": "x"})[0] == 200


def test_the_peer_of_a_unix_socket_is_named_by_its_uid() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert peer_user(left) == daemon_owner()
    assert user_name(2**31 - 7) == f"uid {2**31 - 7}"  # no passwd entry


def test_a_spot_interrupt_of_someone_elses_job_is_refused_on_a_shared_host(tmp_path: Path) -> None:
    (tmp_path / "localbatch.toml").write_text("[policy]\n")
    settings = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    store = InMemoryStateStore()
    store.put_compute_environment(ComputeEnvironment("local", 2, 4096))
    attempt = Attempt(1, "t1", "c1", "s1", started_at=10)
    container = ContainerSpec(image="i", resources=Resources(1, 512))
    job = Job("j1", "train", "train", 1, "default", container, 1, JobStatus.RUNNING, attempts=(attempt,))
    store.save_job(replace(job, submitted_by="alice"))
    asked: list[str] = []
    extensions = Extensions(
        settings=settings,
        store=store,
        host=HostInventory(cpus=2, memory_mib=4096),
        capacity=Resources(2, 4096),
        runtime=FakeRuntime(),
        interrupt=asked.append,
    )
    with acting_as("bob"), pytest.raises(InvalidRequest, match="policy.admins: the job belongs to user alice"):
        extensions.interrupt({}, {"jobId": "j1"})
    with acting_as("alice"):
        extensions.interrupt({}, {"jobId": "j1"})
    assert asked == ["j1"]


def test_on_a_shared_host_only_admins_change_what_every_user_shares(tmp_path: Path) -> None:
    world = make_world(policy=shared(tmp_path, admins=frozenset({"carol"})))
    world.register()
    status, body = as_peer(world, "alice", "SubmitJob", SUBMIT)
    job_arn = body["jobArn"]
    before = world.snapshot()
    queue_arn = world.call("DescribeJobQueues", {})["jobQueues"][0]["jobQueueArn"]
    for operation, params in [
        ("UpdateJobQueue", {"jobQueue": "default", "state": "DISABLED"}),
        ("DeleteJobQueue", {"jobQueue": "default"}),
        ("UpdateComputeEnvironment", {"computeEnvironment": "local", "state": "DISABLED"}),
        ("CreateSchedulingPolicy", {"name": "mine"}),
        ("CreateConsumableResource", {"consumableResourceName": "licences", "totalQuantity": 1}),
        ("TagResource", {"resourceArn": queue_arn, "tags": {"owner": "alice"}}),
    ]:
        status, refused = as_peer(world, "alice", operation, params)
        assert status == 400, (operation, refused)
        assert refused["message"] == (
            f"policy.admins: {operation} changes what every user of this host shares; "
            "only an admin may call it, and alice is not one"
        )
    assert world.snapshot() == before
    assert as_peer(world, "alice", "TagResource", {"resourceArn": job_arn, "tags": {"run": "7"}})[0] == 200
    assert as_peer(world, "carol", "UpdateJobQueue", {"jobQueue": "default", "priority": 5})[0] == 200
    assert as_peer(world, daemon_owner(), "CreateSchedulingPolicy", {"name": "ops"})[0] == 200


def test_without_a_policy_table_anyone_changes_queues() -> None:
    world = make_world()
    assert as_peer(world, "alice", "UpdateJobQueue", {"jobQueue": "default", "priority": 5})[0] == 200
