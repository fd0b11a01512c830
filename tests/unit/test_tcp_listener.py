"""The SigV4 TCP listener: botocore-signed requests pass, everything else gets 403 in AWS's
shape and never reaches the dispatcher; the keyring behind it is private and named."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import boto3  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
import pytest
from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials  # type: ignore[import-untyped]

from localbatch import api_credentials, config
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.server import Api, TcpApiServer
from localbatch.awsbatch.sigv4 import SignatureError, verify
from localbatch.errors import ConfigError, UsageError
from tests.unit.test_api_server import FAST_POLL_S, SUPPORTED, WAIT_S, FakeDispatcher

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
HOST = "127.0.0.1:8750"
ARN_TARGET = "/v1/tags/arn%3Aaws%3Abatch%3Aus-east-1%3A000000000000%3Ajob-queue%2Fdefault"


def signed(
    method: str = "POST",
    target: str = "/v1/describejobqueues",
    body: bytes = b"{}",
    *,
    key: str = "AKID",
    secret: str = "SECRET",
    service: str = "batch",
    when: datetime = NOW,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A request as botocore's own signer signs it at ``when``: method, target, lower-case
    headers, body."""
    request = AWSRequest(method=method, url=f"http://{HOST}{target}", data=body, headers=dict(extra or {}))
    with mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
        SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = HOST
    return {"method": method, "target": target, "headers": headers, "body": body}


def check(
    request: dict[str, Any], *, secret: str | None = "SECRET", now: datetime = NOW, service: str = "batch"
) -> str:
    return verify(
        request["method"],
        request["target"],
        request["headers"],
        request["body"],
        secret_for=lambda key: secret if key == "AKID" else None,
        services={service},
        now=now,
    )


def refusal(request: dict[str, Any], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(SignatureError) as caught:
        check(request, **kwargs)
    return caught.value.code, caught.value.message


# -- the signature -------------------------------------------------------------------------
def test_a_request_botocore_signed_is_accepted_with_its_key():
    assert check(signed()) == "AKID"
    assert check(signed(target=ARN_TARGET + "?tagKeys=a%20b&tagKeys=c", method="DELETE", body=b"")) == "AKID"


def test_a_wrong_secret_a_changed_body_or_path_do_not_match():
    mismatch = "InvalidSignatureException"
    assert refusal(signed(secret="other"))[0] == mismatch
    tampered = signed(body=b'{"jobQueues": ["a"]}')
    tampered["body"] = b'{"jobQueues": ["b"]}'
    assert refusal(tampered)[0] == mismatch
    moved = signed()
    moved["target"] = "/v1/deletejobqueue"
    assert refusal(moved) == (
        mismatch,
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.",
    )


def test_unsigned_and_unknown_keys_are_refused_as_aws_does():
    unsigned = signed()
    del unsigned["headers"]["authorization"]
    assert refusal(unsigned) == ("MissingAuthenticationTokenException", "Missing Authentication Token")
    assert refusal(signed(), secret=None) == (
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
    garbled = signed()
    garbled["headers"]["authorization"] = "AWS4-HMAC-SHA256 nonsense"
    assert refusal(garbled)[0] == "IncompleteSignatureException"


def test_more_than_15_minutes_of_clock_skew_either_way_is_refused():
    assert check(signed(when=NOW - timedelta(minutes=14))) == "AKID"
    code, message = refusal(signed(when=NOW - timedelta(minutes=16)))
    assert code == "InvalidSignatureException" and message.startswith("Signature expired: 20261121T114400Z")
    code, message = refusal(signed(when=NOW + timedelta(minutes=16)))
    assert code == "InvalidSignatureException" and message.startswith("Signature not yet current")


def test_the_scope_must_name_the_service_and_the_body_its_hash():
    assert refusal(signed(service="s3"))[1] == "Credential should be scoped to correct service: 'batch'."
    assert check(signed(service="logs"), service="logs") == "AKID"
    lying = signed(extra={"X-Amz-Content-SHA256": hashlib.sha256(b"other").hexdigest()})
    assert refusal(lying)[1] == "The provided x-amz-content-sha256 header does not match the body."


# -- the keyring ---------------------------------------------------------------------------
def test_the_keyring_is_private_and_keeps_its_owner_key(tmp_path):
    first = api_credentials.ensure_keyring(tmp_path)
    path = api_credentials.keyring_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (owner,) = first.keys
    assert owner.name == "owner" and len(owner.access_key_id) == 20 and len(owner.secret_access_key) == 40
    assert api_credentials.ensure_keyring(tmp_path) == first
    assert owner.secret_access_key not in repr(owner)


def test_keys_for_more_people_have_names_that_are_unique(tmp_path):
    alice = api_credentials.add_key(tmp_path, "alice")
    assert api_credentials.read_keyring(tmp_path).find(alice.access_key_id) == alice
    with pytest.raises(UsageError, match="already a key named 'alice'"):
        api_credentials.add_key(tmp_path, "alice")
    with pytest.raises(UsageError, match="a key name is 1 to 64"):
        api_credentials.add_key(tmp_path, "../x")


def test_an_unreadable_keyring_says_where_it_is(tmp_path):
    path = api_credentials.keyring_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"keys": 3}')
    with pytest.raises(ConfigError, match=str(path)):
        api_credentials.read_keyring(tmp_path)


# -- where it listens ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("listen", "allow_remote", "expected"),
    [
        ("127.0.0.1:8750", False, ("127.0.0.1", 8750)),
        ("9000", False, ("127.0.0.1", 9000)),
        ("[::1]:1", False, ("::1", 1)),
    ],
)
def test_a_loopback_listen_address_needs_nothing_more(tmp_path, listen, allow_remote, expected):
    assert config.resolve(env={"LOCALBATCH_LISTEN": listen}, cwd=tmp_path).listen == expected


