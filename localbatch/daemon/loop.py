"""The control loop: the one place that moves jobs after submission and drives containers.

API handlers record requests (a SUBMITTED job, a stop request, a changed queue) and wake
the loop through its ``Notifier`` methods. Each ``tick(now)`` then runs, in order:

1. take in what handlers recorded;
2. collect finished container launches (running, or failed to start);
3. collect exits: one engine listing per poll (``poll_s``), not one waiter per container; a
   tick woken between polls (a launch finished, a container's output ended, so it stopped)
   inspects only the containers whose output ended;
4. apply stop requests (an array parent's pass to its children), attempt timeouts and Spot
   reclaims (``core.spot``);
5. move SUBMITTED jobs on, and the PENDING ones whose dependencies ended (``core.dependencies``:
   RUNNABLE, or FAILED down the chain); end the array parents whose children all ended; cancel
   the head jobs that have waited past their queue's job state time limit (``core.queue_limits``);
6. plan (``core.scheduler.plan``): placements become STARTING attempts; every job left
   waiting gets its reason, kept in memory and shown by describe;
7. persist every change of the tick in one transaction;
8. only then act: launch the placed containers on a small pool (an image pull never
   blocks the loop), remove finished ones once their output is read.

S3 staging (``core.staging``, ``daemon.staging``) rides on the same threads: a launch downloads
the job's ``[[inputs]]`` before it creates the container (the job is STARTING meanwhile), and
a container that exited with ``[[outputs]]`` to upload stays RUNNING until a pool thread has
uploaded them (``_uploading``); only then does its attempt end.

Persist-then-act means a daemon killed at any point leaves a state ``recover`` can repair
on the next start. Stops run on helper threads (a graceful stop waits out its grace).

When the engine stops answering (``RuntimeUnavailable``), the loop logs it once, stops placing
jobs, and asks again with a growing pause (0.5 s doubling to 5 s); a launch that found it gone
is queued again without spending an attempt. A stopping Docker engine stops its containers
(unless live-restore is on), so every attempt in flight then is marked: once the engine
answers again, those whose container did not survive end as if their host went away
(``outcome.engine_lost``) and the retry strategy decides. A stopping engine kills its
containers while it still answers (SIGTERM, then SIGKILL after 10 s), so an exit by SIGTERM or
SIGKILL (143, 137) that localbatch did not ask for is held for ``_ENGINE_GRACE_MS`` before it
counts: if the engine goes away meanwhile, it was the engine's doing.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from localbatch import __version__, faults, logs
from localbatch.config import Settings
from localbatch.core import (
    arrays,
    consumables,
    dependencies,
    lifecycle,
    multinode,
    naming,
    outcome,
    queue_limits,
    s3_access,
    spot,
    staging,
)
from localbatch.core.consumables import ConsumableResource, Need, ResourceType
from localbatch.core.dependencies import Readiness
from localbatch.core.fairshare import UsageHistory
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy
from localbatch.core.inventory import GpuDevice
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopKind, StopRequest, transition, with_attempt
from localbatch.core.lifecycle import StopEffect
from localbatch.core.outcome import AttemptOutcome, Ending
from localbatch.core.resources import Resources
from localbatch.core.scheduler import (
    Allocation,
    FrontEntry,
    Placement,
    RunnableJob,
    SchedulerSettings,
    WaitReason,
    fronts,
    plan,
)
from localbatch.core.usage import AttemptUsage
from localbatch.daemon import staging as transfers
from localbatch.daemon.metrics import Metrics
from localbatch.daemon.usage import UsageSampler
from localbatch.errors import ContainerRuntimeError, ImageError, LocalbatchError, RuntimeUnavailable
from localbatch.ports import Bind, Clock, ContainerExit, ContainerRequest, ContainerRuntime, ObjectStore, StateStore

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
    exited_at: EpochMs | None = None  # when the loop first saw the container stopped
    engine_lost: bool = False  # the engine went away while it ran (see the module docstring)
    held: AttemptOutcome | None = None  # a signal exit waiting out _ENGINE_GRACE_MS


@dataclass
class _Outage:
    """The engine stopped answering at ``since``; the loop asks again at ``retry_at``."""

    since: EpochMs
    error: str
    retry_at: EpochMs
    backoff_ms: int


# The endings after which [[outputs]] are uploaded: the container exited (by itself, or killed
# for its timeout). A terminated attempt uploads nothing.
_UPLOADS_AFTER = (Ending.EXITED, Ending.TIMED_OUT)


@dataclass(frozen=True)
class _Staging:
    """One attempt's S3 staging (``core.staging``): what moves, and the directory it uses."""

    job_id: str
    attempt: int
    where: Path
    inputs: tuple[staging.InputPlan, ...]
    outputs: tuple[staging.OutputPlan, ...]


# How long an exited container's output may take to reach its log file before the job is
# marked ended anyway: `logs` right after a job ends then shows all of it.
_DRAIN_MS = 2_000

# A stopping Docker engine gives its containers 10 s to stop, and then kills them; an exit by
# SIGTERM/SIGKILL nobody asked for ends its attempt only once the engine has kept answering this long.
_ENGINE_GRACE_MS = 12_000
_SIGNAL_EXITS = (128 + 9, 128 + 15)
_PUMP_STALL_MS = 10_000  # an exited container's pump that reads nothing this long is cut off
_ENGINE_RETRY_FIRST_MS = 500
_ENGINE_RETRY_MAX_MS = 5_000


@dataclass
class _Launching:
    future: Future[str | AttemptOutcome]
    abandoned: threading.Event  # set by the loop; the launch checks it before starting the container


