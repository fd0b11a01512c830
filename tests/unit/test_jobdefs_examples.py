"""Every example in jobdefs/ loads, converts to AWS's request and back, so the examples never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from localbatch import jobdef
from localbatch.awsbatch import model
from localbatch.awsbatch.export import build_plan
from localbatch.awsbatch.jobdefinition import from_register_request, request_from_document, to_register_request
from localbatch.cloud_settings import CloudSettings
from localbatch.core.portability import definition_problems
from tests.strategies import local_settings_dropped

JOBDEFS = Path(__file__).resolve().parents[2] / "jobdefs"
EXAMPLES = sorted(JOBDEFS.glob("*.toml"))


def test_there_are_examples() -> None:
    assert EXAMPLES, f"no job definitions in {JOBDEFS}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads_and_is_named_after_its_file(path: Path) -> None:
    assert jobdef.load_file(path).name == path.stem


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_writes_back_to_the_same_definition(path: Path) -> None:
    definition = jobdef.load_file(path)
    assert jobdef.loads(jobdef.dumps(definition), "dumped") == definition


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_converts_to_a_valid_aws_request_and_back(path: Path) -> None:
    definition = jobdef.load_file(path)
    request = to_register_request(definition)
    assert model.validate_request("RegisterJobDefinition", request) == []
    assert from_register_request(request, str(path)) == local_settings_dropped(definition)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_exports_as_it_is_written(path: Path) -> None:
    """The examples are what users copy: each must run unchanged on AWS Batch. Only staging,
    which AWS has no field for, is left out (with a warning)."""
    document = jobdef.read_document(path)
    assert definition_problems(jobdef.parse_document(document, str(path))) == []
    plan = build_plan([(str(path), document)], CloudSettings())
    assert [obj.request for obj in plan.objects] == [request_from_document(document)]
    staging = [key for key in ("inputs", "outputs") if key in document]
    assert [w.split(": ")[1] for w in plan.warnings] == staging
