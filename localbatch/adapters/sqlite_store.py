"""The state store on SQLite: job definitions, jobs, attempts and their history, in one file.

Implements ``localbatch.ports.StateStore`` with the standard library's ``sqlite3`` only.

On-disk layout under ``$LOCALBATCH_HOME`` (default ``~/.local/share/localbatch``)::

    state.db              this store: the SQLite database
    state.db-wal          write-ahead log (WAL journal mode); part of the database, never
    state.db-shm          delete these two while any localbatch process has the file open
    logs/<job id>/<attempt>.log
                          each attempt's container output, written by ``logs.py``, never
                          stored here (logs are data, not rows)

Several processes (the daemon, a few ``localbatch run``) may open one database at once.
WAL lets readers run while one writer writes; writers take the write lock up front
(``BEGIN IMMEDIATE``) and wait up to ``busy_timeout_s`` for it, so transactions are kept
short: encode first, then one transaction per call. Inside a process, one connection is
shared behind a lock, so any thread may call any method.

Schema (``PRAGMA user_version`` = the number of migration steps applied; a database newer
than this code is refused, never downgraded)::

    job_definitions(name, revision, status ACTIVE|INACTIVE, document JSON, created_at)
        PK (name, revision). Revisions count 1, 2, 3 ... per name; rows are never deleted
        (deregistering flips ``status``), so a revision is never reused.
    jobs(job_id PK, job_name, job_queue, status, created_at, started_at, stopped_at,
         job_definition_name, job_definition_revision, status_reason, compute_environment,
         timeout_s, scheduling_priority, propagate_tags, is_cancelled, is_terminated,
         container JSON, parameters JSON, retry_strategy JSON, gpu_ids JSON, tags JSON,
         platform_capabilities JSON)
        indexes for ``list_jobs``: (created_at DESC, job_id), the same after status, after job_queue
    attempts(job_id -> jobs, number >= 1, task_id, container_name, log_stream_name,
             container_id, started_at, stopped_at, exit_code, reason, status_reason)
        PK (job_id, number)
    events(id AUTOINCREMENT, job_id -> jobs, at, from_status, to_status, reason)
        append-only (triggers refuse UPDATE and DELETE); index (job_id, at, id)

Times are epoch milliseconds; booleans are 0/1; JSON columns are written and read by
``_sqlite_codec``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from localbatch.adapters import _sqlite_codec as codec
from localbatch.core.jobs import EpochMs, Job, JobEvent
from localbatch.errors import StateStoreError
from localbatch.ports import JobDefinitionRecord, JobQuery

log = logging.getLogger(__name__)

ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"

# Spelled out, not computed from JobStatus: a migration step must never change once shipped.
_STATUSES = "'SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED'"

# Ordered migration steps: step N brings user_version from N-1 to N. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE job_definitions (
            name        TEXT    NOT NULL,
            revision    INTEGER NOT NULL CHECK (revision >= 1),
            status      TEXT    NOT NULL CHECK (status IN ('ACTIVE', 'INACTIVE')),
            document    TEXT    NOT NULL,
            created_at  INTEGER NOT NULL,
            PRIMARY KEY (name, revision)
        )""",
        f"""CREATE TABLE jobs (
            job_id                  TEXT    PRIMARY KEY,
            job_name                TEXT    NOT NULL,
            job_queue               TEXT    NOT NULL,
            status                  TEXT    NOT NULL CHECK (status IN ({_STATUSES})),
            created_at              INTEGER NOT NULL,
            started_at              INTEGER,
            stopped_at              INTEGER,
            job_definition_name     TEXT    NOT NULL,
            job_definition_revision INTEGER NOT NULL,
            status_reason           TEXT,
            compute_environment     TEXT,
            timeout_s               INTEGER,
            scheduling_priority     INTEGER,
            propagate_tags          INTEGER NOT NULL CHECK (propagate_tags IN (0, 1)),
            is_cancelled            INTEGER NOT NULL CHECK (is_cancelled IN (0, 1)),
            is_terminated           INTEGER NOT NULL CHECK (is_terminated IN (0, 1)),
            container               TEXT    NOT NULL,
            parameters              TEXT    NOT NULL,
            retry_strategy          TEXT    NOT NULL,
            gpu_ids                 TEXT    NOT NULL,
            tags                    TEXT    NOT NULL,
            platform_capabilities   TEXT    NOT NULL
        )""",
        "CREATE INDEX jobs_by_created ON jobs (created_at DESC, job_id)",
        "CREATE INDEX jobs_by_status ON jobs (status, created_at DESC, job_id)",
        "CREATE INDEX jobs_by_queue ON jobs (job_queue, created_at DESC, job_id)",
        """CREATE TABLE attempts (
            job_id          TEXT    NOT NULL REFERENCES jobs (job_id),
            number          INTEGER NOT NULL CHECK (number >= 1),
            task_id         TEXT    NOT NULL,
            container_name  TEXT    NOT NULL,
            log_stream_name TEXT    NOT NULL,
            container_id    TEXT,
            started_at      INTEGER,
            stopped_at      INTEGER,
            exit_code       INTEGER,
            reason          TEXT,
            status_reason   TEXT,
            PRIMARY KEY (job_id, number)
        )""",
        f"""CREATE TABLE events (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id      TEXT    NOT NULL REFERENCES jobs (job_id),
            at          INTEGER NOT NULL,
            from_status TEXT    CHECK (from_status IS NULL OR from_status IN ({_STATUSES})),
            to_status   TEXT    NOT NULL CHECK (to_status IN ({_STATUSES})),
            reason      TEXT
        )""",
        "CREATE INDEX events_by_job ON events (job_id, at, id)",
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _named(columns: Sequence[str]) -> tuple[str, str]:
    return ", ".join(columns), ", ".join(f":{c}" for c in columns)


