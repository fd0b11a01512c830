"""The StateStore contract, written once and run against every implementation.

huey's ``StorageTests`` pattern: ``StateStoreContract`` is a mixin with no tests of its own
until a ``Test...`` class subclasses it and supplies ``make_store(tmp_path)``
(``tests/unit/test_store_memory.py``, ``tests/unit/test_store_sqlite.py``). A fake that
passes this suite behaves, for everything here, as the SQLite store does.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localbatch.core.consumables import ConsumableResource, ResourceType
from localbatch.core.definition import NodeRangeProperty
from localbatch.core.infra import (
    ComputeEnvironment,
    JobQueue,
    JobStateTimeLimitAction,
    SchedulingPolicy,
    ShareWeight,
    State,
)
from localbatch.core.jobs import (
    Attempt,
    Dependency,
    DependencyType,
    Job,
    JobEvent,
    JobStatus,
    StopKind,
    StopRequest,
    transition,
)
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import ContainerSpec, Device, LinuxParameters, MountPoint, S3Access, Tmpfs, Ulimit, Volume
from localbatch.core.spot import SpotRehearsal
from localbatch.core.staging import StagedInput, StagedOutput
from localbatch.core.usage import AttemptUsage
from localbatch.errors import StateStoreError
from localbatch.ports import JOB_EVENT, EventLogQuery, JobDefinitionRecord, JobQuery, Note, StateStore, TagTarget

S = JobStatus


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
        s3_access=S3Access(enabled=False, generic_endpoint=True),
        inputs=(StagedInput("s3://inbox/${AWS_BATCH_JOB_ARRAY_INDEX}.csv", "/data/in.csv"),),
        outputs=(StagedOutput("/out/", "s3://results/${AWS_BATCH_JOB_ID}/", on_failure=True),),
    )
    retry = RetryStrategy(
        attempts=3,
        evaluate_on_exit=(
            EvaluateOnExit(RetryAction.RETRY, on_status_reason="Host EC2*", on_reason="*", on_exit_code="137"),
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
            usage=AttemptUsage(
                samples=12,
                cpu_avg_percent=87.5,
                cpu_peak_percent=199.9,
                memory_peak_mib=3071.5,
                memory_limit_mib=3072.0,
                gpu_avg_percent=40.0,
                gpu_peak_percent=99.0,
                cpu_now_percent=12.5,
                memory_now_mib=100.25,
            ),
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
        runnable_at=1_700_000_000_500,
        stop_request=StopRequest(StopKind.TERMINATE, "Terminated: operator's call ünïcode", 1_700_000_003_500),
        depends_on=(Dependency("other:3", DependencyType.N_TO_N), Dependency("plain")),
        array_size=4,
        share_identifier="team-ä",
        num_nodes=3,
        main_node=1,
        node_ranges=(NodeRangeProperty("0:", container, ("p4d.24xlarge",)), NodeRangeProperty("1", container)),
        submitted_by="alice@workstation",
        consumable_resources=(("licences", 2), ("db-slots", 1)),
    )


# Fields the rich job leaves at their defaults, each round-tripped by a test of its own:
# array_index makes a job an array child, node_index a multi-node node, which queue listings
# leave out.
_ROUND_TRIPPED_ELSEWHERE = {"job.array_index", "job.node_index"}


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
        if f"{path}.{field.name}" in _ROUND_TRIPPED_ELSEWHERE:
            continue
        if field.default is not dataclasses.MISSING:
            assert current != field.default, f"{path}.{field.name} is left at its default"
        elif field.default_factory is not dataclasses.MISSING:
            assert current != field.default_factory(), f"{path}.{field.name} is left at its default"
        assert_no_defaults(current, f"{path}.{field.name}")


def job(job_id: str, created_at: int = 1_000, status: JobStatus = S.SUBMITTED, queue: str = "default") -> Job:
    return Job(job_id, f"name-{job_id}", "hello", 1, queue, ContainerSpec("busybox"), created_at, status)


def event(job_id: str, at: int, to: JobStatus, frm: JobStatus | None = None, reason: str | None = None) -> JobEvent:
    return JobEvent(job_id, at, frm, to, reason)


def ids(jobs: list[Job]) -> list[str]:
    return [j.job_id for j in jobs]


def crowd(seed: int = 7, count: int = 150) -> list[Job]:
    """Jobs in 3 queues and every status, with few distinct created_at values (many ties)
    and names that differ in ASCII case, for the listing properties."""
    rng = random.Random(seed)
    names = ["Render-", "render_", "RENDER", "train", "rend", "Ünï"]
    return [
        dataclasses.replace(
            job(f"j{rng.randrange(10**6):06d}-{i}", rng.randrange(20), rng.choice(list(S)), rng.choice("abc")),
            job_name=rng.choice(names) + str(i),
        )
        for i in range(count)
    ]


def expected(jobs: list[Job], query: JobQuery) -> list[Job]:
    """What ``list_jobs(query)`` returns, ignoring ``limit``: the contract written plainly."""

    def fold(text: str) -> str:  # ASCII letters only, as SQLite's NOCASE
        return "".join(c.lower() if "A" <= c <= "Z" else c for c in text)

    def wanted(j: Job) -> bool:
        return (
            (not query.statuses or j.status in query.statuses)
            and (query.job_queue is None or j.job_queue == query.job_queue)
            and (query.name_prefix is None or fold(j.job_name).startswith(fold(query.name_prefix)))
            and (query.created_after is None or j.created_at > query.created_after)
            and (query.created_before is None or j.created_at < query.created_before)
            and (
                query.after is None
                or j.created_at < query.after[0]
                or (j.created_at == query.after[0] and j.job_id > query.after[1])
            )
        )

    return sorted(filter(wanted, jobs), key=lambda j: (-j.created_at, j.job_id))


def walk(store: StateStore, query: JobQuery) -> list[Job]:
    """Every page of ``query``, each continuing after the last job of the one before."""
    seen: list[Job] = []
    for _ in range(1_000):  # more pages than any test has jobs: a walk that repeats itself fails
        page = store.list_jobs(query)
        seen += page
        if len(page) < query.limit:
            return seen
        query = dataclasses.replace(query, after=(page[-1].created_at, page[-1].job_id))
    raise AssertionError(f"the pages never end; the first 20 ids: {ids(seen[:20])}")


queries = st.builds(
    JobQuery,
    statuses=st.lists(st.sampled_from(list(S)), max_size=4).map(tuple),
    job_queue=st.none() | st.sampled_from(["a", "b", "nope"]),
    name_prefix=st.none() | st.sampled_from(["", "r", "RENDER", "render-", "Ren", "t", "ü", "Ü", "x"]),
    created_after=st.none() | st.integers(-1, 20),
    created_before=st.none() | st.integers(-1, 21),
    limit=st.integers(1, 40),
)


class StateStoreContract:
    def make_store(self, tmp_path: Path) -> StateStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[StateStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()

    # -- job definitions --------------------------------------------------------------

    def test_revisions_count_from_one_per_name(self, store: StateStore) -> None:
        revisions = [store.register_job_definition("render", {"image": f"v{i}"}, 10 + i).revision for i in range(3)]
        other = store.register_job_definition("hello", {"image": "busybox"}, 20)
        assert revisions == [1, 2, 3]
        assert other.revision == 1

    def test_registered_record_is_what_get_returns(self, store: StateStore) -> None:
        document = {"name": "render", "command": ["sh", "-c", "x"], "resources": {"vcpus": 1.5}, "n": None}
        record = store.register_job_definition("render", document, 1_700_000_000_000)
        assert record == JobDefinitionRecord("render", 1, "ACTIVE", document, 1_700_000_000_000)
        assert store.get_job_definition("render", 1) == record
        assert store.get_job_definition("render") == record

    def test_latest_active_revision(self, store: StateStore) -> None:
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

    def test_revision_never_reused(self, store: StateStore) -> None:
        store.register_job_definition("render", {}, 1)
        store.register_job_definition("render", {}, 2)
        store.deregister_job_definition("render", 2)
        assert store.register_job_definition("render", {}, 3).revision == 3

    def test_no_active_revision_is_none(self, store: StateStore) -> None:
        store.register_job_definition("render", {}, 1)
        store.deregister_job_definition("render", 1)
        assert store.get_job_definition("render") is None

    def test_unknown_definition_is_none(self, store: StateStore) -> None:
        store.register_job_definition("render", {}, 1)
        assert store.get_job_definition("nope") is None
        assert store.get_job_definition("render", 2) is None
        assert store.get_job_definition("nope", 1) is None
        assert store.deregister_job_definition("render", 9) is None

    @pytest.mark.parametrize("bad", [{"x": {1, 2}}, {"x": math.nan}], ids=["set", "nan"])
    def test_document_that_is_not_json_is_refused(self, store: StateStore, bad: dict[str, object]) -> None:
        with pytest.raises(StateStoreError, match="not JSON"):
            store.register_job_definition("render", bad, 1)
        assert store.get_job_definition("render") is None
        assert store.register_job_definition("render", {}, 2).revision == 1

    def test_list_job_definitions_by_name_then_revision(self, store: StateStore) -> None:
        store.register_job_definition("render", {"v": 1}, 1)
        store.register_job_definition("hello", {"v": 1}, 2)
        store.register_job_definition("render", {"v": 2}, 3)
        store.register_job_definition("Render", {}, 4)  # names are case-sensitive: "R" < "h" < "r"
        store.deregister_job_definition("render", 1)

        def keys(records: list[JobDefinitionRecord]) -> list[tuple[str, int, str]]:
            return [(r.name, r.revision, r.status) for r in records]

        everything = [("Render", 1, "ACTIVE"), ("hello", 1, "ACTIVE"), ("render", 1, "INACTIVE")]
        everything.append(("render", 2, "ACTIVE"))
        assert keys(store.list_job_definitions()) == everything
        assert keys(store.list_job_definitions(name="render")) == everything[2:]
        assert keys(store.list_job_definitions(status="ACTIVE")) == [everything[i] for i in (0, 1, 3)]
        assert keys(store.list_job_definitions(name="render", status="INACTIVE")) == [everything[2]]
        assert store.list_job_definitions(name="nope") == []
        assert store.list_job_definitions(status="nope") == []
        assert store.list_job_definitions(name="hello") == [JobDefinitionRecord("hello", 1, "ACTIVE", {"v": 1}, 2)]

    def test_deregister_returns_the_record_and_is_idempotent(self, store: StateStore) -> None:
        store.register_job_definition("render", {"v": 1}, 1)
        inactive = JobDefinitionRecord("render", 1, "INACTIVE", {"v": 1}, 1)
        assert store.deregister_job_definition("render", 1) == inactive
        assert store.deregister_job_definition("render", 1) == inactive
        assert store.list_job_definitions() == [inactive]

    # -- jobs -------------------------------------------------------------------------

    def test_rich_job_round_trips_exactly(self, store: StateStore) -> None:
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
        assert loaded.stop_request is not None and loaded.stop_request.kind is StopKind.TERMINATE

    def test_recent_jobs_of_a_definition_most_recently_stopped_first(self, store: StateStore) -> None:
        def ended(job_id: str, stopped_at: int | None, definition: str = "hello", **extra: object) -> Job:
            base = replace(job(job_id), job_definition_name=definition, stopped_at=stopped_at, **extra)  # type: ignore[arg-type]
            return replace(base, status=S.SUCCEEDED) if stopped_at is not None else base

        store.save_job(ended("old", 1_000))
        store.save_job(ended("new", 3_000))
        store.save_job(ended("mid", 2_000))
        store.save_job(ended("running", None))
        store.save_job(ended("other", 4_000, definition="elsewhere"))
        store.save_job(ended("parent", 5_000, array_size=2))
        store.save_job(ended("parent:0", 5_000, array_size=2, array_index=0))
        assert ids(store.recent_jobs("hello", 10)) == ["parent:0", "new", "mid", "old"]
        assert ids(store.recent_jobs("hello", 2)) == ["parent:0", "new"]
        assert store.recent_jobs("nothing", 5) == []

    def test_array_children_list_by_index_apart_from_their_queue(self, store: StateStore) -> None:
        parent = dataclasses.replace(job("arr", created_at=5), array_size=12)
        kids = [
            dataclasses.replace(parent, job_id=f"arr:{i}", array_index=i, status=S.SUCCEEDED if i < 3 else S.RUNNABLE)
            for i in range(12)
        ]
        store.save_jobs([(parent, []), *((kid, []) for kid in kids)])
        assert store.get_job("arr:7") == kids[7]
        assert [j.job_id for j in store.list_jobs(JobQuery(job_queue="default"))] == ["arr"]
        listed = store.list_jobs(JobQuery(array_job_id="arr", limit=5))
        assert [j.array_index for j in listed] == [0, 1, 2, 3, 4]  # by index, 10 after 9
        rest = store.list_jobs(JobQuery(array_job_id="arr", after=(4, "arr:4"), limit=100))
        assert [j.array_index for j in rest] == list(range(5, 12))
        done = store.list_jobs(JobQuery(array_job_id="arr", statuses=(S.SUCCEEDED,)))
        assert [j.job_id for j in done] == ["arr:0", "arr:1", "arr:2"]
        assert store.count_jobs(array_job_id="arr") == {S.RUNNABLE: 9, S.SUCCEEDED: 3}
        every = store.list_jobs(JobQuery(array_job_id="arr", created_after=0))  # ListJobs' filters
        assert [j.array_index for j in every][:3] == [0, 1, 2] and len(every) == 12
        assert store.list_jobs(JobQuery(array_job_id="arr", created_before=5)) == []

    def test_multinode_nodes_list_by_index_apart_from_their_queue(self, store: StateStore) -> None:
        parent = dataclasses.replace(job("mnp", created_at=5), num_nodes=11, main_node=2)
        nodes = [
            dataclasses.replace(parent, job_id=f"mnp#{i}", node_index=i, status=S.RUNNING if i < 3 else S.STARTING)
            for i in range(11)
        ]
        store.save_jobs([(parent, []), *((node, []) for node in nodes)])
        assert store.get_job("mnp#7") == nodes[7]
        assert store.get_job("mnp#7").multinode_job_id == "mnp"  # type: ignore[union-attr]
        assert [j.job_id for j in store.list_jobs(JobQuery(job_queue="default"))] == ["mnp"]
        listed = store.list_jobs(JobQuery(multi_node_job_id="mnp", limit=5))
        assert [j.node_index for j in listed] == [0, 1, 2, 3, 4]  # by index, 10 after 9
        rest = store.list_jobs(JobQuery(multi_node_job_id="mnp", after=(4, "mnp#4"), limit=100))
        assert [j.node_index for j in rest] == list(range(5, 11))
        running = store.list_jobs(JobQuery(multi_node_job_id="mnp", statuses=(S.RUNNING,)))
        assert [j.job_id for j in running] == ["mnp#0", "mnp#1", "mnp#2"]

    def test_active_share_identifiers_of_a_queue(self, store: StateStore) -> None:
        shared = [
            dataclasses.replace(job(f"s{n}", status=status, queue=queue), share_identifier=share)
            for n, (share, status, queue) in enumerate(
                [("a", S.RUNNABLE, "fq"), ("a", S.RUNNING, "fq"), ("b", S.SUCCEEDED, "fq"), ("c", S.PENDING, "other")]
            )
        ]
        store.save_jobs([(j, []) for j in [*shared, job("plain", queue="fq")]])
        assert store.active_share_identifiers("fq") == {"a"}
        assert store.active_share_identifiers("other") == {"c"}
        assert store.active_share_identifiers("none") == set()

    def test_minimal_job_round_trips_with_defaults(self, store: StateStore) -> None:
        original = job("job-min")
        store.save_job(original)
        loaded = store.get_job("job-min")
        assert loaded == original
        assert loaded is not None
        assert loaded.container.linux_parameters.init_process_enabled is None
        assert loaded.scheduling_priority is None
        assert type(loaded.container.resources.vcpus) is int  # Resources(vcpus=1): an int stays an int
        assert loaded.runnable_at is None and loaded.stop_request is None

    def test_unknown_job_is_none(self, store: StateStore) -> None:
        assert store.get_job("nope") is None
        assert store.list_events("nope") == []

    def test_save_updates_in_place(self, store: StateStore) -> None:
        first = rich_job("job-1")
        store.save_job(first)
        finished = dataclasses.replace(
            first,
            status=S.FAILED,
            status_reason="Essential container in task exited",
            attempts=first.attempts[:1],  # the store keeps exactly the job's attempts
            gpu_ids=(),
            scheduling_priority=None,
        )  # not tags: a save keeps the stored ones (test_a_save_keeps_the_stored_tags_of_a_job)
        store.save_job(finished)
        assert store.get_job("job-1") == finished
        assert store.list_jobs(JobQuery()) == [finished]

    def test_an_events_detail_is_kept(self, store: StateStore) -> None:
        failed = JobEvent("j", 5, S.RUNNING, S.FAILED, "Essential container in task exited", "not retrying: x")
        store.save_job(job("j", status=S.FAILED), [failed])
        assert store.list_events("j") == [failed]

    def test_events_are_appended_in_order(self, store: StateStore) -> None:
        store.save_job(job("job-1"), [event("job-1", 1, S.SUBMITTED)])
        store.save_job(job("job-2"), [event("job-2", 2, S.SUBMITTED)])
        moved = [event("job-1", 3, S.RUNNABLE, S.SUBMITTED), event("job-1", 3, S.STARTING, S.RUNNABLE, "go")]
        store.save_job(job("job-1", status=S.STARTING), moved)
        store.save_job(job("job-1", status=S.STARTING))  # no events: nothing appended
        assert store.list_events("job-1") == [event("job-1", 1, S.SUBMITTED), *moved]
        assert store.list_events("job-2") == [event("job-2", 2, S.SUBMITTED)]

    def test_events_oldest_first(self, store: StateStore) -> None:
        late, early = event("job-1", 50, S.RUNNABLE, S.SUBMITTED), event("job-1", 10, S.SUBMITTED)
        store.save_job(job("job-1"), [late])
        store.save_job(job("job-1"), [early])
        assert store.list_events("job-1") == [early, late]

    def test_event_may_name_another_existing_job(self, store: StateStore) -> None:
        store.save_job(job("parent"))
        store.save_job(job("child"), [event("parent", 5, S.RUNNABLE, S.PENDING, "dependency met")])
        assert store.list_events("parent") == [event("parent", 5, S.RUNNABLE, S.PENDING, "dependency met")]

    def test_failed_save_of_a_new_job_writes_nothing(self, store: StateStore) -> None:
        events = [event("job-1", 1, S.SUBMITTED), event("ghost", 1, S.SUBMITTED)]  # no job "ghost"
        with pytest.raises(StateStoreError):
            store.save_job(rich_job("job-1"), events)
        assert store.get_job("job-1") is None
        assert store.list_events("job-1") == []
        assert store.list_jobs(JobQuery()) == []

    def test_failed_update_leaves_the_job_as_it_was(self, store: StateStore) -> None:
        before = rich_job("job-1")
        store.save_job(before, [event("job-1", 1, S.SUBMITTED)])
        after = dataclasses.replace(before, status=S.FAILED, attempts=before.attempts[:1])
        with pytest.raises(StateStoreError):
            store.save_job(after, [event("job-1", 2, S.FAILED, S.RUNNING), event("ghost", 2, S.FAILED)])
        assert store.get_job("job-1") == before
        assert store.list_events("job-1") == [event("job-1", 1, S.SUBMITTED)]

    @pytest.mark.parametrize("numbers", [(2, 1), (1, 1)], ids=["out-of-order", "duplicate"])
    def test_attempt_numbers_must_increase(self, store: StateStore, numbers: tuple[int, int]) -> None:
        base = rich_job("job-1")
        attempts = tuple(dataclasses.replace(base.attempts[0], number=n) for n in numbers)
        with pytest.raises(StateStoreError, match="attempt numbers"):
            store.save_job(dataclasses.replace(base, attempts=attempts), [event("job-1", 1, S.SUBMITTED)])
        assert store.get_job("job-1") is None
        assert store.list_events("job-1") == []

    # -- many jobs at once -------------------------------------------------------------

    def test_save_jobs_writes_every_change(self, store: StateStore) -> None:
        changes = [(job(f"j{i:02d}", created_at=i), [event(f"j{i:02d}", i, S.SUBMITTED)]) for i in range(60)]
        store.save_jobs(changes)
        assert store.list_jobs(JobQuery(limit=100)) == [j for j, _ in reversed(changes)]
        assert store.list_events("j07") == [event("j07", 7, S.SUBMITTED)]
        store.save_jobs([])  # nothing to do is not an error
        assert len(store.list_jobs(JobQuery(limit=100))) == 60

    def test_save_jobs_is_saves_one_after_another(self, store: StateStore) -> None:
        first = rich_job("a")
        second = dataclasses.replace(first, status=S.FAILED, attempts=first.attempts[:1], stop_request=None)
        store.save_jobs(
            [
                # an event may name a job saved later in the same batch
                (first, [event("a", 1, S.SUBMITTED), event("b", 1, S.SUBMITTED)]),
                (job("b"), []),
                (second, [event("a", 2, S.FAILED, S.RUNNING)]),  # the same job again: the last save wins
            ]
        )
        assert store.get_job("a") == dataclasses.replace(second, stop_request=first.stop_request)
        assert store.list_events("a") == [event("a", 1, S.SUBMITTED), event("a", 2, S.FAILED, S.RUNNING)]
        assert store.list_events("b") == [event("b", 1, S.SUBMITTED)]

    @pytest.mark.parametrize("bad", ["attempt-numbers", "unknown-job-in-event"])
    def test_failed_save_jobs_writes_nothing(self, store: StateStore, bad: str) -> None:
        existing = rich_job("old")
        store.save_job(existing, [event("old", 1, S.SUBMITTED)])
        new = [(job(f"new-{i}", created_at=i), [event(f"new-{i}", 1, S.SUBMITTED)]) for i in range(6)]
        update = (dataclasses.replace(existing, status=S.FAILED), [event("old", 2, S.FAILED, S.RUNNING)])
        failing: tuple[Job, list[JobEvent]]
        if bad == "attempt-numbers":
            failing = (dataclasses.replace(rich_job("bad"), attempts=rich_job().attempts[::-1]), [])
        else:
            failing = (job("bad"), [event("ghost", 1, S.SUBMITTED)])
        with pytest.raises(StateStoreError):
            store.save_jobs([*new[:3], update, failing, *new[3:]])
        assert store.list_jobs(JobQuery()) == [existing]
        assert store.list_events("old") == [event("old", 1, S.SUBMITTED)]
        assert all(store.list_events(f"new-{i}") == [] for i in range(6))
        assert store.count_jobs() == {S.RUNNING: 1}

    # -- stop requests ----------------------------------------------------------------

    def test_request_stop_records_the_first_request_only(self, store: StateStore) -> None:
        store.save_job(job("j", status=S.RUNNABLE))
        terminate = StopRequest(StopKind.TERMINATE, "Terminated: by user", 5)
        stopped = store.request_stop("j", terminate)
        assert stopped == dataclasses.replace(job("j", status=S.RUNNABLE), stop_request=terminate)
        assert store.get_job("j") == stopped
        # a second request, of either kind, changes nothing; the answer is the job as it is
        assert store.request_stop("j", StopRequest(StopKind.TERMINATE, "Terminated: again", 6)) == stopped
        assert store.request_stop("j", StopRequest(StopKind.CANCEL, "Cancelled", 7)) == stopped
        assert store.get_job("j") == stopped

    def test_a_terminate_replaces_a_pending_cancel(self, store: StateStore) -> None:
        store.save_job(job("j", status=S.RUNNING))
        store.request_stop("j", StopRequest(StopKind.CANCEL, "Cancelled", 5))
        terminate = StopRequest(StopKind.TERMINATE, "Terminated", 6)
        assert store.request_stop("j", terminate) == dataclasses.replace(
            job("j", status=S.RUNNING), stop_request=terminate
        )

    def test_clear_stop_request_clears_only_the_request_named(self, store: StateStore) -> None:
        store.save_job(job("j", status=S.RUNNING))
        cancel = StopRequest(StopKind.CANCEL, "Cancelled", 5)
        store.request_stop("j", cancel)
        terminate = StopRequest(StopKind.TERMINATE, "Terminated", 6)
        store.request_stop("j", terminate)  # recorded after the caller decided on the cancel
        store.clear_stop_request("j", cancel)
        assert store.get_job("j") == dataclasses.replace(job("j", status=S.RUNNING), stop_request=terminate)
        store.clear_stop_request("j", terminate)
        assert store.get_job("j") == job("j", status=S.RUNNING)
        store.clear_stop_request("nope", terminate)  # an unknown job: nothing to clear, no error

    def test_request_stop_returns_the_whole_job(self, store: StateStore) -> None:
        running = dataclasses.replace(rich_job("j"), stop_request=None)
        store.save_job(running)
        terminate = StopRequest(StopKind.TERMINATE, "Terminated: stop", 9)
        assert store.request_stop("j", terminate) == dataclasses.replace(running, stop_request=terminate)

    @pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED])
    def test_request_stop_of_a_finished_job_changes_nothing(self, store: StateStore, status: JobStatus) -> None:
        store.save_job(job("j", status=status))
        assert store.request_stop("j", StopRequest(StopKind.TERMINATE, "late", 5)) == job("j", status=status)
        assert store.get_job("j") == job("j", status=status)

    def test_request_stop_of_an_unknown_job_is_none(self, store: StateStore) -> None:
        assert store.request_stop("nope", StopRequest(StopKind.CANCEL, "x", 1)) is None
        assert store.get_job("nope") is None
        assert store.list_jobs(JobQuery()) == []

    def test_a_save_never_clears_a_stop_request(self, store: StateStore) -> None:
        read = job("j", status=S.RUNNABLE)  # the control loop read the job ...
        store.save_job(read)
        request = StopRequest(StopKind.TERMINATE, "Terminated: by user", 5)
        store.request_stop("j", request)  # ... the API recorded a request ...
        moved, moved_event = transition(read, S.STARTING, 6)
        store.save_job(moved, [moved_event])  # ... and the loop saved its stale copy
        assert store.get_job("j") == dataclasses.replace(moved, stop_request=request)
        store.save_jobs([(dataclasses.replace(moved, status=S.RUNNING), [])])
        assert store.get_job("j") == dataclasses.replace(moved, status=S.RUNNING, stop_request=request)
        other = StopRequest(StopKind.CANCEL, "Cancelled", 7)  # a save that carries a request writes it
        store.save_job(dataclasses.replace(moved, stop_request=other))
        assert store.get_job("j") == dataclasses.replace(moved, stop_request=other)

    # -- active jobs and counts -------------------------------------------------------

    def test_active_jobs_are_the_unfinished_oldest_first(self, store: StateStore) -> None:
        rich = dataclasses.replace(rich_job("rich"), created_at=35)  # RUNNING, with attempts
        store.save_jobs(
            [
                (job("failed", 10, S.FAILED), []),
                (job("r2", 30, S.RUNNING), []),
                (job("sub", 20, S.SUBMITTED), []),
                (job("r1", 30, S.RUNNABLE), []),  # same created_at as r2: job_id breaks the tie
                (job("ok", 5, S.SUCCEEDED), []),
                (job("pend", 40, S.PENDING), []),
                (job("start", 1, S.STARTING), []),
                (rich, []),
            ]
        )
        active = store.active_jobs()
        assert ids(active) == ["start", "sub", "r1", "r2", "rich", "pend"]
        assert active[4] == rich
        store.save_job(job("r1", 30, S.FAILED))
        assert ids(store.active_jobs()) == ["start", "sub", "r2", "rich", "pend"]

    def test_no_active_jobs(self, store: StateStore) -> None:
        assert store.active_jobs() == []
        store.save_job(job("done", status=S.SUCCEEDED))
        assert store.active_jobs() == []

    def test_count_jobs_per_status(self, store: StateStore) -> None:
        assert store.count_jobs() == {}
        self._three_queues(store)
        assert store.count_jobs() == {S.RUNNING: 2, S.SUBMITTED: 1, S.SUCCEEDED: 1, S.FAILED: 1}
        assert store.count_jobs("gpu") == {S.SUBMITTED: 1, S.RUNNING: 1}
        assert store.count_jobs("nope") == {}
        store.save_job(job("e", 50, S.SUCCEEDED, "gpu"))
        assert store.count_jobs("gpu") == {S.SUBMITTED: 1, S.SUCCEEDED: 1}
        assert list(store.count_jobs()) == [S.SUBMITTED, S.RUNNING, S.SUCCEEDED, S.FAILED]  # status order

    # -- listing ----------------------------------------------------------------------

    def _three_queues(self, store: StateStore) -> None:
        store.save_job(job("a", 100, S.RUNNING, "default"))
        store.save_job(job("b", 300, S.SUBMITTED, "gpu"))
        store.save_job(job("c", 200, S.SUCCEEDED, "default"))
        store.save_job(job("d", 300, S.FAILED, "default"))  # same created_at as b: job_id breaks the tie
        store.save_job(job("e", 50, S.RUNNING, "gpu"))

    def _ids(self, store: StateStore, query: JobQuery) -> list[str]:
        return [j.job_id for j in store.list_jobs(query)]

    def test_list_all_newest_first(self, store: StateStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery()) == ["b", "d", "c", "a", "e"]

    def test_list_filters(self, store: StateStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery(statuses=(S.RUNNING,))) == ["a", "e"]
        assert self._ids(store, JobQuery(statuses=(S.SUCCEEDED, S.FAILED))) == ["d", "c"]
        assert self._ids(store, JobQuery(job_queue="gpu")) == ["b", "e"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNING,), job_queue="default")) == ["a"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNABLE,))) == []
        assert self._ids(store, JobQuery(job_queue="nope")) == []

    def test_list_by_job_definition_name_revision_or_prefix(self, store: StateStore) -> None:
        for job_id, name, revision in [
            ("a", "render", 1),
            ("b", "render", 2),
            ("c", "render-hd", 1),
            ("d", "Render", 1),
        ]:
            store.save_job(dataclasses.replace(job(job_id), job_definition_name=name, job_definition_revision=revision))
        assert sorted(self._ids(store, JobQuery(job_definition="render"))) == ["a", "b"]  # every revision, case kept
        assert self._ids(store, JobQuery(job_definition="render", job_definition_revision=2)) == ["b"]
        assert sorted(self._ids(store, JobQuery(job_definition="render", job_definition_prefix=True))) == [
            "a",
            "b",
            "c",
        ]
        assert self._ids(store, JobQuery(job_definition="nope")) == []

    # -- consumable resources ---------------------------------------------------------

    def test_consumable_resources_put_get_list_delete(self, store: StateStore) -> None:
        licences = ConsumableResource("licences", 4, ResourceType.REPLENISHABLE, 1_000, {"team": "vfx"})
        tokens = ConsumableResource("api-tokens", 100, ResourceType.NON_REPLENISHABLE, 2_000)
        store.put_consumable_resource(licences)
        store.put_consumable_resource(tokens)
        assert store.get_consumable_resource("licences") == licences
        assert store.list_consumable_resources() == [tokens, licences]  # by name
        assert store.get_consumable_resource("nope") is None
        assert store.delete_consumable_resource("licences") is True
        assert store.delete_consumable_resource("licences") is False
        assert store.list_consumable_resources() == [tokens]

    def test_update_consumable_total_reads_and_writes_at_once(self, store: StateStore) -> None:
        store.put_consumable_resource(ConsumableResource("licences", 4))
        changed = store.update_consumable_total("licences", lambda r: r.total_quantity + 3)
        assert changed == ConsumableResource("licences", 7)
        assert store.get_consumable_resource("licences") == changed
        assert store.update_consumable_total("nope", lambda r: 1) is None

        def refuse(resource: ConsumableResource) -> int:
            raise ValueError("no")

        with pytest.raises(ValueError):
            store.update_consumable_total("licences", refuse)
        assert store.get_consumable_resource("licences") == changed  # nothing written

    def test_leaving_running_uses_up_a_non_replenishable_quantity_once(self, store: StateStore) -> None:
        store.put_consumable_resource(ConsumableResource("tokens", 10, ResourceType.NON_REPLENISHABLE))
        store.put_consumable_resource(ConsumableResource("licences", 4))
        needs = (("tokens", 3), ("licences", 2))
        running = dataclasses.replace(job("a", status=S.RUNNING), consumable_resources=needs)
        store.save_job(dataclasses.replace(running, status=S.RUNNABLE))
        store.save_job(running)
        assert store.get_consumable_resource("tokens").total_quantity == 10  # held, not used up yet
        store.save_job(dataclasses.replace(running, status=S.SUCCEEDED))
        store.save_job(dataclasses.replace(running, status=S.SUCCEEDED))  # saved again: not twice
        assert store.get_consumable_resource("tokens").total_quantity == 7
        assert store.get_consumable_resource("licences").total_quantity == 4  # replenishable: back
        store.save_jobs([(running, []), (dataclasses.replace(running, status=S.RUNNABLE), [])])  # a retry
        assert store.get_consumable_resource("tokens").total_quantity == 4

    def test_list_jobs_by_consumable_resource_takes_children_not_parents(self, store: StateStore) -> None:
        needs = (("licences", 1),)
        store.save_job(dataclasses.replace(job("plain", 1), consumable_resources=needs))
        store.save_job(dataclasses.replace(job("parent", 2), consumable_resources=needs, array_size=2))
        store.save_job(dataclasses.replace(job("parent:0", 3), consumable_resources=needs, array_size=2, array_index=0))
        store.save_job(dataclasses.replace(job("other", 4), consumable_resources=(("tokens", 1),)))
        store.save_job(job("none", 5))
        assert self._ids(store, JobQuery(consumable_resource="licences")) == ["parent:0", "plain"]
        assert self._ids(store, JobQuery(consumable_resource="licences", statuses=(S.RUNNING,))) == []

    def test_list_limit(self, store: StateStore) -> None:
        self._three_queues(store)
        assert self._ids(store, JobQuery(limit=2)) == ["b", "d"]
        assert self._ids(store, JobQuery(statuses=(S.RUNNING, S.FAILED), limit=2)) == ["d", "a"]
        assert self._ids(store, JobQuery(limit=0)) == []
        with pytest.raises(ValueError):
            store.list_jobs(JobQuery(limit=-1))

    def test_list_returns_whole_jobs(self, store: StateStore) -> None:
        rich = rich_job("rich")
        store.save_job(rich)
        store.save_job(job("plain", created_at=rich.created_at + 1))
        assert store.list_jobs(JobQuery()) == [job("plain", created_at=rich.created_at + 1), rich]
        assert store.list_jobs(JobQuery(limit=1, job_queue="gpu")) == [rich]

    def test_list_name_prefix_folds_ascii_case(self, store: StateStore) -> None:
        names = [
            "Render-1",
            "render-2",
            "RENDER_3",
            "rend",
            "train-render",
            "r%x",
            "r_x",
            "rAx",
            "Ünï",
            "ünï",
        ]
        store.save_jobs([(dataclasses.replace(job(f"j{i}", 100 - i), job_name=n), []) for i, n in enumerate(names)])

        def named(prefix: str) -> list[str]:
            return [j.job_name for j in store.list_jobs(JobQuery(name_prefix=prefix))]

        assert named("render") == ["Render-1", "render-2", "RENDER_3"]
        assert named("RENDER-") == ["Render-1", "render-2"]
        assert named("r%") == ["r%x"]  # no wildcards: % and _ are themselves
        assert named("r_") == ["r_x"]
        assert named("Ü") == ["Ünï"]  # only ASCII letters fold (AWS job names are ASCII)
        assert named("") == names
        assert named("render-10") == []

    def test_list_created_bounds_are_exclusive(self, store: StateStore) -> None:
        self._three_queues(store)  # created_at: b 300, d 300, c 200, a 100, e 50
        assert self._ids(store, JobQuery(created_after=100)) == ["b", "d", "c"]
        assert self._ids(store, JobQuery(created_before=300)) == ["c", "a", "e"]
        assert self._ids(store, JobQuery(created_after=100, created_before=300)) == ["c"]
        assert self._ids(store, JobQuery(created_after=300)) == []
        assert self._ids(store, JobQuery(created_after=200, created_before=200)) == []

    def test_list_after_continues_the_order(self, store: StateStore) -> None:
        self._three_queues(store)  # order: b d c a e
        assert self._ids(store, JobQuery(after=(300, "b"))) == ["d", "c", "a", "e"]
        assert self._ids(store, JobQuery(after=(300, "d"))) == ["c", "a", "e"]
        assert self._ids(store, JobQuery(after=(300, "a"))) == ["b", "d", "c", "a", "e"]  # no such job: fine
        assert self._ids(store, JobQuery(after=(250, "zzz"))) == ["c", "a", "e"]
        assert self._ids(store, JobQuery(after=(301, ""))) == ["b", "d", "c", "a", "e"]
        assert self._ids(store, JobQuery(after=(50, "e"))) == []

    def test_list_filters_combined(self, store: StateStore) -> None:
        self._three_queues(store)
        store.save_job(dataclasses.replace(job("f", 250, S.FAILED, "default"), job_name="other"))
        both = (S.FAILED, S.SUCCEEDED)
        assert self._ids(store, JobQuery(statuses=both, job_queue="default")) == ["d", "f", "c"]
        assert self._ids(store, JobQuery(statuses=both, job_queue="default", name_prefix="NAME-")) == [
            "d",
            "c",
        ]
        query = JobQuery(statuses=both, job_queue="default", created_after=100, created_before=300)
        assert self._ids(store, query) == ["f", "c"]
        assert self._ids(store, dataclasses.replace(query, after=(250, "f"))) == ["c"]
        assert self._ids(store, dataclasses.replace(query, after=(250, "f"), job_queue="gpu")) == []
        assert self._ids(store, JobQuery(statuses=(S.FAILED, S.FAILED))) == ["d", "f"]  # repeats are harmless

    def test_pages_of_equal_created_at_walk_every_job_once(self, store: StateStore) -> None:
        tied = [job(f"t{i:02d}", created_at=500, status=(S.RUNNING, S.FAILED)[i % 2]) for i in range(23)]
        store.save_jobs([(j, []) for j in reversed(tied)])
        for limit in (1, 2, 5, 23, 24):
            assert walk(store, JobQuery(limit=limit)) == tied
            assert walk(store, JobQuery(statuses=(S.FAILED, S.RUNNING), limit=limit)) == tied
            assert walk(store, JobQuery(statuses=(S.FAILED,), limit=limit)) == tied[1::2]

    @pytest.fixture
    def crowded(self, store: StateStore) -> list[Job]:
        jobs = crowd()
        store.save_jobs([(j, []) for j in jobs])
        return jobs

    # The store is filled once per test and only read by the examples; the mixin's method runs
    # under each implementation's class (the "executors"), against that class's own store.
    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(query=queries)
    def test_pages_walk_the_filtered_list_exactly_once(
        self, store: StateStore, crowded: list[Job], query: JobQuery
    ) -> None:
        """Whatever the filters and page size: the pages, joined, are the filtered list in
        order, each job once, no gaps (the store is only read, so examples may share it)."""
        want = expected(crowded, query)
        assert store.list_jobs(query) == want[: query.limit]
        assert walk(store, query) == want

    # -- compute environments and job queues ------------------------------------------

    def test_compute_environment_round_trip(self, store: StateStore) -> None:
        gpu = ComputeEnvironment(
            "gpu-box", 7.5, 30_000, gpu_ids=("2", "0", "1"), state=State.DISABLED, tags={"team": "ml", "cost": "x"}
        )
        local = ComputeEnvironment("local", 4, 8192)  # an int max_vcpus reads back as a float
        store.put_compute_environment(local)
        store.put_compute_environment(gpu)
        loaded = store.get_compute_environment("gpu-box")
        assert loaded == gpu
        assert loaded is not None and loaded.gpu_ids == ("2", "0", "1") and loaded.state is State.DISABLED
        loaded = store.get_compute_environment("local")
        assert loaded == local
        assert loaded is not None and type(loaded.max_vcpus) is float and loaded.state is State.ENABLED
        assert store.list_compute_environments() == [gpu, local]

        updated = dataclasses.replace(gpu, max_vcpus=2.25, gpu_ids=(), state=State.ENABLED)
        store.put_compute_environment(updated)  # replaces, by name
        assert store.list_compute_environments() == [updated, local]

        assert store.delete_compute_environment("gpu-box") is True
        assert store.delete_compute_environment("gpu-box") is False
        assert store.get_compute_environment("gpu-box") is None
        assert store.list_compute_environments() == [local]

    @pytest.mark.parametrize("vcpus", [math.nan, math.inf], ids=["nan", "inf"])
    def test_compute_environment_with_no_vcpu_number_is_refused(self, store: StateStore, vcpus: float) -> None:
        with pytest.raises(StateStoreError, match="max_vcpus"):
            store.put_compute_environment(ComputeEnvironment("local", vcpus, 1024))
        assert store.list_compute_environments() == []

    def test_job_queue_round_trip(self, store: StateStore) -> None:
        high = JobQueue("high", 10, ("gpu-box", "local"), State.DISABLED, tags={"owner": "data"})
        low = JobQueue("low", -1, ("local",))
        store.put_job_queue(low)
        store.put_job_queue(high)
        loaded = store.get_job_queue("high")
        assert loaded == high
        assert loaded is not None and loaded.state is State.DISABLED
        assert type(loaded.compute_environments) is tuple
        assert store.list_job_queues() == [high, low]

        reordered = dataclasses.replace(high, priority=0, compute_environments=("local", "gpu-box"))
        store.put_job_queue(reordered)
        assert store.get_job_queue("high") == reordered  # the order of environments is kept

        assert store.delete_job_queue("low") is True
        assert store.delete_job_queue("low") is False
        assert store.list_job_queues() == [reordered]

    def test_spot_rehearsal_and_time_limit_actions_round_trip(self, store: StateStore) -> None:
        spot = ComputeEnvironment("spot", 2.0, 2048, spot=SpotRehearsal(interruption_rate=0.5, interrupt_after_s=90.0))
        bare = ComputeEnvironment("bare-spot", 2.0, 2048, spot=SpotRehearsal())
        store.put_compute_environment(spot)
        store.put_compute_environment(bare)
        assert store.get_compute_environment("spot") == spot
        assert store.get_compute_environment("bare-spot") == bare
        store.put_compute_environment(dataclasses.replace(spot, spot=None))  # back to on-demand
        assert store.get_compute_environment("spot") == dataclasses.replace(spot, spot=None)

        actions = (
            JobStateTimeLimitAction("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 600),
            JobStateTimeLimitAction("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", 5, "RUNNABLE", "CANCEL"),
        )
        queue = JobQueue("limited", 1, ("spot",), job_state_time_limit_actions=actions)
        store.put_job_queue(queue)
        loaded = store.get_job_queue("limited")
        assert loaded == queue
        assert loaded is not None and type(loaded.job_state_time_limit_actions) is tuple
        store.put_job_queue(dataclasses.replace(queue, job_state_time_limit_actions=()))
        assert store.list_job_queues() == [dataclasses.replace(queue, job_state_time_limit_actions=())]

    def test_unknown_infrastructure(self, store: StateStore) -> None:
        assert store.get_compute_environment("nope") is None
        assert store.get_job_queue("nope") is None
        assert store.get_scheduling_policy("nope") is None
        assert store.delete_compute_environment("nope") is False
        assert store.delete_job_queue("nope") is False
        assert store.delete_scheduling_policy("nope") is False
        assert store.list_compute_environments() == [] and store.list_job_queues() == []
        assert store.list_scheduling_policies() == []

    def test_fair_share_queue_keeps_its_policy_name(self, store: StateStore) -> None:
        fair = JobQueue("fair", 1, ("local",), scheduling_policy="teams")
        store.put_job_queue(fair)
        assert store.get_job_queue("fair") == fair
        store.put_job_queue(dataclasses.replace(fair, scheduling_policy="other"))
        loaded = store.get_job_queue("fair")
        assert loaded is not None and loaded.scheduling_policy == "other"

    def test_scheduling_policy_round_trip(self, store: StateStore) -> None:
        teams = SchedulingPolicy(
            "teams",
            share_decay_seconds=3600,
            compute_reservation=50,
            share_distribution=(ShareWeight("ml*", 0.25), ShareWeight("web", 3)),  # an int weight reads back float
            tags={"owner": "ops"},
        )
        plain = SchedulingPolicy("plain")
        store.put_scheduling_policy(teams)
        store.put_scheduling_policy(plain)
        loaded = store.get_scheduling_policy("teams")
        assert loaded == teams
        assert loaded is not None and type(loaded.share_distribution[1].weight_factor) is float
        assert loaded.share_distribution[0].share_identifier == "ml*"  # order kept
        assert store.list_scheduling_policies() == [plain, teams]

        updated = dataclasses.replace(teams, share_decay_seconds=0, share_distribution=())
        store.put_scheduling_policy(updated)  # replaces, by name
        assert store.get_scheduling_policy("teams") == updated

        assert store.delete_scheduling_policy("plain") is True
        assert store.delete_scheduling_policy("plain") is False
        assert store.list_scheduling_policies() == [updated]

    def test_scheduling_policy_with_no_weight_number_is_refused(self, store: StateStore) -> None:
        with pytest.raises(StateStoreError, match="weight_factor"):
            store.put_scheduling_policy(SchedulingPolicy("p", share_distribution=(ShareWeight("a", math.nan),)))
        assert store.list_scheduling_policies() == []

    # -- tags -------------------------------------------------------------------------

    def _taggable(self, store: StateStore) -> list[TagTarget]:
        """One of each resource that has tags, each stored with {"team": "a"}."""
        store.save_job(dataclasses.replace(job("job-1"), tags={"team": "a"}))
        store.register_job_definition("render", {"image": "busybox:1.36", "tags": {"team": "a"}}, 1)
        store.put_job_queue(JobQueue("q", 1, (), tags={"team": "a"}))
        store.put_compute_environment(ComputeEnvironment("ce", 2, 1024, tags={"team": "a"}))
        store.put_scheduling_policy(SchedulingPolicy("p", tags={"team": "a"}))
        return [
            TagTarget("job", "job-1"),
            TagTarget("job-definition", "render", 1),
            TagTarget("job-queue", "q"),
            TagTarget("compute-environment", "ce"),
            TagTarget("scheduling-policy", "p"),
        ]

    def _stored_tags(self, store: StateStore, target: TagTarget) -> dict[str, str]:
        """The tags as the resource's own read shows them."""
        found: object = {
            "job": lambda: store.get_job(target.name),
            "job-definition": lambda: store.get_job_definition(target.name, target.revision),
            "job-queue": lambda: store.get_job_queue(target.name),
            "compute-environment": lambda: store.get_compute_environment(target.name),
            "scheduling-policy": lambda: store.get_scheduling_policy(target.name),
        }[target.kind]()
        if isinstance(found, JobDefinitionRecord):
            return dict(found.document.get("tags") or {})  # type: ignore[call-overload]
        return dict(found.tags)  # type: ignore[attr-defined]

    def test_update_tags_adds_replaces_and_removes_on_every_taggable_resource(self, store: StateStore) -> None:
        for target in self._taggable(store):
            assert store.update_tags(target, {}, ()) == {"team": "a"}, target  # nothing to change: a read
            assert store.update_tags(target, {"cost": "42", "team": "b"}, ()) == {"team": "b", "cost": "42"}
            assert store.update_tags(target, {}, ["team", "absent"]) == {"cost": "42"}
            assert store.update_tags(target, {"team": "c"}, ["team"]) == {"cost": "42", "team": "c"}  # set after drop
            assert self._stored_tags(store, target) == {"cost": "42", "team": "c"}, target
            assert store.update_tags(target, {}, ["cost", "team"]) == {}
            assert self._stored_tags(store, target) == {}, target

    def test_update_tags_of_a_definition_leaves_the_rest_of_its_document(self, store: StateStore) -> None:
        store.register_job_definition("render", {"image": "busybox:1.36"}, 1)
        store.deregister_job_definition("render", 1)  # an INACTIVE revision keeps its tags too
        assert store.update_tags(TagTarget("job-definition", "render", 1), {"a": "1"}, ()) == {"a": "1"}
        record = store.get_job_definition("render", 1)
        assert record is not None and dict(record.document) == {"image": "busybox:1.36", "tags": {"a": "1"}}
        assert record.status == "INACTIVE"
        store.update_tags(TagTarget("job-definition", "render", 1), {}, ["a"])
        record = store.get_job_definition("render", 1)
        assert record is not None and dict(record.document) == {"image": "busybox:1.36"}

    def test_update_tags_of_an_unknown_resource_is_none(self, store: StateStore) -> None:
        self._taggable(store)
        for target in (
            TagTarget("job", "job-2"),
            TagTarget("job-definition", "render", 2),
            TagTarget("job-definition", "other", 1),
            TagTarget("job-queue", "ce"),
            TagTarget("compute-environment", "q"),
            TagTarget("scheduling-policy", "q"),
        ):
            assert store.update_tags(target, {"a": "b"}, ()) is None, target

    def test_a_save_keeps_the_stored_tags_of_a_job(self, store: StateStore) -> None:
        first = dataclasses.replace(job("job-1"), tags={"team": "a"})
        store.save_job(first)
        store.update_tags(TagTarget("job", "job-1"), {"cost": "42"}, ())
        later, _ = transition(first, S.PENDING, 2_000)  # the control loop's copy, read before the tag
        store.save_job(later)
        store.save_jobs([(dataclasses.replace(later, tags={}), [])])
        stored = store.get_job("job-1")
        assert stored is not None and stored.status is S.PENDING
        assert stored.tags == {"team": "a", "cost": "42"}

    def test_deleting_a_resource_drops_its_tags(self, store: StateStore) -> None:
        self._taggable(store)
        store.update_tags(TagTarget("job-queue", "q"), {"cost": "42"}, ())
        store.delete_job_queue("q")
        assert store.update_tags(TagTarget("job-queue", "q"), {}, ()) is None
        store.put_job_queue(JobQueue("q", 1, ()))
        assert store.update_tags(TagTarget("job-queue", "q"), {}, ()) == {}

    # -- the event log and the rules' records -----------------------------------------

    def test_state_changes_are_logged_in_order_with_the_job_as_saved(self, store: StateStore) -> None:
        submitted = job("job-1", queue="q1")
        store.save_job(submitted, [event("job-1", 1, S.SUBMITTED)])  # a submission: not logged
        pending = dataclasses.replace(submitted, status=S.PENDING)
        runnable = dataclasses.replace(submitted, status=S.RUNNABLE)
        store.save_jobs(
            [
                (pending, [event("job-1", 2, S.PENDING, S.SUBMITTED)]),
                (runnable, [event("job-1", 3, S.RUNNABLE, S.PENDING, "ready")]),
            ]
        )
        logged = store.read_event_log(EventLogQuery())
        assert [(e.seq, e.kind, e.status, e.job_queue) for e in logged] == [
            (1, JOB_EVENT, "PENDING", "q1"),
            (2, JOB_EVENT, "RUNNABLE", "q1"),
        ]
        assert logged[1].event == event("job-1", 3, S.RUNNABLE, S.PENDING, "ready")
        assert logged[0].job == runnable  # the job as the save left it
        assert store.last_event_seq() == 2

    def test_event_log_pages_and_filters(self, store: StateStore) -> None:
        for i, queue in enumerate(["a", "b", "a", "b"]):
            store.save_job(
                job(f"j{i}", queue=queue, status=S.RUNNABLE), [event(f"j{i}", 10 + i, S.RUNNABLE, S.PENDING)]
            )
        store.save_job(job("j0", queue="a", status=S.FAILED), [event("j0", 20, S.FAILED, S.RUNNABLE)])
        notes = [Note(30, "delivery-failed", {"webhook": "w", "error": "boom"}, "j0", "a", "FAILED"), Note(31, "x", {})]
        assert store.append_notes(notes) == [6, 7]
        assert [e.seq for e in store.read_event_log(EventLogQuery(after_seq=2, limit=2))] == [3, 4]
        assert [e.seq for e in store.read_event_log(EventLogQuery(job_queue="a"))] == [1, 3, 5, 6]
        assert [e.seq for e in store.read_event_log(EventLogQuery(statuses=("FAILED",)))] == [5, 6]
        assert [e.seq for e in store.read_event_log(EventLogQuery(kinds=("x",)))] == [7]
        assert [e.seq for e in store.read_event_log(EventLogQuery(since=20))] == [5, 6, 7]
        note = store.read_event_log(EventLogQuery(after_seq=5, limit=1))[0]
        assert (note.kind, note.note, note.job_id, note.job, note.event) == (
            "delivery-failed",
            {"webhook": "w", "error": "boom"},
            "j0",
            None,
            None,
        )
        assert store.last_event_seq() == 7

    def test_a_failed_save_logs_nothing(self, store: StateStore) -> None:
        bad = dataclasses.replace(job("j1"), attempts=(rich_job().attempts[0], rich_job().attempts[0]))
        with pytest.raises(StateStoreError):
            store.save_jobs([(job("j0", status=S.PENDING), [event("j0", 1, S.PENDING, S.SUBMITTED)]), (bad, [])])
        assert store.read_event_log(EventLogQuery()) == []
        assert store.last_event_seq() == 0

    def test_rule_states_round_trip(self, store: StateStore) -> None:
        assert store.get_rule_states() == {}
        store.put_rule_state("nightly", {"cursor": 5, "last": None})
        store.put_rule_state("after-train", {"cursor": 1})
        store.put_rule_state("nightly", {"cursor": 9, "outcome": "submitted"})
        assert store.get_rule_states() == {
            "after-train": {"cursor": 1},
            "nightly": {"cursor": 9, "outcome": "submitted"},
        }
        with pytest.raises(StateStoreError):
            store.put_rule_state("bad", {"x": math.nan})

    # -- lifetime ---------------------------------------------------------------------

    def test_closed_store_refuses_calls(self, store: StateStore) -> None:
        store.save_job(job("job-1"))
        store.close()
        store.close()  # idempotent
        with pytest.raises(StateStoreError):
            store.get_job("job-1")
        with pytest.raises(StateStoreError):
            store.save_job(job("job-2"))
        calls: list[Callable[[], object]] = [
            lambda: store.save_jobs([(job("job-2"), [])]),
            lambda: store.list_jobs(JobQuery()),
            lambda: store.request_stop("job-1", StopRequest(StopKind.CANCEL, "x", 1)),
            lambda: store.active_jobs(),
            lambda: store.count_jobs(),
            lambda: store.list_job_definitions(),
            lambda: store.put_job_queue(JobQueue("q", 1, ())),
            lambda: store.list_compute_environments(),
            lambda: store.list_scheduling_policies(),
            lambda: store.update_tags(TagTarget("job", "job-1"), {"a": "b"}, ()),
        ]
        for call in calls:
            with pytest.raises(StateStoreError):
                call()
