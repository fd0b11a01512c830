"""localbatch's API extensions, for what AWS keeps elsewhere (CloudWatch Logs, the console):

    GET /v1/localbatch/status      the daemon: pid, uptime, socket, capacity, job counts
    GET /v1/localbatch/resources   the host, and per compute environment and per GPU what is
                                   allocated to whom; job counts per queue
    GET /v1/localbatch/logs        ?jobId=&attempt=&follow=true  an attempt's output, streamed
    GET /v1/localbatch/events      ?jobId=  the job's state changes, oldest first, and who
                                   submitted it (``submittedBy``: an API key's name, the
                                   daemon's OS user, or null for jobs from before it was kept)
    GET /v1/localbatch/usage       ?jobId=  what each attempt used (CPU, memory, GPU) and, while
                                   it runs, the live readings; ?jobDefinition=&limit=  the
                                   definition's recent ended attempts with what each asked
                                   for (``advise``); neither: every running job's live usage
    GET /v1/localbatch/event-stream ?after=SEQ&jobQueue=&status=S1,S2&since=MS&limit=&waitSeconds=
                                   the event log after ``after``, oldest first, as EventBridge
                                   events (``events``: [{"seq", "event"}], ``lastSeq``: where to
                                   continue); with ``waitSeconds`` (at most 20) an empty answer
                                   waits that long for the next entry (long poll)
    GET /v1/localbatch/schedules   the configured schedules, triggers, webhooks and hooks, with
                                   each rule's next and last run
    POST /v1/localbatch/interrupt  {"jobId": ...}  reclaim a RUNNING job's host as Spot would
                                   (rehearsal): the attempt fails with "Host EC2 (instance
                                   i-...) terminated." and its retry rules decide the rest

The daemon serves them on its socket; without a daemon the CLI calls the same handlers
in-process (no allocations then: nothing runs that the store knows of).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

from localbatch import __version__, logs
from localbatch.api.principal import current_principal, daemon_owner, is_admin
from localbatch.automation_settings import Submission
from localbatch.config import Settings
from localbatch.core import policy, spot, usage
from localbatch.core.delivery import EventFilter
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.inventory import HostInventory
from localbatch.core.jobs import EpochMs, Job, JobStatus
from localbatch.core.naming import Arns
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation
from localbatch.core.schedules import ScheduleState, next_run
from localbatch.core.usage import AttemptUsage
from localbatch.errors import InvalidRequest, JobNotFound, Problem, RuntimeUnavailable
from localbatch.events import envelope
from localbatch.ports import ContainerRuntime, EventLogQuery, StateStore

STATUS = "/v1/localbatch/status"
RESOURCES = "/v1/localbatch/resources"
LOGS = "/v1/localbatch/logs"
EVENTS = "/v1/localbatch/events"
EVENT_STREAM = "/v1/localbatch/event-stream"
SCHEDULES = "/v1/localbatch/schedules"
MAX_WAIT_S = 20.0  # a long poll's longest wait: well inside the client's call timeout
MAX_STREAM_PAGE = 1_000
INTERRUPT = "/v1/localbatch/interrupt"
USAGE = "/v1/localbatch/usage"
MAX_HISTORY = 200  # the most attempts one usage history answer carries

Allocations = Callable[[], "tuple[Allocation, ...]"]
Interrupt = Callable[[str], None]
LiveUsage = Callable[[], "Mapping[str, AttemptUsage]"]
Footprint = Callable[[], "Mapping[str, int]"]


class Extensions:
    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        host: HostInventory,
        capacity: Resources,
        runtime: ContainerRuntime,
        allocations: Allocations = tuple,
        interrupt: Interrupt | None = None,
        live_usage: LiveUsage = dict,
        engine_outage: Callable[[], tuple[EpochMs, str] | None] = lambda: None,
        footprint: Footprint = dict,
        started_at: EpochMs | None = None,
        now_ms: Callable[[], EpochMs] = lambda: int(time.time() * 1000),
        poll_s: float = 0.2,
    ) -> None:
        self._settings = settings
        self._store = store
        self._host = host
        self._capacity = capacity
        self._runtime = runtime
        self._allocations = allocations
        self._interrupt = interrupt
        self._live_usage = live_usage
        self._engine_outage = engine_outage
        self._footprint = footprint
        self._started_at = started_at
        self._now_ms = now_ms
        self._poll_s = poll_s
        self._closing = threading.Event()  # set when the server stops: long polls answer at once

    def close(self) -> None:
        """The server is stopping: event-stream long polls answer now instead of waiting."""
        self._closing.set()

    def reads(self) -> dict[str, Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]]:
        """The GET extensions that answer JSON from the store, by path: what the daemon serves
        and what the CLI answers in-process when no daemon runs."""
        return {
            RESOURCES: self.resources,
            EVENTS: self.events,
            USAGE: self.usage,
            EVENT_STREAM: self.event_stream,
            SCHEDULES: self.schedules,
        }

    def status(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        now = self._now_ms()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "home": str(self._settings.home),
            "socket": str(self._settings.socket_path),
            "startedAt": self._started_at,
            "uptimeSeconds": None if self._started_at is None else round((now - self._started_at) / 1000, 1),
            "capacity": _resources(self._capacity),
            "jobs": {status.value: n for status, n in self._store.count_jobs().items()},
            "engine": self._engine_state(),
            # Entries in each of the control loop's records (ControlLoop.footprint): all 0 but
            # "ended" once every job ended, or the daemon leaks (benchmarks.soak checks it).
            "loop": dict(self._footprint()),
        }

    def _engine_state(self) -> dict[str, Any]:
        """Whether the control loop finds the container engine answering, as it last asked."""
        outage = self._engine_outage()
        if outage is None:
            return {"available": True}
        since, error = outage
        return {"available": False, "unavailableSince": since, "error": error}

    def resources(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        allocations = self._allocations()
        environments = self._store.list_compute_environments()
        holders = {gpu: a.job_id for a in allocations for gpu in a.gpu_ids}
        owners = {gpu: e.name for e in environments for gpu in e.gpu_ids}
        try:
            engine: dict[str, Any] | None = _engine(self._runtime)
            engine_error = None
        except RuntimeUnavailable as exc:
            engine, engine_error = None, str(exc)
        return {
            "host": {
                "cpus": self._host.cpus,
                "memoryMiB": self._host.memory_mib,
                "gpuSource": self._host.gpu_source,
                "capacity": _resources(self._capacity),
            },
            "engine": engine,
            "engineError": engine_error,
            "computeEnvironments": [_environment(e, allocations) for e in environments],
            "gpus": [
                {
                    "id": g.device_id,
                    "index": g.index,
                    "uuid": g.uuid,
                    "name": g.name,
                    "memoryMiB": g.memory_mib,
                    "computeEnvironment": owners.get(g.device_id),
                    "jobId": holders.get(g.device_id),
                }
                for g in self._host.gpus
            ],
            "jobQueues": [self._queue(q) for q in self._store.list_job_queues()],
        }

    def _queue(self, queue: JobQueue) -> dict[str, Any]:
        return {
            "jobQueueName": queue.name,
            "priority": queue.priority,
            "state": queue.state.value,
            "computeEnvironments": list(queue.compute_environments),
            "jobs": {status.value: n for status, n in self._store.count_jobs(queue.name).items()},
        }

    def events(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        job_id = query.get("jobId") or ""
        job = self._store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return {
            "submittedBy": job.submitted_by,
            "events": [
                {
                    "at": e.at,
                    "from": e.from_status.value if e.from_status else None,
                    "to": e.to_status.value,
                    "reason": e.reason,
                    "detail": e.detail,
                }
                for e in self._store.list_events(job_id)
            ],
        }

    def usage(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        live = self._live_usage()
        if query.get("jobId"):
            job_id, job = self._running_job(query["jobId"])  # a multi-node job's: its main node's
            now = live.get(job_id) if job.status is JobStatus.RUNNING else None
            return {
                "jobId": job_id,
                "attempts": [
                    {"attempt": a.number, **({"usage": usage.to_document(a.usage)} if a.usage else {})}
                    for a in job.attempts
                    if a.finished
                ],
                **({"live": usage.to_document(now)} if now is not None else {}),
            }
        if query.get("jobDefinition"):
            return self._usage_history(query["jobDefinition"], query.get("limit") or "20")
        return {"running": {job_id: usage.to_document(found) for job_id, found in sorted(live.items())}}

    def _usage_history(self, name: str, limit_text: str) -> dict[str, Any]:
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= MAX_HISTORY:
            raise InvalidRequest([Problem("limit", f"a whole number 1..{MAX_HISTORY}, got {limit_text!r}")])
        limit = int(limit_text)
        runs: list[dict[str, Any]] = []
        for job in self._store.recent_jobs(name.partition(":")[0], limit):
            resources = job.container.resources
            for a in reversed(job.attempts):
                if a.started_at is None or a.stopped_at is None or len(runs) >= limit:
                    continue
                runs.append(
                    {
                        "jobId": job.job_id,
                        "attempt": a.number,
                        "vcpus": resources.vcpus,
                        "memoryMiB": resources.memory_mib,
                        "gpus": resources.gpus,
                        "startedAt": a.started_at,
                        "stoppedAt": a.stopped_at,
                        "exitCode": a.exit_code,
                        "oomKilled": (a.reason or "").startswith("OutOfMemoryError"),
                        **({"usage": usage.to_document(a.usage)} if a.usage else {}),
                    }
                )
        return {"jobDefinitionName": name.partition(":")[0], "runs": runs}

    def event_stream(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """A page of the event log (see the module's docstring)."""
        statuses = tuple(s.strip().upper() for s in (query.get("status") or "").split(",") if s.strip())
        unknown = [s for s in statuses if s not in {x.value for x in JobStatus}]
        if unknown:
            allowed = ", ".join(x.value for x in JobStatus)
            raise InvalidRequest([Problem("status", f"{', '.join(unknown)}: not a job status; allowed: {allowed}")])
        log_query = EventLogQuery(
            after_seq=_whole(query, "after", 0, 0, 2**62),
            job_queue=query.get("jobQueue") or None,
            statuses=statuses,
            since=_whole(query, "since", None, 0, 2**62),
            limit=_whole(query, "limit", 100, 1, MAX_STREAM_PAGE),
        )
        wait_s = min(float(_whole(query, "waitSeconds", 0, 0, 3600)), MAX_WAIT_S)
        deadline = time.monotonic() + wait_s
        while True:
            entries = self._store.read_event_log(log_query)
            if entries or time.monotonic() >= deadline:
                break
            if self._closing.wait(min(self._poll_s, max(0.0, deadline - time.monotonic()))):
                break
        arns = Arns(self._settings.region, self._settings.account_id)
        home_id = self._settings.home_id

        def counts(job_id: str) -> dict[JobStatus, int]:
            return self._store.count_jobs(array_job_id=job_id)

        return {
            "events": [{"seq": e.seq, "event": envelope(e, arns, home_id, counts)} for e in entries],
            "lastSeq": entries[-1].seq if entries else log_query.after_seq,
        }

    def schedules(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """The automation as configured, with each rule's record."""
        automation = self._settings.automation
        records = self._store.get_rule_states()
        now = self._now_ms()
        found = []
        for schedule in automation.schedules:
            state = ScheduleState.from_record(records.get(schedule.name))
            found.append(
                {
                    "name": schedule.name,
                    "expression": schedule.expression.text,
                    "state": "ENABLED" if schedule.enabled else "DISABLED",
                    "catchUp": schedule.catch_up,
                    **_submits(schedule.submission),
                    "nextRunAt": next_run(schedule.expression, state, now) if schedule.enabled else None,
                    **_last_run(state.as_record() if state is not None else {}),
                }
            )
        triggers = []
        for trigger in automation.triggers:
            rule = trigger.filter
            triggers.append(
                {
                    "name": trigger.name,
                    "state": "ENABLED" if trigger.enabled else "DISABLED",
                    "onStatuses": sorted(rule.statuses),
                    "jobQueues": sorted(rule.job_queues),
                    "jobNamePrefix": rule.job_name_prefix,
                    "jobDefinitions": sorted(rule.job_definitions),
                    **_submits(trigger.submission),
                    **_last_run(records.get(trigger.name) or {}),
                }
            )
        return {
            "schedules": found,
            "triggers": triggers,
            "webhooks": [
                {"name": w.name, "url": w.url, **_filter(w.filter), "maxAttempts": w.backoff.max_attempts}
                for w in automation.webhooks
            ],
            "hooks": [{"name": h.name, "command": list(h.command), **_filter(h.filter)} for h in automation.hooks],
        }

    def _running_job(self, job_id: str) -> tuple[str, Job]:
        """The job whose container runs for ``job_id``: itself, or a multi-node job's main node."""
        job = self._store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.is_multinode_parent:
            job_id = f"{job_id}#{job.main_node}"
            job = self._store.get_job(job_id) or job
        return job_id, job

    def interrupt(self, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        """Reclaim a RUNNING job's host (Spot rehearsal); the control loop stops the container."""
        job_id = str(body.get("jobId") or query.get("jobId") or "")
        if not job_id:
            raise InvalidRequest([Problem("jobId", "required: the id of a RUNNING job")])
        job_id, job = self._running_job(job_id)  # a multi-node job's host is its main node's
        attempt = job.current_attempt
        if job.status is not JobStatus.RUNNING or attempt is None:
            raise InvalidRequest(
                [Problem("jobId", f"job {job_id} is {job.status.value}; only a RUNNING job can be interrupted")]
            )
        if self._interrupt is None:  # no control loop here: nothing runs that could be stopped
            raise InvalidRequest([Problem("jobId", "interrupting a job needs the daemon")])
        host_policy = self._settings.policy
        caller = current_principal() or daemon_owner()
        refused = policy.may_stop(job.submitted_by, caller, host_policy, is_admin(caller, host_policy))
        if refused is not None:  # it stops the job's container, as TerminateJob would
            raise InvalidRequest([refused])
        self._interrupt(job_id)
        return {
            "jobId": job_id,
            "attempt": attempt.number,
            "instanceId": spot.instance_id(job_id, attempt.number),
            "statusReason": spot.host_terminated_reason(job_id, attempt.number),
        }

    def logs(self, query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        """An attempt's output (the latest, or ``attempt``); with ``follow``, what it writes
        next, then each later attempt's, until the job ends. A multi-node job's is its main
        node's (each node's own: ``<job id>#<node>``)."""
        job_id, job = self._running_job(query.get("jobId") or "")  # a multi-node job's: its main node's
        attempt = _attempt_number(query.get("attempt"), job)
        if query.get("follow", "").lower() not in ("1", "true", "yes"):
            if attempt is None:
                raise InvalidRequest([Problem("jobId", f"job {job_id} has not started an attempt yet")])
            return iter([logs.read(self._log(job_id, attempt))])
        return self._follow(job_id, attempt or 1)

    def _follow(self, job_id: str, first: int) -> Iterator[bytes]:
        number = first
        while True:
            began = yield from self._wait_for_attempt(job_id, number)
            if not began:
                return
            yield from logs.follow(self._log(job_id, number), self._done_with(job_id, number), self._poll_s)
            number += 1

    def _wait_for_attempt(self, job_id: str, number: int) -> Generator[bytes, None, bool]:
        """Heartbeats (``b""``) until attempt ``number`` begins (then True) or the job ends
        without it (then False): a queued job's follower must not block its server thread."""
        while True:
            job = self._store.get_job(job_id)
            if job is None or (len(job.attempts) < number and job.status.is_terminal):
                return False
            if len(job.attempts) >= number:
                return True
            yield b""
            time.sleep(self._poll_s)

    def _done_with(self, job_id: str, number: int) -> Callable[[], bool]:
        """Whether attempt ``number`` will write no more: the job ended or a later one began."""

        def done() -> bool:
            job = self._store.get_job(job_id)
            return job is None or job.status.is_terminal or len(job.attempts) > number

        return done

    def _log(self, job_id: str, attempt: int) -> Any:
        return logs.attempt_log_path(self._settings.logs_dir, job_id, attempt)


def _whole(query: dict[str, str], key: str, default: int | None, low: int, high: int) -> Any:
    text = query.get(key)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InvalidRequest([Problem(key, f"expected a whole number {low}..{high}, got {text!r}")])
    return int(text)


def _submits(submission: Submission) -> dict[str, Any]:
    return {
        "jobDefinition": submission.job_definition,
        "jobQueue": submission.job_queue,
        "jobName": submission.job_name,
    }


def _last_run(record: Mapping[str, object]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("lastRunAt", "lastOutcome", "lastJobId")}


def _filter(rule: EventFilter) -> dict[str, Any]:
    return {
        "jobQueues": sorted(rule.job_queues),
        "statuses": sorted(rule.statuses),
        "jobNamePrefix": rule.job_name_prefix,
        "jobDefinitions": sorted(rule.job_definitions),
    }


def _attempt_number(text: str | None, job: Job) -> int | None:
    if text is None or text == "":
        return len(job.attempts) or None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= max(len(job.attempts), 1):
        raise InvalidRequest([Problem("attempt", f"job {job.job_id} has attempts 1..{len(job.attempts)}, not {text}")])
    return int(text)


def _environment(environment: ComputeEnvironment, allocations: tuple[Allocation, ...]) -> dict[str, Any]:
    mine = [a for a in allocations if a.compute_environment == environment.name]
    used = sum((a.resources for a in mine), Resources(0, 0, 0))
    return {
        "computeEnvironmentName": environment.name,
        "state": environment.state.value,
        "capacity": _resources(environment.capacity),
        "allocated": _resources(used),
        "gpuIds": list(environment.gpu_ids),
        "jobs": [a.job_id for a in mine],
    }


def _resources(resources: Resources) -> dict[str, Any]:
    return {"vcpus": resources.vcpus, "memoryMiB": resources.memory_mib, "gpus": resources.gpus}


def _engine(runtime: ContainerRuntime) -> dict[str, Any]:
    info = runtime.engine_info()
    return {
        "name": info.name,
        "version": info.version,
        "apiVersion": info.api_version,
        "networkMode": info.network_mode,
    }
