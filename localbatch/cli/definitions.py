"""Job definitions: validate, register, export to AWS's JSON, import from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from localbatch import bootstrap, cloud, jobdef, render, service, session
from localbatch.awsbatch import jobdefinition as aws_jobdefinition
from localbatch.awsbatch import templates
from localbatch.cli._common import (
    AwsWhere,
    EndpointUrlFlag,
    ProfileFlag,
    RegionFlag,
    aws_backend,
    handles_errors,
    print_json,
    settings,
)
from localbatch.core import portability
from localbatch.errors import JobDefinitionError, NotFound, Problem, UsageError


@handles_errors
def validate(
    files: Annotated[list[Path], typer.Argument(help="Job definition TOML files.")],
    strict: Annotated[bool, typer.Option(help="Also fail on what runs locally but AWS Batch would refuse.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
) -> None:
    """Check job definitions: every problem, with file, key path and what is allowed."""
    reports = service.validate_files(files)
    failed = [r for r in reports if r.failed(strict)]
    if json_:
        print_json([{"file": str(r.file), "problems": r.problems, "warnings": r.warnings} for r in reports])
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


@handles_errors
def register(
    files: Annotated[list[Path], typer.Argument(help="Job definition TOML files.")],
    json_: Annotated[bool, typer.Option("--json", help="Print each name:revision as JSON.")] = False,
) -> None:
    """Register job definitions with the daemon; each call makes a new revision, as on AWS."""
    definitions = [jobdef.load_file(path) for path in files]  # every file is checked before any is sent
    for path, definition in zip(files, definitions, strict=True):
        for problem in portability.definition_problems(definition):
            render.stderr().print(render.warning_lines(f"{path}: not portable to AWS Batch: {problem}"))
    with bootstrap.backend(settings()) as backend:
        refs = [session.register(backend, definition) for definition in definitions]
    if json_:
        print_json([{"file": str(f), "jobDefinition": ref} for f, ref in zip(files, refs, strict=True)])
    else:
        for path, ref in zip(files, refs, strict=True):
            render.stdout().print(f"{ref}  registered from {path}")


EXPORT_FORMATS = ("aws-json", "cloudformation", "terraform")


@handles_errors
def export(
    paths: Annotated[list[Path], typer.Argument(help="Job definition TOML files or folders of them.")],
    format_: Annotated[
        str, typer.Option("--format", help="aws-json (the API requests), cloudformation (YAML) or terraform (HCL).")
    ] = "aws-json",
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Also export this config's queues, compute environments, scheduling policies."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on what changes in the cloud, not only warn.")] = False,
) -> None:
    """Print job definitions (and, with --config, the infrastructure) for AWS Batch.

    Cloud-only values (subnets, security groups, roles, instance types) come from the
    config's [aws] table; CloudFormation and Terraform make them parameters / variables."""
    if format_ not in EXPORT_FORMATS:
        raise UsageError(f"--format: {format_!r} is not supported; allowed: {', '.join(EXPORT_FORMATS)}")
    plan = cloud.load_plan(paths, config_file, strict=strict)
    for warning in plan.warnings:
        render.stderr().print(render.warning_lines(warning))
    if format_ == "aws-json":
        print_json(cloud.aws_json(plan))
        return
    text = templates.cloudformation(plan) if format_ == "cloudformation" else templates.terraform(plan)
    typer.echo(text, nl=not text.endswith("\n"))
    for line in plan.missing_problems():
        render.stderr().print(render.warning_lines(f"{line}; until then, give it when deploying the template"))


@handles_errors
def import_(
    file: Annotated[
        Path | None, typer.Argument(help="RegisterJobDefinition request or DescribeJobDefinitions entry.")
    ] = None,
    from_aws: Annotated[
        str | None,
        typer.Option(
            "--from-aws",
            metavar="NAME[:REV]",
            help="Import a job definition registered on AWS Batch (no REV: its latest ACTIVE revision).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the TOML here, not stdout.")] = None,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
) -> None:
    """Turn an AWS Batch job definition (a JSON file, or one on AWS with --from-aws) into a
    localbatch TOML file."""
    where = AwsWhere(region, profile, endpoint_url)
    if (file is None) == (from_aws is None):
        raise UsageError("give a JSON file or --from-aws NAME[:REV], not both and not neither")
    if from_aws is not None:
        backend = aws_backend(settings(), where)
        found = session.latest_definition(backend, from_aws)
        if found is None:
            raise NotFound(f"job definition {from_aws!r}: AWS Batch has no such revision (DescribeJobDefinitions)")
        source = f"{found['jobDefinitionName']}:{found['revision']} (AWS Batch)"
        document = aws_jobdefinition.document_from_request(found, source)
    else:
        assert file is not None
        if where != AwsWhere():
            raise UsageError("--region, --profile and --endpoint-url apply to --from-aws only")
        try:
            request = json.loads(file.read_text())
        except OSError as exc:
            raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            problem = Problem("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            raise JobDefinitionError(str(file), [problem]) from None
        document = aws_jobdefinition.document_from_request(request, str(file))
    text = jobdef.dumps_document(document)
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write: {exc.strerror}") from None
    render.stderr().print(f"wrote {output}", highlight=False)


def register_commands(app: typer.Typer) -> None:
    app.command()(validate)
    app.command("register")(register)
    app.command()(export)
    app.command("import")(import_)
