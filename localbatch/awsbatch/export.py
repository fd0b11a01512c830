"""From localbatch to AWS Batch: the export plan every output format and deploy start from.

``build_plan`` turns checked job definition documents and, when asked, the configured
scheduling policies, compute environments and job queues into AWS Batch requests
(CreateSchedulingPolicy, CreateComputeEnvironment, CreateJobQueue, RegisterJobDefinition), in
the order AWS needs them created. That plan is the one canonical form: ``aws-json``,
CloudFormation, Terraform and ``deploy`` all render or send it (``awsbatch.templates``,
``awsbatch.deploy``).

Two kinds of leaf may stand in a request where a plain value will go:

- ``CloudValue``: a value only the cloud has (subnets, security groups, roles, instance
  types), taken from the config's ``[aws]`` table (``cloud_settings``). CloudFormation makes
  each a parameter and Terraform a variable, with the configured value as default; the JSON
  export and deploy need every one set, and say which are missing and where to set them.
- ``Ref``: another object of the plan (a queue's compute environments and scheduling
  policy), which becomes its ARN once created (``!Ref`` / ``.arn`` / what AWS answered).

Every request is checked with botocore's model (``model.validate_request``) and with the rules
AWS enforces that the model does not encode (``core.portability``: timeouts of at least 60 s,
Fargate's vCPU/memory pairs; payload under 24 KiB; a queue's environments of one kind; AWS's
600 s minimum for a queue's time limit actions). Those are errors (``ExportError``).

What runs locally but changes in the cloud is a warning that says what changes: staged
inputs and outputs (nothing stages them on AWS), a fractional vCPU count on EC2 (rounded up:
EC2 takes whole vCPUs), a host volume (a path on the instance, not on this machine), a Spot
rehearsal (reclaims come from EC2), local GPUs behind instance types without any. ``strict``
makes them errors.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch.infra import policy_request, queue_request
from localbatch.awsbatch.jobdefinition import request_from_document
from localbatch.cloud_settings import CloudSettings, EnvironmentCloud
from localbatch.config import EnvironmentSettings, Settings
from localbatch.core import portability, queue_limits
from localbatch.core.definition import JobDefinition, PlatformCapability
from localbatch.core.infra import JobQueue
from localbatch.errors import ExportError

__all__ = [
    "OPERATIONS",
    "CloudObject",
    "CloudPlan",
    "CloudValue",
    "Kind",
    "Ref",
    "build_plan",
]

Kind = Literal["scheduling_policy", "compute_environment", "job_queue", "job_definition"]
OPERATIONS: Mapping[Kind, str] = {
    "scheduling_policy": "CreateSchedulingPolicy",
    "compute_environment": "CreateComputeEnvironment",
    "job_queue": "CreateJobQueue",
    "job_definition": "RegisterJobDefinition",
}
MAX_DEFINITION_BYTES = 24 * 1024  # AWS Batch's job definition payload quota
_FARGATE_TYPES = ("FARGATE", "FARGATE_SPOT")
# Instance families with NVIDIA (or other accelerator) GPUs that AWS Batch can schedule GPUs on.
_GPU_FAMILY = re.compile(r"^(p\d|g\d|gr\d)")


@dataclass(frozen=True)
class CloudValue:
    """A value only the cloud has. ``key`` is unique in a plan (``subnets``, ``gpu_subnets``);
    ``setting`` says where in the config to give it; ``value`` is None when nobody did."""

    key: str
    description: str
    setting: str
    value: str | tuple[str, ...] | None = None
    is_list: bool = False


@dataclass(frozen=True)
class Ref:
    """Another object of the plan; its ARN once it exists."""

    kind: Kind
    name: str


@dataclass(frozen=True)
class CloudObject:
    kind: Kind
    name: str
    source: str  # the file or config table it comes from, for messages
    request: Mapping[str, Any]  # may hold CloudValue and Ref leaves

    @property
    def operation(self) -> str:
        return OPERATIONS[self.kind]


@dataclass(frozen=True)
class CloudPlan:
    """What goes to AWS Batch, in creation order: policies, environments, queues, definitions."""

    objects: tuple[CloudObject, ...]
    cloud: CloudSettings = CloudSettings()  # the [aws] table the plan was made with
    warnings: tuple[str, ...] = ()

    def of_kind(self, kind: Kind) -> list[CloudObject]:
        return [o for o in self.objects if o.kind == kind]

    @property
    def values(self) -> list[CloudValue]:
        """Every cloud-only value the requests use, once each, in order of first use."""
        found: dict[str, CloudValue] = {}
        for obj in self.objects:
            for leaf in _leaves(obj.request):
                if isinstance(leaf, CloudValue):
                    found.setdefault(leaf.key, leaf)
        return list(found.values())

    def missing(self) -> list[CloudValue]:
        return [v for v in self.values if v.value is None]

    def users(self, leaf: CloudValue | Ref) -> list[CloudObject]:
        """The objects whose requests hold ``leaf``."""
        return [o for o in self.objects if any(found == leaf for found in _leaves(o.request))]

    def missing_problems(self) -> list[str]:
        """One line per missing value: what it is, who needs it, where to set it."""
        lines = []
        for value in self.missing():
            who = ", ".join(f"{o.kind.replace('_', ' ')} {o.name!r}" for o in self.users(value))
            lines.append(f"{value.setting}: needed ({value.description}) by {who}")
        return lines

    def resolved(self, arn: Callable[[Ref], str]) -> list[tuple[CloudObject, dict[str, Any]]]:
        """Each object with its request made plain: values filled in, references as ARNs.
        ``ExportError`` when a cloud-only value is missing (nothing is half-resolved)."""
        self.check_complete()
        return [(obj, self.plain_request(obj, arn)) for obj in self.objects]

    def check_complete(self) -> None:
        """``ExportError`` listing every missing cloud-only value, if any is."""
        problems = self.missing_problems()
        if problems:
            raise ExportError(problems)

    def plain_request(self, obj: CloudObject, arn: Callable[[Ref], str]) -> dict[str, Any]:
        """``obj``'s request with values filled in and references as ``arn`` names them (for
        deploy, one object at a time, as the ARNs of the earlier ones become known)."""
        return dict(_substitute(obj.request, arn))


# -- building ------------------------------------------------------------------------------
def build_plan(
    documents: Sequence[tuple[str, Mapping[str, Any]]],
    cloud: CloudSettings,
    *,
    infrastructure: Settings | None = None,
    strict: bool = False,
) -> CloudPlan:
    """The plan for job definition documents (``(source, document)``, already checked) and,
    with ``infrastructure``, its scheduling policies, compute environments and queues.
    ``ExportError`` lists every rule broken (with ``strict``, every warning too)."""
    objects: list[CloudObject] = []
    problems: list[str] = []
    warnings: list[str] = []
    if infrastructure is not None:
        where = cloud.where
        for policy in infrastructure.scheduling_policies:
            objects.append(CloudObject("scheduling_policy", policy.name, where, policy_request(policy)))
        kinds: dict[str, str] = {}
        for environment in infrastructure.compute_environments:
            request, kind = _environment_request(environment, cloud, problems, warnings)
            kinds[environment.name] = kind
            objects.append(CloudObject("compute_environment", environment.name, where, request))
        for queue in infrastructure.job_queues:
            problems += _queue_problems(queue, kinds, where)
            request = queue_request(
                queue, lambda name: Ref("compute_environment", name), lambda name: Ref("scheduling_policy", name)
            )
            objects.append(CloudObject("job_queue", queue.name, where, request))
    names: dict[str, str] = {}
    for source, document in documents:
        definition = jobdef.parse_document(document, source)
        if definition.name in names:
            problems.append(f"{source}: name: {definition.name!r} is also the name of {names[definition.name]}")
        names.setdefault(definition.name, source)
        request = _definition_request(source, document, definition, cloud, problems, warnings)
        objects.append(CloudObject("job_definition", definition.name, source, request))
    for obj in objects:
        stand_in = _substitute(obj.request, lambda ref: f"arn:aws:batch:us-east-1:000000000000:{ref.name}")
        problems += [
            f"{obj.source}: {obj.operation} {obj.name}: {p}" for p in model.validate_request(obj.operation, stand_in)
        ]
    if strict:
        problems += [f"{w} (--strict)" for w in warnings]
    if problems:
        raise ExportError(problems)
    return CloudPlan(tuple(objects), cloud, tuple(warnings))


def _definition_request(
    source: str,
    document: Mapping[str, Any],
    definition: JobDefinition,
    cloud: CloudSettings,
    problems: list[str],
    warnings: list[str],
) -> dict[str, Any]:
    d = definition
    fargate = PlatformCapability.FARGATE in d.platform_capabilities
    for problem in portability.definition_problems(d):
        if problem.path.endswith("resources.vcpus"):
            continue  # rounded up below, with a warning
        if problem.path == "execution_role_arn":
            continue  # a cloud-only value: [aws] execution_role_arn, or a template parameter
        problems.append(f"{source}: {problem}")
    request = request_from_document(document)
    for key in jobdef.LOCAL_ONLY_KEYS:
        if key in document:
            warnings.append(f"{source}: {key}: {_LOCAL_ONLY[key]}")
    for name in document.get("consumable_resources", {}):
        warnings.append(
            f"{source}: consumable_resources.{name}: exported by name; the consumable resource {name} must "
            "exist in the account (aws batch create-consumable-resource), which export does not create"
        )
    for path, container in _containers(request):
        for requirement in container.get("resourceRequirements", []):
            if requirement["type"] == "VCPU" and not fargate and not float(requirement["value"]).is_integer():
                whole = math.ceil(float(requirement["value"]))
                warnings.append(
                    f"{source}: {path}resources.vcpus: {requirement['value']} vCPU becomes {whole} in the cloud "
                    "(AWS Batch on EC2 takes whole vCPUs)"
                )
                requirement["value"] = str(whole)
        for volume in container.get("volumes", []):
            host = volume.get("host", {}).get("sourcePath")
            if host and not fargate:  # on FARGATE, portability refuses it
                warnings.append(
                    f"{source}: {path}volumes: {volume['name']!r} mounts {host}; in the cloud that is a path "
                    "on the EC2 instance, not on this machine"
                )
        if "jobRoleArn" not in container and cloud.job_role_arn is not None:
            container["jobRoleArn"] = _role(cloud, "job_role_arn")
        if fargate and "executionRoleArn" not in container:
            container["executionRoleArn"] = _role(cloud, "execution_role_arn")
        elif "executionRoleArn" not in container and cloud.execution_role_arn is not None:
            container["executionRoleArn"] = _role(cloud, "execution_role_arn")
    size = len(json.dumps(_substitute(request, lambda ref: ref.name)).encode())
    if size > MAX_DEFINITION_BYTES:
        problems.append(
            f"{source}: the RegisterJobDefinition request is {size} bytes; AWS Batch takes at most "
            f"{MAX_DEFINITION_BYTES} (24 KiB)"
        )
    return request


_LOCAL_ONLY = {
    "inputs": "not exported: AWS Batch stages nothing, so in the cloud the job's code must read these "
    "objects from S3 itself",
    "outputs": "not exported: AWS Batch stages nothing, so in the cloud the job's code must write these "
    "objects to S3 itself",
    "s3_access": "not exported: in the cloud the job reaches S3 through its job role (job_role_arn), "
    "not localbatch's store",
}
_ROLES = {
    "job_role_arn": "the IAM role the job's containers assume",
    "execution_role_arn": "the IAM role ECS pulls images and writes logs with; FARGATE jobs need one",
}


def _role(cloud: CloudSettings, key: Literal["job_role_arn", "execution_role_arn"]) -> CloudValue:
    return CloudValue(
        key,
        _ROLES[key],
        f"{cloud.where}: [aws] {key} (or {key} in the job definition)",
        getattr(cloud, key),
    )


def _containers(request: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each container of a RegisterJobDefinition request, with the TOML prefix of its keys."""
    if "containerProperties" in request:
        yield "", request["containerProperties"]
    for index, entry in enumerate(request.get("nodeProperties", {}).get("nodeRangeProperties", [])):
        yield f"node_properties.node_range_properties[{index}].", entry["container"]


