"""botocore's own AWS Batch service model, and request/response checks against it (and
against CloudWatch Logs' model, for the Logs subset the daemon serves: ``validate_logs_*``).

The model is the one botocore ships (``botocore/data/batch/2016-08-10/service-2.json``),
loaded once per process. ``validate_request`` and ``validate_output`` run botocore's
``ParamValidator`` on an operation's input or output shape and turn its report into
``Problem``s with camelCase key paths (``containerProperties.resourceRequirements[0].type``),
so shapes are never written by hand here.

botocore ships no type hints; its objects stay inside this module, except ``service_model()``
for callers that route by it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import botocore.session  # type: ignore[import-untyped, unused-ignore]
from botocore.validate import ParamValidator  # type: ignore[import-untyped, unused-ignore]

from localbatch.errors import Problem
from localbatch.validation import describe, unknown_key_message

__all__ = [
    "logs_operation_names",
    "operation_names",
    "service_model",
    "validate_logs_output",
    "validate_logs_request",
    "validate_output",
    "validate_request",
]

# botocore marks JobDetail.startedAt required, but AWS leaves it out until the job runs.
_IGNORED_MISSING = {("JobDetail", "startedAt")}
_TYPE_WORDS = {
    "<class 'str'>": "a string",
    "<class 'int'>": "an integer",
    "<class 'bool'>": "true or false",
    "<class 'float'>": "a number",
    "<class 'decimal.Decimal'>": "a number",
    "<class 'dict'>": "an object",
    "<class 'list'>": "an array",
    "<class 'tuple'>": "an array",
}
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MAP_KEY = re.compile(r" \(key: (.*)\)$")


@lru_cache(maxsize=1)
def service_model() -> Any:
    """botocore's ``ServiceModel`` for AWS Batch (untyped: botocore ships no hints)."""
    return botocore.session.get_session().get_service_model("batch")


@lru_cache(maxsize=1)
def operation_names() -> frozenset[str]:
    """Every AWS Batch operation, as AWS spells it (``RegisterJobDefinition``)."""
    return frozenset(str(name) for name in service_model().operation_names)


def validate_request(operation_name: str, params: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a request body for ``operation_name``; empty when botocore accepts it."""
    return _validate(_operation(operation_name).input_shape, params)


def validate_output(operation_name: str, body: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a response body for ``operation_name``; empty when it matches the
    model. ``JobDetail.startedAt`` may be missing: AWS omits it until the job runs."""
    return _validate(_operation(operation_name).output_shape, body)


@lru_cache(maxsize=1)
def _logs_model() -> Any:
    return botocore.session.get_session().get_service_model("logs")


@lru_cache(maxsize=1)
def logs_operation_names() -> frozenset[str]:
    """Every CloudWatch Logs operation (``GetLogEvents``)."""
    return frozenset(str(name) for name in _logs_model().operation_names)


def validate_logs_request(operation_name: str, params: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a CloudWatch Logs request body; empty when botocore accepts it.
    botocore checks types, required members and minimums (not maximums, enums or patterns)."""
    return _validate(_logs_operation(operation_name).input_shape, params, "CloudWatch Logs")


def validate_logs_output(operation_name: str, body: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a CloudWatch Logs response body; empty when it matches the model."""
    return _validate(_logs_operation(operation_name).output_shape, body, "CloudWatch Logs")


def _logs_operation(name: str) -> Any:
    if name not in logs_operation_names():
        raise ValueError(f"CloudWatch Logs has no operation {name!r}")
    return _logs_model().operation_model(name)


def _operation(name: str) -> Any:
    if name not in operation_names():
        raise ValueError(f"AWS Batch has no operation {name!r}")
    return service_model().operation_model(name)


def _validate(shape: Any, params: Mapping[str, Any], service: str = "AWS Batch") -> list[Problem]:
    if shape is None:
        return [] if not params else [Problem("", "this operation takes no body")]
    report = ParamValidator().validate(dict(params), shape)
    # The report keeps its errors as (reason, name, details) tuples; botocore has no public
    # accessor, and its text report loses the structure this module needs.
    errors: list[tuple[str, str, dict[str, Any]]] = list(getattr(report, "_errors", []))
    if report.has_errors() and not errors:  # botocore changed its internals: keep its words
        return [Problem("", line) for line in str(report.generate_report()).splitlines()]
    problems = []
    for reason, name, details in errors:
        if reason == "missing required field" and _ignored(shape, name, details["required_name"]):
            continue
        problems.append(_problem(reason, name, details, service))
    return problems


def _ignored(root: Any, name: str, member: str) -> bool:
    shape = _shape_at(root, name)
    return shape is not None and (shape.name, member) in _IGNORED_MISSING


def _shape_at(shape: Any, name: str) -> Any:
    """The shape at a botocore error name like ``.jobs[0].container``, or None."""
    for member, index in _SEGMENT.findall(name):
        if index:
            shape = shape.member if shape.type_name == "list" else None
        elif shape.type_name == "structure" and member in shape.members:
            shape = shape.members[member]
        elif shape.type_name == "map":
            shape = shape.value
        else:
            return None
        if shape is None:
            return None
    return shape


def _path(name: str, member: str = "") -> str:
    path = _MAP_KEY.sub(lambda m: "." + m.group(1), name).lstrip(".")
    if member:
        path = f"{path}.{member}" if path else member
    return path


def _problem(reason: str, name: str, details: Mapping[str, Any], service: str) -> Problem:
    if reason == "missing required field":
        return Problem(_path(name, details["required_name"]), f"required by {service}, but missing")
    if reason == "unknown field":
        key, allowed = str(details["unknown_param"]), [str(n) for n in details["valid_names"]]
        return Problem(_path(name, key), unknown_key_message(key, allowed))
    if reason in ("invalid type", "invalid type for document"):
        expected = " or ".join(dict.fromkeys(_TYPE_WORDS.get(t, t) for t in details["valid_types"]))
        return Problem(_path(name), f"expected {expected}, got {describe(details['param'], json=True)}")
    if reason == "invalid range":
        return Problem(_path(name), f"must be at least {details['min_allowed']}, got {details['param']}")
    if reason == "invalid length":
        return Problem(_path(name), f"must have a length of at least {details['min_allowed']}")
    return Problem(_path(name), reason)
