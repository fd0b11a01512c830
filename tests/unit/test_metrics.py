"""``/metrics``: the text exposition format, what the control loop counts, and who may scrape
it on the TCP listener (a SigV4 signature, or a key sent whole, for /metrics only)."""

from __future__ import annotations

import base64
import http.client
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from localbatch import api_credentials
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.server import Api, ApiRequest, TcpApiServer
from localbatch.core import metrics
from localbatch.core.metrics import Family, Sample
from localbatch.daemon.metrics import Metrics
from tests.unit.test_api_server import FAST_POLL_S, SUPPORTED, WAIT_S, FakeDispatcher
from tests.unit.test_daemon_loop import HOST, make_rig
from tests.unit.test_tcp_listener import signed


def test_exposition_writes_help_type_and_escaped_labels() -> None:
    text = metrics.exposition(
        [
            Family("a_total", "counter", "Things.", (Sample(metrics.labels(q='x"y\\z\n'), 3),)),
            Family("b", "gauge", "Plain.", (Sample((), 0.5),)),
        ]
    )
    assert text == (
        "# HELP a_total Things.\n# TYPE a_total counter\n"
        'a_total{q="x\\"y\\\\z\\n"} 3\n'
        "# HELP b Plain.\n# TYPE b gauge\nb 0.5\n"
    )


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    samples = metrics.histogram_samples(metrics.labels(queue="q"), (1.0, 5.0), [2, 0, 1], 12.5)
    text = metrics.exposition([Family("lat", "histogram", "h", samples)])
    assert 'lat_bucket{queue="q",le="1"} 2' in text and 'lat_bucket{queue="q",le="5"} 2' in text
    assert 'lat_bucket{queue="q",le="+Inf"} 3' in text
    assert 'lat_sum{queue="q"} 12.5' in text and 'lat_count{queue="q"} 3' in text


def test_the_loop_counts_starts_endings_latency_and_the_scrape_reads_depths_and_allocations(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    counted = Metrics()
    rig.loop._metrics = counted  # what bootstrap passes to the daemon's loop
    rig.runtime.script("busybox:1.36", runs_for_s=2)
    ids = [rig.submit(vcpus=1), rig.submit(vcpus=1), rig.submit(vcpus=1)]
    rig.tick()
    rig.tick()
    text = metrics.exposition(counted.families(rig.store, rig.loop.allocations, HOST))
    assert 'localbatch_jobs{queue="default",status="RUNNING"} 2' in text
    assert 'localbatch_jobs{queue="default",status="RUNNABLE"} 1' in text
    assert 'localbatch_allocated{compute_environment="local",resource="vcpus"} 2' in text
    assert 'localbatch_capacity{compute_environment="local",resource="memory_mib"} 4096' in text
    assert 'localbatch_host_capacity{resource="gpus"} 2' in text
    assert 'localbatch_jobs_started_total{queue="default"} 2' in text
    rig.settle(ticks=40)
    assert all(rig.job(i).status.value == "SUCCEEDED" for i in ids)
    text = metrics.exposition(counted.families(rig.store, rig.loop.allocations, HOST))
    assert 'localbatch_jobs_finished_total{queue="default",outcome="succeeded"} 3' in text
    assert 'localbatch_scheduling_latency_seconds_count{queue="default"} 3' in text
    assert 'localbatch_allocated{compute_environment="local",resource="vcpus"} 0' in text


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[TcpApiServer, FakeDispatcher, api_credentials.AccessKey]]:
    dispatcher = FakeDispatcher()
    keyring = api_credentials.ensure_keyring(tmp_path)
    api = Api(dispatcher, supported=SUPPORTED)
    api.add_plain("/metrics", lambda: (metrics.CONTENT_TYPE, b"up 1\n"))
    server = TcpApiServer(
        ("127.0.0.1", 0), api.with_authenticator(sigv4_authenticator(tmp_path)), poll_interval_s=FAST_POLL_S
    )
    server.start()
    try:
        yield server, dispatcher, keyring.keys[0]
    finally:
        server.shutdown(timeout_s=WAIT_S)


def scrape(server: TcpApiServer, headers: dict[str, str], method: str = "GET", path: str = "/metrics") -> Any:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("content-type"), response.read()
    finally:
        connection.close()


def test_a_scraper_authenticates_with_a_key_as_basic_or_bearer(listener) -> None:
    server, _, key = listener
    basic = base64.b64encode(f"{key.access_key_id}:{key.secret_access_key}".encode()).decode()
    for header in (f"Basic {basic}", f"Bearer {key.access_key_id}:{key.secret_access_key}"):
        status, content_type, body = scrape(server, {"Authorization": header})
        assert (status, body) == (200, b"up 1\n")
        assert content_type == metrics.CONTENT_TYPE


def test_a_scrape_without_the_right_key_is_refused_and_a_key_opens_metrics_only(listener) -> None:
    server, dispatcher, key = listener
    for header in ({}, {"Authorization": f"Bearer {key.access_key_id}:wrong"}, {"Authorization": "Basic !!"}):
        status, _, body = scrape(server, header)
        assert status == 403 and b"GET /metrics needs" in body
    # a key sent whole opens /metrics only: the API itself still wants a signature
    status, _, _ = scrape(
        server,
        {"Authorization": f"Bearer {key.access_key_id}:{key.secret_access_key}"},
        "POST",
        "/v1/describejobqueues",
    )
    assert status == 403 and dispatcher.calls == []


def test_a_signed_get_of_metrics_is_accepted(tmp_path: Path) -> None:
    keyring = api_credentials.ensure_keyring(tmp_path)
    key = keyring.keys[0]
    when = datetime.now(timezone.utc)
    request = signed("GET", "/metrics", b"", key=key.access_key_id, secret=key.secret_access_key, when=when)
    authenticate = sigv4_authenticator(tmp_path, now=lambda: when)
    assert authenticate(ApiRequest("GET", "/metrics", request["headers"], b"")) == "owner"


def test_metrics_answers_get_only(listener) -> None:
    server, _, key = listener
    status, _, _ = scrape(server, {"Authorization": f"Bearer {key.access_key_id}:{key.secret_access_key}"}, "POST")
    assert status in (403, 405)
