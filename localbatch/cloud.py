"""The use cases behind ``export``, ``deploy`` and ``diff``: from files and a config to an
export plan (``awsbatch.export``), and the plan as AWS's JSON.

Front doors call ``load_plan`` with what the user named; every file is read and checked
before anything is built, and every problem of every file is reported at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from localbatch import config, jobdef
from localbatch.awsbatch.export import CloudPlan, Ref, build_plan
from localbatch.cloud_settings import CloudSettings
from localbatch.errors import ExportError, JobDefinitionError, UsageError

__all__ = ["aws_json", "definition_paths", "load_plan", "register_request", "settings_for"]


def definition_paths(paths: Sequence[Path]) -> list[Path]:
    """Job definition files: each file named, and every ``*.toml`` of each folder (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not files:
                raise UsageError(f"{path}: a folder with no job definition (*.toml) files")
            found += files
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return list(dict.fromkeys(found))


def settings_for(config_file: Path | None) -> config.Settings:
    """The settings, from ``config_file`` when given (``--config``), else found as usual."""
    if config_file is None:
        return config.resolve()
    if not config_file.is_file():
        raise UsageError(f"--config {config_file}: no such file")
    return config.resolve(env={**os.environ, "LOCALBATCH_CONFIG": str(config_file)})


def load_plan(
    paths: Sequence[Path], config_file: Path | None, *, strict: bool = False, infrastructure: bool = True
) -> CloudPlan:
    """The export plan for the definitions under ``paths`` and, when ``config_file`` is given
    (and ``infrastructure``), the scheduling policies, compute environments and job queues it
    declares. The ``[aws]`` table comes from ``config_file``, else from the usual config."""
    settings = settings_for(config_file)
    documents, problems = [], []
    for path in definition_paths(paths):
        try:
            document = jobdef.read_document(path)
            jobdef.parse_document(document, str(path))
            documents.append((str(path), document))
        except JobDefinitionError as exc:
            problems += [f"{exc.source}: {p}" for p in exc.problems]
    if problems:
        raise ExportError(problems)
    declared = settings if config_file is not None and infrastructure else None
    return build_plan(documents, settings.cloud, infrastructure=declared, strict=strict)


def aws_json(plan: CloudPlan) -> Any:
    """The plan as AWS's JSON: one RegisterJobDefinition request when that is all it holds,
    else the requests by operation (``{"CreateComputeEnvironment": [...], ...}``), in creation
    order, each ready for ``aws batch <operation> --cli-input-json``."""
    resolved = plan.resolved(lambda ref: _arn(ref, plan))
    if len(resolved) == 1 and resolved[0][0].kind == "job_definition":
        return resolved[0][1]
    by_operation: dict[str, list[dict[str, Any]]] = {}
    for obj, request in resolved:
        by_operation.setdefault(obj.operation, []).append(request)
    return by_operation


def _arn(ref: Ref, plan: CloudPlan) -> str:
    """A reference as the JSON writes it: the ARN when ``[aws]`` gives account and region; a
    compute environment's name otherwise (CreateJobQueue takes either)."""
    cloud = plan.cloud
    if cloud.account_id is not None and cloud.region is not None:
        resource = ref.kind.replace("_", "-")
        return f"arn:aws:batch:{cloud.region}:{cloud.account_id}:{resource}/{ref.name}"
    if ref.kind == "compute_environment":
        return ref.name
    users = [o.name for o in plan.users(ref)]
    raise ExportError(
        [
            f"{cloud.where}: [aws] account_id and region: needed to write the ARN of {ref.kind.replace('_', ' ')} "
            f"{ref.name!r}, which job queue {', '.join(repr(u) for u in users)} names (schedulingPolicyArn)"
        ]
    )


def register_request(
    source: str, document: Mapping[str, Any], cloud: CloudSettings
) -> tuple[dict[str, Any], list[str]]:
    """The RegisterJobDefinition request AWS gets for one checked definition document (the
    export plan's: cloud values filled in, vCPUs rounded), and the plan's warnings.
    ``ExportError`` when AWS would refuse it or a cloud-only value is missing."""
    plan = build_plan([(source, document)], cloud)
    [(_, request)] = plan.resolved(lambda ref: ref.name)  # a definition references nothing
    return request, list(plan.warnings)
