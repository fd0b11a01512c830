"""The state store on SQLite: job definitions, jobs, attempts and their history, compute
environments and job queues, in one file.

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
short: encode first, then one transaction per call, decode after. Inside a process, one
connection is shared behind a lock, so any thread may call any method.

The schema and its migrations are in ``_sqlite_schema``, the SQL in ``_sqlite_queries``, the
rows and JSON in ``_sqlite_codec``. Every ``sqlite3`` error becomes ``StateStoreError`` here,
naming the database file and what was being done.

Three rules beyond "write what is given": a save never clears a recorded stop request (a job
saved with ``stop_request=None`` keeps the one stored, which ``request_stop`` may have
written after the caller read the job), a save of a stored job keeps its tags (only
``update_tags`` changes them), and ``name_prefix`` folds case for ASCII letters only
(SQLite's NOCASE; AWS job names are ASCII).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from localbatch.adapters import _sqlite_codec as codec
from localbatch.adapters import _sqlite_queries as sql
from localbatch.adapters._sqlite_schema import MIGRATIONS, SCHEMA_VERSION
from localbatch.core import consumables
from localbatch.core.consumables import ConsumableResource
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopRequest
from localbatch.errors import StateStoreError, StateStoreFull
from localbatch.ports import (
    ACTIVE,
    INACTIVE,
    TAGGABLE,
    EventLogQuery,
    JobDefinitionRecord,
    JobQuery,
    LoggedEvent,
    Note,
    TagTarget,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SqliteStateStore"]

_SQLITE_FULL = 13  # SQLite's result code for a full disk (sqlite3.SQLITE_FULL, which mypy does not know)

log = logging.getLogger(__name__)


T = TypeVar("T")
_JobRows = list[tuple[sqlite3.Row, list[sqlite3.Row]]]  # a job's row and its attempts' rows


class SqliteStateStore:
    """``StateStore`` on one SQLite file (WAL), shareable by threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
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
        if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
            return StateStoreFull(f"state database {self.path}: {doing} failed: {text} (nothing was written)")
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
            return self._user_version(conn)

    def _decode(self, what: str, exc: ValueError) -> StateStoreError:
        return StateStoreError(f"state database {self.path}: {what} cannot be decoded: {exc}")

    def _read(self, doing: str, query: str, args: Sequence[object] | Mapping[str, object] = ()) -> list[sqlite3.Row]:
        with self._transaction(doing, write=False) as conn:
            return conn.execute(query, args).fetchall()

    # -- job definitions --------------------------------------------------------------

    def register_job_definition(self, name: str, document: Mapping[str, object], now: EpochMs) -> JobDefinitionRecord:
        try:
            text = codec.dumps(dict(document))
        except ValueError as exc:
            raise StateStoreError(f"job definition {name!r}: document is not JSON: {exc}") from exc
        with self._transaction(f"registering job definition {name!r}", write=True) as conn:
            (revision,) = conn.execute(sql.NEXT_REVISION, (name,)).fetchone()
            conn.execute(sql.INSERT_DEFINITION, (name, revision, ACTIVE, text, now))
        return JobDefinitionRecord(name, int(revision), ACTIVE, codec.loads(text), now)

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        if revision is None:
            rows = self._read(f"reading job definition {name!r}", sql.SELECT_LATEST_DEFINITION, (name, ACTIVE))
        else:
            rows = self._read(f"reading job definition {name!r}", sql.SELECT_DEFINITION, (name, revision))
        return self._definition(rows[0]) if rows else None

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None:
        """Mark one revision INACTIVE (AWS's DeregisterJobDefinition); None if there is none."""
        with self._transaction(f"deregistering job definition {name}:{revision}", write=True) as conn:
            conn.execute(sql.SET_DEFINITION_STATUS, (INACTIVE, name, revision))
            row = conn.execute(sql.SELECT_DEFINITION, (name, revision)).fetchone()
        return None if row is None else self._definition(row)

    def list_job_definitions(self, name: str | None = None, status: str | None = None) -> list[JobDefinitionRecord]:
        query, args = sql.list_definitions(name, status)
        return [self._definition(row) for row in self._read("listing job definitions", query, args)]

    def _definition(self, row: sqlite3.Row) -> JobDefinitionRecord:
        try:
            document = codec.loads(row["document"])
        except ValueError as exc:
            raise self._decode(f"job definition {row['name']}:{row['revision']}", exc) from exc
        return JobDefinitionRecord(row["name"], row["revision"], row["status"], document, row["created_at"])

    # -- jobs and events: writes ------------------------------------------------------

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        self.save_jobs([(job, events)])

    def save_jobs(self, changes: Sequence[tuple[Job, Sequence[JobEvent]]]) -> None:
        """Every change in one transaction, as if saved one after the other: a job saved twice
        ends as its last save, every event is appended in order, and an event may name any job
        that exists once the whole batch is written. Nothing is written if anything fails."""
        job_rows: list[dict[str, object]] = []
        attempts: dict[str, list[dict[str, object]]] = {}  # each job's attempts as last saved
        event_rows: list[dict[str, object]] = []
        saved: dict[str, dict[str, object]] = {}
        changed: list[JobEvent] = []
        for job, events in changes:
            numbers = [a.number for a in job.attempts]
            if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
                raise StateStoreError(f"job {job.job_id}: attempt numbers must increase, got {numbers}")
            try:
                job_rows.append(codec.job_row(job))
            except ValueError as exc:
                raise StateStoreError(f"job {job.job_id}: cannot be encoded: {exc}") from exc
            attempts[job.job_id] = [codec.attempt_row(job.job_id, attempt) for attempt in job.attempts]
            event_rows.extend(codec.event_row(event) for event in events)
            saved[job.job_id] = job_rows[-1]
            changed.extend(e for e in events if e.from_status is not None)
        try:  # each state change goes to the event log with the job as this save leaves it
            log_rows = [codec.log_row(e, saved.get(e.job_id), attempts.get(e.job_id, [])) for e in changed]
        except ValueError as exc:
            raise StateStoreError(f"saving jobs: an event cannot be encoded: {exc}") from exc
        doing = f"saving job {next(iter(attempts))}" if len(attempts) == 1 else f"saving {len(attempts)} jobs"
        with self._transaction(doing, write=True) as conn:
            self._use_up(conn, changes)
            conn.executemany(sql.UPSERT_JOB, job_rows)
            conn.executemany(sql.DELETE_ATTEMPTS, [(job_id,) for job_id in attempts])
            conn.executemany(sql.INSERT_ATTEMPT, [row for rows in attempts.values() for row in rows])
            conn.executemany(sql.INSERT_EVENT, event_rows)
            conn.executemany(sql.INSERT_LOG, log_rows)

    @staticmethod
    def _use_up(conn: sqlite3.Connection, changes: Sequence[tuple[Job, Sequence[JobEvent]]]) -> None:
        """Lower the totals of the NON_REPLENISHABLE resources held by the jobs these changes
        take out of STARTING or RUNNING, the changes taken one after the other."""
        status: dict[str, str | None] = {}  # each job's status as the batch has it so far
        for job, _ in changes:
            if not job.consumable_resources:
                continue
            if job.job_id not in status:
                row = conn.execute(sql.SELECT_STATUS, (job.job_id,)).fetchone()
                status[job.job_id] = None if row is None else str(row[0])
            before = status[job.job_id]
            if before is not None and consumables.holds(before) and not consumables.holds(job.status):
                conn.executemany(sql.USE_UP, [(quantity, name) for name, quantity in job.consumable_resources])
            status[job.job_id] = job.status.value

    def request_stop(self, job_id: str, request: StopRequest) -> Job | None:
        """Record ``request`` unless the job is unknown, terminal or already has one (a
        TERMINATE replaces a pending CANCEL), checked and written in one transaction; the job
        as it now is, or None if there is none."""
        args = {
            "job_id": job_id,
            "kind": request.kind.value,
            "reason": request.reason,
            "requested_at": request.requested_at,
        }
        with self._transaction(f"requesting a stop of job {job_id}", write=True) as conn:
            conn.execute(sql.REQUEST_STOP, args)
            found = self._with_attempts(conn, conn.execute(sql.SELECT_JOB, (job_id,)).fetchall())
        return self._job(*found[0]) if found else None

    def clear_stop_request(self, job_id: str, request: StopRequest) -> None:
        """Forget ``request`` (and only it: not a request recorded since)."""
        args = {"job_id": job_id, "kind": request.kind.value, "requested_at": request.requested_at}
        with self._transaction(f"clearing the stop request of job {job_id}", write=True) as conn:
            conn.execute(sql.CLEAR_STOP, args)

    # -- jobs and events: reads -------------------------------------------------------

    def get_job(self, job_id: str) -> Job | None:
        found = self._jobs(f"reading job {job_id}", sql.SELECT_JOB, (job_id,))
        return found[0] if found else None

    def list_jobs(self, query: JobQuery) -> list[Job]:
        """Jobs matching ``query``, newest first; ties by ``job_id``. See ``JobQuery``."""
        statement, args = sql.list_jobs(query)
        return self._jobs("listing jobs", statement, args)

    def active_jobs(self) -> list[Job]:
        """Every job not SUCCEEDED or FAILED, oldest ``created_at`` first (ties by ``job_id``)."""
        return self._jobs("listing active jobs", sql.SELECT_ACTIVE_JOBS)

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        rows = self._read(f"reading the active shares of queue {job_queue!r}", sql.SELECT_ACTIVE_SHARES, (job_queue,))
        return {str(row["share_identifier"]) for row in rows}

    def count_jobs(self, job_queue: str | None = None, array_job_id: str | None = None) -> dict[JobStatus, int]:
        if array_job_id is not None:
            rows = self._read(f"counting children of array job {array_job_id}", sql.COUNT_ARRAY_JOBS, (array_job_id,))
        elif job_queue is None:
            rows = self._read("counting jobs", sql.COUNT_JOBS)
        else:
            rows = self._read(f"counting jobs of queue {job_queue!r}", sql.COUNT_QUEUE_JOBS, (job_queue,))
        try:
            counts = {JobStatus(row["status"]): int(row["n"]) for row in rows}
        except ValueError as exc:
            raise self._decode("job counts", exc) from exc
        return {status: counts[status] for status in JobStatus if status in counts}

    def recent_jobs(self, job_definition_name: str, limit: int) -> list[Job]:
        return self._jobs(
            f"reading recent jobs of {job_definition_name!r}", sql.SELECT_RECENT_JOBS, (job_definition_name, limit)
        )

    def list_events(self, job_id: str) -> list[JobEvent]:
        rows = self._read(f"reading events of job {job_id}", sql.SELECT_EVENTS, (job_id,))
        try:
            return [codec.decode_event(row) for row in rows]
        except ValueError as exc:
            raise self._decode(f"events of job {job_id}", exc) from exc

    # -- the event log and the rules' records -----------------------------------------

    def read_event_log(self, query: EventLogQuery) -> list[LoggedEvent]:
        statement, args = sql.read_event_log(query)
        found = []
        for row in self._read("reading the event log", statement, args):
            try:
                body, event, job = codec.decode_log(row)
            except (ValueError, KeyError, TypeError) as exc:
                raise self._decode(f"event log entry {row['seq']}", ValueError(str(exc))) from exc
            found.append(
                LoggedEvent(
                    seq=row["seq"],
                    at=row["at"],
                    kind=row["kind"],
                    job_id=row["job_id"],
                    job_queue=row["job_queue"],
                    status=row["status"],
                    job=job,
                    event=event,
                    note={} if event is not None else body,
                )
            )
        return found

    def last_event_seq(self) -> int:
        return int(self._read("reading the event log", sql.LAST_SEQ)[0][0])

    def append_notes(self, notes: Sequence[Note]) -> list[int]:
        try:
            rows = [
                {
                    "at": n.at,
                    "kind": n.kind,
                    "job_id": n.job_id,
                    "job_queue": n.job_queue,
                    "status": n.status,
                    "body": codec.dumps(dict(n.body)),
                }
                for n in notes
            ]
        except ValueError as exc:
            raise StateStoreError(f"a note cannot be encoded: {exc}") from exc
        with self._transaction("appending to the event log", write=True) as conn:
            return [int(conn.execute(sql.INSERT_LOG, row).lastrowid or 0) for row in rows]

    def get_rule_states(self) -> dict[str, Mapping[str, object]]:
        rows = self._read("reading the rules' records", sql.SELECT_RULE_STATES)
        return {row["name"]: self._loads(row["state"], "reading the rules' records") for row in rows}

    def put_rule_state(self, name: str, state: Mapping[str, object]) -> None:
        try:
            text = codec.dumps(dict(state))
        except ValueError as exc:
            raise StateStoreError(f"rule {name!r}: its record cannot be encoded: {exc}") from exc
        with self._transaction(f"saving the record of rule {name!r}", write=True) as conn:
            conn.execute(sql.UPSERT_RULE_STATE, (name, text))

    def _jobs(self, doing: str, query: str, args: Sequence[object] | Mapping[str, object] = ()) -> list[Job]:
        """The jobs ``query`` selects (``sql.JOB_COLS``), in its order, with their attempts."""
        with self._transaction(doing, write=False) as conn:
            found = self._with_attempts(conn, conn.execute(query, args).fetchall())
        return [self._job(row, attempts) for row, attempts in found]

    @staticmethod
    def _with_attempts(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> _JobRows:
        by_job: dict[str, list[sqlite3.Row]] = {row["job_id"]: [] for row in rows}
        ids = list(by_job)
        for start in range(0, len(ids), sql.ATTEMPTS_CHUNK):
            chunk = ids[start : start + sql.ATTEMPTS_CHUNK]
            for attempt in conn.execute(sql.select_attempts(len(chunk)), chunk):
                by_job[attempt["job_id"]].append(attempt)
        return [(row, by_job[row["job_id"]]) for row in rows]

    def _job(self, row: sqlite3.Row, attempts: Sequence[sqlite3.Row]) -> Job:
        try:
            return codec.decode_job(row, [codec.decode_attempt(a) for a in attempts])
        except ValueError as exc:
            raise self._decode(f"job {row['job_id']}", exc) from exc

    # -- compute environments and job queues ------------------------------------------

    def put_compute_environment(self, environment: ComputeEnvironment) -> None:
        what = f"compute environment {environment.name!r}"
        self._put(what, sql.UPSERT_ENVIRONMENT, lambda: codec.environment_row(environment))

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None:
        found = self._infra("compute_environments", sql.SELECT_ENVIRONMENT, (name,), codec.decode_environment)
        return found[0] if found else None

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        return self._infra("compute_environments", sql.SELECT_ENVIRONMENTS, (), codec.decode_environment)

    def delete_compute_environment(self, name: str) -> bool:
        return self._delete(f"{name!r} from compute_environments", sql.DELETE_ENVIRONMENT, name)

    def put_job_queue(self, queue: JobQueue) -> None:
        self._put(f"job queue {queue.name!r}", sql.UPSERT_QUEUE, lambda: codec.queue_row(queue))

    def get_job_queue(self, name: str) -> JobQueue | None:
        found = self._infra("job_queues", sql.SELECT_QUEUE, (name,), codec.decode_queue)
        return found[0] if found else None

    def list_job_queues(self) -> list[JobQueue]:
        return self._infra("job_queues", sql.SELECT_QUEUES, (), codec.decode_queue)

    def delete_job_queue(self, name: str) -> bool:
        return self._delete(f"{name!r} from job_queues", sql.DELETE_QUEUE, name)

    def put_scheduling_policy(self, policy: SchedulingPolicy) -> None:
        self._put(f"scheduling policy {policy.name!r}", sql.UPSERT_POLICY, lambda: codec.policy_row(policy))

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None:
        found = self._infra("scheduling_policies", sql.SELECT_POLICY, (name,), codec.decode_policy)
        return found[0] if found else None

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        return self._infra("scheduling_policies", sql.SELECT_POLICIES, (), codec.decode_policy)

    def delete_scheduling_policy(self, name: str) -> bool:
        return self._delete(f"{name!r} from scheduling_policies", sql.DELETE_POLICY, name)

    def put_consumable_resource(self, resource: ConsumableResource) -> None:
        self._put(
            f"consumable resource {resource.name!r}", sql.UPSERT_CONSUMABLE, lambda: codec.consumable_row(resource)
        )

    def get_consumable_resource(self, name: str) -> ConsumableResource | None:
        found = self._infra("consumable_resources", sql.SELECT_CONSUMABLE, (name,), codec.decode_consumable)
        return found[0] if found else None

    def list_consumable_resources(self) -> list[ConsumableResource]:
        return self._infra("consumable_resources", sql.SELECT_CONSUMABLES, (), codec.decode_consumable)

    def delete_consumable_resource(self, name: str) -> bool:
        return self._delete(f"{name!r} from consumable_resources", sql.DELETE_CONSUMABLE, name)

    def update_consumable_total(
        self, name: str, change: Callable[[ConsumableResource], int]
    ) -> ConsumableResource | None:
        """Read the resource, compute its new total, write it: one write transaction."""
        doing = f"updating consumable resource {name!r}"
        with self._transaction(doing, write=True) as conn:
            row = conn.execute(sql.SELECT_CONSUMABLE, (name,)).fetchone()
            if row is None:
                return None
            try:
                resource = codec.decode_consumable(row)
            except ValueError as exc:
                raise self._decode(f"consumable resource {name!r}", exc) from exc
            total = change(resource)
            conn.execute(sql.SET_CONSUMABLE_TOTAL, (total, name))
        return replace(resource, total_quantity=total)

    def _put(self, what: str, upsert: str, encode: Callable[[], dict[str, object]]) -> None:
        try:
            row = encode()
        except ValueError as exc:
            raise StateStoreError(f"{what}: cannot be encoded: {exc}") from exc
        with self._transaction(f"saving {what}", write=True) as conn:
            conn.execute(upsert, row)

    def _infra(self, table: str, query: str, args: tuple[str, ...], decode: Callable[[sqlite3.Row], T]) -> list[T]:
        rows = self._read(f"reading {table}", query, args)
        try:
            return [decode(row) for row in rows]
        except ValueError as exc:
            raise self._decode(f"a row of {table}", exc) from exc

    def _delete(self, what: str, query: str, name: str) -> bool:
        with self._transaction(f"deleting {what}", write=True) as conn:
            return conn.execute(query, (name,)).rowcount > 0

    # -- tags -------------------------------------------------------------------------

    def update_tags(self, target: TagTarget, add: Mapping[str, str], remove: Sequence[str]) -> dict[str, str] | None:
        """Read, change and write the tags in one write transaction. A job definition's tags
        are its document's ``tags`` (absent when there are none, as ``jobdef.to_document``)."""
        if target.kind not in TAGGABLE or (target.revision is None) != (target.kind != "job-definition"):
            raise ValueError(f"not a resource that has tags: {target}")
        doing = f"updating the tags of {target.kind} {target.name}"
        with self._transaction(doing, write=True) as conn:
            if target.kind == "job-definition":
                key: tuple[object, ...] = (target.name, target.revision)
                row = conn.execute(sql.SELECT_DEFINITION_DOCUMENT, key).fetchone()
                if row is None:
                    return None
                document = self._loads(row[0], doing)
                stored = document.get("tags") or {}
                tags = _changed(stored if isinstance(stored, dict) else {}, add, remove)
                if add or remove:
                    document = {k: v for k, v in document.items() if k != "tags"}
                    document.update({"tags": tags} if tags else {})
                    conn.execute(sql.UPDATE_DEFINITION_DOCUMENT, (codec.dumps(document), *key))
                return tags
            row = conn.execute(sql.SELECT_TAGS[target.kind], (target.name,)).fetchone()
            if row is None:
                return None
            tags = _changed(self._loads(row[0], doing), add, remove)
            if add or remove:
                conn.execute(sql.UPDATE_TAGS[target.kind], (codec.dumps(tags), target.name))
            return tags

    def _loads(self, text: str, doing: str) -> dict[str, object]:
        try:
            value = codec.loads(text)
        except ValueError as exc:
            raise StateStoreError(f"state database {self.path}: {doing}: cannot decode {exc}") from exc
        if not isinstance(value, dict):
            raise StateStoreError(f"state database {self.path}: {doing}: expected a JSON object")
        return value

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); later calls raise StateStoreError."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStateStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _changed(tags: Mapping[str, object], add: Mapping[str, str], remove: Sequence[str]) -> dict[str, str]:
    """``tags`` without ``remove``, then with ``add``."""
    kept = {str(k): str(v) for k, v in tags.items() if k not in set(remove)}
    return {**kept, **add}
