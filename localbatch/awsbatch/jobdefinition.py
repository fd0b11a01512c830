"""The job definition in AWS's words: RegisterJobDefinition requests, both ways.

``to_register_request`` writes the body AWS Batch's RegisterJobDefinition takes (camelCase,
``resourceRequirements`` values as strings, ``action`` upper-case); ``from_register_request``
reads one back, or one entry of a DescribeJobDefinitions response, checks it with botocore's
model and then with the same rules as a TOML file (``jobdef.parse_document``).

For every definition ``jobdef`` produces without inputs/outputs the round trip is lossless:
``from_register_request(to_register_request(d, strict=False), source) == d``.

Not in an exported request: ``inputs``, ``outputs`` and ``s3_access``, localbatch's own
settings (AWS has no field for them; on AWS Batch the job's code reads and writes S3 itself).
Between localbatch's client and its daemon they travel in one extra member, ``localbatch``
(``LOCAL_MEMBER``: the file's keys as written there, ``jobdef.local_only``), which
``to_register_request(..., local=True)`` writes and ``from_register_request`` reads. AWS's
own clients neither send it nor mind it in a DescribeJobDefinitions answer.

``strict=True`` (the default) refuses what AWS Batch would refuse but localbatch runs
(``core.portability``): timeouts under 60 s, fractional vCPUs on EC2, and for FARGATE a
missing execution role, a vCPU/memory pair Fargate does not offer, a log driver other than
awslogs/splunk, ``privileged``. Also more than one platform capability: AWS documents one
value, and what it does with two is unverified, so export does not risk it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch._request_reader import RequestReader, unsupported_parts
from localbatch.core import portability
from localbatch.core.definition import FargateSettings, JobDefinition, NodeProperties
from localbatch.core.resources import Resources
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec, LinuxParameters
from localbatch.errors import JobDefinitionError, Problem
from localbatch.validation import describe

__all__ = [
    "as_register_request",
    "container_properties",
    "from_register_request",
    "node_properties",
    "to_register_request",
]

_DESCRIBE_ONLY = ("jobDefinitionArn", "revision", "status", "containerOrchestrationType")
LOCAL_MEMBER = "localbatch"


def as_register_request(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeJobDefinitions entry without what only Describe adds: the request it came from."""
    return {k: v for k, v in entry.items() if k not in _DESCRIBE_ONLY}


# -- export --------------------------------------------------------------------------------
def to_register_request(
    definition: JobDefinition, *, strict: bool = True, source: str | None = None, local: bool = False
) -> dict[str, Any]:
    """The RegisterJobDefinition request body. With ``strict`` refuse what AWS would refuse
    (``core.portability``); ``source`` names the definition in that error. With ``local`` add
    localbatch's own settings (``LOCAL_MEMBER``), for localbatch's daemon."""
    if strict:
        problems = portability.definition_problems(definition)
        if problems:
            raise JobDefinitionError(source or f"job definition {definition.name!r}", problems)
    d = definition
    request: dict[str, Any] = {"jobDefinitionName": d.name, "type": d.type}
    if d.parameters:
        request["parameters"] = dict(d.parameters)
    if d.scheduling_priority is not None:
        request["schedulingPriority"] = d.scheduling_priority
    if d.node_properties is not None:
        request["nodeProperties"] = node_properties(d, d.node_properties)
    else:
        props = container_properties(d.container)
        props.update(_job_wide(d))
        if d.fargate is not None:
            props.update(_fargate(d.fargate))
        request["containerProperties"] = props
    if d.retry_strategy != RetryStrategy():
        request["retryStrategy"] = retry_strategy(d.retry_strategy)
    if d.propagate_tags:
        request["propagateTags"] = True
    if d.timeout_s is not None:
        request["timeout"] = {"attemptDurationSeconds": d.timeout_s}
    if d.tags:
        request["tags"] = dict(d.tags)
    request["platformCapabilities"] = [p.value for p in d.platform_capabilities]
    extension = jobdef.local_only(jobdef.to_document(d)) if local else {}
    if extension:
        request[LOCAL_MEMBER] = extension
    return request


def _job_wide(d: JobDefinition) -> dict[str, Any]:
    """The containerProperties members a localbatch file keeps once per job."""
    props: dict[str, Any] = {}
    if d.job_role_arn is not None:
        props["jobRoleArn"] = d.job_role_arn
    if d.execution_role_arn is not None:
        props["executionRoleArn"] = d.execution_role_arn
    if d.log_configuration is not None:
        props["logConfiguration"] = {"logDriver": d.log_configuration.log_driver}
        if d.log_configuration.options:
            props["logConfiguration"]["options"] = dict(d.log_configuration.options)
    return props


def node_properties(d: JobDefinition, props: NodeProperties) -> dict[str, Any]:
    """AWS's ``nodeProperties``: each range's container carries the job-wide members too."""
    ranges = []
    for entry in props.node_range_properties:
        item: dict[str, Any] = {
            "targetNodes": entry.target_nodes,
            "container": {**container_properties(entry.container), **_job_wide(d)},
        }
        if entry.instance_types:
            item["instanceTypes"] = list(entry.instance_types)
        ranges.append(item)
    return {"numNodes": props.num_nodes, "mainNode": props.main_node, "nodeRangeProperties": ranges}


