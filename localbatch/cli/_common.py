"""What every command shares: settings, error-to-exit-code mapping, argument parsing helpers.

Exit codes, decided here and nowhere else: 0 success; 2 the request was refused as invalid
(a bad file, argument, setting, unknown name, or the daemon's ClientException); 1 anything
that went wrong while doing it. ``run`` and ``wait`` exit with the job's own code.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from localbatch import bootstrap, config, jobdef, render, session
from localbatch.api.errors import ApiError
from localbatch.awsbatch.requests import SubmitRequest
from localbatch.client import RequestRejected
from localbatch.core import arrays, dependencies, portability
from localbatch.core.definition import JobDefinition
from localbatch.core.infra import share_identifier_problem
from localbatch.core.jobs import Dependency, DependencyType
from localbatch.core.lifecycle import JobOverrides, check_overrides
from localbatch.core.retry import EvaluateOnExit, RetryStrategy
from localbatch.errors import (
    ConfigError,
    ExportError,
    InvalidRequest,
    JobDefinitionError,
    LocalbatchError,
    NotFound,
    Problem,
    UsageError,
)

P = ParamSpec("P")
R = TypeVar("R")

_REFUSED = (JobDefinitionError, UsageError, ConfigError, ExportError, InvalidRequest, NotFound, RequestRejected)


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
TimeoutFlag = Annotated[
    int | None,
    typer.Option(help="Override timeout.attempt_duration_seconds (under 60 runs here, with a warning)."),
]
NameFlag = Annotated[str | None, typer.Option(help="Job name (default: the definition's name).")]
QueueFlag = Annotated[str, typer.Option(help="Job queue name or ARN.")]
ArraySizeFlag = Annotated[
    int | None,
    typer.Option(help="Submit an array job of N children (2..10000); each reads AWS_BATCH_JOB_ARRAY_INDEX."),
]
DependsOnFlag = Annotated[
    list[str],
    typer.Option(
        "--depends-on",
        metavar="JOB_ID[:N_TO_N]|SEQUENTIAL",
        help="Wait until JOB_ID succeeded (repeatable, up to 20). JOB_ID:N_TO_N (arrays): child i waits "
        "for child i of that array. SEQUENTIAL (arrays): the children run one after another.",
    ),
]
ShareIdentifierFlag = Annotated[
    str | None, typer.Option(help="Fair-share identifier (shareIdentifier; fair-share queues).")
]
SchedulingPriorityFlag = Annotated[
    int | None,
    typer.Option(help="Override the scheduling priority (schedulingPriorityOverride, 0..9999; fair-share queues)."),
]
TagFlag = Annotated[list[str], typer.Option("--tag", help="KEY=VALUE tag on the job (repeatable).")]
PropagateTagsFlag = Annotated[
    bool | None,
    typer.Option(
        "--propagate-tags/--no-propagate-tags",
        help="Override propagate_tags (default: the definition's).",
        show_default=False,
    ),
]
RetryOnExitFlag = Annotated[
    list[str],
    typer.Option(
        "--retry-on-exit",
        metavar="RULE",
        help="An evaluate_on_exit rule, e.g. 'action=EXIT,on_exit_code=3' (repeatable, up to 5, tried in order; "
        "fields: action, on_exit_code, on_reason, on_status_reason). Replaces the definition's rules.",
    ),
]


class Target(str, Enum):
    """Where ``submit``, ``describe`` and ``ls`` go."""

    LOCAL = "local"
    AWS = "aws"


# ``--target`` and where AWS is: shared by every command that can reach AWS Batch.
TargetFlag = Annotated[
    Target,
    typer.Option(
        "--target",
        help="local: this machine's daemon. aws: AWS Batch itself (through boto3; --region, --profile, "
        "--endpoint-url say which).",
        case_sensitive=False,
    ),
]
RegionFlag = Annotated[
    str | None,
    typer.Option(help="AWS region (default: the config's [aws] region, then AWS's own: AWS_REGION, ~/.aws)."),
]
ProfileFlag = Annotated[
    str | None,
    typer.Option(help="AWS CLI profile (default: the config's [aws] profile, then AWS's own: AWS_PROFILE)."),
]
EndpointUrlFlag = Annotated[
    str | None,
    typer.Option(help="AWS Batch endpoint URL, for an endpoint that speaks its API (default: AWS's own)."),
]


@dataclass(frozen=True)
class AwsWhere:
    """``--region``, ``--profile``, ``--endpoint-url`` as given (None: not given)."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None


def aws_backend(current: config.Settings, where: AwsWhere) -> session.Backend:
    """AWS Batch behind ``session.Backend``: the flags, else the config's ``[aws]``, else AWS's
    own configuration. ``CloudError`` (NoRegion) when no region is found anywhere."""
    from localbatch.awsbatch import aws_client  # boto3 loads only when AWS is the target

    target = aws_client.Target(where.region, where.profile, where.endpoint_url).with_defaults(current.cloud)
    return aws_client.AwsBackend(aws_client.connect(target))


