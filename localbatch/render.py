"""How the CLI shows things to people: rich tables and one-line state changes.

Formatting only. Everything comes in AWS's shapes (DescribeJobs' JobDetail, ListJobs'
JobSummary, DescribeJobQueues) or localbatch's extension documents, exactly what the API
returns; ``--json`` prints those documents as they are.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from localbatch import safe_text
from localbatch.core.progress import STATES, Progress, duration_text
from localbatch.storage import StoreStatus

Doc = Mapping[str, Any]
STATUS_STYLE = {
    "SUBMITTED": "cyan",
    "PENDING": "cyan",
    "RUNNABLE": "yellow",
    "STARTING": "yellow",
    "RUNNING": "blue",
    "SUCCEEDED": "green",
    "FAILED": "red",
}


def error_lines(message: str) -> Text:
    """``error: ...`` on every line of ``message``; user text is never read as markup."""
    return _labelled("error:", "red", message)


def warning_lines(message: str) -> Text:
    return _labelled("warning:", "yellow", message)


def note_lines(message: str) -> Text:
    return _labelled("note:", "dim", message)


def _labelled(label: str, style: str, message: str) -> Text:
    """``label`` on each line of ``message``, except indented lines: those continue the line
    above (a quoted log tail, say)."""
    text = Text()
    for number, line in enumerate(safe_text.visible(message, keep="\n\t").splitlines() or [""]):
        if number:
            text.append("\n")
        if line.startswith(" "):
            text.append(line, style="dim")
            continue
        text.append(label, style=style)
        text.append(" " + line)
    return text


def stdout() -> Console:
    return Console(highlight=False, soft_wrap=True, markup=False)  # text from users is never markup


def stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def when(epoch_ms: int | None, *, date: bool = False) -> str:
    if epoch_ms is None:
        return "-"
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _definition(arn: str) -> str:
    return arn.rpartition("/")[2]


def transition_line(detail: Doc, at_ms: int | None = None, attempt: int | None = None) -> Text:
    """One line for a job that just reached ``detail["status"]`` (``attempt``: the number of
    the attempt this line is about, when the detail is from later than the change)."""
    detail = safe_text.fields(detail)
    state = detail["status"]
    line = Text(f"{when(at_ms)} ", style="dim")
    line.append(status(state))
    if state == "SUBMITTED":
        line.append(f"  {detail['jobName']} (job {detail['jobId']}, {_definition(detail['jobDefinition'])})")
    attempts = detail.get("attempts", [])
    total = detail.get("retryStrategy", {}).get("attempts", 1)
    if state in ("STARTING", "RUNNING"):
        line.append(f"  attempt {attempt or len(attempts) + 1} of {total}")
    container = detail.get("container", {})
    if state in ("SUCCEEDED", "FAILED") and "exitCode" in container:
        line.append(f"  exit code {container['exitCode']}")
    reason = detail.get("statusReason")
    if reason:
        line.append(f"  {reason}", style="dim" if state in ("SUCCEEDED", "RUNNABLE") else "")
    if state in ("SUCCEEDED", "FAILED") and container.get("reason"):
        line.append(f"  ({container['reason']})", style="bold")
    return line


def array_summary(detail: Doc) -> Text | None:
    """An array parent's children by status, ``array of 10: 3 SUCCEEDED, 2 RUNNING, 5 RUNNABLE``
    (None for a job that is not an array parent, or before its counts are known)."""
    properties = detail.get("arrayProperties") or {}
    counts = properties.get("statusSummary") or {}
    if "size" not in properties or not any(counts.values()):
        return None
    line = Text(f"array of {properties['size']}: ")
    shown = [(name, counts[name]) for name in STATUS_STYLE if counts.get(name)]
    for number, (name, count) in enumerate(shown):
        line.append(", " if number else "")
        line.append(f"{count} ")
        line.append(status(name))
    return line


def resources_text(vcpus: float, memory_mib: int, gpus: int = 0) -> str:
    extra = f", {gpus} GPU" if gpus else ""
    return f"{vcpus:g} vCPU, {memory_mib} MiB{extra}"


def _requirements(container: Doc) -> str:
    values = {r["type"]: r["value"] for r in container.get("resourceRequirements", [])}
    return resources_text(float(values.get("VCPU", 0)), int(values.get("MEMORY", 0)), int(values.get("GPU", 0)))


def jobs_table(summaries: Sequence[Doc]) -> Table:
    summaries = safe_text.fields(summaries)
    table = Table(box=None, pad_edge=False)
    widest = max((len(job["jobId"]) for job in summaries), default=36)
    table.add_column("JOB ID", no_wrap=True, min_width=widest)  # whole: people copy it (parent:index too)
    for column in ("NAME", "QUEUE", "STATUS", "CREATED", "EXIT"):
        table.add_column(column, no_wrap=True)
    table.add_column("REASON", overflow="fold")
    for job in summaries:
        exit_code = job.get("container", {}).get("exitCode")
        table.add_row(
            job["jobId"],
            job["jobName"],
            job.get("jobQueue", "").rpartition("/")[2],
            status(job["status"]),
            when(job.get("createdAt"), date=True),
            "-" if exit_code is None else str(exit_code),
            job.get("statusReason", ""),
        )
    return table


def job_view(
    detail: Doc, events: Sequence[Doc], *, submitted_by: str | None = None, usage: Doc | None = None
) -> list[Table | Text]:
    """A job's detail, attempts and events; ``submitted_by`` (localbatch's events extension)
    is shown when known, and each attempt's usage (the usage extension's answer) when given."""
    detail, events, usage = safe_text.fields(detail), safe_text.fields(events), safe_text.fields(usage)
    container = detail.get("container", {})
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    retry = detail.get("retryStrategy", {})
    timeout = detail.get("timeout", {}).get("attemptDurationSeconds")
    rows: list[tuple[str, str | Text]] = [
        ("job", f"{detail['jobId']}  {detail['jobName']}"),
        ("status", status(detail["status"])),
        ("status reason", detail.get("statusReason") or "-"),
        ("definition", _definition(detail["jobDefinition"])),
        ("queue", detail["jobQueue"].rpartition("/")[2]),
        *((("submitted by", submitted_by),) if submitted_by is not None else ()),
        ("image", container.get("image", "")),
        ("command", shlex.join(container.get("command", [])) or "(image default)"),
        ("resources", _requirements(container)),
        ("retry", _retry_text(retry)),
        ("timeout", f"{timeout} s" if timeout is not None else "none"),
        ("created", when(detail.get("createdAt"), date=True)),
        ("started", when(detail.get("startedAt"), date=True)),
        ("stopped", when(detail.get("stoppedAt"), date=True)),
    ]
    if detail.get("isCancelled") or detail.get("isTerminated"):
        rows.append(("ended by", "cancel" if detail.get("isCancelled") else "terminate"))
    rows += _array_and_dependency_rows(detail)
    for key, value in rows:
        head.add_row(key, value)
    attempts = Table(title="attempts", title_justify="left", box=None, pad_edge=False)
    used = {entry["attempt"]: entry.get("usage") for entry in (usage or {}).get("attempts", [])}
    columns = ["#", "STARTED", "STOPPED", "EXIT", "REASON", "STATUS REASON"]
    if usage is not None:
        columns += ["CPU AVG/PEAK", "MEM PEAK/LIMIT", "GPU AVG/PEAK"]
    columns.append("LOG STREAM")
    for column in columns:
        attempts.add_column(column, overflow="fold")
    finished = detail.get("attempts", [])
    for number, attempt in enumerate(finished, start=1):
        inner = attempt.get("container", {})
        row = [
            str(number),
            when(attempt.get("startedAt")),
            when(attempt.get("stoppedAt")),
            str(inner.get("exitCode", "-")),
            inner.get("reason", ""),
            attempt.get("statusReason", ""),
            *(usage_cells(used.get(number)) if usage is not None else ()),
            inner.get("logStreamName", ""),
        ]
        attempts.add_row(*row)
    if detail["status"] in ("STARTING", "RUNNING"):
        row = [
            str(len(finished) + 1),
            when(detail.get("startedAt")) if detail["status"] == "RUNNING" else "-",
            "-",
            "-",
            "",
            "(running)" if detail["status"] == "RUNNING" else "(starting)",
            *(usage_cells((usage or {}).get("live")) if usage is not None else ()),
            container.get("logStreamName", ""),
        ]
        attempts.add_row(*row)
    history = Table(title="events", title_justify="left", box=None, pad_edge=False)
    for column in ("TIME", "FROM", "TO", "REASON"):
        history.add_column(column, overflow="fold")
    for event in events:
        reason = "; ".join(part for part in (event.get("reason"), event.get("detail")) if part)
        history.add_row(when(event.get("at"), date=True), event.get("from") or "", status(event["to"]), reason)
    return [head, Text(""), attempts, Text(""), history]


def usage_cells(found: Doc | None) -> tuple[str, str, str]:
    """An attempt's usage as three cells: ``35% / 98%``, ``210 / 512 MiB``, ``40% / 90%``
    (``-`` where it was not sampled: too short a run, no GPU)."""
    if not found:
        return ("-", "-", "-")
    cpu = f"{found['cpuAvgPercent']:g}% / {found['cpuPeakPercent']:g}%"
    limit = found.get("memoryLimitMiB")
    memory = f"{found['memoryPeakMiB']:g} / {limit:g} MiB" if limit else f"{found['memoryPeakMiB']:g} MiB"
    gpu = "-"
    if found.get("gpuAvgPercent") is not None:
        gpu = f"{found['gpuAvgPercent']:g}% / {found.get('gpuPeakPercent', 0):g}%"
    return (cpu, memory, gpu)


def _retry_text(retry: Doc) -> str:
    """``3 attempt(s); EXIT on onExitCode=3, then RETRY on anything`` (rules in the order tried)."""
    text = f"{retry.get('attempts', 1)} attempt(s)"
    rules = []
    for rule in retry.get("evaluateOnExit", []):
        conditions = [f"{key}={value}" for key, value in rule.items() if key != "action"]
        rules.append(f"{rule['action'].upper()} on {' and '.join(conditions) or 'anything'}")
    return f"{text}; {', then '.join(rules)}; no match: RETRY" if rules else text


def _array_and_dependency_rows(detail: Doc) -> list[tuple[str, str | Text]]:
    rows: list[tuple[str, str | Text]] = []
    summary = array_summary(detail)
    properties = detail.get("arrayProperties") or {}
    if summary is not None:
        rows.append(("array", summary))
    elif "size" in properties:
        rows.append(("array", f"array of {properties['size']}"))
    if "index" in properties:
        rows.append(("array index", str(properties["index"])))
    waits = [
        " ".join(part for part in (entry.get("jobId"), entry.get("type")) if part)
        for entry in detail.get("dependsOn") or []
    ]
    if waits:
        rows.append(("depends on", ", ".join(waits)))
    if detail.get("shareIdentifier"):
        rows.append(("share", str(detail["shareIdentifier"])))
    if detail.get("schedulingPriority") is not None:
        rows.append(("scheduling priority", str(detail["schedulingPriority"])))
    if detail.get("tags"):
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(detail["tags"].items()))))
    return rows


def resources_view(report: Doc) -> list[Table | Text]:
    report = safe_text.fields(report)
    host = report["host"]
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    cap = host["capacity"]
    summary.add_row("host", f"{host['cpus']} CPUs, {host['memoryMiB']} MiB memory, {len(report['gpus'])} GPU(s)")
    summary.add_row("usable", f"{resources_text(cap['vcpus'], cap['memoryMiB'], cap['gpus'])}  (host minus reserve)")
    summary.add_row("GPUs from", host["gpuSource"])
    engine = report.get("engine")
    if engine:
        summary.add_row(
            "engine",
            f"{engine['name']} {engine['version']} (API {engine['apiVersion']}), network mode {engine['networkMode']}",
        )
    else:
        summary.add_row("engine", Text(report.get("engineError") or "not available", style="red"))
    environments = Table(title="compute environments", title_justify="left", box=None, pad_edge=False)
    for column in ("NAME", "STATE", "vCPU", "MEMORY MiB", "GPUs", "JOBS"):
        environments.add_column(column)
    for env in report["computeEnvironments"]:
        used, capacity = env["allocated"], env["capacity"]
        environments.add_row(
            env["computeEnvironmentName"],
            env["state"],
            f"{used['vcpus']:g} / {capacity['vcpus']:g}",
            f"{used['memoryMiB']} / {capacity['memoryMiB']}",
            f"{used['gpus']} / {capacity['gpus']}",
            str(len(env["jobs"])),
        )
    out: list[Table | Text] = [summary, Text(""), environments]
    if report["gpus"]:
        gpus = Table(title="GPUs", title_justify="left", box=None, pad_edge=False)
        for column in ("ID", "NAME", "MEMORY", "COMPUTE ENV", "HELD BY"):
            gpus.add_column(column)
        for gpu in report["gpus"]:
            gpus.add_row(
                gpu["id"],
                gpu["name"],
                f"{gpu['memoryMiB']} MiB",
                gpu.get("computeEnvironment") or "-",
                gpu.get("jobId") or "free",
            )
        out += [Text(""), gpus]
    return out


def queues_table(queues: Sequence[Doc], counts: Mapping[str, Mapping[str, int]]) -> Table:
    queues = safe_text.fields(queues)
    table = Table(box=None, pad_edge=False)
    for column in (
        "NAME",
        "PRIORITY",
        "STATE",
        "COMPUTE ENVIRONMENTS",
        "SCHEDULING",
        "RUNNABLE",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
    ):
        table.add_column(column)
    for queue in queues:
        name = queue["jobQueueName"]
        order = ", ".join(e["computeEnvironment"].rpartition("/")[2] for e in queue["computeEnvironmentOrder"])
        mine = counts.get(name, {})
        table.add_row(
            name,
            str(queue["priority"]),
            queue["state"],
            order,
            _scheduling(queue),
            *(str(mine.get(s, 0)) for s in ("RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED")),
        )
    return table


def consumables_table(resources: Sequence[Doc]) -> Table:
    """ListConsumableResources' entries: name, type, total, in use, available."""
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "TYPE", "TOTAL", "IN USE", "AVAILABLE"):
        table.add_column(column)
    for found in resources:
        total, used = found.get("totalQuantity", 0), found.get("inUseQuantity", 0)
        table.add_row(
            found["consumableResourceName"],
            found.get("resourceType", ""),
            str(total),
            str(used),
            str(max(0, total - used)),
        )
    return table


