"""core.multinode: node ranges, SubmitJob's node overrides, and the rules that make a job
follow its main node. Plain data, no loop."""

from __future__ import annotations

from dataclasses import replace

import pytest

from localbatch.core import multinode
from localbatch.core.definition import NodeProperties, NodeRangeProperty
from localbatch.core.jobs import Attempt, Job, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.multinode import NodeOverrides, NodePropertyOverride
from localbatch.core.outcome import exited, terminated
from localbatch.core.resources import Resources
from localbatch.core.scheduler import CAPACITY, WaitReason
from localbatch.core.spec import ContainerSpec

S = JobStatus
WIDE = ContainerSpec("busybox:1.36", ("wide",), resources=Resources(1, 256))
NARROW = ContainerSpec("busybox:1.36", ("narrow",), resources=Resources(2, 512, 1))


def props(num_nodes: int, main_node: int, *targets: str) -> NodeProperties:
    containers = [WIDE, NARROW, ContainerSpec("busybox:1.36", ("third",))]
    ranges = tuple(NodeRangeProperty(t, containers[i]) for i, t in enumerate(targets))
    return NodeProperties(num_nodes, main_node, ranges)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0:3", (0, 3)), (":2", (0, 2)), ("2:", (2, 4)), ("3", (3, 3)), (" 1:1 ", (1, 1))],
)
def test_target_nodes_forms(text: str, expected: tuple[int, int]) -> None:
    assert multinode.parse_target(text, 5) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "'' is not a node range"),
        ("a:b", "'a:b' is not a node range"),
        (":", "':' is not a node range"),
        ("3:1", "'3:1': the range's start 3 is after its end 1"),
        ("0:5", "'0:5': node 5 does not exist; num_nodes is 5, so nodes are 0 to 4"),
    ],
)
def test_bad_target_nodes_say_why(text: str, message: str) -> None:
    got = multinode.parse_target(text, 5)
    assert isinstance(got, str) and got.startswith(message)


def test_a_narrower_range_overrides_a_wider_one_whatever_their_order() -> None:
    for targets in (("0:", "1:2"), ("0:4", "1:2")):
        containers = multinode.node_containers(props(5, 0, *targets))
        assert [c.command[0] for c in containers] == ["wide", "narrow", "narrow", "wide", "wide"]
    reordered = NodeProperties(5, 0, (NodeRangeProperty("1:2", NARROW), NodeRangeProperty("0:", WIDE)))
    assert [c.command[0] for c in multinode.node_containers(reordered)] == ["wide", "narrow", "narrow", "wide", "wide"]


def check(p: NodeProperties) -> list[str]:
    path = "node_properties.node_range_properties"
    return [
        str(x)
        for x in multinode.range_problems(
            p.num_nodes, p.main_node, [r.target_nodes for r in p.node_range_properties], path
        )
    ]


def test_ranges_must_cover_every_node_and_nest() -> None:
    assert check(props(4, 0, "0:1", "2:")) == []
    assert check(props(5, 0, "0:1", "3")) == [
        "node_properties.node_range_properties: the ranges must cover every node, 0 to 4; no range names nodes 2, 4"
    ]
    assert check(props(4, 0, "0:2", "1:3")) == [
        "node_properties.node_range_properties[1].target_nodes: nodes 1-3 overlap "
        "node_properties.node_range_properties[0] (nodes 0-2) without one holding the other; "
        "a range may only override a wider range it lies within"
    ]
    assert check(props(4, 0, "0:", ":3")) == [
        "node_properties.node_range_properties[1].target_nodes: "
        "names the same nodes as node_properties.node_range_properties[0]"
    ]
    assert check(props(2, 2, "0:")) == ["node_properties.main_node: must be a node index, 0 to 1, got 2"]
    assert check(props(0, 0, "0:")) == ["node_properties.num_nodes: must be between 1 and 1000, got 0"]


def test_node_overrides_apply_to_the_nodes_they_name_narrowest_last() -> None:
    definition = props(4, 0, "0:")
    overrides = NodeOverrides(
        node_property_overrides=(
            NodePropertyOverride("2", JobOverrides(command=("two",), environment={"B": "2"})),
            NodePropertyOverride("1:", JobOverrides(command=("rest",), environment={"A": "1"}, vcpus=4)),
        )
    )
    containers, problems = multinode.resolve(definition, overrides)
    assert problems == []
    assert [c.command for c in containers] == [("wide",), ("rest",), ("two",), ("rest",)]
    assert containers[2].environment == {"A": "1", "B": "2"} and containers[2].resources.vcpus == 4
    assert containers[0] == WIDE


def test_parameters_are_substituted_in_every_node() -> None:
    definition = NodeProperties(2, 0, (NodeRangeProperty("0:", replace(WIDE, command=("echo", "Ref::x"))),))
    containers, _ = multinode.resolve(definition, None, {"x": "y"})
    assert [c.command for c in containers] == [("echo", "y"), ("echo", "y")]


