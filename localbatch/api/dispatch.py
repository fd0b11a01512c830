"""AWS Batch operations on the service: parse the body, call one use case, render AWS's shape.

The HTTP server has already routed the request and checked its shape against botocore's
model; this module only translates between AWS's camelCase documents (``localbatch.awsbatch``)
and the service. The same dispatcher serves the daemon's sockets and, for reads, the CLI
in-process when no daemon runs (``read_only``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from localbatch.api.errors import CLIENT_ERRORS, client_error, to_api_error, unsupported_operation
from localbatch.api.principal import current_principal, daemon_owner, is_admin
from localbatch.awsbatch import consumables, infra, requests
from localbatch.awsbatch.jobdefinition import from_register_request, payload_problem, to_register_request
from localbatch.awsbatch.jobdetail import job_detail, job_summary
from localbatch.awsbatch.requests import is_digits, job_definition_ref
from localbatch.batch import BatchService
from localbatch.core.definition import JobDefinition
from localbatch.core.naming import Arns
from localbatch.core.policy import INFRASTRUCTURE_WRITES, NO_POLICY, Policy, may_change_infrastructure
from localbatch.core.resources import Resources
from localbatch.errors import InvalidRequest, NotFound
from localbatch.ports import ACTIVE, INACTIVE, TAGGABLE, JobDefinitionRecord, TagTarget

T = TypeVar("T")

Body = Mapping[str, Any]
Handler = Callable[[Body], dict[str, Any]]

MAX_DESCRIBE_JOBS = 100
READ_OPERATIONS = frozenset(
    {
        "DescribeJobs",
        "ListJobs",
        "DescribeJobDefinitions",
        "DescribeJobQueues",
        "DescribeComputeEnvironments",
        "DescribeSchedulingPolicies",
        "ListSchedulingPolicies",
        "ListTagsForResource",
        "DescribeConsumableResource",
        "ListConsumableResources",
        "ListJobsByConsumableResource",
        "GetJobQueueSnapshot",  # without a control loop: an empty front, as of now
    }
)
MAX_DESCRIBE_POLICIES = 100
MAX_BULK_JOBS = 50  # CancelJobs, TerminateJobs


class BatchDispatcher:
    def __init__(
        self, service: BatchService, arns: Arns, host: Resources, *, read_only: bool = False, policy: Policy = NO_POLICY
    ) -> None:
        self._service = service
        self._policy = policy
        self._arns = arns
        self._host = host
        self._read_only = read_only
        self._handlers: dict[str, Handler] = {
            "SubmitJob": self._submit_job,
            "DescribeJobs": self._describe_jobs,
            "ListJobs": self._list_jobs,
            "CancelJob": self._cancel_job,
            "TerminateJob": self._terminate_job,
            "RegisterJobDefinition": self._register_job_definition,
            "DescribeJobDefinitions": self._describe_job_definitions,
            "DeregisterJobDefinition": self._deregister_job_definition,
            "CreateJobQueue": self._create_job_queue,
            "DescribeJobQueues": self._describe_job_queues,
            "UpdateJobQueue": self._update_job_queue,
            "DeleteJobQueue": self._delete_job_queue,
            "CreateComputeEnvironment": self._create_compute_environment,
            "DescribeComputeEnvironments": self._describe_compute_environments,
            "UpdateComputeEnvironment": self._update_compute_environment,
            "DeleteComputeEnvironment": self._delete_compute_environment,
            "CreateSchedulingPolicy": self._create_scheduling_policy,
            "DescribeSchedulingPolicies": self._describe_scheduling_policies,
            "UpdateSchedulingPolicy": self._update_scheduling_policy,
            "DeleteSchedulingPolicy": self._delete_scheduling_policy,
            "ListSchedulingPolicies": self._list_scheduling_policies,
            "CancelJobs": self._cancel_jobs,
            "TerminateJobs": self._terminate_jobs,
            "GetJobQueueSnapshot": self._get_job_queue_snapshot,
            "TagResource": self._tag_resource,
            "UntagResource": self._untag_resource,
            "ListTagsForResource": self._list_tags_for_resource,
            "CreateConsumableResource": self._create_consumable_resource,
            "DescribeConsumableResource": self._describe_consumable_resource,
            "UpdateConsumableResource": self._update_consumable_resource,
            "DeleteConsumableResource": self._delete_consumable_resource,
            "ListConsumableResources": self._list_consumable_resources,
            "ListJobsByConsumableResource": self._list_jobs_by_consumable_resource,
        }

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        handler = self._handlers.get(operation)
        if handler is None:
            raise unsupported_operation(operation)
        if self._read_only and operation not in READ_OPERATIONS:
            raise client_error(f"{operation} needs the daemon")
        too_big = payload_problem(operation, body)
        if too_big is not None:
            raise client_error(too_big)
        if operation in INFRASTRUCTURE_WRITES or (operation in _TAG_WRITES and not _names_a_job(body)):
            caller = current_principal() or daemon_owner()
            refused = may_change_infrastructure(operation, caller, self._policy, is_admin(caller, self._policy))
            if refused is not None:
                raise InvalidRequest([refused])
        return handler(body)

    # -- jobs ---------------------------------------------------------------------------------

    def _submit_job(self, body: Body) -> dict[str, Any]:
        # The key's name on the TCP listener; the peer's OS user on the Unix socket; the
        # daemon's own user for calls inside it.
        submitter = current_principal() or daemon_owner()
        job = self._service.submit_job(requests.submit_request(body), submitted_by=submitter)
        return {"jobArn": self._arns.job(job.job_id), "jobName": job.job_name, "jobId": job.job_id}

    def _describe_jobs(self, body: Body) -> dict[str, Any]:
        ids = [str(i) for i in body["jobs"]]
        if len(ids) > MAX_DESCRIBE_JOBS:
            raise client_error(f"jobs: at most {MAX_DESCRIBE_JOBS} ids per call, got {len(ids)}")
        jobs = self._service.describe_jobs(ids)
        return {"jobs": [job_detail(job, self._arns, self._service.array_counts(job)) for job in jobs]}

    def _list_jobs(self, body: Body) -> dict[str, Any]:
        page = self._service.list_jobs(requests.list_request(body))
        response: dict[str, Any] = {"jobSummaryList": [job_summary(job, self._arns) for job in page.jobs]}
        if page.next_after is not None:
            response["nextToken"] = requests.encode_token(*page.next_after)
        return response

    def _cancel_job(self, body: Body) -> dict[str, Any]:
        self._stopper(self._service.cancel_job)(str(body["jobId"]), str(body["reason"]))
        return {}

    def _terminate_job(self, body: Body) -> dict[str, Any]:
        self._stopper(self._service.terminate_job)(str(body["jobId"]), str(body["reason"]))
        return {}

    def _cancel_jobs(self, body: Body) -> dict[str, Any]:
        return self._bulk(body, self._stopper(self._service.cancel_job))

    def _terminate_jobs(self, body: Body) -> dict[str, Any]:
        return self._bulk(body, self._stopper(self._service.terminate_job))

    def _stopper(self, stop: Callable[..., None]) -> Callable[[str, str], None]:
        """``stop`` on behalf of the caller, whom the host's policy may allow only their own jobs."""
        caller = current_principal() or daemon_owner()
        admin = is_admin(caller, self._policy)

        def call(job_id: str, reason: str) -> None:
            stop(job_id, reason, caller=caller, admin=admin)

        return call

    def _bulk(self, body: Body, stop: Callable[[str, str], None]) -> dict[str, Any]:
        """CancelJobs/TerminateJobs: CancelJob/TerminateJob on each id, each reported on its
        own; an id that names no job counts as successful, as AWS documents."""
        ids = [str(i) for i in body["jobs"]]
        if len(ids) > MAX_BULK_JOBS:
            raise client_error(f"jobs: at most {MAX_BULK_JOBS} ids per call, got {len(ids)}")
        reason = str(body["reason"])
        successful: list[str] = []
        errors: list[dict[str, str]] = []
        for job_id in ids:
            try:
                stop(job_id, reason)
            except NotFound:
                pass
            except CLIENT_ERRORS as exc:
                error = to_api_error(exc)
                errors.append({"job": job_id, "code": error.code, "message": error.message})
                continue
            successful.append(job_id)
        return {"successful": successful, "errors": errors}

    def _get_job_queue_snapshot(self, body: Body) -> dict[str, Any]:
        entries, at = self._service.queue_front(str(body["jobQueue"]))
        jobs = [{"jobArn": self._arns.job(e.job_id), "earliestTimeAtPosition": e.since} for e in entries]
        return {"frontOfQueue": {"jobs": jobs, "lastUpdatedAt": at}}

    # -- tags -----------------------------------------------------------------------------------

    def _tag_resource(self, body: Body) -> dict[str, Any]:
        arn, tags = str(body["resourceArn"]), {str(k): str(v) for k, v in body["tags"].items()}
        target = self._tag_target(arn, tags)
        self._tagged(arn, lambda: self._service.tag_resource(target, tags))
        return {}

    def _untag_resource(self, body: Body) -> dict[str, Any]:
        arn, keys = str(body["resourceArn"]), [str(k) for k in body["tagKeys"]]
        target = self._tag_target(arn, keys)
        self._tagged(arn, lambda: self._service.untag_resource(target, keys))
        return {}

    def _list_tags_for_resource(self, body: Body) -> dict[str, Any]:
        arn = str(body["resourceArn"])
        target = self._tag_target(arn, ())
        tags = self._tagged(arn, lambda: self._service.tags(target))
        if target.kind == "compute-environment":  # its localbatch settings too, as Describe shows them
            (environment,) = self._service.compute_environments([target.name])
            tags = infra.environment_detail(environment, self._arns)["tags"]
        return {"tags": tags}

    def _tagged(self, arn: str, call: Callable[[], dict[str, str]]) -> dict[str, str]:
        try:
            return call()
        except NotFound:
            raise client_error(f"resource {arn} does not exist") from None

    def _tag_target(self, arn: str, keys: Iterable[str]) -> TagTarget:
        """The resource ``arn`` names, if it is one that takes tags; ``keys`` are those the
        request would change (a compute environment's localbatch settings are not tags to change)."""
        found = self._arns.resource(arn)
        if found is None:
            example = self._arns.job_queue("my-queue")
            raise client_error(f"resourceArn: {arn!r} is not an AWS Batch ARN of this endpoint (like {example})")
        kind, name = found
        if kind not in TAGGABLE:
            raise client_error(f"resourceArn: {arn} is a {kind}; tags are for {', '.join(TAGGABLE)}")
        if kind == "job" and ("#" in name or ":" in name):
            what = "a multi-node parallel job's node" if "#" in name else "an array job's child"
            raise client_error(f"resourceArn: {arn} is {what}; AWS tags only the parent job")
        if kind == "job-definition":
            definition, revision = job_definition_ref(name)
            if revision is None:
                raise client_error(f"resourceArn: {arn} names no revision; give job-definition/{name}:<revision>")
            return TagTarget(kind, definition, revision)
        if kind == "compute-environment":
            ours = sorted(set(keys) & infra.LOCAL_TAGS)
            if ours:
                raise client_error(
                    f"{', '.join(ours)}: localbatch's settings of compute environment {name}, fixed at its creation"
                )
        return TagTarget(kind, name)

    # -- job definitions ----------------------------------------------------------------------

    def _register_job_definition(self, body: Body) -> dict[str, Any]:
        definition = from_register_request(body, "RegisterJobDefinition request")
        record = self._service.register_job_definition(definition)
        return {
            "jobDefinitionName": record.name,
            "jobDefinitionArn": self._arns.job_definition(record.name, record.revision),
            "revision": record.revision,
        }

    def _describe_job_definitions(self, body: Body) -> dict[str, Any]:
        if body.get("status") not in (None, ACTIVE, INACTIVE):
            raise client_error(f"status: must be ACTIVE or INACTIVE, got {body['status']!r}")
        found = self._service.describe_job_definitions(
            refs=[str(r) for r in body.get("jobDefinitions") or []],
            name=body.get("jobDefinitionName"),
            status=body.get("status"),
        )
        return _offset_page("jobDefinitions", found, body, lambda pair: self._definition(*pair))

    def _definition(self, definition: JobDefinition, record: JobDefinitionRecord) -> dict[str, Any]:
        return {  # AWS's answer names the platform even when the request left it out
            "platformCapabilities": [p.value for p in definition.platform_capabilities],
            **to_register_request(definition, local=True),
            "jobDefinitionArn": self._arns.job_definition(record.name, record.revision),
            "revision": record.revision,
            "status": record.status,
            "containerOrchestrationType": "ECS",
        }

    def _deregister_job_definition(self, body: Body) -> dict[str, Any]:
        self._service.deregister_job_definition(str(body["jobDefinition"]))
        return {}

    # -- job queues -----------------------------------------------------------------------------

    def _create_job_queue(self, body: Body) -> dict[str, Any]:
        queue = self._service.create_job_queue(infra.new_queue(body))
        return {"jobQueueName": queue.name, "jobQueueArn": self._arns.job_queue(queue.name)}

    def _describe_job_queues(self, body: Body) -> dict[str, Any]:
        queues = self._service.job_queues([str(q) for q in body.get("jobQueues") or []])
        return _offset_page("jobQueues", queues, body, lambda q: infra.queue_detail(q, self._arns))

    def _update_job_queue(self, body: Body) -> dict[str, Any]:
        update = infra.queue_update(body)
        queue = self._service.update_job_queue(
            update.name,
            update.state,
            update.priority,
            update.compute_environments,
            update.scheduling_policy,
            job_state_time_limit_actions=update.job_state_time_limit_actions,
        )
        return {"jobQueueName": queue.name, "jobQueueArn": self._arns.job_queue(queue.name)}

    def _delete_job_queue(self, body: Body) -> dict[str, Any]:
        self._service.delete_job_queue(str(body["jobQueue"]))
        return {}

    # -- compute environments -------------------------------------------------------------------

    def _create_compute_environment(self, body: Body) -> dict[str, Any]:
        environment = self._service.create_compute_environment(infra.new_environment(body, self._host))
        return {
            "computeEnvironmentName": environment.name,
            "computeEnvironmentArn": self._arns.compute_environment(environment.name),
        }

    def _describe_compute_environments(self, body: Body) -> dict[str, Any]:
        environments = self._service.compute_environments([str(c) for c in body.get("computeEnvironments") or []])
        return _offset_page(
            "computeEnvironments", environments, body, lambda e: infra.environment_detail(e, self._arns)
        )

    def _update_compute_environment(self, body: Body) -> dict[str, Any]:
        update = infra.environment_update(body)
        environment = self._service.update_compute_environment(update.name, update.state, update.max_vcpus)
        return {
            "computeEnvironmentName": environment.name,
            "computeEnvironmentArn": self._arns.compute_environment(environment.name),
        }

    def _delete_compute_environment(self, body: Body) -> dict[str, Any]:
        self._service.delete_compute_environment(str(body["computeEnvironment"]))
        return {}

    # -- scheduling policies --------------------------------------------------------------------

    def _create_scheduling_policy(self, body: Body) -> dict[str, Any]:
        policy = self._service.create_scheduling_policy(infra.new_policy(body))
        return {"name": policy.name, "arn": self._arns.scheduling_policy(policy.name)}

    def _describe_scheduling_policies(self, body: Body) -> dict[str, Any]:
        refs = [str(a) for a in body["arns"]]
        if len(refs) > MAX_DESCRIBE_POLICIES:
            raise client_error(f"arns: at most {MAX_DESCRIBE_POLICIES} per call, got {len(refs)}")
        policies = self._service.scheduling_policies(refs)
        return {"schedulingPolicies": [infra.policy_detail(p, self._arns) for p in policies]}

    def _update_scheduling_policy(self, body: Body) -> dict[str, Any]:
        ref = str(body["arn"])
        self._service.update_scheduling_policy(ref, infra.fairshare_policy(ref, body))
        return {}

    def _delete_scheduling_policy(self, body: Body) -> dict[str, Any]:
        self._service.delete_scheduling_policy(str(body["arn"]))
        return {}

    def _list_scheduling_policies(self, body: Body) -> dict[str, Any]:
        policies = self._service.scheduling_policies()
        return _offset_page(
            "schedulingPolicies", policies, body, lambda p: {"arn": self._arns.scheduling_policy(p.name)}
        )

    # -- consumable resources -------------------------------------------------------------------

    def _create_consumable_resource(self, body: Body) -> dict[str, Any]:
        resource = self._service.consumables.create(consumables.new_resource(body))
        return {
            "consumableResourceName": resource.name,
            "consumableResourceArn": self._arns.consumable_resource(resource.name),
        }

    def _describe_consumable_resource(self, body: Body) -> dict[str, Any]:
        return consumables.detail(self._service.consumables.describe(str(body["consumableResource"])), self._arns)

    def _update_consumable_resource(self, body: Body) -> dict[str, Any]:
        operation, quantity = consumables.update(body)
        resource = self._service.consumables.update(str(body["consumableResource"]), operation, quantity)
        return {
            "consumableResourceName": resource.name,
            "consumableResourceArn": self._arns.consumable_resource(resource.name),
            "totalQuantity": resource.total_quantity,
        }

    def _delete_consumable_resource(self, body: Body) -> dict[str, Any]:
        self._service.consumables.delete(str(body["consumableResource"]))
        return {}

    def _list_consumable_resources(self, body: Body) -> dict[str, Any]:
        found = self._service.consumables.listed(consumables.name_filter(body))
        return _offset_page("consumableResources", found, body, lambda q: consumables.summary(q, self._arns))

    def _list_jobs_by_consumable_resource(self, body: Body) -> dict[str, Any]:
        statuses, name = consumables.job_filters(body)
        given = body.get("maxResults")
        limit = int(given) if given is not None else 100
        if not 1 <= limit <= 1000:
            raise client_error(f"maxResults: must be between 1 and 1000, got {limit}")
        resource, jobs, next_after = self._service.consumables.jobs(
            str(body["consumableResource"]),
            statuses=statuses,
            name_filter=name,
            after=requests.decode_token(body.get("nextToken")),
            limit=limit,
        )
        response: dict[str, Any] = {"jobs": [consumables.job_entry(j, resource.name, self._arns) for j in jobs]}
        if next_after is not None:
            response["nextToken"] = requests.encode_token(*next_after)
        return response


def _offset_page(key: str, items: Sequence[T], body: Body, render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """The response holding a page of a short list (definitions, queues, environments) under
    ``key``: maxResults 1..100 and an offset token; nextToken only when more remain, as boto3's
    paginators expect."""
    given = body.get("maxResults")
    limit = int(given) if given is not None else 100
    if not 1 <= limit <= 100:
        raise client_error(f"maxResults: must be between 1 and 100, got {limit}")
    token = body.get("nextToken")
    start = 0
    if token is not None:
        if not is_digits(str(token)):
            raise client_error("nextToken: not a token this API gave out")
        start = int(str(token))
    end = start + limit
    response: dict[str, Any] = {key: [render(item) for item in items[start:end]]}
    if end < len(items):
        response["nextToken"] = str(end)
    return response


_TAG_WRITES = frozenset({"TagResource", "UntagResource"})


def _names_a_job(body: Body) -> bool:
    """Whether a tag request's ``resourceArn`` is a job's (its owner's business, not everyone's)."""
    return ":job/" in str(body.get("resourceArn", ""))
