"""Jobs through the API: submit, ls, describe, logs, wait, cancel, terminate, interrupt."""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from localbatch import bootstrap, cloud, jobdef, render, session
from localbatch.awsbatch.requests import job_definition_ref
from localbatch.cli._common import (
    ArraySizeFlag,
    AttemptsFlag,
    AwsWhere,
    CommandFlag,
    DependsOnFlag,
    EndpointUrlFlag,
    EnvFlag,
    GpusFlag,
    MemoryFlag,
    NameFlag,
    ParamFlag,
    ProfileFlag,
    PropagateTagsFlag,
    QueueFlag,
    RegionFlag,
    RetryOnExitFlag,
    SchedulingPriorityFlag,
    ShareIdentifierFlag,
    TagFlag,
    Target,
    TargetFlag,
    TimeoutFlag,
    VcpusFlag,
    aws_backend,
    handles_errors,
    job_options,
    overrides,
    print_json,
    settings,
    target_backend,
)
from localbatch.cli.watch import BatchProgress, NoProgressFlag, wants_live
from localbatch.config import DEFAULT_QUEUE
from localbatch.core.jobs import JobStatus
from localbatch.errors import JobNotFound, UsageError
from localbatch.extensions import LOGS

STATUSES = tuple(s.value for s in JobStatus)


@handles_errors
def submit(
    target: Annotated[
        str, typer.Argument(help="A job definition file, or a registered NAME[:REVISION] (or ARN on AWS).")
    ],
    queue: QueueFlag = DEFAULT_QUEUE,
    name: NameFlag = None,
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
    to: TargetFlag = Target.LOCAL,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
    json_: Annotated[bool, typer.Option("--json", help="Print SubmitJob's response.")] = False,
) -> None:
    """Submit a job to a queue of the daemon, or of AWS Batch with --target aws (a file is
    registered first if it changed; on AWS, as ``export`` writes it)."""
    current = settings()
    where = AwsWhere(region, profile, endpoint_url)
    path = Path(target)
    is_file = path.suffix == ".toml" or path.is_file()
    document = jobdef.read_document(path) if is_file else None
    definition = jobdef.parse_document(document, str(path)) if document is not None else None
    request = None
    if to is Target.AWS and document is not None:
        request, warnings = cloud.register_request(str(path), document, current.cloud)
        for warning in warnings:
            render.stderr().print(render.warning_lines(warning))
    aws = aws_backend(current, where) if to is Target.AWS else None  # no call to AWS yet
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
        aws_platforms=None if aws is None else session.platform_capabilities(aws, definition, target, vcpus),
    )
    options = job_options(
        array_size=array_size,
        depends_on=depends_on,
        share_identifier=share_identifier,
        propagate_tags=propagate_tags,
    )
    with nullcontext(aws) if aws is not None else target_backend(current, to, where) as backend:
        ref = session.ensure_registered(backend, definition, request) if definition is not None else target
        job_name = name or (definition.name if definition is not None else job_definition_ref(ref)[0])
        answer = session.submit(backend, options.request(job_name, queue, ref, chosen))
    if json_:
        print_json(answer)
    else:
        render.stdout().print(f"{answer['jobId']}  {answer['jobName']} submitted to {queue} ({ref})")


@handles_errors
def list_(
    queue: Annotated[list[str], typer.Option("--queue", help="Only this queue (repeatable).")] = [],  # noqa: B006
    status: Annotated[list[str], typer.Option("--status", "-s", help="Only this status (repeatable).")] = [],  # noqa: B006
    limit: Annotated[int, typer.Option(help="At most this many jobs, newest first.")] = 50,
    array_job: Annotated[
        str | None, typer.Option("--array-job", help="List this array job's children, by index.")
    ] = None,
    to: TargetFlag = Target.LOCAL,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
    json_: Annotated[bool, typer.Option("--json", help="Print ListJobs' jobSummaryList.")] = False,
) -> None:
    """List jobs, newest first, across queues (ListJobs on each), or an array's children;
    with --target aws, AWS Batch's."""
    if array_job is not None and queue:
        raise UsageError("--array-job and --queue: give one (an array's children are listed by the array)")
    wanted = [s.upper() for s in status]
    unknown = [s for s in wanted if s not in STATUSES]
    if unknown:
        raise UsageError(f"--status: {', '.join(unknown)} is not a job status; allowed: {', '.join(STATUSES)}")
    if limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {limit}")
    with target_backend(settings(), to, AwsWhere(region, profile, endpoint_url)) as backend:
        jobs = session.list_jobs(backend, queue, wanted, limit, array_job_id=array_job)
    if json_:
        print_json({"jobSummaryList": jobs})
    elif jobs:
        render.stdout().print(render.jobs_table(jobs))
    else:
        render.stderr().print("no jobs")


