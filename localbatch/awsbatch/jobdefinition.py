"""The job definition in AWS's words: RegisterJobDefinition requests, both ways.

``request_from_document`` writes the body AWS Batch's RegisterJobDefinition takes (camelCase,
``resourceRequirements`` values as strings, ``action`` upper-case) from a checked job
definition document, writing exactly the keys the document has; ``to_register_request`` does
it for a ``JobDefinition``. ``document_from_request`` reads one back, or one entry of a
DescribeJobDefinitions response: botocore's model checks it first, then the same rules as a
TOML file (``jobdef.parse_document``); ``from_register_request`` gives the definition.

Both directions are lossless: ``request_from_document(document_from_request(x)) == x`` for
every request localbatch can run (except the deprecated ``vcpus``/``memory`` members, which
come back as ``resourceRequirements``, and empty lists, which mean the same as none), and
``from_register_request(to_register_request(d)) == d`` for every definition without staging.

Not in an exported request: ``inputs``, ``outputs`` and ``s3_access``, localbatch's own
settings (AWS has no field for them; on AWS Batch the job's code reads and writes S3 itself).
Between localbatch's client and its daemon they travel in one extra member, ``localbatch``
(``LOCAL_MEMBER``: the file's keys as written there, ``jobdef.local_only``), which
``to_register_request(..., local=True)`` writes and ``from_register_request`` reads. AWS's
own clients neither send it nor mind it in a DescribeJobDefinitions answer.

What AWS would refuse although localbatch runs it is ``awsbatch.export``'s to find.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch._request_reader import FARGATE_MEMBERS, RequestReader, camel, unsupported_parts
from localbatch.core.definition import JobDefinition
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec
from localbatch.errors import JobDefinitionError, Problem
from localbatch.validation import describe

__all__ = [
    "LOCAL_MEMBER",
    "MAX_PAYLOAD_BYTES",
    "as_register_request",
    "container_properties",
    "document_from_request",
    "from_register_request",
    "payload_problem",
    "request_from_document",
    "to_register_request",
]

_DESCRIBE_ONLY = ("jobDefinitionArn", "revision", "status", "containerOrchestrationType")
LOCAL_MEMBER = "localbatch"
# AWS Batch's quotas on a request's size (the service quotas page): a registered job definition,
# a submitted job. What localbatch adds (``LOCAL_MEMBER``) is not counted: AWS never sees it.
MAX_PAYLOAD_BYTES: Mapping[str, int] = {"RegisterJobDefinition": 24 * 1024, "SubmitJob": 30 * 1024}


def payload_problem(operation: str, body: Mapping[str, Any]) -> str | None:
    """Why ``body`` is over AWS Batch's size quota for ``operation`` (compact JSON, as a client
    sends it), or None."""
    limit = MAX_PAYLOAD_BYTES.get(operation)
    if limit is None:
        return None
    aws = {k: v for k, v in body.items() if k != LOCAL_MEMBER}
    size = len(json.dumps(aws, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    if size <= limit:
        return None
    return f"the {operation} request is {size} bytes; AWS Batch takes at most {limit} ({limit // 1024} KiB)"


def as_register_request(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeJobDefinitions entry without what only Describe adds: the request it came from."""
    return {k: v for k, v in entry.items() if k not in _DESCRIBE_ONLY}


# -- export --------------------------------------------------------------------------------
def to_register_request(definition: JobDefinition, *, local: bool = False) -> dict[str, Any]:
    """The RegisterJobDefinition request for a definition (``request_from_document`` of its
    document: defaults left out). With ``local`` add localbatch's own settings
    (``LOCAL_MEMBER``), for localbatch's daemon. Nothing is checked against AWS's rules here:
    that is ``awsbatch.export``'s."""
    return request_from_document(jobdef.to_document(definition), local=local)


def request_from_document(document: Mapping[str, Any], *, local: bool = False) -> dict[str, Any]:
    """The RegisterJobDefinition request for a checked job definition document, writing
    exactly the keys it has: ``RequestReader``'s inverse, so that exporting an imported
    request gives that request back."""
    doc = document
    request: dict[str, Any] = {"jobDefinitionName": doc["name"], "type": doc.get("type", "container")}
    _put(request, "schedulingPriority", doc.get("scheduling_priority"))
    _put(request, "propagateTags", doc.get("propagate_tags"))
    _put(request, "platformCapabilities", _copy(doc.get("platform_capabilities")))
    _put(request, "parameters", _copy(doc.get("parameters")))
    if "retry" in doc:
        request["retryStrategy"] = _retry_members(doc["retry"])
    if "timeout" in doc:
        request["timeout"] = {"attemptDurationSeconds": doc["timeout"]["attempt_duration_seconds"]}
    _put(request, "tags", _copy(doc.get("tags")))
    if "consumable_resources" in doc:
        listed = [{"consumableResource": name, "quantity": q} for name, q in doc["consumable_resources"].items()]
        request["consumableResourceProperties"] = {"consumableResourceList": listed}
    job_wide = _job_wide(doc)
    if "node_properties" in doc:
        nodes = doc["node_properties"]
        ranges = []
        for entry in nodes["node_range_properties"]:
            item: dict[str, Any] = {"targetNodes": entry["target_nodes"]}
            _put(item, "instanceTypes", _copy(entry.get("instance_types")))
            item["container"] = {**_container_members(entry), **job_wide}
            ranges.append(item)
        request["nodeProperties"] = {
            "numNodes": nodes["num_nodes"],
            "mainNode": nodes["main_node"],
            "nodeRangeProperties": ranges,
        }
    else:
        fargate = _fargate(doc.get("fargate", {}))
        request["containerProperties"] = {**_container_members(doc), **job_wide, **fargate}
    extension = jobdef.local_only(doc) if local else {}
    if extension:
        request[LOCAL_MEMBER] = extension
    return request


