"""kill -9 in the middle of an S3 transfer (moto's server over HTTP): a half-done download is
thrown away and the launch staged again from scratch; a half-done upload is done again after
the restart, and until it is, no marker says the output is complete."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch.faults import ENV
from tests.faults.test_kill_9 import job_ids, listed_offline, log_of, no_containers_left, wait_dead
from tests.integration.daemons import CONFIG, started_daemon
from tests.integration.s3 import S3Server, running_s3_server

pytestmark = [pytest.mark.faults, pytest.mark.docker]

STAGED = """\
name = "staged"
image = "busybox:1.36"
command = ["sh", "-c", "md5sum /data/in.bin | cut -d' ' -f1; cp /data/in.bin /out/copy.bin; echo done > /out/note.txt"]

[resources]
vcpus = 0.5
memory_mib = 64

[[inputs]]
source = "s3://inbox/in.bin"
path = "/data/in.bin"

[[outputs]]
path = "/out/"
destination = "s3://results/${AWS_BATCH_JOB_ID}/"
"""
INPUT = os.urandom(3 * 1024 * 1024)  # several chunks: the download dies after the first
MD5 = hashlib.md5(INPUT).hexdigest()  # noqa: S324 - a checksum


@pytest.fixture
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        for bucket in ("inbox", "results"):
            server.client().create_bucket(Bucket=bucket)
        server.client().put_object(Bucket="inbox", Key="in.bin", Body=INPUT)
        yield server


def _config(server: S3Server) -> str:
    return CONFIG + f'\n[store]\nendpoint = "{server.url}"\naccess_key = "AKIAFAULT"\nsecret_key = "fault-secret"\n'


def _keys(s3: Any, job_id: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket="results", Prefix=f"{job_id}/").get("Contents", [])
    return {o["Key"][len(job_id) + 1 :] for o in listed}


@pytest.mark.parametrize(
    ("point", "state_at_death"), [("during_staging_download", "STARTING"), ("during_staging_upload", "RUNNING")]
)
def test_kill_9_during_a_transfer_ends_with_every_byte_and_one_attempt(
    tmp_path: Path, docker_client: Any, busybox_image: str, s3_server: S3Server, point: str, state_at_death: str
) -> None:
    s3 = s3_server.client()
    (tmp_path / "staged.toml").write_text(STAGED)
    with started_daemon(tmp_path, docker_client, _config(s3_server), register=False, start_env={ENV: point}) as daemon:
        daemon.ok("register", str(tmp_path / "staged.toml"))
        job_id = daemon.submit_api(jobName="staged", jobDefinition="staged")
        wait_dead(daemon)
        [job] = listed_offline(daemon)
        assert job["status"] == state_at_death
        if point == "during_staging_download":
            assert _keys(s3, job_id) == set()
        else:  # the files are up, the marker that says they all are is not
            assert _keys(s3, job_id) == {"copy.bin", "note.txt"}
        daemon.ok("daemon", "start")
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
        assert detail["status"] == "SUCCEEDED", (detail.get("statusReason"), detail["container"].get("reason"))
        assert len(detail["attempts"]) == 1
        assert log_of(daemon, job_id) == f"{MD5}\n"
        assert job_ids(daemon) == [job_id]
        no_containers_left(daemon)
    assert _keys(s3, job_id) == {"copy.bin", "note.txt", "_SUCCESS"}
    assert s3.get_object(Bucket="results", Key=f"{job_id}/copy.bin")["Body"].read() == INPUT
    manifest = json.loads(s3.get_object(Bucket="results", Key=f"{job_id}/_SUCCESS")["Body"].read())
    assert manifest["attempt"] == 1 and len(manifest["files"]) == 2
    assert not list((tmp_path / "home" / "staging").glob("*/*"))  # nothing left on the host
