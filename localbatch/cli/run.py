"""``localbatch run``: run a job definition now and exit with its exit code.

One path whoever runs the job: register if changed, submit, stream the output, print each
state change, TerminateJob on Ctrl-C (a second one kills at once). With a daemon running the
job goes through it, queued and packed with everything else; without one, the same engine
runs inside this process (``bootstrap.local_engine``) for this job alone.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from localbatch import bootstrap, jobdef, render, session
from localbatch.cli._common import (
    ArraySizeFlag,
    AttemptsFlag,
    CommandFlag,
    DependsOnFlag,
    EnvFlag,
    GpusFlag,
    MemoryFlag,
    NameFlag,
    ParamFlag,
    PropagateTagsFlag,
    QueueFlag,
    RetryOnExitFlag,
    SchedulingPriorityFlag,
    ShareIdentifierFlag,
    TagFlag,
    TimeoutFlag,
    VcpusFlag,
    handles_errors,
    job_options,
    overrides,
    settings,
)
from localbatch.cli.watch import BatchProgress, NoProgressFlag, wants_live
from localbatch.config import DEFAULT_QUEUE
from localbatch.errors import LocalbatchError
from localbatch.extensions import LOGS

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@handles_errors
def run(
    file: Annotated[Path, typer.Argument(help="Job definition TOML file.")],
    param: ParamFlag = [],  # noqa: B006
    env: EnvFlag = [],  # noqa: B006
    vcpus: VcpusFlag = None,
    memory_mib: MemoryFlag = None,
    gpus: GpusFlag = None,
    command: CommandFlag = None,
    attempts: AttemptsFlag = None,
    timeout: TimeoutFlag = None,
    array_size: ArraySizeFlag = None,
    depends_on: DependsOnFlag = [],  # noqa: B006
    share_identifier: ShareIdentifierFlag = None,
    scheduling_priority: SchedulingPriorityFlag = None,
    tag: TagFlag = [],  # noqa: B006
    propagate_tags: PropagateTagsFlag = None,
    retry_on_exit: RetryOnExitFlag = [],  # noqa: B006
    name: NameFlag = None,
    queue: QueueFlag = DEFAULT_QUEUE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the final state.")] = False,
    no_progress: NoProgressFlag = False,
) -> None:
    """Run a job definition now, in a container on this machine, and exit with its exit code.

    Through the daemon when one runs (queued and packed with the others), else in this process."""
    current = settings()
    definition = jobdef.load_file(file)
    chosen = overrides(
        definition,
        param=param,
        env=env,
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        command=command,
        attempts=attempts,
        timeout=timeout,
        scheduling_priority=scheduling_priority,
        tag=tag,
        retry_on_exit=retry_on_exit,
    )
    options = job_options(
        array_size=array_size,
        depends_on=depends_on,
        share_identifier=share_identifier,
        propagate_tags=propagate_tags,
    )
    with bootstrap.backend(current, run_here=True) as backend, stop_on_signals() as received:
        ref = session.ensure_registered(backend, definition)
        job_id = session.submit(backend, options.request(name or definition.name, queue, ref, chosen))["jobId"]
        printer = threading.Thread(target=_print_output, args=(backend, job_id), name="output", daemon=True)
        printer.start()
        tracker = None
        console = render.stderr()
        if not quiet and (options.array_size is not None or options.depends_on):
            batch = session.dependency_graph(backend, [job_id])
            live = wants_live(no_progress)
            tracker = BatchProgress(backend, batch, live=live, title=name or definition.name, console=console)
        try:
            detail = _watch(backend, job_id, received, quiet, tracker, console)
        finally:
            if tracker is not None:
                tracker.close()
        printer.join(timeout=10)
    raise typer.Exit(session.exit_status(detail, received[0] if received else None))


@contextmanager
def stop_on_signals() -> Iterator[list[int]]:
    """Record SIGINT, SIGTERM and SIGHUP (the terminal closed) in the list it yields; the
    handler does nothing else (it may run between any two lines)."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _print_output(backend: session.Backend, job_id: str) -> None:
    """The job's output, every attempt, as it is written."""
    try:
        render.write_output(backend.stream(LOGS, {"jobId": job_id, "follow": "true"}))
    except (LocalbatchError, OSError):
        pass  # the state lines say how the job ended; a lost output stream must not hide it


def _watch(
    backend: session.Backend,
    job_id: str,
    received: list[int],
    quiet: bool,
    tracker: BatchProgress | None = None,
    console: Console | None = None,
) -> dict[str, object]:
    """Print each state change until the job ends; a TerminateJob for each signal received
    (the first stops the container gracefully, the next kills it). An array job has no
    container of its own: a line of its children's counts is printed each time they change
    (each child's output: ``localbatch logs PARENT:INDEX``). With ``tracker`` (an array, a job
    with dependencies) the batch's progress is shown instead, live until the job's own
    container starts writing."""
    console = console or render.stderr()
    shown = sent = 0
    last_summary = ""  # an array job: its children's counts, printed when they change
    while True:
        while sent < len(received):
            name = signal.Signals(received[sent]).name
            backend.call("TerminateJob", {"jobId": job_id, "reason": f"Terminated: localbatch run received {name}"})
            sent += 1
        history = session.events(backend, job_id)
        detail = session.describe(backend, job_id)
        if tracker is not None:
            if detail["status"] in ("STARTING", "RUNNING") and "size" not in (detail.get("arrayProperties") or {}):
                tracker.to_lines()  # its output goes to the terminal now
            tracker.update()
        for number, event in enumerate(history):
            if number < shown or (quiet and event["to"] not in session.TERMINAL):
                continue
            attempt = sum(1 for e in history[: number + 1] if e["to"] == "STARTING")
            moment = {**detail, "status": event["to"], "statusReason": event.get("reason")}
            console.print(render.transition_line(moment, event["at"], attempt))
            if event.get("detail") and not quiet:
                console.print(render.note_lines(event["detail"]))
        shown = len(history)
        summary = render.array_summary(detail)
        if summary is not None and summary.plain != last_summary and not quiet and tracker is None:
            console.print(summary)
            last_summary = summary.plain
        if detail["status"] in session.TERMINAL and shown and history[-1]["to"] == detail["status"]:
            return detail
        time.sleep(0.2)
