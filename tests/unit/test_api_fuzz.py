"""Fuzzing the daemon's API (issue 7): requests built from botocore's input shapes for every AWS
Batch operation and for the CloudWatch Logs subset, type-confused values, raw bodies and random
routes, sent through ``Api.handle`` and ``LogsApi.handle`` in-process.

What must hold for every request: no exception escapes, no 500, every refusal in AWS's error
shape (``{"__type", "message"}``), and a refused request changes nothing (no job, definition,
queue or environment more or less) and starts no container: the control loop runs on the fake
runtime and ticks after every request.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localbatch import config, jobdef, logs
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.api.dispatch import BatchDispatcher
from localbatch.api.errors import ApiError
from localbatch.api.logs_api import TARGET_PREFIX, LogsApi
from localbatch.api.routes import route_table
from localbatch.api.server import Api, ApiRequest, ApiResponse, ApiServer
from localbatch.awsbatch.model import _logs_model, operation_names, service_model
from localbatch.batch import BatchService
from localbatch.core.definition import JobDefinition
from localbatch.core.infra import ComputeEnvironment, JobQueue
from localbatch.core.naming import Arns
from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.daemon.loop import ControlLoop
from localbatch.ports import StateStore
from tests.fakes.clock import FakeClock
from tests.fakes.executor import Inline
from tests.fakes.runtime import FakeRuntime
from tests.fakes.store import InMemoryStateStore

HOST = Resources(vcpus=2, memory_mib=4096, gpus=0)
ARNS = Arns("us-east-1", "000000000000")
ARN = "arn:aws:batch:us-east-1:000000000000:"
EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_DEPTH = 6

# -- values -------------------------------------------------------------------------------------------

# Names this world knows, so some requests reach the service's deeper checks.
KNOWN = [
    "default",
    "local",
    "work",
    "work:1",
    "work:99",
    f"{ARN}job-queue/default",
    f"{ARN}compute-environment/local",
    f"{ARN}job-definition/work:1",
    f"{ARN}job/00000000-0000-4000-8000-000000000001",
    f"{ARN}scheduling-policy/fair",
    f"{ARN}job/x#1",
    f"{ARN}job/x:1",
    "00000000-0000-4000-8000-000000000001",
    "busybox:1.36",
    "VCPU",
    "MEMORY",
    "GPU",
    "EC2",
    "FARGATE",
    "ENABLED",
    "DISABLED",
    "1",
    "0",
    "-1",
    "512",
    "Ref::x",
    "*",
    "work:99999999999999999999",
    "99999999999999999999",
    "9223372036854775808",
    "",
]
text = st.one_of(
    st.sampled_from(KNOWN),
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(["x" * 70_000, "\u0000", "\ud7ff\ue000", "é" * 300, "../../etc/passwd", "%2F", "a/b", "\n"]),
)
big_ints = st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
integers = st.one_of(st.integers(-(2**40), 2**40), big_ints, big_ints, st.integers(-3, 130))
floats = st.floats(allow_nan=False, allow_infinity=False)
# Any JSON value (no NaN: the JSON encoder refuses it; raw NaN tokens come with the raw bodies).
junk = st.recursive(
    st.none() | st.booleans() | integers | floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def shaped(draw: st.DrawFn, shape: Any, depth: int = 0) -> Any:
    """A value for botocore ``shape``: mostly of its type (members missing now and then, values out
    of range), sometimes any JSON value at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(junk)
    kind = shape.type_name
    if depth >= MAX_DEPTH:
        return draw(st.sampled_from([None, {}, [], ""]))
    if kind == "structure":
        body: dict[str, Any] = {}
        required = set(shape.required_members)
        for name, member in shape.members.items():
            keep = draw(st.integers(0, 9)) < (9 if name in required else 4)
            if keep:
                body[name] = draw(shaped(member, depth + 1))
        if draw(st.integers(0, 15)) == 0:
            body[draw(text)] = draw(junk)
        return body
    if kind == "list":
        return draw(st.lists(shaped(shape.member, depth + 1), max_size=3 if depth else 5))
    if kind == "map":
        keys = shaped(shape.key, depth + 1).filter(lambda k: isinstance(k, str))
        return draw(st.dictionaries(keys, shaped(shape.value, depth + 1), max_size=3))
    if kind == "string":
        if shape.enum and draw(st.booleans()):
            return draw(st.sampled_from(list(shape.enum)))
        return draw(text)
    if kind in ("integer", "long"):
        return draw(integers)
    if kind in ("float", "double"):
        return draw(floats | integers)
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "timestamp":
        return draw(integers | floats | text)
    if kind == "blob":
        return draw(text)
    return draw(junk)