def _scheduling(queue: Doc) -> str:
    """FIFO or the fair-share policy, and each jobStateTimeLimitAction (``cancel CODE after N s``)."""
    policy = queue.get("schedulingPolicyArn")
    parts = [f"fair share ({policy.rpartition('/')[2]})" if policy else "FIFO"]
    for action in queue.get("jobStateTimeLimitActions") or []:
        parts.append(f"cancel {action['reason']} after {action['maxTimeSeconds']} s")
    return "; ".join(parts)


def daemon_status(status_doc: Doc) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    capacity = status_doc["capacity"]
    jobs = ", ".join(f"{n} {s}" for s, n in sorted(status_doc.get("jobs", {}).items())) or "none"
    for key, value in (
        ("daemon", f"running, pid {status_doc['pid']}, localbatch {status_doc['version']}"),
        ("uptime", f"{status_doc['uptimeSeconds']:g} s"),
        ("socket", status_doc["socket"]),
        ("home", status_doc["home"]),
        ("capacity", resources_text(capacity["vcpus"], capacity["memoryMiB"], capacity["gpus"])),
        ("jobs", jobs),
    ):
        grid.add_row(key, value)
    engine = status_doc.get("engine") or {"available": True}
    if engine["available"]:
        grid.add_row("engine", "answering")
    else:
        grid.add_row("engine", Text(f"UNAVAILABLE: {engine['error']}", style="red"))
    return grid


