"""``localbatch store up|down`` with what runs here: moto_server found on PATH, a configured
``server_command``, and the container path up to its "image missing" error (the pull goes to a
refusing registry on loopback: nothing leaves this machine)."""

from __future__ import annotations

import io
import json
import os
import socket
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from localbatch.adapters.store_server import StoreServers
from localbatch.store_server import ServerPlan, ServerState, StoreServerError
from tests.integration.conftest import LocalbatchCli, home_environment

VENV_BIN = str(Path(sys.executable).parent)  # moto_server lives beside the interpreter
BARE_PATH = "/usr/bin:/bin"  # no minio, no moto_server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def store_cli(tmp_path: Path, docker_client: Any, store_table: str, path: str) -> LocalbatchCli:
    config = tmp_path / "config.toml"
    config.write_text(f"[store]\n{store_table}\n")
    env, settings = home_environment(tmp_path, config)
    for name in list(env):
        if name.startswith(("AWS_", "LOCALBATCH_S3_")):
            del env[name]
    env["PATH"] = path
    settings.home.mkdir(parents=True)
    return LocalbatchCli(
        home=settings.home, env=env, labels={"localbatch.store_home": settings.home_id}, client=docker_client
    )


@pytest.fixture
def stop_after() -> Iterator[list[LocalbatchCli]]:
    """CLIs whose server is stopped at teardown, even when the test failed."""
    started: list[LocalbatchCli] = []
    yield started
    for cli in started:
        cli("store", "down")


