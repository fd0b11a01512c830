"""Watching the batch: ``top``, ``advise``, and the progress display ``run`` and ``wait`` show.

Thin: data comes through the API (``session``), the arithmetic from ``core.progress`` and
``core.advise``, the screens from ``render``.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.live import Live

from localbatch import advice, bootstrap, prices, render, session
from localbatch.cli._common import handles_errors, print_json, settings
from localbatch.core.progress import Progress, progress
from localbatch.errors import UsageError

DEFAULT_REGION = "us-east-1"
NoProgressFlag = Annotated[
    bool,
    typer.Option("--no-progress", help="Plain progress lines instead of the live display (always when not a TTY)."),
]


# -- progress of run and wait -------------------------------------------------------------------


class BatchProgress:
    """Counts per state, elapsed and estimated remaining time of a batch (an array's children,
    a dependency graph), shown live on a terminal and as a plain line on each change otherwise."""

    def __init__(
        self,
        backend: session.Backend,
        job_ids: Sequence[str],
        *,
        live: bool,
        title: str,
        console: Console | None = None,
    ) -> None:
        """``console``: where to draw; whatever else is printed meanwhile must go through it
        too, so that the live display stays below it intact."""
        self._backend = backend
        self._job_ids = list(job_ids)
        self._title = title
        self._console = console or render.stderr()
        created = [d.get("createdAt") for d in session.describe_many(backend, self._job_ids)]
        self._since_ms = min((c for c in created if isinstance(c, int)), default=int(time.time() * 1000))
        self._live: Live | None = None
        if live:
            self._live = Live(console=self._console, auto_refresh=False, transient=False)
            self._live.start()
        self._last_line = ""

    def update(self) -> Progress:
        found = progress(session.batch_counts(self._backend, self._job_ids), time.time() - self._since_ms / 1000)
        if self._live is not None:
            self._live.update(render.progress_view(found, self._title), refresh=True)
            return found
        counts = render.progress_line(found).split(" | elapsed")[0]  # a new line when counts change
        if counts != self._last_line:
            self._console.print(render.progress_line(found), markup=False)
            self._last_line = counts
        return found

    def to_lines(self) -> None:
        """From now on plain lines (the job's own output is about to reach the terminal)."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        self.to_lines()


def wants_live(no_progress: bool) -> bool:
    return not no_progress and render.is_terminal(sys.stdout) and render.is_terminal(sys.stderr)


# -- top ----------------------------------------------------------------------------------------------


@contextmanager
def keys(stream: TextIO) -> Iterator[Keys]:
    """Single key presses from ``stream`` (a terminal), without echo; the terminal's settings
    are restored on the way out, whatever ends the block (q, Ctrl-C, an error)."""
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield Keys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Keys:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def quit_within(self, seconds: float) -> bool:
        """Whether q (or Q) is pressed within ``seconds``; other keys are read and ignored."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return False
            pressed = os.read(self._fd, 32)
            if not pressed or b"q" in pressed.lower():
                return True
        return False


@handles_errors
def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one screen and exit (also when not a TTY).")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one snapshot as JSON and exit.")] = False,
) -> None:
    """A live view of the machine: compute environments (vCPU, memory, GPUs allocated of
    capacity), running jobs with their CPU %, memory against their limit and GPUs, and each
    queue's first waiting jobs with the reason they wait. q or Ctrl-C quits."""
    if interval <= 0:
        raise UsageError(f"--interval: must be above 0, got {interval:g}")
    with bootstrap.backend(settings()) as backend:
        if json_:
            print_json(session.top_snapshot(backend))
            return
        interactive = not once and render.is_terminal(sys.stdout) and render.is_terminal(sys.stdin)
        if not interactive:
            render.stdout().print(render.top_view(session.top_snapshot(backend), int(time.time() * 1000)))
            return
        console = Console(highlight=False, markup=False)
        try:
            with keys(sys.stdin) as pressed, Live(console=console, screen=True, auto_refresh=False) as live:
                while True:
                    view = render.top_view(session.top_snapshot(backend), int(time.time() * 1000))
                    live.update(view, refresh=True)
                    if pressed.quit_within(interval):
                        break
        except KeyboardInterrupt:
            pass  # Ctrl-C quits like q; the blocks above restored the screen and the terminal


# -- advise ---------------------------------------------------------------------------------------------


@handles_errors
def advise(
    target: Annotated[str, typer.Argument(help="A job id, or a job definition NAME[:REVISION].")],
    region: Annotated[
        str | None, typer.Option(help="AWS region to price (default: the config's [aws] region, else us-east-1).")
    ] = None,
    prices_file: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            envvar="LOCALBATCH_AWS_PRICES",
            help="Price table JSON to use instead of the shipped, dated snapshot (docs/advise.md has the format).",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Look at this many of the latest ended attempts.")] = 20,
    margin: Annotated[float, typer.Option(help="Memory (and CPU) headroom over the peak, as a fraction.")] = 0.2,
    no_cost: Annotated[bool, typer.Option("--no-cost", help="Leave out the AWS cost estimate.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the advice as JSON.")] = False,
) -> None:
    """Compare what a job definition's recent runs asked for with what they used; recommend
    vcpus and memory_mib (with an out-of-memory margin) and estimate one run's cost on AWS:
    EC2 On-Demand, EC2 Spot and Fargate."""
    if not 1 <= limit <= 200:
        raise UsageError(f"--limit: 1..200, got {limit}")
    if not 0 <= margin <= 4:
        raise UsageError(f"--margin: a fraction 0..4 (0.2 = 20 %), got {margin:g}")
    current = settings()
    table = None if no_cost else prices.load(prices_file)
    chosen_region = region or current.cloud.region or DEFAULT_REGION
    with bootstrap.backend(current) as backend:
        answer = advice.advice(backend, target, limit=limit, margin=margin, prices=table, region=chosen_region)
    if json_:
        print_json(answer)
        return
    console = render.stdout()
    for part in render.advise_view(answer):
        console.print(part)


def register_commands(app: typer.Typer) -> None:
    app.command()(top)
    app.command()(advise)
