"""Settings: defaults < config file < LOCALBATCH_* environment < command-line flags.

Resolved once by the front door and passed down; nothing reads the environment behind
the caller's back. The config file is ``./localbatch.toml`` if present, else
``~/.config/localbatch/config.toml``, or the file named by ``LOCALBATCH_CONFIG``::

    region = "us-east-1"              # for ARNs
    account_id = "000000000000"       # for ARNs

    [docker]
    network_mode = "auto"             # auto | host | bridge | none | <network name>
    cpu_limit = "shares"              # shares (AWS on EC2) | quota (also a hard cap)
    image_pull = "missing"            # missing | always | never
    stop_timeout_seconds = 30         # SIGTERM -> SIGKILL grace, as ECS's default

    [host]
    reserve_vcpus = 0                 # kept back from the compute environment "local"
    reserve_memory_mib = 256

    [scheduler]
    max_head_wait_seconds = 60        # then the head of a queue stops backfill past it

    [logs]
    max_attempt_mib = 1024            # cap on one attempt's log file: beyond it, the first and the
                                      # last half are kept, with a marker line saying how much was
                                      # dropped between them; 0 = no cap

    [api]
    listen = "127.0.0.1:8750"         # also serve AWS Batch's API on TCP, SigV4-signed (default: socket only)
    tls_certificate = "/etc/localbatch/cert.pem"  # PEM; with tls_key: the listener speaks https
    tls_key = "/etc/localbatch/key.pem"           # (required for an address other machines can reach)
    tls_ca = "/etc/localbatch/ca.pem" # what clients verify with (default: the certificate itself)
                                      # (relative paths: to this file's directory)

    [audit]
    max_mib = 16                      # audit.log moves to audit.log.1 at this size

    [[compute_environments]]          # default: one, "local" = the host minus the reserve
    name = "local"
    max_vcpus = 8                     # default: the host's CPUs minus the reserve
    max_memory_mib = 16384            # default: the host's memory minus the reserve
    gpus = ["0", "1"]                 # device ids; default: none (the implicit "local": all)
    state = "ENABLED"
    spot = false                      # true: rehearse Spot reclaims here (docs/spot.md)
    spot_interruption_rate = 0.5      # reclaims per running-job hour, at random (spot only)
    spot_interrupt_after_seconds = 90 # reclaim every attempt 90 s after it started (spot only)

    [[job_queues]]                    # default: one, "default", over the first environments
    name = "default"
    priority = 1                      # higher is served first
    state = "ENABLED"
    compute_environments = ["local"]  # tried in this order (at most 3)
    scheduling_policy = "teams"       # optional: a fair-share queue (jobs need a share identifier)

    [[job_queues.job_state_time_limit_actions]]   # AWS's jobStateTimeLimitActions
    reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    max_time_seconds = 600            # AWS: 600..86400; 1..599 runs locally, with a warning
    state = "RUNNABLE"                # the only state AWS allows
    action = "CANCEL"                 # the only action AWS allows

    [[scheduling_policies]]           # fair share (AWS's CreateSchedulingPolicy)
    name = "teams"
    share_decay_seconds = 3600        # 0..604800; 0 = 600 s
    compute_reservation = 0           # 0..99 (percent)
    [[scheduling_policies.share_distribution]]
    share_identifier = "ml*"          # up to 255 characters; a trailing * is a prefix rule
    weight_factor = 0.5               # 0.0001..999.9999, default 1; lower gets more capacity

    [[consumable_resources]]          # AWS's CreateConsumableResource: licences, connections, quotas
    name = "licences"
    total_quantity = 4                # set when the daemon first creates it; later changes are
    resource_type = "REPLENISHABLE"   # the API's (or NON_REPLENISHABLE: each attempt uses its quantity up)
    [[webhooks]]                      # job state change events, POSTed; also [[hooks]],
    url = "http://127.0.0.1:9000/x"   # [[schedules]], [[triggers]], [events]
                                      # (localbatch.automation_settings has every key)

    [policy]                          # a host shared by several users (docs/policy.md)
    allowed_mount_paths = ["/srv/data"] # (localbatch.policy_settings has every key)

    [aws]                             # what only the cloud has: export and deploy read it
    subnets = ["subnet-0abc"]         # (localbatch.cloud_settings has every key)

The daemon applies the declared scheduling policies, compute environments and job queues at every start: objects
named here take these values (API updates to them do not survive a restart); objects created
through the API and not named here are kept as they are.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from localbatch import toml_input
from localbatch.automation_settings import Automation, resolve_automation
from localbatch.cloud_settings import CloudSettings, resolve_cloud
from localbatch.core import queue_limits
from localbatch.core.consumables import ConsumableResource, ResourceType, resource_problems
from localbatch.core.infra import (
    MAX_ENVIRONMENTS_PER_QUEUE,
    JobQueue,
    JobStateTimeLimitAction,
    SchedulingPolicy,
    ShareWeight,
    State,
    policy_problems,
)
from localbatch.core.inventory import Reserve
from localbatch.core.naming import AWS_NAME
from localbatch.core.policy import Policy
from localbatch.core.spot import SpotRehearsal
from localbatch.errors import ConfigError
from localbatch.policy_settings import resolve_policy
from localbatch.store_server import ServerOptions, read_credentials, server_options
from localbatch.store_settings import StoreSettings, resolve_log_bucket, resolve_store
from localbatch.tls import TlsSettings, server_context
from localbatch.validation import problems_from

DEFAULT_QUEUE = "default"
DEFAULT_COMPUTE_ENVIRONMENT = "local"
_MAX_SOCKET_PATH = 104  # sun_path is 108 bytes on Linux, 104 on macOS


class _DockerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network_mode: str = "auto"
    cpu_limit: Literal["shares", "quota"] = "shares"
    image_pull: Literal["missing", "always", "never"] = "missing"
    stop_timeout_seconds: float = Field(default=30, ge=0, le=3600)


class _HostFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reserve_vcpus: float = Field(default=0, ge=0)
    reserve_memory_mib: int = Field(default=256, ge=0)


def _aws_name(value: str) -> str:
    """Queue and compute environment names, as AWS allows them."""
    if not AWS_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a name AWS allows: 1 to 128 letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )
    return value


AwsName = Annotated[str, AfterValidator(_aws_name)]


class _LogsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempt_mib: int = Field(default=1024, ge=0)


class _ApiFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    listen: str | None = None  # HOST:PORT (or PORT, on 127.0.0.1) for the SigV4 TCP listener
    allow_remote: bool = False  # no longer needed: a non-loopback address needs TLS (accepted for old configs)
    tls_certificate: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None


class _AuditFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_mib: float = Field(default=16, gt=0, le=1024)


class _SchedulerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_head_wait_seconds: float = Field(default=60, ge=0)


class _EnvironmentFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AwsName
    max_vcpus: float | None = Field(default=None, gt=0)
    max_memory_mib: int | None = Field(default=None, ge=4)
    gpus: list[str] | None = None
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    spot: bool = False
    spot_interruption_rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    spot_interrupt_after_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class _TimeLimitFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Literal[queue_limits.REASONS]  # type: ignore[valid-type]
    max_time_seconds: int = Field(ge=queue_limits.LOCAL_MIN_SECONDS, le=queue_limits.MAX_SECONDS)
    state: Literal[queue_limits.STATES] = "RUNNABLE"  # type: ignore[valid-type]
    action: Literal[queue_limits.ACTIONS] = "CANCEL"  # type: ignore[valid-type]


class _QueueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: AwsName
    priority: int = Field(default=1, ge=0)
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    compute_environments: list[str] = Field(min_length=1, max_length=MAX_ENVIRONMENTS_PER_QUEUE)
    scheduling_policy: str | None = None
    job_state_time_limit_actions: list[_TimeLimitFile] = Field(default_factory=list)


class _ShareFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share_identifier: str
    weight_factor: float = 1.0


class _PolicyFile(BaseModel):  # ranges are core.infra.policy_problems', checked with the rest
    model_config = ConfigDict(extra="forbid")
    name: AwsName
    share_decay_seconds: int = 0
    compute_reservation: int = 0
    share_distribution: list[_ShareFile] = Field(default_factory=list)


class _ConsumableFile(BaseModel):  # ranges are core.consumables.resource_problems', checked with the rest
    model_config = ConfigDict(extra="forbid")
    name: str
    total_quantity: int = 0
    resource_type: Literal["REPLENISHABLE", "NON_REPLENISHABLE"] = "REPLENISHABLE"


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$")
    docker: _DockerFile = Field(default_factory=_DockerFile)
    host: _HostFile = Field(default_factory=_HostFile)
    scheduler: _SchedulerFile = Field(default_factory=_SchedulerFile)
    api: _ApiFile = Field(default_factory=_ApiFile)
    logs: _LogsFile = Field(default_factory=_LogsFile)
    audit: _AuditFile = Field(default_factory=_AuditFile)
    compute_environments: list[_EnvironmentFile] = Field(default_factory=list)
    job_queues: list[_QueueFile] = Field(default_factory=list)
    scheduling_policies: list[_PolicyFile] = Field(default_factory=list)
    consumable_resources: list[_ConsumableFile] = Field(default_factory=list)
    store: dict[str, Any] = Field(default_factory=dict)  # checked by store_settings.resolve_store
    aws: Any = None  # checked by cloud_settings.resolve_cloud
    policy: Any = None  # checked by policy_settings.resolve_policy
    # checked by automation_settings.resolve_automation
    events: Any = None
    webhooks: Any = None
    hooks: Any = None
    schedules: Any = None
    triggers: Any = None


# LOCALBATCH_* variable -> (section, key) in the config file.
ENV_KEYS: Mapping[str, tuple[str | None, str]] = {
    "LOCALBATCH_REGION": (None, "region"),
    "LOCALBATCH_ACCOUNT_ID": (None, "account_id"),
    "LOCALBATCH_NETWORK_MODE": ("docker", "network_mode"),
    "LOCALBATCH_CPU_LIMIT": ("docker", "cpu_limit"),
    "LOCALBATCH_IMAGE_PULL": ("docker", "image_pull"),
    "LOCALBATCH_STOP_TIMEOUT_SECONDS": ("docker", "stop_timeout_seconds"),
    "LOCALBATCH_RESERVE_VCPUS": ("host", "reserve_vcpus"),
    "LOCALBATCH_RESERVE_MEMORY_MIB": ("host", "reserve_memory_mib"),
    "LOCALBATCH_LISTEN": ("api", "listen"),
    "LOCALBATCH_MAX_ATTEMPT_LOG_MIB": ("logs", "max_attempt_mib"),
    "LOCALBATCH_ALLOW_REMOTE": ("api", "allow_remote"),
    "LOCALBATCH_TLS_CERTIFICATE": ("api", "tls_certificate"),
    "LOCALBATCH_TLS_KEY": ("api", "tls_key"),
    "LOCALBATCH_TLS_CA": ("api", "tls_ca"),
}


@dataclass(frozen=True)
class EnvironmentSettings:
    """A compute environment as declared; None means "what the host has, minus the reserve"."""

    name: str
    max_vcpus: float | None = None
    max_memory_mib: int | None = None
    gpu_ids: tuple[str, ...] | None = None
    state: State = State.ENABLED
    spot: SpotRehearsal | None = None


@dataclass(frozen=True)
class Settings:
    home: Path
    config_file: Path | None
    region: str
    account_id: str
    network_mode: str
    cpu_limit: str
    image_pull: str
    stop_timeout_s: float
    reserve: Reserve
    compute_environments: tuple[EnvironmentSettings, ...] = (EnvironmentSettings(DEFAULT_COMPUTE_ENVIRONMENT),)
    job_queues: tuple[JobQueue, ...] = (JobQueue(DEFAULT_QUEUE, 1, (DEFAULT_COMPUTE_ENVIRONMENT,)),)
    max_head_wait_s: float = 60.0
    max_attempt_log_mib: int = 1024  # [logs] max_attempt_mib: each attempt's log file's cap (0: none)
    scheduling_policies: tuple[SchedulingPolicy, ...] = ()
    consumable_resources: tuple[ConsumableResource, ...] = ()  # created at start when missing
    store: StoreSettings = StoreSettings("127.0.0.1:9000", secure=False, region="us-east-1")
    store_server: ServerOptions = ServerOptions()  # how `store up` starts a server
    log_bucket: str | None = None  # each attempt's log is archived here ([store] log_bucket)
    cloud: CloudSettings = CloudSettings()  # [aws]: what export and deploy need (cloud_settings)
    listen: tuple[str, int] | None = None  # [api] listen: the SigV4 TCP listener's address
    tls: TlsSettings | None = None  # [api] tls_*: the listener speaks https (checked: the files load)
    audit_max_bytes: int = 16 * 1024 * 1024  # [audit] max_mib
    automation: Automation = Automation()  # [[webhooks]], [[hooks]], [[schedules]], [[triggers]]
    policy: Policy = Policy()  # [policy]: a shared host's rules (policy_settings)

    @property
    def warnings(self) -> list[str]:
        """What the configuration asks for that runs locally but AWS would refuse."""
        return [w for queue in self.job_queues for w in queue_limits.warnings(queue)]

    def prepare_home(self) -> None:
        """Create ``home`` if missing; a ConfigError (exit 2) when it cannot be one."""
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(f"LOCALBATCH_HOME {self.home} is not a directory")
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create LOCALBATCH_HOME {self.home}: {exc.strerror}") from None

    @property
    def home_id(self) -> str:
        """A short stable id for this state directory, put on every container as a label so
        two homes on one engine never mistake each other's containers."""
        return hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]

    @property
    def database_path(self) -> Path:
        return self.home / "state.db"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def staging_dir(self) -> Path:
        """Each attempt's S3 inputs and outputs while it runs (``daemon.staging``)."""
        return self.home / "staging"

    @property
    def socket_path(self) -> Path:
        """The daemon's API socket: ``$LOCALBATCH_HOME/daemon.sock``, or, when that path is too
        long for a Unix socket (108 bytes on Linux), a short one derived from the home."""
        path = self.home.resolve() / "daemon.sock"
        if len(os.fsencode(path)) < _MAX_SOCKET_PATH:
            return path
        return Path(tempfile.gettempdir()) / f"localbatch-{self.home_id}.sock"

    @property
    def pid_path(self) -> Path:
        return self.home / "daemon.pid"

    @property
    def lock_path(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def engine_lock_path(self) -> Path:
        """Held exclusively by the daemon, shared by ``localbatch run`` without one: one
        engine owns the home's jobs and containers at a time."""
        return self.home / "engine.lock"

    @property
    def audit_log_path(self) -> Path:
        return self.home / "audit.log"

    @property
    def daemon_log_path(self) -> Path:
        return self.home / "daemon.log"


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("LOCALBATCH_HOME"):
        return Path(env["LOCALBATCH_HOME"]).expanduser()
    data = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(data) / "localbatch"


def find_config_file(env: Mapping[str, str], cwd: Path) -> Path | None:
    if env.get("LOCALBATCH_CONFIG"):
        path = Path(env["LOCALBATCH_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"LOCALBATCH_CONFIG names {path}, which is not a file")
        return path
    for candidate in (cwd / "localbatch.toml", _user_config(env)):
        if candidate.is_file():
            return candidate
    return None


def _user_config(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "localbatch" / "config.toml"


def resolve(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Settings:
    """Settings from the defaults, the config file and the environment (in that order)."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    config_file = find_config_file(env, cwd)
    raw: dict[str, Any] = _read_file(config_file) if config_file else {}
    for var, (section, key) in ENV_KEYS.items():
        if env.get(var):
            target = raw.setdefault(section, {}) if section else raw
            if not isinstance(target, dict):
                raise ConfigError(f"{config_file}: [{section}] must be a table")
            target[key] = env[var]
    try:
        parsed = _ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    environments, queues, policies = _infrastructure(parsed, config_file)
    home = default_home(env)
    where = str(config_file or "settings")
    store_table = dict(parsed.store)
    log_bucket = resolve_log_bucket(env, store_table.pop("log_bucket", None), where)
    cloud = resolve_cloud(parsed.aws, where)
    declared = {e.name for e in environments}
    unknown = sorted(set(cloud.compute_environments) - declared)
    if unknown:
        raise ConfigError(
            "\n".join(
                f"{where}: aws.compute_environments.{name}: no compute environment is named {name!r}; "
                f"declared: {', '.join(sorted(declared))}"
                for name in unknown
            )
        )
    listen = _listen(parsed.api, where)
    # a path from the environment is relative to the current directory, one in the file to the file's
    from_file = config_file.parent if config_file is not None else cwd
    bases = {key: (cwd if env.get(var) else from_file) for var, (_, key) in ENV_KEYS.items() if key.startswith("tls_")}
    tls = _tls(parsed.api, where, listen, bases)
    return Settings(
        home=home,
        config_file=config_file,
        region=parsed.region,
        account_id=parsed.account_id,
        network_mode=parsed.docker.network_mode,
        cpu_limit=parsed.docker.cpu_limit,
        image_pull=parsed.docker.image_pull,
        stop_timeout_s=parsed.docker.stop_timeout_seconds,
        reserve=Reserve(vcpus=parsed.host.reserve_vcpus, memory_mib=parsed.host.reserve_memory_mib),
        compute_environments=environments,
        job_queues=queues,
        max_head_wait_s=parsed.scheduler.max_head_wait_seconds,
        max_attempt_log_mib=parsed.logs.max_attempt_mib,
        scheduling_policies=policies,
        consumable_resources=_consumable_resources(parsed, where),
        store=resolve_store(env, store_table, where, read_credentials(home)),
        store_server=server_options(store_table, where),
        log_bucket=log_bucket,
        cloud=cloud,
        listen=listen,
        tls=tls,
        audit_max_bytes=int(parsed.audit.max_mib * 1024 * 1024),
        automation=resolve_automation(
            {key: getattr(parsed, key) for key in ("events", "webhooks", "hooks", "schedules", "triggers")}, where
        ),
        policy=resolve_policy(parsed.policy, where, home),
    )


def _infrastructure(
    parsed: _ConfigFile, config_file: Path | None
) -> tuple[tuple[EnvironmentSettings, ...], tuple[JobQueue, ...], tuple[SchedulingPolicy, ...]]:
    """The declared compute environments, queues and policies (or the defaults), checked together."""
    # A declared environment has the GPUs it lists (none if it lists none); only the implicit
    # "local" gets every GPU of the host, so two environments never claim one device.
    environments = tuple(
        EnvironmentSettings(
            name=e.name,
            max_vcpus=e.max_vcpus,
            max_memory_mib=e.max_memory_mib,
            gpu_ids=tuple(e.gpus or ()),
            state=State(e.state),
            spot=_spot(e),
        )
        for e in parsed.compute_environments
    ) or (EnvironmentSettings(DEFAULT_COMPUTE_ENVIRONMENT),)
    queues = tuple(
        JobQueue(
            q.name,
            q.priority,
            tuple(q.compute_environments),
            State(q.state),
            scheduling_policy=q.scheduling_policy,
            job_state_time_limit_actions=tuple(
                JobStateTimeLimitAction(a.reason, a.max_time_seconds, a.state, a.action)
                for a in q.job_state_time_limit_actions
            ),
        )
        for q in parsed.job_queues
    ) or (JobQueue(DEFAULT_QUEUE, 1, tuple(e.name for e in environments[:MAX_ENVIRONMENTS_PER_QUEUE])),)
    where = config_file or "settings"
    problems = _duplicates("compute_environments", [e.name for e in environments])
    for i, declared in enumerate(parsed.compute_environments):
        for key in ("spot_interruption_rate", "spot_interrupt_after_seconds"):
            if getattr(declared, key) is not None and not declared.spot:
                problems.append(f"compute_environments[{i}].{key}: applies to a Spot environment; add spot = true")
    problems += _duplicates("job_queues", [q.name for q in queues])
    policies = tuple(
        SchedulingPolicy(
            p.name,
            p.share_decay_seconds,
            p.compute_reservation,
            tuple(ShareWeight(s.share_identifier, s.weight_factor) for s in p.share_distribution),
        )
        for p in parsed.scheduling_policies
    )
    problems += _duplicates("scheduling_policies", [p.name for p in policies])
    for i, policy in enumerate(policies):
        problems += [f"scheduling_policies[{i}].{problem}" for problem in policy_problems(policy)]
    policy_names = {p.name for p in policies}
    for i, queue in enumerate(queues):
        if queue.scheduling_policy is not None and queue.scheduling_policy not in policy_names:
            known = ", ".join(sorted(policy_names)) or "none"
            problems.append(
                f"job_queues[{i}].scheduling_policy: no scheduling policy is named {queue.scheduling_policy!r}; "
                f"declared: {known}"
            )
    names = {e.name for e in environments}
    for i, queue in enumerate(queues):
        for j, name in enumerate(queue.compute_environments):
            if name not in names:
                problems.append(
                    f"job_queues[{i}].compute_environments[{j}]: no compute environment is named {name!r}; "
                    f"declared: {', '.join(sorted(names))}"
                )
    owner: dict[str, str] = {}
    for e in environments:
        for gpu in e.gpu_ids or ():
            if gpu in owner:
                problems.append(f"compute_environments: GPU {gpu!r} is in both {owner[gpu]!r} and {e.name!r}")
            owner.setdefault(gpu, e.name)
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return environments, queues, policies


def _consumable_resources(parsed: _ConfigFile, where: str) -> tuple[ConsumableResource, ...]:
    declared = tuple(
        ConsumableResource(c.name, c.total_quantity, ResourceType(c.resource_type)) for c in parsed.consumable_resources
    )
    problems = _duplicates("consumable_resources", [c.name for c in declared])
    for i, resource in enumerate(declared):
        problems += [f"consumable_resources[{i}].{p}" for p in resource_problems(resource)]
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return declared


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) is this machine only; ValueError if no IP."""
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def _listen(table: _ApiFile, where: str) -> tuple[str, int] | None:
    """``[api] listen`` as (host, port); ``_tls`` decides whether the address needs TLS."""
    if table.listen is None:
        return None
    host, sep, port_text = table.listen.rpartition(":")
    host = host if sep else "127.0.0.1"
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
        raise ConfigError(
            f"{where}: api.listen (or LOCALBATCH_LISTEN, --listen): expected HOST:PORT, got {table.listen!r}"
        )
    try:
        is_loopback(host)
    except ValueError:
        raise ConfigError(
            f"{where}: api.listen (or --listen): {host!r} is not an IP address; give one, e.g. 127.0.0.1:8750"
        ) from None
    return host, int(port_text)


def _tls(table: _ApiFile, where: str, listen: tuple[str, int] | None, bases: Mapping[str, Path]) -> TlsSettings | None:
    """``[api] tls_*`` as loaded, checked files; a listen address other machines can reach
    needs them (the signatures protect requests from forgery, not from being read)."""
    paths = {name: getattr(table, name) for name in ("tls_certificate", "tls_key", "tls_ca")}
    given = {name: (bases[name] / Path(value).expanduser()) for name, value in paths.items() if value}
    if listen is None:
        return None
    if not given.keys() & {"tls_certificate", "tls_key"}:
        if not is_loopback(listen[0]):
            raise ConfigError(
                f"{where}: api.listen (or --listen) {listen[0]}:{listen[1]} is reachable from other machines, "
                "so it needs TLS: set [api] tls_certificate and [api] tls_key (PEM files; or "
                "LOCALBATCH_TLS_CERTIFICATE / LOCALBATCH_TLS_KEY, --tls-certificate / --tls-key)"
            )
        if "tls_ca" in given:
            raise ConfigError(f"{where}: [api] tls_ca is set, but [api] tls_certificate and tls_key are not")
        return None
    for name in ("tls_certificate", "tls_key"):
        if name not in given:
            other = "tls_key" if name == "tls_certificate" else "tls_certificate"
            raise ConfigError(f"{where}: [api] {name} is missing: [api] {other} needs it")
    tls = TlsSettings(given["tls_certificate"], given["tls_key"], given.get("tls_ca"))
    if tls.key.exists() and not os.access(tls.key, os.R_OK):
        # A user of a shared host's config: the key is the daemon's (0600), which checks it at start.
        return tls
    try:
        server_context(tls)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return tls


def _spot(declared: _EnvironmentFile) -> SpotRehearsal | None:
    if not declared.spot:
        return None
    return SpotRehearsal(
        interruption_rate=declared.spot_interruption_rate or 0.0,
        interrupt_after_s=declared.spot_interrupt_after_seconds,
    )


def _duplicates(table: str, names: list[str]) -> list[str]:
    repeated = sorted({n for n in names if names.count(n) > 1})
    return [f"{table}: the name {n!r} is used more than once" for n in repeated]


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return toml_input.parse(toml_input.read(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: cannot read: file not found") from None
    except toml_input.TomlInputError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    """One line per problem, naming the file and key and, where one exists, the variable."""
    env_for = {f"{s}.{k}" if s else k: var for var, (s, k) in ENV_KEYS.items()}
    lines = []
    for problem in problems_from(exc, _ConfigFile):
        var = env_for.get(problem.path)
        where = f"{config_file or 'settings'}: {problem.path}" + (f" (or {var})" if var else "")
        lines.append(f"{where}: {problem.message}")
    return "\n".join(lines)
