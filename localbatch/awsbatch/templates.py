"""The export plan as infrastructure code: a CloudFormation template and a Terraform configuration.

Both render ``awsbatch.export``'s ``CloudPlan`` and nothing else, so every format says the same:

- ``cloudformation(plan)``: YAML, one ``AWS::Batch::*`` resource per plan object (logical id
  from kind and name), the request's members in CloudFormation's PascalCase names. Each
  ``CloudValue`` is a parameter (its configured value as ``Default``; without one, CloudFormation
  asks at deploy time); each ``Ref`` is ``{"Ref": LogicalId}`` (a compute environment's, a job
  queue's and a scheduling policy's ``Ref`` is its ARN). Outputs: the ARNs of the queues and
  job definitions.
- ``terraform(plan)``: HCL for the AWS provider 6, one ``aws_batch_*`` resource per object, a
  ``variable`` per ``CloudValue`` (default when configured), ``<type>.<name>.arn`` per ``Ref``;
  a job definition's containerProperties / nodeProperties as ``jsonencode({...})`` of the
  request's own camelCase members. Outputs: the same ARNs.

The plan's warnings head both texts as comments. Same plan, same text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from localbatch.awsbatch.export import CloudPlan, CloudValue, Kind, Ref

__all__ = ["cloudformation", "terraform"]

_HEADER = "AWS Batch objects exported by localbatch (localbatch export)"
_CFN_TYPES: Mapping[Kind, str] = {
    "scheduling_policy": "AWS::Batch::SchedulingPolicy",
    "compute_environment": "AWS::Batch::ComputeEnvironment",
    "job_queue": "AWS::Batch::JobQueue",
    "job_definition": "AWS::Batch::JobDefinition",
}
_TF_TYPES: Mapping[Kind, str] = {
    "scheduling_policy": "aws_batch_scheduling_policy",
    "compute_environment": "aws_batch_compute_environment",
    "job_queue": "aws_batch_job_queue",
    "job_definition": "aws_batch_job_definition",
}
_PLURALS = {
    "scheduling_policy": "scheduling policies",
    "compute_environment": "compute environments",
    "job_queue": "job queues",
    "job_definition": "job definitions",
}
# Members whose value is a JSON map: their keys are the user's, not AWS's member names.
_MAPS = frozenset({"tags", "parameters", "options"})


def _comment(lines: Iterable[str]) -> str:
    return "".join(f"# {part}\n" if part else "#\n" for line in lines for part in line.splitlines() or [""])


def _head(plan: CloudPlan) -> list[str]:
    head = [_HEADER + "."]
    if plan.warnings:
        head += ["", "What changes in the cloud:"] + [f"- {w}" for w in plan.warnings]
    missing = plan.missing()
    if missing:
        head += ["", "Values with no default (asked for at deploy time):"]
        head += [f"- {v.key}: {v.description}; set {v.setting}" for v in missing]
    return head


def _unique(candidates: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``(token, wanted id)`` pairs -> token: id, unique. A wanted id two tokens share gets a
    short hash of each token appended, so an object's id depends on its own name only."""
    counts: dict[str, int] = {}
    for _, wanted in candidates:
        counts[wanted] = counts.get(wanted, 0) + 1
    result: dict[str, str] = {}
    taken: set[str] = set()
    for token, wanted in candidates:
        chosen = wanted
        if counts[wanted] > 1:
            chosen = f"{wanted}{hashlib.sha256(token.encode()).hexdigest()[:8]}"
        while chosen in taken:  # bounded by len(candidates); practically never
            chosen += "X"
        taken.add(chosen)
        result[token] = chosen
    return result


def _token(kind: str, name: str) -> str:
    return f"{kind}\0{name}"


def _pascal(text: str) -> str:
    """``gpu-spot_2`` -> ``GpuSpot2``: alphanumeric words, each capitalised."""
    return "".join(word[:1].upper() + word[1:] for word in re.split(r"[^A-Za-z0-9]+", text))


def _member(name: str) -> str:
    """An API member name (camelCase) as CloudFormation names it (PascalCase)."""
    return name[:1].upper() + name[1:]


