"""What every command shares: settings, error-to-exit-code mapping, argument parsing helpers.

Exit codes, decided here and nowhere else: 0 success; 2 the request was refused as invalid
(a bad file, argument, setting, unknown name, or the daemon's ClientException); 1 anything
that went wrong while doing it. ``run`` and ``wait`` exit with the job's own code.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from localbatch import config, render, session
from localbatch.api.errors import ApiError
from localbatch.client import RequestRejected
from localbatch.core.definition import JobDefinition
from localbatch.core.lifecycle import JobOverrides, check_overrides
from localbatch.core.retry import RetryStrategy
from localbatch.errors import (
    ConfigError,
    InvalidRequest,
    JobDefinitionError,
    LocalbatchError,
    NotFound,
    Problem,
    UsageError,
)

P = ParamSpec("P")
R = TypeVar("R")

_REFUSED = (JobDefinitionError, UsageError, ConfigError, InvalidRequest, NotFound, RequestRejected)


def exit_code_for(error: LocalbatchError) -> int:
    if isinstance(error, _REFUSED) or (isinstance(error, ApiError) and error.status < 500):
        return 2
    return 1


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a LocalbatchError into its message on stderr and an exit code: one place for all."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LocalbatchError as exc:
            render.stderr().print(render.error_lines(str(exc)))
            raise typer.Exit(exit_code_for(exc)) from None

    return wrapper


def settings() -> config.Settings:
    return config.resolve()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


def pairs(flag: str, values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {value!r}: expected NAME=VALUE")
        found[key] = rest
    return found


def split_command(command: str | None) -> tuple[str, ...] | None:
    if command is None:
        return None
    try:
        return tuple(shlex.split(command))
    except ValueError as exc:
        raise UsageError(f"--command: {exc}") from None


# The flags ``run`` and ``submit`` share: one declaration, one help text.
ParamFlag = Annotated[list[str], typer.Option("--param", "-p", help="NAME=VALUE for Ref::NAME.")]
EnvFlag = Annotated[list[str], typer.Option("--env", "-e", help="NAME=VALUE environment variable.")]
VcpusFlag = Annotated[float | None, typer.Option(help="Override the vCPU requirement (resources.vcpus).")]
MemoryFlag = Annotated[int | None, typer.Option(help="Override the memory requirement in MiB (resources.memory_mib).")]
GpusFlag = Annotated[int | None, typer.Option(help="Override the GPU requirement (resources.gpus).")]
CommandFlag = Annotated[str | None, typer.Option(help="Override the command, split like a shell: 'sh -c \"exit 3\"'.")]
AttemptsFlag = Annotated[int | None, typer.Option(help="Override retry.attempts (1..10).")]
TimeoutFlag = Annotated[int | None, typer.Option(help="Override timeout.attempt_duration_seconds.")]
NameFlag = Annotated[str | None, typer.Option(help="Job name (default: the definition's name).")]
QueueFlag = Annotated[str, typer.Option(help="Job queue name or ARN.")]


def overrides(
    definition: JobDefinition | None,
    *,
    param: list[str],
    env: list[str],
    vcpus: float | None,
    memory_mib: int | None,
    gpus: int | None,
    command: str | None,
    attempts: int | None,
    timeout: int | None,
) -> JobOverrides:
    """The overrides the common flags of ``run`` and ``submit`` ask for, checked (problems are
    named by their flags), with a warning printed for each that AWS Batch would refuse.
    ``--attempts`` keeps the local definition's rules; for a definition named on the daemon it
    replaces the strategy, as SubmitJob's retryStrategy does."""
    retry = None
    if attempts is not None:
        base = definition.retry_strategy if definition is not None else RetryStrategy()
        retry = replace(base, attempts=attempts)
    chosen = JobOverrides(
        parameters=pairs("--param", param),
        environment=pairs("--env", env),
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        command=split_command(command),
        retry_strategy=retry,
        timeout_s=timeout,
    )
    problems = check_overrides(chosen)
    if problems:
        raise as_flags(problems)
    if definition is not None:
        for warning in session.warnings(definition, chosen):
            render.stderr().print(render.warning_lines(warning))
    return chosen


# Override paths (the core's names) -> the flags that set them.
_FLAGS = {
    "environment": "--env",
    "vcpus": "--vcpus",
    "memory_mib": "--memory-mib",
    "gpus": "--gpus",
    "command": "--command",
    "retry.attempts": "--attempts",
    "timeout": "--timeout",
}


def as_flags(problems: list[Problem]) -> UsageError:
    """Override problems, named by the flags that set them."""
    lines = []
    for problem in problems:
        head, _, rest = problem.path.partition(".")
        if head == "environment" and rest:
            lines.append(f"--env {rest}: {problem.message}")
        else:
            lines.append(f"{_FLAGS.get(problem.path, problem.path)}: {problem.message}")
    return UsageError("\n".join(lines))
