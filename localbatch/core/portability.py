"""What AWS Batch would refuse although localbatch runs it.

localbatch relaxes a few AWS rules so users can iterate quickly (a 5-second timeout to test
timeouts, half a vCPU on a laptop). These functions list what a definition, or a job after
its overrides, would need to change to run unchanged on AWS Batch. ``validate`` shows them,
``validate --strict`` and ``export`` refuse them, ``run`` warns about them.
"""

from __future__ import annotations

from collections.abc import Collection

from localbatch.core.definition import AWS_MIN_TIMEOUT_S, JobDefinition, PlatformCapability
from localbatch.errors import Problem

RELAXED = "localbatch runs it, but AWS Batch would refuse it"
# Fargate's vCPU -> memory (MiB) pairs, from the ResourceRequirement docs in botocore's model.
FARGATE_MEMORY_MIB: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4096 + 1, 1024)),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
    32: (61440, 122880, 249856),
}
FARGATE_LOG_DRIVERS = ("awslogs", "splunk")


def timeout_problem(timeout_s: int | None) -> Problem | None:
    """A timeout under AWS's minimum of 60 s: it runs locally (the attempt is stopped after
    ``timeout_s`` seconds of RUNNING), but AWS Batch refuses it."""
    if timeout_s is None or timeout_s >= AWS_MIN_TIMEOUT_S:
        return None
    return Problem(
        "timeout.attempt_duration_seconds",
        f"{timeout_s} is below AWS Batch's minimum of {AWS_MIN_TIMEOUT_S} seconds; {RELAXED}",
    )


def job_problems(*, timeout_s: int | None, vcpus: float, platform_capabilities: Collection[str]) -> list[Problem]:
    """The rules a submission's overrides can break: the timeout and the vCPU count."""
    short = timeout_problem(timeout_s)
    problems = [] if short is None else [short]
    if PlatformCapability.EC2.value in platform_capabilities and not float(vcpus).is_integer():
        problems.append(
            Problem(
                "resources.vcpus",
                f"{vcpus:g} is fractional, and AWS Batch on EC2 takes whole vCPUs; {RELAXED}",
            )
        )
    return problems


def definition_problems(definition: JobDefinition) -> list[Problem]:
    """Every rule of AWS Batch's that this definition breaks."""
    d = definition
    capabilities = [p.value for p in d.platform_capabilities]
    problems = job_problems(
        timeout_s=d.timeout_s, vcpus=d.container.resources.vcpus, platform_capabilities=capabilities
    )
    if d.node_properties is not None:  # every node range's vCPUs, named by its range
        problems = [p for p in problems if p.path != "resources.vcpus"]
        for index, entry in enumerate(d.node_properties.node_range_properties):
            found = job_problems(
                timeout_s=None, vcpus=entry.container.resources.vcpus, platform_capabilities=capabilities
            )
            at = f"node_properties.node_range_properties[{index}]."
            problems += [Problem(at + p.path, p.message) for p in found]
    if len(capabilities) > 1:
        problems.append(
            Problem(
                "platform_capabilities",
                "AWS Batch takes one platform per job definition; list one for export",
            )
        )
    if PlatformCapability.FARGATE in d.platform_capabilities:
        problems += _fargate_problems(d)
    return problems


def _fargate_problems(d: JobDefinition) -> list[Problem]:
    vcpus, memory_mib = float(d.container.resources.vcpus), d.container.resources.memory_mib
    problems = []
    if d.execution_role_arn is None:
        problems.append(
            Problem("execution_role_arn", f"AWS Batch requires an execution role for FARGATE jobs; {RELAXED}")
        )
    if memory_mib not in FARGATE_MEMORY_MIB.get(vcpus, ()):
        if vcpus in FARGATE_MEMORY_MIB:
            allowed = ", ".join(str(m) for m in FARGATE_MEMORY_MIB[vcpus])
            what = f"with vcpus = {vcpus:g} Fargate offers memory_mib {allowed}"
        else:
            what = "Fargate offers vcpus " + ", ".join(f"{v:g}" for v in FARGATE_MEMORY_MIB)
        problems.append(
            Problem(
                "resources",
                f"{vcpus:g} vCPU with {memory_mib} MiB is not a Fargate size ({what}); {RELAXED}",
            )
        )
    if d.log_configuration is not None and d.log_configuration.log_driver not in FARGATE_LOG_DRIVERS:
        problems.append(
            Problem(
                "log_configuration.log_driver",
                f'FARGATE jobs may only use "awslogs" or "splunk", got "{d.log_configuration.log_driver}"',
            )
        )
    if d.container.privileged:
        problems.append(Problem("privileged", f"AWS Batch does not allow privileged FARGATE jobs; {RELAXED}"))
    for index, volume in enumerate(d.container.volumes):
        if volume.host_source_path is not None:
            problems.append(
                Problem(f"volumes[{index}].host_source_path", f"FARGATE jobs cannot mount host paths; {RELAXED}")
            )
    return problems
