"""The CloudWatch Logs subset (issue 7) on the in-memory and the SQLite store: attempts' log
files as /aws/batch/job streams. Every success is checked against botocore's logs output shape,
every refusal against Logs' error codes."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from localbatch import logs
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.api.errors import ApiError
from localbatch.api.logs_api import LOG_GROUP, MAX_RESPONSE_BYTES, TARGET_PREFIX, LogsApi
from localbatch.awsbatch.model import validate_logs_output
from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.naming import Arns, log_stream_name
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.ports import StateStore
from tests.fakes.store import InMemoryStateStore

S = JobStatus
ARNS = Arns("us-east-1", "000000000000")
T0 = 1_700_000_000_000
BASE = Job(
    job_id="j1",
    job_name="train",
    job_definition_name="train",
    job_definition_revision=1,
    job_queue="default",
    container=ContainerSpec(image="busybox:1.36", resources=Resources(1, 512, 0)),
    created_at=T0,
)


def attempt(number: int, task_id: str, *, started_at: int | None, stopped_at: int | None, definition: str = "train"):
    return Attempt(
        number,
        task_id,
        f"c-{task_id}",
        log_stream_name(definition, task_id),
        started_at=started_at,
        stopped_at=stopped_at,
    )


class World:
    def __init__(self, store: StateStore, logs_dir: Path) -> None:
        self.store, self.logs_dir = store, logs_dir
        self.api = LogsApi(store=store, logs_dir=logs_dir, arns=ARNS)

    def job(self, job: Job, texts: dict[int, bytes]) -> Job:
        """Store ``job`` and write attempt ``n``'s log file as ``texts[n]``."""
        self.store.save_job(job)
        for number, text in texts.items():
            path = logs.attempt_log_path(self.logs_dir, job.job_id, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text)
        return job

    def call(self, operation: str, **body: Any) -> dict[str, Any]:
        body.setdefault("logGroupName", LOG_GROUP)
        response = self.api.handle(operation, body)
        assert validate_logs_output(operation, response) == []
        return response

    def refused(self, operation: str, code: str, **body: Any) -> str:
        """The message of the refusal; the group is ours unless given (None: no group)."""
        body.setdefault("logGroupName", LOG_GROUP)
        body = {key: value for key, value in body.items() if value is not None}
        with pytest.raises(ApiError) as caught:
            self.api.handle(operation, body)
        assert (caught.value.code, caught.value.status) == (code, 400)
        return caught.value.message


@pytest.fixture(params=["memory", "sqlite"])
def world(request: Any, tmp_path: Path) -> Iterator[World]:
    store: Any = InMemoryStateStore() if request.param == "memory" else SqliteStateStore(tmp_path / "state.db")
    yield World(store, tmp_path / "logs")
    store.close()


def lines(n: int, word: str = "line") -> bytes:
    return b"".join(f"{word} {i}\n".encode() for i in range(n))


def one_attempt(
    world: World, text: bytes, *, finished: bool = True, job_id: str = "j1", task: str = "t1", definition: str = "train"
) -> str:
    stopped = T0 + 9_000 if finished else None
    job = replace(
        BASE,
        job_id=job_id,
        job_definition_name=definition,
        status=S.SUCCEEDED if finished else S.RUNNING,
        attempts=(attempt(1, task, started_at=T0 + 1_000, stopped_at=stopped, definition=definition),),
    )
    world.job(job, {1: text})
    return job.attempts[0].log_stream_name


def messages(response: dict[str, Any]) -> list[str]:
    return [e["message"] for e in response["events"]]


def test_paging_forward_from_the_head_until_the_token_repeats_returns_every_line_once(world: World) -> None:
    stream = one_attempt(world, lines(25))
    seen: list[str] = []
    body: dict[str, Any] = {"logStreamName": stream, "startFromHead": True, "limit": 7}
    for _ in range(10):
        response = world.call("GetLogEvents", **body)
        seen += messages(response)
        if response["nextForwardToken"] == body.get("nextToken"):
            break
        body["nextToken"] = response["nextForwardToken"]
    else:
        pytest.fail("the forward token never repeated")
    assert seen == [f"line {i}" for i in range(25)]
    assert response["nextForwardToken"].startswith("f/") and response["nextBackwardToken"].startswith("b/")


