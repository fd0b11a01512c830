"""Peer (issue 8c): the same N trivial jobs through boto3 to localbatch's AWS endpoint and to
moto's Batch emulation (``moto_server``, its Docker execution on), in the same run.

Inputs: N = 100 (quick: 5) jobs of ``true`` on busybox:1.36, 0.25 vCPU and 64 MiB each, submitted
one after another by one boto3 client to a queue on a compute environment of 2 vCPUs (localbatch:
``max_vcpus = 2``; moto: a MANAGED environment with ``maxvCpus = 2``), then polled with
DescribeJobs every 0.2 s until every job ended. moto runs in a process of its own on 127.0.0.1
with ``MOTO_DOCKER_NETWORK_MODE=host``; it starts a thread and a container per job as soon as
the job is submitted, whatever the capacity. Repeats: 1 per side (moto's run is the costly one;
N is kept at 100 because moto starts them all at once). Every container either side leaves is
removed afterwards, by label (localbatch) or by name (moto).

    localbatch_jobs_per_s / moto_jobs_per_s   N / (first submit -> last job seen ended)
    *_peak_reserved_vcpus       the most containers seen running at once (``docker ps`` every
                                0.1 s, a lower bound) x 0.25 vCPU, against
    peer_capacity_vcpus         the compute environment's 2 vCPUs
    *_succeeded                 how many of the N jobs SUCCEEDED

    python -m benchmarks.bench_peer [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import docker

from benchmarks import _batch
from benchmarks.bench_daemon import daemon
from localbatch import api_credentials
from tests.integration.s3 import free_port

VCPUS = 0.25
MEMORY_MIB = 64
CAPACITY_VCPUS = 2
QUEUE = "peer"


def _client(service: str, url: str, key_id: str = "x", secret: str = "y") -> Any:
    return boto3.client(
        service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def _jobs(batch: Any, n: int, label: str, filters: dict[str, Any], engine: docker.DockerClient) -> dict[str, float]:
    """Submit N trivial jobs, wait for all; jobs/s, peak running containers, how many succeeded."""
    with _batch.RunningSampler(engine, filters, weight=lambda _: VCPUS) as sampler:
        started = time.perf_counter()
        ids = [
            batch.submit_job(jobName=f"lbbench-{label}-{i}", jobQueue=QUEUE, jobDefinition="trivial")["jobId"]
            for i in range(n)
        ]
        seen, jobs = _batch.wait_all(lambda b: batch.describe_jobs(jobs=b)["jobs"], ids, 60 + 2 * n, every_s=0.2)
    return {
        "jobs_per_s": round(n / (seen - started), 3),
        "peak_reserved_vcpus": sampler.peak,
        "succeeded": sum(j["status"] == "SUCCEEDED" for j in jobs.values()),
    }


def localbatch_side(n: int, engine: docker.DockerClient) -> dict[str, float]:
    port = free_port()
    label = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        home = Path(tmp) / "home"
        home_id = _batch.home_id(home)
        try:
            with daemon(home, _batch.config((QUEUE, CAPACITY_VCPUS, 2048), listen=port)):
                key = api_credentials.ensure_keyring(home).keys[0]
                batch = _client("batch", f"http://127.0.0.1:{port}", key.access_key_id, key.secret_access_key)
                batch.register_job_definition(**_batch.definition("trivial", ["true"], VCPUS, MEMORY_MIB))
                return _jobs(batch, n, label, {"label": f"localbatch.home={home_id}"}, engine)
        finally:
            _batch.remove_labelled(engine, "localbatch.home", home_id)


@contextmanager
def moto_server() -> Iterator[str]:
    """``moto_server`` in a process of its own, its Batch jobs on the host's network."""
    port = free_port()
    env = {**os.environ, "MOTO_DOCKER_NETWORK_MODE": "host"}
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _client("sts", url).get_caller_identity()
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def moto_side(n: int, engine: docker.DockerClient) -> dict[str, float]:
    label = uuid.uuid4().hex[:12]
    try:
        with moto_server() as url:
            batch = _client("batch", url)
            iam = _client("iam", url)
            role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
            profile = iam.create_instance_profile(InstanceProfileName="batch")["InstanceProfile"]["Arn"]
            ec2 = _client("ec2", url)
            subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:1]
            groups = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]][:1]
            environment = batch.create_compute_environment(
                computeEnvironmentName=QUEUE,
                type="MANAGED",
                state="ENABLED",
                serviceRole=role,
                computeResources={
                    "type": "EC2",
                    "minvCpus": 0,
                    "maxvCpus": CAPACITY_VCPUS,
                    "desiredvCpus": 0,
                    "instanceTypes": ["optimal"],
                    "subnets": subnets,
                    "securityGroupIds": groups,
                    "instanceRole": profile,
                },
            )["computeEnvironmentArn"]
            batch.create_job_queue(
                jobQueueName=QUEUE,
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
            )
            batch.register_job_definition(**_batch.definition("trivial", ["true"], VCPUS, MEMORY_MIB))
            return _jobs(batch, n, label, {"name": f"lbbench-{label}"}, engine)
    finally:
        for container in engine.api.containers(all=True, filters={"name": f"lbbench-{label}"}):
            try:
                engine.api.remove_container(container["Id"], v=True, force=True)
            except docker.errors.NotFound:
                pass


def run(n: int) -> dict[str, float]:
    engine = docker.from_env()
    try:
        ours = localbatch_side(n, engine)
        moto = moto_side(n, engine)
    finally:
        engine.close()
    return {
        "peer_jobs": n,
        "peer_capacity_vcpus": CAPACITY_VCPUS,
        **{f"localbatch_{k}": v for k, v in ours.items()},
        **{f"moto_{k}": v for k, v in moto.items()},
    }


def measure(quick: bool) -> dict[str, float]:
    return run(n=5 if quick else 100)


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return run(n=2)


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:]), indent=2))
