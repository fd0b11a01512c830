"""AWS Batch's size quotas, kept locally (issue 10): a registered job definition at most 24 KiB,
a SubmitJob request at most 30 KiB. Over them: a client error naming the request and the limit,
nothing stored; ``validate`` says so for a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from localbatch.api.server import ApiRequest
from localbatch.cli import app
from tests.fakes.store import InMemoryStateStore
from tests.unit.test_api_fuzz import JSON_HEADERS, FuzzWorld


@pytest.fixture
def world(tmp_path: Path) -> FuzzWorld:
    return FuzzWorld(InMemoryStateStore(), tmp_path)


def register(command_bytes: int) -> dict[str, Any]:
    return {
        "jobDefinitionName": "big",
        "type": "container",
        "containerProperties": {
            "image": "busybox:1.36",
            "command": ["echo", "x" * command_bytes],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
        },
        # localbatch's own member is not counted: AWS never sees it
        "localbatch": {"inputs": [{"source": "s3://bucket/" + "k" * 100, "path": f"/x{n}"} for n in range(100)]},
    }


def call(world: FuzzWorld, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = world.api.handle(ApiRequest("POST", path, JSON_HEADERS, json.dumps(body).encode()))
    return response.status, json.loads(response.body)


def test_a_job_definition_over_24_kib_is_refused_naming_the_limit(world: FuzzWorld) -> None:
    before = world.state()
    status, answer = call(world, "/v1/registerjobdefinition", register(25_000))
    assert status == 400 and answer["__type"] == "ClientException"
    assert answer["message"].startswith("the RegisterJobDefinition request is 25")
    assert answer["message"].endswith("bytes; AWS Batch takes at most 24576 (24 KiB)")
    assert world.state() == before
    assert call(world, "/v1/registerjobdefinition", register(24_000))[0] == 200


def test_a_submission_over_30_kib_is_refused_naming_the_limit(world: FuzzWorld) -> None:
    before = world.state()
    body = {"jobName": "j", "jobQueue": "default", "jobDefinition": "work", "parameters": {"p": "x" * 31_000}}
    status, answer = call(world, "/v1/submitjob", body)
    assert status == 400
    assert answer["message"].endswith("bytes; AWS Batch takes at most 30720 (30 KiB)"), answer
    world.tick()
    assert world.state() == before


def test_validate_says_a_file_is_over_the_quota(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text(
        f'name = "big"\nimage = "busybox:1.36"\ncommand = ["echo", "{"x" * 25_000}"]\n'
        "[resources]\nvcpus = 1\nmemory_mib = 64\n"
    )
    env = {"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": "", "COLUMNS": "300"}
    result = CliRunner().invoke(app, ["validate", str(big)], env=env)
    assert result.exit_code == 2
    assert f"{big}: the RegisterJobDefinition request is 25" in result.output
    assert "AWS Batch takes at most 24576 (24 KiB)" in result.output
