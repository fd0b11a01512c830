"""The Docker adapter when the engine does not answer, and its option checks: the real
adapter and the real docker SDK, pointed at addresses where nothing listens (loopback or a
socket path that does not exist). No engine is needed, so these run with the unit tests."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from localbatch.adapters.docker_runtime import DockerRuntime
from localbatch.core.spec import ContainerSpec
from localbatch.errors import RuntimeUnavailable
from localbatch.ports import ContainerRequest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_bad_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match="cpu_limit"):
        DockerRuntime(cpu_limit="hard")
    with pytest.raises(ValueError, match="image_pull"):
        DockerRuntime(image_pull="sometimes")


def test_runtime_unavailable_is_one_line_from_docker_host(tmp_path: Path) -> None:
    dead = f"unix://{tmp_path}/no-engine.sock"
    script = (
        "from localbatch.adapters.docker_runtime import DockerRuntime\n"
        "from localbatch.errors import RuntimeUnavailable\n"
        "runtime = DockerRuntime()  # must not touch the engine\n"
        "print('constructed')\n"
        "try:\n"
        "    runtime.engine_info()\n"
        "except RuntimeUnavailable as exc:\n"
        "    print(exc)\n"
        "    raise SystemExit(3)\n"
    )
    env = {**os.environ, "DOCKER_HOST": dead}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr == ""
    constructed, message = result.stdout.splitlines()
    assert constructed == "constructed"
    assert message.startswith(f"the Docker engine does not answer at {dead}")
    assert "no such file or directory" in message
    assert "sudo systemctl start docker" in message
    assert "make docker" in message


@pytest.fixture
def quiet_leaked_sockets() -> Iterator[None]:
    """docker-py leaves the socket of a failed connection for the garbage collector, which
    warns (ResourceWarning); collect it here, inside the test, with that warning off."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(
    ("base_url", "address", "why"),
    [
        (
            "unix:///tmp/localbatch-nonexistent.sock",
            "unix:///tmp/localbatch-nonexistent.sock",
            "no such file",
        ),
        ("tcp://127.0.0.1:9", "http://127.0.0.1:9", "connection refused"),
    ],
)
def test_runtime_unavailable_with_an_injected_client(
    quiet_leaked_sockets: None, base_url: str, address: str, why: str
) -> None:
    client = docker.DockerClient(base_url=base_url, version="1.41")  # a fixed version: no handshake
    runtime = DockerRuntime(client=client)
    try:
        for call in (
            runtime.engine_info,
            lambda: runtime.list_containers({}),
            lambda: runtime.stop("x", grace_s=0),
            lambda: runtime.wait("x", 1),
            lambda: list(runtime.logs("x")),
        ):
            with pytest.raises(RuntimeUnavailable) as caught:
                call()
            message = str(caught.value)
            assert "\n" not in message
            assert f"does not answer at {address} ({why}" in message
            del caught
    finally:
        client.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_runtime_unavailable_from_the_environment(
    quiet_leaked_sockets: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = f"unix://{tmp_path}/no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", dead)
    runtime = DockerRuntime()
    with pytest.raises(RuntimeUnavailable, match=f"does not answer at {dead}"):
        runtime.create(
            ContainerRequest(
                name="localbatch-unavailable-1",
                spec=ContainerSpec(image="busybox:1.36", command=("true",)),
                environment={},
                labels={},
            )
        )
    runtime.close()
