"""PsutilHostProbe (with fake NVML modules and fake nvidia-smi output), SystemClock and
FakeHostProbe. There is no GPU here: the GPU sources are fed by the tests."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from localbatch.adapters.clock import SystemClock
from localbatch.adapters.host import NVIDIA_SMI_ARGS, PsutilHostProbe, cgroup_cpu_limit, parse_nvidia_smi
from localbatch.core.inventory import GpuDevice, HostInventory
from localbatch.errors import HostProbeError
from tests.fakes.host import FakeHostProbe

H100 = GpuDevice(0, "GPU-8c2f0f5e-0000-0000-0000-000000000000", "NVIDIA H100 80GB HBM3", 81559)
A10 = GpuDevice(1, "GPU-1b2c3d4e-1111-1111-1111-111111111111", "NVIDIA A10G", 23028)
SMI_OUTPUT = (
    "0, GPU-8c2f0f5e-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559\n"
    "1, GPU-1b2c3d4e-1111-1111-1111-111111111111, NVIDIA A10G, 23028\n"
)


# -- fakes for the GPU sources ----------------------------------------------------------


class FakeNVMLError(Exception):
    pass


@dataclass
class FakeMemory:
    total: int


@dataclass
class FakeNvml:
    """A stand-in for the ``pynvml`` module: the functions the probe calls, and a log."""

    devices: list[GpuDevice] = field(default_factory=list)
    fail_init: bool = False
    fail_on_device: int | None = None
    as_bytes: bool = False  # pynvml < 11.5 returned bytes
    calls: list[str] = field(default_factory=list)
    NVMLError: type[Exception] = FakeNVMLError

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.fail_init:
            raise FakeNVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if index == self.fail_on_device:
            raise FakeNVMLError("GPU is lost")
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str | bytes:
        return self._text(self.devices[handle].uuid)

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        return self._text(self.devices[handle].name)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> FakeMemory:
        return FakeMemory(self.devices[handle].memory_mib * 1024 * 1024 + 12345)  # bytes, not whole MiB

    def _text(self, value: str) -> str | bytes:
        return value.encode() if self.as_bytes else value


class FakeCommand:
    """Stands in for ``run_command``: answers with ``output`` or raises ``error``."""

    def __init__(self, output: str = "", error: Exception | None = None) -> None:
        self.output = output
        self.error = error
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, args: Sequence[str], timeout_s: float) -> str:
        self.calls.append((list(args), timeout_s))
        if self.error is not None:
            raise self.error
        return self.output


@pytest.fixture
def smi(tmp_path: Path) -> Path:
    """An executable called nvidia-smi that prints SMI_OUTPUT (found by path, not PATH)."""
    script = tmp_path / "nvidia-smi"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{SMI_OUTPUT}EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def no_nvml() -> FakeNvml:
    raise ImportError("No module named 'pynvml'")


def cpu_only() -> PsutilHostProbe:
    return PsutilHostProbe(nvml_loader=None, nvidia_smi=None)


# -- CPUs and memory --------------------------------------------------------------------


def test_cpu_and_memory_are_the_hosts() -> None:
    inventory = cpu_only().probe()
    assert 1 <= inventory.cpus <= (psutil.cpu_count(logical=True) or 0)
    assert inventory.cpus <= len(os.sched_getaffinity(0))
    assert inventory.memory_mib == psutil.virtual_memory().total // (1024 * 1024)
    assert inventory.memory_mib > 64
    assert (inventory.gpus, inventory.gpu_source) == ((), "none")


@pytest.mark.parametrize(("quota", "expected"), [(0.3, 1), (1.5, 1), (1000.0, None), (None, None)])
def test_cgroup_cpu_quota_lowers_the_count(quota: float | None, expected: int | None) -> None:
    unlimited = cpu_only().probe().cpus
    probe = PsutilHostProbe(nvml_loader=None, nvidia_smi=None, cpu_limit=lambda: quota)
    assert probe.probe().cpus == (unlimited if expected is None else expected)


def test_cpu_count_unreadable_is_a_probe_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: None)
    with pytest.raises(HostProbeError, match="CPUs"):
        cpu_only().probe()


def test_memory_unreadable_is_a_probe_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise OSError("/proc/meminfo: permission denied")

    monkeypatch.setattr(psutil, "virtual_memory", broken)
    with pytest.raises(HostProbeError, match="memory") as caught:
        cpu_only().probe()
    assert isinstance(caught.value.__cause__, OSError)


def _cgroup(tmp_path: Path, self_cgroup: str, files: dict[str, str]) -> float | None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(self_cgroup)
    for name, text in files.items():
        (tmp_path / "cg" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cg" / name).write_text(text)
    return cgroup_cpu_limit(tmp_path / "cg", proc)


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    assert _cgroup(tmp_path, "0::/user.slice/job\n", {"user.slice/job/cpu.max": "250000 100000\n"}) == 2.5
    assert _cgroup(tmp_path, "0::/user.slice/job\n", {"user.slice/job/cpu.max": "max 100000\n"}) is None


def test_cgroup_v2_quota_at_the_root_of_a_container(tmp_path: Path) -> None:
    assert _cgroup(tmp_path, "0::/\n", {"cpu.max": "50000 100000"}) == 0.5


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    files = {"cpu/docker/abc/cpu.cfs_quota_us": "300000", "cpu/docker/abc/cpu.cfs_period_us": "100000"}
    assert _cgroup(tmp_path, "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/\n", files) == 3.0
    files = {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}
    assert _cgroup(tmp_path / "v1", "4:cpu,cpuacct:/\n", files) is None


def test_cgroup_unreadable_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path, tmp_path / "missing") is None
    assert _cgroup(tmp_path, "0::/\n", {"cpu.max": "garbage"}) is None
    assert _cgroup(tmp_path / "zero", "0::/\n", {"cpu.max": "100 0"}) is None


# -- GPUs: NVML -------------------------------------------------------------------------


def test_gpus_from_nvml() -> None:
    nvml = FakeNvml(devices=[H100, A10])
    inventory = PsutilHostProbe(nvml_loader=lambda: nvml, nvidia_smi=None).probe()
    assert inventory.gpus == (H100, A10)
    assert inventory.gpu_source == "nvml"
    assert nvml.calls == ["init", "shutdown"]


def test_nvml_bytes_names_are_decoded() -> None:
    nvml = FakeNvml(devices=[H100], as_bytes=True)
    assert PsutilHostProbe(nvml_loader=lambda: nvml, nvidia_smi=None).probe().gpus == (H100,)


def test_nvml_with_no_gpus_is_the_answer(smi: Path) -> None:
    command = FakeCommand(SMI_OUTPUT)
    probe = PsutilHostProbe(nvml_loader=lambda: FakeNvml(), nvidia_smi=str(smi), run_command=command)
    inventory = probe.probe()
    assert (inventory.gpus, inventory.gpu_source) == ((), "nvml")
    assert command.calls == []


@pytest.mark.parametrize(
    "nvml_loader",
    [no_nvml, lambda: FakeNvml(fail_init=True), lambda: FakeNvml(devices=[H100, A10], fail_on_device=1)],
    ids=["not-installed", "init-fails", "device-fails"],
)
def test_nvml_failure_falls_back_to_nvidia_smi(nvml_loader: Callable[[], FakeNvml], smi: Path) -> None:
    command = FakeCommand(SMI_OUTPUT)
    probe = PsutilHostProbe(nvml_loader=nvml_loader, nvidia_smi=str(smi), run_command=command)
    inventory = probe.probe()
    assert inventory.gpus == (H100, A10)
    assert inventory.gpu_source == "nvidia-smi"


def test_nvml_is_shut_down_after_a_failure() -> None:
    nvml = FakeNvml(devices=[H100], fail_on_device=0)
    inventory = PsutilHostProbe(nvml_loader=lambda: nvml, nvidia_smi=None).probe()
    assert (inventory.gpus, inventory.gpu_source) == ((), "none")
    assert nvml.calls == ["init", "shutdown"]


def test_real_pynvml_never_crashes_the_probe() -> None:
    inventory = PsutilHostProbe(nvidia_smi=None).probe()  # the real pynvml; no driver here
    assert inventory.gpu_source in ("nvml", "none")


# -- GPUs: nvidia-smi -------------------------------------------------------------------


def test_nvidia_smi_is_run_with_the_query_and_a_timeout(smi: Path) -> None:
    command = FakeCommand(SMI_OUTPUT)
    PsutilHostProbe(nvml_loader=None, nvidia_smi=str(smi), run_command=command).probe()
    assert command.calls == [([str(smi), *NVIDIA_SMI_ARGS], 5.0)]
    assert "--query-gpu=index,uuid,name,memory.total" in NVIDIA_SMI_ARGS


def test_nvidia_smi_for_real(smi: Path) -> None:
    inventory = PsutilHostProbe(nvml_loader=None, nvidia_smi=str(smi)).probe()  # runs the script
    assert (inventory.gpus, inventory.gpu_source) == ((H100, A10), "nvidia-smi")


@pytest.mark.parametrize(
    "output",
    [
        "No devices were found\n",
        "0, GPU-x, NVIDIA H100\n",  # a column short
        "0, GPU-x, NVIDIA H100, [N/A]\n",
        "zero, GPU-x, NVIDIA H100, 81559\n",
        "0, , NVIDIA H100, 81559\n",
        SMI_OUTPUT + "garbage\n",  # one bad line spoils the list
        "\x00\x01\x02",
    ],
)
def test_malformed_nvidia_smi_output_means_no_gpus(output: str, smi: Path) -> None:
    probe = PsutilHostProbe(nvml_loader=None, nvidia_smi=str(smi), run_command=FakeCommand(output))
    inventory = probe.probe()
    assert (inventory.gpus, inventory.gpu_source) == ((), "none")


@pytest.mark.parametrize(
    "error",
    [
        subprocess.CalledProcessError(9, "nvidia-smi", "NVIDIA-SMI has failed because it couldn't communicate"),
        subprocess.TimeoutExpired("nvidia-smi", 5.0),
        PermissionError("nvidia-smi"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
    ids=["exit-status", "timeout", "oserror", "undecodable"],
)
def test_failing_nvidia_smi_means_no_gpus(error: Exception, smi: Path) -> None:
    probe = PsutilHostProbe(nvml_loader=None, nvidia_smi=str(smi), run_command=FakeCommand(error=error))
    assert probe.probe().gpu_source == "none"


def test_nvidia_smi_not_on_path_is_not_run() -> None:
    command = FakeCommand(SMI_OUTPUT)
    probe = PsutilHostProbe(nvml_loader=no_nvml, nvidia_smi="nvidia-smi-that-does-not-exist", run_command=command)
    assert probe.probe().gpu_source == "none"
    assert command.calls == []


def test_parse_nvidia_smi() -> None:
    assert parse_nvidia_smi(SMI_OUTPUT) == (H100, A10)
    assert parse_nvidia_smi("") == ()
    assert parse_nvidia_smi("\n" + SMI_OUTPUT + "\n\n") == (H100, A10)
    with_comma = parse_nvidia_smi("3, GPU-abc, Tesla V100, PCIe, 16160\n")
    assert with_comma == (GpuDevice(3, "GPU-abc", "Tesla V100, PCIe", 16160),)


# -- clock and the fake -----------------------------------------------------------------


def test_system_clock_is_epoch_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    now = SystemClock().now_ms()
    assert isinstance(now, int)
    assert before <= now <= time.time_ns() // 1_000_000


def test_fake_host_probe() -> None:
    host = FakeHostProbe(HostInventory(cpus=2, memory_mib=1024))
    assert host.probe() == HostInventory(cpus=2, memory_mib=1024)
    host.failing = True
    with pytest.raises(HostProbeError):
        host.probe()
    assert host.probes == 2
    gpus = FakeHostProbe.with_gpus(2).probe()
    assert [g.device_id for g in gpus.gpus] == ["0", "1"]
    assert gpus.gpu_source == "nvml"
