"""The API server on a real Unix socket in tmp_path, with a fake dispatcher, and DaemonClient.

No container engine is involved: the dispatcher is a fake, so these run with the unit tests.
Responses are checked the way boto3 sees them, with botocore's own RestJSONParser on the raw
bytes. Nothing here asserts on speed (benchmarks/bench_api.py measures throughput); the time
bounds below only keep a broken server from hanging the suite.
"""

from __future__ import annotations

import grp
import http.client
import json
import logging
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import HeadersDict, prepare_request_dict  # type: ignore[import-untyped]
from botocore.parsers import RestJSONParser  # type: ignore[import-untyped]
from botocore.serialize import create_serializer  # type: ignore[import-untyped]

from localbatch.api import server as server_module
from localbatch.api.errors import ApiError, client_error, server_error, to_api_error, unsupported_operation
from localbatch.api.principal import UNKNOWN_PEER, current_principal, daemon_owner
from localbatch.api.server import Api, ApiRequest, ApiServer, ApiServerError
from localbatch.awsbatch.model import service_model
from localbatch.client import DaemonClient, DaemonError, DaemonUnreachable, RequestRejected
from localbatch.errors import (
    ConfigError,
    ImageError,
    InvalidRequest,
    InvalidTransition,
    JobDefinitionError,
    JobNotFound,
    Problem,
    RuntimeUnavailable,
    StateStoreError,
    UsageError,
)

WAIT_S = 10  # bound on every wait below; each takes milliseconds when things work
FAST_POLL_S = 0.02  # how soon shutdown() is noticed; the default suits a daemon, not a test
ARN = "arn:aws:batch:us-east-1:123456789012:job-queue/my-q"
SUBMIT = {"jobName": "render", "jobQueue": "default", "jobDefinition": "render:1"}
SUPPORTED = {
    "SubmitJob",
    "DescribeJobs",
    "ListJobs",
    "CancelJobs",
    "DescribeJobQueues",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "TerminateJob",
}


class FakeDispatcher:
    """Records calls and the principal of each; answers SubmitJob, raises what ``raises`` maps
    an operation to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.principals: list[str | None] = []
        self.raises: dict[str, Exception] = {}
        self.lock = threading.Lock()

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append((operation, body))
            self.principals.append(current_principal())
        if operation in self.raises:
            raise self.raises[operation]
        if operation == "SubmitJob":
            return {"jobId": "job-1", "jobName": body["jobName"], "jobArn": "arn:aws:batch:::job/job-1"}
        if operation == "ListTagsForResource":
            return {"tags": {"team": "render"}}
        return {}


@pytest.fixture
def dispatcher() -> FakeDispatcher:
    return FakeDispatcher()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "api.sock"


@pytest.fixture
def server(sock: Path, dispatcher: FakeDispatcher) -> Iterator[ApiServer]:
    api_server = ApiServer(sock, dispatcher, supported=SUPPORTED, poll_interval_s=FAST_POLL_S)
    api_server.start()
    yield api_server
    api_server.shutdown(timeout_s=WAIT_S)


@pytest.fixture
def client(server: ApiServer) -> Iterator[DaemonClient]:
    with DaemonClient(server.socket_path, timeout_s=WAIT_S) as daemon_client:
        yield daemon_client


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=WAIT_S)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT_S)
        self.sock.connect(self.path)


class Raw:
    """One raw HTTP exchange: what botocore's parser gets from the wire."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = HeadersDict(response.getheaders())
        self.body = response.read()

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def parsed(self, operation: str) -> dict[str, Any]:
        """The response as boto3 would return it (or put it in ClientError.response)."""
        shape = service_model().operation_model(operation).output_shape
        raw = {"status_code": self.status, "headers": self.headers, "body": self.body}
        return RestJSONParser().parse(raw, shape)  # type: ignore[no-any-return]


