"""Composition root: the one module that imports adapters and wires them to the ports.

Front doors ask it for what they need and get ports back; nothing else in the package
imports ``localbatch.adapters``. Building is lazy and cheap: constructing the Docker
runtime does not touch the engine, opening the store creates ``$LOCALBATCH_HOME`` only
when a command needs state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localbatch import events
from localbatch.adapters import outbound, sqlite_backup
from localbatch.adapters.clock import SystemClock
from localbatch.adapters.docker_runtime import DockerRuntime
from localbatch.adapters.host import NvmlGpuMeter, PsutilHostProbe
from localbatch.adapters.sqlite_backup import BackupSummary
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.dashboard import PREFIX as DASHBOARD_PREFIX
from localbatch.api.dashboard import Dashboard
from localbatch.api.dispatch import READ_OPERATIONS, BatchDispatcher
from localbatch.api.logs_api import TARGET_PREFIX as LOGS_TARGET
from localbatch.api.logs_api import LogsApi
from localbatch.api.server import Api, ApiServer, TcpApiServer
from localbatch.api_credentials import ensure_keyring, forget_endpoint, remember_endpoint
from localbatch.audit import AuditLog
from localbatch.batch import BatchService
from localbatch.client import DaemonClient, DaemonUnreachable
from localbatch.config import Settings
from localbatch.core.inventory import HostInventory, capacity
from localbatch.core.metrics import CONTENT_TYPE, Family, Sample, exposition
from localbatch.core.naming import Arns
from localbatch.daemon.events import EventDispatcher, ScheduleRunner
from localbatch.daemon.loop import ControlLoop
from localbatch.daemon.metrics import Metrics
from localbatch.daemon.process import DaemonAlreadyRunning, HomeInUse, hold_engine_shared, hold_lock
from localbatch.daemon.startup import apply_infrastructure, recover
from localbatch.daemon.usage import UsageSampler
from localbatch.errors import UsageError
from localbatch.extensions import (
    INTERRUPT,
    LOGS,
    STATUS,
    Extensions,
)
from localbatch.ports import Clock, ContainerRuntime, HostProbe, LoggedEvent, ObjectStore, StateStore
from localbatch.session import Backend, LocalBackend
from localbatch.store_server import Servers
from localbatch.tls import certificate_summary, server_context

logger = logging.getLogger(__name__)

METRICS_PATH = "/metrics"  # Prometheus's text format, on the socket and the TCP listener


@contextmanager
def state_store(settings: Settings) -> Iterator[StateStore]:
    """The state store under ``$LOCALBATCH_HOME`` (created if missing), closed afterwards."""
    settings.prepare_home()
    store = SqliteStateStore(settings.database_path)
    try:
        yield store
    finally:
        store.close()


def backup_state(settings: Settings, destination: Path) -> BackupSummary:
    """Copy the home's state database to ``destination``, consistent even while the daemon
    writes it (``localbatch daemon backup``)."""
    return sqlite_backup.backup(settings.database_path, destination)


def restore_state(settings: Settings, backup_file: Path, now: float | None = None) -> tuple[BackupSummary, Path | None]:
    """Make ``backup_file`` the home's state database (``localbatch daemon restore``); returns
    what was restored and where the replaced database was kept. It holds the home's lock
    throughout, so it refuses while a daemon or ``localbatch run`` has the home."""
    try:
        with hold_lock(settings):
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
            return sqlite_backup.restore(backup_file, settings.database_path, stamp)
    except (DaemonAlreadyRunning, HomeInUse) as exc:
        raise UsageError(f"cannot restore while the home is in use: {exc}; stop it first") from exc


def container_runtime(settings: Settings) -> ContainerRuntime:
    return DockerRuntime(
        network_mode=settings.network_mode,
        cpu_limit=settings.cpu_limit,
        image_pull=settings.image_pull,
    )


def object_store(settings: Settings) -> ObjectStore:
    """The S3-compatible store the settings name (nothing is contacted until it is used)."""
    from localbatch.adapters.minio_store import MinioObjectStore  # only commands that use it pay its import

    return MinioObjectStore(settings.store)


def store_servers(settings: Settings) -> Servers:
    """What starts and stops the ``store up`` server; the Docker engine is touched only on the
    container path. Its containers carry ``localbatch.store_home`` (not the jobs' home label, so
    the daemon's recovery leaves them alone)."""
    from localbatch.adapters.store_server import StoreServers

    return StoreServers(
        lambda: DockerRuntime(image_pull=settings.image_pull), {"localbatch.store_home": settings.home_id}
    )


def host_probe() -> HostProbe:
    return PsutilHostProbe()


def clock() -> Clock:
    return SystemClock()


# -- the daemon -------------------------------------------------------------------------------


@dataclass
class _Engine:
    """The daemon's working parts on one store, wired the one way they are wired."""

    api: Api
    loop: ControlLoop | None
    extensions: Extensions


def _engine(
    settings: Settings,
    store: StateStore,
    runtime: ContainerRuntime,
    inventory: HostInventory,
    *,
    loop: bool,
    recovering: bool = False,
) -> _Engine:
    """With ``loop``: the configured infrastructure applied and a control loop (having
    recovered the jobs in flight when ``recovering``). Then the service, the API (read-only,
    and writing nothing, without a loop) and the extensions on top."""
    host = capacity(inventory, settings.reserve)
    clock_ = clock()
    control = None
    metrics = Metrics()
    if loop:  # only an engine that owns the home writes the configured infrastructure
        apply_infrastructure(settings, store, inventory, clock_.now_ms())
        control = ControlLoop(
            settings=settings,
            runtime=runtime,
            store=store,
            clock=clock_,
            host=host,
            gpus=inventory.gpus,
            object_store=object_store(settings),
            sampler=UsageSampler(runtime, clock_, gpus=NvmlGpuMeter() if inventory.gpus else None),
            metrics=metrics,
        )
        if recovering:
            recover(control, settings, store, runtime, clock_)
        else:
            control.load([], {})  # only what this process submits
    service = BatchService(
        store=store,
        clock=clock_,
        host=host,
        gpu_ids=tuple(g.device_id for g in inventory.gpus),
        notifier=control,
        live=control,
        host_policy=settings.policy,
    )
    arns = Arns(settings.region, settings.account_id)
    dispatcher = BatchDispatcher(service, arns, host, read_only=control is None, policy=settings.policy)
    api = Api(dispatcher, supported=dispatcher.operations)
    api.add_json_target(LOGS_TARGET, LogsApi(store=store, logs_dir=settings.logs_dir, arns=arns))
    extensions = Extensions(
        settings=settings,
        store=store,
        host=inventory,
        capacity=host,
        runtime=runtime,
        allocations=control.allocations if control is not None else tuple,
        interrupt=control.interrupt if control is not None else None,
        live_usage=control.live_usage if control is not None else dict,
        engine_outage=control.engine_outage if control is not None else (lambda: None),
        footprint=control.footprint if control is not None else dict,
        started_at=clock_.now_ms(),
        now_ms=clock_.now_ms,
    )
    api.add_extension("GET", STATUS, extensions.status)
    api.add_extension("GET", LOGS, extensions.logs)
    for path, handler in extensions.reads().items():
        api.add_extension("GET", path, handler)
    api.add_extension("POST", INTERRUPT, extensions.interrupt)
    if control is not None:
        allocations = control.allocations
        # every request of the daemon's listeners that changes state (the TCP one copies this)
        audit_log = AuditLog(settings.audit_log_path, max_bytes=settings.audit_max_bytes)
        api.set_audit(audit_log.record, READ_OPERATIONS)

        def scrape() -> tuple[str, bytes]:
            dropped = Family(
                "localbatch_audit_write_failures_total",
                "counter",
                "Audit log entries dropped because writing failed, since the daemon started.",
                (Sample((), audit_log.failures),),
            )
            return CONTENT_TYPE, exposition([*metrics.families(store, allocations, host), dropped]).encode()

        api.add_plain(METRICS_PATH, scrape)
        # read-only pages on the same API, called in-process (the request was authenticated)
        dashboard = Dashboard(LocalBackend(api, extensions, settings.socket_path))
        api.add_pages(DASHBOARD_PREFIX, dashboard.handle)
    return _Engine(api, control, extensions)


def _automation(settings: Settings, store: StateStore, engine: _Engine) -> tuple[EventDispatcher, ScheduleRunner]:
    """The daemon's webhooks, hooks and triggers (fed from the event log) and its schedules;
    their jobs are submitted through the API, as any client's."""
    arns = Arns(settings.region, settings.account_id)
    clock_ = clock()

    def submit(body: dict[str, Any]) -> str:
        return str(engine.api.invoke("SubmitJob", body)["jobId"])

    def render(entry: LoggedEvent) -> dict[str, Any]:
        return events.envelope(entry, arns, settings.home_id, lambda job_id: store.count_jobs(array_job_id=job_id))

    dispatcher = EventDispatcher(
        store=store,
        automation=settings.automation,
        render=render,
        clock=clock_,
        submit=submit,
        post=outbound.post,
        run_command=outbound.run_command,
    )
    runner = ScheduleRunner(store=store, automation=settings.automation, clock=clock_, submit=submit)
    return dispatcher, runner


@contextmanager
def running_daemon(settings: Settings) -> Iterator[ApiServer]:
    """Everything the daemon is, started: lock, store, infrastructure, recovery, control loop
    and API socket. Leaving the block stops serving and scheduling; containers keep running."""
    with hold_lock(settings):
        runtime = container_runtime(settings)
        engine_info = runtime.engine_info()  # no engine: one clear error before anything starts
        if settings.policy.shared and engine_info.network_mode == "host":
            logger.warning(
                "[policy]: containers use the host's network ([docker] network_mode resolves to host): "
                "every user's jobs reach the services this host offers on 127.0.0.1; docs/policy.md"
            )
        try:
            with state_store(settings) as store:
                engine = _engine(settings, store, runtime, host_probe().probe(), loop=True, recovering=True)
                assert engine.loop is not None
                server = ApiServer(settings.socket_path, engine.api, group=settings.policy.socket_group)
                tcp = None
                if settings.listen is not None:
                    ensure_keyring(settings.home)
                    tls = settings.tls
                    tcp = TcpApiServer(
                        settings.listen,
                        engine.api.with_authenticator(sigv4_authenticator(settings.home)),
                        tls=server_context(tls) if tls is not None else None,
                        tls_summary=certificate_summary(tls.certificate) if tls is not None else "",
                    )
                dispatcher, runner = _automation(settings, store, engine)
                if dispatcher.needed:
                    engine.loop.subscribe(dispatcher.wake)
                    dispatcher.start()
                engine.loop.start()
                if runner.needed:
                    runner.start()
                server.start()
                try:
                    if tcp is not None:
                        tcp.start()
                        remember_endpoint(settings.home, tcp.where)
                    yield server
                finally:
                    engine.extensions.close()  # long polls answer now, not at their deadline
                    if tcp is not None:
                        forget_endpoint(settings.home)
                        tcp.shutdown()
                    server.shutdown()
                    runner.stop()
                    engine.loop.stop()
                    dispatcher.stop()
        finally:
            runtime.close()


# -- what the CLI talks to --------------------------------------------------------------------


def daemon_answers(settings: Settings) -> bool:
    client = _answering_daemon(settings)
    if client is not None:
        client.close()
    return client is not None


def _answering_daemon(settings: Settings) -> DaemonClient | None:
    """A client of this home's daemon, once it has answered; None when no daemon answers."""
    if not settings.socket_path.exists():
        return None
    client = DaemonClient(str(settings.socket_path))
    try:
        client.get(STATUS)
    except DaemonUnreachable:
        client.close()
        return None
    return client


@contextmanager
def backend(settings: Settings, *, run_here: bool = False) -> Iterator[Backend]:
    """The daemon, when one answers on this home's socket. Else, with ``run_here``, the
    daemon's engine in this process (``local_engine``); without, this process reading the
    store through the same API handlers (and refusing what needs the daemon). Unless a daemon
    is starting, the configured infrastructure is applied first, as any engine applies it, so
    a fresh home shows the environments and queues its config declares."""
    client = _answering_daemon(settings)
    if client is not None:
        with client:
            yield client
        return
    if run_here:
        with local_engine(settings) as here:
            yield here
        return
    runtime = container_runtime(settings)
    try:
        with state_store(settings) as store:
            inventory = host_probe().probe()
            with suppress(HomeInUse), hold_engine_shared(settings):
                apply_infrastructure(settings, store, inventory, clock().now_ms())
            engine = _engine(settings, store, runtime, inventory, loop=False)
            yield LocalBackend(engine.api, engine.extensions, settings.socket_path)
    finally:
        runtime.close()


@contextmanager
def local_engine(settings: Settings) -> Iterator[Backend]:
    """The daemon's engine inside this process, for ``localbatch run`` when no daemon runs:
    the same API, service and control loop on the same store, without the socket and without
    recovery (it touches only the jobs it is given). Its containers do not outlive it."""
    runtime = container_runtime(settings)
    runtime.engine_info()  # no engine: one clear error before anything is recorded
    try:
        with hold_engine_shared(settings), state_store(settings) as store:
            engine = _engine(settings, store, runtime, host_probe().probe(), loop=True)
            assert engine.loop is not None
            engine.loop.start()
            try:
                yield LocalBackend(engine.api, engine.extensions, settings.socket_path, writable=True)
            finally:
                engine.loop.stop()
                engine.loop.release_all()
    finally:
        runtime.close()
