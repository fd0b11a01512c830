"""``store up|down`` decisions: which server, the [store] server keys, credentials, state files."""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from localbatch import store_server
from localbatch.config import resolve
from localbatch.errors import ConfigError, ImageError
from localbatch.store_server import (
    Credentials,
    ServerOptions,
    ServerPlan,
    ServerState,
    StoreServerError,
    choose_server,
    server_options,
)
from localbatch.store_settings import resolve_store

CREDS = Credentials("ak", "sk")
DATA = Path("/h/store/data")


def which_of(*found: str):
    return lambda name: f"/bin/{name}" if name in found else None


# -- which server ---------------------------------------------------------------------------------


def test_a_configured_command_comes_first_with_its_placeholders_filled():
    options = ServerOptions(command=("srv", "--dir={data_dir}", "--listen", "{endpoint}", "{access_key}:{secret_key}"))
    plan = choose_server(options, CREDS, DATA, which_of("minio", "moto_server"))
    assert plan.kind == "command"
    assert plan.argv == ("srv", "--dir=/h/store/data", "--listen", "127.0.0.1:9000", "ak:sk")
    assert plan.environment["MINIO_ROOT_USER"] == "ak"
    assert plan.environment["AWS_SECRET_ACCESS_KEY"] == "sk"


def test_minio_on_path_comes_before_moto_server():
    plan = choose_server(ServerOptions(port=9100), CREDS, DATA, which_of("minio", "moto_server"))
    assert plan.kind == "minio"
    assert plan.argv == ("/bin/minio", "server", "/h/store/data", "--address", "127.0.0.1:9100")
    assert plan.environment["MINIO_ROOT_PASSWORD"] == "sk"


def test_moto_server_on_path_says_it_keeps_nothing():
    plan = choose_server(ServerOptions(port=9100), CREDS, DATA, which_of("moto_server"))
    assert plan.kind == "moto_server"
    assert plan.argv == ("/bin/moto_server", "-H", "127.0.0.1", "-p", "9100")
    assert plan.note is not None and "memory" in plan.note


def test_without_a_command_or_binary_the_configured_image_runs():
    plan = choose_server(ServerOptions(image="my/minio:1"), CREDS, DATA, which_of())
    assert plan.kind == "container"
    assert plan.image == "my/minio:1"
    assert plan.argv == ("server", "/data", "--address", "127.0.0.1:9000")
    default = choose_server(ServerOptions(), CREDS, DATA, which_of())
    assert default.image == "minio/minio:latest"


# -- the [store] keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"server_command": "minio server"}, "server_command must be a non-empty list of strings"),
        ({"server_command": []}, "server_command must be a non-empty list"),
        ({"server_command": ["srv", 3]}, "server_command must be a non-empty list"),
        ({"server_command": ["srv", "{datadir}"]}, "unknown placeholder {datadir}; allowed: {data_dir}"),
        ({"server_command": ["srv", "{port"]}, "server_command"),
        ({"server_image": ""}, "server_image must be an image reference"),
        ({"server_port": 0}, "server_port must be a port number from 1 to 65535"),
        ({"server_port": "9000"}, "server_port must be a port number"),
        ({"server_port": True}, "server_port must be a port number"),
    ],
)
def test_bad_server_keys_are_named(table, named):
    with pytest.raises(ConfigError, match="c.toml: \\[store\\] ") as caught:
        server_options(table, "c.toml")
    assert named in str(caught.value)


def test_server_keys_reach_the_settings_and_unknown_keys_are_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[store]\nserver_command = ["srv", "{port}"]\nserver_port = 9123\nserver_image = "x/y:1"\n')
    env = {"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": str(config)}
    found = resolve(env=env, cwd=tmp_path)
    assert found.store_server == ServerOptions(command=("srv", "{port}"), image="x/y:1", port=9123)
    config.write_text("[store]\nserver_cmd = []\n")
    with pytest.raises(ConfigError, match="server_cmd: unknown key; allowed: .*server_command"):
        resolve(env=env, cwd=tmp_path)


# -- credentials -----------------------------------------------------------------------------------


def test_credentials_are_generated_once_owner_only(tmp_path):
    first = store_server.ensure_credentials(tmp_path)
    path = store_server.credentials_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 30 and first.access_key
    assert store_server.ensure_credentials(tmp_path) == first
    assert first.secret_key not in repr(first)


def test_the_endpoint_is_remembered_without_touching_the_credentials(tmp_path):
    made = store_server.ensure_credentials(tmp_path)
    store_server.remember_endpoint(tmp_path, "http://127.0.0.1:9100")
    assert store_server.read_credentials(tmp_path) == {
        "access_key": made.access_key,
        "secret_key": made.secret_key,
        "endpoint": "http://127.0.0.1:9100",
    }
    assert stat.S_IMODE(store_server.credentials_path(tmp_path).stat().st_mode) == 0o600


def test_an_unreadable_credentials_file_is_a_config_error_naming_it(tmp_path):
    path = store_server.credentials_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="credentials.json: cannot read the store credentials"):
        store_server.read_credentials(tmp_path)


