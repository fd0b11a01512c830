"""S3 staging on the real engine and a real S3 server over HTTP (issue 5, items 3 and 6): a
daemon configured with a ``[store]`` on moto's S3 server runs jobs whose ``[[inputs]]`` are
downloaded and bind-mounted before they start and whose ``[[outputs]]`` are uploaded after
they exit: a 200 MiB file both ways and a prefix of 1,000 objects, byte-exact; a missing
bucket, refused credentials and an unreachable endpoint each fail the attempt with a reason
that says so, and the secret shows in none of it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemons import CONFIG, Daemon, started_daemon
from tests.integration.s3 import S3Server, authenticating_s3_server, free_port, running_s3_server

SECRET = "staging-test-secret-51c9"
BIG_MIB = 200
SMALL = 1000

ROUND_TRIP = """\
name = "roundtrip"
image = "busybox:1.36"
command = ["sh", "-c", '''set -e
md5sum /data/big.bin | cut -d' ' -f1
find /data/set -type f | wc -l
cp /data/big.bin /out/big.bin
cp -r /data/set /out/set
echo "attempt $AWS_BATCH_JOB_ATTEMPT" > /summary.txt''']

[resources]
vcpus = 1
memory_mib = 256

[[inputs]]
source = "s3://inbox/big.bin"
path = "/data/big.bin"

[[inputs]]
source = "s3://inbox/set/"
path = "/data/set"

[[outputs]]
path = "/out/"
destination = "s3://results/${AWS_BATCH_JOB_ID}/"

[[outputs]]
path = "/summary.txt"
destination = "s3://results/${AWS_BATCH_JOB_ID}/summary.txt"
"""

MISSING = """\
name = "missing"
image = "busybox:1.36"
command = ["true"]

[resources]
vcpus = 0.5
memory_mib = 64

[[inputs]]
source = "{source}"
path = "/data/in"
"""


def _config(url: str, access_key: str = "AKIASTAGING", secret: str = SECRET) -> str:
    return CONFIG + f'\n[store]\nendpoint = "{url}"\naccess_key = "{access_key}"\nsecret_key = "{secret}"\n'


@pytest.fixture
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        for bucket in ("inbox", "results"):
            server.client().create_bucket(Bucket=bucket)
        yield server


def _run(daemon: Daemon, tmp_path: Path, text: str, name: str, timeout_s: float = 240) -> dict[str, Any]:
    (tmp_path / f"{name}.toml").write_text(text)
    daemon.ok("register", str(tmp_path / f"{name}.toml"))
    job_id = daemon.submit(name)
    return daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=timeout_s)


def test_a_200_mib_file_and_1000_objects_round_trip_byte_exact(
    tmp_path: Path, docker_client: Any, busybox_image: str, s3_server: S3Server
) -> None:
    s3 = s3_server.client()
    big = os.urandom(1024 * 1024) * BIG_MIB  # 200 MiB; repeated so the test does not hold 400
    big_md5 = hashlib.md5(big).hexdigest()  # noqa: S324 - a checksum
    s3.put_object(Bucket="inbox", Key="big.bin", Body=big)
    small = {f"set/{n // 100}/obj-{n:04d}": f"object {n}\n".encode() for n in range(SMALL)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda item: s3.put_object(Bucket="inbox", Key=item[0], Body=item[1]), small.items()))
    with started_daemon(tmp_path, docker_client, _config(s3_server.url), register=False) as daemon:
        detail = _run(daemon, tmp_path, ROUND_TRIP, "roundtrip")
        job_id = detail["jobId"]
        output = daemon.ok("logs", job_id)
        assert detail["status"] == "SUCCEEDED", (detail.get("container", {}).get("reason"), output)
        assert output == f"{big_md5}\n{SMALL}\n"  # the container saw every input, byte-exact
        described = daemon.ok("describe", job_id, "--json")
    back = s3.get_object(Bucket="results", Key=f"{job_id}/big.bin")["Body"].read()
    assert len(back) == len(big) and hashlib.md5(back).hexdigest() == big_md5  # noqa: S324
    keys = [
        o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="results") for o in page["Contents"]
    ]
    copied = {k[len(f"{job_id}/") :] for k in keys if k.startswith(f"{job_id}/set/")}
    assert copied == set(small)
    some = next(iter(small))
    assert s3.get_object(Bucket="results", Key=f"{job_id}/{some}")["Body"].read() == small[some]
    assert s3.get_object(Bucket="results", Key=f"{job_id}/summary.txt")["Body"].read() == b"attempt 1\n"
    manifest = json.loads(s3.get_object(Bucket="results", Key=f"{job_id}/_SUCCESS")["Body"].read())
    assert len(manifest["files"]) == SMALL + 1 and manifest["exitCode"] == 0
    assert SECRET not in described
    assert not list((tmp_path / "home" / "staging").glob("*/*"))  # nothing left on the host


def test_a_missing_bucket_fails_the_attempt_with_a_reason_naming_it(
    tmp_path: Path, docker_client: Any, busybox_image: str, s3_server: S3Server
) -> None:
    with started_daemon(tmp_path, docker_client, _config(s3_server.url), register=False) as daemon:
        detail = _run(daemon, tmp_path, MISSING.format(source="s3://no-such-bucket/in.csv"), "missing", 60)
    assert detail["status"] == "FAILED" and detail["statusReason"] == "Task failed to start"
    reason = detail["container"]["reason"]
    assert reason.startswith("ResourceInitializationError: unable to stage inputs: ")
    assert "no bucket 'no-such-bucket'" in reason


def test_refused_credentials_are_named_and_the_secret_is_not(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    with authenticating_s3_server() as (server, access_key, _secret):
        config = _config(server.url, access_key=access_key, secret=SECRET)  # the wrong secret
        with started_daemon(tmp_path, docker_client, config, register=False) as daemon:
            detail = _run(daemon, tmp_path, MISSING.format(source="s3://inbox/in.csv"), "missing", 60)
            described = daemon.ok("describe", detail["jobId"], "--json")
    assert detail["status"] == "FAILED"
    assert "refused the credentials" in detail["container"]["reason"]
    assert SECRET not in described


def test_an_unreachable_endpoint_is_named(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with started_daemon(tmp_path, docker_client, _config(url), register=False) as daemon:
        detail = _run(daemon, tmp_path, MISSING.format(source="s3://inbox/in.csv"), "missing", 90)
    assert detail["status"] == "FAILED"
    assert f"nothing answers at {url}" in detail["container"]["reason"]
