"""What runs in a container: image, command, environment, limits, mounts.

Trusted, frozen values (``jobdef.py`` parses the untrusted TOML into them). Field names
follow AWS's ``containerProperties`` in snake_case, with the unit added where AWS leaves it
implicit (``shared_memory_size_mib`` for ``sharedMemorySize``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from localbatch.core.resources import Resources
from localbatch.core.staging import StagedInput, StagedOutput

# The ulimit names AWS Batch (and Docker) accept.
ULIMIT_NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)

DEVICE_PERMISSIONS = ("READ", "WRITE", "MKNOD")


@dataclass(frozen=True)
class Volume:
    """A named volume. With ``host_source_path`` a bind mount of that host path (created if
    missing, as ECS does); without it an anonymous Docker volume that lives as long as the
    container."""

    name: str
    host_source_path: str | None = None


@dataclass(frozen=True)
class MountPoint:
    source_volume: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft_limit: int
    hard_limit: int


@dataclass(frozen=True)
class Device:
    host_path: str
    container_path: str | None = None
    permissions: tuple[str, ...] = ()  # subset of DEVICE_PERMISSIONS; empty means all


@dataclass(frozen=True)
class Tmpfs:
    container_path: str
    size_mib: int
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinuxParameters:
    devices: tuple[Device, ...] = ()
    init_process_enabled: bool | None = None
    shared_memory_size_mib: int | None = None
    tmpfs: tuple[Tmpfs, ...] = ()
    max_swap_mib: int | None = None  # None: no swap beyond the memory limit
    swappiness: int | None = None  # 0..100, only meaningful with max_swap_mib


@dataclass(frozen=True)
class S3Access:
    """Whether the container gets the object store's address and credentials in its
    environment (``core.s3_access``), a localbatch-only setting: AWS has no field for it
    and export leaves it out. ``generic_endpoint`` also sets ``AWS_ENDPOINT_URL``, which
    points every AWS SDK service at the store, not S3 alone."""

    enabled: bool = True
    generic_endpoint: bool = False


@dataclass(frozen=True)
class ContainerSpec:
    """One container: everything the engine needs apart from the job's own identity."""

    image: str
    command: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=lambda: Resources(vcpus=1, memory_mib=2048))
    volumes: tuple[Volume, ...] = ()
    mount_points: tuple[MountPoint, ...] = ()
    ulimits: tuple[Ulimit, ...] = ()
    user: str | None = None
    privileged: bool = False
    readonly_root_filesystem: bool = False
    linux_parameters: LinuxParameters = field(default_factory=LinuxParameters)
    s3_access: S3Access = field(default_factory=S3Access)  # localbatch only
    inputs: tuple[StagedInput, ...] = ()  # localbatch only (core.staging)
    outputs: tuple[StagedOutput, ...] = ()  # localbatch only (core.staging)
