"""Multi-node parallel jobs in the control loop, on fakes (see test_daemon_loop's rig): gang
placement, main node first, the job following its main node, stops and retries."""

from __future__ import annotations

from typing import Any

import pytest

from localbatch import jobdef
from localbatch.awsbatch.requests import ListRequest, SubmitRequest
from localbatch.core.infra import JobQueue, JobStateTimeLimitAction
from localbatch.core.jobs import Dependency, JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.multinode import MAIN_NODE_EXITED, NodeOverrides
from localbatch.errors import InvalidRequest
from localbatch.ports import ContainerRequest
from tests.fakes.runtime import FakeRuntime
from tests.unit.test_daemon_loop import Rig, make_rig

S = JobStatus
MNP = """
name = "mnp"
type = "multinode"
[retry]
attempts = {attempts}
[node_properties]
num_nodes = 3
main_node = 0
[[node_properties.node_range_properties]]
target_nodes = "0:"
image = "busybox:1.36"
command = ["sh", "-c", "echo node"]
[node_properties.node_range_properties.resources]
vcpus = 0.5
memory_mib = 256
"""


def node(index: int) -> Any:
    return lambda request: request.environment.get("AWS_BATCH_JOB_NODE_INDEX") == str(index)


def launched(runtime: FakeRuntime, job_id: str) -> list[ContainerRequest]:
    return [r for r in runtime.created if r.environment["AWS_BATCH_JOB_ID"].startswith(job_id + "#")]


class MnpRig:
    def __init__(self, rig: Rig, attempts: int = 1) -> None:
        self.rig = rig
        definition = jobdef.loads(MNP.format(attempts=attempts), "mnp.toml")
        rig.service.register_job_definition(definition)

    def submit(self, node_overrides: NodeOverrides | None = None) -> str:
        request = SubmitRequest("job", "default", "mnp", JobOverrides(), node_overrides=node_overrides)
        job_id = self.rig.service.submit_job(request).job_id
        self.rig.clock.advance(0.001)
        return job_id

    def statuses(self, job_id: str) -> list[S]:
        return [self.rig.job(f"{job_id}#{i}").status for i in range(3)]


@pytest.fixture
def mnp(tmp_path: Any) -> MnpRig:
    return MnpRig(make_rig(tmp_path))


