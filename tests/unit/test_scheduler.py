"""The scheduler: focused examples for each rule, properties over random worlds, and starvation.

Everything here is pure: worlds are plain values and time is an argument.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localbatch.core.infra import ComputeEnvironment, JobQueue, State
from localbatch.core.resources import Resources
from localbatch.core.scheduler import (
    Allocation,
    Placement,
    Plan,
    RunnableJob,
    SchedulerSettings,
    WaitReason,
    never_fits,
    plan,
)

NOW = 1_000_000_000
HOST = Resources(vcpus=64, memory_mib=262_144, gpus=8)
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
DISABLED = State.DISABLED


def env(
    name: str = "local",
    vcpus: float = 4,
    memory: int = 16_384,
    gpus: Sequence[str] = (),
    state: State = State.ENABLED,
) -> ComputeEnvironment:
    return ComputeEnvironment(name, max_vcpus=vcpus, max_memory_mib=memory, gpu_ids=tuple(gpus), state=state)


def queue(
    name: str = "default", priority: int = 1, envs: Sequence[str] = ("local",), state: State = State.ENABLED
) -> JobQueue:
    return JobQueue(name, priority=priority, compute_environments=tuple(envs), state=state)


def job(
    job_id: str,
    queue: str = "default",
    vcpus: float = 1,
    memory: int = 1024,
    gpus: int = 0,
    created: int = 0,
    waited_s: float = 0,
) -> RunnableJob:
    return RunnableJob(job_id, queue, Resources(vcpus, memory, gpus), created, NOW - round(waited_s * 1000))


def running(
    job_id: str, env_name: str = "local", vcpus: float = 1, memory: int = 1024, gpu_ids: Sequence[str] = ()
) -> Allocation:
    return Allocation(job_id, env_name, Resources(vcpus, memory, len(gpu_ids)), tuple(gpu_ids))


def run(
    jobs: Sequence[RunnableJob],
    queues: Sequence[JobQueue] = (queue(),),
    envs: Sequence[ComputeEnvironment] = (env(),),
    allocations: Sequence[Allocation] = (),
    host: Resources = HOST,
    max_head_wait_s: float = 60,
) -> Plan:
    return plan(jobs, queues, envs, allocations, host, NOW, SchedulerSettings(max_head_wait_s))


def placed(result: Plan) -> dict[str, str]:
    return {p.job_id: p.compute_environment for p in result.placements}


def reasons(result: Plan) -> dict[str, str]:
    return {job_id: str(reason) for job_id, reason in result.waiting.items()}


# ---------------------------------------------------------------------------------------------
# Priority, order, FIFO


def test_the_higher_priority_queue_goes_first_in_a_shared_environment():
    queues = (queue("low", priority=1), queue("high", priority=9))
    jobs = [job("old-low", "low", vcpus=4, created=1), job("new-high", "high", vcpus=4, created=9)]
    result = run(jobs, queues)
    assert placed(result) == {"new-high": "local"}
    assert reasons(result) == {"old-low": f"{CAPACITY} - needs 4 vCPU, 0 vCPU free in compute environment local"}


def test_queues_of_equal_priority_are_served_by_name():
    queues = (queue("b"), queue("a"))
    result = run([job("from-b", "b", vcpus=4), job("from-a", "a", vcpus=4)], queues)
    assert placed(result) == {"from-a": "local"}


def test_a_job_spills_to_the_next_environment_in_the_queue_order():
    envs = (env("first", vcpus=2), env("second", vcpus=8))
    queues = (queue(envs=("missing", "first", "second", "first")),)  # unknown and repeated names ignored
    result = run([job(f"j{n}", created=n) for n in range(3)], queues, envs)
    assert placed(result) == {"j0": "first", "j1": "first", "j2": "second"}
    assert [p.job_id for p in result.placements] == ["j0", "j1", "j2"]


def test_fifo_by_created_at_then_job_id():
    jobs = [job("late", created=5), job("b", created=1), job("a", created=1)]
    result = run(jobs, envs=(env(vcpus=2),))
    assert [p.job_id for p in result.placements] == ["a", "b"]
    assert set(result.waiting) == {"late"}


# ---------------------------------------------------------------------------------------------
# Backfill and the starving head


def test_backfill_starts_smaller_jobs_past_a_head_that_does_not_fit():
    queues = (queue("default"), queue("lower", priority=0))
    jobs = [
        job("head", vcpus=4, created=1, waited_s=5),
        job("small", vcpus=1, created=2),
        job("other", "lower", vcpus=1, created=0),
    ]
    result = run(jobs, queues, allocations=[running("r1", vcpus=2)])
    assert placed(result) == {"small": "local", "other": "local"}
    assert reasons(result) == {"head": f"{CAPACITY} - needs 4 vCPU, 2 vCPU free in compute environment local"}


def test_a_starving_head_holds_back_its_environment_from_its_queue_and_lower_queues():
    queues = (queue("default"), queue("lower", priority=0))
    jobs = [
        job("head", vcpus=4, created=1, waited_s=75.4),
        job("small", vcpus=1, created=2),
        job("other", "lower", vcpus=1, created=0),
    ]
    result = run(jobs, queues, allocations=[running("r1", vcpus=2)], max_head_wait_s=60)
    assert result.placements == ()
    held = "holds back compute environment local"
    behind = f"{CAPACITY} - waiting behind job head, which has waited 75 s and {held}"
    assert reasons(result) == {
        "head": f"{CAPACITY} - needs 4 vCPU, 2 vCPU free in compute environment local; "
        "it has waited 75 s, so compute environment local takes no other job until it starts",
        "small": behind,
        "other": behind,
    }


def test_a_starving_head_holds_back_every_environment_that_could_hold_it():
    envs = (env("a", vcpus=4), env("b", vcpus=4), env("tiny", vcpus=1))
    queues = (queue(envs=("a", "tiny", "b")),)
    allocations = [running("r-a", "a"), running("r-b", "b")]
    result = run([job("head", vcpus=4, waited_s=90), job("small", created=1)], queues, envs, allocations)
    assert placed(result) == {"small": "tiny"}  # too small for the head: not held back
    assert str(result.waiting["head"]) == (
        f"{CAPACITY} - needs 4 vCPU, 3 vCPU free in compute environment a; "
        "it has waited 90 s, so compute environments a, b take no other job until it starts"
    )


def test_the_head_starves_at_exactly_max_head_wait_s():
    jobs = [job("head", vcpus=4, created=1, waited_s=60), job("small", created=2, waited_s=60)]
    assert run(jobs, allocations=[running("r1")]).placements == ()
    jobs = [job("head", vcpus=4, created=1, waited_s=59.999), job("small", created=2)]
    assert placed(run(jobs, allocations=[running("r1")])) == {"small": "local"}


def test_the_plan_says_when_a_waiting_job_will_starve_so_the_caller_can_plan_again_then():
    jobs = [job("head", vcpus=4, created=1, waited_s=20), job("later", vcpus=4, created=2, waited_s=5)]
    assert run(jobs, allocations=[running("r1")]).next_starving_at == NOW - 20_000 + 60_000
    starving = [job("head", vcpus=4, created=1, waited_s=75)]  # already holding back: nothing left to cross
    assert run(starving, allocations=[running("r1")]).next_starving_at is None
    assert run(jobs, allocations=[running("r1")], max_head_wait_s=math.inf).next_starving_at is None
    blocked = [job("x", vcpus=4, waited_s=5)]  # disabled queue: time changes nothing
    assert run(blocked, queues=[queue(state=State.DISABLED)]).next_starving_at is None


def test_higher_priority_queues_are_not_held_back():
    queues = (queue("default"), queue("high", priority=5))
    jobs = [job("head", vcpus=4, waited_s=600), job("vip", "high", vcpus=1, created=10)]
    result = run(jobs, queues, allocations=[running("r1")])
    assert placed(result) == {"vip": "local"}


def test_jobs_ahead_of_the_starving_head_are_not_held_back():
    # "fresh" was created first but only just became runnable: it is ahead in FIFO order.
    jobs = [job("fresh", vcpus=1, created=0, waited_s=1), job("head", vcpus=4, created=1, waited_s=100)]
    result = run(jobs, allocations=[running("r1")])
    assert placed(result) == {"fresh": "local"}


def test_the_first_starving_job_in_fifo_order_holds_back_even_behind_a_fresh_head():
    # The queue's head became runnable a moment ago (say its dependency just finished); the job
    # behind it has waited for minutes and must not lose its guarantee to it.
    jobs = [
        job("fresh-big", vcpus=4, created=0, waited_s=1),
        job("old-big", vcpus=3, created=1, waited_s=100),
        job("small", vcpus=1, created=2),
    ]
    result = run(jobs, allocations=[running("r1", vcpus=2)])
    assert result.placements == ()
    assert str(result.waiting["fresh-big"]) == f"{CAPACITY} - needs 4 vCPU, 2 vCPU free in compute environment local"
    assert "waiting behind job old-big" in str(result.waiting["small"])


def test_jobs_that_can_never_start_hold_nothing_back():
    envs = (env("local", vcpus=4), env("big", vcpus=32, state=DISABLED))
    queues = (queue(envs=("local", "big")),)
    jobs = [job("needs-big", vcpus=16, waited_s=999), job("small", created=1)]
    result = run(jobs, queues, envs)
    assert placed(result) == {"small": "local"}
    assert reasons(result)["needs-big"] == (
        "ACTION_REQUIRED - every compute environment of job queue default that can hold this job is DISABLED: big"
    )


def test_a_starving_head_holds_back_its_request_host_wide_from_other_environments():
    envs = (env("a", vcpus=8), env("b", vcpus=8))
    queues = (queue("qa", envs=("a",)), queue("qb", priority=0, envs=("b",)))
    jobs = [
        job("head", "qa", vcpus=4, waited_s=61),
        job("fits-b", "qb", vcpus=1),
        job("small-b", "qb", vcpus=0.5),
    ]
    # 8.5 of the host's 10 vCPU are held: environment a has room for the head, the host has not.
    allocations = [running("r-a", "a", vcpus=2), running("r-b", "b", vcpus=6.5)]
    result = run(jobs, queues, envs, allocations, host=Resources(vcpus=10, memory_mib=262_144))
    assert placed(result) == {}
    behind = f"{CAPACITY} - waiting behind job head, which has waited 61 s and holds back 4 vCPU on this host"
    assert reasons(result) == {
        "head": f"{CAPACITY} - needs 4 vCPU, 1.5 vCPU free on this host; "
        "it has waited 61 s, so compute environment a takes no other job until it starts",
        "fits-b": behind,
        "small-b": behind,
    }


def test_a_starving_gpu_job_keeps_its_devices_from_environments_that_share_them():
    envs = (env("a", gpus=("0", "1")), env("b", gpus=("1",)))
    queues = (queue("qa", envs=("a",)), queue("qb", priority=0, envs=("b",)))
    jobs = [job("trainer", "qa", gpus=2, waited_s=600), job("other", "qb", gpus=1)]
    result = run(jobs, queues, envs, [running("r", "a", gpu_ids=("0",))])
    assert result.placements == ()
    assert reasons(result)["other"] == f"{CAPACITY} - needs 1 GPU, 0 GPU free in compute environment b"
    # Not starving yet: device 1 goes to the other environment's job.
    jobs = [job("trainer", "qa", gpus=2, waited_s=5), job("other", "qb", gpus=1)]
    result = run(jobs, queues, envs, [running("r", "a", gpu_ids=("0",))])
    assert result.placements == (Placement("other", "b", ("1",)),)


def test_a_request_of_zero_in_the_held_back_dimension_still_fits():
    envs = (env("gpu", vcpus=8, gpus=("0",)), env("cpu", vcpus=8))
    queues = (queue("train", envs=("gpu",)), queue("etl", priority=0, envs=("cpu",)))
    allocations = [running("r", "gpu", gpu_ids=("0",))]
    jobs = [job("trainer", "train", gpus=1, waited_s=600), job("etl", "etl", vcpus=1)]
    result = run(jobs, queues, envs, allocations, host=Resources(16, 65_536, 1))
    assert placed(result) == {"etl": "cpu"}
    assert str(result.waiting["trainer"]).startswith(f"{CAPACITY} - needs 1 GPU, 0 GPU free in compute environment gpu")


# ---------------------------------------------------------------------------------------------
# DISABLED


def test_a_disabled_queue_dispatches_nothing():
    result = run([job("a"), job("b")], (queue(state=DISABLED),))
    assert result.placements == ()
    assert reasons(result) == dict.fromkeys(["a", "b"], "ACTION_REQUIRED - job queue default is DISABLED")


def test_a_disabled_environment_takes_no_new_job():
    envs = (env("off", state=DISABLED), env("on"))
    result = run([job("a")], (queue(envs=("off", "on")),), envs)
    assert placed(result) == {"a": "on"}


def test_every_environment_disabled():
    result = run([job("a")], envs=(env(state=DISABLED),))
    assert reasons(result) == {"a": "ACTION_REQUIRED - every compute environment of job queue default is DISABLED"}


def test_unknown_queue_and_queue_without_environments():
    result = run([job("lost", "nope"), job("orphan", "empty")], (queue("empty", envs=("gone",)),))
    assert reasons(result) == {
        "lost": "ACTION_REQUIRED - job queue nope does not exist",
        "orphan": "ACTION_REQUIRED - job queue empty has no compute environment",
    }


# ---------------------------------------------------------------------------------------------
# Capacity: GPUs, host-wide, memory, the numbers in reasons


def test_gpu_ids_are_assigned_in_the_environments_order_and_never_twice():
    envs = (env("gpu", vcpus=16, gpus=("0", "1", "2", "3")),)
    jobs = [job("two", gpus=2, created=1), job("one", gpus=1, created=2), job("more", gpus=1, created=3)]
    result = run(jobs, (queue(envs=("gpu",)),), envs, [running("r", "gpu", gpu_ids=("1",))])
    assert result.placements == (Placement("two", "gpu", ("0", "2")), Placement("one", "gpu", ("3",)))
    assert reasons(result) == {"more": f"{CAPACITY} - needs 1 GPU, 0 GPU free in compute environment gpu"}


def test_a_device_two_environments_list_is_handed_out_once():
    envs = (env("a", gpus=("0", "1")), env("b", gpus=("1", "0")))
    queues = (queue("qa", envs=("a",)), queue("qb", priority=0, envs=("b",)))
    jobs = [job("ja", "qa", gpus=1), job("jb", "qb", gpus=1), job("jb2", "qb", gpus=1, created=1)]
    result = run(jobs, queues, envs, [running("r", "a", gpu_ids=("1",))])
    assert result.placements == (Placement("ja", "a", ("0",)),)
    assert reasons(result)["jb"] == f"{CAPACITY} - needs 1 GPU, 0 GPU free in compute environment b"


def test_the_host_caps_environments_whose_sum_exceeds_it():
    envs = (env("a", vcpus=16), env("b", vcpus=16))
    jobs = [job(f"j{n}", vcpus=8, created=n) for n in range(4)]
    result = run(jobs, (queue(envs=("a", "b")),), envs, host=Resources(24, 262_144))
    assert placed(result) == {"j0": "a", "j1": "a", "j2": "b"}
    # Environment b has room for j3; the host has not: that is what its reason names.
    assert reasons(result) == {"j3": f"{CAPACITY} - needs 8 vCPU, 0 vCPU free on this host"}


def test_reasons_name_memory_and_exact_fractions():
    allocations = [running("r", vcpus=2.875, memory=15_360)]
    result = run(
        [job("mem", vcpus=0.5, memory=2048), job("cpu", vcpus=1.5, memory=8, created=1)],
        allocations=allocations,
    )
    assert reasons(result) == {
        "mem": f"{CAPACITY} - needs 2048 MiB memory, 1024 MiB memory free in compute environment local",
        "cpu": f"{CAPACITY} - needs 1.5 vCPU, 1.125 vCPU free in compute environment local",
    }


def test_fractional_vcpus_pack_exactly():
    jobs = [job(f"j{n}", vcpus=0.1, memory=4, created=n) for n in range(11)]
    result = run(jobs, envs=(env(vcpus=1),))
    assert len(result.placements) == 10
    assert reasons(result) == {"j10": f"{CAPACITY} - needs 0.1 vCPU, 0 vCPU free in compute environment local"}


def test_an_environment_shrunk_below_its_jobs_takes_nothing_more():
    result = run([job("a", vcpus=1)], envs=(env(vcpus=2),), allocations=[running("r", vcpus=3)])
    assert reasons(result) == {"a": f"{CAPACITY} - needs 1 vCPU, 0 vCPU free in compute environment local"}


def test_a_job_bigger_than_every_environment_after_an_update_is_misconfiguration():
    result = run([job("big", vcpus=8)], envs=(env(vcpus=4),))
    assert reasons(result) == {
        "big": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - needs 8 vCPU; "
        "the largest compute environment of queue default (local) has 4 vCPU"
    }


def test_the_reason_is_aws_code_dash_text():
    reason = WaitReason("ACTION_REQUIRED", "job queue q is DISABLED")
    assert str(reason) == "ACTION_REQUIRED - job queue q is DISABLED"


def test_settings_are_checked():
    with pytest.raises(ValueError, match="max_head_wait_s"):
        SchedulerSettings(max_head_wait_s=-1)
    with pytest.raises(ValueError, match="max_head_wait_s"):
        SchedulerSettings(max_head_wait_s=math.nan)


# ---------------------------------------------------------------------------------------------
# never_fits


def fits(request: Resources, envs: Sequence[ComputeEnvironment], host: Resources = HOST) -> str | None:
    return never_fits(request, queue(envs=[e.name for e in envs] + ["unknown"]), envs, host)


def test_never_fits_names_the_resource_and_both_numbers():
    local = env("local", vcpus=16, memory=65_536)
    assert fits(Resources(64, 1024), [local]) == (
        "needs 64 vCPU; the largest compute environment of queue default (local) has 16 vCPU"
    )
    assert fits(Resources(1, 100_000), [local, env("big", vcpus=2, memory=98_304)]) == (
        "needs 100000 MiB memory; the largest compute environment of queue default (big) has 98304 MiB memory"
    )
    assert fits(Resources(1, 1024, 2), [local, env("gpu", gpus=("0",))]) == (
        "needs 2 GPU; the largest compute environment of queue default (gpu) has 1 GPU"
    )


def test_never_fits_names_every_resource_nothing_can_hold():
    local = env("local", vcpus=2, memory=1024)
    assert fits(Resources(1, 8192, 1), [local]) == (
        "needs 1 GPU and 8192 MiB memory; the largest compute environment of queue default (local) "
        "has 0 GPU and 1024 MiB memory"
    )
    big = env("big", vcpus=4, memory=512)
    assert fits(Resources(8, 2048), [local, big], Resources(3, 65_536)) == (
        "needs 8 vCPU; this host has 3 vCPU; "
        "needs 2048 MiB memory; the largest compute environment of queue default (local) has 1024 MiB memory"
    )


def test_never_fits_names_the_host_when_it_is_smaller_than_the_environment():
    assert fits(Resources(64, 1024), [env(vcpus=128)], Resources(16, 65_536)) == "needs 64 vCPU; this host has 16 vCPU"


def test_never_fits_when_each_environment_is_short_of_something_else():
    envs = [env("cpu", vcpus=16, memory=32_000), env("mem", vcpus=4, memory=128_000)]
    assert fits(Resources(8, 64_000), envs) == (
        "needs 8 vCPU, 64000 MiB memory; no compute environment of queue default holds all of it: "
        "cpu has 32000 MiB memory; mem has 4 vCPU"
    )


def test_never_fits_counts_disabled_environments_and_is_none_when_one_can_hold_it():
    assert fits(Resources(16, 1024), [env(vcpus=4), env("off", vcpus=16, state=DISABLED)]) is None
    assert fits(Resources(4, 16_384), [env(vcpus=4)]) is None
    assert (
        never_fits(Resources(1, 4), queue(envs=("gone",)), [], HOST) == "job queue default has no compute environment"
    )


# ---------------------------------------------------------------------------------------------
# Properties over random worlds


@dataclass
class World:
    jobs: list[RunnableJob]
    queues: list[JobQueue]
    envs: list[ComputeEnvironment]
    allocations: list[Allocation]
    host: Resources
    max_head_wait_s: float = math.inf

    def plan(self) -> Plan:
        return plan(
            self.jobs,
            self.queues,
            self.envs,
            self.allocations,
            self.host,
            NOW,
            SchedulerSettings(self.max_head_wait_s),
        )


GPU_IDS = ("0", "1", "2", "3")
NO_HOLD_BACK = st.just(math.inf)
SOME_HOLD_BACK = st.sampled_from([math.inf, 0, 60])
VCPUS = st.sampled_from([0.25, 0.5, 1, 1.5, 2, 3, 4])
MEMORY = st.sampled_from([256, 512, 1024, 2048, 4096])


@st.composite
def worlds(draw: st.DrawFn, max_head_wait_s: st.SearchStrategy[float] = NO_HOLD_BACK) -> World:
    env_names = draw(st.lists(st.sampled_from("abc"), min_size=1, max_size=3, unique=True))
    envs = [
        ComputeEnvironment(
            name,
            max_vcpus=draw(st.sampled_from([1, 2, 3.5, 4, 8])),
            max_memory_mib=draw(st.sampled_from([1024, 4096, 8192])),
            gpu_ids=tuple(draw(st.lists(st.sampled_from(GPU_IDS), max_size=3, unique=True))),
            state=draw(st.sampled_from([State.ENABLED] * 4 + [State.DISABLED])),
        )
        for name in env_names
    ]
    queues = [
        JobQueue(
            f"q{n}",
            priority=draw(st.integers(0, 2)),
            compute_environments=tuple(draw(st.lists(st.sampled_from([*env_names, "zz"]), max_size=3, unique=True))),
            state=draw(st.sampled_from([State.ENABLED] * 5 + [State.DISABLED])),
        )
        for n in range(draw(st.integers(1, 3)))
    ]
    host = Resources(
        draw(st.sampled_from([2, 4, 6.5, 16])),
        draw(st.sampled_from([4096, 8192, 32_768])),
        draw(st.integers(0, 4)),
    )

    def some_jobs(prefix: str, max_size: int) -> list[RunnableJob]:
        job_queues = st.sampled_from([q.name for q in queues] + ["nope"])
        gpus = st.sampled_from([0, 0, 0, 1, 2])
        waits = st.sampled_from([0, 10_000, 60_000, 61_000, 500_000])
        shapes = st.tuples(job_queues, VCPUS, MEMORY, gpus, st.integers(0, 5), waits)
        return [
            RunnableJob(f"{prefix}{n}", q, Resources(v, m, g), created_at=c, runnable_at=NOW - w)
            for n, (q, v, m, g, c, w) in enumerate(draw(st.lists(shapes, max_size=max_size)))
        ]

    # What runs now: what an earlier pass started, so the world is one the scheduler could reach.
    earlier = some_jobs("r", 10)
    started = plan(earlier, queues, envs, (), host, NOW, SchedulerSettings(math.inf))
    by_id = {j.job_id: j for j in earlier}
    allocations = [
        Allocation(p.job_id, p.compute_environment, by_id[p.job_id].resources, p.gpu_ids) for p in started.placements
    ]
    return World(some_jobs("j", 25), queues, envs, allocations, host, draw(max_head_wait_s))


PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def vec(resources: Resources) -> list[int]:
    return [round(resources.vcpus * 1000), resources.memory_mib, resources.gpus]


class Replay:
    """Free capacity as the plan's placements are applied one by one, checked independently."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.envs = {e.name: e for e in world.envs}
        self.used = {e.name: [0, 0, 0] for e in world.envs}
        self.host_used = [0, 0, 0]
        self.gpus_held: list[str] = []
        for a in world.allocations:
            self.take(a.compute_environment, a.resources, a.gpu_ids)
        self.jobs = {j.job_id: j for j in world.jobs}

    def take(self, env_name: str, resources: Resources, gpu_ids: Sequence[str]) -> None:
        need = vec(resources)
        for dim in range(3):
            self.host_used[dim] += need[dim]
            if env_name in self.used:
                self.used[env_name][dim] += need[dim]
        self.gpus_held.extend(gpu_ids)

    def env_free(self, name: str) -> list[int]:
        e = self.envs[name]
        cap = [round(e.max_vcpus * 1000), e.max_memory_mib, len(e.gpu_ids)]
        return [cap[d] - self.used[name][d] for d in range(3)]

    def host_free(self) -> list[int]:
        return [t - u for t, u in zip(vec(self.world.host), self.host_used, strict=True)]

    def fits(self, resources: Resources, env_name: str) -> bool:
        e = self.envs[env_name]
        need = vec(resources)
        free_ids = [g for g in e.gpu_ids if g not in self.gpus_held]
        return (
            e.enabled
            and all(need[d] <= self.env_free(env_name)[d] for d in range(3))
            and all(need[d] <= self.host_free()[d] for d in range(3))
            and need[2] <= len(free_ids)
        )


