"""``make bench``: run every benchmark, print a table, write the figures as JSON.

Each module under ``benchmarks/`` has ``measure(quick) -> dict[str, float]``; this runs
them in turn (``--only scheduler,api`` picks some) and writes
``benchmarks/results/<UTC time>.json`` (and ``latest.json``) with the machine it ran on.
Figures are measured, never assumed: ``docs/benchmarks.md`` quotes runs of this command.

    python -m benchmarks.run            # full run (the daemon benchmark needs a Docker engine)
    python -m benchmarks.run --quick    # smaller inputs, for everyday use
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
# What ``make bench-quick`` runs: everyday figures, under 3 minutes (the S3 transfers are left out).
QUICK = ("scheduler", "store", "api", "daemon", "endpoint", "overhead", "packing", "peer")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer repeats")
    parser.add_argument("--only", help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    if args.only is None:
        args.only = ",".join(QUICK if args.quick else BENCHMARKS)
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
        figures.update(module.measure(args.quick))
        seconds[name] = round(time.perf_counter() - started, 1)
    table = Table(title="localbatch benchmarks" + (" (quick)" if args.quick else ""))
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, f"{value:g}")
    console.print(table)
    record = {
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds": seconds,
        # The machine may be shared: how busy it was, 1-minute load average before and after.
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        **figures,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = record["when"].replace(":", "").replace("+0000", "Z")
    for path in (RESULTS / f"{stamp}.json", RESULTS / "latest.json"):
        path.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"written: {RESULTS / f'{stamp}.json'}")


if __name__ == "__main__":
    main()
