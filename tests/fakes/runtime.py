"""FakeRuntime: the ``ContainerRuntime`` port in memory, on a fake clock.

Organised like dsub's stub provider: first the methods the code under test calls (the
port), then the test API that scripts the world and observes what happened.

Nothing runs and nothing sleeps. A container "runs" from ``start`` for ``runs_for_s`` of
*fake* time, then exits as its script says; ``wait`` reports the exit once the clock has
reached the end, else returns None at once (the caller's loop advances the clock). To
drive a loop to completion a test advances the clock (``clock.advance(s)``), or ends a
container now with ``finish(container_id, ...)`` (a crash, an OOM kill, ...).

Files, in a simple model: at ``start`` a container records what it sees under its binds
(``FakeContainer.seen``), then makes its script's ``writes``: a path under a bind lands on
the host under the bind's source, any other in the container's own files, which
``copy_out`` reads (a path that is a prefix of others is a directory).

Unscripted containers exit 0 at once with no output. ``logs`` never blocks: it yields the
scripted output of a started container and ends, whether or not the container has exited
(a real engine would follow until the exit).

Thread-safe (one lock), so a daemon's log-pump threads may share it with its control loop.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from localbatch.errors import ContainerRuntimeError, ImageError, RuntimeUnavailable
from localbatch.ports import Bind, ContainerExit, ContainerInfo, ContainerRequest, ContainerStats, EngineInfo
from tests.fakes.clock import FakeClock

Output = bytes | Sequence[bytes] | Callable[[ContainerRequest], bytes]
Match = str | Callable[[ContainerRequest], bool]


@dataclass(frozen=True)
class Script:
    """What a container does once started. See ``FakeRuntime.script``."""

    matches: Callable[[ContainerRequest], bool]
    exit_code: int
    output: Output
    oom_killed: bool
    runs_for_s: float | None
    error: str | None
    stop_exit_code: int
    start_error: str | None = None
    start_exit_code: int = 128
    ignores_sigterm: bool = False
    writes: Mapping[str, bytes] = field(default_factory=dict)

    def chunks(self, request: ContainerRequest) -> list[bytes]:
        if callable(self.output):
            return [self.output(request)]
        if isinstance(self.output, bytes):
            return [self.output]
        return list(self.output)


def _named(name: str) -> Callable[[ContainerRequest], bool]:
    return lambda request: name in (request.spec.image, request.name)


_DEFAULT_SCRIPT = Script(
    matches=lambda _request: True,
    exit_code=0,
    output=b"",
    oom_killed=False,
    runs_for_s=0,
    error=None,
    stop_exit_code=143,
)


@dataclass
class FakeContainer:
    """One container as the fake sees it (read it; change it through the test API)."""

    container_id: str
    request: ContainerRequest
    script: Script
    created_at_ms: int
    started_at_ms: int | None = None
    ends_at_ms: int | None = None  # None: not started, or runs until stopped/finished
    exit: ContainerExit | None = None  # what it exits with at ends_at_ms
    output: list[bytes] = field(default_factory=list)
    seen: dict[str, bytes] = field(default_factory=dict)  # container path -> content under its binds, at start
    files: dict[str, bytes] = field(default_factory=dict)  # its own files (writes outside binds)

    def exited(self, now_ms: int) -> bool:
        return self.ends_at_ms is not None and self.ends_at_ms <= now_ms

    def running(self, now_ms: int) -> bool:
        return self.started_at_ms is not None and not self.exited(now_ms)


class FakeRuntime:
    """``ContainerRuntime`` in memory. ``clock`` is the test's ``FakeClock``."""

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        network_mode: str = "host",
    ) -> None:
        self.clock = clock if clock is not None else FakeClock()
        self.network_mode = network_mode

        # Set up the world (tests may assign these directly at any time).
        self.missing_images: set[str] = set()
        self.refuse_create_with: str | None = None  # engine's message; create raises
        self.refuse_start_with: str | None = None  # engine's message; start raises
        self.unavailable = False  # every call raises RuntimeUnavailable

        # Observations.
        self.created: list[ContainerRequest] = []
        self.started: list[str] = []
        self.stopped: list[tuple[str, float]] = []  # (container id, grace_s)
        self.removed: list[str] = []
        # What stats() reads for a running container (default: nothing used yet).
        self.usage: dict[str, ContainerStats] = {}

        self._scripts: list[Script] = []
        self._containers: dict[str, FakeContainer] = {}
        self._next_id = 1
        self._lock = threading.RLock()

    # -- called by the code under test (the port) -------------------------------------

    def engine_info(self) -> EngineInfo:
        self._answer()
        return EngineInfo(name="fake", version="0", api_version="0", network_mode=self.network_mode)

    def create(self, request: ContainerRequest) -> str:
        with self._lock:
            self._answer()
            if request.spec.image in self.missing_images:
                raise ImageError(request.spec.image, "not found (FakeRuntime.missing_images)")
            if self.refuse_create_with is not None:
                raise ContainerRuntimeError(
                    f"docker could not create container {request.name}: {self.refuse_create_with}"
                )
            if any(c.request.name == request.name for c in self._containers.values()):
                raise ContainerRuntimeError(
                    f"docker could not create container {request.name}: Conflict. "
                    f'The container name "/{request.name}" is already in use'
                )
            container_id = f"fake-{self._next_id:04d}"
            self._next_id += 1
            self._containers[container_id] = FakeContainer(
                container_id=container_id,
                request=request,
                script=self._script_for(request),
                created_at_ms=self.clock.now_ms(),
            )
            self.created.append(request)
            return container_id

    def start(self, container_id: str) -> None:
        with self._lock:
            self._answer()
            container = self._get(container_id, "start")
            if container.started_at_ms is not None:
                return  # Docker: starting a started container is a no-op
            now = self.clock.now_ms()
            script = container.script
            refusal = self.refuse_start_with or script.start_error
            if refusal is not None:
                # Docker leaves the container "created" with exit code 128 (127 for a missing
                # command) and the error, so a later wait reports them.
                container.ends_at_ms = now
                container.exit = ContainerExit(exit_code=script.start_exit_code, error=refusal)
                raise ContainerRuntimeError(f"docker could not start container {container_id}: {refusal}")
            container.started_at_ms = now
            container.seen = _seen_through(container.request.binds)
            for path, content in script.writes.items():
                _write(container, path, content)
            container.output = script.chunks(container.request)
            container.exit = ContainerExit(exit_code=script.exit_code, oom_killed=script.oom_killed, error=script.error)
            if script.runs_for_s is not None:
                container.ends_at_ms = now + round(script.runs_for_s * 1000)
            self.started.append(container_id)

    def wait(self, container_id: str, timeout_s: float) -> ContainerExit | None:
        with self._lock:
            self._answer()
            container = self._get(container_id, "wait for")
            if container.exited(self.clock.now_ms()) and container.exit is not None:
                return replace(container.exit, finished_at_ms=container.ends_at_ms)
            return None

    def stop(self, container_id: str, grace_s: float) -> None:
        with self._lock:
            self._answer()
            container = self._containers.get(container_id)
            if container is None:
                return
            self.stopped.append((container_id, grace_s))
            now = self.clock.now_ms()
            if not container.running(now):
                return
            if grace_s <= 0:
                self._end(container, ContainerExit(exit_code=137))
            elif container.script.ignores_sigterm:
                killed_at = now + round(grace_s * 1000)
                if container.ends_at_ms is None or container.ends_at_ms > killed_at:
                    container.ends_at_ms, container.exit = killed_at, ContainerExit(exit_code=137)
            else:
                self._end(container, ContainerExit(exit_code=container.script.stop_exit_code))

    def remove(self, container_id: str) -> None:
        with self._lock:
            self._answer()
            if self._containers.pop(container_id, None) is not None:
                self.removed.append(container_id)

    def logs(self, container_id: str) -> Iterator[bytes]:
        with self._lock:
            self._answer()
            container = self._get(container_id, "read the logs of")
            chunks = list(container.output)
        yield from chunks

    def copy_out(self, container_id: str, path: str, into: Path) -> list[Path]:
        with self._lock:
            self._answer()
            container = self._get(container_id, f"copy {path} out of")
            wanted = posixpath.normpath(path)
            if wanted in container.files:
                found = {into / posixpath.basename(wanted): container.files[wanted]}
            else:
                prefix = wanted.rstrip("/") + "/"
                base = into / posixpath.basename(wanted) if wanted != "/" else into
                found = {
                    base.joinpath(*name[len(prefix) :].split("/")): content
                    for name, content in container.files.items()
                    if name.startswith(prefix)
                }
            if not found:
                raise ContainerRuntimeError(f"no such file or directory in container {container_id}: {path}")
        for target, content in found.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return sorted(found)

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        with self._lock:
            self._answer()
            now = self.clock.now_ms()
            return [
                ContainerInfo(
                    container_id=c.container_id,
                    name=c.request.name,
                    labels=dict(c.request.labels),
                    running=c.running(now),
                )
                for c in self._containers.values()
                if all(c.request.labels.get(key) == value for key, value in labels.items())
            ]

    def stats(self, container_id: str) -> ContainerStats | None:
        with self._lock:
            self._answer()
            container = self._get(container_id, "read the usage of")
            if not container.running(self.clock.now_ms()):
                return None
            limit = container.request.spec.resources.memory_mib * 1024 * 1024
            return self.usage.get(container_id, ContainerStats(0, 0, limit))

    def address(self, container_id: str) -> str:
        """127.0.0.1 under host networking; otherwise 10.0.0.<n>, n the container's number."""
        with self._lock:
            self._answer()
            self._get(container_id, "find the address of")
            return "127.0.0.1" if self.network_mode == "host" else f"10.0.0.{int(container_id.rsplit('-', 1)[-1])}"

    def close(self) -> None:
        pass

    # -- test API: set up the world ----------------------------------------------------

    def script(
        self,
        match: Match,
        *,
        exit_code: int | None = None,
        output: Output = b"",
        oom_killed: bool = False,
        runs_for_s: float | None = 0,
        error: str | None = None,
        stop_exit_code: int = 143,
        start_error: str | None = None,
        ignores_sigterm: bool = False,
        writes: Mapping[str, bytes] | None = None,
    ) -> Script:
        """Say what containers matching ``match`` do once started.

        ``match`` is an image or container name (equal), or a predicate on the request.
        The most recent matching script wins. ``exit_code`` defaults to 137 when
        ``oom_killed`` else 0. ``runs_for_s=None`` runs until stopped or ``finish``-ed;
        ``stop`` then exits it with ``stop_exit_code`` (143: the program honoured SIGTERM).
        ``output`` is bytes, a list of chunks, or a function of the request (to echo its
        environment, say). ``start_error`` makes ``start`` fail with that engine message
        (the container then reports ``exit_code``, default 128, with the error, as Docker
        does). ``ignores_sigterm`` models a program that does not handle SIGTERM (busybox
        ``sleep`` as PID 1): a graceful ``stop`` ends it only when the grace runs out, with 137,
        as Docker's SIGKILL does. ``writes`` (absolute container path -> content) are the files
        the program writes, made at ``start``: under a bind's target on the host (an
        AssertionError for a read-only bind), elsewhere in the container for ``copy_out``.
        Applies to containers created afterwards.
        """
        matches = _named(match) if isinstance(match, str) else match
        if exit_code is None:
            exit_code = 137 if oom_killed else 0
            start_exit_code = 128
        else:
            start_exit_code = exit_code
        script = Script(
            matches=matches,
            exit_code=exit_code,
            output=output,
            oom_killed=oom_killed,
            runs_for_s=runs_for_s,
            error=error,
            stop_exit_code=stop_exit_code,
            start_error=start_error,
            start_exit_code=start_exit_code,
            ignores_sigterm=ignores_sigterm,
            writes=dict(writes or {}),
        )
        with self._lock:
            self._scripts.append(script)
        return script

    def finish(
        self,
        container_id: str,
        *,
        exit_code: int = 0,
        oom_killed: bool = False,
        error: str | None = None,
        output: bytes = b"",
    ) -> None:
        """End a running container now, as if its program exited (or was OOM-killed)."""
        with self._lock:
            container = self._get(container_id, "finish")
            if not container.running(self.clock.now_ms()):
                raise AssertionError(f"FakeRuntime.finish: container {container_id} is not running")
            if output:
                container.output.append(output)
            self._end(container, ContainerExit(exit_code=exit_code, oom_killed=oom_killed, error=error))

    # -- test API: observe -------------------------------------------------------------

    def container(self, container_id: str) -> FakeContainer:
        with self._lock:
            return self._get(container_id, "look up")

    def containers(self) -> list[FakeContainer]:
        """Every container not yet removed, in creation order."""
        with self._lock:
            return list(self._containers.values())

    def running(self) -> list[str]:
        """Ids of containers started and not yet exited, at the clock's now."""
        with self._lock:
            now = self.clock.now_ms()
            return [c.container_id for c in self._containers.values() if c.running(now)]

    # -- internals ---------------------------------------------------------------------

    def _answer(self) -> None:
        if self.unavailable:
            raise RuntimeUnavailable("the fake Docker engine does not answer (FakeRuntime.unavailable)")

    def _get(self, container_id: str, action: str) -> FakeContainer:
        container = self._containers.get(container_id)
        if container is None:
            raise ContainerRuntimeError(
                f"docker could not {action} container {container_id}: No such container: {container_id}"
            )
        return container

    def _script_for(self, request: ContainerRequest) -> Script:
        for script in reversed(self._scripts):
            if script.matches(request):
                return script
        return _DEFAULT_SCRIPT

    def _end(self, container: FakeContainer, exit: ContainerExit) -> None:
        container.ends_at_ms = self.clock.now_ms()
        container.exit = exit


