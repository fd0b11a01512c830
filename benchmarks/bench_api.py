"""The daemon's API transport: SubmitJob calls through DaemonClient -> ApiServer (issue 3: 10,000
SubmitJob calls through the API under 10 s).

What is timed is the transport alone: one DaemonClient (one keep-alive connection, as the CLI
uses) against an ApiServer on a temporary Unix socket whose dispatcher answers at once. Each call
still goes through everything a real one does except the use case: the client builds the request
from botocore's model, HTTP framing both ways, JSON both ways, route resolution and validation
against the model. The dispatcher's own cost (the store) is measured elsewhere.

    python -m benchmarks.bench_api            # 10,000 calls, prints the figures
    python -m benchmarks.bench_api --quick    # 2,000 calls
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localbatch.api.server import ApiServer
from localbatch.client import DaemonClient

CALLS = 10_000
QUICK_CALLS = 2_000
WARM_UP_CALLS = 200
# A realistic SubmitJob body: what `localbatch submit render --param frame=7 --gpus 1` sends.
SUBMIT: dict[str, Any] = {
    "jobName": "render-frame-7",
    "jobQueue": "default",
    "jobDefinition": "render:3",
    "parameters": {"frame": "7", "quality": "high"},
    "containerOverrides": {
        "environment": [{"name": "SCENE", "value": "city"}],
        "resourceRequirements": [{"type": "GPU", "value": "1"}, {"type": "MEMORY", "value": "8192"}],
    },
    "retryStrategy": {"attempts": 2},
    "timeout": {"attemptDurationSeconds": 3600},
    "tags": {"project": "film"},
}


class _Trivial:
    """Answers SubmitJob at once, as the model's output shape says."""

    def __init__(self) -> None:
        self.calls = 0

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        job_id = f"job-{self.calls:08d}"
        return {
            "jobId": job_id,
            "jobName": body["jobName"],
            "jobArn": f"arn:aws:batch:us-east-1:0:job/{job_id}",
        }


def measure(quick: bool, calls: int | None = None) -> dict[str, float]:
    """Calls per second and milliseconds per call for N sequential SubmitJob calls."""
    calls = calls or (QUICK_CALLS if quick else CALLS)
    dispatcher = _Trivial()
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as home:
        with ApiServer(Path(home) / "api.sock", dispatcher) as server:
            with DaemonClient(server.socket_path) as client:
                for _ in range(WARM_UP_CALLS):
                    client.call("SubmitJob", SUBMIT)
                start = time.perf_counter()
                for _ in range(calls):
                    client.call("SubmitJob", SUBMIT)
                elapsed_s = time.perf_counter() - start
    assert dispatcher.calls == WARM_UP_CALLS + calls
    return {
        "api_transport_calls_per_s": round(calls / elapsed_s, 1),
        "api_transport_ms_per_call": round(elapsed_s / calls * 1000, 4),
    }


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return measure(True, calls=50)


if __name__ == "__main__":
    print(measure(quick="--quick" in sys.argv[1:]))
