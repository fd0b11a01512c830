"""The host side: queues, resources, and the daemon's lifecycle."""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from localbatch import api_credentials, bootstrap, render, tls
from localbatch.cli._common import handles_errors, print_json, settings
from localbatch.client import DaemonClient, DaemonUnreachable
from localbatch.config import Settings
from localbatch.daemon import process
from localbatch.errors import UsageError
from localbatch.extensions import RESOURCES, STATUS

daemon_app = typer.Typer(help="Start, stop and inspect the localbatch daemon.", no_args_is_help=True)


@handles_errors
def queues(
    json_: Annotated[bool, typer.Option("--json", help="Print DescribeJobQueues' answer.")] = False,
) -> None:
    """Job queues: priority, state, compute environments, and how many jobs are where."""
    with bootstrap.backend(settings()) as backend:
        described = backend.call("DescribeJobQueues", {})
        report = backend.get(RESOURCES)
    if json_:
        print_json(described)
        return
    counts = {q["jobQueueName"]: q["jobs"] for q in report["jobQueues"]}
    render.stdout().print(render.queues_table(described["jobQueues"], counts))


@handles_errors
def resources(json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """The host (CPUs, memory, GPUs, engine) and, per compute environment and GPU, what is in use."""
    with bootstrap.backend(settings()) as backend:
        report = backend.get(RESOURCES)
    if json_:
        print_json(report)
        return
    console = render.stdout()
    for part in render.resources_view(report):
        console.print(part)


@daemon_app.command("start")
@handles_errors
def daemon_start(
    foreground: Annotated[bool, typer.Option(help="Stay in the foreground (as `daemon run`).")] = False,
    listen: Annotated[
        str | None,
        typer.Option(
            help="Also serve AWS Batch's API on TCP at HOST:PORT (SigV4-signed; see `localbatch credentials`)."
        ),
    ] = None,
    tls_certificate: Annotated[
        str | None,
        typer.Option(help="PEM certificate: the --listen listener speaks https (needed off loopback)."),
    ] = None,
    tls_key: Annotated[str | None, typer.Option(help="PEM private key of --tls-certificate.")] = None,
    allow_remote: Annotated[
        bool, typer.Option(hidden=True, help="No longer needed: an address off loopback needs TLS instead.")
    ] = False,
) -> None:
    """Start the daemon in the background; it serves this home's socket until stopped."""
    # as LOCALBATCH_*: the background daemon reads them from its environment
    for variable, value in (
        ("LOCALBATCH_LISTEN", listen),
        ("LOCALBATCH_TLS_CERTIFICATE", tls_certificate and os.path.abspath(tls_certificate)),
        ("LOCALBATCH_TLS_KEY", tls_key and os.path.abspath(tls_key)),
    ):
        if value is not None:
            os.environ[variable] = value
    current = settings()
    for warning in current.warnings:
        render.stderr().print(f"warning: {warning}")
    if foreground:
        _serve(current)
        return
    started = process.start_background(current, answers=lambda: bootstrap.daemon_answers(current))
    tcp = f", API {_listener(current)}" if current.listen is not None else ""
    render.stdout().print(
        f"daemon started: pid {started.pid}, socket {current.socket_path}{tcp}, log {started.log_path}", highlight=False
    )


def _listener(current: Settings) -> str:
    """The TCP listener's URL and whether it speaks TLS (with which certificate)."""
    assert current.listen is not None
    url = tls.listener_url(*current.listen, secure=current.tls is not None)
    if current.tls is None:
        return f"{url} (no TLS)"
    return f"{url} (TLS on, certificate {tls.certificate_summary(current.tls.certificate)})"


@daemon_app.command("run")
@handles_errors
def daemon_run() -> None:
    """Run the daemon in the foreground (for debugging and process managers)."""
    _serve(settings())


def _serve(current: Settings) -> None:
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():  # a second signal: do not wait for a clean shutdown
            os._exit(128 + signum)
        logging.getLogger(__name__).info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    with bootstrap.running_daemon(current):
        logging.getLogger(__name__).info(
            "localbatch daemon serving on %s (pid %d, home %s)",
            current.socket_path,
            os.getpid(),
            current.home,
        )
        while not stop.wait(0.5):
            pass
    logging.getLogger(__name__).info("stopped; running containers keep running")


@daemon_app.command("stop")
@handles_errors
def daemon_stop() -> None:
    """Stop the daemon (SIGTERM). Running containers keep running; the next start re-adopts them."""
    pid = process.stop(settings())
    render.stdout().print(f"daemon stopped (pid {pid}); running containers keep running")


@daemon_app.command("status")
@handles_errors
def daemon_status(json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Is a daemon running for this home: pid, uptime, socket, capacity, jobs. Exit 1 if not."""
    current = settings()
    try:
        with DaemonClient(str(current.socket_path)) as client:
            status = client.get(STATUS)
    except DaemonUnreachable:
        render.stderr().print(f"no localbatch daemon runs for {current.home}")
        raise typer.Exit(1) from None
    if json_:
        print_json(status)
    else:
        render.stdout().print(render.daemon_status(status))


@daemon_app.command("backup")
@handles_errors
def daemon_backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write (one SQLite file, mode 0600).")],
) -> None:
    """Back up the state (jobs, definitions, queues, events) to FILE; safe while the daemon runs."""
    summary = bootstrap.backup_state(settings(), file)
    render.stdout().print(
        f"backed up {summary.jobs} jobs and {summary.job_definitions} job definitions "
        f"(schema {summary.schema_version}, {summary.size_bytes} bytes) to {summary.path}",
        highlight=False,
    )


@daemon_app.command("restore")
@handles_errors
def daemon_restore(
    file: Annotated[Path, typer.Argument(help="A file written by `localbatch daemon backup`.")],
) -> None:
    """Replace the state with FILE's (the daemon must be stopped); the old state is kept beside it."""
    summary, kept = bootstrap.restore_state(settings(), file)
    console = render.stdout()
    console.print(
        f"restored {summary.jobs} jobs and {summary.job_definitions} job definitions "
        f"(schema {summary.schema_version}) from {file}",
        highlight=False,
    )
    if kept is not None:
        console.print(f"the state it replaced is kept as {kept}", highlight=False)


@handles_errors
def credentials(
    export: Annotated[bool, typer.Option("--export", help="Print shell `export` lines for eval.")] = False,
    add: Annotated[str | None, typer.Option(help="Add a key for a person of a shared workstation.")] = None,
    name: Annotated[str, typer.Option(help="Show this key (default: the owner's).")] = api_credentials.OWNER,
    json_: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The access key AWS clients sign requests to the daemon's TCP listener with.

    eval "$(localbatch credentials --export)" points boto3 and the AWS CLI at localbatch:
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_BATCH and
    AWS_ENDPOINT_URL_CLOUDWATCH_LOGS."""
    current = settings()
    current.prepare_home()
    if add is not None:
        key = api_credentials.add_key(current.home, add)
    else:
        found = api_credentials.ensure_keyring(current.home).named(name)
        if found is None:
            raise UsageError(f"--name {name}: no such key; add one with --add {name}")
        key = found
    endpoint = api_credentials.read_endpoint(current.home)
    if endpoint is None and current.listen is not None:
        endpoint = tls.listener_url(*current.listen, secure=current.tls is not None)
    values = {
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "AWS_REGION": current.region,
        "AWS_DEFAULT_REGION": current.region,
    }
    if endpoint is not None:
        values["AWS_ENDPOINT_URL_BATCH"] = endpoint
        values["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = endpoint
    if current.tls is not None:  # what boto3 and the AWS CLI verify the listener's certificate with
        values["AWS_CA_BUNDLE"] = str(current.tls.ca_bundle)
    if json_:
        print_json({"name": key.name, **values})
    elif export:
        for variable, value in values.items():
            typer.echo(f"export {variable}={shlex.quote(value)}")
    else:
        for variable, value in values.items():
            typer.echo(f"{variable}={value}")
        if endpoint is None:
            render.stderr().print(
                "note: no TCP listener yet: start one with `localbatch daemon start --listen 127.0.0.1:8750`",
                highlight=False,
            )


@handles_errors
def dashboard(
    name: Annotated[str, typer.Option(help="Log in with this key (default: the owner's).")] = api_credentials.OWNER,
    json_: Annotated[bool, typer.Option("--json", help="Print URL, user and password as JSON.")] = False,
) -> None:
    """Where the running daemon serves its read-only web dashboard, and how to log in.

    The dashboard is on the daemon's TCP listener (``[api] listen`` or ``daemon start
    --listen``), at /dashboard; the browser logs in with HTTP Basic: user = access key id,
    password = secret access key (`localbatch credentials`)."""
    current = settings()
    current.prepare_home()
    endpoint = api_credentials.read_endpoint(current.home)
    if endpoint is None or not bootstrap.daemon_answers(current):
        raise UsageError(
            "no daemon serves a TCP listener for this home: start one with "
            "`localbatch daemon start --listen 127.0.0.1:8750` (or `[api] listen` in the config)"
        )
    key = api_credentials.ensure_keyring(current.home).named(name)
    if key is None:
        raise UsageError(f"--name {name}: no such key; add one with `localbatch credentials --add {name}`")
    url = f"{endpoint}/dashboard"
    if json_:
        print_json({"url": url, "user": key.access_key_id, "password": key.secret_access_key})
        return
    typer.echo(url)
    typer.echo(f"user:     {key.access_key_id}")
    typer.echo(f"password: {key.secret_access_key}")
    note = "" if endpoint.startswith("https:") else "; the listener has no TLS: keep it on loopback"
    render.stderr().print(f"log in with HTTP Basic when the browser asks{note}", highlight=False)


def register_commands(app: typer.Typer) -> None:
    app.command()(queues)
    app.command()(resources)
    app.add_typer(daemon_app, name="daemon")
    app.command()(credentials)
    app.command()(dashboard)
