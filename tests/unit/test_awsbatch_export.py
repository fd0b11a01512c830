"""The export plan: AWS's requests from definitions and a config, its rules, warnings and gaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localbatch import cloud, config
from localbatch.awsbatch.export import CloudValue, Ref, build_plan
from localbatch.cloud_settings import CloudSettings
from localbatch.core.portability import RELAXED
from localbatch.errors import ConfigError, ExportError

DEFINITION: dict[str, Any] = {"name": "job", "image": "busybox", "resources": {"vcpus": 1, "memory_mib": 2048}}
FARGATE: dict[str, Any] = {
    "name": "etl",
    "image": "busybox",
    "platform_capabilities": ["FARGATE"],
    "resources": {"vcpus": 0.5, "memory_mib": 1024},
}
CONFIG = """
[[scheduling_policies]]
name = "teams"
share_decay_seconds = 3600
[[scheduling_policies.share_distribution]]
share_identifier = "ml*"
weight_factor = 0.5

[[compute_environments]]
name = "cpu"
max_vcpus = 3.5

[[compute_environments]]
name = "gpu-spot"
max_vcpus = 8
gpus = ["0"]
spot = true
spot_interrupt_after_seconds = 90

[[compute_environments]]
name = "serverless"
max_vcpus = 16

[[job_queues]]
name = "default"
compute_environments = ["cpu", "gpu-spot"]
scheduling_policy = "teams"

[[job_queues]]
name = "etl"
priority = 5
compute_environments = ["serverless"]

[aws]
region = "eu-west-1"
account_id = "123456789012"
subnets = ["subnet-1", "subnet-2"]
instance_role = "ecsInstanceRole"
execution_role_arn = "arn:aws:iam::123456789012:role/exec"

[aws.compute_environments.gpu-spot]
instance_types = ["g5"]
bid_percentage = 60

