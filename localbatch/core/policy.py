"""The policy for a host shared by several users (``[policy]``, docs/policy.md): what a job may
ask of the host, how much each user may run at once, and who may stop whose jobs.

Pure: the adapters resolve what needs the system (a symlink's target, a user's groups) and
hand the answers in. Every violation names its rule by its config key (``policy.<key>``), so
the user knows what to ask the operator to change.

What a job can ask of the host, as localbatch models it (AWS Batch's ``containerProperties``):
bind mounts of host paths (``volumes[].host.sourcePath``), ``privileged`` and
``linuxParameters.devices``. It cannot ask for host networking or extra capabilities: AWS
Batch's job definitions have no field for either, and every container gets the daemon's
``[docker] network_mode``, which is the operator's choice (docs/policy.md).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import Problem

USER_LIMIT = "POLICY:USER_LIMIT"  # a RUNNABLE job's statusReason code while its user is at a limit
SCRATCH = "~/scratch"  # how the allow-list and messages name the per-user scratch area

_MILLI = 1000


@dataclass(frozen=True)
class UserLimits:
    """What one user may hold at once in STARTING and RUNNING jobs; None: no limit."""

    max_running_vcpus: float | None = None
    max_running_gpus: int | None = None
    max_running_jobs: int | None = None

    @property
    def any(self) -> bool:
        return (self.max_running_vcpus, self.max_running_gpus, self.max_running_jobs) != (None, None, None)


@dataclass(frozen=True)
class Policy:
    """The daemon's policy. The default (no ``[policy]`` table) refuses privileged containers and
    devices and nothing else; ``shared`` (a ``[policy]`` table) also limits host paths to
    ``allowed_mount_paths`` and the per-user scratch area, and lets users stop only their own jobs."""

    shared: bool = False
    allowed_mount_paths: tuple[str, ...] = ()  # absolute, normalised; ``shared`` only
    scratch_root: str | None = None  # ``$LOCALBATCH_HOME/scratch``: user u may mount <root>/<u> and below
    allow_privileged: bool = False
    allow_devices: bool = False
    limits: UserLimits = field(default_factory=UserLimits)
    admins: frozenset[str] = frozenset()  # user (or access key) names
    admin_groups: frozenset[str] = frozenset()  # OS groups whose members are admins
    socket_group: str | None = None  # the Unix socket's group (mode 0660); None: 0600


NO_POLICY = Policy()  # no [policy] table: privileged containers and devices refused, nothing else


def scratch_area(policy: Policy, user: str) -> str | None:
    """The per-user scratch area of ``user`` (None without a scratch root or for a name that
    is not one path component)."""
    if policy.scratch_root is None or not user or "/" in user or user in (".", ".."):
        return None
    return posixpath.join(policy.scratch_root, user)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def mount_allowed(path: str, user: str, policy: Policy) -> bool:
    """Whether ``user``'s job may bind-mount host ``path`` (absolute; normalised here)."""
    if not policy.shared:
        return True
    path = posixpath.normpath(path)
    scratch = scratch_area(policy, user)
    if scratch is not None and _within(path, scratch):
        return True
    return any(_within(path, allowed) for allowed in policy.allowed_mount_paths)


def violations(
    spec: ContainerSpec, user: str, policy: Policy, real_paths: Mapping[str, str] | None = None, where: str = ""
) -> list[Problem]:
    """What ``spec`` asks of the host that ``policy`` does not allow ``user``, each naming its rule.
    ``real_paths``: each host path with its symlinks resolved (the adapter's ``realpath``), which
    is what gets mounted and so what is checked. ``where`` prefixes messages (a node's)."""
    problems = []
    real_paths = real_paths or {}
    for volume in spec.volumes:
        given = volume.host_source_path
        if given is None:
            continue
        path = real_paths.get(given, given)
        if not mount_allowed(path, user, policy):
            shown = given if path == given else f"{given} (resolves to {path})"
            problems.append(
                Problem(
                    "policy.allowed_mount_paths",
                    f"{where}host path {shown} of volume {volume.name} is not allowed; allowed: "
                    f"{_allowed_text(policy, user)}",
                )
            )
    if spec.privileged and not policy.allow_privileged:
        text = f"{where}privileged containers are not allowed on this host"
        problems.append(Problem("policy.allow_privileged", text))
    devices = spec.linux_parameters.devices
    if devices and not policy.allow_devices:
        paths = ", ".join(d.host_path for d in devices)
        problems.append(Problem("policy.allow_devices", f"{where}host devices are not allowed on this host: {paths}"))
    return problems


