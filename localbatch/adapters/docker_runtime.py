"""DockerRuntime: the ``ContainerRuntime`` port on a Docker engine, through docker-py.

This module owns everything localbatch says to Docker: how a resolved ``ContainerRequest``
becomes container-create options, when images are pulled, which network containers join,
and how the SDK's exceptions become ``localbatch.errors``. Nothing else imports ``docker``.

Create, start and wait are separate calls so the control loop stays in charge of an
attempt's lifecycle (docker-py's ``containers.run()`` bundles them; we do not use it).

How AWS ``containerProperties`` map to Docker (AWS's own ECS agent mapping, reference §6.4-6.6):

========================================  ==========================================================
AWS field (``ContainerSpec`` field)       docker-py ``containers.create`` option
========================================  ==========================================================
image                                     ``image`` (pulled first, per the pull policy below)
command                                   ``command`` (empty: the image's CMD)
environment (+ AWS_BATCH_*)               ``environment``
VCPU (``resources.vcpus``)                ``cpu_shares = round(vcpus * 1024)``, at least 2 (a relative
                                          weight, as on AWS); with ``cpu_limit="quota"`` also
                                          ``nano_cpus = vcpus * 1e9``, an opt-in hard cap
MEMORY (``resources.memory_mib``)         ``mem_limit`` (hard, MiB) and ``memswap_limit`` equal to it:
                                          no swap beyond the limit, so the OOM killer acts as on AWS
GPU (``ContainerRequest.gpu_device_ids``) ``device_requests=[DeviceRequest(driver="nvidia",
                                          device_ids=[...], capabilities=[["gpu"]])]``
volumes + mountPoints                     ``mounts``: ``host.sourcePath`` set -> bind mount of that
                                          path (created if missing, as ECS does); unset -> an
                                          anonymous volume, removed with the container
mountPoints[].readOnly                    ``Mount(read_only=True)`` (Docker refuses it on an
                                          anonymous volume; the engine's message is passed on)
ulimits                                   ``ulimits`` (``docker.types.Ulimit``)
user                                      ``user``
privileged                                ``privileged``
readonlyRootFilesystem                    ``read_only``
linuxParameters.devices                   ``devices``: ``"host:container:perms"``, READ/WRITE/MKNOD ->
                                          r/w/m, none given -> ``rwm``
linuxParameters.initProcessEnabled        ``init`` (unset: the engine's default)
linuxParameters.sharedMemorySize          ``shm_size`` (MiB)
linuxParameters.tmpfs                     ``tmpfs={path: "size=<n>m[,options]"}``
linuxParameters.maxSwap                   ``memswap_limit = memory + maxSwap`` (0: no swap)
linuxParameters.swappiness                ``mem_swappiness``, only with maxSwap (AWS ignores it
                                          otherwise)
(localbatch) name, labels                 ``name``, ``labels``
(localbatch) network mode                 ``network_mode``
(localbatch) extra hosts                  ``extra_hosts`` (``host-gateway``: the host's address on
                                          the container's network; the store's address, see
                                          ``core.s3_access``)
(localbatch) binds (S3 staging)           ``mounts``: bind mounts after the volumes' (the source
                                          must exist; ``Bind.read_only`` -> ``read_only``)
========================================  ==========================================================

``copy_out`` streams the engine's tar archive of a path (``get_archive``) through
``extract_archive``, which writes only regular files and directories, and only under the
target directory.

Containers are never created with ``auto_remove``: the control loop reads the exit status
and the logs first, then calls ``remove``.

Image pull policy (``image_pull``): ``"missing"`` (default) pulls only when the image is not
on the host; ``"always"`` pulls before every create and fails when the pull fails, even if
an older copy is present; ``"never"`` uses what is on the host. An image that is missing
and cannot be pulled raises ``ImageError`` carrying the engine's message.

Network mode (``network_mode``): ``"auto"`` (default) means ``"bridge"`` when the engine has a
network named ``bridge`` and ``"host"`` otherwise (an engine started with ``--bridge=none``);
it is resolved once, on first use, and reported by ``engine_info``. Any other value
(``"host"``, ``"none"``, a user-defined network) is passed to Docker as is.

The docker client is created lazily with ``docker.from_env()`` (``DOCKER_HOST`` and friends),
so constructing a ``DockerRuntime`` never touches the engine.

Errors are translated here and nowhere else: an engine that does not answer raises
``RuntimeUnavailable`` (one line: where we looked and how to start it); a missing image that
cannot be pulled raises ``ImageError``; any other refusal raises ``ContainerRuntimeError``
with the engine's explanation. No docker or requests exception leaves this module.
"""