# -- requests -----------------------------------------------------------------------------------------

ROUTES = route_table()
OPERATIONS = sorted(operation_names())
JSON_HEADERS = {"content-type": "application/json"}
raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"{",
            b"null",
            b"[]",
            b"42",
            b'"x"',
            b"\xff\xfe{}",
            b'{"a": NaN}',
            b'{"jobs": [Infinity]}',
            b'{"maxResults": -Infinity}',
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
            b'{"jobName": "\\ud800"}',
            b'{"a": 1, "a": 2}',
            b"   \n",
        ]
    ),
)
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "", "P\x00ST"])
paths = st.one_of(
    st.sampled_from(
        [
            "/",
            "",
            "/v1/",
            "/v1/tags/",
            "/v1/tags/%",
            "/v1/tags/%ZZ",
            "/v1/tags/%C3%28",
            "/v1/tags/a/b",
            "/v1/localbatch/",
            "/v1/localbatch/nothing",
            "/v1/submitjob/",
            "/V1/SUBMITJOB",
            "//v1/submitjob",
            "/v1/submitjob?",
            "/v1/listjobs?jobQueue=default&maxResults=x",
            "/v1/tags/x?tagKeys=a&tagKeys=%FF",
        ]
    ),
    st.text(max_size=40).map(lambda t: "/" + t),
    st.sampled_from(OPERATIONS).map(lambda op: ROUTES.route(op).path),
)
headers = st.dictionaries(
    st.sampled_from(["content-type", "x-amz-target", "content-length", "authorization", "x-amz-date", "x"]),
    text,
    max_size=3,
)


def _encode(body: Any) -> bytes:
    return json.dumps(body, allow_nan=False).encode()


@st.composite
def shaped_requests(draw: st.DrawFn) -> tuple[str, ApiRequest]:
    """A request to one operation's route, its body (and URI and query members) from the model."""
    operation = draw(st.sampled_from(OPERATIONS))
    shape = service_model().operation_model(operation).input_shape
    body = draw(shaped(shape)) if shape is not None else {}
    if not isinstance(body, dict):
        return operation, ApiRequest("POST", ROUTES.route(operation).path, JSON_HEADERS, _encode(body))
    try:
        prepared = ROUTES.prepare(operation, body)
    except ValueError:  # a URI member left out: its place in the path holds something else
        route = ROUTES.route(operation)
        path = route.path
        for label in route.labels:
            path = path.replace("{" + label.label + "}", draw(st.sampled_from(["x", "%2F", "%", " ", "-"])))
        return operation, ApiRequest(route.method, path, JSON_HEADERS, _encode(body))
    encoded = b"" if prepared.body is None else _encode(prepared.body)
    return operation, ApiRequest(prepared.method, prepared.target, JSON_HEADERS, encoded)


@st.composite
def raw_requests(draw: st.DrawFn) -> tuple[str, ApiRequest]:
    """Anything at all: random method, path, headers, and a body of any bytes or JSON value."""
    body = draw(raw_bodies | junk.map(lambda v: json.dumps(v).encode()))
    return "-", ApiRequest(draw(methods), draw(paths), draw(headers), body)


