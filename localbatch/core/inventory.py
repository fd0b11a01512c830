"""What the host has (CPUs, memory, GPUs), and the capacity localbatch may hand out.

The host adapter reads the numbers; this module only does arithmetic on them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from localbatch.core.infra import ComputeEnvironment, State
from localbatch.core.resources import Resources
from localbatch.core.spot import SpotRehearsal


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


def environment_on(
    host: HostInventory,
    reserve: Reserve,
    *,
    name: str,
    max_vcpus: float | None = None,
    max_memory_mib: int | None = None,
    gpu_ids: tuple[str, ...] | None = None,
    state: State = State.ENABLED,
    spot: SpotRehearsal | None = None,
) -> ComputeEnvironment:
    """A compute environment on this host; what is not given is the host's, minus the reserve."""
    whole = capacity(host, reserve)
    return ComputeEnvironment(
        name=name,
        max_vcpus=whole.vcpus if max_vcpus is None else max_vcpus,
        max_memory_mib=whole.memory_mib if max_memory_mib is None else max_memory_mib,
        gpu_ids=tuple(g.device_id for g in host.gpus) if gpu_ids is None else gpu_ids,
        state=state,
        spot=spot,
    )


def unknown_gpus(present: Collection[str], environment: ComputeEnvironment) -> list[str]:
    """The environment's GPU ids that are not among ``present`` (the host's device ids)."""
    return [g for g in environment.gpu_ids if g not in present]
