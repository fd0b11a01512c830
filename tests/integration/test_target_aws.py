"""``--target aws`` and ``import --from-aws`` against moto's AWS Batch, over real HTTP on
127.0.0.1 (nothing leaves the machine). moto runs no containers here (its ``use_docker``
off): jobs end SUCCEEDED at once, so the tests check what AWS Batch was asked, through
DescribeJobs and moto's request recorder, not what ran."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import tomllib
from typer.testing import CliRunner

from localbatch import jobdef
from localbatch.cli import app
from tests.integration.s3 import running_moto

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "jobdefs" / "hello.toml"
REGION = "us-east-1"
QUEUE = "lb-queue"


class Moto:
    def __init__(self, url: str) -> None:
        self.url = url
        self.batch: Any = boto3.client("batch", endpoint_url=url, region_name=REGION)

    def post(self, path: str, body: object = None) -> bytes:
        data = b"" if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback only
            return bytes(answer.read())

    def requests(self, operation: str) -> list[dict[str, Any]]:
        """The bodies of every ``operation`` request moto received since the test began."""
        with urllib.request.urlopen(f"{self.url}/moto-api/recorder/download-recording", timeout=10) as answer:  # noqa: S310
            lines = answer.read().decode().splitlines()
        bodies = []
        for line in lines:
            entry = json.loads(line)
            if entry["url"].rstrip("/").endswith(f"/v1/{operation.lower()}"):
                raw = entry["body"]
                bodies.append(json.loads(base64.b64decode(raw) if entry["body_encoded"] else raw))
        return bodies


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    with running_moto() as url:
        try:
            yield url
        finally:
            Moto(url).post("/moto-api/config", {"batch": {"use_docker": True}})  # moto's default, for others


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Moto]:
    """A fresh moto with an UNMANAGED compute environment and the queue ``lb-queue``, recording
    every request (into ``tmp_path``: the recorder writes to the working directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lb-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lb-test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_REGION", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BATCH"):
        monkeypatch.delenv(name, raising=False)
    moto = Moto(moto_server)
    moto.post("/moto-api/reset")
    moto.post("/moto-api/config", {"batch": {"use_docker": False}})
    iam = boto3.client("iam", endpoint_url=moto_server, region_name=REGION)
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    environment = moto.batch.create_compute_environment(
        computeEnvironmentName="lb-env", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    moto.batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    moto.post("/moto-api/recorder/reset-recording")
    moto.post("/moto-api/recorder/start-recording")
    try:
        yield moto
    finally:
        moto.post("/moto-api/recorder/stop-recording")


@pytest.fixture
def cli(moto: Moto, tmp_path: Path) -> Any:
    """The CLI in this process, aimed at moto with ``--endpoint-url`` (after the arguments)."""
    runner = CliRunner()
    env = {"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": "", "COLUMNS": "200"}

    def invoke(*args: str) -> Any:
        return runner.invoke(app, [*args, "--target", "aws", "--endpoint-url", moto.url], env=env)

    return invoke


def submit_json(result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_a_file_is_registered_once_and_its_job_is_described_and_listed(cli, moto):
    first = submit_json(cli("submit", str(HELLO), "--queue", QUEUE, "--json"))
    second = submit_json(cli("submit", str(HELLO), "--queue", QUEUE, "--json"))

    registered = moto.requests("RegisterJobDefinition")
    assert len(registered) == 1  # the second submit found the same revision ACTIVE
    assert "localbatch" not in registered[0]
    assert registered[0]["jobDefinitionName"] == "hello"
    assert [body["jobDefinition"] for body in moto.requests("SubmitJob")] == ["hello:1", "hello:1"]

    described = cli("describe", first["jobId"], "--json")
    assert described.exit_code == 0, described.output
    detail = json.loads(described.stdout)
    assert detail["jobId"] == first["jobId"] and detail["jobDefinition"].endswith("job-definition/hello:1")
    shown = cli("describe", first["jobId"])
    assert shown.exit_code == 0, shown.output
    assert first["jobId"] in shown.stdout

    listed = cli("ls", "--queue", QUEUE, "--json")
    assert listed.exit_code == 0, listed.output
    ids = {job["jobId"] for job in json.loads(listed.stdout)["jobSummaryList"]}
    assert {first["jobId"], second["jobId"]} <= ids
    succeeded = cli("ls", "--queue", QUEUE, "--status", "SUCCEEDED", "--json")
    assert {j["jobId"] for j in json.loads(succeeded.stdout)["jobSummaryList"]} == ids
    listing = moto.requests("ListJobs")
    assert listing[0]["filters"] == [{"name": "AFTER_CREATED_AT", "values": ["0"]}]  # every status
    assert listing[-1]["jobStatus"] == "SUCCEEDED"


def test_what_submit_asks_for_reaches_aws(cli, moto):
    upstream = submit_json(cli("submit", str(HELLO), "--queue", QUEUE, "--json"))
    answer = submit_json(
        cli(
            "submit",
            "hello:1",
            "--queue",
            QUEUE,
            "--name",
            "sweep",
            "--array-size",
            "100",
            "--depends-on",
            upstream["jobId"],
            "--depends-on",
            "SEQUENTIAL",
            "--param",
            "greeting=hi",
            "--env",
            "STAGE=test",
            "--vcpus",
            "2",
            "--memory-mib",
            "256",
            "--command",
            "echo Ref::greeting",
            "--attempts",
            "3",
            "--timeout",
            "120",
            "--tag",
            "team=ml",
            "--share-identifier",
            "ml",
            "--json",
        )
    )
    body = moto.requests("SubmitJob")[-1]
    assert body == {
        "jobName": "sweep",
        "jobQueue": QUEUE,
        "jobDefinition": "hello:1",
        "arrayProperties": {"size": 100},
        "dependsOn": [{"jobId": upstream["jobId"]}, {"type": "SEQUENTIAL"}],
        "shareIdentifier": "ml",
        "parameters": {"greeting": "hi"},
        "containerOverrides": {
            "command": ["echo", "Ref::greeting"],
            "environment": [{"name": "STAGE", "value": "test"}],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "256"}],
        },
        "retryStrategy": {"attempts": 3},
        "timeout": {"attemptDurationSeconds": 120},
        "tags": {"team": "ml"},
    }
    detail = moto.batch.describe_jobs(jobs=[answer["jobId"]])["jobs"][0]  # what moto kept of it
    assert detail["arrayProperties"]["size"] == 100
    assert detail["dependsOn"] == [{"jobId": upstream["jobId"]}, {"type": "SEQUENTIAL"}]
    assert detail["parameters"]["greeting"] == "hi"
    assert detail["container"]["command"] == ["echo", "Ref::greeting"]
    assert {"name": "STAGE", "value": "test"} in detail["container"]["environment"]
    assert detail["timeout"] == {"attemptDurationSeconds": 120}
    assert detail["tags"] == {"team": "ml"}