# Valid requests to start from: a mutation of one keeps the rest valid, so it gets past the
# model's checks into the dispatcher's and the service's.
SEEDS: list[tuple[str, dict[str, Any]]] = [
    (
        "SubmitJob",
        {
            "jobName": "j",
            "jobQueue": "default",
            "jobDefinition": "work",
            "parameters": {"x": "1"},
            "arrayProperties": {"size": 2},
            "dependsOn": [],
            "retryStrategy": {"attempts": 2, "evaluateOnExit": [{"onExitCode": "1*", "action": "RETRY"}]},
            "timeout": {"attemptDurationSeconds": 60},
            "tags": {"k": "v"},
            "schedulingPriorityOverride": 1,
            "containerOverrides": {
                "command": ["echo", "Ref::x"],
                "environment": [{"name": "A", "value": "b"}],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
            },
        },
    ),
    ("SubmitJob", {"jobName": "a", "jobQueue": "default", "jobDefinition": "work:1", "arrayProperties": {"size": 3}}),
    (
        "RegisterJobDefinition",
        {
            "jobDefinitionName": "work",
            "type": "container",
            "parameters": {"x": "1"},
            "retryStrategy": {"attempts": 2},
            "timeout": {"attemptDurationSeconds": 60},
            "tags": {"k": "v"},
            "containerProperties": {
                "image": "busybox:1.36",
                "command": ["echo", "Ref::x"],
                "environment": [{"name": "A", "value": "b"}],
                "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}],
                "linuxParameters": {"tmpfs": [{"containerPath": "/t", "size": 1}], "sharedMemorySize": 64},
                "ulimits": [{"name": "nofile", "softLimit": 1, "hardLimit": 2}],
                "volumes": [{"name": "v", "host": {"sourcePath": "/tmp"}}],
                "mountPoints": [{"sourceVolume": "v", "containerPath": "/v"}],
            },
        },
    ),
    (
        "CreateComputeEnvironment",
        {
            "computeEnvironmentName": "ce",
            "type": "MANAGED",
            "state": "ENABLED",
            "computeResources": {"type": "EC2", "maxvCpus": 1, "minvCpus": 0, "subnets": []},
            "tags": {"localbatch:max-memory-mib": "1024"},
        },
    ),
    (
        "UpdateComputeEnvironment",
        {"computeEnvironment": "local", "state": "ENABLED", "computeResources": {"maxvCpus": 2}},
    ),
    (
        "CreateJobQueue",
        {
            "jobQueueName": "q",
            "priority": 1,
            "state": "ENABLED",
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "local"}],
            "jobStateTimeLimitActions": [
                {
                    "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                    "state": "RUNNABLE",
                    "maxTimeSeconds": 600,
                    "action": "CANCEL",
                }
            ],
        },
    ),
    ("UpdateJobQueue", {"jobQueue": "default", "state": "ENABLED", "priority": 1}),
    (
        "CreateSchedulingPolicy",
        {
            "name": "fair",
            "fairsharePolicy": {
                "shareDecaySeconds": 60,
                "computeReservation": 1,
                "shareDistribution": [{"shareIdentifier": "a*", "weightFactor": 0.5}],
            },
        },
    ),
    ("UpdateSchedulingPolicy", {"arn": f"{ARN}scheduling-policy/fair", "fairsharePolicy": {"shareDecaySeconds": 1}}),
    (
        "ListJobs",
        {
            "jobQueue": "default",
            "jobStatus": "RUNNING",
            "maxResults": 10,
            "filters": [{"name": "JOB_NAME", "values": ["j*"]}],
        },
    ),
    ("ListJobs", {"arrayJobId": "00000000-0000-4000-8000-000000000001", "multiNodeJobId": "x"}),
    ("DescribeJobs", {"jobs": ["00000000-0000-4000-8000-000000000001"]}),
    ("CancelJob", {"jobId": "00000000-0000-4000-8000-000000000001", "reason": "r"}),
    ("TerminateJobs", {"jobs": ["00000000-0000-4000-8000-000000000001"], "reason": "r"}),
    ("DescribeJobDefinitions", {"jobDefinitions": ["work:1"], "maxResults": 1, "nextToken": "1", "status": "ACTIVE"}),
    ("DeregisterJobDefinition", {"jobDefinition": "work:1"}),
    ("DescribeJobQueues", {"jobQueues": ["default"], "maxResults": 1}),
    ("GetJobQueueSnapshot", {"jobQueue": "default"}),
    ("TagResource", {"resourceArn": f"{ARN}job-queue/default", "tags": {"k": "v"}}),
    ("UntagResource", {"resourceArn": f"{ARN}job-definition/work:1", "tagKeys": ["k"]}),
    ("ListTagsForResource", {"resourceArn": f"{ARN}compute-environment/local"}),
    ("DeleteJobQueue", {"jobQueue": "default"}),
    ("DeleteComputeEnvironment", {"computeEnvironment": "local"}),
]


