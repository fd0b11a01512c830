"""The AWS endpoint (issue 7's targets): signed calls over the daemon's TCP listener, beside
moto's server, each through boto3 as a tool would use it.

A real daemon (``python -m localbatch daemon run``) in a temporary home with ``[api] listen``;
its one compute environment is DISABLED, so submitted jobs queue and nothing runs: what is
measured is SigV4 verification, validation, the store and the loop.

    endpoint_submits_per_s        signed SubmitJob calls per second from one boto3 client (target: 250)
    moto_submits_per_s            the same calls to moto's server, in the same run (its Docker
                                  execution off: the API is what is compared)
    endpoint_describe_100_p50_ms  DescribeJobs of 100 jobs, median of ``REPEATS`` (target: under 20 ms)
    endpoint_describe_100_p95_ms  its 95th percentile

    python -m benchmarks.bench_endpoint [--quick]
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from benchmarks.bench_daemon import CONFIG, HELLO, daemon
from localbatch import api_credentials
from localbatch.awsbatch.jobdefinition import to_register_request
from localbatch.jobdef import load_file
from tests.integration.s3 import free_port

REPEATS = 50


def _client(url: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        "batch", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def _submits(client: Any, count: int, queue: str, definition: str) -> float:
    started = time.perf_counter()
    for n in range(count):
        client.submit_job(jobName=f"bench-{n}", jobQueue=queue, jobDefinition=definition)
    return count / (time.perf_counter() - started)


def _moto(count: int) -> float:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request in the table
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto runs every submitted job in a Docker container of its own, at once; what is
        # compared here is the API, so it runs none (and 1,000 containers do not swamp the host).
        config = urllib.request.Request(
            f"http://{host}:{port}/moto-api/config",
            data=json.dumps({"batch": {"use_docker": False}}).encode(),
            method="POST",
        )
        urllib.request.urlopen(config, timeout=10).close()
        client = _client(f"http://{host}:{port}", "x", "y")
        iam = boto3.client(
            "iam",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )
        role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        environment = client.create_compute_environment(
            computeEnvironmentName="parked", type="UNMANAGED", state="DISABLED", serviceRole=role
        )["computeEnvironmentArn"]
        client.create_job_queue(
            jobQueueName="default",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )
        client.register_job_definition(
            jobDefinitionName="hello",
            type="container",
            containerProperties={"image": "busybox:1.36", "command": ["true"], "vcpus": 1, "memory": 64},
        )
        return _submits(client, count, "default", "hello")
    finally:
        server.stop()


def measure(quick: bool, count: int | None = None) -> dict[str, float]:
    count = count or (300 if quick else 1000)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with daemon(home, CONFIG + f'\n[api]\nlisten = "127.0.0.1:{port}"\n') as (socket_client, _):
            socket_client.call("RegisterJobDefinition", to_register_request(load_file(HELLO)))
            key = api_credentials.ensure_keyring(home).keys[0]
            client = _client(f"http://127.0.0.1:{port}", key.access_key_id, key.secret_access_key)
            for _ in range(20):  # warm up: the connection, the daemon's caches
                client.describe_job_queues()
            rate = _submits(client, count, "default", "hello")
            page = client.list_jobs(jobQueue="default", jobStatus="RUNNABLE", maxResults=100)
            ids = [j["jobId"] for j in page["jobSummaryList"]]
            timings = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                client.describe_jobs(jobs=ids)
                timings.append((time.perf_counter() - started) * 1000)
    moto_rate = _moto(count)
    timings.sort()
    return {
        "endpoint_submits_per_s": round(rate, 1),
        "moto_submits_per_s": round(moto_rate, 1),
        "endpoint_describe_100_p50_ms": round(statistics.median(timings), 2),
        "endpoint_describe_100_p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 2),
    }


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return measure(True, count=20)


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv), indent=2))
