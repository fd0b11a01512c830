"""``localbatch deploy`` and ``localbatch diff`` against moto's AWS Batch over real HTTP on
127.0.0.1 (no AWS is reachable here). moto needs the VPC, IAM role and instance profile the
``[aws]`` table names, so each test creates them first. Deploying runs no job: no Docker."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from localbatch.cli import app
from tests.integration.s3 import running_moto

REGION = "us-east-1"
HELLO = """\
name = "hello"
image = "busybox:1.36"
command = ["echo", "Ref::greeting"]
[resources]
vcpus = 1
memory_mib = 128
[parameters]
greeting = "hi"
[retry]
attempts = 2
[[retry.evaluate_on_exit]]
on_exit_code = "3"
action = "exit"
[tags]
team = "a"
"""
WORDS = """\
name = "words"
image = "busybox:1.36"
command = ["wc", "-w"]
[resources]
vcpus = 2
memory_mib = 256
[timeout]
attempt_duration_seconds = 120
"""


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with running_moto() as url:
        yield url


@dataclass
class Cloud:
    url: str
    subnet: str
    group: str
    service_role: str
    tmp: Path

    def batch(self) -> Any:
        return boto3.client("batch", endpoint_url=self.url, region_name=REGION)

    def config(
        self, *, instance_role: str = "ecsInstanceRole", subnets: bool = True, max_vcpus: int = 4, priority: int = 5
    ) -> Path:
        aws = [f'service_role = "{self.service_role}"', f'instance_role = "{instance_role}"']
        if subnets:
            aws += [f'subnets = ["{self.subnet}"]', f'security_group_ids = ["{self.group}"]']
        text = f"""\
[[compute_environments]]
name = "cpu"
max_vcpus = {max_vcpus}

[[job_queues]]
name = "jobs"
priority = {priority}
compute_environments = ["cpu"]
scheduling_policy = "teams"

[[scheduling_policies]]
name = "teams"
share_decay_seconds = 3600
[[scheduling_policies.share_distribution]]
share_identifier = "ml"
weight_factor = 0.5