def _environment_request(
    environment: EnvironmentSettings, cloud: CloudSettings, problems: list[str], warnings: list[str]
) -> tuple[dict[str, Any], str]:
    """CreateComputeEnvironment for a local environment, and its cloud type."""
    name, own = environment.name, cloud.environment(environment.name)
    table = f"{cloud.where}: [aws.compute_environments.{name}]"
    kind = own.type or ("SPOT" if environment.spot is not None else "EC2")
    fargate = kind in _FARGATE_TYPES
    max_vcpus = own.max_vcpus
    if max_vcpus is None and environment.max_vcpus is not None:
        max_vcpus = math.ceil(environment.max_vcpus)
    if max_vcpus is None:
        problems.append(
            f"{table} max_vcpus: needed: compute environment {name!r} is this host's (no max_vcpus in the "
            "config), and AWS Batch needs a maximum"
        )
        max_vcpus = 1
    resources: dict[str, Any] = {"type": kind}
    if not fargate:
        resources["minvCpus"] = own.min_vcpus if own.min_vcpus is not None else 0
    resources["maxvCpus"] = max_vcpus
    if own.desired_vcpus is not None and not fargate:
        resources["desiredvCpus"] = own.desired_vcpus
    resources["subnets"] = _fleet_value(cloud, own, name, "subnets", "the VPC subnets the jobs run in")
    groups = _fleet_value(cloud, own, name, "security_group_ids", "the security groups of the jobs' network")
    if fargate or groups.value is not None:  # EC2 falls back to the VPC's default group
        resources["securityGroupIds"] = groups
    if fargate:
        for key in ("instance_types", "instance_role", "allocation_strategy", "bid_percentage", "min_vcpus"):
            if getattr(own, key) is not None:
                problems.append(f"{table} {key}: not for a {kind} compute environment")
    else:
        resources["instanceTypes"] = _fleet_value(
            cloud, own, name, "instance_types", "the EC2 instance types AWS Batch may launch", default=("optimal",)
        )
        resources["instanceRole"] = _fleet_value(
            cloud, own, name, "instance_role", "the ECS instance profile of the EC2 instances"
        )
        strategy = own.allocation_strategy or (
            "SPOT_PRICE_CAPACITY_OPTIMIZED" if kind == "SPOT" else "BEST_FIT_PROGRESSIVE"
        )
        resources["allocationStrategy"] = strategy
        if kind == "SPOT" and own.bid_percentage is not None:
            resources["bidPercentage"] = own.bid_percentage
        elif own.bid_percentage is not None:
            problems.append(f"{table} bid_percentage: for a SPOT compute environment only")
        if kind == "SPOT" and strategy == "BEST_FIT":
            resources["spotIamFleetRole"] = CloudValue(
                f"{_key(name)}_spot_iam_fleet_role",
                "the Spot Fleet role AWS needs for BEST_FIT Spot environments",
                f"{table} spot_iam_fleet_role",
                own.spot_iam_fleet_role,
            )
        types = resources["instanceTypes"].value or ()
        if environment.gpu_ids and not any(_GPU_FAMILY.match(t) for t in types):
            warnings.append(
                f"{table} instance_types: compute environment {name!r} has GPUs here, but "
                f"{', '.join(types)} has none in the cloud, so GPU jobs would wait there forever; "
                'name GPU types, e.g. instance_types = ["g5", "p4d"]'
            )
    if environment.spot is not None:
        rehearsal = environment.spot
        if rehearsal.interruption_rate or rehearsal.interrupt_after_s is not None:
            warnings.append(
                f"{cloud.where}: compute_environments {name!r}: the Spot reclaim rehearsal is not exported; "
                "in the cloud, EC2 reclaims Spot instances when it needs them back"
            )
    request: dict[str, Any] = {
        "computeEnvironmentName": name,
        "type": "MANAGED",
        "state": environment.state.value,
        "computeResources": resources,
    }
    service_role = own.service_role or cloud.defaults.service_role
    if service_role is not None:
        key = f"{_key(name)}_service_role" if own.service_role else "service_role"
        setting = f"{table} service_role" if own.service_role else f"{cloud.where}: [aws] service_role"
        request["serviceRole"] = CloudValue(key, "the AWS Batch service role", setting, service_role)
    return request, kind


