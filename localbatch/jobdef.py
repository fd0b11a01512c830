"""Job definition files: TOML <-> the core's ``JobDefinition``, with every problem at once.

This module owns the TOML format of design §2.1: reading it (``load_file``,
``parse_document``), checking it, and writing it back (``to_document``, ``dumps``). The
key names are AWS's RegisterJobDefinition names in snake_case; ``docs/jobdef.md`` is the
reference. pydantic parses the untrusted document (``_jobdef_schema``, with the per-value
rules and their messages in ``_jobdef_rules``); what leaves this module is the core's frozen
dataclasses. Conversion to and from AWS's JSON is ``awsbatch.jobdefinition``'s.

Problems come in at most two rounds. First every shape problem pydantic finds (unknown
keys, wrong types, values out of range, bad patterns), all at once. When the document has
none, every rule that relates two values (a mount point names a declared volume, FARGATE
jobs have no GPUs, ...), all at once.

``parse_document(to_document(d)) == d`` for every definition ``parse_document`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from localbatch import _jobdef_rules as rules
from localbatch import _jobdef_schema as schema
from localbatch import toml_input, validation
from localbatch.core import consumables, multinode, staging
from localbatch.core.definition import (
    FargateSettings,
    JobDefinition,
    LogConfiguration,
    NodeProperties,
    NodeRangeProperty,
    PlatformCapability,
)
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec, Device, LinuxParameters, MountPoint, S3Access, Tmpfs, Ulimit, Volume
from localbatch.core.staging import StagedInput, StagedOutput
from localbatch.errors import JobDefinitionError, Problem
from localbatch.validation import BARE_KEY, describe, format_path, model_at, quote

__all__ = [
    "LOCAL_ONLY_KEYS",
    "container_table",
    "dumps",
    "dumps_document",
    "format_path",
    "load_file",
    "loads",
    "local_only",
    "parse_document",
    "parse_retry",
    "read_document",
    "retry_table",
    "to_document",
    "with_local_only",
]

# The keys of a file AWS has no field for (export leaves them out); a node range may have s3_access.
LOCAL_ONLY_KEYS = ("inputs", "outputs", "s3_access")
_RANGES = ("node_properties", "node_range_properties")

_MAX_INLINE = 100  # longest line for an array written on one line


# -- reading -------------------------------------------------------------------------------
def load_file(path: Path) -> JobDefinition:
    """Read and check one job definition file; ``JobDefinitionError`` names every problem."""
    return parse_document(read_document(path), str(path))


def read_document(path: Path) -> dict[str, Any]:
    """The TOML document of a file as written, unchecked (``parse_document`` checks it).
    Export writes from it, so what a file leaves out stays out (no defaults are added)."""
    source = str(path)
    try:
        text = toml_input.read(path)
    except FileNotFoundError:
        raise JobDefinitionError(source, [Problem("", "file not found")]) from None
    except toml_input.TomlInputError as exc:
        raise JobDefinitionError(source, [Problem("", str(exc))]) from None
    return _toml_document(text, source)


def loads(text: str, source: str = "<string>") -> JobDefinition:
    """Parse and check TOML text; ``source`` names it in errors."""
    return parse_document(_toml_document(text, source), source)


def _toml_document(text: str, source: str) -> dict[str, Any]:
    try:
        return toml_input.parse(text)
    except toml_input.TomlInputError as exc:
        raise JobDefinitionError(source, [Problem("", str(exc))]) from None


def parse_document(document: Mapping[str, Any], source: str) -> JobDefinition:
    """Check a TOML-shaped document and build the definition; ``source`` names it in errors."""
    if not isinstance(document, Mapping):
        found = describe(document)
        raise JobDefinitionError(source, [Problem("", f"expected a table of keys, got {found}")])
    if document.get("type") == "multinode":
        return _parse_multinode(document, source)
    try:
        model = schema.JobDefinitionModel.model_validate(dict(document))
    except ValidationError as exc:
        raise JobDefinitionError(source, schema.problems_from(exc)) from None
    problems = _cross_checks(model)
    if problems:
        raise JobDefinitionError(source, problems)
    return _to_core(model)


def _parse_multinode(document: Mapping[str, Any], source: str) -> JobDefinition:
    try:
        model = schema.MultinodeDefinitionModel.model_validate(dict(document))
    except ValidationError as exc:
        raise JobDefinitionError(source, schema.problems_from(exc, schema.MultinodeDefinitionModel)) from None
    props = model.node_properties
    ranges = "node_properties.node_range_properties"
    problems = multinode.range_problems(
        props.num_nodes, props.main_node, [r.target_nodes for r in props.node_range_properties], ranges
    )
    if model.retry is not None and model.retry.evaluate_on_exit and model.retry.attempts is None:
        problems.append(Problem("retry.attempts", "required when retry.evaluate_on_exit is given (AWS rule)"))
    if "FARGATE" in model.platform_capabilities:
        problems.append(
            Problem("platform_capabilities", 'multi-node parallel jobs cannot run on FARGATE (AWS rule); use ["EC2"]')
        )
    if model.consumable_resources:
        problems.append(Problem("consumable_resources", "not supported for multi-node parallel jobs by localbatch yet"))
    for index, entry in enumerate(props.node_range_properties):
        problems += _container_checks(entry, f"{ranges}[{index}].")
    if problems:
        raise JobDefinitionError(source, problems)
    node_ranges = tuple(
        NodeRangeProperty(r.target_nodes, _container(r), tuple(r.instance_types)) for r in props.node_range_properties
    )
    node_properties = NodeProperties(props.num_nodes, props.main_node, node_ranges)
    return JobDefinition(
        container=multinode.node_containers(node_properties)[props.main_node],
        type="multinode",
        node_properties=node_properties,
        **_job_wide(model),
    )


def _job_wide(m: schema.JobDefinitionModel | schema.MultinodeDefinitionModel) -> dict[str, Any]:
    """The JobDefinition fields both kinds of definition have, outside any container."""
    log = m.log_configuration
    return {
        "name": m.name,
        "parameters": dict(m.parameters),
        "retry_strategy": _retry_strategy(m.retry or schema.RetryModel()),
        "timeout_s": m.timeout.attempt_duration_seconds if m.timeout is not None else None,
        "platform_capabilities": tuple(PlatformCapability(p) for p in m.platform_capabilities),
        "scheduling_priority": m.scheduling_priority,
        "propagate_tags": m.propagate_tags,
        "tags": dict(m.tags),
        "job_role_arn": m.job_role_arn,
        "execution_role_arn": m.execution_role_arn,
        "log_configuration": LogConfiguration(log.log_driver, dict(log.options)) if log is not None else None,
        "consumable_resources": tuple(m.consumable_resources.items()),
    }


def parse_retry(table: Mapping[str, Any], source: str) -> RetryStrategy:
    """A ``[retry]`` table on its own (a submission's retry strategy), by the same rules as in
    a job definition. Problem paths start at the table's keys (``evaluate_on_exit[0].action``)."""
    try:
        model = schema.RetryModel.model_validate(dict(table))
    except ValidationError as exc:
        raise JobDefinitionError(source, validation.problems_from(exc, schema.RetryModel)) from None
    if model.evaluate_on_exit and model.attempts is None:
        raise JobDefinitionError(source, [Problem("attempts", "required when evaluate_on_exit is given")])
    return _retry_strategy(model)


def _retry_strategy(retry: schema.RetryModel) -> RetryStrategy:
    return RetryStrategy(
        attempts=retry.attempts or 1,
        evaluate_on_exit=tuple(
            EvaluateOnExit(
                action=RetryAction(rule.action.upper()),
                on_status_reason=rule.on_status_reason,
                on_reason=rule.on_reason,
                on_exit_code=rule.on_exit_code,
            )
            for rule in retry.evaluate_on_exit
        ),
    )


def _cross_checks(model: schema.JobDefinitionModel) -> list[Problem]:
    problems: list[Problem] = []
    if model.retry is not None and model.retry.evaluate_on_exit and model.retry.attempts is None:
        problems.append(Problem("retry.attempts", "required when retry.evaluate_on_exit is given (AWS rule)"))
    problems += _container_checks(model, "")
    if "FARGATE" in model.platform_capabilities:
        why = 'platform_capabilities includes "FARGATE"'
        if model.resources.gpus > 0:
            problems.append(Problem("resources.gpus", f"FARGATE jobs cannot use GPUs; {why}"))
        if model.linux_parameters is not None and model.linux_parameters.devices:
            problems.append(Problem("linux_parameters.devices", f"FARGATE jobs cannot use host devices; {why}"))
    inputs = [StagedInput(i.source, i.path) for i in model.inputs]
    outputs = [StagedOutput(o.path, o.destination) for o in model.outputs]
    problems += [Problem(where, problem) for where, problem in staging.target_problems(inputs, outputs)]
    for name, quantity in model.consumable_resources.items():
        short = consumables.need_problem(name, quantity)
        if short is not None:
            problems.append(Problem(f"consumable_resources.{format_path([name])}", short))
    return problems


def _container_checks(model: schema.JobDefinitionModel | schema.NodeRangeModel, at: str) -> list[Problem]:
    """The rules relating a container's values; ``at`` prefixes every path (a node range's)."""
    problems: list[Problem] = []
    volume_names = [v.name for v in model.volumes]
    problems += _duplicates(f"{at}volumes", "name", volume_names, "volume name")
    for index, mount in enumerate(model.mount_points):
        if mount.source_volume not in volume_names:
            declared = (
                "declared: " + ", ".join(quote(n) for n in volume_names)
                if volume_names
                else "no [[volumes]] are declared"
            )
            problems.append(
                Problem(
                    f"{at}mount_points[{index}].source_volume",
                    f"{quote(mount.source_volume)} names no volume; {declared}"
                    + rules.suggest(mount.source_volume, volume_names),
                )
            )
    problems += _duplicates(
        f"{at}mount_points", "container_path", [m.container_path for m in model.mount_points], "container path"
    )
    problems += _duplicates(f"{at}ulimits", "name", [u.name for u in model.ulimits], "ulimit")
    for index, limit in enumerate(model.ulimits):
        if _unlimited(limit.soft_limit) > _unlimited(limit.hard_limit):
            problems.append(
                Problem(
                    f"{at}ulimits[{index}].soft_limit",
                    f"must not exceed hard_limit ({limit.hard_limit}), got {limit.soft_limit}",
                )
            )
    return problems


def _unlimited(limit: int) -> float:
    return float("inf") if limit == -1 else limit


def _duplicates(table: str, key: str, values: Sequence[str], what: str) -> list[Problem]:
    first: dict[str, int] = {}
    problems = []
    for index, value in enumerate(values):
        if value in first:
            problems.append(
                Problem(
                    f"{table}[{index}].{key}",
                    f"duplicate {what} {quote(value)}; {table}[{first[value]}] has it",
                )
            )
        first.setdefault(value, index)
    return problems


def _container(m: schema.JobDefinitionModel | schema.NodeRangeModel) -> ContainerSpec:
    linux = m.linux_parameters or schema.LinuxParametersModel()
    return ContainerSpec(
        image=m.image,
        command=tuple(m.command),
        environment=dict(m.environment),
        resources=Resources(vcpus=float(m.resources.vcpus), memory_mib=m.resources.memory_mib, gpus=m.resources.gpus),
        volumes=tuple(Volume(v.name, v.host_source_path) for v in m.volumes),
        mount_points=tuple(MountPoint(p.source_volume, p.container_path, p.read_only) for p in m.mount_points),
        ulimits=tuple(Ulimit(u.name, u.soft_limit, u.hard_limit) for u in m.ulimits),
        user=m.user,
        privileged=m.privileged,
        readonly_root_filesystem=m.readonly_root_filesystem,
        linux_parameters=LinuxParameters(
            devices=tuple(Device(d.host_path, d.container_path, tuple(d.permissions)) for d in linux.devices),
            init_process_enabled=linux.init_process_enabled,
            shared_memory_size_mib=linux.shared_memory_size,
            tmpfs=tuple(Tmpfs(t.container_path, t.size, tuple(t.mount_options)) for t in linux.tmpfs),
            max_swap_mib=linux.max_swap,
            swappiness=linux.swappiness,
        ),
        s3_access=S3Access(m.s3_access.enabled, m.s3_access.generic_endpoint) if m.s3_access else S3Access(),
    )


def _to_core(m: schema.JobDefinitionModel) -> JobDefinition:
    fargate = None
    if m.fargate is not None and m.fargate != schema.FargateModel():  # an empty [fargate] says nothing
        fargate = FargateSettings(**m.fargate.model_dump())
    return JobDefinition(
        container=replace(
            _container(m),
            inputs=tuple(StagedInput(i.source, i.path) for i in m.inputs),
            outputs=tuple(StagedOutput(o.path, o.destination, o.on_failure) for o in m.outputs),
        ),
        type=m.type,
        fargate=fargate,
        **_job_wide(m),
    )


# -- writing -------------------------------------------------------------------------------
def to_document(definition: JobDefinition) -> dict[str, Any]:
    """The TOML-shaped document for a definition; defaults and empty values are left out.
    Keys come in no particular order (``dumps_document`` orders them)."""
    d, c = definition, definition.container
    doc: dict[str, Any] = {"name": d.name, "type": d.type}
    if d.platform_capabilities != (PlatformCapability.EC2,):
        doc["platform_capabilities"] = [p.value for p in d.platform_capabilities]
    _put(doc, "scheduling_priority", d.scheduling_priority)
    _put(doc, "propagate_tags", d.propagate_tags or None)
    _put(doc, "job_role_arn", d.job_role_arn)
    _put(doc, "execution_role_arn", d.execution_role_arn)
    _put(doc, "parameters", dict(d.parameters) or None)
    if d.retry_strategy != RetryStrategy():
        doc["retry"] = retry_table(d.retry_strategy)
    if d.timeout_s is not None:
        doc["timeout"] = {"attempt_duration_seconds": d.timeout_s}
    if d.log_configuration is not None:
        doc["log_configuration"] = {"log_driver": d.log_configuration.log_driver}
        _put(doc["log_configuration"], "options", dict(d.log_configuration.options) or None)
    _put(doc, "tags", dict(d.tags) or None)
    _put(doc, "consumable_resources", dict(d.consumable_resources) or None)
    if d.node_properties is not None:
        doc["node_properties"] = _node_properties_table(d.node_properties)
        return doc
    doc.update(container_table(c))
    if d.fargate is not None:
        _put(doc, "fargate", _without_none(asdict(d.fargate)) or None)
    _put(doc, "inputs", [{"source": i.source, "path": i.path} for i in c.inputs])
    outputs = [
        {"path": o.path, "destination": o.destination, **({"on_failure": True} if o.on_failure else {})}
        for o in c.outputs
    ]
    _put(doc, "outputs", outputs)
    return doc


def local_only(document: Mapping[str, Any]) -> dict[str, Any]:
    """The localbatch-only part of a document (``LOCAL_ONLY_KEYS``, and each node range's
    ``s3_access``, as ``node_range_s3_access``: a list with ``{}`` where a range has none)."""
    found = {key: document[key] for key in LOCAL_ONLY_KEYS if key in document}
    ranges = document.get(_RANGES[0], {}).get(_RANGES[1], [])
    if any("s3_access" in r for r in ranges):
        found["node_range_s3_access"] = [r.get("s3_access", {}) for r in ranges]
    return found


def with_local_only(document: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """``document`` with a ``local_only`` part put back (a copy; parse it to check it)."""
    merged = {**document, **{key: local[key] for key in LOCAL_ONLY_KEYS if key in local}}
    per_range = local.get("node_range_s3_access")
    ranges = document.get(_RANGES[0], {}).get(_RANGES[1])
    if isinstance(per_range, list) and isinstance(ranges, list):
        ranges = [{**r, "s3_access": a} if a else r for r, a in zip(ranges, per_range, strict=False)]
        merged[_RANGES[0]] = {**document[_RANGES[0]], _RANGES[1]: ranges}
    return merged


def _s3_access(access: S3Access) -> dict[str, Any] | None:
    """``[s3_access]`` with the keys that differ from the defaults (None: all default)."""
    table: dict[str, Any] = {}
    if not access.enabled:
        table["enabled"] = False
    if access.generic_endpoint:
        table["generic_endpoint"] = True
    return table or None


def _node_properties_table(props: NodeProperties) -> dict[str, Any]:
    ranges = []
    for entry in props.node_range_properties:
        table: dict[str, Any] = {"target_nodes": entry.target_nodes}
        _put(table, "instance_types", list(entry.instance_types))
        table.update(container_table(entry.container))
        ranges.append(table)
    return {"num_nodes": props.num_nodes, "main_node": props.main_node, "node_range_properties": ranges}


def retry_table(strategy: RetryStrategy) -> dict[str, Any]:
    """A ``[retry]`` table: attempts, and the rules if any."""
    table: dict[str, Any] = {"attempts": strategy.attempts}
    _put(table, "evaluate_on_exit", [_rule(rule) for rule in strategy.evaluate_on_exit])
    return table


def container_table(c: ContainerSpec) -> dict[str, Any]:
    """A container's keys, as a node range writes them."""
    table: dict[str, Any] = {"image": c.image}
    _put(table, "command", list(c.command))
    _put(table, "user", c.user)
    _put(table, "privileged", c.privileged or None)
    _put(table, "readonly_root_filesystem", c.readonly_root_filesystem or None)
    table["resources"] = {"vcpus": _number(c.resources.vcpus), "memory_mib": c.resources.memory_mib}
    _put(table["resources"], "gpus", c.resources.gpus or None)
    _put(table, "environment", dict(c.environment) or None)
    _put(table, "linux_parameters", _linux_parameters(c.linux_parameters) or None)
    _put(table, "volumes", [_without_none({"name": v.name, "host_source_path": v.host_source_path}) for v in c.volumes])
    mounts = [
        {
            "source_volume": m.source_volume,
            "container_path": m.container_path,
            **({"read_only": True} if m.read_only else {}),
        }
        for m in c.mount_points
    ]
    _put(table, "mount_points", mounts)
    _put(
        table, "ulimits", [{"name": u.name, "soft_limit": u.soft_limit, "hard_limit": u.hard_limit} for u in c.ulimits]
    )
    _put(table, "s3_access", _s3_access(c.s3_access))
    return table


def _put(table: dict[str, Any], key: str, value: object) -> None:
    if value is not None and value != []:
        table[key] = value


def _without_none(table: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in table.items() if v is not None}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def _rule(rule: EvaluateOnExit) -> dict[str, str]:
    table = {
        "on_exit_code": rule.on_exit_code,
        "on_status_reason": rule.on_status_reason,
        "on_reason": rule.on_reason,
        "action": rule.action.value.lower(),
    }
    return {k: v for k, v in table.items() if v is not None}


def _linux_parameters(linux: LinuxParameters) -> dict[str, Any]:
    table: dict[str, Any] = _without_none(
        {
            "shared_memory_size": linux.shared_memory_size_mib,
            "init_process_enabled": linux.init_process_enabled,
            "max_swap": linux.max_swap_mib,
            "swappiness": linux.swappiness,
        }
    )
    devices = []
    for device in linux.devices:
        entry: dict[str, Any] = {"host_path": device.host_path}
        _put(entry, "container_path", device.container_path)
        _put(entry, "permissions", list(device.permissions))
        devices.append(entry)
    _put(table, "devices", devices)
    tmpfs = []
    for mount in linux.tmpfs:
        entry = {"container_path": mount.container_path, "size": mount.size_mib}
        _put(entry, "mount_options", list(mount.mount_options))
        tmpfs.append(entry)
    _put(table, "tmpfs", tmpfs)
    return table


def dumps(definition: JobDefinition) -> str:
    """The definition as TOML text (``dumps_document`` of ``to_document``)."""
    return dumps_document(to_document(definition))


def dumps_document(document: Mapping[str, Any]) -> str:
    """A checked document as TOML text, keys in the reference's order (``schema``'s field
    order): plain keys first (name, type, image, command, ...), then tables, then arrays of
    tables written as ``[[volumes]]`` sections. Only the keys in ``document`` are written."""
    root = schema.MultinodeDefinitionModel if document.get("type") == "multinode" else schema.JobDefinitionModel
    return "\n".join(_sections(_ordered(document, root), ""))


def _ordered(table: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """``table``'s keys in ``model``'s field order, nested tables likewise. ``resources``
    keeps its own order: AWS's ``resourceRequirements`` list is written in it."""
    fields = list(model.model_fields)
    ordered: dict[str, Any] = {}
    for key in sorted(table, key=lambda k: fields.index(k) if k in fields else len(fields)):
        value, inner = table[key], model_at(model, [key])
        if inner is not None and key != "resources" and isinstance(value, Mapping):
            value = _ordered(value, inner)
        elif inner is not None and isinstance(value, list):
            value = [_ordered(item, inner) if isinstance(item, Mapping) else item for item in value]
        ordered[key] = value
    return ordered


def _sections(table: Mapping[str, Any], name: str, *, array: bool = False) -> list[str]:
    plain = [(k, v) for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_array(v)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    arrays = [(k, v) for k, v in table.items() if _is_table_array(v)]
    lines = [f"{_key(k)} = {_literal(v)}" for k, v in plain]
    if array:
        lines.insert(0, f"[[{name}]]")
    elif name and (plain or not (tables or arrays)):
        lines.insert(0, f"[{name}]")
    sections = ["\n".join(lines) + "\n"] if lines else []
    for key, value in tables:
        sections += _sections(value, _join(name, key))
    for key, items in arrays:
        for item in items:
            sections += _sections(item, _join(name, key), array=True)
    return sections


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _join(name: str, key: str) -> str:
    return f"{name}.{_key(key)}" if name else _key(key)


def _key(key: str) -> str:
    return key if BARE_KEY.fullmatch(key) else _literal(key)


def _literal(value: object) -> str:
    """One TOML value; arrays on one line when short, else one item per line."""
    if isinstance(value, list):
        items = [_literal(item) for item in value]
        one_line = "[" + ", ".join(items) + "]"
        if len(one_line) <= _MAX_INLINE and "\n" not in one_line:
            return one_line
        return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
    return tomli_w.dumps({"v": value})[len("v = ") : -1]
