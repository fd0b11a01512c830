"""The event log in EventBridge's shape: what ``localbatch events`` prints, the event-stream
extension answers and webhooks receive.

A job's state change is AWS's "Batch Job State Change" event: ``detail`` is the job as
DescribeJobs shows it (``awsbatch.jobdetail``), as the change's save left it, with the
change's own status and reason. AWS sends no event for a job's submission, and neither does
localbatch. The daemon's notes (a failed delivery, a schedule's submission) come in the same
envelope with ``source`` "localbatch" and their own ``detail-type``.

``id`` is derived from the home and the entry's ``seq``, so the same event always has the same
id (a receiver can drop a repeat delivery by it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from localbatch.awsbatch.jobdetail import job_detail
from localbatch.core.jobs import JobStatus
from localbatch.core.naming import Arns
from localbatch.ports import JOB_EVENT, LoggedEvent

JOB_STATE_CHANGE = "Batch Job State Change"
AWS_SOURCE = "aws.batch"
LOCAL_SOURCE = "localbatch"

# Note kinds (LoggedEvent.kind) the daemon writes, and their detail-type.
DELIVERY_FAILED = "delivery-failed"
DELIVERY_DROPPED = "delivery-dropped"
RULE_SUBMISSION = "rule-submission"
NOTE_TYPES: Mapping[str, str] = {
    DELIVERY_FAILED: "localbatch Delivery Failed",
    DELIVERY_DROPPED: "localbatch Delivery Dropped",
    RULE_SUBMISSION: "localbatch Rule Submission",
}

_NAMESPACE = uuid.UUID("2f7c1f0e-3b1a-4d59-9a7e-6c1f4b2d8e10")

ArrayCounts = Callable[[str], Mapping[JobStatus, int]]


def event_id(home_id: str, seq: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{home_id}/{seq}"))


def iso_time(at_ms: int) -> str:
    """EventBridge's ``time``: UTC, to the second."""
    return datetime.fromtimestamp(at_ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(entry: LoggedEvent, arns: Arns, home_id: str, array_counts: ArrayCounts | None = None) -> dict[str, Any]:
    """The entry as an EventBridge event."""
    resources = [arns.job(entry.job_id)] if entry.job_id else []
    if entry.kind == JOB_EVENT:
        detail_type, source, detail = JOB_STATE_CHANGE, AWS_SOURCE, _job_detail(entry, arns, array_counts)
    else:
        detail_type = NOTE_TYPES.get(entry.kind, f"localbatch {entry.kind}")
        source, detail = LOCAL_SOURCE, dict(entry.note)
    return {
        "version": "0",
        "id": event_id(home_id, entry.seq),
        "detail-type": detail_type,
        "source": source,
        "account": arns.account_id,
        "time": iso_time(entry.at),
        "region": arns.region,
        "resources": resources,
        "detail": detail,
    }


def _job_detail(entry: LoggedEvent, arns: Arns, array_counts: ArrayCounts | None) -> dict[str, Any]:
    event, job = entry.event, entry.job
    if job is None:  # a save that did not carry the job (none does today): what is known
        return {"jobId": entry.job_id, "jobQueue": arns.job_queue(entry.job_queue or ""), "status": entry.status}
    counts = array_counts(job.job_id) if array_counts is not None and job.is_array_parent else None
    detail = job_detail(job, arns, counts)
    if event is not None and event.to_status is not job.status:
        # the save moved the job on past this change (two changes in one tick): say this one
        detail["status"] = event.to_status.value
        detail.pop("statusReason", None)
    if event is not None and event.reason is not None:
        detail["statusReason"] = event.reason
    return detail


def summary(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """(what, job, words) for one line of ``localbatch events``."""
    detail = event.get("detail") or {}
    if event.get("source") == AWS_SOURCE:
        words = str(detail.get("statusReason") or "")
        return str(detail.get("status", "")), f"{detail.get('jobId', '')} {detail.get('jobName', '')}", words
    kind = str(event.get("detail-type", "")).removeprefix("localbatch ")
    job = str(detail.get("jobId") or "")
    if "webhook" in detail or "hook" in detail:
        target = detail.get("webhook") or detail.get("hook")
        attempt = f"attempt {detail.get('attempt', '?')}/{detail.get('maxAttempts', '?')}"
        words = (
            f"{target}: {attempt}: {detail.get('error', '')}"
            if "attempt" in detail
            else f"{target}: {detail.get('error', '')}"
        )
        if detail.get("retryAt") is not None:
            words += f" (retry at {iso_time(int(detail['retryAt']))})"
        elif kind == "Delivery Failed":
            words += " (given up)"
        return kind, job, words
    if "rule" in detail:
        return kind, job, f"{detail.get('ruleType', 'rule')} {detail['rule']}: {detail.get('outcome', '')}"
    return kind, job, ""
