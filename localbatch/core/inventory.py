"""What the host has (CPUs, memory, GPUs), and the capacity localbatch may hand out.

The host adapter reads the numbers; this module only does arithmetic on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from localbatch.core.resources import Resources


@dataclass(frozen=True)
class GpuDevice:
    index: int
    uuid: str
    name: str
    memory_mib: int

    @property
    def device_id(self) -> str:
        """The id Docker's device requests take (``--gpus device=<id>``)."""
        return str(self.index)


@dataclass(frozen=True)
class HostInventory:
    cpus: int  # logical CPUs
    memory_mib: int
    gpus: tuple[GpuDevice, ...] = ()
    gpu_source: str = "none"  # "nvml" | "nvidia-smi" | "none"


@dataclass(frozen=True)
class Reserve:
    """What is kept back for the host itself (the ECS agent keeps 32 MiB on AWS's AMI)."""

    vcpus: float = 0
    memory_mib: int = 0


def capacity(host: HostInventory, reserve: Reserve) -> Resources:
    """The compute environment ``local``: the whole host minus the reserve (never negative)."""
    return Resources(
        vcpus=max(host.cpus - reserve.vcpus, 0),
        memory_mib=max(host.memory_mib - reserve.memory_mib, 0),
        gpus=len(host.gpus),
    )
