"""Where the S3-compatible object store is and how to sign in to it (issue 5, item 1).

Each value comes from the first of these that gives it, and ``StoreSettings.sources`` says
which (``store status`` prints it):

1. the environment's ``LOCALBATCH_S3_ENDPOINT``, ``LOCALBATCH_S3_ACCESS_KEY``,
   ``LOCALBATCH_S3_SECRET_KEY``, ``LOCALBATCH_S3_REGION``, ``LOCALBATCH_S3_SECURE``;
2. the config file's ``[store]`` table (``endpoint``, ``access_key``, ``secret_key``,
   ``region``, ``secure``);
3. the credentials ``localbatch store up`` generated (``$LOCALBATCH_HOME/store/credentials.json``:
   ``access_key`` and ``secret_key``), source ``store up credentials``;
4. the usual AWS environment: ``AWS_ENDPOINT_URL_S3`` (else ``AWS_ENDPOINT_URL``),
   ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (else ``AWS_REGION``);
5. the endpoint ``store up`` last started its server on (the same file's ``endpoint``), source
   ``store up``;
6. defaults: MinIO's own address, ``http://127.0.0.1:9000``, and region ``us-east-1``; no
   credentials.

The ``[store]`` table also says how ``store up`` starts a server (``server_command``,
``server_image``, ``server_port``); ``store_server.server_options`` checks those.

An endpoint is a URL (``http://host:port`` or ``https://...``) or a bare ``host:port``; its
scheme decides TLS unless ``secure`` is given. The secret key is never printed: it is left out
of ``repr`` and of everything ``describe`` shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from localbatch.errors import ConfigError

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_REGION = "us-east-1"

_OURS = {
    "endpoint": "LOCALBATCH_S3_ENDPOINT",
    "access_key": "LOCALBATCH_S3_ACCESS_KEY",
    "secret_key": "LOCALBATCH_S3_SECRET_KEY",
    "region": "LOCALBATCH_S3_REGION",
    "secure": "LOCALBATCH_S3_SECURE",
}
_AWS = {
    "endpoint": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "access_key": ("AWS_ACCESS_KEY_ID",),
    "secret_key": ("AWS_SECRET_ACCESS_KEY",),
    "region": ("AWS_DEFAULT_REGION", "AWS_REGION"),
}
SERVER_KEYS = ("server_command", "server_image", "server_port")  # store up's; see store_server
CREDENTIALS_SOURCE = "store up credentials"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class StoreSettings:
    endpoint: str  # host:port, as the minio client takes it
    secure: bool  # TLS
    region: str
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict)  # value -> where it came from

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_key and self.secret_key)


def resolve_store(
    env: Mapping[str, str],
    table: Mapping[str, Any],
    where: str,
    credentials: Mapping[str, str] | None = None,
) -> StoreSettings:
    """The store's settings from ``env``, the config file's ``[store]`` ``table`` (read from
    ``where``, named in errors) and the ``credentials`` ``store up`` generated, if any
    (``access_key``, ``secret_key``, ``endpoint``)."""
    allowed = (*_OURS, *SERVER_KEYS, "log_bucket")  # log_bucket: read by resolve_log_bucket
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: [store] {', '.join(unknown)}: unknown key; allowed: {', '.join(allowed)}")
    generated = credentials or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, ours in _OURS.items():
        if env.get(ours):
            values[key], sources[key] = env[ours], ours
        elif table.get(key) is not None:
            values[key], sources[key] = table[key], f"{where} [store] {key}"
        elif key in ("access_key", "secret_key") and generated.get(key):
            values[key], sources[key] = generated[key], CREDENTIALS_SOURCE
        else:
            for name in _AWS.get(key, ()):
                if env.get(name):
                    values[key], sources[key] = env[name], name
                    break
    if "endpoint" not in values and generated.get("endpoint"):
        values["endpoint"], sources["endpoint"] = generated["endpoint"], "store up"
    for key in ("endpoint", "access_key", "secret_key", "region"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"{sources[key]}: [store] {key} must be a string, got {values[key]!r}")
    endpoint, scheme_secure = _endpoint(values.get("endpoint", DEFAULT_ENDPOINT), sources.get("endpoint", "default"))
    sources.setdefault("endpoint", "default")
    secure = _secure(values["secure"], sources["secure"]) if "secure" in values else scheme_secure
    region = values.get("region") or DEFAULT_REGION
    sources.setdefault("region", "default")
    return StoreSettings(
        endpoint=endpoint,
        secure=secure,
        region=region,
        access_key=values.get("access_key") or None,
        secret_key=values.get("secret_key") or None,
        sources=sources,
    )


def _endpoint(text: str, source: str) -> tuple[str, bool]:
    """(host:port, TLS by its scheme) from a URL or a bare host:port."""
    url = text if "://" in text else f"http://{text}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
        raise ConfigError(
            f"{source}: {text!r} is not an S3 endpoint; give http://host:port, https://host:port or host:port"
        )
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{source}: {text!r} has no valid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return (f"{host}:{port}" if port else host), parts.scheme == "https"


def _secure(value: object, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{source}: {value!r} is not true or false")


LOG_BUCKET_VARIABLE = "LOCALBATCH_S3_LOG_BUCKET"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's general-purpose bucket rule


def resolve_log_bucket(env: Mapping[str, str], value: object, where: str) -> str | None:
    """The bucket each attempt's log is archived to (issue 5, item 5): ``LOCALBATCH_S3_LOG_BUCKET``,
    else the config file's ``[store] log_bucket`` (``value``, read from ``where``); None: no archive."""
    source = LOG_BUCKET_VARIABLE if env.get(LOG_BUCKET_VARIABLE) else f"{where} [store] log_bucket"
    bucket = env.get(LOG_BUCKET_VARIABLE) or value
    if bucket is None:
        return None
    if not isinstance(bucket, str) or not _BUCKET_NAME.fullmatch(bucket):
        raise ConfigError(
            f"{source}: {bucket!r} is not a bucket name: 3 to 63 lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return bucket
