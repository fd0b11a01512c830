"""An in-memory StateStore that behaves as SqliteStateStore does (same contract suite).

Same revision numbering, ordering and errors: job definition documents go through a JSON
round trip (so a document that SQLite would refuse or change is refused or changed here
too), events must name a job that exists once the save is done, attempt numbers must
increase, a failed save changes nothing, a save never clears a recorded stop request,
``name_prefix`` folds ASCII letters only, and ``max_vcpus`` reads back as a float.
"""

from __future__ import annotations

import copy
import json
import math
import string
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from localbatch.core import consumables
from localbatch.core.infra import ComputeEnvironment, JobQueue, SchedulingPolicy
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopKind, StopRequest
from localbatch.errors import StateStoreError
from localbatch.ports import (
    ACTIVE,
    INACTIVE,
    JOB_EVENT,
    TAGGABLE,
    EventLogQuery,
    JobDefinitionRecord,
    JobQuery,
    LoggedEvent,
    Note,
    TagTarget,
)

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _index(job: Job) -> int:
    index = job.array_index if job.array_index is not None else job.node_index
    return index or 0


def _fold(text: str) -> str:
    """What SQLite's NOCASE compares: ASCII letters folded, everything else as is."""
    return text.translate(_ASCII_LOWER)


def _needs(job: Job, query: JobQuery) -> bool:
    if query.consumable_resource is None:
        return True
    return not job.is_array_parent and any(name == query.consumable_resource for name, _ in job.consumable_resources)


def _definition_matches(job: Job, query: JobQuery) -> bool:
    wanted = query.job_definition
    if wanted is None:
        return True
    name = job.job_definition_name
    if not (name.startswith(wanted) if query.job_definition_prefix else name == wanted):
        return False
    return query.job_definition_revision is None or job.job_definition_revision == query.job_definition_revision


def _order(job: Job) -> tuple[int, str]:
    """list_jobs' order as an ascending key: newest created_at first, then job_id."""
    return (-job.created_at, job.job_id)


def _changed(tags: Mapping[str, str], add: Mapping[str, str], remove: Sequence[str]) -> dict[str, str]:
    """``tags`` without ``remove``, then with ``add``."""
    return {**{k: v for k, v in tags.items() if k not in set(remove)}, **add}


class InMemoryStateStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._definitions: dict[str, list[JobDefinitionRecord]] = {}  # revisions in order
        self._jobs: dict[str, Job] = {}
        self._events: list[JobEvent] = []  # every job's, in append order
        self._log: list[LoggedEvent] = []  # the event log; seq = position + 1
        self._rules: dict[str, str] = {}  # rule name -> its record as JSON text
        self._environments: dict[str, ComputeEnvironment] = {}
        self._queues: dict[str, JobQueue] = {}
        self._policies: dict[str, SchedulingPolicy] = {}
        self._consumables: dict[str, consumables.ConsumableResource] = {}
        self._fail_next: StateStoreError | None = None
        self.closed = False
        self.saves = 0  # successful save_job / save_jobs calls (transactions)

    # -- called by the code under test: job definitions -------------------------------

    def register_job_definition(self, name: str, document: Mapping[str, object], now: EpochMs) -> JobDefinitionRecord:
        with self._lock:
            self._check_open()
            try:
                text = json.dumps(dict(document), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StateStoreError(f"job definition {name!r}: document is not JSON: {exc}") from exc
            revisions = self._definitions.setdefault(name, [])
            record = JobDefinitionRecord(name, len(revisions) + 1, ACTIVE, json.loads(text), now)
            revisions.append(record)
            return copy.deepcopy(record)

    def get_job_definition(self, name: str, revision: int | None = None) -> JobDefinitionRecord | None:
        with self._lock:
            self._check_open()
            revisions = self._definitions.get(name, [])
            if revision is None:
                found = next((r for r in reversed(revisions) if r.status == ACTIVE), None)
            else:
                found = next((r for r in revisions if r.revision == revision), None)
            return copy.deepcopy(found)

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None:
        with self._lock:
            self._check_open()
            revisions = self._definitions.get(name, [])
            for position, record in enumerate(revisions):
                if record.revision == revision:
                    revisions[position] = replace(record, status=INACTIVE)
                    return copy.deepcopy(revisions[position])
            return None

    def list_job_definitions(self, name: str | None = None, status: str | None = None) -> list[JobDefinitionRecord]:
        with self._lock:
            self._check_open()
            return [
                copy.deepcopy(record)
                for key in sorted(self._definitions)
                if name is None or key == name
                for record in self._definitions[key]
                if status is None or record.status == status
            ]

    # -- jobs and events --------------------------------------------------------------

    def save_job(self, job: Job, events: Sequence[JobEvent] = ()) -> None:
        self.save_jobs([(job, events)])

    def save_jobs(self, changes: Sequence[tuple[Job, Sequence[JobEvent]]]) -> None:
        with self._lock:
            self._check_open()
            if self._fail_next is not None:
                error, self._fail_next = self._fail_next, None
                raise error
            for job, _ in changes:
                numbers = [a.number for a in job.attempts]
                if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
                    raise StateStoreError(f"job {job.job_id}: attempt numbers must increase, got {numbers}")
            known = self._jobs.keys() | {job.job_id for job, _ in changes}
            unknown = sorted({e.job_id for _, events in changes for e in events} - known)
            if unknown:
                raise StateStoreError(f"saving jobs failed: events name unknown jobs {unknown}")
            status = {job.job_id: self._jobs[job.job_id].status for job, _ in changes if job.job_id in self._jobs}
            for job, _ in changes:  # one after the other, as the batch is
                before = status.get(job.job_id)
                if job.consumable_resources and before is not None:
                    if consumables.holds(before) and not consumables.holds(job.status):
                        self._use_up(job.consumable_resources)
                status[job.job_id] = job.status
            given = {job.job_id: job for job, _ in changes}  # the log keeps each job as given
            for job, events in changes:
                for e in events:
                    if e.from_status is not None:
                        kept = given.get(e.job_id)
                        self._log.append(
                            LoggedEvent(
                                seq=len(self._log) + 1,
                                at=e.at,
                                kind=JOB_EVENT,
                                job_id=e.job_id,
                                job_queue=None if kept is None else kept.job_queue,
                                status=e.to_status.value,
                                job=kept,
                                event=e,
                            )
                        )
                stored = self._jobs.get(job.job_id)
                if job.stop_request is None and stored is not None and stored.stop_request is not None:
                    job = replace(job, stop_request=stored.stop_request)  # never cleared by a save
                if stored is not None and job.tags != stored.tags:
                    job = replace(job, tags=stored.tags)  # changed by update_tags only
                self._jobs[job.job_id] = job  # frozen: sharing it is safe, as long as callers
                # treat the Mappings inside a Job as read-only (its type says they are)
                self._events.extend(events)
            self.saves += 1

    def request_stop(self, job_id: str, request: StopRequest) -> Job | None:
        with self._lock:
            self._check_open()
            job = self._jobs.get(job_id)
            pending = None if job is None else job.stop_request
            replaceable = pending is None or (pending.kind is StopKind.CANCEL and request.kind is StopKind.TERMINATE)
            if job is not None and replaceable and not job.status.is_terminal:
                job = self._jobs[job_id] = replace(job, stop_request=request)
            return job

    def clear_stop_request(self, job_id: str, request: StopRequest) -> None:
        with self._lock:
            self._check_open()
            job = self._jobs.get(job_id)
            if job is not None and job.stop_request == request:
                self._jobs[job_id] = replace(job, stop_request=None)

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            self._check_open()
            return self._jobs.get(job_id)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit < 0:
            raise ValueError(f"JobQuery.limit must be >= 0, got {query.limit}")
        prefix = None if query.name_prefix is None else _fold(query.name_prefix)
        members = query.array_job_id is not None or query.multi_node_job_id is not None
        after = None if query.after is None else (-query.after[0], query.after[1])
        with self._lock:
            self._check_open()
            found = [
                job
                for job in self._jobs.values()
                if (job.array_job_id == query.array_job_id or query.consumable_resource is not None)
                and job.multinode_job_id == query.multi_node_job_id
                and (not query.statuses or job.status in query.statuses)
                and (query.job_queue is None or job.job_queue == query.job_queue)
                and (prefix is None or _fold(job.job_name[: len(prefix)]) == prefix)
                and _definition_matches(job, query)
                and _needs(job, query)
                and (query.created_after is None or job.created_at > query.created_after)
                and (query.created_before is None or job.created_at < query.created_before)
                and (after is None or (_index(job) > query.after[0] if members else _order(job) > after))
            ]
        # An array's children and a job's nodes go by index; everything else newest first.
        return sorted(found, key=_index if members else _order)[: query.limit]

    def recent_jobs(self, job_definition_name: str, limit: int) -> list[Job]:
        with self._lock:
            self._check_open()
            found = [
                job
                for job in self._jobs.values()
                if job.job_definition_name == job_definition_name
                and job.stopped_at is not None
                and not job.is_array_parent
                and not job.is_multinode_parent
            ]
        return sorted(found, key=lambda job: (-(job.stopped_at or 0), job.job_id))[:limit]

    def active_jobs(self) -> list[Job]:
        with self._lock:
            self._check_open()
            active = [job for job in self._jobs.values() if not job.status.is_terminal]
        return sorted(active, key=lambda job: (job.created_at, job.job_id))

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        with self._lock:
            self._check_open()
            return {
                j.share_identifier
                for j in self._jobs.values()
                if j.job_queue == job_queue and j.share_identifier is not None and not j.status.is_terminal
            }

    def count_jobs(self, job_queue: str | None = None, array_job_id: str | None = None) -> dict[JobStatus, int]:
        with self._lock:
            self._check_open()
            statuses = [
                j.status
                for j in self._jobs.values()
                if (job_queue is None or j.job_queue == job_queue)
                and (array_job_id is None or j.array_job_id == array_job_id)
            ]
        return {status: statuses.count(status) for status in JobStatus if status in statuses}

    def list_events(self, job_id: str) -> list[JobEvent]:
        with self._lock:
            self._check_open()
            return sorted((e for e in self._events if e.job_id == job_id), key=lambda e: e.at)

    # -- the event log and the rules' records -----------------------------------------

    def read_event_log(self, query: EventLogQuery) -> list[LoggedEvent]:
        with self._lock:
            self._check_open()
            found = [
                entry
                for entry in self._log[query.after_seq :]
                if (query.job_queue is None or entry.job_queue == query.job_queue)
                and (not query.statuses or entry.status in query.statuses)
                and (not query.kinds or entry.kind in query.kinds)
                and (query.since is None or entry.at >= query.since)
            ]
            return found[: query.limit]

    def last_event_seq(self) -> int:
        with self._lock:
            self._check_open()
            return len(self._log)

    def append_notes(self, notes: Sequence[Note]) -> list[int]:
        with self._lock:
            self._check_open()
            try:
                bodies = [json.loads(json.dumps(dict(n.body), allow_nan=False)) for n in notes]
            except (TypeError, ValueError) as exc:
                raise StateStoreError(f"a note cannot be encoded: {exc}") from exc
            seqs = []
            for note, body in zip(notes, bodies, strict=True):
                self._log.append(
                    LoggedEvent(
                        seq=len(self._log) + 1,
                        at=note.at,
                        kind=note.kind,
                        job_id=note.job_id,
                        job_queue=note.job_queue,
                        status=note.status,
                        note=body,
                    )
                )
                seqs.append(len(self._log))
            return seqs

    def get_rule_states(self) -> dict[str, Mapping[str, object]]:
        with self._lock:
            self._check_open()
            return {name: json.loads(text) for name, text in sorted(self._rules.items())}

    def put_rule_state(self, name: str, state: Mapping[str, object]) -> None:
        with self._lock:
            self._check_open()
            try:
                self._rules[name] = json.dumps(dict(state), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StateStoreError(f"rule {name!r}: its record cannot be encoded: {exc}") from exc

    # -- compute environments and job queues ------------------------------------------

    def put_compute_environment(self, environment: ComputeEnvironment) -> None:
        vcpus = environment.max_vcpus
        if isinstance(vcpus, bool) or not isinstance(vcpus, int | float) or not math.isfinite(vcpus):
            raise StateStoreError(
                f"compute environment {environment.name!r}: cannot be encoded: "
                f"max_vcpus must be a finite number, got {vcpus!r}"
            )
        with self._lock:
            self._check_open()
            self._environments[environment.name] = replace(environment, max_vcpus=float(vcpus))

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None:
        with self._lock:
            self._check_open()
            return self._environments.get(name)

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        with self._lock:
            self._check_open()
            return [self._environments[name] for name in sorted(self._environments)]

    def delete_compute_environment(self, name: str) -> bool:
        with self._lock:
            self._check_open()
            return self._environments.pop(name, None) is not None

    def put_job_queue(self, queue: JobQueue) -> None:
        with self._lock:
            self._check_open()
            self._queues[queue.name] = queue

    def get_job_queue(self, name: str) -> JobQueue | None:
        with self._lock:
            self._check_open()
            return self._queues.get(name)

    def list_job_queues(self) -> list[JobQueue]:
        with self._lock:
            self._check_open()
            return [self._queues[name] for name in sorted(self._queues)]

    def delete_job_queue(self, name: str) -> bool:
        with self._lock:
            self._check_open()
            return self._queues.pop(name, None) is not None

    def put_scheduling_policy(self, policy: SchedulingPolicy) -> None:
        for entry in policy.share_distribution:
            weight = entry.weight_factor
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                raise StateStoreError(
                    f"scheduling policy {policy.name!r}: cannot be encoded: weight_factor of "
                    f"{entry.share_identifier!r} must be a finite number, got {weight!r}"
                )
        distribution = tuple(replace(e, weight_factor=float(e.weight_factor)) for e in policy.share_distribution)
        with self._lock:
            self._check_open()
            self._policies[policy.name] = replace(policy, share_distribution=distribution)

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None:
        with self._lock:
            self._check_open()
            return self._policies.get(name)

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        with self._lock:
            self._check_open()
            return [self._policies[name] for name in sorted(self._policies)]

    def delete_scheduling_policy(self, name: str) -> bool:
        with self._lock:
            self._check_open()
            return self._policies.pop(name, None) is not None

    def _use_up(self, needs: Sequence[consumables.Need]) -> None:
        for name, quantity in needs:
            found = self._consumables.get(name)
            if found is not None and found.resource_type is consumables.ResourceType.NON_REPLENISHABLE:
                self._consumables[name] = replace(found, total_quantity=max(0, found.total_quantity - quantity))

    def put_consumable_resource(self, resource: consumables.ConsumableResource) -> None:
        with self._lock:
            self._check_open()
            self._consumables[resource.name] = resource

    def get_consumable_resource(self, name: str) -> consumables.ConsumableResource | None:
        with self._lock:
            self._check_open()
            return self._consumables.get(name)

    def list_consumable_resources(self) -> list[consumables.ConsumableResource]:
        with self._lock:
            self._check_open()
            return [self._consumables[name] for name in sorted(self._consumables)]

    def delete_consumable_resource(self, name: str) -> bool:
        with self._lock:
            self._check_open()
            return self._consumables.pop(name, None) is not None

    def update_consumable_total(
        self, name: str, change: Callable[[consumables.ConsumableResource], int]
    ) -> consumables.ConsumableResource | None:
        with self._lock:
            self._check_open()
            found = self._consumables.get(name)
            if found is None:
                return None
            self._consumables[name] = replace(found, total_quantity=change(found))
            return self._consumables[name]

    # -- tags -------------------------------------------------------------------------

    def update_tags(self, target: TagTarget, add: Mapping[str, str], remove: Sequence[str]) -> dict[str, str] | None:
        if target.kind not in TAGGABLE or (target.revision is None) != (target.kind != "job-definition"):
            raise ValueError(f"not a resource that has tags: {target}")
        with self._lock:
            self._check_open()
            if target.kind == "job-definition":
                revisions = self._definitions.get(target.name, [])
                at = next((i for i, r in enumerate(revisions) if r.revision == target.revision), None)
                if at is None:
                    return None
                record = revisions[at]
                tags = _changed(dict(record.document.get("tags") or {}), add, remove)  # type: ignore[call-overload]
                if add or remove:
                    document = {k: v for k, v in record.document.items() if k != "tags"}
                    document.update({"tags": tags} if tags else {})
                    revisions[at] = replace(record, document=copy.deepcopy(document))
                return tags
            table: dict[str, Any] = {
                "job": self._jobs,
                "job-queue": self._queues,
                "compute-environment": self._environments,
                "scheduling-policy": self._policies,
                "consumable-resource": self._consumables,
            }[target.kind]
            found = table.get(target.name)
            if found is None:
                return None
            tags = _changed(found.tags, add, remove)
            if add or remove:
                table[target.name] = replace(found, tags=tags)
            return dict(tags)

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise StateStoreError("in-memory state store: closed")

    # -- called by tests: set up the world, look at what happened ---------------------

    def fail_next_save(self, message: str = "database is locked") -> None:
        """Make the next ``save_job`` or ``save_jobs`` raise StateStoreError(message) and
        store nothing."""
        self._fail_next = StateStoreError(f"in-memory state store: {message}")

    def all_jobs(self) -> list[Job]:
        """Every job, in the order first saved."""
        return list(self._jobs.values())

    def all_events(self) -> list[JobEvent]:
        """Every event of every job, in the order appended."""
        return list(self._events)
