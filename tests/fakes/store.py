"""An in-memory StateStore that behaves as SqliteStateStore does (same contract suite).

Same revision numbering, ordering and errors: job definition documents go through a JSON
round trip (so a document that SQLite would refuse or change is refused or changed here
too), events must name a job that exists once the save is done, attempt numbers must
increase, and a failed save changes nothing.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace

from localbatch.core.jobs import EpochMs, Job, JobEvent
from localbatch.errors import StateStoreError
from localbatch.ports import JobDefinitionRecord, JobQuery


class InMemoryStateStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[str, list[JobDefinitionRecord]] = {}  # revisions in order
        self._jobs: dict[str, Job] = {}
        self._events: list[JobEvent] = []  # every job's, in append order
        self._fail_next: StateStoreError | None = None
        self.closed = False
        self.saves = 0  # successful save_job calls

    # -- called by the code under test ------------------------------------------------

    def register_job_definition(
        self, name: str, document: Mapping[str, object], now: EpochMs
    ) -> JobDefinitionRecord:
        with self._lock:
            self._check_open()
            try:
                text = json.dumps(dict(document), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StateStoreError(f"job definition {name!r}: document is not JSON: {exc}") from exc
            revisions = self._definitions.setdefault(name, [])
            record = JobDefinitionRecord(name, len(revisions) + 1, "ACTIVE", json.loads(text), now)
            revisions.append(record)
            return copy.deepcopy(record)

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        with self._lock:
            self._check_open()
            revisions = self._definitions.get(name, [])
            if revision is None:
                found = next((r for r in reversed(revisions) if r.status == "ACTIVE"), None)
            else:
                found = next((r for r in revisions if r.revision == revision), None)
            return copy.deepcopy(found)

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None:
        with self._lock:
            self._check_open()
            revisions = self._definitions.get(name, [])
            for position, record in enumerate(revisions):
                if record.revision == revision:
                    revisions[position] = replace(record, status="INACTIVE")
                    return copy.deepcopy(revisions[position])
            return None

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        with self._lock:
            self._check_open()
            if self._fail_next is not None:
                error, self._fail_next = self._fail_next, None
                raise error
            numbers = [a.number for a in job.attempts]
            if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
                raise StateStoreError(f"job {job.job_id}: attempt numbers must increase, got {numbers}")
            known = self._jobs.keys() | {job.job_id}
            unknown = sorted({e.job_id for e in events} - known)
            if unknown:
                raise StateStoreError(f"saving job {job.job_id} failed: events name unknown jobs {unknown}")
            self._jobs[job.job_id] = job  # frozen: sharing it is safe, as long as callers
            # treat the Mappings inside a Job as read-only (its type says they are)
            self._events.extend(events)
            self.saves += 1

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            self._check_open()
            return self._jobs.get(job_id)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit < 0:
            raise ValueError(f"JobQuery.limit must be >= 0, got {query.limit}")
        with self._lock:
            self._check_open()
            found = [
                job
                for job in self._jobs.values()
                if (not query.statuses or job.status in query.statuses)
                and (query.job_queue is None or job.job_queue == query.job_queue)
            ]
            found.sort(key=lambda job: job.job_id)
            found.sort(key=lambda job: job.created_at, reverse=True)  # stable: job_id breaks ties
            return found[: query.limit]

    def list_events(self, job_id: str) -> list[JobEvent]:
        with self._lock:
            self._check_open()
            return sorted((e for e in self._events if e.job_id == job_id), key=lambda e: e.at)

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise StateStoreError("in-memory state store: closed")

    # -- called by tests: set up the world, look at what happened ---------------------

    def fail_next_save(self, message: str = "database is locked") -> None:
        """Make the next ``save_job`` raise StateStoreError(message) and store nothing."""
        self._fail_next = StateStoreError(f"in-memory state store: {message}")

    def all_jobs(self) -> list[Job]:
        """Every job, in the order first saved."""
        return list(self._jobs.values())

    def all_events(self) -> list[JobEvent]:
        """Every event of every job, in the order appended."""
        return list(self._events)
