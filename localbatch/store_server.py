"""``localbatch store up|down``: which S3-compatible server to start, and what is remembered about it.

Decisions only (plus the two small files under ``$LOCALBATCH_HOME/store/``); starting and
stopping processes and containers is ``adapters/store_server.py``'s.

Which server ``store up`` starts, the first that applies:

1. ``[store] server_command = ["prog", "arg", ...]`` from the config file. Each argument may hold
   the placeholders ``{data_dir}`` (``$LOCALBATCH_HOME/store/data``), ``{host}`` (127.0.0.1),
   ``{port}``, ``{endpoint}`` (``host:port``), ``{access_key}`` and ``{secret_key}``; the command
   also gets ``MINIO_ROOT_USER``/``MINIO_ROOT_PASSWORD`` and ``AWS_ACCESS_KEY_ID``/
   ``AWS_SECRET_ACCESS_KEY`` set to the generated credentials in its environment (prefer those
   to ``{secret_key}``: a command line is visible to every user of the machine).
2. ``minio`` on PATH: ``minio server DATA --address 127.0.0.1:PORT`` with the credentials as
   ``MINIO_ROOT_USER``/``MINIO_ROOT_PASSWORD``; data persists in DATA.
3. ``moto_server`` on PATH: ``moto_server -H 127.0.0.1 -p PORT``. Moto accepts any credentials and
   keeps everything in memory: its buckets are gone after ``store down``.
4. a container of ``[store] server_image`` (default ``minio/minio:latest``) on the Docker engine:
   host networking, ``server /data --address 127.0.0.1:PORT``, DATA bind-mounted at ``/data``.

The port is ``[store] server_port`` (default 9000). Credentials are generated once (an access key
and a random secret) and kept, mode 0600, in ``store/credentials.json`` together with the endpoint
the server was last started on; ``store_settings.resolve_store`` picks them up.
"""

from __future__ import annotations

import fcntl
import json
import secrets
import string
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from localbatch.errors import ConfigError, ImageError, LocalbatchError
from localbatch.private_file import write_private_json

HOST = "127.0.0.1"
DEFAULT_PORT = 9000
DEFAULT_IMAGE = "minio/minio:latest"
PLACEHOLDERS = ("data_dir", "host", "port", "endpoint", "access_key", "secret_key")
KINDS = ("command", "minio", "moto_server", "container")
_FORMAT = string.Formatter()


class StoreServerError(LocalbatchError):
    """The store server could not be started, found or stopped (exit 1)."""


@dataclass(frozen=True)
class ServerOptions:
    """The ``[store]`` keys of ``store up``, checked."""

    command: tuple[str, ...] | None = None
    image: str = DEFAULT_IMAGE
    port: int = DEFAULT_PORT


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class ServerPlan:
    """What to start: a process (``argv``, ``environment``) or a container (``image``)."""

    kind: str
    port: int
    data_dir: Path
    argv: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    image: str | None = None
    note: str | None = None  # something the user should know (moto keeps nothing)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class ServerState:
    """What runs, as ``store/server.json`` remembers it."""

    kind: str
    port: int
    pid: int | None = None
    container_id: str | None = None
    argv0: str | None = None  # a process's program, to tell it from a reused pid
    note: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def what(self) -> str:
        if self.container_id:
            return f"container {self.container_id[:12]}"
        return f"{self.kind} (pid {self.pid})"


# -- the [store] keys -------------------------------------------------------------------------


def server_options(table: Mapping[str, Any], where: str) -> ServerOptions:
    """``server_command``, ``server_image`` and ``server_port`` from the ``[store]`` ``table``;
    a ConfigError naming the key and what is allowed when one is wrong."""
    command = table.get("server_command")
    if command is not None:
        if not isinstance(command, list) or not command or not all(isinstance(a, str) and a for a in command):
            raise ConfigError(
                f"{where}: [store] server_command must be a non-empty list of strings "
                f'(["program", "arg", ...]), got {command!r}'
            )
        for argument in command:
            _check_placeholders(argument, where)
    image = table.get("server_image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not image.strip():
        raise ConfigError(f"{where}: [store] server_image must be an image reference string, got {image!r}")
    port = table.get("server_port", DEFAULT_PORT)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}: [store] server_port must be a port number from 1 to 65535, got {port!r}")
    return ServerOptions(command=tuple(command) if command else None, image=image.strip(), port=port)