def _places(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``value`` (dict keys and list indexes), the root's children first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield (*at, key)
        yield from _places(child, (*at, key))


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Mostly a value of ``value``'s JSON type, sometimes any JSON value."""
    if isinstance(value, bool):
        same: st.SearchStrategy[Any] = st.booleans()
    elif isinstance(value, int):
        same = integers
    elif isinstance(value, float):
        same = floats
    elif isinstance(value, str):
        same = text
    elif isinstance(value, list):
        same = st.lists(junk, max_size=3) | st.just(value * 2) | st.just(value * 60)
    else:
        same = st.dictionaries(text, junk, max_size=3)
    return st.one_of(same, same, same, junk, st.none())


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[str, ApiRequest]:
    """A valid request with one to three places changed: another value of any type, or gone."""
    operation, seed = draw(st.sampled_from(SEEDS))
    body = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, 3))):
        places = list(_places(body))
        if not places:
            break
        *parent_path, key = draw(st.sampled_from(places))
        parent = body
        for step in parent_path:
            parent = parent[step]
        if draw(st.integers(0, 4)) == 0:
            del parent[key]
        else:
            parent[key] = draw(_like(parent[key]))
    prepared = (
        ROUTES.prepare(operation, body)
        if all(label.member in body for label in ROUTES.route(operation).labels)
        else None
    )
    if prepared is None:
        return operation, ApiRequest("POST", ROUTES.route(operation).path, JSON_HEADERS, _encode(body))
    encoded = b"" if prepared.body is None else _encode(prepared.body)
    return operation, ApiRequest(prepared.method, prepared.target, JSON_HEADERS, encoded)


# -- the world: API -> dispatcher -> service -> control loop on the fake runtime ------------------------


class FuzzWorld:
    def __init__(self, store: StateStore, home: Path) -> None:
        self.store, self.clock = store, FakeClock()
        self.runtime = FakeRuntime(self.clock)
        self.runtime.script("busybox:1.36", runs_for_s=None)
        settings_ = config.resolve(env={"LOCALBATCH_HOME": str(home)}, cwd=home)
        store.put_compute_environment(ComputeEnvironment("local", 2, 4096, ()))
        store.put_job_queue(JobQueue("default", 1, ("local",)))
        definition = JobDefinition(
            name="work", container=ContainerSpec(image="busybox:1.36", resources=Resources(1, 128))
        )
        store.register_job_definition("work", jobdef.to_document(definition), self.clock.now_ms())
        self.loop = ControlLoop(
            settings=settings_,
            runtime=self.runtime,
            store=store,
            clock=self.clock,
            host=HOST,
            executor=Inline(),
            in_background=lambda action: action(),
            start_pump=logs.LogPump.run,
            rng=random.Random(0),
        )
        self.loop.load([], {})
        service = BatchService(store=store, clock=self.clock, host=HOST, notifier=self.loop, live=self.loop)
        dispatcher = BatchDispatcher(service, ARNS, HOST)
        self.api = Api(dispatcher, supported=dispatcher.operations)
        self.logs = LogsApi(store=store, logs_dir=settings_.logs_dir, arns=ARNS)
        self.api.add_json_target(TARGET_PREFIX, self.logs)

    def tick(self) -> None:
        """One pass of the control loop. The clock stands still: nothing times out between the
        state before a request and after it, so only the request can change it."""
        self.loop.tick(self.clock.now_ms())

    def state(self) -> tuple[Any, ...]:
        """What a refused request must leave as it was."""
        return (
            self.store.count_jobs(),
            len(self.store.list_job_definitions()),
            [(e.name, e.state) for e in self.store.list_compute_environments()],
            [(q.name, q.state, q.priority) for q in self.store.list_job_queues()],
            len(self.runtime.created),
            len(self.runtime.started),
        )


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FuzzWorld]:
    store: Any = InMemoryStateStore() if request.param == "memory" else SqliteStateStore(tmp_path / "state.db")
    yield FuzzWorld(store, tmp_path)
    if request.param == "sqlite":
        store.close()


def check_response(response: ApiResponse, what: object) -> Any:
    """The properties every answer has; returns its decoded body."""
    assert response.status < 500, (what, response.body[:2000])
    body = json.loads(response.body) if response.body else {}
    if response.status != 200:
        assert set(body) == {"__type", "message"}, (what, body)
        assert isinstance(body["__type"], str) and isinstance(body["message"], str), (what, body)
        assert response.error_code == body["__type"], (what, body)
    return body