def queue_rank(world: World) -> dict[str, tuple[int, str]]:
    return {q.name: (-q.priority, q.name) for q in world.queues}


def fifo_key(j: RunnableJob) -> tuple[int, str]:
    return (j.created_at, j.job_id)


def never_over_commits_nor_hands_a_gpu_out_twice(world: World, result: Plan) -> None:
    replay = Replay(world)
    for p in result.placements:
        j = replay.jobs[p.job_id]
        assert replay.fits(j.resources, p.compute_environment), p
        assert len(p.gpu_ids) == j.resources.gpus
        assert set(p.gpu_ids) <= set(replay.envs[p.compute_environment].gpu_ids)
        assert not set(p.gpu_ids) & set(replay.gpus_held)
        replay.take(p.compute_environment, j.resources, p.gpu_ids)
    assert len(replay.gpus_held) == len(set(replay.gpus_held))
    for name in {p.compute_environment for p in result.placements}:
        assert min(replay.env_free(name)) >= 0
    assert min(replay.host_free()) >= 0


def each_queues_head_is_its_first_waiting_job_in_fifo_order(world: World, result: Plan) -> None:
    known = {q.name for q in world.queues}
    expected = {}
    for j in sorted(world.jobs, key=lambda j: (j.created_at, j.job_id)):
        if j.job_id in result.waiting and j.job_queue in known:
            expected.setdefault(j.job_queue, j.job_id)
    assert result.heads == expected


