"""No name from a user or a store becomes a path outside its directory (issue 10): job ids in log
and staging paths, S3 keys staged into a container's staging directory, keys copied by
``store cp``. ``..``, ``.``, absolute paths, NUL bytes and very long names each get a clear
error naming the field, or a path that stays inside."""

from __future__ import annotations

from pathlib import Path

import pytest

from localbatch import jobdef, logs, storage
from localbatch.core import staging
from localbatch.core.naming import container_name
from localbatch.daemon.staging import attempt_dir, stage_in
from localbatch.errors import JobDefinitionError, ObjectStoreError, UsageError
from tests.fakes.object_store import InMemoryObjectStore

HOSTILE = ["..", ".", "", "../../etc/passwd", "/etc/passwd", "a/../../b", "x\x00y", "é" * 300, "..:1", "#.."]

BASE = 'name = "a"\nimage = "busybox:1.36"\n[resources]\nvcpus = 1\nmemory_mib = 64\n'


def inside(root: Path, path: Path) -> bool:
    return root.resolve() in (path.parent.resolve(), *path.parent.resolve().parents)


@pytest.mark.parametrize("job_id", HOSTILE)
def test_a_job_id_never_names_a_log_or_staging_path_outside_its_directory(tmp_path: Path, job_id: str) -> None:
    log = logs.attempt_log_path(tmp_path / "logs", job_id, 1)
    staged = attempt_dir(tmp_path / "staging", job_id, 1)
    assert inside(tmp_path / "logs", log) and log.parent.parent == tmp_path / "logs"
    assert inside(tmp_path / "staging", staged) and staged.parent.parent == tmp_path / "staging"
    assert log.parent.name not in ("", ".", "..") and "\x00" not in str(log) and "/" not in log.parent.name
    assert "/" not in container_name(job_id, 1)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("s3://bucket/a/..", "the key's last part '..' cannot be a file name"),
        ("s3://bucket/.", "the key's last part '.' cannot be a file name"),
        ("s3://bucket/a\\u0000b", "must not contain a NUL character"),
        ("s3://bucket/" + "x" * 251, "the key's last part is 251 bytes; a file name is at most 250"),
    ],
)
def test_an_input_whose_key_cannot_be_a_file_name_is_refused_naming_the_field(source: str, problem: str) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.loads(BASE + f'[[inputs]]\nsource = "{source}"\npath = "/data/x"\n', "job.toml")
    assert [str(p) for p in caught.value.problems] == [f"inputs[0].source: {problem}{_hint(problem)}"]


def _hint(problem: str) -> str:
    return "; name an object, or end a prefix with '/'" if "cannot be a file name" in problem else ""


@pytest.mark.parametrize("source", ["s3://bucket/../../etc/x", "s3://bucket//abs/x", "s3://bucket/a/../x"])
def test_a_key_that_climbs_is_only_an_s3_key_its_file_stays_in_the_staging_directory(
    tmp_path: Path, source: str
) -> None:
    key = source.removeprefix("s3://bucket/")
    store = InMemoryObjectStore("bucket")
    store.objects["bucket"][key] = b"data"
    where = tmp_path / "attempt"
    [plan] = staging.plan_inputs([staging.StagedInput(source, "/data/x")], {})
    stage_in(store, [plan], [], where)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [where / "in" / "0" / "x"]


@pytest.mark.parametrize("key", ["../../etc/x", "d/../../x", "d//x", "d/./x", "d/x\x00"])
def test_a_listed_key_that_would_land_outside_its_prefix_is_refused_before_anything_is_written(
    tmp_path: Path, key: str
) -> None:
    store = InMemoryObjectStore("bucket")
    store.objects["bucket"].update({"d/ok": b"1", f"d/{key}" if not key.startswith("d/") else key: b"2"})
    [plan] = staging.plan_inputs([staging.StagedInput("s3://bucket/d/", "/data/")], {})
    with pytest.raises(ObjectStoreError, match="it is not a plain relative file path"):
        stage_in(store, [plan], [], tmp_path / "attempt")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_placeholder_filled_after_reading_is_checked_again_before_staging(tmp_path: Path) -> None:
    plan = staging.InputPlan("s3://bucket/in/..", "in/0/..", "/data/x")
    with pytest.raises(ObjectStoreError, match=r"inputs\[0\].source 's3://bucket/in/..': the key's last part '..'"):
        stage_in(InMemoryObjectStore("bucket"), [plan], [], tmp_path / "attempt")


def test_store_cp_into_a_directory_refuses_a_key_that_names_no_file(tmp_path: Path) -> None:
    store = InMemoryObjectStore("bucket")
    store.objects["bucket"]["a/.."] = b"x"
    with pytest.raises(UsageError, match=r"SOURCE: s3://bucket/a/..: the key's last part '..' cannot be a file name"):
        storage.copy(store, "s3://bucket/a/..", str(tmp_path))
    assert list(tmp_path.iterdir()) == []
