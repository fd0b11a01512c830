"""The shared host's policy (``core.policy``): plain values in, violations naming their rule out;
and rule 13 of the scheduler, per-user limits, also as the control loop applies it."""

from __future__ import annotations

from pathlib import Path

from localbatch.awsbatch.requests import SubmitRequest
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.jobs import JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.policy import (
    NO_POLICY,
    USER_LIMIT,
    Policy,
    Running,
    UserLimits,
    limit_reason,
    may_stop,
    mount_allowed,
    too_big,
    violations,
)
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation, RunnableJob, WaitReason, plan
from localbatch.core.spec import ContainerSpec, Device, LinuxParameters, Volume
from tests.unit.test_daemon_loop import make_rig

SHARED = Policy(shared=True, allowed_mount_paths=("/srv/data",), scratch_root="/var/lb/scratch")


def spec(*paths: str, privileged: bool = False, devices: tuple[str, ...] = ()) -> ContainerSpec:
    return ContainerSpec(
        image="busybox:1.36",
        volumes=tuple(Volume(f"v{i}", path) for i, path in enumerate(paths)),
        privileged=privileged,
        linux_parameters=LinuxParameters(devices=tuple(Device(d) for d in devices)),
    )


def rules(found: list[object]) -> list[str]:
    return [str(p).split(":")[0] for p in found]


def test_without_a_policy_table_any_host_path_but_no_privilege_or_device() -> None:
    assert violations(spec("/etc", "/"), "alice", NO_POLICY) == []
    found = violations(spec(privileged=True, devices=("/dev/fuse",)), "alice", NO_POLICY)
    assert rules(found) == ["policy.allow_privileged", "policy.allow_devices"]
    assert "/dev/fuse" in str(found[1])


def test_allowing_privilege_and_devices_lets_them_through() -> None:
    policy = Policy(allow_privileged=True, allow_devices=True)
    assert violations(spec(privileged=True, devices=("/dev/fuse",)), "alice", policy) == []


def test_a_shared_host_allows_the_allow_list_and_the_users_own_scratch_area_only() -> None:
    assert mount_allowed("/srv/data", "alice", SHARED)
    assert mount_allowed("/srv/data/set/../other", "alice", SHARED)
    assert mount_allowed("/var/lb/scratch/alice/run1", "alice", SHARED)
    assert not mount_allowed("/var/lb/scratch/bob", "alice", SHARED)
    assert not mount_allowed("/var/lb/scratch", "alice", SHARED)
    assert not mount_allowed("/srv/database", "alice", SHARED)  # a prefix of the name is not within
    assert not mount_allowed("/srv/data/../../etc", "alice", SHARED)
    assert not mount_allowed("/var/lb/scratch/..", "..", SHARED)


def test_a_refused_mount_names_the_rule_the_path_and_what_is_allowed() -> None:
    (problem,) = violations(spec("/srv/data", "/etc"), "alice", SHARED)
    assert problem.path == "policy.allowed_mount_paths"
    assert problem.message == (
        "host path /etc of volume v1 is not allowed; allowed: /srv/data, "
        "~/scratch (the per-user scratch area /var/lb/scratch/alice)"
    )


def test_a_symlink_out_of_an_allowed_path_is_refused_by_its_target() -> None:
    (problem,) = violations(spec("/srv/data/link"), "alice", SHARED, {"/srv/data/link": "/etc"})
    assert "/srv/data/link (resolves to /etc)" in problem.message


def test_a_job_alone_over_a_limit_is_too_big() -> None:
    limits = UserLimits(max_running_vcpus=8, max_running_gpus=1, max_running_jobs=2)
    assert too_big(Resources(8, 512, 1), 2, limits) == []
    found = too_big(Resources(9, 512, 2), 3, limits)
    assert [p.path for p in found] == ["policy.max_running_vcpus", "policy.max_running_gpus", "policy.max_running_jobs"]
    assert found[0].message == "the job needs 9; a user may run at most 8"


def test_the_limit_reason_names_the_user_the_rule_and_the_numbers() -> None:
    limits = UserLimits(max_running_vcpus=8)
    running = Running().plus(Resources(6, 512))
    assert limit_reason("alice", running, Resources(4, 512), 1, limits) == (
        "user alice runs 6 of max_running_vcpus 8; needs 4"
    )
    assert limit_reason("alice", running, Resources(2, 512), 1, limits) is None
    assert limit_reason("alice", running, Resources(0.5, 512), 1, UserLimits(max_running_jobs=1)) == (
        "user alice runs 1 of max_running_jobs 1; needs 1"
    )