def send(sock: Path, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Raw:
    connection = UnixHTTPConnection(sock)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        return Raw(connection.getresponse())
    finally:
        connection.close()


def send_as_botocore(sock: Path, operation: str, params: dict[str, Any]) -> Raw:
    """Send ``params`` exactly as botocore serializes them (no client-side validation)."""
    serializer = create_serializer("rest-json", include_validation=False)
    request = serializer.serialize_to_request(params, service_model().operation_model(operation))
    prepare_request_dict(request, "http://localhost")
    url = urlsplit(request["url"])
    target = f"{url.path}?{url.query}" if url.query else url.path
    return send(sock, request["method"], target, request["body"] or None, dict(request["headers"]))


def send_raw_bytes(sock: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw_sock:
        raw_sock.settimeout(WAIT_S)
        raw_sock.connect(str(sock))
        raw_sock.sendall(data)
        chunks = []
        while chunk := raw_sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def stale_socket_file(path: Path) -> None:
    """A socket file whose listener is gone (a daemon that was killed)."""
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


# --- the socket -----------------------------------------------------------------------------


def test_the_socket_file_is_mode_0600_and_removed_on_shutdown(sock, dispatcher):
    api_server = ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S)
    api_server.start()
    try:
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    finally:
        api_server.shutdown()
    assert not sock.exists()
    api_server.shutdown()  # idempotent


def test_with_a_group_the_socket_is_mode_0660_in_that_group(sock, dispatcher):
    group = grp.getgrgid(os.getgid()).gr_name
    with ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S, group=group):
        info = os.stat(sock)
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, os.getgid())
    with pytest.raises(ApiServerError, match="policy.socket_group: this host has no group named 'no-such-group-x'"):
        ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S, group="no-such-group-x").start()


def test_a_request_on_the_socket_is_handled_as_its_peers_os_user(sock):
    seen: list[str | None] = []

    class Recorder:
        def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
            seen.append(current_principal())
            return {"jobSummaryList": []}

    with ApiServer(sock, Recorder(), poll_interval_s=FAST_POLL_S), DaemonClient(sock) as daemon_client:
        daemon_client.call("ListJobs", {"jobQueue": "default"})
    assert seen == [daemon_owner()]


def test_a_stale_socket_file_is_replaced(sock, dispatcher):
    stale_socket_file(sock)
    with ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S), DaemonClient(sock) as daemon_client:
        assert daemon_client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"


def test_a_live_socket_or_another_file_is_never_taken_over(server, sock, dispatcher, tmp_path):
    with pytest.raises(ApiServerError, match="another server is listening"):
        ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S).start()
    with DaemonClient(sock) as daemon_client:
        assert daemon_client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"  # still serving
    regular = tmp_path / "file.sock"
    regular.write_text("precious")
    with pytest.raises(ApiServerError, match="not a socket"):
        ApiServer(regular, dispatcher, poll_interval_s=FAST_POLL_S).start()
    assert regular.read_text() == "precious"


def test_an_over_long_socket_path_is_a_clear_error(tmp_path, dispatcher):
    with pytest.raises(ApiServerError, match="socket path too long"):
        ApiServer(tmp_path / ("x" * 120), dispatcher, poll_interval_s=FAST_POLL_S).start()


def test_a_missing_directory_is_a_clear_error(tmp_path, dispatcher):
    with pytest.raises(ApiServerError, match="cannot listen on"):
        ApiServer(tmp_path / "missing" / "api.sock", dispatcher, poll_interval_s=FAST_POLL_S).start()


# --- AWS Batch operations -------------------------------------------------------------------


def test_submit_job_round_trip_through_the_client(client, dispatcher):
    answer = client.call("SubmitJob", {**SUBMIT, "parameters": {"frame": "7"}})
    assert answer == {"jobId": "job-1", "jobName": "render", "jobArn": "arn:aws:batch:::job/job-1"}
    assert dispatcher.calls == [("SubmitJob", {**SUBMIT, "parameters": {"frame": "7"}})]


def test_success_responses_parse_as_boto3_sees_them(server, sock):
    raw = send_as_botocore(sock, "SubmitJob", SUBMIT)
    assert raw.status == 200
    assert raw.headers["Content-Type"] == "application/json"
    parsed = raw.parsed("SubmitJob")
    assert parsed["jobId"] == "job-1"
    assert parsed["ResponseMetadata"]["RequestId"] == raw.headers["x-amzn-RequestId"]
    assert len(raw.headers["x-amzn-RequestId"]) == 36  # a uuid


def test_empty_output_is_an_empty_object(server, sock):
    raw = send_as_botocore(sock, "TerminateJob", {"jobId": "j", "reason": "stop"})
    assert (raw.status, raw.body) == (200, b"{}")


def test_an_empty_body_is_an_empty_object(server, sock, dispatcher):
    assert send(sock, "POST", "/v1/describejobqueues", b"").status == 200
    assert send(sock, "POST", "/v1/describejobqueues").status == 200
    assert dispatcher.calls == [("DescribeJobQueues", {}), ("DescribeJobQueues", {})]
    raw = send(sock, "POST", "/v1/canceljobs", b"")  # {} is then validated like any body
    assert raw.status == 400
    assert "jobs: required" in raw.json["message"] and "reason: required" in raw.json["message"]