def _check_placeholders(argument: str, where: str) -> None:
    try:
        names = [name for _, name, _, _ in _FORMAT.parse(argument) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"{where}: [store] server_command: {argument!r}: {exc} (write {{{{ for a brace)") from None
    unknown = [name for name in names if name not in PLACEHOLDERS]
    if unknown:
        raise ConfigError(
            f"{where}: [store] server_command: {argument!r}: unknown placeholder {{{unknown[0]}}}; "
            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )


# -- which server -----------------------------------------------------------------------------


def choose_server(
    options: ServerOptions,
    credentials: Credentials,
    data_dir: Path,
    which: Callable[[str], str | None],
) -> ServerPlan:
    """The server ``store up`` starts (see the module docstring for the order); ``which`` finds
    a program on PATH (``shutil.which``)."""
    port = options.port
    login = {
        "MINIO_ROOT_USER": credentials.access_key,
        "MINIO_ROOT_PASSWORD": credentials.secret_key,
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
    }
    if options.command:
        values = {
            "data_dir": str(data_dir),
            "host": HOST,
            "port": str(port),
            "endpoint": f"{HOST}:{port}",
            "access_key": credentials.access_key,
            "secret_key": credentials.secret_key,
        }
        argv = tuple(argument.format(**values) for argument in options.command)
        return ServerPlan("command", port, data_dir, argv=argv, environment=login)
    minio = which("minio")
    if minio:
        argv = (minio, "server", str(data_dir), "--address", f"{HOST}:{port}")
        return ServerPlan("minio", port, data_dir, argv=argv, environment=login)
    moto = which("moto_server")
    if moto:
        return ServerPlan(
            "moto_server",
            port,
            data_dir,
            argv=(moto, "-H", HOST, "-p", str(port)),
            environment=login,
            note="moto_server accepts any credentials and keeps its objects in memory only: "
            "they are gone after `localbatch store down`",
        )
    return ServerPlan(
        "container",
        port,
        data_dir,
        argv=("server", "/data", "--address", f"{HOST}:{port}"),
        environment={"MINIO_ROOT_USER": credentials.access_key, "MINIO_ROOT_PASSWORD": credentials.secret_key},
        image=options.image,
    )


# -- the files under $LOCALBATCH_HOME/store ---------------------------------------------------


def store_dir(home: Path) -> Path:
    return home / "store"


def credentials_path(home: Path) -> Path:
    return store_dir(home) / "credentials.json"


def state_path(home: Path) -> Path:
    return store_dir(home) / "server.json"


def data_dir(home: Path) -> Path:
    return store_dir(home) / "data"


def log_path(home: Path) -> Path:
    return store_dir(home) / "server.log"


def read_credentials(home: Path) -> dict[str, str]:
    """What ``store up`` left in ``credentials.json`` (``access_key``, ``secret_key``,
    ``endpoint``), or nothing when there is no such file; a ConfigError when it is unreadable."""
    path = credentials_path(home)
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):  # no file; a home that is no directory is reported elsewhere
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the store credentials: {exc}; remove it to generate new ones") from None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) for k in ("access_key", "secret_key")):
        raise ConfigError(f"{path}: access_key and secret_key must be strings; remove the file to generate new ones")
    return {k: v for k, v in raw.items() if k in ("access_key", "secret_key", "endpoint") and isinstance(v, str)}


def ensure_credentials(home: Path) -> Credentials:
    """The credentials in ``credentials.json``, generated (mode 0600) the first time."""
    found = read_credentials(home)
    if found:
        return Credentials(found["access_key"], found["secret_key"])
    credentials = Credentials(
        access_key="localbatch-" + secrets.token_hex(4),
        secret_key=secrets.token_urlsafe(30),
    )
    write_private_json(
        credentials_path(home), {"access_key": credentials.access_key, "secret_key": credentials.secret_key}
    )
    return credentials


