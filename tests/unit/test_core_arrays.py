"""The pure rules of arrays and dependencies: children, status summaries, readiness, checks."""

from __future__ import annotations

import pytest

from localbatch.core import arrays, dependencies
from localbatch.core.dependencies import Readiness
from localbatch.core.jobs import Dependency, DependencyType, Job, JobStatus
from localbatch.core.spec import ContainerSpec

S = JobStatus
N_TO_N, SEQUENTIAL = DependencyType.N_TO_N, DependencyType.SEQUENTIAL


def parent(size: int, *depends_on: Dependency) -> Job:
    return Job("p", "arr", "work", 1, "q", ContainerSpec("busybox"), 7, array_size=size, depends_on=depends_on)


def test_children_inherit_the_parent_and_resolve_each_kind_of_dependency() -> None:
    made = arrays.children(parent(3, Dependency("plain"), Dependency("other", N_TO_N), Dependency(None, SEQUENTIAL)))
    jobs = [job for job, _ in made]
    assert [j.job_id for j in jobs] == ["p:0", "p:1", "p:2"]
    assert [(j.array_index, j.array_size, j.array_job_id, j.created_at) for j in jobs] == [
        (0, 3, "p", 7),
        (1, 3, "p", 7),
        (2, 3, "p", 7),
    ]
    assert not any(j.is_array_parent for j in jobs)
    assert jobs[0].waits_for == ("plain", "other:0")
    assert jobs[2].waits_for == ("plain", "other:2", "p:1")
    assert [(e.job_id, e.to_status) for _, e in made] == [
        ("p:0", S.SUBMITTED),
        ("p:1", S.SUBMITTED),
        ("p:2", S.SUBMITTED),
    ]


def test_status_summary_names_all_seven_statuses() -> None:
    assert arrays.status_summary({S.RUNNING: 2, S.FAILED: 1}) == {
        "SUBMITTED": 0,
        "PENDING": 0,
        "RUNNABLE": 0,
        "STARTING": 0,
        "RUNNING": 2,
        "SUCCEEDED": 0,
        "FAILED": 1,
    }


@pytest.mark.parametrize(("size", "problem"), [(1, True), (2, False), (10_000, False), (10_001, True)])
def test_array_sizes_from_2_to_10000(size: int, problem: bool) -> None:
    assert (arrays.size_problem(size) is not None) is problem


@pytest.mark.parametrize(
    ("found", "ready"),
    [
        ({}, Readiness.READY),
        ({"a": S.SUCCEEDED, "b": S.SUCCEEDED}, Readiness.READY),
        ({"a": S.SUCCEEDED, "b": S.RUNNING}, Readiness.WAIT),
        ({"a": S.PENDING, "b": S.FAILED}, Readiness.FAILED),
        ({"a": S.SUCCEEDED}, Readiness.FAILED),  # b no longer exists: it can never succeed
    ],
)
def test_readiness(found: dict[str, S], ready: Readiness) -> None:
    waits_for = ("a", "b") if found else ()
    assert dependencies.readiness(waits_for, found.get) is ready


def test_check_names_each_bad_entry() -> None:
    entries = [
        Dependency("arr4", N_TO_N),
        Dependency("arr3", N_TO_N),
        Dependency("plain", N_TO_N),
        Dependency(None, None),
        Dependency("ghost"),
        Dependency(None, SEQUENTIAL),
    ]
    problems = dependencies.check(entries, 4, {"arr4": 4, "arr3": 3, "plain": None})
    assert [(p.path, p.message) for p in problems] == [
        ("dependsOn[1].jobId", "N_TO_N needs arrays of one size: arr3 has 3 children, this job 4"),
        ("dependsOn[2].jobId", "plain is not an array job; N_TO_N needs one"),
        ("dependsOn[3].jobId", "required (only a SEQUENTIAL dependency has none)"),
        ("dependsOn[4].jobId", "no job ghost"),
    ]
    assert dependencies.check([Dependency(None, SEQUENTIAL)], None, {})[0].path == "dependsOn[0].type"
    assert [p.path for p in dependencies.check([Dependency("plain")] * 21, None, {"plain": None})] == ["dependsOn"]