def test_the_main_node_starts_first_then_the_others_with_its_address(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = mnp.submit()
    rig.tick()  # promote, place: every node STARTING, only the main node launched
    assert rig.job(job_id).status is S.STARTING
    assert [r.environment["AWS_BATCH_JOB_NODE_INDEX"] for r in launched(rig.runtime, job_id)] == ["0"]
    rig.tick()  # the main node runs: the others launch
    rig.tick()
    assert rig.job(job_id).status is S.RUNNING
    assert mnp.statuses(job_id) == [S.RUNNING] * 3
    requests = {r.environment["AWS_BATCH_JOB_NODE_INDEX"]: r.environment for r in launched(rig.runtime, job_id)}
    assert sorted(requests) == ["0", "1", "2"]
    for index, env in requests.items():
        assert env["AWS_BATCH_JOB_ID"] == f"{job_id}#{index}"
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "3" and env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
    assert "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS" not in requests["0"]
    assert requests["1"]["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == "127.0.0.1"  # host networking


def test_the_job_succeeds_with_its_main_node_and_the_others_are_stopped(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script(node(0), runs_for_s=3)
    rig.runtime.script(node(1), runs_for_s=None)
    rig.runtime.script(node(2), runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=30)
    parent, main = rig.job(job_id), rig.job(f"{job_id}#0")
    assert parent.status is S.SUCCEEDED
    assert (parent.started_at, parent.stopped_at, parent.attempts) == (main.started_at, main.stopped_at, main.attempts)
    others = [rig.job(f"{job_id}#{i}") for i in (1, 2)]
    assert [(o.status, o.status_reason) for o in others] == [(S.SUCCEEDED, MAIN_NODE_EXITED)] * 2
    assert rig.runtime.containers() == [] and rig.holding() == []


def test_a_failed_main_node_fails_the_job(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script(node(0), runs_for_s=3, exit_code=3)
    rig.runtime.script(node(1), runs_for_s=None)
    rig.runtime.script(node(2), runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=30)
    assert rig.job(job_id).status is S.FAILED and rig.job(job_id).exit_code == 3
    assert mnp.statuses(job_id) == [S.FAILED] * 3
    assert rig.runtime.containers() == []


def test_a_non_main_node_ending_changes_nothing_for_the_others(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script(node(0), runs_for_s=5)
    rig.runtime.script(node(1), runs_for_s=1, exit_code=9)
    rig.runtime.script(node(2), runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=8)
    assert mnp.statuses(job_id) == [S.RUNNING, S.FAILED, S.RUNNING]
    assert rig.job(job_id).status is S.RUNNING
    rig.settle(ticks=30)
    assert rig.job(job_id).status is S.SUCCEEDED
    assert mnp.statuses(job_id) == [S.SUCCEEDED, S.FAILED, S.SUCCEEDED]
    assert rig.job(f"{job_id}#1").exit_code == 9


def test_a_retry_of_the_main_node_runs_every_node_again(tmp_path: Any) -> None:
    mnp = MnpRig(make_rig(tmp_path), attempts=2)
    rig = mnp.rig
    first = rig.runtime.script(node(0), runs_for_s=3, exit_code=1)
    rig.runtime.script(node(1), runs_for_s=1)  # ends on its own before the main node
    rig.runtime.script(node(2), runs_for_s=None)
    job_id = mnp.submit()
    for _ in range(60):
        rig.tick()
        if len(rig.job(job_id).attempts) == 1 and rig.job(job_id).status is S.RUNNABLE:
            break
    rig.runtime._scripts.remove(first)  # the second attempt's main node succeeds
    rig.runtime.script(node(0), runs_for_s=3)
    rig.settle(ticks=40)
    parent = rig.job(job_id)
    assert parent.status is S.SUCCEEDED and len(parent.attempts) == 2
    assert [len(rig.job(f"{job_id}#{i}").attempts) for i in range(3)] == [2, 2, 2]
    assert [c.environment["AWS_BATCH_JOB_NODE_INDEX"] for c in launched(rig.runtime, job_id)].count("1") == 2
    assert rig.runtime.containers() == []


def test_all_nodes_are_placed_together_or_the_job_waits_saying_so(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    rig.submit()  # an ordinary 1-vCPU job: 1 of the environment's 2 vCPUs is left
    rig.tick()
    job_id = mnp.submit()
    rig.tick()
    assert rig.job(job_id).status is S.RUNNABLE and mnp.statuses(job_id) == [S.RUNNABLE] * 3
    [waiting] = rig.service.describe_jobs([job_id])
    assert waiting.status_reason == (
        "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - all 3 nodes must start together: "
        "needs 1.5 vCPU, 1 vCPU free in compute environment local"
    )
    assert launched(rig.runtime, job_id) == []


def test_terminating_a_running_job_stops_every_node(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=3)
    assert mnp.statuses(job_id) == [S.RUNNING] * 3
    rig.service.terminate_job(job_id, "enough")
    rig.settle(ticks=20)
    parent = rig.job(job_id)
    assert (parent.status, parent.is_terminated, parent.status_reason) == (S.FAILED, True, "enough")
    assert mnp.statuses(job_id) == [S.FAILED] * 3
    assert rig.runtime.containers() == []


def test_cancelling_a_waiting_job_fails_it_and_its_nodes(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.loop.tick(rig.clock.now_ms())
    job_id = mnp.submit()
    rig.service.cancel_job(job_id, "no")
    rig.settle(ticks=3)
    assert rig.job(job_id).status is S.FAILED and rig.job(job_id).is_cancelled
    assert mnp.statuses(job_id) == [S.FAILED] * 3


def test_under_a_bridge_network_nodes_get_the_main_containers_address(tmp_path: Any) -> None:
    mnp = MnpRig(make_rig(tmp_path))
    rig = mnp.rig
    rig.runtime.network_mode = "bridge"
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=3)
    main_id = rig.job(f"{job_id}#0").attempts[0].container_id
    assert main_id is not None
    expected = rig.runtime.address(main_id)
    assert expected.startswith("10.0.0.")
    for request in launched(rig.runtime, job_id)[1:]:
        assert request.environment["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] == expected


def test_node_overrides_change_the_count_and_the_nodes(mnp: MnpRig) -> None:
    from localbatch.core.lifecycle import JobOverrides as Container
    from localbatch.core.multinode import NodePropertyOverride

    rig = mnp.rig
    overrides = NodeOverrides(2, (NodePropertyOverride("1:", Container(command=("true",))),))
    job_id = mnp.submit(overrides)
    parent = rig.job(job_id)
    assert parent.num_nodes == 2 and parent.is_multinode_parent
    assert rig.job(f"{job_id}#1").container.command == ("true",)
    assert rig.job(f"{job_id}#0").container.command == ("sh", "-c", "echo node")
    assert rig.store.get_job(f"{job_id}#2") is None
    nodes = rig.service.list_jobs(
        ListRequest(None, (S.SUBMITTED,), None, None, None, None, 100, None, multi_node_job_id=job_id)
    )
    assert [j.job_id for j in nodes.jobs] == [f"{job_id}#0", f"{job_id}#1"]


def test_submissions_a_multi_node_job_refuses(mnp: MnpRig) -> None:
    with pytest.raises(InvalidRequest) as refused:
        mnp.rig.service.submit_job(
            SubmitRequest("job", "default", "mnp", JobOverrides(command=("x",)), node_overrides=NodeOverrides(5))
        )
    assert [str(p) for p in refused.value.problems] == [
        "containerOverrides: not for a multi-node parallel job; use nodeOverrides.nodePropertyOverrides"
    ]
    with pytest.raises(InvalidRequest) as refused:
        mnp.rig.service.submit_job(
            SubmitRequest("job", "default", "work", JobOverrides(), node_overrides=NodeOverrides(2))
        )
    assert "nodeOverrides: only for a multi-node parallel job definition" in str(refused.value)


def test_a_job_is_placed_only_once_the_loop_knows_all_its_nodes(mnp: MnpRig) -> None:
    """A handler's notices may reach the loop in two ticks: the parent first, its nodes later."""
    from localbatch.batch import BatchService
    from localbatch.core.jobs import Job

    rig = mnp.rig
    heard: list[Job] = []

    class Recorder:
        def job_submitted(self, job: Job) -> None:
            heard.append(job)

        def stop_requested(self, job_id: str) -> None: ...

        def infrastructure_changed(self) -> None: ...

    service = BatchService(store=rig.store, clock=rig.clock, host=rig.loop._host, notifier=Recorder())
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = service.submit_job(SubmitRequest("job", "default", "mnp", JobOverrides())).job_id
    parent, *nodes = heard
    rig.loop.job_submitted(parent)
    rig.tick()
    rig.tick()
    assert rig.job(job_id).status is S.RUNNABLE and rig.runtime.created == []
    for each in nodes:
        rig.loop.job_submitted(each)
    rig.settle(ticks=4)
    assert rig.job(job_id).status is S.RUNNING and mnp.statuses(job_id) == [S.RUNNING] * 3


def test_a_main_node_that_cannot_start_fails_the_job_and_the_others_never_launch(mnp: MnpRig) -> None:
    from localbatch.core.multinode import MAIN_NODE_EXITED_FIRST

    rig = mnp.rig
    rig.runtime.script(node(0), start_error="no such device")
    job_id = mnp.submit()
    rig.settle(ticks=4)
    parent = rig.job(job_id)
    assert parent.status is S.FAILED and parent.status_reason == "Task failed to start"
    assert [rig.job(f"{job_id}#{i}").status_reason for i in (1, 2)] == [MAIN_NODE_EXITED_FIRST] * 2
    assert [r.environment["AWS_BATCH_JOB_NODE_INDEX"] for r in launched(rig.runtime, job_id)] == ["0"]
    assert rig.holding() == []


def test_a_restart_lines_the_job_up_with_its_main_node(mnp: MnpRig) -> None:
    from tests.unit.test_daemon_loop import restart

    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=3)
    assert mnp.statuses(job_id) == [S.RUNNING] * 3
    # The daemon dies; meanwhile the main node exits 0.
    rig.runtime.finish(rig.job(f"{job_id}#0").attempts[0].container_id or "", exit_code=0)
    rig = restart(rig)
    assert rig.job(f"{job_id}#0").status is S.SUCCEEDED  # collected by the restart
    rig.settle(ticks=20)
    assert rig.job(job_id).status is S.SUCCEEDED
    assert mnp.statuses(job_id) == [S.SUCCEEDED] * 3
    assert rig.runtime.containers() == []


def test_a_restart_keeps_a_running_job_running(mnp: MnpRig) -> None:
    from tests.unit.test_daemon_loop import restart

    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    job_id = mnp.submit()
    rig.settle(ticks=3)
    rig = restart(rig)
    rig.settle(ticks=3)
    assert rig.job(job_id).status is S.RUNNING and mnp.statuses(job_id) == [S.RUNNING] * 3
    rig.runtime.finish(rig.job(f"{job_id}#0").attempts[0].container_id or "", exit_code=5)
    rig.settle(ticks=20)
    assert rig.job(job_id).status is S.FAILED and mnp.statuses(job_id) == [S.FAILED] * 3


def test_cancelling_one_waiting_node_cancels_the_whole_job(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    rig.submit()  # holds 1 of 2 vCPUs: the 1.5-vCPU job waits
    rig.tick()
    job_id = mnp.submit()
    rig.tick()
    rig.service.cancel_job(f"{job_id}#2", "not this one")
    rig.settle(ticks=3)
    assert rig.job(job_id).status is S.FAILED and rig.job(job_id).status_reason == "not this one"
    assert mnp.statuses(job_id) == [S.FAILED] * 3


def test_a_multi_node_job_waits_for_its_dependencies_and_fails_with_them(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    first = rig.submit()
    rig.runtime.script(lambda r: r.environment["AWS_BATCH_JOB_ID"] == first, exit_code=1, runs_for_s=1)
    request = SubmitRequest("job", "default", "mnp", JobOverrides(), depends_on=(Dependency(first),))
    job_id = rig.service.submit_job(request).job_id
    rig.tick()
    assert rig.job(job_id).status is S.PENDING and mnp.statuses(job_id) == [S.PENDING] * 3
    rig.settle(12)
    assert rig.job(first).status is S.FAILED
    assert rig.job(job_id).status_reason == "Dependent Job failed"
    assert [rig.job(job_id).status, *mnp.statuses(job_id)] == [S.FAILED] * 4
    assert not launched(rig.runtime, job_id)


def test_a_multi_node_job_runs_once_its_dependency_succeeded(mnp: MnpRig) -> None:
    rig = mnp.rig
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    first = rig.submit(vcpus=0.5)
    request = SubmitRequest("job", "default", "mnp", JobOverrides(), depends_on=(Dependency(first),))
    job_id = rig.service.submit_job(request).job_id
    rig.settle(40)
    assert rig.job(first).status is S.SUCCEEDED
    assert rig.job(job_id).status is S.SUCCEEDED and len(launched(rig.runtime, job_id)) == 3


def test_a_time_limit_that_cancels_a_waiting_multi_node_job_ends_its_nodes_too(mnp: MnpRig) -> None:
    rig = mnp.rig
    limit = (JobStateTimeLimitAction("CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", 1),)
    rig.store.put_job_queue(JobQueue("default", 1, ("local",), job_state_time_limit_actions=limit))
    rig.loop.infrastructure_changed()
    rig.runtime.script("busybox:1.36", runs_for_s=None)
    holder = rig.submit(vcpus=2)  # the whole environment: the nodes cannot start together
    job_id = mnp.submit()
    rig.settle(12)
    assert rig.job(holder).status is S.RUNNING
    ended = rig.job(job_id)
    assert (ended.status, ended.is_cancelled) == (S.FAILED, True)
    assert (
        ended.status_reason
        == "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    )
    assert mnp.statuses(job_id) == [S.FAILED] * 3