def every_job_is_placed_or_has_a_reason_never_both(world: World, result: Plan) -> None:
    ids = [p.job_id for p in result.placements]
    assert len(ids) == len(set(ids))
    assert set(ids).isdisjoint(result.waiting)
    assert set(ids) | set(result.waiting) == {j.job_id for j in world.jobs}
    for reason in result.waiting.values():
        assert reason.code in {
            CAPACITY,
            "ACTION_REQUIRED",
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        }
        assert reason.message


def the_plan_does_not_depend_on_input_order(world: World, result: Plan, rnd: random.Random) -> None:
    shuffled = World(
        rnd.sample(world.jobs, len(world.jobs)),
        rnd.sample(world.queues, len(world.queues)),
        rnd.sample(world.envs, len(world.envs)),
        rnd.sample(world.allocations, len(world.allocations)),
        world.host,
        world.max_head_wait_s,
    )
    assert shuffled.plan() == result


def fifo_with_backfill_only_past_jobs_that_do_not_fit(world: World, result: Plan) -> None:
    replay = Replay(world)
    queues = {q.name: q for q in world.queues}
    for p in result.placements:
        j = replay.jobs[p.job_id]
        for waiting_id in result.waiting:
            w = replay.jobs[waiting_id]
            if w.job_queue == j.job_queue and fifo_key(w) < fifo_key(j):
                usable = [n for n in queues[j.job_queue].compute_environments if n in replay.envs]
                assert not any(replay.fits(w.resources, n) for n in usable), (waiting_id, p)
        replay.take(p.compute_environment, j.resources, p.gpu_ids)


