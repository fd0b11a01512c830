"""The audit log: what the writer appends and rotates (fake clock), that a failing write never
reaches the caller, and which requests ``Api.handle`` records (changes, refused or not; never
reads) with who, what, outcome and no secrets."""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]
from typer.testing import CliRunner

from localbatch import api_credentials
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.dispatch import READ_OPERATIONS
from localbatch.api.errors import client_error
from localbatch.api.principal import daemon_owner
from localbatch.api.server import Api, ApiRequest, TcpApiServer
from localbatch.audit import AuditLog, iso_time, read_entries, rotated_path
from localbatch.cli import app
from tests.unit.test_api_server import FAST_POLL_S, SUPPORTED, WAIT_S, FakeDispatcher

T0 = 1_795_000_000.0  # 2026-11-18T...


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_entries_are_appended_as_json_lines_with_the_time_first(tmp_path):
    clock = Clock()
    log = AuditLog(tmp_path / "audit.log", clock=clock)
    log.record({"operation": "SubmitJob", "outcome": "ok"})
    clock.now += 1.5
    log.record({"operation": "CancelJob", "outcome": "ClientException", "message": "x" * 2000})
    first, second = lines(tmp_path / "audit.log")
    assert first == {"time": iso_time(T0), "operation": "SubmitJob", "outcome": "ok"}
    assert list(first)[0] == "time" and first["time"].endswith("Z") and "T" in first["time"]
    assert second["time"] == iso_time(T0 + 1.5)
    assert len(second["message"]) == 500
    assert stat.S_IMODE((tmp_path / "audit.log").stat().st_mode) == 0o600
    assert [e["operation"] for e in read_entries(tmp_path / "audit.log")] == ["SubmitJob", "CancelJob"]


def test_iso_time_is_utc_with_milliseconds():
    assert iso_time(0.25) == "1970-01-01T00:00:00.250Z"


