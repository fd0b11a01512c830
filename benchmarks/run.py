"""``make bench``: run every benchmark, print a table, write the figures as JSON.

Each module under ``benchmarks/`` has ``measure(quick) -> dict[str, float]``; this runs
them in turn (``--only scheduler,api`` picks some) and writes
``benchmarks/results/<UTC time>.json`` (and ``latest.json``) with the machine it ran on.
Figures are measured, never assumed: ``docs/benchmarks.md`` quotes runs of this command.

    python -m benchmarks.run            # full run (the daemon benchmark needs a Docker engine)
    python -m benchmarks.run --quick    # smaller inputs, for everyday use
    python -m benchmarks.run --smoke    # tiny inputs: the harness works (``pytest -m bench_smoke``)
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BENCHMARKS = ("scheduler", "store", "api", "daemon", "endpoint", "transfer", "overhead", "packing", "peer")
# What ``make bench-quick`` and ``--smoke`` run: the S3 transfers are left out (they move 128 MiB at least).
QUICK = ("scheduler", "store", "api", "daemon", "endpoint", "overhead", "packing", "peer")
# Top-level keys every full, quick or smoke run writes (issue 8).
REQUIRED = (
    "overhead_ratio",
    "packing_ratio",
    "fifo_packing_ratio",
    "localbatch_jobs_per_s",
    "moto_jobs_per_s",
    "scheduler_pass_ms_10k",
)
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: checks the harness, figures mean nothing")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    args = parser.parse_args()
    if args.only is None:
        args.only = ",".join(QUICK if args.quick or args.smoke else BENCHMARKS)
    console = Console()
    figures: dict[str, float] = {}
    seconds: dict[str, float] = {}
    load_before = os.getloadavg()
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if name not in BENCHMARKS:
            parser.error(f"--only: no benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"benchmarks.bench_{name}")
        console.print(f"[bold]{name}[/bold] ...")
        started = time.perf_counter()
        figures.update(module.smoke() if args.smoke else module.measure(args.quick))
        seconds[name] = round(time.perf_counter() - started, 1)
    kind = " (smoke)" if args.smoke else " (quick)" if args.quick else ""
    table = Table(title="localbatch benchmarks" + kind)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:g}")
    console.print(table)
    record = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "smoke": args.smoke,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": seconds,
        # The machine may be shared: how busy it was, 1-minute load average before and after.
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        **figures,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    stamp = str(record["when"]).replace(":", "").replace("+0000", "Z")
    for path in (args.results / f"{stamp}.json", args.results / "latest.json"):
        path.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"written: {args.results / f'{stamp}.json'}")


if __name__ == "__main__":
    main()
