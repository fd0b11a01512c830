"""``localbatch run``: run a job definition now and exit with its exit code.

With a daemon running, the job goes through it (queued and packed with everything else):
register if changed, submit, stream the output, print each state change, TerminateJob on
Ctrl-C. Without one, the job runs in this process (``runner``), as before a daemon existed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from localbatch import bootstrap, jobdef, render, session
from localbatch.awsbatch.jobdetail import job_detail
from localbatch.cli._common import handles_errors, overrides, settings
from localbatch.config import DEFAULT_QUEUE, Settings
from localbatch.core.definition import JobDefinition
from localbatch.core.jobs import Job, JobEvent
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.naming import Arns
from localbatch.errors import LocalbatchError, UsageError
from localbatch.extensions import LOGS
from localbatch.runner import exit_status

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@handles_errors
def run(
    file: Annotated[Path, typer.Argument(help="Job definition TOML file.")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="NAME=VALUE for Ref::NAME.")] = [],  # noqa: B006
    env: Annotated[list[str], typer.Option("--env", "-e", help="NAME=VALUE environment variable.")] = [],  # noqa: B006
    vcpus: Annotated[float | None, typer.Option(help="Override resources.vcpus.")] = None,
    memory_mib: Annotated[int | None, typer.Option(help="Override resources.memory_mib.")] = None,
    gpus: Annotated[int | None, typer.Option(help="Override resources.gpus.")] = None,
    command: Annotated[
        str | None, typer.Option(help="Override the command, split like a shell: 'sh -c \"exit 3\"'.")
    ] = None,
    attempts: Annotated[int | None, typer.Option(help="Override retry.attempts (1..10).")] = None,
    timeout: Annotated[int | None, typer.Option(help="Override timeout.attempt_duration_seconds.")] = None,
    name: Annotated[str | None, typer.Option(help="Job name (default: the definition's name).")] = None,
    queue: Annotated[str, typer.Option(help="Job queue (through the daemon).")] = DEFAULT_QUEUE,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the final state.")] = False,
) -> None:
    """Run a job definition now, in a container on this machine, and exit with its exit code.

    Through the daemon when one runs (the job is queued and packed with the others), else in
    this process."""
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
    )
    for warning in session.warnings(definition, chosen):
        render.stderr().print(render.warning_lines(warning))
    job_name = name or definition.name
    if bootstrap.daemon_answers(current):
        code = _through_daemon(current, definition, chosen, job_name, queue, quiet)
    elif queue != DEFAULT_QUEUE:
        raise UsageError(f"--queue {queue}: no daemon runs, and without one jobs run in queue {DEFAULT_QUEUE}")
    else:
        code = _in_process(current, definition, chosen, job_name, quiet)
    raise typer.Exit(code)


@contextmanager
def stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[list[int]]:
    """Route SIGINT, SIGTERM and SIGHUP (the terminal closed) to ``request_stop``: the first
    stops the job gracefully, a second kills its container."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        request_stop(f"Terminated: localbatch run received {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# -- without a daemon -------------------------------------------------------------------------


class _ConsoleObserver:
    def __init__(self, arns: Arns, quiet: bool) -> None:
        self._console = render.stderr()
        self._arns = arns
        self._quiet = quiet

    def transition(self, job: Job, event: JobEvent) -> None:
        if not self._quiet or event.to_status.is_terminal:
            self._console.print(render.transition_line(job_detail(job, self._arns), event.at))

    def note(self, job: Job, message: str) -> None:
        if not self._quiet:
            self._console.print(render.note_lines(message))

    def warn(self, job: Job, message: str) -> None:
        self._console.print(render.warning_lines(message))

    def output(self, chunk: bytes) -> None:
        render.write_output(chunk)


def _in_process(current: Settings, definition: JobDefinition, chosen: JobOverrides, name: str, quiet: bool) -> int:
    observer = _ConsoleObserver(Arns(current.region, current.account_id), quiet)
    with (
        bootstrap.local_runner(current, observer) as runner,
        stop_on_signals(runner.request_stop) as received,
    ):
        job = runner.submit(definition, chosen, name)
        job = runner.run(job)
    return exit_status(job, received[0] if received else None)


# -- through the daemon -----------------------------------------------------------------------


def _through_daemon(
    current: Settings, definition: JobDefinition, chosen: JobOverrides, name: str, queue: str, quiet: bool
) -> int:
    stop_reason: list[str] = []
    with bootstrap.backend(current) as backend, stop_on_signals(stop_reason.append) as received:
        ref = session.ensure_registered(backend, definition)
        job_id = session.submit(backend, ref, queue, name, chosen)["jobId"]
        printer = threading.Thread(target=_print_output, args=(current, job_id), name="output", daemon=True)
        printer.start()
        detail = _watch(backend, job_id, stop_reason, quiet)
        printer.join(timeout=10)
    return session.exit_status(detail, received[0] if received else None)


def _print_output(current: Settings, job_id: str) -> None:
    """The job's output, every attempt, as it is written (on a connection of its own)."""
    try:
        with bootstrap.backend(current) as backend:
            for chunk in backend.stream(LOGS, {"jobId": job_id, "follow": "true"}):
                render.write_output(chunk)
    except (LocalbatchError, OSError):
        pass  # the state lines say how the job ended; a lost output stream must not hide it


def _watch(backend: session.Backend, job_id: str, stop_reason: list[str], quiet: bool) -> dict[str, object]:
    """Print each state change until the job ends; ask the daemon to terminate it on a signal."""
    console = render.stderr()
    shown = 0
    terminated = False
    while True:
        if stop_reason and not terminated:
            backend.call("TerminateJob", {"jobId": job_id, "reason": stop_reason[0]})
            terminated = True
        history = session.events(backend, job_id)
        detail = session.describe(backend, job_id)
        for event in history[shown:]:
            final = event["to"] in session.TERMINAL
            if not quiet or final:
                console.print(
                    render.transition_line(
                        {**detail, "status": event["to"], "statusReason": event.get("reason")}, event["at"]
                    )
                )
        shown = len(history)
        if detail["status"] in session.TERMINAL and shown and history[-1]["to"] == detail["status"]:
            return detail
        time.sleep(0.2)