@handles_errors
def describe(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    to: TargetFlag = Target.LOCAL,
    region: RegionFlag = None,
    profile: ProfileFlag = None,
    endpoint_url: EndpointUrlFlag = None,
    json_: Annotated[bool, typer.Option("--json", help="Print DescribeJobs' JobDetail.")] = False,
) -> None:
    """Show a job: status, why it waits or how it ended, attempts, every state change (on
    AWS, with --target aws: as DescribeJobs tells it; AWS keeps no event history)."""
    with target_backend(settings(), to, AwsWhere(region, profile, endpoint_url)) as backend:
        detail = session.describe(backend, job_id)
        history = {} if json_ or to is Target.AWS else session.history(backend, job_id)
        used = None if json_ or to is Target.AWS or _is_parent(detail) else session.usage(backend, job_id)
    if json_:
        print_json(detail)
        return
    console = render.stdout()
    view = render.job_view(detail, history.get("events", []), submitted_by=history.get("submittedBy"), usage=used)
    for part in view:
        console.print(part)


def _is_parent(detail: dict[str, Any]) -> bool:
    """An array parent: it runs no container of its own (each child's usage is its own)."""
    return "size" in (detail.get("arrayProperties") or {})


@handles_errors
def logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    attempt: Annotated[int | None, typer.Option(help="Attempt number (default: the latest).")] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing, through later attempts, until the job ends."),
    ] = False,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Write the bytes as they are also to a terminal (escape sequences act)."),
    ] = False,
) -> None:
    """Print a job attempt's output (stdout and stderr, as the container wrote them). On a terminal
    control characters are shown as \\xNN instead of acting (--raw: as they are); into a pipe or a
    file the bytes are exact."""
    params: dict[str, Any] = {"jobId": job_id, "follow": "true" if follow else "false"}
    if attempt is not None:
        params["attempt"] = attempt
    with bootstrap.backend(settings()) as backend:
        render.write_output(backend.stream(LOGS, params), raw=raw)


@handles_errors
def wait(
    job_ids: Annotated[list[str], typer.Argument(help="Job id(s).", metavar="JOB_ID...")],
    json_: Annotated[bool, typer.Option("--json", help="Print the final JobDetail (a list for several).")] = False,
    no_progress: NoProgressFlag = False,
) -> None:
    """Wait until the jobs end; exit with the exit code of the first that did not succeed
    (1 if it never ran), else 0. For an array, a job with dependencies or several jobs, the
    progress of the whole batch (its children, the jobs it waits for) is shown meanwhile."""
    with bootstrap.backend(settings()) as backend:
        found = session.describe_many(backend, job_ids)
        known = {d["jobId"] for d in found}
        missing = [j for j in job_ids if j not in known]
        if missing:
            raise JobNotFound(missing[0])
        tracker = None
        batch = session.dependency_graph(backend, job_ids)
        if not json_ and (len(batch) > 1 or any("size" in (d.get("arrayProperties") or {}) for d in found)):
            tracker = BatchProgress(backend, batch, live=wants_live(no_progress), title=", ".join(job_ids)[:60])
        try:
            details = _wait_all(backend, job_ids, tracker)
        finally:
            if tracker is not None:
                tracker.close()
    if json_:
        print_json(details[0] if len(details) == 1 else details)
    else:
        for detail in details:
            render.stderr().print(render.transition_line(detail, detail.get("stoppedAt")))
    failed = [d for d in details if d["status"] != "SUCCEEDED"]
    raise typer.Exit(session.exit_status(failed[0]) if failed else 0)


def _wait_all(backend: session.Backend, job_ids: list[str], tracker: BatchProgress | None) -> list[dict[str, Any]]:
    while True:
        if tracker is not None:
            tracker.update()
        details = session.describe_many(backend, job_ids)
        if all(d["status"] in session.TERMINAL for d in details):
            order = {job_id: n for n, job_id in enumerate(job_ids)}
            return sorted(details, key=lambda d: order.get(d["jobId"], 0))
        time.sleep(0.5)


@handles_errors
def cancel(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    reason: Annotated[str, typer.Option(help="Becomes the job's statusReason.")] = "Cancelled with localbatch cancel",
) -> None:
    """Cancel a job that has not started (AWS's CancelJob: no effect once it is STARTING)."""
    with bootstrap.backend(settings()) as backend:
        backend.call("CancelJob", {"jobId": job_id, "reason": reason})
    render.stderr().print(f"cancel requested for {job_id}")


@handles_errors
def terminate(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    reason: Annotated[
        str, typer.Option(help="Becomes the job's statusReason.")
    ] = "Terminated with localbatch terminate",
) -> None:
    """Terminate a job: stop its container if it runs, cancel it if it has not started."""
    with bootstrap.backend(settings()) as backend:
        backend.call("TerminateJob", {"jobId": job_id, "reason": reason})
    render.stderr().print(f"terminate requested for {job_id}")


@handles_errors
def interrupt(
    job_id: Annotated[str, typer.Argument(help="Id of a RUNNING job.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the extension's answer.")] = False,
) -> None:
    """Rehearse a Spot reclaim: stop a RUNNING job's container as if its host went away. The
    attempt fails with "Host EC2 (instance i-...) terminated."; its retry rules decide the rest."""
    with bootstrap.backend(settings()) as backend:
        answer = session.interrupt(backend, job_id)
    if json_:
        print_json(answer)
    else:
        render.stderr().print(f"interrupt requested for {job_id} attempt {answer['attempt']}: {answer['statusReason']}")


def register_commands(app: typer.Typer) -> None:
    app.command()(submit)
    app.command("ls")(list_)
    app.command()(describe)
    app.command()(logs)
    app.command()(wait)
    app.command()(cancel)
    app.command()(terminate)
    app.command()(interrupt)
