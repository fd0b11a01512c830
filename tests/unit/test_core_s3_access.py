"""core.s3_access: what a job container is told about the object store (issue 5, item 4)."""

from __future__ import annotations

import pytest

from localbatch.core.s3_access import HOST_ALIAS, StoreView, container_endpoint, is_loopback, store_environment
from localbatch.core.spec import S3Access

STORE = StoreView("http://127.0.0.1:9000", "eu-west-1", "AKIALOCAL", "s3cr3t-value")


def test_a_container_gets_endpoint_credentials_and_region() -> None:
    assert store_environment(STORE, S3Access(), {}) == {
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "AKIALOCAL",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }


def test_the_generic_endpoint_only_when_the_definition_asks_for_it() -> None:
    env = store_environment(STORE, S3Access(generic_endpoint=True), {})
    assert env["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"
    assert "AWS_ENDPOINT_URL" not in store_environment(STORE, S3Access(), {})


def test_opting_out_injects_nothing() -> None:
    assert store_environment(STORE, S3Access(enabled=False, generic_endpoint=True), {}) == {}


def test_without_credentials_only_endpoint_and_region() -> None:
    for key, secret in ((None, None), ("AKIALOCAL", None), (None, "s3cr3t")):
        env = store_environment(StoreView("http://s3.local:9000", "us-east-1", key, secret), S3Access(), {})
        assert sorted(env) == ["AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "AWS_REGION"]


@pytest.mark.parametrize(
    ("own", "missing"),
    [
        ({"AWS_ENDPOINT_URL": "https://s3.amazonaws.com"}, {"AWS_ENDPOINT_URL_S3"}),
        ({"AWS_ENDPOINT_URL_S3": "http://other:9000"}, {"AWS_ENDPOINT_URL_S3"}),
        ({"AWS_ACCESS_KEY_ID": "mine"}, {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
        ({"AWS_SESSION_TOKEN": "t"}, {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
        ({"AWS_PROFILE": "prod"}, {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
        ({"AWS_REGION": "ap-south-1"}, {"AWS_DEFAULT_REGION", "AWS_REGION"}),
    ],
)
def test_the_jobs_own_variables_win_group_by_group(own: dict[str, str], missing: set[str]) -> None:
    """A job pointing elsewhere keeps its whole configuration: no half of ours mixed in."""
    env = store_environment(STORE, S3Access(), own)
    full = store_environment(STORE, S3Access(), {})
    assert set(env) == set(full) - missing
    assert not set(env) & set(own)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "minio.localhost", "0.0.0.0", "[::1]", "::", "::1"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.5", "s3.local", "host.docker.internal", "128.0.0.1", "[fe80::1]", ""])
def test_other_hosts(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("mode", ["host", "none"])
def test_host_networking_keeps_the_endpoint_as_configured(mode: str) -> None:
    assert container_endpoint("http://127.0.0.1:9000", mode) == ("http://127.0.0.1:9000", False)


@pytest.mark.parametrize(
    ("url", "reachable"),
    [
        ("http://127.0.0.1:9000", f"http://{HOST_ALIAS}:9000"),
        ("https://localhost:9443", f"https://{HOST_ALIAS}:9443"),
        ("http://[::1]:9000", f"http://{HOST_ALIAS}:9000"),
        ("http://127.0.0.1", f"http://{HOST_ALIAS}"),
    ],
)
@pytest.mark.parametrize("mode", ["bridge", "my-network"])
def test_a_bridged_container_reaches_a_loopback_store_through_the_host_gateway(
    url: str, reachable: str, mode: str
) -> None:
    assert container_endpoint(url, mode) == (reachable, True)


@pytest.mark.parametrize("url", ["http://10.0.0.5:9000", "https://s3.example.com", "http://minio:9000"])
def test_a_store_elsewhere_is_reached_at_its_own_address(url: str) -> None:
    assert container_endpoint(url, "bridge") == (url, False)


def test_the_secret_is_not_in_the_views_repr() -> None:
    assert "s3cr3t-value" not in repr(STORE)
