"""``localbatch store``: the S3-compatible object store jobs read from and write to."""

from __future__ import annotations

import shutil
from typing import Annotated

import typer

from localbatch import bootstrap, render, safe_text, storage, store_server
from localbatch.cli._common import handles_errors, print_json, settings
from localbatch.errors import LocalbatchError, UsageError

store_app = typer.Typer(help="The S3-compatible object store (MinIO or any S3 endpoint).", no_args_is_help=True)


@store_app.command("status")
@handles_errors
def status(json_: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False) -> None:
    """Where the store is, where its settings come from, whether it answers, its buckets.

    Exits 1 when the store cannot be reached or refuses the credentials. The secret key is never
    printed."""
    current = settings().store
    found = storage.status(current, bootstrap.object_store(settings()))
    server = _started_server()
    if json_:
        print_json(
            {
                "endpoint": current.url,
                "region": current.region,
                "accessKey": current.access_key,
                "secretKey": "set" if current.secret_key else None,
                "sources": dict(current.sources),
                "reachable": found.problem is None,
                "buckets": found.buckets,
                "problem": found.problem,
                "server": None if server is None else {"kind": server.kind, "endpoint": f"http://{server.endpoint}"},
            }
        )
    else:
        render.stdout().print(render.store_status(found))
        if server is not None:
            typer.echo(f"store up:    {server.what} on http://{server.endpoint}")
    if found.problem is not None:
        raise typer.Exit(1)


@store_app.command("ls")
@handles_errors
def list_(
    url: Annotated[str | None, typer.Argument(help="s3://bucket[/prefix]; without it, the buckets.")] = None,
) -> None:
    """List the buckets, or the objects under s3://bucket/prefix (key and size)."""
    store = bootstrap.object_store(settings())
    if url is None:
        for bucket in store.buckets():
            typer.echo(f"s3://{bucket}/")
        return
    where = storage.parse_s3_url(url, "URL")
    for found in store.list_objects(where.bucket, where.key):
        typer.echo(f"{found.size:>12}  s3://{found.bucket}/{safe_text.visible(found.key)}")  # a key may hold anything


@store_app.command("mb")
@handles_errors
def make_bucket(url: Annotated[str, typer.Argument(help="s3://bucket")]) -> None:
    """Make a bucket (one that exists already is left as it is)."""
    where = storage.parse_s3_url(url, "URL")
    if where.key:
        raise UsageError(f"URL: {url!r} names an object; give s3://{where.bucket}")
    bootstrap.object_store(settings()).make_bucket(where.bucket)
    typer.echo(f"s3://{where.bucket}/")


@store_app.command("cp")
@handles_errors
def copy(
    source: Annotated[str, typer.Argument(help="A local file or directory, or s3://bucket/key (or prefix/).")],
    destination: Annotated[str, typer.Argument(help="s3://bucket/key (or prefix/), or a local path.")],
) -> None:
    """Copy a file or directory into the store, or objects out of it (sizes are checked)."""
    for copied in storage.copy(bootstrap.object_store(settings()), source, destination):
        typer.echo(f"{copied.size:>12}  s3://{copied.bucket}/{safe_text.visible(copied.key)}")


def _started_server() -> store_server.ServerState | None:
    """What `store up` started and still runs; None also when that cannot be told (the engine of
    its container is down): status is about the store, not about this."""
    try:
        return store_server.running_server(settings().home, bootstrap.store_servers(settings()))[0]
    except LocalbatchError:
        return None


@store_app.command("up")
@handles_errors
def up() -> None:
    """Start a local S3 server for this home; it keeps running until `store down`.

    It runs [store] server_command if configured, else minio or moto_server from PATH, else a
    container of [store] server_image (default minio/minio:latest). Its data and the generated
    credentials (picked up by localbatch itself) live in $LOCALBATCH_HOME/store."""
    current = settings()
    current.prepare_home()
    result = store_server.up(current.home, current.store_server, bootstrap.store_servers(current), shutil.which)
    state = result.state
    if result.already_running:
        typer.echo(f"already running: {state.what} on http://{state.endpoint}")
        return
    if result.stale_removed:
        typer.echo("(the server recorded earlier had stopped; its state file was removed)")
    typer.echo(f"started {state.what} on http://{state.endpoint}")
    typer.echo(f"data: {store_server.data_dir(current.home)}")
    if state.note:
        typer.echo(f"note: {state.note}")
    typer.echo(
        f"localbatch picks up its endpoint and credentials from {store_server.credentials_path(current.home)} "
        "(LOCALBATCH_S3_* and [store] endpoint/access_key/secret_key still win, "
        "and AWS_ENDPOINT_URL[_S3] wins for the endpoint); "
        "see `localbatch store status`"
    )
    now = settings().store
    if now.endpoint != state.endpoint:
        typer.echo(
            f"note: your settings point localbatch at {now.url} (from {now.sources.get('endpoint')}), "
            f"not at this server; export LOCALBATCH_S3_ENDPOINT=http://{state.endpoint} to use it"
        )


@store_app.command("down")
@handles_errors
def down() -> None:
    """Stop the server `store up` started; its data stays in $LOCALBATCH_HOME/store/data."""
    current = settings()
    stopped, stale = store_server.down(current.home, bootstrap.store_servers(current))
    if stopped is None:
        typer.echo("not running" + (" (a stale state file was removed)" if stale else ""))
        return
    typer.echo(f"stopped {stopped.what}; data kept in {store_server.data_dir(current.home)}")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
