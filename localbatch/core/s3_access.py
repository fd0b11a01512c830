"""What a job container is told about the object store (issue 5, item 4): pure rules.

Every container gets the variables unmodified AWS SDK and CLI code reads, pointing at the
configured store, so ``boto3.client("s3")`` or ``aws s3 cp`` work locally as on AWS:

- ``AWS_ENDPOINT_URL_S3`` (and ``AWS_ENDPOINT_URL`` when the definition's
  ``[s3_access] generic_endpoint = true``);
- ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``, only when both are configured;
- ``AWS_DEFAULT_REGION`` and ``AWS_REGION``.

They are added at launch only (like ``AWS_BATCH_*``), never stored with the job. The job's
own environment wins, group by group, so a job may point elsewhere without mixing two
configurations: any endpoint variable of its own -> no endpoint injected; any credential
variable of its own (key, secret, session token, profile) -> no credentials injected; any
region variable -> no region injected. ``[s3_access] enabled = false`` injects nothing.

The address must work from inside the container. With host networking (or none) the
endpoint is passed as configured. On a bridge or user-defined network the container's
loopback is its own, so an endpoint on a loopback address (``127.x``, ``localhost``,
``::1``, ``0.0.0.0``) is rewritten to ``host.docker.internal``, which the runtime maps to
the host's gateway address (Docker's ``host-gateway``). Other hosts are passed unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from localbatch.core.spec import S3Access

HOST_ALIAS = "host.docker.internal"  # the name a bridged container reaches the host by
HOST_GATEWAY = "host-gateway"  # Docker's placeholder for the host's address on the network

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
REGION_VARIABLES = ("AWS_DEFAULT_REGION", "AWS_REGION")
_NO_REWRITE_MODES = frozenset({"host", "none"})
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[^\]]*\]|[^:/\[\]]*)(?P<rest>.*)", re.IGNORECASE)
_LOOPBACK_V4 = re.compile(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_LOOPBACK_NAMES = frozenset({"localhost", "0.0.0.0", "::1", "::", "0:0:0:0:0:0:0:1", "0:0:0:0:0:0:0:0"})


@dataclass(frozen=True)
class StoreView:
    """The store as containers are told of it: plain values (``store_settings`` resolves them)."""

    url: str  # http(s)://host:port as configured
    region: str
    access_key: str | None = None
    secret_key: str | None = None

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"StoreView(url={self.url!r}, region={self.region!r}, access_key={self.access_key!r})"


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8``, ``::1`` and the unspecified ``0.0.0.0`` / ``::``."""
    name = host.strip("[]").lower().rstrip(".")
    return name in _LOOPBACK_NAMES or name.endswith(".localhost") or bool(_LOOPBACK_V4.fullmatch(name))


def container_endpoint(url: str, network_mode: str) -> tuple[str, bool]:
    """The endpoint URL a container on ``network_mode`` reaches ``url`` at, and whether the
    container needs the ``host.docker.internal`` -> host-gateway mapping for it."""
    if network_mode in _NO_REWRITE_MODES:
        return url, False
    parts = _URL.fullmatch(url)
    if parts is None or not is_loopback(parts["host"]):
        return url, False
    return f"{parts['scheme']}://{HOST_ALIAS}{parts['rest']}", True


def store_environment(store: StoreView, access: S3Access, job_environment: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to a container whose own environment is ``job_environment``,
    ``store.url`` already made reachable (``container_endpoint``). Never the job's own names."""
    if not access.enabled:
        return {}
    env: dict[str, str] = {}
    if not any(name in job_environment for name in ENDPOINT_VARIABLES):
        env["AWS_ENDPOINT_URL_S3"] = store.url
        if access.generic_endpoint:
            env["AWS_ENDPOINT_URL"] = store.url
    if store.access_key and store.secret_key and not any(name in job_environment for name in CREDENTIAL_VARIABLES):
        env["AWS_ACCESS_KEY_ID"] = store.access_key
        env["AWS_SECRET_ACCESS_KEY"] = store.secret_key
    if not any(name in job_environment for name in REGION_VARIABLES):
        env["AWS_DEFAULT_REGION"] = store.region
        env["AWS_REGION"] = store.region
    return env