[aws.compute_environments.serverless]
type = "FARGATE"
security_group_ids = ["sg-1"]
"""


def settings(tmp_path: Path, text: str = CONFIG) -> config.Settings:
    path = tmp_path / "localbatch.toml"
    path.write_text(text)
    return config.resolve(env={"LOCALBATCH_CONFIG": str(path)}, cwd=tmp_path)


def plan_errors(*args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ExportError) as caught:
        build_plan(*args, **kwargs)
    return caught.value.problems


# -- infrastructure ------------------------------------------------------------------------
def test_the_config_becomes_aws_requests_in_creation_order(tmp_path):
    s = settings(tmp_path)
    plan = build_plan([("job.toml", DEFINITION)], s.cloud, infrastructure=s)
    assert [(o.kind, o.name) for o in plan.objects] == [
        ("scheduling_policy", "teams"),
        ("compute_environment", "cpu"),
        ("compute_environment", "gpu-spot"),
        ("compute_environment", "serverless"),
        ("job_queue", "default"),
        ("job_queue", "etl"),
        ("job_definition", "job"),
    ]
    resolved = {o.name: r for o, r in plan.resolved(lambda ref: f"<{ref.kind}:{ref.name}>")}
    assert resolved["teams"] == {
        "name": "teams",
        "fairsharePolicy": {
            "shareDecaySeconds": 3600,
            "computeReservation": 0,
            "shareDistribution": [{"shareIdentifier": "ml*", "weightFactor": 0.5}],
        },
    }
    assert resolved["cpu"] == {
        "computeEnvironmentName": "cpu",
        "type": "MANAGED",
        "state": "ENABLED",
        "computeResources": {
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 4,  # 3.5 locally: AWS takes whole vCPUs
            "subnets": ["subnet-1", "subnet-2"],
            "instanceTypes": ["optimal"],
            "instanceRole": "ecsInstanceRole",
            "allocationStrategy": "BEST_FIT_PROGRESSIVE",
        },
    }
    spot = resolved["gpu-spot"]["computeResources"]
    assert (spot["type"], spot["instanceTypes"], spot["bidPercentage"]) == ("SPOT", ["g5"], 60)
    assert spot["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert resolved["serverless"]["computeResources"] == {
        "type": "FARGATE",
        "maxvCpus": 16,
        "subnets": ["subnet-1", "subnet-2"],
        "securityGroupIds": ["sg-1"],
    }
    assert resolved["default"] == {
        "jobQueueName": "default",
        "state": "ENABLED",
        "priority": 1,
        "computeEnvironmentOrder": [
            {"order": 1, "computeEnvironment": "<compute_environment:cpu>"},
            {"order": 2, "computeEnvironment": "<compute_environment:gpu-spot>"},
        ],
        "schedulingPolicyArn": "<scheduling_policy:teams>",
    }


def test_each_cloud_only_value_is_named_once_with_where_to_set_it(tmp_path):
    s = settings(tmp_path)
    plan = build_plan([("job.toml", DEFINITION)], s.cloud, infrastructure=s)
    values = {v.key: v for v in plan.values}
    assert sorted(values) == [
        "execution_role_arn",  # [aws] gives one: every definition naming none gets it
        "gpu_spot_instance_types",
        "instance_role",
        "instance_types",
        "serverless_security_group_ids",
        "subnets",
    ]
    assert values["subnets"].value == ("subnet-1", "subnet-2") and values["subnets"].is_list
    assert values["gpu_spot_instance_types"].setting.endswith("[aws.compute_environments.gpu-spot] instance_types")
    assert plan.missing() == []


def test_what_changes_in_the_cloud_is_a_warning_and_strict_refuses_it(tmp_path):
    s = settings(tmp_path)
    plan = build_plan([("job.toml", DEFINITION)], s.cloud, infrastructure=s)
    assert len(plan.warnings) == 1 and "Spot reclaim rehearsal is not exported" in plan.warnings[0]
    errors = plan_errors([("job.toml", DEFINITION)], s.cloud, infrastructure=s, strict=True)
    assert errors == [f"{plan.warnings[0]} (--strict)"]


def test_gpus_behind_instance_types_without_any_are_a_warning(tmp_path):
    s = settings(tmp_path, CONFIG.replace('instance_types = ["g5"]', 'instance_types = ["c5", "optimal"]'))
    plan = build_plan([], s.cloud, infrastructure=s)
    assert any("has GPUs here, but c5, optimal has none in the cloud" in w for w in plan.warnings)


def test_missing_cloud_values_are_listed_with_their_users_and_nothing_resolves(tmp_path):
    s = settings(tmp_path, CONFIG.replace('subnets = ["subnet-1", "subnet-2"]', ""))
    plan = build_plan([], s.cloud, infrastructure=s)
    where = str(tmp_path / "localbatch.toml")
    assert plan.missing_problems() == [
        f"{where}: [aws] subnets (or [aws.compute_environments.NAME] subnets for one): needed (the VPC subnets "
        "the jobs run in) by compute environment 'cpu', compute environment 'gpu-spot', compute environment "
        "'serverless'"
    ]
    with pytest.raises(ExportError) as caught:
        plan.resolved(lambda ref: ref.name)
    assert caught.value.problems == plan.missing_problems()


def test_a_host_sized_environment_needs_a_cloud_maximum(tmp_path):
    s = settings(tmp_path, "[aws]\nsubnets = ['s']\ninstance_role = 'r'\n")
    errors = plan_errors([], s.cloud, infrastructure=s)
    assert errors == [
        f"{tmp_path / 'localbatch.toml'}: [aws.compute_environments.local] max_vcpus: needed: compute environment "
        "'local' is this host's (no max_vcpus in the config), and AWS Batch needs a maximum"
    ]
    s = settings(
        tmp_path, "[aws]\nsubnets = ['s']\ninstance_role = 'r'\n[aws.compute_environments.local]\nmax_vcpus = 64\n"
    )
    assert build_plan([], s.cloud, infrastructure=s).objects[0].request["computeResources"]["maxvCpus"] == 64


def test_rules_aws_enforces_on_infrastructure_are_errors(tmp_path):
    mixed = CONFIG.replace('compute_environments = ["serverless"]', 'compute_environments = ["serverless", "cpu"]')
    mixed = mixed.replace('type = "FARGATE"', 'type = "FARGATE"\ninstance_role = "r"')
    s = settings(tmp_path, mixed)
    errors = plan_errors([], s.cloud, infrastructure=s)
    where = str(tmp_path / "localbatch.toml")
    assert errors == [
        f"{where}: [aws.compute_environments.serverless] instance_role: not for a FARGATE compute environment",
        f"{where}: job queue etl: AWS Batch does not mix Fargate and EC2 compute environments in one queue: "
        "serverless (FARGATE), cpu (EC2)",
    ]


def test_a_queue_time_limit_below_awss_minimum_is_an_error(tmp_path):
    text = CONFIG.replace(
        '[[job_queues]]\nname = "etl"',
        '[[job_queues.job_state_time_limit_actions]]\nreason = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"\n'
        'max_time_seconds = 30\n\n[[job_queues]]\nname = "etl"',
    )
    s = settings(tmp_path, text)
    errors = plan_errors([], s.cloud, infrastructure=s)
    assert len(errors) == 1 and "waits 30 s; AWS requires 600 to 86400 s" in errors[0]


def test_an_aws_table_for_an_undeclared_environment_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"aws\.compute_environments\.gpu: no compute environment is named 'gpu'"):
        settings(tmp_path, "[aws.compute_environments.gpu]\nmax_vcpus = 4\n")


# -- job definitions -----------------------------------------------------------------------
def test_fractional_vcpus_on_ec2_are_rounded_up_with_a_warning():
    plan = build_plan([("job.toml", {**DEFINITION, "resources": {"vcpus": 0.5, "memory_mib": 512}})], CloudSettings())
    assert plan.warnings == (
        "job.toml: resources.vcpus: 0.5 vCPU becomes 1 in the cloud (AWS Batch on EC2 takes whole vCPUs)",
    )
    requirements = plan.objects[0].request["containerProperties"]["resourceRequirements"]
    assert requirements == [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]


def test_staging_is_left_out_with_a_warning_that_says_what_the_job_must_do():
    document = {
        **DEFINITION,
        "inputs": [{"source": "s3://inbox/data.csv", "path": "/data.csv"}],
        "s3_access": {"enabled": False},
    }
    plan = build_plan([("job.toml", document)], CloudSettings())
    assert "inputs" not in str(plan.objects[0].request) and "s3_access" not in str(plan.objects[0].request)
    assert [w.split(": ")[1] for w in plan.warnings] == ["inputs", "s3_access"]
    assert "the job's code must read these objects from S3 itself" in plan.warnings[0]


def test_what_aws_refuses_is_an_error_naming_the_file_and_key():
    short = {**DEFINITION, "timeout": {"attempt_duration_seconds": 30}}
    assert plan_errors([("job.toml", short)], CloudSettings()) == [
        f"job.toml: timeout.attempt_duration_seconds: 30 is below AWS Batch's minimum of 60 seconds; {RELAXED}"
    ]
    two = {**DEFINITION, "platform_capabilities": ["EC2", "FARGATE"], "execution_role_arn": "arn:x"}
    assert plan_errors([("two.toml", two)], CloudSettings()) == [
        "two.toml: platform_capabilities: AWS Batch takes one platform per job definition; list one for export"
    ]


def test_fargate_sizes_and_host_volumes_are_checked():
    document = {
        **FARGATE,
        "resources": {"vcpus": 3, "memory_mib": 8192},
        "execution_role_arn": "arn:aws:iam::1:role/x",
        "volumes": [{"name": "data", "host_source_path": "/data"}],
    }
    assert plan_errors([("etl.toml", document)], CloudSettings()) == [
        "etl.toml: resources: 3 vCPU with 8192 MiB is not a Fargate size "
        f"(Fargate offers vcpus 0.25, 0.5, 1, 2, 4, 8, 16, 32); {RELAXED}",
        f"etl.toml: volumes[0].host_source_path: FARGATE jobs cannot mount host paths; {RELAXED}",
    ]


def test_roles_come_from_the_aws_table_when_a_definition_names_none():
    cloud_settings = CloudSettings(where="lb.toml", execution_role_arn="arn:exec", job_role_arn="arn:job")
    fargate = {**FARGATE, "resources": {"vcpus": 0.5, "memory_mib": 1024}}
    plan = build_plan([("etl.toml", fargate), ("job.toml", {**DEFINITION, "job_role_arn": "arn:own"})], cloud_settings)
    (_, etl), (_, job) = plan.resolved(lambda ref: ref.name)
    assert etl["containerProperties"]["executionRoleArn"] == "arn:exec"
    assert etl["containerProperties"]["jobRoleArn"] == "arn:job"
    assert job["containerProperties"]["jobRoleArn"] == "arn:own"  # the definition's own wins


def test_a_fargate_definition_without_any_execution_role_says_where_to_give_one():
    plan = build_plan([("etl.toml", {**FARGATE, "resources": {"vcpus": 0.5, "memory_mib": 1024}})], CloudSettings())
    assert plan.missing_problems() == [
        "the config file: [aws] execution_role_arn (or execution_role_arn in the job definition): needed (the IAM "
        "role ECS pulls images and writes logs with; FARGATE jobs need one) by job definition 'etl'"
    ]


def test_a_request_over_24_kib_is_refused():
    big = {**DEFINITION, "environment": {f"V{i}": "x" * 200 for i in range(130)}}
    errors = plan_errors([("big.toml", big)], CloudSettings())
    assert len(errors) == 1 and "AWS Batch takes at most 24576 (24 KiB)" in errors[0]


def test_two_definitions_with_one_name_are_refused():
    errors = plan_errors([("a.toml", DEFINITION), ("b.toml", DEFINITION)], CloudSettings())
    assert errors == ["b.toml: name: 'job' is also the name of a.toml"]


# -- the JSON form -------------------------------------------------------------------------
def test_aws_json_is_one_request_for_one_definition_else_requests_by_operation(tmp_path):
    one = build_plan([("job.toml", DEFINITION)], CloudSettings())
    assert cloud.aws_json(one)["jobDefinitionName"] == "job"
    s = settings(tmp_path)
    everything = cloud.aws_json(build_plan([("job.toml", DEFINITION)], s.cloud, infrastructure=s))
    assert list(everything) == [
        "CreateSchedulingPolicy",
        "CreateComputeEnvironment",
        "CreateJobQueue",
        "RegisterJobDefinition",
    ]
    queue = everything["CreateJobQueue"][0]
    assert queue["schedulingPolicyArn"] == "arn:aws:batch:eu-west-1:123456789012:scheduling-policy/teams"


def test_aws_json_needs_account_and_region_for_a_policy_arn(tmp_path):
    s = settings(tmp_path, CONFIG.replace('account_id = "123456789012"', ""))
    plan = build_plan([], s.cloud, infrastructure=s)
    with pytest.raises(ExportError, match="needed to write the ARN of scheduling policy 'teams'"):
        cloud.aws_json(plan)


def test_leaves_are_values_and_references():
    value = CloudValue("subnets", "d", "[aws] subnets", ("s",), is_list=True)
    plan = build_plan([("job.toml", DEFINITION)], CloudSettings())
    assert plan.users(value) == [] and plan.users(Ref("job_queue", "q")) == []


def test_consumable_resources_are_exported_by_name_with_a_warning_that_they_must_exist():
    plan = build_plan([("job.toml", {**DEFINITION, "consumable_resources": {"licences": 2}})], CloudSettings())
    assert plan.objects[0].request["consumableResourceProperties"] == {
        "consumableResourceList": [{"consumableResource": "licences", "quantity": 2}]
    }
    assert plan.warnings == (
        "job.toml: consumable_resources.licences: exported by name; the consumable resource licences must exist "
        "in the account (aws batch create-consumable-resource), which export does not create",
    )
