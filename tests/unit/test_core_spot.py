"""Spot reclaims, rehearsed: decided on plain data with scripted draws."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable

from localbatch.core import spot
from localbatch.core.spot import RunningAttempt, SpotRehearsal, reclaims

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000


def _draws(*values: float) -> Callable[[], float]:
    """Scripted uniform draws; a test that asks for more than it scripted fails."""
    remaining = list(values)
    return lambda: remaining.pop(0)


def test_instance_ids_look_like_ec2s_and_are_stable_per_attempt() -> None:
    first = spot.instance_id("job-1", 1)
    assert re.fullmatch(r"i-[0-9a-f]{17}", first)
    assert spot.instance_id("job-1", 1) == first
    assert len({first, spot.instance_id("job-1", 2), spot.instance_id("job-2", 1)}) == 3
    assert spot.host_terminated_reason("job-1", 1) == f"Host EC2 (instance {first}) terminated."


def test_a_schedule_reclaims_every_attempt_that_long_after_it_started() -> None:
    running = [RunningAttempt("b", "spot", T0), RunningAttempt("a", "spot", T0 + 5_000)]
    schedule = {"spot": SpotRehearsal(interrupt_after_s=10)}
    assert reclaims(running, schedule, None, T0 + 9_999, _draws()) == []
    assert reclaims(running, schedule, None, T0 + 10_000, _draws()) == ["b"]
    assert reclaims(running, schedule, None, T0 + 15_000, _draws()) == ["a", "b"]  # job id order


def test_on_demand_environments_and_spot_without_rate_or_schedule_are_never_reclaimed() -> None:
    running = [RunningAttempt("a", "local", T0), RunningAttempt("b", "spot", T0)]
    assert reclaims(running, {"spot": SpotRehearsal(), "local": None}, None, T0 + 10 * HOUR_MS, _draws()) == []


def test_a_rate_draws_once_per_attempt_against_the_chance_for_the_time_it_ran_since_the_last_check() -> None:
    running = [RunningAttempt("a", "spot", T0), RunningAttempt("b", "spot", T0 + HOUR_MS // 2)]
    rate = {"spot": SpotRehearsal(interruption_rate=1.0)}
    now = T0 + HOUR_MS
    chance_a = 1 - math.exp(-1.0)  # a ran an hour
    chance_b = 1 - math.exp(-0.5)  # b ran half of it
    assert reclaims(running, rate, None, now, _draws(chance_a - 1e-9, chance_b)) == ["a"]
    assert reclaims(running, rate, None, now, _draws(chance_a, chance_b - 1e-9)) == ["b"]
    # Since a check half an hour ago, both ran half an hour.
    assert reclaims(running, rate, now - HOUR_MS // 2, now, _draws(chance_b - 1e-9, chance_b - 1e-9)) == ["a", "b"]


def test_no_draw_for_an_attempt_that_ran_no_time_since_the_last_check_or_is_due_by_schedule() -> None:
    running = [RunningAttempt("a", "spot", T0), RunningAttempt("b", "spot", T0 + 2_000)]
    both = {"spot": SpotRehearsal(interruption_rate=100.0, interrupt_after_s=1)}
    assert reclaims(running, both, T0 + 2_000, T0 + 2_000, _draws()) == ["a"]  # a by schedule; b ran 0 ms


def test_the_same_seed_gives_the_same_reclaims_and_the_rate_holds_over_many_attempts() -> None:
    running = [RunningAttempt(f"job-{i:04d}", "spot", T0) for i in range(2_000)]
    rate = {"spot": SpotRehearsal(interruption_rate=0.5)}
    first = reclaims(running, rate, None, T0 + HOUR_MS, random.Random(7).random)
    assert first == reclaims(running, rate, None, T0 + HOUR_MS, random.Random(7).random)
    expected = 2_000 * (1 - math.exp(-0.5))  # about 787
    assert abs(len(first) - expected) < 100


def test_problems_name_the_field() -> None:
    assert spot.problems(SpotRehearsal(0.5, 30)) == []
    found = spot.problems(SpotRehearsal(-1, 0), "compute_environments[0].spot_")
    assert [p.path for p in found] == [
        "compute_environments[0].spot_interruption_rate",
        "compute_environments[0].spot_interrupt_after_seconds",
    ]
    assert spot.problems(SpotRehearsal(math.nan)) != []