# -- CloudFormation ------------------------------------------------------------------------
def cloudformation(plan: CloudPlan) -> str:
    """A CloudFormation template (YAML) creating the plan's objects."""
    values = plan.values
    ids = _unique(
        [(_token("value", v.key), _pascal(v.key)) for v in values]
        + [(_token(o.kind, o.name), _pascal(o.kind) + _pascal(o.name)) for o in plan.objects]
    )

    def logical(ref: Ref) -> str:
        return ids[_token(ref.kind, ref.name)]

    def convert(value: Any, member: str = "") -> Any:
        if isinstance(value, CloudValue):
            return {"Ref": ids[_token("value", value.key)]}
        if isinstance(value, Ref):
            return {"Ref": logical(value)}
        if isinstance(value, Mapping):
            keep = member in _MAPS
            return {(k if keep else _member(k)): convert(v, k) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    template: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": _description(plan),
    }
    if values:
        template["Parameters"] = {ids[_token("value", v.key)]: _cfn_parameter(v) for v in values}
    template["Resources"] = {
        logical(Ref(o.kind, o.name)): {"Type": _CFN_TYPES[o.kind], "Properties": convert(o.request)}
        for o in plan.objects
    }
    outputs = {}
    for obj in plan.objects:
        logical_id = logical(Ref(obj.kind, obj.name))
        if obj.kind == "job_queue":
            value: Any = {"Ref": logical_id}
        elif obj.kind == "job_definition":  # its Ref is the name; the ARN (with revision) is an attribute
            value = {"Fn::GetAtt": [logical_id, "JobDefinitionArn"]}
        else:
            continue
        outputs[f"{logical_id}Arn"] = {
            "Description": f"The ARN of the {obj.kind.replace('_', ' ')} {obj.name}",
            "Value": value,
        }
    if outputs:
        template["Outputs"] = outputs
    return _comment(_head(plan)) + "".join(f"{line}\n" for line in _yaml(template, ""))


def _description(plan: CloudPlan) -> str:
    counts = []
    for kind in ("scheduling_policy", "compute_environment", "job_queue", "job_definition"):
        found = [o.name for o in plan.objects if o.kind == kind]
        if found:
            counts.append(f"{_PLURALS[kind]}: {', '.join(found)}")
    text = f"{_HEADER}. " + "; ".join(counts)
    return text if len(text.encode()) <= 1024 else text.encode()[:1021].decode(errors="ignore") + "..."


def _cfn_parameter(value: CloudValue) -> dict[str, Any]:
    if not value.is_list:
        kind = "String"
    elif value.key == "subnets" or value.key.endswith("_subnets"):
        kind = "List<AWS::EC2::Subnet::Id>"
    elif value.key == "security_group_ids" or value.key.endswith("_security_group_ids"):
        kind = "List<AWS::EC2::SecurityGroup::Id>"
    else:
        kind = "CommaDelimitedList"
    parameter: dict[str, Any] = {"Type": kind, "Description": f"{value.description}; set: {value.setting}"[:4000]}
    if value.value is not None:
        given = value.value
        parameter["Default"] = ",".join(given) if isinstance(given, tuple) else given
    return parameter


