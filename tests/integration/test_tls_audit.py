"""The TCP listener with TLS and the audit log, on a real daemon: boto3 verifying a throwaway
self-signed certificate submits a job, plain HTTP gets nothing done, and ``localbatch audit``
shows who did what over which transport; an address off loopback without a certificate is
refused at start with the config key named."""

from __future__ import annotations

import http.client
import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]

from tests.certificates import self_signed
from tests.integration.conftest import LocalbatchCli, home_environment
from tests.integration.daemons import CONFIG, started_daemon
from tests.integration.s3 import free_port

AWS_CLI = Path(sys.executable).with_name("aws")


def test_boto3_over_tls_is_served_plain_http_is_not_and_the_audit_names_the_key(tmp_path: Path, docker_client: Any):
    cert, key = self_signed(tmp_path / "tls")
    port = free_port()
    config = CONFIG + f'\n[api]\nlisten = "127.0.0.1:{port}"\ntls_certificate = "{cert}"\ntls_key = "{key}"\n'
    with started_daemon(tmp_path, docker_client, config) as daemon:
        started = " ".join(daemon.start_stdout.split())  # the start line, unwrapped
        assert f"API https://127.0.0.1:{port} (TLS on, certificate subject CN=localbatch-test, SHA-256 " in started
        log = (daemon.home / "home" / "daemon.log").read_text()
        assert f"API listening on https://127.0.0.1:{port} (TLS on, certificate subject CN=localbatch-test" in log
        credentials = json.loads(daemon.ok("credentials", "--json"))
        assert credentials["AWS_ENDPOINT_URL_BATCH"] == f"https://127.0.0.1:{port}"
        assert credentials["AWS_CA_BUNDLE"] == str(cert)
        batch = boto3.client(
            "batch",
            endpoint_url=credentials["AWS_ENDPOINT_URL_BATCH"],
            region_name=credentials["AWS_REGION"],
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            verify=credentials["AWS_CA_BUNDLE"],
        )
        job_id = batch.submit_job(jobName="over-tls", jobQueue="default", jobDefinition="hello")["jobId"]
        assert batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobName"] == "over-tls"

        # the AWS CLI reads AWS_CA_BUNDLE (and the rest) from the environment `credentials` prints
        aws = subprocess.run(
            [str(AWS_CLI), "batch", "describe-jobs", "--jobs", job_id],
            env={**os.environ, **credentials},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert aws.returncode == 0, aws.stderr
        assert json.loads(aws.stdout)["jobs"][0]["jobId"] == job_id

        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        plain.request("POST", "/v1/submitjob", body=json.dumps({"jobName": "plain"}))
        answer = plain.getresponse()
        assert answer.status == 400 and "speaks https" in answer.read().decode()
        plain.close()

        entries = [json.loads(line) for line in daemon.ok("audit", "--json").splitlines()]
    register, submit = entries  # the CLI's register over the socket, boto3's submit; never the reads
    assert register["operation"] == "RegisterJobDefinition" and register["transport"] == "socket"
    assert register["principal"] == pwd.getpwuid(os.getuid()).pw_name
    assert submit["operation"] == "SubmitJob" and submit["outcome"] == "ok"
    assert submit["principal"] == "owner" and submit["transport"] == "tcp"
    assert submit["peer"].startswith("127.0.0.1:")
    assert submit["target"]["jobId"] == job_id and submit["target"]["jobName"] == "over-tls"
    assert oct((daemon.home / "home" / "audit.log").stat().st_mode & 0o777) == "0o600"
    table = daemon.ok("audit", "--principal", "owner")
    assert "SubmitJob" in table and "RegisterJobDefinition" not in table


def test_an_address_off_loopback_without_a_certificate_is_refused_naming_the_key(tmp_path: Path, docker_client: Any):
    env, settings = home_environment(tmp_path)
    cli = LocalbatchCli(tmp_path, env, {"localbatch.home": settings.home_id}, docker_client)
    refused = cli("daemon", "start", "--listen", f"0.0.0.0:{free_port()}")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "[api] tls_certificate" in refused.stderr and "needs TLS" in refused.stderr
    assert not settings.pid_path.exists()