def test_tag_operations_through_botocore_serialization(server, sock, dispatcher):
    assert send_as_botocore(sock, "TagResource", {"resourceArn": ARN, "tags": {"a": "b"}}).status == 200
    listed = send_as_botocore(sock, "ListTagsForResource", {"resourceArn": ARN})
    assert listed.parsed("ListTagsForResource")["tags"] == {"team": "render"}
    untag = send_as_botocore(sock, "UntagResource", {"resourceArn": ARN, "tagKeys": ["a", "b c"]})
    assert untag.status == 200
    assert dispatcher.calls == [
        ("TagResource", {"resourceArn": ARN, "tags": {"a": "b"}}),
        ("ListTagsForResource", {"resourceArn": ARN}),
        ("UntagResource", {"resourceArn": ARN, "tagKeys": ["a", "b c"]}),
    ]


def test_tag_operations_through_the_client(client, dispatcher):
    client.call("TagResource", {"resourceArn": ARN, "tags": {"a": "b"}})
    assert client.call("ListTagsForResource", {"resourceArn": ARN}) == {"tags": {"team": "render"}}
    client.call("UntagResource", {"resourceArn": ARN, "tagKeys": ["a", "b/c"]})
    assert dispatcher.calls[-1] == ("UntagResource", {"resourceArn": ARN, "tagKeys": ["a", "b/c"]})


# --- bad requests ---------------------------------------------------------------------------


def test_validation_lists_every_bad_field_with_its_path(server, sock, dispatcher):
    body = {
        "jobName": 7,
        "jobQueu": "default",
        "containerOverrides": {"vcpus": "two", "environment": [{"nam": "A"}]},
    }
    raw = send(sock, "POST", "/v1/submitjob", json.dumps(body).encode())
    assert raw.status == 400
    message = raw.json["message"]
    assert message.startswith("invalid SubmitJob request (6 problems):")
    for expected in (
        "jobQueue: required by AWS Batch, but missing",
        "jobDefinition: required by AWS Batch, but missing",
        "jobQueu: unknown key 'jobQueu'",
        "did you mean 'jobQueue'?",
        "jobName: expected a string, got an integer 7",
        "containerOverrides.vcpus: expected an integer",
        "containerOverrides.environment[0].nam: unknown key 'nam'",
    ):
        assert expected in message
    assert dispatcher.calls == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object, not list"),
        (b'"text"', "request body must be a JSON object, not str"),
        (b"\xff\xfe{", "request body is not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_client_exception(server, sock, dispatcher, body, expected):
    raw = send(sock, "POST", "/v1/submitjob", body)
    assert raw.status == 400
    assert raw.json["__type"] == "ClientException"
    assert expected in raw.json["message"]
    assert dispatcher.calls == []


def test_an_unknown_path_is_a_404_client_exception(server, sock):
    raw = send(sock, "POST", "/v1/nosuchthing", b"{}")
    assert raw.status == 404
    assert raw.parsed("SubmitJob")["Error"] == {
        "Code": "ClientException",
        "Message": "no AWS Batch operation at '/v1/nosuchthing'",
    }
    assert send(sock, "GET", "/v1/submitjob").status == 405


def test_an_operation_localbatch_does_not_implement_is_named(server, sock, dispatcher):
    raw = send(sock, "POST", "/v1/createquotashare", b'{"bogus": 1}')  # not validated: refused first
    assert raw.status == 400
    assert raw.json == {
        "__type": "ClientException",
        "message": "localbatch does not support CreateQuotaShare",
    }
    assert dispatcher.calls == []


def test_a_dispatcher_may_refuse_an_operation_itself(sock, dispatcher):
    dispatcher.raises["SubmitJob"] = unsupported_operation("SubmitJob")
    with (
        ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S),
        DaemonClient(sock) as daemon_client,
    ):  # no `supported` set
        with pytest.raises(RequestRejected, match="^localbatch does not support SubmitJob$"):
            daemon_client.call("SubmitJob", SUBMIT)


def test_supported_must_name_model_operations(dispatcher):
    with pytest.raises(ValueError, match="SubmitJobs"):
        Api(dispatcher, supported={"SubmitJobs"})