# ---------------------------------------------------------------------------------------
# Binds


def host_path(binds: Sequence[Bind], container_path: str) -> tuple[Bind, Path] | None:
    """The bind a container path goes through (the innermost) and the host path it is, or None."""
    path = posixpath.normpath(container_path)
    for bind in sorted(binds, key=lambda b: len(b.target), reverse=True):
        target = posixpath.normpath(bind.target)
        if path == target:
            return bind, bind.source
        if path.startswith(target.rstrip("/") + "/"):
            return bind, bind.source.joinpath(*path[len(target.rstrip("/")) + 1 :].split("/"))
    return None


def _seen_through(binds: Sequence[Bind]) -> dict[str, bytes]:
    """Every file the binds show the container: container path -> content."""
    seen: dict[str, bytes] = {}
    for bind in binds:
        target = posixpath.normpath(bind.target)
        if bind.source.is_file():
            seen[target] = bind.source.read_bytes()
            continue
        for file in sorted(f for f in bind.source.rglob("*") if f.is_file()):
            seen[posixpath.join(target, *file.relative_to(bind.source).parts)] = file.read_bytes()
    return seen


def _write(container: FakeContainer, path: str, content: bytes) -> None:
    if not posixpath.isabs(path):
        raise AssertionError(f"FakeRuntime: script writes to {path!r}, which is not an absolute path")
    through = host_path(container.request.binds, path)
    if through is None:
        container.files[posixpath.normpath(path)] = content
        return
    bind, target = through
    if bind.read_only:
        raise AssertionError(f"FakeRuntime: script writes to {path}, under the read-only bind {bind.target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
