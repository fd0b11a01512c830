"""Job events end to end: a real daemon posts EventBridge-shaped events to webhook receivers on
127.0.0.1, runs a command hook, retries a failing webhook and notes its failures in
``localbatch events``; a rate schedule submits a job and a trigger follows it."""

from __future__ import annotations

import json
import select
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localbatch.extensions import EVENT_STREAM, EVENTS, SCHEDULES
from tests.integration.daemons import CONFIG, Daemon, started_daemon

TERMINAL = ("SUCCEEDED", "FAILED")


class Receiver:
    """A webhook endpoint: answers ``code`` to every POST (or, with ``hang``, nothing until
    released), keeping each body it got."""

    def __init__(self, code: int = 200, hang: bool = False) -> None:
        self.code, self.hang = code, hang
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.bodies.append(body)
                if receiver.hang:
                    receiver.release.wait(30)
                self.send_response(receiver.code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"

    def got(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)


@contextmanager
def receivers(*made: Receiver) -> Iterator[None]:
    threads = [threading.Thread(target=r.server.serve_forever, daemon=True) for r in made]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for r in made:
            r.release.set()
            r.server.shutdown()
            r.server.server_close()


def until(what: str, found: Callable[[], Any], timeout_s: float = 60) -> Any:
    """Poll ``found`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def logged(daemon: Daemon, **filters: str) -> list[dict[str, Any]]:
    """The whole event log as {seq, event}, through the daemon's socket (polling with a CLI
    process per look would cost a second each); ``localbatch events`` is checked on its own."""
    answer = daemon.api.get(EVENT_STREAM, {"after": 0, "limit": 1000, **filters})
    entries: list[dict[str, Any]] = answer["events"]
    return entries


def _line_from(process: subprocess.Popen[str]) -> dict[str, Any] | None:
    """The next line ``process`` printed, parsed, or None when none came within a moment."""
    ready, _, _ = select.select([process.stdout], [], [], 0.5)
    if not ready or process.stdout is None:
        return None
    line = process.stdout.readline()
    return json.loads(line) if line.strip() else None


def cli_logged(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    """``localbatch events --json --since 0`` as a list of {seq, event}."""
    out = daemon.ok("events", "--json", "--since", "0", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_webhook_and_hook_receive_each_state_change_in_order(tmp_path: Path, docker_client: Any) -> None:
    receiver = Receiver()
    hooked = tmp_path / "hooked.jsonl"
    config = (
        CONFIG
        + f"""
[[webhooks]]
name = "all"
url = "{receiver.url}"

[[hooks]]
name = "ended"
command = ["sh", "-c", "cat >> {shlex.quote(str(hooked))}; echo >> {shlex.quote(str(hooked))}"]
statuses = ["SUCCEEDED", "FAILED"]
"""
    )
    with receivers(receiver), started_daemon(tmp_path, docker_client, config) as daemon:
        follower = daemon.popen("events", "-f", "--json", "--status", "SUCCEEDED")  # long polls the daemon
        try:
            job_id = daemon.submit("hello")
            daemon.wait_for(job_id, *TERMINAL)
            followed = until("events -f printed the job's end", lambda: _line_from(follower))
            assert followed["event"]["detail"]["jobId"] == job_id
            assert followed["event"]["detail"]["status"] == "SUCCEEDED"
        finally:
            follower.kill()
            follower.communicate(timeout=10)

        def statuses() -> list[str]:
            return [b["detail"]["status"] for b in receiver.got() if b["detail"]["jobId"] == job_id]

        until("the webhook got the SUCCEEDED event", lambda: "SUCCEEDED" in statuses())
        history = daemon.api.get(EVENTS, {"jobId": job_id})["events"]
        changes = [e["to"] for e in history if e["from"] is not None]  # no event for the submission, as AWS
        assert statuses() == changes and changes[-3:] == ["STARTING", "RUNNING", "SUCCEEDED"]
        last = receiver.got()[-1]
        assert {k: last[k] for k in ("version", "detail-type", "source", "account", "region")} == {
            "version": "0",
            "detail-type": "Batch Job State Change",
            "source": "aws.batch",
            "account": "000000000000",
            "region": "us-east-1",
        }
        assert last["resources"] == [f"arn:aws:batch:us-east-1:000000000000:job/{job_id}"]
        assert last["detail"]["jobName"] == "hello" and last["detail"]["container"]["exitCode"] == 0
        assert last["detail"]["jobQueue"].endswith(":job-queue/default")

        hook_lines = until("the hook ran", lambda: hooked.exists() and hooked.read_text().strip().splitlines())
        assert [json.loads(line)["detail"]["status"] for line in hook_lines] == ["SUCCEEDED"]

        entries = cli_logged(daemon)
        mine = [e for e in entries if e["event"]["detail"].get("jobId") == job_id]
        assert [e["event"]["detail"]["status"] for e in mine] == statuses()
        assert [e["event"]["id"] for e in mine] == [b["id"] for b in receiver.got() if b["detail"]["jobId"] == job_id]
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(set(seqs))
        only_ended = cli_logged(daemon, "--status", "SUCCEEDED", "--job-queue", "default")
        assert [e["event"]["detail"]["status"] for e in only_ended] == ["SUCCEEDED"]
        assert daemon.ok("events", "--since", "0").count(job_id) == len(changes)


def test_a_failing_or_hanging_webhook_neither_delays_jobs_nor_goes_unnoticed(
    tmp_path: Path, docker_client: Any
) -> None:
    failing, hanging = Receiver(code=500), Receiver(hang=True)
    config = (
        CONFIG
        + f"""