from __future__ import annotations

import gc
import io
import logging
import math
import os
import re
import tarfile
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import docker.types
import requests.exceptions
import urllib3.exceptions
from docker.utils import parse_repository_tag

from localbatch.core.spec import ContainerSpec
from localbatch.errors import ContainerRuntimeError, ImageError, RuntimeUnavailable
from localbatch.ports import Bind, ContainerExit, ContainerInfo, ContainerRequest, ContainerStats, EngineInfo

logger = logging.getLogger(__name__)

NETWORK_MODE_AUTO = "auto"
CPU_LIMITS = ("shares", "quota")
IMAGE_PULL_POLICIES = ("missing", "always", "never")

_MIB = 1024 * 1024
_CPU_SHARES_PER_VCPU = 1024
_MIN_CPU_SHARES = 2  # the smallest cpu.shares the kernel accepts
_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_START_HINT = "start Docker Desktop or `sudo systemctl start docker`; on this project's dev machines `make docker`"
_DEVICE_PERMISSION_LETTERS = {"READ": "r", "WRITE": "w", "MKNOD": "m"}
_RUNNING_STATES = frozenset({"running", "paused", "restarting"})
_ARCHIVE_CHUNK = 1024 * 1024


class DockerRuntime:
    """``ContainerRuntime`` on a Docker engine. Thread-safe: the control loop and the log
    pumps may share one instance (docker-py's session pools its connections)."""

    def __init__(
        self,
        *,
        network_mode: str = NETWORK_MODE_AUTO,
        cpu_limit: str = "shares",
        image_pull: str = "missing",
        client: docker.DockerClient | None = None,
    ) -> None:
        if cpu_limit not in CPU_LIMITS:
            raise ValueError(f"cpu_limit must be one of {CPU_LIMITS}, not {cpu_limit!r}")
        if image_pull not in IMAGE_PULL_POLICIES:
            raise ValueError(f"image_pull must be one of {IMAGE_PULL_POLICIES}, not {image_pull!r}")
        self._cpu_limit = cpu_limit
        self._image_pull = image_pull
        self._client: docker.DockerClient | None = client
        self._owns_client = client is None
        self._network_mode: str | None = None if network_mode == NETWORK_MODE_AUTO else network_mode
        self._lock = threading.Lock()

    # -- the port ---------------------------------------------------------------------

    def engine_info(self) -> EngineInfo:
        with self._border("ask the engine its version"):
            version: Mapping[str, Any] = self._api().version()
        return EngineInfo(
            name="docker",
            version=str(version.get("Version", "")),
            api_version=str(version.get("ApiVersion", "")),
            network_mode=self._resolved_network_mode(),
        )

    def create(self, request: ContainerRequest) -> str:
        image = request.spec.image
        self._ensure_image(image)
        kwargs = container_create_kwargs(request, network_mode=self._resolved_network_mode(), cpu_limit=self._cpu_limit)
        _create_bind_sources(request.spec)
        with self._border(f"create container {request.name}"):
            try:
                container = self._docker().containers.create(**kwargs)
            except docker.errors.ImageNotFound as exc:
                raise ImageError(image, _explain(exc)) from exc
        container_id: str = container.id
        logger.debug("created container %s (%s) from %s", request.name, container_id[:12], image)
        return container_id

    def start(self, container_id: str) -> None:
        with self._border(f"start container {container_id}"):
            self._api().start(container_id)

    def wait(self, container_id: str, timeout_s: float) -> ContainerExit | None:
        with self._border(f"wait for container {container_id}"):
            if timeout_s <= 0:  # a poll: the HTTP client refuses a zero timeout
                return _exit_from_state(self._api().inspect_container(container_id)["State"])
            try:
                result: Mapping[str, Any] = self._api().wait(container_id, timeout=timeout_s)
            except requests.exceptions.ReadTimeout:
                return None
            except requests.exceptions.ConnectionError as exc:
                # docker-py surfaces a read timeout on its unix socket as ConnectionError.
                if _is_read_timeout(exc):
                    return None
                raise
            try:
                state = self._api().inspect_container(container_id)["State"]
            except docker.errors.NotFound:  # removed between the wait and the inspect
                error = (result.get("Error") or {}).get("Message") or None
                return ContainerExit(exit_code=int(result.get("StatusCode", -1)), error=error)
            return _exit_from_state(state)

    def stop(self, container_id: str, grace_s: float) -> None:
        with self._border(f"stop container {container_id}"):
            try:
                # Docker's stop: SIGTERM (or the image's STOPSIGNAL), SIGKILL after `t` seconds.
                self._api().stop(container_id, timeout=max(0, math.ceil(grace_s)))
            except docker.errors.NotFound:
                logger.debug("stop: container %s is already gone", container_id)

    def remove(self, container_id: str) -> None:
        with self._border(f"remove container {container_id}"):
            try:
                self._api().remove_container(container_id, v=True, force=True)
            except docker.errors.NotFound:
                logger.debug("remove: container %s is already gone", container_id)
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already in progress" in _explain(exc):
                    return  # someone else is removing it: as good as gone
                raise

    def logs(self, container_id: str) -> Iterator[bytes]:
        with self._border(f"read the logs of container {container_id}"):
            stream = self._api().logs(container_id, stdout=True, stderr=True, stream=True, follow=True)
            try:
                yield from stream
            finally:
                _close_stream(stream)

    def copy_out(self, container_id: str, path: str, into: Path) -> list[Path]:
        with self._border(f"copy {path} out of container {container_id}"):
            try:
                chunks, _stat = self._api().get_archive(container_id, path, chunk_size=_ARCHIVE_CHUNK)
            except docker.errors.NotFound as exc:
                if "no such container" in _explain(exc).lower():
                    raise
                raise ContainerRuntimeError(f"no such file or directory in container {container_id}: {path}") from exc
            try:
                return extract_archive(chunks, into)
            finally:
                for _ in chunks:  # drain what follows the archive's end, to free the connection
                    pass

    def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        filters = {"label": [f"{key}={value}" for key, value in labels.items()]}
        with self._border("list containers"):
            found: list[Mapping[str, Any]] = self._api().containers(all=True, filters=filters)
        return [
            ContainerInfo(
                container_id=c["Id"],
                name=(c.get("Names") or [""])[0].lstrip("/"),
                labels=dict(c.get("Labels") or {}),
                running=c.get("State") in _RUNNING_STATES,
            )
            for c in found
        ]

    def stats(self, container_id: str) -> ContainerStats | None:
        with self._border(f"read the usage of container {container_id}"):
            found: Mapping[str, Any] = self._api().stats(container_id, stream=False, one_shot=True)
        return stats_from_document(found)

    def address(self, container_id: str) -> str:
        """Host networking: the containers share the host's stack, so 127.0.0.1. Otherwise
        (bridge, a user network) the container's IPv4 address on its network, from the engine."""
        mode = self._resolved_network_mode()
        if mode == "host":
            return "127.0.0.1"
        with self._border(f"inspect container {container_id}"):
            settings: Mapping[str, Any] = self._api().inspect_container(container_id).get("NetworkSettings") or {}
        return _ipv4_address(container_id, mode, settings)

    # -- long-running services (``localbatch store up``) ------------------------------

    def run_service(
        self,
        *,
        name: str,
        image: str,
        command: Sequence[str],
        environment: Mapping[str, str],
        binds: Mapping[str, str],
        labels: Mapping[str, str],
    ) -> str:
        """Start a detached container of ``image`` on the host's network (pulled per the pull
        policy; ImageError when missing and not pullable), ``binds`` host dir -> container dir,
        restarted by the engine unless stopped. Returns its id."""
        self._ensure_image(image)
        for source in binds:
            Path(source).mkdir(parents=True, exist_ok=True)
        with self._border(f"create container {name}"):
            try:
                container = self._docker().containers.run(
                    image,
                    list(command),
                    name=name,
                    detach=True,
                    environment=dict(environment),
                    labels=dict(labels),
                    network_mode="host",
                    volumes={source: {"bind": target, "mode": "rw"} for source, target in binds.items()},
                    restart_policy={"Name": "unless-stopped"},
                )
            except docker.errors.ImageNotFound as exc:
                raise ImageError(image, _explain(exc)) from exc
        container_id: str = container.id
        return container_id

    def is_running(self, container_id: str) -> bool:
        """Whether the container exists and runs (False when it is gone)."""
        with self._border(f"inspect container {container_id}"):
            try:
                state: Mapping[str, Any] = self._api().inspect_container(container_id)["State"]
            except docker.errors.NotFound:
                return False
        return bool(state.get("Running"))

    # -- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's connections, if this runtime created the client."""
        with self._lock:
            if not self._owns_client or self._client is None:
                return
            client, self._client = self._client, None
        client.close()

    # -- internals --------------------------------------------------------------------

    def _docker(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = client_from_env()
                self._owns_client = True
            return self._client

    def _api(self) -> Any:  # docker.APIClient; docker-py is untyped
        return self._docker().api

    def _resolved_network_mode(self) -> str:
        if self._network_mode is None:
            with self._border("list networks"):
                networks: list[Mapping[str, Any]] = self._api().networks(names=["bridge"])
            # The engine's name filter matches substrings; only an exact "bridge" counts.
            has_bridge = any(n.get("Name") == "bridge" for n in networks)
            self._network_mode = "bridge" if has_bridge else "host"
            logger.info("network mode auto resolved to %s", self._network_mode)
        return self._network_mode

    def _ensure_image(self, image: str) -> None:
        if self._image_pull != "always":
            with self._border(f"inspect image {image}"):
                try:
                    self._api().inspect_image(image)
                    return
                except docker.errors.NotFound:
                    pass
            if self._image_pull == "never":
                raise ImageError(image, "not on this host, and the image pull policy is 'never'")
        self._pull(image)

    def _pull(self, image: str) -> None:
        repository, tag = parse_repository_tag(image)
        logger.info("pulling image %s", image)
        error: str | None = None
        with self._border(f"pull image {image}"):
            try:
                # Errors come either as an HTTP status or, once the pull has begun, as a
                # message in the progress stream (the high-level pull hides those). Read the
                # stream to its end either way, so its connection is released.
                for message in self._api().pull(repository, tag=tag or "latest", stream=True, decode=True):
                    if error is None and isinstance(message, Mapping) and message.get("error"):
                        error = str(message["error"])
            except docker.errors.APIError as exc:  # NotFound, ImageNotFound, 500 from the registry
                raise ImageError(image, _explain(exc)) from exc
        if error is not None:
            raise ImageError(image, error)

    def _engine_address(self) -> str:
        """Where the engine was expected: DOCKER_HOST, or the socket of an injected client."""
        client = self._client
        if client is None or self._owns_client:
            return _env_docker_host()
        api = client.api
        socket_path = getattr(getattr(api, "_custom_adapter", None), "socket_path", None)
        if isinstance(socket_path, str):
            return f"unix://{socket_path}"
        return str(getattr(api, "base_url", _env_docker_host()))

    @contextmanager
    def _border(self, action: str) -> Iterator[None]:
        """Translate docker-py and requests exceptions into localbatch errors."""
        try:
            yield
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise RuntimeUnavailable(_unavailable_message(self._engine_address(), exc)) from exc
        except docker.errors.APIError as exc:
            raise ContainerRuntimeError(f"docker could not {action}: {_explain(exc)}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ContainerRuntimeError(f"docker could not {action}: {exc}") from exc


# ---------------------------------------------------------------------------------------
# The mapping (pure: no engine)


def _ipv4_address(container_id: str, mode: str, settings: Mapping[str, Any]) -> str:
    """The address in an inspected container's ``NetworkSettings``: that of the network named
    by the mode (the default bridge fills the top-level ``IPAddress`` too), else the first."""
    networks: Mapping[str, Any] = settings.get("Networks") or {}
    named = (networks.get(mode) or {}).get("IPAddress")
    found = (
        named
        or settings.get("IPAddress")
        or next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
    )
    if not found:
        raise ContainerRuntimeError(f"container {container_id[:12]} has no IPv4 address on network {mode!r}")
    return str(found)


def container_create_kwargs(request: ContainerRequest, *, network_mode: str, cpu_limit: str) -> dict[str, Any]:
    """docker-py ``containers.create`` keyword arguments for ``request`` (see the table above)."""
    spec = request.spec
    linux = spec.linux_parameters
    memory_bytes = spec.resources.memory_mib * _MIB
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": request.name,
        "labels": dict(request.labels),
        "environment": dict(request.environment),
        "command": list(spec.command) or None,
        "network_mode": network_mode,
        "cpu_shares": max(_MIN_CPU_SHARES, round(spec.resources.vcpus * _CPU_SHARES_PER_VCPU)),
        "mem_limit": memory_bytes,
        "memswap_limit": memory_bytes + (linux.max_swap_mib or 0) * _MIB,
        "privileged": spec.privileged,
        "read_only": spec.readonly_root_filesystem,
    }
    if cpu_limit == "quota":
        kwargs["nano_cpus"] = round(spec.resources.vcpus * 1e9)
    if linux.max_swap_mib is not None and linux.swappiness is not None:
        kwargs["mem_swappiness"] = linux.swappiness
    if spec.user:
        kwargs["user"] = spec.user
    if spec.ulimits:
        kwargs["ulimits"] = [
            docker.types.Ulimit(name=u.name, soft=u.soft_limit, hard=u.hard_limit) for u in spec.ulimits
        ]
    if linux.shared_memory_size_mib is not None:
        kwargs["shm_size"] = linux.shared_memory_size_mib * _MIB
    if linux.init_process_enabled is not None:
        kwargs["init"] = linux.init_process_enabled
    if linux.tmpfs:
        kwargs["tmpfs"] = {t.container_path: ",".join((f"size={t.size_mib}m", *t.mount_options)) for t in linux.tmpfs}
    if linux.devices:
        kwargs["devices"] = [
            ":".join((d.host_path, d.container_path or d.host_path, _device_permissions(d.permissions)))
            for d in linux.devices
        ]
    if request.extra_hosts:
        kwargs["extra_hosts"] = dict(request.extra_hosts)
    mounts = _mounts(spec) + [_bind_mount(b) for b in request.binds]
    if mounts:
        kwargs["mounts"] = mounts
    if request.gpu_device_ids:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(driver="nvidia", device_ids=list(request.gpu_device_ids), capabilities=[["gpu"]])
        ]
    return kwargs


