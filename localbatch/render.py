"""How the CLI shows things to people: rich tables and one-line state changes.

Formatting only; every value comes from the service layer. Machine-readable output
(``--json``) is AWS's shapes from ``awsbatch.jobdetail``, not this module's.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from localbatch.core.jobs import Job, JobEvent, JobStatus
from localbatch.core.resources import Resources
from localbatch.service import JobView, ResourceReport

STATUS_STYLE = {
    JobStatus.SUBMITTED: "cyan",
    JobStatus.PENDING: "cyan",
    JobStatus.RUNNABLE: "yellow",
    JobStatus.STARTING: "yellow",
    JobStatus.RUNNING: "blue",
    JobStatus.SUCCEEDED: "green",
    JobStatus.FAILED: "red",
}


def error_lines(message: str) -> Text:
    """``error: ...`` on every line of ``message``; user text is never read as markup."""
    return _labelled("error:", "red", message)


def warning_lines(message: str) -> Text:
    return _labelled("warning:", "yellow", message)


def note_lines(message: str) -> Text:
    return _labelled("note:", "dim", message)


def _labelled(label: str, style: str, message: str) -> Text:
    text = Text()
    for number, line in enumerate(message.splitlines() or [""]):
        if number:
            text.append("\n")
        text.append(label, style=style)
        text.append(" " + line)
    return text


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def when(epoch_ms: int | None, *, date: bool = False) -> str:
    if epoch_ms is None:
        return "-"
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def status(value: JobStatus) -> Text:
    return Text(value.value, style=STATUS_STYLE[value])


def transition_line(job: Job, event: JobEvent) -> Text:
    line = Text(f"{when(event.at)} ", style="dim")
    line.append(status(event.to_status))
    if event.from_status is None:
        line.append(f"  {job.job_name} (job {job.job_id}, {job.job_definition_name}:")
        line.append(f"{job.job_definition_revision})")
    attempt = job.current_attempt
    if event.to_status in (JobStatus.STARTING, JobStatus.RUNNING) and attempt is not None:
        line.append(f"  attempt {attempt.number} of {job.retry_strategy.attempts}")
        if event.to_status is JobStatus.RUNNING:
            line.append(f", container {attempt.container_name}", style="dim")
    if event.to_status.is_terminal and attempt is not None and attempt.exit_code is not None:
        line.append(f"  exit code {attempt.exit_code}")
    if event.reason:
        line.append(f"  {event.reason}", style="dim" if event.to_status is JobStatus.SUCCEEDED else "")
    if event.to_status.is_terminal and attempt is not None and attempt.reason:
        line.append(f"  ({attempt.reason})", style="bold")
    return line


def resources_text(resources: Resources) -> str:
    gpus = f", {resources.gpus} GPU" if resources.gpus else ""
    return f"{resources.vcpus:g} vCPU, {resources.memory_mib} MiB{gpus}"


def jobs_table(jobs: Sequence[Job]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("JOB ID", "NAME", "STATUS", "CREATED", "ATTEMPTS", "EXIT", "REASON"):
        table.add_column(column, overflow="fold" if column == "REASON" else "ellipsis")
    for job in jobs:
        exit_code = job.exit_code
        table.add_row(
            job.job_id,
            job.job_name,
            status(job.status),
            when(job.created_at, date=True),
            str(len(job.attempts)),
            "-" if exit_code is None else str(exit_code),
            job.status_reason or "",
        )
    return table


def job_view(view: JobView) -> list[Table | Text]:
    job = view.job
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows: list[tuple[str, str | Text]] = [
        ("job", f"{job.job_id}  {job.job_name}"),
        ("status", status(job.status)),
        ("status reason", job.status_reason or "-"),
        ("definition", f"{job.job_definition_name}:{job.job_definition_revision}"),
        ("queue", job.job_queue),
        ("compute env", job.compute_environment or "-"),
        ("image", job.container.image),
        ("command", shlex.join(job.container.command) or "(image default)"),
        ("resources", resources_text(job.container.resources)),
        (
            "retry",
            f"{job.retry_strategy.attempts} attempt(s), {len(job.retry_strategy.evaluate_on_exit)} rule(s)",
        ),
        ("timeout", f"{job.timeout_s} s" if job.timeout_s is not None else "none"),
        ("created", when(job.created_at, date=True)),
        ("started", when(job.started_at, date=True)),
        ("stopped", when(job.stopped_at, date=True)),
    ]
    if job.is_cancelled or job.is_terminated:
        rows.append(("ended by", "cancel" if job.is_cancelled else "terminate"))
    for key, value in rows:
        head.add_row(key, value)
    attempts = Table(title="attempts", title_justify="left", box=None, pad_edge=False)
    for column in ("#", "STARTED", "STOPPED", "EXIT", "REASON", "STATUS REASON", "LOG STREAM"):
        attempts.add_column(column, overflow="fold")
    for a in job.attempts:
        attempts.add_row(
            str(a.number),
            when(a.started_at),
            when(a.stopped_at),
            "-" if a.exit_code is None else str(a.exit_code),
            a.reason or "",
            a.status_reason or ("(running)" if not a.finished else ""),
            a.log_stream_name if a.started_at is not None else "",
        )
    events = Table(title="events", title_justify="left", box=None, pad_edge=False)
    for column in ("TIME", "FROM", "TO", "REASON"):
        events.add_column(column, overflow="fold")
    for e in view.events:
        events.add_row(
            when(e.at, date=True),
            e.from_status.value if e.from_status else "",
            status(e.to_status),
            e.reason or "",
        )
    return [head, Text(""), attempts, Text(""), events]


def resource_report(report: ResourceReport) -> list[Table | Text]:
    host = report.host
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("host", f"{host.cpus} CPUs, {host.memory_mib} MiB memory, {len(host.gpus)} GPU(s)")
    summary.add_row(
        f"compute env {report.compute_environment}",
        f"{resources_text(report.capacity)}  (host minus reserve)",
    )
    summary.add_row("GPUs from", host.gpu_source)
    if report.engine is not None:
        engine = report.engine
        summary.add_row(
            "engine",
            f"{engine.name} {engine.version} (API {engine.api_version}), network mode {engine.network_mode}",
        )
    else:
        summary.add_row("engine", Text(report.engine_error or "not available", style="red"))
    out: list[Table | Text] = [summary]
    if host.gpus:
        gpus = Table(title="GPUs", title_justify="left", box=None, pad_edge=False)
        for column in ("ID", "NAME", "MEMORY", "UUID"):
            gpus.add_column(column)
        for gpu in host.gpus:
            gpus.add_row(gpu.device_id, gpu.name, f"{gpu.memory_mib} MiB", gpu.uuid)
        out += [Text(""), gpus]
    return out


def write_output(chunk: bytes) -> None:
    """Container output to stdout. A reader that went away (``| head``) raises
    BrokenPipeError once; stdout then points at /dev/null so Python's exit stays quiet."""
    try:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise
