"""Consumable resources: counted things outside the host that jobs need (licences, database
connections, API quota), as AWS Batch's resource-aware scheduling (aws-batch-reference.md
§1.6, §3.7).

A job that lists consumable resources starts only when each has the quantity it asks for
available; it holds them while it holds the host's resources (STARTING or RUNNING). When the
attempt ends, a REPLENISHABLE quantity comes back; a NON_REPLENISHABLE one is used up: the
resource's total drops by it. AWS says a job holds its quantity from STARTING until SUCCEEDED
or FAILED; a retried attempt goes back to RUNNABLE in between, so here each attempt takes and
gives back (or uses up) its quantity. ``in_use`` is derived from the jobs holding resources, so
it cannot drift from them after a crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from localbatch.errors import Problem

# A job's need: (resource name, quantity), in the order the definition lists them.
Need = tuple[str, int]

MAX_NAME = 128  # a name is like a queue's: letters, digits, hyphens, underscores
MAX_QUANTITY = 2**63 - 1  # the model's Long
WAITING = "CONSUMABLE_RESOURCE:INSUFFICIENT_QUANTITY"  # localbatch's code: AWS publishes none


class ResourceType(str, Enum):
    REPLENISHABLE = "REPLENISHABLE"
    NON_REPLENISHABLE = "NON_REPLENISHABLE"


class Operation(str, Enum):
    """UpdateConsumableResource's ``operation``."""

    SET = "SET"
    ADD = "ADD"
    REMOVE = "REMOVE"


@dataclass(frozen=True)
class ConsumableResource:
    name: str
    total_quantity: int
    resource_type: ResourceType = ResourceType.REPLENISHABLE
    created_at: int = 0  # epoch ms
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Quantities:
    """A resource and what the jobs holding it (STARTING, RUNNING) hold now."""

    resource: ConsumableResource
    in_use: int

    @property
    def available(self) -> int:
        return max(0, self.resource.total_quantity - self.in_use)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a consumable resource, or None."""
    if not name or len(name) > MAX_NAME:
        return f"1 to {MAX_NAME} characters, got {len(name)}"
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name):
        return f"{name!r}: letters, digits, hyphens and underscores only"
    return None


def quantity_problem(quantity: object) -> str | None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        return f"a whole number, got {quantity!r}"
    if not 0 <= quantity <= MAX_QUANTITY:
        return f"0 to {MAX_QUANTITY}, got {quantity}"
    return None


def resource_problems(resource: ConsumableResource) -> list[Problem]:
    """Everything wrong with a resource, fields in snake_case."""
    problems = []
    why = name_problem(resource.name)
    if why is not None:
        problems.append(Problem("name", why))
    why = quantity_problem(resource.total_quantity)
    if why is not None:
        problems.append(Problem("total_quantity", why))
    return problems


def need_problems(needs: Sequence[Need], field_name: str) -> list[Problem]:
    """A job's list: each name valid and listed once, each quantity at least 1."""
    problems = []
    seen: set[str] = set()
    for i, (name, quantity) in enumerate(needs):
        why = f"{name!r} is listed twice" if name in seen else need_problem(name, quantity)
        if why is not None:
            problems.append(Problem(f"{field_name}[{i}]", why))
        seen.add(name)
    return problems


def need_problem(name: str, quantity: object) -> str | None:
    """Why a job cannot ask for ``quantity`` of ``name``, or None."""
    why = name_problem(name)
    if why is not None:
        return why
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        return f"quantity must be 1 to {MAX_QUANTITY}, got {quantity!r}"
    return None


def updated_total(resource: ConsumableResource, operation: Operation, quantity: int) -> int:
    """The total after UpdateConsumableResource; ValueError (its message for the user) when it
    would go below 0. A total below what jobs hold now is allowed: no new job gets any until
    enough comes back (AWS does not take quantities back from running jobs either)."""
    if operation is Operation.SET:
        return quantity
    if operation is Operation.ADD:
        if resource.total_quantity + quantity > MAX_QUANTITY:
            raise ValueError(f"ADD {quantity} would take totalQuantity past {MAX_QUANTITY}")
        return resource.total_quantity + quantity
    if quantity > resource.total_quantity:
        raise ValueError(f"cannot REMOVE {quantity}: totalQuantity is {resource.total_quantity}")
    return resource.total_quantity - quantity


def in_use(holding: Iterable[Sequence[Need]]) -> dict[str, int]:
    """What the jobs holding resources (STARTING, RUNNING) hold, by resource name."""
    used: dict[str, int] = {}
    for needs in holding:
        for name, quantity in needs:
            used[name] = used.get(name, 0) + quantity
    return used


def available(resources: Iterable[ConsumableResource], used: Mapping[str, int]) -> dict[str, int]:
    """Each resource's ``availableQuantity``: its total less what is held, never below 0."""
    return {r.name: max(0, r.total_quantity - used.get(r.name, 0)) for r in resources}


def holds(status: str) -> bool:
    """Whether a job in ``status`` holds its consumable resources (STARTING or RUNNING). A job
    saved out of these statuses gives a REPLENISHABLE quantity back and uses a NON_REPLENISHABLE
    one up: the store lowers the total in the transaction that saves the job."""
    return status in ("STARTING", "RUNNING")


def shortfall(needs: Sequence[Need], free: Mapping[str, int]) -> str | None:
    """Why ``needs`` cannot be had from ``free`` now (the first resource short), or None."""
    for name, quantity in needs:
        have = free.get(name)
        if have is None:
            return f"consumable resource {name} does not exist"
        if quantity > have:
            return f"needs {quantity} of consumable resource {name}, {have} available"
    return None


def take(needs: Sequence[Need], free: dict[str, int]) -> None:
    for name, quantity in needs:
        free[name] -= quantity