def test_without_a_token_the_tail_comes_back_and_backward_tokens_page_to_the_head(world: World) -> None:
    stream = one_attempt(world, lines(12))
    response = world.call("GetLogEvents", logStreamName=stream, limit=5)
    assert messages(response) == [f"line {i}" for i in range(7, 12)]
    pages = [messages(response)]
    token = response["nextBackwardToken"]
    for _ in range(10):
        response = world.call("GetLogEvents", logStreamName=stream, limit=5, nextToken=token)
        if response["nextBackwardToken"] == token:
            assert response["events"] == []
            break
        pages.insert(0, messages(response))
        token = response["nextBackwardToken"]
    assert sum(pages, []) == [f"line {i}" for i in range(12)]


def test_tail_then_forward_token_picks_up_what_is_written_next(world: World) -> None:
    stream = one_attempt(world, lines(3), finished=False)
    first = world.call("GetLogEvents", logStreamName=stream)
    assert messages(first) == ["line 0", "line 1", "line 2"]
    again = world.call("GetLogEvents", logStreamName=stream, nextToken=first["nextForwardToken"])
    assert again["events"] == [] and again["nextForwardToken"] == first["nextForwardToken"]
    with logs.attempt_log_path(world.logs_dir, "j1", 1).open("ab") as handle:
        handle.write(b"line 3\n")
    later = world.call("GetLogEvents", logStreamName=stream, nextToken=first["nextForwardToken"])
    assert messages(later) == ["line 3"]


def test_events_are_the_lines_with_the_attempts_start_as_timestamp(world: World) -> None:
    stream = one_attempt(world, b"a\r\n\nb\npartial", finished=False)
    events = world.call("GetLogEvents", logStreamName=stream, startFromHead=True)["events"]
    # empty lines are no events; an unfinished last line waits for its line break
    assert [e["message"] for e in events] == ["a", "b"]
    assert {e["timestamp"] for e in events} == {T0 + 1_000}
    assert all(e["ingestionTime"] >= e["timestamp"] for e in events)
    one_attempt(world, b"a\npartial", job_id="j2", task="t2")  # ended: its last line is whole
    assert messages(world.call("GetLogEvents", logStreamName=log_stream_name("train", "t2"))) == ["a", "partial"]


def test_limit_and_the_one_megabyte_page(world: World) -> None:
    stream = one_attempt(world, lines(30))
    assert len(world.call("GetLogEvents", logStreamName=stream, startFromHead=True, limit=4)["events"]) == 4
    big = b"".join(bytes([65 + i]) * 100_000 + b"\n" for i in range(15))  # 1.5 MB
    stream = one_attempt(world, big, job_id="j2", task="t2")
    head = world.call("GetLogEvents", logStreamName=stream, startFromHead=True)
    assert len(head["events"]) == 10 and sum(len(m) + 26 for m in messages(head)) <= MAX_RESPONSE_BYTES
    rest = world.call("GetLogEvents", logStreamName=stream, nextToken=head["nextForwardToken"])
    assert [m[0] for m in messages(rest)] == list("KLMNO")
    assert len(world.call("GetLogEvents", logStreamName=stream)["events"]) == 10  # the tail: the last 10


def two_attempts(world: World) -> tuple[str, str]:
    job = replace(
        BASE,
        status=S.FAILED,
        attempts=(
            attempt(1, "t1", started_at=T0 + 1_000, stopped_at=T0 + 2_000),
            attempt(2, "t2", started_at=T0 + 5_000, stopped_at=T0 + 6_000),
        ),
    )
    world.job(job, {1: b"ERROR disk full\nretrying soon\n", 2: b"ERROR Out of memory\nWARN slow\nok\n"})
    return job.attempts[0].log_stream_name, job.attempts[1].log_stream_name


def test_a_time_window_takes_or_leaves_each_attempt_whole(world: World) -> None:
    first, second = two_attempts(world)
    window = {"startTime": T0 + 1_000, "endTime": T0 + 5_000}  # endTime is exclusive, as AWS
    assert messages(world.call("GetLogEvents", logStreamName=first, **window)) == ["ERROR disk full", "retrying soon"]
    left_out = world.call("GetLogEvents", logStreamName=second, **window)
    assert left_out["events"] == []
    found = world.call("FilterLogEvents", startTime=T0 + 4_000)
    assert {e["logStreamName"] for e in found["events"]} == {second}


