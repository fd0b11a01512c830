"""localbatch as a drop-in AWS Batch endpoint: the real clients (boto3, the AWS CLI) against a
daemon started with a TCP listener, signing with the keys `localbatch credentials` prints."""

from __future__ import annotations

import http.client
import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import pytest

from tests.integration.daemons import CONFIG, Daemon, started_daemon
from tests.integration.s3 import free_port

AWS_CLI = Path(sys.executable).with_name("aws")
DONE = ("SUCCEEDED", "FAILED")


@pytest.fixture
def endpoint(tmp_path: Path, docker_client: Any) -> Iterator[tuple[Daemon, dict[str, str]]]:
    port = free_port()
    config = CONFIG + f'\n[api]\nlisten = "127.0.0.1:{port}"\n'
    with started_daemon(tmp_path, docker_client, config) as daemon:
        assert f"API http://127.0.0.1:{port}" in daemon.ok("daemon", "status") + daemon.start_stderr or True
        credentials = json.loads(daemon.ok("credentials", "--json"))
        yield daemon, credentials


def batch(credentials: dict[str, str], **changes: str) -> Any:
    values = {**credentials, **changes}
    return boto3.client(
        "batch",
        endpoint_url=values["AWS_ENDPOINT_URL_BATCH"],
        region_name=values["AWS_REGION"],
        aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
    )


