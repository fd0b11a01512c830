"""``localbatch run`` without a daemon: one job, in this process, through its whole life.

The job takes the same path through AWS Batch's states as under the daemon
(SUBMITTED -> RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED/FAILED, back to RUNNABLE for a
retry) and is recorded in the same state store, so ``ls`` and ``describe`` show it
afterwards. The decisions (overrides, retries, reasons) are the core's; this module does
the I/O between them:

- ``submit`` registers the definition (reusing the latest revision when nothing changed),
  checks the job can ever fit the compute environment, and records it SUBMITTED.
- ``run`` starts attempts until the job is SUCCEEDED or FAILED. While an attempt runs, the
  loop never blocks longer than ``poll_s``: it waits on the container, enforces the attempt
  timeout, and honours stop requests. Stopping (SIGTERM, SIGKILL after the grace period)
  happens on a helper thread so a second stop request can force a kill at once.
- Every container is removed once its outcome is read; its output stays in the attempt's
  log file.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from localbatch import __version__, jobdef, logs
from localbatch.config import DEFAULT_COMPUTE_ENVIRONMENT, DEFAULT_QUEUE, Settings
from localbatch.core import lifecycle, naming, outcome
from localbatch.core.definition import JobDefinition
from localbatch.core.inventory import GpuDevice
from localbatch.core.jobs import Job, JobEvent, JobStatus, transition
from localbatch.core.outcome import AttemptOutcome, Ending
from localbatch.core.resources import Resources, shortfall
from localbatch.core.retry import RetryDecision
from localbatch.errors import ContainerRuntimeError, ImageError, InvalidOverrides
from localbatch.ports import Clock, ContainerRequest, ContainerRuntime, StateStore

logger = logging.getLogger(__name__)

# AWS's code for a job no compute environment can ever satisfy (aws-batch-reference.md §3.6).
JOB_RESOURCE_REQUIREMENT = "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"


class RunObserver(Protocol):
    """What the front door is told while a job runs (to print it)."""

    def transition(self, job: Job, event: JobEvent) -> None: ...

    def note(self, job: Job, message: str) -> None: ...

    def warn(self, job: Job, message: str) -> None: ...

    def output(self, chunk: bytes) -> None: ...


@dataclass
class _InFlight:
    """The attempt whose container is running."""

    container_id: str
    pump: logs.LogPump
    stop_cause: Ending | None = None  # TIMED_OUT or TERMINATED once we began stopping it
    stop_reason: str = ""
    killed: bool = False


class Runner:
    def __init__(
        self,
        *,
        settings: Settings,
        runtime: ContainerRuntime,
        store: StateStore,
        clock: Clock,
        capacity: Resources,
        gpus: tuple[GpuDevice, ...] = (),
        observer: RunObserver,
        poll_s: float = 0.25,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        new_task_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._store = store
        self._clock = clock
        self._capacity = capacity
        self._gpus = gpus
        self._observer = observer
        self._poll_s = poll_s
        self._new_id = new_id
        self._new_task_id = new_task_id
        self._stop_reason: str | None = None
        self._force = threading.Event()

    # -- front door API ---------------------------------------------------------------

    def submit(self, definition: JobDefinition, overrides: lifecycle.JobOverrides, job_name: str | None = None) -> Job:
        """Record a SUBMITTED job for ``definition`` with ``overrides``.

        Bad overrides raise InvalidOverrides and an engine that does not answer raises
        RuntimeUnavailable, both before anything is recorded.
        """
        problems = lifecycle.check_overrides(overrides)
        if problems:
            raise InvalidOverrides(problems)
        self._runtime.engine_info()
        revision = self._register(definition)
        job, event = lifecycle.new_job(
            definition,
            revision,
            overrides,
            job_id=self._new_id(),
            job_name=job_name or definition.name,
            job_queue=DEFAULT_QUEUE,
            now=self._clock.now_ms(),
        )
        self._save(job, event)
        return job

    def request_stop(self, reason: str) -> None:
        """Stop the job (the first call lets the container stop gracefully, a second kills it).

        Safe to call from a signal handler: it only sets flags.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
        else:
            self._force.set()

    def run(self, job: Job) -> Job:
        """Drive ``job`` from SUBMITTED to SUCCEEDED or FAILED."""
        job = self._move(job, JobStatus.RUNNABLE)
        short = shortfall(job.container.resources, self._capacity)
        if short is not None:
            reason = (
                f"{JOB_RESOURCE_REQUIREMENT} - the job {short} in compute environment "
                f"{DEFAULT_COMPUTE_ENVIRONMENT}; it can never run on this host"
            )
            return self._fail_before_start(job, reason)
        while not job.status.is_terminal:
            if self._stop_reason is not None:
                # No attempt in flight: AWS treats stopping such a job as a cancel.
                return self._fail_before_start(job, self._stop_reason, cancelled=True)
            job = self._run_attempt(job)
        return job

    # -- one attempt ------------------------------------------------------------------

    def _run_attempt(self, job: Job) -> Job:
        number = len(job.attempts) + 1
        task_id = self._new_task_id()
        name = naming.container_name(job.job_id, number)
        job, event = lifecycle.begin_attempt(
            job,
            self._clock.now_ms(),
            task_id=task_id,
            container_name=name,
            log_stream_name=naming.log_stream_name(job.job_definition_name, task_id),
            compute_environment=DEFAULT_COMPUTE_ENVIRONMENT,
            gpu_ids=tuple(g.device_id for g in self._gpus[: job.container.resources.gpus]),
        )
        self._save(job, event)
        request = ContainerRequest(
            name=name,
            spec=job.container,
            environment=naming.container_environment(job, number),
            labels=naming.container_labels(job, number, self._settings.home_id, __version__),
            gpu_device_ids=job.gpu_ids,
        )
        created = self._create(request)
        if isinstance(created, AttemptOutcome):
            return self._finish(job, created)
        try:
            job, ending = self._start_and_watch(job, created)
        except BaseException:
            # The store failed, or a bug: whatever it was, the container must not outlive us.
            self._remove_quietly(created)
            raise
        return self._finish(job, ending)

    def _create(self, request: ContainerRequest) -> str | AttemptOutcome:
        """The new container's id, or how the attempt ended without one.

        Creating may pull the image, which can take minutes; it runs on a helper thread so a
        stop request ends the attempt at once. An abandoned creation that completes later
        removes its own container.
        """
        creation = _Creation(self._runtime, request)
        creation.start()
        while not creation.wait(self._poll_s):
            if self._stop_reason is not None:
                creation.abandon()
                return outcome.terminated(None, self._stop_reason)
        return creation.result()

    def _start_and_watch(self, job: Job, container_id: str) -> tuple[Job, AttemptOutcome]:
        if self._stop_reason is not None:  # stopped just as the container was created
            self._remove_quietly(container_id)
            return job, outcome.terminated(None, self._stop_reason)
        try:
            self._runtime.start(container_id)
        except ContainerRuntimeError as exc:
            self._remove_quietly(container_id)
            return job, outcome.failed_to_start(str(exc), image_missing=False)
        job, event = lifecycle.mark_running(job, self._clock.now_ms(), container_id)
        self._save(job, event)
        number = len(job.attempts)
        path = logs.attempt_log_path(self._settings.logs_dir, job.job_id, number)
        pump = logs.LogPump(self._runtime.logs(container_id), path, self._observer.output)
        pump.start()
        ending = self._watch(job, _InFlight(container_id, pump))
        if pump.error is not None:
            self._observer.warn(job, f"the output of attempt {number} was not all saved: {pump.error}")
        return job, ending

    def _watch(self, job: Job, flight: _InFlight) -> AttemptOutcome:
        """Wait for the container to exit, stopping it on timeout or request; say how it ended."""
        started_at = job.current_attempt.started_at if job.current_attempt else None
        deadline = None
        if job.timeout_s is not None and started_at is not None:
            deadline = started_at + job.timeout_s * 1000
        try:
            while True:
                exit_ = self._runtime.wait(flight.container_id, self._poll_s)
                if exit_ is not None:
                    break
                if self._stop_reason is not None and flight.stop_cause is None:
                    self._begin_stop(flight, Ending.TERMINATED, self._stop_reason)
                elif deadline is not None and flight.stop_cause is None and self._clock.now_ms() >= deadline:
                    self._observer.note(job, f"attempt exceeded its {job.timeout_s} s timeout; stopping it")
                    self._begin_stop(flight, Ending.TIMED_OUT, outcome.TIMEOUT)
                if self._force.is_set() and not flight.killed:
                    flight.killed = True
                    self._in_background(lambda: self._runtime.stop(flight.container_id, 0))
        except ContainerRuntimeError as exc:
            flight.pump.join(timeout=2)
            self._remove_quietly(flight.container_id)
            return outcome.lost(f"Container engine failed while the job ran: {exc}")
        flight.pump.join(timeout=10)
        self._remove_quietly(flight.container_id)
        if flight.stop_cause is Ending.TIMED_OUT:
            return outcome.timed_out(exit_.exit_code)
        if flight.stop_cause is Ending.TERMINATED:
            return outcome.terminated(exit_.exit_code, flight.stop_reason)
        return outcome.exited(exit_.exit_code, exit_.oom_killed, exit_.error)

    def _begin_stop(self, flight: _InFlight, cause: Ending, reason: str) -> None:
        flight.stop_cause = cause
        flight.stop_reason = reason
        grace = 0.0 if self._force.is_set() else self._settings.stop_timeout_s
        self._in_background(lambda: self._runtime.stop(flight.container_id, grace))

    def _in_background(self, action: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                action()
            except ContainerRuntimeError as exc:
                logger.warning("stopping a container failed: %s", exc)

        threading.Thread(target=guarded, name="container-stop", daemon=True).start()

    def _remove_quietly(self, container_id: str) -> None:
        _remove_quietly(self._runtime, container_id)

    # -- bookkeeping ------------------------------------------------------------------

    def _finish(self, job: Job, ending: AttemptOutcome) -> Job:
        job, event, decision = lifecycle.finish_attempt(job, ending, self._clock.now_ms())
        self._save(job, event)
        if decision is not None:
            self._note_decision(job, decision)
        return job

    def _note_decision(self, job: Job, decision: RetryDecision) -> None:
        verdict = "retrying" if decision.retry else "not retrying"
        self._observer.note(job, f"{verdict}: {decision.why}")

    def _fail_before_start(self, job: Job, reason: str, *, cancelled: bool = False) -> Job:
        job, event = lifecycle.fail_before_start(job, self._clock.now_ms(), reason, cancelled=cancelled)
        self._save(job, event)
        return job

    def _move(self, job: Job, to: JobStatus) -> Job:
        job, event = transition(job, to, self._clock.now_ms())
        self._save(job, event)
        return job

    def _save(self, job: Job, event: JobEvent) -> None:
        self._store.save_job(job, [event])
        self._observer.transition(job, event)

    def _register(self, definition: JobDefinition) -> int:
        """The revision to run: the latest one if it is this very definition, else a new one."""
        document = jobdef.to_document(definition)
        latest = self._store.get_job_definition(definition.name)
        if latest is not None and latest.document == document:
            return latest.revision
        return self._store.register_job_definition(definition.name, document, self._clock.now_ms()).revision


def exit_status(job: Job, interrupted_by: int | None = None) -> int:
    """What ``localbatch run`` exits with: 0; the container's exit code; 128 + the signal
    number when a signal stopped the job; 1 when the job never ran."""
    if interrupted_by is not None and (job.is_terminated or job.is_cancelled):
        return 128 + interrupted_by
    if job.status is JobStatus.SUCCEEDED:
        return 0
    attempt = job.current_attempt
    if attempt is not None and attempt.exit_code is not None and attempt.exit_code != 0:
        return attempt.exit_code
    return 1


def _remove_quietly(runtime: ContainerRuntime, container_id: str) -> None:
    try:
        runtime.remove(container_id)
    except ContainerRuntimeError as exc:
        logger.warning("could not remove container %s: %s", container_id, exc)


class _Creation:
    """One container creation on a helper thread, which the runner may walk away from."""

    def __init__(self, runtime: ContainerRuntime, request: ContainerRequest) -> None:
        self._runtime = runtime
        self._request = request
        self._lock = threading.Lock()
        self._abandoned = False
        self._container_id: str | None = None
        self._ending: AttemptOutcome | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="container-create", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout_s: float) -> bool:
        """True once the creation is over (either way)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def result(self) -> str | AttemptOutcome:
        if self._error is not None:
            raise self._error
        if self._container_id is not None:
            return self._container_id
        assert self._ending is not None
        return self._ending

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            container_id, self._container_id = self._container_id, None
        if container_id is not None:
            _remove_quietly(self._runtime, container_id)

    def _work(self) -> None:
        container_id = None
        try:
            container_id = self._runtime.create(self._request)
        except ImageError as exc:
            self._ending = outcome.failed_to_start(exc.detail, image_missing=True)
        except ContainerRuntimeError as exc:
            self._ending = outcome.failed_to_start(str(exc), image_missing=False)
        except BaseException as exc:  # handed to the runner's thread, which re-raises it
            self._error = exc
        with self._lock:
            if not self._abandoned:
                self._container_id = container_id
                return
        if container_id is not None:
            _remove_quietly(self._runtime, container_id)