def test_filter_terms_phrases_exclusions_and_alternatives(world: World) -> None:
    first, second = two_attempts(world)
    assert messages(world.call("FilterLogEvents", filterPattern="ERROR")) == ["ERROR disk full", "ERROR Out of memory"]
    assert messages(world.call("FilterLogEvents", filterPattern='ERROR "of memory"')) == ["ERROR Out of memory"]
    assert messages(world.call("FilterLogEvents", filterPattern="ERROR -disk")) == ["ERROR Out of memory"]
    assert messages(world.call("FilterLogEvents", filterPattern="?WARN ?retrying")) == ["retrying soon", "WARN slow"]
    assert messages(world.call("FilterLogEvents", filterPattern="error")) == []  # terms are case-sensitive
    only = world.call("FilterLogEvents", logStreamNames=[second], filterPattern="ERROR")
    assert [(e["logStreamName"], e["message"]) for e in only["events"]] == [(second, "ERROR Out of memory")]
    assert messages(world.call("FilterLogEvents", logStreamNamePrefix=first)) == ["ERROR disk full", "retrying soon"]
    for pattern, words in (("{ $.level = 1 }", "JSON"), ("[ip, user]", "space-delimited"), ("%ERR%", "regular")):
        assert words in world.refused("FilterLogEvents", "InvalidParameterException", filterPattern=pattern)
    assert "closing quote" in world.refused("FilterLogEvents", "InvalidParameterException", filterPattern='"open')


def test_filter_pages_with_next_token_across_streams(world: World) -> None:
    two_attempts(world)
    one_attempt(world, lines(4), job_id="j2", task="t3")
    every = messages(world.call("FilterLogEvents"))
    seen: list[str] = []
    body: dict[str, Any] = {"limit": 2}
    for _ in range(10):
        response = world.call("FilterLogEvents", **body)
        seen += messages(response)
        if "nextToken" not in response:
            break
        body["nextToken"] = response["nextToken"]
    assert seen == every and len(every) == 9
    event_ids = [e["eventId"] for e in world.call("FilterLogEvents")["events"]]
    assert len(set(event_ids)) == len(event_ids)


def test_describe_streams_with_prefix_ordering_and_paging(world: World) -> None:
    first, second = two_attempts(world)
    other = one_attempt(world, lines(1), job_id="j2", task="t9", definition="render")
    names = [s["logStreamName"] for s in world.call("DescribeLogStreams")["logStreams"]]
    assert names == sorted([first, second, other])
    prefixed = world.call("DescribeLogStreams", logStreamNamePrefix="train/")["logStreams"]
    assert [s["logStreamName"] for s in prefixed] == [first, second]
    latest = world.call("DescribeLogStreams", orderBy="LastEventTime", descending=True)["logStreams"]
    assert [s["logStreamName"] for s in latest] == [second, first, other]  # ties: by name
    described = {s["logStreamName"]: s for s in latest}[second]
    assert (
        described["creationTime"] == described["firstEventTimestamp"] == described["lastEventTimestamp"] == T0 + 5_000
    )
    assert described["storedBytes"] == 0 and described["arn"].endswith(f":log-group:{LOG_GROUP}:log-stream:{second}")
    paged: list[str] = []
    body: dict[str, Any] = {"limit": 2, "descending": True}
    for _ in range(5):
        response = world.call("DescribeLogStreams", **body)
        paged += [s["logStreamName"] for s in response["logStreams"]]
        if "nextToken" not in response:
            break
        body["nextToken"] = response["nextToken"]
    assert paged == sorted([first, second, other], reverse=True)
    message = world.refused(
        "DescribeLogStreams",
        "InvalidParameterException",
        logGroupName=LOG_GROUP,
        orderBy="LastEventTime",
        logStreamNamePrefix="t",
    )
    assert "LastEventTime" in message


def test_a_stream_that_wrote_nothing_exists_and_is_empty(world: World) -> None:
    job = replace(BASE, status=S.STARTING, attempts=(attempt(1, "t1", started_at=None, stopped_at=None),))
    world.store.save_job(job)
    stream = job.attempts[0].log_stream_name
    response = world.call("GetLogEvents", logStreamName=stream)
    assert response["events"] == [] and response["nextForwardToken"] == "f/" + "0" * 20 + "/s"
    [described] = world.call("DescribeLogStreams")["logStreams"]
    assert described["creationTime"] == T0 and "firstEventTimestamp" not in described