def write_output(chunks: Iterable[bytes], *, raw: bool = False) -> None:
    """Container output to stdout: the exact bytes into a pipe or a file (or with ``raw``); on a
    terminal its control characters shown, not obeyed (``safe_text.OutputFilter``), so that what a
    container prints cannot clear the screen, retitle the window or write the clipboard. A reader
    that went away (``| head``) raises BrokenPipeError once; stdout then points at /dev/null so
    Python's exit stays quiet."""
    shown = None if raw or not is_terminal(sys.stdout) else safe_text.OutputFilter()
    try:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk if shown is None else shown.feed(chunk))
            sys.stdout.buffer.flush()
        if shown is not None:
            sys.stdout.buffer.write(shown.end())
            sys.stdout.buffer.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def store_status(found: StoreStatus) -> Table:
    """``store status``: the endpoint, where each setting comes from, and what answered."""
    settings = found.settings
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    sources = settings.sources
    table.add_row("endpoint", f"{settings.url}  (from {sources.get('endpoint', 'default')})")
    table.add_row("region", f"{settings.region}  (from {sources.get('region', 'default')})")
    access = settings.access_key or "-"
    table.add_row("access key", f"{access}  (from {sources['access_key']})" if settings.access_key else "not set")
    secret = f"set (from {sources['secret_key']}; never shown)" if settings.secret_key else "not set"
    table.add_row("secret key", secret)
    if found.problem is not None:
        table.add_row("reachable", Text(f"no: {found.problem}", style="red"))
    else:
        table.add_row("reachable", Text("yes", style="green"))
        table.add_row("buckets", ", ".join(found.buckets or []) or "none")
    return table


