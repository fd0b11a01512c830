"""`localbatch run` end to end: the real CLI process, the real engine, a temporary home.

Every container the CLI creates carries ``localbatch.home=<this test's home id>``; the
fixture removes any left over (and the tests assert there are none).
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localbatch.awsbatch.model import validate_output
from tests.integration.conftest import LocalbatchCli, hanging_registry, home_environment, remove_labelled

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "jobdefs" / "hello.toml"
FLAKY = REPO / "jobdefs" / "flaky.toml"


@dataclass
class Cli(LocalbatchCli):
    def wait_for_running_container(self, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [c for c in self.containers() if c["State"] == "running"]
            if running:
                return running[0]
            time.sleep(0.1)
        raise AssertionError("no container started")

    def only_job(self) -> dict[str, Any]:
        listed = json.loads(self("ls", "--json").stdout)["jobSummaryList"]
        assert len(listed) == 1
        return json.loads(self("describe", listed[0]["jobId"], "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path, docker_client: Any, busybox_image: str) -> Iterator[Cli]:
    env, settings = home_environment(tmp_path)
    labels = {"localbatch.home": settings.home_id}
    runner = Cli(home=tmp_path, env=env, labels=labels, client=docker_client)
    yield runner
    leftovers = runner.containers()
    remove_labelled(docker_client, labels)
    assert leftovers == [], "localbatch left containers behind"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hello_succeeds_with_aws_environment_parameters_and_overrides(cli: Cli):
    result = cli("run", str(HELLO), "--param", "greeting=hi", "--env", "STAGE=test")
    assert result.returncode == 0, result.stderr
    job = cli.only_job()
    assert result.stdout == (
        f"hi from {job['jobId']}, attempt 1, queue default, compute environment local, stage test\n"
    )
    for status in ("SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"):
        assert status in result.stderr
    assert job["status"] == "SUCCEEDED" and job["statusReason"] == "Essential container in task exited"
    assert job["attempts"][0]["container"]["exitCode"] == 0
    assert job["parameters"] == {"greeting": "hi"}
    assert {"name": "STAGE", "value": "test"} in job["container"]["environment"]
    assert validate_output("DescribeJobs", {"jobs": [job]}) == []


def test_nonzero_exit_is_the_run_exit_code(cli: Cli):
    result = cli("run", str(HELLO), "--vcpus", "0.5", "--memory-mib", "64", "--command", 'sh -c "exit 3"')
    assert result.returncode == 3, result.stderr
    job = cli.only_job()
    assert job["status"] == "FAILED" and job["container"]["exitCode"] == 3
    assert job["container"]["command"] == ["sh", "-c", "exit 3"]


def test_retries_follow_the_definitions_rules(cli: Cli):
    result = cli("run", str(FLAKY))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "attempt 1\nattempt 2\nattempt 3\n"
    job = cli.only_job()
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3, 3, 0]
    assert len({a["container"]["logStreamName"] for a in job["attempts"]}) == 3
    no_retry = cli("run", str(FLAKY), "--command", 'sh -c "exit 2"')
    assert no_retry.returncode == 2 and "not retrying: evaluate_on_exit[0] matched: EXIT" in no_retry.stderr


def test_retry_flags_replace_the_rules_and_describe_shows_every_attempt(cli: Cli):
    # exit 1 twice, then 0: no rule matches exit code 1, and no match means retry
    flaky = 'sh -c "echo try $AWS_BATCH_JOB_ATTEMPT; test $AWS_BATCH_JOB_ATTEMPT -ge 3 || exit 1"'
    rule = "action=EXIT,on_exit_code=3"
    result = cli("run", str(HELLO), "--attempts", "3", "--retry-on-exit", rule, "--command", flaky)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "try 1\ntry 2\ntry 3\n"
    assert result.stderr.count("retrying: no evaluate_on_exit rule matched: RETRY") == 2
    job = cli.only_job()
    assert job["retryStrategy"] == {"attempts": 3, "evaluateOnExit": [{"action": "EXIT", "onExitCode": "3"}]}
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [1, 1, 0]
    shown = cli("describe", job["jobId"])
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert [row[0] for row in rows] == ["1", "2", "3"] and [row[3] for row in rows] == ["1", "1", "0"]
    for row, attempt in zip(rows, job["attempts"], strict=True):
        assert row[-1] == attempt["container"]["logStreamName"]
        assert "Essential container in task exited" in " ".join(row)
    exits = cli("run", str(HELLO), "--attempts", "3", "--retry-on-exit", rule, "--command", 'sh -c "exit 3"')
    assert exits.returncode == 3 and "not retrying: evaluate_on_exit[0] matched: EXIT" in exits.stderr


def test_oom_kill_is_reported_with_aws_reason(cli: Cli):
    hog = 'sh -c "x=$(head -c 100000000 /dev/zero | tr \\"\\\\0\\" a)"'
    result = cli("run", str(HELLO), "--memory-mib", "16", "--command", hog)
    assert result.returncode == 137, result.stderr
    job = cli.only_job()
    assert job["container"]["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert job["statusReason"] == "Essential container in task exited"
    assert "OutOfMemoryError" in result.stderr


def test_timeout_kills_the_container_with_aws_reason_and_is_never_retried(cli: Cli):
    started = time.monotonic()
    result = cli("run", str(HELLO), "--timeout", "2", "--attempts", "3", "--command", "sleep 60")
    assert time.monotonic() - started < 30
    assert result.returncode == 137, result.stderr
    assert "below AWS Batch's minimum of 60" in result.stderr
    assert "not retrying: cancelled, terminated and timed-out attempts are not retried" in result.stderr
    job = cli.only_job()
    assert job["status"] == "FAILED" and job["statusReason"] == "Job attempt duration exceeded timeout"
    assert job["timeout"] == {"attemptDurationSeconds": 2} and job["retryStrategy"]["attempts"] == 3
    [attempt] = job["attempts"]  # attempts are left, yet a timed-out attempt is not retried
    assert attempt["statusReason"] == "Job attempt duration exceeded timeout"


def test_limits_are_applied_as_aws_does_on_ec2(cli: Cli):
    process = cli.popen("run", str(HELLO), "--vcpus", "0.5", "--memory-mib", "64", "--command", "sleep 30")
    try:
        container = cli.wait_for_running_container()
        inspected = cli.client.api.inspect_container(container["Id"])
        host = inspected["HostConfig"]
        assert host["CpuShares"] == 512
        assert host["Memory"] == 64 * 1024 * 1024 == host["MemorySwap"]
        assert host["NanoCpus"] == 0  # shares only, unless cpu_limit = "quota"
        assert inspected["Name"].startswith("/localbatch-") and inspected["Name"].endswith("-1")
        labels = inspected["Config"]["Labels"]
        assert labels["localbatch.attempt"] == "1" and labels["localbatch.job_id"]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_sigint_stops_the_container_and_leaves_none_behind(cli: Cli):
    process = cli.popen("run", str(HELLO), "--command", "sleep 60")
    cli.wait_for_running_container()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert cli.containers() == []
    job = cli.only_job()
    assert job["status"] == "FAILED" and job["isTerminated"] is True
    assert job["statusReason"] == "Terminated: localbatch run received SIGINT"


def test_output_is_kept_per_attempt_and_readable_with_logs(cli: Cli):
    result = cli("run", str(FLAKY))
    assert result.returncode == 0
    job = cli.only_job()
    assert cli("logs", job["jobId"]).stdout == "attempt 3\n"
    assert cli("logs", job["jobId"], "--attempt", "1").stdout == "attempt 1\n"
    log_file = cli.home / "home" / "logs" / job["jobId"] / "2.log"
    assert log_file.read_text() == "attempt 2\n"


def test_missing_image_fails_with_cannot_pull_reason(cli: Cli, tmp_path: Path):
    text = HELLO.read_text().replace('image = "busybox:1.36"', 'image = "127.0.0.1:9/localbatch-missing:nope"')
    result = cli("run", str(write(tmp_path, "missing.toml", text)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    job = cli.only_job()
    assert job["statusReason"] == "Task failed to start"
    assert job["attempts"][0]["container"]["reason"].startswith("CannotPullContainerError: ")
    assert "CannotPullContainerError" in result.stderr


def test_resources_reports_host_and_engine(cli: Cli):
    report = json.loads(cli("resources", "--json").stdout)
    assert report["host"]["cpus"] >= 1 and report["host"]["memoryMiB"] > 0
    assert report["engine"]["name"] == "docker" and report["engine"]["networkMode"] in ("host", "bridge")
    assert report["computeEnvironments"][0]["computeEnvironmentName"] == "local"


def test_logs_follow_streams_a_running_job_until_it_ends(cli: Cli):
    ticker = "sh -c 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done'"
    process = cli.popen("run", str(HELLO), "--command", ticker)
    try:
        cli.wait_for_running_container()
        job_id = json.loads(cli("ls", "--json").stdout)["jobSummaryList"][0]["jobId"]
        followed = cli("logs", job_id, "--follow", timeout=30)
    finally:
        process.communicate(timeout=30)
    assert followed.returncode == 0
    assert followed.stdout == "".join(f"tick {i}\n" for i in range(1, 6))


def test_ctrl_c_during_a_hanging_image_pull_stops_at_once(cli: Cli, tmp_path: Path):
    with hanging_registry() as image:
        text = HELLO.read_text().replace('image = "busybox:1.36"', f'image = "{image}"')
        process = cli.popen("run", str(write(tmp_path, "hangs.toml", text)))
        deadline = time.monotonic() + 20
        while "STARTING" not in _job_statuses(cli) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the pull is under way
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
        assert time.monotonic() - interrupted < 5, "Ctrl-C waited for the pull"
    assert process.returncode == 130, stderr
    job = cli.only_job()
    assert job["status"] == "FAILED" and job["isTerminated"] is True
    assert job["statusReason"] == "Terminated: localbatch run received SIGINT"


def _job_statuses(cli: Cli) -> str:
    listed = cli("ls", "--json")
    return listed.stdout if listed.returncode == 0 else ""


# What a container prints: an OSC that retitles the window, a CSI that clears the screen, an
# OSC 52 that writes the clipboard, a bell.
HOSTILE_OUTPUT = "a\x1b]0;pwned\x07b\x1b[2Jc\x1b]52;c;cHduZWQ=\x07d\n"


def _on_a_terminal(cli: Cli, *args: str) -> str:
    """What ``localbatch ARGS`` writes to a terminal (a pseudo-terminal's output, its CRLFs as LF)."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "localbatch", *args], env=cli.env, cwd=cli.home, stdout=terminal
        )
        os.close(terminal)
        received = b""
        for _ in range(10_000):
            try:
                part = os.read(controller, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not part:
                break
            received += part
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    return received.decode().replace("\r\n", "\n")


def test_container_output_is_shown_not_obeyed_on_a_terminal_and_exact_into_a_pipe(cli: Cli, tmp_path: Path):
    definition = write(
        tmp_path,
        "hostile.toml",
        'name = "hostile"\nimage = "busybox:1.36"\n'
        "command = ['printf', 'a\\033]0;pwned\\007b\\033[2Jc\\033]52;c;cHduZWQ=\\007d\\n']\n"
        "[resources]\nvcpus = 0.5\nmemory_mib = 64\n",
    )
    result = cli("run", str(definition))
    assert result.returncode == 0, result.stderr
    assert result.stdout == HOSTILE_OUTPUT  # into a pipe: the bytes as written
    job_id = cli.only_job()["jobId"]
    assert cli("logs", job_id).stdout == HOSTILE_OUTPUT
    shown = _on_a_terminal(cli, "logs", job_id)
    assert shown == "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\x1b]52;c;cHduZWQ=\\x07d\n"
    assert _on_a_terminal(cli, "logs", job_id, "--raw") == HOSTILE_OUTPUT
