"""Job events and the daemon's automation: ``events`` and ``schedules``."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from localbatch import bootstrap, render
from localbatch import events as event_shapes
from localbatch.cli._common import handles_errors, print_json, settings
from localbatch.core.jobs import JobStatus
from localbatch.errors import UsageError
from localbatch.extensions import EVENT_STREAM, MAX_WAIT_S, SCHEDULES

STATUSES = tuple(s.value for s in JobStatus)
_PAGE = 500
_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def since_ms(text: str, now_ms: int) -> int:
    """``--since``: a duration back from now (``90s``, ``15m``, ``2h``, ``1d``), an ISO 8601
    time (UTC unless it says otherwise), or epoch milliseconds."""
    found = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if found:
        return now_ms - int(found.group(1)) * _UNITS_S[found.group(2)] * 1000
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since: {text!r} is not a time; give a duration (30s, 15m, 2h, 1d), an ISO time "
            "(2026-01-31T08:00:00Z) or epoch milliseconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def _line(seq: int, event: dict[str, Any]) -> Text:
    what, job, words = event_shapes.summary(event)
    at = event.get("time", "")
    style = render.STATUS_STYLE.get(what, "yellow" if event.get("source") != event_shapes.AWS_SOURCE else "")
    line = Text(f"{seq:>6}  {at}  ")
    line.append(f"{what:<16}", style=style)
    line.append(f"  {job}")
    if words:
        line.append(f"  {words}")
    return line


@handles_errors
def events(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events as they come.")] = False,
    queue: Annotated[str | None, typer.Option("--job-queue", "--queue", help="Only this queue's jobs.")] = None,
    status: Annotated[list[str], typer.Option("--status", "-s", help="Only changes to this status (repeatable).")] = [],  # noqa: B006
    since: Annotated[str, typer.Option(help="From this time: 30m, 2h, 1d, an ISO time or epoch ms; 0 for all.")] = "1h",
    after: Annotated[
        int | None, typer.Option(help="Only events after this sequence number (overrides --since).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    json_: Annotated[bool, typer.Option("--json", help='One JSON object per line: {"seq", "event"}.')] = False,
) -> None:
    """Job state changes, as EventBridge's "Batch Job State Change" events, oldest first, and
    what the daemon noted about them (failed webhook deliveries, scheduled submissions)."""
    wanted = [s.upper() for s in status]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise UsageError(f"--status: {', '.join(unknown)} is not a job status; allowed: {', '.join(STATUSES)}")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {limit}")
    params: dict[str, Any] = {"after": after or 0, "limit": _PAGE}
    if after is None and since != "0":
        params["since"] = since_ms(since, int(time.time() * 1000))
    if queue:
        params["jobQueue"] = queue
    if wanted:
        params["status"] = ",".join(wanted)
    console = render.stdout()
    shown = 0
    try:
        with bootstrap.backend(settings()) as backend:
            caught_up = False
            while limit is None or shown < limit:
                wait = MAX_WAIT_S if follow and caught_up else 0
                page = backend.get(EVENT_STREAM, {**params, "waitSeconds": int(wait)})
                for entry in page["events"][: None if limit is None else limit - shown]:
                    if json_:
                        typer.echo(json.dumps(entry, separators=(",", ":")))
                    else:
                        console.print(_line(entry["seq"], entry["event"]))
                    shown += 1
                params["after"] = page["lastSeq"]
                caught_up = len(page["events"]) < _PAGE
                if caught_up and not follow:
                    break
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if not shown and not follow and not json_:
        render.stderr().print("no events")


def _when(epoch_ms: int | None) -> str:
    return render.when(epoch_ms, date=True)


@handles_errors
def schedules(
    json_: Annotated[bool, typer.Option("--json", help="Print the schedules extension's answer.")] = False,
) -> None:
    """The configured schedules and triggers with their next and last run, and where events
    are delivered (webhooks, hooks)."""
    with bootstrap.backend(settings()) as backend:
        found = backend.get(SCHEDULES, {})
    if json_:
        print_json(found)
        return
    console = render.stdout()
    if not any(found.get(key) for key in ("schedules", "triggers", "webhooks", "hooks")):
        render.stderr().print("no schedules, triggers, webhooks or hooks in the config file")
        return
    if found["schedules"]:
        table = Table(box=None, pad_edge=False, title="schedules", title_justify="left")
        for column in ("NAME", "EXPRESSION", "SUBMITS", "NEXT RUN", "LAST RUN", "OUTCOME"):
            table.add_column(column, no_wrap=column != "OUTCOME", overflow="fold")
        for s in found["schedules"]:
            next_run = _when(s["nextRunAt"]) if s["state"] == "ENABLED" else "disabled"
            outcome = (s.get("lastOutcome") or "-") + (f" ({s['lastJobId']})" if s.get("lastJobId") else "")
            table.add_row(
                s["name"], s["expression"], f"{s['jobDefinition']} -> {s['jobQueue']}", next_run,
                _when(s.get("lastRunAt")), outcome,
            )  # fmt: skip
        console.print(table)
    if found["triggers"]:
        table = Table(box=None, pad_edge=False, title="triggers", title_justify="left")
        for column in ("NAME", "WHEN A JOB", "SUBMITS", "LAST RUN", "OUTCOME"):
            table.add_column(column, no_wrap=column != "OUTCOME", overflow="fold")
        for t in found["triggers"]:
            when = " ".join(
                part
                for part in (
                    "becomes " + "|".join(t["onStatuses"]),
                    f"in {','.join(t['jobQueues'])}" if t["jobQueues"] else "",
                    f"named {t['jobNamePrefix']}*" if t["jobNamePrefix"] else "",
                    f"of {','.join(t['jobDefinitions'])}" if t["jobDefinitions"] else "",
                )
                if part
            )
            outcome = (t.get("lastOutcome") or "-") + (f" ({t['lastJobId']})" if t.get("lastJobId") else "")
            if t["state"] != "ENABLED":
                outcome = "disabled"
            submits = f"{t['jobDefinition']} -> {t['jobQueue']}"
            table.add_row(t["name"], when, submits, _when(t.get("lastRunAt")), outcome)
        console.print(table)
    targets = [(w["name"], w["url"], w) for w in found["webhooks"]] + [
        (h["name"], " ".join(h["command"]), h) for h in found["hooks"]
    ]
    if targets:
        table = Table(box=None, pad_edge=False, title="event deliveries", title_justify="left")
        for column in ("NAME", "TO", "FILTER"):
            table.add_column(column, overflow="fold")
        for name, to, target in targets:
            rules = [
                ",".join(target["jobQueues"]),
                "|".join(target["statuses"]),
                f"{target['jobNamePrefix']}*" if target["jobNamePrefix"] else "",
                ",".join(target["jobDefinitions"]),
            ]
            table.add_row(name, to, " ".join(r for r in rules if r) or "every state change")
        console.print(table)


def register_commands(app: typer.Typer) -> None:
    app.command()(events)
    app.command()(schedules)
