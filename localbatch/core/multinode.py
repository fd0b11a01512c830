"""Multi-node parallel (MNP) jobs (aws-batch-reference.md §5.3): the pure rules.

A definition of type ``multinode`` says how many nodes a job has (``num_nodes``), which one
is the main node, and each node's container through ranges of node indexes
(``target_nodes``: "a:b", ":b" from 0, "a:" to the last node, or one index "a"). Ranges
together cover every node; a range nested in a wider one overrides it for its nodes (two
ranges that overlap without one holding the other are refused: which would win is not
documented).

A submitted MNP job is a parent that never runs itself, plus one node job per node,
``<job id>#<index>``. The scheduler sees the parent only, asking for the sum of its nodes'
resources, so every node is placed at once or none is (gang placement on this one host). The
main node starts first, the others once it runs. The job follows its main node: status,
times, attempts, exit. When the main node's attempt ends, the nodes still running are
stopped; a non-main node ending changes nothing for the others. Retries are the main node's:
each new attempt runs every node again.

This module decides; the control loop (``daemon.loop``) acts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from localbatch.core import lifecycle
from localbatch.core.definition import JobDefinition, NodeProperties, NodeRangeProperty
from localbatch.core.jobs import Attempt, EpochMs, Job, JobEvent, JobStatus, transition, with_attempt
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.outcome import AttemptOutcome
from localbatch.core.resources import Resources
from localbatch.core.retry import RetryStrategy
from localbatch.core.scheduler import WaitReason
from localbatch.core.spec import ContainerSpec
from localbatch.errors import Problem

MAX_NODES = 1000  # AWS's default quota of nodes per MNP job
MAX_RANGES = 5  # AWS: at most 5 node groups
MAIN_NODE_EXITED = "Main node exited; the node was stopped"
MAIN_NODE_EXITED_FIRST = "Main node exited before this node started"
RERUN = "The main node is retrying: every node runs again"
_TARGET = re.compile(r"(?P<low>[0-9]*)(?P<colon>:?)(?P<high>[0-9]*)")

NodeRange = tuple[int, int]  # first and last node index, inclusive


# -- ranges --------------------------------------------------------------------------------
def parse_target(text: str, num_nodes: int) -> NodeRange | str:
    """The nodes ``target_nodes`` names, or what is wrong with it."""
    found = _TARGET.fullmatch(text.strip())
    usage = 'use "a:b", ":b", "a:" or one index "a" (node indexes from 0)'
    if text.strip() == "" or found is None or (found["low"] == "" and found["high"] == ""):
        return f"{text!r} is not a node range; {usage}"
    last = num_nodes - 1
    if not found["colon"]:
        low = high = int(found["low"])
    else:
        low = int(found["low"]) if found["low"] else 0
        high = int(found["high"]) if found["high"] else last
    if low > high:
        return f"{text!r}: the range's start {low} is after its end {high}"
    if high > last:
        return f"{text!r}: node {high} does not exist; num_nodes is {num_nodes}, so nodes are 0 to {last}"
    return low, high


def is_open_ended(text: str) -> bool:
    """A range that runs to the last node ("a:"), whatever the node count."""
    return text.strip().endswith(":") and text.strip() != ":"


def range_problems(num_nodes: int, main_node: int, targets: Sequence[str], path: str) -> list[Problem]:
    """Every problem with a definition's node count, main node and ranges. ``path`` is the
    ranges' key (``node_properties.node_range_properties``); problems name their entries."""
    problems: list[Problem] = []
    base = path.rpartition(".")[0]
    if not 1 <= num_nodes <= MAX_NODES:
        return [Problem(f"{base}.num_nodes", f"must be between 1 and {MAX_NODES}, got {num_nodes}")]
    if not 0 <= main_node < num_nodes:
        last = num_nodes - 1
        problems.append(Problem(f"{base}.main_node", f"must be a node index, 0 to {last}, got {main_node}"))
    if not targets:
        return [*problems, Problem(path, "at least one node range is required")]
    if len(targets) > MAX_RANGES:
        problems.append(Problem(path, f"at most {MAX_RANGES} node ranges (AWS's node groups), got {len(targets)}"))
    parsed: list[tuple[int, NodeRange]] = []
    for index, text in enumerate(targets):
        got = parse_target(text, num_nodes)
        if isinstance(got, str):
            problems.append(Problem(f"{path}[{index}].target_nodes", got))
        else:
            parsed.append((index, got))
    for n, (i, (a, b)) in enumerate(parsed):
        for j, (c, d) in parsed[:n]:
            if (a, b) == (c, d):
                problems.append(Problem(f"{path}[{i}].target_nodes", f"names the same nodes as {path}[{j}]"))
            elif a <= d and c <= b and not (c <= a and b <= d) and not (a <= c and d <= b):
                problems.append(
                    Problem(
                        f"{path}[{i}].target_nodes",
                        f"nodes {a}-{b} overlap {path}[{j}] (nodes {c}-{d}) without one holding the other; "
                        "a range may only override a wider range it lies within",
                    )
                )
    if len(parsed) == len(targets):
        covered = {node for _, (a, b) in parsed for node in range(a, b + 1)}
        missing = [node for node in range(num_nodes) if node not in covered]
        if missing:
            problems.append(Problem(path, f"the ranges must cover every node, 0 to {num_nodes - 1}; {_nodes(missing)}"))
    return problems