_JOB_COLS, _JOB_VALUES = _named(codec.JOB_COLUMNS)
_UPSERT_JOB = (
    f"INSERT INTO jobs ({_JOB_COLS}) VALUES ({_JOB_VALUES}) ON CONFLICT (job_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in codec.JOB_COLUMNS if c != "job_id")
)
_ATTEMPT_COLS, _ATTEMPT_VALUES = _named(codec.ATTEMPT_COLUMNS)
_INSERT_ATTEMPT = f"INSERT INTO attempts ({_ATTEMPT_COLS}) VALUES ({_ATTEMPT_VALUES})"
_INSERT_EVENT = (
    "INSERT INTO events (job_id, at, from_status, to_status, reason) "
    "VALUES (:job_id, :at, :from_status, :to_status, :reason)"
)
_DEFINITION_COLS = "name, revision, status, document, created_at"


class SqliteStateStore:
    """``StateStore`` on one SQLite file (WAL), shareable by threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"state database {path}: cannot open: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._configure()
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- connection and transactions --------------------------------------------------

    def _error(self, doing: str, exc: sqlite3.Error) -> StateStoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            text += f" (another process is writing to it; busy timeout {self._busy_timeout_s:g} s)"
        elif isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
            text += " (the file is corrupt or not a SQLite database)"
        return StateStoreError(f"state database {self.path}: {doing} failed: {text}")

    def _configure(self) -> None:
        try:
            with self._lock:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
                self._enable_wal()
                self._conn.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL
                self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self._error("opening", exc) from exc

    def _enable_wal(self) -> None:
        """Switch to WAL (a no-op once the file is WAL). The switch needs the file to itself
        and SQLite does not wait for that, so processes opening a new database together retry."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)
        if mode != "wal":  # e.g. a file system without shared memory: works, one process at a time
            log.warning("state database %s: journal mode is %s, not WAL", self.path, mode)

    @contextmanager
    def _transaction(self, doing: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: committed if the block returns, rolled back if it raises.

        Writes take the write lock at BEGIN (IMMEDIATE), so they wait for it there, under
        the busy timeout, rather than fail halfway. Reads get one consistent snapshot.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            except sqlite3.Error as exc:
                raise self._error(doing, exc) from exc
            try:
                yield self._conn
                self._conn.commit()
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._error(doing, exc) from exc
                raise

    def _rollback(self) -> None:
        try:
            self._conn.rollback()
        except sqlite3.Error:  # the connection is gone; the error that brought us here says more
            pass

    def _migrate(self) -> None:
        with self._transaction("reading the schema version", write=False) as conn:
            version = self._user_version(conn)
        if version == SCHEMA_VERSION:
            return
        with self._transaction("migrating the schema", write=True) as conn:
            version = self._user_version(conn)  # another process may have migrated meanwhile
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _user_version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"state database {self.path}: schema version {version} is newer than this "
                f"localbatch understands ({SCHEMA_VERSION}); upgrade localbatch to open it"
            )
        return version

    @property
    def schema_version(self) -> int:
        with self._transaction("reading the schema version", write=False) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def _decode(self, what: str, exc: ValueError) -> StateStoreError:
        return StateStoreError(f"state database {self.path}: {what} cannot be decoded: {exc}")

    # -- job definitions --------------------------------------------------------------

    def register_job_definition(
        self, name: str, document: Mapping[str, object], now: EpochMs
    ) -> JobDefinitionRecord:
        try:
            text = codec.dumps(dict(document))
        except ValueError as exc:
            raise StateStoreError(f"job definition {name!r}: document is not JSON: {exc}") from exc
        with self._transaction(f"registering job definition {name!r}", write=True) as conn:
            (revision,) = conn.execute(
                "SELECT COALESCE(MAX(revision), 0) + 1 FROM job_definitions WHERE name = ?", (name,)
            ).fetchone()
            conn.execute(
                f"INSERT INTO job_definitions ({_DEFINITION_COLS}) VALUES (?, ?, ?, ?, ?)",
                (name, revision, ACTIVE, text, now),
            )
        return JobDefinitionRecord(name, int(revision), ACTIVE, codec.loads(text), now)

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        with self._transaction(f"reading job definition {name!r}", write=False) as conn:
            if revision is None:
                row = conn.execute(
                    f"SELECT {_DEFINITION_COLS} FROM job_definitions WHERE name = ? AND status = ? "
                    "ORDER BY revision DESC LIMIT 1",
                    (name, ACTIVE),
                ).fetchone()
            else:
                row = conn.execute(
                    f"SELECT {_DEFINITION_COLS} FROM job_definitions WHERE name = ? AND revision = ?",
                    (name, revision),
                ).fetchone()
        return None if row is None else self._definition(row)

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None:
        """Mark one revision INACTIVE (AWS's DeregisterJobDefinition); None if there is none.

        Not (yet) in the ``StateStore`` port."""
        with self._transaction(f"deregistering job definition {name}:{revision}", write=True) as conn:
            conn.execute(
                "UPDATE job_definitions SET status = ? WHERE name = ? AND revision = ?",
                (INACTIVE, name, revision),
            )
            row = conn.execute(
                f"SELECT {_DEFINITION_COLS} FROM job_definitions WHERE name = ? AND revision = ?",
                (name, revision),
            ).fetchone()
        return None if row is None else self._definition(row)

    def _definition(self, row: sqlite3.Row) -> JobDefinitionRecord:
        try:
            document = codec.loads(row["document"])
        except ValueError as exc:
            raise self._decode(f"job definition {row['name']}:{row['revision']}", exc) from exc
        return JobDefinitionRecord(row["name"], row["revision"], row["status"], document, row["created_at"])

    # -- jobs and events --------------------------------------------------------------

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        numbers = [a.number for a in job.attempts]
        if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
            raise StateStoreError(f"job {job.job_id}: attempt numbers must increase, got {numbers}")
        try:
            row = codec.job_row(job)
        except ValueError as exc:
            raise StateStoreError(f"job {job.job_id}: cannot be encoded: {exc}") from exc
        attempts = [codec.attempt_row(job.job_id, attempt) for attempt in job.attempts]
        event_rows = [codec.event_row(event) for event in events]
        with self._transaction(f"saving job {job.job_id}", write=True) as conn:
            conn.execute(_UPSERT_JOB, row)
            conn.execute("DELETE FROM attempts WHERE job_id = ?", (job.job_id,))
            conn.executemany(_INSERT_ATTEMPT, attempts)
            conn.executemany(_INSERT_EVENT, event_rows)

    def get_job(self, job_id: str) -> Job | None:
        with self._transaction(f"reading job {job_id}", write=False) as conn:
            row = conn.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            attempts = conn.execute(
                f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE job_id = ? ORDER BY number", (job_id,)
            ).fetchall()
        return self._job(row, attempts)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit < 0:
            raise ValueError(f"JobQuery.limit must be >= 0, got {query.limit}")
        where: list[str] = []
        args: list[Any] = []
        if query.statuses:
            where.append(f"status IN ({', '.join('?' for _ in query.statuses)})")
            args.extend(status.value for status in query.statuses)
        if query.job_queue is not None:
            where.append("job_queue = ?")
            args.append(query.job_queue)
        where_sql = f"WHERE {' AND '.join(where)}" if where else ""
        selected = f"SELECT job_id FROM jobs {where_sql} ORDER BY created_at DESC, job_id LIMIT ?"
        args.append(query.limit)
        with self._transaction("listing jobs", write=False) as conn:
            rows = conn.execute(
                f"SELECT {_JOB_COLS} FROM jobs {where_sql} ORDER BY created_at DESC, job_id LIMIT ?", args
            ).fetchall()
            attempt_rows = conn.execute(
                f"SELECT {_ATTEMPT_COLS} FROM attempts WHERE job_id IN ({selected}) ORDER BY job_id, number",
                args,
            ).fetchall()
        by_job: dict[str, list[sqlite3.Row]] = {}
        for attempt in attempt_rows:
            by_job.setdefault(attempt["job_id"], []).append(attempt)
        return [self._job(row, by_job.get(row["job_id"], [])) for row in rows]

    def _job(self, row: sqlite3.Row, attempts: Sequence[sqlite3.Row]) -> Job:
        try:
            return codec.decode_job(row, [codec.decode_attempt(a) for a in attempts])
        except ValueError as exc:
            raise self._decode(f"job {row['job_id']}", exc) from exc

    def list_events(self, job_id: str) -> list[JobEvent]:
        with self._transaction(f"reading events of job {job_id}", write=False) as conn:
            rows = conn.execute(
                "SELECT job_id, at, from_status, to_status, reason FROM events WHERE job_id = ? "
                "ORDER BY at, id",
                (job_id,),
            ).fetchall()
        try:
            return [codec.decode_event(row) for row in rows]
        except ValueError as exc:
            raise self._decode(f"events of job {job_id}", exc) from exc

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise StateStoreError."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
