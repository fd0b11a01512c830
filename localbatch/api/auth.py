"""Who may call the TCP listener: every request signed with SigV4 by a key of the home's
keyring (``api_credentials``), checked with botocore's signer (``awsbatch.sigv4``).

One exception, for clients that cannot sign: ``GET /metrics`` (read-only counters, for
scrapers) and ``GET /dashboard`` and its pages (read-only HTML, for browsers) also accept a key
sent whole, as HTTP Basic (user = access key id, password = secret) or as ``Authorization:
Bearer <access key id>:<secret>``, compared in constant time. Nothing else accepts it, so a
leaked scrape config can read metrics and do nothing more. A dashboard request without a valid
key gets 401 with ``WWW-Authenticate: Basic``, so a browser asks for the key.

Batch operations are signed for service ``batch``, the CloudWatch Logs subset (an
``X-Amz-Target: Logs_20140328.*`` request) for ``logs``. A refused request gets 403 in AWS's
error shape and runs nothing; an accepted one is handled as the key's name (what the daemon
records as the submitter of its jobs). The keyring is read again when its file changes, so a key added
with ``localbatch credentials --add`` works without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from localbatch.api.errors import ApiError
from localbatch.api.logs_api import TARGET_PREFIX
from localbatch.api.server import ApiRequest, Authenticator
from localbatch.api_credentials import Keyring, keyring_path, read_keyring
from localbatch.awsbatch.sigv4 import SignatureError, verify

__all__ = ["sigv4_authenticator"]


def sigv4_authenticator(home: Path, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> Authenticator:
    """An ``Api`` authenticator for the keys in ``home``'s keyring, returning the signing key's
    name; ``now`` is the clock the 15-minute skew is measured on."""
    keys = _CachedKeyring(home)

    def authenticate(request: ApiRequest) -> str:
        path = request.target.partition("?")[0]
        if request.method == "GET" and (path in PLAIN_KEY_PATHS or _is_dashboard(path)):
            header = request.headers.get("authorization", "")
            if not header.startswith("AWS4-"):
                return _plain_key(header, keys.current(), path)
        logs = request.headers.get("x-amz-target", "").startswith(TARGET_PREFIX + ".")
        keyring = keys.current()
        try:
            key_id = verify(
                request.method,
                request.target,
                request.headers,
                request.body,
                secret_for=keyring.secret_for,
                services={"logs"} if logs else {"batch"},
                now=now(),
            )
        except SignatureError as exc:
            raise ApiError(exc.code, 403, exc.message) from None
        key = keyring.find(key_id)
        assert key is not None  # verify only accepts a key the keyring has a secret for
        return key.name

    return authenticate


PLAIN_KEY_PATHS = frozenset({"/metrics"})  # with the dashboard's, the only paths a key sent whole may read
DASHBOARD = "/dashboard"


def _is_dashboard(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def _plain_key(header: str, keyring: Keyring, path: str) -> str:
    """The name of the key ``header`` (Basic or Bearer) carries; 403 for anything else."""
    scheme, _, value = header.partition(" ")
    pair = ""
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            pair = ""
    elif scheme.lower() == "bearer":
        pair = value.strip()
    key_id, _, secret = pair.partition(":")
    key = keyring.find(key_id) if key_id else None
    if key is None or not hmac.compare_digest(secret.encode(), key.secret_access_key.encode()):
        if _is_dashboard(path):
            raise ApiError(
                "UnrecognizedClientException",
                401,
                "the dashboard needs a key of `localbatch credentials` as HTTP Basic (user = access key id, "
                "password = secret); `localbatch dashboard` prints them",
            )
        raise ApiError(
            "UnrecognizedClientException",
            403,
            "GET /metrics needs a SigV4 signature or a key of `localbatch credentials` as HTTP Basic "
            "(access key id, secret) or Bearer <access key id>:<secret>",
        )
    return key.name


class _CachedKeyring:
    def __init__(self, home: Path) -> None:
        self._path = keyring_path(home)
        self._home = home
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._keyring = Keyring(())

    def current(self) -> Keyring:
        try:
            info = self._path.stat()
            stamp = (info.st_mtime_ns, info.st_ino)
        except FileNotFoundError:
            return Keyring(())
        with self._lock:
            if stamp != self._stamp:
                self._keyring, self._stamp = read_keyring(self._home), stamp
            return self._keyring
