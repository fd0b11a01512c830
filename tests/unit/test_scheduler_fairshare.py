"""The scheduler's fair share (rules 10 and 11) and scheduling policies: pure examples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localbatch.core.fairshare import UsageHistory, decayed_usage
from localbatch.core.infra import (
    ComputeEnvironment,
    JobQueue,
    SchedulingPolicy,
    ShareWeight,
    policy_problems,
)
from localbatch.core.resources import Resources
from localbatch.core.scheduler import (
    Allocation,
    Plan,
    RunnableJob,
    SchedulerSettings,
    plan,
)

NOW = 1_000_000_000
HOST = Resources(vcpus=64, memory_mib=262_144, gpus=0)
CAPACITY = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"


def policy(*weights: tuple[str, float], decay: int = 0, reservation: int = 0) -> SchedulingPolicy:
    return SchedulingPolicy(
        "fair",
        share_decay_seconds=decay,
        compute_reservation=reservation,
        share_distribution=tuple(ShareWeight(s, w) for s, w in weights),
    )


FAIR_QUEUE = JobQueue("fq", 1, ("local",), scheduling_policy="fair")


def job(
    job_id: str, share: str | None, vcpus: float = 1, created: int = 0, priority: int = 0, queue: str = "fq"
) -> RunnableJob:
    return RunnableJob(job_id, queue, Resources(vcpus, 512, 0), created, NOW, share, priority)


def holding(job_id: str, share: str, vcpus: float = 1, queue: str = "fq") -> Allocation:
    return Allocation(job_id, "local", Resources(vcpus, 512, 0), job_queue=queue, share_identifier=share)


def run(
    jobs: Sequence[RunnableJob],
    the_policy: SchedulingPolicy,
    vcpus: float = 4,
    allocations: Sequence[Allocation] = (),
    usage: dict[tuple[str, str], float] | None = None,
    queues: Sequence[JobQueue] = (FAIR_QUEUE,),
) -> Plan:
    envs = [ComputeEnvironment("local", vcpus, 65_536)]
    return plan(jobs, queues, envs, allocations, HOST, NOW, SchedulerSettings(), policies=[the_policy], usage=usage)


def placed_shares(result: Plan, jobs: Sequence[RunnableJob]) -> list[str | None]:
    share_of = {j.job_id: j.share_identifier for j in jobs}
    return [share_of[p.job_id] for p in result.placements]


def many(share: str, count: int, vcpus: float = 1, priority: int = 0) -> list[RunnableJob]:
    return [job(f"{share}-{i:03d}", share, vcpus, created=i, priority=priority) for i in range(count)]


# -- ordering -------------------------------------------------------------------------------


def test_equal_weights_alternate_between_shares_even_against_submission_order() -> None:
    # b's jobs were all submitted first; a FIFO queue would run only b's.
    jobs = [job(f"b{i}", "b", created=i) for i in range(4)] + [job(f"a{i}", "a", created=10 + i) for i in range(4)]
    result = run(jobs, policy())
    assert placed_shares(result, jobs) == ["a", "b", "a", "b"]
    assert [p.job_id for p in result.placements] == ["a0", "b0", "a1", "b1"]  # FIFO within a share


def test_a_lower_weight_gets_proportionally_more_capacity() -> None:
    jobs = many("light", 20) + many("heavy", 20)
    result = run(jobs, policy(("light", 1), ("heavy", 3)), vcpus=8)
    shares = placed_shares(result, jobs)
    assert len(shares) == 8
    assert shares.count("light") == 6 and shares.count("heavy") == 2  # 3 : 1


def test_prefix_entries_weigh_every_matching_share() -> None:
    jobs = many("team-x", 10) + many("solo", 10)
    result = run(jobs, policy(("team*", 0.5)), vcpus=6)
    assert placed_shares(result, jobs).count("team-x") == 4  # usage grows half as fast as solo's


def test_vcpus_held_now_count_against_their_share() -> None:
    jobs = many("a", 4) + many("b", 4)
    held = [holding("r1", "a"), holding("r2", "a")]
    result = run(jobs, policy(), vcpus=6, allocations=held)
    assert placed_shares(result, jobs) == ["b", "b", "a", "b"]  # b catches up first


def test_holdings_of_other_queues_do_not_count() -> None:
    jobs = many("a", 4) + many("b", 4)
    held = [holding("r1", "a", queue="other"), holding("r2", "a", queue="other")]
    result = run(jobs, policy(), vcpus=6, allocations=held)
    assert placed_shares(result, jobs) == ["a", "b", "a", "b"]


def test_decayed_history_counts_per_window() -> None:
    jobs = many("a", 4) + many("b", 4)
    # 600 s window (decay 0): 1200 vCPU-seconds of history weigh like 2 vCPUs held now.
    result = run(jobs, policy(), usage={("fq", "a"): 1200.0})
    assert placed_shares(result, jobs) == ["b", "b", "a", "b"]
    # The same history over a window of an hour weighs a third of a vCPU: a still goes second.
    result = run(jobs, policy(decay=3600), usage={("fq", "a"): 1200.0})
    assert placed_shares(result, jobs) == ["b", "a", "b", "a"]


def test_history_of_another_queue_does_not_count() -> None:
    jobs = many("a", 2) + many("b", 2)
    result = run(jobs, policy(), usage={("other", "a"): 1e9})
    assert placed_shares(result, jobs) == ["a", "b", "a", "b"]


def test_scheduling_priority_orders_jobs_within_a_share_only() -> None:
    jobs = [
        job("a-low", "a", created=0, priority=1),
        job("a-high", "a", created=5, priority=9),
        job("b-top", "b", created=1, priority=9999),
        job("b-next", "b", created=2, priority=9999),
    ]
    result = run(jobs, policy(), vcpus=3)
    # Priority does not let b jump the queue: the shares still alternate, a first (by name).
    assert [p.job_id for p in result.placements] == ["a-high", "b-top", "a-low"]
    assert set(result.waiting) == {"b-next"}


def test_priority_is_ignored_in_a_fifo_queue() -> None:
    fifo = JobQueue("fifo", 1, ("local",))
    jobs = [
        job("first", None, created=0, priority=0, queue="fifo"),
        job("second", None, created=1, priority=9, queue="fifo"),
    ]
    result = run(jobs, policy(), vcpus=1, queues=[fifo])
    assert [p.job_id for p in result.placements] == ["first"]


def test_backfill_within_fair_order_skips_a_job_that_does_not_fit() -> None:
    jobs = [job("a-big", "a", vcpus=8, created=0), job("a-small", "a", created=1), job("b0", "b", created=2)]
    result = run(jobs, policy(), vcpus=4)
    assert [p.job_id for p in result.placements] == ["a-small", "b0"]
    assert result.waiting["a-big"].code == CAPACITY or "MISCONFIGURATION" in result.waiting["a-big"].code


def test_same_input_same_plan_whatever_the_order() -> None:
    jobs = many("x", 5) + many("y", 5, vcpus=2) + many("z", 5, priority=3)
    the_policy = policy(("x", 2), ("z", 0.5))
    first = run(jobs, the_policy, vcpus=10)
    again = run(list(reversed(jobs)), the_policy, vcpus=10)
    assert first == again


@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from([0.5, 1, 2, 4])), min_size=1, max_size=30),
    st.integers(1, 12),
)
def test_fair_share_never_over_commits(specs: list[tuple[str, float]], vcpus: int) -> None:
    jobs = [job(f"j{i}", share, v, created=i) for i, (share, v) in enumerate(specs)]
    result = run(jobs, policy(("a", 0.25), ("b", 3)), vcpus=vcpus)
    size = {j.job_id: j.resources.vcpus for j in jobs}
    assert sum(size[p.job_id] for p in result.placements) <= vcpus
    assert {p.job_id for p in result.placements} | set(result.waiting) == set(size)


# -- computeReservation ---------------------------------------------------------------------


def test_compute_reservation_keeps_room_for_shares_not_yet_active() -> None:
    jobs = many("a", 8)
    result = run(jobs, policy(reservation=50), vcpus=8)
    assert len(result.placements) == 4  # (50/100)^1 of 8 vCPUs kept free
    reason = result.waiting["a-004"]
    assert reason.code == CAPACITY
    assert "computeReservation keeps 4 vCPU of compute environment local free" in reason.message


def test_compute_reservation_shrinks_as_shares_become_active() -> None:
    jobs = many("a", 8) + many("b", 8)
    result = run(jobs, policy(reservation=50), vcpus=8)
    assert len(result.placements) == 6  # (50/100)^2: 2 of 8 kept
    jobs += many("c", 8)
    result = run(jobs, policy(reservation=50), vcpus=8)
    assert len(result.placements) == 7  # (50/100)^3: 1 of 8 kept


def test_shares_holding_resources_count_as_active() -> None:
    jobs = many("a", 8)
    result = run(jobs, policy(reservation=50), vcpus=8, allocations=[holding("r", "b")])
    assert len(result.placements) == 5  # 2 kept (two active), 1 held by b


def test_the_reservation_is_free_to_queues_served_later() -> None:
    fifo = JobQueue("fifo", 0, ("local",))
    jobs = many("a", 8) + [job(f"f{i}", None, queue="fifo", created=i) for i in range(8)]
    result = run(jobs, policy(reservation=50), vcpus=8, queues=[FAIR_QUEUE, fifo])
    placed = [p.job_id for p in result.placements]
    assert len(placed) == 8 and sum(p.startswith("f") for p in placed) == 4


def test_a_job_larger_than_the_reservation_leaves_never_holds_the_environment_back() -> None:
    waited = NOW - 120_000  # past max_head_wait_s: big would be the starving head (rule 8)
    big = RunnableJob("big", "fq", Resources(6, 512, 0), 0, waited, "a")
    small = [RunnableJob(f"small{i}", "fq", Resources(1, 512, 0), 1 + i, waited, "a") for i in range(3)]
    result = plan(
        [big, *small],
        [FAIR_QUEUE],
        [ComputeEnvironment("local", 8, 65_536)],
        [],
        HOST,
        NOW,
        SchedulerSettings(60),
        policies=[policy(reservation=50)],  # one active share: 4 of 8 vCPUs kept, so 6 never fit
    )
    # Holding the environment back for big would block every job for nothing: the small ones run.
    assert [p.job_id for p in result.placements] == ["small0", "small1", "small2"]
    assert "computeReservation keeps 4 vCPU" in result.waiting["big"].message


def test_a_queue_naming_a_missing_policy_is_served_fifo() -> None:
    jobs = [job("b0", "b", created=0), job("b1", "b", created=1), job("a0", "a", created=2)]
    result = plan(jobs, [FAIR_QUEUE], [ComputeEnvironment("local", 2, 65_536)], [], HOST, NOW)
    assert [p.job_id for p in result.placements] == ["b0", "b1"]


def test_decay_is_exponential_with_the_window_as_time_constant() -> None:
    assert decayed_usage(100.0, 0, 600) == 100.0
    assert decayed_usage(100.0, 600, 600) == pytest.approx(100 / math.e)
    assert decayed_usage(100.0, -5, 600) == 100.0


# -- policies -------------------------------------------------------------------------------


def _fields(p: SchedulingPolicy) -> list[str]:
    return [problem.path for problem in policy_problems(p)]


def test_a_valid_policy_has_no_problems() -> None:
    assert policy_problems(policy(("a*", 0.0001), ("b", 999.9999), ("c", 1), decay=604_800, reservation=99)) == []


@pytest.mark.parametrize("weight", [0, 0.00001, 1000, -1, math.nan])
def test_weights_outside_aws_range_are_refused(weight: float) -> None:
    assert _fields(policy(("a", weight))) == ["share_distribution[0].weight_factor"]


def test_decay_and_reservation_ranges() -> None:
    assert _fields(policy(decay=604_801)) == ["share_decay_seconds"]
    assert _fields(policy(decay=-1)) == ["share_decay_seconds"]
    assert _fields(policy(reservation=100)) == ["compute_reservation"]


@pytest.mark.parametrize(
    ("first", "second"),
    [("UserA*", "UserA1"), ("UserA1", "UserA*"), ("a", "a"), ("a*", "ab*"), ("*", "x"), ("ab", "ab*")],
)
def test_overlapping_identifiers_are_refused(first: str, second: str) -> None:
    problems = policy_problems(policy((first, 1), (second, 1)))
    assert [p.path for p in problems] == ["share_distribution[1].share_identifier"]
    assert "overlaps" in problems[0].message


def test_identifiers_that_do_not_overlap_are_fine() -> None:
    assert policy_problems(policy(("UserA*", 1), ("UserB", 1), ("Use", 1))) == []


def test_identifier_rules() -> None:
    assert _fields(policy(("x" * 256, 1))) == ["share_distribution[0].share_identifier"]
    assert _fields(policy(("", 1))) == ["share_distribution[0].share_identifier"]
    assert _fields(policy(("a*b", 1))) == ["share_distribution[0].share_identifier"]


def test_weights_and_windows() -> None:
    p = policy(("team*", 0.5), ("alice", 2))
    assert (p.weight("team-1"), p.weight("alice"), p.weight("bob")) == (0.5, 2, 1.0)
    assert p.decay_window_s == 600 and policy(decay=60).decay_window_s == 60


def test_usage_history_decays_adds_and_forgets() -> None:
    history = UsageHistory()
    history.record(("fq", "a"), vcpus=2, ran_ms=30_000, now=NOW, window_s=600)
    assert history.at(NOW) == {("fq", "a"): 60.0}
    history.record(("fq", "a"), vcpus=1, ran_ms=10_000, now=NOW + 600_000, window_s=600)
    assert history.at(NOW + 600_000)[("fq", "a")] == pytest.approx(60 / math.e + 10)
    assert history.at(NOW + 600_000 * 40) == {}  # decayed to nothing: forgotten


def test_usage_history_follows_window_changes() -> None:
    history = UsageHistory()
    history.record(("fq", "a"), vcpus=1, ran_ms=60_000, now=NOW, window_s=600)
    history.record(("old", "a"), vcpus=1, ran_ms=60_000, now=NOW, window_s=600)
    history.windows({"fq": 60})
    assert history.at(NOW + 60_000) == {("fq", "a"): pytest.approx(60 / math.e)}
