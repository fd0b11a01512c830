"""TLS on the TCP listener: a listen address off loopback needs a certificate and key (the
refusal names the config key); with them, boto3 verifies the certificate and is served, plain
HTTP is told to use https, and a silent client does not hold up others."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from localbatch import api_credentials, config, tls
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.server import Api, TcpApiServer
from localbatch.errors import ConfigError
from tests.certificates import self_signed
from tests.unit.test_api_server import FAST_POLL_S, SUPPORTED, WAIT_S, FakeDispatcher


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path / "tls")


def test_an_address_off_loopback_needs_a_certificate_and_names_the_key(tmp_path, pair):
    with pytest.raises(ConfigError, match=r"needs TLS: set \[api\] tls_certificate and \[api\] tls_key"):
        config.resolve(env={"LOCALBATCH_LISTEN": "0.0.0.0:8750"}, cwd=tmp_path)
    # allow_remote (the old opt-in for plain HTTP) no longer suffices
    with pytest.raises(ConfigError, match=r"\[api\] tls_certificate"):
        config.resolve(env={"LOCALBATCH_LISTEN": "0.0.0.0:8750", "LOCALBATCH_ALLOW_REMOTE": "true"}, cwd=tmp_path)
    cert, key = pair
    env = {"LOCALBATCH_LISTEN": "0.0.0.0:8750", "LOCALBATCH_TLS_CERTIFICATE": str(cert), "LOCALBATCH_TLS_KEY": str(key)}
    settings = config.resolve(env=env, cwd=tmp_path)
    assert settings.listen == ("0.0.0.0", 8750)
    assert settings.tls == tls.TlsSettings(cert, key)
    assert settings.tls.ca_bundle == cert


def test_a_user_who_cannot_read_the_daemons_key_still_resolves_the_shared_config(tmp_path, pair, monkeypatch):
    cert, key = pair
    key.write_text("not a key")  # the daemon would refuse it; the user's ls need not read it
    readable = os.access
    monkeypatch.setattr(config.os, "access", lambda path, mode: False if Path(path) == key else readable(path, mode))
    env = {"LOCALBATCH_LISTEN": "0.0.0.0:8750", "LOCALBATCH_TLS_CERTIFICATE": str(cert), "LOCALBATCH_TLS_KEY": str(key)}
    assert config.resolve(env=env, cwd=tmp_path).tls == tls.TlsSettings(cert, key)
    monkeypatch.setattr(config.os, "access", readable)
    with pytest.raises(ConfigError, match=r"tls_key"):
        config.resolve(env=env, cwd=tmp_path)


def test_bad_certificate_files_are_refused_with_the_key_named(tmp_path, pair):
    cert, key = pair
    other_cert, other_key = self_signed(tmp_path / "other", "other")
    base = {"LOCALBATCH_LISTEN": "127.0.0.1:8750"}
    cases = [
        ({"LOCALBATCH_TLS_CERTIFICATE": str(cert)}, r"\[api\] tls_key is missing"),
        ({"LOCALBATCH_TLS_KEY": str(key)}, r"\[api\] tls_certificate is missing"),
        (
            {"LOCALBATCH_TLS_CERTIFICATE": str(tmp_path / "nope.pem"), "LOCALBATCH_TLS_KEY": str(key)},
            r"\[api\] tls_certificate .*nope.pem: cannot read it",
        ),
        (
            {"LOCALBATCH_TLS_CERTIFICATE": str(cert), "LOCALBATCH_TLS_KEY": str(other_key)},
            r"\[api\] tls_key .* does not belong to \[api\] tls_certificate",
        ),
        (
            {"LOCALBATCH_TLS_CERTIFICATE": str(key), "LOCALBATCH_TLS_KEY": str(key)},
            r"\[api\] tls_certificate .* not a PEM certificate",
        ),
        ({"LOCALBATCH_TLS_CA": str(other_cert)}, r"\[api\] tls_ca is set"),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            config.resolve(env={**base, **extra}, cwd=tmp_path)


def test_relative_paths_in_the_file_are_the_files(tmp_path, pair):
    (tmp_path / "localbatch.toml").write_text(
        '[api]\nlisten = "127.0.0.1:8750"\n'
        'tls_certificate = "tls/localbatch-test.crt"\ntls_key = "tls/localbatch-test.key"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings = config.resolve(env={"LOCALBATCH_CONFIG": str(tmp_path / "localbatch.toml")}, cwd=elsewhere)
    assert settings.tls is not None and settings.tls.certificate == pair[0]


def test_the_summary_names_subject_and_fingerprint(pair):
    summary = tls.certificate_summary(pair[0])
    assert summary.startswith("subject CN=localbatch-test, SHA-256 ")
    assert len(summary.rpartition(" ")[2]) == 32 * 3 - 1


@pytest.fixture
def listener(tmp_path: Path, pair: tuple[Path, Path]) -> Iterator[tuple[TcpApiServer, FakeDispatcher, Any]]:
    dispatcher = FakeDispatcher()
    keyring = api_credentials.ensure_keyring(tmp_path)
    api = Api(dispatcher, supported=SUPPORTED).with_authenticator(sigv4_authenticator(tmp_path))
    context = tls.server_context(tls.TlsSettings(*pair))
    server = TcpApiServer(("127.0.0.1", 0), api, poll_interval_s=FAST_POLL_S, tls=context, tls_summary="x")
    server.start()
    try:
        yield server, dispatcher, keyring.keys[0]
    finally:
        server.shutdown(timeout_s=WAIT_S)


def test_boto3_verifies_the_certificate_and_is_served(listener, pair):
    server, dispatcher, key = listener
    assert server.where.startswith("https://127.0.0.1:")
    assert "TLS on" in server.description
    client = boto3.client(
        "batch",
        endpoint_url=server.where,
        region_name="us-east-1",
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        verify=str(pair[0]),
    )
    assert client.submit_job(jobName="r", jobQueue="default", jobDefinition="render:1")["jobId"] == "job-1"
    assert dispatcher.principals == ["owner"]


def test_plain_http_is_told_to_use_https_and_runs_nothing(listener):
    server, dispatcher, _ = listener
    connection = http.client.HTTPConnection(*server.address, timeout=WAIT_S)
    connection.request("POST", "/v1/submitjob", body=b"{}")
    response = connection.getresponse()
    assert response.status == 400
    assert "speaks https" in json.loads(response.read())["message"]
    connection.close()
    assert dispatcher.calls == []


def test_an_unverified_client_fails_the_handshake(listener):
    server, _, _ = listener
    context = ssl.create_default_context()  # the system's CAs: they do not know this certificate
    with socket.create_connection(server.address, timeout=WAIT_S) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_a_silent_client_does_not_hold_up_the_next(listener, pair):
    server, _, _ = listener
    context = ssl.create_default_context(cafile=str(pair[0]))
    with socket.create_connection(server.address, timeout=WAIT_S):  # connects, never says hello
        with socket.create_connection(server.address, timeout=WAIT_S) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
                secure.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert secure.recv(12) == b"HTTP/1.1 403"
