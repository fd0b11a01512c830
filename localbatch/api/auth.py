"""Who may call the TCP listener: every request signed with SigV4 by a key of the home's
keyring (``api_credentials``), checked with botocore's signer (``awsbatch.sigv4``).

Batch operations are signed for service ``batch``, the CloudWatch Logs subset (an
``X-Amz-Target: Logs_20140328.*`` request) for ``logs``. A refused request gets 403 in AWS's
error shape and runs nothing; an accepted one is handled as the key's name (what the daemon
records as the submitter of its jobs). The keyring is read again when its file changes, so a key added
with ``localbatch credentials --add`` works without a restart.
"""

from __future__ import annotations

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
