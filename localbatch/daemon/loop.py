"""The control loop: the one place that moves jobs after submission and drives containers.

API handlers record requests (a SUBMITTED job, a stop request, a changed queue) and wake
the loop through its ``Notifier`` methods. Each ``tick(now)`` then runs, in order:

1. take in what handlers recorded;
2. collect finished container launches (running, or failed to start);
3. collect exits (one engine listing per tick, not one waiter per container);
4. apply stop requests and attempt timeouts;
5. promote SUBMITTED jobs to RUNNABLE;
6. plan (``core.scheduler.plan``): placements become STARTING attempts; every job left
   waiting gets its reason, kept in memory and shown by describe;
7. persist every change of the tick in one transaction;
8. only then act: launch the placed containers on a small pool (an image pull never
   blocks the loop), remove finished ones once their output is read.

Persist-then-act means a daemon killed at any point leaves a state ``recover`` can repair
on the next start. Stops run on helper threads (a graceful stop waits out its grace).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from localbatch import __version__, logs
from localbatch.config import Settings
from localbatch.core import lifecycle, multinode, naming, outcome
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.inventory import GpuDevice
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopKind, StopRequest, transition
from localbatch.core.lifecycle import StopEffect
from localbatch.core.outcome import AttemptOutcome, Ending
from localbatch.core.resources import Resources
from localbatch.core.scheduler import Allocation, Placement, RunnableJob, SchedulerSettings, WaitReason, plan
from localbatch.errors import ContainerRuntimeError, ImageError, LocalbatchError
from localbatch.ports import Clock, ContainerRequest, ContainerRuntime, StateStore

logger = logging.getLogger(__name__)

Change = tuple[Job, list[JobEvent]]
T = TypeVar("T")
Launch = Callable[[], "str | AttemptOutcome"]


@dataclass
class Flight:
    """A job whose container runs (or just ran): what the loop watches."""

    container_id: str
    pump: logs.LogPump | None
    deadline_ms: EpochMs | None
    stop_cause: Ending | None = None
    stop_reason: str = ""
    killed: bool = False


@dataclass
class _Launching:
    future: Future[str | AttemptOutcome]
    abandoned: threading.Event  # set by the loop; the launch checks it before starting the container


class ControlLoop:
    def __init__(
        self,
        *,
        settings: Settings,
        runtime: ContainerRuntime,
        store: StateStore,
        clock: Clock,
        host: Resources,
        gpus: tuple[GpuDevice, ...] = (),
        poll_s: float = 0.25,
        idle_s: float = 5.0,
        batch_s: float = 0.02,
        executor: Executor | None = None,
        in_background: Callable[[Callable[[], None]], None] | None = None,
        start_pump: Callable[[logs.LogPump], None] = logs.LogPump.start,
        new_task_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._settings = settings
        self._runtime = runtime
        self._store = store
        self._clock = clock
        self._host = host
        self._gpus = gpus
        self._poll_s = poll_s
        self._idle_s = idle_s
        self._batch_s = batch_s
        self._new_task_id = new_task_id
        self._scheduler = SchedulerSettings(max_head_wait_s=settings.max_head_wait_s)
        # Launches (image pulls included) and removals run here, never on the loop's thread.
        self._pool = executor or ThreadPerTask()
        # Stops wait out their grace period, so each gets a thread of its own.
        self._in_background = in_background or _on_a_thread
        self._start_pump = start_pump
        self._inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards what handler threads read
        self._active: dict[str, Job] = {}
        # Indexes of _active kept up to date by _remember, so a tick with 10,000 waiting jobs
        # neither rebuilds 10,000 scheduler inputs nor scans them for the few it wants: the
        # RUNNABLE jobs as the scheduler takes them, what the placed jobs hold, the jobs still
        # SUBMITTED, and the jobs with a stop request.
        self._runnable: dict[str, RunnableJob] = {}
        self._placed: dict[str, Allocation] = {}
        self._submitted: dict[str, None] = {}  # ordered sets: ticks handle jobs in arrival order
        self._stop_requested: dict[str, None] = {}
        self._flights: dict[str, Flight] = {}
        self._launching: dict[str, _Launching] = {}
        self._removals: list[tuple[str, logs.LogPump | None, EpochMs]] = []
        self._waiting: dict[str, WaitReason] = {}
        self._gangs: dict[str, int] = {}  # runnable multi-node parents -> their node count
        self._resync: list[str] = []  # multi-node parents found at start, to line up with their main node
        # What a failed save left unwritten, and the placements waiting on that save: retried
        # first on the next tick, so memory never stays ahead of the store.
        self._unsaved: dict[str, Change] = {}
        self._to_launch: list[Job] = []
        # Stop requests for jobs whose submission the loop has not heard of yet.
        self._early_stops: set[str] = set()
        self._queues: tuple[JobQueue, ...] = ()
        self._environments: tuple[ComputeEnvironment, ...] = ()
        self._dirty = True
        self._next_timed_plan_ms: EpochMs | None = None  # when a waiting head crosses max_head_wait

    # -- Notifier (called from API handler threads) ---------------------------------------------

    def job_submitted(self, job: Job) -> None:
        self._inbox.put(("job", job))
        self._wake.set()

    def stop_requested(self, job_id: str) -> None:
        self._inbox.put(("stop", job_id))
        self._wake.set()

    def infrastructure_changed(self) -> None:
        self._inbox.put(("infra", None))
        self._wake.set()

    # -- what handlers may ask ------------------------------------------------------------------

    def waiting_reason(self, job_id: str) -> str | None:
        with self._lock:
            reason = self._waiting.get(job_id)
        return None if reason is None else str(reason)

    def allocations(self) -> tuple[Allocation, ...]:
        """What the STARTING and RUNNING jobs hold, for the resources endpoint."""
        with self._lock:
            return tuple(self._placed.values())

    # -- running ----------------------------------------------------------------------------------

    def load(self, jobs: Sequence[Job], flights: dict[str, Flight]) -> None:
        """Take over the jobs in flight found at start (``startup.recover`` prepares them)."""
        for job in jobs:
            self._remember(job)
        self._resync = [job.job_id for job in jobs if job.is_multinode_parent]
        self._flights = dict(flights)
        self._reload_infrastructure()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="control-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        """Stop ticking. Running containers keep running; the next start re-adopts them."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def release_all(self, timeout_s: float = 10) -> None:
        """Leave no container behind, for an engine that lives only as long as its process
        (``localbatch run`` without a daemon): kill what still runs, remove every container
        this loop started. Call after ``stop``."""
        for flight in self._flights.values():
            self._stop_container(flight.container_id, 0)
            self._removals.append((flight.container_id, flight.pump, 0))
        self._flights.clear()
        for launching in self._launching.values():
            launching.abandoned.set()
            if launching.future.done() and isinstance(result := _result(launching.future), str):
                self._removals.append((result, None, 0))
        for container_id, pump, _ in self._removals:
            if pump is not None and pump.is_alive():
                pump.join(timeout_s)
            self._remove_quietly(container_id)
        self._removals.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick(self._clock.now_ms())
            except LocalbatchError:
                logger.exception("tick failed; the next tick retries")
            except Exception:  # a bug must not kill the daemon: log it and keep serving
                logger.exception("tick failed unexpectedly; the next tick retries")
            busy = self._flights or self._launching or self._removals
            if self._wake.wait(self._poll_s if busy else self._idle_s):
                # Woken by a request: let a burst (10,000 SubmitJob calls) gather for a moment
                # so it costs a few ticks, not one tick (and one plan) per request.
                self._stopping.wait(self._batch_s)
            self._wake.clear()

    # -- one tick ---------------------------------------------------------------------------------

    def tick(self, now: EpochMs) -> None:
        changes, self._unsaved = self._unsaved, {}
        self._take_inbox(changes)
        self._resync_multinode(now, changes)
        self._collect_launches(now, changes)
        self._collect_exits(now, changes)
        self._apply_stops(now, changes)
        self._apply_timeouts(now)
        self._promote(now, changes)
        self._to_launch += self._plan(now, changes)
        if changes:
            try:
                self._store.save_jobs(list(changes.values()))
            except LocalbatchError:
                self._unsaved = changes  # written first thing next tick; nothing launched before
                raise
        placed, self._to_launch = self._to_launch, []
        for job in placed:
            self._launch(job)
        self._remove_finished(now)

    def _record(self, changes: dict[str, Change], job: Job, event: JobEvent | None = None) -> None:
        previous = changes.get(job.job_id)
        events = (previous[1] if previous else []) + ([event] if event else [])
        changes[job.job_id] = (job, events)
        self._remember(job)
        if job.is_main_node:
            self._mirror_main_node(job, event, changes)

    def _remember(self, job: Job) -> None:
        """The loop's view of ``job``: every change goes through here, so the active jobs,
        their indexes and the waiting reasons cannot disagree."""
        job_id, status = job.job_id, job.status
        with self._lock:
            if status.is_terminal:
                self._active.pop(job_id, None)
                self._waiting.pop(job_id, None)
            else:
                self._active[job_id] = job
            if status is JobStatus.RUNNABLE and job.stop_request is None and self._schedulable(job):
                resources = multinode.request(job) if job.is_multinode_parent else job.container.resources
                self._runnable[job_id] = RunnableJob(
                    job_id, job.job_queue, resources, job.created_at, job.runnable_at or job.created_at
                )
            else:
                self._runnable.pop(job_id, None)
            if job.is_multinode_parent and job_id in self._runnable:
                self._gangs[job_id] = job.num_nodes or 0
            else:
                self._gangs.pop(job_id, None)
            if status in (JobStatus.STARTING, JobStatus.RUNNING) and not job.is_multinode_parent:
                self._placed[job_id] = Allocation(
                    job_id, job.compute_environment or "", job.container.resources, job.gpu_ids
                )
            else:
                self._placed.pop(job_id, None)
        _index(self._submitted, job_id, status is JobStatus.SUBMITTED)
        _index(self._stop_requested, job_id, job.stop_request is not None and not status.is_terminal)
        self._dirty = True
        parent = self._active.get(job.multinode_job_id or "")
        if parent is not None and parent.status is JobStatus.RUNNABLE:  # may be placeable now
            self._remember(parent)

    def _take_inbox(self, changes: dict[str, Change]) -> None:
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._dirty = True
            if kind == "job" and isinstance(value, Job):
                self._remember(value)
                if value.job_id in self._early_stops:  # cancelled before we heard of it
                    self._early_stops.discard(value.job_id)
                    self._merge_stop_request(value.job_id)
            elif kind == "stop" and isinstance(value, str):
                self._merge_stop_request(value)
                self._escalate(value)
            elif kind == "infra":
                self._reload_infrastructure()

    def _merge_stop_request(self, job_id: str) -> None:
        """The handler wrote the request to the store; carry it into the loop's copy, which the
        loop's own saves would otherwise write back without it."""
        current = self._active.get(job_id)
        if current is None:
            self._early_stops.add(job_id)  # its submission's notice is still on its way
            return
        stored = self._store.get_job(job_id)
        if stored is None or stored.stop_request is None:
            return
        self._remember(replace(current, stop_request=stored.stop_request))  # the store has it already

    def _escalate(self, job_id: str) -> None:
        """A TerminateJob for a job whose container is already stopping (waiting out its grace)
        kills it at once: what a second Ctrl-C means."""
        flight = self._flights.get(job_id)
        if flight is None or flight.stop_cause is None or flight.killed:
            return
        flight.killed = True
        container_id = flight.container_id
        self._in_background(lambda: self._stop_container(container_id, 0))

    def _reload_infrastructure(self) -> None:
        with self._lock:
            self._queues = tuple(self._store.list_job_queues())
            self._environments = tuple(self._store.list_compute_environments())

    # -- launches and exits -----------------------------------------------------------------------

    def _launch(self, job: Job) -> None:
        attempt = job.current_attempt
        assert attempt is not None
        main_container = None
        if job.node_index is not None and not job.is_main_node:
            main_container = self._main_container(job)
            if main_container is None:  # the main node ended before this node's turn came
                return
        request = ContainerRequest(
            name=attempt.container_name,
            spec=job.container,
            environment=naming.container_environment(job, attempt.number),
            labels=naming.container_labels(job, attempt.number, self._settings.home_id, __version__),
            gpu_device_ids=job.gpu_ids,
        )
        abandoned = threading.Event()
        future = self._pool.submit(self._create_and_start, request, abandoned, main_container)
        self._launching[job.job_id] = _Launching(future, abandoned)

    def _create_and_start(
        self, request: ContainerRequest, abandoned: threading.Event, main_container: str | None = None
    ) -> str | AttemptOutcome:
        """On a launch thread: pull if needed, create, start. The container id, or why not.
        A launch the loop gave up on (the job was terminated meanwhile) is not started. A
        multi-node job's non-main node first learns where its main node runs."""
        try:
            if main_container is not None:
                address = self._runtime.address(main_container)
                variable = "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"
                request = replace(request, environment={**request.environment, variable: address})
            container_id = self._runtime.create(request)
        except ImageError as exc:
            return outcome.failed_to_start(exc.detail, image_missing=True)
        except ContainerRuntimeError as exc:
            return outcome.failed_to_start(str(exc), image_missing=False)
        if abandoned.is_set():
            self._remove_quietly(container_id)
            return outcome.terminated(None, "Terminated while the container was being created")
        try:
            self._runtime.start(container_id)
        except ContainerRuntimeError as exc:
            self._remove_quietly(container_id)
            return outcome.failed_to_start(str(exc), image_missing=False)
        return container_id

    def _collect_launches(self, now: EpochMs, changes: dict[str, Change]) -> None:
        for job_id, launching in list(self._launching.items()):
            if not launching.future.done():
                continue
            del self._launching[job_id]
            job = self._active.get(job_id)
            result = _result(launching.future)
            if job is None or job.status is not JobStatus.STARTING:
                if isinstance(result, str):
                    self._remove_quietly(result)
                continue
            if isinstance(result, AttemptOutcome):
                self._finish(job, result, now, changes)
            elif lifecycle.stop_effect(job) is StopEffect.STOP_CONTAINER:
                self._remove_quietly(result)
                reason = job.stop_request.reason if job.stop_request else "Terminated"
                self._finish(job, outcome.terminated(None, reason), now, changes)
            else:
                job, event = lifecycle.mark_running(job, now, result)
                self._record(changes, job, event)
                self._flights[job_id] = self._watch(job, result, fresh_log=False)
                if job.is_main_node:  # the other nodes start once the main node runs
                    self._to_launch += self._waiting_nodes(job)

    def _watch(self, job: Job, container_id: str, *, fresh_log: bool) -> Flight:
        attempt = job.current_attempt
        assert attempt is not None and attempt.started_at is not None
        path = logs.attempt_log_path(self._settings.logs_dir, job.job_id, attempt.number)
        if fresh_log:  # re-adopted: the engine still has everything; rewrite the file from it
            path.unlink(missing_ok=True)
        try:
            pump: logs.LogPump | None = logs.LogPump(
                self._runtime.logs(container_id), path, name=f"log-{job.job_id[:8]}"
            )
        except ContainerRuntimeError as exc:  # the job runs on; only its output is lost
            logger.warning("job=%s: cannot read its container's output: %s", job.job_id, exc)
            pump = None
        if pump is not None:
            self._start_pump(pump)
        deadline = attempt.started_at + job.timeout_s * 1000 if job.timeout_s is not None else None
        return Flight(container_id, pump, deadline)

    def adopt(self, job: Job, container_id: str) -> Flight:
        """A flight for a container found running at start (see ``startup.recover``)."""
        return self._watch(job, container_id, fresh_log=True)

    def _collect_exits(self, now: EpochMs, changes: dict[str, Change]) -> None:
        if not self._flights:
            return
        try:
            listed = self._runtime.list_containers({naming.LABEL_HOME: self._settings.home_id})
        except ContainerRuntimeError as exc:  # the engine is restarting, say: look again next tick
            logger.warning("cannot list containers: %s", exc)
            return
        running = {c.container_id: c.running for c in listed}
        for job_id, flight in list(self._flights.items()):
            if running.get(flight.container_id, False):
                continue
            job = self._active.get(job_id)
            if job is None:
                del self._flights[job_id]
                continue
            try:
                ending = self._ending(flight, flight.container_id in running)
            except ContainerRuntimeError as exc:
                logger.warning("job=%s: cannot read its container's exit yet: %s", job_id, exc)
                continue
            del self._flights[job_id]
            self._removals.append((flight.container_id, flight.pump, now))
            self._finish(job, ending, now, changes)

    def _ending(self, flight: Flight, exists: bool) -> AttemptOutcome:
        exit_ = self._runtime.wait(flight.container_id, 0) if exists else None
        if exit_ is None:
            return outcome.lost("Container vanished: it was removed from the engine while the job ran")
        if flight.stop_cause is Ending.TIMED_OUT:
            return outcome.timed_out(exit_.exit_code)
        if flight.stop_cause is Ending.TERMINATED:
            return outcome.terminated(exit_.exit_code, flight.stop_reason)
        return outcome.exited(exit_.exit_code, exit_.oom_killed, exit_.error)

    def _finish(self, job: Job, ending: AttemptOutcome, now: EpochMs, changes: dict[str, Change]) -> None:
        if job.node_index is not None and not job.is_main_node:
            self._finish_node(job, ending, now, changes)
            return
        job, event, _ = lifecycle.finish_attempt(job, ending, now)
        if event.detail is not None:
            logger.info("job=%s attempt=%d ended: %s", job.job_id, len(job.attempts), event.detail)
        self._record(changes, job, event)
        if job.is_main_node:
            self._main_attempt_ended(job, now, changes)

    def _remove_finished(self, now: EpochMs) -> None:
        """Remove exited containers once their output is read (or after 10 s regardless)."""
        keep: list[tuple[str, logs.LogPump | None, EpochMs]] = []
        for container_id, pump, since in self._removals:
            if pump is not None and pump.is_alive() and now - since < 10_000:
                keep.append((container_id, pump, since))
                continue
            if pump is not None and pump.error is not None:
                logger.warning("container %s: its output was not all saved: %s", container_id, pump.error)
            self._pool.submit(self._remove_quietly, container_id)
        self._removals = keep

    def _remove_quietly(self, container_id: str) -> None:
        remove_quietly(self._runtime, container_id)

    # -- stops and timeouts -----------------------------------------------------------------------

    def _apply_stops(self, now: EpochMs, changes: dict[str, Change]) -> None:
        for job in [self._active[job_id] for job_id in self._stop_requested]:
            request = job.stop_request
            assert request is not None
            effect = lifecycle.stop_effect(job)
            if job.is_multinode_parent and effect is not StopEffect.IGNORE:
                self._stop_multinode(job, request, effect, now, changes)
                continue
            parent = self._active.get(job.multinode_job_id or "")
            if parent is not None and effect is StopEffect.FAIL and parent.stop_request is None:
                # A node not started yet cannot end alone (the job places every node at once):
                # the request is the whole job's.
                self._record(changes, replace(parent, stop_request=request))
                continue
            if effect is StopEffect.FAIL:
                job, event = lifecycle.fail_before_start(job, now, request.reason, cancelled=True)
                self._record(changes, job, event)
            elif effect is StopEffect.IGNORE:  # CancelJob on a started job: no effect, as AWS
                self._store.clear_stop_request(job.job_id, request)
                self._record(changes, replace(job, stop_request=None))
            elif effect is StopEffect.STOP_CONTAINER:
                flight = self._flights.get(job.job_id)
                if flight is not None and flight.stop_cause is None:
                    self._stop(flight, Ending.TERMINATED, request.reason)
                elif job.job_id in self._launching and not self._launching[job.job_id].abandoned.is_set():
                    # Still creating (an image pull can take minutes): the attempt ends now; the
                    # container, if the creation completes, is removed without being started.
                    self._launching[job.job_id].abandoned.set()
                    self._finish(job, outcome.terminated(None, request.reason), now, changes)

    def _apply_timeouts(self, now: EpochMs) -> None:
        for job_id, flight in self._flights.items():
            if flight.deadline_ms is not None and flight.stop_cause is None and now >= flight.deadline_ms:
                logger.info("job=%s exceeded its attempt timeout; stopping it", job_id)
                self._stop(flight, Ending.TIMED_OUT, outcome.TIMEOUT)

    def _stop(self, flight: Flight, cause: Ending, reason: str) -> None:
        flight.stop_cause, flight.stop_reason = cause, reason
        grace, container_id = self._settings.stop_timeout_s, flight.container_id
        self._in_background(lambda: self._stop_container(container_id, grace))

    def _stop_container(self, container_id: str, grace_s: float) -> None:
        try:
            self._runtime.stop(container_id, grace_s)
        except ContainerRuntimeError as exc:
            logger.warning("stopping container %s failed: %s", container_id, exc)

    # -- scheduling -------------------------------------------------------------------------------

    def _promote(self, now: EpochMs, changes: dict[str, Change]) -> None:
        for job in [self._active[job_id] for job_id in self._submitted]:
            moved, event = transition(job, JobStatus.RUNNABLE, now)
            self._record(changes, moved, event)

    def _plan(self, now: EpochMs, changes: dict[str, Change]) -> list[Job]:
        runnable = list(self._runnable.values())
        timed = self._next_timed_plan_ms is not None and now >= self._next_timed_plan_ms
        if not runnable or not (self._dirty or timed):
            return []
        decided = plan(
            runnable, self._queues, self._environments, list(self._placed.values()), self._host, now, self._scheduler
        )
        placed = []
        for placement in decided.placements:
            job = self._active[placement.job_id]
            if job.is_multinode_parent:
                placed += self._place_nodes(job, placement, now, changes)
                continue
            number = len(job.attempts) + 1
            task_id = self._new_task_id()
            job, event = lifecycle.begin_attempt(
                job,
                now,
                task_id=task_id,
                container_name=naming.container_name(job.job_id, number),
                log_stream_name=naming.log_stream_name(job.job_definition_name, task_id),
                compute_environment=placement.compute_environment,
                gpu_ids=placement.gpu_ids,
            )
            self._record(changes, job, event)
            placed.append(job)
        waiting = dict(decided.waiting)
        for job_id in self._gangs.keys() & waiting.keys():
            waiting[job_id] = multinode.gang_reason(waiting[job_id], self._gangs[job_id])
        with self._lock:
            self._waiting = waiting  # made text only when asked for
        self._dirty = False  # our own placements need no second pass; exits and submissions will
        # With nothing changing, the plan changes only when a waiting job's wait reaches
        # max_head_wait (the starvation guarantee): plan again then, not on every tick.
        self._next_timed_plan_ms = decided.next_starving_at
        return placed

    # -- multi-node parallel jobs (core.multinode decides) -----------------------------------------
    # The scheduler places the parent, asking for every node's resources at once; each node
    # is then a job of its own (attempts, container, flight). The main node launches first,
    # the others once it runs; the parent mirrors the main node; when the main node's attempt
    # ends, the nodes still running are stopped, and they run again if it retries.

    def _nodes_of(self, parent_id: str, num_nodes: int, changes: dict[str, Change]) -> list[Job]:
        """Every node of the job, as the loop (or this tick, or the store) last saw it."""
        found = []
        for index in range(num_nodes):
            node = self._job(multinode.node_id(parent_id, index), changes)
            if node is not None:
                found.append(node)
        return found

    def _job(self, job_id: str, changes: dict[str, Change]) -> Job | None:
        if job_id in changes:
            return changes[job_id][0]
        return self._active.get(job_id) or self._store.get_job(job_id)

    def _schedulable(self, job: Job) -> bool:
        """Nodes are placed through their parent; a parent once every node waits RUNNABLE (all
        promoted, none of a previous attempt still holding resources)."""
        if job.node_index is not None:
            return False
        if not job.is_multinode_parent:
            return True
        ids = (multinode.node_id(job.job_id, i) for i in range(job.num_nodes or 0))
        return all((node := self._active.get(i)) is not None and node.status is JobStatus.RUNNABLE for i in ids)

    def _place_nodes(self, parent: Job, placement: Placement, now: EpochMs, changes: dict[str, Change]) -> list[Job]:
        """Every node begins an attempt in the placement's environment (the parent mirrors the
        main node); only the main node launches now."""
        nodes = self._nodes_of(parent.job_id, parent.num_nodes or 0, changes)
        gpus = multinode.split_gpus([n.container for n in nodes], placement.gpu_ids)
        launch = []
        for node, gpu_ids in zip(nodes, gpus, strict=True):  # every node is RUNNABLE (_schedulable)
            task_id = self._new_task_id()
            node, event = lifecycle.begin_attempt(
                node,
                now,
                task_id=task_id,
                container_name=naming.container_name(node.job_id, len(node.attempts) + 1),
                log_stream_name=naming.log_stream_name(node.job_definition_name, task_id),
                compute_environment=placement.compute_environment,
                gpu_ids=gpu_ids,
            )
            self._record(changes, node, event)
            if node.is_main_node:
                launch.append(node)
        return launch

    def _main_container(self, node: Job) -> str | None:
        """The running main node's container, for a node about to launch."""
        main = self._active.get(multinode.node_id(node.multinode_job_id or "", node.main_node or 0))
        current = self._active.get(node.job_id)
        if main is None or main.status is not JobStatus.RUNNING or current is None:
            return None
        if current.status is not JobStatus.STARTING or current.current_attempt != node.current_attempt:
            return None
        attempt = main.current_attempt
        return attempt.container_id if attempt is not None else None

    def _waiting_nodes(self, main: Job) -> list[Job]:
        """The main node runs: its job's other nodes, placed and waiting to launch."""
        parent_id = main.multinode_job_id or ""
        waiting = []
        for index in range(main.num_nodes or 0):
            node = self._active.get(multinode.node_id(parent_id, index))
            if node is None or node.is_main_node or node.status is not JobStatus.STARTING:
                continue
            if node.job_id not in self._launching and node.job_id not in self._flights:
                waiting.append(node)
        return waiting

    def _resync_multinode(self, now: EpochMs, changes: dict[str, Change]) -> None:
        """First tick after a start: ``startup.recover`` moved the nodes (collected exits,
        requeued launches) without the parent; line each job up with its main node."""
        parents, self._resync = self._resync, []
        for parent_id in parents:
            parent = self._active.get(parent_id)
            if parent is None:
                continue
            main = self._job(multinode.node_id(parent_id, parent.main_node or 0), changes)
            if main is None:
                continue
            self._mirror_main_node(main, None, changes, at=now)
            attempt = main.current_attempt
            if main.status.is_terminal or (attempt is not None and attempt.finished):
                self._main_attempt_ended(main, now, changes)

    def _mirror_main_node(
        self, main: Job, event: JobEvent | None, changes: dict[str, Change], at: EpochMs | None = None
    ) -> None:
        """The parent follows its main node from the first attempt on."""
        parent = self._job(main.multinode_job_id or "", changes)
        waiting = (JobStatus.SUBMITTED, JobStatus.PENDING, JobStatus.RUNNABLE)
        if parent is None or parent.status.is_terminal or (not main.attempts and parent.status in waiting):
            return
        if at is None:
            at = event.at if event is not None else (main.stopped_at or main.started_at or main.created_at)
        moved, mirrored = multinode.mirror(parent, main, at)
        if moved != parent:
            self._record(changes, moved, mirrored)

    def _main_attempt_ended(self, main: Job, now: EpochMs, changes: dict[str, Change]) -> None:
        """Stop the nodes still running; settle those not launched; when the main node
        retries, bring back those that ended on their own."""
        for node in self._nodes_of(main.multinode_job_id or "", main.num_nodes or 0, changes):
            if node.is_main_node:
                continue
            flight = self._flights.get(node.job_id)
            launching = self._launching.get(node.job_id)
            if flight is not None:
                if flight.stop_cause is None:
                    self._stop(flight, Ending.TERMINATED, multinode.MAIN_NODE_EXITED)
            elif node.status is JobStatus.STARTING:
                if launching is not None:  # no longer this loop's: whatever it made goes
                    launching.abandoned.set()
                    del self._launching[node.job_id]
                    launching.future.add_done_callback(self._discard_launch)
                self._finish_node(node, outcome.terminated(None, multinode.MAIN_NODE_EXITED), now, changes)
            elif node.status.is_terminal and main.status is JobStatus.RUNNABLE:
                moved, event = multinode.rerun(node, now)
                self._record(changes, moved, event)
            elif not node.status.is_terminal and main.status.is_terminal:  # never placed (a restart requeued it)
                moved, event = lifecycle.fail_before_start(node, now, multinode.MAIN_NODE_EXITED_FIRST)
                self._record(changes, moved, event)

    def _discard_launch(self, future: Future[str | AttemptOutcome]) -> None:
        result = _result(future)
        if isinstance(result, str):
            self._remove_quietly(result)

    def _finish_node(self, node: Job, ending: AttemptOutcome, now: EpochMs, changes: dict[str, Change]) -> None:
        main = self._job(multinode.node_id(node.multinode_job_id or "", node.main_node or 0), changes)
        assert main is not None, node.job_id
        moved, event = multinode.finish_node(node, ending, main, now)
        self._record(changes, moved, event)

    def _stop_multinode(
        self, parent: Job, request: StopRequest, effect: StopEffect, now: EpochMs, changes: dict[str, Change]
    ) -> None:
        """CancelJob/TerminateJob on the job: unstarted, it and its nodes end FAILED; started,
        the main node is terminated (its end stops the others)."""
        nodes = self._nodes_of(parent.job_id, parent.num_nodes or 0, changes)
        if effect is StopEffect.FAIL:
            job, event = lifecycle.fail_before_start(parent, now, request.reason, cancelled=True)
            self._record(changes, job, event)
        for node in nodes:
            if node.status.is_terminal:
                continue
            if effect is StopEffect.FAIL and not multinode.in_flight(node):
                moved, event = lifecycle.fail_before_start(node, now, request.reason, cancelled=True)
                self._record(changes, moved, event)
            elif (node.is_main_node or effect is StopEffect.FAIL) and node.stop_request is None:
                terminate = StopRequest(StopKind.TERMINATE, request.reason, request.requested_at)
                self._record(changes, replace(node, stop_request=terminate))


