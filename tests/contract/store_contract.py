"""The StateStore contract, written once and run against every implementation.

huey's ``StorageTests`` pattern: ``StateStoreContract`` is a mixin with no tests of its own
until a ``Test...`` class subclasses it and supplies ``make_store(tmp_path)``
(``tests/unit/test_store_memory.py``, ``tests/unit/test_store_sqlite.py``). A fake that
passes this suite behaves, for everything here, as the SQLite store does.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import pytest

from localbatch.core.jobs import Attempt, Job, JobEvent, JobStatus
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec, Device, LinuxParameters, MountPoint, Tmpfs, Ulimit, Volume
from localbatch.errors import StateStoreError
from localbatch.ports import JobDefinitionRecord, JobQuery, StateStore

S = JobStatus


class ContractStore(StateStore, Protocol):
    """The port plus AWS's DeregisterJobDefinition, which both stores implement."""

    def deregister_job_definition(self, name: str, revision: int) -> JobDefinitionRecord | None: ...


def rich_job(job_id: str = "job-rich") -> Job:
    """A job with every field (and every field of every part) away from its default."""
    linux = LinuxParameters(
        devices=(Device("/dev/fuse", "/dev/fuse", ("READ", "WRITE")), Device("/dev/null")),
        init_process_enabled=False,  # False, not None: the store must keep the difference
        shared_memory_size_mib=64,
        tmpfs=(Tmpfs("/run", 16, ("rw", "noexec")),),
        max_swap_mib=0,  # 0, not None
        swappiness=60,
    )
    container = ContainerSpec(
        image="registry.local/render:1.2",
        command=("sh", "-c", "echo ünïcode 'quoted' \"twice\""),
        environment=MappingProxyType({"STAGE": "dev", "EMPTY": "", "Z_FIRST": "order kept"}),
        resources=Resources(vcpus=1.5, memory_mib=3072, gpus=2),
        volumes=(Volume("scratch", "/tmp/scratch"), Volume("anonymous")),
        mount_points=(MountPoint("scratch", "/scratch", read_only=True), MountPoint("anonymous", "/a")),
        ulimits=(Ulimit("nofile", 1024, 4096), Ulimit("core", 0, 0)),
        user="1000:1000",
        privileged=True,
        readonly_root_filesystem=True,
        linux_parameters=linux,
    )
    retry = RetryStrategy(
        attempts=3,
        evaluate_on_exit=(
            EvaluateOnExit(
                RetryAction.RETRY, on_status_reason="Host EC2*", on_reason="*", on_exit_code="137"
            ),
            EvaluateOnExit(RetryAction.EXIT, on_exit_code="1"),
        ),
    )
    attempts = (
        Attempt(
            number=1,
            task_id="0123456789abcdef0123456789abcdef",
            container_name=f"lb-{job_id[:8]}-1",
            log_stream_name="render/default/0123456789abcdef0123456789abcdef",
            container_id="c0ffee" * 10,
            started_at=1_700_000_001_000,
            stopped_at=1_700_000_002_000,
            exit_code=137,
            reason="OutOfMemoryError: Container killed due to memory usage",
            status_reason="Essential container in task exited",
        ),
        Attempt(2, "fedcba9876543210fedcba9876543210", f"lb-{job_id[:8]}-2", "render/default/fedcba"),
    )
    return Job(
        job_id=job_id,
        job_name="render-frame-7",
        job_definition_name="render",
        job_definition_revision=4,
        job_queue="gpu",
        container=container,
        created_at=1_700_000_000_000,
        status=S.RUNNING,
        status_reason="retrying",
        compute_environment="local",
        started_at=1_700_000_003_000,
        stopped_at=1_700_000_004_000,
        parameters={"greeting": "hello", "frame": "7"},
        retry_strategy=retry,
        timeout_s=600,
        attempts=attempts,
        gpu_ids=("0", "1"),
        tags={"team": "vfx", "cost-centre": ""},
        propagate_tags=True,
        platform_capabilities=("EC2", "FARGATE"),
        scheduling_priority=0,  # 0, not None
        is_cancelled=True,
        is_terminated=True,
    )


