"""Names AWS gives things, and the names localbatch gives containers.

ARNs follow AWS's format with a local account id and the configured region. Container
names are deterministic (``localbatch-<job id>-<attempt>``) so a restarted daemon, or a
person running ``docker ps``, can tell which job and attempt a container belongs to;
labels carry the same facts for machines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localbatch.core.jobs import Job

LABEL_JOB_ID = "localbatch.job_id"
LABEL_ATTEMPT = "localbatch.attempt"
LABEL_HOME = "localbatch.home"
LABEL_VERSION = "localbatch.version"

LOG_GROUP = "/aws/batch/job"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
# AWS's rule for the names of jobs, job queues, compute environments and job definitions.
AWS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def resource_name(ref: str, kind: str) -> str:
    """A name from a name or an ARN (``arn:aws:batch:<region>:<account>:<kind>/<name>``)."""
    if ref.startswith("arn:"):
        _, _, tail = ref.partition(f":{kind}/")
        return tail or ref
    return ref


@dataclass(frozen=True)
class Arns:
    region: str
    account_id: str

    def _arn(self, resource: str) -> str:
        return f"arn:aws:batch:{self.region}:{self.account_id}:{resource}"

    def job(self, job_id: str) -> str:
        return self._arn(f"job/{job_id}")

    def job_definition(self, name: str, revision: int) -> str:
        return self._arn(f"job-definition/{name}:{revision}")

    def job_queue(self, name: str) -> str:
        return self._arn(f"job-queue/{name}")

    def compute_environment(self, name: str) -> str:
        return self._arn(f"compute-environment/{name}")

    def scheduling_policy(self, name: str) -> str:
        return self._arn(f"scheduling-policy/{name}")

    def consumable_resource(self, name: str) -> str:
        return self._arn(f"consumable-resource/{name}")

    def resource(self, arn: str) -> tuple[str, str] | None:
        """(resource type, id) of one of this region's and account's Batch ARNs
        (``job-queue``, ``my-queue``); None for any other text."""
        prefix = self._arn("")
        if not arn.startswith(prefix):
            return None
        kind, sep, name = arn[len(prefix) :].partition("/")
        return (kind, name) if sep and kind and name else None

    def task(self, task_id: str) -> str:
        """The ECS-style task ARN AWS reports for each attempt."""
        return f"arn:aws:ecs:{self.region}:{self.account_id}:task/localbatch/{task_id}"


def safe_name(job_id: str) -> str:
    """The job id with characters Docker names and file names refuse (``:`` of array
    children, ``#`` of multi-node nodes; ``/`` and ``.``, so that no id names a path outside its
    directory) replaced by ``_``. Job ids are UUIDs (no ``_``), so this never makes two ids alike."""
    return _UNSAFE.sub("_", job_id) or "_"


def container_name(job_id: str, attempt: int) -> str:
    """``localbatch-<job id>-<attempt>``, Docker-safe."""
    return f"localbatch-{safe_name(job_id)}-{attempt}"


def log_stream_name(job_definition_name: str, task_id: str) -> str:
    """AWS's awslogs stream name: ``<definition name, first 200 chars>/default/<task id>``."""
    return f"{job_definition_name[:200]}/default/{task_id}"


def batch_environment(job: Job, attempt: int) -> dict[str, str]:
    """The AWS_BATCH_* variables AWS Batch sets in every job container."""
    env = {
        "AWS_BATCH_JOB_ID": job.job_id,
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        "AWS_BATCH_JQ_NAME": job.job_queue,
        "AWS_BATCH_CE_NAME": job.compute_environment or "",
    }
    if job.array_index is not None and job.array_size is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_index)
        env["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.array_size)
    if job.node_index is not None:
        env["AWS_BATCH_JOB_NODE_INDEX"] = str(job.node_index)
        env["AWS_BATCH_JOB_NUM_NODES"] = str(job.num_nodes)
        env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] = str(job.main_node)
    return env


# Set on a multi-node job's non-main nodes only (as AWS), once the main node runs: the control
# loop adds it when it launches them.
MAIN_NODE_ADDRESS = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"


def container_environment(job: Job, attempt: int) -> dict[str, str]:
    """The full environment of an attempt's container: the job's own plus AWS_BATCH_*, and
    for a job holding GPUs ``NVIDIA_VISIBLE_DEVICES`` naming them, as ECS sets it."""
    env: dict[str, str] = {**job.container.environment, **batch_environment(job, attempt)}
    if job.gpu_ids:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(job.gpu_ids)
    return env


def container_labels(job: Job, attempt: int, home_id: str, version: str) -> dict[str, str]:
    return {
        LABEL_JOB_ID: job.job_id,
        LABEL_ATTEMPT: str(attempt),
        LABEL_HOME: home_id,
        LABEL_VERSION: version,
    }