def send(world: FuzzWorld, request: ApiRequest, what: object) -> None:
    world.tick()  # whatever an earlier accepted request set off happens now, not below
    world.tick()
    before = world.state()
    response = world.api.handle(request)  # never raises: an exception here is a finding
    check_response(response, (what, request))
    world.tick()
    if response.status != 200:
        assert world.state() == before, (what, request, response.body[:2000])


# -- properties ---------------------------------------------------------------------------------------


@FUZZ
@given(case=shaped_requests())
def test_requests_shaped_by_the_model_never_fail_the_server_nor_change_anything_when_refused(
    world: FuzzWorld, case: tuple[str, ApiRequest]
) -> None:
    send(world, case[1], case[0])


@FUZZ
@given(case=mutated_requests())
def test_valid_requests_with_a_few_values_changed_never_fail_the_server_nor_change_anything_when_refused(
    world: FuzzWorld, case: tuple[str, ApiRequest]
) -> None:
    send(world, case[1], case[0])


@FUZZ
@given(case=raw_requests())
def test_any_method_path_header_and_body_is_answered_in_aws_error_shape(
    world: FuzzWorld, case: tuple[str, ApiRequest]
) -> None:
    send(world, case[1], case[0])


# -- CloudWatch Logs ----------------------------------------------------------------------------------

LOGS_OPERATIONS = ["GetLogEvents", "FilterLogEvents", "DescribeLogStreams"]
LOGS_TOKENS = ["f/00000000000000000001/s", "b/9/s", "f/99999999999999999999/s", "e30=", "!!", "eyJ", "WzEsIngiLDFd"]


@st.composite
def logs_bodies(draw: st.DrawFn) -> tuple[str, Any]:
    operation = draw(st.sampled_from([*LOGS_OPERATIONS, "PutLogEvents", "Nope"]))
    known = operation if operation in LOGS_OPERATIONS else "GetLogEvents"
    body = draw(shaped(_logs_model().operation_model(known).input_shape))
    if isinstance(body, dict) and draw(st.booleans()):
        body["logGroupName"] = "/aws/batch/job"
    if isinstance(body, dict) and draw(st.integers(0, 3)) == 0:
        body["nextToken"] = draw(st.sampled_from(LOGS_TOKENS))
    return operation, body


@FUZZ
@given(case=logs_bodies())
def test_logs_requests_are_answered_or_refused_with_a_client_error(world: FuzzWorld, case: tuple[str, Any]) -> None:
    operation, body = case
    if not isinstance(body, dict):
        body = {"value": body}
    try:
        world.logs.handle(operation, body)
    except ApiError as exc:
        assert exc.status < 500, (case, exc)
    request = ApiRequest("POST", "/", {"x-amz-target": f"{TARGET_PREFIX}.{operation}"}, _encode(body))
    check_response(world.api.handle(request), case)


@FUZZ
@given(body=raw_bodies, operation=st.sampled_from(LOGS_OPERATIONS), target=st.none() | text)
def test_raw_logs_bodies_and_targets_are_client_errors(
    world: FuzzWorld, body: bytes, operation: str, target: str | None
) -> None:
    header = f"{TARGET_PREFIX}.{operation}" if target is None else target
    request = ApiRequest("POST", "/", {"x-amz-target": header}, body)
    check_response(world.api.handle(request), (header, body[:200]))


# -- what the fuzzing found (SQLite refused integers beyond 64 bits: a 500) ----------------------------


LOCAL_ORDER = [{"order": 1, "computeEnvironment": "local"}]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/v1/createjobqueue",
            {"jobQueueName": "q", "priority": 10**26, "computeEnvironmentOrder": LOCAL_ORDER},
            "priority: must be between -2147483648 and 2147483647 (AWS's Integer), got 100000000000000000000000000",
        ),
        (
            "/v1/updatejobqueue",
            {"jobQueue": "default", "priority": 2**63},
            "priority: must be between -2147483648 and 2147483647 (AWS's Integer), got 9223372036854775808",
        ),
        (
            "/v1/submitjob",
            {"jobName": "a", "jobQueue": "default", "jobDefinition": "work:99999999999999999999"},
            "work:99999999999999999999: a revision is at most 2147483647",
        ),
        (
            "/v1/deregisterjobdefinition",
            {"jobDefinition": f"{ARN}job-definition/work:99999999999999999999"},
            "work:99999999999999999999: a revision is at most 2147483647",
        ),
        (
            "/v1/listjobs",
            {"jobQueue": "default", "filters": [{"name": "AFTER_CREATED_AT", "values": ["99999999999999999999"]}]},
            "filters[0].values[0]: must be at most 9223372036854775807, got 99999999999999999999",
        ),
    ],
)
def test_integers_no_store_can_hold_are_refused_with_a_client_error(
    world: FuzzWorld, path: str, body: dict[str, Any], message: str
) -> None:
    before = world.state()
    response = world.api.handle(ApiRequest("POST", path, JSON_HEADERS, _encode(body)))
    assert (response.status, json.loads(response.body)) == (400, {"__type": "ClientException", "message": message})
    world.tick()
    assert world.state() == before


