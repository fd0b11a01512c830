"""What this host has: CPUs and memory from psutil, NVIDIA GPUs from NVML or ``nvidia-smi``.

Implements ``localbatch.ports.HostProbe``. CPUs are the logical CPUs, lowered to what this
process may use when its CPU affinity or cgroup CPU quota says less (a quota of 2.5 CPUs
counts as 2; never below 1). Memory is the host's total RAM in MiB.

GPUs are read from the first source that answers:

1. NVML through ``pynvml`` (package nvidia-ml-py), imported only when probing;
2. ``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits``
   when it is on PATH (5 s timeout);
3. none.

``HostInventory.gpu_source`` names the source ("nvml", "nvidia-smi" or "none"). A source that
answers with zero GPUs still counts as the answer. A GPU source that fails in any way (no
driver, a timeout, output that does not parse) is logged and skipped, never raised: a host
without GPUs is normal. Only CPUs and memory that cannot be read raise ``HostProbeError``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil

from localbatch.core.inventory import GpuDevice, HostInventory
from localbatch.errors import HostProbeError

log = logging.getLogger(__name__)

NVIDIA_SMI_ARGS = (
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
)
NVIDIA_SMI_TIMEOUT_S = 5.0
_MIB = 1024 * 1024


class Nvml(Protocol):
    """The part of ``pynvml`` the probe uses (a test passes a fake module object)."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...  # has .total, in bytes
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...  # has .gpu, percent


def load_pynvml() -> Nvml:
    import pynvml  # lazily: loading NVML is only worth it when probing

    nvml: Nvml = pynvml
    return nvml


def run_command(args: Sequence[str], timeout_s: float) -> str:
    """Run ``args`` and return its stdout. Raises OSError or subprocess.SubprocessError."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout_s, check=True)
    return done.stdout


class PsutilHostProbe:
    """``HostProbe`` on psutil, NVML and nvidia-smi.

    The GPU sources are injectable: ``nvml_loader`` returns the NVML module (None: skip NVML);
    ``nvidia_smi`` is the command's name or path (None: skip it); ``run_command`` runs it;
    ``cpu_limit`` reads this process's cgroup CPU quota in CPUs (None: no quota).
    """

    def __init__(
        self,
        *,
        nvml_loader: Callable[[], Nvml] | None = load_pynvml,
        nvidia_smi: str | None = "nvidia-smi",
        run_command: Callable[[Sequence[str], float], str] = run_command,
        cpu_limit: Callable[[], float | None] | None = None,
    ) -> None:
        self._nvml_loader = nvml_loader
        self._nvidia_smi = nvidia_smi
        self._run_command = run_command
        self._cpu_limit = cpu_limit if cpu_limit is not None else cgroup_cpu_limit

    def probe(self) -> HostInventory:
        gpus, source = self._gpus()
        return HostInventory(cpus=self._cpus(), memory_mib=self._memory_mib(), gpus=gpus, gpu_source=source)

    # -- CPUs and memory --------------------------------------------------------------

    def _cpus(self) -> int:
        try:
            logical = psutil.cpu_count(logical=True)
        except (OSError, psutil.Error) as exc:
            raise HostProbeError(f"cannot count CPUs: {exc}") from exc
        if not logical:
            raise HostProbeError("cannot count CPUs: psutil reports none")
        cpus = logical
        if hasattr(os, "sched_getaffinity"):  # Linux; elsewhere there is no affinity to respect
            try:
                cpus = min(cpus, len(os.sched_getaffinity(0)) or cpus)
            except OSError as exc:
                log.debug("cannot read CPU affinity, using %d logical CPUs: %s", cpus, exc)
        quota = self._cpu_limit()
        if quota is not None:
            cpus = min(cpus, max(1, math.floor(quota)))
        return cpus

    def _memory_mib(self) -> int:
        try:
            total = psutil.virtual_memory().total
        except (OSError, psutil.Error) as exc:
            raise HostProbeError(f"cannot read memory size: {exc}") from exc
        return int(total // _MIB)

    # -- GPUs -------------------------------------------------------------------------

    def _gpus(self) -> tuple[tuple[GpuDevice, ...], str]:
        gpus = self._nvml_gpus()
        if gpus is not None:
            return gpus, "nvml"
        gpus = self._nvidia_smi_gpus()
        if gpus is not None:
            return gpus, "nvidia-smi"
        return (), "none"

    def _nvml_gpus(self) -> tuple[GpuDevice, ...] | None:
        if self._nvml_loader is None:
            return None
        try:
            nvml = self._nvml_loader()
        except (ImportError, OSError) as exc:
            log.debug("NVML unavailable: %s", exc)
            return None
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            log.debug("NVML unavailable: %s", exc)
            return None
        try:
            devices = []
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                devices.append(
                    GpuDevice(
                        index=index,
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        memory_mib=int(memory.total) // _MIB,
                    )
                )
            return tuple(devices)
        except nvml.NVMLError as exc:
            log.warning("NVML failed while listing GPUs, trying nvidia-smi: %s", exc)
            return None
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError as exc:
                log.debug("nvmlShutdown failed: %s", exc)

    def _nvidia_smi_gpus(self) -> tuple[GpuDevice, ...] | None:
        if self._nvidia_smi is None:
            return None
        command = shutil.which(self._nvidia_smi)
        if command is None:
            return None
        try:
            output = self._run_command([command, *NVIDIA_SMI_ARGS], NVIDIA_SMI_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:  # ValueError: undecodable output
            log.warning("%s failed, reporting no GPUs: %s", command, exc)
            return None
        gpus = parse_nvidia_smi(output)
        if gpus is None:
            log.warning("%s printed output that does not parse, reporting no GPUs: %r", command, output[:200])
        return gpus


def parse_nvidia_smi(output: str) -> tuple[GpuDevice, ...] | None:
    """GPUs from ``nvidia-smi --query-gpu=index,uuid,name,memory.total`` CSV (no header, no
    units), or None if any line does not parse: a partial list would hand out wrong ids."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4:
            return None
        index, uuid, memory = fields[0], fields[1], fields[-1]
        name = ", ".join(fields[2:-1])  # a name with a comma in it survives
        if not (index.isdigit() and memory.isdigit() and uuid and name):
            return None
        gpus.append(GpuDevice(index=int(index), uuid=uuid, name=name, memory_mib=int(memory)))
    return tuple(gpus)