def test_store_up_credentials_come_after_the_config_file_and_before_the_aws_environment():
    generated = {"access_key": "gen", "secret_key": "gensecret", "endpoint": "http://127.0.0.1:9100"}
    aws = {"AWS_ACCESS_KEY_ID": "aws", "AWS_SECRET_ACCESS_KEY": "awssecret"}
    found = resolve_store(aws, {}, "c.toml", generated)
    assert (found.access_key, found.secret_key, found.endpoint) == ("gen", "gensecret", "127.0.0.1:9100")
    assert found.sources["access_key"] == "store up credentials"
    assert found.sources["endpoint"] == "store up"
    configured = resolve_store(aws, {"access_key": "cfg", "secret_key": "cfgsecret"}, "c.toml", generated)
    assert configured.access_key == "cfg"
    ours = resolve_store({"LOCALBATCH_S3_ACCESS_KEY": "env"}, {}, "c.toml", generated)
    assert ours.access_key == "env"
    # Any endpoint set elsewhere (even the AWS environment's) wins over where store up started.
    elsewhere = resolve_store({"AWS_ENDPOINT_URL": "http://10.0.0.1:9000"}, {}, "c.toml", generated)
    assert elsewhere.endpoint == "10.0.0.1:9000"


def test_config_resolve_reads_the_home_s_credentials(tmp_path):
    home = tmp_path / "home"
    made = store_server.ensure_credentials(home)
    found = resolve(env={"LOCALBATCH_HOME": str(home)}, cwd=tmp_path)
    assert found.store.access_key == made.access_key
    assert found.store.secret_key == made.secret_key


# -- up and down -----------------------------------------------------------------------------------


@dataclass
class FakeServers:
    alive: set[int] = field(default_factory=set)
    busy_ports: set[int] = field(default_factory=set)
    started: list[ServerPlan] = field(default_factory=list)
    stopped: list[ServerState] = field(default_factory=list)
    ready: bool = True
    image_missing: bool = False

    def start(self, plan: ServerPlan, log_path: Path) -> ServerState:
        if self.image_missing and plan.kind == "container":
            raise ImageError(plan.image or "", "pull access denied")
        self.started.append(plan)
        pid = 1000 + len(self.started)
        self.alive.add(pid)
        return ServerState(kind=plan.kind, port=plan.port, pid=pid, argv0=plan.argv[0])

    def running(self, state: ServerState) -> bool:
        return state.pid in self.alive

    def wait_ready(self, state: ServerState, timeout_s: float, log_path: Path) -> None:
        if not self.ready:
            raise StoreServerError("did not answer")

    def stop(self, state: ServerState, grace_s: float) -> None:
        self.stopped.append(state)
        self.alive.discard(state.pid or 0)

    def answers(self, port: int) -> bool:
        return port in self.busy_ports


def test_up_starts_once_and_then_says_it_runs(tmp_path):
    servers = FakeServers()
    first = store_server.up(tmp_path, ServerOptions(port=9100), servers, which_of("moto_server"))
    assert not first.already_running and first.state.pid == 1001
    assert store_server.read_state(tmp_path) == first.state
    assert store_server.read_credentials(tmp_path)["endpoint"] == "http://127.0.0.1:9100"
    again = store_server.up(tmp_path, ServerOptions(port=9100), servers, which_of("moto_server"))
    assert again.already_running and again.state == first.state
    assert len(servers.started) == 1


def test_a_stale_state_is_cleaned_up_by_up_and_by_down(tmp_path):
    servers = FakeServers()
    store_server.write_state(tmp_path, ServerState(kind="moto_server", port=9100, pid=77))
    assert store_server.down(tmp_path, servers) == (None, True)
    assert store_server.read_state(tmp_path) is None
    store_server.write_state(tmp_path, ServerState(kind="moto_server", port=9100, pid=77))
    result = store_server.up(tmp_path, ServerOptions(port=9100), servers, which_of("moto_server"))
    assert result.stale_removed and not result.already_running


def test_down_stops_and_forgets_but_keeps_data_and_credentials(tmp_path):
    servers = FakeServers()
    started = store_server.up(tmp_path, ServerOptions(), servers, which_of("minio")).state
    stopped, stale = store_server.down(tmp_path, servers)
    assert stopped == started and not stale and servers.stopped == [started]
    assert store_server.read_state(tmp_path) is None
    assert store_server.credentials_path(tmp_path).is_file()
    assert store_server.down(tmp_path, servers) == (None, False)


def test_a_port_in_use_by_something_else_is_refused(tmp_path):
    servers = FakeServers(busy_ports={9000})
    with pytest.raises(StoreServerError, match="127.0.0.1:9000 already answers.*server_port"):
        store_server.up(tmp_path, ServerOptions(), servers, which_of("moto_server"))
    assert servers.started == []


def test_a_server_that_never_answers_is_stopped_and_forgotten(tmp_path):
    servers = FakeServers(ready=False)
    with pytest.raises(StoreServerError, match="did not answer"):
        store_server.up(tmp_path, ServerOptions(), servers, which_of("moto_server"))
    assert len(servers.stopped) == 1 and servers.alive == set()
    assert store_server.read_state(tmp_path) is None


def test_a_missing_image_says_what_to_do(tmp_path):
    servers = FakeServers(image_missing=True)
    with pytest.raises(StoreServerError, match="neither minio nor moto_server is on PATH.*server_image"):
        store_server.up(tmp_path, ServerOptions(image="nope/nope:1"), servers, which_of())
    assert store_server.read_state(tmp_path) is None
