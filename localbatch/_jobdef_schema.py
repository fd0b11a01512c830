"""The job definition TOML's schema (pydantic models) and its errors in plain words.

Private to ``localbatch.jobdef``; pydantic stays inside the ``_jobdef_*`` modules. Every
model forbids unknown keys and takes TOML's types strictly (no "10" for 10, no 1.0 for 1,
no 1 for true). Rules about one value come from ``_jobdef_rules`` and run as validators,
so pydantic reports them together with type errors. Rules that relate several values (a
mount point names a declared volume) run afterwards in ``jobdef``.

``problems_from`` turns pydantic's error list into ``Problem``s in plain words
(``localbatch.validation``); users never see pydantic's wording or its URLs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from localbatch import _jobdef_rules as rules
from localbatch import validation
from localbatch.core.definition import MAX_SCHEDULING_PRIORITY, MAX_TAGS
from localbatch.core.multinode import MAX_NODES
from localbatch.core.resources import MIN_MEMORY_MIB
from localbatch.core.retry import MAX_ATTEMPTS, MAX_EVALUATE_ON_EXIT
from localbatch.core.spec import DEVICE_PERMISSIONS, ULIMIT_NAMES
from localbatch.errors import Problem


# -- models --------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ResourcesModel(Strict):
    vcpus: rules.Vcpus
    memory_mib: Annotated[int, rules.at_least(MIN_MEMORY_MIB)]
    gpus: rules.AwsInt = 0


class EvaluateOnExitModel(Strict):
    on_exit_code: rules.ExitCodePattern | None = None
    on_status_reason: rules.ReasonPattern | None = None
    on_reason: rules.ReasonPattern | None = None
    action: rules.Action


class RetryModel(Strict):
    attempts: Annotated[int, rules.between(1, MAX_ATTEMPTS)] | None = None
    evaluate_on_exit: Annotated[
        list[EvaluateOnExitModel], rules.at_most(MAX_EVALUATE_ON_EXIT, "evaluate_on_exit rules")
    ] = Field(default_factory=list)


class TimeoutModel(Strict):
    attempt_duration_seconds: Annotated[int, rules.at_least(1)]


class DeviceModel(Strict):
    host_path: rules.AbsolutePath
    container_path: rules.AbsolutePath | None = None
    permissions: Annotated[list[Annotated[str, rules.one_of(DEVICE_PERMISSIONS)]], rules.UNIQUE] = Field(
        default_factory=list
    )


class TmpfsModel(Strict):
    container_path: rules.AbsolutePath
    size: Annotated[int, rules.at_least(1)]
    mount_options: list[rules.Text] = Field(default_factory=list)


class LinuxParametersModel(Strict):
    shared_memory_size: Annotated[int, rules.at_least(1)] | None = None
    init_process_enabled: bool | None = None
    max_swap: rules.AwsInt | None = None
    swappiness: Annotated[int, rules.between(0, 100)] | None = None
    devices: list[DeviceModel] = Field(default_factory=list)
    tmpfs: list[TmpfsModel] = Field(default_factory=list)


class VolumeModel(Strict):
    name: rules.VolumeName
    host_source_path: rules.AbsolutePath | None = None


class MountPointModel(Strict):
    source_volume: rules.Text
    container_path: rules.AbsolutePath
    read_only: bool = False


class UlimitModel(Strict):
    name: Annotated[str, rules.one_of(ULIMIT_NAMES)]
    soft_limit: rules.Limit
    hard_limit: rules.Limit


class LogConfigurationModel(Strict):
    log_driver: Annotated[str, rules.one_of(rules.LOG_DRIVERS)]
    options: dict[rules.Text, str] = Field(default_factory=dict)


class FargateModel(Strict):
    platform_version: rules.Text | None = None
    assign_public_ip: Annotated[str, rules.one_of(rules.ASSIGN_PUBLIC_IP)] | None = None
    ephemeral_storage_gib: Annotated[int, rules.between(21, 200)] | None = None
    cpu_architecture: Annotated[str, rules.one_of(rules.CPU_ARCHITECTURES)] | None = None
    operating_system_family: Annotated[str, rules.one_of(rules.OPERATING_SYSTEM_FAMILIES)] | None = None


class InputModel(Strict):
    """``[[inputs]]``: localbatch only (``core.staging``); export leaves it out."""

    source: rules.StagingSource
    path: rules.AbsolutePath


class OutputModel(Strict):
    """``[[outputs]]``: localbatch only (``core.staging``); export leaves it out."""

    path: rules.AbsolutePath
    destination: rules.StagingUri
    on_failure: bool = False


class S3AccessModel(Strict):
    """``[s3_access]``: localbatch only (``core.s3_access``); export leaves it out."""

    enabled: bool = True
    generic_endpoint: bool = False


# Job-level keys both kinds of definition have (a single-container one and a multinode one).
PlatformCapabilities = Annotated[
    list[Annotated[str, rules.one_of(rules.PLATFORM_CAPABILITIES)]],
    rules.NON_EMPTY,
    rules.UNIQUE,
]
SchedulingPriority = Annotated[int, rules.between(0, MAX_SCHEDULING_PRIORITY)]
Tags = Annotated[dict[rules.TagKey, rules.TagValue], rules.at_most(MAX_TAGS, "tags")]


class JobDefinitionModel(Strict):
    """The whole file. Field order is the order ``jobdef.to_document`` writes keys in."""

    name: rules.JobName
    type: rules.JobType = "container"
    image: rules.Image
    command: list[rules.Argument] = Field(default_factory=list)
    platform_capabilities: PlatformCapabilities = Field(default_factory=lambda: ["EC2"])
    scheduling_priority: SchedulingPriority | None = None
    propagate_tags: bool = False
    user: rules.Text | None = None
    privileged: bool = False
    readonly_root_filesystem: bool = False
    job_role_arn: rules.Text | None = None
    execution_role_arn: rules.Text | None = None
    resources: ResourcesModel
    parameters: dict[rules.Text, str] = Field(default_factory=dict)
    environment: dict[rules.EnvName, str] = Field(default_factory=dict)
    retry: RetryModel | None = None
    timeout: TimeoutModel | None = None
    linux_parameters: LinuxParametersModel | None = None
    log_configuration: LogConfigurationModel | None = None
    fargate: FargateModel | None = None
    tags: Tags = Field(default_factory=dict)
    volumes: list[VolumeModel] = Field(default_factory=list)
    mount_points: list[MountPointModel] = Field(default_factory=list)
    ulimits: list[UlimitModel] = Field(default_factory=list)
    inputs: list[InputModel] = Field(default_factory=list)
    outputs: list[OutputModel] = Field(default_factory=list)
    s3_access: S3AccessModel | None = None
    consumable_resources: dict[str, int] = Field(default_factory=dict)  # name = quantity (core.consumables)


class NodeRangeModel(Strict):
    """One ``[[node_properties.node_range_properties]]``: the nodes it names and their
    container, in the same keys as a single-container file's."""

    target_nodes: rules.Text
    image: rules.Image
    command: list[rules.Argument] = Field(default_factory=list)
    instance_types: Annotated[list[rules.Text], rules.at_most(1, "instance types (AWS takes one)")] = Field(
        default_factory=list
    )
    user: rules.Text | None = None
    privileged: bool = False
    readonly_root_filesystem: bool = False
    resources: ResourcesModel
    environment: dict[rules.EnvName, str] = Field(default_factory=dict)
    linux_parameters: LinuxParametersModel | None = None
    volumes: list[VolumeModel] = Field(default_factory=list)
    mount_points: list[MountPointModel] = Field(default_factory=list)
    ulimits: list[UlimitModel] = Field(default_factory=list)
    s3_access: S3AccessModel | None = None