def test_store_up_runs_moto_server_from_path_until_down(tmp_path, docker_client, stop_after):
    port = free_port()
    cli = store_cli(tmp_path, docker_client, f"server_port = {port}", f"{VENV_BIN}:{BARE_PATH}")
    stop_after.append(cli)

    up = cli("store", "up")
    assert up.returncode == 0, up.stderr
    assert "started moto_server (pid " in up.stdout and f"http://127.0.0.1:{port}" in up.stdout
    assert "memory only" in up.stdout
    store_dir = cli.home / "store"
    assert oct((store_dir / "credentials.json").stat().st_mode & 0o777) == "0o600"

    status = cli("store", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    found = json.loads(status.stdout)
    assert found["reachable"] is True
    assert found["endpoint"] == f"http://127.0.0.1:{port}"
    assert found["sources"]["access_key"] == "store up credentials"
    assert found["server"] == {"kind": "moto_server", "endpoint": f"http://127.0.0.1:{port}"}
    credentials = json.loads((store_dir / "credentials.json").read_text())
    assert credentials["secret_key"] not in status.stdout + up.stdout

    Minio(f"127.0.0.1:{port}", credentials["access_key"], credentials["secret_key"], secure=False).make_bucket("inbox")
    source = tmp_path / "data.csv"
    source.write_bytes(b"a,b\n1,2\n" * 1000)
    assert cli("store", "cp", str(source), "s3://inbox/data.csv").returncode == 0
    back = tmp_path / "back.csv"
    copied = cli("store", "cp", "s3://inbox/data.csv", str(back))
    assert copied.returncode == 0, copied.stderr
    assert back.read_bytes() == source.read_bytes()

    pid = json.loads((store_dir / "server.json").read_text())["pid"]
    again = cli("store", "up")
    assert again.returncode == 0 and f"already running: moto_server (pid {pid})" in again.stdout

    down = cli("store", "down")
    assert down.returncode == 0 and "stopped moto_server" in down.stdout, down.stderr
    assert not answers(port)
    assert (store_dir / "data").is_dir() and (store_dir / "credentials.json").is_file()
    assert not (store_dir / "server.json").exists()
    assert "not running" in cli("store", "down").stdout


def test_a_configured_server_command_comes_first_and_a_stale_state_is_cleaned(tmp_path, docker_client, stop_after):
    port = free_port()
    command = json.dumps([sys.executable, "-m", "moto.server", "-H", "{host}", "-p", "{port}"])
    cli = store_cli(tmp_path, docker_client, f"server_port = {port}\nserver_command = {command}", BARE_PATH)
    stop_after.append(cli)

    up = cli("store", "up")
    assert up.returncode == 0, up.stderr
    assert "started command (pid" in up.stdout
    state = json.loads((cli.home / "store" / "server.json").read_text())
    assert state["kind"] == "command" and state["port"] == port
    assert cli("store", "status").returncode == 0

    os.kill(state["pid"], 9)  # the server dies behind localbatch's back
    down = cli("store", "down")
    assert down.returncode == 0 and "stale state file was removed" in down.stdout
    assert not (cli.home / "store" / "server.json").exists()


def test_a_missing_image_that_cannot_be_pulled_is_a_clear_error(tmp_path, docker_client, stop_after):
    refusing = socket.socket()  # bound, never listening: the engine's pull is refused on loopback
    refusing.bind(("127.0.0.1", 0))
    image = f"127.0.0.1:{refusing.getsockname()[1]}/localbatch-no-such-store:1"
    try:
        cli = store_cli(tmp_path, docker_client, f'server_port = {free_port()}\nserver_image = "{image}"', BARE_PATH)
        stop_after.append(cli)
        up = cli("store", "up", timeout=120)
    finally:
        refusing.close()
    assert up.returncode == 1
    assert image in up.stderr and "neither minio nor moto_server is on PATH" in up.stderr
    assert "server_image" in up.stderr
    assert not (cli.home / "store" / "server.json").exists()
    assert cli.containers() == []


_FAKE_MINIO = b"""FROM busybox:1.36
COPY fake-minio /fake-minio
ENTRYPOINT ["/bin/sh", "/fake-minio"]
"""
# minio's command line, `server DIR --address HOST:PORT`, answered by busybox httpd.
_FAKE_MINIO_SCRIPT = b'touch "$2/.written-by-the-server"\nexec httpd -f -p "$4" -h "$2"\n'


@pytest.fixture
def fake_minio_image(docker_client: Any, busybox_image: str) -> Iterator[str]:
    """An image that takes minio's arguments and listens where they say (no S3: only the
    container machinery is under test). Built from busybox, nothing pulled."""
    tag = f"localbatch-test-fake-minio:{uuid.uuid4().hex[:8]}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, body in (("Dockerfile", _FAKE_MINIO), ("fake-minio", _FAKE_MINIO_SCRIPT)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=tag, pull=False, rm=True, forcerm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def test_the_container_path_runs_the_image_with_its_data_mounted_until_down(
    tmp_path, docker_client, fake_minio_image, stop_after
):
    port = free_port()
    table = f'server_port = {port}\nserver_image = "{fake_minio_image}"'
    cli = store_cli(tmp_path, docker_client, table, BARE_PATH)
    stop_after.append(cli)

    up = cli("store", "up")
    assert up.returncode == 0, up.stderr
    assert "started container " in up.stdout and f"http://127.0.0.1:{port}" in up.stdout
    store_dir = cli.home / "store"
    assert (store_dir / "data" / ".written-by-the-server").is_file()  # the data dir is bind-mounted
    [container] = cli.containers()
    assert container["State"] == "running"
    assert json.loads((store_dir / "server.json").read_text())["container_id"] == container["Id"]
    assert "already running: container" in cli("store", "up").stdout

    down = cli("store", "down")
    assert down.returncode == 0 and "stopped container" in down.stdout, down.stderr
    assert cli.containers() == []
    assert not answers(port)
    assert (store_dir / "data" / ".written-by-the-server").is_file()


def _no_containers() -> Any:
    raise AssertionError("the process path must not touch the container engine")


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    servers = StoreServers(_no_containers, {})
    script = "trap '' TERM; while :; do sleep 1; done"
    plan = ServerPlan("command", free_port(), tmp_path / "data", argv=("/bin/sh", "-c", script))
    state = servers.start(plan, tmp_path / "server.log")
    assert servers.running(state)
    servers.stop(state, grace_s=0.5)
    assert not servers.running(state)


def test_a_reused_pid_running_another_program_is_not_the_server(tmp_path):
    servers = StoreServers(_no_containers, {})
    mine = ServerState(kind="moto_server", port=free_port(), pid=os.getpid(), argv0="/nonexistent/moto_server")
    assert not servers.running(mine)


def test_a_server_that_exits_at_once_is_reported_with_its_log(tmp_path):
    servers = StoreServers(_no_containers, {})
    plan = ServerPlan("command", free_port(), tmp_path / "data", argv=("/bin/sh", "-c", "echo bad flag >&2; exit 3"))
    state = servers.start(plan, tmp_path / "server.log")
    with pytest.raises(StoreServerError, match="exited before it answered(.|\n)*bad flag"):
        servers.wait_ready(state, 15, tmp_path / "server.log")
