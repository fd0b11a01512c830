"""A Docker engine of a fault test's own: a second dockerd that the test may stop, restart
or starve, never the shared one other tests run on.

``private_engine`` starts ``dockerd`` (root only) on its own socket, data root, exec root
and pid file under ``/tmp/lbfault-<id>`` (short: unix socket paths are limited), with its own
managed containerd, no bridge and no iptables; builds ``busybox:1.36`` in it from the host's
static busybox (nothing is pulled); and, whatever happens, kills it, unmounts what it mounted
and removes the directory. One serves a whole session (tests.faults.conftest).
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest

from tests.integration.conftest import BUSYBOX_IMAGE, HOST_BUSYBOX, build_busybox, unavailable
from tests.integration.daemons import Daemon, started_daemon

T = TypeVar("T")

_START_S = 60  # how long a dockerd may take to answer
_STOP_S = 60  # how long it may take to stop (it stops running containers first: 10 s grace)


@dataclass
class PrivateEngine:
    """One test's own dockerd: ``host`` is its DOCKER_HOST."""

    root: Path
    process: subprocess.Popen[bytes] | None = None
    client: Any = field(default=None)  # docker.DockerClient

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    def start(self) -> None:
        """Start dockerd and wait (bounded) until it answers."""
        (self.root / "docker.pid").unlink(missing_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "dockerd",
                    "--host", self.host,
                    "--data-root", str(self.root / "data"),
                    "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "docker.pid"),
                    "--bridge=none", "--iptables=false", "--ip6tables=false",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on pytest does not reach it; the finally does
            )  # fmt: skip
        deadline = time.monotonic() + _START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited at start: {self.log.read_text()[-2000:]}")
            client = _answering_client(self.host)
            if client is None:
                time.sleep(0.2)
                continue
            if self.client is not None:
                self.client.close()
            self.client = client
            return
        raise AssertionError(f"dockerd did not answer within {_START_S} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM and wait for it to exit, as ``systemctl stop docker`` does. Without
        live-restore (the default) it stops its containers first."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(_STOP_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def containers(self, **labels: str) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        return list(self.client.api.containers(all=True, filters=filters))


@contextmanager
def daemon_on(engine: PrivateEngine, tmp_path: Path, config: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A localbatch daemon in ``tmp_path`` whose engine is ``engine`` (DOCKER_HOST)."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    with started_daemon(tmp_path, engine.client, config) as running:
        yield running


def until(what: str, check: Callable[[], T | None], timeout_s: float = 60) -> T:
    """``check()``'s first true answer, asked every 0.2 s for at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


@contextmanager
def private_engine() -> Iterator[PrivateEngine]:
    """A running dockerd of the test's own, with busybox:1.36; gone afterwards."""
    if os.geteuid() != 0:
        unavailable("a fault test starts its own dockerd, which needs root")
    if shutil.which("dockerd") is None:
        unavailable("a fault test starts its own dockerd, and there is none on PATH")
    if not HOST_BUSYBOX.is_file():
        unavailable(f"no static {HOST_BUSYBOX} to build {BUSYBOX_IMAGE} from")
    engine = PrivateEngine(Path(f"/tmp/lbfault-{uuid.uuid4().hex[:8]}"))
    engine.root.mkdir(mode=0o700)
    try:
        engine.start()
        build_busybox(engine.client, BUSYBOX_IMAGE)
        yield engine
    finally:
        if engine.client is not None:
            with suppress(Exception):
                for container in engine.client.api.containers(all=True):
                    engine.client.api.remove_container(container["Id"], v=True, force=True)
            engine.client.close()
        engine.stop()
        _unmount_under(engine.root)
        shutil.rmtree(engine.root, ignore_errors=True)


def _answering_client(host: str) -> Any:
    """A client of the engine at ``host``, or None while it does not answer yet (the failed
    attempt's socket is collected here, under ``catch_warnings``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return docker.DockerClient(base_url=host, timeout=10)  # asks the engine its version
        except docker.errors.DockerException:  # not up yet
            pass
        gc.collect()
    return None


def _unmount_under(root: Path) -> None:
    """Lazily unmount whatever a killed dockerd left mounted under ``root`` (deepest first)."""
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(str(root))), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