def test_a_tag_request_for_a_revision_beyond_awss_integer_is_a_client_error(world: FuzzWorld) -> None:
    request = ApiRequest("GET", "/v1/tags/" + quote(f"{ARN}job-definition/work:99999999999999999999", safe=""), {}, b"")
    response = world.api.handle(request)
    assert response.status == 400, response.body


# -- the HTTP framing, over a real socket -------------------------------------------------------------
# Raw request bytes (request lines, headers, Content-Length, bodies) sent to an ``ApiServer`` on a
# Unix socket in front of the same world. Every answer is an HTTP response with a status below 500
# (AWS's error shape when refused) or a closed connection; the server answers a good request after
# each; a refused request changes nothing.

SOCKET_TIMEOUT_S = 20.0
GOOD = b"POST /v1/describejobqueues HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "HTTP/01.1", "HTTP", "", "FOO"])
targets = st.one_of(
    paths,
    st.sampled_from(
        [
            "/v1/describejobs?%",
            "/v1/listjobs?jobQueue=%ZZ&maxResults=%FF%FE",
            "/v1/tags/%00",
            "/v1/tags/..%2F..%2Fetc%2Fpasswd",
            "http://localhost/v1/describejobqueues",
            "*",
            "/" + "a" * 70_000,
            "/dashboard/jobs?queue=%FF",
            "/dashboard/job/%2e%2e%2f",
        ]
    ),
)
header_lines = st.one_of(
    st.tuples(st.sampled_from(["Content-Type", "X-Amz-Target", "Authorization", "Expect", "Host", "X"]), text).map(
        lambda kv: f"{kv[0]}: {kv[1]}".encode("utf-8", "surrogatepass")
    ),
    st.sampled_from(
        [
            b"Content-Length: -1",
            b"Content-Length: abc",
            b"Content-Length: 99999999999999999999999",
            b"Content-Length: +2",
            b"Content-Length: 1_0",
            b"Content-Length: \xd9\xa3",
            b"Content-Length: 2, 2",
            b"Content-Length: 0",
            b"Content-Length: 100",
            b"Content-Length: 9000000",
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Expect: 100-continue",
            b"Connection: close",
            b"Connection: keep-alive",
            b"X-Amz-Target: Logs_20140328.GetLogEvents",
            b"no colon here",
            b" folded: continuation",
            b"X-Big: " + b"v" * 70_000,
            b"X-Latin: \xff\xfe\x00",
        ]
    ),
)


@st.composite
def raw_http(draw: st.DrawFn) -> bytes:
    """One request's bytes: a request line, headers and a body, any of them malformed."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)) + b"\r\n\r\n"
    method = draw(methods)
    line = f"{method} {draw(targets)} {draw(versions)}".encode("utf-8", "surrogatepass")
    body = draw(raw_bodies | junk.map(lambda v: json.dumps(v).encode()))
    lines = [line, *draw(st.lists(header_lines, max_size=4))]
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in lines[1:]):
        lines.append(b"Content-Length: %d" % len(body))
    if draw(st.integers(0, 19)) == 0:
        lines += [b"X-Many: 1"] * 150
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def exchange(sock_path: Path, data: bytes) -> bytes:
    """Send ``data``, close the sending side, read everything the server answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(SOCKET_TIMEOUT_S)
        conn.connect(str(sock_path))
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:  # the server answered and closed before taking it all (a body over the limit)
            pass
        received = b""
        for _ in range(10_000):
            try:
                part = conn.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            received += part
        return received


