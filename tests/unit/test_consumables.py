"""Consumable resources in the pure core: the arithmetic, and the scheduler's rule 12."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localbatch.core import consumables
from localbatch.core.consumables import ConsumableResource, Operation, ResourceType
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.resources import Resources
from localbatch.core.scheduler import RunnableJob, plan

NOW = 1_000_000
HOST = Resources(vcpus=64, memory_mib=262_144, gpus=0)
QUEUE = JobQueue("default", 1, ("local",))
ENV = ComputeEnvironment("local", max_vcpus=16, max_memory_mib=65_536)


def job(job_id: str, needs: tuple[tuple[str, int], ...] = (), created: int = 0, vcpus: float = 1) -> RunnableJob:
    return RunnableJob(job_id, "default", Resources(vcpus, 1024, 0), created, NOW, consumables=needs)


def run(jobs: list[RunnableJob], free: dict[str, int]) -> tuple[list[str], dict[str, str]]:
    result = plan(jobs, [QUEUE], [ENV], [], HOST, NOW, consumable_quantities=free)
    return [p.job_id for p in result.placements], {k: str(v) for k, v in result.waiting.items()}


def test_a_job_starts_only_with_every_quantity_it_needs_and_the_pass_never_hands_out_more() -> None:
    jobs = [job(f"j{i}", (("licences", 2),), created=i) for i in range(4)]
    placed, waiting = run(jobs, {"licences": 5})
    assert placed == ["j0", "j1"]  # 2 + 2; the third would need 6
    assert waiting["j2"] == (
        "CONSUMABLE_RESOURCE:INSUFFICIENT_QUANTITY - needs 2 of consumable resource licences, 1 available"
    )


def test_a_job_short_of_a_resource_does_not_block_the_jobs_behind_it() -> None:
    placed, waiting = run(
        [job("big", (("licences", 3),), 0), job("plain", (), 1), job("small", (("licences", 1),), 2)], {"licences": 1}
    )
    assert placed == ["plain", "small"]
    assert "needs 3 of consumable resource licences, 1 available" in waiting["big"]


def test_every_listed_resource_must_be_available() -> None:
    placed, waiting = run([job("a", (("licences", 1), ("db", 2)))], {"licences": 1, "db": 1})
    assert placed == []
    assert waiting["a"].endswith("needs 2 of consumable resource db, 1 available")
    placed, _ = run([job("a", (("licences", 1), ("db", 2)))], {"licences": 1, "db": 2})
    assert placed == ["a"]


def test_a_resource_that_does_not_exist_is_named() -> None:
    _, waiting = run([job("a", (("gone", 1),))], {})
    assert waiting["a"].endswith("consumable resource gone does not exist")


def test_a_job_that_waits_for_capacity_takes_no_quantity() -> None:
    big = job("big", (("licences", 1),), 0, vcpus=32)  # can never fit 16 vCPUs now: it waits
    placed, _ = run([big, job("next", (("licences", 1),), 1)], {"licences": 1})
    assert placed == ["next"]


@given(
    total=st.integers(0, 20),
    wants=st.lists(st.integers(1, 6), max_size=12),
)
def test_placed_quantities_never_exceed_what_is_available(total: int, wants: list[int]) -> None:
    jobs = [job(f"j{i:02d}", (("r", q),), created=i) for i, q in enumerate(wants)]
    placed, _ = run(jobs, {"r": total})
    assert sum(wants[int(j[1:])] for j in placed) <= total


def test_in_use_and_available() -> None:
    used = consumables.in_use([(("a", 2), ("b", 1)), (("a", 1),)])
    assert used == {"a": 3, "b": 1}
    resources = [ConsumableResource("a", 2), ConsumableResource("b", 5), ConsumableResource("c", 1)]
    assert consumables.available(resources, used) == {"a": 0, "b": 4, "c": 1}  # never below 0


@pytest.mark.parametrize(
    ("operation", "quantity", "total"),
    [(Operation.SET, 3, 3), (Operation.ADD, 3, 13), (Operation.REMOVE, 3, 7), (Operation.REMOVE, 10, 0)],
)
def test_updated_total(operation: Operation, quantity: int, total: int) -> None:
    assert consumables.updated_total(ConsumableResource("a", 10), operation, quantity) == total


def test_updated_total_refuses_to_go_below_zero_or_past_a_long() -> None:
    with pytest.raises(ValueError, match="cannot REMOVE 11: totalQuantity is 10"):
        consumables.updated_total(ConsumableResource("a", 10), Operation.REMOVE, 11)
    with pytest.raises(ValueError, match="past"):
        consumables.updated_total(ConsumableResource("a", consumables.MAX_QUANTITY), Operation.ADD, 1)


def test_problems_name_the_field() -> None:
    bad = ConsumableResource("no spaces", -1)
    assert [p.path for p in consumables.resource_problems(bad)] == ["name", "total_quantity"]
    problems = consumables.need_problems((("a", 1), ("a", 2), ("b", 0)), "consumable_resources")
    assert [str(p) for p in problems] == [
        "consumable_resources[1]: 'a' is listed twice",
        "consumable_resources[2]: quantity must be 1 to 9223372036854775807, got 0",
    ]


def test_holds_is_starting_or_running() -> None:
    assert [
        s
        for s in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        if consumables.holds(s)
    ] == ["STARTING", "RUNNING"]
    assert ConsumableResource("a", 1).resource_type is ResourceType.REPLENISHABLE  # AWS's default
