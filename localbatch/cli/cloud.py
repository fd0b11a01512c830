"""To the cloud: ``deploy`` job definitions (and the config's infrastructure) to AWS Batch,
and ``diff`` them against what AWS has. Both need AWS (or an endpoint speaking its API):
even ``deploy --dry-run`` describes what exists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from localbatch import cloud, render
from localbatch.awsbatch import aws_client, export
from localbatch.awsbatch import deploy as aws_deploy
from localbatch.cli._common import (
    EndpointUrlFlag,
    ProfileFlag,
    RegionFlag,
    exit_code_for,
    handles_errors,
    print_json,
)
from localbatch.errors import CloudError, UsageError

PathsArg = Annotated[list[Path], typer.Argument(help="Job definition TOML files, or folders of them (*.toml).")]
ConfigFlag = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A localbatch config: deploy its scheduling policies, compute environments and job queues too, "
        "and read its \\[aws] table (default: the usual config, for \\[aws] only).",
    ),
]


def _client(plan: export.CloudPlan, region: str | None, profile: str | None, endpoint_url: str | None) -> Any:
    target = aws_client.Target(region, profile, endpoint_url).with_defaults(plan.cloud)
    return aws_client.connect(target)


def _warn(plan: export.CloudPlan) -> None:
    for warning in plan.warnings:
        render.stderr().print(render.warning_lines(warning))


@handles_errors
def deploy(
    paths: PathsArg,
    config_file: ConfigFlag = None,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only describe what exists and say what would change.")
    ] = False,
    strict: Annotated[bool, typer.Option(help="Fail on what would change in the cloud (the warnings).")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the outcomes as a JSON list.")] = False,
) -> None:
    """Create or update on AWS Batch what the files (and --config's infrastructure) describe.

    In order: scheduling policies, compute environments (waited for until VALID), job queues,
    job definitions (a new revision only when the definition changed). Stops at the first
    AWS error; what was done before it is printed, nothing after it is attempted."""
    plan = cloud.load_plan(paths, config_file, strict=strict)
    _warn(plan)
    plan.check_complete()  # ExportError before any AWS call (even before a region is looked for)
    client = _client(plan, region, profile, endpoint_url)
    done: list[aws_deploy.Outcome] = []

    def report(outcome: aws_deploy.Outcome) -> None:
        done.append(outcome)
        for note in outcome.notes:
            render.stderr().print(render.warning_lines(f"{outcome.kind.replace('_', ' ')} {outcome.name}: {note}"))
        if not json_:
            typer.echo(outcome.line())

    try:
        aws_deploy.deploy(client, plan, dry_run=dry_run, report=report)
    except CloudError as exc:
        if json_:
            print_json([o.as_json() for o in done])
        err = render.stderr()
        err.print(render.error_lines(str(exc)))
        err.print(
            f"deploy stopped: {len(done)} of {len(plan.objects)} done before the error; nothing after it was attempted",
            style="red",
            highlight=False,
        )
        raise typer.Exit(exit_code_for(exc)) from None
    if json_:
        print_json([o.as_json() for o in done])


@handles_errors
def diff(
    path: Annotated[Path, typer.Argument(help="A job definition TOML file, or a folder of them.")],
    target: Annotated[str, typer.Option(help="What to compare with. Only aws for now.")] = "aws",
    config_file: ConfigFlag = None,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
) -> None:
    """Compare job definitions with their latest ACTIVE revision on AWS Batch.

    Prints a unified diff of the RegisterJobDefinition request per definition that differs.
    Exits 0 when all are the same, 1 when any differs or is not registered."""
    if target != "aws":
        raise UsageError(f"--target: {target!r} is not supported; allowed: aws")
    plan = cloud.load_plan([path], config_file, infrastructure=False)
    _warn(plan)
    steps = plan.resolved(lambda ref: ref.name)
    client = _client(plan, region, profile, endpoint_url)
    differs = False
    for obj, request in steps:
        latest = aws_deploy.latest_definition(client, obj.name)
        if latest is None:
            typer.echo(f"job definition {obj.name}: not registered")
            differs = True
            continue
        lines = aws_deploy.definition_diff(request, latest, obj.source)
        if not lines:
            typer.echo(f"job definition {obj.name}: same as revision {latest.get('revision')}")
            continue
        differs = True
        typer.echo("\n".join(lines))
    if differs:
        raise typer.Exit(1)


def register_commands(app: typer.Typer) -> None:
    app.command()(deploy)
    app.command()(diff)