def _device_permissions(permissions: tuple[str, ...]) -> str:
    if not permissions:
        return "rwm"
    return "".join(letter for name, letter in _DEVICE_PERMISSION_LETTERS.items() if name in permissions)


def _mounts(spec: ContainerSpec) -> list[Any]:
    volumes = {v.name: v for v in spec.volumes}
    mounts: list[Any] = []
    for point in spec.mount_points:
        volume = volumes.get(point.source_volume)
        if volume is None:
            raise ContainerRuntimeError(
                f"mount point {point.container_path} names volume {point.source_volume!r}, "
                "which the job does not define"
            )
        if volume.host_source_path:
            mounts.append(
                docker.types.Mount(
                    target=point.container_path,
                    source=volume.host_source_path,
                    type="bind",
                    read_only=point.read_only,
                )
            )
        else:  # anonymous volume: lives and dies with the container (remove(v=True))
            mounts.append(
                docker.types.Mount(target=point.container_path, source=None, type="volume", read_only=point.read_only)
            )
    return mounts


def _bind_mount(bind: Bind) -> Any:
    return docker.types.Mount(target=bind.target, source=str(bind.source), type="bind", read_only=bind.read_only)


def _create_bind_sources(spec: ContainerSpec) -> None:
    """Create missing host directories of bind-mounted volumes, as the ECS agent does.

    Created here (as the user running localbatch) rather than left to Docker, whose
    ``--mount`` refuses a missing source and whose legacy binds would create it as root.
    """
    used = {p.source_volume for p in spec.mount_points}
    for volume in spec.volumes:
        path = volume.host_source_path
        if not path or volume.name not in used:
            continue
        if not os.path.isabs(path):
            raise ContainerRuntimeError(f"volume {volume.name!r}: host source path {path!r} is not absolute")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ContainerRuntimeError(
                f"volume {volume.name!r}: cannot create host directory {path}: {exc.strerror}"
            ) from exc


