"""``localbatch consumables``: counted things outside the host that jobs need (AWS Batch's
consumable resources), through the same API calls the AWS CLI would make."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from localbatch import bootstrap, render
from localbatch.cli._common import handles_errors, print_json, settings

consumables_app = typer.Typer(
    help="Consumable resources: licences, connections, quotas that gate jobs (AWS Batch's resource-aware scheduling).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Argument(help="The resource's name (or ARN).")]
Quantity = Annotated[int, typer.Argument(min=0, help="A whole number, 0 or more.")]


def _call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    with bootstrap.backend(settings()) as backend:
        return backend.call(operation, params)


@consumables_app.command("ls")
@handles_errors
def list_(
    json_: Annotated[bool, typer.Option("--json", help="Print ListConsumableResources' answer.")] = False,
) -> None:
    """Each resource: its type, total, in use and available."""
    found: list[dict[str, Any]] = []
    token = None
    with bootstrap.backend(settings()) as backend:
        while True:  # every page: AWS's pages are 100 resources
            page = backend.call("ListConsumableResources", {"nextToken": token} if token else {})
            found += page["consumableResources"]
            token = page.get("nextToken")
            if token is None:
                break
    if json_:
        print_json({"consumableResources": found})
        return
    render.stdout().print(render.consumables_table(found))


@consumables_app.command("create")
@handles_errors
def create(
    name: Name,
    total: Annotated[int, typer.Option("--total", min=0, help="How many there are.")] = 0,
    non_replenishable: Annotated[
        bool, typer.Option("--non-replenishable", help="Each attempt uses its quantity up (an API quota, say).")
    ] = False,
) -> None:
    """Create a resource (REPLENISHABLE unless --non-replenishable)."""
    kind = "NON_REPLENISHABLE" if non_replenishable else "REPLENISHABLE"
    answer = _call(
        "CreateConsumableResource", {"consumableResourceName": name, "totalQuantity": total, "resourceType": kind}
    )
    typer.echo(answer["consumableResourceArn"])


def _update(operation: str) -> Any:
    @handles_errors
    def update(name: Name, quantity: Quantity) -> None:
        body = {"consumableResource": name, "operation": operation, "quantity": quantity}
        answer = _call("UpdateConsumableResource", body)
        typer.echo(f"{answer['consumableResourceName']}: total {answer['totalQuantity']}")

    update.__doc__ = {
        "SET": "Set the total.",
        "ADD": "Add to the total.",
        "REMOVE": "Take from the total (not below 0).",
    }[operation]
    return update


consumables_app.command("set")(_update("SET"))
consumables_app.command("add")(_update("ADD"))
consumables_app.command("remove")(_update("REMOVE"))


@consumables_app.command("delete")
@handles_errors
def delete(name: Name) -> None:
    """Delete a resource no unfinished job needs."""
    _call("DeleteConsumableResource", {"consumableResource": name})


def register_commands(app: typer.Typer) -> None:
    app.add_typer(consumables_app, name="consumables")