def test_a_client_error_parses_as_boto3_client_exception(server, sock, dispatcher):
    dispatcher.raises["DescribeJobs"] = JobNotFound("nope")
    raw = send_as_botocore(sock, "DescribeJobs", {"jobs": ["nope"]})
    assert raw.status == 400
    assert raw.headers["x-amzn-ErrorType"] == "ClientException"
    assert raw.json == {"__type": "ClientException", "message": "job 'nope' does not exist"}
    parsed = raw.parsed("DescribeJobs")
    assert parsed["Error"] == {"Code": "ClientException", "Message": "job 'nope' does not exist"}
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert parsed["ResponseMetadata"]["RequestId"] == raw.headers["x-amzn-RequestId"]


def test_a_server_fault_is_a_server_exception_that_leaks_nothing(server, sock, dispatcher, caplog):
    dispatcher.raises["ListJobs"] = KeyError("secret-internal-detail")
    with caplog.at_level(logging.ERROR, logger="localbatch.api"):
        raw = send_as_botocore(sock, "ListJobs", {"jobQueue": "default"})
    assert raw.status == 500
    parsed = raw.parsed("ListJobs")
    assert parsed["Error"]["Code"] == "ServerException"
    request_id = raw.headers["x-amzn-RequestId"]
    assert parsed["Error"]["Message"] == (f"internal error (request id {request_id}); the daemon's log has the details")
    assert "secret" not in raw.body.decode()
    [record] = [r for r in caplog.records if r.exc_info]
    assert request_id in record.getMessage()
    assert "secret-internal-detail" in caplog.text  # the traceback stays on the server


