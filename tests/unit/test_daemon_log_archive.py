"""Each attempt's log archived to the store's log bucket (issue 5, item 5), through the loop on
fakes: one object per attempt, named by its log stream; a failing store never fails the job."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from localbatch import config
from localbatch.core.jobs import JobStatus
from localbatch.core.retry import RetryStrategy
from localbatch.errors import ConfigError, NoSuchBucket
from localbatch.ports import StoredObject
from tests.unit.test_daemon_loop import DEFINITION, Rig, make_rig


class Archive:
    """What the loop needs of an ObjectStore here: upload, remembered; or refused."""

    def __init__(self, refuse: bool = False) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.refuse = refuse

    def buckets(self) -> list[str]:
        return ["logs"]

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        return []

    def upload(self, path: Path, bucket: str, key: str) -> StoredObject:
        if self.refuse:
            raise NoSuchBucket(f"no bucket {bucket}")
        self.objects[(bucket, key)] = path.read_bytes()
        return StoredObject(bucket, key, path.stat().st_size)

    def download(self, bucket: str, key: str, path: Path) -> StoredObject:
        raise NotImplementedError


def _rig(tmp_path: Path, archive: Archive, env: dict[str, str]) -> Rig:
    definition = replace(DEFINITION, retry_strategy=RetryStrategy(attempts=2))
    return make_rig(tmp_path, definition=definition, env=env, object_store=archive)


def test_each_attempts_log_is_archived_under_its_log_stream_name(tmp_path: Path) -> None:
    archive = Archive()
    rig = _rig(tmp_path, archive, {"LOCALBATCH_S3_LOG_BUCKET": "logs"})
    rig.runtime.script("busybox:1.36", runs_for_s=1, output=b"trying\n", exit_code=3)
    job_id = rig.submit()
    rig.settle(ticks=30)
    job = rig.job(job_id)
    assert job.status == JobStatus.FAILED and len(job.attempts) == 2
    assert archive.objects == {("logs", a.log_stream_name): b"trying\n" for a in job.attempts}
    assert all(a.log_stream_name.startswith("work/default/") for a in job.attempts)


def test_without_a_log_bucket_nothing_is_archived(tmp_path: Path) -> None:
    archive = Archive()
    rig = _rig(tmp_path, archive, {})
    rig.runtime.script("busybox:1.36", runs_for_s=1, output=b"done\n")
    job_id = rig.submit()
    rig.settle(ticks=12)
    assert rig.job(job_id).status == JobStatus.SUCCEEDED and archive.objects == {}


def test_a_failing_archive_never_fails_the_job(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rig = _rig(tmp_path, Archive(refuse=True), {"LOCALBATCH_S3_LOG_BUCKET": "logs"})
    rig.runtime.script("busybox:1.36", runs_for_s=1, output=b"done\n")
    job_id = rig.submit()
    rig.settle(ticks=12)
    assert rig.job(job_id).status == JobStatus.SUCCEEDED
    assert f"cannot archive the log {job_id}/1.log to s3://logs/work/default/" in caplog.text
    assert "no bucket logs" in caplog.text


def test_the_log_bucket_comes_from_the_store_table_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "localbatch.toml").write_text('[store]\nendpoint = "http://127.0.0.1:9000"\nlog_bucket = "job-logs"\n')
    env = {"LOCALBATCH_HOME": str(tmp_path / "home")}
    assert config.resolve(env=env, cwd=tmp_path).log_bucket == "job-logs"
    assert config.resolve(env={**env, "LOCALBATCH_S3_LOG_BUCKET": "other"}, cwd=tmp_path).log_bucket == "other"
    with pytest.raises(ConfigError, match=r"LOCALBATCH_S3_LOG_BUCKET: 'Bad_Bucket' is not a bucket name"):
        config.resolve(env={**env, "LOCALBATCH_S3_LOG_BUCKET": "Bad_Bucket"}, cwd=tmp_path)
    assert config.resolve(env={"LOCALBATCH_HOME": str(tmp_path)}, cwd=tmp_path / "home").log_bucket is None