@dataclass
class _Uploading:
    """An exited container whose ``[[outputs]]`` a pool thread uploads; its ending waits."""

    future: Future[str | None]  # None: all uploaded; else what went wrong
    ending: AttemptOutcome
    flight: Flight


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
        rng: random.Random | None = None,
        object_store: ObjectStore | None = None,
        sampler: UsageSampler | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        # Reads running containers' CPU and memory on its own thread; an attempt's usage is
        # taken when it ends and kept on it (core.usage).
        self._sampler = sampler
        self._metrics = metrics  # every state change is counted there (/metrics)
        # S3 staging's store; and with settings.log_bucket each attempt's log file is copied
        # there once its container is removed (_archive_log), like an export of its CloudWatch stream.
        self._object_store = object_store
        self._log_store = object_store if settings.log_bucket else None
        self._archives: dict[str, tuple[Path, str]] = {}  # container id -> (log file, object key)
        self._runtime = runtime
        self._store = store
        self._clock = clock
        self._host = host
        self._gpus = gpus
        self._poll_s = poll_s
        self._idle_s = idle_s
        self._batch_s = batch_s
        self._new_task_id = new_task_id
        self._draw = (rng or random.Random()).random  # Spot reclaims at random (core.spot)
        self._last_spot_check: EpochMs | None = None
        # Each queue's head job, its wait reason code and since when (core.queue_limits).
        self._heads: dict[str, queue_limits.HeadWait] = {}
        self._scheduler = SchedulerSettings(max_head_wait_s=settings.max_head_wait_s)
        self._user_limits = settings.policy.limits if settings.policy.limits.any else None
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
        self._uploading: dict[str, _Uploading] = {}
        self._staged: dict[str, Path] = {}  # container id -> its attempt's staging directory
        self._removals: list[tuple[str, logs.LogPump | None, EpochMs]] = []
        self._pumped: dict[str, int] = {}  # container id -> what its pump had read at the last look
        self._waiting: dict[str, WaitReason] = {}
        # Each queue's front (core.scheduler.fronts) as the last plan found it, and when.
        self._fronts: dict[str, tuple[FrontEntry, ...]] = {}
        self._fronts_at: EpochMs | None = None
        self._gangs: dict[str, int] = {}  # runnable multi-node parents -> their node count
        self._container_network: str | None = None  # the runtime's network mode (core.s3_access)
        self._resync: list[str] = []  # multi-node parents found at start, to line up with their main node
        # What a failed save left unwritten, and the placements waiting on that save: retried
        # first on the next tick, so memory never stays ahead of the store.
        self._unsaved: dict[str, Change] = {}
        self._to_launch: list[Job] = []
        # Stop requests for jobs whose submission the loop has not heard of yet.
        self._early_stops: set[str] = set()
        # Dependencies and arrays. Who waits for whom (a job id -> the SUBMITTED or PENDING jobs
        # waiting for it); the waiting jobs to look at again because one they wait for ended;
        # how each array parent's children stand; the parents whose children have all ended;
        # the stop request each parent last passed to its children; and how recently ended jobs
        # ended (bounded), so resolving a dependency rarely needs the store.
        self._dependents: dict[str, dict[str, None]] = {}
        self._to_resolve: dict[str, None] = {}
        self._arrays: dict[str, _Tally] = {}
        self._arrays_done: dict[str, None] = {}
        self._passed_on: dict[str, StopRequest] = {}
        self._ended: dict[str, JobStatus] = {}
        self._queues: tuple[JobQueue, ...] = ()
        self._environments: tuple[ComputeEnvironment, ...] = ()
        self._policies: tuple[SchedulingPolicy, ...] = ()
        self._consumables: tuple[ConsumableResource, ...] = ()
        # What jobs that stopped holding resources this tick held (core.consumables): a
        # NON_REPLENISHABLE quantity is used up when the tick's save lands, so until then the
        # plan counts it as used.
        self._using_up: list[Need] = []
        self._usage = UsageHistory()  # fair-share queues' consumption (scheduler rule 10)
        self._dirty = True
        self._next_timed_plan_ms: EpochMs | None = None  # when a waiting head crosses max_head_wait
        self._saved_listeners: list[Callable[[], None]] = []
        self._listed_at: EpochMs | None = None  # when _collect_exits last listed the engine's containers
        self._outage: _Outage | None = None  # the engine does not answer (see the module docstring)
        self._engine_error: str | None = None  # why it last stopped answering
        self._last_failure: str | None = None  # the last tick's error, logged once while it repeats
        self._unremoved: set[str] = set()  # containers whose removal found the engine gone (under _lock)

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

    def interrupt(self, job_id: str) -> None:
        """Reclaim the job's host as Spot would (``localbatch interrupt``): its container is
        stopped and the attempt fails with ``Host EC2 (instance i-...) terminated.``. Ignored
        when the job is not running by the time the loop takes it in."""
        self._inbox.put(("interrupt", job_id))
        self._wake.set()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on the loop's thread after each tick that saved changes (the
        event log has new entries then). It must return at once (set an Event, say)."""
        self._saved_listeners.append(listener)

    def _woken(self, _: object = None) -> None:
        """A launch finished or a container's output ended: tick now rather than at the next poll."""
        self._wake.set()

    # -- what handlers may ask ------------------------------------------------------------------

    def waiting_reason(self, job_id: str) -> str | None:
        with self._lock:
            reason = self._waiting.get(job_id)
        return None if reason is None else str(reason)

    def queue_front(self, job_queue: str) -> tuple[tuple[FrontEntry, ...], EpochMs] | None:
        """The queue's first waiting jobs in dispatch order as the last plan found them, and
        when it did (None before the first plan); jobs that left RUNNABLE since are left out."""
        with self._lock:
            if self._fronts_at is None:
                return None
            entries = tuple(e for e in self._fronts.get(job_queue, ()) if e.job_id in self._waiting)
            return entries, self._fronts_at

    def engine_outage(self) -> tuple[EpochMs, str] | None:
        """Since when, and why, the engine does not answer; None while it does."""
        outage = self._outage
        return None if outage is None else (outage.since, outage.error)

    def footprint(self) -> dict[str, int]:
        """How many entries each of the loop's records holds, by name. With no job left but
        ended ones, every figure but ``ended`` (the statuses of the last ``_ENDED_KEPT`` ended
        jobs) is 0, as is ``sampled`` (the attempts the usage sampler watches); anything
        else is a leak (``benchmarks.soak`` checks this)."""
        with self._lock:
            found = {name: len(getattr(self, f"_{name}")) for name in _FOOTPRINT}
        return {**found, "sampled": 0 if self._sampler is None else self._sampler.watching()}

    def allocations(self) -> tuple[Allocation, ...]:
        """What the STARTING and RUNNING jobs hold, for the resources endpoint."""
        with self._lock:
            return tuple(self._placed.values())

    # -- running ----------------------------------------------------------------------------------

    def load(self, jobs: Sequence[Job], flights: dict[str, Flight]) -> None:
        """Take over the jobs in flight found at start (``startup.recover`` prepares them)."""
        for job in jobs:
            if job.is_array_parent:  # its children's progress so far is in the store
                self._arrays[job.job_id] = _Tally.of(job, self._store.count_jobs(array_job_id=job.job_id))
            self._remember(job)
            if job.status is JobStatus.PENDING and not job.is_array_parent:  # a job it waits for may have ended
                self._to_resolve[job.job_id] = None
        self._arrays_done.update((p, None) for p, tally in self._arrays.items() if tally.remaining <= 0)
        self._resync = [job.job_id for job in jobs if job.is_multinode_parent]
        self._flights = dict(flights)
        self._reload_infrastructure()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="control-loop", daemon=True)
        self._thread.start()
        if self._sampler is not None:
            self._sampler.start()

    def stop(self, timeout_s: float = 10) -> None:
        """Stop ticking. Running containers keep running; the next start re-adopts them."""
        self._stopping.set()
        self._wake.set()
        if self._sampler is not None:
            self._sampler.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def live_usage(self) -> dict[str, AttemptUsage]:
        """What each running job's attempt has used so far (sampled), for ``top``."""
        return {} if self._sampler is None else self._sampler.live()

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
            self._remove_container(container_id)
        self._removals.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick(self._clock.now_ms())
                self._last_failure = None
            except LocalbatchError as exc:
                if str(exc) != self._last_failure:  # a full disk fails every tick: say it once
                    logger.exception("tick failed; the next ticks retry (said once until it changes)")
                self._last_failure = str(exc)
            except Exception:  # a bug must not kill the daemon: log it and keep serving
                logger.exception("tick failed unexpectedly; the next tick retries")
            busy = self._flights or self._launching or self._removals or self._uploading
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
        self._check_engine(now)
        self._collect_launches(now, changes)
        self._collect_exits(now, changes)
        self._collect_uploads(changes)
        self._apply_stops(now, changes)
        self._apply_timeouts(now)
        self._apply_spot(now)
        self._promote(now, changes)
        self._apply_time_limits(now, changes)
        if self._outage is None:  # nothing starts on an engine that is away
            self._to_launch += self._plan(now, changes)
        if changes:
            try:
                self._store.save_jobs(list(changes.values()))
            except LocalbatchError:
                self._unsaved = changes  # written first thing next tick; nothing launched before
                raise
            if self._using_up:  # the save lowered the NON_REPLENISHABLE totals
                self._using_up = []
                self._consumables = tuple(self._store.list_consumable_resources())
            for listener in self._saved_listeners:
                listener()
        placed, self._to_launch = self._to_launch, []
        for job in placed:
            self._launch(job)
        self._remove_finished(now)

    def _record(self, changes: dict[str, Change], job: Job, event: JobEvent | None = None) -> None:
        previous = changes.get(job.job_id)
        events = (previous[1] if previous else []) + ([event] if event else [])
        changes[job.job_id] = (job, events)
        if event is not None and self._metrics is not None:
            self._metrics.observe(job, event)
        self._remember(job)
        if job.is_main_node:
            self._mirror_main_node(job, event, changes)

    def _remember(self, job: Job) -> None:
        """The loop's view of ``job``: every change goes through here, so the active jobs,
        their indexes and the waiting reasons cannot disagree."""
        job_id, status = job.job_id, job.status
        with self._lock:
            previous = self._active.get(job_id)
            if previous is None and status in _WAITING:
                for other in job.waits_for:
                    self._dependents.setdefault(other, {})[job_id] = None
            elif previous is not None and previous.status in _WAITING and status not in _WAITING:
                self._unwait(job)
            if status.is_terminal:
                if self._active.pop(job_id, None) is not None:
                    self._ended_now(job)
                self._waiting.pop(job_id, None)
            else:
                self._active[job_id] = job
            if status is JobStatus.RUNNABLE and job.stop_request is None and self._schedulable(job):
                resources = multinode.request(job) if job.is_multinode_parent else job.container.resources
                self._runnable[job_id] = RunnableJob(
                    job_id,
                    job.job_queue,
                    resources,
                    job.created_at,
                    job.runnable_at or job.created_at,
                    array_index=job.array_index or 0,
                    share_identifier=job.share_identifier,
                    scheduling_priority=job.scheduling_priority or 0,
                    consumables=job.consumable_resources,
                    owner=job.submitted_by,
                    jobs=job.num_nodes or 1 if job.is_multinode_parent else 1,
                )
            else:
                self._runnable.pop(job_id, None)
            if job.is_multinode_parent and job_id in self._runnable:
                self._gangs[job_id] = job.num_nodes or 0
            else:
                self._gangs.pop(job_id, None)
            if status in (JobStatus.STARTING, JobStatus.RUNNING) and not job.is_multinode_parent:
                self._placed[job_id] = Allocation(
                    job_id,
                    job.compute_environment or "",
                    job.container.resources,
                    job.gpu_ids,
                    job_queue=job.job_queue,
                    share_identifier=job.share_identifier,
                    owner=job.submitted_by,
                )
            elif self._placed.pop(job_id, None) is not None and job.consumable_resources:
                self._using_up += job.consumable_resources
        _index(self._submitted, job_id, status is JobStatus.SUBMITTED)
        _index(self._stop_requested, job_id, job.stop_request is not None and not status.is_terminal)
        self._dirty = True
        parent = self._active.get(job.multinode_job_id or "")
        if parent is not None and parent.status is JobStatus.RUNNABLE:  # may be placeable now
            self._remember(parent)

    def _unwait(self, job: Job) -> None:
        """``job`` waits no more (it became RUNNABLE, or failed unstarted): the jobs it waited
        for forget it, even those that had ended before it came or have not ended yet."""
        for other in job.waits_for:
            waiting = self._dependents.get(other)
            if waiting is not None:
                waiting.pop(job.job_id, None)
                if not waiting:
                    del self._dependents[other]

    def _ended_now(self, job: Job) -> None:
        """``job`` just ended: the jobs waiting for it, and its array's parent, hear of it."""
        self._ended[job.job_id] = job.status
        if len(self._ended) > _ENDED_KEPT:
            del self._ended[next(iter(self._ended))]
        for waiting in self._dependents.pop(job.job_id, ()):
            self._to_resolve[waiting] = None
        parent = job.array_job_id
        tally = self._arrays.get(parent) if parent is not None else None
        if parent is not None and tally is not None:
            tally.remaining -= 1
            tally.failed += job.status is JobStatus.FAILED
            if tally.remaining <= 0:
                self._arrays_done[parent] = None

    def _take_inbox(self, changes: dict[str, Change]) -> None:
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                return
            self._dirty = True
            if kind == "job" and isinstance(value, Job):
                if value.is_array_parent and value.job_id not in self._arrays:
                    self._arrays[value.job_id] = _Tally.of(value, {})
                self._remember(value)
                if value.job_id in self._early_stops:  # cancelled before we heard of it
                    self._early_stops.discard(value.job_id)
                    self._merge_stop_request(value.job_id)
            elif kind == "stop" and isinstance(value, str):
                self._merge_stop_request(value)
                self._escalate(value)
            elif kind == "infra":
                self._reload_infrastructure()
            elif kind == "interrupt" and isinstance(value, str):
                self._reclaim(value)

    def _merge_stop_request(self, job_id: str) -> None:
        """The handler wrote the request to the store; carry it into the loop's copy, which the
        loop's own saves would otherwise write back without it."""
        current = self._active.get(job_id)
        if current is None:
            # Its submission's notice is still on its way; or the job ended after the handler
            # read it and before this tick (then there is nothing to stop, and nothing to keep).
            if job_id not in self._ended and not self._ended_in_store(job_id):
                self._early_stops.add(job_id)
            return
        stored = self._store.get_job(job_id)
        if stored is None or stored.stop_request is None:
            return
        self._remember(replace(current, stop_request=stored.stop_request))  # the store has it already

    def _ended_in_store(self, job_id: str) -> bool:
        stored = self._store.get_job(job_id)
        return stored is None or stored.status.is_terminal

    def _escalate(self, job_id: str) -> None:
        """A TerminateJob for a job whose container is already stopping (waiting out its grace)
        kills it at once: what a second Ctrl-C means. For an array's parent or a multi-node
        job, each of its children's or nodes' containers."""
        job = self._active.get(job_id)
        if job is not None and job.is_array_parent:
            for index in range(job.array_size or 0):
                self._escalate(arrays.child_id(job_id, index))
        elif job is not None and job.is_multinode_parent:
            for index in range(job.num_nodes or 0):
                self._escalate(multinode.node_id(job_id, index))
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
            self._policies = tuple(self._store.list_scheduling_policies())
            self._consumables = tuple(self._store.list_consumable_resources())
        windows = {policy.name: float(policy.decay_window_s) for policy in self._policies}
        self._usage.windows(
            {q.name: windows[q.scheduling_policy] for q in self._queues if q.scheduling_policy in windows}
        )

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
        future = self._pool.submit(self._create_and_start, request, abandoned, main_container, self._staging(job))
        future.add_done_callback(self._woken)  # the job is RUNNING (or failed) at once, not at the next poll
        self._launching[job.job_id] = _Launching(future, abandoned)

    def _staging(self, job: Job) -> _Staging | None:
        """What the current attempt stages, or None when the job has no [[inputs]]/[[outputs]]."""
        attempt = job.current_attempt
        if attempt is None or not (job.container.inputs or job.container.outputs):
            return None
        values = staging.placeholders(job.job_id, job.array_index, attempt.number)
        return _Staging(
            job.job_id,
            attempt.number,
            transfers.attempt_dir(self._settings.staging_dir, job.job_id, attempt.number),
            tuple(staging.plan_inputs(job.container.inputs, values)),
            tuple(staging.plan_outputs(job.container.outputs, values)),
        )

    def _create_and_start(
        self,
        request: ContainerRequest,
        abandoned: threading.Event,
        main_container: str | None = None,
        staged: _Staging | None = None,
    ) -> str | AttemptOutcome:
        """On a launch thread: stage the inputs, pull if needed, create, start. The container
        id, or why not. A launch the loop gave up on (the job was terminated meanwhile) is not
        started. A multi-node job's non-main node first learns where its main node runs."""
        faults.point("before_container_create")
        if staged is not None:
            try:
                request = replace(request, binds=self._stage_in(staged))
            except (LocalbatchError, OSError) as exc:
                transfers.discard(staged.where)
                return outcome.inputs_failed(str(exc))
        result = self._create_and_start_container(request, abandoned, main_container)
        if staged is not None and not isinstance(result, str):
            transfers.discard(staged.where)
        return result

    def _stage_in(self, staged: _Staging) -> tuple[Bind, ...]:
        if self._object_store is None:
            raise LocalbatchError("no S3 object store is configured ([store] in the config file)")
        started = time.monotonic()
        binds, moved = transfers.stage_in(self._object_store, staged.inputs, staged.outputs, staged.where)
        if staged.inputs:
            logger.info(
                "job=%s attempt=%d: staged in %s in %.1f s",
                staged.job_id,
                staged.attempt,
                moved,
                time.monotonic() - started,
            )
        return binds

    def _create_and_start_container(
        self, request: ContainerRequest, abandoned: threading.Event, main_container: str | None
    ) -> str | AttemptOutcome:
        try:
            if main_container is not None:
                address = self._runtime.address(main_container)
                request = replace(request, environment={**request.environment, naming.MAIN_NODE_ADDRESS: address})
            request = self._with_store_access(request)
            container_id = self._runtime.create(request)
            faults.point("after_container_create")
        except RuntimeUnavailable as exc:
            return outcome.engine_unavailable(str(exc))
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
            if isinstance(exc, RuntimeUnavailable):
                return outcome.engine_unavailable(str(exc))
            return outcome.failed_to_start(str(exc), image_missing=False)
        faults.point("after_container_start")
        return container_id

    def _with_store_access(self, request: ContainerRequest) -> ContainerRequest:
        """On a launch thread: the object store's address, region and credentials added to the
        container's environment (``core.s3_access``), under the job's own variables. Added here
        only, so they are never stored with the job, described or logged."""
        access = request.spec.s3_access
        if not access.enabled:
            return request
        store = self._settings.store
        if self._container_network is None:  # asked once: the runtime resolves "auto" once too
            self._container_network = self._runtime.engine_info().network_mode
        url, needs_host = s3_access.container_endpoint(store.url, self._container_network)
        view = s3_access.StoreView(url, store.region, store.access_key, store.secret_key)
        added = s3_access.store_environment(view, access, request.spec.environment)
        if not added:
            return request
        hosts = dict(request.extra_hosts)
        if needs_host and "AWS_ENDPOINT_URL_S3" in added:
            hosts[s3_access.HOST_ALIAS] = s3_access.HOST_GATEWAY
        return replace(request, environment={**added, **request.environment}, extra_hosts=hosts)

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
            if isinstance(result, AttemptOutcome) and result.ending is Ending.ENGINE_UNAVAILABLE:
                self._engine_failed(now, result.reason or "")
                self._record(changes, *lifecycle.requeue(job, now, f"Queued again: {result.reason}"))
            elif isinstance(result, AttemptOutcome):
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
            logs.discard(path)
        try:
            # Its output ends when the container stops: the loop looks at once, not at its next poll.
            pump: logs.LogPump | None = logs.LogPump(
                self._runtime.logs(container_id),
                path,
                name=f"log-{job.job_id[:8]}",
                on_end=self._woken,
                max_bytes=self._settings.max_attempt_log_mib * 1024 * 1024 or None,
            )
        except ContainerRuntimeError as exc:  # the job runs on; only its output is lost
            logger.warning("job=%s: cannot read its container's output: %s", job.job_id, exc)
            pump = None
        if pump is not None:
            self._start_pump(pump)
        deadline = attempt.started_at + job.timeout_s * 1000 if job.timeout_s is not None else None
        staged = self._staging(job)
        if staged is not None:
            self._staged[container_id] = staged.where
        if self._sampler is not None:
            self._sampler.watch(job.job_id, container_id, attempt.started_at, job.gpu_ids)
        return Flight(container_id, pump, deadline)

    def adopt(self, job: Job, container_id: str, stopped_for: Ending | None = None) -> Flight:
        """A flight for a container found at start (see ``startup.recover``); ``stopped_for``:
        why it already stopped, when the daemon that stopped it died before recording that."""
        flight = self._watch(job, container_id, fresh_log=True)
        flight.stop_cause = stopped_for
        return flight

    def _collect_exits(self, now: EpochMs, changes: dict[str, Change]) -> None:
        if not self._flights or self._outage is not None:
            return
        exits: dict[str, ContainerExit] = {}
        if self._listed_at is not None and now - self._listed_at < self._poll_s * 1000:
            # Woken between polls (a launch finished, a container's output ended): no listing,
            # only the containers whose output ended are looked at, one inspect each.
            running = self._exits_of_ended_output(exits)
        else:
            try:
                listed = self._runtime.list_containers({naming.LABEL_HOME: self._settings.home_id})
            except RuntimeUnavailable as exc:
                self._engine_failed(now, str(exc))
                return
            except ContainerRuntimeError as exc:  # the engine refused, once: look again next tick
                logger.warning("cannot list containers: %s", exc)
                return
            self._listed_at = now
            running = {c.container_id: c.running for c in listed}
        for job_id, flight in list(self._flights.items()):
            if running.get(flight.container_id, False):
                flight.engine_lost = False  # it survived the engine's restart (live-restore)
                continue
            job = self._active.get(job_id)
            if job is None:
                del self._flights[job_id]
                continue
            if flight.exited_at is None:
                flight.exited_at = now
            if flight.pump is not None and flight.pump.is_alive() and now - flight.exited_at < _DRAIN_MS:
                continue  # its last output is still on its way to the log file
            try:
                exit_ = exits.get(flight.container_id)
                ending = flight.held or self._ending(flight, flight.container_id in running, exit_)
            except RuntimeUnavailable as exc:
                self._engine_failed(now, str(exc))
                return
            except ContainerRuntimeError as exc:
                logger.warning("job=%s: cannot read its container's exit yet: %s", job_id, exc)
                continue
            if flight.engine_lost and not ending.succeeded and ending.ending in (Ending.EXITED, Ending.LOST):
                ending = self._engine_took(job)
            elif _maybe_the_engines(flight, ending) and now - flight.exited_at < _ENGINE_GRACE_MS:
                flight.held = ending  # the engine may be stopping: see whether it goes away
                continue
            del self._flights[job_id]
            staged = self._staging(job)
            if (
                staged is not None
                and staged.outputs
                and ending.ending in _UPLOADS_AFTER
                and ending.exit_code is not None
            ):
                future = self._pool.submit(self._stage_out, staged, flight.container_id, ending.exit_code)
                self._uploading[job_id] = _Uploading(future, ending, flight)
                continue
            self._attempt_over(job, flight, ending, changes)

    def _engine_took(self, job: Job) -> AttemptOutcome:
        attempt = job.current_attempt
        number = attempt.number if attempt is not None else 1
        error = self._engine_error or "it stopped answering"
        return outcome.engine_lost(
            spot.host_terminated_reason(job.job_id, number),
            f"EngineUnavailable: the Docker engine went away while the container ran ({error})",
        )

    # -- the engine going away and coming back ----------------------------------------------------

    def _check_engine(self, now: EpochMs) -> None:
        """While the engine is away: ask again when due; and retry removals it missed."""
        if self._outage is not None and now >= self._outage.retry_at:
            try:
                self._runtime.list_containers({naming.LABEL_HOME: self._settings.home_id})
            except RuntimeUnavailable as exc:
                self._engine_failed(now, str(exc))
            except ContainerRuntimeError:
                self._engine_back(now)  # it answers, if only to refuse
            else:
                self._engine_back(now)
        if self._outage is None and self._unremoved:
            with self._lock:
                retry, self._unremoved = self._unremoved, set()
            for container_id in retry:
                self._pool.submit(self._remove_container, container_id)

    def _engine_failed(self, now: EpochMs, error: str) -> None:
        outage = self._outage
        if outage is None:
            logger.warning(
                "%s. No job starts until it answers again; attempts it stops meanwhile will fail as "
                "if their host went away, and their retry strategy decides. Asking again every %g s at most.",
                error,
                _ENGINE_RETRY_MAX_MS / 1000,
            )
            self._engine_error = error
            self._outage = _Outage(now, error, now + _ENGINE_RETRY_FIRST_MS, _ENGINE_RETRY_FIRST_MS)
            for flight in self._flights.values():
                flight.engine_lost = True
            return
        outage.backoff_ms = min(outage.backoff_ms * 2, _ENGINE_RETRY_MAX_MS)
        outage.retry_at = now + outage.backoff_ms

    def _engine_back(self, now: EpochMs) -> None:
        outage, self._outage = self._outage, None
        assert outage is not None
        logger.warning("the Docker engine answers again, after %.1f s away", (now - outage.since) / 1000)
        self._listed_at = None  # list at once: what survived, what did not
        self._dirty = True  # plan again

    def _attempt_over(self, job: Job, flight: Flight, ending: AttemptOutcome, changes: dict[str, Change]) -> None:
        assert flight.exited_at is not None
        self._removals.append((flight.container_id, flight.pump, flight.exited_at))
        self._will_archive(job, flight.container_id)
        self._finish(job, ending, flight.exited_at, changes)

    def _stage_out(self, staged: _Staging, container_id: str, exit_code: int) -> str | None:
        """On a pool thread: upload an exited attempt's outputs; None, or what went wrong."""
        if self._object_store is None:
            return "no S3 object store is configured ([store] in the config file)"
        started = time.monotonic()
        try:
            moved = transfers.stage_out(
                self._object_store,
                self._runtime,
                container_id,
                staged.outputs,
                staged.where,
                job_id=staged.job_id,
                attempt=staged.attempt,
                exit_code=exit_code,
            )
        except (LocalbatchError, OSError) as exc:
            logger.warning("job=%s attempt=%d: outputs not uploaded: %s", staged.job_id, staged.attempt, exc)
            return str(exc)
        logger.info(
            "job=%s attempt=%d: staged out %s in %.1f s",
            staged.job_id,
            staged.attempt,
            moved,
            time.monotonic() - started,
        )
        return None

    def _collect_uploads(self, changes: dict[str, Change]) -> None:
        for job_id, uploading in list(self._uploading.items()):
            if not uploading.future.done():
                continue
            del self._uploading[job_id]
            try:
                problem = uploading.future.result()
            except Exception as exc:  # a bug on the pool thread: the attempt fails, the daemon goes on
                logger.exception("uploading outputs failed unexpectedly")
                problem = f"localbatch could not upload the outputs: {exc}"
            ending = uploading.ending
            if problem is not None:
                assert ending.exit_code is not None
                ending = outcome.outputs_failed(ending.exit_code, problem)
            job = self._active.get(job_id)
            if job is not None:
                self._attempt_over(job, uploading.flight, ending, changes)

    def _exits_of_ended_output(self, exits: dict[str, ContainerExit]) -> dict[str, bool]:
        """Between listings: every flight counts as running but those whose output ended and
        whose container has an exit, which goes into ``exits``. One that cannot be read yet
        waits for the next listing."""
        running: dict[str, bool] = {}
        for flight in self._flights.values():
            running[flight.container_id] = True
            if flight.pump is None or flight.pump.is_alive():
                continue
            try:
                exit_ = self._runtime.wait(flight.container_id, 0)
            except ContainerRuntimeError:
                continue
            if exit_ is not None:
                running[flight.container_id] = False
                exits[flight.container_id] = exit_
        return running

    def _ending(self, flight: Flight, exists: bool, exit_: ContainerExit | None = None) -> AttemptOutcome:
        if exit_ is None and exists:
            exit_ = self._runtime.wait(flight.container_id, 0)
        if exit_ is None:
            return outcome.lost("Container vanished: it was removed from the engine while the job ran")
        if flight.stop_cause is Ending.TIMED_OUT:
            return outcome.timed_out(exit_.exit_code)
        if flight.stop_cause is Ending.TERMINATED:
            return outcome.terminated(exit_.exit_code, flight.stop_reason)
        if flight.stop_cause is Ending.HOST_TERMINATED:
            return outcome.host_terminated(flight.stop_reason)
        return outcome.exited(exit_.exit_code, exit_.oom_killed, exit_.error)

    def _finish(self, job: Job, ending: AttemptOutcome, now: EpochMs, changes: dict[str, Change]) -> None:
        self._record_usage(job, now)
        used = None if self._sampler is None else self._sampler.finish(job.job_id)
        if used is not None and job.current_attempt is not None:
            job = with_attempt(job, replace(job.current_attempt, usage=used))
        if job.node_index is not None and not job.is_main_node:
            self._finish_node(job, ending, now, changes)
            return
        job, event, _ = lifecycle.finish_attempt(job, ending, now)
        if event.detail is not None:
            logger.info("job=%s attempt=%d ended: %s", job.job_id, len(job.attempts), event.detail)
        self._record(changes, job, event)
        if job.is_main_node:
            self._main_attempt_ended(job, now, changes)

    def _record_usage(self, job: Job, now: EpochMs) -> None:
        """A fair-share job's attempt ends: its vCPU x run seconds go to its share's history."""
        attempt = job.current_attempt
        if job.share_identifier is None or attempt is None or attempt.started_at is None:
            return
        queue = next((q for q in self._queues if q.name == job.job_queue), None)
        policy = next((p for p in self._policies if queue and p.name == queue.scheduling_policy), None)
        if policy is not None:
            key = (job.job_queue, job.share_identifier)
            ran_ms = now - attempt.started_at
            self._usage.record(key, job.container.resources.vcpus, ran_ms, now, policy.decay_window_s)

    def _remove_finished(self, now: EpochMs) -> None:
        """Remove exited containers once their output is read (or once their pump has read
        nothing for 10 s: removing the container ends its output stream)."""
        keep: list[tuple[str, logs.LogPump | None, EpochMs]] = []
        for container_id, pump, since in self._removals:
            if pump is not None and pump.is_alive() and now - since < _PUMP_STALL_MS:
                keep.append((container_id, pump, since))
                continue
            if pump is not None and pump.is_alive() and pump.received != self._pumped.get(container_id):
                self._pumped[container_id] = pump.received  # still reading (a flood of output): wait on
                keep.append((container_id, pump, now))
                continue
            self._pumped.pop(container_id, None)
            if pump is not None and pump.error is not None:
                logger.warning("container %s: its output was not all saved: %s", container_id, pump.error)
            self._pool.submit(self._remove_container, container_id)
            archive = self._archives.pop(container_id, None)
            if archive is not None:
                self._pool.submit(self._archive_log, *archive)
        self._removals = keep

    def _will_archive(self, job: Job, container_id: str) -> None:
        """Remember where an ended attempt's log goes, when logs are archived."""
        attempt = job.current_attempt
        if self._log_store is None or attempt is None:
            return
        path = logs.attempt_log_path(self._settings.logs_dir, job.job_id, attempt.number)
        self._archives[container_id] = (path, attempt.log_stream_name)

    def _archive_log(self, path: Path, key: str) -> None:
        """Off the loop's thread: copy one attempt's log file to the log bucket, under its log
        stream name. A failure is logged; the job's outcome never depends on it."""
        assert self._log_store is not None and self._settings.log_bucket is not None
        bucket, name = self._settings.log_bucket, f"{path.parent.name}/{path.name}"
        try:
            if not path.is_file():
                return  # the container wrote nothing
            self._log_store.upload(path, bucket, key)
        except Exception as exc:  # noqa: BLE001 - on a pool thread: say it here, or nobody will
            logger.warning("cannot archive the log %s to s3://%s/%s: %s", name, bucket, key, exc)
        else:
            logger.debug("archived the log %s to s3://%s/%s", name, bucket, key)

    def _remove_quietly(self, container_id: str) -> None:
        """Remove a container; when the engine is away, again once it answers."""
        try:
            self._runtime.remove(container_id)
        except RuntimeUnavailable:
            with self._lock:
                self._unremoved.add(container_id)
        except ContainerRuntimeError as exc:
            logger.warning("could not remove container %s: %s", container_id, exc)

    def _remove_container(self, container_id: str) -> None:
        """Remove an attempt's container, then its staging directory (which it mounted)."""
        self._remove_quietly(container_id)
        where = self._staged.pop(container_id, None)
        if where is not None:
            transfers.discard(where)

    # -- stops and timeouts -----------------------------------------------------------------------

    def _apply_stops(self, now: EpochMs, changes: dict[str, Change]) -> None:
        # Array parents first: what they pass to their children is applied in this same tick.
        for array in [self._active[job_id] for job_id in self._stop_requested]:
            if array.is_array_parent and array.stop_request is not None:
                self._pass_on_stop(array, array.stop_request, changes)
        for job in [self._active[job_id] for job_id in self._stop_requested]:
            request = job.stop_request
            assert request is not None
            if job.is_array_parent:
                continue
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

    def _pass_on_stop(self, parent: Job, request: StopRequest, changes: dict[str, Change]) -> None:
        """CancelJob/TerminateJob on an array parent acts on each child not yet ended (AWS
        §4.4); the parent ends, marked as stopped, once they all have."""
        if self._passed_on.get(parent.job_id) == request:
            return
        self._passed_on[parent.job_id] = request
        for index in range(parent.array_size or 0):
            child = self._active.get(arrays.child_id(parent.job_id, index))
            if child is None or child.stop_request == request:
                continue
            if child.stop_request is not None and child.stop_request.kind is StopKind.TERMINATE:
                continue  # already stopping, and more firmly than a cancel
            self._record(changes, replace(child, stop_request=request))
            self._escalate(child.job_id)

    def _apply_timeouts(self, now: EpochMs) -> None:
        for job_id, flight in self._flights.items():
            if flight.deadline_ms is not None and flight.stop_cause is None and now >= flight.deadline_ms:
                logger.info("job=%s exceeded its attempt timeout; stopping it", job_id)
                self._stop(flight, Ending.TIMED_OUT, outcome.TIMEOUT)

    def _apply_spot(self, now: EpochMs) -> None:
        """Reclaim what the Spot environments' rehearsals say is due (``core.spot.reclaims``)."""
        rehearsals = {env.name: env.spot for env in self._environments if env.spot is not None}
        last, self._last_spot_check = self._last_spot_check, now
        if not rehearsals or not self._flights:
            return
        running = []
        for job_id, flight in self._flights.items():
            job = self._active.get(job_id)
            attempt = job.current_attempt if job is not None else None
            if job is not None and job.node_index is not None:
                continue  # AWS runs no multi-node job on Spot: there is nothing to rehearse
            if flight.stop_cause is None and job is not None and attempt is not None and attempt.started_at is not None:
                running.append(spot.RunningAttempt(job_id, job.compute_environment or "", attempt.started_at))
        for job_id in spot.reclaims(running, rehearsals, last, now, self._draw):
            self._reclaim(job_id)

    def _reclaim(self, job_id: str) -> None:
        """Stop the job's container as its host going away would; the attempt fails with AWS's
        ``Host EC2 (instance i-...) terminated.`` and the retry rules decide what follows."""
        flight, job = self._flights.get(job_id), self._active.get(job_id)
        attempt = job.current_attempt if job is not None else None
        if flight is None or flight.stop_cause is not None or attempt is None:
            logger.info("job=%s: not running any more; nothing to interrupt", job_id)
            return
        reason = spot.host_terminated_reason(job_id, attempt.number)
        logger.info("job=%s attempt=%d: Spot reclaim (rehearsed): %s", job_id, attempt.number, reason)
        self._stop(flight, Ending.HOST_TERMINATED, reason)

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
        """Move SUBMITTED jobs on, and the PENDING jobs whose dependencies ended: RUNNABLE
        when all succeeded, FAILED when one failed (which may fail the jobs waiting for this
        one in turn: the whole chain is settled in this one call), else PENDING. An array
        parent goes PENDING at once and ends once all its children have."""
        for job in [self._active[job_id] for job_id in self._submitted]:
            if job.is_array_parent:
                self._record(changes, *transition(job, JobStatus.PENDING, now))
            else:
                self._resolve(job, now, changes)
        while self._to_resolve or self._arrays_done:
            while self._to_resolve:
                job_id = next(iter(self._to_resolve))
                del self._to_resolve[job_id]
                pending = self._active.get(job_id)
                if pending is not None and pending.status is JobStatus.PENDING and not pending.is_array_parent:
                    self._resolve(pending, now, changes)
            while self._arrays_done:
                parent_id = next(iter(self._arrays_done))
                del self._arrays_done[parent_id]
                self._settle_array(parent_id, now, changes)

    def _resolve(self, job: Job, now: EpochMs, changes: dict[str, Change]) -> None:
        ready = dependencies.readiness(job.waits_for, self._status_of)
        if ready is Readiness.READY:
            self._record(changes, *transition(job, JobStatus.RUNNABLE, now))
        elif ready is Readiness.FAILED:
            self._record(changes, *lifecycle.fail_before_start(job, now, dependencies.DEPENDENT_JOB_FAILED))
        elif job.status is JobStatus.SUBMITTED:
            self._record(changes, *transition(job, JobStatus.PENDING, now))

    def _status_of(self, job_id: str) -> JobStatus | None:
        active = self._active.get(job_id)
        if active is not None:
            return active.status
        if job_id not in self._ended:  # ended before this daemon started
            stored = self._store.get_job(job_id)
            if stored is None:
                return None
            self._ended[job_id] = stored.status
        return self._ended[job_id]

    def _settle_array(self, parent_id: str, now: EpochMs, changes: dict[str, Change]) -> None:
        """Every child of the array ended: the parent ends as they did."""
        parent = self._active.get(parent_id)
        tally = self._arrays.pop(parent_id, None)
        self._passed_on.pop(parent_id, None)
        if parent is None or tally is None:
            return
        request = parent.stop_request
        if tally.failed == 0:
            self._record(changes, *transition(parent, JobStatus.SUCCEEDED, now))
        elif request is None:
            self._record(changes, *lifecycle.fail_before_start(parent, now, arrays.ARRAY_CHILD_FAILED))
        else:
            cancelled = request.kind is StopKind.CANCEL
            failed = lifecycle.fail_before_start(
                parent, now, request.reason, cancelled=cancelled, terminated=not cancelled
            )
            self._record(changes, *failed)

    def _apply_time_limits(self, now: EpochMs, changes: dict[str, Change]) -> None:
        """Cancel the head jobs that waited past their queue's jobStateTimeLimitActions; the next
        plan makes the job behind each the new head."""
        if not self._heads:
            return
        for due in queue_limits.due(self._heads, self._queues, now):
            job = self._active.get(due.job_id)
            if job is None or due.job_id not in self._runnable:  # placed or stopped meanwhile
                continue
            logger.info("job=%s: %s", job.job_id, due.status_reason)
            if job.is_multinode_parent:  # its nodes, waiting with it, end with it
                request = StopRequest(StopKind.CANCEL, due.status_reason, now)
                self._stop_multinode(job, request, StopEffect.FAIL, now, changes)
            else:
                self._record(changes, *lifecycle.fail_before_start(job, now, due.status_reason, cancelled=True))
            del self._heads[due.job_queue]

    def _consumable_quantities(self) -> dict[str, int]:
        """What each consumable resource has available: its total less what the jobs holding
        resources hold, and less what this tick's ended attempts are about to use up."""
        holding = [self._active[job_id].consumable_resources for job_id in self._placed if job_id in self._active]
        used = consumables.in_use([*holding, self._using_up_now()])
        return consumables.available(self._consumables, used)

    def _using_up_now(self) -> list[Need]:
        kinds = {r.name: r.resource_type for r in self._consumables}
        return [need for need in self._using_up if kinds.get(need[0]) is ResourceType.NON_REPLENISHABLE]

    def _plan(self, now: EpochMs, changes: dict[str, Change]) -> list[Job]:
        runnable = list(self._runnable.values())
        timed = self._next_timed_plan_ms is not None and now >= self._next_timed_plan_ms
        if not runnable:
            self._heads = {}
            if self._fronts or self._fronts_at is None:
                with self._lock:
                    self._fronts, self._fronts_at = {}, now
        if not runnable or not (self._dirty or timed):
            return []
        decided = plan(
            runnable,
            self._queues,
            self._environments,
            list(self._placed.values()),
            self._host,
            now,
            self._scheduler,
            policies=self._policies,
            usage=self._usage.at(now) if self._policies else None,
            consumable_quantities=self._consumable_quantities() if self._consumables else None,
            user_limits=self._user_limits,
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
        queue_of = {job.job_id: job.job_queue for job in runnable}  # what the plan was made of
        front = fronts(waiting, queue_of.__getitem__, self._fronts, now)
        with self._lock:
            self._waiting = waiting  # made text only when asked for
            self._fronts, self._fronts_at = front, now
        heads = {queue: (job_id, waiting[job_id].code) for queue, job_id in decided.heads.items()}
        self._heads = queue_limits.track(self._heads, heads, now)
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


def _maybe_the_engines(flight: Flight, ending: AttemptOutcome) -> bool:
    """An exit by SIGTERM or SIGKILL that localbatch did not ask for (not an OOM kill): a
    stopping engine does that to every container."""
    return (
        flight.stop_cause is None
        and ending.ending is Ending.EXITED
        and ending.exit_code in _SIGNAL_EXITS
        and ending.reason is None
    )


_WAITING = (JobStatus.SUBMITTED, JobStatus.PENDING)  # the statuses in which a job waits for others
_ENDED_KEPT = 100_000  # ended jobs whose status the loop remembers (beyond it: the store)
# The loop's records that grow with the jobs it handles (``ControlLoop.footprint``).
_FOOTPRINT = (
    "active",
    "runnable",
    "placed",
    "submitted",
    "stop_requested",
    "flights",
    "launching",
    "uploading",
    "staged",
    "removals",
    "unremoved",
    "pumped",
    "waiting",
    "dependents",
    "to_resolve",
    "arrays",
    "arrays_done",
    "passed_on",
    "early_stops",
    "archives",
    "gangs",
    "heads",
    "unsaved",
    "to_launch",
    "ended",
)


@dataclass
class _Tally:
    """How an array parent's children stand: how many have not ended, how many failed."""

    remaining: int
    failed: int

    @classmethod
    def of(cls, parent: Job, counts: Mapping[JobStatus, int]) -> _Tally:
        ended = counts.get(JobStatus.SUCCEEDED, 0) + counts.get(JobStatus.FAILED, 0)
        return cls(remaining=(parent.array_size or 0) - ended, failed=counts.get(JobStatus.FAILED, 0))


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