def test_at_the_cap_the_file_moves_aside_and_reading_spans_both(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(path, max_bytes=300, clock=Clock())
    for i in range(10):
        log.record({"operation": "SubmitJob", "n": i, "pad": "p" * 40})
    assert path.stat().st_size <= 300
    assert rotated_path(path).exists()
    numbers = [e["n"] for e in read_entries(path)]
    assert numbers == sorted(numbers) and numbers[-1] == 9
    assert not (tmp_path / "audit.log.2").exists()  # one generation kept


def test_a_failing_write_is_counted_and_logged_once_never_raised(tmp_path, caplog):
    log = AuditLog(tmp_path / "missing-dir" / "audit.log", clock=Clock())
    for _ in range(3):
        log.record({"operation": "SubmitJob"})
    assert log.failures == 3
    assert sum("cannot write the audit log" in r.message for r in caplog.records) == 1


def test_a_torn_line_is_skipped_when_reading(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text('{"operation":"A"}\n{"operat')
    assert [e["operation"] for e in read_entries(path)] == ["A"]


# -- what Api.handle records ---------------------------------------------------------------


def request(operation_path: str, body: dict[str, Any], **headers: str) -> ApiRequest:
    return ApiRequest(
        "POST", operation_path, headers, json.dumps(body).encode(), transport="tcp", address="127.0.0.1:5555"
    )


@pytest.fixture
def audited() -> tuple[Api, FakeDispatcher, list[dict[str, Any]]]:
    dispatcher = FakeDispatcher()
    api = Api(dispatcher, supported=SUPPORTED)
    entries: list[dict[str, Any]] = []
    api.set_audit(entries.append, READ_OPERATIONS)
    return api, dispatcher, entries


def test_an_accepted_and_a_refused_submit_are_recorded_and_a_read_is_not(audited):
    api, dispatcher, entries = audited
    body = {"jobName": "render", "jobQueue": "default", "jobDefinition": "render:1"}
    assert api.handle(request("/v1/submitjob", {**body, "containerOverrides": {"environment": []}})).status == 200
    dispatcher.raises["SubmitJob"] = client_error("job queue nope does not exist")
    assert api.handle(request("/v1/submitjob", {**body, "jobQueue": "nope"})).status == 400
    assert api.handle(request("/v1/describejobs", {"jobs": ["job-1"]})).status == 200
    assert api.handle(request("/v1/submitjob", {"jobName": "x"})).status == 400  # invalid: refused by the model
    ok, refused, invalid = entries
    assert ok["operation"] == "SubmitJob" and ok["outcome"] == "ok" and ok["status"] == 200
    assert ok["principal"] == daemon_owner()
    assert ok["transport"] == "tcp" and ok["peer"] == "127.0.0.1:5555"
    assert ok["target"] == {
        "jobName": "render",
        "jobDefinition": "render:1",
        "jobQueue": "default",
        "jobId": "job-1",
        "jobArn": "arn:aws:batch:::job/job-1",
    }
    assert "containerOverrides" not in json.dumps(ok)  # the body is not copied
    assert ok["duration_ms"] >= 0 and ok["request_id"]
    assert refused["outcome"] == "ClientException" and refused["status"] == 400
    assert refused["message"] == "job queue nope does not exist"
    assert refused["target"]["jobQueue"] == "nope"
    assert invalid["operation"] == "SubmitJob" and invalid["outcome"] == "ClientException"


def test_extension_writes_are_recorded_and_reads_are_not(audited):
    api, _, entries = audited
    api.add_extension("POST", "/v1/localbatch/interrupt", lambda q, b: {"jobId": b.get("jobId", "")})
    api.add_extension("GET", "/v1/localbatch/status", lambda q, b: {})
    api.handle(ApiRequest("GET", "/v1/localbatch/status", {}, b""))
    api.handle(ApiRequest("POST", "/v1/localbatch/interrupt", {}, b'{"jobId":"j-9"}'))
    api.handle(ApiRequest("DELETE", "/v1/localbatch/status", {}, b""))  # refused: 405, still recorded
    (interrupt, refused) = entries
    assert interrupt["operation"] == "/v1/localbatch/interrupt" and interrupt["target"] == {"jobId": "j-9"}
    assert interrupt["transport"] == "socket"
    assert refused["status"] == 405 and refused["outcome"] == "ClientException"


def test_an_unsigned_request_is_recorded_as_refused_with_its_key_id_and_never_the_signature(tmp_path):
    keyring = api_credentials.ensure_keyring(tmp_path)
    key = keyring.keys[0]
    dispatcher = FakeDispatcher()
    entries: list[dict[str, Any]] = []
    base = Api(dispatcher, supported=SUPPORTED)
    base.set_audit(entries.append, READ_OPERATIONS)
    api = base.with_authenticator(sigv4_authenticator(tmp_path))
    body = json.dumps({"jobName": "r", "jobQueue": "default", "jobDefinition": "render:1"}).encode()

    def signed(secret: str) -> ApiRequest:
        aws = AWSRequest("POST", "http://127.0.0.1:8750/v1/submitjob", data=body, headers={"Host": "127.0.0.1:8750"})
        SigV4Auth(Credentials(key.access_key_id, secret), "batch", "us-east-1").add_auth(aws)
        headers = {name.lower(): value for name, value in aws.headers.items()}
        return ApiRequest("POST", "/v1/submitjob", headers, body, transport="tcp", address="127.0.0.1:1")

    assert api.handle(signed("wrong-secret")).status == 403
    assert api.handle(signed(key.secret_access_key)).status == 200
    refused, ok = entries
    assert refused["operation"] == "SubmitJob" and refused["outcome"] == "InvalidSignatureException"
    assert refused["principal"] is None and refused["access_key_id"] == key.access_key_id
    assert ok["principal"] == "owner" and ok["outcome"] == "ok"
    text = json.dumps(entries)
    assert key.secret_access_key not in text and "Signature=" not in text


# -- localbatch audit ----------------------------------------------------------------------


def test_the_cli_filters_and_prints_the_file_without_a_daemon(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    log = AuditLog(home / "audit.log", clock=Clock())
    log.record({"principal": "alice", "operation": "SubmitJob", "target": {"jobName": "a"}, "outcome": "ok"})
    log.record({"principal": "bob", "operation": "CancelJob", "outcome": "ClientException", "message": "no job"})
    log.record({"principal": "alice", "operation": "CancelJob", "outcome": "ok"})
    env = {"LOCALBATCH_HOME": str(home), "LOCALBATCH_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")

    def run(*args: str) -> list[dict[str, Any]]:
        result = CliRunner().invoke(app, ["audit", "--json", *args], env=env)
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    assert [e["principal"] for e in run()] == ["alice", "bob", "alice"]
    assert [e["operation"] for e in run("--principal", "alice")] == ["SubmitJob", "CancelJob"]
    assert [e["principal"] for e in run("--operation", "canceljob")] == ["bob", "alice"]
    assert [e["principal"] for e in run("-n", "1")] == ["alice"]
    assert run("--since", "2026-12-01T00:00:00Z") == []
    table = CliRunner().invoke(app, ["audit"], env={**env, "COLUMNS": "200"})
    assert table.exit_code == 0 and "ClientException: no job" in table.output


def test_the_cli_shows_what_callers_sent_never_obeys_it_and_names_an_unreadable_log(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    log = AuditLog(home / "audit.log", clock=Clock())
    log.record(
        {"principal": "eve", "operation": "CancelJob", "target": {"jobId": "[/]\x1b]0;pwned\x07"}, "outcome": "ok"}
    )
    env = {"LOCALBATCH_HOME": str(home), "LOCALBATCH_CONFIG": "", "COLUMNS": "200"}
    table = CliRunner().invoke(app, ["audit"], env=env)
    assert table.exit_code == 0, table.output
    assert "[/]\\x1b]0;pwned\\x07" in table.output and "\x1b" not in table.output
    (home / "audit.log").unlink()
    (home / "audit.log").mkdir()  # as unreadable as another user's 0600 file is (tests run as root)
    refused = CliRunner().invoke(app, ["audit"], env=env)
    assert refused.exit_code == 2 and f"cannot read the audit log {home / 'audit.log'}" in refused.stderr


def test_a_failing_sink_never_breaks_the_request(tmp_path):
    dispatcher = FakeDispatcher()
    api = Api(dispatcher, supported=SUPPORTED)
    log = AuditLog(tmp_path / "gone" / "audit.log")  # its directory does not exist: every write fails

    def sink(entry: dict[str, Any]) -> None:
        log.record(entry)
        raise RuntimeError("a sink that raises")

    api.set_audit(sink, READ_OPERATIONS)
    body = {"jobName": "r", "jobQueue": "default", "jobDefinition": "render:1"}
    assert api.handle(request("/v1/submitjob", body)).status == 200
    assert log.failures == 1 and len(dispatcher.calls) == 1


def test_a_write_refused_by_the_transport_is_recorded_too(tmp_path):
    """A SubmitJob whose body is over the limit never reaches ``handle``: still audited."""
    api = Api(FakeDispatcher(), supported=SUPPORTED)
    entries: list[dict[str, Any]] = []
    api.set_audit(entries.append, READ_OPERATIONS)
    server = TcpApiServer(("127.0.0.1", 0), api, poll_interval_s=FAST_POLL_S)
    server.start()
    try:
        with socket.create_connection(server.address, timeout=WAIT_S) as raw:
            raw.sendall(f"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nContent-Length: {9 * 2**20}\r\n\r\n".encode())
            assert raw.recv(65536).startswith(b"HTTP/1.1 413 ")
    finally:
        server.shutdown(timeout_s=WAIT_S)
    (entry,) = entries
    assert entry["operation"] == "SubmitJob" and entry["status"] == 413 and entry["transport"] == "tcp"
