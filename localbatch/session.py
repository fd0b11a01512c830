"""What the CLI does through AWS Batch's API, whichever way it reaches it.

A ``Backend`` is the daemon's socket (``client.DaemonClient``) or, when no daemon runs,
``LocalBackend``: the same API handlers called in this process on the store, for reads only.
The functions below are the client-side steps the CLI composes: register a definition if it
changed, submit, wait, follow output. They speak AWS's operations and shapes only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from localbatch.api.dispatch import READ_OPERATIONS
from localbatch.api.routes import query_text
from localbatch.api.server import Api
from localbatch.awsbatch import requests
from localbatch.awsbatch.jobdefinition import from_register_request, to_register_request
from localbatch.awsbatch.requests import SubmitRequest, submit_body
from localbatch.client import DaemonUnreachable
from localbatch.core import lifecycle, params, portability
from localbatch.core.definition import JobDefinition, PlatformCapability
from localbatch.core.jobs import JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.errors import JobDefinitionError, JobDefinitionNotFound, JobNotFound
from localbatch.extensions import (
    EVENTS,
    INTERRUPT,
    LOGS,
    RESOURCES,
    STATUS,
    USAGE,
    Extensions,
)

_LIST_PAGE = 100  # ListJobs' largest page with a filter
TERMINAL = tuple(s.value for s in JobStatus if s.is_terminal)  # as the API spells them


class Backend(Protocol):
    def call(self, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]: ...

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[bytes]: ...

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...


class LocalBackend:
    """The API in this process, on the store. Read-only (what needs the daemon says so), or,
    with ``writable``, backed by an in-process control loop (``bootstrap.local_engine``)."""

    def __init__(self, api: Api, extensions: Extensions, socket_path: Path, *, writable: bool = False) -> None:
        self._api = api
        self._extensions = extensions
        self._socket_path = socket_path
        self._writable = writable

    def call(self, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if not self._writable and operation not in READ_OPERATIONS:
            raise DaemonUnreachable(str(self._socket_path))
        return self._api.invoke(operation, dict(body or {}))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        handler = self._extensions.reads().get(path)
        if handler is not None:
            return handler(_strings(params), {})
        if path == STATUS:
            raise DaemonUnreachable(str(self._socket_path))
        raise ValueError(f"no extension at {path}")

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        if method.upper() == "GET":
            return self.get(path, params)
        if path == INTERRUPT and self._writable:
            return self._extensions.interrupt(_strings(params), dict(body or {}))
        raise DaemonUnreachable(str(self._socket_path))  # what changes things needs the daemon

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        if path != LOGS:
            raise ValueError(f"no streamed extension at {path}")
        return self._extensions.logs(_strings(params), {})


def _strings(params: Mapping[str, Any] | None) -> dict[str, str]:
    return {key: query_text(value) for key, value in (params or {}).items()}


# -- job definitions ----------------------------------------------------------------------------


def register(backend: Backend, definition: JobDefinition) -> str:
    """Register ``definition`` as a new revision; ``name:revision``."""
    answer = backend.call("RegisterJobDefinition", to_register_request(definition, local=True))
    return f"{answer['jobDefinitionName']}:{answer['revision']}"


def ensure_registered(backend: Backend, definition: JobDefinition, request: Mapping[str, Any] | None = None) -> str:
    """``name:revision`` of the latest ACTIVE revision when it is this very definition, else of
    a newly registered one (so submitting an unchanged file twice does not add revisions).

    ``request``: the RegisterJobDefinition request to send instead of the definition's own
    (for AWS Batch, the export plan's: cloud values filled in, vCPUs rounded); the latest
    revision is then compared with the definition that request describes."""
    if request is not None:
        definition = from_register_request(request, definition.name)
    latest = latest_definition(backend, definition.name)
    if latest is not None:
        try:
            same = from_register_request(latest, f"{definition.name}:{latest['revision']}") == definition
        except JobDefinitionError:
            same = False  # a revision localbatch cannot read is not this file
        if same:
            return f"{definition.name}:{latest['revision']}"
    if request is None:
        return register(backend, definition)
    answer = backend.call("RegisterJobDefinition", request)
    return f"{answer['jobDefinitionName']}:{answer['revision']}"


def platform_capabilities(
    backend: Backend, definition: JobDefinition | None, ref: str, vcpus: float | None
) -> tuple[str, ...]:
    """The platform capabilities a submission's overrides are checked against: the file's,
    else (only when a fractional vCPU override makes them matter) the registered definition's."""
    if definition is not None:
        return tuple(p.value for p in definition.platform_capabilities)
    if vcpus is None or float(vcpus).is_integer():
        return (PlatformCapability.EC2.value,)
    found = latest_definition(backend, ref)
    if found is None:
        raise JobDefinitionNotFound(ref)
    return tuple(found.get("platformCapabilities") or [PlatformCapability.EC2.value])


def latest_definition(backend: Backend, ref: str) -> dict[str, Any] | None:
    """The DescribeJobDefinitions entry ``ref`` names (``requests.latest_definition``)."""
    return requests.latest_definition(backend.call, ref)


# -- jobs -----------------------------------------------------------------------------------------


def submit(backend: Backend, request: SubmitRequest) -> dict[str, Any]:
    """SubmitJob's answer: jobId, jobName, jobArn."""
    return backend.call("SubmitJob", submit_body(request))


def describe(backend: Backend, job_id: str) -> dict[str, Any]:
    jobs = backend.call("DescribeJobs", {"jobs": [job_id]}).get("jobs", [])
    if not jobs:
        raise JobNotFound(job_id)
    detail: dict[str, Any] = jobs[0]
    return detail


def list_jobs(
    backend: Backend,
    queues: Sequence[str],
    statuses: Sequence[str],
    limit: int,
    array_job_id: str | None = None,
    *,
    name_prefix: str | None = None,
) -> list[dict[str, Any]]:
    """Up to ``limit`` job summaries, newest first, across ``queues`` (default: every queue)
    and ``statuses`` (default: every status), each with its ``jobQueue``: ListJobs per queue
    and status, following ``nextToken``. With ``array_job_id``, that array's children by index.
    With ``name_prefix``: only jobs whose name starts with it (ListJobs' JOB_NAME filter,
    case-insensitive, which takes every status: ``statuses`` are then kept from its answer)."""
    if name_prefix is not None:
        return _list_by_name(backend, queues, statuses, limit, name_prefix)
    if array_job_id is not None:
        scopes = [{"arrayJobId": array_job_id}]
    else:
        names = queues or [q["jobQueueName"] for q in backend.call("DescribeJobQueues", {})["jobQueues"]]
        scopes = [{"jobQueue": name} for name in names]
    wanted: list[str | None] = [*statuses] or [None]  # no status: all at once, through a filter
    jobs: list[dict[str, Any]] = []
    for scope in scopes:
        for status in wanted:
            jobs += _list_scope(backend, scope, status, limit)
    if array_job_id is not None:
        jobs.sort(key=lambda j: j["arrayProperties"]["index"])
    else:
        jobs.sort(key=lambda j: (-j["createdAt"], j["jobId"]))
    return jobs[:limit]


def _list_by_name(
    backend: Backend, queues: Sequence[str], statuses: Sequence[str], limit: int, prefix: str
) -> list[dict[str, Any]]:
    names = queues or [q["jobQueueName"] for q in backend.call("DescribeJobQueues", {})["jobQueues"]]
    wanted = set(statuses)
    jobs: list[dict[str, Any]] = []
    for name in names:
        body: dict[str, Any] = {
            "jobQueue": name,
            "maxResults": _LIST_PAGE,
            "filters": [{"name": "JOB_NAME", "values": [prefix + "*"]}],
        }
        while True:  # bounded by the queue's matching jobs, one page at a time
            page = backend.call("ListJobs", body)
            for job in page["jobSummaryList"]:
                job.setdefault("jobQueue", name)
                if not wanted or job["status"] in wanted:
                    jobs.append(job)
            if "nextToken" not in page or len(jobs) >= limit:
                break
            body["nextToken"] = page["nextToken"]
    jobs.sort(key=lambda j: (-j["createdAt"], j["jobId"]))
    return jobs[:limit]


def _list_scope(backend: Backend, scope: dict[str, str], status: str | None, limit: int) -> list[dict[str, Any]]:
    body: dict[str, Any] = {**scope, "maxResults": min(limit, _LIST_PAGE)}
    if status is None:
        body["filters"] = [{"name": "AFTER_CREATED_AT", "values": ["0"]}]  # every status, newest first
    else:
        body["jobStatus"] = status
    found: list[dict[str, Any]] = []
    while len(found) < limit:
        page = backend.call("ListJobs", body)
        if "jobQueue" in scope:
            for job in page["jobSummaryList"]:
                job.setdefault("jobQueue", scope["jobQueue"])
        found += page["jobSummaryList"]
        if "nextToken" not in page:
            break
        body["nextToken"] = page["nextToken"]
    return found[:limit]


def wait(backend: Backend, job_id: str, poll_s: float = 0.5) -> dict[str, Any]:
    """The job's detail once it is SUCCEEDED or FAILED."""
    while True:
        detail = describe(backend, job_id)
        if detail["status"] in TERMINAL:
            return detail
        time.sleep(poll_s)


def exit_status(detail: Mapping[str, Any], interrupted_by: int | None = None) -> int:
    """What ``run`` and ``wait`` exit with: 0; the container's exit code; 128 + the signal
    number when a signal stopped the job; 1 when the job never ran."""
    if interrupted_by is not None and (detail.get("isTerminated") or detail.get("isCancelled")):
        return 128 + interrupted_by
    if detail["status"] == "SUCCEEDED":
        return 0
    code = detail.get("container", {}).get("exitCode")
    return int(code) if isinstance(code, int) and code != 0 else 1


def warnings(definition: JobDefinition | None, overrides: JobOverrides) -> list[str]:
    """What to warn about before submitting: what AWS Batch would refuse in the job as it
    will run (after the overrides), and ``Ref::`` placeholders nobody gives a value. For a
    definition known only by name (registered earlier), what the overrides alone break."""
    if definition is None:
        short = portability.timeout_problem(overrides.timeout_s)
        return [] if short is None else [f"not portable to AWS Batch: {short}"]
    job, _ = lifecycle.new_job(definition, 0, overrides, job_id="-", job_name="-", job_queue="-", now=0)
    found = [
        f"not portable to AWS Batch: {problem}"
        for problem in portability.job_problems(
            timeout_s=job.timeout_s,
            vcpus=job.container.resources.vcpus,
            platform_capabilities=job.platform_capabilities,
        )
    ]
    missing = params.unresolved(job.container.command, job.parameters)
    if missing:
        found.append(f"no value for Ref::{', Ref::'.join(missing)}; left as written")
    return found


def events(backend: Backend, job_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = history(backend, job_id).get("events", [])
    return found


def history(backend: Backend, job_id: str) -> dict[str, Any]:
    """The events extension's answer: ``events`` (oldest first) and ``submittedBy``."""
    return backend.get(EVENTS, {"jobId": job_id})


def interrupt(backend: Backend, job_id: str) -> dict[str, Any]:
    """Reclaim a RUNNING job's host as Spot would (rehearsal): jobId, attempt, instanceId,
    statusReason."""
    return backend.request("POST", INTERRUPT, body={"jobId": job_id})


def usage(backend: Backend, job_id: str) -> dict[str, Any]:
    """The usage extension's answer for a job: each ended attempt's ``usage`` and, while it
    runs, the ``live`` readings."""
    return backend.get(USAGE, {"jobId": job_id})


def usage_history(backend: Backend, definition: str, limit: int) -> dict[str, Any]:
    """A definition's recent ended attempts, each with what it asked for and used."""
    return backend.get(USAGE, {"jobDefinition": definition, "limit": limit})


def live_usage(backend: Backend) -> dict[str, Any]:
    """Every running job's usage so far (job id -> usage document)."""
    found: dict[str, Any] = backend.get(USAGE).get("running", {})
    return found


# -- watching: top and progress ---------------------------------------------------------------

TOP_HEADS = 3  # waiting jobs shown per queue in ``top``


def describe_many(backend: Backend, job_ids: Sequence[str]) -> list[dict[str, Any]]:
    """DescribeJobs for any number of ids (100 a call, as AWS allows), in the order found."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(job_ids), 100):
        found += backend.call("DescribeJobs", {"jobs": list(job_ids[start : start + 100])}).get("jobs", [])
    return found


def top_snapshot(backend: Backend, heads: int = TOP_HEADS) -> dict[str, Any]:
    """What ``top`` shows, from the API: the resources extension (environments, GPUs and
    their holders), the jobs holding resources with their live usage, and each queue's first
    waiting jobs (GetJobQueueSnapshot) with the reason each waits (DescribeJobs)."""
    report = backend.get(RESOURCES)
    live = live_usage(backend)
    holding = [job_id for env in report["computeEnvironments"] for job_id in env["jobs"]]
    gpu_of: dict[str, list[str]] = {}
    for gpu in report["gpus"]:
        if gpu.get("jobId"):
            gpu_of.setdefault(gpu["jobId"], []).append(gpu["id"])
    running = []
    for detail in describe_many(backend, holding):
        requirements = {r["type"]: r["value"] for r in detail.get("container", {}).get("resourceRequirements", [])}
        running.append(
            {
                "jobId": detail["jobId"],
                "jobName": detail["jobName"],
                "status": detail["status"],
                "jobQueue": detail["jobQueue"].rpartition("/")[2],
                "startedAt": detail.get("startedAt"),
                "vcpus": float(requirements.get("VCPU", 0)),
                "memoryMiB": int(requirements.get("MEMORY", 0)),
                "gpuIds": gpu_of.get(detail["jobId"], []),
                "usage": live.get(detail["jobId"]),
            }
        )
    queues = []
    for queue in report.get("jobQueues", []):
        front = backend.call("GetJobQueueSnapshot", {"jobQueue": queue["jobQueueName"]})["frontOfQueue"]
        first = front.get("jobs", [])[:heads]
        since = {entry["jobArn"].rpartition("/")[2]: entry.get("earliestTimeAtPosition") for entry in first}
        waiting = [
            {
                "jobId": d["jobId"],
                "jobName": d["jobName"],
                "reason": d.get("statusReason") or "",
                "since": since.get(d["jobId"]),
            }
            for d in describe_many(backend, list(since))
        ]
        queues.append({**queue, "heads": waiting})
    return {
        "computeEnvironments": report["computeEnvironments"],
        "gpus": report["gpus"],
        "running": running,
        "queues": queues,
    }


def batch_counts(backend: Backend, job_ids: Sequence[str]) -> dict[str, int]:
    """How many jobs of a batch are in each status: an array parent counts as its children
    (its ``statusSummary``), any other job as itself."""
    counts: dict[str, int] = {}
    for detail in describe_many(backend, job_ids):
        summary = (detail.get("arrayProperties") or {}).get("statusSummary")
        if summary and "size" in (detail.get("arrayProperties") or {}):
            for status, n in summary.items():
                counts[status] = counts.get(status, 0) + int(n)
            if not any(summary.values()):  # children not created yet: all of them are where it is
                counts[detail["status"]] = counts.get(detail["status"], 0) + int(detail["arrayProperties"]["size"])
        else:
            counts[detail["status"]] = counts.get(detail["status"], 0) + 1
    return counts


def dependency_graph(backend: Backend, job_ids: Sequence[str], limit: int = 1000) -> list[str]:
    """``job_ids`` and every job they wait for, transitively (``dependsOn``), at most
    ``limit`` jobs; in the order found."""
    seen: dict[str, None] = dict.fromkeys(job_ids)
    frontier = list(job_ids)
    while frontier and len(seen) < limit:
        found = describe_many(backend, frontier)
        frontier = []
        for detail in found:
            for entry in detail.get("dependsOn") or []:
                other = entry.get("jobId")
                if other and other not in seen and ":" not in other and len(seen) < limit:
                    seen[other] = None
                    frontier.append(other)
    return list(seen)
