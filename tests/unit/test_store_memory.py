"""InMemoryStateStore: the StateStore contract, plus its test-only API."""

from __future__ import annotations

from pathlib import Path

import pytest

from localbatch.errors import StateStoreError
from localbatch.ports import JobQuery
from tests.contract.store_contract import StateStoreContract, event, job
from tests.fakes.store import InMemoryStateStore


class TestInMemoryStateStore(StateStoreContract):
    def make_store(self, tmp_path: Path) -> InMemoryStateStore:
        return InMemoryStateStore()


def test_fail_next_save_fails_once_and_stores_nothing() -> None:
    store = InMemoryStateStore()
    store.fail_next_save("disk full")
    with pytest.raises(StateStoreError, match="disk full"):
        store.save_job(job("job-1"), [event("job-1", 1, job("job-1").status)])
    assert store.get_job("job-1") is None
    assert store.all_events() == []
    store.save_job(job("job-1"))
    assert store.saves == 1
    assert store.list_jobs(JobQuery()) == [job("job-1")]


def test_observers_see_everything_in_append_order() -> None:
    store = InMemoryStateStore()
    first, second = event("b", 5, job("b").status), event("a", 1, job("a").status)
    store.save_job(job("b"), [first])
    store.save_job(job("a"), [second])
    assert [j.job_id for j in store.all_jobs()] == ["b", "a"]
    assert store.all_events() == [first, second]
    assert store.saves == 2


def test_fail_next_save_also_fails_a_batch_whole() -> None:
    store = InMemoryStateStore()
    store.fail_next_save()
    with pytest.raises(StateStoreError, match="locked"):
        store.save_jobs([(job("job-1"), []), (job("job-2"), [])])
    assert store.all_jobs() == [] and store.saves == 0
    store.save_jobs([(job("job-1"), []), (job("job-2"), [])])
    assert store.saves == 1  # one per transaction, however many jobs
    assert [j.job_id for j in store.all_jobs()] == ["job-1", "job-2"]
