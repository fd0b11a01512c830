"""Deploy an export plan to AWS Batch: create what is missing, update what differs, leave the rest.

``deploy`` walks a ``CloudPlan`` in its order (scheduling policies, compute environments, job
queues, job definitions). Each object is looked up by name first (List/Describe calls); it is
created when missing, updated with only what may change in place when it differs, and left
alone when it does not. A job definition gets a new revision only when its meaning changed:
the latest ACTIVE revision and the plan's request are compared as job definitions
(``from_register_request``), so the defaults AWS adds in its answers do not count as changes.
Compute environments and job queues are waited for until VALID (bounded; ``Waiting``).

References between objects become the ARNs AWS answered or described. Any ``CloudError``
stops the deploy at that object, named in the error; nothing after it is attempted. With
``dry_run`` only List/Describe calls are made and each outcome says what would happen.

The pure parts (``policy_update``, ``environment_update``, ``queue_update``,
``definition_changed``, ``definition_diff``) take a plain request and what AWS described.
"""

from __future__ import annotations

import difflib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from localbatch.awsbatch import requests
from localbatch.awsbatch.aws_client import call
from localbatch.awsbatch.export import CloudPlan, Kind, Ref
from localbatch.awsbatch.jobdefinition import (
    as_register_request,
    document_from_request,
    from_register_request,
    request_from_document,
)
from localbatch.errors import CloudError, JobDefinitionError

__all__ = [
    "Outcome",
    "Update",
    "Waiting",
    "definition_changed",
    "definition_diff",
    "deploy",
    "environment_update",
    "latest_definition",
    "policy_update",
    "queue_update",
]

_MAX_PAGES = 1000  # every listing loop is bounded


@dataclass(frozen=True)
class Outcome:
    """What happened to one object (or would, with ``dry_run``)."""

    kind: Kind
    name: str
    action: str  # created | updated | unchanged | registered | would create | would update | would register
    arn: str | None = None
    revision: int | None = None
    changes: tuple[str, ...] = ()  # the members updated (or that would be)
    notes: tuple[str, ...] = ()  # differences AWS cannot update in place

    def line(self) -> str:
        what = f"{self.kind.replace('_', ' ')} {self.name}"
        if self.action == "registered":
            verdict = f"registered revision {self.revision}"
        elif self.action == "would register":
            verdict = "would register a new revision" if self.revision else "would register revision 1"
        elif self.action == "unchanged" and self.revision is not None:
            verdict = f"unchanged (revision {self.revision})"
        else:
            verdict = self.action
        if self.changes:
            verdict += f" ({', '.join(self.changes)})"
        return f"{what}: {verdict}"

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"kind": self.kind, "name": self.name, "action": self.action, "arn": self.arn}
        if self.revision is not None:
            found["revision"] = self.revision
        if self.changes:
            found["changes"] = list(self.changes)
        if self.notes:
            found["notes"] = list(self.notes)
        return found


@dataclass(frozen=True)
class Waiting:
    """How long to wait for a compute environment or queue to become VALID: ``tries``
    Describe calls, ``interval_s`` apart (``sleep`` is injectable: tests make it free)."""

    tries: int = 120
    interval_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)


@dataclass(frozen=True)
class Update:
    """What differs between the plan and AWS: the members (``changes``), the Update* request
    that makes them the same (None when nothing there differs), the tags to set (tags AWS has
    and the plan does not are left alone) and what cannot be updated."""

    changes: tuple[str, ...] = ()
    body: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    tags: dict[str, str] | None = None  # for TagResource: the plan's tags AWS lacks or has otherwise

    @property
    def needed(self) -> bool:
        return self.body is not None or self.tags is not None