[[webhooks]]
name = "failing"
url = "{failing.url}"
statuses = ["SUCCEEDED"]
max_attempts = 3
backoff_seconds = 0.1

[[webhooks]]
name = "hanging"
url = "{hanging.url}"
timeout_seconds = 0.5
max_attempts = 2
backoff_seconds = 0.1
"""
    )
    with receivers(failing, hanging), started_daemon(tmp_path, docker_client, config) as daemon:
        first = daemon.submit("hello")
        second = daemon.submit("hello")
        # the hanging webhook holds its worker on every event: the jobs run and end regardless
        daemon.wait_for(first, *TERMINAL)
        assert daemon.wait_for(second, *TERMINAL)["status"] == "SUCCEEDED"

        def failures(name: str) -> list[dict[str, Any]]:
            return [
                e["event"]["detail"]
                for e in logged(daemon)
                if e["event"]["detail-type"] == "localbatch Delivery Failed" and e["event"]["detail"]["webhook"] == name
            ]

        given_up = until(
            "the failing webhook gave up on both SUCCEEDED events",
            lambda: [f for f in failures("failing") if f["retryAt"] is None and f["attempt"] == 3][1:],
        )
        assert {f["jobId"] for f in failures("failing") if f["retryAt"] is None} == {first, second}
        assert given_up[0]["error"].startswith("HTTP 500")
        assert len(failing.got()) >= 6  # 3 attempts for each of the two events: retried
        assert [f["attempt"] for f in failures("failing") if f["jobId"] == first] == [1, 2, 3]

        hung = until("the hanging webhook's failure is noted", lambda: failures("hanging"))
        assert "timed out" in hung[0]["error"] and hung[0]["attempt"] == 1
        text = daemon.ok("events", "--since", "0")
        assert "Delivery Failed" in text and "failing: attempt 3/3: HTTP 500" in text


def test_a_rate_schedule_submits_and_a_trigger_follows(tmp_path: Path, docker_client: Any) -> None:
    config = (
        CONFIG
        + """
[[schedules]]
name = "tick"
expression = "rate(1 day)"
job_definition = "hello"
parameters = { greeting = "scheduled" }

[[triggers]]
name = "after-tick"
on_statuses = ["SUCCEEDED"]
job_name_prefix = "tick"
job_definition = "hello"
job_name = "tock"
"""
    )
    with started_daemon(tmp_path, docker_client, config) as daemon:
        # A rate fires when first seen: at start, before `hello` is registered, so the first
        # try fails and is tried again (EventBridge retries a target it could not invoke).
        def schedule() -> dict[str, Any]:
            answer: dict[str, Any] = daemon.api.get(SCHEDULES, {})
            return answer

        ticked = until("the schedule submitted its job", lambda: schedule()["schedules"][0]["lastJobId"])
        detail = daemon.wait_for(ticked, *TERMINAL)
        assert detail["jobName"] == "tick" and detail["parameters"]["greeting"] == "scheduled"
        assert detail["tags"]["localbatch:schedule"] == "tick"

        tocked = until("the trigger submitted its job", lambda: schedule()["triggers"][0]["lastJobId"])
        followed = daemon.wait_for(tocked, *TERMINAL)
        assert followed["jobName"] == "tock" and followed["status"] == "SUCCEEDED"
        environment = {e["name"]: e["value"] for e in followed["container"]["environment"]}
        assert environment["LOCALBATCH_TRIGGER_JOB_ID"] == ticked
        assert until("tock's SUCCEEDED is logged", lambda: logged(daemon, status="SUCCEEDED")[1:])

        listed = schedule()
        assert listed["schedules"][0]["lastOutcome"] == "submitted"
        assert listed["schedules"][0]["nextRunAt"] > listed["schedules"][0]["lastRunAt"]
        assert listed["triggers"][0]["lastOutcome"] == "submitted"
        # tock's own success does not fire the trigger again: its name is not tick*, and a
        # trigger never feeds on its own jobs
        submissions = [e for e in logged(daemon) if e["event"]["detail-type"] == "localbatch Rule Submission"]
        assert [d["event"]["detail"]["rule"] for d in submissions if d["event"]["detail"]["jobId"]] == [
            "tick",
            "after-tick",
        ]
        assert json.loads(daemon.ok("schedules", "--json")) == schedule()
        table = daemon.ok("schedules")
        assert "rate(1 day)" in table and "after-tick" in table and "submitted" in table
