"""The job definition: the canonical in-memory form of one TOML file.

It holds everything a RegisterJobDefinition request can say that localbatch supports,
plus localbatch's own settings (S3 staging and access, on the container). ``jobdef.py`` builds it from TOML,
``awsbatch.jobdefinition`` converts it to and from AWS's request, losslessly for every
field AWS has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from localbatch.core.consumables import Need
from localbatch.core.retry import RetryStrategy
from localbatch.core.spec import ContainerSpec

# AWS's own minimum for timeout.attemptDurationSeconds. Shorter timeouts run locally
# (so users can test timeouts without waiting a minute) but cannot be exported.
AWS_MIN_TIMEOUT_S = 60
MAX_SCHEDULING_PRIORITY = 9999
MAX_TAGS = 50
MAX_TAG_KEY_CHARS = 128
MAX_TAG_VALUE_CHARS = 256
RESERVED_ENV_PREFIX = "AWS_BATCH"


def tag_key_problem(key: str) -> str | None:
    """AWS's rule for a tag key (a job definition's or a submission's)."""
    if not 1 <= len(key) <= MAX_TAG_KEY_CHARS:
        return f"tag keys must be 1 to {MAX_TAG_KEY_CHARS} characters, got {len(key)}"
    if key.lower().startswith("aws:"):
        return "tag keys starting with 'aws:' are reserved for AWS"
    return None


class PlatformCapability(str, Enum):
    EC2 = "EC2"
    FARGATE = "FARGATE"


@dataclass(frozen=True)
class LogConfiguration:
    """Exported as is; locally every attempt's output goes to its log file regardless."""

    log_driver: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FargateSettings:
    """Fargate-only containerProperties. No local meaning; exported as is."""

    platform_version: str | None = None
    assign_public_ip: str | None = None  # ENABLED | DISABLED
    ephemeral_storage_gib: int | None = None
    cpu_architecture: str | None = None  # X86_64 | ARM64
    operating_system_family: str | None = None


@dataclass(frozen=True)
class NodeRangeProperty:
    """One ``nodeRangeProperties`` entry of a multi-node parallel definition: the container of
    the nodes ``target_nodes`` names ("a:b", ":b", "a:" or "a", node indexes from 0)."""

    target_nodes: str
    container: ContainerSpec
    instance_types: tuple[str, ...] = ()  # exported as is; no local meaning (one host)


@dataclass(frozen=True)
class NodeProperties:
    """A multi-node parallel definition's ``nodeProperties`` (aws-batch-reference.md §5.3)."""

    num_nodes: int
    main_node: int
    node_range_properties: tuple[NodeRangeProperty, ...]


@dataclass(frozen=True)
class JobDefinition:
    name: str
    container: ContainerSpec
    type: str = "container"
    parameters: Mapping[str, str] = field(default_factory=dict)
    retry_strategy: RetryStrategy = field(default_factory=RetryStrategy)
    timeout_s: int | None = None  # timeout.attempt_duration_seconds
    platform_capabilities: tuple[PlatformCapability, ...] = (PlatformCapability.EC2,)
    scheduling_priority: int | None = None
    propagate_tags: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    log_configuration: LogConfiguration | None = None
    fargate: FargateSettings | None = None
    # type "multinode" only; ``container`` is then the main node's container.
    node_properties: NodeProperties | None = None
    consumable_resources: tuple[Need, ...] = ()  # (name, quantity): core.consumables
