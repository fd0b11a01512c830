"""Watching a real daemon: usage sampled from real containers (describe, advise, top) and
``/metrics`` on its socket. One job that holds some memory and burns CPU for a few seconds."""

from __future__ import annotations

import json
import socket
import time

from localbatch.extensions import USAGE
from tests.integration.daemons import Daemon

# ~30 MB held in a shell variable, a busy loop, then a pause long enough for a few samples.
BUSY = (
    'sh -c \'x=$(head -c 30000000 /dev/zero | tr "\\\\0" a); end=$(($(date +%s)+3)); '
    "while [ $(date +%s) -lt $end ]; do :; done; sleep 3; echo ${#x}'"
)


def unix_get(path: str, target: str) -> tuple[int, str, str]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(path)
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    content_type = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")), ""
    )
    return int(lines[0].split()[1]), content_type, body.decode()


def test_usage_is_sampled_shown_advised_on_and_counted(daemon: Daemon) -> None:
    job_id = daemon.submit("hello", "--memory-mib", "512", "--command", BUSY)
    daemon.wait_for(job_id, "RUNNING")
    live = None
    deadline = time.monotonic() + 30
    while live is None and time.monotonic() < deadline:  # the sampler's first reading
        live = daemon.api.get(USAGE, {"jobId": job_id}).get("live")
        time.sleep(0.3)
    assert live is not None and live["memoryLimitMiB"] == 512
    snapshot = json.loads(daemon.ok("top", "--json"))
    [running] = [j for j in snapshot["running"] if j["jobId"] == job_id]
    assert running["memoryMiB"] == 512 and running["usage"] is not None
    assert snapshot["computeEnvironments"][0]["allocated"]["memoryMiB"] == 512

    assert daemon("wait", job_id).returncode == 0
    [attempt] = daemon.api.get(USAGE, {"jobId": job_id})["attempts"]
    used = attempt["usage"]
    assert used["samples"] >= 1 and used["memoryLimitMiB"] == 512
    assert used["memoryPeakMiB"] >= 25  # the 30 MB it held
    assert used["cpuPeakPercent"] > 0
    shown = daemon.ok("describe", job_id)
    assert "CPU AVG/PEAK" in shown and "/ 512 MiB" in shown

    advice = json.loads(daemon.ok("advise", job_id, "--json", "--region", "eu-west-1"))
    assert advice["jobDefinitionName"] == "hello" and advice["runsWithUsage"] == 1
    assert advice["recommendation"]["memoryMiB"] >= 128 and advice["recommendation"]["requestedMemoryMiB"] == 512
    assert advice["costs"]["region"] == "eu-west-1" and advice["costs"]["asOf"]
    assert advice["costs"]["requested"]["onDemand"] > 0 and advice["costs"]["requested"]["fargate"] > 0
    assert "AWS cost per run, eu-west-1" in daemon.ok("advise", "hello", "--region", "eu-west-1")

    status, content_type, text = unix_get(str(daemon.home / "home" / "daemon.sock"), "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert 'localbatch_jobs_finished_total{queue="default",outcome="succeeded"} 1' in text
    assert 'localbatch_jobs_started_total{queue="default"} 1' in text
    assert 'localbatch_scheduling_latency_seconds_count{queue="default"} 1' in text
    assert 'localbatch_capacity{compute_environment="local",resource="memory_mib"} 1024' in text

    screen = daemon.ok("top", "--once")
    assert "compute environments" in screen and "nothing running" in screen