def remember_endpoint(home: Path, endpoint: str) -> None:
    """Record in ``credentials.json`` where the server was started, for resolve_store."""
    found = read_credentials(home)
    if found.get("endpoint") != endpoint:
        write_private_json(credentials_path(home), {**found, "endpoint": endpoint})


def read_state(home: Path) -> ServerState | None:
    """What ``server.json`` says runs; None when there is no file (or an unreadable one, which
    is as good as none: ``store up`` overwrites it)."""
    try:
        raw = json.loads(state_path(home).read_text())
        return ServerState(**{k: raw[k] for k in raw if k in ServerState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def write_state(home: Path, state: ServerState) -> None:
    write_private_json(state_path(home), {k: v for k, v in asdict(state).items() if v is not None})


def forget_state(home: Path) -> None:
    state_path(home).unlink(missing_ok=True)


# -- up and down ------------------------------------------------------------------------------

READY_TIMEOUT_S = 15.0
STOP_GRACE_S = 10.0


class Servers(Protocol):
    """Starting and stopping servers (``adapters/store_server.StoreServers``)."""

    def start(self, plan: ServerPlan, log_path: Path) -> ServerState: ...

    def running(self, state: ServerState) -> bool: ...

    def wait_ready(self, state: ServerState, timeout_s: float, log_path: Path) -> None: ...

    def stop(self, state: ServerState, grace_s: float) -> None: ...

    def answers(self, port: int) -> bool: ...


@dataclass(frozen=True)
class UpResult:
    state: ServerState
    already_running: bool
    stale_removed: bool = False


def running_server(home: Path, servers: Servers) -> tuple[ServerState | None, bool]:
    """(what runs, whether a stale state file was removed): a state file whose server is gone
    is deleted."""
    state = read_state(home)
    if state is None:
        return None, False
    if servers.running(state):
        return state, False
    forget_state(home)
    return None, True


@contextmanager
def _one_at_a_time(home: Path) -> Iterator[None]:
    """Serialise ``up`` and ``down`` of one home: a second ``up`` waits for the first (which is
    bounded by its readiness timeout) and then finds its server running."""
    path = store_dir(home) / "server.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(
    home: Path,
    options: ServerOptions,
    servers: Servers,
    which: Callable[[str], str | None],
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> UpResult:
    """Start the store server unless one runs already; wait until it answers."""
    with _one_at_a_time(home):
        return _up(home, options, servers, which, ready_timeout_s)


def _up(
    home: Path,
    options: ServerOptions,
    servers: Servers,
    which: Callable[[str], str | None],
    ready_timeout_s: float,
) -> UpResult:
    state, stale = running_server(home, servers)
    if state is not None:
        return UpResult(state, already_running=True)
    if servers.answers(options.port):
        raise StoreServerError(
            f"{HOST}:{options.port} already answers, but not with a server `localbatch store up` started; "
            "stop that one, or set [store] server_port to a free port"
        )
    credentials = ensure_credentials(home)
    plan = choose_server(options, credentials, data_dir(home), which)
    try:
        state = servers.start(plan, log_path(home))
    except ImageError as exc:
        raise StoreServerError(
            f"cannot start the store server: no server_command is configured, neither minio nor moto_server "
            f"is on PATH, and {exc}. Load the image (`docker load`/`docker pull {plan.image}`), name another "
            "one in [store] server_image, or give [store] server_command"
        ) from None
    write_state(home, state)
    try:
        servers.wait_ready(state, ready_timeout_s, log_path(home))
    except BaseException:
        servers.stop(state, 2.0)
        forget_state(home)
        raise
    remember_endpoint(home, f"http://{state.endpoint}")
    return UpResult(state, already_running=False, stale_removed=stale)


def down(home: Path, servers: Servers, grace_s: float = STOP_GRACE_S) -> tuple[ServerState | None, bool]:
    """Stop the server ``up`` started, keep its data. (what was stopped or None, whether a stale
    state file was removed)."""
    with _one_at_a_time(home):
        state, stale = running_server(home, servers)
        if state is None:
            return None, stale
        servers.stop(state, grace_s)
        forget_state(home)
        return state, False