def _nodes(indexes: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in indexes[:10]) + (", ..." if len(indexes) > 10 else "")
    return f"no range names node{'s' if len(indexes) > 1 else ''} {shown}"


def _narrowest_first(ranges: Sequence[tuple[NodeRange, int]]) -> list[tuple[NodeRange, int]]:
    return sorted(ranges, key=lambda item: (item[0][1] - item[0][0], -item[1]))


def node_containers(props: NodeProperties) -> tuple[ContainerSpec, ...]:
    """Each node's container: that of the narrowest range naming it. ``props`` is valid."""
    ranges = []
    for index, entry in enumerate(props.node_range_properties):
        got = parse_target(entry.target_nodes, props.num_nodes)
        assert not isinstance(got, str), got
        ranges.append((got, index))
    containers = []
    for node in range(props.num_nodes):
        covering = [(r, i) for r, i in ranges if r[0] <= node <= r[1]]
        _, index = _narrowest_first(covering)[0]
        containers.append(props.node_range_properties[index].container)
    return tuple(containers)


def as_ranges(containers: Sequence[ContainerSpec]) -> tuple[NodeRangeProperty, ...]:
    """Node containers written back as ranges: runs of equal containers, "a:b" each (what a
    job's DescribeJobs shows in ``nodeProperties.nodeRangeProperties``)."""
    found: list[NodeRangeProperty] = []
    start = 0
    for node in range(1, len(containers) + 1):
        if node == len(containers) or containers[node] != containers[start]:
            found.append(NodeRangeProperty(f"{start}:{node - 1}", containers[start]))
            start = node
    return tuple(found)


# -- SubmitJob's nodeOverrides -------------------------------------------------------------
@dataclass(frozen=True)
class NodePropertyOverride:
    """One ``nodePropertyOverrides`` entry: container overrides for the nodes it names. Only
    the container parts of ``overrides`` (command, environment, resources) are used."""

    target_nodes: str
    overrides: JobOverrides = field(default_factory=JobOverrides)


@dataclass(frozen=True)
class NodeOverrides:
    num_nodes: int | None = None
    node_property_overrides: tuple[NodePropertyOverride, ...] = ()


