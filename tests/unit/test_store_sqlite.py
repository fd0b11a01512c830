"""SqliteStateStore: the StateStore contract on a real file, plus what only SQLite has
(schema versions, reopening, several connections and processes on one file)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from localbatch.adapters.sqlite_store import MIGRATIONS, SCHEMA_VERSION, SqliteStateStore
from localbatch.core.jobs import JobStatus
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
        counts = [
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("jobs", "attempts", "events")
        ]
    finally:
        conn.close()
    assert counts == [0, 0, 0]
