"""Fuzzing the TOML loaders (issue 10): the job definition loader, ``localbatch validate`` and the
config file. Any bytes, any text, and real documents with values, keys and nesting changed at
random: always a definition, or one clean error naming the file (``JobDefinitionError`` /
``ConfigError``, exit 2 with no traceback from the CLI); never another exception.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from localbatch import config, jobdef, toml_input
from localbatch.cli import app
from localbatch.errors import ConfigError, JobDefinitionError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "jobdefs").glob("*.toml"))
DOCUMENTS = [jobdef.read_document(path) for path in EXAMPLES]
CONFIG: dict[str, Any] = {
    "region": "us-east-1",
    "host": {"reserve_vcpus": 0, "reserve_memory_mib": 0},
    "compute_environments": [{"name": "local", "max_vcpus": 2, "max_memory_mib": 1024, "gpus": ["0"]}],
    "job_queues": [{"name": "default", "priority": 1, "compute_environments": ["local"]}],
    "store": {"endpoint": "http://127.0.0.1:9000"},
    "api": {"listen": "127.0.0.1:8080"},
}
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

keys = st.one_of(
    st.sampled_from(["name", "image", "command", "resources", "vcpus", "memory_mib", "retry", "attempts", "type"]),
    st.text(max_size=12),
    st.sampled_from(["AWS_BATCH_JOB_ID", "../x", "\u0000", "é" * 50, "x" * 5000]),
)
scalars = st.one_of(
    st.none(),  # dropped by the writer: the key goes missing
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, -(2**63)]),
    st.floats(),  # NaN and infinities included: TOML has nan and inf
    st.text(max_size=20),
    st.sampled_from(["", "x" * 70_000, "Ref::x", "s3://b/../../etc", "/etc/passwd", "\u202e", "\x1b[2J"]),
    st.datetimes(),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10,
)


def _places(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside ``value``, the root included."""
    found = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _places(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _places(child, (*at, index))
    return found


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a few values replaced, keys added or removed, or nesting made deep."""
    document: Any = _copy(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_places(document)))
        parent: Any = document
        for step in path[:-1]:
            parent = parent[step]
        change = draw(st.sampled_from(["replace", "add", "delete", "deep"]))
        if not path:
            if isinstance(document, dict):
                document[draw(keys)] = draw(values)
            continue
        if change == "replace" or (change == "delete" and isinstance(parent, list)):
            parent[path[-1]] = draw(values)
        elif change == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(keys)] = draw(values)
        elif change == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = _nested(draw(st.sampled_from([3, 31, 40, 600])))
    return document if isinstance(document, dict) else {"x": document}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _toml(document: dict[str, Any]) -> bytes | None:
    """The document as TOML, or None where the writer has no way to say it (None, mixed arrays)."""
    try:
        return tomli_w.dumps(_without_none(document)).encode()
    except (TypeError, ValueError, RecursionError):
        return None


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value


raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    st.sampled_from(
        [
            b"x = " + b"[" * 5000 + b"]" * 5000,
            b"x = " + b"{a=" * 3000 + b"1" + b"}" * 3000,
            b"a" + b".a" * 2000 + b" = 1",
            b"[" + b"a." * 2000 + b"a]",
            b'name = "\xff\xfe"',
            b"\xef\xbb\xbfname = 'bom'",
            b"x = 1" + b" " * toml_input.MAX_FILE_BYTES,
            b"x = nan\ny = inf\nz = -inf",
            b"x = 99999999999999999999999999999999999",
            b"x = 1979-05-27T07:32:00Z",
            b"\x00",
        ]
    ),
)
definition_files = st.one_of(raw_bytes, st.sampled_from(DOCUMENTS).flatmap(mutated).map(_toml))
config_files = st.one_of(raw_bytes, mutated(CONFIG).map(_toml))


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path


@FUZZ
@given(data=definition_files)
def test_any_definition_file_loads_or_is_one_clean_error_naming_the_file(scratch: Path, data: bytes | None) -> None:
    path = scratch / "job.toml"
    path.write_bytes(data or b"")
    try:
        definition = jobdef.load_file(path)
    except JobDefinitionError as exc:
        assert exc.problems
        assert all(line.startswith(f"{path}: ") for line in str(exc).splitlines() if line and line[0] != " ")
    else:
        assert definition.name
        assert all(math.isfinite(x) for x in (definition.container.resources.vcpus,))


@FUZZ
@given(data=config_files)
def test_any_config_file_resolves_or_is_one_config_error_naming_the_file(scratch: Path, data: bytes | None) -> None:
    path = scratch / "localbatch.toml"
    path.write_bytes(data or b"")
    env = {"HOME": str(scratch), "LOCALBATCH_HOME": str(scratch / "home"), "LOCALBATCH_CONFIG": str(path)}
    try:
        config.resolve(env, scratch)
    except ConfigError as exc:
        assert str(path) in str(exc)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=definition_files)
def test_validate_answers_any_file_with_exit_0_or_2_and_no_traceback(scratch: Path, data: bytes | None) -> None:
    path = scratch / "job.toml"
    path.write_bytes(data or b"")
    env = {"LOCALBATCH_HOME": str(scratch / "home"), "LOCALBATCH_CONFIG": "", "COLUMNS": "200"}
    result = CliRunner().invoke(app, ["validate", str(path)], env=env)
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert str(path) in result.output.replace("\n", "")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"x = " + b"[" * 5000 + b"]" * 5000, "nested deeper than the limit of 32"),
        (b"a" + b".a" * 40 + b" = 1", "nested deeper than the limit of 32"),
        (b"x = 1" + b" " * toml_input.MAX_FILE_BYTES, "larger than the limit of 1048576 bytes (1 MiB)"),
        (b'name = "\xff"', "not UTF-8 text (byte 8)"),
    ],
)
def test_files_beyond_the_limits_are_refused_naming_the_file_and_the_limit(
    scratch: Path, data: bytes, expected: str
) -> None:
    path = scratch / "job.toml"
    path.write_bytes(data)
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(path)
    assert str(caught.value) == f"{path}: {caught.value.problems[0]}"
    assert expected in str(caught.value)
    (scratch / "localbatch.toml").write_bytes(data)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")) as refused:
        config.resolve({"HOME": str(scratch), "LOCALBATCH_HOME": str(scratch / "home")}, scratch)
    assert str(refused.value).startswith(f"{scratch / 'localbatch.toml'}: ")
