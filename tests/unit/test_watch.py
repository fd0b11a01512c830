"""``top``, ``advise`` and the progress of ``run``/``wait`` through their rendering functions
(plain documents in, text out) and through the CLI on a scripted backend (not a terminal:
plain lines)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest
from rich.console import Console

from localbatch import bootstrap, render, session
from localbatch.cli import app
from localbatch.core.progress import progress
from tests.unit.test_cli import cli  # noqa: F401  (the fixture)

NOW = 1_700_000_100_000


def text_of(*parts: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    for part in parts:
        console.print(part)
    return console.export_text()


def test_progress_view_and_line_show_counts_outcome_and_times() -> None:
    found = progress({"SUCCEEDED": 6, "FAILED": 2, "RUNNING": 4, "RUNNABLE": 8}, 80.0)
    shown = text_of(render.progress_view(found, "render"))
    assert "8/20" in shown
    assert "8 RUNNABLE, 4 RUNNING, 6 SUCCEEDED, 2 FAILED" in shown
    assert "6 succeeded, 2 failed" in shown and "elapsed 1m20s, left ~2m00s" in shown
    assert render.progress_line(found) == (
        "20 jobs: 8 RUNNABLE, 4 RUNNING, 6 SUCCEEDED, 2 FAILED | done 8/20 (succeeded 6, failed 2) "
        "| elapsed 1m20s | left ~2m00s"
    )
    assert "none yet" in render.progress_line(progress({}, 0))


SNAPSHOT = {
    "computeEnvironments": [
        {
            "computeEnvironmentName": "local",
            "state": "ENABLED",
            "capacity": {"vcpus": 8, "memoryMiB": 16384, "gpus": 2},
            "allocated": {"vcpus": 7.5, "memoryMiB": 2048, "gpus": 1},
            "jobs": ["j-run"],
        }
    ],
    "gpus": [{"id": "0", "jobId": "j-run"}, {"id": "1", "jobId": None}],
    "running": [
        {
            "jobId": "j-run",
            "jobName": "train",
            "status": "RUNNING",
            "jobQueue": "gpu",
            "startedAt": NOW - 65_000,
            "vcpus": 7.5,
            "memoryMiB": 2048,
            "gpuIds": ["0"],
            "usage": {"cpuNowPercent": 312.5, "memoryNowMiB": 1900.0, "gpuAvgPercent": 87.0},
        },
        {
            "jobId": "j-new",
            "jobName": "fresh",
            "status": "STARTING",
            "jobQueue": "default",
            "startedAt": None,
            "vcpus": 1,
            "memoryMiB": 512,
            "gpuIds": [],
            "usage": None,
        },
    ],
    "queues": [
        {
            "jobQueueName": "default",
            "state": "ENABLED",
            "jobs": {"RUNNABLE": 4},
            "heads": [
                {
                    "jobId": "j-wait",
                    "jobName": "big",
                    "reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 4 vCPU, 0.5 vCPU free in compute "
                    "environment local",
                    "since": NOW - 30_000,
                }
            ],
        },
        {"jobQueueName": "idle", "state": "DISABLED", "jobs": {}, "heads": []},
    ],
}


def test_top_view_shows_environments_running_jobs_and_why_heads_wait() -> None:
    shown = text_of(render.top_view(SNAPSHOT, NOW), width=240)
    assert "7.5 / 8" in shown and "2048 / 16384" in shown and "1 / 2" in shown
    row = next(line for line in shown.splitlines() if line.startswith("j-run"))
    assert all(part in row for part in ("train", "gpu", "RUNNING", "1m05s", "312.5", "1900 / 2048", "0 (87%)"))
    fresh = next(line for line in shown.splitlines() if line.startswith("j-new"))
    assert "STARTING" in fresh and " - " in fresh
    head = next(line for line in shown.splitlines() if "j-wait" in line)
    assert "default" in head and "30s" in head and "needs 4 vCPU, 0.5 vCPU free" in head
    assert "nothing waiting" in shown and "q or Ctrl-C quits" in shown


def test_top_view_of_an_idle_machine() -> None:
    idle = {**SNAPSHOT, "running": [], "queues": []}
    assert "nothing running" in text_of(render.top_view(idle, NOW))


ADVICE = {
    "jobDefinitionName": "render",
    "runs": 5,
    "runsWithUsage": 4,
    "durationSeconds": 600.0,
    "recommendation": {
        "requestedVcpus": 4,
        "requestedMemoryMiB": 8192,
        "cpuUsedVcpus": 1.2,
        "memoryPeakMiB": 900.0,
        "vcpus": 2,
        "memoryMiB": 1152,
        "margin": 0.2,
        "oomRuns": 0,
        "notes": [],
    },
    "costs": {
        "region": "us-east-1",
        "currency": "USD",
        "asOf": "2024-06-01",
        "source": "a snapshot",
        "requested": {"onDemand": 0.032, "spot": 0.0112, "fargate": 0.04, "instanceType": "m5.xlarge"},
        "recommended": {
            "onDemand": 0.014,
            "spot": 0.0049,
            "fargate": None,
            "instanceType": "c5.large",
            "fargateVcpus": 2,
            "fargateMemoryGB": 4.0,
        },
    },
}


def test_advise_view_compares_requested_used_and_recommended_and_prices_both() -> None:
    shown = text_of(*render.advise_view(ADVICE))
    assert "4 with usage of the last 5" in shown and "10m00s" in shown
    vcpus = next(line for line in shown.splitlines() if line.startswith("vcpus"))
    assert vcpus.split()[:4] == ["vcpus", "4", "1.2", "(average"] and vcpus.rstrip().endswith("2")
    assert "1152  (peak + 20 % OOM margin)" in shown
    assert "us-east-1 (USD; prices as of 2024-06-01)" in shown
    requested = next(line for line in shown.splitlines() if line.startswith("requested"))
    assert "$0.0320" in requested and "$0.0112" in requested and "m5.xlarge" in requested
    assert "n/a" in next(line for line in shown.splitlines() if line.startswith("recommended"))
    assert "no usage recorded yet" in text_of(*render.advise_view({**ADVICE, "recommendation": None}))


class Batch:
    """An API with a few jobs that end one by one as they are looked at."""

    ENDS_AT = {"c": 6, "a": 9, "b": 12}  # after how many looks each has ended

    def __init__(self) -> None:
        self.looks = 0

    def call(self, operation: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        assert operation == "DescribeJobs"
        jobs = []
        for job_id in (body or {})["jobs"]:
            if job_id not in self.ENDS_AT:
                continue
            done = self.looks >= self.ENDS_AT[job_id]
            jobs.append(
                {
                    "jobId": job_id,
                    "jobName": job_id,
                    "jobDefinition": "arn:aws:batch:us-east-1:0:job-definition/x:1",
                    "status": ("FAILED" if job_id == "b" else "SUCCEEDED") if done else "RUNNING",
                    "createdAt": NOW,
                    "container": {"exitCode": 3} if done and job_id == "b" else {},
                    "dependsOn": [{"jobId": "c"}] if job_id == "a" else [],
                }
            )
        self.looks += 1
        return {"jobs": jobs}


def test_wait_on_a_graph_prints_plain_progress_lines_when_not_a_terminal(cli, monkeypatch) -> None:  # noqa: F811
    backend = Batch()

    @contextmanager
    def scripted(settings: Any, *, run_here: bool = False) -> Any:
        yield backend

    monkeypatch.setattr(bootstrap, "backend", scripted)
    monkeypatch.setattr("localbatch.cli.jobs.time.sleep", lambda s: None)
    result = cli("wait", "a", "b")
    assert result.exit_code == 3, result.output  # b's exit code: the first that did not succeed
    lines = [line.split(" | elapsed")[0] for line in result.stderr.splitlines() if line.startswith("3 jobs:")]
    assert lines[0] == "3 jobs: 3 RUNNING | done 0/3 (succeeded 0, failed 0)"  # a, b and c, which a waits for
    assert lines[-1] == "3 jobs: 2 SUCCEEDED, 1 FAILED | done 3/3 (succeeded 2, failed 1)"
    assert len(lines) == len(set(lines))  # a line per change, not per look


def test_wait_on_one_plain_job_shows_no_progress(cli, monkeypatch) -> None:  # noqa: F811
    backend = Batch()
    backend.looks = 100  # everything ended

    @contextmanager
    def scripted(settings: Any, *, run_here: bool = False) -> Any:
        yield backend

    monkeypatch.setattr(bootstrap, "backend", scripted)
    result = cli("wait", "c")
    assert result.exit_code == 0 and "jobs:" not in result.stderr


@pytest.mark.parametrize("args", [("top", "--interval", "0"), ("advise", "x", "--limit", "0")])
def test_bad_flags_are_refused(cli, args) -> None:  # noqa: F811
    result = cli(*args)
    assert result.exit_code == 2


def test_top_once_without_a_daemon_reads_the_store(cli) -> None:  # noqa: F811
    result = cli("top", "--once")
    assert result.exit_code == 0, result.output
    assert "compute environments" in result.stdout and "nothing running" in result.stdout


def test_session_top_snapshot_needs_only_the_api(cli) -> None:  # noqa: F811
    assert callable(session.top_snapshot) and app is not None


def test_describe_shows_each_attempts_usage_and_the_running_ones_live() -> None:
    detail = {
        "jobId": "j",
        "jobName": "n",
        "jobDefinition": "arn:aws:batch:us-east-1:0:job-definition/x:1",
        "jobQueue": "arn:aws:batch:us-east-1:0:job-queue/default",
        "status": "RUNNING",
        "startedAt": NOW,
        "attempts": [{"startedAt": NOW, "stoppedAt": NOW, "container": {"exitCode": 137, "logStreamName": "x/1"}}],
        "container": {"logStreamName": "x/2"},
    }
    used = {
        "attempts": [
            {
                "attempt": 1,
                "usage": {"cpuAvgPercent": 35, "cpuPeakPercent": 98.5, "memoryPeakMiB": 511.5, "memoryLimitMiB": 512},
            }
        ],
        "live": {
            "cpuAvgPercent": 10,
            "cpuPeakPercent": 20,
            "memoryPeakMiB": 64,
            "gpuAvgPercent": 40,
            "gpuPeakPercent": 90,
        },
    }
    shown = text_of(*render.job_view(detail, [], usage=used), width=240)
    first = next(line for line in shown.splitlines() if line.startswith("1 "))
    assert "35% / 98.5%" in first and "511.5 / 512 MiB" in first and first.rstrip().endswith("x/1")
    second = next(line for line in shown.splitlines() if line.startswith("2 "))
    assert "10% / 20%" in second and "64 MiB" in second and "40% / 90%" in second
    assert "CPU AVG/PEAK" not in text_of(*render.job_view(detail, []))  # --target aws: no usage
