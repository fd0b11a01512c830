"""Jobs see the store (issue 5, items 4 and 5), on the real engine: a daemon configured with a
``[store]`` on moto's S3 server (HTTP, loopback) runs jobs that reach the store using only the
environment localbatch injects (busybox wget; unmodified boto3 code in a locally built image);
the secret shows in no output and no file; each attempt's log lands in the log bucket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.boto3_image import boto3_image
from tests.integration.daemons import CONFIG, started_daemon
from tests.integration.s3 import running_s3_server

SECRET = "localbatch-test-secret-7f3a"
ACCESS_KEY = "AKIALOCALBATCHTEST"
BODY = "hello from the store\n"

PEEK = """\
name = "s3peek"
image = "busybox:1.36"
command = ["sh", "-c", '''env | grep -E '^AWS_(ENDPOINT_URL_S3|ACCESS_KEY_ID|DEFAULT_REGION)=' | sort
test -n "$AWS_SECRET_ACCESS_KEY" && echo secret-set
wget -q -O - "$AWS_ENDPOINT_URL_S3/inbox/hello.txt"''']

[resources]
vcpus = 0.5
memory_mib = 64
"""


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 server on loopback, with bucket ``inbox`` holding ``hello.txt``: its URL."""
    with running_s3_server() as server:
        s3 = server.client()
        for bucket in ("inbox", "job-logs", "outbox"):
            s3.create_bucket(Bucket=bucket)
        # public-read: busybox wget cannot sign, and the test is that the address reaches the store
        s3.put_object(Bucket="inbox", Key="hello.txt", Body=BODY.encode(), ACL="public-read")
        yield server.url


def _config(url: str) -> str:
    return CONFIG + (
        f'\n[store]\nendpoint = "{url}"\naccess_key = "{ACCESS_KEY}"\n'
        f'secret_key = "{SECRET}"\nregion = "eu-west-1"\nlog_bucket = "job-logs"\n'
    )


# boto3.client("s3") with no arguments: the injected environment alone points it at the store,
# signs with the store's credentials and picks the region.
BOTO3_JOB = '''\
name = "boto3job"
image = "{image}"
command = ["python3", "-c", """
import boto3
s3 = boto3.client("s3")
body = s3.get_object(Bucket="inbox", Key="hello.txt")["Body"].read()
s3.put_object(Bucket="outbox", Key="result.txt", Body=body.upper())
print("copied", len(body), "bytes")
"""]

[resources]
vcpus = 1
memory_mib = 256
'''


def test_unmodified_boto3_code_reads_and_writes_the_store_from_a_job(
    tmp_path: Path, docker_client: Any, busybox_image: str, s3_server: str
) -> None:
    image = boto3_image(docker_client)  # built locally from this machine's Python and boto3
    (tmp_path / "boto3job.toml").write_text(BOTO3_JOB.format(image=image))
    with started_daemon(tmp_path, docker_client, _config(s3_server), register=False) as daemon:
        daemon.ok("register", str(tmp_path / "boto3job.toml"))
        job_id = daemon.submit("boto3job")
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=120)
        output = daemon.ok("logs", job_id)
        assert detail["status"] == "SUCCEEDED", (detail.get("statusReason"), output)
        assert output == f"copied {len(BODY)} bytes\n"
    assert _archived(s3_server, "outbox", "result.txt") == BODY.upper().encode()


def test_a_job_reaches_the_store_with_only_the_injected_environment(
    tmp_path: Path, docker_client: Any, busybox_image: str, s3_server: str
) -> None:
    config = _config(s3_server)
    (tmp_path / "peek.toml").write_text(PEEK)
    with started_daemon(tmp_path, docker_client, config, register=False) as daemon:
        daemon.ok("register", str(tmp_path / "peek.toml"))
        job_id = daemon.submit("s3peek", "--env", "STAGE=e2e")
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
        output = daemon.ok("logs", job_id)
        assert detail["status"] == "SUCCEEDED", (detail.get("statusReason"), output)
        assert output == (
            f"AWS_ACCESS_KEY_ID={ACCESS_KEY}\nAWS_DEFAULT_REGION=eu-west-1\nAWS_ENDPOINT_URL_S3={s3_server}\n"
            f"secret-set\n{BODY}"
        )
        described = daemon.ok("describe", job_id, "--json")
        assert json.loads(described)["container"]["environment"] == [{"name": "STAGE", "value": "e2e"}]
        assert SECRET not in described and SECRET not in output and SECRET not in daemon.ok("describe", job_id)
        leaked = [p for p in (tmp_path / "home").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
        assert leaked == []  # not in the state database, the job logs or the daemon's log
        # Item 5: the attempt's log is archived under its log stream name, once its container is gone.
        stream = detail["attempts"][0]["container"]["logStreamName"]
        assert _archived(s3_server, "job-logs", stream) == output.encode()


def _archived(url: str, bucket: str, key: str, timeout_s: float = 30) -> bytes | None:
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        if listed:
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            return body
        time.sleep(0.2)
    return None