def a_lower_queue_never_takes_an_environment_a_higher_queues_waiting_job_fits(world: World, result: Plan) -> None:
    replay = Replay(world)
    rank = queue_rank(world)
    queues = {q.name: q for q in world.queues}
    for p in result.placements:
        j = replay.jobs[p.job_id]
        for waiting_id in result.waiting:
            w = replay.jobs[waiting_id]
            q = queues.get(w.job_queue)
            if q is None or not q.enabled or rank[w.job_queue] >= rank[j.job_queue]:
                continue
            if p.compute_environment in q.compute_environments:
                assert not replay.fits(w.resources, p.compute_environment), (waiting_id, p)
        replay.take(p.compute_environment, j.resources, p.gpu_ids)


def nothing_served_after_a_starving_head_enters_its_environments_or_its_host_share(world: World, result: Plan) -> None:
    rank = queue_rank(world)
    host = vec(world.host)
    envs = {e.name: e for e in world.envs}

    def order(j: RunnableJob) -> tuple[tuple[int, str], tuple[int, str]]:
        return (rank[j.job_queue], fifo_key(j))

    heads = []  # (order, held environments, request), from the reasons the plan gave
    for q in world.queues:
        waiting = sorted((j for j in world.jobs if j.job_id in result.waiting and j.job_queue == q.name), key=fifo_key)
        for j in waiting:
            if result.waiting[j.job_id].code == CAPACITY and NOW - j.runnable_at >= world.max_head_wait_s * 1000:
                need = vec(j.resources)
                held = {
                    n
                    for n in q.compute_environments
                    if n in envs
                    and envs[n].enabled
                    and need[0] <= min(round(envs[n].max_vcpus * 1000), host[0])
                    and need[1] <= min(envs[n].max_memory_mib, host[1])
                    and need[2] <= min(len(envs[n].gpu_ids), host[2])
                }
                heads.append((order(j), held, need))
                assert "so compute environment" in result.waiting[j.job_id].message
                break
    replay = Replay(world)
    for p in result.placements:
        j = replay.jobs[p.job_id]
        before = [(held, need) for key, held, need in heads if key < order(j)]
        assert all(p.compute_environment not in held for held, _ in before), p
        replay.take(p.compute_environment, j.resources, p.gpu_ids)
        free = replay.host_free()
        for dim in range(3):
            if vec(j.resources)[dim]:
                assert free[dim] >= sum(need[dim] for _, need in before), (p, dim)


