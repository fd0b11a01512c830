"""The ``localbatch`` command: parse arguments, call one function, render the result.

No business logic lives here. Errors become exit codes in one place (``_exit_code_for``):
2 for bad input (definition, arguments, config), 1 for everything else that went wrong;
``run`` exits with the job's container exit code.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import wraps
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from localbatch import __version__, bootstrap, config, jobdef, logs, render, service
from localbatch.awsbatch import jobdefinition as aws_jobdefinition
from localbatch.awsbatch.jobdetail import job_detail, job_summary
from localbatch.core.jobs import Job, JobEvent
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.naming import Arns
from localbatch.errors import (
    ConfigError,
    InvalidOverrides,
    JobDefinitionError,
    LocalbatchError,
    Problem,
    UsageError,
)
from localbatch.runner import exit_status

app = typer.Typer(
    name="localbatch",
    help="AWS Batch on your own machine: run AWS Batch job definitions in local Docker containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

P = ParamSpec("P")
R = TypeVar("R")


def _exit_code_for(error: LocalbatchError) -> int:
    return 2 if isinstance(error, (JobDefinitionError, UsageError, ConfigError)) else 1


def _handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a LocalbatchError into its message on stderr and an exit code: one place for all."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LocalbatchError as exc:
            render.stderr().print(render.error_lines(str(exc)))
            raise typer.Exit(_exit_code_for(exc)) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"localbatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what localbatch does to stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _settings() -> config.Settings:
    return config.resolve()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


def _pairs(flag: str, values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {value!r}: expected NAME=VALUE")
        pairs[key] = rest
    return pairs


# -- run -------------------------------------------------------------------------------


class _ConsoleObserver:
    def __init__(self, quiet: bool) -> None:
        self._console = render.stderr()
        self._quiet = quiet

    def transition(self, job: Job, event: JobEvent) -> None:
        if not self._quiet or event.to_status.is_terminal:
            self._console.print(render.transition_line(job, event))

    def note(self, job: Job, message: str) -> None:
        if not self._quiet:
            self._console.print(render.note_lines(message))

    def warn(self, job: Job, message: str) -> None:
        self._console.print(render.warning_lines(message))

    def output(self, chunk: bytes) -> None:
        render.write_output(chunk)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_on_signals(request_stop: Callable[[str], None]) -> Iterator[list[int]]:
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


@app.command()
@_handles_errors
def run(
    file: Annotated[Path, typer.Argument(help="Job definition TOML file.")],
    param: Annotated[list[str], typer.Option("--param", "-p", help="NAME=VALUE for Ref::NAME.")] = [],  # noqa: B006
    env: Annotated[list[str], typer.Option("--env", "-e", help="NAME=VALUE environment variable.")] = [],  # noqa: B006
    vcpus: Annotated[float | None, typer.Option(help="Override resources.vcpus.")] = None,
    memory_mib: Annotated[int | None, typer.Option(help="Override resources.memory_mib.")] = None,
    gpus: Annotated[int | None, typer.Option(help="Override resources.gpus.")] = None,
    command: Annotated[
        str | None,
        typer.Option(help="Override the command, split like a shell: 'sh -c \"exit 3\"'."),
    ] = None,
    attempts: Annotated[int | None, typer.Option(help="Override retry.attempts (1..10).")] = None,
    timeout: Annotated[
        int | None,
        typer.Option(help="Override timeout.attempt_duration_seconds."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Job name (default: the definition's name).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only print the final state.")] = False,
) -> None:
    """Run a job definition now, in a container on this machine, and exit with its exit code."""
    settings = _settings()
    definition = jobdef.load_file(file)
    overrides = JobOverrides(
        parameters=_pairs("--param", param),
        environment=_pairs("--env", env),
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        command=_split_command(command),
        retry_strategy=None if attempts is None else replace(definition.retry_strategy, attempts=attempts),
        timeout_s=timeout,
    )
    with bootstrap.local_runner(settings, _ConsoleObserver(quiet)) as runner:
        with _stop_on_signals(runner.request_stop) as received:
            try:
                job = runner.submit(definition, overrides, name)
            except InvalidOverrides as exc:
                raise UsageError("\n".join(_as_flags(p) for p in exc.problems)) from None
            job = runner.run(job)
    raise typer.Exit(exit_status(job, received[0] if received else None))


# Override paths (core's names) -> the flags that set them.
_FLAGS = {
    "environment": "--env",
    "vcpus": "--vcpus",
    "memory_mib": "--memory-mib",
    "gpus": "--gpus",
    "command": "--command",
    "retry.attempts": "--attempts",
    "timeout": "--timeout",
}


def _as_flags(problem: Problem) -> str:
    head, _, rest = problem.path.partition(".")
    if head == "environment" and rest:
        return f"--env {rest}: {problem.message}"
    return f"{_FLAGS.get(problem.path, problem.path)}: {problem.message}"


def _split_command(command: str | None) -> tuple[str, ...] | None:
    if command is None:
        return None
    try:
        return tuple(shlex.split(command))
    except ValueError as exc:
        raise UsageError(f"--command: {exc}") from None


# -- definitions -----------------------------------------------------------------------


@app.command()
@_handles_errors
def validate(
    files: Annotated[list[Path], typer.Argument(help="Job definition TOML files.")],
    strict: Annotated[
        bool, typer.Option(help="Also fail on what runs locally but AWS Batch would refuse.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Check job definitions: every problem, with file, key path and what is allowed."""
    reports = service.validate_files(files)
    failed = [r for r in reports if r.failed(strict)]
    if json_:
        _print_json([{"file": str(r.file), "problems": r.problems, "warnings": r.warnings} for r in reports])
    else:
        err = render.stderr()
        for r in reports:
            for problem in r.problems:
                err.print(render.error_lines(f"{r.file}: {problem}"))
            for warning in r.warnings:
                show = render.error_lines if strict else render.warning_lines
                err.print(show(f"{r.file}: {warning}"))
        verdict = f"{len(reports) - len(failed)} valid, {len(failed)} invalid"
        err.print(verdict, style="red" if failed else "green")
    if failed:
        raise typer.Exit(2)


