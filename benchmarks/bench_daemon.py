"""The daemon, measured end to end (issue 3's performance targets).

A real daemon (``python -m localbatch daemon run``) in a temporary home, reached through its
socket, on this machine's Docker engine. Its one compute environment is DISABLED, so jobs
queue and nothing runs: what is measured is the API, the store and the control loop.

    daemon_idle_cpu_percent     CPU of an idle daemon (no jobs), over ``IDLE_S`` seconds
    daemon_idle_rss_mib         its resident memory then (quick: over 5 s)
    daemon_rss_mib_10k_queued   its resident memory with every job below waiting: the submits and
                                the array's 10,000 children, all RUNNABLE (``daemon_queued_jobs``)
    daemon_submit_s_10k         10,000 SubmitJob calls, one client on one keep-alive connection,
                                through validation, the store and the loop (quick: 2,000, scaled)
    daemon_submits_per_s        the same, as a rate
    cli_ls_s_100k               `localbatch ls` (the 50 newest) with 100,000 jobs stored
                                (quick: 20,000), no daemon: median wall time of the whole process
    cli_ls_s_100k_daemon        the same through a running daemon
    array_submit_s_10k          one SubmitJob of a 10,000-child array: seconds to its response
    array_runnable_s_10k        from that response until every child is RUNNABLE (the loop took
                                them in, saved them and planned them)
    chain_fail_ms_1k / _2k      a chain of 1,000 (2,000) jobs, each depending on the one before:
                                from cancelling the head to the last job FAILED ("Dependent Job
                                failed"); linear when the 2k figure is about twice the 1k one

    python -m benchmarks.bench_daemon [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from benchmarks.bench_store import QUEUES, fill
from localbatch import config
from localbatch.adapters.sqlite_store import SqliteStateStore
from localbatch.client import DaemonClient, DaemonUnreachable
from localbatch.extensions import STATUS

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "jobdefs" / "hello.toml"
IDLE_S = 30
ACTIVE_STORED = 1_500  # the smallest store bench_store.fill makes (its 1,000 jobs in flight, and more)
CONFIG = '[[compute_environments]]\nname = "parked"\nmax_vcpus = 2\nstate = "DISABLED"\n' + "".join(
    f'\n[[job_queues]]\nname = "{q}"\npriority = {i}\ncompute_environments = ["parked"]\n' for i, q in enumerate(QUEUES)
)


def _environment(home: Path, config_text: str) -> dict[str, str]:
    (home.parent / "localbatch.toml").write_text(config_text)
    return {
        **os.environ,
        "LOCALBATCH_HOME": str(home),
        "LOCALBATCH_CONFIG": str(home.parent / "localbatch.toml"),
    }


@contextmanager
def daemon(home: Path, config_text: str = CONFIG) -> Iterator[tuple[DaemonClient, int]]:
    env = _environment(home, config_text)
    settings = config.resolve(env=env, cwd=home.parent)
    process = subprocess.Popen(
        [sys.executable, "-m", "localbatch", "daemon", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = DaemonClient(str(settings.socket_path))
        deadline = time.monotonic() + 30
        while True:
            try:
                client.get(STATUS)
                break
            except DaemonUnreachable:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the daemon did not start") from None
                time.sleep(0.1)
        yield client, process.pid
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _idle(pid: int, seconds: float) -> tuple[float, float]:
    proc = psutil.Process(pid)
    before = proc.cpu_times()
    time.sleep(seconds)
    after = proc.cpu_times()
    busy = (after.user - before.user) + (after.system - before.system)
    return 100 * busy / seconds, proc.memory_info().rss / 2**20


def _submits(client: DaemonClient, count: int) -> float:
    from localbatch.awsbatch.jobdefinition import to_register_request
    from localbatch.jobdef import load_file

    client.call("RegisterJobDefinition", to_register_request(load_file(HELLO)))
    started = time.perf_counter()
    for n in range(count):
        client.call("SubmitJob", {"jobName": f"bench-{n}", "jobQueue": "default", "jobDefinition": "hello"})
    return time.perf_counter() - started


def _array(client: DaemonClient, size: int) -> tuple[float, float]:
    started = time.perf_counter()
    body = {"jobName": "fan", "jobQueue": "default", "jobDefinition": "hello", "arrayProperties": {"size": size}}
    parent = client.call("SubmitJob", body)["jobId"]
    answered = time.perf_counter()
    last = f"{parent}:{size - 1}"
    while client.call("DescribeJobs", {"jobs": [last]})["jobs"][0]["status"] != "RUNNABLE":
        if time.perf_counter() - answered > 120:
            raise RuntimeError("the array's children did not become RUNNABLE within 120 s")
        time.sleep(0.01)
    return answered - started, time.perf_counter() - answered


def _chain_ms(client: DaemonClient, length: int) -> float:
    ids = [client.call("SubmitJob", {"jobName": "link", "jobQueue": "default", "jobDefinition": "hello"})["jobId"]]
    for _ in range(length - 1):
        body = {"jobName": "link", "jobQueue": "default", "jobDefinition": "hello", "dependsOn": [{"jobId": ids[-1]}]}
        ids.append(client.call("SubmitJob", body)["jobId"])
    time.sleep(1)  # every link taken in by the loop
    started = time.perf_counter()
    client.call("CancelJob", {"jobId": ids[0], "reason": "bench"})
    while client.call("DescribeJobs", {"jobs": [ids[-1]]})["jobs"][0]["status"] != "FAILED":
        if time.perf_counter() - started > 60:
            raise RuntimeError("the chain did not fail within 60 s")
        time.sleep(0.002)
    return (time.perf_counter() - started) * 1000


def _ls_s(env: dict[str, str], cwd: Path, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "localbatch", "ls"], env=env, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(quick: bool) -> dict[str, float]:
    if quick:
        return run(submits=2_000, stored=20_000, idle_s=IDLE_S / 6, array=10_000, chains=(1_000, 2_000))
    return run(submits=10_000, stored=100_000, idle_s=IDLE_S, array=10_000, chains=(1_000, 2_000))


def run(submits: int, stored: int, idle_s: float, array: int, chains: tuple[int, int]) -> dict[str, float]:
    """The figures above at these sizes; the names keep their nominal sizes (``_10k``)."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        home = Path(tmp) / "a" / "home"
        home.parent.mkdir(parents=True)
        with daemon(home) as (client, pid):
            time.sleep(2)  # past start-up
            cpu, rss = _idle(pid, idle_s)
            results["daemon_idle_cpu_percent"] = round(cpu, 2)
            results["daemon_idle_rss_mib"] = round(rss, 1)
            seconds = _submits(client, submits)
            response_s, runnable_s = _array(client, array)
            results["array_submit_s_10k"] = round(response_s, 3)
            results["array_runnable_s_10k"] = round(runnable_s, 3)
            # Every job so far waits (the environment is DISABLED): the submits and the array's children.
            results["daemon_queued_jobs"] = submits + array
            results["daemon_rss_mib_10k_queued"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
            results["chain_fail_ms_1k"] = round(_chain_ms(client, chains[0]), 1)
            results["chain_fail_ms_2k"] = round(_chain_ms(client, chains[1]), 1)
        results["daemon_submit_s_10k"] = round(seconds * 10_000 / submits, 2)
        results["daemon_submits_per_s"] = round(submits / seconds, 1)

        home = Path(tmp) / "b" / "home"
        home.parent.mkdir(parents=True)
        env = _environment(home, CONFIG)
        store = SqliteStateStore(config.resolve(env=env, cwd=home.parent).database_path)
        fill(store, stored)
        store.close()
        results["cli_ls_s_100k"] = round(_ls_s(env, home.parent), 3)
        with daemon(home):
            results["cli_ls_s_100k_daemon"] = round(_ls_s(env, home.parent), 3)
    return results


def smoke() -> dict[str, float]:
    """Tiny inputs, for ``pytest -m bench_smoke``: the harness runs; the figures mean nothing."""
    return run(submits=20, stored=ACTIVE_STORED, idle_s=0.5, array=20, chains=(5, 10))


if __name__ == "__main__":
    print(measure("--quick" in sys.argv[1:]))
