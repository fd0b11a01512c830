"""Multi-node parallel jobs on the real engine, through the daemon: three busybox nodes, the
main node listening on a TCP port, the others connecting to the address localbatch gives them
(127.0.0.1 under the host networking this machine has). The ``daemon`` fixture asserts that
no container of the test's home is left running."""

from __future__ import annotations

import ipaddress
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch.awsbatch.model import validate_output
from tests.integration.daemons import CONFIG, Daemon, started_daemon

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
def network(docker_client: Any) -> Iterator[str]:
    """A user-defined bridge network of this test's own (the engine here has no default bridge)."""
    name = f"lbtest-{uuid.uuid4().hex[:12]}"
    created = docker_client.networks.create(name, driver="bridge")
    try:
        yield name
    finally:
        created.remove()


@pytest.fixture
def bridged(tmp_path: Path, docker_client: Any, busybox_image: str, network: str) -> Iterator[Daemon]:
    """As test_daemon's ``daemon``, with containers on ``network`` instead of the host's."""
    config = CONFIG + f'\n[docker]\nnetwork_mode = "{network}"\n'
    with started_daemon(tmp_path, docker_client, config, register=False) as running:
        yield running


SHOW_ENV = (
    'echo "node=$AWS_BATCH_JOB_NODE_INDEX of $AWS_BATCH_JOB_NUM_NODES main=$AWS_BATCH_JOB_MAIN_NODE_INDEX '
    'address=${AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS:-none} id=$AWS_BATCH_JOB_ID"; '
)


def register(daemon: Daemon, tmp_path: Path, *, main: str, others: str) -> None:
    path = tmp_path / "mnp.toml"
    path.write_text(MNP.format(main=json.dumps(SHOW_ENV + main), others=json.dumps(SHOW_ENV + others)))
    daemon.ok("register", str(path))


def submit(daemon: Daemon) -> str:
    return str(daemon.api.call("SubmitJob", {"jobName": "mnp", "jobQueue": "default", "jobDefinition": "mnp"})["jobId"])


def gather(daemon: Daemon, tmp_path: Path) -> None:
    """The main node takes one line from each other node (node n sends to port P+n), prints
    them, then exits 0. Each listener's stdin stays open (``sleep |``): busybox ``nc -l`` whose
    stdin ends may close a connection before reading what it carries, losing the line although
    the sender's nc succeeded. Bounded: the main node gives up after 30 s."""
    port = random.randint(20000, 30000)
    main = (
        f"mkdir -p /tmp; sleep 60 | nc -l -p {port + 1} > /tmp/1 & sleep 60 | nc -l -p {port + 2} > /tmp/2 & "
        "i=0; until [ -s /tmp/1 ] && [ -s /tmp/2 ]; do i=$((i+1)); [ $i -ge 300 ] && exit 1; sleep 0.1; done; "
        "cat /tmp/1 /tmp/2"
    )
    others = (  # the main node may not listen yet: try again, bounded
        "i=0; until echo hello-from-$AWS_BATCH_JOB_NODE_INDEX | "
        f"nc $AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS $(({port} + AWS_BATCH_JOB_NODE_INDEX)); "
        "do i=$((i+1)); [ $i -ge 150 ] && exit 1; sleep 0.2; done"
    )
    register(daemon, tmp_path, main=main, others=others)


def test_nodes_reach_the_main_node_and_the_job_succeeds_with_it(daemon: Daemon, tmp_path: Path) -> None:
    gather(daemon, tmp_path)
    job_id = submit(daemon)
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
    job_id = submit(daemon)
    detail = daemon.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=60)
    assert detail["status"] == "FAILED" and detail["container"]["exitCode"] == 3
    for index in (1, 2):
        node = daemon.wait_for(f"{job_id}#{index}", "SUCCEEDED", "FAILED", timeout_s=30)
        assert (node["status"], node["statusReason"]) == ("FAILED", "Main node exited; the node was stopped")
    running = [c for c in daemon.containers() if c["State"] == "running"]
    assert running == []


def test_on_a_bridge_network_nodes_reach_the_main_containers_own_address(
    bridged: Daemon, tmp_path: Path, docker_client: Any, network: str
) -> None:
    gather(bridged, tmp_path)
    job_id = submit(bridged)
    detail = bridged.wait_for(job_id, "SUCCEEDED", "FAILED", timeout_s=90)
    assert detail["status"] == "SUCCEEDED", detail.get("statusReason")
    main_log = bridged.ok("logs", f"{job_id}#0")
    assert sorted(main_log.splitlines()[1:]) == ["hello-from-1", "hello-from-2"]
    first = bridged.ok("logs", f"{job_id}#1").splitlines()[0]
    address = ipaddress.ip_address(first.split("address=")[1].split()[0])
    [config] = docker_client.networks.get(network).attrs["IPAM"]["Config"]
    assert address in ipaddress.ip_network(config["Subnet"]), first  # the main container's, on the network