class NodePropertiesModel(Strict):
    num_nodes: Annotated[int, rules.between(1, MAX_NODES)]
    main_node: Annotated[int, rules.at_least(0)]
    node_range_properties: Annotated[list[NodeRangeModel], rules.NON_EMPTY]


class MultinodeDefinitionModel(Strict):
    """A ``type = "multinode"`` file: the job's keys at the top, each node range's container
    under ``[node_properties]``. Field order is the order ``jobdef.to_document`` writes."""

    name: rules.JobName
    type: rules.JobType
    platform_capabilities: PlatformCapabilities = Field(default_factory=lambda: ["EC2"])
    scheduling_priority: SchedulingPriority | None = None
    propagate_tags: bool = False
    job_role_arn: rules.Text | None = None
    execution_role_arn: rules.Text | None = None
    parameters: dict[rules.Text, str] = Field(default_factory=dict)
    retry: RetryModel | None = None
    timeout: TimeoutModel | None = None
    log_configuration: LogConfigurationModel | None = None
    tags: Tags = Field(default_factory=dict)
    node_properties: NodePropertiesModel
    consumable_resources: dict[str, int] = Field(default_factory=dict)  # refused: see jobdef


# -- errors in plain words -----------------------------------------------------------------
_MISSING_HINTS = {
    "image": 'required; the container image to run, e.g. image = "busybox:1.36"',
    "resources": "required; AWS Batch needs [resources] vcpus and memory_mib for every job",
    "resources.vcpus": "required; AWS Batch needs a vCPU count for every job",
    "resources.memory_mib": "required; AWS Batch needs a memory limit in MiB for every job",
}


_MULTINODE_HINTS = {
    "node_properties": 'required for type "multinode": [node_properties] with num_nodes, main_node and '
    "[[node_properties.node_range_properties]]",
}


def problems_from(error: ValidationError, root: type[BaseModel] = JobDefinitionModel) -> list[Problem]:
    """Every error pydantic collected about a job definition, in plain words."""
    hints = _MULTINODE_HINTS if root is MultinodeDefinitionModel else _MISSING_HINTS
    return validation.problems_from(error, root, hints)