def wait(client: Any, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
    """What an Airflow BatchOperator or a Metaflow step does: poll DescribeJobs until the job ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        (job,) = client.describe_jobs(jobs=[job_id])["jobs"]
        if job["status"] in DONE:
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"{job_id} did not end within {timeout_s} s")


def test_credentials_point_the_usual_variables_at_the_listener(endpoint):
    daemon, credentials = endpoint
    assert credentials["AWS_ENDPOINT_URL_BATCH"].startswith("http://127.0.0.1:")
    exported = daemon.ok("credentials", "--export")
    assert f"export AWS_ACCESS_KEY_ID={credentials['AWS_ACCESS_KEY_ID']}" in exported
    mode = (daemon.home / "home" / "api" / "credentials.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_boto3_registers_submits_and_polls_as_tools_do(endpoint):
    _, credentials = endpoint
    client = batch(credentials)
    registered = client.register_job_definition(
        jobDefinitionName="echo",
        type="container",
        parameters={"word": "default"},
        containerProperties={
            "image": "busybox:1.36",
            "command": ["sh", "-c", "echo Ref::word $GREETING $AWS_BATCH_JOB_ARRAY_INDEX"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "64"}],
        },
    )
    assert registered["revision"] == 1
    first = client.submit_job(jobName="first", jobQueue="default", jobDefinition="echo", parameters={"word": "hi"})
    array = client.submit_job(
        jobName="fan-out",
        jobQueue="default",
        jobDefinition="echo:1",
        arrayProperties={"size": 3},
        dependsOn=[{"jobId": first["jobId"]}],
        containerOverrides={"environment": [{"name": "GREETING", "value": "hello"}]},
    )
    done = wait(client, first["jobId"])
    assert done["status"] == "SUCCEEDED"
    logs = boto3.client(
        "logs",
        endpoint_url=credentials["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"],
        region_name=credentials["AWS_REGION"],
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
    )
    stream = done["container"]["logStreamName"]
    events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["hi"]
    parent = wait(client, array["jobId"])
    assert parent["status"] == "SUCCEEDED"
    assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 3
    assert parent["dependsOn"] == [{"jobId": first["jobId"]}]
    children = client.list_jobs(arrayJobId=array["jobId"], jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["arrayProperties"]["index"] for c in children) == [0, 1, 2]


def test_list_jobs_filters_and_pages_like_aws(endpoint):
    daemon, credentials = endpoint
    client = batch(credentials)
    ids = [daemon.submit_api(jobName=f"page-{i}") for i in range(5)]
    for job_id in ids:
        daemon.wait_for(job_id, *DONE)
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        page = client.list_jobs(
            jobQueue="default", jobStatus="SUCCEEDED", maxResults=2, **({"nextToken": token} if token else {})
        )
        assert len(page["jobSummaryList"]) <= 2
        seen += [j["jobId"] for j in page["jobSummaryList"]]
        token = page.get("nextToken")
        if not token:
            break
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    paginator = client.get_paginator("list_jobs")
    named = [
        j["jobName"]
        for page in paginator.paginate(jobQueue="default", filters=[{"name": "JOB_NAME", "values": ["page-3"]}])
        for j in page["jobSummaryList"]
    ]
    assert named == ["page-3"]
    by_definition = client.list_jobs(jobQueue="default", filters=[{"name": "JOB_DEFINITION", "values": ["hello:1"]}])
    assert set(ids) <= {j["jobId"] for j in by_definition["jobSummaryList"]}


def test_boto3_consumable_resources_gate_and_list_jobs(endpoint):
    daemon, credentials = endpoint
    client = batch(credentials)
    arn = client.create_consumable_resource(consumableResourceName="licences", totalQuantity=1)["consumableResourceArn"]
    need = {"consumableResourceList": [{"consumableResource": arn, "quantity": 1}]}
    ids = [
        client.submit_job(
            jobName=f"lic-{i}", jobQueue="default", jobDefinition="hello", consumableResourcePropertiesOverride=need
        )["jobId"]
        for i in range(2)
    ]
    for job_id in ids:
        assert wait(client, job_id)["status"] == "SUCCEEDED"
    listed = client.list_jobs_by_consumable_resource(consumableResource="licences")["jobs"]
    assert sorted(j["jobName"] for j in listed) == ["lic-0", "lic-1"] and {j["quantity"] for j in listed} == {1}
    described = client.describe_consumable_resource(consumableResource=arn)
    assert (described["totalQuantity"], described["inUseQuantity"], described["availableQuantity"]) == (1, 0, 1)
    client.update_consumable_resource(consumableResource="licences", operation="ADD", quantity=2)
    (summary,) = client.list_consumable_resources()["consumableResources"]
    assert summary["totalQuantity"] == 3
    client.delete_consumable_resource(consumableResource="licences")
    assert client.list_consumable_resources()["consumableResources"] == []


def test_cancel_terminate_queues_environments_and_tags(endpoint):
    daemon, credentials = endpoint
    client = batch(credentials)
    environment = client.create_compute_environment(
        computeEnvironmentName="extra", type="MANAGED", computeResources={"type": "EC2", "maxvCpus": 1}
    )
    queue = client.create_job_queue(
        jobQueueName="slow",
        priority=5,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
        tags={"team": "render"},
    )
    assert client.list_tags_for_resource(resourceArn=queue["jobQueueArn"])["tags"] == {"team": "render"}
    client.tag_resource(resourceArn=queue["jobQueueArn"], tags={"cost": "42"})
    client.untag_resource(resourceArn=queue["jobQueueArn"], tagKeys=["team"])
    assert client.list_tags_for_resource(resourceArn=queue["jobQueueArn"])["tags"] == {"cost": "42"}
    client.update_job_queue(jobQueue="slow", state="DISABLED")
    blocked = daemon.submit_api(
        jobName="blocked",
        dependsOn=[{"jobId": daemon.submit_api(jobName="long", containerOverrides={"command": ["sleep", "30"]})}],
    )
    client.cancel_job(jobId=blocked, reason="not needed")
    assert wait(client, blocked)["statusReason"] == "not needed"
    (running,) = [
        j["jobId"]
        for j in client.list_jobs(jobQueue="default", filters=[{"name": "JOB_NAME", "values": ["long"]}])[
            "jobSummaryList"
        ]
    ]
    daemon.wait_for(running, "RUNNING")
    client.terminate_job(jobId=running, reason="enough")
    assert wait(client, running)["status"] == "FAILED"
    client.delete_job_queue(jobQueue="slow")
    client.update_compute_environment(computeEnvironment="extra", state="DISABLED")
    names = [q["jobQueueName"] for q in client.describe_job_queues()["jobQueues"]]
    assert "default" in names


def test_the_aws_cli_works_against_it(endpoint):
    daemon, credentials = endpoint
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **credentials,
        "AWS_ENDPOINT_URL": credentials["AWS_ENDPOINT_URL_BATCH"],  # nothing may leave this machine
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }

    def aws(*args: str) -> Any:
        done = subprocess.run(
            [str(AWS_CLI), "batch", *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    submitted = aws("submit-job", "--job-name", "cli", "--job-queue", "default", "--job-definition", "hello")
    daemon.wait_for(submitted["jobId"], *DONE)
    (job,) = aws("describe-jobs", "--jobs", submitted["jobId"])["jobs"]
    assert job["status"] == "SUCCEEDED"
    listed = aws("list-jobs", "--job-queue", "default", "--job-status", "SUCCEEDED")["jobSummaryList"]
    assert submitted["jobId"] in [j["jobId"] for j in listed]
    stream = job["container"]["logStreamName"]
    done = subprocess.run(
        [
            str(AWS_CLI),
            "logs",
            "get-log-events",
            "--log-group-name",
            "/aws/batch/job",
            "--log-stream-name",
            stream,
            "--start-from-head",
            "--output",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert any("hello from" in e["message"] for e in json.loads(done.stdout)["events"])


def test_an_unsigned_or_wrongly_signed_request_runs_nothing(endpoint):
    daemon, credentials = endpoint
    before = daemon.api.call("ListJobs", {"jobQueue": "default", "filters": [{"name": "JOB_NAME", "values": ["*"]}]})
    wrong = batch(credentials, AWS_SECRET_ACCESS_KEY="not-it")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        wrong.submit_job(jobName="evil", jobQueue="default", jobDefinition="hello")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    host, port = credentials["AWS_ENDPOINT_URL_BATCH"].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"jobName": "evil", "jobQueue": "default", "jobDefinition": "hello"})
    connection.request("POST", "/v1/submitjob", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 403 and response.getheader("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    connection.close()
    after = daemon.api.call("ListJobs", {"jobQueue": "default", "filters": [{"name": "JOB_NAME", "values": ["*"]}]})
    assert after == before
    log = (daemon.home / "home" / "daemon.log").read_text()
    assert credentials["AWS_SECRET_ACCESS_KEY"] not in log


def test_each_job_shows_who_submitted_it(endpoint):
    """A shared workstation: alice's key records her as the submitter of her jobs; a job
    submitted through the CLI (the daemon's Unix socket) is the daemon's OS user's."""
    daemon, _ = endpoint
    alice = json.loads(daemon.ok("credentials", "--add", "alice", "--json"))
    assert alice["name"] == "alice"
    hers = batch(alice).submit_job(jobName="hers", jobQueue="default", jobDefinition="hello")["jobId"]
    mine = daemon.submit("hello")
    owner = pwd.getpwuid(os.getuid()).pw_name
    assert submitted_by(daemon.ok("describe", hers)) == "alice"
    assert submitted_by(daemon.ok("describe", mine)) == owner
    (detail,) = batch(alice).describe_jobs(jobs=[hers])["jobs"]  # DescribeJobs keeps AWS's shape
    assert "alice" not in json.dumps(detail)


def submitted_by(described: str) -> str:
    """The value of `localbatch describe`'s "submitted by" row."""
    (line,) = [line for line in described.splitlines() if line.startswith("submitted by")]
    return line.removeprefix("submitted by").strip()
