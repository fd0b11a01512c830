"""The web dashboard: its pages from plain API documents (escaping, the filter form, the grid,
log text without terminal escapes), and its authentication on the TCP listener (HTTP Basic
with a key, for ``/dashboard`` paths only; 401 with a challenge otherwise)."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch import api_credentials
from localbatch.api.auth import sigv4_authenticator
from localbatch.api.dashboard import (
    COLOURS,
    clean_log,
    render_array,
    render_job,
    render_jobs,
    render_queues,
    render_resources,
)
from localbatch.api.server import Api, TcpApiServer
from tests.unit.test_api_server import FAST_POLL_S, SUPPORTED, WAIT_S, FakeDispatcher

EVIL = '<script>alert("x")</script>&'


def text(page: bytes) -> str:
    return page.decode()


def test_every_user_value_is_escaped() -> None:
    jobs = [{"jobId": "j-1", "jobName": EVIL, "jobQueue": EVIL, "status": "RUNNING", "createdAt": 0}]
    listing = text(render_jobs(jobs, [EVIL], queue=EVIL, prefix=EVIL))
    detail = text(
        render_job(
            {
                "jobId": EVIL,
                "jobName": EVIL,
                "status": "RUNNING",
                **{"statusReason": EVIL},
                "container": {"command": [EVIL]},
            },
            EVIL,
        )
    )
    queues = text(render_queues({"jobQueues": [{"jobQueueName": EVIL, "jobs": {"RUNNING": 2}}]}))
    grid = text(render_array({"jobId": "a", "jobName": EVIL, "status": "RUNNING"}, [{"jobId": EVIL, "status": EVIL}]))
    for page in (listing, detail, queues, grid):
        assert '<script>alert("x")' not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_the_only_script_is_the_log_refresh_of_a_job_not_done() -> None:
    running = text(render_job({"jobId": "j 1&x", "jobName": "n", "status": "RUNNING"}, "line\n"))
    done = text(render_job({"jobId": "j-1", "jobName": "n", "status": "SUCCEEDED"}, "line\n"))
    assert running.count("<script>") == 1 and "/dashboard/log?id=j+1%26x" in running
    assert "<script>" not in done
    assert '<pre id="log">line\n</pre>' in done


def test_log_text_loses_terminal_escapes_and_controls() -> None:
    raw = b"\x1b[31mred\x1b[0m \x1b]0;title\x07ok\x07\x08\n10%\r50%\r100%\nbad \xff end\n\x1b(Bx"
    assert clean_log(raw) == "red ok\n100%\nbad \ufffd end\nx"


def test_the_filter_form_keeps_what_was_asked_and_counts_link_to_a_filtered_list() -> None:
    page = text(render_jobs([], ["default", "gpu"], queue="gpu", status="FAILED", prefix="ren"))
    assert '<option value="gpu" selected>' in page
    assert '<option value="FAILED" selected>' in page
    assert 'name="prefix" id="prefix" value="ren"' in page
    queues = text(render_queues({"jobQueues": [{"jobQueueName": "gpu", "jobs": {"FAILED": 3}}]}))
    assert 'href="/dashboard/jobs?queue=gpu&amp;status=FAILED">3</a>' in queues


def test_an_array_grid_has_one_coloured_cell_per_child_in_order() -> None:
    children = [
        {"jobId": f"a:{i}", "status": status, "arrayProperties": {"index": i}}
        for i, status in enumerate(["SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE"])
    ]
    page = text(render_array({"jobId": "a", "jobName": "render", "status": "RUNNING"}, children))
    cells = page.split('<div class="grid" id="grid">')[1].split("</div>")[0]
    assert cells.count('class="cell"') == 4
    order = [c.split('"')[0] for c in cells.split('data-status="')[1:]]
    assert order == ["SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE"]
    assert f"background:{COLOURS['FAILED']}" in cells
    assert 'title="1: FAILED"' in cells and 'href="/dashboard/job?id=a%3A1"' in cells


def test_resources_name_each_gpu_holder() -> None:
    resources = {
        "host": {"cpus": 8, "memoryMiB": 16000, "capacity": {"vcpus": 7, "memoryMiB": 15000, "gpus": 2}},
        "computeEnvironments": [
            {
                "computeEnvironmentName": "gpu",
                "state": "ENABLED",
                "capacity": {"vcpus": 7, "memoryMiB": 15000, "gpus": 2},
                "allocated": {"vcpus": 1, "memoryMiB": 512, "gpus": 1},
                "jobs": ["job-9"],
            }
        ],
        "gpus": [
            {"id": "0", "name": "H100", "memoryMiB": 80000, "computeEnvironment": "gpu", "jobId": "job-9"},
            {"id": "1", "name": "H100", "memoryMiB": 80000, "computeEnvironment": "gpu", "jobId": None},
        ],
    }
    page = text(render_resources(resources))
    rows = page.split('<table id="gpus">')[1].split("<tr>")[2:]
    assert 'href="/dashboard/job?id=job-9">job-9</a>' in rows[0]
    assert "free" in rows[1]
    assert "1 / 2" in page  # GPUs allocated of capacity


# -- authentication on the TCP listener --------------------------------------------------------


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[TcpApiServer, api_credentials.AccessKey, list[str]]]:
    keyring = api_credentials.ensure_keyring(tmp_path)
    api = Api(FakeDispatcher(), supported=SUPPORTED)
    served: list[str] = []

    def page(path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        served.append(path)
        return 200, "text/html; charset=utf-8", b"<p>ok</p>"

    api.add_pages("/dashboard", page)
    api.add_extension("GET", "/v1/localbatch/status", lambda query, body: {"pid": 1})
    server = TcpApiServer(
        ("127.0.0.1", 0), api.with_authenticator(sigv4_authenticator(tmp_path)), poll_interval_s=FAST_POLL_S
    )
    server.start()
    try:
        yield server, keyring.keys[0], served
    finally:
        server.shutdown(timeout_s=WAIT_S)


def get(server: TcpApiServer, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def basic(key_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key_id}:{secret}".encode()).decode()}


def test_a_browser_gets_a_basic_challenge_then_the_page_with_the_key(listener: Any) -> None:
    server, key, served = listener
    status, headers, _ = get(server, "/dashboard/jobs?queue=default")
    assert status == 401 and headers["www-authenticate"].startswith('Basic realm="localbatch"')
    status, _, _ = get(server, "/dashboard", basic(key.access_key_id, "wrong"))
    assert status == 401
    assert served == []
    login = basic(key.access_key_id, key.secret_access_key)
    status, headers, body = get(server, "/dashboard/jobs?queue=default", login)
    assert (status, body) == (200, b"<p>ok</p>")
    assert headers["content-type"].startswith("text/html") and headers["cache-control"] == "no-store"
    assert served == ["/dashboard/jobs"]


def test_the_dashboard_key_opens_nothing_else(listener: Any) -> None:
    server, key, served = listener
    for path in ("/v1/localbatch/status", "/dashboardx", "/v1/describejobs"):
        status, _, body = get(server, path, basic(key.access_key_id, key.secret_access_key))
        assert status == 403, path
        assert json.loads(body)["__type"]
    assert served == []


def test_pages_answer_get_only(listener: Any) -> None:
    server, key, served = listener
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
    connection.request("POST", "/dashboard", body=b"", headers=basic(key.access_key_id, key.secret_access_key))
    response = connection.getresponse()
    assert response.status == 403  # a key sent whole is accepted for GET only
    response.read()
    connection.close()
    assert served == []