# The YAML writer: block style, strings plain only where every YAML 1.1 and 1.2 reader takes
# them as those strings, else double-quoted (JSON's escapes, which YAML shares). No dependency.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*(::[A-Za-z0-9_]+)*")
_NOT_PLAIN = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})
_YAML_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _yaml(value: Any, indent: str) -> list[str]:
    """The lines of a mapping or sequence, block style, at ``indent``."""
    if isinstance(value, Mapping):
        items = [(f"{indent}{_yaml_scalar(str(k))}:", v) for k, v in value.items()]
    else:
        items = [(f"{indent}-", v) for v in value]
    lines = []
    for head, item in items:
        if isinstance(item, Mapping | list | tuple) and item:
            inner = _yaml(item, indent + "  ")
            if head.endswith("-"):  # a sequence entry: its first line goes on the dash's line
                lines.append(f"{head} {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(head)
                lines += inner
        else:
            lines.append(f"{head} {_yaml_scalar(item)}")
    return lines


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    if isinstance(value, bool | int | float) or value is None:
        return _literal(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _NOT_PLAIN:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


# -- Terraform -----------------------------------------------------------------------------
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_RESERVED_VARIABLES = frozenset(
    {"source", "version", "providers", "count", "for_each", "lifecycle", "depends_on", "locals"}
)
# Request members whose Terraform argument is not the member in snake_case.
_TF_NAMES = {
    "computeEnvironmentName": "name",
    "jobQueueName": "name",
    "jobDefinitionName": "name",
    "instanceTypes": "instance_type",
    "minvCpus": "min_vcpus",
    "maxvCpus": "max_vcpus",
    "desiredvCpus": "desired_vcpus",
    "fairsharePolicy": "fair_share_policy",
    "jobStateTimeLimitActions": "job_state_time_limit_action",
}
_JSON_MEMBERS = frozenset({"containerProperties", "nodeProperties"})
_BLOCK_LISTS = frozenset({"computeEnvironmentOrder", "jobStateTimeLimitActions", "shareDistribution", "evaluateOnExit"})
_HCL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def terraform(plan: CloudPlan) -> str:
    """A Terraform configuration (HCL, AWS provider >= 6) creating the plan's objects."""
    values = plan.values
    variables = _unique([(v.key, _identifier(v.key, _RESERVED_VARIABLES)) for v in values])
    names = _unique([(_token(o.kind, o.name), _identifier(o.name)) for o in plan.objects])

    def expression(value: Any, indent: str) -> str:
        if isinstance(value, CloudValue):
            return f"var.{variables[value.key]}"
        if isinstance(value, Ref):
            return f"{_TF_TYPES[value.kind]}.{names[_token(value.kind, value.name)]}.arn"
        if isinstance(value, Mapping):
            if not value:
                return "{}"
            inner = indent + "  "
            items = "".join(f"{inner}{_hcl_string(k)} = {expression(v, inner)}\n" for k, v in value.items())
            return "{\n" + items + indent + "}"
        if isinstance(value, list | tuple):
            if all(not isinstance(v, Mapping | list | tuple) for v in value):
                return "[" + ", ".join(expression(v, indent) for v in value) + "]"
            inner = indent + "  "
            return "[\n" + "".join(f"{inner}{expression(v, inner)},\n" for v in value) + indent + "]"
        return _hcl_scalar(value)

    def body(members: Mapping[str, Any], indent: str) -> str:
        """A block's arguments and nested blocks for request members."""
        out = []
        for member, value in members.items():
            name = _TF_NAMES.get(member) or _snake(member)
            if member in _JSON_MEMBERS:
                out.append(f"{indent}{name} = jsonencode({expression(value, indent)})\n")
            elif not _is_block(member, value):
                out.append(f"{indent}{name} = {expression(value, indent)}\n")
            else:
                for entry in value if isinstance(value, list) else [value]:
                    out.append(f"{indent}{name} {{\n{body(entry, indent + '  ')}{indent}}}\n")
        return "".join(out)

    parts = [
        _comment(_head(plan)),
        "terraform {\n  required_providers {\n    aws = {\n"
        '      source  = "hashicorp/aws"\n      version = ">= 6.0"\n    }\n  }\n}\n',
    ]
    for value in values:
        kind = "list(string)" if value.is_list else "string"
        lines = [
            f"  type        = {kind}\n",
            f"  description = {_hcl_string(f'{value.description}; set: {value.setting}')}\n",
        ]
        if value.value is not None:
            given = list(value.value) if isinstance(value.value, tuple) else value.value
            lines.append(f"  default     = {expression(given, '  ')}\n")
        parts.append(f'variable "{variables[value.key]}" {{\n' + "".join(lines) + "}\n")
    for obj in plan.objects:
        name = names[_token(obj.kind, obj.name)]
        parts.append(
            f"# {obj.kind.replace('_', ' ')} {obj.name}, from {_one_line(obj.source)}\n"
            f'resource "{_TF_TYPES[obj.kind]}" "{name}" {{\n{body(obj.request, "  ")}}}\n'
        )
    for obj in plan.objects:
        if obj.kind in ("job_queue", "job_definition"):
            name = names[_token(obj.kind, obj.name)]
            what = _hcl_string(f"The ARN of the {obj.kind.replace('_', ' ')} {obj.name}")
            parts.append(
                f'output "{obj.kind}_{name}_arn" {{\n  description = {what}\n'
                f"  value       = {_TF_TYPES[obj.kind]}.{name}.arn\n}}\n"
            )
    return "\n".join(parts)


def _is_block(member: str, value: Any) -> bool:
    """A nested object (a block) or a list of them (repeated blocks; none for an empty list)."""
    if isinstance(value, Mapping):
        return member not in _MAPS
    if isinstance(value, list):
        return member in _BLOCK_LISTS or (bool(value) and all(isinstance(v, Mapping) for v in value))
    return False


def _snake(member: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", member).lower()


def _identifier(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """A valid HCL identifier for ``name``: characters other than letters, digits and ``_``
    as ``_``, a leading ``_`` before a digit; reserved names get ``_value``."""
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not _IDENTIFIER.fullmatch(text):
        text = "_" + text
    return f"{text}_value" if text in reserved else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _hcl_scalar(value: Any) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return _literal(value)
    return _hcl_string(str(value))


def _literal(value: bool | float | None) -> str:
    """A boolean, number or null as YAML and HCL both write it (no exponents: HCL has none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if not math.isfinite(value):
        raise ValueError(f"not a number a template can hold: {value!r}")
    text = repr(value)
    return text if "e" not in text else format(value, ".20f").rstrip("0")


def _hcl_string(text: str) -> str:
    """A quoted HCL string whose value is ``text``: backslash escapes (``\\uNNNN`` for other
    control characters), and the template sequences ``${`` / ``%{`` doubled so they stay literal."""
    escaped = "".join(
        _HCL_ESCAPES.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in text
    )
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'