def test_only_the_owner_or_an_admin_may_stop_a_job_on_a_shared_host() -> None:
    assert may_stop("alice", "alice", SHARED, caller_is_admin=False) is None
    assert may_stop("alice", "root", SHARED, caller_is_admin=True) is None
    assert may_stop("alice", "bob", NO_POLICY, caller_is_admin=False) is None  # not shared: as before
    refused = may_stop("alice", "bob", SHARED, caller_is_admin=False)
    assert refused is not None and refused.path == "policy.admins"
    assert "belongs to user alice" in refused.message
    assert "bob may cancel or terminate only their own" in refused.message
    assert may_stop(None, "bob", SHARED, caller_is_admin=False) is not None


# -- the scheduler's rule 13 ------------------------------------------------------------------

HOST = Resources(vcpus=16, memory_mib=65_536)
ENVS = [ComputeEnvironment("local", max_vcpus=16, max_memory_mib=65_536)]
QUEUES = [JobQueue("default", priority=1, compute_environments=("local",))]


def job(job_id: str, owner: str, vcpus: float = 1, created: int = 0) -> RunnableJob:
    return RunnableJob(job_id, "default", Resources(vcpus, 256), created, created, owner=owner)


def test_a_users_jobs_over_their_limit_wait_with_the_rule_and_the_others_run() -> None:
    runnable = [job("a1", "alice", 4, 1), job("a2", "alice", 4, 2), job("a3", "alice", 1, 3), job("b1", "bob", 4, 4)]
    running = [Allocation("a0", "local", Resources(2, 256), owner="alice")]
    decided = plan(runnable, QUEUES, ENVS, running, HOST, 10, user_limits=UserLimits(max_running_vcpus=8))
    assert [p.job_id for p in decided.placements] == ["a1", "a3", "b1"]  # a3 backfills past a2, as capacity does
    assert decided.waiting == {"a2": WaitReason(USER_LIMIT, "user alice runs 6 of max_running_vcpus 8; needs 4")}
    assert str(decided.waiting["a2"]).startswith("POLICY:USER_LIMIT - user alice runs 6")


def test_max_running_jobs_one_runs_a_users_jobs_one_after_the_other() -> None:
    limits = UserLimits(max_running_jobs=1)
    both = [job("a1", "alice", created=1), job("a2", "alice", created=2)]
    first = plan(both, QUEUES, ENVS, [], HOST, 10, user_limits=limits)
    assert [p.job_id for p in first.placements] == ["a1"]
    assert first.waiting["a2"].code == USER_LIMIT
    held = [Allocation("a1", "local", Resources(1, 256), owner="alice")]
    assert plan([job("a2", "alice", created=2)], QUEUES, ENVS, held, HOST, 20, user_limits=limits).placements == ()
    after = plan([job("a2", "alice", created=2)], QUEUES, ENVS, [], HOST, 30, user_limits=limits)
    assert [p.job_id for p in after.placements] == ["a2"]


def test_without_limits_owners_change_nothing() -> None:
    runnable = [job("a1", "alice", 4, 1), job("a2", "alice", 4, 2)]
    unlimited = plan(runnable, QUEUES, ENVS, [], HOST, 10, user_limits=UserLimits())
    assert plan(runnable, QUEUES, ENVS, [], HOST, 10) == unlimited
    assert len(plan(runnable, QUEUES, ENVS, [], HOST, 10).placements) == 2


def test_the_control_loop_holds_a_users_second_job_until_the_first_ends(tmp_path: Path) -> None:
    (tmp_path / "localbatch.toml").write_text("[policy]\nmax_running_jobs = 1\n")
    rig = make_rig(tmp_path)
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    request = SubmitRequest("work", "default", "work", JobOverrides(vcpus=0.5, memory_mib=256))

    def submit(user: str) -> str:
        rig.clock.advance(0.001)  # FIFO is by submission time; give each its own millisecond
        return rig.service.submit_job(request, submitted_by=user).job_id

    alice = [submit("alice"), submit("alice")]
    bob = submit("bob")
    rig.tick()
    rig.tick()
    assert {j.job_id for j in rig.holding()} == {alice[0], bob}
    reason = rig.service.job(alice[1]).status_reason
    assert reason == "POLICY:USER_LIMIT - user alice runs 1 of max_running_jobs 1; needs 1"
    rig.settle()
    assert [rig.job(j).status for j in alice] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    started, ended = rig.job(alice[1]).attempts[0].started_at, rig.job(alice[0]).stopped_at
    assert started is not None and ended is not None and started >= ended
