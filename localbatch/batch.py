"""AWS Batch's use cases on the state store: job definitions, jobs, queues, compute environments.

Each method checks everything first and writes once, so a refused request leaves nothing
behind (one transaction per request). The service never starts or stops a container: it
records what was asked (a SUBMITTED job, a stop request, a changed queue) and tells the
control loop through ``Notifier``; the loop decides and acts. Run-time facts only the loop
knows (what is allocated where) come from it through ``Allocations``.

Used by the daemon's API dispatcher, and in-process by the CLI for reads when no daemon runs.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from localbatch import faults, jobdef
from localbatch.awsbatch.requests import ListRequest, SubmitRequest, job_definition_ref
from localbatch.consumable_service import ConsumableService
from localbatch.core import arrays, dependencies, lifecycle, multinode, policy, queue_limits, staging
from localbatch.core.definition import MAX_TAG_VALUE_CHARS, MAX_TAGS, JobDefinition, tag_key_problem
from localbatch.core.infra import (
    MAX_ACTIVE_SHARES,
    ComputeEnvironment,
    JobQueue,
    JobStateTimeLimitAction,
    SchedulingPolicy,
    State,
    share_identifier_problem,
)
from localbatch.core.inventory import unknown_gpus
from localbatch.core.jobs import EpochMs, Job, JobEvent, JobStatus, StopKind, StopRequest
from localbatch.core.naming import resource_name
from localbatch.core.resources import Resources
from localbatch.core.scheduler import FrontEntry, never_fits
from localbatch.errors import (
    ComputeEnvironmentNotFound,
    InvalidRequest,
    JobDefinitionNotFound,
    JobNotFound,
    JobQueueNotFound,
    NotFound,
    Problem,
    SchedulingPolicyNotFound,
)
from localbatch.ports import ACTIVE, Clock, JobDefinitionRecord, JobQuery, StateStore, TagTarget

logger = logging.getLogger(__name__)


def _multinode_parts(
    job: Job, definition: JobDefinition, request: SubmitRequest
) -> tuple[Job, list[tuple[Job, JobEvent]], list[Problem]]:
    """For a multi-node definition: the job as the nodes' parent, its SUBMITTED nodes, and
    what is wrong with the submission for such a job (``core.multinode``)."""
    props = definition.node_properties
    if props is None:
        if request.node_overrides is not None:
            return job, [], [Problem("nodeOverrides", "only for a multi-node parallel job definition (type multinode)")]
        return job, [], []
    problems = []
    o = request.overrides
    if o.command is not None or o.environment or (o.vcpus, o.memory_mib, o.gpus) != (None, None, None):
        problems.append(
            Problem("containerOverrides", "not for a multi-node parallel job; use nodeOverrides.nodePropertyOverrides")
        )
    if request.array_size is not None:
        problems.append(Problem("arrayProperties", "a multi-node parallel job cannot be an array job"))
    containers, range_problems = multinode.resolve(props, request.node_overrides, dict(job.parameters))
    problems += range_problems
    if problems:
        return job, [], problems
    parent = multinode.parent_job(job, definition, containers)
    return parent, multinode.nodes(parent, containers), []


class Notifier(Protocol):
    """How the service tells the control loop that something needs its attention."""

    def job_submitted(self, job: Job) -> None: ...

    def stop_requested(self, job_id: str) -> None: ...

    def infrastructure_changed(self) -> None: ...


class LiveView(Protocol):
    """What only the control loop knows: why a RUNNABLE job still waits, and the order in
    which the scheduler would take a queue's waiting jobs."""

    def waiting_reason(self, job_id: str) -> str | None: ...

    def queue_front(self, job_queue: str) -> tuple[tuple[FrontEntry, ...], EpochMs] | None:
        """The queue's first waiting jobs in dispatch order, and when the scheduler last
        ordered them (None before it first did)."""
        ...


class NoNotifier:
    """For a service with no control loop behind it (the CLI reading the store)."""

    def job_submitted(self, job: Job) -> None:
        pass

    def stop_requested(self, job_id: str) -> None:
        pass

    def infrastructure_changed(self) -> None:
        pass


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_after: tuple[int, str] | None  # the key to continue from, if there may be more