def _fleet_value(
    cloud: CloudSettings,
    own: EnvironmentCloud,
    environment: str,
    key: Literal["subnets", "security_group_ids", "instance_types", "instance_role"],
    description: str,
    default: tuple[str, ...] | None = None,
) -> CloudValue:
    """A fleet value: the environment's own (a value of its own), else ``[aws]``'s (shared by
    every environment that gives none), else ``default``."""
    is_list = key != "instance_role"
    value = getattr(own, key)
    if value is not None:
        setting = f"{cloud.where}: [aws.compute_environments.{environment}] {key}"
        return CloudValue(f"{_key(environment)}_{key}", description, setting, value, is_list)
    setting = f"{cloud.where}: [aws] {key} (or [aws.compute_environments.NAME] {key} for one)"
    shared = getattr(cloud.defaults, key)
    return CloudValue(key, description, setting, shared if shared is not None else default, is_list)


def _key(name: str) -> str:
    """A name as part of a value's key: letters, digits and '_'."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).lower()


def _queue_problems(queue: JobQueue, kinds: Mapping[str, str], where: str) -> list[str]:
    problems = [f"{where}: {w}" for w in queue_limits.warnings(queue)]
    fargate = {name: kinds[name] in _FARGATE_TYPES for name in queue.compute_environments if name in kinds}
    if len(set(fargate.values())) > 1:
        listed = ", ".join(f"{name} ({kinds[name]})" for name in fargate)
        problems.append(
            f"{where}: job queue {queue.name}: AWS Batch does not mix Fargate and EC2 compute environments "
            f"in one queue: {listed}"
        )
    return problems


# -- walking requests ----------------------------------------------------------------------
def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _substitute(value: Any, arn: Callable[[Ref], str]) -> Any:
    """A plain copy of ``value``: CloudValues as their values, Refs as ``arn(ref)``."""
    if isinstance(value, Mapping):
        return {k: _substitute(v, arn) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, arn) for v in value]
    if isinstance(value, CloudValue):
        if value.value is None:  # a stand-in of the right type, for botocore's validator
            return ["x"] if value.is_list else "x"
        return list(value.value) if isinstance(value.value, tuple) else value.value
    if isinstance(value, Ref):
        return arn(value)
    return value
