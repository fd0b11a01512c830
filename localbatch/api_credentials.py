"""The access keys of the daemon's TCP listener (issue 7): AWS-style access key ids and
secrets, kept in ``$LOCALBATCH_HOME/api/credentials.json`` (mode 0600).

The first key, named ``owner``, is generated the first time one is needed (the daemon's start
with ``--listen``, or ``localbatch credentials``). A shared workstation adds one key per
person (``localbatch credentials --add alice``); a key's name is what the daemon records as
the submitter of the jobs submitted with it. Secrets are only ever printed by
``localbatch credentials`` itself.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from localbatch.errors import ConfigError, UsageError
from localbatch.private_file import write_private_json

__all__ = [
    "AccessKey",
    "Keyring",
    "add_key",
    "ensure_keyring",
    "forget_endpoint",
    "keyring_path",
    "read_endpoint",
    "read_keyring",
    "remember_endpoint",
]

OWNER = "owner"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class AccessKey:
    name: str
    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:  # never the secret
        return f"AccessKey(name={self.name!r}, access_key_id={self.access_key_id!r})"


@dataclass(frozen=True)
class Keyring:
    keys: tuple[AccessKey, ...]

    def secret_for(self, access_key_id: str) -> str | None:
        found = self.find(access_key_id)
        return None if found is None else found.secret_access_key

    def find(self, access_key_id: str) -> AccessKey | None:
        return next((k for k in self.keys if k.access_key_id == access_key_id), None)

    def named(self, name: str) -> AccessKey | None:
        return next((k for k in self.keys if k.name == name), None)


def keyring_path(home: Path) -> Path:
    return home / "api" / "credentials.json"


def read_keyring(home: Path) -> Keyring:
    """The keys on file; none when there is no file; ConfigError when it is unreadable."""
    path = keyring_path(home)
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return Keyring(())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the API credentials: {exc}") from None
    entries = raw.get("keys") if isinstance(raw, dict) else None
    fields = ("name", "access_key_id", "secret_access_key")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and all(isinstance(e.get(f), str) for f in fields) for e in entries
    ):
        raise ConfigError(f'{path}: expected {{"keys": [{{{", ".join(fields)}}}, ...]}}; remove it to start anew')
    return Keyring(tuple(AccessKey(e["name"], e["access_key_id"], e["secret_access_key"]) for e in entries))


def ensure_keyring(home: Path) -> Keyring:
    """The keys on file, with the ``owner`` key generated (0600) the first time."""
    keyring = read_keyring(home)
    if keyring.named(OWNER) is not None:
        return keyring
    return _write(home, Keyring((*keyring.keys, _new_key(OWNER))))


def add_key(home: Path, name: str) -> AccessKey:
    """A new key named ``name`` (a person on a shared workstation); UsageError when the name is
    taken or not a plain name."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"--add {name!r}: a key name is 1 to 64 letters, digits, '.', '_', '@' or '-'")
    keyring = ensure_keyring(home)
    if keyring.named(name) is not None:
        raise UsageError(f"--add {name}: there is already a key named {name!r}")
    key = _new_key(name)
    _write(home, Keyring((*keyring.keys, key)))
    return key


def _new_key(name: str) -> AccessKey:
    """AWS's shapes: a 20-character id (``LBIA`` + 16 base32 characters) and a 40-character secret."""
    key_id = "LBIA" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    return AccessKey(name, key_id, secrets.token_urlsafe(30)[:40])


def _write(home: Path, keyring: Keyring) -> Keyring:
    write_private_json(
        keyring_path(home),
        {
            "keys": [
                {"name": k.name, "access_key_id": k.access_key_id, "secret_access_key": k.secret_access_key}
                for k in keyring.keys
            ]
        },
    )
    return keyring


def _endpoint_path(home: Path) -> Path:
    return home / "api" / "endpoint"


def remember_endpoint(home: Path, url: str) -> None:
    """Record where the daemon's TCP listener serves (``credentials --export`` prints it)."""
    path = _endpoint_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(url + "\n")


def forget_endpoint(home: Path) -> None:
    _endpoint_path(home).unlink(missing_ok=True)


def read_endpoint(home: Path) -> str | None:
    try:
        return _endpoint_path(home).read_text().strip() or None
    except OSError:
        return None