def resolve(
    props: NodeProperties, overrides: NodeOverrides | None, parameters: dict[str, str] | None = None
) -> tuple[tuple[ContainerSpec, ...], list[Problem]]:
    """Each node's container for a submission: the definition's ranges, the node count
    override (AWS's rule: it needs an open-ended range, and that range's start and the main
    node must be below the new count), then the container overrides, the narrowest range's
    last. Problems name SubmitJob's fields."""
    overrides = overrides or NodeOverrides()
    problems: list[Problem] = []
    count = props.num_nodes
    if overrides.num_nodes is not None and overrides.num_nodes != props.num_nodes:
        count = overrides.num_nodes
        problems += _count_problems(props, count)
        if problems:
            return (), problems
        props = _with_count(props, count)
    containers = list(node_containers(props))
    entries: list[tuple[NodeRange, int]] = []
    for index, entry in enumerate(overrides.node_property_overrides):
        path = f"nodeOverrides.nodePropertyOverrides[{index}]"
        got = parse_target(entry.target_nodes, count)
        if isinstance(got, str):
            problems.append(Problem(f"{path}.targetNodes", got))
            continue
        problems += [
            Problem(f"{path}.containerOverrides.{p.path}", p.message)
            for p in lifecycle.check_overrides(entry.overrides)
        ]
        entries.append((got, index))
    if problems:
        return (), problems
    for (low, high), index in reversed(_narrowest_first(entries)):  # widest first: narrower wins
        for node in range(low, high + 1):
            containers[node] = lifecycle.apply_container_overrides(
                containers[node], overrides.node_property_overrides[index].overrides
            )
    if parameters is not None:
        containers = [lifecycle.substitute(c, parameters) for c in containers]
    return tuple(containers), []


def _count_problems(props: NodeProperties, count: int) -> list[Problem]:
    path = "nodeOverrides.numNodes"
    if not 1 <= count <= MAX_NODES:
        return [Problem(path, f"must be between 1 and {MAX_NODES}, got {count}")]
    problems = []
    if not any(is_open_ended(r.target_nodes) for r in props.node_range_properties):
        problems.append(
            Problem(path, 'the job definition has no open-ended node range ("a:"), so its node count is fixed')
        )
    if props.main_node >= count:
        problems.append(Problem(path, f"the main node is node {props.main_node}; {count} nodes would leave it out"))
    for entry in props.node_range_properties:
        got = parse_target(entry.target_nodes, props.num_nodes)
        assert not isinstance(got, str)
        if got[0] >= count:
            problems.append(
                Problem(
                    path, f"node range {entry.target_nodes!r} starts at node {got[0]}; {count} nodes leave it empty"
                )
            )
        elif not is_open_ended(entry.target_nodes) and got[1] >= count:
            problems.append(
                Problem(path, f"node range {entry.target_nodes!r} ends at node {got[1]}; {count} nodes end before it")
            )
    return problems


def _with_count(props: NodeProperties, count: int) -> NodeProperties:
    return replace(props, num_nodes=count)


# -- the job and its nodes -----------------------------------------------------------------
def node_id(job_id: str, index: int) -> str:
    return f"{job_id}#{index}"


def total(containers: Sequence[ContainerSpec]) -> Resources:
    """What the nodes ask for together: what the scheduler must find at once."""
    return Resources(
        vcpus=sum(c.resources.vcpus for c in containers),
        memory_mib=sum(c.resources.memory_mib for c in containers),
        gpus=sum(c.resources.gpus for c in containers),
    )


def request(parent: Job) -> Resources:
    """What an MNP parent asks the scheduler for: its nodes' resources together."""
    assert parent.num_nodes is not None
    containers: list[ContainerSpec] = []
    for entry in parent.node_ranges:
        got = parse_target(entry.target_nodes, parent.num_nodes)
        assert not isinstance(got, str), got
        containers += [entry.container] * (got[1] - got[0] + 1)
    return total(containers)


def parent_job(job: Job, definition: JobDefinition, containers: Sequence[ContainerSpec]) -> Job:
    """The submitted job as an MNP parent: its ``container`` is the main node's."""
    props = definition.node_properties
    assert props is not None
    return replace(
        job,
        container=containers[props.main_node],
        num_nodes=len(containers),
        main_node=props.main_node,
        node_ranges=as_ranges(containers),
    )


def nodes(parent: Job, containers: Sequence[ContainerSpec]) -> list[tuple[Job, JobEvent]]:
    """The parent's SUBMITTED node jobs ``<id>#0 ..``. Only the main node keeps the retry
    strategy and the timeout: the job's attempts are its, and its end ends the others. Every
    node waits for the job's dependencies, so that the nodes and the job become RUNNABLE (or
    fail with a dependency) together."""
    main = parent.main_node
    made = []
    base = replace(parent, attempts=(), stop_request=None, node_ranges=())
    for index, container in enumerate(containers):
        job_id = node_id(parent.job_id, index)
        node = replace(base, job_id=job_id, node_index=index, container=container)
        if index != main:
            node = replace(node, retry_strategy=RetryStrategy(), timeout_s=None)
        made.append((node, JobEvent(job_id, parent.created_at, None, JobStatus.SUBMITTED)))
    return made


