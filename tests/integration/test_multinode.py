"""Multi-node parallel jobs on the real engine, through the daemon: three busybox nodes, the
main node listening on a TCP port, the others connecting to the address localbatch gives them
(127.0.0.1 under the host networking this machine has). The ``daemon`` fixture asserts that
no container of the test's home is left running."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from localbatch.awsbatch.model import validate_output
from tests.integration.test_daemon import Daemon
from tests.integration.test_daemon import daemon as daemon_fixture  # noqa: F401 - the fixture, under this name

MNP = """
name = "mnp"
type = "multinode"

[node_properties]
num_nodes = 3
main_node = 0

[[node_properties.node_range_properties]]
target_nodes = "1:"
image = "busybox:1.36"
command = ["sh", "-c", {others}]

[node_properties.node_range_properties.resources]
vcpus = 0.5
memory_mib = 64

[[node_properties.node_range_properties]]
target_nodes = "0"
image = "busybox:1.36"
command = ["sh", "-c", {main}]

[node_properties.node_range_properties.resources]
vcpus = 0.5
memory_mib = 64
"""


@pytest.fixture
def daemon(daemon_fixture: Daemon) -> Daemon:  # noqa: F811 - test_daemon's, under its own name
    return daemon_fixture


SHOW_ENV = (
    'echo "node=$AWS_BATCH_JOB_NODE_INDEX of $AWS_BATCH_JOB_NUM_NODES main=$AWS_BATCH_JOB_MAIN_NODE_INDEX '
    'address=${AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS:-none} id=$AWS_BATCH_JOB_ID"; '
)


def register(daemon: Daemon, tmp_path: Path, *, main: str, others: str) -> None:
    path = tmp_path / "mnp.toml"
    path.write_text(MNP.format(main=json.dumps(SHOW_ENV + main), others=json.dumps(SHOW_ENV + others)))
    daemon.ok("register", str(path))


def test_nodes_reach_the_main_node_and_the_job_succeeds_with_it(daemon: Daemon, tmp_path: Path) -> None:
    port = random.randint(20000, 30000)
    main = f"for i in 1 2; do nc -l -p {port}; done"
    others = (  # the main node may not listen yet (or is between connections): try again, bounded
        "i=0; until echo hello-from-$AWS_BATCH_JOB_NODE_INDEX | "
        f"nc $AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS {port}; "
        "do i=$((i+1)); [ $i -ge 150 ] && exit 1; sleep 0.2; done"
    )
    register(daemon, tmp_path, main=main, others=others)
    job_id = str(
        daemon.api.call("SubmitJob", {"jobName": "mnp", "jobQueue": "default", "jobDefinition": "mnp"})["jobId"]
    )
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
    assert detail["status"] == "SUCCEEDED", detail.get("statusReason")
    assert detail["nodeProperties"]["numNodes"] == 3 and detail["nodeProperties"]["mainNode"] == 0
    main_log = daemon.ok("logs", f"{job_id}#0")
    assert main_log.splitlines()[0] == f"node=0 of 3 main=0 address=none id={job_id}#0"
    assert sorted(main_log.splitlines()[1:]) == ["hello-from-1", "hello-from-2"]
    for index in (1, 2):
        log = daemon.ok("logs", f"{job_id}#{index}")
        assert log.splitlines()[0] == f"node={index} of 3 main=0 address=127.0.0.1 id={job_id}#{index}"
    nodes = daemon.api.call("ListJobs", {"multiNodeJobId": job_id, "jobStatus": "SUCCEEDED"})["jobSummaryList"]
    assert [n["jobId"] for n in nodes] == [f"{job_id}#{i}" for i in range(3)]
    described = daemon.api.call("DescribeJobs", {"jobs": [job_id, f"{job_id}#1"]})
    assert described["jobs"][1]["nodeDetails"] == {"nodeIndex": 1, "isMainNode": False}
    assert validate_output("DescribeJobs", described) == []


def test_a_failing_main_node_fails_the_job_and_stops_the_other_nodes(daemon: Daemon, tmp_path: Path) -> None:
    register(daemon, tmp_path, main="sleep 1; exit 3", others="sleep 300")
    job_id = str(
        daemon.api.call("SubmitJob", {"jobName": "mnp", "jobQueue": "default", "jobDefinition": "mnp"})["jobId"]
    )
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    assert detail["status"] == "FAILED" and detail["container"]["exitCode"] == 3
    for index in (1, 2):
        node = daemon.wait_for(f"{job_id}#{index}", "SUCCEEDED", "FAILED", timeout_s=30)
        assert (node["status"], node["statusReason"]) == ("FAILED", "Main node exited; the node was stopped")
    running = [c for c in daemon.containers() if c["State"] == "running"]
    assert running == []
