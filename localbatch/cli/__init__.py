"""The ``localbatch`` command: parse arguments, call one function, render the result.

No business logic lives here. Commands read and act through AWS Batch's API (the daemon's
socket, or in-process reads when no daemon runs); ``run`` without a daemon drives the job in
this process; ``validate``/``export``/``import`` work offline. Errors become exit codes in
one place (``_common.exit_code_for``).
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from localbatch import __version__
from localbatch.cli import audit, cloud, consumables, definitions, events, host, jobs, store, watch
from localbatch.cli.run import run

app = typer.Typer(
    name="localbatch",
    help="AWS Batch on your own machine: run AWS Batch job definitions in local Docker containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"localbatch {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what localbatch does to stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # its retries are ours to report, once, in plain words
        logging.getLogger("urllib3").setLevel(logging.ERROR)


app.command()(run)
definitions.register_commands(app)
jobs.register_commands(app)
events.register_commands(app)
host.register_commands(app)
store.register_commands(app)
cloud.register_commands(app)
consumables.register_commands(app)
watch.register_commands(app)
audit.register_commands(app)
