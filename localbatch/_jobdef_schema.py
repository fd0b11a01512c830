"""The job definition TOML's schema (pydantic models) and its errors in plain words.

Private to ``localbatch.jobdef``; pydantic stays inside the ``_jobdef_*`` modules. Every
model forbids unknown keys and takes TOML's types strictly (no "10" for 10, no 1.0 for 1,
no 1 for true). Rules about one value come from ``_jobdef_rules`` and run as validators,
so pydantic reports them together with type errors. Rules that relate several values (a
mount point names a declared volume) run afterwards in ``jobdef``.

``problems_from`` turns pydantic's error list into ``Problem``s in plain words; users never
see pydantic's wording or its URLs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Annotated, Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from localbatch import _jobdef_rules as rules
from localbatch._jobdef_rules import quote
from localbatch.core.definition import MAX_SCHEDULING_PRIORITY, MAX_TAGS, MIN_MEMORY_MIB
from localbatch.core.retry import MAX_ATTEMPTS, MAX_EVALUATE_ON_EXIT
from localbatch.core.spec import DEVICE_PERMISSIONS, ULIMIT_NAMES
from localbatch.errors import Problem

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# -- models --------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ResourcesModel(Strict):
    vcpus: rules.Vcpus
    memory_mib: Annotated[int, rules.at_least(MIN_MEMORY_MIB)]
    gpus: rules.AwsInt = 0


class EvaluateOnExitModel(Strict):
    action: rules.Action
    on_exit_code: rules.ExitCodePattern | None = None
    on_status_reason: rules.ReasonPattern | None = None
    on_reason: rules.ReasonPattern | None = None


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
    source: rules.S3Uri
    path: rules.AbsolutePath


class OutputModel(Strict):
    path: rules.AbsolutePath
    destination: rules.S3Uri


class JobDefinitionModel(Strict):
    """The whole file. Field order is the order ``jobdef.to_document`` writes keys in."""

    name: rules.JobName
    type: rules.JobType = "container"
    image: rules.Image
    command: list[rules.Argument] = Field(default_factory=list)
    platform_capabilities: Annotated[
        list[Annotated[str, rules.one_of(rules.PLATFORM_CAPABILITIES)]],
        rules.NON_EMPTY,
        rules.UNIQUE,
    ] = Field(default_factory=lambda: ["EC2"])
    scheduling_priority: Annotated[int, rules.between(0, MAX_SCHEDULING_PRIORITY)] | None = None
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
    tags: Annotated[dict[rules.TagKey, rules.TagValue], rules.at_most(MAX_TAGS, "tags")] = Field(
        default_factory=dict
    )
    volumes: list[VolumeModel] = Field(default_factory=list)
    mount_points: list[MountPointModel] = Field(default_factory=list)
    ulimits: list[UlimitModel] = Field(default_factory=list)
    inputs: list[InputModel] = Field(default_factory=list)
    outputs: list[OutputModel] = Field(default_factory=list)


# -- errors in plain words -----------------------------------------------------------------
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
}
_MISSING_HINTS = {
    "image": 'required; the container image to run, e.g. image = "busybox:1.36"',
    "resources": "required; AWS Batch needs [resources] vcpus and memory_mib for every job",
    "resources.vcpus": "required; AWS Batch needs a vCPU count for every job",
    "resources.memory_mib": "required; AWS Batch needs a memory limit in MiB for every job",
}


def format_path(loc: Sequence[str | int]) -> str:
    """A key path as messages show it: ``retry.evaluate_on_exit[0].action``, with keys that
    are not bare TOML keys quoted (``environment."MY VAR"``)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else quote(part)
            path = f"{path}.{key}" if path else key
    return path


def describe(value: object, *, json: bool = False) -> str:
    """A value as a user would name it: ``a string 'ten'``, ``an integer 5``, ``a table``
    (``an object`` with ``json``, for AWS's JSON documents)."""
    if isinstance(value, bool):
        return f"a boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, float):
        return f"a number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string {shown!r}"
    if isinstance(value, Mapping):
        return "an object" if json else "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    if value is None:
        return "nothing (null)"
    return f"a {type(value).__name__}"


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    message = f"unknown key '{key}'; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    snake = camel_to_snake(key)
    if snake != key and snake in allowed:  # an AWS camelCase name
        close = [snake]
    return message + (f"; did you mean '{close[0]}'?" if close else "")


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _find_model(model.model_fields[part].annotation)
    return model


def _find_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _message(error: ErrorDetails, loc: Sequence[str | int], root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "localbatch":
        return str(ctx["detail"])
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        allowed = list(model.model_fields) if model is not None else []
        return unknown_key_message(str(loc[-1]), allowed)
    if kind == "missing":
        return _MISSING_HINTS.get(format_path(loc), "required key is missing")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(error['input'])}"
    if kind == "finite_number":
        return f"must be a finite number, got {describe(error['input'])}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]  # not reached by this schema; pydantic's own sentence, without URL


def problems_from(error: ValidationError, root: type[BaseModel] = JobDefinitionModel) -> list[Problem]:
    """Every error pydantic collected, as Problems with TOML key paths, in document order."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        loc = [part for part in detail["loc"] if part != "[key]"]
        problems.append(Problem(format_path(loc), _message(detail, loc, root)))
    return problems
