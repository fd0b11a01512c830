"""Secrets stay secret (issue 10 §6): a real daemon with S3 credentials (moto's server) and API
keys with distinctive secrets is exercised through every output channel (describe, ls, logs,
events, export, audit, metrics, dashboard, status, bad requests, a failing S3 transfer) and
none of them, nor any file of its home but the credential files (mode 0600), holds a secret."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]

from tests.integration.daemons import CONFIG, Daemon, started_daemon
from tests.integration.s3 import free_port, running_s3_server

S3_SECRET = "s3-SECRET-7f3a9c-never-shown"
S3_ACCESS = "AKIALEAKCHECK7F3A9C"

STAGED = """\
name = "staged"
image = "busybox:1.36"
command = ["sh", "-c", 'cat /data/in.txt; test -n "$AWS_SECRET_ACCESS_KEY" && echo credentials-injected']

[resources]
vcpus = 0.5
memory_mib = 64

[[inputs]]
source = "s3://inbox/in.txt"
path = "/data/in.txt"
"""

BROKEN = STAGED.replace('name = "staged"', 'name = "broken"').replace("s3://inbox/", "s3://no-such-bucket/")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self._path)


def _get_socket(path: Path, target: str) -> str:
    connection = _UnixConnection(path)
    try:
        connection.request("GET", target)
        return connection.getresponse().read().decode(errors="replace")
    finally:
        connection.close()


def _get_basic(port: int, target: str, user: str, password: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        connection.request("GET", target, headers={"Authorization": f"Basic {token}"})
        answer = connection.getresponse()
        body = answer.read().decode(errors="replace")
        assert answer.status == 200, (target, answer.status, body[:300])
        return body
    finally:
        connection.close()


def _both(daemon: Daemon, *args: str) -> str:
    """stdout and stderr of a CLI call, whatever its exit code."""
    result = daemon(*args)
    return f"$ localbatch {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_no_output_and_no_file_holds_a_secret(tmp_path: Path, docker_client: Any, busybox_image: str) -> None:
    port = free_port()
    outputs: dict[str, str] = {}
    with running_s3_server() as s3:
        client = s3.client()
        client.create_bucket(Bucket="inbox")
        client.put_object(Bucket="inbox", Key="in.txt", Body=b"staged input\n")
        config = CONFIG + (
            f'\n[store]\nendpoint = "{s3.url}"\naccess_key = "{S3_ACCESS}"\nsecret_key = "{S3_SECRET}"\n'
            f'\n[api]\nlisten = "127.0.0.1:{port}"\n'
        )
        with started_daemon(tmp_path, docker_client, config, register=False) as daemon:
            owner = json.loads(daemon.ok("credentials", "--json"))
            carol = json.loads(daemon.ok("credentials", "--add", "carol", "--json"))
            secrets = {
                "S3 secret key": S3_SECRET,
                "owner's API secret": owner["AWS_SECRET_ACCESS_KEY"],
                "carol's API secret": carol["AWS_SECRET_ACCESS_KEY"],
            }
            for name, text in (("staged", STAGED), ("broken", BROKEN)):
                (tmp_path / f"{name}.toml").write_text(text)
                daemon.ok("register", str(tmp_path / f"{name}.toml"))
            staged = daemon.submit("staged")
            broken = daemon.submit("broken")  # its input bucket does not exist: a failing transfer
            batch = boto3.client(
                "batch",
                endpoint_url=f"http://127.0.0.1:{port}",
                region_name="us-east-1",
                aws_access_key_id=carol["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=carol["AWS_SECRET_ACCESS_KEY"],
            )
            by_carol = batch.submit_job(jobName="by-carol", jobQueue="default", jobDefinition="staged")["jobId"]
            for job_id in (staged, broken, by_carol):
                daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=120)
            assert daemon.detail(staged)["status"] == "SUCCEEDED"
            assert "no bucket 'no-such-bucket'" in daemon.detail(broken)["container"]["reason"]
            refusals = []
            for call in (
                lambda: batch.submit_job(jobName="x", jobQueue="nope", jobDefinition="staged"),
                lambda: batch.describe_jobs(jobs=["not-a-job"] * 101),
                lambda: boto3.client(
                    "batch",
                    endpoint_url=f"http://127.0.0.1:{port}",
                    region_name="us-east-1",
                    aws_access_key_id=carol["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=owner["AWS_SECRET_ACCESS_KEY"],  # the wrong key's secret
                ).list_jobs(jobQueue="default"),
            ):
                try:
                    call()
                except botocore.exceptions.ClientError as exc:
                    refusals.append(json.dumps(exc.response, default=str))
            assert len(refusals) == 3
            outputs["boto3 refusals"] = "\n".join(refusals)
            commands = [
                ("describe", staged, "--json"),
                ("logs", staged),
                ("describe", broken),
                ("-v", "ls", "--json"),
                ("logs", broken),
                ("events", "--json", "--since", "0"),
                ("audit", "--json"),
                ("daemon", "status", "--json"),
                ("resources", "--json"),
                ("store", "status"),
                ("store", "ls", "s3://no-such-bucket"),
                ("submit", "no-such-definition"),
                ("export", str(tmp_path / "staged.toml"), "--config", str(tmp_path / "localbatch.toml")),
                ("dashboard", "--json"),  # prints the owner's secret by design: checked below
            ]
            with ThreadPoolExecutor(4) as pool:  # each is a CLI process: overlap their start-up
                for args, text in zip(commands, pool.map(lambda args: _both(daemon, *args), commands), strict=True):
                    outputs[" ".join(args)] = text
            outputs["metrics"] = _get_socket(Path(daemon.api.socket_path), "/metrics")
            assert "\nlocalbatch_audit_write_failures_total 0\n" in outputs["metrics"]
            for page in ("/dashboard", "/dashboard/jobs", f"/dashboard/job?id={staged}", f"/dashboard/log?id={broken}"):
                outputs[page] = _get_basic(port, page, carol["AWS_ACCESS_KEY_ID"], carol["AWS_SECRET_ACCESS_KEY"])
        outputs["daemon start"] = daemon.start_stderr
    home = tmp_path / "home"
    # `credentials` and `dashboard` print a key's secret on purpose, to its owner: nothing else may
    assert owner["AWS_SECRET_ACCESS_KEY"] in outputs.pop("dashboard --json")
    # the staged job was given the store's credentials (at launch, never stored with it)
    assert "staged input\ncredentials-injected" in outputs[f"logs {staged}"]
    private = {home / "api" / "credentials.json", home / "store" / "credentials.json"}
    for path in private:
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert (home / "api" / "credentials.json").exists()
    for path in sorted(p for p in home.rglob("*") if p.is_file() and p not in private):
        outputs[f"file {path.relative_to(home)}"] = path.read_bytes().decode(errors="replace")
    assert any(name.startswith("file audit.log") for name in outputs)
    assert any(name.startswith("file daemon.log") for name in outputs)
    leaks = [
        f"{what} in {where}" for where, text in outputs.items() for what, secret in secrets.items() if secret in text
    ]
    assert leaks == []