def test_n_to_n_dependencies_reach_aws(cli, moto):
    first = submit_json(cli("submit", str(HELLO), "--queue", QUEUE, "--array-size", "2", "--json"))
    n_to_n = f"{first['jobId']}:N_TO_N"
    assert cli("submit", "hello", "--queue", QUEUE, "--array-size", "2", "--depends-on", n_to_n).exit_code == 0
    assert moto.requests("SubmitJob")[-1]["dependsOn"] == [{"jobId": first["jobId"], "type": "N_TO_N"}]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--timeout", "5"], "--timeout: 5 is below AWS Batch's minimum of 60 seconds"),
        (["--vcpus", "0.5"], "--vcpus: 0.5 is fractional"),
        (["--array-size", "1"], "--array-size"),
        (["--array-size", "10001"], "--array-size"),
        ([arg for i in range(21) for arg in ("--depends-on", f"job-{i}")], "--depends-on: at most 20"),
    ],
)
def test_local_relaxations_are_refused_before_anything_reaches_aws(cli, moto, flags, named):
    result = cli("submit", str(HELLO), "--queue", QUEUE, *flags)
    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert moto.requests("SubmitJob") == [] and moto.requests("RegisterJobDefinition") == []


def test_a_fractional_vcpu_override_of_a_named_ec2_definition_is_refused(cli, moto):
    submit_json(cli("submit", str(HELLO), "--queue", QUEUE, "--json"))
    result = cli("submit", "hello", "--queue", QUEUE, "--vcpus", "1.5")
    assert result.exit_code == 2, result.output
    assert "--vcpus: 1.5 is fractional" in result.stderr
    assert len(moto.requests("SubmitJob")) == 1


