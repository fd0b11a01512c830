"""Soak (issue 10 §2): thousands of short jobs through one daemon, then look for what was left.

A real daemon (``python -m localbatch daemon run``) in a fresh home, on this machine's Docker
engine (``busybox:1.36``), its compute environment sized to the host. The job mix is drawn from
``--seed``: single jobs and array jobs, some depending on earlier jobs (singles or whole
arrays), vCPUs in {0.25, 0.5, 1, 2}, 16-256 MiB, retry strategies of 1-3 attempts with and
without ``evaluateOnExit`` rules, a few attempt timeouts, cancels of waiting jobs, terminates of
running ones, and a few terminates that race the job's own end. Whether an attempt fails is set
by the job's parameters (its first ``fail`` attempts exit ``code``), so each job's final status
and attempt count follow from the seed: ``expected`` computes them without the daemon.

Afterwards (every job ended, finished containers removed) it checks:

- every job is SUCCEEDED or FAILED, and ListJobs finds no job in any other status;
- SUCCEEDED + FAILED = submitted, and each job's status and attempt count are the oracle's;
- no container labelled with this home is left (``docker ps -a``); no file in the home but the
  daemon's own and the attempts' logs (nothing in ``staging/``, no temporary file);
- the control loop holds no record of any job but the bounded statuses of ended ones
  (``GET /v1/localbatch/status``: ``loop``);
- the daemon's threads and open files are back within ``THREADS_SLACK``/``FDS_SLACK`` of their
  idle count, and its resident memory within ``RSS_SLACK_MIB`` of its idle figure.

    python -m benchmarks.soak [--jobs 5000] [--seed 1] [--json soak.json]   # ``make soak``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import docker
import psutil

from benchmarks import _batch
from benchmarks.bench_daemon import daemon
from localbatch.client import DaemonClient
from localbatch.extensions import STATUS

QUEUE = "soak"
VCPUS = (0.25, 0.5, 1.0, 2.0)
# The command every job runs: its first ``fail`` attempts exit ``code`` (an array child only when
# its index is a multiple of ``mod``), then it sleeps ``sleep`` seconds and succeeds.
COMMAND = (
    "i=${AWS_BATCH_JOB_ARRAY_INDEX:-0}; f=Ref::fail; [ $((i % Ref::mod)) -eq 0 ] || f=0; "
    "[ $AWS_BATCH_JOB_ATTEMPT -gt $f ] || exit Ref::code; sleep Ref::sleep"
)
DEFAULTS = {"fail": "0", "mod": "1", "code": "1", "sleep": "0"}
# evaluateOnExit rule sets a job may carry: (onExitCode pattern, action), first match decides.
RULES: tuple[tuple[tuple[str, str], ...], ...] = (
    (),
    (("3", "EXIT"), ("*", "RETRY")),
    (("1", "RETRY"), ("*", "EXIT")),
    (("2*", "EXIT"),),
)
CODES = (1, 2, 3, 25)
# How far above its idle figures the daemon may end (after every job ended): docker-py pools
# up to 10 connections to the engine; Python's allocator keeps some freed memory, and the loop
# remembers the status of the last 100,000 ended jobs (``_ENDED_KEPT``). Measured on 5,000 jobs
# (docs/benchmarks.md, Soak): +6.7 MiB, threads and open files back to their idle count.
THREADS_SLACK = 4
FDS_SLACK = 16
RSS_SLACK_MIB = 25.0
WARM_UP = 4  # jobs run before the idle figures are taken
# Jobs submitted but not seen ended, at most: enough to keep the host busy, few enough that
# later jobs depend on earlier ones that have already ended (even in a short soak).
WINDOW = 30
SETTLE_S = 60  # after the last job ended: for containers to be removed, threads to end


@dataclass(frozen=True)
class Submission:
    """One SubmitJob the soak makes, and what it then does to the job."""

    key: str  # unique within a run: "s12", and for arrays the children "s12:0".."s12:k"
    kind: str  # single | array | timeout | blocker | cancel | terminate | race
    vcpus: float
    memory_mib: int
    fail: int = 0  # attempts that fail (every attempt when >= attempts)
    code: int = 1
    mod: int = 1  # array: only children whose index is a multiple of it fail
    attempts: int = 1
    rules: tuple[tuple[str, str], ...] = ()
    array_size: int = 0
    depends_on: tuple[str, ...] = ()  # keys of earlier submissions
    sleep: int = 0
    timeout_s: int | None = None

    def body(self, ids: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "jobName": f"soak-{self.kind}-{self.key}",
            "jobQueue": QUEUE,
            "jobDefinition": "soak",
            "parameters": {
                "fail": str(self.fail),
                "mod": str(self.mod),
                "code": str(self.code),
                "sleep": str(self.sleep),
            },
            "containerOverrides": {
                "resourceRequirements": [
                    {"type": "VCPU", "value": f"{self.vcpus:g}"},
                    {"type": "MEMORY", "value": str(self.memory_mib)},
                ]
            },
            "retryStrategy": {
                "attempts": self.attempts,
                "evaluateOnExit": [{"onExitCode": code, "action": action} for code, action in self.rules],
            },
        }
        if self.array_size:
            body["arrayProperties"] = {"size": self.array_size}
        if self.depends_on:
            body["dependsOn"] = [{"jobId": ids[key]} for key in self.depends_on]
        if self.timeout_s is not None:
            body["timeout"] = {"attemptDurationSeconds": self.timeout_s}
        return body

    @property
    def runs(self) -> int:
        """How many jobs of this submission may run a container (an array parent runs none)."""
        return self.array_size or 1


def plan(jobs: int, seed: int) -> list[Submission]:
    """Submissions whose jobs that may run number at least ``jobs``, drawn from ``seed``."""
    draw = random.Random(seed)
    made: list[Submission] = []
    count = 0

    def resources() -> tuple[float, int]:
        return draw.choice(VCPUS), draw.randint(16, 256)

    while count < jobs:
        key = f"s{len(made)}"
        roll = draw.random()
        vcpus, memory = resources()
        # Most jobs succeed first time; some fail once or twice, some always.
        fail = draw.choices((0, 1, 2, 9), weights=(70, 15, 8, 7))[0]
        base = Submission(
            key, "single", vcpus, memory, fail, draw.choice(CODES), 1, draw.randint(1, 3), draw.choice(RULES)
        )
        earlier = [s.key for s in made if s.kind in ("single", "array")]
        depends = (draw.choice(earlier),) if earlier and draw.random() < 0.15 else ()
        group: list[Submission]
        if roll < 0.80:
            group = [replace(base, depends_on=depends)]
        elif roll < 0.92:
            size = draw.randint(2, 8)
            group = [replace(base, kind="array", array_size=size, mod=draw.randint(1, 3))]
        elif roll < 0.94:  # killed at its attempt timeout: never retried
            group = [Submission(key, "timeout", 0.25, 16, attempts=3, sleep=60, timeout_s=1)]
        elif roll < 0.96:  # a waiting job cancelled: it and the job waiting for it fail, unstarted
            blocker = Submission(key, "blocker", 0.25, 16, sleep=2)
            victim = replace(base, key=f"{key}v", kind="cancel", depends_on=(blocker.key,))
            follower = Submission(f"{key}f", "single", vcpus, memory, depends_on=(victim.key,))
            group = [blocker, victim, follower]
        elif roll < 0.98:  # terminated once seen RUNNING: never retried
            group = [Submission(key, "terminate", 0.25, 16, attempts=3, sleep=60)]
        else:  # terminated at once: it may end first, or be stopped before or after it starts
            group = [replace(base, kind="race")]
        made += group
        count += sum(s.runs for s in group)
    return made


def _attempts(s: Submission, fail: int) -> tuple[str, int]:
    """(status, attempts) of a job whose first ``fail`` attempts exit ``s.code``: AWS's retry
    rules, written out again here so the daemon is checked against something of its own."""
    code = str(s.code)
    for attempt in range(1, s.attempts):
        if attempt > fail:
            return "SUCCEEDED", attempt
        rule = next((a for p, a in s.rules if p == code or (p.endswith("*") and code.startswith(p[:-1]))), "RETRY")
        if rule == "EXIT":
            return "FAILED", attempt
    return ("SUCCEEDED" if fail < s.attempts else "FAILED"), s.attempts


Outcome = tuple[str, int]


def expected(submissions: Sequence[Submission]) -> dict[str, frozenset[Outcome]]:
    """Each job's possible (status, attempt count), by key; one possibility but for races."""
    found: dict[str, frozenset[Outcome]] = {}
    for s in submissions:
        dependency_failed = any(_all_failed(found[d]) for d in s.depends_on)
        if s.kind == "array":
            children = [
                _attempts(s, s.fail if index % s.mod == 0 else 0) if not dependency_failed else ("FAILED", 0)
                for index in range(s.array_size)
            ]
            for index, child in enumerate(children):
                found[f"{s.key}:{index}"] = frozenset({child})
            ok = all(status == "SUCCEEDED" for status, _ in children)
            found[s.key] = frozenset({("SUCCEEDED" if ok else "FAILED", 0)})
        elif dependency_failed or s.kind == "cancel":
            found[s.key] = frozenset({("FAILED", 0)})
        elif s.kind in ("timeout", "terminate"):
            found[s.key] = frozenset({("FAILED", 1)})
        elif s.kind == "race":
            found[s.key] = frozenset({("FAILED", 0), ("FAILED", 1), _attempts(s, s.fail)})
        else:
            found[s.key] = frozenset({_attempts(s, s.fail)})
    return found