@contextmanager
def target_backend(current: config.Settings, target: Target, where: AwsWhere) -> Iterator[session.Backend]:
    """The daemon (or this process on its store) for ``local``, AWS Batch for ``aws``."""
    if target is Target.AWS:
        yield aws_backend(current, where)
        return
    if where != AwsWhere():
        raise UsageError("--region, --profile and --endpoint-url apply to --target aws only")
    with bootstrap.backend(current) as backend:
        yield backend


@dataclass(frozen=True)
class JobOptions:
    """What ``run`` and ``submit`` send besides the overrides: SubmitJob's arrayProperties,
    dependsOn, shareIdentifier and propagateTags."""

    array_size: int | None = None
    depends_on: tuple[Dependency, ...] = ()
    share_identifier: str | None = None
    propagate_tags: bool | None = None

    def request(self, job_name: str, job_queue: str, job_definition: str, chosen: JobOverrides) -> SubmitRequest:
        return SubmitRequest(
            job_name,
            job_queue,
            job_definition,
            chosen,
            propagate_tags=self.propagate_tags,
            array_size=self.array_size,
            depends_on=self.depends_on,
            share_identifier=self.share_identifier,
        )


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
    scheduling_priority: int | None = None,
    tag: list[str] | None = None,
    retry_on_exit: list[str] | None = None,
    aws_platforms: Collection[str] | None = None,
) -> JobOverrides:
    """The overrides the common flags of ``run`` and ``submit`` ask for, checked (problems are
    named by their flags), with a warning printed for each that AWS Batch would refuse.

    ``--attempts`` alone keeps the local definition's rules; ``--retry-on-exit`` replaces
    them, as SubmitJob's retryStrategy replaces the definition's, keeping its attempts unless
    ``--attempts`` says otherwise. For a definition named on the daemon either flag replaces
    the whole strategy (``--retry-on-exit`` then needs ``--attempts``, as AWS requires).

    With ``aws_platforms`` (the definition's platform capabilities, for ``--target aws``) what
    AWS Batch would refuse in the overrides (a timeout under 60 s, a fractional vCPU count on
    EC2) is refused here instead of warned about: nothing local-only reaches AWS silently."""
    problems: list[Problem] = []
    base = definition.retry_strategy if definition is not None else RetryStrategy()
    retry = None
    if attempts is not None:
        retry = replace(base, attempts=attempts)
    if retry_on_exit:
        rules, rule_problems = retry_rules(retry_on_exit)
        problems += rule_problems
        if definition is None and attempts is None:
            problems.append(
                Problem(
                    "evaluate_on_exit",
                    "needs --attempts when the definition is given by name (AWS requires attempts with evaluateOnExit)",
                )
            )
        retry = RetryStrategy(attempts=attempts if attempts is not None else base.attempts, evaluate_on_exit=rules)
    chosen = JobOverrides(
        parameters=pairs("--param", param),
        environment=pairs("--env", env),
        vcpus=vcpus,
        memory_mib=memory_mib,
        gpus=gpus,
        command=split_command(command),
        retry_strategy=retry,
        timeout_s=timeout,
        tags=pairs("--tag", tag or []),
        scheduling_priority=scheduling_priority,
    )
    problems = check_overrides(chosen) + problems
    if aws_platforms is not None:
        problems += [
            Problem(p.path, p.message.replace(portability.RELAXED, "AWS Batch refuses it (--target aws)"))
            for p in portability.job_problems(
                timeout_s=chosen.timeout_s,
                vcpus=chosen.vcpus if chosen.vcpus is not None else 1,
                platform_capabilities=aws_platforms,
            )
        ]
    if problems:
        raise as_flags(problems)
    if aws_platforms is not None:
        return chosen  # the export plan warns about the definition itself
    for warning in session.warnings(definition, chosen):
        render.stderr().print(render.warning_lines(warning))
    return chosen


_RULE_FIELDS = {
    "action": "action",
    "onexitcode": "on_exit_code",
    "onreason": "on_reason",
    "onstatusreason": "on_status_reason",
}
RULE_SYNTAX = "expected FIELD=PATTERN pairs joined by commas, e.g. 'action=EXIT,on_exit_code=3'"


def retry_rules(texts: list[str]) -> tuple[tuple[EvaluateOnExit, ...], list[Problem]]:
    """``--retry-on-exit`` rules (``action=RETRY,on_status_reason=Host EC2*``), checked by the
    job definition's own rules. Fields may be written snake_case or as AWS spells them
    (``onExitCode``); AWS's patterns hold no ',' or '=', so the split is unambiguous."""
    tables: list[dict[str, str]] = []
    problems: list[Problem] = []
    for text in texts:
        table: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            field_name = _RULE_FIELDS.get(key.strip().replace("_", "").lower())
            if not sep or field_name is None:
                allowed = ", ".join(_RULE_FIELDS.values())
                problems.append(Problem(f"rule {text}", f"{part.strip()!r}: {RULE_SYNTAX}; fields: {allowed}"))
                break
            if field_name in table:
                problems.append(Problem(f"rule {text}", f"{field_name} is given twice"))
                break
            table[field_name] = value.strip()
        tables.append(table)
    if problems:
        return (), problems
    try:
        # attempts is the caller's to set; 1 here keeps its problems out of the rules' ones
        strategy = jobdef.parse_retry({"attempts": 1, "evaluate_on_exit": tables}, "--retry-on-exit")
    except JobDefinitionError as exc:
        return (), [_rule_problem(p, texts) for p in exc.problems]
    return strategy.evaluate_on_exit, []


