"""Job definitions as AWS's RegisterJobDefinition requests, both ways, checked by botocore's model."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch.jobdefinition import (
    LOCAL_MEMBER,
    container_properties,
    document_from_request,
    from_register_request,
    request_from_document,
    to_register_request,
)
from localbatch.core.definition import JobDefinition
from localbatch.core.portability import RELAXED, definition_problems
from localbatch.errors import JobDefinitionError, Problem
from tests.strategies import FULL_TOML, aws_requests, job_definitions, local_settings_dropped, without_local

SINGLE = "localbatch runs jobs described by containerProperties (or nodeProperties for type multinode)"

FULL_REQUEST: dict[str, Any] = {
    "jobDefinitionName": "render",
    "type": "container",
    "parameters": {"greeting": "hello"},
    "schedulingPriority": 10,
    "containerProperties": {
        "image": "busybox:1.36",
        "command": ["sh", "-c", "echo Ref::greeting"],
        "volumes": [{"name": "scratch", "host": {"sourcePath": "/tmp/scratch"}}, {"name": "cache"}],
        "environment": [{"name": "STAGE", "value": "dev"}, {"name": "MY VAR", "value": "x y"}],
        "mountPoints": [
            {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False},
            {"sourceVolume": "cache", "containerPath": "/cache", "readOnly": True},
        ],
        "readonlyRootFilesystem": True,
        "privileged": True,
        "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
        "user": "1000:1000",
        "resourceRequirements": [
            {"type": "VCPU", "value": "2"},
            {"type": "MEMORY", "value": "4096"},
            {"type": "GPU", "value": "1"},
        ],
        "linuxParameters": {
            "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["READ", "WRITE"]}],
            "initProcessEnabled": True,
            "sharedMemorySize": 64,
            "maxSwap": 1024,
            "swappiness": 10,
            "tmpfs": [{"containerPath": "/run/scratch", "size": 128, "mountOptions": ["rw", "noexec"]}],
        },
        "jobRoleArn": "arn:aws:iam::123456789012:role/render-job",
        "executionRoleArn": "arn:aws:iam::123456789012:role/render-exec",
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/aws/batch/render"}},
        "networkConfiguration": {"assignPublicIp": "ENABLED"},
        "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        "ephemeralStorage": {"sizeInGiB": 50},
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
    },
    "retryStrategy": {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "onExitCode": "137", "action": "EXIT"},
        ],
    },
    "propagateTags": True,
    "timeout": {"attemptDurationSeconds": 600},
    "tags": {"team": "graphics"},
    "platformCapabilities": ["EC2"],
}
MINIMAL_REQUEST: dict[str, Any] = {
    "jobDefinitionName": "hello",
    "type": "container",
    "containerProperties": {
        "image": "busybox:1.36",
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
    },
}


def definition(**changes: Any) -> JobDefinition:
    doc: dict[str, Any] = {"name": "job", "image": "busybox", "resources": {"vcpus": 1, "memory_mib": 2048}}
    doc.update(changes)
    return jobdef.parse_document(doc, "job.toml")


def request(**container_changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(MINIMAL_REQUEST)
    body["containerProperties"].update(container_changes)
    return body


def import_problems(body: dict[str, Any]) -> list[str]:
    with pytest.raises(JobDefinitionError) as caught:
        from_register_request(body, "def.json")
    assert caught.value.source == "def.json"
    return [str(p) for p in caught.value.problems]


# -- export ----------------------------------------------------------------------------------
def test_full_definition_gives_the_golden_request_without_aws_defaults() -> None:
    expected = copy.deepcopy(FULL_REQUEST)
    del expected["platformCapabilities"]  # EC2: the default, which a definition does not repeat
    del expected["containerProperties"]["mountPoints"][0]["readOnly"]  # False: the default
    assert to_register_request(jobdef.loads(FULL_TOML, "full.toml")) == expected


def test_the_golden_request_comes_back_exactly_through_its_document() -> None:
    document = document_from_request(FULL_REQUEST, "def.json")
    assert document["platform_capabilities"] == ["EC2"]  # written, as the request has it
    assert document["mount_points"][0]["read_only"] is False
    assert request_from_document(document) == FULL_REQUEST


def test_golden_request_passes_botocores_validator() -> None:
    assert model.validate_request("RegisterJobDefinition", FULL_REQUEST) == []


def test_minimal_definition_gives_a_minimal_request() -> None:
    d = jobdef.parse_document(
        {"name": "hello", "image": "busybox:1.36", "resources": {"vcpus": 1, "memory_mib": 512}}, "x"
    )
    assert to_register_request(d) == MINIMAL_REQUEST


def test_staging_is_not_part_of_the_request() -> None:
    d = definition(
        inputs=[{"source": "s3://bucket/in.csv", "path": "/in.csv"}],
        outputs=[{"path": "/out", "destination": "s3://bucket/out/"}],
    )
    body = to_register_request(d)
    assert "inputs" not in str(body) and "s3://" not in str(body)
    assert from_register_request(body, "x") == local_settings_dropped(d)


def test_the_local_member_carries_staging_and_names_its_problems() -> None:
    d = definition(
        inputs=[{"source": "s3://bucket/in.csv", "path": "/in.csv"}],
        outputs=[{"path": "/out/", "destination": "s3://bucket/${AWS_BATCH_JOB_ID}/", "on_failure": True}],
    )
    body = to_register_request(d, local=True)
    assert body[LOCAL_MEMBER] == {
        "inputs": [{"source": "s3://bucket/in.csv", "path": "/in.csv"}],
        "outputs": [{"path": "/out/", "destination": "s3://bucket/${AWS_BATCH_JOB_ID}/", "on_failure": True}],
    }
    assert from_register_request(body, "x") == d
    body[LOCAL_MEMBER]["inputs"][0]["path"] = "relative"
    with pytest.raises(JobDefinitionError) as caught:
        from_register_request(body, "x")
    assert [p.path for p in caught.value.problems] == ["localbatch.inputs[0].path"]
    with pytest.raises(JobDefinitionError, match="localbatch: expected a JSON object"):
        from_register_request({**body, LOCAL_MEMBER: [1]}, "x")


def test_fractional_vcpus_and_zero_gpus_are_written_as_aws_wants_them() -> None:
    d = definition(platform_capabilities=["FARGATE"], resources={"vcpus": 0.25, "memory_mib": 512, "gpus": 0})
    assert container_properties(d.container)["resourceRequirements"] == [
        {"type": "VCPU", "value": "0.25"},
        {"type": "MEMORY", "value": "512"},
    ]


def test_fargate_rules_are_definition_problems() -> None:
    d = definition(
        platform_capabilities=["FARGATE"],
        resources={"vcpus": 1, "memory_mib": 1024},
        privileged=True,
        log_configuration={"log_driver": "json-file"},
    )
    assert definition_problems(d) == [
        Problem("execution_role_arn", f"AWS Batch requires an execution role for FARGATE jobs; {RELAXED}"),
        Problem(
            "resources",
            "1 vCPU with 1024 MiB is not a Fargate size (with vcpus = 1 Fargate offers memory_mib "
            f"2048, 3072, 4096, 5120, 6144, 7168, 8192); {RELAXED}",
        ),
        Problem("log_configuration.log_driver", 'FARGATE jobs may only use "awslogs" or "splunk", got "json-file"'),
        Problem("privileged", f"AWS Batch does not allow privileged FARGATE jobs; {RELAXED}"),
    ]


# -- import ----------------------------------------------------------------------------------
def test_golden_request_comes_back_as_the_definition() -> None:
    full = jobdef.loads(FULL_TOML, "full.toml")
    assert from_register_request(FULL_REQUEST, "def.json") == local_settings_dropped(full)


def test_describe_job_definitions_entry_is_accepted() -> None:
    described = {
        "jobDefinitionName": "hello",
        "jobDefinitionArn": "arn:aws:batch:us-east-1:123456789012:job-definition/hello:3",
        "revision": 3,
        "status": "ACTIVE",
        "type": "container",
        "parameters": {},
        "containerProperties": {
            "image": "busybox:1.36",
            "command": [],
            "volumes": [{"name": "tmp", "host": {"sourcePath": ""}}],
            "environment": [],
            "mountPoints": [],
            "ulimits": [],
            "secrets": [],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
            "linuxParameters": {"devices": [], "tmpfs": []},
            "enableExecuteCommand": False,
        },
        "tags": {},
        "propagateTags": False,
        "platformCapabilities": [],
        "containerOrchestrationType": "ECS",
    }
    d = from_register_request(described, "describe.json")
    assert d.name == "hello"
    assert d.container.volumes[0].host_source_path is None  # empty sourcePath: a Docker-managed volume
    assert (
        d.platform_capabilities
        == jobdef.parse_document(
            {"name": "x", "image": "i", "resources": {"vcpus": 1, "memory_mib": 4}}, "x"
        ).platform_capabilities
    )


def test_legacy_vcpus_and_memory_are_accepted() -> None:
    body = request(vcpus=2, memory=1024, resourceRequirements=[{"type": "GPU", "value": "1"}])
    resources = from_register_request(body, "def.json").container.resources
    assert (resources.vcpus, resources.memory_mib, resources.gpus) == (2.0, 1024, 1)


def test_legacy_fields_that_agree_with_resource_requirements_are_accepted() -> None:
    assert from_register_request(request(vcpus=1, memory=512), "x").container.resources.memory_mib == 512


def test_legacy_fields_that_contradict_resource_requirements_are_refused() -> None:
    assert import_problems(request(memory=1024)) == [
        "containerProperties.memory: 1024 contradicts the MEMORY resource requirement (512); give one"
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"nodeProperties": {"numNodes": 2, "mainNode": 0, "nodeRangeProperties": []}},
            "nodeProperties: only for type \"multinode\", got type 'container'",
        ),
        (
            {"ecsProperties": {"taskProperties": [{"containers": []}]}},
            f"ecsProperties: not supported; {SINGLE}",
        ),
        (
            {"eksProperties": {"podProperties": {}}},
            f"eksProperties: not supported; {SINGLE}",
        ),
    ],
)
def test_unsupported_job_kinds_are_refused_with_their_path(changes: dict[str, Any], expected: str) -> None:
    assert import_problems({**MINIMAL_REQUEST, **changes}) == [expected]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"secrets": [{"name": "TOKEN", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/t"}]},
            "containerProperties.secrets: not supported: localbatch cannot read Secrets Manager or SSM; "
            "pass values in environment",
        ),
        (
            {"repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:1:secret:x"}},
            "containerProperties.repositoryCredentials: not supported: "
            "localbatch pulls with the Docker engine's credentials",
        ),
        (
            {"enableExecuteCommand": True},
            "containerProperties.enableExecuteCommand: not supported: ECS Exec has no local equivalent "
            "(use docker exec)",
        ),
        (
            {"instanceType": "p3.2xlarge"},
            "containerProperties.instanceType: not supported: instanceType applies to multi-node parallel jobs only",
        ),
        (
            {"volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]},
            "containerProperties.volumes[0].efsVolumeConfiguration: not supported: "
            "localbatch mounts host paths only (host.sourcePath)",
        ),
        (
            {
                "logConfiguration": {
                    "logDriver": "splunk",
                    "secretOptions": [{"name": "t", "valueFrom": "arn:x"}],
                }
            },
            "containerProperties.logConfiguration.secretOptions: not supported: secrets are AWS-only",
        ),
    ],
)
def test_unsupported_container_parts_are_refused_with_their_path(changes: dict[str, Any], expected: str) -> None:
    assert import_problems(request(**changes)) == [expected]


def test_missing_container_properties() -> None:
    body = {"jobDefinitionName": "x", "type": "container"}
    assert import_problems(body) == [f"containerProperties: required; {SINGLE}"]


def test_botocore_problems_come_first_with_camel_case_paths() -> None:
    body = request(imag="busybox", privileged="yes", ulimits=[{"name": "nofile", "softLimit": 1}])
    body["jobDefinitionName"] = 7
    del body["type"]
    assert import_problems(body) == [
        "type: required by AWS Batch, but missing",
        "jobDefinitionName: expected a string, got an integer 7",
        "containerProperties.imag: unknown key 'imag'; allowed: image, vcpus, memory, command, "
        "jobRoleArn, executionRoleArn, volumes, environment, mountPoints, readonlyRootFilesystem, "
        "privileged, ulimits, user, instanceType, resourceRequirements, linuxParameters, "
        "logConfiguration, secrets, networkConfiguration, fargatePlatformConfiguration, "
        "enableExecuteCommand, ephemeralStorage, runtimePlatform, repositoryCredentials; "
        "did you mean 'image'?",
        "containerProperties.privileged: expected true or false, got a string 'yes'",
        "containerProperties.ulimits[0].hardLimit: required by AWS Batch, but missing",
    ]


def test_toml_rules_apply_and_name_the_camel_case_path() -> None:
    body = request(
        environment=[{"name": "AWS_BATCH_JOB_ID", "value": "x"}, {"name": "OK", "value": "1"}],
        resourceRequirements=[{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2"}],
        linuxParameters={"swappiness": 101, "devices": [{"hostPath": "dev/fuse"}]},
        volumes=[{"name": "bad name"}],
    )
    body["retryStrategy"] = {"attempts": 11, "evaluateOnExit": [{"action": "retry", "onExitCode": "x"}]}
    body["timeout"] = {"attemptDurationSeconds": 0}
    assert import_problems(body) == [
        "containerProperties.resourceRequirements[1].value: must be at least 4, got 2",
        "containerProperties.environment[0]: names starting with AWS_BATCH are reserved for the "
        "variables AWS Batch sets",
        "retryStrategy.attempts: must be between 1 and 10, got 11",
        'retryStrategy.evaluateOnExit[0].onExitCode: "x" is not a valid pattern; '
        'use digits, optionally ending with \'*\' ("13*"), or just "*"',
        "timeout.attemptDurationSeconds: must be at least 1, got 0",
        "containerProperties.linuxParameters.swappiness: must be between 0 and 100, got 101",
        "containerProperties.linuxParameters.devices[0].hostPath: "
        "must be an absolute path (starting with '/'), got \"dev/fuse\"",
        "containerProperties.volumes[0].name: may contain only letters, digits, '-' and '_'; found ' '",
    ]


def test_map_entries_name_their_aws_path() -> None:
    body = request(logConfiguration={"logDriver": "awslogs", "options": {"": "x"}})
    body["tags"] = {"aws:team": "x"}
    body["parameters"] = {"": "v"}
    assert import_problems(body) == [
        "parameters.: must not be empty",
        "containerProperties.logConfiguration.options.: must not be empty",
        "tags.aws:team: tag keys starting with 'aws:' are reserved for AWS",
    ]


def test_cross_key_rules_name_the_camel_case_path() -> None:
    body = request(
        mountPoints=[{"sourceVolume": "data", "containerPath": "/data"}],
        resourceRequirements=[
            {"type": "VCPU", "value": "1"},
            {"type": "GPU", "value": "1"},
            {"type": "MEMORY", "value": "2048"},
        ],
    )
    body["platformCapabilities"] = ["FARGATE"]
    assert import_problems(body) == [
        'containerProperties.mountPoints[0].sourceVolume: "data" names no volume; no [[volumes]] are declared',
        "containerProperties.resourceRequirements[1].value: FARGATE jobs cannot use GPUs; "
        'platform_capabilities includes "FARGATE"',
    ]


def test_required_values_missing_from_the_request_name_their_aws_home() -> None:
    body = request(resourceRequirements=[{"type": "MEMORY", "value": "512"}])
    del body["containerProperties"]["image"]
    assert import_problems(body) == [
        'containerProperties.image: required; the container image to run, e.g. image = "busybox:1.36"',
        "containerProperties.resourceRequirements: required; AWS Batch needs a vCPU count for every job",
    ]


def test_bad_resource_requirements() -> None:
    body = request(
        resourceRequirements=[
            {"type": "VCPU", "value": "one"},
            {"type": "MEMORY", "value": "512.5"},
            {"type": "MEMORY", "value": "512"},
            {"type": "DISK", "value": "1"},
        ]
    )
    assert import_problems(body) == [
        "containerProperties.resourceRequirements[0].value: expected a number as a string, got 'one'",
        "containerProperties.resourceRequirements[1].value: expected a whole number as a string, got '512.5'",
        "containerProperties.resourceRequirements[2].type: duplicate MEMORY; resourceRequirements[1] has it",
        'containerProperties.resourceRequirements[3].type: "DISK" is not allowed; allowed: "VCPU", "MEMORY", "GPU"',
    ]


def test_bad_environment_entries() -> None:
    body = request(environment=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}, {"value": "3"}])
    assert import_problems(body) == [
        "containerProperties.environment[1].name: duplicate environment variable 'A'",
        "containerProperties.environment[2].name: required, but missing",
    ]


def test_multinode_type_needs_node_properties() -> None:
    assert import_problems({**MINIMAL_REQUEST, "type": "multinode"}) == [
        'nodeProperties: required for type "multinode"'
    ]


# -- botocore's model ------------------------------------------------------------------------
def test_validate_output_allows_a_job_detail_without_started_at() -> None:
    job = {
        "jobName": "hello",
        "jobId": "24fa2d7a-64c4-49d2-8b47-f8da4fbde8e9",
        "jobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/default",
        "status": "RUNNABLE",
        "jobDefinition": "arn:aws:batch:us-east-1:123456789012:job-definition/hello:1",
    }
    assert model.validate_output("DescribeJobs", {"jobs": [job]}) == []
    del job["jobId"]
    job["createdAt"] = "yesterday"
    assert model.validate_output("DescribeJobs", {"jobs": [job]}) == [
        Problem("jobs[0].jobId", "required by AWS Batch, but missing"),
        Problem("jobs[0].createdAt", "expected an integer, got a string 'yesterday'"),
    ]


def test_validate_request_on_an_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="AWS Batch has no operation 'RegisterJob'"):
        model.validate_request("RegisterJob", {})


def test_operation_names_come_from_the_model() -> None:
    assert {"RegisterJobDefinition", "SubmitJob", "DescribeJobs"} <= set(model.operation_names())


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(job_definitions(staging=False))
def test_request_round_trip_is_lossless(d: JobDefinition) -> None:
    assert from_register_request(to_register_request(d), "generated") == d


@settings(max_examples=200, deadline=None)
@given(aws_requests())
def test_export_of_an_import_is_the_request_exactly(x: dict[str, Any]) -> None:
    """Nothing lost, no default added that x did not have: the same JSON, value for value."""
    back = request_from_document(document_from_request(x, "x.json"))
    assert json.dumps(back, sort_keys=True) == json.dumps(x, sort_keys=True)


@settings(max_examples=150, deadline=None)
@given(job_definitions())
def test_with_the_local_member_the_round_trip_keeps_localbatchs_own_settings(d: JobDefinition) -> None:
    request = to_register_request(d, local=True)
    assert from_register_request(request, "generated") == d
    assert model.validate_request("RegisterJobDefinition", without_local(request)) == []


@settings(max_examples=150, deadline=None)
@given(job_definitions())
def test_every_request_passes_botocores_validator(d: JobDefinition) -> None:
    assert model.validate_request("RegisterJobDefinition", to_register_request(d)) == []


def test_consumable_resources_import_by_name_or_arn_and_export_by_name() -> None:
    arn = "arn:aws:batch:us-east-1:123456789012:consumable-resource/licences"
    listed = [{"consumableResource": arn, "quantity": 2}, {"consumableResource": "db", "quantity": 1}]
    request = {**MINIMAL_REQUEST, "consumableResourceProperties": {"consumableResourceList": listed}}
    document = document_from_request(request, "def.json")
    assert document["consumable_resources"] == {"licences": 2, "db": 1}
    assert request_from_document(document)["consumableResourceProperties"] == {
        "consumableResourceList": [
            {"consumableResource": "licences", "quantity": 2},
            {"consumableResource": "db", "quantity": 1},
        ]
    }
    twice = [{"consumableResource": "db", "quantity": 1}, {"consumableResource": "db", "quantity": 2}]
    assert import_problems({**MINIMAL_REQUEST, "consumableResourceProperties": {"consumableResourceList": twice}}) == [
        "consumableResourceProperties.consumableResourceList[1].consumableResource: 'db' is listed twice"
    ]