def assert_no_defaults(value: object, path: str = "job") -> None:
    """Every dataclass field (recursively; first element of tuples) differs from its default.

    Guards the round-trip test: a field added to Job or ContainerSpec fails here until
    ``rich_job`` sets it, and then fails the round trip until the codec stores it."""
    if isinstance(value, tuple) and value:
        assert_no_defaults(value[0], f"{path}[0]")
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for field in dataclasses.fields(value):
        current = getattr(value, field.name)
        if field.default is not dataclasses.MISSING:
            assert current != field.default, f"{path}.{field.name} is left at its default"
        elif field.default_factory is not dataclasses.MISSING:
            assert current != field.default_factory(), f"{path}.{field.name} is left at its default"
        assert_no_defaults(current, f"{path}.{field.name}")


def job(job_id: str, created_at: int = 1_000, status: JobStatus = S.SUBMITTED, queue: str = "default") -> Job:
    return Job(job_id, f"name-{job_id}", "hello", 1, queue, ContainerSpec("busybox"), created_at, status)


def event(
    job_id: str, at: int, to: JobStatus, frm: JobStatus | None = None, reason: str | None = None
) -> JobEvent:
    return JobEvent(job_id, at, frm, to, reason)


class StateStoreContract:
    def make_store(self, tmp_path: Path) -> ContractStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ContractStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()

    # -- job definitions --------------------------------------------------------------

    def test_revisions_count_from_one_per_name(self, store: ContractStore) -> None:
        revisions = [
            store.register_job_definition("render", {"image": f"v{i}"}, 10 + i).revision for i in range(3)
        ]
        other = store.register_job_definition("hello", {"image": "busybox"}, 20)
        assert revisions == [1, 2, 3]
        assert other.revision == 1

    def test_registered_record_is_what_get_returns(self, store: ContractStore) -> None:
        document = {"name": "render", "command": ["sh", "-c", "x"], "resources": {"vcpus": 1.5}, "n": None}
        record = store.register_job_definition("render", document, 1_700_000_000_000)
        assert record == JobDefinitionRecord("render", 1, "ACTIVE", document, 1_700_000_000_000)
        assert store.get_job_definition("render", 1) == record
        assert store.get_job_definition("render") == record

    def test_latest_active_revision(self, store: ContractStore) -> None:
        for i in range(3):
            store.register_job_definition("render", {"v": i}, i)
        latest = store.get_job_definition("render")
        assert latest is not None
        assert (latest.revision, latest.document) == (3, {"v": 2})

        deregistered = store.deregister_job_definition("render", 3)
        assert deregistered is not None and deregistered.status == "INACTIVE"
        latest = store.get_job_definition("render")
        assert latest is not None and latest.revision == 2
        inactive = store.get_job_definition("render", 3)
        assert inactive is not None and inactive.status == "INACTIVE"  # still readable by revision

    def test_revision_never_reused(self, store: ContractStore) -> None:
        store.register_job_definition("render", {}, 1)
        store.register_job_definition("render", {}, 2)
        store.deregister_job_definition("render", 2)
        assert store.register_job_definition("render", {}, 3).revision == 3

    def test_no_active_revision_is_none(self, store: ContractStore) -> None:
        store.register_job_definition("render", {}, 1)
        store.deregister_job_definition("render", 1)
        assert store.get_job_definition("render") is None

    def test_unknown_definition_is_none(self, store: ContractStore) -> None:
        store.register_job_definition("render", {}, 1)
        assert store.get_job_definition("nope") is None
        assert store.get_job_definition("render", 2) is None
        assert store.get_job_definition("nope", 1) is None
        assert store.deregister_job_definition("render", 9) is None

    @pytest.mark.parametrize("bad", [{"x": {1, 2}}, {"x": math.nan}], ids=["set", "nan"])
    def test_document_that_is_not_json_is_refused(self, store: ContractStore, bad: dict[str, object]) -> None:
        with pytest.raises(StateStoreError, match="not JSON"):
            store.register_job_definition("render", bad, 1)
        assert store.get_job_definition("render") is None
        assert store.register_job_definition("render", {}, 2).revision == 1

    # -- jobs -------------------------------------------------------------------------

    def test_rich_job_round_trips_exactly(self, store: ContractStore) -> None:
        original = rich_job()
        assert_no_defaults(original)
        store.save_job(original)
        loaded = store.get_job(original.job_id)
        assert loaded == original
        assert loaded is not None
        assert type(loaded.container.command) is tuple
        assert type(loaded.container.linux_parameters.devices[0].permissions) is tuple
        assert loaded.container.linux_parameters.init_process_enabled is False
        assert loaded.retry_strategy.evaluate_on_exit[0].action is RetryAction.RETRY
        assert loaded.status is S.RUNNING
        assert loaded.scheduling_priority == 0
        assert list(loaded.container.environment) == ["STAGE", "EMPTY", "Z_FIRST"]
        assert type(loaded.container.resources.vcpus) is float

    def test_minimal_job_round_trips_with_defaults(self, store: ContractStore) -> None:
        original = job("job-min")
        store.save_job(original)
        loaded = store.get_job("job-min")
        assert loaded == original
        assert loaded is not None
        assert loaded.container.linux_parameters.init_process_enabled is None
        assert loaded.scheduling_priority is None
        assert type(loaded.container.resources.vcpus) is int  # Resources(vcpus=1): an int stays an int

    def test_unknown_job_is_none(self, store: ContractStore) -> None:
        assert store.get_job("nope") is None
        assert store.list_events("nope") == []

    def test_save_updates_in_place(self, store: ContractStore) -> None:
        first = rich_job("job-1")
        store.save_job(first)
        finished = dataclasses.replace(
            first,
            status=S.FAILED,
            status_reason="Essential container in task exited",
            attempts=first.attempts[:1],  # the store keeps exactly the job's attempts
            gpu_ids=(),
            tags={},
            scheduling_priority=None,
        )
        store.save_job(finished)
        assert store.get_job("job-1") == finished
        assert store.list_jobs(JobQuery()) == [finished]

    def test_events_are_appended_in_order(self, store: ContractStore) -> None:
        store.save_job(job("job-1"), [event("job-1", 1, S.SUBMITTED)])
        store.save_job(job("job-2"), [event("job-2", 2, S.SUBMITTED)])
        moved = [event("job-1", 3, S.RUNNABLE, S.SUBMITTED), event("job-1", 3, S.STARTING, S.RUNNABLE, "go")]
        store.save_job(job("job-1", status=S.STARTING), moved)
        store.save_job(job("job-1", status=S.STARTING))  # no events: nothing appended
        assert store.list_events("job-1") == [event("job-1", 1, S.SUBMITTED), *moved]
        assert store.list_events("job-2") == [event("job-2", 2, S.SUBMITTED)]

    def test_events_oldest_first(self, store: ContractStore) -> None:
        late, early = event("job-1", 50, S.RUNNABLE, S.SUBMITTED), event("job-1", 10, S.SUBMITTED)
        store.save_job(job("job-1"), [late])
        store.save_job(job("job-1"), [early])
        assert store.list_events("job-1") == [early, late]

    def test_event_may_name_another_existing_job(self, store: ContractStore) -> None:
        store.save_job(job("parent"))
        store.save_job(job("child"), [event("parent", 5, S.RUNNABLE, S.PENDING, "dependency met")])
        assert store.list_events("parent") == [event("parent", 5, S.RUNNABLE, S.PENDING, "dependency met")]

    def test_failed_save_of_a_new_job_writes_nothing(self, store: ContractStore) -> None:
        events = [event("job-1", 1, S.SUBMITTED), event("ghost", 1, S.SUBMITTED)]  # no job "ghost"
        with pytest.raises(StateStoreError):
            store.save_job(rich_job("job-1"), events)
        assert store.get_job("job-1") is None
        assert store.list_events("job-1") == []
        assert store.list_jobs(JobQuery()) == []

    def test_failed_update_leaves_the_job_as_it_was(self, store: ContractStore) -> None:
        before = rich_job("job-1")
        store.save_job(before, [event("job-1", 1, S.SUBMITTED)])
        after = dataclasses.replace(before, status=S.FAILED, attempts=before.attempts[:1])
        with pytest.raises(StateStoreError):
            store.save_job(after, [event("job-1", 2, S.FAILED, S.RUNNING), event("ghost", 2, S.FAILED)])
        assert store.get_job("job-1") == before
        assert store.list_events("job-1") == [event("job-1", 1, S.SUBMITTED)]

    @pytest.mark.parametrize("numbers", [(2, 1), (1, 1)], ids=["out-of-order", "duplicate"])
    def test_attempt_numbers_must_increase(self, store: ContractStore, numbers: tuple[int, int]) -> None:
        base = rich_job("job-1")
        attempts = tuple(dataclasses.replace(base.attempts[0], number=n) for n in numbers)
        with pytest.raises(StateStoreError, match="attempt numbers"):
            store.save_job(dataclasses.replace(base, attempts=attempts), [event("job-1", 1, S.SUBMITTED)])
        assert store.get_job("job-1") is None
        assert store.list_events("job-1") == []

    # -- listing ----------------------------------------------------------------------

    def _three_queues(self, store: ContractStore) -> None:
        store.save_job(job("a", 100, S.RUNNING, "default"))
        store.save_job(job("b", 300, S.SUBMITTED, "gpu"))
        store.save_job(job("c", 200, S.SUCCEEDED, "default"))
        store.save_job(job("d", 300, S.FAILED, "default"))  # same created_at as b: job_id breaks the tie
        store.save_job(job("e", 50, S.RUNNING, "gpu"))

    def _ids(self, store: ContractStore, query: JobQuery) -> list[str]:
        return [j.job_id for j in store.list_jobs(query)]

    def test_list_all_newest_first(self, store: ContractStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery()) == ["b", "d", "c", "a", "e"]

    def test_list_filters(self, store: ContractStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery(statuses=(S.RUNNING,))) == ["a", "e"]
        assert self._ids(store, JobQuery(statuses=(S.SUCCEEDED, S.FAILED))) == ["d", "c"]
        assert self._ids(store, JobQuery(job_queue="gpu")) == ["b", "e"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNING,), job_queue="default")) == ["a"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNABLE,))) == []
        assert self._ids(store, JobQuery(job_queue="nope")) == []

    def test_list_limit(self, store: ContractStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery(limit=2)) == ["b", "d"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNING, S.FAILED), limit=2)) == ["d", "a"]
        assert self._ids(store, JobQuery(limit=0)) == []
        with pytest.raises(ValueError):
            store.list_jobs(JobQuery(limit=-1))

    def test_list_returns_whole_jobs(self, store: ContractStore) -> None:
        rich = rich_job("rich")
        store.save_job(rich)
        store.save_job(job("plain", created_at=rich.created_at + 1))
        assert store.list_jobs(JobQuery()) == [job("plain", created_at=rich.created_at + 1), rich]
        assert store.list_jobs(JobQuery(limit=1, job_queue="gpu")) == [rich]

    # -- lifetime ---------------------------------------------------------------------

    def test_closed_store_refuses_calls(self, store: ContractStore) -> None:
        store.save_job(job("job-1"))
        store.close()
        store.close()  # idempotent
        with pytest.raises(StateStoreError):
            store.get_job("job-1")
        with pytest.raises(StateStoreError):
            store.save_job(job("job-2"))