# -- watching: progress, top, advise --------------------------------------------------------------


def progress_line(found: Progress) -> str:
    """One plain line (no markup, no colour) for logs and pipes:
    ``12 jobs: 3 RUNNING, 4 SUCCEEDED, 1 FAILED | done 5/12 | elapsed 40s | left ~56s``."""
    counts = ", ".join(f"{found.counts[s]} {s}" for s in STATES if found.counts.get(s))
    return (
        f"{found.total} jobs: {counts or 'none yet'} | done {found.done}/{found.total} "
        f"(succeeded {found.succeeded}, failed {found.failed}) | elapsed {duration_text(found.elapsed_s)} | "
        f"left ~{duration_text(found.remaining_s)}"
    )


def progress_view(found: Progress, title: str) -> Table:
    """The live display of ``run``/``wait``: a bar of the jobs ended, counts per state, times."""
    width = 30
    filled = round(width * found.done / found.total) if found.total else 0
    failed = min(filled, round(width * found.failed / found.total)) if found.total else 0
    bar = Text()
    bar.append("█" * (filled - failed), style="green")
    bar.append("█" * failed, style="red")
    bar.append("░" * (width - filled), style="dim")
    bar.append(f" {found.done}/{found.total}")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(title, bar)
    states = Text()
    for number, state in enumerate(s for s in STATES if found.counts.get(s)):
        states.append(", " if number else "")
        states.append(f"{found.counts[state]} ")
        states.append(status(state))
    grid.add_row("states", states if states.plain else Text("none yet", style="dim"))
    grid.add_row("outcome", f"{found.succeeded} succeeded, {found.failed} failed")
    grid.add_row("time", f"elapsed {duration_text(found.elapsed_s)}, left ~{duration_text(found.remaining_s)}")
    return grid