def _allowed_text(policy: Policy, user: str) -> str:
    scratch = scratch_area(policy, user)
    parts = list(policy.allowed_mount_paths)
    if scratch is not None:
        parts.append(f"{SCRATCH} (the per-user scratch area {scratch})")
    return ", ".join(parts) or "no host path"


def too_big(need: Resources, jobs: int, limits: UserLimits) -> list[Problem]:
    """What a job that alone needs ``need`` (in ``jobs`` containers: a multi-node job's nodes)
    exceeds: it could never run under ``limits``."""
    problems = []
    for key, wanted, limit in _dimensions(need, jobs, limits):
        if limit is not None and wanted > limit:
            problems.append(
                Problem(f"policy.{key}", f"the job needs {_num(wanted)}; a user may run at most {_num(limit)}")
            )
    return problems


@dataclass(frozen=True)
class Running:
    """What one user holds now: vCPUs in thousandths (exact), GPUs, jobs."""

    milli_vcpus: int = 0
    gpus: int = 0
    jobs: int = 0

    def plus(self, need: Resources, jobs: int = 1) -> Running:
        return Running(self.milli_vcpus + round(need.vcpus * _MILLI), self.gpus + need.gpus, self.jobs + jobs)


def limit_reason(user: str, running: Running, need: Resources, jobs: int, limits: UserLimits) -> str | None:
    """Why ``user`` cannot start a job needing ``need`` now, naming the rule and the numbers
    (``user alice runs 6 of max_running_vcpus 8; needs 4``); None when it may."""
    held = {
        "max_running_vcpus": running.milli_vcpus / _MILLI,
        "max_running_gpus": running.gpus,
        "max_running_jobs": running.jobs,
    }
    for key, wanted, limit in _dimensions(need, jobs, limits):
        if limit is not None and wanted and held[key] + wanted > limit:
            return f"user {user} runs {_num(held[key])} of {key} {_num(limit)}; needs {_num(wanted)}"
    return None


def _dimensions(need: Resources, jobs: int, limits: UserLimits) -> list[tuple[str, float, float | None]]:
    return [
        ("max_running_vcpus", need.vcpus, limits.max_running_vcpus),
        ("max_running_gpus", need.gpus, limits.max_running_gpus),
        ("max_running_jobs", jobs, limits.max_running_jobs),
    ]


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# What every user of a host shares: on a shared host only an admin may change it.
INFRASTRUCTURE_WRITES = frozenset(
    f"{verb}{kind}"
    for verb in ("Create", "Update", "Delete")
    for kind in ("JobQueue", "ComputeEnvironment", "SchedulingPolicy", "ConsumableResource")
)


def may_change_infrastructure(operation: str, caller: str, policy: Policy, caller_is_admin: bool) -> Problem | None:
    """Why ``caller`` may not call ``operation``, which changes job queues, compute environments,
    scheduling policies, consumable resources or their tags (what every user shares); None if it may."""
    if not policy.shared or caller_is_admin:
        return None
    return Problem(
        "policy.admins",
        f"{operation} changes what every user of this host shares; only an admin may call it, and {caller} is not one",
    )


def may_stop(owner: str | None, caller: str, policy: Policy, caller_is_admin: bool) -> Problem | None:
    """Why ``caller`` may not cancel or terminate a job ``owner`` submitted; None if it may.
    Without a shared policy anyone may; a job recorded before owners were kept (None) only an admin."""
    if not policy.shared or caller_is_admin or owner == caller:
        return None
    whose = f"user {owner}" if owner is not None else "an unknown user"
    return Problem(
        "policy.admins",
        f"the job belongs to {whose}; {caller} may cancel or terminate only their own jobs (admins: any job)",
    )