class BatchService:
    def __init__(
        self,
        *,
        store: StateStore,
        clock: Clock,
        host: Resources,
        gpu_ids: tuple[str, ...] = (),
        notifier: Notifier | None = None,
        live: LiveView | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        host_policy: policy.Policy = policy.NO_POLICY,
    ) -> None:
        self._live = live
        self._host_policy = host_policy
        self._gpu_ids = gpu_ids  # the host's GPU device ids
        self._store = store
        self._clock = clock
        self._host = host
        self._notifier = notifier or NoNotifier()
        self._new_id = new_id
        self._definitions: dict[tuple[str, int], JobDefinition] = {}
        # Queues and compute environments change only through this service (and the config,
        # applied before it exists): read them once, again after each change.
        self._infra: tuple[dict[str, JobQueue], list[ComputeEnvironment]] | None = None
        self._infra_lock = threading.Lock()  # a reader must not put back what a change just dropped
        self.consumables = ConsumableService(store, clock, self._infrastructure_changed)

    # -- job definitions ----------------------------------------------------------------------

    def register_job_definition(self, definition: JobDefinition) -> JobDefinitionRecord:
        """A new ACTIVE revision, as AWS makes on every register call."""
        record = self._store.register_job_definition(
            definition.name, jobdef.to_document(definition), self._clock.now_ms()
        )
        self._definitions[(record.name, record.revision)] = definition
        return record

    def job_definition(self, ref: str) -> tuple[JobDefinition, JobDefinitionRecord]:
        """The definition a name (latest ACTIVE), name:revision or ARN names."""
        name, revision = job_definition_ref(ref)
        record = self._store.get_job_definition(name, revision)
        if record is None:
            raise JobDefinitionNotFound(ref)
        return self._parsed(record), record

    def _parsed(self, record: JobDefinitionRecord) -> JobDefinition:
        key = (record.name, record.revision)
        if key not in self._definitions:
            self._definitions[key] = jobdef.parse_document(record.document, f"{record.name}:{record.revision}")
        return self._definitions[key]

    def deregister_job_definition(self, ref: str) -> None:
        name, revision = job_definition_ref(ref)
        if revision is None:
            raise InvalidRequest([Problem("jobDefinition", f"{ref!r}: give name:revision or the ARN")])
        if self._store.deregister_job_definition(name, revision) is None:
            raise JobDefinitionNotFound(ref)

    def describe_job_definitions(
        self, refs: Sequence[str] = (), name: str | None = None, status: str | None = None
    ) -> list[tuple[JobDefinition, JobDefinitionRecord]]:
        if refs:
            found = []
            for ref in refs:
                ref_name, revision = job_definition_ref(ref)
                if revision is None:
                    found += self._store.list_job_definitions(ref_name, status)
                else:
                    record = self._store.get_job_definition(ref_name, revision)
                    found += [record] if record is not None else []
            records = found
        else:
            records = self._store.list_job_definitions(name, status)
        return [(self._parsed(r), r) for r in records]

    # -- jobs -----------------------------------------------------------------------------------

    def submit_job(self, request: SubmitRequest, *, submitted_by: str | None = None) -> Job:
        """Record a SUBMITTED job, submitted by ``submitted_by`` (its array children and nodes
        too). Refused, with nothing written, when the queue is unknown or DISABLED, the
        definition unknown or INACTIVE, the job could never fit the queue, or it asks what the
        host's policy does not allow (``core.policy``: each problem names the rule)."""
        queue = self._queue(request.job_queue)
        if not queue.enabled:
            raise InvalidRequest([Problem("jobQueue", f"job queue {queue.name} is DISABLED; it accepts no new jobs")])
        definition, record = self.job_definition(request.job_definition)
        if record.status != ACTIVE:
            raise InvalidRequest([Problem("jobDefinition", f"{record.name}:{record.revision} is {record.status}")])
        job, event = lifecycle.new_job(
            definition,
            record.revision,
            request.overrides,
            job_id=self._new_id(),
            job_name=request.job_name,
            job_queue=queue.name,
            now=self._clock.now_ms(),
        )
        job = replace(
            job,
            propagate_tags=job.propagate_tags if request.propagate_tags is None else request.propagate_tags,
            depends_on=request.depends_on,
            array_size=request.array_size,
            share_identifier=request.share_identifier,
            submitted_by=submitted_by,
        )
        problems = dependencies.check(request.depends_on, request.array_size, self._dependency_targets(request))
        problems += self._share_problems(queue, request.share_identifier)
        container = job.container
        if request.array_size is None and staging.uses_array_index(container.inputs, container.outputs):
            where = f"job definition {record.name}:{record.revision}"
            text = f"{where} stages S3 paths with ${{{staging.ARRAY_INDEX}}}, which only array jobs have"
            problems.append(Problem("arrayProperties.size", text))
        job, nodes, node_problems = _multinode_parts(job, definition, request)
        problems += node_problems
        problems += self._policy_problems(job, [n for n, _ in nodes], submitted_by or "")
        overridden = request.overrides.consumable_resources is not None
        where = "consumableResourcePropertiesOverride" if overridden else "jobDefinition"
        if nodes and job.consumable_resources:
            problems.append(Problem(where, "not supported for multi-node parallel jobs by localbatch yet"))
        problems += self.consumables.check_needs(job.consumable_resources, where)
        need = multinode.total([n.container for n, _ in nodes]) if nodes else job.container.resources
        why = never_fits(need, queue, self._known()[1], self._host)
        if why is not None and not node_problems:
            what = f"the job's {len(nodes)} nodes together" if nodes else "the job"
            problems.append(Problem("resourceRequirements", f"{what} can never run in job queue {queue.name}: {why}"))
        problems += policy.too_big(need, len(nodes) or 1, self._host_policy.limits)
        if problems:
            raise InvalidRequest(problems)
        changes = [(job, [event])]
        changes += [(node, [created]) for node, created in nodes]  # a multi-node job's nodes are rows too
        if job.is_array_parent:  # its children are rows like any job's, written with it
            changes += [(child, [created]) for child, created in arrays.children(job)]
        self._store.save_jobs(changes)
        faults.point("after_submit_commit")
        for submitted, _ in changes:
            self._notifier.job_submitted(submitted)
        return job

    def _policy_problems(self, job: Job, nodes: Sequence[Job], user: str) -> list[Problem]:
        """What the job (each node of a multi-node job) asks of the host that the policy does
        not allow ``user``; host paths are checked with their symlinks resolved, as Docker mounts them."""
        problems = []
        for container, where in [(n.container, f"node {n.node_index}: ") for n in nodes] or [(job.container, "")]:
            real = {
                v.host_source_path: os.path.realpath(v.host_source_path)
                for v in container.volumes
                if v.host_source_path is not None
            }
            problems += policy.violations(container, user, self._host_policy, real, where)
        return problems

    def _share_problems(self, queue: JobQueue, share: str | None) -> list[Problem]:
        """AWS's shareIdentifier rules: required on a fair-share queue, refused on a FIFO one,
        and at most 500 share identifiers with unfinished jobs per queue."""
        if queue.scheduling_policy is None:
            if share is None:
                return []
            text = f"job queue {queue.name} is a FIFO queue (no scheduling policy): it takes no share identifier"
            return [Problem("shareIdentifier", text)]
        if share is None:
            text = (
                f"required: job queue {queue.name} is a fair-share queue (scheduling policy {queue.scheduling_policy})"
            )
            return [Problem("shareIdentifier", text)]
        why = share_identifier_problem(share)
        if why is not None:
            return [Problem("shareIdentifier", f"{share!r}: {why}")]
        active = self._store.active_share_identifiers(queue.name)
        if share not in active and len(active) >= MAX_ACTIVE_SHARES:
            text = (
                f"job queue {queue.name} already has {MAX_ACTIVE_SHARES} active share identifiers, the most AWS allows"
            )
            return [Problem("shareIdentifier", text)]
        return []

    def _dependency_targets(self, request: SubmitRequest) -> dict[str, int | None]:
        """The existing jobs ``dependsOn`` names, each with its array size (None if it is not
        an array parent)."""
        targets: dict[str, int | None] = {}
        for dependency in request.depends_on[: dependencies.MAX_DEPENDENCIES]:
            if dependency.job_id is None or dependency.job_id in targets:
                continue
            found = self._store.get_job(dependency.job_id)
            if found is not None:
                targets[found.job_id] = found.array_size if found.is_array_parent else None
        return targets

    def array_counts(self, job: Job) -> dict[JobStatus, int] | None:
        """How many of an array parent's children are in each status (None for other jobs)."""
        return self._store.count_jobs(array_job_id=job.job_id) if job.is_array_parent else None

    def describe_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs that exist, in the order asked (unknown ids are left out, as AWS does)."""
        jobs = (self._store.get_job(job_id) for job_id in job_ids)
        return [self._with_live_reason(job) for job in jobs if job is not None]

    def job(self, job_id: str) -> Job:
        job = self._store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return self._with_live_reason(job)

    def _with_live_reason(self, job: Job) -> Job:
        """A RUNNABLE job's statusReason says why it waits, as the scheduler last found it."""
        if job.status is not JobStatus.RUNNABLE or self._live is None:
            return job
        reason = self._live.waiting_reason(job.job_id)
        return job if reason is None else replace(job, status_reason=reason)

    def list_jobs(self, request: ListRequest) -> Page:
        """A page of a queue's jobs (array children and nodes left out, as AWS), or of an
        array's children or a multi-node job's nodes, by index."""
        for field, parent_id, kind in (
            ("arrayJobId", request.array_job_id, "an array job"),
            ("multiNodeJobId", request.multi_node_job_id, "a multi-node parallel job"),
        ):
            if parent_id is None:
                continue
            parent = self._store.get_job(parent_id)
            if parent is None or not (parent.is_array_parent if field == "arrayJobId" else parent.is_multinode_parent):
                raise InvalidRequest([Problem(field, f"{parent_id} is not {kind}")])
        queue_name = self._queue(request.job_queue).name if request.job_queue is not None else None
        query = JobQuery(
            statuses=request.statuses,
            job_queue=queue_name,
            array_job_id=request.array_job_id,
            multi_node_job_id=request.multi_node_job_id,
            name_prefix=request.name_prefix,
            job_definition=request.job_definition,
            job_definition_revision=request.job_definition_revision,
            job_definition_prefix=request.job_definition_prefix,
            created_after=request.created_after,
            created_before=request.created_before,
            after=request.after,
            limit=request.limit,
        )
        jobs = [self._with_live_reason(job) for job in self._store.list_jobs(query)]
        next_after = None
        if len(jobs) == request.limit:  # children and nodes page by index, the rest by created_at
            last = jobs[-1]
            index = last.array_index if last.array_index is not None else last.node_index
            next_after = (index if index is not None else last.created_at, last.job_id)
        if request.exact_name is not None:
            wanted = request.exact_name.lower()
            jobs = [job for job in jobs if job.job_name.lower() == wanted]
        return Page(jobs, next_after)

    def cancel_job(self, job_id: str, reason: str, *, caller: str | None = None, admin: bool = True) -> None:
        """AWS's CancelJob: jobs not yet STARTING end FAILED; on a STARTING or RUNNING job it
        has no effect (and is still a success). ``caller`` (an ``admin`` or not) must be allowed
        to stop the job by the host's policy (``core.policy.may_stop``)."""
        self._request_stop(job_id, StopKind.CANCEL, reason, caller, admin)

    def terminate_job(self, job_id: str, reason: str, *, caller: str | None = None, admin: bool = True) -> None:
        """AWS's TerminateJob: a running container is stopped; an unstarted job is cancelled."""
        self._request_stop(job_id, StopKind.TERMINATE, reason, caller, admin)

    def _request_stop(self, job_id: str, kind: StopKind, reason: str, caller: str | None, admin: bool) -> None:
        if caller is not None and not admin and self._host_policy.shared:
            found = self._store.get_job(job_id)
            if found is None:
                raise JobNotFound(job_id)
            refused = policy.may_stop(found.submitted_by, caller, self._host_policy, admin)
            if refused is not None:
                raise InvalidRequest([refused])
        job = self._store.request_stop(job_id, StopRequest(kind, reason, self._clock.now_ms()))
        if job is None:
            raise JobNotFound(job_id)
        if job.stop_request is not None and not job.status.is_terminal:
            self._notifier.stop_requested(job_id)

    def queue_front(self, ref: str) -> tuple[tuple[FrontEntry, ...], EpochMs]:
        """AWS's GetJobQueueSnapshot frontOfQueue: the queue's first RUNNABLE jobs in the order
        the scheduler takes them, as it last planned. With no control loop behind the service,
        or before its first plan: none, as of now."""
        queue = self._queue(ref)
        found = None if self._live is None else self._live.queue_front(queue.name)
        return found if found is not None else ((), self._clock.now_ms())

    # -- tags -----------------------------------------------------------------------------------

    def tags(self, target: TagTarget) -> dict[str, str]:
        """AWS's ListTagsForResource. Raises NotFound."""
        return self._update_tags(target, {}, ())

    def tag_resource(self, target: TagTarget, tags: dict[str, str]) -> dict[str, str]:
        """AWS's TagResource: ``tags`` added or replaced, the others kept (at most 50 in all)."""
        problems = _tag_problems(tags)
        if not tags or len(tags) > MAX_TAGS:
            problems.insert(0, Problem("tags", f"give 1 to {MAX_TAGS} tags, got {len(tags)}"))
        if problems:
            raise InvalidRequest(problems)
        merged = {**self.tags(target), **tags}
        if len(merged) > MAX_TAGS:
            text = f"the resource would have {len(merged)} tags; AWS allows at most {MAX_TAGS}"
            raise InvalidRequest([Problem("tags", text)])
        return self._update_tags(target, tags, ())

    def untag_resource(self, target: TagTarget, keys: Sequence[str]) -> dict[str, str]:
        """AWS's UntagResource: the keys named are removed (absent ones are no error)."""
        problems = [Problem(f"tagKeys[{i}]", why) for i, key in enumerate(keys) if (why := tag_key_problem(key))]
        if not keys or len(keys) > MAX_TAGS:
            problems.insert(0, Problem("tagKeys", f"give 1 to {MAX_TAGS} keys, got {len(keys)}"))
        if problems:
            raise InvalidRequest(problems)
        return self._update_tags(target, {}, keys)

    def _update_tags(self, target: TagTarget, add: dict[str, str], remove: Sequence[str]) -> dict[str, str]:
        found = self._store.update_tags(target, add, remove)
        if found is None:
            revision = "" if target.revision is None else f":{target.revision}"
            raise NotFound(f"{target.kind} {target.name}{revision} does not exist")
        if add or remove:
            if target.revision is not None:  # parsed again with its new tags (propagateTags reads them)
                self._definitions.pop((target.name, target.revision), None)
            if target.kind in ("job-queue", "compute-environment"):
                with self._infra_lock:
                    self._infra = None
        return found

    # -- compute environments -------------------------------------------------------------------

    def compute_environments(self, refs: Sequence[str] = ()) -> list[ComputeEnvironment]:
        environments = self._store.list_compute_environments()
        if not refs:
            return environments
        names = {resource_name(ref, "compute-environment") for ref in refs}
        return [e for e in environments if e.name in names]

    def create_compute_environment(self, environment: ComputeEnvironment) -> ComputeEnvironment:
        if self._store.get_compute_environment(environment.name) is not None:
            raise InvalidRequest([Problem("computeEnvironmentName", f"{environment.name} already exists")])
        self._check_gpus(environment)
        self._store.put_compute_environment(environment)
        self._infrastructure_changed()
        return environment

    def update_compute_environment(self, name: str, state: State | None, max_vcpus: float | None) -> ComputeEnvironment:
        current = self._environment(name)
        updated = replace(
            current,
            state=state or current.state,
            max_vcpus=current.max_vcpus if max_vcpus is None else max_vcpus,
        )
        self._store.put_compute_environment(updated)
        self._infrastructure_changed()
        return updated

    def delete_compute_environment(self, ref: str) -> None:
        """AWS's rule: the environment must be DISABLED and in no queue's order."""
        environment = self._environment(resource_name(ref, "compute-environment"))
        if environment.enabled:
            raise InvalidRequest([Problem("computeEnvironment", f"{environment.name} is ENABLED; disable it first")])
        users = [q.name for q in self._store.list_job_queues() if environment.name in q.compute_environments]
        if users:
            raise InvalidRequest(
                [Problem("computeEnvironment", f"{environment.name} is used by job queue(s) {', '.join(users)}")]
            )
        self._store.delete_compute_environment(environment.name)
        self._infrastructure_changed()

    def _environment(self, name: str) -> ComputeEnvironment:
        environment = self._store.get_compute_environment(name)
        if environment is None:
            raise ComputeEnvironmentNotFound(name)
        return environment

    def _check_gpus(self, environment: ComputeEnvironment) -> None:
        unknown = unknown_gpus(self._gpu_ids, environment)
        if unknown:
            present = ", ".join(self._gpu_ids) or "none"
            raise InvalidRequest(
                [Problem("tags.localbatch:gpus", f"this host has no GPU {', '.join(unknown)} (GPUs: {present})")]
            )
        for other in self._store.list_compute_environments():
            shared = set(other.gpu_ids) & set(environment.gpu_ids)
            if shared and other.name != environment.name:
                raise InvalidRequest(
                    [
                        Problem(
                            "tags.localbatch:gpus", f"GPU(s) {', '.join(sorted(shared))} already belong to {other.name}"
                        )
                    ]
                )

    # -- job queues -----------------------------------------------------------------------------

    def job_queues(self, refs: Sequence[str] = ()) -> list[JobQueue]:
        queues = self._store.list_job_queues()
        if not refs:
            return queues
        names = {resource_name(ref, "job-queue") for ref in refs}
        return [q for q in queues if q.name in names]

    def create_job_queue(self, queue: JobQueue) -> JobQueue:
        if self._store.get_job_queue(queue.name) is not None:
            raise InvalidRequest([Problem("jobQueueName", f"{queue.name} already exists")])
        self._check_order(queue.compute_environments)
        if queue.scheduling_policy is not None:
            self._check_policy(queue.scheduling_policy)
        self._store.put_job_queue(queue)
        self._infrastructure_changed()
        _warn_local_only(queue)
        return queue

    def update_job_queue(
        self,
        name: str,
        state: State | None,
        priority: int | None,
        compute_environments: tuple[str, ...] | None,
        scheduling_policy: str | None = None,
        *,
        job_state_time_limit_actions: tuple[JobStateTimeLimitAction, ...] | None = None,
    ) -> JobQueue:
        """``scheduling_policy`` (a name; None leaves it): AWS's rule is that a FIFO queue never
        gets one later, and a fair-share queue may swap its policy but never drop it."""
        current = self._queue(name)
        if compute_environments is not None:
            self._check_order(compute_environments)
        if scheduling_policy is not None:
            if current.scheduling_policy is None:
                text = f"job queue {current.name} was created without one (FIFO); AWS never adds one later"
                raise InvalidRequest([Problem("schedulingPolicyArn", text)])
            self._check_policy(scheduling_policy)
        updated = replace(
            current,
            scheduling_policy=scheduling_policy or current.scheduling_policy,
            priority=current.priority if priority is None else priority,
            compute_environments=compute_environments or current.compute_environments,
            state=state or current.state,
            job_state_time_limit_actions=(
                current.job_state_time_limit_actions
                if job_state_time_limit_actions is None
                else job_state_time_limit_actions
            ),
        )
        self._store.put_job_queue(updated)
        self._infrastructure_changed()
        if job_state_time_limit_actions is not None:
            _warn_local_only(updated)
        return updated

    def delete_job_queue(self, ref: str) -> None:
        """AWS's rule: the queue must be DISABLED; its unfinished jobs are terminated."""
        queue = self._queue(ref)
        if queue.enabled:
            raise InvalidRequest([Problem("jobQueue", f"{queue.name} is ENABLED; disable it first")])
        for job in self._store.active_jobs():
            # An array's children and a job's nodes hear it from their parent (the loop passes it on).
            if job.job_queue == queue.name and job.array_job_id is None and job.multinode_job_id is None:
                self.terminate_job(job.job_id, f"Job queue {queue.name} was deleted")
        self._store.delete_job_queue(queue.name)
        self._infrastructure_changed()

    # -- scheduling policies --------------------------------------------------------------------

    def scheduling_policies(self, refs: Sequence[str] | None = None) -> list[SchedulingPolicy]:
        """All policies by name, or those ``refs`` (names or ARNs) name, in that order; unknown
        ones are left out."""
        if refs is None:
            return self._store.list_scheduling_policies()
        found = (self._store.get_scheduling_policy(resource_name(ref, "scheduling-policy")) for ref in refs)
        return [policy for policy in found if policy is not None]

    def create_scheduling_policy(self, policy: SchedulingPolicy) -> SchedulingPolicy:
        if self._store.get_scheduling_policy(policy.name) is not None:
            raise InvalidRequest([Problem("name", f"scheduling policy {policy.name} already exists")])
        self._store.put_scheduling_policy(policy)
        return policy

    def update_scheduling_policy(self, ref: str, policy: SchedulingPolicy) -> SchedulingPolicy:
        """Replace the fair-share settings of the policy ``ref`` names (its tags stay)."""
        current = self._policy(ref)
        updated = replace(policy, name=current.name, tags=current.tags)
        self._store.put_scheduling_policy(updated)
        self._infrastructure_changed()
        return updated

    def delete_scheduling_policy(self, ref: str) -> None:
        """AWS's rule: refused while a queue uses the policy."""
        policy = self._policy(ref)
        users = [q.name for q in self._store.list_job_queues() if q.scheduling_policy == policy.name]
        if users:
            text = f"scheduling policy {policy.name} is used by job queue(s) {', '.join(users)}"
            raise InvalidRequest([Problem("arn", text)])
        self._store.delete_scheduling_policy(policy.name)
        self._infrastructure_changed()

    def _check_policy(self, name: str) -> None:
        if self._store.get_scheduling_policy(name) is None:
            raise InvalidRequest([Problem("schedulingPolicyArn", f"no scheduling policy named {name}")])

    def _policy(self, ref: str) -> SchedulingPolicy:
        policy = self._store.get_scheduling_policy(resource_name(ref, "scheduling-policy"))
        if policy is None:
            raise SchedulingPolicyNotFound(ref)
        return policy

    def _queue(self, ref: str) -> JobQueue:
        queue = self._known()[0].get(resource_name(ref, "job-queue"))
        if queue is None:
            raise JobQueueNotFound(ref)
        return queue

    def _known(self) -> tuple[dict[str, JobQueue], list[ComputeEnvironment]]:
        with self._infra_lock:
            if self._infra is None:
                queues = {q.name: q for q in self._store.list_job_queues()}
                self._infra = (queues, self._store.list_compute_environments())
            return self._infra

    def _infrastructure_changed(self) -> None:
        with self._infra_lock:
            self._infra = None
        self._notifier.infrastructure_changed()

    def _check_order(self, names: Sequence[str]) -> None:
        known = {e.name for e in self._store.list_compute_environments()}
        missing = [n for n in names if n not in known]
        if missing:
            raise InvalidRequest(
                [Problem("computeEnvironmentOrder", f"no compute environment named {', '.join(missing)}")]
            )


def _tag_problems(tags: dict[str, str]) -> list[Problem]:
    """AWS's rules for each tag: key 1 to 128 characters and not ``aws:``, value up to 256."""
    problems = []
    for key, value in tags.items():
        why = tag_key_problem(key)
        if why is not None:
            problems.append(Problem(f"tags.{key}", why))
        if len(value) > MAX_TAG_VALUE_CHARS:
            problems.append(Problem(f"tags.{key}", f"values are at most {MAX_TAG_VALUE_CHARS} characters"))
    return problems


def _warn_local_only(queue: JobQueue) -> None:
    """Into the daemon's log: what was accepted here but AWS would refuse."""
    for warning in queue_limits.warnings(queue):
        logger.warning("%s", warning)