def container_properties(container: ContainerSpec) -> dict[str, Any]:
    """The parts of ``containerProperties`` a ``ContainerSpec`` holds (also the core of
    DescribeJobs' ``container``)."""
    c = container
    props: dict[str, Any] = {"image": c.image}
    if c.command:
        props["command"] = list(c.command)
    if c.volumes:
        props["volumes"] = [
            {"name": v.name, **({"host": {"sourcePath": v.host_source_path}} if v.host_source_path else {})}
            for v in c.volumes
        ]
    if c.environment:
        props["environment"] = [{"name": k, "value": v} for k, v in c.environment.items()]
    if c.mount_points:
        props["mountPoints"] = [
            {"sourceVolume": m.source_volume, "containerPath": m.container_path, "readOnly": m.read_only}
            for m in c.mount_points
        ]
    if c.readonly_root_filesystem:
        props["readonlyRootFilesystem"] = True
    if c.privileged:
        props["privileged"] = True
    if c.ulimits:
        props["ulimits"] = [{"name": u.name, "softLimit": u.soft_limit, "hardLimit": u.hard_limit} for u in c.ulimits]
    if c.user is not None:
        props["user"] = c.user
    props["resourceRequirements"] = resource_requirements(c.resources)
    if c.linux_parameters != LinuxParameters():
        props["linuxParameters"] = _linux_parameters(c.linux_parameters)
    return props


def resource_requirements(resources: Resources) -> list[dict[str, str]]:
    """VCPU, MEMORY and (when not 0) GPU, with string values as AWS takes them."""
    vcpus = float(resources.vcpus)
    requirements = [
        {"type": "VCPU", "value": str(int(vcpus)) if vcpus.is_integer() else repr(vcpus)},
        {"type": "MEMORY", "value": str(resources.memory_mib)},
    ]
    if resources.gpus:
        requirements.append({"type": "GPU", "value": str(resources.gpus)})
    return requirements


def retry_strategy(strategy: RetryStrategy) -> dict[str, Any]:
    """AWS's ``retryStrategy``: attempts, and the rules with ``action`` upper-case."""
    body: dict[str, Any] = {"attempts": strategy.attempts}
    rules = []
    for rule in strategy.evaluate_on_exit:
        fields = (
            ("onStatusReason", rule.on_status_reason),
            ("onReason", rule.on_reason),
            ("onExitCode", rule.on_exit_code),
        )
        rules.append({**{k: v for k, v in fields if v is not None}, "action": rule.action.value})
    if rules:
        body["evaluateOnExit"] = rules
    return body


def _linux_parameters(linux: LinuxParameters) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if linux.devices:
        body["devices"] = [
            {
                "hostPath": d.host_path,
                **({"containerPath": d.container_path} if d.container_path is not None else {}),
                **({"permissions": list(d.permissions)} if d.permissions else {}),
            }
            for d in linux.devices
        ]
    optional = {
        "initProcessEnabled": linux.init_process_enabled,
        "sharedMemorySize": linux.shared_memory_size_mib,
        "maxSwap": linux.max_swap_mib,
        "swappiness": linux.swappiness,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if linux.tmpfs:
        body["tmpfs"] = [
            {
                "containerPath": t.container_path,
                "size": t.size_mib,
                **({"mountOptions": list(t.mount_options)} if t.mount_options else {}),
            }
            for t in linux.tmpfs
        ]
    return body


def _fargate(fargate: FargateSettings) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if fargate.assign_public_ip is not None:
        props["networkConfiguration"] = {"assignPublicIp": fargate.assign_public_ip}
    if fargate.platform_version is not None:
        props["fargatePlatformConfiguration"] = {"platformVersion": fargate.platform_version}
    if fargate.ephemeral_storage_gib is not None:
        props["ephemeralStorage"] = {"sizeInGiB": fargate.ephemeral_storage_gib}
    runtime = {
        "operatingSystemFamily": fargate.operating_system_family,
        "cpuArchitecture": fargate.cpu_architecture,
    }
    if any(v is not None for v in runtime.values()):
        props["runtimePlatform"] = {k: v for k, v in runtime.items() if v is not None}
    return props


# -- import --------------------------------------------------------------------------------
def from_register_request(request: Mapping[str, Any], source: str) -> JobDefinition:
    """A definition from a RegisterJobDefinition request or a DescribeJobDefinitions entry.

    botocore's model checks the shape first; then parts localbatch cannot run are refused,
    and the rest goes through the TOML rules. Every problem names its camelCase path.
    """
    if not isinstance(request, Mapping):
        found = describe(request, json=True)
        raise JobDefinitionError(source, [Problem("", f"expected a JSON object (a job definition), got {found}")])
    body = as_register_request(request)
    extension = body.pop(LOCAL_MEMBER, {})
    if not isinstance(extension, Mapping):
        found = describe(extension, json=True)
        raise JobDefinitionError(source, [Problem(LOCAL_MEMBER, f"expected a JSON object, got {found}")])
    problems = model.validate_request("RegisterJobDefinition", body)
    if problems:
        raise JobDefinitionError(source, problems)
    reader = RequestReader()
    document = reader.read(body)
    problems = unsupported_parts(body) + reader.problems
    if problems:
        raise JobDefinitionError(source, problems)
    try:
        return jobdef.parse_document(jobdef.with_local_only(document, extension), source)
    except JobDefinitionError as exc:
        raise JobDefinitionError(
            source, [Problem(_aws_path(reader, p.path), p.message) for p in exc.problems]
        ) from None


def _aws_path(reader: RequestReader, path: str) -> str:
    """Where a problem is in the request: a localbatch-only key's path under ``LOCAL_MEMBER``."""
    if path.split(".")[0].split("[")[0] in jobdef.LOCAL_ONLY_KEYS:
        return f"{LOCAL_MEMBER}.{path}"
    return reader.aws_path(path)