def _put(target: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        target[key] = value


def _copy(value: Any) -> Any:
    """A fresh list or dict (the request must not share the document's)."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _job_wide(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The containerProperties members a localbatch file keeps once per job."""
    props: dict[str, Any] = {}
    _put(props, "jobRoleArn", doc.get("job_role_arn"))
    _put(props, "executionRoleArn", doc.get("execution_role_arn"))
    if "log_configuration" in doc:
        log = doc["log_configuration"]
        props["logConfiguration"] = {"logDriver": log["log_driver"]}
        _put(props["logConfiguration"], "options", _copy(log.get("options")))
    return props


def container_properties(container: ContainerSpec) -> dict[str, Any]:
    """``containerProperties``' container members for a ``ContainerSpec`` (also the core of
    DescribeJobs' ``container``)."""
    return _container_members(jobdef.container_table(container))


def retry_strategy(strategy: RetryStrategy) -> dict[str, Any]:
    """AWS's ``retryStrategy`` for a ``RetryStrategy``: attempts, and the rules if any."""
    return _retry_members(jobdef.retry_table(strategy))


def _container_members(table: Mapping[str, Any]) -> dict[str, Any]:
    """The container members of a document (or of a node range's table), as AWS names them."""
    props: dict[str, Any] = {"image": table["image"]}
    _put(props, "command", _copy(table.get("command")))
    if "volumes" in table:
        props["volumes"] = [
            {"name": v["name"], **({"host": {"sourcePath": v["host_source_path"]}} if "host_source_path" in v else {})}
            for v in table["volumes"]
        ]
    if "environment" in table:
        props["environment"] = [{"name": k, "value": v} for k, v in table["environment"].items()]
    if "mount_points" in table:
        props["mountPoints"] = [_camel_keys(m) for m in table["mount_points"]]
    _put(props, "readonlyRootFilesystem", table.get("readonly_root_filesystem"))
    _put(props, "privileged", table.get("privileged"))
    if "ulimits" in table:
        props["ulimits"] = [_camel_keys(u) for u in table["ulimits"]]
    _put(props, "user", table.get("user"))
    props["resourceRequirements"] = _resource_requirements(table["resources"])
    if "linux_parameters" in table:
        props["linuxParameters"] = _linux_parameters(table["linux_parameters"])
    return props


def _resource_requirements(resources: Mapping[str, Any]) -> list[dict[str, str]]:
    """VCPU, MEMORY and GPU as a document gives them (in its order), values as strings."""
    kinds = {"vcpus": "VCPU", "memory_mib": "MEMORY", "gpus": "GPU"}
    return [{"type": kinds[key], "value": _number_text(value)} for key, value in resources.items()]


def _number_text(value: float) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _retry_members(retry: Mapping[str, Any]) -> dict[str, Any]:
    """AWS's ``retryStrategy`` from a ``[retry]`` table: ``action`` upper-case."""
    body: dict[str, Any] = {}
    _put(body, "attempts", retry.get("attempts"))
    if "evaluate_on_exit" in retry:
        body["evaluateOnExit"] = [
            {**_camel_keys({k: v for k, v in rule.items() if k != "action"}), "action": rule["action"].upper()}
            for rule in retry["evaluate_on_exit"]
        ]
    return body


def _linux_parameters(linux: Mapping[str, Any]) -> dict[str, Any]:
    body = _camel_keys({k: v for k, v in linux.items() if k not in ("devices", "tmpfs")})
    if "devices" in linux:
        body["devices"] = [_camel_keys(d) for d in linux["devices"]]
    if "tmpfs" in linux:
        body["tmpfs"] = [_camel_keys(t) for t in linux["tmpfs"]]
    return body


def _camel_keys(table: Mapping[str, Any]) -> dict[str, Any]:
    return {camel(k): _copy(v) for k, v in table.items()}


def _fargate(fargate: Mapping[str, Any]) -> dict[str, Any]:
    """``[fargate]``'s keys in the containerProperties members AWS keeps them in."""
    props: dict[str, Any] = {}
    for key, (outer, inner) in FARGATE_MEMBERS.items():
        if key in fargate:
            props.setdefault(outer, {})[inner] = fargate[key]
    return props


# -- import --------------------------------------------------------------------------------
def from_register_request(request: Mapping[str, Any], source: str) -> JobDefinition:
    """A definition from a RegisterJobDefinition request or a DescribeJobDefinitions entry."""
    return jobdef.parse_document(document_from_request(request, source), source)


def document_from_request(request: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The job definition document (TOML-shaped) for a RegisterJobDefinition request or a
    DescribeJobDefinitions entry, with exactly the members it has, checked.

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
    document = jobdef.with_local_only(reader.read(body), extension)
    problems = unsupported_parts(body) + reader.problems
    if problems:
        raise JobDefinitionError(source, problems)
    try:
        jobdef.parse_document(document, source)
    except JobDefinitionError as exc:
        raise JobDefinitionError(
            source, [Problem(_aws_path(reader, p.path), p.message) for p in exc.problems]
        ) from None
    return document


def _aws_path(reader: RequestReader, path: str) -> str:
    """Where a problem is in the request: a localbatch-only key's path under ``LOCAL_MEMBER``."""
    if path.split(".")[0].split("[")[0] in jobdef.LOCAL_ONLY_KEYS:
        return f"{LOCAL_MEMBER}.{path}"
    return reader.aws_path(path)
