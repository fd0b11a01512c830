"""Every error localbatch raises on purpose, under one root.

Catch ``LocalbatchError`` to catch them all. Adapters translate their SDK's
exceptions into these at the border (``raise ... from exc``); the CLI maps them
to exit codes in one place (``cli/_common.py``) and the HTTP API to AWS error shapes in
one place.

    LocalbatchError
    ├── JobDefinitionError        a job definition (TOML or AWS JSON) is invalid; carries every problem
    ├── ConfigError               the settings file or LOCALBATCH_* environment is invalid
    ├── UsageError                a command-line argument is invalid
    ├── InvalidRequest            an API request is invalid or not allowed now; names the field
    ├── NotFound
    │   ├── JobNotFound
    │   ├── JobDefinitionNotFound
    │   ├── JobQueueNotFound
    │   ├── ComputeEnvironmentNotFound
    │   └── SchedulingPolicyNotFound
    ├── InvalidTransition         a job state change AWS Batch does not allow
    ├── ContainerRuntimeError     the container engine refused or failed an operation
    │   ├── RuntimeUnavailable    the engine does not answer
    │   └── ImageError            the image is missing and cannot be pulled
    ├── StateStoreError           the SQLite state store failed
    │   └── StateStoreFull        its disk is full: nothing was written
    ├── ObjectStoreError          the S3-compatible object store refused or failed an operation
    │   ├── StoreUnreachable      nothing answers at the endpoint
    │   ├── StoreAccessDenied     the credentials are missing, unknown or not allowed
    │   └── NoSuchBucket          the bucket does not exist
    ├── HostProbeError            the host inventory could not be read
    ├── ExportError               what would go to AWS Batch breaks its rules, or lacks a cloud-only value
    └── CloudError                AWS Batch (or an endpoint speaking its API) refused or failed a call
"""

from __future__ import annotations

from dataclasses import dataclass


class LocalbatchError(Exception):
    """Root of every error localbatch raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is, and what is wrong with it.

    ``path`` is the key path inside the document (``retry.evaluate_on_exit[0].action``),
    empty for the document as a whole.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class JobDefinitionError(LocalbatchError):
    """Raised when a job definition is invalid. ``problems`` lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {p}" for p in problems]
        super().__init__("\n".join(lines))


class ConfigError(LocalbatchError):
    """Raised when the settings file or LOCALBATCH_* environment is invalid."""


class UsageError(LocalbatchError):
    """Raised when a command-line argument is invalid."""


class InvalidRequest(LocalbatchError):
    """Raised when an API request is invalid, or not allowed in the current state (a disabled
    queue, a compute environment still in use). ``problems`` name the request's fields."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class NotFound(LocalbatchError):
    """Raised when a named object does not exist."""


class JobNotFound(NotFound):
    """Raised when no job has the given id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} does not exist")


class JobDefinitionNotFound(NotFound):
    """Raised when no ACTIVE job definition matches a name, name:revision or ARN."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"job definition {ref!r} does not exist")


class JobQueueNotFound(NotFound):
    """Raised when no job queue has the given name or ARN."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"job queue {ref!r} does not exist")


class ComputeEnvironmentNotFound(NotFound):
    """Raised when no compute environment has the given name or ARN."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"compute environment {ref!r} does not exist")


class SchedulingPolicyNotFound(NotFound):
    """Raised when no scheduling policy has the given name or ARN."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"scheduling policy {ref!r} does not exist")


class ConsumableResourceNotFound(NotFound):
    """Raised when no consumable resource has the given name or ARN."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"consumable resource {ref!r} does not exist")


class InvalidTransition(LocalbatchError):
    """Raised when code asks for a job state change AWS Batch does not allow."""

    def __init__(self, job_id: str, from_status: str, to_status: str) -> None:
        self.job_id = job_id
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(f"job {job_id}: no transition {from_status} -> {to_status}")


class ContainerRuntimeError(LocalbatchError):
    """Raised when the container engine refuses or fails an operation."""


class RuntimeUnavailable(ContainerRuntimeError):
    """Raised when the container engine does not answer at all."""


class ImageError(ContainerRuntimeError):
    """Raised when an image is not on the host and cannot be pulled."""

    def __init__(self, image: str, detail: str) -> None:
        self.image = image
        self.detail = detail
        super().__init__(f"image {image!r}: {detail}")


class StateStoreError(LocalbatchError):
    """Raised when the state store cannot be read or written."""


class StateStoreFull(StateStoreError):
    """Raised when the state database's disk is full; the transaction was rolled back whole."""


class ObjectStoreError(LocalbatchError):
    """Raised when the S3-compatible object store refused or failed an operation."""


class StoreUnreachable(ObjectStoreError):
    """Raised when nothing answers at the store's endpoint."""


class StoreAccessDenied(ObjectStoreError):
    """Raised when the store refuses the credentials (missing, unknown key, wrong secret)."""


class NoSuchBucket(ObjectStoreError):
    """Raised when a bucket an operation names does not exist."""


class HostProbeError(LocalbatchError):
    """Raised when the host's CPUs, memory or GPUs cannot be read."""


class ExportError(LocalbatchError):
    """Raised when what would go to AWS Batch breaks one of its rules or lacks a cloud-only
    value (a subnet, a role). ``problems`` name each file or config table and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class CloudError(LocalbatchError):
    """Raised when AWS Batch refuses or fails a call. ``code`` is AWS's error code
    (``ClientException``, ``AccessDeniedException``, ...) or one of localbatch's for what never
    reached AWS (``NoCredentials``, ``NoRegion``, ``EndpointUnreachable``)."""

    def __init__(self, code: str, message: str, operation: str | None = None) -> None:
        self.code = code
        self.operation = operation
        self.message = message
        where = f" ({operation})" if operation else ""
        super().__init__(f"AWS Batch{where}: {code}: {message}")