# ---------------------------------------------------------------------------------------
# copy_out's archive extraction (pure but for the files it writes)


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (a streamed HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def extract_archive(chunks: Iterable[bytes], into: Path) -> list[Path]:
    """Extract a tar stream (the engine's ``get_archive``) into the directory ``into``, read
    once, front to back. Only regular files and directories are written; links, devices and
    members named by an absolute path or with a ``..`` part are skipped, and no file is written
    through a symbolic link, so nothing lands outside ``into``. Files get mode 0755 when the
    archive marks them executable by their owner, else 0644. Returns the files written, sorted.
    Raises ContainerRuntimeError when the archive is malformed or a file cannot be written."""
    into.mkdir(parents=True, exist_ok=True)
    root = into.resolve()
    written: set[Path] = set()
    reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=_ARCHIVE_CHUNK)
    try:
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            for member in archive:
                relative = _safe_member_path(member.name)
                if relative is None or not (member.isreg() or member.isdir()):
                    logger.warning("copy_out: skipped %r (not a regular file or directory inside)", member.name)
                    continue
                target = root.joinpath(*relative)
                if member.isdir():
                    _make_directory(root, target)
                    continue
                _make_directory(root, target.parent)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has content
                _write_file(target, source, 0o755 if member.mode & 0o100 else 0o644)
                written.add(target)
    except tarfile.TarError as exc:
        raise ContainerRuntimeError(f"the engine's archive could not be read: {exc}") from exc
    except OSError as exc:
        raise ContainerRuntimeError(f"cannot write {exc.filename or into}: {exc.strerror or exc}") from exc
    return sorted(written)


