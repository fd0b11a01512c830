"""DockerRuntime against a real engine: the contract, then what only Docker can show.

Limits and options are checked where Docker records them (``docker inspect``, read with
the SDK's low-level client, not through the adapter) and, where cheap, from inside the
container. Every container carries the test's ``localbatch.test_run`` label and is removed
by the ``docker_kit`` fixture, pass or fail.
"""

from __future__ import annotations

import posixpath
import shlex
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from localbatch.adapters.docker_runtime import DockerRuntime
from localbatch.core.resources import Resources
from localbatch.core.spec import Device, LinuxParameters, MountPoint, Tmpfs, Ulimit, Volume
from localbatch.errors import ContainerRuntimeError, ImageError
from localbatch.ports import ContainerExit, ContainerRuntime
from tests.contract.runtime_contract import RuntimeContract
from tests.integration.conftest import DockerKit

MIB = 1024 * 1024
LOOPBACK_MISSING = "127.0.0.1:9/localbatch-missing:nope"


class TestDockerRuntimeContract(RuntimeContract):
    missing_image = LOOPBACK_MISSING

    @pytest.fixture(autouse=True)
    def _kit(self, docker_kit: DockerKit) -> None:
        self.kit = docker_kit
        self.image = docker_kit.image

    def make_runtime(self) -> ContainerRuntime:
        return self.kit.runtime

    def request_labels(self) -> Mapping[str, str]:
        return self.kit.labels

    def command_printing(self, runtime: ContainerRuntime, output: bytes, exit_code: int) -> tuple[str, ...]:
        return ("sh", "-c", f"printf '%s' {shlex.quote(output.decode())}; exit {exit_code}")

    def command_printing_env(self, runtime: ContainerRuntime, name: str) -> tuple[str, ...]:
        return ("sh", "-c", f'printf "%s" "${name}"')

    def long_running_command(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        return ("sleep", "300")

    def command_that_cannot_start(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        return ("/localbatch-no-such-command",)

    def command_printing_files(self, runtime: ContainerRuntime, paths: Sequence[str]) -> tuple[str, ...]:
        return ("cat", *paths)

    def command_writing(self, runtime: ContainerRuntime, files: Mapping[str, bytes]) -> tuple[str, ...]:
        steps = [
            f"mkdir -p {shlex.quote(posixpath.dirname(path))} && printf {_octal(content)} > {shlex.quote(path)}"
            for path, content in files.items()
        ]
        return ("sh", "-c", " && ".join(steps))


# ---------------------------------------------------------------------------------------
# helpers


def _octal(content: bytes) -> str:
    """A printf format that prints ``content`` byte-exact (NUL included): every byte escaped."""
    return "'" + "".join(f"\\{byte:03o}" for byte in content) + "'"


def sh(kit: DockerKit, script: str, **spec: Any) -> tuple[str, str, ContainerExit]:
    """Create, start and wait for ``sh -c script``; returns (id, output, exit)."""
    runtime = kit.runtime
    container_id = runtime.create(kit.request("sh", "-c", script, **spec))
    runtime.start(container_id)
    exit = runtime.wait(container_id, 30)
    assert exit is not None, "container did not exit in time"
    return container_id, b"".join(runtime.logs(container_id)).decode(), exit


def host_config(kit: DockerKit, runtime: DockerRuntime | None = None, **spec: Any) -> dict[str, Any]:
    """Create (not start) a container and return its HostConfig as Docker recorded it."""
    container_id = (runtime or kit.runtime).create(kit.request("true", **spec))
    config: dict[str, Any] = kit.inspect(container_id)["HostConfig"]
    return config


def resources(vcpus: float = 1, memory_mib: int = 64) -> Resources:
    return Resources(vcpus=vcpus, memory_mib=memory_mib)


# ---------------------------------------------------------------------------------------
# CPU and memory


@pytest.mark.parametrize(("vcpus", "shares"), [(1, 1024), (1.5, 1536), (0.25, 256), (0.001, 2)])
def test_cpu_shares_are_vcpus_times_1024_without_quota(docker_kit: DockerKit, vcpus: float, shares: int) -> None:
    config = host_config(docker_kit, resources=resources(vcpus=vcpus))
    assert config["CpuShares"] == shares
    assert config["NanoCpus"] == 0


def test_memory_is_a_hard_limit_with_no_extra_swap(docker_kit: DockerKit) -> None:
    config = host_config(docker_kit, resources=resources(memory_mib=96))
    assert config["Memory"] == 96 * MIB
    assert config["MemorySwap"] == 96 * MIB


def test_cpu_limit_quota_sets_nano_cpus(docker_kit: DockerKit) -> None:
    runtime = docker_kit.runtime_with(cpu_limit="quota")
    config = host_config(docker_kit, runtime, resources=resources(vcpus=0.5))
    assert config["NanoCpus"] == 500_000_000
    assert config["CpuShares"] == 512


def test_max_swap_and_swappiness(docker_kit: DockerKit) -> None:
    config = host_config(
        docker_kit,
        resources=resources(memory_mib=64),
        linux_parameters=LinuxParameters(max_swap_mib=32, swappiness=10),
    )
    assert config["Memory"] == 64 * MIB
    assert config["MemorySwap"] == 96 * MIB
    assert config["MemorySwappiness"] == 10


def test_swappiness_without_max_swap_is_ignored_as_on_aws(docker_kit: DockerKit) -> None:
    config = host_config(docker_kit, linux_parameters=LinuxParameters(swappiness=10))
    assert config["MemorySwap"] == config["Memory"]
    assert config["MemorySwappiness"] is None


def test_out_of_memory_is_exit_137_and_oom_killed(docker_kit: DockerKit) -> None:
    _, _, exit = sh(docker_kit, 'x=$(head -c 100000000 /dev/zero | tr "\\0" a)', resources=resources(memory_mib=16))
    assert exit.exit_code == 137
    assert exit.oom_killed


# ---------------------------------------------------------------------------------------
# Security, limits and linuxParameters


def test_user_and_ulimits(docker_kit: DockerKit) -> None:
    _, output, exit = sh(
        docker_kit,
        "echo $(id -u) $(id -g); ulimit -n; ulimit -Hn",
        user="1234:5678",
        ulimits=(Ulimit(name="nofile", soft_limit=1000, hard_limit=2000),),
    )
    assert exit.exit_code == 0
    assert output.split("\n")[:3] == ["1234 5678", "1000", "2000"]


def test_read_only_root_with_a_writable_tmpfs(docker_kit: DockerKit) -> None:
    container_id, output, exit = sh(
        docker_kit,
        "touch /probe 2>/dev/null && echo root-writable || echo root-read-only;"
        "touch /scratch/probe && echo tmpfs-writable; grep ' /scratch ' /proc/mounts",
        readonly_root_filesystem=True,
        linux_parameters=LinuxParameters(tmpfs=(Tmpfs("/scratch", size_mib=8, mount_options=("noexec",)),)),
    )
    assert exit.exit_code == 0
    lines = output.splitlines()
    assert lines[:2] == ["root-read-only", "tmpfs-writable"]
    assert "size=8192k" in lines[2]
    assert "noexec" in lines[2]
    config = docker_kit.inspect(container_id)["HostConfig"]
    assert config["ReadonlyRootfs"] is True
    assert config["Tmpfs"] == {"/scratch": "size=8m,noexec"}


def test_shared_memory_size_and_init(docker_kit: DockerKit) -> None:
    container_id, output, exit = sh(
        docker_kit,
        "df -k /dev/shm | tail -n 1; tr '\\0' ' ' < /proc/1/cmdline",
        linux_parameters=LinuxParameters(shared_memory_size_mib=32, init_process_enabled=True),
    )
    assert exit.exit_code == 0
    shm, pid1 = output.splitlines()
    assert shm.split()[1] == "32768"
    assert pid1.startswith("/sbin/docker-init -- sh")
    assert docker_kit.inspect(container_id)["HostConfig"]["Init"] is True


def test_init_disabled_makes_the_command_pid_1(docker_kit: DockerKit) -> None:
    _, output, _ = sh(
        docker_kit,
        "tr '\\0' ' ' < /proc/1/cmdline; echo",  # two commands: sh cannot exec the last
        linux_parameters=LinuxParameters(init_process_enabled=False),
    )
    assert output.startswith("sh -c")


def _has_cap_sys_admin(output: str) -> bool:
    (cap_eff,) = [line for line in output.splitlines() if line.startswith("CapEff:")]
    return bool(int(cap_eff.split()[1], 16) >> 21 & 1)  # CAP_SYS_ADMIN is bit 21


def test_privileged_is_recorded(docker_kit: DockerKit) -> None:
    assert host_config(docker_kit, privileged=True)["Privileged"] is True
    assert host_config(docker_kit)["Privileged"] is False


def test_privileged_grants_every_capability_or_the_engine_says_why(docker_kit: DockerKit) -> None:
    container_id = docker_kit.runtime.create(
        docker_kit.request("sh", "-c", "grep CapEff /proc/self/status", privileged=True)
    )
    try:
        docker_kit.runtime.start(container_id)
    except ContainerRuntimeError as exc:
        # An engine that itself runs with a reduced capability set (a sandboxed VM, rootless
        # Docker, this project's CI) cannot hand out every capability. Then what a user sees
        # must be the engine's own reason, translated at the border, not a docker-py error.
        assert "apply caps" in str(exc) and "operation not permitted" in str(exc)
        assert not isinstance(exc.__cause__, ContainerRuntimeError)
        return
    assert docker_kit.runtime.wait(container_id, 30) == ContainerExit(exit_code=0)
    assert _has_cap_sys_admin(b"".join(docker_kit.runtime.logs(container_id)).decode())

    _, output, _ = sh(docker_kit, "grep CapEff /proc/self/status")
    assert not _has_cap_sys_admin(output)


def test_devices_with_permissions(docker_kit: DockerKit) -> None:
    config = host_config(
        docker_kit,
        linux_parameters=LinuxParameters(
            devices=(
                Device("/dev/null", "/dev/lbnull", permissions=("READ", "MKNOD")),
                Device("/dev/zero"),
            )
        ),
    )
    assert [(d["PathOnHost"], d["PathInContainer"], d["CgroupPermissions"]) for d in config["Devices"]] == [
        ("/dev/null", "/dev/lbnull", "rm"),
        ("/dev/zero", "/dev/zero", "rwm"),
    ]


def test_gpu_ids_become_a_device_request(docker_kit: DockerKit) -> None:
    request = docker_kit.request("true", gpu_device_ids=("0", "2"))
    container_id = docker_kit.runtime.create(request)
    (device_request,) = docker_kit.inspect(container_id)["HostConfig"]["DeviceRequests"]
    assert device_request["Driver"] == "nvidia"
    assert device_request["DeviceIDs"] == ["0", "2"]
    assert device_request["Capabilities"] == [["gpu"]]
    if "nvidia" not in docker_kit.client.info().get("Runtimes", {}):
        with pytest.raises(ContainerRuntimeError, match="nvidia"):
            docker_kit.runtime.start(container_id)


# ---------------------------------------------------------------------------------------
# Volumes


def test_bind_mounts_created_and_read_only_honoured(docker_kit: DockerKit, tmp_path: Path) -> None:
    made = tmp_path / "made" / "by" / "localbatch"
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "input").write_text("seeded\n")
    container_id, output, exit = sh(
        docker_kit,
        "echo out > /work/result; cat /seed/input;"
        "(echo x > /seed/nope) 2>/dev/null && echo seed-writable || echo seed-read-only;"
        "echo anon > /anon/f && echo anon-writable",
        volumes=(Volume("work", str(made)), Volume("seed", str(seed)), Volume("anon")),
        mount_points=(
            MountPoint("work", "/work"),
            MountPoint("seed", "/seed", read_only=True),
            MountPoint("anon", "/anon"),
        ),
    )
    assert exit.exit_code == 0, output
    assert output.splitlines() == ["seeded", "seed-read-only", "anon-writable"]
    assert (made / "result").read_text() == "out\n"
    assert not (seed / "nope").exists()

    (anonymous,) = [m for m in docker_kit.inspect(container_id)["Mounts"] if m["Destination"] == "/anon"]
    docker_kit.runtime.remove(container_id)
    with pytest.raises(docker.errors.NotFound):
        docker_kit.client.volumes.get(anonymous["Name"])


def test_read_only_anonymous_volume_is_refused_with_the_engines_reason(docker_kit: DockerKit) -> None:
    with pytest.raises(ContainerRuntimeError, match="anonymous"):
        docker_kit.runtime.create(
            docker_kit.request(
                "true", volumes=(Volume("anon"),), mount_points=(MountPoint("anon", "/anon", read_only=True),)
            )
        )


def test_mount_point_of_an_undefined_volume_is_refused(docker_kit: DockerKit) -> None:
    with pytest.raises(ContainerRuntimeError, match="'ghost'"):
        docker_kit.runtime.create(docker_kit.request("true", mount_points=(MountPoint("ghost", "/ghost"),)))


# ---------------------------------------------------------------------------------------
# Lifecycle


def test_logs_follow_stdout_and_stderr_until_exit(docker_kit: DockerKit) -> None:
    container_id = docker_kit.runtime.create(docker_kit.request("sh", "-c", "echo first; sleep 1; echo second >&2"))
    docker_kit.runtime.start(container_id)
    assert b"".join(docker_kit.runtime.logs(container_id)) == b"first\nsecond\n"
    assert docker_kit.runtime.wait(container_id, 0) == ContainerExit(exit_code=0)


def test_stop_sends_sigterm_first(docker_kit: DockerKit) -> None:
    container_id = docker_kit.runtime.create(
        docker_kit.request("sh", "-c", "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done")
    )
    docker_kit.runtime.start(container_id)
    assert next(iter(docker_kit.runtime.logs(container_id))) == b"ready\n"  # the trap is set
    began = time.monotonic()
    docker_kit.runtime.stop(container_id, grace_s=20)
    assert time.monotonic() - began < 10
    assert docker_kit.runtime.wait(container_id, 10) == ContainerExit(exit_code=42)


def test_stop_kills_after_the_grace_period(docker_kit: DockerKit) -> None:
    container_id = docker_kit.runtime.create(docker_kit.request("sleep", "300"))  # PID 1 ignores SIGTERM
    docker_kit.runtime.start(container_id)
    began = time.monotonic()
    docker_kit.runtime.stop(container_id, grace_s=1)
    elapsed = time.monotonic() - began
    assert 0.9 <= elapsed < 10
    assert docker_kit.runtime.wait(container_id, 10) == ContainerExit(exit_code=137)


def test_command_not_found_reports_the_engines_error(docker_kit: DockerKit) -> None:
    container_id = docker_kit.runtime.create(docker_kit.request("/localbatch-no-such-command"))
    with pytest.raises(ContainerRuntimeError, match="no such file or directory"):
        docker_kit.runtime.start(container_id)
    exit = docker_kit.runtime.wait(container_id, 10)
    assert exit is not None
    assert exit.exit_code == 127
    assert exit.error is not None and "/localbatch-no-such-command" in exit.error


# ---------------------------------------------------------------------------------------
# Engine, network, images


def test_engine_info_and_auto_network_mode(docker_kit: DockerKit) -> None:
    has_bridge = any(n.name == "bridge" for n in docker_kit.client.networks.list())
    expected = "bridge" if has_bridge else "host"  # this project's engines run --bridge=none: host

    info = docker_kit.runtime.engine_info()

    version = docker_kit.client.version()
    assert (info.name, info.version, info.api_version) == (
        "docker",
        version["Version"],
        version["ApiVersion"],
    )
    assert info.network_mode == expected
    assert host_config(docker_kit)["NetworkMode"] == expected


def test_explicit_network_mode_is_passed_as_is(docker_kit: DockerKit) -> None:
    runtime = docker_kit.runtime_with(network_mode="none")
    assert runtime.engine_info().network_mode == "none"
    assert host_config(docker_kit, runtime)["NetworkMode"] == "none"


def test_missing_image_from_a_loopback_registry(docker_kit: DockerKit) -> None:
    with pytest.raises(ImageError) as caught:
        docker_kit.runtime.create(docker_kit.request("true", image=LOOPBACK_MISSING))
    assert caught.value.image == LOOPBACK_MISSING
    assert LOOPBACK_MISSING in str(caught.value)
    assert "127.0.0.1:9" in caught.value.detail  # the engine's own words about the registry


def test_pull_policy_never(docker_kit: DockerKit) -> None:
    runtime = docker_kit.runtime_with(image_pull="never")
    with pytest.raises(ImageError, match="'never'"):
        runtime.create(docker_kit.request("true", image=LOOPBACK_MISSING))
    runtime.create(docker_kit.request("true"))  # present: fine


@pytest.fixture
def locally_tagged(docker_kit: DockerKit) -> Iterator[str]:
    """busybox tagged under a loopback registry that does not exist: present, but unpullable."""
    name = f"127.0.0.1:9/localbatch-present:{uuid.uuid4().hex[:8]}"
    docker_kit.client.api.tag(docker_kit.image, *name.rsplit(":", 1))
    yield name
    # "ancestor" matches by image id, so every busybox container on the engine: only this test's.
    mine = {"ancestor": name, "label": [f"{k}={v}" for k, v in docker_kit.labels.items()]}
    remove_all = [c["Id"] for c in docker_kit.client.api.containers(all=True, filters=mine)]
    for container_id in remove_all:
        docker_kit.client.api.remove_container(container_id, force=True, v=True)
    docker_kit.client.api.remove_image(name, noprune=True)


def test_pull_policy_always_pulls_even_when_present(docker_kit: DockerKit, locally_tagged: str) -> None:
    docker_kit.runtime.create(docker_kit.request("true", image=locally_tagged))  # "missing": no pull
    with pytest.raises(ImageError) as caught:
        docker_kit.runtime_with(image_pull="always").create(docker_kit.request("true", image=locally_tagged))
    assert caught.value.image == locally_tagged


# ---------------------------------------------------------------------------------------
# copy_out


def test_copy_out_of_a_running_container_skips_links(docker_kit: DockerKit, tmp_path: Path) -> None:
    container_id = docker_kit.runtime.create(docker_kit.request("sleep", "300"))
    docker_kit.runtime.start(container_id)
    # busybox's /bin: the binary and a symbolic link per applet
    assert docker_kit.runtime.copy_out(container_id, "/bin/", tmp_path) == [tmp_path / "bin" / "busybox"]
    assert [p.name for p in (tmp_path / "bin").iterdir()] == ["busybox"]
    assert (tmp_path / "bin" / "busybox").stat().st_mode & 0o7777 == 0o755


def test_copy_out_of_a_missing_container_is_a_runtime_error(docker_kit: DockerKit, tmp_path: Path) -> None:
    with pytest.raises(ContainerRuntimeError, match="localbatch-no-such-container"):
        docker_kit.runtime.copy_out("localbatch-no-such-container", "/bin", tmp_path)
