from dataclasses import replace

from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.reconcile import Adopt, Collect, Lost, ObservedContainer, RemoveOrphan, reconcile
from localbatch.core.spec import ContainerSpec

BASE = Job(
    job_id="j",
    job_name="n",
    job_definition_name="d",
    job_definition_revision=1,
    job_queue="q",
    container=ContainerSpec(image="i"),
    created_at=0,
)


def in_flight(job_id: str, status: JobStatus, attempt: int = 1) -> Job:
    attempts = tuple(Attempt(n, f"t{n}", f"c{n}", f"s{n}") for n in range(1, attempt + 1))
    return replace(BASE, job_id=job_id, status=status, attempts=attempts)


def seen(container_id: str, job_id: str | None, attempt: int | None, running: bool) -> ObservedContainer:
    return ObservedContainer(container_id, job_id, attempt, running)


def test_running_container_is_adopted_and_exited_one_collected():
    jobs = [in_flight("a", JobStatus.RUNNING), in_flight("b", JobStatus.RUNNING)]
    observed = [seen("ca", "a", 1, True), seen("cb", "b", 1, False)]
    assert reconcile(jobs, observed) == [Adopt("a", "ca"), Collect("b", "cb")]


def test_a_started_job_without_its_container_is_lost():
    jobs = [in_flight("a", JobStatus.RUNNING), in_flight("s", JobStatus.STARTING)]
    assert reconcile(jobs, []) == [Lost("a"), Lost("s")]


def test_only_the_current_attempts_container_counts_and_the_rest_are_orphans():
    jobs = [in_flight("a", JobStatus.RUNNING, attempt=2)]
    observed = [
        seen("old", "a", 1, False),
        seen("new", "a", 2, True),
        seen("stray", None, None, True),
        seen("done", "finished-job", 1, False),
    ]
    assert reconcile(jobs, observed) == [
        Adopt("a", "new"),
        RemoveOrphan("done"),
        RemoveOrphan("old"),
        RemoveOrphan("stray"),
    ]


def test_jobs_not_in_flight_are_left_alone_and_their_containers_removed():
    jobs = [replace(BASE, job_id="r", status=JobStatus.RUNNABLE)]
    assert reconcile(jobs, [seen("x", "r", 1, True)]) == [RemoveOrphan("x")]
