"""The config file's ``[aws]`` table: what only the cloud has (issue 6).

A local compute environment is a slice of this host; on AWS Batch it is a fleet that needs
subnets, security groups, an instance role, instance types, Spot or On-Demand. A job on AWS
may need a job role and, on Fargate, an execution role. None of these mean anything locally,
so they live here, and ``export`` / ``deploy`` read them::

    [aws]
    region = "eu-west-1"                 # where deploy goes (else --region, else AWS's own config)
    profile = "prod"                     # an AWS CLI profile (else --profile, else the default)
    account_id = "123456789012"          # for ARNs the aws-json export writes (a queue's policy)
    subnets = ["subnet-0abc"]            # every compute environment's, unless it gives its own
    security_group_ids = ["sg-0abc"]
    instance_role = "ecsInstanceRole"    # EC2 and SPOT environments' instance profile
    service_role = "arn:aws:iam::123456789012:role/AWSBatchServiceRole"  # optional
    instance_types = ["optimal"]         # the default
    job_role_arn = "arn:aws:iam::123456789012:role/batch-job"      # for definitions naming none
    execution_role_arn = "arn:aws:iam::123456789012:role/ecs-exec" # for definitions naming none

    [aws.compute_environments.gpu]       # one local compute environment's cloud side
    type = "SPOT"                        # EC2 | SPOT | FARGATE | FARGATE_SPOT (default: SPOT when
                                         # the local one has spot = true, else EC2)
    max_vcpus = 256                      # default: the local max_vcpus, rounded up
    min_vcpus = 0
    desired_vcpus = 0
    instance_types = ["g5", "g6"]
    allocation_strategy = "SPOT_PRICE_CAPACITY_OPTIMIZED"
    bid_percentage = 60                  # SPOT only
    spot_iam_fleet_role = "arn:..."      # SPOT with allocation_strategy BEST_FIT only
    subnets = [...]; security_group_ids = [...]; instance_role = "..."; service_role = "..."

Nothing here is checked against AWS until export or deploy, which say which value is missing
and where to set it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from localbatch.errors import ConfigError
from localbatch.validation import problems_from


class _Fleet(BaseModel):
    """What every compute environment takes from ``[aws]`` unless it gives its own."""

    model_config = ConfigDict(extra="forbid", strict=True)
    subnets: list[str] | None = Field(default=None, min_length=1)
    security_group_ids: list[str] | None = Field(default=None, min_length=1)
    instance_role: str | None = Field(default=None, min_length=1)
    service_role: str | None = Field(default=None, min_length=1)
    instance_types: list[str] | None = Field(default=None, min_length=1)


class _EnvironmentTable(_Fleet):
    type: Literal["EC2", "SPOT", "FARGATE", "FARGATE_SPOT"] | None = None
    max_vcpus: int | None = Field(default=None, ge=1)
    min_vcpus: int | None = Field(default=None, ge=0)
    desired_vcpus: int | None = Field(default=None, ge=0)
    allocation_strategy: (
        Literal["BEST_FIT", "BEST_FIT_PROGRESSIVE", "SPOT_CAPACITY_OPTIMIZED", "SPOT_PRICE_CAPACITY_OPTIMIZED"] | None
    ) = None
    bid_percentage: int | None = Field(default=None, ge=0, le=100)
    spot_iam_fleet_role: str | None = Field(default=None, min_length=1)


class _AwsTable(_Fleet):
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    profile: str | None = Field(default=None, min_length=1)
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    job_role_arn: str | None = Field(default=None, min_length=1)
    execution_role_arn: str | None = Field(default=None, min_length=1)
    compute_environments: dict[str, _EnvironmentTable] = Field(default_factory=dict)


@dataclass(frozen=True)
class Fleet:
    """A compute environment's cloud-only values; None: not given."""

    subnets: tuple[str, ...] | None = None
    security_group_ids: tuple[str, ...] | None = None
    instance_role: str | None = None
    service_role: str | None = None
    instance_types: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EnvironmentCloud(Fleet):
    """``[aws.compute_environments.NAME]``: one environment's own values."""

    type: str | None = None
    max_vcpus: int | None = None
    min_vcpus: int | None = None
    desired_vcpus: int | None = None
    allocation_strategy: str | None = None
    bid_percentage: int | None = None
    spot_iam_fleet_role: str | None = None


@dataclass(frozen=True)
class CloudSettings:
    """The ``[aws]`` table, checked; ``where`` names the file in messages."""

    where: str = "the config file"
    region: str | None = None
    profile: str | None = None
    account_id: str | None = None
    job_role_arn: str | None = None
    execution_role_arn: str | None = None
    defaults: Fleet = Fleet()
    compute_environments: Mapping[str, EnvironmentCloud] = field(default_factory=dict)

    def environment(self, name: str) -> EnvironmentCloud:
        return self.compute_environments.get(name, EnvironmentCloud())


def resolve_cloud(table: object, where: str) -> CloudSettings:
    """``[aws]`` from the config file (``table``; None when absent); ConfigError names each problem."""
    if table is None:
        return CloudSettings(where=where)
    try:
        parsed = _AwsTable.model_validate(table)
    except ValidationError as exc:
        lines = [
            f"{where}: aws.{p.path}: {p.message}" if p.path else f"{where}: [aws]: {p.message}"
            for p in problems_from(exc, _AwsTable)
        ]
        raise ConfigError("\n".join(lines)) from None
    return CloudSettings(
        where=where,
        region=parsed.region,
        profile=parsed.profile,
        account_id=parsed.account_id,
        job_role_arn=parsed.job_role_arn,
        execution_role_arn=parsed.execution_role_arn,
        defaults=Fleet(**_fleet(parsed)),
        compute_environments={
            name: EnvironmentCloud(
                **_fleet(env),
                **env.model_dump(exclude=set(_Fleet.model_fields)),
            )
            for name, env in parsed.compute_environments.items()
        },
    )


def _fleet(table: _Fleet) -> dict[str, Any]:
    values = table.model_dump(include=set(_Fleet.model_fields))
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