@app.command()
@_handles_errors
def export(
    file: Annotated[Path, typer.Argument(help="Job definition TOML file.")],
    format_: Annotated[
        str, typer.Option("--format", help="Output format. Only aws-json for now.")
    ] = "aws-json",
) -> None:
    """Print a job definition as AWS Batch's RegisterJobDefinition request (JSON)."""
    if format_ != "aws-json":
        raise UsageError(f"--format: {format_!r} is not supported; allowed: aws-json")
    definition = jobdef.load_file(file)
    _print_json(aws_jobdefinition.to_register_request(definition, strict=True))


@app.command("import")
@_handles_errors
def import_(
    file: Annotated[
        Path, typer.Argument(help="RegisterJobDefinition request or DescribeJobDefinitions entry (JSON).")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the TOML here instead of stdout."),
    ] = None,
) -> None:
    """Turn an AWS Batch job definition (JSON) into a localbatch TOML file."""
    try:
        document = json.loads(file.read_text())
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise JobDefinitionError(str(file), [_json_problem(exc)]) from None
    definition = aws_jobdefinition.from_register_request(document, str(file))
    text = jobdef.dumps(definition)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write: {exc.strerror}") from None
    render.stderr().print(f"wrote {output}", highlight=False)


def _json_problem(exc: json.JSONDecodeError) -> Problem:
    return Problem("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")


# -- jobs ------------------------------------------------------------------------------


@app.command("ls")
@_handles_errors
def list_(
    status: Annotated[list[str], typer.Option("--status", "-s", help="Only jobs in this status.")] = [],  # noqa: B006
    limit: Annotated[int, typer.Option(help="At most this many jobs, newest first.")] = 50,
    json_: Annotated[bool, typer.Option("--json", help="Print ListJobs' jobSummaryList.")] = False,
) -> None:
    """List jobs, newest first."""
    settings = _settings()
    with bootstrap.state_store(settings) as store:
        jobs = service.list_jobs(store, status, limit)
    if json_:
        arns = Arns(settings.region, settings.account_id)
        _print_json({"jobSummaryList": [job_summary(j, arns) for j in jobs]})
    elif jobs:
        render.stdout().print(render.jobs_table(jobs))
    else:
        render.stderr().print("no jobs")


@app.command()
@_handles_errors
def describe(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    json_: Annotated[bool, typer.Option("--json", help="Print DescribeJobs' JobDetail.")] = False,
) -> None:
    """Show a job: status, reason, attempts and every state change."""
    settings = _settings()
    with bootstrap.state_store(settings) as store:
        view = service.describe_job(store, job_id)
    if json_:
        _print_json(job_detail(view.job, Arns(settings.region, settings.account_id)))
    else:
        console = render.stdout()
        for part in render.job_view(view):
            console.print(part)


@app.command("logs")
@_handles_errors
def logs_(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    attempt: Annotated[int | None, typer.Option(help="Attempt number (default: the latest).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print a job attempt's output (stdout and stderr, as the container wrote them)."""
    settings = _settings()
    with bootstrap.state_store(settings) as store:
        path = service.log_file(settings, store, job_id, attempt)
        if not follow:
            render.write_output(logs.read(path))
            return

        def finished() -> bool:
            job = store.get_job(job_id)
            return (
                job is None or job.status.is_terminal or (attempt is not None and len(job.attempts) > attempt)
            )

        for chunk in logs.follow(path, finished):
            render.write_output(chunk)


# -- host ------------------------------------------------------------------------------


@app.command()
@_handles_errors
def resources(
    json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show what this host offers: CPUs, memory, GPUs, the container engine."""
    settings = _settings()
    report = service.resource_report(settings, bootstrap.host_probe(), bootstrap.container_runtime(settings))
    if json_:
        _print_json(_report_json(report))
    else:
        console = render.stdout()
        for part in render.resource_report(report):
            console.print(part)


def _report_json(report: service.ResourceReport) -> dict[str, Any]:
    host = report.host
    return {
        "host": {"cpus": host.cpus, "memoryMiB": host.memory_mib, "gpuSource": host.gpu_source},
        "gpus": [
            {"id": g.device_id, "index": g.index, "uuid": g.uuid, "name": g.name, "memoryMiB": g.memory_mib}
            for g in host.gpus
        ],
        "computeEnvironments": [
            {
                "computeEnvironmentName": report.compute_environment,
                "capacity": {
                    "vcpus": report.capacity.vcpus,
                    "memoryMiB": report.capacity.memory_mib,
                    "gpus": report.capacity.gpus,
                },
            }
        ],
        "engine": None
        if report.engine is None
        else {
            "name": report.engine.name,
            "version": report.engine.version,
            "apiVersion": report.engine.api_version,
            "networkMode": report.engine.network_mode,
        },
        "engineError": report.engine_error,
    }
