"""SubmitJob's nodeOverrides and the multi-node parts of DescribeJobs / ListJobs, in AWS's
shapes (checked against botocore's model)."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch.awsbatch import model, requests
from localbatch.awsbatch.jobdetail import job_detail, job_summary
from localbatch.core import multinode
from localbatch.core.jobs import Job, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.multinode import NodeOverrides, NodePropertyOverride
from localbatch.core.naming import Arns
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import InvalidRequest

BODY: dict[str, Any] = {
    "jobName": "mnp",
    "jobQueue": "default",
    "jobDefinition": "mnp",
    "nodeOverrides": {
        "numNodes": 4,
        "nodePropertyOverrides": [
            {
                "targetNodes": "1:",
                "containerOverrides": {
                    "command": ["worker"],
                    "environment": [{"name": "ROLE", "value": "worker"}],
                    "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "512"}],
                },
            },
            {"targetNodes": "0"},
        ],
    },
}
ARNS = Arns("us-east-1", "123456789012")


def test_node_overrides_are_read_and_written_back() -> None:
    assert model.validate_request("SubmitJob", BODY) == []
    request = requests.submit_request(BODY)
    assert request.node_overrides == NodeOverrides(
        4,
        (
            NodePropertyOverride(
                "1:", JobOverrides(command=("worker",), environment={"ROLE": "worker"}, vcpus=2.0, memory_mib=512)
            ),
            NodePropertyOverride("0"),
        ),
    )
    body = requests.submit_body(request)
    assert model.validate_request("SubmitJob", body) == []
    assert requests.submit_request(body) == request


def test_bad_node_overrides_name_their_fields() -> None:
    body = {
        **BODY,
        "nodeOverrides": {
            "nodePropertyOverrides": [
                {
                    "targetNodes": "0",
                    "instanceTypes": ["p4d.24xlarge"],
                    "containerOverrides": {
                        "resourceRequirements": [{"type": "DISK", "value": "1"}],
                        "environment": [{"name": "AWS_BATCH_X", "value": "1"}],
                        "vcpus": 2,
                    },
                }
            ]
        },
    }
    with pytest.raises(InvalidRequest) as refused:
        requests.submit_request(body)
    at = "nodeOverrides.nodePropertyOverrides[0]"
    assert [p.path for p in refused.value.problems] == [
        f"{at}.instanceTypes",
        f"{at}.containerOverrides.vcpus",
        f"{at}.containerOverrides.resourceRequirements[0].type",
    ]


def jobs() -> tuple[Job, Job]:
    container = ContainerSpec("busybox:1.36", ("sh",), resources=Resources(1, 128))
    parent = Job(
        "p", "mnp", "mnp", 1, "default", container, 5, status=JobStatus.RUNNING,
        num_nodes=3, main_node=0, node_ranges=multinode.as_ranges([container] * 3),
    )  # fmt: skip
    [(node, _)] = multinode.nodes(parent, [container] * 3)[1:2]
    return parent, node


def test_describe_shows_node_properties_and_node_details() -> None:
    parent, node = jobs()
    detail, node_detail = job_detail(parent, ARNS), job_detail(node, ARNS)
    assert detail["nodeProperties"]["numNodes"] == 3 and detail["nodeProperties"]["mainNode"] == 0
    assert [r["targetNodes"] for r in detail["nodeProperties"]["nodeRangeProperties"]] == ["0:2"]
    assert node_detail["jobId"] == "p#1" and node_detail["nodeDetails"] == {"nodeIndex": 1, "isMainNode": False}
    assert model.validate_output("DescribeJobs", {"jobs": [detail, node_detail]}) == []
    summaries = [job_summary(parent, ARNS), job_summary(node, ARNS)]
    assert summaries[1]["nodeProperties"] == {"isMainNode": False, "numNodes": 3, "nodeIndex": 1}
    assert model.validate_output("ListJobs", {"jobSummaryList": summaries}) == []


def test_list_jobs_by_multi_node_job() -> None:
    listed = requests.list_request({"multiNodeJobId": "p", "jobStatus": "RUNNING"})
    assert (listed.multi_node_job_id, listed.job_queue, listed.statuses) == ("p", None, (JobStatus.RUNNING,))
