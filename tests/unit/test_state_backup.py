"""Backing up and restoring a home's state: ``localbatch daemon backup|restore`` on real
SQLite files (no daemon: the backup's consistency under a concurrent writer is tested with a
second connection writing while the copy runs)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localbatch import bootstrap, config
from localbatch.adapters import sqlite_backup
from localbatch.adapters.sqlite_store import SCHEMA_VERSION, SqliteStateStore
from localbatch.cli import app
from localbatch.daemon import process
from localbatch.errors import StateStoreError, UsageError
from tests.contract.store_contract import job

TIMEOUT_S = 30


def settings(home: Path) -> config.Settings:
    return config.resolve({"LOCALBATCH_HOME": str(home), "LOCALBATCH_CONFIG": ""}, cwd=home.parent)


def filled(home: Path, count: int) -> Path:
    with SqliteStateStore(home / "state.db") as store:
        for n in range(count):
            store.save_job(job(f"job-{n:04d}", created_at=1_000 + n))
    return home / "state.db"


def job_ids(database: Path) -> set[str]:
    with SqliteStateStore(database) as store:
        return {j.job_id for j in store.active_jobs()}


def test_a_backup_is_a_checked_private_copy_and_a_restore_brings_it_back(tmp_path: Path) -> None:
    home = tmp_path / "home"
    filled(home, 20)
    copy = tmp_path / "state.backup"
    summary = bootstrap.backup_state(settings(home), copy)
    assert (summary.jobs, summary.schema_version) == (20, SCHEMA_VERSION)
    assert os.stat(copy).st_mode & 0o777 == 0o600
    assert not copy.with_name("state.backup.partial").exists()

    with SqliteStateStore(home / "state.db") as store:  # the state moves on after the backup
        store.save_job(job("job-after"))
    restored, kept = bootstrap.restore_state(settings(home), copy, now=0)
    assert restored.jobs == 20
    assert kept == home / "state.db.before-restore-19700101T000000Z"
    assert job_ids(home / "state.db") == {f"job-{n:04d}" for n in range(20)}
    assert "job-after" in job_ids(kept)  # nothing is lost by a restore either
    assert not (home / "state.db.restoring").exists()


def test_a_restore_into_a_home_without_state_keeps_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    sqlite_backup.backup(filled(tmp_path / "a", 3), copy)
    restored, kept = bootstrap.restore_state(settings(tmp_path / "b"), copy)
    assert (restored.jobs, kept) == (3, None)
    assert len(job_ids(tmp_path / "b" / "state.db")) == 3


def test_a_backup_taken_while_a_writer_commits_is_consistent(tmp_path: Path) -> None:
    database = filled(tmp_path / "home", 1)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with SqliteStateStore(database) as store:
            for n in range(2_000):  # bounded; stopped as soon as the backup is done
                if stop.is_set():
                    return
                store.save_job(job(f"w-{n:05d}"))
                written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = [sqlite_backup.backup(database, tmp_path / f"copy-{n}.db") for n in range(3)]
    finally:
        stop.set()
        thread.join(TIMEOUT_S)
    for summary in copies:  # each copy is whole: integrity ok, and a prefix of the writes
        ids = job_ids(summary.path) - {"job-0000"}
        assert ids == {f"w-{n:05d}" for n in range(len(ids))}


def test_a_damaged_or_foreign_or_newer_file_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    filled(home, 2)
    before = (home / "state.db").read_bytes()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    newer = tmp_path / "newer.db"
    sqlite_backup.backup(home / "state.db", newer)
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    for path, words in [
        (junk, "corrupt or not a SQLite database"),
        (foreign, "not a localbatch state database"),
        (newer, f"schema version {SCHEMA_VERSION + 1} is newer"),
        (tmp_path / "missing.db", "no such file"),
    ]:
        with pytest.raises(StateStoreError, match=words) as caught:
            bootstrap.restore_state(settings(home), path)
        assert str(path) in str(caught.value)
    assert (home / "state.db").read_bytes() == before
    assert not [p.name for p in home.iterdir() if "restor" in p.name]


def test_a_restore_is_refused_while_a_daemon_holds_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    copy = tmp_path / "copy.db"
    sqlite_backup.backup(filled(home, 2), copy)
    with process.hold_lock(settings(home)), pytest.raises(UsageError, match="stop it first"):
        bootstrap.restore_state(settings(home), copy)


def test_a_backup_of_a_home_without_state_or_onto_a_directory_says_so(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="no such file"):
        bootstrap.backup_state(settings(tmp_path / "empty"), tmp_path / "x.db")
    filled(tmp_path / "home", 1)
    with pytest.raises(StateStoreError, match="is a directory"):
        bootstrap.backup_state(settings(tmp_path / "home"), tmp_path)
    with pytest.raises(StateStoreError, match="the live state itself"):
        bootstrap.backup_state(settings(tmp_path / "home"), tmp_path / "home" / "state.db")


def test_the_cli_backs_up_and_restores(tmp_path: Path) -> None:
    home = tmp_path / "home"
    filled(home, 4)
    env = {"LOCALBATCH_HOME": str(home), "LOCALBATCH_CONFIG": "", "COLUMNS": "200"}
    runner = CliRunner()
    copy = tmp_path / "nightly.db"
    result = runner.invoke(app, ["daemon", "backup", str(copy)], env=env)
    assert result.exit_code == 0, result.output
    assert f"backed up 4 jobs and 0 job definitions (schema {SCHEMA_VERSION}" in result.stdout
    result = runner.invoke(app, ["daemon", "restore", str(copy)], env=env)
    assert result.exit_code == 0, result.output
    assert "restored 4 jobs" in result.stdout and "state.db.before-restore-" in result.stdout
    result = runner.invoke(app, ["daemon", "restore", str(tmp_path / "nope.db")], env=env)
    assert result.exit_code == 1 and "nope.db: no such file" in result.stderr
