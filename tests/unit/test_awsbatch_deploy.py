"""awsbatch.deploy without AWS: what counts as a change, and the walk over a plan (order,
references, waiting, stopping at the first error) with a scripted client."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch import jobdef
from localbatch.awsbatch.deploy import (
    Waiting,
    definition_changed,
    definition_diff,
    deploy,
    environment_update,
    policy_update,
    queue_update,
)
from localbatch.awsbatch.export import CloudObject, CloudPlan, CloudValue, Ref
from localbatch.awsbatch.jobdefinition import to_register_request
from localbatch.errors import CloudError, ExportError

HELLO = 'name = "hello"\nimage = "busybox"\ncommand = ["echo", "hi"]\n[resources]\nvcpus = 1\nmemory_mib = 128\n'
ARN = "arn:aws:batch:us-east-1:123456789012"


def hello_request(text: str = HELLO) -> dict[str, Any]:
    return to_register_request(jobdef.loads(text, "hello.toml"))


def described(request: dict[str, Any], revision: int = 1) -> dict[str, Any]:
    """What AWS answers for a registered request: its own members and defaults added."""
    entry = {**request, "revision": revision, "status": "ACTIVE", "jobDefinitionArn": f"{ARN}:job-definition/x"}
    container = {**entry["containerProperties"], "volumes": [], "mountPoints": [], "environment": [], "secrets": []}
    return {**entry, "containerProperties": container, "parameters": {}, "tags": {}, "platformCapabilities": None}


# -- what counts as a change ---------------------------------------------------------------
def test_a_definition_with_aws_defaults_added_is_unchanged() -> None:
    assert not definition_changed(hello_request(), described(hello_request()))


def test_a_definition_that_means_something_else_is_changed() -> None:
    changed = hello_request(HELLO.replace("vcpus = 1", "vcpus = 2"))
    assert definition_changed(changed, described(hello_request()))
    tagged = hello_request(HELLO + '[tags]\nteam = "a"\n')
    assert definition_changed(tagged, described(hello_request()))


def test_a_definition_localbatch_cannot_read_counts_as_changed() -> None:
    eks = {"jobDefinitionName": "hello", "type": "container", "eksProperties": {"podProperties": {}}}
    assert definition_changed(hello_request(), eks)


def test_the_diff_shows_only_what_differs() -> None:
    changed = hello_request(HELLO.replace('"hi"', '"bye"'))
    lines = definition_diff(changed, described(hello_request()), "hello.toml")
    assert lines[:2] == ["--- aws hello:1", "+++ hello.toml"]
    assert [line for line in lines[2:] if line[:1] in "+-" and not line.startswith("@@")] == [
        '-      "hi"',
        '+      "bye"',
    ]
    assert definition_diff(hello_request(), described(hello_request()), "hello.toml") == []


def test_a_policy_in_another_share_order_is_unchanged() -> None:
    shares = [{"shareIdentifier": "a", "weightFactor": 1}, {"shareIdentifier": "b", "weightFactor": 0.5}]
    wanted = {
        "name": "p",
        "fairsharePolicy": {"shareDecaySeconds": 0, "computeReservation": 0, "shareDistribution": shares},
    }
    found = {"arn": "p-arn", "fairsharePolicy": {"shareDistribution": shares[::-1]}}
    assert policy_update(wanted, found).body is None
    found["fairsharePolicy"]["shareDecaySeconds"] = 60
    update = policy_update(wanted, found)
    assert update.body == {"arn": "p-arn", "fairsharePolicy": wanted["fairsharePolicy"]}


ENVIRONMENT = {
    "computeEnvironmentName": "cpu",
    "type": "MANAGED",
    "state": "ENABLED",
    "serviceRole": "AWSBatchServiceRole",
    "computeResources": {
        "type": "EC2",
        "minvCpus": 0,
        "maxvCpus": 4,
        "subnets": ["subnet-a", "subnet-b"],
        "instanceTypes": ["optimal"],
        "instanceRole": "ecsInstanceRole",
        "allocationStrategy": "BEST_FIT_PROGRESSIVE",
    },
}


def aws_environment(**resources: Any) -> dict[str, Any]:
    """As AWS describes ENVIRONMENT: ARNs for roles, lists in its order, members it adds."""
    found = {
        **ENVIRONMENT,
        "computeEnvironmentArn": f"{ARN}:compute-environment/cpu",
        "serviceRole": "arn:aws:iam::123456789012:role/AWSBatchServiceRole",
        "status": "VALID",
    }
    found["computeResources"] = {
        **ENVIRONMENT["computeResources"],
        "subnets": ["subnet-b", "subnet-a"],
        "instanceRole": "arn:aws:iam::123456789012:instance-profile/ecsInstanceRole",
        "desiredvCpus": 2,
        "securityGroupIds": ["sg-default"],
        **resources,
    }
    return found


def test_an_environment_as_aws_describes_it_is_unchanged() -> None:
    assert environment_update(ENVIRONMENT, aws_environment()).body is None


def test_an_environment_update_sends_only_what_differs() -> None:
    update = environment_update({**ENVIRONMENT, "state": "DISABLED"}, aws_environment(maxvCpus=8, subnets=["x"]))
    assert update.changes == ("state", "computeResources.maxvCpus", "computeResources.subnets")
    assert update.body == {
        "computeEnvironment": f"{ARN}:compute-environment/cpu",
        "state": "DISABLED",
        "computeResources": {"maxvCpus": 4, "subnets": ["subnet-a", "subnet-b"]},
    }


def test_what_aws_cannot_update_in_place_is_a_note() -> None:
    wanted = {**ENVIRONMENT, "computeResources": {**ENVIRONMENT["computeResources"], "spotIamFleetRole": "r"}}
    update = environment_update(wanted, aws_environment())
    assert update.body is None and "spotIamFleetRole" in update.notes[0]


QUEUE = {
    "jobQueueName": "jobs",
    "state": "ENABLED",
    "priority": 5,
    "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": f"{ARN}:compute-environment/cpu"}],
}


def test_a_queue_update_names_what_differs() -> None:
    found = {**QUEUE, "jobQueueArn": f"{ARN}:job-queue/jobs", "status": "VALID"}
    assert queue_update(QUEUE, found).body is None
    wanted = {
        **QUEUE,
        "priority": 9,
        "schedulingPolicyArn": "p-arn",
        "jobStateTimeLimitActions": [
            {"reason": "r", "state": "RUNNABLE", "maxTimeSeconds": 600, "action": "CANCEL"},
        ],
    }
    update = queue_update(wanted, found)
    assert update.changes == ("priority", "schedulingPolicyArn", "jobStateTimeLimitActions")
    assert update.body is not None and update.body["jobQueue"] == f"{ARN}:job-queue/jobs"
    assert "computeEnvironmentOrder" not in update.body


# -- the walk ------------------------------------------------------------------------------
class Batch:
    """A scripted AWS Batch: remembers every call, answers from what it holds."""

    def __init__(self, statuses: list[str] | None = None, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.environments: dict[str, dict[str, Any]] = {}
        self.statuses = statuses or []  # what successive describes of a new environment say
        self.refuse = refuse

    def _record(self, operation: str, body: dict[str, Any]) -> None:
        self.calls.append((operation, body))
        if operation == self.refuse:
            raise CloudError("ClientException", "refused", operation)

    def list_scheduling_policies(self, **body: Any) -> dict[str, Any]:
        self._record("ListSchedulingPolicies", body)
        return {"schedulingPolicies": []}

    def describe_compute_environments(self, **body: Any) -> dict[str, Any]:
        self._record("DescribeComputeEnvironments", body)
        found = [dict(e) for e in self.environments.values()]
        for entry in found:
            entry["status"] = self.statuses.pop(0) if self.statuses else "VALID"
            entry["statusReason"] = "no subnet"
        return {"computeEnvironments": found}

    def create_compute_environment(self, **body: Any) -> dict[str, Any]:
        self._record("CreateComputeEnvironment", body)
        arn = f"{ARN}:compute-environment/{body['computeEnvironmentName']}"
        self.environments[arn] = {**body, "computeEnvironmentArn": arn, "state": "ENABLED"}
        return {"computeEnvironmentArn": arn}

    def update_compute_environment(self, **body: Any) -> dict[str, Any]:
        self._record("UpdateComputeEnvironment", body)
        return {}

    def describe_job_queues(self, **body: Any) -> dict[str, Any]:
        self._record("DescribeJobQueues", body)
        return {"jobQueues": [{**b, "status": "VALID"} for op, b in self.calls if op == "CreateJobQueue"]}

    def create_job_queue(self, **body: Any) -> dict[str, Any]:
        self._record("CreateJobQueue", body)
        return {"jobQueueArn": f"{ARN}:job-queue/{body['jobQueueName']}"}


def plan() -> CloudPlan:
    subnets = CloudValue("subnets", "subnets", "[aws] subnets", ("subnet-a",), is_list=True)
    environment = {"computeEnvironmentName": "cpu", "type": "MANAGED", "computeResources": {"subnets": subnets}}
    queue = {
        "jobQueueName": "jobs",
        "state": "ENABLED",
        "priority": 1,
        "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": Ref("compute_environment", "cpu")}],
    }
    return CloudPlan(
        (
            CloudObject("compute_environment", "cpu", "config", environment),
            CloudObject("job_queue", "jobs", "config", queue),
        )
    )


NO_WAIT = Waiting(tries=5, interval_s=0, sleep=lambda s: None)


def test_objects_go_in_order_with_references_as_the_arns_aws_answered() -> None:
    batch = Batch(statuses=["CREATING", "CREATING", "VALID"])
    outcomes = deploy(batch, plan(), waiting=NO_WAIT)
    assert [o.line() for o in outcomes] == ["compute environment cpu: created", "job queue jobs: created"]
    (queue,) = [body for op, body in batch.calls if op == "CreateJobQueue"]
    assert queue["computeEnvironmentOrder"] == [{"order": 1, "computeEnvironment": f"{ARN}:compute-environment/cpu"}]
    (environment,) = [body for op, body in batch.calls if op == "CreateComputeEnvironment"]
    assert environment["computeResources"]["subnets"] == ["subnet-a"]
    describes = [op for op, _ in batch.calls if op == "DescribeComputeEnvironments"]
    assert len(describes) == 1 + 3  # the lookup, then until VALID


def test_an_invalid_environment_stops_the_deploy_with_aws_reason() -> None:
    batch = Batch(statuses=["CREATING", "INVALID"])
    with pytest.raises(CloudError) as caught:
        deploy(batch, plan(), waiting=NO_WAIT)
    assert caught.value.code == "INVALID" and "compute environment cpu" in str(caught.value)
    assert "no subnet" in str(caught.value)
    assert not any(op.endswith("JobQueues") or op == "CreateJobQueue" for op, _ in batch.calls)


def test_waiting_is_bounded() -> None:
    batch = Batch(statuses=["CREATING"] * 10)
    with pytest.raises(CloudError) as caught:
        deploy(batch, plan(), waiting=NO_WAIT)
    assert caught.value.code == "Timeout"
    assert len([op for op, _ in batch.calls if op == "DescribeComputeEnvironments"]) == 1 + 5


def test_the_first_refusal_stops_everything_after_it() -> None:
    batch = Batch(refuse="CreateComputeEnvironment")
    seen: list[str] = []
    with pytest.raises(CloudError) as caught:
        deploy(batch, plan(), waiting=NO_WAIT, report=lambda o: seen.append(o.line()))
    assert caught.value.operation == "CreateComputeEnvironment" and seen == []
    assert [op for op, _ in batch.calls] == ["DescribeComputeEnvironments", "CreateComputeEnvironment"]


def test_a_dry_run_only_reads() -> None:
    batch = Batch()
    outcomes = deploy(batch, plan(), dry_run=True, waiting=NO_WAIT)
    assert [o.action for o in outcomes] == ["would create", "would create"]
    assert {op for op, _ in batch.calls} == {"DescribeComputeEnvironments", "DescribeJobQueues"}


def test_a_missing_value_refuses_before_any_call() -> None:
    missing = CloudValue("subnets", "subnets", "[aws] subnets")
    objects = (CloudObject("compute_environment", "cpu", "config", {"computeResources": {"subnets": missing}}),)
    batch = Batch()
    with pytest.raises(ExportError):
        deploy(batch, CloudPlan(objects), waiting=NO_WAIT)
    assert batch.calls == []


def test_tags_the_plan_gives_are_set_and_others_left_alone() -> None:
    found = {**QUEUE, "jobQueueArn": f"{ARN}:job-queue/jobs", "tags": {"team": "a", "owner": "ops"}}
    assert not queue_update({**QUEUE, "tags": {"team": "a"}}, found).needed
    update = queue_update({**QUEUE, "tags": {"team": "b", "cost": "x"}}, found)
    assert update.changes == ("tags",) and update.body is None and update.tags == {"team": "b", "cost": "x"}


def test_an_update_is_waited_for_with_fresh_describes() -> None:
    batch = Batch(statuses=["VALID", "UPDATING", "VALID"])
    arn = f"{ARN}:compute-environment/cpu"
    old = {"subnets": ["subnet-old"]}
    batch.environments[arn] = {"computeEnvironmentName": "cpu", "computeEnvironmentArn": arn, "computeResources": old}
    (outcome,) = deploy(batch, CloudPlan(plan().objects[:1]), waiting=NO_WAIT)
    assert outcome.line() == "compute environment cpu: updated (computeResources.subnets)"
    assert [op for op, _ in batch.calls] == [
        "DescribeComputeEnvironments",
        "UpdateComputeEnvironment",
        "DescribeComputeEnvironments",
        "DescribeComputeEnvironments",
    ]
