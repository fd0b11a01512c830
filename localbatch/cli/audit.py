"""``localbatch audit``: the audit log of API calls that changed state (read from the file, so
it works without the daemon)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from localbatch import render, safe_text
from localbatch.audit import select_entries
from localbatch.cli._common import handles_errors, settings
from localbatch.cli.events import since_ms
from localbatch.errors import UsageError


@handles_errors
def audit(
    since: Annotated[str, typer.Option(help="From this time: 30m, 2h, 1d, an ISO time or epoch ms; 0 for all.")] = "0",
    principal: Annotated[str | None, typer.Option(help="Only calls by this key name or OS user.")] = None,
    operation: Annotated[
        str | None, typer.Option(help="Only this operation (SubmitJob, or an extension's path).")
    ] = None,
    last: Annotated[int | None, typer.Option("-n", "--last", help="Only the last N matching entries.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per line, as in the file.")] = False,
) -> None:
    """API calls that changed state (submit, cancel, register, ...), refused ones included:
    when, who, from where, what, and the outcome; oldest first."""
    if last is not None and last < 1:
        raise UsageError(f"-n: must be at least 1, got {last}")
    current = settings()
    start = since_ms(since, int(time.time() * 1000)) if since != "0" else None
    found = select_entries(current.audit_log_path, since_ms=start, principal=principal, operation=operation, last=last)
    if json_:
        for entry in found:
            typer.echo(json.dumps(entry, separators=(",", ":")))
        return
    if not found:
        render.stderr().print(f"no audit entries in {current.audit_log_path}", highlight=False)
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("time", no_wrap=True)
    for column in ("principal", "from", "operation", "target", "outcome"):
        table.add_column(column)
    for entry in safe_text.fields(found):  # callers chose these strings: shown, never obeyed
        target = entry.get("target") or {}
        shown_target = " ".join(f"{v}" for v in target.values()) if isinstance(target, dict) else str(target)
        outcome = str(entry.get("outcome", ""))
        if outcome != "ok" and entry.get("message"):
            outcome = f"{outcome}: {str(entry['message']).splitlines()[0][:80]}"
        peer = entry.get("peer") or ""
        table.add_row(
            str(entry.get("time", "")),
            str(entry.get("principal") or f"? {entry.get('access_key_id', '')}".strip()),
            f"{entry.get('transport', '')} {peer}".strip(),
            str(entry.get("operation", "")),
            shown_target[:60],
            outcome,
            style=None if outcome == "ok" else "red",
        )
    render.stdout().print(table)


def register_commands(app: typer.Typer) -> None:
    app.command()(audit)
