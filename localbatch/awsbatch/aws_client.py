"""The real AWS Batch (or any endpoint that speaks its API), through boto3: the only module
that imports boto3.

``connect`` makes a boto3 Batch client from a ``Target`` (region, profile, endpoint URL;
each from the command line, else the config's ``[aws]``, else AWS's own configuration:
``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_BATCH``, ``~/.aws``). ``AwsBackend``
puts it behind ``session.Backend``, so ``session.submit`` / ``describe`` / ``list_jobs``
work on AWS exactly as on the local daemon. Every botocore failure becomes a ``CloudError``
naming AWS's error code here, at the border.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3  # type: ignore[import-untyped, unused-ignore]
import botocore.exceptions  # type: ignore[import-untyped, unused-ignore]
from botocore.config import Config  # type: ignore[import-untyped, unused-ignore]

from localbatch.awsbatch.jobdefinition import LOCAL_MEMBER
from localbatch.cloud_settings import CloudSettings
from localbatch.errors import CloudError, UsageError

__all__ = ["AwsBackend", "Target", "connect"]

# Throttling and transient errors are retried by botocore's "standard" mode (3 attempts).
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)


@dataclass(frozen=True)
class Target:
    """Where AWS Batch calls go; None: let boto3 find it (environment, ~/.aws)."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def with_defaults(self, cloud: CloudSettings) -> Target:
        """Command-line values first, then the config's ``[aws]``."""
        return Target(
            region=self.region or cloud.region,
            profile=self.profile or cloud.profile,
            endpoint_url=self.endpoint_url,
        )


def connect(target: Target) -> Any:
    """A boto3 Batch client for ``target`` (untyped: boto3 ships no hints)."""
    try:
        session = boto3.session.Session(profile_name=target.profile, region_name=target.region)
    except botocore.exceptions.ProfileNotFound:
        raise UsageError(f"--profile {target.profile}: no such AWS profile (see ~/.aws/config)") from None
    if session.region_name is None:
        raise CloudError(
            "NoRegion",
            "no AWS region: give --region, set region in the config's [aws] table, or set AWS_REGION",
        )
    return session.client("batch", endpoint_url=target.endpoint_url, config=_CLIENT_CONFIG)


def call(client: Any, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One AWS Batch operation (``SubmitJob``) with ``body``; AWS's answer without its metadata."""
    method = getattr(client, _snake(operation))
    try:
        answer: dict[str, Any] = method(**dict(body or {}))
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        raise CloudError(error.get("Code", "Unknown"), error.get("Message", str(exc)), operation) from None
    except botocore.exceptions.ParamValidationError as exc:
        raise CloudError("ParamValidation", str(exc.kwargs.get("report", exc)).strip(), operation) from None
    except botocore.exceptions.NoCredentialsError:
        raise CloudError(
            "NoCredentials",
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, give --profile, or run aws configure",
            operation,
        ) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise CloudError(
            "EndpointUnreachable", f"nothing answers at {exc.kwargs.get('endpoint_url')}", operation
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise CloudError(type(exc).__name__, str(exc), operation) from None
    answer.pop("ResponseMetadata", None)
    return answer


def _snake(operation: str) -> str:
    """``SubmitJob`` -> ``submit_job``, as boto3 names its methods."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


class AwsBackend:
    """``session.Backend`` on AWS Batch. localbatch's own extensions (logs, events, interrupt)
    have no AWS operation, and say so."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def call(self, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {k: v for k, v in (body or {}).items() if k != LOCAL_MEMBER}  # AWS has no such member
        return call(self._client, operation, body)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        raise UsageError(f"{path}: a localbatch extension; AWS Batch has no such operation")

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[bytes]:
        raise UsageError(f"{path}: a localbatch extension; AWS Batch has no such operation")

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        raise UsageError(f"{path}: a localbatch extension; AWS Batch has no such operation")