def test_the_export_plan_is_what_aws_registers(cli, moto, tmp_path):
    """Fractional vCPUs are rounded up (with a warning), staging is left out (with a warning)."""
    text = HELLO.read_text().replace("vcpus = 1", "vcpus = 0.5")
    text += '\n[[inputs]]\nsource = "s3://bucket/in.txt"\npath = "/data/in.txt"\n'
    path = tmp_path / "hello.toml"
    path.write_text(text)
    result = cli("submit", str(path), "--queue", QUEUE, "--json")
    assert result.exit_code == 0, result.output
    assert "0.5 vCPU becomes 1 in the cloud" in result.stderr and "inputs: not exported" in result.stderr
    [registered] = moto.requests("RegisterJobDefinition")
    assert {"type": "VCPU", "value": "1"} in registered["containerProperties"]["resourceRequirements"]
    assert "localbatch" not in registered
    again = cli("submit", str(path), "--queue", QUEUE, "--json")  # the rounded revision is this file's
    assert again.exit_code == 0, again.output
    assert len(moto.requests("RegisterJobDefinition")) == 1


def test_a_file_aws_would_refuse_is_refused(cli, moto, tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(HELLO.read_text().replace("attempt_duration_seconds = 60", "attempt_duration_seconds = 5"))
    result = cli("submit", str(path), "--queue", QUEUE)
    assert result.exit_code == 2, result.output
    assert "timeout.attempt_duration_seconds" in result.stderr
    assert moto.requests("RegisterJobDefinition") == [] and moto.requests("SubmitJob") == []


def test_import_from_aws_gives_the_definition_back(cli, moto, tmp_path):
    assert cli("submit", str(HELLO), "--queue", QUEUE).exit_code == 0
    out = tmp_path / "imported.toml"
    result = CliRunner().invoke(
        app,
        ["import", "--from-aws", "hello", "-o", str(out), "--endpoint-url", moto.url],
        env={"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": ""},
    )
    assert result.exit_code == 0, result.output
    assert jobdef.load_file(out) == jobdef.load_file(HELLO)
    assert tomllib.loads(out.read_text())["name"] == "hello"
    by_revision = CliRunner().invoke(
        app,
        ["import", "--from-aws", "hello:1", "--endpoint-url", moto.url],
        env={"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": ""},
    )
    assert by_revision.exit_code == 0, by_revision.output
    assert jobdef.loads(by_revision.stdout) == jobdef.load_file(HELLO)


@pytest.mark.parametrize("ref", ["nope", "hello:7"])
def test_import_from_aws_of_an_unknown_definition_names_it(moto, tmp_path, ref):
    moto.batch.register_job_definition(
        jobDefinitionName="hello",
        type="container",
        containerProperties={
            "image": "busybox:1.36",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    )
    result = CliRunner().invoke(
        app,
        ["import", "--from-aws", ref, "--endpoint-url", moto.url],
        env={"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": ""},
    )
    assert result.exit_code == 2, result.output
    assert f"job definition '{ref}'" in result.stderr and "DescribeJobDefinitions" in result.stderr


def test_import_wants_a_file_or_from_aws(tmp_path):
    env = {"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": ""}
    neither = CliRunner().invoke(app, ["import"], env=env)
    both = CliRunner().invoke(app, ["import", "x.json", "--from-aws", "hello"], env=env)
    assert neither.exit_code == 2 and both.exit_code == 2
    assert "--from-aws" in neither.stderr and "--from-aws" in both.stderr


def test_no_region_anywhere_is_a_clear_error(cli, moto, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = cli("describe", "some-job")
    assert result.exit_code == 1
    assert "NoRegion" in result.stderr and "--region" in result.stderr


def test_a_definition_named_by_arn_is_submitted_as_is(cli, moto):
    arn = moto.batch.register_job_definition(
        jobDefinitionName="byarn",
        type="container",
        containerProperties={
            "image": "busybox:1.36",
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
    )["jobDefinitionArn"]
    answer = submit_json(cli("submit", arn, "--queue", QUEUE, "--json"))
    assert answer["jobName"] == "byarn"
    assert moto.requests("SubmitJob")[-1]["jobDefinition"] == arn