def _all_failed(outcomes: frozenset[Outcome]) -> bool:
    return all(status == "FAILED" for status, _ in outcomes)


@dataclass
class Sample:
    rss_mib: float
    threads: int
    fds: int

    @classmethod
    def of(cls, pid: int) -> Sample:
        process = psutil.Process(pid)
        return cls(round(process.memory_info().rss / 2**20, 1), process.num_threads(), process.num_fds())


@dataclass
class Report:
    jobs: int
    seed: int
    submissions: int = 0
    job_ids: int = 0  # every job: singles, parents and children
    containers_run: int = 0  # attempts that ran (retries included)
    succeeded: int = 0
    failed: int = 0
    seconds: float = 0.0
    jobs_per_s: float = 0.0
    idle: Sample | None = None
    peak: Sample | None = None
    end: Sample | None = None
    load_average_before: float = 0.0
    load_average_after: float = 0.0
    loop: dict[str, int] = field(default_factory=dict)  # the loop's records at the end (status "loop")
    problems: list[str] = field(default_factory=list)


def _describe(client: DaemonClient, ids: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        found += client.call("DescribeJobs", {"jobs": list(ids[start : start + 100])})["jobs"]
    return found


class Driver:
    """Submits the plan through the API, keeping at most ``WINDOW`` jobs unfinished, and makes
    the cancels and terminates the plan asks for."""

    def __init__(self, client: DaemonClient, pid: int, submissions: Sequence[Submission], timeout_s: float) -> None:
        self.client = client
        self.pid = pid
        self.submissions = submissions
        self.deadline = time.monotonic() + timeout_s
        self.ids: dict[str, str] = {}  # key -> job id (children: parent id + ":index")
        self.ended: dict[str, dict[str, Any]] = {}
        self.open: dict[str, None] = {}  # job ids not seen ended
        self.to_terminate: dict[str, None] = {}
        self.peak = Sample(0, 0, 0)

    def run(self) -> None:
        for s in self.submissions:
            while len(self.open) >= WINDOW:
                self.poll()
            job_id = self.client.call("SubmitJob", s.body(self.ids))["jobId"]
            self.ids[s.key] = job_id
            keys = [f"{s.key}:{i}" for i in range(s.array_size)] + [s.key]
            for key in keys:
                self.ids.setdefault(key, job_id + key[len(s.key) :])
                self.open[self.ids[key]] = None
            if s.kind == "cancel":
                self.client.call("CancelJob", {"jobId": job_id, "reason": "soak: cancelled while waiting"})
            elif s.kind == "race":
                self.client.call("TerminateJob", {"jobId": job_id, "reason": "soak: terminated at once"})
            elif s.kind == "terminate":
                self.to_terminate[job_id] = None
        while self.open:
            self.poll()

    def poll(self) -> None:
        if time.monotonic() > self.deadline:
            raise RuntimeError(f"{len(self.open)} jobs had not ended by the soak's deadline")
        for job in _describe(self.client, list(self.open)):
            job_id = job["jobId"]
            if job["status"] in _batch.TERMINAL:
                self.ended[job_id] = job
                del self.open[job_id]
                self.to_terminate.pop(job_id, None)
            elif job_id in self.to_terminate and job["status"] == "RUNNING":
                self.client.call("TerminateJob", {"jobId": job_id, "reason": "soak: terminated while running"})
                del self.to_terminate[job_id]
        now = Sample.of(self.pid)
        self.peak = Sample(
            max(self.peak.rss_mib, now.rss_mib), max(self.peak.threads, now.threads), max(self.peak.fds, now.fds)
        )
        time.sleep(0.2)


def check(report: Report, submissions: Sequence[Submission], driver: Driver, client: DaemonClient) -> None:
    """Every job ended as the oracle says, and ListJobs finds none left in another status."""
    oracle = expected(submissions)
    statuses: dict[str, int] = {}
    for key, possible in oracle.items():
        job = driver.ended[driver.ids[key]]
        statuses[job["status"]] = statuses.get(job["status"], 0) + 1
        got = (job["status"], len(job.get("attempts", [])))
        if got not in possible:
            report.problems.append(
                f"{key} ({job['jobName']}, {job['jobId']}): {got}, expected one of {sorted(possible)}"
            )
    report.succeeded = statuses.pop("SUCCEEDED", 0)
    report.failed = statuses.pop("FAILED", 0)
    if statuses or report.succeeded + report.failed != len(oracle):
        report.problems.append(f"counts: {report.succeeded} + {report.failed} != {len(oracle)} ({statuses})")
    report.containers_run = sum(
        sum(1 for a in job.get("attempts", []) if a.get("startedAt")) for job in driver.ended.values()
    )
    for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
        listed = client.call("ListJobs", {"jobQueue": QUEUE, "jobStatus": status})["jobSummaryList"]
        if listed:
            report.problems.append(f"ListJobs finds {len(listed)} job(s) still {status}")


def settle(pid: int, idle: Sample, engine: docker.DockerClient, home_id: str) -> tuple[Sample, int]:
    """Wait (at most ``SETTLE_S``) for this home's containers to be removed and the daemon's
    threads to wind down; then its figures and how many containers are left."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        left = len(engine.api.containers(all=True, filters={"label": f"localbatch.home={home_id}"}))
        now = Sample.of(pid)
        if (left == 0 and now.threads <= idle.threads + THREADS_SLACK) or time.monotonic() > deadline:
            time.sleep(2)  # the last removals' threads and connections wind down
            return Sample.of(pid), len(engine.api.containers(all=True, filters={"label": f"localbatch.home={home_id}"}))
        time.sleep(0.5)


HOME_FILES = {
    "audit.log",
    "audit.log.1",
    "daemon.lock",
    "daemon.pid",
    "daemon.sock",
    "engine.lock",
    "state.db",
    "state.db-shm",
    "state.db-wal",
}


def stray_files(home: Path) -> list[str]:
    """Files in the home that are neither the daemon's own nor an attempt's log
    (``logs/<job>/<attempt>.log``): temporary files left behind, anything in ``staging/``."""
    stray = []
    for path in sorted(home.rglob("*")):
        relative = path.relative_to(home).parts
        if path.is_dir() and relative[0] in ("logs", "staging") and len(relative) <= 2:
            continue
        if len(relative) == 1 and relative[0] in HOME_FILES:
            continue
        if len(relative) == 3 and relative[0] == "logs" and re.fullmatch(r"[0-9]+\.log", relative[2]):
            continue
        stray.append("/".join(relative))
    return stray


def config(cpus: int) -> str:
    text = _batch.config((QUEUE, float(cpus), 2048))
    return text + '\n[docker]\nstop_timeout_seconds = 1\nnetwork_mode = "host"\n'


def run(jobs: int, seed: int, timeout_s: float | None = None) -> Report:
    """The soak at this size; ``report.problems`` lists every check that failed."""
    submissions = plan(jobs, seed)
    report = Report(jobs=jobs, seed=seed, submissions=len(submissions))
    report.job_ids = len(expected(submissions))
    report.load_average_before = _batch.load_average()
    cpus = max(2, min(os.cpu_count() or 2, 8))
    engine = docker.from_env()
    try:
        with tempfile.TemporaryDirectory(prefix="lb-soak-") as tmp:
            home = Path(tmp) / "home"
            home_id = _batch.home_id(home)
            with daemon(home, config(cpus)) as (client, pid):
                definition = _batch.definition("soak", ["sh", "-c", COMMAND], 0.25, 16)
                client.call("RegisterJobDefinition", {**definition, "parameters": DEFAULTS})
                _warm_up(client, pid)
                time.sleep(2)
                report.idle = Sample.of(pid)
                driver = Driver(client, pid, submissions, timeout_s or 120 + jobs)
                started = time.perf_counter()
                driver.run()
                report.seconds = round(time.perf_counter() - started, 1)
                report.jobs_per_s = round(jobs / report.seconds, 2)
                report.peak = driver.peak
                check(report, submissions, driver, client)
                report.end, left = settle(pid, report.idle, engine, home_id)
                if left:
                    report.problems.append(f"{left} container(s) of this home left behind")
                stray = stray_files(home)
                if stray:
                    report.problems.append(f"{len(stray)} stray file(s) in the home: {stray[:3]}")
                _compare(report)
                status = client.get(STATUS)
                report.loop = status["loop"]
                stored = {k: n for k, n in status["jobs"].items() if n}
                if stored != {"SUCCEEDED": report.succeeded + WARM_UP, "FAILED": report.failed}:
                    report.problems.append(f"the store counts {stored}: not the soak's jobs and {WARM_UP} warm-ups")
                held = {name: n for name, n in report.loop.items() if n and name != "ended"}
                if held:
                    report.problems.append(f"the control loop still holds records of ended jobs: {held}")
            _batch.remove_labelled(engine, "localbatch.home", home_id)
    finally:
        engine.close()
    report.load_average_after = _batch.load_average()
    return report


def _warm_up(client: DaemonClient, pid: int) -> None:
    """A few jobs first, so the idle figures include what any first job sets up (the engine's
    connection, imports) and not what the soak is looking for."""
    warm = [Submission(f"w{i}", "single", 0.25, 16) for i in range(WARM_UP)]
    driver = Driver(client, pid, warm, 60)
    driver.run()


def _compare(report: Report) -> None:
    assert report.idle is not None and report.end is not None
    idle, end = report.idle, report.end
    if end.threads > idle.threads + THREADS_SLACK:
        report.problems.append(f"threads: {end.threads} at the end, {idle.threads} idle")
    if end.fds > idle.fds + FDS_SLACK:
        report.problems.append(f"open files: {end.fds} at the end, {idle.fds} idle")
    if end.rss_mib > idle.rss_mib + RSS_SLACK_MIB:
        report.problems.append(f"RSS: {end.rss_mib} MiB at the end, {idle.rss_mib} MiB idle")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs that may run a container (default 5000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report = run(args.jobs, args.seed)
    _print(report)
    if args.json is not None:
        record = {
            "when": when,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            **asdict(report),
        }
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 1 if report.problems else 0


def _print(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"localbatch soak: {report.jobs} jobs, seed {report.seed}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, object]] = [
        ("submissions", report.submissions),
        ("jobs (parents and children included)", report.job_ids),
        ("containers run (retries included)", report.containers_run),
        ("SUCCEEDED / FAILED", f"{report.succeeded} / {report.failed}"),
        ("seconds", report.seconds),
        ("jobs per second", report.jobs_per_s),
        ("load average before / after", f"{report.load_average_before} / {report.load_average_after}"),
    ]
    for name, sample in (("idle", report.idle), ("peak", report.peak), ("end", report.end)):
        if sample is not None:
            rows.append(
                (f"daemon {name}: RSS MiB / threads / fds", f"{sample.rss_mib} / {sample.threads} / {sample.fds}")
            )
    for name, value in rows:
        table.add_row(name, str(value))
    console = Console()
    console.print(table)
    for problem in report.problems:
        console.print(f"[red]problem:[/red] {problem}")
    console.print("[green]no problems[/green]" if not report.problems else f"{len(report.problems)} problem(s)")


if __name__ == "__main__":
    sys.exit(main())