def _text(value: str | bytes) -> str:
    """pynvml returned bytes before version 11.5 and str since."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def cgroup_cpu_limit(
    cgroup_root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """This process's cgroup CPU quota in CPUs (``cpu.max`` on cgroup v2, CFS quota on v1),
    or None when there is none or it cannot be read (then the other limits decide)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if hierarchy == "0" and controllers == "":  # cgroup v2
            for directory in (cgroup_root / relative, cgroup_root):
                quota = _read_fields(directory / "cpu.max")
                if quota is not None and len(quota) == 2 and quota[0] != "max":
                    return _ratio(quota[0], quota[1])
        elif "cpu" in controllers.split(","):  # cgroup v1
            for directory in (cgroup_root / "cpu" / relative, cgroup_root / "cpu"):
                quota = _read_fields(directory / "cpu.cfs_quota_us")
                period = _read_fields(directory / "cpu.cfs_period_us")
                if quota and period and quota[0] != "-1":
                    return _ratio(quota[0], period[0])
    return None


def _read_fields(path: Path) -> list[str] | None:
    try:
        return path.read_text().split()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        value = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 else None


class NvmlGpuMeter:
    """GPU utilisation through NVML (``GpuMeter``): initialised on first use and kept open;
    with no NVML (no driver, no GPU) every reading is None."""

    def __init__(self, nvml_loader: Callable[[], Nvml] | None = load_pynvml) -> None:
        self._loader = nvml_loader
        self._nvml: Nvml | None = None
        self._tried = False

    def utilization(self, device_ids: tuple[str, ...]) -> float | None:
        """The mean utilisation (percent) of the devices (ids: their indexes); None when
        none can be read."""
        nvml = self._open()
        if nvml is None or not device_ids:
            return None
        readings = []
        for device_id in device_ids:
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(int(device_id))
                readings.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            except (ValueError, nvml.NVMLError) as exc:
                log.debug("GPU %s: no utilisation reading: %s", device_id, exc)
        return sum(readings) / len(readings) if readings else None

    def _open(self) -> Nvml | None:
        if not self._tried:
            self._tried = True
            if self._loader is None:
                return None
            try:
                nvml = self._loader()
                nvml.nvmlInit()
            except Exception as exc:  # ImportError, OSError, NVMLError: no NVML here
                log.debug("NVML unavailable for GPU utilisation: %s", exc)
                return None
            self._nvml = nvml
        return self._nvml