def test_array_children_and_multinode_nodes_have_streams(world: World) -> None:
    parent = replace(BASE, job_id="arr", status=S.SUCCEEDED, array_size=2)
    world.store.save_job(parent)
    for i in range(2):
        child = replace(
            parent,
            job_id=f"arr:{i}",
            array_size=2,
            array_index=i,
            attempts=(attempt(1, f"child{i}", started_at=T0 + i, stopped_at=T0 + 10),),
        )
        world.job(child, {1: f"child {i}\n".encode()})
    streams = [s["logStreamName"] for s in world.call("DescribeLogStreams")["logStreams"]]
    assert streams == [log_stream_name("train", "child0"), log_stream_name("train", "child1")]
    assert messages(world.call("GetLogEvents", logStreamName=streams[1])) == ["child 1"]


def test_unknown_group_stream_token_and_operation_in_logs_shape(world: World) -> None:
    stream = one_attempt(world, lines(2))
    assert world.refused(
        "GetLogEvents", "ResourceNotFoundException", logGroupName="/aws/lambda/x", logStreamName=stream
    ) == ("The specified log group does not exist.")
    assert world.refused("GetLogEvents", "ResourceNotFoundException", logStreamName="train/default/nope") == (
        "The specified log stream does not exist."
    )
    assert world.refused("GetLogEvents", "InvalidParameterException", logStreamName=stream, nextToken="x") == (
        "The specified nextToken is invalid."
    )
    bad_key = base64.urlsafe_b64encode(b'["a", 1, 2]').decode()
    world.refused("FilterLogEvents", "InvalidParameterException", nextToken=bad_key)
    assert "limit" in world.refused("GetLogEvents", "InvalidParameterException", logStreamName=stream, limit="9")
    assert "at most 10000" in world.refused(
        "GetLogEvents", "InvalidParameterException", logStreamName=stream, limit=10_001
    )
    world.refused("GetLogEvents", "InvalidParameterException", logGroupName=None, logStreamName=stream)
    world.refused(
        "FilterLogEvents",
        "InvalidParameterException",
        logGroupName=LOG_GROUP,
        logStreamNames=[stream],
        logStreamNamePrefix="t",
    )
    assert "PutLogEvents" in world.refused("PutLogEvents", "UnknownOperationException")
    arn = f"arn:aws:logs:us-east-1:000000000000:log-group:{LOG_GROUP}"
    assert messages(world.api.handle("GetLogEvents", {"logGroupIdentifier": arn, "logStreamName": stream})) == [
        "line 0",
        "line 1",
    ]


class _LogsHandler(BaseHTTPRequestHandler):
    """A stand-in for the TCP listener's routing: X-Amz-Target -> LogsApi, errors as JSON 1.1."""

    api: LogsApi

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        target = self.headers.get("X-Amz-Target", "")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        try:
            status, payload = 200, self.api.handle(target.removeprefix(f"{TARGET_PREFIX}."), body)
        except ApiError as exc:
            status, payload = exc.status, {"__type": exc.code, "message": exc.message}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@pytest.fixture
def client(world: World) -> Iterator[Any]:
    """boto3's logs client on the wire, against ``world``'s LogsApi."""
    handler = type("Handler", (_LogsHandler,), {"api": world.api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield boto3.client(
            "logs",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
    finally:
        server.shutdown()
        server.server_close()


def test_boto3s_logs_client_reads_pages_and_errors_on_the_wire(world: World, client: Any) -> None:
    first, second = two_attempts(world)
    stream = one_attempt(world, lines(9), job_id="j2", task="t3")
    seen: list[str] = []
    token = None
    for _ in range(10):  # how tools read a stream: forward from the head until the token repeats
        extra = {"nextToken": token} if token else {}
        page = client.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True, limit=4, **extra)
        seen += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            break
        token = page["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(9)]
    filtered = client.get_paginator("filter_log_events").paginate(
        logGroupName=LOG_GROUP, filterPattern="ERROR", PaginationConfig={"PageSize": 1}
    )
    assert [e["message"] for page in filtered for e in page["events"]] == ["ERROR disk full", "ERROR Out of memory"]
    described = client.get_paginator("describe_log_streams").paginate(
        logGroupName=LOG_GROUP, PaginationConfig={"PageSize": 1}
    )
    assert [s["logStreamName"] for page in described for s in page["logStreams"]] == sorted([first, second, stream])
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="log stream does not exist"):
        client.get_log_events(logGroupName=LOG_GROUP, logStreamName="train/default/nope")
    with pytest.raises(client.exceptions.InvalidParameterException, match="nextToken is invalid"):
        client.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, nextToken="f/x")
