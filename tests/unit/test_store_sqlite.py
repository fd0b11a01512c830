"""SqliteStateStore: the StateStore contract on a real file, plus what only SQLite has
(schema versions, reopening, several connections and processes on one file)."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from localbatch.adapters import _sqlite_codec as codec
from localbatch.adapters import _sqlite_queries as queries
from localbatch.adapters.sqlite_store import MIGRATIONS, SCHEMA_VERSION, SqliteStateStore
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.jobs import Attempt, Job, JobEvent, JobStatus, StopKind, StopRequest
from localbatch.errors import StateStoreError
from localbatch.ports import JobQuery
from tests.contract.store_contract import StateStoreContract, event, job, rich_job

S = JobStatus
TIMEOUT_S = 30  # bound on any wait below; the tests take well under a second


class TestSqliteStateStore(StateStoreContract):
    def make_store(self, tmp_path: Path) -> SqliteStateStore:
        return SqliteStateStore(tmp_path / "state.db")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "home" / "state.db"  # the parent does not exist yet: the store makes it


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_new_database_records_schema_version_and_wal(db: Path) -> None:
    with SqliteStateStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS) >= 1
    conn = raw(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"job_definitions", "jobs", "attempts", "events"} <= tables
        assert {"compute_environments", "job_queues"} <= tables
    finally:
        conn.close()


def test_reopening_keeps_everything(db: Path) -> None:
    with SqliteStateStore(db) as store:
        store.register_job_definition("render", {"v": 1}, 1)
        store.save_job(rich_job("job-1"), [event("job-1", 1, S.SUBMITTED)])
    with SqliteStateStore(db) as store:
        assert store.get_job("job-1") == rich_job("job-1")
        assert store.list_events("job-1") == [event("job-1", 1, S.SUBMITTED)]
        assert store.register_job_definition("render", {"v": 2}, 2).revision == 2


def test_database_from_a_newer_localbatch_is_refused(db: Path) -> None:
    SqliteStateStore(db).close()
    conn = raw(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateStoreError, match=rf"schema version {SCHEMA_VERSION + 1} is newer") as caught:
        SqliteStateStore(db)
    assert str(db) in str(caught.value)
    conn = raw(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1  # untouched
    conn.close()


def test_file_that_is_not_a_database_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StateStoreError, match="corrupt or not a SQLite database") as caught:
        SqliteStateStore(db)
    assert str(db) in str(caught.value)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateStoreError, match="cannot open"):
        SqliteStateStore(tmp_path / "file" / "state.db")  # parent is a file


def test_held_write_lock_times_out_as_store_error(db: Path) -> None:
    store = SqliteStateStore(db, busy_timeout_s=0.05)
    other = raw(db)
    other.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with pytest.raises(StateStoreError, match="locked") as caught:
            store.save_job(job("job-1"))
        assert str(db) in str(caught.value)
        assert store.list_jobs(JobQuery()) == []  # readers are not blocked under WAL
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.save_job(job("job-1"))  # the store is still usable once the lock is gone
    assert store.get_job("job-1") == job("job-1")
    store.close()


def test_row_that_does_not_decode_is_a_store_error(db: Path) -> None:
    with SqliteStateStore(db) as store:
        store.save_job(job("job-1"))
        conn = raw(db)
        conn.execute("""UPDATE jobs SET container = '{"image": 5}' WHERE job_id = 'job-1'""")
        conn.close()
        with pytest.raises(StateStoreError, match="job job-1 cannot be decoded"):
            store.get_job("job-1")


def test_events_are_append_only(db: Path) -> None:
    with SqliteStateStore(db) as store:
        store.save_job(job("job-1"), [event("job-1", 1, S.SUBMITTED)])
    conn = raw(db)
    try:
        for statement in ("UPDATE events SET reason = 'x'", "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(statement)
    finally:
        conn.close()


def _save_many(store: SqliteStateStore, prefix: str, count: int) -> None:
    for i in range(count):
        job_id = f"{prefix}-{i}"
        store.save_job(job(job_id, created_at=i), [event(job_id, i, S.SUBMITTED)])
        running = job(job_id, created_at=i, status=S.RUNNABLE)
        store.save_job(running, [event(job_id, i + 1, S.RUNNABLE, S.SUBMITTED)])


def test_threads_sharing_one_store(db: Path) -> None:
    store = SqliteStateStore(db)
    with ThreadPoolExecutor(max_workers=8) as pool:
        saves = [pool.submit(_save_many, store, f"t{n}", 25) for n in range(4)]
        registers = [pool.submit(store.register_job_definition, "render", {"n": n}, n) for n in range(20)]
        for future in saves:
            future.result(timeout=TIMEOUT_S)
        revisions = sorted(f.result(timeout=TIMEOUT_S).revision for f in registers)
    assert revisions == list(range(1, 21))
    jobs = store.list_jobs(JobQuery(limit=1000))
    assert len(jobs) == 100 and {j.status for j in jobs} == {S.RUNNABLE}
    assert all(len(store.list_events(j.job_id)) == 2 for j in jobs)
    store.close()


def test_two_stores_on_one_file_write_at_once(db: Path) -> None:
    stores = [SqliteStateStore(db), SqliteStateStore(db)]  # two connections, as two processes have
    start = threading.Barrier(4, timeout=TIMEOUT_S)

    def work(store: SqliteStateStore, prefix: str) -> list[int]:
        start.wait()
        _save_many(store, prefix, 20)
        return [store.register_job_definition("shared", {}, 0).revision for _ in range(10)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(work, stores[n % 2], f"s{n}") for n in range(4)]
        revisions = sorted(r for f in futures for r in f.result(timeout=TIMEOUT_S))
    assert revisions == list(range(1, 41))  # assigned atomically across connections
    for store in stores:
        assert len(store.list_jobs(JobQuery(limit=1000))) == 80
        store.close()


def test_stores_opening_a_new_database_together(tmp_path: Path) -> None:
    """Switching a new file to WAL does not wait on SQLite's busy handler; the store retries."""
    for round_ in range(20):  # the race is narrow: without the retry about 1 open in 30 fails
        path = tmp_path / f"round-{round_}" / "state.db"
        start = threading.Barrier(6, timeout=TIMEOUT_S)

        def open_and_write(n: int, path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            with SqliteStateStore(path) as store:
                store.save_job(job(f"job-{n}"))

        with ThreadPoolExecutor(max_workers=6) as pool:
            for future in [pool.submit(open_and_write, n) for n in range(6)]:
                future.result(timeout=TIMEOUT_S)
        with SqliteStateStore(path) as store:
            assert len(store.list_jobs(JobQuery())) == 6


def test_two_processes_and_this_one_write_at_once(db: Path) -> None:
    SqliteStateStore(db).close()
    child = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from localbatch.adapters.sqlite_store import SqliteStateStore
        from tests.contract.store_contract import job
        store = SqliteStateStore(Path(sys.argv[1]))
        for i in range(30):
            store.save_job(job(f"{sys.argv[2]}-{i}", created_at=i))
            store.register_job_definition("shared", {}, i)
        store.close()
        """
    )
    root = Path(__file__).resolve().parents[2]
    children = [
        subprocess.Popen([sys.executable, "-c", child, str(db), name], cwd=root, stderr=subprocess.PIPE)
        for name in ("p1", "p2")
    ]
    with SqliteStateStore(db) as store:
        for i in range(30):
            store.save_job(job(f"me-{i}", created_at=i))
            store.register_job_definition("shared", {}, i)
        for process in children:
            _, stderr = process.communicate(timeout=TIMEOUT_S)
            assert process.returncode == 0, stderr.decode()
        assert len(store.list_jobs(JobQuery(limit=1000))) == 90
        latest = store.get_job_definition("shared")
        assert latest is not None and latest.revision == 90
        assert [store.get_job_definition("shared", r) is not None for r in (1, 45, 90)] == [True] * 3


def test_save_is_one_transaction(db: Path) -> None:
    """The job row is written before the events; a bad event must take the row back out."""
    with SqliteStateStore(db) as store:
        with pytest.raises(StateStoreError, match="FOREIGN KEY"):
            store.save_job(rich_job("job-1"), [event("ghost", 1, S.SUBMITTED)])
    conn = raw(db)
    try:
        counts = [conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("jobs", "attempts", "events")]
    finally:
        conn.close()
    assert counts == [0, 0, 0]


# -- schema version 2 -----------------------------------------------------------------


def make_v1(db: Path, saves: list[tuple[Job, list[JobEvent]]]) -> None:
    """A database as localbatch with schema version 1 left it, holding ``saves``."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = raw(db)
    try:
        conn.execute("BEGIN")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        v1_columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        names = ", ".join(v1_columns)
        values = ", ".join(f":{c}" for c in v1_columns)
        for saved, events in saves:
            row = codec.job_row(saved)
            conn.execute(f"INSERT INTO jobs ({names}) VALUES ({values})", {c: row[c] for c in v1_columns})
            v1_attempts = [row[1] for row in conn.execute("PRAGMA table_info(attempts)")]
            conn.executemany(
                f"INSERT INTO attempts ({', '.join(v1_attempts)}) VALUES ({', '.join(':' + c for c in v1_attempts)})",
                [{c: codec.attempt_row(saved.job_id, a)[c] for c in v1_attempts} for a in saved.attempts],
            )
            conn.executemany(  # as v1 wrote events: no detail column yet
                "INSERT INTO events (job_id, at, from_status, to_status, reason) "
                "VALUES (:job_id, :at, :from_status, :to_status, :reason)",
                [{k: v for k, v in codec.event_row(e).items() if k != "detail"} for e in events],
            )
        conn.execute(
            "INSERT INTO job_definitions (name, revision, status, document, created_at) "
            "VALUES ('render', 1, 'ACTIVE', '{\"image\":\"busybox\"}', 5)"
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_version_1_database_upgrades_in_place(db: Path) -> None:
    old = dataclasses.replace(  # all v1 knew
        rich_job("old"),
        runnable_at=None,
        stop_request=None,
        depends_on=(),
        array_size=None,
        array_index=None,
        share_identifier=None,
        num_nodes=None,
        main_node=None,
        node_ranges=(),
        submitted_by=None,
        consumable_resources=(),
    )
    old = dataclasses.replace(old, attempts=tuple(dataclasses.replace(a, usage=None) for a in old.attempts))
    retried = job("retried", status=S.RUNNING)
    history = [
        event("retried", 10, S.SUBMITTED),
        event("retried", 20, S.RUNNABLE, S.SUBMITTED),
        event("retried", 30, S.STARTING, S.RUNNABLE),
        event("retried", 40, S.RUNNABLE, S.STARTING, "retry"),
        event("retried", 50, S.STARTING, S.RUNNABLE),
        event("retried", 60, S.RUNNING, S.STARTING),
    ]
    make_v1(db, [(old, [event("old", 1, S.SUBMITTED)]), (retried, history)])

    with SqliteStateStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 10
        loaded = store.get_job("old")
        assert loaded == old
        assert loaded is not None and loaded.runnable_at is None and loaded.stop_request is None
        # runnable_at is filled from the last RUNNABLE event, as transition() would have set it
        assert store.get_job("retried") == dataclasses.replace(retried, runnable_at=40)
        assert store.list_events("retried") == history
        definition = store.get_job_definition("render")
        assert definition is not None and definition.document == {"image": "busybox"}
        # and everything new works on the upgraded file
        assert store.count_jobs() == {S.RUNNING: 2}
        assert [j.job_id for j in store.active_jobs()] == ["retried", "old"]
        request = StopRequest(StopKind.TERMINATE, "Terminated: upgrade test", 70)
        stopped = store.request_stop("old", request)
        assert stopped == dataclasses.replace(old, stop_request=request)
        store.put_compute_environment(ComputeEnvironment("local", 4.0, 8192))
        store.put_job_queue(JobQueue("default", 1, ("local",)))
        assert store.list_job_queues() == [JobQueue("default", 1, ("local",))]
    with SqliteStateStore(db) as store:  # reopening does not migrate again
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_job("old") == dataclasses.replace(old, stop_request=request)


def test_stores_upgrading_one_version_1_file_together(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"round-{round_}" / "state.db"
        make_v1(path, [(job("old"), [])])
        start = threading.Barrier(4, timeout=TIMEOUT_S)

        def open_and_count(path: Path = path, start: threading.Barrier = start) -> dict[JobStatus, int]:
            start.wait()
            with SqliteStateStore(path) as store:
                return store.count_jobs()

        with ThreadPoolExecutor(max_workers=4) as pool:
            results = [f.result(timeout=TIMEOUT_S) for f in [pool.submit(open_and_count) for _ in range(4)]]
        assert results == [{S.SUBMITTED: 1}] * 4


def test_stop_request_columns_are_all_set_or_all_null(db: Path) -> None:
    with SqliteStateStore(db) as store:
        store.save_job(job("job-1"))
    conn = raw(db)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE jobs SET stop_kind = 'CANCEL' WHERE job_id = 'job-1'")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            conn.execute("UPDATE jobs SET stop_kind = 'PAUSE', stop_reason = 'x', stop_requested_at = 1")
    finally:
        conn.close()


def test_save_jobs_takes_ten_thousand_jobs_in_one_call(db: Path) -> None:
    changes = [(job(f"j{i:05d}", created_at=i), [event(f"j{i:05d}", i, S.SUBMITTED)]) for i in range(10_000)]
    with SqliteStateStore(db) as store:
        store.save_jobs(changes)
        assert store.count_jobs() == {S.SUBMITTED: 10_000}
        assert [j.job_id for j in store.list_jobs(JobQuery(limit=2))] == ["j09999", "j09998"]
        assert store.list_events("j00042") == [event("j00042", 42, S.SUBMITTED)]


def test_request_stop_while_another_process_writes_is_a_store_error(db: Path) -> None:
    store = SqliteStateStore(db, busy_timeout_s=0.05)
    store.save_job(job("job-1", status=S.RUNNING))
    other = raw(db)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StateStoreError, match="requesting a stop of job job-1 failed.*locked"):
            store.request_stop("job-1", StopRequest(StopKind.CANCEL, "x", 1))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.get_job("job-1") == job("job-1", status=S.RUNNING)
    store.close()


def test_infrastructure_row_that_does_not_decode_is_a_store_error(db: Path) -> None:
    with SqliteStateStore(db) as store:
        store.put_job_queue(JobQueue("default", 1, ("local",)))
        conn = raw(db)
        conn.execute("""UPDATE job_queues SET compute_environments = '{"not": "a list"}'""")
        conn.close()
        with pytest.raises(StateStoreError, match="job_queues cannot be decoded"):
            store.list_job_queues()


# -- query plans: each read walks one index in order, with no sort step ----------------------------


def plan(db: Path, statement: str, args: Sequence[object] | Mapping[str, object] = ()) -> list[str]:
    if not db.exists():
        SqliteStateStore(db).close()
    conn = raw(db)
    try:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", args)]
    finally:
        conn.close()


def assert_walks(steps: list[str], index: str) -> None:
    assert not [s for s in steps if "TEMP B-TREE" in s], steps
    reads = [s for s in steps if s.startswith(("SCAN", "SEARCH"))]
    assert reads and all(f"INDEX {index} " in f"{s} " for s in reads), steps


NOW = 1_700_000_000_000
SHAPES = list(
    itertools.product(
        [None, "default"],  # job_queue
        [(), (S.FAILED,), (S.FAILED, S.RUNNING), (S.RUNNABLE, S.STARTING, S.RUNNING)],  # statuses
        [None, "render"],  # name_prefix
        [None, NOW - 1000],  # created_after
        [None, NOW, NOW - 500],  # created_before: looser and tighter than after
        [None, (NOW - 100, "some-id")],  # after
    )
)


def test_list_jobs_walks_one_index_in_order_whatever_the_filters(db: Path) -> None:
    """The index with every equality of the query (queue, status), walked newest first from
    the tightest created_at bound; several statuses are merged ranges, never a sort."""
    index = {
        (False, False): "jobs_by_created",
        (False, True): "jobs_by_status",
        (True, False): "jobs_by_queue",
        (True, True): "jobs_by_queue_status",
    }
    for queue, statuses, prefix, created_after, created_before, after in SHAPES:
        query = JobQuery(
            statuses=statuses,
            job_queue=queue,
            name_prefix=prefix,
            created_after=created_after,
            created_before=created_before,
            after=after,
            limit=50,
        )
        statement, args = queries.list_jobs(query)
        steps = plan(db, statement, args)
        assert_walks(steps, index[queue is not None, bool(statuses)])
        assert ("MERGE (UNION ALL)" in steps) == (len(statuses) > 1), steps


def test_list_jobs_of_every_status_is_not_filtered_by_status(db: Path) -> None:
    statement, args = queries.list_jobs(JobQuery(statuses=tuple(S)))
    assert_walks(plan(db, statement, args), "jobs_by_created")


def test_active_jobs_read_only_the_partial_index(db: Path) -> None:
    assert_walks(plan(db, queries.SELECT_ACTIVE_JOBS), "jobs_active")


def test_count_jobs_reads_an_index_only(db: Path) -> None:
    steps = plan(db, queries.COUNT_JOBS)
    assert_walks(steps, "jobs_by_status")
    assert "COVERING INDEX" in steps[0]
    steps = plan(db, queries.COUNT_QUEUE_JOBS, ("default",))
    assert_walks(steps, "jobs_by_queue_status")
    assert "COVERING INDEX" in steps[0]


def test_other_reads_need_no_sort(db: Path) -> None:
    for statement, args in [
        (queries.select_attempts(3), ("a", "b", "c")),
        (queries.SELECT_EVENTS, ("a",)),
        queries.list_definitions(None, None),
        queries.list_definitions("render", "ACTIVE"),
        (queries.SELECT_LATEST_DEFINITION, ("render", "ACTIVE")),
    ]:
        steps = plan(db, statement, args)
        assert not [s for s in steps if "TEMP B-TREE" in s], (statement, steps)
        assert not [s for s in steps if s.startswith("SCAN") and "INDEX" not in s], (statement, steps)


def test_version_3_queues_upgrade_to_fifo_queues(db: Path) -> None:
    """Step 4 (scheduling policies): a queue stored before it reads back with no policy (FIFO)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = raw(db)
    try:
        conn.execute("BEGIN")
        for step in MIGRATIONS[:3]:
            for statement in step:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO job_queues (name, priority, state, compute_environments, tags) "
            "VALUES ('old', 1, 'ENABLED', '[\"local\"]', '{}')"
        )
        conn.execute("PRAGMA user_version = 3")
        conn.execute("COMMIT")
    finally:
        conn.close()
    with SqliteStateStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_job_queue("old") == JobQueue("old", 1, ("local",))
        assert store.list_scheduling_policies() == []


def test_version_6_jobs_upgrade_with_no_submitter(db: Path) -> None:
    """Step 7 (submitters): a job stored before it reads back with ``submitted_by`` None, and
    a job saved after it keeps its submitter."""
    old = dataclasses.replace(rich_job("old"), submitted_by=None, consumable_resources=())
    old = dataclasses.replace(old, attempts=tuple(dataclasses.replace(a, usage=None) for a in old.attempts))
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = raw(db)
    try:
        conn.execute("BEGIN")
        for step in MIGRATIONS[:6]:
            for statement in step:
                conn.execute(statement)
        v6_columns = [row[1] for row in conn.execute("PRAGMA table_info(jobs)")]
        assert "submitted_by" not in v6_columns
        row = codec.job_row(old)
        names, values = ", ".join(v6_columns), ", ".join(f":{c}" for c in v6_columns)
        conn.execute(f"INSERT INTO jobs ({names}) VALUES ({values})", {c: row[c] for c in v6_columns})
        v6_attempts = [row[1] for row in conn.execute("PRAGMA table_info(attempts)")]
        conn.executemany(
            f"INSERT INTO attempts ({', '.join(v6_attempts)}) VALUES ({', '.join(':' + c for c in v6_attempts)})",
            [{c: codec.attempt_row(old.job_id, a)[c] for c in v6_attempts} for a in old.attempts],
        )
        conn.execute("PRAGMA user_version = 6")
        conn.execute("COMMIT")
    finally:
        conn.close()
    with SqliteStateStore(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 10
        assert store.get_job("old") == old
        new = dataclasses.replace(job("new"), submitted_by="alice")
        store.save_job(new, [event("new", 1, S.SUBMITTED)])
    with SqliteStateStore(db) as store:
        loaded = store.get_job("new")
        assert loaded is not None and loaded.submitted_by == "alice"


def test_recent_jobs_walk_the_definition_index(db: Path) -> None:
    assert_walks(plan(db, queries.SELECT_RECENT_JOBS, ("render", 20)), "jobs_by_definition")


def test_an_attempts_usage_round_trips(db: Path) -> None:
    from localbatch.core.usage import AttemptUsage

    usage = AttemptUsage(samples=3, cpu_avg_percent=50.0, cpu_peak_percent=75.0, memory_peak_mib=12.5)
    original = job("used")
    attempt = Attempt(1, "t" * 32, "c", "s", started_at=1, stopped_at=2, usage=usage)
    with SqliteStateStore(db) as store:
        store.save_job(replace(original, attempts=(attempt,)))
        loaded = store.get_job("used")
    assert loaded is not None and loaded.attempts[0].usage == usage