def test_the_node_count_changes_only_through_an_open_ended_range() -> None:
    containers, problems = multinode.resolve(props(3, 0, "0", "1:"), NodeOverrides(num_nodes=6))
    assert problems == [] and len(containers) == 6 and containers[5] == NARROW
    _, problems = multinode.resolve(props(3, 0, "0:2"), NodeOverrides(num_nodes=4))
    assert [str(p) for p in problems] == [
        'nodeOverrides.numNodes: the job definition has no open-ended node range ("a:"), so its node count is fixed'
    ]
    _, problems = multinode.resolve(props(4, 3, "0:2", "3:"), NodeOverrides(num_nodes=3))
    assert [str(p) for p in problems] == [
        "nodeOverrides.numNodes: the main node is node 3; 3 nodes would leave it out",
        "nodeOverrides.numNodes: node range '3:' starts at node 3; 3 nodes leave it empty",
    ]


def test_bad_node_overrides_name_their_entry() -> None:
    overrides = NodeOverrides(
        node_property_overrides=(
            NodePropertyOverride("7", JobOverrides()),
            NodePropertyOverride("0", JobOverrides(environment={"AWS_BATCH_X": "1"})),
        )
    )
    _, problems = multinode.resolve(props(3, 0, "0:"), overrides)
    assert [p.path for p in problems] == [
        "nodeOverrides.nodePropertyOverrides[0].targetNodes",
        "nodeOverrides.nodePropertyOverrides[1].containerOverrides.environment.AWS_BATCH_X",
    ]


def test_gang_request_and_gpus_per_node() -> None:
    containers = [WIDE, NARROW, NARROW]
    assert multinode.total(containers) == Resources(5, 1280, 2)
    assert multinode.split_gpus(containers, ("a", "b")) == [(), ("a",), ("b",)]
    assert multinode.as_ranges(containers) == (NodeRangeProperty("0:0", WIDE), NodeRangeProperty("1:2", NARROW))
    parent = Job("p", "j", "d", 1, "q", WIDE, 0, num_nodes=3, main_node=0, node_ranges=multinode.as_ranges(containers))
    assert multinode.request(parent) == Resources(5, 1280, 2)
    reason = multinode.gang_reason(WaitReason(CAPACITY, "needs 5 vCPU, 2 vCPU free on this host"), 3)
    assert str(reason) == f"{CAPACITY} - all 3 nodes must start together: needs 5 vCPU, 2 vCPU free on this host"


def running(job_id: str, index: int, main: int = 0) -> Job:
    attempt = Attempt(1, "t", "c", "l", container_id="x", started_at=10)
    return Job(
        job_id, "j", "d", 1, "q", WIDE, 0, status=S.RUNNING, started_at=10, attempts=(attempt,),
        num_nodes=3, main_node=main, node_index=index,
    )  # fmt: skip


def test_a_node_ending_while_the_main_node_runs_ends_by_its_own_exit() -> None:
    main = running("p#0", 0)
    node, event = multinode.finish_node(running("p#1", 1), exited(9, False), main, 20)
    assert (node.status, node.exit_code, event.to_status) == (S.FAILED, 9, S.FAILED)
    node, _ = multinode.finish_node(running("p#2", 2), exited(0, False), main, 20)
    assert node.status is S.SUCCEEDED


def test_a_node_stopped_for_its_main_node_ends_as_the_job_did_or_runs_again() -> None:
    stopped = terminated(143, multinode.MAIN_NODE_EXITED)
    for main_status in (S.SUCCEEDED, S.FAILED, S.RUNNABLE):
        main = replace(running("p#0", 0), status=main_status)
        node, event = multinode.finish_node(running("p#1", 1), stopped, main, 20)
        assert node.status is main_status and event.to_status is main_status
        assert node.attempts[0].stopped_at == 20 and node.attempts[0].exit_code == 143


def test_a_node_that_never_started_fails_or_is_requeued_without_spending_an_attempt() -> None:
    unstarted = replace(running("p#1", 1), status=S.STARTING, started_at=None, attempts=(Attempt(1, "t", "c", "l"),))
    ended = replace(running("p#0", 0), status=S.SUCCEEDED)
    node, _ = multinode.finish_node(unstarted, terminated(None, "x"), ended, 20)
    assert (node.status, node.status_reason) == (S.FAILED, multinode.MAIN_NODE_EXITED_FIRST)
    node, _ = multinode.finish_node(unstarted, terminated(None, "x"), replace(ended, status=S.RUNNABLE), 20)
    assert node.status is S.RUNNABLE and node.attempts == ()


def test_the_parent_mirrors_its_main_node() -> None:
    parent = Job("p", "j", "d", 1, "q", WIDE, 0, status=S.STARTING, num_nodes=3, main_node=0)
    main = replace(running("p#0", 0), status=S.SUCCEEDED, stopped_at=30)
    moved, event = multinode.mirror(parent, main, 30)
    assert (moved.status, moved.started_at, moved.stopped_at, moved.attempts) == (S.SUCCEEDED, 10, 30, main.attempts)
    assert event is not None and (event.from_status, event.to_status) == (S.STARTING, S.SUCCEEDED)
    assert multinode.mirror(moved, main, 31)[1] is None


def test_a_node_that_ended_on_its_own_runs_again_on_a_retry() -> None:
    ended = replace(running("p#1", 1), status=S.FAILED, stopped_at=20, gpu_ids=("0",))
    node, event = multinode.rerun(ended, 30)
    assert (node.status, node.stopped_at, node.runnable_at, node.gpu_ids) == (S.RUNNABLE, None, 30, ())
    assert (event.from_status, event.to_status, event.reason) == (S.FAILED, S.RUNNABLE, multinode.RERUN)
