"""The read-only web dashboard: server-rendered HTML under ``/dashboard`` (no framework, no
CDN, inline CSS; one small inline script refreshes a running job's log tail).

    /dashboard                       queues with their job counts per state
    /dashboard/jobs?queue=&status=&prefix=   jobs, newest first, filtered
    /dashboard/job?id=               a job: its detail, attempts and the tail of its log
    /dashboard/log?id=               that tail alone (text/plain), what the job page re-reads
    /dashboard/resources             compute environments and who holds each GPU
    /dashboard/array?id=             an array's children, one coloured cell each

``render_*`` take the plain documents the API answers (DescribeJobs' detail, ListJobs'
summaries, ``/v1/localbatch/resources``) and return HTML: every value is escaped, log text
has its terminal escape sequences removed first. ``Dashboard`` fetches those documents through
a ``Backend`` (the same API the CLI uses) and picks the page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final
from urllib.parse import urlencode

from localbatch import safe_text, session
from localbatch.core.jobs import JobStatus
from localbatch.errors import LocalbatchError
from localbatch.extensions import LOGS, RESOURCES

__all__ = [
    "PREFIX",
    "Dashboard",
    "clean_log",
    "render_array",
    "render_job",
    "render_jobs",
    "render_queues",
    "render_resources",
]

PREFIX: Final = "/dashboard"
HTML_TYPE: Final = "text/html; charset=utf-8"
TEXT_TYPE: Final = "text/plain; charset=utf-8"
STATUSES: Final = tuple(s.value for s in JobStatus)
TAIL_BYTES: Final = 64 * 1024  # the most of a log the job page shows
MAX_JOBS: Final = 500  # the most jobs one list page shows
MAX_CHILDREN: Final = 10_000  # AWS's largest array
LOG_REFRESH_MS: Final = 2000
COLOURS: Final = {
    "SUBMITTED": "#c8c8c8",
    "PENDING": "#e0d890",
    "RUNNABLE": "#f0c040",
    "STARTING": "#80b0f0",
    "RUNNING": "#3070e0",
    "SUCCEEDED": "#40a040",
    "FAILED": "#d03030",
}
_CSS: Final = """
body{font:14px system-ui,sans-serif;margin:0;color:#222}
nav{background:#223;padding:8px 16px}nav a{color:#fff;margin-right:16px;text-decoration:none}
main{padding:12px 16px}table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f2f2f2}
pre{background:#111;color:#ddd;padding:8px;max-height:60vh;overflow:auto;white-space:pre-wrap}
.grid{display:flex;flex-wrap:wrap;gap:2px}.cell{width:14px;height:14px;display:block}
.st{padding:1px 6px;border-radius:3px;color:#fff}form *{margin-right:6px}.muted{color:#777}
"""


def clean_log(data: bytes) -> str:
    """Log bytes as text as a terminal would show them (``safe_text.stripped``)."""
    return safe_text.stripped(data)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _url(path: str, **query: str) -> str:
    given = {k: v for k, v in query.items() if v}
    return _e(f"{PREFIX}{path}" + (f"?{urlencode(given)}" if given else ""))


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _colour(status: object) -> str:
    return COLOURS.get(str(status), "#888")


def _status(status: object) -> str:
    return f'<span class="st" style="background:{_colour(status)}">{_e(status)}</span>'


def _page(title: str, body: str, *, refresh_s: int | None = None, script: str = "") -> bytes:
    meta = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    links = "".join(
        f'<a href="{_url(path)}">{name}</a>'
        for path, name in (("", "queues"), ("/jobs", "jobs"), ("/resources", "resources"))
    )
    document = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{meta}<title>{_e(title)} - localbatch</title>'
        f'<style>{_CSS}</style></head><body><nav><b style="color:#fff;margin-right:24px">localbatch</b>{links}'
        f"</nav><main><h1>{_e(title)}</h1>{body}</main>{script}</body></html>"
    )
    return document.encode()


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, table_id: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_queues(resources: Mapping[str, Any]) -> bytes:
    """The queues of ``/v1/localbatch/resources``, each with its job count per state (a count
    links to the job list filtered by that queue and state)."""
    rows = []
    for queue in resources.get("jobQueues", []):
        name = str(queue.get("jobQueueName", ""))
        counts = queue.get("jobs") or {}
        cells = [
            f'<a href="{_url("/jobs", queue=name, status=s)}">{int(counts.get(s, 0))}</a>' if counts.get(s) else "0"
            for s in STATUSES
        ]
        rows.append(
            [
                f'<a href="{_url("/jobs", queue=name)}">{_e(name)}</a>',
                _e(queue.get("state")),
                _e(queue.get("priority")),
                _e(", ".join(queue.get("computeEnvironments") or [])),
                *cells,
            ]
        )
    table = _table(["queue", "state", "priority", "compute environments", *STATUSES], rows, table_id="queues")
    return _page("Queues", table, refresh_s=5)


def render_jobs(
    jobs: Sequence[Mapping[str, Any]], queues: Sequence[str], *, queue: str = "", status: str = "", prefix: str = ""
) -> bytes:
    """ListJobs' summaries (each with its ``jobQueue``) under a filter form (GET parameters
    ``queue``, ``status``, ``prefix``)."""
    queue_options = "".join(
        f'<option value="{_e(q)}"{" selected" if q == queue else ""}>{_e(q)}</option>' for q in ["", *queues]
    )
    status_options = "".join(
        f'<option value="{_e(s)}"{" selected" if s == status else ""}>{_e(s)}</option>' for s in ["", *STATUSES]
    )
    form = (
        f'<form method="get" action="{_url("/jobs")}">'
        f'queue <select name="queue" id="queue">{queue_options}</select>'
        f'status <select name="status" id="status">{status_options}</select>'
        f'name prefix <input name="prefix" id="prefix" value="{_e(prefix)}">'
        '<button type="submit" id="filter">filter</button></form>'
    )
    rows = []
    for job in jobs:
        job_id = str(job.get("jobId", ""))
        array = job.get("arrayProperties") or {}
        link = f'<a href="{_url("/job", id=job_id)}">{_e(job.get("jobName"))}</a>'
        if "size" in array:
            link += f' <a href="{_url("/array", id=job_id)}">[array of {_e(array["size"])}]</a>'
        rows.append(
            [
                link,
                f'<span class="job-id">{_e(job_id)}</span>',
                _e(job.get("jobQueue")),
                _status(job.get("status")),
                _e(_when(job.get("createdAt"))),
                _e(job.get("statusReason") or ""),
            ]
        )
    more = f" (the newest {MAX_JOBS})" if len(jobs) >= MAX_JOBS else ""
    shown = f'<p class="muted" id="count">{len(jobs)} jobs{more}</p>'
    table = _table(["name", "job id", "queue", "status", "created", "reason"], rows, table_id="jobs")
    return _page("Jobs", form + shown + table, refresh_s=10)


def render_job(detail: Mapping[str, Any], log_tail: str | None) -> bytes:
    """DescribeJobs' detail with its attempts and its log's tail; while the job is not done,
    the tail re-reads itself every 2 s from ``/dashboard/log``."""
    job_id = str(detail.get("jobId", ""))
    container = detail.get("container") or {}
    facts = [
        ("job id", _e(job_id)),
        ("name", _e(detail.get("jobName"))),
        ("queue", _e(detail.get("jobQueue"))),
        ("definition", _e(detail.get("jobDefinition"))),
        ("status", _status(detail.get("status"))),
        ("reason", _e(detail.get("statusReason") or "")),
        ("created", _e(_when(detail.get("createdAt")))),
        ("started", _e(_when(detail.get("startedAt")))),
        ("stopped", _e(_when(detail.get("stoppedAt")))),
        ("command", _e(" ".join(str(c) for c in container.get("command") or []))),
    ]
    array = detail.get("arrayProperties") or {}
    if "size" in array:
        facts.append(("array", f'<a href="{_url("/array", id=job_id)}">{_e(array["size"])} children</a>'))
    if detail.get("dependsOn"):
        ids = [str(d.get("jobId", "")) for d in detail["dependsOn"]]
        links = ", ".join(f'<a href="{_url("/job", id=i)}">{_e(i)}</a>' for i in ids)
        facts.append(("depends on", links))
    summary = "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in facts) + "</table>"
    attempts = [
        [
            str(number),
            _e(_when(a.get("startedAt"))),
            _e(_when(a.get("stoppedAt"))),
            _e((a.get("container") or {}).get("exitCode", "")),
            _e((a.get("container") or {}).get("reason") or ""),
            _e(a.get("statusReason") or ""),
        ]
        for number, a in enumerate(detail.get("attempts") or [], start=1)
    ]
    attempt_table = _table(["attempt", "started", "stopped", "exit code", "reason", "status reason"], attempts)
    tail = "(no attempt has started yet)" if log_tail is None else log_tail
    body = f'{summary}<h2>Attempts</h2>{attempt_table}<h2>Log (tail)</h2><pre id="log">{_e(tail)}</pre>'
    script = ""
    if str(detail.get("status")) not in ("SUCCEEDED", "FAILED"):
        source = f"{PREFIX}/log?{urlencode({'id': job_id})}"
        # JSON-ish string literal of an URL made of url-encoded parts: no quote or < can occur.
        script = (
            "<script>(function(){var pre=document.getElementById('log');"
            f"function look(){{fetch('{source}',{{cache:'no-store',credentials:'same-origin'}})"
            ".then(function(r){return r.ok?r.text():null}).then(function(t){if(t!==null&&t!==pre.textContent)"
            "{var end=pre.scrollTop+pre.clientHeight>=pre.scrollHeight-4;pre.textContent=t;"
            "if(end){pre.scrollTop=pre.scrollHeight}}}).catch(function(){})}"
            f"setInterval(look,{LOG_REFRESH_MS})}})()</script>"
        )
    return _page(f"Job {detail.get('jobName', '')}", body, script=script)


def render_resources(resources: Mapping[str, Any]) -> bytes:
    """Host capacity, each compute environment's allocation, and each GPU's holder."""
    host = resources.get("host") or {}
    capacity = host.get("capacity") or {}
    intro = (
        f"<p>host: {_e(host.get('cpus'))} CPUs, {_e(host.get('memoryMiB'))} MiB; schedulable "
        f"{_e(capacity.get('vcpus'))} vCPU, {_e(capacity.get('memoryMiB'))} MiB, {_e(capacity.get('gpus'))} GPUs</p>"
    )
    environments = []
    for env in resources.get("computeEnvironments") or []:
        cap, used = env.get("capacity") or {}, env.get("allocated") or {}
        environments.append(
            [
                _e(env.get("computeEnvironmentName")),
                _e(env.get("state")),
                f"{_e(used.get('vcpus'))} / {_e(cap.get('vcpus'))}",
                f"{_e(used.get('memoryMiB'))} / {_e(cap.get('memoryMiB'))}",
                f"{_e(used.get('gpus'))} / {_e(cap.get('gpus'))}",
                ", ".join(f'<a href="{_url("/job", id=str(j))}">{_e(j)}</a>' for j in env.get("jobs") or []),
            ]
        )
    env_table = _table(
        ["compute environment", "state", "vCPU", "memory MiB", "GPUs", "jobs"], environments, table_id="environments"
    )
    gpus = [
        [
            _e(g.get("id")),
            _e(g.get("name")),
            _e(g.get("memoryMiB")),
            _e(g.get("computeEnvironment") or "-"),
            f'<a href="{_url("/job", id=str(g["jobId"]))}">{_e(g["jobId"])}</a>' if g.get("jobId") else "free",
        ]
        for g in resources.get("gpus") or []
    ]
    gpu_table = _table(["GPU", "name", "memory MiB", "compute environment", "held by"], gpus, table_id="gpus")
    body = f"{intro}<h2>Compute environments</h2>{env_table}<h2>GPUs</h2>"
    body += gpu_table if gpus else '<p class="muted">no GPUs on this host</p>'
    return _page("Resources", body, refresh_s=5)


def render_array(parent: Mapping[str, Any], children: Sequence[Mapping[str, Any]]) -> bytes:
    """An array job's children as a grid of cells coloured by status (index and status in
    each cell's title; a cell links to the child), with the counts per state."""
    counts: dict[str, int] = {}
    for child in children:
        counts[str(child.get("status"))] = counts.get(str(child.get("status")), 0) + 1
    legend = " ".join(f"{_status(s)} {counts[s]}" for s in STATUSES if counts.get(s))
    cells = "".join(
        f'<a class="cell" data-status="{_e(c.get("status"))}" style="background:{_colour(c.get("status"))}"'
        f' title="{_e((c.get("arrayProperties") or {}).get("index"))}: {_e(c.get("status"))}"'
        f' href="{_url("/job", id=str(c.get("jobId", "")))}"></a>'
        for c in children
    )
    job_id = str(parent.get("jobId", ""))
    body = (
        f'<p><a href="{_url("/job", id=job_id)}">{_e(parent.get("jobName"))}</a> {_status(parent.get("status"))}'
        f" - {len(children)} children: {legend}</p>"
        f'<div class="grid" id="grid">{cells}</div>'
    )
    done = str(parent.get("status")) in ("SUCCEEDED", "FAILED")
    return _page(f"Array {parent.get('jobName', '')}", body, refresh_s=None if done else 5)


def render_error(message: str) -> bytes:
    return _page("Not found", f"<p>{_e(message)}</p>")


class Dashboard:
    """The pages, on ``backend`` (read-only is enough)."""

    def __init__(self, backend: session.Backend) -> None:
        self._backend = backend

    def handle(self, path: str, query: Mapping[str, str]) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for ``GET path?query`` (``path`` under PREFIX)."""
        sub = path.removeprefix(PREFIX).rstrip("/")
        try:
            if sub == "":
                return 200, HTML_TYPE, render_queues(self._backend.get(RESOURCES))
            if sub == "/jobs":
                return 200, HTML_TYPE, self._jobs(query)
            if sub == "/job":
                return 200, HTML_TYPE, self._job(query.get("id", ""))
            if sub == "/log":
                return 200, TEXT_TYPE, (self._tail(query.get("id", "")) or "").encode()
            if sub == "/resources":
                return 200, HTML_TYPE, render_resources(self._backend.get(RESOURCES))
            if sub == "/array":
                return 200, HTML_TYPE, self._array(query.get("id", ""))
        except LocalbatchError as exc:
            return 404, HTML_TYPE, render_error(str(exc))
        return 404, HTML_TYPE, render_error(f"no dashboard page at {path}")

    def _jobs(self, query: Mapping[str, str]) -> bytes:
        queue, status, prefix = query.get("queue", ""), query.get("status", "").upper(), query.get("prefix", "")
        names = [q["jobQueueName"] for q in self._backend.get(RESOURCES).get("jobQueues", [])]
        jobs = session.list_jobs(
            self._backend, [queue] if queue else [], [status] if status else [], MAX_JOBS, name_prefix=prefix or None
        )
        return render_jobs(jobs, names, queue=queue, status=status, prefix=prefix)

    def _job(self, job_id: str) -> bytes:
        detail = session.describe(self._backend, job_id)
        return render_job(detail, self._tail(job_id))

    def _tail(self, job_id: str) -> str | None:
        try:
            data = b"".join(self._backend.stream(LOGS, {"jobId": job_id}))
        except LocalbatchError:
            return None
        if len(data) > TAIL_BYTES:
            data = data[-TAIL_BYTES:]
            data = data[data.find(b"\n") + 1 :]
        return clean_log(data)

    def _array(self, job_id: str) -> bytes:
        parent = session.describe(self._backend, job_id)
        children = session.list_jobs(self._backend, [], [], MAX_CHILDREN, array_job_id=job_id)
        return render_array(parent, children)
