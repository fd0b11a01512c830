"""A HostProbe that reports whatever inventory the test gives it."""

from __future__ import annotations

from localbatch.core.inventory import GpuDevice, HostInventory
from localbatch.errors import HostProbeError


class FakeHostProbe:
    def __init__(self, inventory: HostInventory | None = None, *, failing: bool = False) -> None:
        self.inventory = inventory if inventory is not None else HostInventory(cpus=4, memory_mib=8192)
        self.failing = failing  # True: probe() raises HostProbeError, as when psutil cannot read
        self.probes = 0  # how many times probe() was called

    # -- called by the code under test ------------------------------------------------

    def probe(self) -> HostInventory:
        self.probes += 1
        if self.failing:
            raise HostProbeError("fake host: cannot read CPUs")
        return self.inventory

    # -- called by tests --------------------------------------------------------------

    @classmethod
    def with_gpus(cls, count: int, *, cpus: int = 8, memory_mib: int = 32768) -> FakeHostProbe:
        """A host with ``count`` identical GPUs indexed 0..count-1, as NVML would list them."""
        gpus = tuple(
            GpuDevice(index=i, uuid=f"GPU-fake-{i:04d}", name="Fake GPU", memory_mib=16384) for i in range(count)
        )
        source = "nvml" if count else "none"
        return cls(HostInventory(cpus=cpus, memory_mib=memory_mib, gpus=gpus, gpu_source=source))
