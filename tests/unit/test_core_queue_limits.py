"""Job state time limits (AWS's jobStateTimeLimitActions), decided on plain data."""

from __future__ import annotations

from localbatch.core import queue_limits
from localbatch.core.infra import JobQueue, JobStateTimeLimitAction
from localbatch.core.queue_limits import Cancellation, HeadWait, due, track
from localbatch.core.scheduler import CAPACITY, MAX_RESOURCE

T0 = 1_700_000_000_000


def _queue(name: str, *actions: JobStateTimeLimitAction) -> JobQueue:
    return JobQueue(name, 1, ("local",), job_state_time_limit_actions=actions)


def test_a_head_waiting_with_the_actions_reason_is_cancelled_once_its_time_is_up() -> None:
    queue = _queue("q", JobStateTimeLimitAction(CAPACITY, 600))
    heads = {"q": HeadWait("j1", CAPACITY, T0)}
    assert due(heads, [queue], T0 + 599_999) == []
    assert due(heads, [queue], T0 + 600_000) == [
        Cancellation("q", "j1", f"Canceled by JobStateTimeLimit action due to reason: {CAPACITY}")
    ]


def test_a_head_waiting_for_another_reason_or_a_queue_without_actions_is_left_alone() -> None:
    limited = _queue("limited", JobStateTimeLimitAction(MAX_RESOURCE, 1))
    plain = _queue("plain")
    heads = {"limited": HeadWait("j1", CAPACITY, T0), "plain": HeadWait("j2", CAPACITY, T0)}
    assert due(heads, [limited, plain], T0 + 10_000_000) == []


def test_the_shortest_matching_action_fires_once_and_queues_come_in_name_order() -> None:
    b = _queue("b", JobStateTimeLimitAction(CAPACITY, 5), JobStateTimeLimitAction(CAPACITY, 2))
    a = _queue("a", JobStateTimeLimitAction(MAX_RESOURCE, 1))
    heads = {"b": HeadWait("jb", CAPACITY, T0), "a": HeadWait("ja", MAX_RESOURCE, T0)}
    assert [c.job_id for c in due(heads, [b, a], T0 + 1_000)] == ["ja"]
    assert [c.job_id for c in due(heads, [b, a], T0 + 2_000)] == ["ja", "jb"]  # b's second action
    assert [c.job_id for c in due(heads, [b, a], T0 + 5_000)] == ["ja", "jb"]  # one cancellation each


def test_the_clock_runs_while_the_head_and_its_code_stay_and_restarts_when_either_changes() -> None:
    tracked = track({}, {"q": ("j1", CAPACITY)}, T0)
    assert tracked == {"q": HeadWait("j1", CAPACITY, T0)}
    assert track(tracked, {"q": ("j1", CAPACITY)}, T0 + 5_000) == tracked  # unchanged: clock kept
    assert track(tracked, {"q": ("j1", MAX_RESOURCE)}, T0 + 6_000) == {"q": HeadWait("j1", MAX_RESOURCE, T0 + 6_000)}
    assert track(tracked, {"q": ("j2", CAPACITY)}, T0 + 7_000) == {"q": HeadWait("j2", CAPACITY, T0 + 7_000)}
    assert track(tracked, {}, T0 + 8_000) == {}  # no waiting job: no head


def test_problems_name_the_entry_and_field_and_what_is_allowed() -> None:
    actions = [
        JobStateTimeLimitAction(CAPACITY, 600),
        JobStateTimeLimitAction("ACTION_REQUIRED", 0, state="STARTING", action="TERMINATE"),
    ]
    found = {p.path: p.message for p in queue_limits.problems(actions, "jobStateTimeLimitActions", aws_names=True)}
    assert set(found) == {
        "jobStateTimeLimitActions[1].reason",
        "jobStateTimeLimitActions[1].state",
        "jobStateTimeLimitActions[1].action",
        "jobStateTimeLimitActions[1].maxTimeSeconds",
    }
    assert "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT" in found["jobStateTimeLimitActions[1].reason"]
    assert found["jobStateTimeLimitActions[1].maxTimeSeconds"] == (
        "must be between 1 and 86400 seconds (AWS: 600 to 86400), got 0"
    )
    assert [p.path for p in queue_limits.problems([actions[1]], "x")][-1] == "x[0].max_time_seconds"
    assert queue_limits.problems([JobStateTimeLimitAction(CAPACITY, 86_401)], "x") != []


def test_a_time_shorter_than_awss_minimum_is_allowed_with_a_warning() -> None:
    queue = _queue("q", JobStateTimeLimitAction(CAPACITY, 600), JobStateTimeLimitAction(MAX_RESOURCE, 30))
    assert queue_limits.problems(queue.job_state_time_limit_actions, "x") == []
    assert queue_limits.warnings(queue) == [
        "job queue q: job state time limit action 1 (MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE) waits "
        "30 s; AWS requires 600 to 86400 s, so this runs locally only"
    ]