def _used(part: float, whole: float, unit: str = "") -> Text:
    """``3 / 8`` styled by how full: red at 90 % or more, yellow at 70 %."""
    share = part / whole if whole else 0
    style = "red" if share >= 0.9 else "yellow" if share >= 0.7 else ""
    return Text(f"{part:g} / {whole:g}{unit}", style=style)


def top_view(snapshot: Doc, now_ms: int) -> Group:
    """``localbatch top``'s screen from ``session.top_snapshot``: compute environments,
    running jobs with their live usage, each queue's first waiting jobs and why they wait.
    Every string from the store is shown with its control characters ``visible``."""
    snapshot = safe_text.fields(snapshot)
    environments = Table(title="compute environments", title_justify="left", box=None, pad_edge=False)
    for column in ("NAME", "STATE", "vCPU", "MEMORY MiB", "GPUs", "JOBS"):
        environments.add_column(column, no_wrap=True)
    for env in snapshot["computeEnvironments"]:
        used, capacity = env["allocated"], env["capacity"]
        environments.add_row(
            env["computeEnvironmentName"],
            env["state"],
            _used(used["vcpus"], capacity["vcpus"]),
            _used(used["memoryMiB"], capacity["memoryMiB"]),
            _used(used["gpus"], capacity["gpus"]),
            str(len(env["jobs"])),
        )
    running = Table(title="running", title_justify="left", box=None, pad_edge=False)
    for column in ("JOB ID", "NAME", "QUEUE", "STATUS", "UP", "CPU %", "vCPU", "MEM MiB / LIMIT", "GPU"):
        running.add_column(column, no_wrap=True)
    for job in snapshot["running"]:
        found = job.get("usage") or {}
        cpu = found.get("cpuNowPercent")
        memory = found.get("memoryNowMiB")
        started = job.get("startedAt")
        gpu = ",".join(job.get("gpuIds") or []) or "-"
        if found.get("gpuAvgPercent") is not None:
            gpu += f" ({found['gpuAvgPercent']:g}%)"
        running.add_row(
            job["jobId"],
            job["jobName"],
            job["jobQueue"],
            status(job["status"]),
            duration_text((now_ms - started) / 1000) if started else "-",
            "-" if cpu is None else f"{cpu:g}",
            f"{job['vcpus']:g}",
            "-" if memory is None else _used(memory, job["memoryMiB"]),
            gpu,
        )
    if not snapshot["running"]:
        running.add_row(Text("nothing running", style="dim"), *[""] * 8)
    queues = Table(title="queues: first waiting jobs", title_justify="left", box=None, pad_edge=False)
    for column in ("QUEUE", "STATE", "JOB ID", "NAME", "WAITING", "WHY"):
        queues.add_column(column, no_wrap=column != "WHY", overflow="fold")
    for queue in snapshot["queues"]:
        heads = queue.get("heads") or []
        counts = queue.get("jobs", {})
        state = f"{queue['state']} ({counts.get('RUNNABLE', 0)} runnable)"
        if not heads:
            queues.add_row(queue["jobQueueName"], state, Text("nothing waiting", style="dim"), "", "", "")
        for number, head in enumerate(heads):
            since = head.get("since")
            queues.add_row(
                queue["jobQueueName"] if number == 0 else "",
                state if number == 0 else "",
                head["jobId"],
                head["jobName"],
                duration_text((now_ms - since) / 1000) if since else "-",
                head.get("reason") or "-",
            )
    footer = Text(f"{when(now_ms)}  q or Ctrl-C quits", style="dim")
    return Group(environments, Text(""), running, Text(""), queues, Text(""), footer)