def test_malformed_http_gets_the_aws_error_shape(server, sock):
    answer = send_raw_bytes(sock, b"NONSENSE\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"x-amzn-ErrorType: ClientException" in head
    assert b"x-amzn-RequestId: " in head
    assert json.loads(body)["__type"] == "ClientException"


def test_an_unsupported_http_method_gets_the_aws_error_shape(server, sock):
    raw = send(sock, "OPTIONS", "/v1/submitjob")
    assert raw.status == 405  # the client's fault: not http.server's 501, which AWS clients retry
    assert raw.json == {
        "__type": "ClientException",
        "message": "method 'OPTIONS' is not allowed; use GET, POST, PUT or DELETE",
    }


def test_an_oversized_body_is_refused_unread(sock, dispatcher):
    with ApiServer(sock, dispatcher, max_body_bytes=1000, poll_interval_s=FAST_POLL_S):
        # Only the headers go out: the server must answer without waiting for the body (a
        # client that went on sending would race the server's close and see a broken pipe).
        answer = send_raw_bytes(sock, b"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"request body of 2000 bytes is over the limit of 1000 bytes" in answer
    assert dispatcher.calls == []


def test_a_chunked_request_body_is_refused(server, sock):
    answer = send_raw_bytes(
        sock,
        b"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"Connection: close" in answer


# --- error mapping (the one place errors become statuses) ----------------------------------


@pytest.mark.parametrize(
    "error",
    [
        JobNotFound("j-1"),
        InvalidRequest([Problem("jobQueue", "queue 'q' is DISABLED")]),
        UsageError("bad flag"),
        JobDefinitionError("render.toml", [Problem("image", "required")]),
        InvalidTransition("j-1", "SUCCEEDED", "RUNNING"),
        ImageError("nope:1", "not found"),
    ],
)
def test_input_errors_map_to_client_exception_with_their_message(error):
    api_error = to_api_error(error, request_id="r")
    assert (api_error.code, api_error.status, api_error.message) == ("ClientException", 400, str(error))


@pytest.mark.parametrize(
    ("error", "what"),
    [
        (StateStoreError("disk I/O error at /secret/path"), "the state store failed"),
        (RuntimeUnavailable("unix:///secret.sock refused"), "the container engine does not answer"),
        (ConfigError("bad /secret/config"), "internal error"),
        (ZeroDivisionError("secret"), "internal error"),
    ],
)
def test_faults_map_to_server_exception_without_their_details(error, what, caplog):
    with caplog.at_level(logging.ERROR):
        api_error = to_api_error(error, request_id="r-1")
    assert (api_error.code, api_error.status) == ("ServerException", 500)
    assert api_error.message == f"{what} (request id r-1); the daemon's log has the details"
    assert "secret" not in api_error.message
    assert caplog.records[-1].exc_info is not None


def test_api_errors_pass_through():
    error = client_error("gone", 404)
    assert to_api_error(error) is error
    assert (server_error("x").code, server_error("x").status) == ("ServerException", 500)
    assert isinstance(unsupported_operation("X"), ApiError)


# --- keep-alive, concurrency, shutdown ------------------------------------------------------


def test_keep_alive_serves_many_calls_on_one_connection(server, sock, dispatcher):
    connection = UnixHTTPConnection(sock)
    try:
        connection.connect()
        first = connection.sock
        for i in range(200):
            body = json.dumps({**SUBMIT, "jobName": f"j{i}"}).encode()
            connection.request("POST", "/v1/submitjob", body=body)
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") is None
            assert json.loads(response.read())["jobName"] == f"j{i}"
            assert connection.sock is first
    finally:
        connection.close()
    assert len(dispatcher.calls) == 200


def test_the_client_keeps_one_connection(client):
    client.call("SubmitJob", SUBMIT)
    first = client._connection
    assert first is not None and first.sock is not None
    for _ in range(50):
        client.call("SubmitJob", SUBMIT)
    assert client._connection is first


def test_the_client_reconnects_once_when_the_daemon_closed_its_connection(sock, dispatcher):
    with DaemonClient(sock, timeout_s=WAIT_S) as daemon_client:
        with ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S):
            daemon_client.call("SubmitJob", SUBMIT)
        with ApiServer(
            sock, dispatcher, poll_interval_s=FAST_POLL_S
        ):  # a restarted daemon: the kept connection is dead
            assert daemon_client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"
    assert len(dispatcher.calls) == 2


def test_concurrent_clients(server, dispatcher):
    def work(worker: int) -> list[str]:
        with DaemonClient(server.socket_path, timeout_s=WAIT_S) as own:
            return [own.call("SubmitJob", {**SUBMIT, "jobName": f"w{worker}-{i}"})["jobName"] for i in range(50)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[f"w{w}-{i}" for i in range(50)] for w in range(8)]
    assert len(dispatcher.calls) == 400


def test_one_client_shared_by_threads(client, dispatcher):
    def work(worker: int) -> list[str]:
        return [client.call("SubmitJob", {**SUBMIT, "jobName": f"w{worker}-{i}"})["jobName"] for i in range(50)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert results == [[f"w{w}-{i}" for i in range(50)] for w in range(8)]


def test_shutdown_closes_idle_keep_alive_connections_and_lets_a_busy_request_answer(sock, dispatcher):
    entered, release = threading.Event(), threading.Event()

    class Slow(FakeDispatcher):
        def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
            if body.get("jobName") == "slow":
                entered.set()
                assert release.wait(WAIT_S)
            return super().handle(operation, body)

    api_server = ApiServer(sock, Slow(), poll_interval_s=FAST_POLL_S)
    api_server.start()
    with (
        DaemonClient(sock, timeout_s=WAIT_S) as idle,
        DaemonClient(sock, timeout_s=WAIT_S) as other,
        ThreadPoolExecutor(1) as pool,
    ):
        idle.call("SubmitJob", SUBMIT)  # leaves an idle keep-alive connection behind
        busy = pool.submit(other.call, "SubmitJob", {**SUBMIT, "jobName": "slow"})
        assert entered.wait(WAIT_S)
        threading.Timer(0.2, release.set).start()
        started = time.monotonic()
        api_server.shutdown(timeout_s=WAIT_S)
        assert time.monotonic() - started < WAIT_S
        assert busy.result(WAIT_S)["jobName"] == "slow"
        with pytest.raises(DaemonUnreachable):
            idle.call("SubmitJob", SUBMIT)


def test_a_request_may_stop_the_server_it_runs_on(sock, dispatcher):
    api_server = ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S)

    def stop(query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        api_server.shutdown(timeout_s=WAIT_S)
        return {"stopping": True}

    api_server.add_extension("POST", "/v1/localbatch/stop", stop)
    api_server.start()
    with DaemonClient(sock, timeout_s=WAIT_S) as daemon_client:
        assert daemon_client.request("POST", "/v1/localbatch/stop") == {"stopping": True}
        with pytest.raises(DaemonUnreachable):
            daemon_client.call("SubmitJob", SUBMIT)
    assert not sock.exists()


# --- extensions and streaming ---------------------------------------------------------------


def test_json_extensions_get_query_params_and_body(server, client):
    seen: list[tuple[dict[str, str], dict[str, Any]]] = []

    def resources(query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        seen.append((query, body))
        return {"gpus": [{"id": 0, "holder": None}]}

    server.add_extension("GET", "/v1/localbatch/resources", resources)
    server.add_extension("POST", "/v1/localbatch/echo", lambda query, body: {"body": body})
    assert client.get("/v1/localbatch/resources", {"ce": "local", "all": True}) == {"gpus": [{"id": 0, "holder": None}]}
    assert seen == [({"ce": "local", "all": "true"}, {})]
    assert client.request("POST", "/v1/localbatch/echo", body={"x": [1]}) == {"body": {"x": [1]}}


def test_unknown_extensions_are_404_and_wrong_methods_405(server, client):
    server.add_extension("GET", "/v1/localbatch/resources", lambda query, body: {})
    with pytest.raises(RequestRejected) as raised:
        client.get("/v1/localbatch/nothing")
    assert (raised.value.code, raised.value.status) == ("ClientException", 404)
    with pytest.raises(RequestRejected) as raised:
        client.request("POST", "/v1/localbatch/resources")
    assert raised.value.status == 405
    assert "use GET" in raised.value.message


def test_extension_registration_is_checked(server):
    with pytest.raises(ValueError, match="/v1/localbatch/"):
        server.add_extension("GET", "/v1/logs", lambda query, body: {})
    with pytest.raises(ValueError, match="method"):
        server.add_extension("TRACE", "/v1/localbatch/x", lambda query, body: {})
    server.add_extension("get", "/v1/localbatch/x", lambda query, body: {})
    with pytest.raises(ValueError, match="already"):
        server.add_extension("GET", "/v1/localbatch/x", lambda query, body: {})


def test_extension_errors_map_like_operations(server, client):
    def missing(query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        raise JobNotFound(query["jobId"])

    server.add_extension("GET", "/v1/localbatch/missing", missing)
    with pytest.raises(RequestRejected, match="job 'j-9' does not exist"):
        client.get("/v1/localbatch/missing", {"jobId": "j-9"})


def test_a_stream_delivers_chunks_as_they_are_produced_and_ends_cleanly(server, client):
    step = threading.Event()
    finished = threading.Event()

    def follow(query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        try:
            yield b"first line\n"
            assert step.wait(WAIT_S)  # the client must have the first chunk before the second exists
            yield b""  # a heartbeat sends nothing
            yield b"second line\n"
        finally:
            finished.set()

    server.add_extension("GET", "/v1/localbatch/logs", follow)
    chunks = client.stream("/v1/localbatch/logs", {"jobId": "j-1", "follow": True})
    assert next(chunks) == b"first line\n"
    step.set()
    assert list(chunks) == [b"second line\n"]
    assert finished.wait(WAIT_S)
    assert client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"  # the API connection was not involved


def test_an_empty_stream_ends_at_once(server, client):
    server.add_extension("GET", "/v1/localbatch/logs", lambda query, body: iter(()))
    assert list(client.stream("/v1/localbatch/logs")) == []


def test_a_stream_that_fails_before_its_first_chunk_is_a_proper_error(server, client):
    def follow(query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        raise JobNotFound(query["jobId"])
        yield b""  # pragma: no cover - makes this a generator

    server.add_extension("GET", "/v1/localbatch/logs", follow)
    with pytest.raises(RequestRejected, match="job 'j-9' does not exist"):
        client.stream("/v1/localbatch/logs", {"jobId": "j-9"})


def test_a_stream_that_fails_midway_is_broken_off(server, client, caplog):
    def follow(query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        yield b"partial\n"
        raise StateStoreError("disk gone")

    server.add_extension("GET", "/v1/localbatch/logs", follow)
    chunks = client.stream("/v1/localbatch/logs")
    assert next(chunks) == b"partial\n"
    with caplog.at_level(logging.ERROR), pytest.raises(DaemonError, match="broke the stream off"):
        list(chunks)
    assert client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"


@pytest.mark.parametrize("producing", [True, False], ids=["writing", "heartbeats"])
def test_a_client_leaving_mid_stream_ends_the_stream_not_the_server(server, client, producing):
    closed = threading.Event()

    def follow(query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 1024 if producing else b""
                time.sleep(0.005)
        finally:
            closed.set()

    server.add_extension("GET", "/v1/localbatch/logs", follow)
    chunks = client.stream("/v1/localbatch/logs")
    if producing:
        assert len(next(chunks)) == 1024
    chunks.close()  # hangs up; heartbeats send nothing, so the server must look for itself
    assert closed.wait(WAIT_S)
    assert client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"


def test_shutdown_breaks_a_stream_off(sock, dispatcher):
    api_server = ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S)

    def follow(query: dict[str, str], body: dict[str, Any]) -> Iterator[bytes]:
        while True:
            yield b"tick\n"
            time.sleep(0.01)

    api_server.add_extension("GET", "/v1/localbatch/logs", follow)
    api_server.start()
    chunks = DaemonClient(sock).stream("/v1/localbatch/logs")
    assert next(chunks) == b"tick\n"
    api_server.shutdown(timeout_s=WAIT_S)
    with pytest.raises(DaemonError, match="broke the stream off"):
        list(chunks)


# --- the client's errors --------------------------------------------------------------------


def test_no_socket_file_means_unreachable_with_how_to_start_one(sock):
    with pytest.raises(DaemonUnreachable) as raised:
        DaemonClient(sock).call("SubmitJob", SUBMIT)
    assert str(raised.value) == (f"no localbatch daemon answers at {sock}; start one with `localbatch daemon start`")
    with pytest.raises(DaemonUnreachable):
        DaemonClient(sock).stream("/v1/localbatch/logs")


def test_a_stale_socket_file_means_unreachable(sock):
    stale_socket_file(sock)
    with pytest.raises(DaemonUnreachable, match="^no localbatch daemon answers at "):
        DaemonClient(sock).call("DescribeJobs", {"jobs": ["j"]})


def test_a_socket_that_cannot_be_used_is_unreachable_with_the_reason(tmp_path):
    with pytest.raises(DaemonUnreachable, match="cannot connect to the localbatch daemon at .*: .*too long"):
        DaemonClient(tmp_path / ("x" * 120)).call("SubmitJob", SUBMIT)


def _full_listen_queue(sock: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A Unix socket that listens and never accepts, its queue filled: a non-blocking connect
    to it now fails with EAGAIN."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(0)
    queued: list[socket.socket] = []
    for _ in range(64):
        waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        waiting.setblocking(False)
        try:
            waiting.connect(str(sock))
        except BlockingIOError:
            waiting.close()
            return listener, queued
        queued.append(waiting)
    raise AssertionError("the listen queue never filled")


def test_a_full_listen_queue_is_waited_out_then_named_not_refused_at_once(sock):
    listener, queued = _full_listen_queue(sock)
    try:
        with pytest.raises(DaemonUnreachable, match=r"cannot connect .*: no answer within 0.2 s$"):
            DaemonClient(sock, connect_timeout_s=0.2).call("DescribeJobs", {"jobs": ["j"]})
    finally:
        for waiting in queued:
            waiting.close()
        listener.close()


def test_a_client_queued_behind_a_full_listen_queue_connects_once_there_is_room(sock, dispatcher):
    api_server = ApiServer(sock, dispatcher, poll_interval_s=FAST_POLL_S)
    api_server.start()
    blockers = []
    try:
        for _ in range(2048):  # fill the server's queue (LISTEN_BACKLOG) while it accepts: bounded
            blocker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            blocker.setblocking(False)
            try:
                blocker.connect(str(sock))
            except BlockingIOError:
                blocker.close()
                break
            blockers.append(blocker)
        with DaemonClient(sock, timeout_s=WAIT_S, connect_timeout_s=WAIT_S) as daemon_client:
            assert daemon_client.call("SubmitJob", SUBMIT)["jobName"] == SUBMIT["jobName"]
    finally:
        for blocker in blockers:
            blocker.close()
        api_server.shutdown(timeout_s=WAIT_S)


def test_client_exceptions_become_request_rejected(server, client, dispatcher):
    dispatcher.raises["DescribeJobs"] = JobNotFound("j-9")
    with pytest.raises(RequestRejected) as raised:
        client.call("DescribeJobs", {"jobs": ["j-9"]})
    error = raised.value
    assert (error.code, error.status, str(error)) == ("ClientException", 400, "job 'j-9' does not exist")
    assert error.request_id is not None


def test_server_exceptions_become_daemon_errors(server, client, dispatcher):
    dispatcher.raises["ListJobs"] = RuntimeError("bug")
    with pytest.raises(DaemonError, match=r"^internal error \(request id [0-9a-f-]{36}\)") as raised:
        client.call("ListJobs", {"jobQueue": "default"})
    assert raised.value.request_id is not None
    assert client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"  # the connection survives a 500


def test_a_daemon_that_hangs_up_without_answering_is_a_daemon_error(sock):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen()

    def hang_up() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        with pytest.raises(DaemonError, match="closed the connection"):
            DaemonClient(sock).call("SubmitJob", SUBMIT)
    finally:
        thread.join(WAIT_S)
        listener.close()


def test_a_call_that_gets_no_answer_times_out(sock):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen()
    try:
        with pytest.raises(DaemonError, match="did not answer within 0.2 s"):
            DaemonClient(sock, timeout_s=0.2).call("SubmitJob", SUBMIT)
    finally:
        listener.close()


def test_the_client_refuses_operations_not_in_the_model(client):
    with pytest.raises(ValueError, match="no operation"):
        client.call("LaunchRocket", {})


# --- transport-agnostic dispatch and the request log ---------------------------------------


def test_api_handle_needs_no_socket(dispatcher):
    api = Api(dispatcher)
    response = api.handle(ApiRequest("POST", "/v1/submitjob", {}, json.dumps(SUBMIT).encode()))
    assert (response.status, json.loads(response.body)["jobId"]) == (200, "job-1")
    assert response.operation == "SubmitJob"
    assert response.stream is None


def test_an_authenticator_refuses_before_anything_runs(dispatcher):
    def deny(request: ApiRequest) -> None:
        raise ApiError("InvalidSignatureException", 403, "signature does not match")

    api = Api(dispatcher, authenticate=deny)
    response = api.handle(ApiRequest("POST", "/v1/submitjob", {}, json.dumps(SUBMIT).encode()))
    assert (response.status, response.error_code) == (403, "InvalidSignatureException")
    assert dispatcher.calls == []


def test_two_listeners_share_one_api_and_its_extensions(tmp_path, dispatcher):
    api = Api(dispatcher, supported=SUPPORTED)
    refused: list[str] = []

    def deny_submits(request: ApiRequest) -> None:
        if request.target == "/v1/submitjob":
            refused.append(request.target)
            raise ApiError("InvalidSignatureException", 403, "bad signature")

    guarded = api.with_authenticator(deny_submits)
    api.add_extension("GET", "/v1/localbatch/ping", lambda query, body: {"pong": True})
    open_sock, guarded_sock = tmp_path / "open.sock", tmp_path / "guarded.sock"
    with (
        ApiServer(open_sock, api, poll_interval_s=FAST_POLL_S),
        ApiServer(guarded_sock, guarded, poll_interval_s=FAST_POLL_S),
        DaemonClient(open_sock) as open_client,
        DaemonClient(guarded_sock) as guarded_client,
    ):
        assert open_client.call("SubmitJob", SUBMIT)["jobId"] == "job-1"
        with pytest.raises(RequestRejected) as raised:
            guarded_client.call("SubmitJob", SUBMIT)
        assert (raised.value.code, raised.value.status) == ("InvalidSignatureException", 403)
        assert guarded_client.get("/v1/localbatch/ping") == {"pong": True}
    assert refused == ["/v1/submitjob"]
    assert len(dispatcher.calls) == 1
    with pytest.raises(ValueError, match="supported"):
        ApiServer(open_sock, api, supported={"SubmitJob"})


def test_each_request_is_logged_at_debug_with_operation_status_and_duration(server, client, caplog):
    with caplog.at_level(logging.DEBUG, logger="localbatch.api.server"):
        client.call("SubmitJob", SUBMIT)
        with pytest.raises(RequestRejected):
            client.call("SubmitJob", {})
        # the line is written once the answer is out: the client may see the answer first
        deadline = time.monotonic() + WAIT_S
        while len(request_lines(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = request_lines(caplog)
    assert len(lines) == 2
    assert " POST SubmitJob -> 200 in " in lines[0] and lines[0].endswith(" ms")
    assert " POST SubmitJob -> 400 in " in lines[1]


def request_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " -> " in r.getMessage()]


def test_on_a_shared_socket_a_peer_the_system_cannot_name_is_nobody_in_particular(sock, monkeypatch):
    seen: list[str | None] = []

    class Recorder:
        def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
            seen.append(current_principal())
            return {"jobSummaryList": []}

    monkeypatch.setattr(server_module, "peer_user", lambda connection: None)  # as where SO_PEERCRED is missing
    group = grp.getgrgid(os.getgid()).gr_name
    for shared_group in (None, group):  # 0600: only the daemon's user can connect; 0660: anyone of the group
        with ApiServer(sock, Recorder(), poll_interval_s=FAST_POLL_S, group=shared_group), DaemonClient(sock) as c:
            c.call("ListJobs", {"jobQueue": "default"})
    assert seen == [None, UNKNOWN_PEER]  # None: the daemon's owner; UNKNOWN_PEER: no admin
