"""The consumable-resource use cases (AWS's Create/Describe/Update/Delete/ListConsumableResources
and ListJobsByConsumableResource), over the state store. What a resource means to the scheduler
is ``core.consumables``; the control loop hears of every change and plans with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from localbatch.core import consumables
from localbatch.core.consumables import ConsumableResource, Operation, Quantities
from localbatch.core.jobs import Job, JobStatus
from localbatch.core.naming import resource_name
from localbatch.errors import ConsumableResourceNotFound, InvalidRequest, Problem
from localbatch.ports import Clock, JobQuery, StateStore


class ConsumableService:
    def __init__(self, store: StateStore, clock: Clock, changed: Callable[[], None]) -> None:
        self._store = store
        self._clock = clock
        self._changed = changed  # the control loop plans with the new quantities

    def create(self, resource: ConsumableResource) -> ConsumableResource:
        problems = consumables.resource_problems(resource)
        if not problems and self._store.get_consumable_resource(resource.name) is not None:
            problems.append(Problem("name", f"consumable resource {resource.name} already exists"))
        if problems:
            raise InvalidRequest(problems)
        if not resource.created_at:
            resource = ConsumableResource(
                resource.name, resource.total_quantity, resource.resource_type, self._clock.now_ms(), resource.tags
            )
        self._store.put_consumable_resource(resource)
        self._changed()
        return resource

    def describe(self, ref: str) -> Quantities:
        resource = self._get(ref)
        return Quantities(resource, self._in_use().get(resource.name, 0))

    def listed(self, name_filter: str | None = None) -> list[Quantities]:
        """Every resource by name, or those ``name_filter`` matches (case-insensitive; a
        trailing ``*`` makes it a prefix), as AWS's CONSUMABLE_RESOURCE_NAME filter."""
        used = self._in_use()
        return [
            Quantities(r, used.get(r.name, 0))
            for r in self._store.list_consumable_resources()
            if name_filter is None or _matches(r.name, name_filter)
        ]

    def update(self, ref: str, operation: Operation, quantity: int) -> ConsumableResource:
        """SET, ADD or REMOVE ``quantity`` of the total, read and written in one transaction."""
        why = consumables.quantity_problem(quantity)
        if why is not None:
            raise InvalidRequest([Problem("quantity", why)])
        name = self._get(ref).name

        def change(resource: ConsumableResource) -> int:
            try:
                return consumables.updated_total(resource, operation, quantity)
            except ValueError as exc:
                raise InvalidRequest([Problem("quantity", str(exc))]) from None

        updated = self._store.update_consumable_total(name, change)
        if updated is None:  # deleted meanwhile
            raise ConsumableResourceNotFound(ref)
        self._changed()
        return updated

    def delete(self, ref: str) -> None:
        """Refused while an unfinished job needs the resource: it would wait forever."""
        resource = self._get(ref)
        waiting = [j.job_id for j in self._store.active_jobs() if _needs(j, resource.name)]
        if waiting:
            shown = ", ".join(waiting[:5]) + (f" and {len(waiting) - 5} more" if len(waiting) > 5 else "")
            text = f"consumable resource {resource.name} is needed by unfinished job(s) {shown}"
            raise InvalidRequest([Problem("consumableResource", text)])
        self._store.delete_consumable_resource(resource.name)
        self._changed()

    def jobs(
        self,
        ref: str,
        *,
        statuses: Sequence[JobStatus] = (),
        name_filter: str | None = None,
        after: tuple[int, str] | None = None,
        limit: int = 100,
    ) -> tuple[ConsumableResource, list[Job], tuple[int, str] | None]:
        """A page of the jobs that need the resource, newest first, and where the next starts."""
        resource = self._get(ref)
        prefix = name_filter[:-1] if name_filter is not None and name_filter.endswith("*") else name_filter
        query = JobQuery(
            statuses=tuple(statuses),
            consumable_resource=resource.name,
            name_prefix=prefix,
            after=after,
            limit=limit,
        )
        found = self._store.list_jobs(query)
        next_after = (found[-1].created_at, found[-1].job_id) if len(found) == limit else None
        if name_filter is not None and not name_filter.endswith("*"):
            found = [job for job in found if job.job_name.lower() == name_filter.lower()]
        return resource, found, next_after

    def check_needs(self, needs: Sequence[consumables.Need], field: str) -> list[Problem]:
        """A submitted job's needs, each naming a resource that exists."""
        return [
            Problem(field, f"no consumable resource named {name}")
            for name, _ in needs
            if self._store.get_consumable_resource(name) is None
        ]

    def _get(self, ref: str) -> ConsumableResource:
        found = self._store.get_consumable_resource(resource_name(ref, "consumable-resource"))
        if found is None:
            raise ConsumableResourceNotFound(ref)
        return found

    def _in_use(self) -> dict[str, int]:
        return consumables.in_use(
            j.consumable_resources for j in self._store.active_jobs() if consumables.holds(j.status)
        )


def _needs(job: Job, name: str) -> bool:
    return not job.is_array_parent and any(n == name for n, _ in job.consumable_resources)


def _matches(name: str, wanted: str) -> bool:
    if wanted.endswith("*"):
        return name.lower().startswith(wanted[:-1].lower())
    return name.lower() == wanted.lower()