def advise_view(answer: Doc) -> list[Table | Text]:
    """``localbatch advise``: requested vs used vs recommended, and the AWS cost per run."""
    out: list[Table | Text] = []
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("definition", answer["jobDefinitionName"])
    head.add_row("runs", f"{answer['runsWithUsage']} with usage of the last {answer['runs']} ended attempts")
    head.add_row("duration", f"{duration_text(answer['durationSeconds'])} on average")
    out.append(head)
    found = answer.get("recommendation")
    if found is None:
        out += [Text(""), Text("no usage recorded yet: run the job under the daemon (or `localbatch run`) first")]
        return out
    sizes = Table(title="size", title_justify="left", box=None, pad_edge=False)
    for column in ("", "REQUESTED", "USED (largest)", "RECOMMENDED"):
        sizes.add_column(column)
    sizes.add_row(
        "vcpus", f"{found['requestedVcpus']:g}", f"{found['cpuUsedVcpus']:g} (average CPU)", f"{found['vcpus']:g}"
    )
    sizes.add_row(
        "memory_mib",
        str(found["requestedMemoryMiB"]),
        f"{found['memoryPeakMiB']:g} (peak)",
        f"{found['memoryMiB']}  (peak + {found['margin'] * 100:g} % OOM margin)",
    )
    out += [Text(""), sizes]
    for note in found.get("notes", []):
        out.append(note_lines(note))
    costs = answer.get("costs")
    if costs:
        table = Table(
            title=f"AWS cost per run, {costs['region']} ({costs['currency']}; prices as of {costs['asOf']})",
            title_justify="left",
            box=None,
            pad_edge=False,
        )
        for column in ("SIZE", "EC2 ON-DEMAND", "EC2 SPOT", "FARGATE", "ASSUMES"):
            table.add_column(column)
        for label in ("requested", "recommended"):
            cost = costs[label]
            assumes = []
            if cost.get("instanceType"):
                assumes.append(f"share of {cost['instanceType']}")
            if cost.get("fargateVcpus") is not None:
                assumes.append(f"Fargate {cost['fargateVcpus']:g} vCPU / {cost['fargateMemoryGB']:g} GB")
            table.add_row(
                label,
                _money(cost.get("onDemand")),
                _money(cost.get("spot")),
                _money(cost.get("fargate")),
                "; ".join(assumes) or "-",
            )
        out += [Text(""), table, note_lines(f"prices: {costs['source']}")]
    return out


def _money(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"
