"""S3 staging through the control loop, on fakes (issue 5, item 3): the in-memory object store,
the fake engine's bind model (what a container sees at start, what it writes), a fake clock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from localbatch.core import staging
from localbatch.core.jobs import JobStatus
from localbatch.core.outcome import INPUT_STAGING_FAILED, OUTPUT_STAGING_FAILED, TIMEOUT
from localbatch.core.retry import RetryStrategy
from localbatch.core.staging import StagedInput, StagedOutput
from localbatch.daemon import staging as transfers
from localbatch.daemon.startup import recover
from localbatch.errors import InvalidRequest
from tests.fakes.object_store import InMemoryObjectStore
from tests.unit.test_daemon_loop import DEFINITION, Rig, make_rig, new_loop

S = JobStatus


def staged_rig(
    tmp_path: Path,
    *,
    inputs: tuple[StagedInput, ...] = (),
    outputs: tuple[StagedOutput, ...] = (),
    attempts: int = 1,
    store: InMemoryObjectStore | None = None,
) -> tuple[Rig, InMemoryObjectStore]:
    store = store if store is not None else InMemoryObjectStore("inbox", "results")
    container = replace(DEFINITION.container, inputs=inputs, outputs=outputs)
    definition = replace(DEFINITION, container=container, retry_strategy=RetryStrategy(attempts=attempts))
    return make_rig(tmp_path, definition=definition, object_store=store), store


def put(store: InMemoryObjectStore, bucket: str, key: str, data: bytes) -> None:
    store.objects[bucket][key] = data


def test_inputs_are_in_the_container_when_it_starts(tmp_path: Path) -> None:
    inputs = (
        StagedInput("s3://inbox/data/in.csv", "/data/in.csv"),
        StagedInput("s3://inbox/data/in.csv", "/copies/"),
        StagedInput("s3://inbox/set/", "/set"),
    )
    rig, store = staged_rig(tmp_path, inputs=inputs)
    put(store, "inbox", "data/in.csv", b"a,b\n1,2\n")
    put(store, "inbox", "set/one", b"1")
    put(store, "inbox", "set/deep/two", b"22")
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.settle(ticks=2)
    [container] = rig.runtime.containers()
    assert container.started_at_ms is not None
    rig.runtime.finish(container.container_id)
    rig.settle(ticks=10)
    assert rig.job(job_id).status is S.SUCCEEDED
    assert container.seen == {
        "/data/in.csv": b"a,b\n1,2\n",
        "/copies/in.csv": b"a,b\n1,2\n",
        "/set/one": b"1",
        "/set/deep/two": b"22",
    }
    assert not transfers.attempt_dir(rig.settings.staging_dir, job_id, 1).exists()  # removed with the container


def test_outputs_are_uploaded_after_exit_with_placeholders_and_a_success_marker_last(tmp_path: Path) -> None:
    outputs = (
        StagedOutput("/out/", "s3://results/${AWS_BATCH_JOB_ID}/a${AWS_BATCH_JOB_ATTEMPT}/"),
        StagedOutput("/tmp/report.txt", "s3://results/reports/"),
        StagedOutput("/tmp/tree", "s3://results/tree-copy"),
    )
    rig, store = staged_rig(tmp_path, outputs=outputs)
    writes = {"/out/x.bin": b"\x00\x01", "/out/sub/y": b"y", "/tmp/report.txt": b"ok", "/tmp/tree/t/1": b"1"}
    rig.runtime.script("busybox:1.36", runs_for_s=1, writes=writes)
    job_id = rig.submit()
    rig.settle(ticks=10)
    assert rig.job(job_id).status is S.SUCCEEDED
    results = store.objects["results"]
    assert results[f"{job_id}/a1/x.bin"] == b"\x00\x01" and results[f"{job_id}/a1/sub/y"] == b"y"
    assert results["reports/report.txt"] == b"ok"
    assert results["tree-copy/t/1"] == b"1"
    manifest = json.loads(results[f"{job_id}/a1/_SUCCESS"])
    assert (manifest["jobId"], manifest["attempt"], manifest["exitCode"]) == (job_id, 1, 0)
    assert [(f["key"], f["size"]) for f in manifest["files"]] == [(f"{job_id}/a1/sub/y", 1), (f"{job_id}/a1/x.bin", 2)]
    assert "reports/_SUCCESS" not in results  # a single file needs no marker: its PUT is atomic


def test_a_failed_exit_uploads_only_what_asks_for_it_and_marks_it_failed(tmp_path: Path) -> None:
    outputs = (StagedOutput("/out/", "s3://results/always/", on_failure=True), StagedOutput("/ok/", "s3://results/ok/"))
    rig, store = staged_rig(tmp_path, outputs=outputs)
    put(store, "results", "always/_SUCCESS", b"{}")  # left by an earlier run: must not stay
    rig.runtime.script("busybox:1.36", runs_for_s=1, exit_code=3, writes={"/out/log": b"l", "/ok/r": b"r"})
    job_id = rig.submit()
    rig.settle(ticks=10)
    assert rig.job(job_id).status is S.FAILED
    results = store.objects["results"]
    assert results["always/log"] == b"l" and json.loads(results["always/_FAILED"])["exitCode"] == 3
    assert "always/_SUCCESS" not in results and not any(k.startswith("ok/") for k in results)


def test_the_job_stays_running_until_its_outputs_are_uploaded(tmp_path: Path) -> None:
    held: list[Any] = []

    class Deferred:
        """Runs launches inline but holds output uploads until the test releases them."""

        def submit(self, fn: Any, *args: Any) -> Any:
            from concurrent.futures import Future

            future: Future[Any] = Future()
            if getattr(fn, "__name__", "") == "_stage_out":
                held.append((future, fn, args))
            else:
                future.set_result(fn(*args))
            return future

    rig, store = staged_rig(tmp_path, outputs=(StagedOutput("/out/", "s3://results/r/"),))
    rig.loop._pool = Deferred()  # type: ignore[assignment]
    rig.runtime.script("busybox:1.36", runs_for_s=1, writes={"/out/a": b"a"})
    job_id = rig.submit()
    rig.settle(ticks=20)
    assert rig.job(job_id).status is S.RUNNING and len(held) == 1
    assert rig.runtime.containers()  # the container stays until its outputs are out
    future, fn, args = held.pop()
    future.set_result(fn(*args))
    rig.settle(ticks=2)
    assert rig.job(job_id).status is S.SUCCEEDED and store.objects["results"]["r/a"] == b"a"


def test_a_missing_input_fails_the_attempt_before_the_container_exists_and_is_retried(tmp_path: Path) -> None:
    rig, _ = staged_rig(tmp_path, inputs=(StagedInput("s3://inbox/nope.csv", "/in.csv"),), attempts=2)
    job_id = rig.submit()
    rig.settle(ticks=10)
    assert rig.runtime.created == []  # no container was ever created
    job = rig.job(job_id)
    assert job.status is S.FAILED and len(job.attempts) == 2  # retried per the strategy
    for attempt in job.attempts:
        assert attempt.status_reason == "Task failed to start"
        assert attempt.reason is not None and attempt.reason.startswith(INPUT_STAGING_FAILED)
        assert "s3://inbox/nope.csv" in attempt.reason
    assert not rig.settings.staging_dir.exists() or not any(rig.settings.staging_dir.rglob("*.csv"))


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ((StagedInput("s3://gone/x", "/x"),), "no bucket 'gone'"),
        ((StagedInput("s3://inbox/empty/", "/e"),), "no objects under s3://inbox/empty/"),
    ],
)
def test_input_failures_say_what_is_missing(tmp_path: Path, inputs: Any, problem: str) -> None:
    rig, _ = staged_rig(tmp_path, inputs=inputs)
    job_id = rig.submit()
    rig.settle(ticks=6)
    job = rig.job(job_id)
    assert job.status is S.FAILED
    assert job.attempts[0].reason is not None and problem in job.attempts[0].reason


def test_an_unreachable_store_fails_uploads_with_the_reason_and_the_exit_code_kept(tmp_path: Path) -> None:
    rig, store = staged_rig(tmp_path, outputs=(StagedOutput("/out/", "s3://results/r/"),))
    rig.runtime.script("busybox:1.36", runs_for_s=1, writes={"/out/a": b"a"})
    job_id = rig.submit()
    rig.settle(ticks=2)
    store.unreachable = "http://127.0.0.1:9"
    rig.settle(ticks=10)
    job = rig.job(job_id)
    assert job.status is S.FAILED
    attempt = job.attempts[0]
    assert attempt.exit_code == 0
    assert attempt.status_reason.startswith(OUTPUT_STAGING_FAILED)
    assert "nothing answers at http://127.0.0.1:9" in attempt.status_reason


def test_a_key_that_would_leave_the_prefix_directory_is_refused(tmp_path: Path) -> None:
    rig, store = staged_rig(tmp_path, inputs=(StagedInput("s3://inbox/p/", "/p"),))
    put(store, "inbox", "p/../../etc/passwd", b"x")
    job_id = rig.submit()
    rig.settle(ticks=6)
    reason = rig.job(job_id).attempts[0].reason or ""
    assert "not a plain relative file path" in reason
    assert not (tmp_path / "etc").exists()


def test_links_in_an_output_directory_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("do not upload")
    rig, store = staged_rig(tmp_path, outputs=(StagedOutput("/out/", "s3://results/r/"),))
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = rig.submit()
    rig.settle(ticks=2)
    out = transfers.attempt_dir(rig.settings.staging_dir, job_id, 1) / "out" / "0"
    (out / "link").symlink_to(secret)
    (out / "real").write_bytes(b"r")
    [container_id] = rig.runtime.running()
    rig.runtime.finish(container_id)
    rig.settle(ticks=10)
    assert sorted(store.objects["results"]) == ["r/_SUCCESS", "r/real"]


def test_an_array_index_placeholder_needs_an_array_job(tmp_path: Path) -> None:
    outputs = (StagedOutput("/out/", "s3://results/${AWS_BATCH_JOB_ARRAY_INDEX}/"),)
    rig, store = staged_rig(tmp_path, outputs=outputs)
    with pytest.raises(InvalidRequest, match=r"arrayProperties.size.*AWS_BATCH_JOB_ARRAY_INDEX"):
        rig.submit()
    rig.runtime.script("busybox:1.36", runs_for_s=1, writes={"/out/r": b"r"})
    from localbatch.awsbatch.requests import SubmitRequest
    from localbatch.core.lifecycle import JobOverrides

    parent = rig.service.submit_job(SubmitRequest("a", "default", "work", JobOverrides(), array_size=2)).job_id
    rig.settle(ticks=20)
    assert rig.job(parent).status is S.SUCCEEDED
    assert {k for k in store.objects["results"] if k.endswith("/r")} == {"0/r", "1/r"}


def test_a_restarted_daemon_uploads_the_outputs_of_a_container_that_exited_while_it_was_away(tmp_path: Path) -> None:
    rig, store = staged_rig(tmp_path, outputs=(StagedOutput("/out/", "s3://results/r/"),))
    rig.runtime.script("busybox:1.36", runs_for_s=None, writes={"/out/a": b"a"})
    job_id = rig.submit()
    rig.settle(ticks=2)
    assert rig.job(job_id).status is S.RUNNING
    rig.loop.stop()
    [container_id] = rig.runtime.running()
    rig.runtime.finish(container_id)
    stale = transfers.attempt_dir(rig.settings.staging_dir, "gone-job", 1)
    stale.mkdir(parents=True)
    loop = new_loop(rig.settings, rig.runtime, rig.store, rig.clock, object_store=store)
    recover(loop, rig.settings, rig.store, rig.runtime, rig.clock)
    assert not stale.exists()  # no attempt in flight uses it
    for _ in range(10):
        loop.tick(rig.clock.now_ms())
        rig.clock.advance(0.25)
    assert rig.job(job_id).status is S.SUCCEEDED
    assert store.objects["results"]["r/a"] == b"a" and "r/_SUCCESS" in store.objects["results"]


def test_a_container_with_outputs_stopped_past_its_timeout_while_the_daemon_was_away_timed_out(
    tmp_path: Path,
) -> None:
    rig, store = staged_rig(tmp_path, outputs=(StagedOutput("/out/", "s3://results/r/"),))
    rig.runtime.script("busybox:1.36", runs_for_s=None, writes={"/out/a": b"a"})
    job_id = rig.submit(timeout_s=60)
    rig.settle(ticks=2)
    rig.loop.stop()  # it dies; the container is stopped at its deadline (the engine ends the stop)
    rig.clock.advance(61)
    [container_id] = rig.runtime.running()
    rig.runtime.finish(container_id, exit_code=137)
    loop = new_loop(rig.settings, rig.runtime, rig.store, rig.clock, object_store=store)
    recover(loop, rig.settings, rig.store, rig.runtime, rig.clock)
    for _ in range(10):
        loop.tick(rig.clock.now_ms())
        rig.clock.advance(0.25)
    job = rig.job(job_id)
    assert job.status is S.FAILED and job.attempts[0].status_reason == TIMEOUT


def test_placeholders_fill_and_plans_map_paths() -> None:
    values = staging.placeholders("j:3", 3, 2)
    assert staging.expand(
        "s3://b/${AWS_BATCH_JOB_ID}/${AWS_BATCH_JOB_ARRAY_INDEX}/${AWS_BATCH_JOB_ATTEMPT}", values
    ) == ("s3://b/j:3/3/2")
    [plan] = staging.plan_outputs([StagedOutput("/tmp/f.txt", "s3://b/k/")], values)
    assert staging.to_upload(plan, ["f.txt"]) == [("f.txt", "k/f.txt")]
    assert staging.to_upload(replace(plan, destination="s3://b/exact.txt"), ["f.txt"]) == [("f.txt", "exact.txt")]
    assert staging.to_upload(plan, ["f.txt/a", "f.txt/_SUCCESS"]) == [("f.txt/a", "k/a")]