def _rule_problem(problem: Problem, texts: list[str]) -> Problem:
    """``evaluate_on_exit[1].on_exit_code`` -> the rule as the user wrote it and the field."""
    head, _, rest = problem.path.partition("]")
    if head.startswith("evaluate_on_exit[") and head[len("evaluate_on_exit[") :].isdigit():
        text = texts[int(head[len("evaluate_on_exit[") :])]
        field_name = rest.lstrip(".")
        if field_name == "action" and "missing" in problem.message:
            return Problem(f"rule {text}", "action is required: action=RETRY or action=EXIT")
        return Problem(f"rule {text}", f"{field_name}: {problem.message}" if field_name else problem.message)
    return Problem("evaluate_on_exit", problem.message)


def job_options(
    *,
    array_size: int | None,
    depends_on: list[str],
    share_identifier: str | None,
    propagate_tags: bool | None,
) -> JobOptions:
    """``--array-size``, ``--depends-on``, ``--share-identifier`` and ``--propagate-tags``,
    checked as far as they can be without the daemon (it checks that the jobs exist)."""
    problems: list[str] = []
    if array_size is not None and (why := arrays.size_problem(array_size)) is not None:
        problems.append(f"--array-size: {why}")
    dependencies_: list[Dependency] = []
    for text in depends_on:
        found = dependency(text)
        if isinstance(found, str):
            problems.append(f"--depends-on {text!r}: {found}")
        elif found.type is not None and array_size is None:
            problems.append(f"--depends-on {text!r}: {found.type.value} applies to array jobs only (add --array-size)")
        else:
            dependencies_.append(found)
    if len(depends_on) > dependencies.MAX_DEPENDENCIES:
        problems.append(f"--depends-on: at most {dependencies.MAX_DEPENDENCIES}, got {len(depends_on)}")
    if share_identifier is not None and (why := share_identifier_problem(share_identifier)) is not None:
        problems.append(f"--share-identifier: {why}")
    if problems:
        raise UsageError("\n".join(problems))
    return JobOptions(array_size, tuple(dependencies_), share_identifier, propagate_tags)


def dependency(text: str) -> Dependency | str:
    """``JOB_ID``, ``JOB_ID:N_TO_N`` or ``SEQUENTIAL`` as a dependsOn entry, or what is wrong.
    Only a known type after the last ':' is read as one: array children's ids hold a ':'."""
    if text.upper() == DependencyType.SEQUENTIAL.value:
        return Dependency(None, DependencyType.SEQUENTIAL)
    job_id, sep, kind = text.rpartition(":")
    if sep and kind.upper() == DependencyType.SEQUENTIAL.value:
        return "SEQUENTIAL orders this array's own children and names no job: write --depends-on SEQUENTIAL"
    if sep and kind.upper() == DependencyType.N_TO_N.value:
        return Dependency(job_id, DependencyType.N_TO_N) if job_id else "N_TO_N needs a job id: JOB_ID:N_TO_N"
    if not text.strip():
        return "expected JOB_ID, JOB_ID:N_TO_N or SEQUENTIAL"
    return Dependency(text, None)


# Override paths (the core's names) -> the flags that set them.
_FLAGS = {
    "environment": "--env",
    "vcpus": "--vcpus",
    "memory_mib": "--memory-mib",
    "gpus": "--gpus",
    "command": "--command",
    "retry.attempts": "--attempts",
    "timeout": "--timeout",
    "scheduling_priority": "--scheduling-priority",
    "tags": "--tag",
    "evaluate_on_exit": "--retry-on-exit",
    "timeout.attempt_duration_seconds": "--timeout",
    "resources.vcpus": "--vcpus",
}


def as_flags(problems: list[Problem]) -> UsageError:
    """Override problems, named by the flags that set them."""
    lines = []
    for problem in problems:
        head, _, rest = problem.path.partition(".")
        if head == "environment" and rest:
            lines.append(f"--env {rest}: {problem.message}")
        elif head == "tags" and rest:
            lines.append(f"--tag {rest}: {problem.message}")
        elif problem.path.startswith("rule "):
            lines.append(f"--retry-on-exit {problem.path[len('rule ') :]!r}: {problem.message}")
        else:
            lines.append(f"{_FLAGS.get(problem.path, problem.path)}: {problem.message}")
    return UsageError("\n".join(lines))
