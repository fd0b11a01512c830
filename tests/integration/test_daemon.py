"""The daemon end to end: started in the background as a user would, driven by the real CLI
over its real socket, running real containers. Each test has its own home and config; the
fixture stops the daemon and asserts no container of that home is left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

from localbatch.awsbatch.model import validate_output
from localbatch.extensions import EVENTS
from tests.integration.conftest import hanging_registry
from tests.integration.daemons import HELLO, REPO, Daemon


def test_the_cli_drives_the_daemon_end_to_end(daemon: Daemon) -> None:
    status = json.loads(daemon.ok("daemon", "status", "--json"))
    assert status["pid"] == daemon.pid() and status["capacity"]["vcpus"] >= 1
    second = daemon("daemon", "start")  # one daemon per home
    assert second.returncode == 1 and f"already runs for {daemon.home / 'home'} (pid {daemon.pid()})" in second.stderr
    assert daemon.ok("register", str(HELLO)).startswith("hello:2 ")  # every register is a revision
    job_id = daemon.submit("hello", "--param", "greeting=hey", "--env", "STAGE=e2e")
    waited = daemon("wait", job_id)
    assert waited.returncode == 0, waited.stderr
    detail = daemon.detail(job_id)
    assert detail["status"] == "SUCCEEDED" and detail["jobDefinition"].endswith("job-definition/hello:2")
    assert validate_output("DescribeJobs", {"jobs": [detail]}) == []
    assert daemon.ok("logs", job_id) == (
        f"hey from {job_id}, attempt 1, queue default, compute environment local, stage e2e\n"
    )
    listed = json.loads(daemon.ok("ls", "--status", "SUCCEEDED", "--json"))["jobSummaryList"]
    assert [j["jobId"] for j in listed] == [job_id]
    queues = json.loads(daemon.ok("queues", "--json"))["jobQueues"]
    assert [q["jobQueueName"] for q in queues] == ["default"]
    resources = json.loads(daemon.ok("resources", "--json"))
    assert resources["computeEnvironments"][0]["capacity"] == {"vcpus": 2.0, "memoryMiB": 1024, "gpus": 0}
    by_arn = json.loads(daemon.ok("submit", detail["jobDefinition"], "--json"))
    assert by_arn["jobName"] == "hello"  # named after the definition the ARN names
    failing = daemon.submit(str(HELLO), "--command", 'sh -c "exit 7"')
    assert daemon("wait", failing).returncode == 7


def test_twenty_mixed_jobs_never_exceed_capacity_at_any_instant(daemon: Daemon) -> None:
    rng = random.Random(20)
    sizes: dict[str, tuple[float, int]] = {}
    for _ in range(20):
        vcpus, memory = rng.choice([0.5, 1, 2]), rng.choice([128, 256, 512, 1024])
        requirements = [{"type": "VCPU", "value": f"{vcpus:g}"}, {"type": "MEMORY", "value": str(memory)}]
        command = ["sleep", rng.choice(["0.3", "0.6", "1"])]
        job_id = daemon.submit_api(containerOverrides={"resourceRequirements": requirements, "command": command})
        sizes[job_id] = (vcpus, memory)
    spans = []
    for job_id in sizes:
        detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=120)
        assert detail["status"] == "SUCCEEDED", detail.get("statusReason")
        spans.append((daemon.held_from(job_id), detail["stoppedAt"], *sizes[job_id]))
    for instant, *_ in spans:  # the most held is at some job's start
        held = [(v, m) for start, stop, v, m in spans if start <= instant < stop]
        assert sum(v for v, _ in held) <= 2, held
        assert sum(m for _, m in held) <= 1024, held
    assert max(len([1 for s, e, *_ in spans if s <= i < e]) for i, *_ in spans) >= 2  # it did pack


def test_a_job_bigger_than_every_compute_environment_is_refused_with_the_numbers(daemon: Daemon) -> None:
    result = daemon("submit", "hello", "--vcpus", "4")
    assert result.returncode == 2
    assert "needs 4 vCPU" in result.stderr and "has 2 vCPU" in result.stderr
    assert json.loads(daemon.ok("ls", "--json"))["jobSummaryList"] == []


def test_cancel_and_terminate_as_aws_does(daemon: Daemon) -> None:
    running = daemon.submit("hello", "--vcpus", "2", "--command", "sleep 60")
    waiting = daemon.submit("hello", "--vcpus", "1", "--command", "sleep 60")
    daemon.wait_for(running, "RUNNING")
    assert daemon.detail(waiting)["statusReason"].startswith("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - needs 1 vCPU")
    daemon.ok("cancel", running, "--reason", "has no effect on a running job")
    daemon.ok("cancel", waiting, "--reason", "no longer needed")
    cancelled = daemon.wait_for(waiting, "FAILED")
    assert cancelled["isCancelled"] is True and cancelled["statusReason"] == "no longer needed"
    assert daemon.detail(running)["status"] == "RUNNING"
    daemon.ok("terminate", running, "--reason", "stop")
    terminated = daemon.wait_for(running, "FAILED", timeout_s=30)
    assert terminated["isTerminated"] is True and terminated["statusReason"] == "stop"
    assert [c for c in daemon.containers() if c["State"] == "running"] == []


def test_kill_9_loses_nothing_and_a_restart_finishes_every_job(daemon: Daemon) -> None:
    ticker = "sh -c 'for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.5; done'"
    quick = daemon.submit("hello", "--vcpus", "0.5", "--command", "sh -c 'echo quick; sleep 1'")
    slow = daemon.submit("hello", "--vcpus", "0.5", "--command", ticker)
    queued = daemon.submit("hello", "--vcpus", "2", "--command", "echo queued")
    daemon.wait_for(slow, "RUNNING")
    os.kill(daemon.pid(), signal.SIGKILL)
    time.sleep(1.5)  # the quick job's container exits while no daemon watches
    daemon.ok("daemon", "start")
    for job_id in (quick, slow, queued):
        assert daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=60)["status"] == "SUCCEEDED"
    assert daemon.ok("logs", quick) == "quick\n"
    assert daemon.ok("logs", slow) == "".join(f"tick {i}\n" for i in range(1, 7))
    assert daemon.ok("logs", queued) == "queued\n"
    assert [len(daemon.detail(j)["attempts"]) for j in (quick, slow, queued)] == [1, 1, 1]


def test_stopping_the_daemon_leaves_containers_running_and_start_readopts_them(daemon: Daemon) -> None:
    job_id = daemon.submit("hello", "--command", "sh -c 'sleep 2; echo survived'")
    daemon.wait_for(job_id, "RUNNING")
    daemon.ok("daemon", "stop")
    assert [c["State"] for c in daemon.containers()] == ["running"]
    assert daemon("daemon", "status").returncode == 1
    daemon.ok("daemon", "start")
    assert daemon.wait_for(job_id, "SUCCEEDED", "FAILED")["status"] == "SUCCEEDED"
    assert daemon.ok("logs", job_id) == "survived\n"


def test_a_backup_taken_while_jobs_run_restores_and_its_jobs_in_flight_end_clearly(daemon: Daemon) -> None:
    done = daemon.submit("hello", "--command", "echo before")
    daemon.wait_for(done, "SUCCEEDED")
    running = daemon.submit("hello", "--command", "sleep 3")
    daemon.wait_for(running, "RUNNING")
    backup = daemon.home.parent / "state.backup"
    assert "backed up 2 jobs" in daemon.ok("daemon", "backup", str(backup))
    assert daemon("daemon", "restore", str(backup)).returncode == 2  # the daemon has the home
    later = daemon.submit("hello", "--command", "echo later")
    daemon.wait_for(running, "SUCCEEDED")
    daemon.ok("daemon", "stop")
    assert "restored 2 jobs" in daemon.ok("daemon", "restore", str(backup))
    daemon.ok("daemon", "start")
    # Restored as RUNNING: collected if its exited container is still there, else ended clearly.
    ended = daemon.wait_for(running, "SUCCEEDED", "FAILED")
    assert ended["status"] == "SUCCEEDED" or ended["statusReason"] == "Container vanished while the daemon was down"
    assert daemon.detail(done)["status"] == "SUCCEEDED"
    assert daemon("describe", later).returncode == 2  # submitted after the backup


def test_run_goes_through_the_daemon_and_follows_output(daemon: Daemon) -> None:
    result = daemon("run", str(HELLO), "--param", "greeting=queued")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("queued from ") and "queue default" in result.stdout
    assert "SUBMITTED" in result.stderr and "SUCCEEDED" in result.stderr
    listed = json.loads(daemon.ok("ls", "--json"))["jobSummaryList"]
    assert len(listed) == 1 and listed[0]["status"] == "SUCCEEDED"
    assert daemon("run", str(HELLO), "--command", 'sh -c "exit 5"').returncode == 5


def test_a_launch_cut_short_by_kill_9_is_queued_again_without_spending_an_attempt(
    daemon: Daemon, tmp_path: Path
) -> None:
    with hanging_registry() as image:  # the job stays STARTING, with no container
        hangs = tmp_path / "hangs.toml"
        hangs.write_text(HELLO.read_text().replace('image = "busybox:1.36"', f'image = "{image}"'))
        daemon.ok("register", str(hangs))
        job_id = daemon.submit("hello")
        daemon.wait_for(job_id, "STARTING")
        os.kill(daemon.pid(), signal.SIGKILL)
        daemon.ok("daemon", "start")
        daemon.wait_for(job_id, "STARTING")  # launched again by the new daemon
        moves = [(e["from"], e["to"]) for e in daemon.api.get(EVENTS, {"jobId": job_id})["events"]]
        assert moves.count(("STARTING", "RUNNABLE")) == 1, moves
        assert daemon.detail(job_id)["attempts"] == []
        daemon.ok("terminate", job_id, "--reason", "registry never answers")
        ended = daemon.wait_for(job_id, "FAILED", timeout_s=30)
    assert ended["isTerminated"] is True and ended["statusReason"] == "registry never answers"
    assert daemon.containers() == []


def test_the_daemon_will_not_start_while_an_offline_run_drives_the_home(daemon: Daemon) -> None:
    daemon.ok("daemon", "stop")
    # The job runs until the test lets it end, so the refusal is seen however loaded the machine.
    waits = "sh -c 'until [ -e /go ]; do sleep 0.1; done; echo done'"
    offline = daemon.popen("run", str(HELLO), "--command", waits, "--timeout", "600")
    try:
        deadline = time.monotonic() + 60
        while not [c for c in daemon.containers() if c["State"] == "running"]:
            assert offline.poll() is None and time.monotonic() < deadline, "the offline run never started its job"
            time.sleep(0.2)
        refused = daemon("daemon", "start")
        assert refused.returncode == 1
        assert "`localbatch run` is running jobs in" in refused.stderr and "without a daemon" in refused.stderr
        (container,) = daemon.containers()
        daemon.client.api.exec_start(daemon.client.api.exec_create(container["Id"], ["touch", "/go"]))
        stdout, stderr = offline.communicate(timeout=60)
    finally:
        offline.kill()
    assert offline.returncode == 0, stderr
    assert stdout == "done\n"
    daemon.ok("daemon", "start")  # once the run has ended


def test_the_readme_examples_render_and_train_through_the_daemon(daemon: Daemon) -> None:
    render = daemon.submit(str(REPO / "jobdefs" / "render.toml"), "--param", "frame=7")
    train = daemon.submit(str(REPO / "jobdefs" / "train.toml"), "--param", "epochs=1")
    for job_id in (render, train):
        assert daemon("wait", job_id).returncode == 0
    assert daemon.ok("logs", render) == "rendering frame 7 on local\nframe 7 done\n"
    assert daemon.ok("logs", train) == "training for 1 epochs on GPUs [none]\nepoch 1\n"
    refused = daemon("submit", str(REPO / "jobdefs" / "train.toml"), "--gpus", "1", "--memory-mib", "8192")
    assert refused.returncode == 2
    assert "needs 1 GPU and 8192 MiB memory" in refused.stderr and "has 0 GPU and 1024 MiB memory" in refused.stderr