[aws]
{chr(10).join(aws)}
"""
        path = self.tmp / "localbatch-cloud.toml"
        path.write_text(text)
        return path


@pytest.fixture
def cloud(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
        answer.read()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "lb-test",
        "AWS_SECRET_ACCESS_KEY": "lb-test-secret",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BATCH"):
        monkeypatch.delenv(key, raising=False)
    ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name=REGION)
    iam = boto3.client("iam", endpoint_url=moto_url, region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
    role = iam.create_role(RoleName="AWSBatchServiceRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobdefs").mkdir()
    (tmp_path / "jobdefs" / "hello.toml").write_text(HELLO)
    (tmp_path / "jobdefs" / "words.toml").write_text(WORDS)
    return Cloud(moto_url, subnet, group, role, tmp_path)


def localbatch(cloud: Cloud, *args: str) -> Any:
    env = {"LOCALBATCH_HOME": str(cloud.tmp / "home"), "LOCALBATCH_CONFIG": "", "COLUMNS": "200"}
    return CliRunner().invoke(app, [*args, "--endpoint-url", cloud.url], env=env)


def revisions(cloud: Cloud, name: str) -> list[int]:
    found = cloud.batch().describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    return sorted(d["revision"] for d in found)


def test_deploy_creates_everything_with_the_right_values(cloud: Cloud) -> None:
    result = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config()))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "scheduling policy teams: created",
        "compute environment cpu: created",
        "job queue jobs: created",
        "job definition hello: registered revision 1",
        "job definition words: registered revision 1",
    ]
    batch = cloud.batch()
    (environment,) = batch.describe_compute_environments(computeEnvironments=["cpu"])["computeEnvironments"]
    resources = environment["computeResources"]
    assert (resources["type"], resources["minvCpus"], resources["maxvCpus"]) == ("EC2", 0, 4)
    assert resources["subnets"] == [cloud.subnet] and resources["securityGroupIds"] == [cloud.group]
    assert resources["instanceRole"] == "ecsInstanceRole" and environment["serviceRole"] == cloud.service_role
    policy_arn = batch.list_scheduling_policies()["schedulingPolicies"][0]["arn"]
    (policy,) = batch.describe_scheduling_policies(arns=[policy_arn])["schedulingPolicies"]
    assert policy["fairsharePolicy"]["shareDistribution"] == [{"shareIdentifier": "ml", "weightFactor": 0.5}]
    (queue,) = batch.describe_job_queues(jobQueues=["jobs"])["jobQueues"]
    assert queue["priority"] == 5 and queue["schedulingPolicyArn"] == policy_arn
    assert queue["computeEnvironmentOrder"] == [
        {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
    ]
    (hello,) = batch.describe_job_definitions(jobDefinitionName="hello", status="ACTIVE")["jobDefinitions"]
    assert hello["containerProperties"]["command"] == ["echo", "Ref::greeting"]
    assert hello["parameters"] == {"greeting": "hi"} and hello["tags"] == {"team": "a"}


def test_a_second_deploy_changes_nothing_and_a_changed_definition_gets_one_revision(cloud: Cloud) -> None:
    config = str(cloud.config())
    assert localbatch(cloud, "deploy", "jobdefs", "--config", config).exit_code == 0
    again = localbatch(cloud, "deploy", "jobdefs", "--config", config, "--json")
    assert again.exit_code == 0, again.output
    outcomes = json.loads(again.stdout)
    assert [o["action"] for o in outcomes] == ["unchanged"] * 5
    assert revisions(cloud, "hello") == [1] and revisions(cloud, "words") == [1]

    (cloud.tmp / "jobdefs" / "words.toml").write_text(WORDS.replace("vcpus = 2", "vcpus = 4"))
    changed = localbatch(cloud, "deploy", "jobdefs")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.splitlines() == [
        "job definition hello: unchanged (revision 1)",
        "job definition words: registered revision 2",
    ]
    assert revisions(cloud, "hello") == [1] and revisions(cloud, "words") == [1, 2]


def test_an_infrastructure_change_is_an_update(cloud: Cloud) -> None:
    assert localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config())).exit_code == 0
    updated = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config(priority=9)))
    assert updated.exit_code == 0, updated.output
    assert "job queue jobs: updated (priority)" in updated.stdout.splitlines()
    assert cloud.batch().describe_job_queues(jobQueues=["jobs"])["jobQueues"][0]["priority"] == 9
    result = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config(max_vcpus=8)), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "compute environment cpu: would update (computeResources.maxvCpus)" in result.stdout


def test_dry_run_changes_nothing(cloud: Cloud) -> None:
    result = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config()), "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "scheduling policy teams: would create",
        "compute environment cpu: would create",
        "job queue jobs: would create",
        "job definition hello: would register revision 1",
        "job definition words: would register revision 1",
    ]
    batch = cloud.batch()
    assert batch.describe_compute_environments()["computeEnvironments"] == []
    assert batch.describe_job_queues()["jobQueues"] == []
    assert batch.list_scheduling_policies()["schedulingPolicies"] == []
    assert revisions(cloud, "hello") == []


def test_a_missing_cloud_only_value_refuses_before_any_aws_call(cloud: Cloud) -> None:
    result = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config(subnets=False)))
    assert result.exit_code == 2
    assert "[aws] subnets" in result.stderr and "compute environment 'cpu'" in result.stderr
    batch = cloud.batch()
    assert batch.list_scheduling_policies()["schedulingPolicies"] == []
    assert batch.describe_compute_environments()["computeEnvironments"] == []


def test_an_aws_error_stops_the_deploy_after_reporting_what_was_done(cloud: Cloud) -> None:
    result = localbatch(cloud, "deploy", "jobdefs", "--config", str(cloud.config(instance_role="noSuchProfile")))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["scheduling policy teams: created"]
    assert "CreateComputeEnvironment" in result.stderr and "InvalidParameterValue" in result.stderr
    assert "compute environment cpu" in result.stderr and "1 of 5 done" in result.stderr
    batch = cloud.batch()
    assert batch.describe_job_queues()["jobQueues"] == []
    assert revisions(cloud, "hello") == [] and revisions(cloud, "words") == []


def test_diff_says_same_different_or_not_registered(cloud: Cloud) -> None:
    assert localbatch(cloud, "deploy", "jobdefs/hello.toml").exit_code == 0
    same = localbatch(cloud, "diff", "jobdefs/hello.toml", "--target", "aws")
    assert same.exit_code == 0, same.output
    assert same.stdout.strip() == "job definition hello: same as revision 1"

    (cloud.tmp / "jobdefs" / "hello.toml").write_text(HELLO.replace('greeting = "hi"', 'greeting = "hello"'))
    result = localbatch(cloud, "diff", "jobdefs", "--target", "aws")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "--- aws hello:1" in lines and "+++ jobdefs/hello.toml" in lines
    assert '-    "greeting": "hi"' in lines and '+    "greeting": "hello"' in lines
    assert all(not line.startswith(("-", "+")) or "greeting" in line or line[:3] in ("---", "+++") for line in lines)
    assert "job definition words: not registered" in lines


def test_diff_only_knows_aws(cloud: Cloud) -> None:
    result = localbatch(cloud, "diff", "jobdefs", "--target", "gcp")
    assert result.exit_code == 2 and "--target: 'gcp' is not supported; allowed: aws" in result.stderr
