"""Real-world AWS Batch job definitions (GPU training, Fargate ETL, multi-node MPI, a
DescribeJobDefinitions entry) come home as TOML and go back out exactly as they came."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch.jobdefinition import as_register_request, document_from_request, request_from_document

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "aws"
REQUESTS = sorted(p for p in EXAMPLES.glob("*.json") if p.name != "describe-entry.json")


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_a_request_goes_out_exactly_as_it_came_in(path: Path, tmp_path: Path) -> None:
    request = json.loads(path.read_text())
    assert model.validate_request("RegisterJobDefinition", request) == []
    toml = tmp_path / f"{path.stem}.toml"
    toml.write_text(jobdef.dumps_document(document_from_request(request, str(path))))
    assert request_from_document(jobdef.read_document(toml)) == request
    assert jobdef.load_file(toml).name == request["jobDefinitionName"]


def test_a_describe_entry_comes_home_without_what_only_describe_adds(tmp_path: Path) -> None:
    entry = json.loads((EXAMPLES / "describe-entry.json").read_text())
    exported = request_from_document(document_from_request(entry, "entry.json"))
    assert exported == _without_empty(as_register_request(entry))


def test_the_gpu_example_keeps_its_gpus_and_host_scratch() -> None:
    document = document_from_request(json.loads((EXAMPLES / "gpu-training.json").read_text()), "gpu")
    assert document["resources"] == {"gpus": 4, "vcpus": 32, "memory_mib": 240000}
    assert document["volumes"] == [{"name": "scratch", "host_source_path": "/mnt/nvme"}]


def _without_empty(value: Any) -> Any:
    """AWS's Describe answers with ``[]``/``{}`` for members nobody gave: they mean none."""
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v not in ([], {})}
    return value