def _index(ids: dict[str, None], job_id: str, member: bool) -> None:
    if member:
        ids[job_id] = None
    else:
        ids.pop(job_id, None)


def remove_quietly(runtime: ContainerRuntime, container_id: str) -> None:
    """Remove a container; a failure is logged, not raised (the engine's label lets a later
    start find it again)."""
    try:
        runtime.remove(container_id)
    except ContainerRuntimeError as exc:
        logger.warning("could not remove container %s: %s", container_id, exc)


class ThreadPerTask(Executor):
    """Each launch or removal on a daemon thread of its own. A pool would let a few slow image
    pulls hold up every other launch (head-of-line blocking); the number of launches at once is
    bounded anyway, by what fits in the compute environments. Daemon threads, because
    ``ThreadPoolExecutor``'s are joined at interpreter exit, and a pull in progress would keep a
    stopping daemon (or an interrupted ``localbatch run``) alive until it ends."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # a Future carries whatever happened to its caller
                future.set_exception(exc)

        threading.Thread(target=work, name="launch", daemon=True).start()
        return future


def _on_a_thread(action: Callable[[], None]) -> None:
    threading.Thread(target=action, name="container-stop", daemon=True).start()


def _result(future: Future[str | AttemptOutcome]) -> str | AttemptOutcome:
    try:
        return future.result()
    except Exception as exc:  # a bug on the pool thread: the attempt fails, the daemon goes on
        logger.exception("launching a container failed unexpectedly")
        return outcome.failed_to_start(f"localbatch could not launch the container: {exc}", image_missing=False)
