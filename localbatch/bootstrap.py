"""Composition root: the one module that imports adapters and wires them to the ports.

Front doors ask it for what they need and get ports back; nothing else in the package
imports ``localbatch.adapters``. Building is lazy and cheap: constructing the Docker
runtime does not touch the engine, opening the store creates ``$LOCALBATCH_HOME`` only
when a command needs state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from localbatch.adapters.clock import SystemClock
from localbatch.adapters.docker_runtime import DockerRuntime
from localbatch.adapters.host import PsutilHostProbe
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.api.dispatch import BatchDispatcher
from localbatch.api.server import Api, ApiServer
from localbatch.batch import BatchService
from localbatch.client import DaemonClient, DaemonUnreachable
from localbatch.config import Settings
from localbatch.core.inventory import capacity
from localbatch.core.naming import Arns
from localbatch.daemon.loop import ControlLoop
from localbatch.daemon.process import hold_lock
from localbatch.daemon.startup import apply_infrastructure, recover
from localbatch.errors import ConfigError
from localbatch.extensions import EVENTS, LOGS, RESOURCES, STATUS, Extensions
from localbatch.ports import Clock, ContainerRuntime, HostProbe, StateStore
from localbatch.runner import Runner, RunObserver
from localbatch.session import Backend, LocalBackend


@contextmanager
def state_store(settings: Settings) -> Iterator[StateStore]:
    """The state store under ``$LOCALBATCH_HOME`` (created if missing), closed afterwards."""
    if settings.home.exists() and not settings.home.is_dir():
        raise ConfigError(f"LOCALBATCH_HOME {settings.home} is not a directory")
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create LOCALBATCH_HOME {settings.home}: {exc.strerror}") from None
    store = SqliteStateStore(settings.database_path)
    try:
        yield store
    finally:
        store.close()


def container_runtime(settings: Settings) -> ContainerRuntime:
    return DockerRuntime(
        network_mode=settings.network_mode,
        cpu_limit=settings.cpu_limit,
        image_pull=settings.image_pull,
    )


def host_probe() -> HostProbe:
    return PsutilHostProbe()


def clock() -> Clock:
    return SystemClock()


@contextmanager
def local_runner(settings: Settings, observer: RunObserver) -> Iterator[Runner]:
    """A Runner on the real engine, store and host (the engine is first asked on submit)."""
    inventory = host_probe().probe()
    runtime = container_runtime(settings)
    try:
        with state_store(settings) as store:
            yield Runner(
                settings=settings,
                runtime=runtime,
                store=store,
                clock=clock(),
                capacity=capacity(inventory, settings.reserve),
                gpus=inventory.gpus,
                observer=observer,
            )
    finally:
        runtime.close()


# -- the daemon -------------------------------------------------------------------------------


@dataclass
class RunningDaemon:
    settings: Settings
    server: ApiServer
    loop: ControlLoop


@contextmanager
def running_daemon(settings: Settings) -> Iterator[RunningDaemon]:
    """Everything the daemon is, started: lock, store, infrastructure, recovery, control loop
    and API socket. Leaving the block stops serving and scheduling; containers keep running."""
    with hold_lock(settings):
        inventory = host_probe().probe()
        host = capacity(inventory, settings.reserve)
        runtime = container_runtime(settings)
        runtime.engine_info()  # no engine: one clear error before anything starts
        clock_ = clock()
        with state_store(settings) as store:
            apply_infrastructure(settings, store, inventory)
            loop = ControlLoop(
                settings=settings, runtime=runtime, store=store, clock=clock_, host=host, gpus=inventory.gpus
            )
            recover(loop, settings, store, runtime, clock_)
            service = BatchService(store=store, clock=clock_, host=host, notifier=loop, live=loop)
            dispatcher = BatchDispatcher(service, Arns(settings.region, settings.account_id), host)
            api = Api(dispatcher, supported=dispatcher.operations)
            extensions = Extensions(
                settings=settings,
                store=store,
                host=inventory,
                capacity=host,
                runtime=runtime,
                allocations=lambda: loop.snapshot().allocations,
                started_at=clock_.now_ms(),
                now_ms=clock_.now_ms,
            )
            _serve_extensions(api, extensions)
            server = ApiServer(settings.socket_path, api)
            loop.start()
            server.start()
            try:
                yield RunningDaemon(settings, server, loop)
            finally:
                server.shutdown()
                loop.stop()
                runtime.close()


def _serve_extensions(api: Api, extensions: Extensions) -> None:
    api.add_extension("GET", STATUS, extensions.status)
    api.add_extension("GET", RESOURCES, extensions.resources)
    api.add_extension("GET", LOGS, extensions.logs)
    api.add_extension("GET", EVENTS, extensions.events)


# -- what the CLI talks to --------------------------------------------------------------------


def daemon_answers(settings: Settings) -> bool:
    try:
        with DaemonClient(str(settings.socket_path)) as client:
            client.get(STATUS)
        return True
    except DaemonUnreachable:
        return False


@contextmanager
def backend(settings: Settings) -> Iterator[Backend]:
    """The daemon, when one answers on this home's socket; else this process, reading the
    store through the same API handlers (and refusing what needs the daemon)."""
    if settings.socket_path.exists() and daemon_answers(settings):
        with DaemonClient(str(settings.socket_path)) as client:
            yield client
        return
    inventory = host_probe().probe()
    host = capacity(inventory, settings.reserve)
    runtime = container_runtime(settings)
    try:
        with state_store(settings) as store:
            apply_infrastructure(settings, store, inventory)
            service = BatchService(store=store, clock=clock(), host=host)
            dispatcher = BatchDispatcher(service, Arns(settings.region, settings.account_id), host, read_only=True)
            extensions = Extensions(settings=settings, store=store, host=inventory, capacity=host, runtime=runtime)
            yield LocalBackend(Api(dispatcher, supported=dispatcher.operations), extensions, settings.socket_path)
    finally:
        runtime.close()