@PROPERTY
@given(worlds(SOME_HOLD_BACK), st.randoms(use_true_random=False))
def test_safety_determinism_and_hold_back(world, rnd):
    result = world.plan()
    never_over_commits_nor_hands_a_gpu_out_twice(world, result)
    every_job_is_placed_or_has_a_reason_never_both(world, result)
    each_queues_head_is_its_first_waiting_job_in_fifo_order(world, result)
    the_plan_does_not_depend_on_input_order(world, result, rnd)
    nothing_served_after_a_starving_head_enters_its_environments_or_its_host_share(world, result)


@PROPERTY
@given(worlds(NO_HOLD_BACK))
def test_fifo_and_priority_without_hold_back(world):
    # With a starving head, later jobs are held back on purpose: the hold-back property covers it.
    result = world.plan()
    fifo_with_backfill_only_past_jobs_that_do_not_fit(world, result)
    a_lower_queue_never_takes_an_environment_a_higher_queues_waiting_job_fits(world, result)


# ---------------------------------------------------------------------------------------------
# Starvation: a discrete-time simulation of the daemon's loop


def simulate(max_head_wait_s: float, ticks: int, stream_queue: str = "default") -> int | None:
    """A 4-vCPU environment, a 4-vCPU head and a stream of 1-vCPU, 3 s jobs behind it (2 a second),
    in its queue or in a lower-priority queue sharing the environment.

    Returns the second at which the head started, or None if it never did within ``ticks``.
    """
    duration_s = 3
    queues, envs = (queue(), queue("lower", priority=0)), (env(vcpus=4),)
    head = RunnableJob("head", "default", Resources(4, 1024), created_at=0, runnable_at=0)
    runnable = {"head": head}
    running = {"warm": (Allocation("warm", "local", Resources(1, 1024)), 1)}  # (allocation, ends at)
    for t in range(ticks):
        now = t * 1000
        running = {k: v for k, v in running.items() if v[1] > t}
        for n in range(2):
            job_id = f"s{t:04d}-{n}"
            runnable[job_id] = RunnableJob(job_id, stream_queue, Resources(1, 1024), now + 1 + n, now)
        result = plan(
            list(runnable.values()),
            queues,
            envs,
            [a for a, _ in running.values()],
            HOST,
            now,
            SchedulerSettings(max_head_wait_s),
        )
        for p in result.placements:
            if p.job_id == "head":
                return t
            job_ = runnable.pop(p.job_id)
            running[p.job_id] = (Allocation(p.job_id, p.compute_environment, job_.resources), t + duration_s)
    return None


