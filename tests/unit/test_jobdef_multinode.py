"""Multi-node parallel job definitions: the TOML's [node_properties], and AWS's nodeProperties
both ways (checked against botocore's model), with every problem named by its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch.export import build_plan
from localbatch.awsbatch.jobdefinition import from_register_request, to_register_request
from localbatch.cloud_settings import CloudSettings
from localbatch.core.definition import LogConfiguration
from localbatch.errors import ExportError, JobDefinitionError

RANGES = "node_properties.node_range_properties"
MINIMAL: dict[str, Any] = {
    "name": "mnp",
    "type": "multinode",
    "node_properties": {
        "num_nodes": 4,
        "main_node": 1,
        "node_range_properties": [
            {"target_nodes": "0:", "image": "busybox:1.36", "resources": {"vcpus": 1, "memory_mib": 128}},
            {
                "target_nodes": "1",
                "image": "busybox:1.36",
                "command": ["nc", "-l", "-p", "Ref::port"],
                "instance_types": ["p4d.24xlarge"],
                "environment": {"ROLE": "main"},
                "resources": {"vcpus": 2, "memory_mib": 256, "gpus": 1},
                "volumes": [{"name": "scratch", "host_source_path": "/tmp/scratch"}],
                "mount_points": [{"source_volume": "scratch", "container_path": "/scratch"}],
                "ulimits": [{"name": "nofile", "soft_limit": 1024, "hard_limit": 4096}],
                "linux_parameters": {"shared_memory_size": 64},
            },
        ],
    },
    "parameters": {"port": "24000"},
    "retry": {"attempts": 2},
    "timeout": {"attempt_duration_seconds": 600},
    "job_role_arn": "arn:aws:iam::123456789012:role/mnp",
    "log_configuration": {"log_driver": "awslogs", "options": {"awslogs-group": "g"}},
    "tags": {"team": "hpc"},
}


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.parse_document(doc, "mnp.toml")
    return [str(p) for p in caught.value.problems]


def changed(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(MINIMAL)
    doc["node_properties"].update(changes)
    return doc


def test_a_multinode_file_reads_and_writes_back_the_same() -> None:
    definition = jobdef.parse_document(MINIMAL, "mnp.toml")
    props = definition.node_properties
    assert props is not None and (props.num_nodes, props.main_node) == (4, 1)
    assert definition.container == props.node_range_properties[1].container  # the main node's
    assert definition.log_configuration == LogConfiguration("awslogs", {"awslogs-group": "g"})
    assert jobdef.parse_document(jobdef.to_document(definition), "again") == definition
    assert jobdef.loads(jobdef.dumps(definition), "dumped") == definition
    assert "[[node_properties.node_range_properties]]" in jobdef.dumps(definition)


def test_it_converts_to_aws_nodeproperties_and_back() -> None:
    definition = jobdef.parse_document(MINIMAL, "mnp.toml")
    request = to_register_request(definition)
    assert model.validate_request("RegisterJobDefinition", request) == []
    assert "containerProperties" not in request
    first, second = request["nodeProperties"]["nodeRangeProperties"]
    assert request["nodeProperties"]["mainNode"] == 1 and first["targetNodes"] == "0:"
    assert second["instanceTypes"] == ["p4d.24xlarge"]
    for entry in (first, second):  # the job-wide members go to every range's container
        assert entry["container"]["jobRoleArn"] == "arn:aws:iam::123456789012:role/mnp"
        assert entry["container"]["logConfiguration"]["logDriver"] == "awslogs"
    assert from_register_request(request, "mnp.json") == definition


def test_container_keys_belong_in_the_node_ranges() -> None:
    doc = {**MINIMAL, "image": "busybox:1.36"}
    [message] = problems(doc)
    assert message.startswith("image: unknown key 'image'; allowed: name, type, platform_capabilities")
    without = {k: v for k, v in MINIMAL.items() if k != "node_properties"}
    assert problems(without) == [
        'node_properties: required for type "multinode": [node_properties] with num_nodes, main_node and '
        "[[node_properties.node_range_properties]]"
    ]


def test_ranges_and_main_node_are_checked_with_their_paths() -> None:
    ranges = copy.deepcopy(MINIMAL["node_properties"]["node_range_properties"])
    ranges[0]["target_nodes"] = "0:1"
    ranges[1]["target_nodes"] = "7"
    assert problems(changed(node_range_properties=ranges, main_node=4)) == [
        "node_properties.main_node: must be a node index, 0 to 3, got 4",
        f"{RANGES}[1].target_nodes: '7': node 7 does not exist; num_nodes is 4, so nodes are 0 to 3",
    ]
    ranges[1]["target_nodes"] = "3"
    assert problems(changed(node_range_properties=ranges)) == [
        f"{RANGES}: the ranges must cover every node, 0 to 3; no range names node 2"
    ]


def test_each_range_is_a_container_checked_like_a_file() -> None:
    ranges = copy.deepcopy(MINIMAL["node_properties"]["node_range_properties"])
    ranges[1]["mount_points"][0]["source_volume"] = "nope"
    ranges[1]["instance_types"] = ["a", "b"]
    del ranges[0]["image"]
    found = problems(changed(node_range_properties=ranges))
    assert found == [
        f"{RANGES}[0].image: required key is missing",
        f"{RANGES}[1].instance_types: at most 1 instance types (AWS takes one), got 2",
    ]
    ranges[0]["image"] = "busybox:1.36"
    ranges[1]["instance_types"] = []
    assert problems(changed(node_range_properties=ranges)) == [
        f'{RANGES}[1].mount_points[0].source_volume: "nope" names no volume; declared: "scratch"'
    ]


def test_fargate_is_refused() -> None:
    assert problems({**MINIMAL, "platform_capabilities": ["FARGATE"]}) == [
        'platform_capabilities: multi-node parallel jobs cannot run on FARGATE (AWS rule); use ["EC2"]'
    ]


def aws_request() -> dict[str, Any]:
    return to_register_request(jobdef.parse_document(MINIMAL, "mnp.toml"))


def import_problems(body: dict[str, Any]) -> list[str]:
    with pytest.raises(JobDefinitionError) as caught:
        from_register_request(body, "mnp.json")
    return [str(p) for p in caught.value.problems]


def test_aws_problems_name_the_node_range_path() -> None:
    body = aws_request()
    ranges = body["nodeProperties"]["nodeRangeProperties"]
    ranges[1]["container"]["resourceRequirements"][1]["value"] = "lots"
    ranges[1]["container"]["jobRoleArn"] = "arn:aws:iam::123456789012:role/other"
    ranges[0]["container"]["secrets"] = [{"name": "A", "valueFrom": "x"}]
    assert import_problems(body) == [
        "nodeProperties.nodeRangeProperties[0].container.secrets: not supported: localbatch cannot read "
        "Secrets Manager or SSM; pass values in environment",
        "nodeProperties.nodeRangeProperties[1].container.jobRoleArn: differs from nodeRangeProperties[0]'s; "
        "localbatch keeps one jobRoleArn for every node",
        "nodeProperties.nodeRangeProperties[1].container.resourceRequirements[1].value: expected a whole number "
        "as a string, got 'lots'",
    ]
    body = aws_request()
    body["nodeProperties"]["nodeRangeProperties"][1]["container"]["resourceRequirements"][1]["value"] = "1"
    assert import_problems(body) == [
        "nodeProperties.nodeRangeProperties[1].container.resourceRequirements[1].value: must be at least 4, got 1"
    ]
    body = aws_request()
    body["nodeProperties"]["nodeRangeProperties"][0]["targetNodes"] = "0:9"
    assert import_problems(body) == [
        "nodeProperties.nodeRangeProperties[0].targetNodes: '0:9': node 9 does not exist; num_nodes is 4, so nodes "
        "are 0 to 3"
    ]


def test_aws_kinds_must_match_their_properties() -> None:
    body = aws_request()
    body["containerProperties"] = {"image": "busybox:1.36"}
    assert import_problems(body) == ['containerProperties: not with type "multinode": give each node range a container']
    body = aws_request()
    del body["nodeProperties"]["nodeRangeProperties"][0]["container"]
    assert import_problems(body) == [
        "nodeProperties.nodeRangeProperties[0].container: required: the container of the nodes this range names"
    ]


def test_export_checks_every_range_for_aws() -> None:
    ranges = copy.deepcopy(MINIMAL["node_properties"]["node_range_properties"])
    ranges[1]["resources"]["vcpus"] = 0.5
    plan = build_plan([("mnp.toml", changed(node_range_properties=ranges))], CloudSettings())
    assert plan.warnings == (
        f"mnp.toml: {RANGES}[1].resources.vcpus: 0.5 vCPU becomes 1 in the cloud (AWS Batch on EC2 takes whole vCPUs)",
        f"mnp.toml: {RANGES}[1].volumes: 'scratch' mounts /tmp/scratch; in the cloud that is a path on the EC2 "
        "instance, not on this machine",
    )
    exported = plan.objects[0].request["nodeProperties"]["nodeRangeProperties"][1]["container"]
    assert exported["resourceRequirements"][0] == {"type": "VCPU", "value": "1"}
    with pytest.raises(ExportError, match=r"0\.5 vCPU becomes 1 .* \(--strict\)"):
        build_plan([("mnp.toml", changed(node_range_properties=ranges))], CloudSettings(), strict=True)
