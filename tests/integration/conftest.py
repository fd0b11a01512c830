"""Fixtures for tests against a real Docker engine.

- ``docker_client`` (session): the engine answers, or the test is skipped with the reason;
  with ``LOCALBATCH_REQUIRE_DOCKER=1`` (CI) a silent engine is a failure instead.
- ``busybox_image`` (session): ``busybox:1.36`` exists, built FROM scratch from the host's
  static busybox with the legacy builder when missing. Nothing is ever pulled.
- ``LocalbatchCli``: the real CLI, as a user runs it, in one test's home; ``hanging_registry``:
  an image reference whose pull never ends, on loopback.
- ``daemon`` (per test): a daemon in the test's own home with a 2-vCPU compute environment and
  the ``default`` queue, ``hello`` registered (``tests.integration.daemons``).
- ``docker_kit`` (per test): a ``DockerRuntime`` on the shared client, the per-test label
  ``localbatch.test_run=<uuid>`` for every request, and a request builder. Teardown
  force-removes every container carrying that label, even when the test failed.

Every test under ``tests/integration`` is marked ``docker``.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import docker
import docker.errors
import pytest

from localbatch.adapters.docker_runtime import DockerRuntime, client_from_env
from localbatch.config import Settings, resolve
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import RuntimeUnavailable
from localbatch.ports import ContainerRequest

TEST_RUN_LABEL = "localbatch.test_run"
BUSYBOX_IMAGE = "busybox:1.36"
HOST_BUSYBOX = Path("/bin/busybox")
_HERE = Path(__file__).parent

_DOCKERFILE = b'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.docker)


def unavailable(reason: str) -> NoReturn:
    """Something an integration test needs is missing: skip, but fail where CI runs
    (LOCALBATCH_REQUIRE_DOCKER=1, whose `make test` installs the engine, Chromium and tmux)."""
    if os.environ.get("LOCALBATCH_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (LOCALBATCH_REQUIRE_DOCKER=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        client = client_from_env()  # asks the engine its API version: fails when none answers
    except RuntimeUnavailable as exc:
        unavailable(f"no Docker engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any) -> str:
    try:
        docker_client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    if not HOST_BUSYBOX.is_file():
        unavailable(f"{BUSYBOX_IMAGE} is missing and there is no static {HOST_BUSYBOX} to build it from")
    build_busybox(docker_client, BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE


def build_busybox(client: Any, tag: str) -> None:
    """Build ``tag`` FROM scratch with the host's static busybox (legacy builder, no pull)."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = tarfile.TarInfo("Dockerfile")
        dockerfile.size = len(_DOCKERFILE)
        tar.addfile(dockerfile, io.BytesIO(_DOCKERFILE))
        tar.add(str(HOST_BUSYBOX), arcname="busybox")
    context.seek(0)
    # The engine's /build endpoint is the legacy builder; pull=False: FROM scratch needs nothing.
    client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True, forcerm=True)


@dataclass
class DockerKit:
    """What a real-engine test needs: the client, a runtime, its labels and a request builder."""

    client: Any  # docker.DockerClient
    image: str
    labels: Mapping[str, str]
    runtime: DockerRuntime = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = DockerRuntime(client=self.client)

    def runtime_with(self, **options: str) -> DockerRuntime:
        """Another DockerRuntime on the same client (``cpu_limit="quota"``, ...)."""
        return DockerRuntime(client=self.client, **options)

    def request(
        self,
        *command: str,
        spec: ContainerSpec | None = None,
        environment: Mapping[str, str] | None = None,
        gpu_device_ids: tuple[str, ...] = (),
        **spec_fields: Any,
    ) -> ContainerRequest:
        """A request carrying the test-run label: ``command`` on busybox, 1 vCPU, 64 MiB,
        with ``spec_fields`` replaced on the ContainerSpec."""
        base = spec or ContainerSpec(image=self.image, command=command, resources=Resources(vcpus=1, memory_mib=64))
        return ContainerRequest(
            name=f"lbtest-{uuid.uuid4().hex[:12]}",
            spec=replace(base, **spec_fields),
            environment=dict(environment or {}),
            labels=dict(self.labels),
            gpu_device_ids=gpu_device_ids,
        )

    def inspect(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.api.inspect_container(container_id)
        return result


@pytest.fixture
def test_run_labels() -> dict[str, str]:
    return {TEST_RUN_LABEL: uuid.uuid4().hex}


@pytest.fixture
def docker_kit(docker_client: Any, busybox_image: str, test_run_labels: dict[str, str]) -> Iterator[DockerKit]:
    yield DockerKit(client=docker_client, image=busybox_image, labels=test_run_labels)
    remove_labelled(docker_client, test_run_labels)


def remove_labelled(client: Any, labels: Mapping[str, str]) -> None:
    """Force-remove (with anonymous volumes) every container carrying ``labels``."""
    filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
    for container in client.api.containers(all=True, filters=filters):
        try:
            client.api.remove_container(container["Id"], v=True, force=True)
        except docker.errors.NotFound:
            pass


def home_environment(tmp_path: Path, config_file: Path | None = None) -> tuple[dict[str, str], Settings]:
    """What a test's CLI runs with: its own home under ``tmp_path``, ``config_file`` (or no
    config at all), a 2 s stop grace and wide output; and that home's settings."""
    home = tmp_path / "home"
    env = {
        **os.environ,
        "LOCALBATCH_HOME": str(home),
        "LOCALBATCH_CONFIG": str(config_file or ""),
        "LOCALBATCH_STOP_TIMEOUT_SECONDS": "2",
        "COLUMNS": "200",
    }
    return env, resolve(env={"LOCALBATCH_HOME": str(home)}, cwd=tmp_path)


@dataclass
class LocalbatchCli:
    """``python -m localbatch`` in one test's home, and a look at that home's containers."""

    home: Path
    env: dict[str, str]
    labels: dict[str, str]  # ``localbatch.home=<id>``: on every container of this home
    client: Any  # the docker SDK

    def __call__(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localbatch", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "localbatch", *args],
            env=self.env,
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def containers(self) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in self.labels.items()]}
        return list(self.client.api.containers(all=True, filters=filters))


@contextmanager
def hanging_registry() -> Iterator[str]:
    """An image reference on a loopback "registry" that accepts connections and never answers:
    the engine's pull hangs, as on a slow network, and nothing leaves this machine."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}/hangs:1"
    finally:
        server.close()


@pytest.fixture
def daemon(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Any]:
    from tests.integration.daemons import started_daemon  # it builds on this module

    with started_daemon(tmp_path, docker_client) as running:
        yield running