@pytest.mark.parametrize("stream_queue", ["default", "lower"])
def test_without_the_guarantee_backfill_starves_the_big_job(stream_queue):
    assert simulate(math.inf, ticks=300, stream_queue=stream_queue) is None


@pytest.mark.parametrize("stream_queue", ["default", "lower"])
def test_the_starving_head_starts_within_max_head_wait_plus_the_longest_run(stream_queue):
    max_head_wait_s, longest_run_s, tick_s = 10, 3, 1
    started = simulate(max_head_wait_s, ticks=300, stream_queue=stream_queue)
    assert started is not None
    assert started <= max_head_wait_s + longest_run_s + tick_s


# ---------------------------------------------------------------------------------------------
# Each queue's head (for jobStateTimeLimitActions)


def test_each_queues_head_is_its_first_job_in_dispatch_order_left_waiting():
    queues = (queue("default"), queue("lower", priority=0), queue("off", state=DISABLED), queue("idle"))
    jobs = [
        job("placed", vcpus=2, created=0),
        job("big", vcpus=4, created=1),
        job("small", vcpus=1, created=2),
        job("behind", vcpus=4, created=3),
        job("low-a", "lower", vcpus=4, created=0),
        job("off-b", "off", created=2),
        job("off-a", "off", created=1),
        job("lost", "nope"),
    ]
    result = run(jobs, queues)
    assert placed(result) == {"placed": "local", "small": "local"}
    assert result.heads == {"default": "big", "lower": "low-a", "off": "off-a"}  # no waiting job: no head


# -- the front of each queue (GetJobQueueSnapshot) -----------------------------------------------


def test_fronts_keep_dispatch_order_per_queue_and_the_time_each_job_took_its_place() -> None:
    from localbatch.core.scheduler import FrontEntry, fronts

    queue_of = {"a1": "a", "b1": "b", "a2": "a", "a3": "a"}.__getitem__
    first = fronts(["a1", "b1", "a2", "a3"], queue_of, {}, 100, limit=2)
    assert first == {"a": (FrontEntry("a1", 100), FrontEntry("a2", 100)), "b": (FrontEntry("b1", 100),)}
    later = fronts(["a3", "a2", "b1"], queue_of, first, 200, limit=2)  # a1 started; a3 moved ahead
    assert later == {"a": (FrontEntry("a3", 200), FrontEntry("a2", 100)), "b": (FrontEntry("b1", 100),)}
