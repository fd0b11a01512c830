"""Resource vectors (vCPU, memory MiB, GPUs) and the fit check that names what ran out.

Pure: no I/O. ``shortfall`` is Nomad's ``AllocsFit`` idea: a fit check that says *which*
resource was short and by how much, so a waiting or rejected job can tell the user why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# vCPU arithmetic is done in thousandths so 0.1 + 0.2 packs like the user expects.
_MILLI = 1000
MIN_VCPUS = 1 / _MILLI
MIN_MEMORY_MIB = 4  # AWS's minimum MEMORY requirement
AWS_INT_MAX = 2**31 - 1  # AWS's Integer is 32-bit


def _milli(vcpus: float) -> int:
    return round(vcpus * _MILLI)


@dataclass(frozen=True, slots=True)
class Resources:
    """What a job asks for, or what a compute environment has.

    ``vcpus`` may be fractional locally (AWS EC2 wants whole numbers; export says so);
    ``memory_mib`` is MiB as AWS's MEMORY requirement; ``gpus`` is a count of whole devices.
    """

    vcpus: float
    memory_mib: int
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            vcpus=(_milli(self.vcpus) + _milli(other.vcpus)) / _MILLI,
            memory_mib=self.memory_mib + other.memory_mib,
            gpus=self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            vcpus=(_milli(self.vcpus) - _milli(other.vcpus)) / _MILLI,
            memory_mib=self.memory_mib - other.memory_mib,
            gpus=self.gpus - other.gpus,
        )

    def fits_within(self, available: Resources) -> bool:
        return shortfall(self, available) is None


@dataclass(frozen=True, slots=True)
class Shortfall:
    """The first resource that does not fit: what was asked and what there is."""

    resource: str  # "vcpus" | "memory_mib" | "gpus"
    requested: float
    available: float

    def __str__(self) -> str:
        unit = {"vcpus": "vCPU", "memory_mib": "MiB memory", "gpus": "GPU"}[self.resource]
        return f"needs {_num(self.requested)} {unit}, {_num(self.available)} {unit} available"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def shortfall(requested: Resources, available: Resources) -> Shortfall | None:
    """The first dimension in which ``requested`` exceeds ``available``, or None if it fits.

    Checked in the order GPUs, vCPU, memory: the scarcest resource is the most useful
    thing to report.
    """
    if requested.gpus > available.gpus:
        return Shortfall("gpus", requested.gpus, available.gpus)
    if _milli(requested.vcpus) > _milli(available.vcpus):
        return Shortfall("vcpus", requested.vcpus, available.vcpus)
    if requested.memory_mib > available.memory_mib:
        return Shortfall("memory_mib", requested.memory_mib, available.memory_mib)
    return None


# The checks a vCPU, memory or GPU request must pass, wherever it comes from (a TOML file, a
# command-line override, an API request): each returns what is wrong, or None.


def vcpus_problem(value: float) -> str | None:
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if value <= 0:
        return f"must be greater than 0, got {value:g}"
    if value < MIN_VCPUS:
        return f"must be at least {MIN_VCPUS:g} (localbatch counts vCPUs in thousandths), got {value:g}"
    if value > AWS_INT_MAX:
        return f"must be at most {AWS_INT_MAX}, got {value:g}"
    return None


def memory_mib_problem(value: int) -> str | None:
    if value < MIN_MEMORY_MIB:
        return f"must be at least {MIN_MEMORY_MIB} MiB, got {value}"
    if value > AWS_INT_MAX:
        return f"must be at most {AWS_INT_MAX} (AWS's largest integer), got {value}"
    return None


def gpus_problem(value: int) -> str | None:
    if value < 0:
        return f"must be 0 or more, got {value}"
    if value > AWS_INT_MAX:
        return f"must be at most {AWS_INT_MAX} (AWS's largest integer), got {value}"
    return None