# -- the deploy ----------------------------------------------------------------------------
def deploy(
    client: Any,
    plan: CloudPlan,
    *,
    dry_run: bool = False,
    waiting: Waiting = Waiting(),
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Make AWS Batch hold the plan's objects; ``report`` hears of each as it is done.
    ``ExportError`` (before any call) when a cloud-only value is missing; ``CloudError``,
    naming the object, stops at the first refusal."""
    plan.check_complete()
    arns: dict[Ref, str] = {}
    outcomes: list[Outcome] = []
    for obj in plan.objects:
        # An object created earlier is named by the ARN AWS answered; in a dry run, one that
        # would be created by a placeholder.
        body = plan.plain_request(obj, lambda ref: arns.get(ref, f"(new {ref.kind.replace('_', ' ')} {ref.name})"))
        try:
            outcome = _STEPS[obj.kind](client, obj.name, body, dry_run, waiting)
        except CloudError as exc:
            what = f"{obj.kind.replace('_', ' ')} {obj.name}"
            raise CloudError(exc.code, f"{what}: {exc.message}", exc.operation) from None
        if outcome.arn is not None:
            arns[Ref(obj.kind, obj.name)] = outcome.arn
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def _policy_step(client: Any, name: str, body: dict[str, Any], dry_run: bool, waiting: Waiting) -> Outcome:
    found = _find_policy(client, name)
    if found is None:
        if dry_run:
            return Outcome("scheduling_policy", name, "would create")
        answer = call(client, "CreateSchedulingPolicy", body)
        return Outcome("scheduling_policy", name, "created", answer.get("arn"))
    update = policy_update(body, found)
    return _apply(client, "scheduling_policy", name, found["arn"], update, "UpdateSchedulingPolicy", dry_run)


@dataclass(frozen=True)
class _Infra:
    """How one kind of object with a state is found, created, updated and waited for."""

    kind: Kind
    describe: str  # DescribeComputeEnvironments
    member: str  # computeEnvironments
    create: str
    update: str
    arn_key: str
    changes: Callable[[Mapping[str, Any], Mapping[str, Any]], Update]
    waits_for_state: bool  # a queue also reaches its planned state

    def step(self, client: Any, name: str, body: dict[str, Any], dry_run: bool, waiting: Waiting) -> Outcome:
        found = _describe_one(client, self.describe, self.member, name)
        state = body.get("state") if self.waits_for_state else None
        if found is None:
            if dry_run:
                return Outcome(self.kind, name, "would create")
            arn = call(client, self.create, body).get(self.arn_key)
            _wait(client, self.describe, self.member, name, state, waiting)
            return Outcome(self.kind, name, "created", arn)
        update = self.changes(body, found)
        outcome = _apply(client, self.kind, name, found[self.arn_key], update, self.update, dry_run)
        if not dry_run:
            known = found if outcome.action == "unchanged" else None  # after an update: describe again
            _wait(client, self.describe, self.member, name, state, waiting, known)
        return outcome


_ENVIRONMENTS = _Infra(
    "compute_environment",
    "DescribeComputeEnvironments",
    "computeEnvironments",
    "CreateComputeEnvironment",
    "UpdateComputeEnvironment",
    "computeEnvironmentArn",
    lambda body, found: environment_update(body, found),
    waits_for_state=False,
)
_QUEUES = _Infra(
    "job_queue",
    "DescribeJobQueues",
    "jobQueues",
    "CreateJobQueue",
    "UpdateJobQueue",
    "jobQueueArn",
    lambda body, found: queue_update(body, found),
    waits_for_state=True,
)


def _definition_step(client: Any, name: str, body: dict[str, Any], dry_run: bool, waiting: Waiting) -> Outcome:
    latest = latest_definition(client, name)
    if latest is not None and not definition_changed(body, latest):
        return Outcome("job_definition", name, "unchanged", latest.get("jobDefinitionArn"), latest.get("revision"))
    if dry_run:
        return Outcome("job_definition", name, "would register", None, latest.get("revision") if latest else None)
    answer = call(client, "RegisterJobDefinition", body)
    return Outcome("job_definition", name, "registered", answer.get("jobDefinitionArn"), answer.get("revision"))


_STEPS: Mapping[Kind, Callable[[Any, str, dict[str, Any], bool, Waiting], Outcome]] = {
    "scheduling_policy": _policy_step,
    "compute_environment": _ENVIRONMENTS.step,
    "job_queue": _QUEUES.step,
    "job_definition": _definition_step,
}


def _apply(client: Any, kind: Kind, name: str, arn: str, update: Update, operation: str, dry_run: bool) -> Outcome:
    if not update.needed:
        return Outcome(kind, name, "unchanged", arn, notes=update.notes)
    if dry_run:
        return Outcome(kind, name, "would update", arn, changes=update.changes, notes=update.notes)
    if update.body is not None:
        call(client, operation, update.body)
    if update.tags is not None:
        call(client, "TagResource", {"resourceArn": arn, "tags": update.tags})
    return Outcome(kind, name, "updated", arn, changes=update.changes, notes=update.notes)


# -- finding what exists -------------------------------------------------------------------
def _pages(client: Any, operation: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    token: str | None = None
    for _ in range(_MAX_PAGES):
        answer = call(client, operation, {**body, **({"nextToken": token} if token else {})})
        yield answer
        token = answer.get("nextToken")
        if not token:
            return


def _find_policy(client: Any, name: str) -> dict[str, Any] | None:
    arns = [
        entry["arn"]
        for page in _pages(client, "ListSchedulingPolicies", {})
        for entry in page.get("schedulingPolicies", [])
        if entry.get("arn", "").endswith(f"scheduling-policy/{name}")
    ]
    if not arns:
        return None
    described = call(client, "DescribeSchedulingPolicies", {"arns": arns}).get("schedulingPolicies", [])
    return next((_entry(p) for p in described if p.get("name") == name), None)


def _describe_one(client: Any, operation: str, member: str, name: str) -> dict[str, Any] | None:
    name_key = {"computeEnvironments": "computeEnvironmentName", "jobQueues": "jobQueueName"}[member]
    for page in _pages(client, operation, {member: [name]}):
        for entry in page.get(member, []):
            if entry.get(name_key) == name:
                return _entry(entry)
    return None


def latest_definition(client: Any, name: str) -> dict[str, Any] | None:
    """The latest ACTIVE revision of the job definition ``name`` (a DescribeJobDefinitions
    entry without empty members), or None."""
    latest = requests.latest_definition(lambda operation, body: call(client, operation, body), name)
    return None if latest is None else _entry(latest)


def _wait(
    client: Any,
    operation: str,
    member: str,
    name: str,
    state: str | None,
    waiting: Waiting,
    found: dict[str, Any] | None = None,
) -> None:
    """Until the object's status is VALID (and its state ``state``): a CloudError when it is
    INVALID (with AWS's statusReason) or when ``waiting.tries`` run out. ``found``: a
    description taken since the last change, checked before describing again."""
    what = {"computeEnvironments": "compute environment", "jobQueues": "job queue"}[member]
    for attempt in range(waiting.tries):
        if found is None or attempt > 0:
            found = _describe_one(client, operation, member, name)
        if found is None:
            raise CloudError("NotFound", f"{what} {name} disappeared while deploying", operation)
        status = found.get("status")
        if status == "INVALID":
            raise CloudError("INVALID", f"status INVALID: {found.get('statusReason', 'no reason given')}", operation)
        if status == "VALID" and (state is None or found.get("state") == state):
            return
        if attempt + 1 < waiting.tries:
            waiting.sleep(waiting.interval_s)
    last = f"status {found.get('status')}, state {found.get('state')}" if found else "not found"
    raise CloudError(
        "Timeout",
        f"not VALID{' and ' + state if state else ''} after {waiting.tries} checks ({last}); "
        "deploy again once AWS has settled it",
        operation,
    )


# -- what differs (pure) -------------------------------------------------------------------
def policy_update(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> Update:
    """UpdateSchedulingPolicy when the fair-share policy differs (share order does not count)."""
    tags = _tags(wanted, found)
    extra = ("tags",) if tags else ()
    if _fairshare(wanted.get("fairsharePolicy", {})) == _fairshare(found.get("fairsharePolicy", {})):
        return Update(extra, tags=tags)
    body = {"arn": found["arn"], "fairsharePolicy": wanted["fairsharePolicy"]}
    return Update(("fairsharePolicy", *extra), body, tags=tags)


def _tags(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> dict[str, str] | None:
    """The plan's tags that AWS lacks or has with another value; None when there are none."""
    have = found.get("tags") or {}
    missing = {k: v for k, v in (wanted.get("tags") or {}).items() if have.get(k) != v}
    return missing or None


def _fairshare(policy: Mapping[str, Any]) -> tuple[Any, ...]:
    shares = sorted(
        (s["shareIdentifier"], float(s.get("weightFactor", 1.0))) for s in policy.get("shareDistribution", [])
    )
    return int(policy.get("shareDecaySeconds", 0)), int(policy.get("computeReservation", 0)), tuple(shares)


# computeResources members UpdateComputeEnvironment takes (AWS's ComputeResourceUpdate).
_RESOURCES_UPDATABLE = frozenset(
    {
        "minvCpus",
        "maxvCpus",
        "desiredvCpus",
        "subnets",
        "securityGroupIds",
        "allocationStrategy",
        "instanceTypes",
        "instanceRole",
        "bidPercentage",
        "type",
        "ec2KeyPair",
        "imageId",
        "launchTemplate",
        "ec2Configuration",
        "placementGroup",
        "tags",
    }
)
_UNORDERED = frozenset({"subnets", "securityGroupIds", "instanceTypes"})
_ROLES = frozenset({"instanceRole", "serviceRole", "spotIamFleetRole"})


def environment_update(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> Update:
    """UpdateComputeEnvironment with what differs and may change: state, serviceRole and the
    computeResources members AWS updates in place. Only members the plan sets are compared
    (AWS describes more); lists of subnets, groups and types in any order are the same; a
    role by name is the same as its ARN. What differs and cannot be updated is a note."""
    changes: list[str] = []
    notes: list[str] = []
    body: dict[str, Any] = {"computeEnvironment": found.get("computeEnvironmentArn", wanted["computeEnvironmentName"])}
    if "state" in wanted and wanted["state"] != found.get("state"):
        changes.append("state")
        body["state"] = wanted["state"]
    if "serviceRole" in wanted and not _same("serviceRole", wanted["serviceRole"], found.get("serviceRole")):
        changes.append("serviceRole")
        body["serviceRole"] = wanted["serviceRole"]
    if wanted.get("type") and found.get("type") and wanted["type"] != found["type"]:
        notes.append(f"type is {found['type']} on AWS, {wanted['type']} here; AWS cannot change it in place")
    resources: dict[str, Any] = {}
    have = found.get("computeResources", {})
    for key, value in wanted.get("computeResources", {}).items():
        if _same(key, value, have.get(key)):
            continue
        if key in _RESOURCES_UPDATABLE:
            resources[key] = value
            changes.append(f"computeResources.{key}")
        else:
            notes.append(f"computeResources.{key} differs from AWS's, which cannot change it in place")
    if resources:
        body["computeResources"] = resources
    tags = _tags(wanted, found)
    body_changed = bool(changes)
    if tags:
        changes.append("tags")
    return Update(tuple(changes), body if body_changed else None, tuple(notes), tags)


def queue_update(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> Update:
    """UpdateJobQueue with what differs: priority, state, computeEnvironmentOrder,
    schedulingPolicyArn, jobStateTimeLimitActions."""
    changes: list[str] = []
    notes: list[str] = []
    body: dict[str, Any] = {"jobQueue": found.get("jobQueueArn", wanted["jobQueueName"])}
    for key in ("priority", "state"):
        if key in wanted and str(wanted[key]) != str(found.get(key)):
            changes.append(key)
            body[key] = wanted[key]
    if _order(wanted.get("computeEnvironmentOrder", [])) != _order(found.get("computeEnvironmentOrder", [])):
        changes.append("computeEnvironmentOrder")
        body["computeEnvironmentOrder"] = wanted["computeEnvironmentOrder"]
    policy = wanted.get("schedulingPolicyArn")
    if policy is not None and policy != found.get("schedulingPolicyArn"):
        changes.append("schedulingPolicyArn")
        body["schedulingPolicyArn"] = policy
    elif policy is None and found.get("schedulingPolicyArn"):
        notes.append("the queue has a scheduling policy on AWS and none here; AWS cannot remove it in place")
    actions = [_action(a) for a in wanted.get("jobStateTimeLimitActions", [])]
    if sorted(actions) != sorted(_action(a) for a in found.get("jobStateTimeLimitActions", [])):
        changes.append("jobStateTimeLimitActions")
        body["jobStateTimeLimitActions"] = list(wanted.get("jobStateTimeLimitActions", []))
    tags = _tags(wanted, found)
    body_changed = bool(changes)
    if tags:
        changes.append("tags")
    return Update(tuple(changes), body if body_changed else None, tuple(notes), tags)


def _order(order: Any) -> list[tuple[int, str]]:
    return sorted((int(e["order"]), _short(e["computeEnvironment"])) for e in order)


def _action(action: Mapping[str, Any]) -> tuple[str, str, int, str]:
    return (action["reason"], action["state"], int(action["maxTimeSeconds"]), action["action"])


def _short(name_or_arn: str) -> str:
    """An ARN's last part (``...:compute-environment/cpu`` -> ``cpu``); a name as it is."""
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def _same(key: str, wanted: Any, found: Any) -> bool:
    if found is None:
        return False
    if key in _UNORDERED and isinstance(wanted, list) and isinstance(found, list):
        return sorted(wanted) == sorted(found)
    if key in _ROLES and isinstance(wanted, str) and isinstance(found, str):
        return wanted == found or _short(wanted) == _short(found)
    return bool(wanted == found)


# -- job definitions -----------------------------------------------------------------------
def definition_changed(wanted: Mapping[str, Any], latest: Mapping[str, Any]) -> bool:
    """Whether the RegisterJobDefinition request ``wanted`` means something else than the
    DescribeJobDefinitions entry ``latest`` (compared as job definitions, tags included).
    An entry localbatch cannot read (EKS, secrets) counts as changed."""
    try:
        have = from_register_request(_normalized(latest), "AWS")
        want = from_register_request(wanted, "plan")
    except JobDefinitionError:
        return True
    return have != want


def definition_diff(wanted: Mapping[str, Any], latest: Mapping[str, Any], source: str) -> list[str]:
    """A unified diff (lines) from the latest revision on AWS to the plan's request, both
    written the same way (``request_from_document(document_from_request(...))``) so AWS's
    added defaults do not show. Empty when they mean the same."""
    if not definition_changed(wanted, latest):
        return []
    name = f"{latest.get('jobDefinitionName')}:{latest.get('revision')}"
    return list(
        difflib.unified_diff(
            _text(_rewritten(_normalized(latest))),
            _text(_rewritten(dict(wanted))),
            f"aws {name}",
            source,
            lineterm="",
        )
    )


def _rewritten(request: dict[str, Any]) -> dict[str, Any]:
    try:
        return request_from_document(document_from_request(request, "diff"))
    except JobDefinitionError:
        return request  # what localbatch cannot read, shown as AWS has it


def _text(request: Mapping[str, Any]) -> list[str]:
    return json.dumps(request, indent=2, sort_keys=True).splitlines()


def _normalized(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A DescribeJobDefinitions entry as the request it stands for: Describe-only members
    out, empty members out (AWS and moto add ``command: []`` and the like), retry actions
    upper-case (moto answers them lower-case)."""
    request = _entry(as_register_request(entry))
    retry = request.get("retryStrategy", {})
    for rule in retry.get("evaluateOnExit", []):
        if isinstance(rule.get("action"), str):
            rule["action"] = rule["action"].upper()
    return request


def _entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = _plain(entry)
    return plain


def _plain(value: Any) -> Any:
    """``value`` without None, empty lists and empty objects (what an answer may hold for
    "not set")."""
    if isinstance(value, Mapping):
        kept = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