def test_another_address_needs_tls_and_a_bad_one_is_named(tmp_path):
    # test_tls_listener has the rest: what TLS needs and how a wrong file is named
    with pytest.raises(ConfigError, match="reachable from other machines, so it needs TLS"):
        config.resolve(env={"LOCALBATCH_LISTEN": "0.0.0.0:8750"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        config.resolve(env={"LOCALBATCH_LISTEN": "127.0.0.1:http"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="is not an IP address"):
        config.resolve(env={"LOCALBATCH_LISTEN": "example.com:80"}, cwd=tmp_path)


# -- the listener, with boto3 as the client --------------------------------------------------
@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[TcpApiServer, FakeDispatcher, api_credentials.AccessKey]]:
    dispatcher = FakeDispatcher()
    keyring = api_credentials.ensure_keyring(tmp_path)
    api = Api(dispatcher, supported=SUPPORTED).with_authenticator(sigv4_authenticator(tmp_path))
    server = TcpApiServer(("127.0.0.1", 0), api, poll_interval_s=FAST_POLL_S)
    server.start()
    try:
        yield server, dispatcher, keyring.keys[0]
    finally:
        server.shutdown(timeout_s=WAIT_S)


def batch(server: TcpApiServer, key_id: str, secret: str) -> Any:
    return boto3.client(
        "batch",
        endpoint_url=server.where,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def test_boto3_signed_calls_reach_the_dispatcher(listener):
    server, dispatcher, key = listener
    client = batch(server, key.access_key_id, key.secret_access_key)
    answer = client.submit_job(jobName="render", jobQueue="default", jobDefinition="render:1")
    assert answer["jobId"] == "job-1"
    arn = "arn:aws:batch:us-east-1:000000000000:job-queue/default"
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "render"}
    assert [op for op, _ in dispatcher.calls] == ["SubmitJob", "ListTagsForResource"]
    assert dispatcher.principals == ["owner", "owner"]  # the signing key's name
    assert dispatcher.calls[1][1]["resourceArn"] == arn


def test_a_key_added_while_serving_works_at_once(listener, tmp_path):
    server, dispatcher, _ = listener
    alice = api_credentials.add_key(tmp_path, "alice")
    batch(server, alice.access_key_id, alice.secret_access_key).submit_job(
        jobName="a", jobQueue="default", jobDefinition="render:1"
    )
    assert len(dispatcher.calls) == 1
    assert dispatcher.principals == ["alice"]


def test_refused_requests_get_403_and_run_nothing(listener):
    server, dispatcher, key = listener
    wrong = batch(server, key.access_key_id, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        wrong.submit_job(jobName="render", jobQueue="default", jobDefinition="render:1")
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
    connection.request("POST", "/v1/submitjob", body=json.dumps({"jobName": "x"}))
    response = connection.getresponse()
    assert response.status == 403
    assert json.loads(response.read())["__type"] == "MissingAuthenticationTokenException"
    connection.close()
    assert dispatcher.calls == []


def test_an_oversized_request_is_refused_before_it_is_read_or_checked(listener):
    server, dispatcher, _ = listener
    host, port = server.address
    with socket.create_connection((host, port), timeout=WAIT_S) as raw:
        raw.sendall(f"POST /v1/submitjob HTTP/1.1\r\nHost: x\r\nContent-Length: {9 * 2**20}\r\n\r\n".encode())
        answer = raw.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert dispatcher.calls == []


def test_extensions_refuse_unsigned_requests_too(tmp_path):
    """The event stream (and every /v1/localbatch/ extension) is behind the same signature."""
    api_credentials.ensure_keyring(tmp_path)
    api = Api(FakeDispatcher(), supported=SUPPORTED)
    served: list[str] = []
    api.add_extension("GET", "/v1/localbatch/event-stream", lambda query, body: served.append("x") or {})
    server = TcpApiServer(
        ("127.0.0.1", 0), api.with_authenticator(sigv4_authenticator(tmp_path)), poll_interval_s=FAST_POLL_S
    )
    server.start()
    try:
        host, port = server.address
        connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
        connection.request("GET", "/v1/localbatch/event-stream?after=0")
        response = connection.getresponse()
        assert response.status == 403
        assert json.loads(response.read())["__type"] == "MissingAuthenticationTokenException"
        connection.close()
    finally:
        server.shutdown(timeout_s=WAIT_S)
    assert served == []
