"""Jobs in AWS's words: DescribeJobs' ``JobDetail`` and ListJobs' ``JobSummary``.

camelCase, epoch-millisecond timestamps, ARNs in AWS's format. Checked against botocore's
own output shapes in the tests. ``attempts`` lists finished attempts, as AWS does; the
attempt in flight shows in ``container`` (its task ARN and log stream).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localbatch.awsbatch import consumables
from localbatch.awsbatch.jobdefinition import container_properties, retry_strategy
from localbatch.awsbatch.requests import dependency_entry
from localbatch.core import arrays
from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.naming import Arns


def job_detail(job: Job, arns: Arns, array_counts: Mapping[JobStatus, int] | None = None) -> dict[str, Any]:
    """DescribeJobs' JobDetail; ``array_counts`` (an array parent's children per status) makes
    its ``arrayProperties.statusSummary``."""
    detail: dict[str, Any] = {
        "jobArn": arns.job(job.job_id),
        "jobName": job.job_name,
        "jobId": job.job_id,
        "jobQueue": arns.job_queue(job.job_queue),
        "status": job.status.value,
        "attempts": [_attempt(a, arns) for a in job.attempts if a.finished],
        "createdAt": job.created_at,
        "retryStrategy": retry_strategy(job.retry_strategy),
        "dependsOn": [dependency_entry(d) for d in job.depends_on],
        "jobDefinition": arns.job_definition(job.job_definition_name, job.job_definition_revision),
        "parameters": dict(job.parameters),
        "container": _container(job, arns),
        "propagateTags": job.propagate_tags,
        "platformCapabilities": list(job.platform_capabilities),
        "isCancelled": job.is_cancelled,
        "isTerminated": job.is_terminated,
    }
    optional = {
        "statusReason": job.status_reason,
        "startedAt": job.started_at,
        "stoppedAt": job.stopped_at,
        "schedulingPriority": job.scheduling_priority,
        "shareIdentifier": job.share_identifier,
        "timeout": {"attemptDurationSeconds": job.timeout_s} if job.timeout_s is not None else None,
        "tags": dict(job.tags) if job.tags else None,
        "arrayProperties": _array_properties(job, array_counts),
        "consumableResourceProperties": consumables.properties(job.consumable_resources)
        if job.consumable_resources
        else None,
    }
    detail.update({key: value for key, value in optional.items() if value is not None})
    detail.update(_multinode_detail(job))
    return detail


def _array_summary(job: Job) -> dict[str, Any] | None:
    """A child's index, or a parent's size."""
    if job.array_index is not None:
        return {"index": job.array_index}
    return None if job.array_size is None else {"size": job.array_size}


def _array_properties(job: Job, counts: Mapping[JobStatus, int] | None) -> dict[str, Any] | None:
    """As the summary, and a parent's children per status (all seven, zeros included)."""
    found = _array_summary(job)
    if found is not None and job.is_array_parent:
        found["statusSummary"] = arrays.status_summary(counts or {})
    return found


def _multinode_detail(job: Job) -> dict[str, Any]:
    """A multi-node job's ``nodeProperties`` (its ranges as resolved at submit), or a node's
    ``nodeDetails``."""
    if job.is_multinode_parent:
        ranges = [
            {
                "targetNodes": r.target_nodes,
                "container": container_properties(r.container),
                **({"instanceTypes": list(r.instance_types)} if r.instance_types else {}),
            }
            for r in job.node_ranges
        ]
        return {"nodeProperties": {"numNodes": job.num_nodes, "mainNode": job.main_node, "nodeRangeProperties": ranges}}
    if job.node_index is not None:
        return {"nodeDetails": {"nodeIndex": job.node_index, "isMainNode": job.is_main_node}}
    return {}


def job_summary(job: Job, arns: Arns) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "jobArn": arns.job(job.job_id),
        "jobId": job.job_id,
        "jobName": job.job_name,
        "createdAt": job.created_at,
        "status": job.status.value,
        "jobDefinition": arns.job_definition(job.job_definition_name, job.job_definition_revision),
        "capacityUsage": [{"capacityUnit": "VCPU", "quantity": job.container.resources.vcpus}],
    }
    attempt = job.current_attempt
    optional: dict[str, Any] = {
        "statusReason": job.status_reason,
        "startedAt": job.started_at,
        "stoppedAt": job.stopped_at,
        "container": _exit_info(attempt) if attempt is not None and attempt.finished else None,
        "isCancelled": True if job.is_cancelled else None,
        "isTerminated": True if job.is_terminated else None,
        "shareIdentifier": job.share_identifier,
        "arrayProperties": _array_summary(job),
    }
    summary.update({key: value for key, value in optional.items() if value is not None})
    if job.is_multinode_parent:
        summary["nodeProperties"] = {"numNodes": job.num_nodes}
    elif job.node_index is not None:
        summary["nodeProperties"] = {
            "isMainNode": job.is_main_node,
            "numNodes": job.num_nodes,
            "nodeIndex": job.node_index,
        }
    return summary


def _container(job: Job, arns: Arns) -> dict[str, Any]:
    container = container_properties(job.container)
    attempt = job.current_attempt
    if attempt is not None:
        container["taskArn"] = arns.task(attempt.task_id)
        if attempt.started_at is not None:
            container["logStreamName"] = attempt.log_stream_name
        if attempt.finished:
            container.update(_exit_info(attempt))
    return container


def _exit_info(attempt: Attempt) -> dict[str, Any]:
    info: dict[str, Any] = {}
    if attempt.exit_code is not None:
        info["exitCode"] = attempt.exit_code
    if attempt.reason is not None:
        info["reason"] = attempt.reason
    return info


def _attempt(attempt: Attempt, arns: Arns) -> dict[str, Any]:
    container: dict[str, Any] = {"taskArn": arns.task(attempt.task_id), **_exit_info(attempt)}
    if attempt.started_at is not None:
        container["logStreamName"] = attempt.log_stream_name
    detail: dict[str, Any] = {"container": container}
    for key, value in (
        ("startedAt", attempt.started_at),
        ("stoppedAt", attempt.stopped_at),
        ("statusReason", attempt.status_reason),
    ):
        if value is not None:
            detail[key] = value
    return detail
