"""A thousand API clients at once, each on its own connection to the daemon's socket, each
submitting one job: every submission is answered (a jobId, or an AWS-shaped error; never a
connection dropped without an answer), and the store then holds exactly the accepted jobs,
each once. The compute environment is DISABLED, so the jobs wait RUNNABLE and no container
runs: this measures the API and the store, not the engine."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from localbatch.client import DaemonClient, DaemonError, DaemonUnreachable, RequestRejected
from tests.faults.test_kill_9 import job_ids
from tests.integration.daemons import CONFIG, started_daemon

DISABLED = CONFIG.replace("max_vcpus = 2\n", 'max_vcpus = 2\nstate = "DISABLED"\n')

pytestmark = [pytest.mark.faults, pytest.mark.docker]


@pytest.mark.parametrize("clients", [1000])
def test_many_clients_submitting_at_once_each_get_an_answer_and_every_job_is_stored_once(
    tmp_path: Path, docker_client: Any, busybox_image: str, clients: int
) -> None:
    with started_daemon(tmp_path, docker_client, DISABLED) as daemon:
        socket_path = daemon.api.socket_path
        go = threading.Barrier(clients, timeout=120)
        accepted: list[str] = []
        refused: list[str] = []  # an answer that is an AWS error: acceptable, counted
        broken: list[str] = []  # no answer: never acceptable
        lock = threading.Lock()

        def submit(n: int) -> None:
            with DaemonClient(socket_path, timeout_s=120, connect_timeout_s=120) as client:
                body = {"jobName": f"c{n}", "jobQueue": "default", "jobDefinition": "hello"}
                go.wait()
                try:
                    job_id = str(client.call("SubmitJob", body)["jobId"])
                except RequestRejected as exc:
                    outcome, text = refused, f"{exc.code}: {exc.message}"
                except (DaemonError, DaemonUnreachable) as exc:
                    outcome, text = broken, str(exc)
                else:
                    outcome, text = accepted, job_id
            with lock:
                outcome.append(text)

        threads = [threading.Thread(target=submit, args=(n,), name=f"client-{n}") for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(180)
        assert not any(t.is_alive() for t in threads), "a client never got its answer"
        assert broken == [], broken[:5]
        assert len(accepted) + len(refused) == clients
        assert refused == [], refused[:5]  # nothing here makes the daemon refuse; none may be lost
        # They wait RUNNABLE (nothing can run); list them once every one has got there.
        deadline = time.monotonic() + 120
        while len(waiting := job_ids(daemon, statuses=("RUNNABLE",))) < clients and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(waiting) == sorted(accepted)  # every accepted job, each once
        assert sorted(job_ids(daemon)) == sorted(accepted)  # and no other job in any state
