"""Use cases behind the front doors that need no container: validate definitions, list and
describe jobs, find logs, report resources.

Given ports, never adapters. The CLI calls these and only formats what they return; the
daemon's API will call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localbatch import jobdef, logs
from localbatch.config import DEFAULT_COMPUTE_ENVIRONMENT, Settings
from localbatch.core import portability
from localbatch.core.inventory import HostInventory, capacity
from localbatch.core.jobs import Job, JobEvent, JobStatus
from localbatch.core.resources import Resources
from localbatch.errors import JobDefinitionError, JobNotFound, RuntimeUnavailable, UsageError
from localbatch.ports import ContainerRuntime, EngineInfo, HostProbe, JobQuery, StateStore


@dataclass(frozen=True)
class FileReport:
    """What ``validate`` found in one job definition file."""

    file: Path
    problems: list[str]  # what makes the file invalid
    warnings: list[str]  # what runs locally but AWS Batch would refuse

    def failed(self, strict: bool) -> bool:
        return bool(self.problems or (strict and self.warnings))


def validate_files(paths: list[Path]) -> list[FileReport]:
    reports = []
    for path in paths:
        try:
            portable = portability.definition_problems(jobdef.load_file(path))
            reports.append(FileReport(path, [], [str(p) for p in portable]))
        except JobDefinitionError as exc:
            reports.append(FileReport(path, [str(p) for p in exc.problems], []))
    return reports


@dataclass(frozen=True)
class JobView:
    job: Job
    events: list[JobEvent]


def describe_job(store: StateStore, job_id: str) -> JobView:
    job = store.get_job(job_id)
    if job is None:
        raise JobNotFound(job_id)
    return JobView(job, store.list_events(job_id))


def list_jobs(store: StateStore, statuses: list[str], limit: int) -> list[Job]:
    try:
        wanted = tuple(JobStatus(s.upper()) for s in statuses)
    except ValueError:
        allowed = ", ".join(s.value for s in JobStatus)
        raise UsageError(f"--status: {', '.join(statuses)} is not a job status; allowed: {allowed}") from None
    if limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {limit}")
    return store.list_jobs(JobQuery(statuses=wanted, limit=limit))


def log_file(settings: Settings, store: StateStore, job_id: str, attempt: int | None) -> Path:
    """The log file of ``attempt`` (default: the latest) of a job."""
    job = describe_job(store, job_id).job
    if not job.attempts:
        raise UsageError(f"job {job_id} has not started an attempt yet, so it has no log")
    number = attempt if attempt is not None else job.attempts[-1].number
    if not 1 <= number <= len(job.attempts):
        raise UsageError(f"--attempt: job {job_id} has attempts 1..{len(job.attempts)}, not {number}")
    return logs.attempt_log_path(settings.logs_dir, job_id, number)


@dataclass(frozen=True)
class ResourceReport:
    host: HostInventory
    compute_environment: str
    capacity: Resources
    engine: EngineInfo | None
    engine_error: str | None


def resource_report(settings: Settings, host: HostProbe, runtime: ContainerRuntime) -> ResourceReport:
    inventory = host.probe()
    try:
        engine: EngineInfo | None = runtime.engine_info()
        error = None
    except RuntimeUnavailable as exc:
        engine, error = None, str(exc)
    return ResourceReport(
        host=inventory,
        compute_environment=DEFAULT_COMPUTE_ENVIRONMENT,
        capacity=capacity(inventory, settings.reserve),
        engine=engine,
        engine_error=error,
    )
