"""Scheduling policies and fair-share queues through the daemon's AWS Batch API, in-process.

Same world as ``test_api_dispatch_infra.py`` (the in-memory store, compute environment ``local``,
the FIFO queue ``default``): successes match botocore's output shapes, refusals are 400
ClientExceptions naming the field, and a refusal changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.core.infra import SchedulingPolicy, ShareWeight
from tests.fakes.api_world import ARN, World, make_world

POLICY_ARN = f"{ARN}scheduling-policy/teams"


@pytest.fixture
def world() -> World:
    world = make_world()
    world.register()
    return world


def _policy(name: str = "teams", **fair: Any) -> dict[str, Any]:
    return {"name": name, "fairsharePolicy": fair}


@pytest.fixture
def fair(world: World) -> World:
    """``world`` with the policy teams (a weighs 1, b* weighs 3) and the fair-share queue fq."""
    distribution = [{"shareIdentifier": "a", "weightFactor": 1}, {"shareIdentifier": "b*", "weightFactor": 3}]
    world.call("CreateSchedulingPolicy", _policy(shareDecaySeconds=60, shareDistribution=distribution))
    world.call(
        "CreateJobQueue",
        {
            "jobQueueName": "fq",
            "priority": 1,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}],
            "schedulingPolicyArn": POLICY_ARN,
        },
    )
    return world


def _state(world: World) -> tuple[object, ...]:
    return (
        world.store.list_scheduling_policies(),
        world.store.list_job_queues(),
        len(world.store.all_jobs()),
        len(world.notifier.calls),
    )


# -- the policy operations ----------------------------------------------------------------------------


def test_create_describe_list_update_delete(world: World) -> None:
    created = world.call(
        "CreateSchedulingPolicy",
        {**_policy(computeReservation=25, shareDistribution=[{"shareIdentifier": "ml*"}]), "tags": {"team": "x"}},
    )
    assert created == {"name": "teams", "arn": POLICY_ARN}
    assert world.store.get_scheduling_policy("teams") == SchedulingPolicy(
        "teams", 0, 25, (ShareWeight("ml*", 1.0),), {"team": "x"}
    )
    (detail,) = world.call("DescribeSchedulingPolicies", {"arns": [POLICY_ARN, f"{ARN}scheduling-policy/nope"]})[
        "schedulingPolicies"
    ]
    assert detail == {
        "name": "teams",
        "arn": POLICY_ARN,
        "fairsharePolicy": {
            "shareDecaySeconds": 0,
            "computeReservation": 25,
            "shareDistribution": [{"shareIdentifier": "ml*", "weightFactor": 1.0}],
        },
        "tags": {"team": "x"},
    }
    world.call("UpdateSchedulingPolicy", {"arn": POLICY_ARN, "fairsharePolicy": {"shareDecaySeconds": 3600}})
    assert world.store.get_scheduling_policy("teams") == SchedulingPolicy("teams", 3600, 0, (), {"team": "x"})
    assert world.notifier.calls[-1] == ("infrastructure_changed", None)
    world.call("DeleteSchedulingPolicy", {"arn": POLICY_ARN})
    assert world.store.list_scheduling_policies() == []


def test_list_scheduling_policies_pages(world: World) -> None:
    for name in ("c", "a", "b"):
        world.call("CreateSchedulingPolicy", _policy(name))
    first = world.call("ListSchedulingPolicies", {"maxResults": 2})
    assert first["schedulingPolicies"] == [{"arn": f"{ARN}scheduling-policy/a"}, {"arn": f"{ARN}scheduling-policy/b"}]
    rest = world.call("ListSchedulingPolicies", {"maxResults": 2, "nextToken": first["nextToken"]})
    assert rest == {"schedulingPolicies": [{"arn": f"{ARN}scheduling-policy/c"}]}


POLICY_REFUSALS = [
    (
        "weight-too-small",
        "CreateSchedulingPolicy",
        _policy(shareDistribution=[{"shareIdentifier": "a", "weightFactor": 0.00001}]),
        "fairsharePolicy.shareDistribution[0].weightFactor: must be 0.0001 to 999.9999, got 1e-05",
    ),
    (
        "weight-too-big",
        "CreateSchedulingPolicy",
        _policy(shareDistribution=[{"shareIdentifier": "a", "weightFactor": 1000}]),
        "fairsharePolicy.shareDistribution[0].weightFactor: must be 0.0001 to 999.9999, got 1000.0",
    ),
    (
        "overlapping-identifiers",
        "CreateSchedulingPolicy",
        _policy(shareDistribution=[{"shareIdentifier": "UserA*"}, {"shareIdentifier": "UserA1"}]),
        "fairsharePolicy.shareDistribution[1].shareIdentifier: 'UserA1' overlaps share_distribution[0] "
        "'UserA*': every share identifier may match one entry only",
    ),
    (
        "decay-too-long",
        "CreateSchedulingPolicy",
        _policy(shareDecaySeconds=604_801),
        "fairsharePolicy.shareDecaySeconds: must be 0 to 604800, got 604801",
    ),
    (
        "reservation-100",
        "CreateSchedulingPolicy",
        _policy(computeReservation=100),
        "fairsharePolicy.computeReservation: must be 0 to 99 (percent), got 100",
    ),
    (
        "bad-name",
        "CreateSchedulingPolicy",
        _policy("no spaces"),
        "name: 'no spaces': 1 to 128 letters, digits, '-' and '_', starting with a letter or digit",
    ),
    (
        "quota-share",
        "CreateSchedulingPolicy",
        {"name": "q", "quotaSharePolicy": {"idleResourceAssignmentStrategy": "FIFO"}},
        "quotaSharePolicy: localbatch supports fair-share policies only",
    ),
    ("duplicate", "CreateSchedulingPolicy", _policy(), "name: scheduling policy teams already exists"),
    (
        "update-unknown",
        "UpdateSchedulingPolicy",
        {"arn": f"{ARN}scheduling-policy/nope", "fairsharePolicy": {}},
        f"scheduling policy '{ARN}scheduling-policy/nope' does not exist",
    ),
    (
        "update-bad-weight",
        "UpdateSchedulingPolicy",
        {"arn": POLICY_ARN, "fairsharePolicy": {"shareDistribution": [{"shareIdentifier": "a", "weightFactor": 0}]}},
        "fairsharePolicy.shareDistribution[0].weightFactor: must be 0.0001 to 999.9999, got 0.0",
    ),
    (
        "delete-in-use",
        "DeleteSchedulingPolicy",
        {"arn": POLICY_ARN},
        "arn: scheduling policy teams is used by job queue(s) fq",
    ),
    (
        "describe-too-many",
        "DescribeSchedulingPolicies",
        {"arns": [POLICY_ARN] * 101},
        "arns: at most 100 per call, got 101",
    ),
]


@pytest.mark.parametrize(
    ("operation", "params", "message"), [r[1:] for r in POLICY_REFUSALS], ids=[r[0] for r in POLICY_REFUSALS]
)
def test_policy_refusals_name_the_field_and_change_nothing(
    fair: World, operation: str, params: dict[str, Any], message: str
) -> None:
    before = _state(fair)
    assert fair.refusal_message(operation, params) == message
    assert _state(fair) == before


# -- queues ---------------------------------------------------------------------------------------------


def test_a_fair_share_queue_shows_its_policy_and_may_swap_it(fair: World) -> None:
    (queue,) = fair.call("DescribeJobQueues", {"jobQueues": ["fq"]})["jobQueues"]
    assert queue["schedulingPolicyArn"] == POLICY_ARN
    (fifo,) = fair.call("DescribeJobQueues", {"jobQueues": ["default"]})["jobQueues"]
    assert "schedulingPolicyArn" not in fifo
    fair.call("CreateSchedulingPolicy", _policy("other"))
    fair.call("UpdateJobQueue", {"jobQueue": "fq", "schedulingPolicyArn": f"{ARN}scheduling-policy/other"})
    stored = fair.store.get_job_queue("fq")
    assert stored is not None and stored.scheduling_policy == "other"
    fair.call("UpdateJobQueue", {"jobQueue": "fq", "priority": 5})  # no policy given: it stays
    stored = fair.store.get_job_queue("fq")
    assert stored is not None and stored.scheduling_policy == "other"
    fair.call("DeleteSchedulingPolicy", {"arn": POLICY_ARN})  # no queue uses it now


def test_a_fair_share_queue_cannot_swap_to_a_missing_policy(fair: World) -> None:
    before = _state(fair)
    message = fair.refusal_message("UpdateJobQueue", {"jobQueue": "fq", "schedulingPolicyArn": "nope"})
    assert message == "schedulingPolicyArn: no scheduling policy named nope"
    assert _state(fair) == before


# -- submit rules -----------------------------------------------------------------------------------------


def test_submit_to_a_fair_share_queue_with_a_share_identifier(fair: World) -> None:
    job_id = fair.submit(jobQueue="fq", shareIdentifier="b-team", schedulingPriorityOverride=7)
    stored = fair.store.get_job(job_id)
    assert stored is not None and stored.share_identifier == "b-team"
    assert fair.describe(job_id)["shareIdentifier"] == "b-team"


SUBMIT_REFUSALS = [
    (
        "share-on-fifo",
        {"jobQueue": "default", "shareIdentifier": "a"},
        "shareIdentifier: job queue default is a FIFO queue (no scheduling policy): it takes no share identifier",
    ),
    (
        "no-share-on-fair",
        {"jobQueue": "fq"},
        "shareIdentifier: required: job queue fq is a fair-share queue (scheduling policy teams)",
    ),
    (
        "share-too-long",
        {"jobQueue": "fq", "shareIdentifier": "x" * 256},
        "shareIdentifier: at most 255 characters, got 256",
    ),
]


@pytest.mark.parametrize(("fields", "message"), [r[1:] for r in SUBMIT_REFUSALS], ids=[r[0] for r in SUBMIT_REFUSALS])
def test_share_identifier_refusals(fair: World, fields: dict[str, Any], message: str) -> None:
    before = _state(fair)
    params = {"jobName": "frame", "jobDefinition": "render", **fields}
    assert fair.refusal_message("SubmitJob", params) == message
    assert _state(fair) == before


def test_at_most_500_active_share_identifiers_per_queue(fair: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import localbatch.batch

    monkeypatch.setattr(localbatch.batch, "MAX_ACTIVE_SHARES", 3)  # the rule, without 500 submissions
    for share in ("s1", "s2", "s3"):
        fair.submit(jobQueue="fq", shareIdentifier=share)
    fair.submit(jobQueue="fq", shareIdentifier="s2")  # an active share may take more jobs
    before = _state(fair)
    message = fair.refusal_message(
        "SubmitJob", {"jobName": "x", "jobDefinition": "render", "jobQueue": "fq", "shareIdentifier": "s4"}
    )
    assert message == "shareIdentifier: job queue fq already has 3 active share identifiers, the most AWS allows"
    assert _state(fair) == before
