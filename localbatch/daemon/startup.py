"""What a daemon does before it serves: apply the configured infrastructure, then make the
store and the engine agree again (``core.reconcile``) and hand the jobs in flight to the loop.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from localbatch import logs
from localbatch.config import Settings
from localbatch.core import lifecycle, naming, outcome
from localbatch.core.inventory import HostInventory, environment_on, unknown_gpus
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus
from localbatch.core.lifecycle import StopEffect
from localbatch.core.outcome import Ending
from localbatch.core.reconcile import Adopt, Collect, ObservedContainer, RemoveOrphan, reconcile
from localbatch.daemon import staging as transfers
from localbatch.daemon.loop import ControlLoop, Flight, remove_quietly
from localbatch.errors import ConfigError
from localbatch.ports import Clock, ContainerExit, ContainerInfo, ContainerRuntime, StateStore

logger = logging.getLogger(__name__)
VANISHED = "Container vanished while the daemon was down"
REQUEUED = "Queued again: the daemon stopped before the job's container started"


def apply_infrastructure(settings: Settings, store: StateStore, host: HostInventory, now_ms: int = 0) -> None:
    """Put the configured scheduling policies, compute environments and queues in the store
    (objects created through the API and not named in the config are left as they are), and
    create the declared consumable resources that do not exist yet, created at ``now_ms``: an
    existing one keeps its quantity, which jobs and UpdateConsumableResource change."""
    for resource in settings.consumable_resources:
        if store.get_consumable_resource(resource.name) is None:
            store.put_consumable_resource(replace(resource, created_at=now_ms))
    for policy in settings.scheduling_policies:  # before the queues that name them
        store.put_scheduling_policy(policy)
    for declared in settings.compute_environments:
        environment = environment_on(
            host,
            settings.reserve,
            name=declared.name,
            max_vcpus=declared.max_vcpus,
            max_memory_mib=declared.max_memory_mib,
            gpu_ids=declared.gpu_ids,
            state=declared.state,
            spot=declared.spot,
        )
        missing = unknown_gpus([g.device_id for g in host.gpus], environment)
        if missing:
            present = ", ".join(g.device_id for g in host.gpus) or "none"
            raise ConfigError(
                f"{settings.config_file or 'settings'}: compute environment {declared.name} names GPU(s) "
                f"{', '.join(missing)}, which this host does not have (GPUs found: {present})"
            )
        store.put_compute_environment(environment)
    for queue in settings.job_queues:
        store.put_job_queue(queue)
    for warning in settings.warnings:
        logger.warning("%s: %s", settings.config_file or "settings", warning)


def recover(loop: ControlLoop, settings: Settings, store: StateStore, runtime: ContainerRuntime, clock: Clock) -> None:
    """Take over the jobs in flight: adopt running containers, collect those that exited while
    the daemon was away, requeue jobs whose container never started (that attempt never ran),
    fail the attempts whose container vanished after it started (retrying per strategy), end
    terminated those a TerminateJob had stopped (not retried), and remove containers of ours
    that belong to no job in flight."""
    active = store.active_jobs()
    observed = runtime.list_containers({naming.LABEL_HOME: settings.home_id})
    jobs = {job.job_id: job for job in active}
    flights: dict[str, Flight] = {}
    changes: list[tuple[Job, list[JobEvent]]] = []
    now = clock.now_ms()
    # A multi-node job's parent never has a container: its nodes do; the loop brings the
    # parent back in line with its main node (ControlLoop.load).
    with_containers = [job for job in active if not job.is_multinode_parent]
    for action in reconcile(with_containers, [_observed(c) for c in observed]):
        if isinstance(action, RemoveOrphan):
            logger.info("removing container %s: no job in flight owns it", action.container_id)
            remove_quietly(runtime, action.container_id)
            continue
        job = jobs[action.job_id]
        events: list[JobEvent] = []
        if isinstance(action, Adopt):
            if job.status is JobStatus.STARTING:
                job, event = lifecycle.mark_running(job, now, action.container_id)
                events.append(event)
            logger.info("job=%s re-adopting running container %s", job.job_id, action.container_id)
            flights[job.job_id] = loop.adopt(job, action.container_id)
        elif (
            isinstance(action, Collect)
            and _terminating(job) is None
            and (ran := _exit_to_upload_after(runtime, job, action.container_id)) is not None
        ):
            # It exited while the daemon was away: the loop uploads its outputs, then ends it.
            if job.status is JobStatus.STARTING:
                job, event = lifecycle.mark_running(job, now, action.container_id)
                events.append(event)
            stopped_for = Ending.TIMED_OUT if _past_timeout(job, ran) else None
            flights[job.job_id] = loop.adopt(job, action.container_id, stopped_for)
        elif isinstance(action, Collect):
            job, events = _collect(settings, runtime, job, action.container_id, now)
        else:
            job, event = _without_container(job, now)
            events.append(event)
        jobs[job.job_id] = job
        changes.append((job, events))
    if changes:
        store.save_jobs(changes)
    _sweep_staging(settings, [job for job in jobs.values() if job.status in (JobStatus.STARTING, JobStatus.RUNNING)])
    loop.load(list(jobs.values()), flights)


def _exit_to_upload_after(runtime: ContainerRuntime, job: Job, container_id: str) -> ContainerExit | None:
    """The exit of a stopped container of a job with [[outputs]] that did run (not one created,
    never started); None for any other."""
    return runtime.wait(container_id, 0) if job.container.outputs else None


def _sweep_staging(settings: Settings, in_flight: list[Job]) -> None:
    """Remove the staging directories no attempt in flight uses (left by a daemon that stopped
    before it could remove them)."""
    keep = {
        transfers.attempt_dir(settings.staging_dir, job.job_id, attempt.number)
        for job in in_flight
        if (attempt := job.current_attempt) is not None
    }
    root = settings.staging_dir
    for job_dir in sorted(root.iterdir()) if root.is_dir() else []:
        for where in sorted(job_dir.iterdir()) if job_dir.is_dir() else []:
            if where not in keep:
                transfers.discard(where)
        if job_dir.is_dir() and not any(job_dir.iterdir()):
            job_dir.rmdir()


def _observed(container: ContainerInfo) -> ObservedContainer:
    attempt = container.labels.get(naming.LABEL_ATTEMPT, "")
    return ObservedContainer(
        container_id=container.container_id,
        job_id=container.labels.get(naming.LABEL_JOB_ID),
        attempt=int(attempt) if attempt.isdigit() else None,
        running=container.running,
    )


def _terminating(job: Job) -> str | None:
    """The reason of a TerminateJob recorded for the job's attempt in flight, whose container
    the daemon went away before it saw stop: that attempt ends terminated, whatever its exit."""
    request = job.stop_request
    if request is None or lifecycle.stop_effect(job) is not StopEffect.STOP_CONTAINER:
        return None
    return request.reason


def _past_timeout(job: Job, exit_: ContainerExit) -> bool:
    """The container stopped at or after its attempt's timeout: stopped for it by a daemon that
    died before it could record why, or run past a deadline no daemon watched. Either way AWS
    would have ended the attempt for its timeout."""
    attempt = job.current_attempt
    if job.timeout_s is None or attempt is None or attempt.started_at is None or exit_.finished_at_ms is None:
        return False
    return exit_.finished_at_ms >= attempt.started_at + job.timeout_s * 1000


def _without_container(job: Job, now: EpochMs) -> tuple[Job, JobEvent]:
    """A job in flight with no container that ever ran: a launch that never started is queued
    again (that attempt never ran); a RUNNING job's container vanished, so its attempt failed;
    either one terminated meanwhile (TerminateJob) ends terminated."""
    reason = _terminating(job)
    if reason is not None:
        job, event, _ = lifecycle.finish_attempt(job, outcome.terminated(None, reason), now)
        return job, event
    if job.status is JobStatus.STARTING:
        return lifecycle.requeue(job, now, REQUEUED)
    logger.info("job=%s: its container is gone; the attempt failed", job.job_id)
    job, event, _ = lifecycle.finish_attempt(job, outcome.lost(VANISHED), now)
    return job, event


def _collect(
    settings: Settings, runtime: ContainerRuntime, job: Job, container_id: str, now: EpochMs
) -> tuple[Job, list[JobEvent]]:
    """A container that stopped while the daemon was away: its output (all of it, from the
    engine) into the attempt's log and its exit into the outcome (terminated, when a TerminateJob
    was recorded for it; timed out, when it stopped past the attempt's timeout); a container that was created
    but never started means the attempt never ran, and the job is requeued. It is removed."""
    attempt = job.current_attempt
    assert attempt is not None
    exit_ = runtime.wait(container_id, 0)
    events: list[JobEvent] = []
    if exit_ is None:  # created, never started
        remove_quietly(runtime, container_id)
        job, event = _without_container(job, now)
        return job, [event]
    path = logs.attempt_log_path(settings.logs_dir, job.job_id, attempt.number)
    logs.discard(path)
    pump = logs.LogPump(runtime.logs(container_id), path, max_bytes=settings.max_attempt_log_mib * 1024 * 1024 or None)
    pump.start()
    pump.join(timeout=30)
    remove_quietly(runtime, container_id)
    if job.status is JobStatus.STARTING:  # it started and ended while the daemon was away
        job, event = lifecycle.mark_running(job, now, container_id)
        events.append(event)
    reason = _terminating(job)
    if reason is not None:
        ending = outcome.terminated(exit_.exit_code, reason)
    elif _past_timeout(job, exit_):
        ending = outcome.timed_out(exit_.exit_code)
    else:
        ending = outcome.exited(exit_.exit_code, exit_.oom_killed, exit_.error)
    job, event, _ = lifecycle.finish_attempt(job, ending, now)
    return job, [*events, event]
