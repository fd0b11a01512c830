"""Back up and restore the state database (``localbatch daemon backup|restore``).

A backup is one SQLite file, taken with SQLite's online backup API: consistent while the
daemon keeps writing (WAL readers do not block the writer), written to ``<file>.partial``
with mode 0600 and renamed into place only after ``PRAGMA integrity_check`` passed on the
copy, so a file at the backup's name is always a complete one.

A restore replaces the database of a home whose daemon is stopped (the caller holds the
home's lock). The backup must pass the integrity check and have a schema this localbatch
understands (older ones are migrated at the next start). The database it replaces is kept
next to it as ``state.db.before-restore-<time>``, its write-ahead log checkpointed into it
first, so nothing is lost by a restore either.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from localbatch.adapters._sqlite_schema import SCHEMA_VERSION
from localbatch.errors import StateStoreError

__all__ = ["BackupSummary", "backup", "inspect", "restore"]

# One step: in WAL mode the copy holds only a read transaction, so the daemon keeps writing; a copy
# in several steps would start again at every write and might never end on a busy daemon.
_ALL_PAGES = -1
_SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class BackupSummary:
    """What a state database holds, as ``backup`` and ``restore`` report it."""

    path: Path
    schema_version: int
    jobs: int
    job_definitions: int
    size_bytes: int


def backup(database: Path, destination: Path) -> BackupSummary:
    """Copy the live ``database`` to ``destination`` (0600), checked, all or nothing."""
    if not database.is_file():
        raise StateStoreError(f"state database {database}: no such file (nothing to back up)")
    if destination.is_dir():
        raise StateStoreError(f"backup file {destination}: is a directory; name a file")
    live = {database.name + suffix for suffix in ("", *_SIDE_FILES)}
    if destination.resolve().parent == database.resolve().parent and destination.name in live:
        raise StateStoreError(f"backup file {destination}: that is the live state itself; name a file elsewhere")
    partial = destination.with_name(destination.name + ".partial")
    try:
        _create_private(partial)
        with _connect(database, read_only=True) as source, _connect(partial) as target:
            source.backup(target, pages=_ALL_PAGES)
        summary = inspect(partial)
        os.replace(partial, destination)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise StateStoreError(f"backup of {database} to {destination} failed: {_reason(exc)}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return replace(summary, path=destination)


def inspect(path: Path) -> BackupSummary:
    """Check that ``path`` is an intact localbatch state database this version can open."""
    if not path.is_file():
        raise StateStoreError(f"backup file {path}: no such file")
    try:
        with _connect(path, read_only=True) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
            if problems != ["ok"]:
                raise StateStoreError(f"backup file {path}: integrity check failed: {'; '.join(problems[:5])}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version < 1 or not {"jobs", "job_definitions"} <= tables:
                raise StateStoreError(f"backup file {path}: not a localbatch state database")
            if version > SCHEMA_VERSION:
                raise StateStoreError(
                    f"backup file {path}: schema version {version} is newer than this localbatch "
                    f"understands ({SCHEMA_VERSION}); restore it with the localbatch that made it, or a newer one"
                )
            jobs = int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])
            definitions = int(conn.execute("SELECT count(*) FROM job_definitions").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        reason = f"{_reason(exc)} (the file is corrupt or not a SQLite database)"
        raise StateStoreError(f"backup file {path}: {reason}") from exc
    return BackupSummary(path, version, jobs, definitions, path.stat().st_size)


def restore(backup_file: Path, database: Path, stamp: str) -> tuple[BackupSummary, Path | None]:
    """Replace ``database`` with ``backup_file``; the daemon must be stopped (caller holds the
    lock). Returns what was restored and where the replaced database was kept (None: there
    was none). ``stamp`` names the kept copy (``state.db.before-restore-<stamp>``)."""
    summary = inspect(backup_file)
    kept: Path | None = None
    incoming = database.with_name(database.name + ".restoring")
    try:
        _create_private(incoming)
        with _connect(backup_file, read_only=True) as source, _connect(incoming) as target:
            source.backup(target, pages=_ALL_PAGES)
        if database.exists():
            kept = database.with_name(f"{database.name}.before-restore-{stamp}")
            with _connect(database) as current:  # fold the write-ahead log into the file first
                current.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            os.replace(database, kept)
        for suffix in _SIDE_FILES:  # an old log must never be replayed onto the restored file
            with contextlib.suppress(FileNotFoundError):
                database.with_name(database.name + suffix).unlink()
        os.replace(incoming, database)
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            incoming.unlink()
        if kept is not None and not database.exists():
            os.replace(kept, database)  # put the original back: nothing half-applied
            kept = None
        raise StateStoreError(f"restore of {backup_file} into {database} failed: {_reason(exc)}") from exc
    return replace(summary, path=database), kept


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _create_private(path: Path) -> None:
    """An empty file only its owner may read, replacing a leftover from an interrupted run."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