def check_http(answer: bytes, what: object) -> list[int]:
    """Every response in ``answer`` is well formed, below 500, in AWS's shape when refused."""
    statuses = []
    rest = answer
    for _ in range(10):
        if not rest:
            break
        head, separator, rest = rest.partition(b"\r\n\r\n")
        assert separator, (what, answer[:500])
        status_line, *header_lines_ = head.decode("latin-1").split("\r\n")
        version, status, _phrase = status_line.split(" ", 2)
        assert version == "HTTP/1.1", (what, status_line)
        headers_ = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines_)}
        assert int(status) < 500, (what, answer[:2000])
        if "content-length" in headers_:
            length = int(headers_["content-length"])
            body, rest = rest[:length], rest[length:]
        else:  # a stream to the end of the connection
            body, rest = rest, b""
        if int(status) >= 400 and headers_.get("content-type") == "application/json":
            assert set(json.loads(body)) == {"__type", "message"}, (what, body)
            assert "Traceback" not in body.decode(), (what, body)
        statuses.append(int(status))
    return statuses


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FuzzWorld, Path]]:
    world_ = FuzzWorld(InMemoryStateStore(), tmp_path)
    directory = Path(tempfile.mkdtemp(prefix="lb-fuzz-", dir="/tmp"))  # a socket path must stay short
    server = ApiServer(directory / "api.sock", world_.api, poll_interval_s=0.05)
    server.start()
    try:
        yield world_, server.socket_path
    finally:
        server.shutdown(timeout_s=10)
        shutil.rmtree(directory, ignore_errors=True)


@settings(FUZZ, max_examples=100)
@given(data=raw_http())
def test_any_request_bytes_get_a_well_formed_answer_or_a_closed_connection(
    served: tuple[FuzzWorld, Path], data: bytes
) -> None:
    world_, sock_path = served
    world_.tick()
    before = world_.state()
    statuses = check_http(exchange(sock_path, data), data[:300])
    world_.tick()
    if not statuses or any(status != 200 for status in statuses):
        assert world_.state() == before, (data[:300], statuses)
    assert check_http(exchange(sock_path, GOOD), "good") == [200]


@pytest.mark.parametrize(
    ("head", "status", "message"),
    [
        (b"Content-Length: 9000000", 413, "request body of 9000000 bytes is over the limit of 8388608 bytes (8 MiB)"),
        (b"Content-Length: +2", 400, "invalid Content-Length '+2': expected a number of bytes"),
        (b"Content-Length: 1_0", 400, "invalid Content-Length '1_0': expected a number of bytes"),
        (b"Content-Length: 2\r\nContent-Length: 3", 400, "more than one Content-Length"),
        (b"Transfer-Encoding: chunked", 411, "send the body with Content-Length, not Transfer-Encoding"),
    ],
)
def test_bodies_the_server_cannot_frame_are_refused_naming_why(
    served: tuple[FuzzWorld, Path], head: bytes, status: int, message: str
) -> None:
    world_, sock_path = served
    before = world_.state()
    request = b"POST /v1/submitjob HTTP/1.1\r\nContent-Type: application/json\r\n" + head + b"\r\n\r\n{}"
    answer = exchange(sock_path, request)
    assert check_http(answer, head) == [status]
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {"__type": "ClientException", "message": message}
    assert world_.state() == before


def test_a_client_that_stops_halfway_is_disconnected_and_the_server_goes_on(tmp_path: Path) -> None:
    world_ = FuzzWorld(InMemoryStateStore(), tmp_path)
    directory = Path(tempfile.mkdtemp(prefix="lb-idle-", dir="/tmp"))
    server = ApiServer(directory / "api.sock", world_.api, poll_interval_s=0.05, idle_timeout_s=0.3)
    server.start()
    try:
        stuck = []
        head = b"POST /v1/submitjob HTTP/1.1\r\n"
        for begun in (b"", head, head + b"Content-Length: 9\r\n\r\n{"):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(SOCKET_TIMEOUT_S)
            conn.connect(str(server.socket_path))
            conn.sendall(begun)
            stuck.append(conn)
        for conn in stuck:
            with conn:
                assert conn.recv(65536) == b""  # closed by the server, nothing answered
        assert check_http(exchange(server.socket_path, GOOD), "good") == [200]
    finally:
        server.shutdown(timeout_s=10)
        shutil.rmtree(directory, ignore_errors=True)
