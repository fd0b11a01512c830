"""Starting, finding and stopping the S3 server of ``localbatch store up`` (processes and, through
a narrow container port, Docker containers). What to start is ``localbatch.store_server``'s.

A process is started in its own session (it outlives the CLI and a closed terminal), its output
appended to ``store/server.log``; it is stopped with SIGTERM to its process group, SIGKILL after
the grace. A container runs on the host's network and is stopped and removed by ``down``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from localbatch.store_server import HOST, ServerPlan, ServerState, StoreServerError

_POLL_S = 0.1


class ServiceContainers(Protocol):
    """What the container path needs of a container runtime (DockerRuntime has it)."""

    def run_service(
        self,
        *,
        name: str,
        image: str,
        command: Sequence[str],
        environment: Mapping[str, str],
        binds: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> str: ...

    def is_running(self, container_id: str) -> bool: ...

    def stop(self, container_id: str, grace_s: float) -> None: ...

    def remove(self, container_id: str) -> None: ...


class StoreServers:
    """Runs the store server a ServerPlan describes; ``containers`` is asked for only on the
    container path (so the process paths never touch the Docker engine)."""

    def __init__(self, containers: Callable[[], ServiceContainers], home_label: Mapping[str, str]) -> None:
        self._containers = containers
        self._labels = dict(home_label)

    def start(self, plan: ServerPlan, log_path: Path) -> ServerState:
        plan.data_dir.mkdir(parents=True, exist_ok=True)
        if plan.kind == "container":
            assert plan.image is not None
            container_id = self._containers().run_service(
                name=f"localbatch-store-{plan.port}-{os.getpid()}",
                image=plan.image,
                command=plan.argv,
                environment=plan.environment,
                binds={str(plan.data_dir): "/data"},
                labels={**self._labels, "localbatch.role": "store"},
            )
            return ServerState(kind=plan.kind, port=plan.port, container_id=container_id, note=plan.note)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                process = subprocess.Popen(
                    list(plan.argv),
                    env={**os.environ, **plan.environment},
                    cwd=plan.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StoreServerError(f"cannot start {plan.argv[0]}: {exc.strerror or exc}") from None
        # Detached on purpose: the server outlives this Popen (and this process); its exit status
        # is collected by _reap here or by whoever inherits it. Marking it finished keeps Popen
        # from warning that a child was left running.
        process.returncode = 0
        return ServerState(kind=plan.kind, port=plan.port, pid=process.pid, argv0=plan.argv[0], note=plan.note)

    def running(self, state: ServerState) -> bool:
        """Whether what ``state`` names still runs (a reused pid running another program does not count)."""
        if state.container_id:
            return self._containers().is_running(state.container_id)
        return state.pid is not None and _process_alive(state.pid, state.argv0)

    def answers(self, port: int) -> bool:
        return answers(HOST, port)

    def wait_ready(self, state: ServerState, timeout_s: float, log_path: Path) -> None:
        """Until the endpoint accepts connections; StoreServerError when the server dies first
        or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            if answers(HOST, state.port):
                return
            if not self.running(state):
                raise StoreServerError(f"the {state.kind} server exited before it answered{_log_tail(state, log_path)}")
            if time.monotonic() >= deadline:
                raise StoreServerError(
                    f"the {state.kind} server did not answer on {state.endpoint} within {timeout_s:g} s"
                    f"{_log_tail(state, log_path)}"
                )
            time.sleep(_POLL_S)

    def stop(self, state: ServerState, grace_s: float) -> None:
        """Stop (and, for a container, remove) what ``state`` names; the data stays."""
        if state.container_id:
            containers = self._containers()
            containers.stop(state.container_id, grace_s)
            containers.remove(state.container_id)
            return
        if state.pid is None or not _process_alive(state.pid, state.argv0):
            return
        _signal(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _process_alive(state.pid, state.argv0) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if _process_alive(state.pid, state.argv0):
            _signal(state.pid, signal.SIGKILL)
            for _ in range(50):  # bounded: SIGKILL is not refused
                if not _process_alive(state.pid, state.argv0):
                    break
                time.sleep(_POLL_S)
        _reap(state.pid)


def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _process_alive(pid: int, argv0: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True
    try:
        stat = (proc / "stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie is gone, only not reaped
            _reap(pid)
            return False
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if argv0 is None:
        return True
    return any(part.decode(errors="replace") == argv0 for part in cmdline)


def _signal(pid: int, signum: int) -> None:
    """The process group first (the server's own children too), else the process."""
    try:
        os.killpg(pid, signum)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status when the server is this process's child (same CLI run)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _log_tail(state: ServerState, log_path: Path) -> str:
    if state.container_id:
        return f" (see `docker logs {state.container_id[:12]}`)"
    try:
        lines = log_path.read_text(errors="replace").strip().splitlines()[-5:]
    except OSError:
        return ""
    return f"; last lines of {log_path}:\n" + "\n".join(lines) if lines else f" (see {log_path})"
