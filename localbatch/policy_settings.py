"""The daemon's policy for a shared host, from the config file's ``[policy]`` table
(docs/policy.md has every key and rule)::

    [policy]                              # present: the host is shared (users stop only their own jobs)
    allowed_mount_paths = ["/srv/data"]   # host paths jobs may bind-mount, besides the per-user
                                          #   scratch area $LOCALBATCH_HOME/scratch/<user> (default: none)
    allow_privileged = false              # privileged containers (also the default without [policy])
    allow_devices = false                 # linuxParameters.devices (also the default without [policy])
    max_running_vcpus = 8                 # per user, in STARTING and RUNNING jobs (default: no limit)
    max_running_gpus = 1
    max_running_jobs = 4
    admins = ["alice"]                    # may stop any job (the daemon's own user always may)
    admin_groups = ["wheel"]              # OS groups whose members are admins
    socket_group = "batchusers"           # the Unix socket: mode 0660, this group (default: 0600)

Without the table only ``allow_privileged`` and ``allow_devices`` apply, both false.
Errors name the file, the key and what is allowed.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from localbatch.core.policy import Policy, UserLimits
from localbatch.errors import ConfigError
from localbatch.validation import problems_from

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # a POSIX-ish user or group name
_NAME_TEXT = "1 to 64 letters, digits, '_', '.' and '-', not starting with '.' or '-'"


class _PolicyTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allowed_mount_paths: list[str] = Field(default_factory=list)
    allow_privileged: StrictBool = False  # a string "yes" is not let through as true
    allow_devices: StrictBool = False
    max_running_vcpus: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_running_gpus: int | None = Field(default=None, ge=0)
    max_running_jobs: int | None = Field(default=None, ge=1)
    admins: list[str] = Field(default_factory=list)
    admin_groups: list[str] = Field(default_factory=list)
    socket_group: str | None = None


class _Tables(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: _PolicyTable


def resolve_policy(table: Any, where: str, home: Path) -> Policy:
    """``[policy]`` (None: absent) as a Policy; ConfigError lists every problem as
    ``FILE: policy.KEY: what is wrong``."""
    if table is None:
        return Policy()
    try:
        parsed = _Tables.model_validate({"policy": table}).policy
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{where}: {p.path}: {p.message}" for p in problems_from(exc, _Tables))) from None
    problems = []
    paths = []
    for i, path in enumerate(parsed.allowed_mount_paths):
        if not path.startswith("/"):
            problems.append(f"policy.allowed_mount_paths[{i}]: {path!r} is not an absolute path")
        elif posixpath.normpath(path) == "/":
            problems.append(f"policy.allowed_mount_paths[{i}]: '/' would allow every host path; name directories")
        else:  # a job's paths are checked resolved; so is the list, and as given (what users read)
            paths += [posixpath.normpath(path), os.path.realpath(path)]
    for key in ("admins", "admin_groups"):
        for i, name in enumerate(getattr(parsed, key)):
            if not _NAME.fullmatch(name):
                problems.append(f"policy.{key}[{i}]: {name!r} is not a user or group name: {_NAME_TEXT}")
    if parsed.socket_group is not None and not _NAME.fullmatch(parsed.socket_group):
        problems.append(f"policy.socket_group: {parsed.socket_group!r} is not a group name: {_NAME_TEXT}")
    if problems:
        raise ConfigError("\n".join(f"{where}: {p}" for p in problems))
    return Policy(
        shared=True,
        allowed_mount_paths=tuple(dict.fromkeys(paths)),
        scratch_root=os.path.realpath(home.expanduser() / "scratch"),
        allow_privileged=parsed.allow_privileged,
        allow_devices=parsed.allow_devices,
        limits=UserLimits(parsed.max_running_vcpus, parsed.max_running_gpus, parsed.max_running_jobs),
        admins=frozenset(parsed.admins),
        admin_groups=frozenset(parsed.admin_groups),
        socket_group=parsed.socket_group,
    )
