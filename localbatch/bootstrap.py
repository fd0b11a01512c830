"""Composition root: the one module that imports adapters and wires them to the ports.

Front doors ask it for what they need and get ports back; nothing else in the package
imports ``localbatch.adapters``. Building is lazy and cheap: constructing the Docker
runtime does not touch the engine, opening the store creates ``$LOCALBATCH_HOME`` only
when a command needs state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from localbatch.adapters.clock import SystemClock
from localbatch.adapters.docker_runtime import DockerRuntime
from localbatch.adapters.host import PsutilHostProbe
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.config import Settings
from localbatch.core.inventory import capacity
from localbatch.errors import ConfigError
from localbatch.ports import Clock, ContainerRuntime, HostProbe, StateStore
from localbatch.runner import Runner, RunObserver


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