def _safe_member_path(name: str) -> tuple[str, ...] | None:
    """The parts of a member's name under the target, or None when it is absolute or
    climbs out with ``..`` (or names nothing)."""
    if name.startswith("/"):
        return None
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if not parts or ".." in parts:
        return None
    return parts


def _make_directory(root: Path, directory: Path) -> None:
    """Create ``directory`` (under ``root``), refusing to go through a symbolic link."""
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise ContainerRuntimeError(f"cannot write under {current}: it is a symbolic link")
        current.mkdir(mode=0o755, exist_ok=True)


def _write_file(target: Path, source: IO[bytes], mode: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(target, flags, mode)
    with os.fdopen(descriptor, "wb") as out:
        while block := source.read(_ARCHIVE_CHUNK):
            out.write(block)
        os.fchmod(out.fileno(), mode)


# ---------------------------------------------------------------------------------------
# Error and state helpers


def _close_stream(stream: Any) -> None:
    """Close a docker-py log stream, also when the reader stopped early.

    ``CancellableStream.close`` shuts the socket down but leaves the HTTP response (which
    holds a file on that socket) open, so the socket would only be freed, with a
    ResourceWarning, by the garbage collector; closing the response releases it.
    """
    stream.close()
    response = getattr(stream, "_response", None)
    if response is not None:
        response.close()


def stats_from_document(found: Mapping[str, Any]) -> ContainerStats | None:
    """The engine's stats document as ``ContainerStats``; None for a container not running
    (the engine then leaves memory_stats empty). The working set leaves out inactive page
    cache, as ``docker stats`` does (cgroup v1: total_inactive_file; v2: inactive_file)."""
    memory = found.get("memory_stats") or {}
    if "usage" not in memory:
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    used = int(memory.get("usage") or 0)
    limit = memory.get("limit")
    cpu = ((found.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)
    return ContainerStats(
        cpu_ns=int(cpu or 0),
        memory_bytes=max(used - int(cache or 0), 0),
        memory_limit_bytes=int(limit) if isinstance(limit, int) and limit > 0 else None,
    )


def _exit_from_state(state: Mapping[str, Any]) -> ContainerExit | None:
    """The exit recorded in ``docker inspect``'s State, or None while the container has not
    run to an end: running, or created and never started (Docker's wait returns at once for
    those, with a meaningless 0). A start the engine refused leaves the container "created"
    with an exit code (127 command not found, 126 not executable, 128 other) and the error:
    that is an end, reported like any other."""
    if state.get("Running"):
        return None
    if state.get("Status") == "created" and not state.get("Error"):
        return None
    return ContainerExit(
        exit_code=int(state.get("ExitCode", -1)),
        oom_killed=bool(state.get("OOMKilled", False)),
        error=str(state.get("Error") or "") or None,
        finished_at_ms=_epoch_ms(state.get("FinishedAt")),
    )


def _epoch_ms(stamp: object) -> int | None:
    """Docker's RFC 3339 time (nanoseconds, ``Z``) in epoch milliseconds; None for its zero
    time (``0001-01-01T00:00:00Z``: never) or anything unreadable."""
    if not isinstance(stamp, str) or stamp.startswith("0001-"):
        return None
    # Python 3.10's fromisoformat takes neither "Z" nor more than 6 digits of fraction.
    normal = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        return round(datetime.fromisoformat(normal).timestamp() * 1000)
    except ValueError:
        return None


def _explain(exc: docker.errors.APIError) -> str:
    """The engine's own words (``explanation``), else docker-py's summary."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()


def _is_read_timeout(exc: BaseException) -> bool:
    return any(isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args)


def client_from_env() -> docker.DockerClient:
    """``docker.from_env()``, which asks the engine its API version and so fails here when the
    engine does not answer (or DOCKER_HOST is malformed).

    On a failed connect docker-py's unix transport leaves its socket in a reference cycle
    with the traceback, and the garbage collector warns when it finds it. This path runs once
    per process at most (the engine is down), so the cycle is collected here, under
    ``catch_warnings``, and only our one-line error leaves this function.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return docker.from_env()
        except docker.errors.DockerException as exc:
            message = _unavailable_message(_env_docker_host(), exc)
        gc.collect()
    raise RuntimeUnavailable(message)


def _env_docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or _DEFAULT_DOCKER_HOST


def _unavailable_message(address: str, exc: BaseException) -> str:
    """One line: where the engine was expected, why it did not answer, how to start it."""
    cause = _os_cause(exc)
    if isinstance(cause, PermissionError):
        return (
            f"the Docker engine at {address} refused this user (permission denied): "
            "add yourself to the docker group or set DOCKER_HOST"
        )
    why = f" ({cause.strerror.lower()})" if cause is not None and cause.strerror else ""
    return f"the Docker engine does not answer at {address}{why}: {_START_HINT}"


def _os_cause(exc: BaseException) -> OSError | None:
    """The first OSError (other than requests' own) behind ``exc``, searched through the
    cause chain, exception arguments and urllib3's ``reason``."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and not isinstance(current, requests.exceptions.RequestException):
            if current.errno is not None:
                return current
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        pending.extend(current.args)
    return None
