"""``localbatch store``: the S3-compatible object store jobs read from and write to."""

from __future__ import annotations

from typing import Annotated

import typer

from localbatch import bootstrap, render, storage
from localbatch.cli._common import handles_errors, print_json, settings

store_app = typer.Typer(help="The S3-compatible object store (MinIO or any S3 endpoint).", no_args_is_help=True)


@store_app.command("status")
@handles_errors
def status(json_: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False) -> None:
    """Where the store is, where its settings come from, whether it answers, its buckets.

    Exits 1 when the store cannot be reached or refuses the credentials. The secret key is never
    printed."""
    current = settings().store
    found = storage.status(current, bootstrap.object_store(settings()))
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
            }
        )
    else:
        render.stdout().print(render.store_status(found))
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
        typer.echo(f"{found.size:>12}  s3://{found.bucket}/{found.key}")


@store_app.command("cp")
@handles_errors
def copy(
    source: Annotated[str, typer.Argument(help="A local file or directory, or s3://bucket/key (or prefix/).")],
    destination: Annotated[str, typer.Argument(help="s3://bucket/key (or prefix/), or a local path.")],
) -> None:
    """Copy a file or directory into the store, or objects out of it (sizes are checked)."""
    for copied in storage.copy(bootstrap.object_store(settings()), source, destination):
        typer.echo(f"{copied.size:>12}  s3://{copied.bucket}/{copied.key}")


def register_commands(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