def split_gpus(containers: Sequence[ContainerSpec], gpu_ids: Sequence[str]) -> list[tuple[str, ...]]:
    """The devices placed for the whole job, handed to the nodes in order."""
    given, at = [], 0
    for container in containers:
        given.append(tuple(gpu_ids[at : at + container.resources.gpus]))
        at += container.resources.gpus
    return given


def gang_reason(reason: WaitReason, num_nodes: int) -> WaitReason:
    """A waiting MNP job's reason, saying its numbers are every node's together."""
    return WaitReason(reason.code, f"all {num_nodes} nodes must start together: {reason.message}")


def mirror(parent: Job, main: Job, now: EpochMs) -> tuple[Job, JobEvent | None]:
    """The parent as its main node now is (status, reason, times, attempts), with the event
    when its status changed."""
    moved = replace(
        parent,
        status=main.status,
        status_reason=main.status_reason,
        started_at=main.started_at,
        stopped_at=main.stopped_at,
        attempts=main.attempts,
        compute_environment=main.compute_environment,
        runnable_at=main.runnable_at,
        is_cancelled=parent.is_cancelled or main.is_cancelled,
        is_terminated=parent.is_terminated or main.is_terminated,
    )
    if moved.status is parent.status:
        return moved, None
    return moved, JobEvent(parent.job_id, now, parent.status, moved.status, main.status_reason)


def in_flight(job: Job) -> bool:
    return job.status in (JobStatus.STARTING, JobStatus.RUNNING)


def finish_node(node: Job, ending: AttemptOutcome, main: Job, now: EpochMs) -> tuple[Job, JobEvent]:
    """A non-main node's attempt ended (its container exited, was stopped, or never ran).

    While the main node's attempt runs, the node ends by its own exit (no retry of its own).
    Once the main node's attempt has ended, the node was stopped for it: it runs again when
    the main node retries (RUNNABLE), else it ends as the job did. A node that never started
    ends FAILED."""
    if in_flight(main) and main.current_attempt is not None and not main.current_attempt.finished:
        single = replace(node, retry_strategy=RetryStrategy())
        moved, event, _ = lifecycle.finish_attempt(single, ending, now)
        return replace(moved, retry_strategy=node.retry_strategy), event
    attempt = node.current_attempt
    started = attempt is not None and attempt.started_at is not None and not attempt.finished
    if main.status is JobStatus.RUNNABLE:  # retrying: every node runs again
        if not started:
            return lifecycle.requeue(node, now, RERUN)
        closed = _closed(node, ending, now, MAIN_NODE_EXITED)
        return transition(closed, JobStatus.RUNNABLE, now, RERUN)
    if not started:
        closed = _closed(node, ending, now, MAIN_NODE_EXITED_FIRST)
        return transition(closed, JobStatus.FAILED, now, MAIN_NODE_EXITED_FIRST)
    closed = _closed(node, ending, now, MAIN_NODE_EXITED)
    return transition(closed, main.status, now, MAIN_NODE_EXITED)


def _closed(node: Job, ending: AttemptOutcome, now: EpochMs, reason: str) -> Job:
    attempt = node.current_attempt
    if attempt is None or attempt.finished:
        return node
    ended: Attempt = replace(attempt, stopped_at=now, exit_code=ending.exit_code, reason=ending.reason)
    return replace(with_attempt(node, replace(ended, status_reason=reason)), gpu_ids=())


def rerun(node: Job, now: EpochMs) -> tuple[Job, JobEvent]:
    """A node that ended before its main node, back to RUNNABLE because the main node retries
    (AWS: every attempt runs all nodes). The one move out of a final status in localbatch."""
    moved = replace(
        node,
        status=JobStatus.RUNNABLE,
        status_reason=RERUN,
        stopped_at=None,
        runnable_at=now,
        gpu_ids=(),
        compute_environment=None,
    )
    return moved, JobEvent(node.job_id, now, node.status, JobStatus.RUNNABLE, RERUN)
