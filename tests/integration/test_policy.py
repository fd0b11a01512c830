"""A shared host's policy on a real daemon (docs/policy.md): a forbidden mount is refused at
submit naming its rule; the socket is shared with a group and each job's owner is the real OS
user; a user at ``max_running_jobs`` waits with the rule shown. Two daemons in all: each
start costs seconds."""

from __future__ import annotations

import grp
import json
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import localbatch
from localbatch.api.principal import daemon_owner, user_name
from localbatch.extensions import EVENTS
from tests.integration.conftest import unavailable
from tests.integration.daemons import CONFIG, Daemon, started_daemon

MEMBER_UID, OUTSIDER_UID = 4242, 4343  # no passwd entries: named "uid 4242", "uid 4343"
ETC_JOB = """
name = "peek"
image = "busybox:1.36"
command = ["cat", "/host/passwd"]
[resources]
vcpus = 0.5
memory_mib = 64
[[volumes]]
name = "etc"
host_source_path = "/etc"
[[mount_points]]
source_volume = "etc"
container_path = "/host"
"""


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A test directory other users can traverse (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="lb-policy-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# This interpreter may live where other users cannot reach it (a venv of a pyenv Python under
# /root): then the system's Python of the same version, with this one's packages, stands in.
PYTHONS = [sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
PYTHONPATH = os.pathsep.join([str(Path(localbatch.__file__).resolve().parents[1]), *site.getsitepackages()])


def as_user(
    daemon: Daemon, base: Path, uid: int, gid: int, *args: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """``localbatch ARGS`` (``python ARGS`` when ARGS start with ``-c``) as ``uid`` with only group ``gid``."""

    def drop() -> None:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)

    try:
        return subprocess.run(
            [python, *(args if args[0] == "-c" else ("-m", "localbatch", *args))],
            env={**daemon.env, "HOME": str(base), "PYTHONPATH": PYTHONPATH},
            cwd=base,
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=drop,
        )
    except PermissionError as exc:  # the interpreter itself
        return subprocess.CompletedProcess([python], 126, "", str(exc))  # as a shell says it


def first_run(
    daemon: Daemon, base: Path, uid: int, gid: int, *args: str
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """``localbatch ARGS`` as ``uid`` with the first interpreter it may execute (the test is
    unavailable when there is none), and that interpreter."""
    tried = []
    for python in PYTHONS:
        result = as_user(daemon, base, uid, gid, *args, python=python)
        if result.returncode != 126:
            return python, result
        tried.append(result.stderr)
    unavailable(f"uid {uid} may execute no Python: {'; '.join(tried)}")


def test_the_socket_is_shared_with_its_group_and_jobs_belong_to_their_os_user(
    open_base: Path, docker_client: Any, busybox_image: str
) -> None:
    if os.geteuid() != 0:
        unavailable("running a client as another user needs root")
    try:
        group = grp.getgrnam("users")
    except KeyError:
        unavailable("this host has no group 'users' to share the socket with")
    config = CONFIG + "\n[policy]\nsocket_group = 'users'\n"
    with started_daemon(open_base, docker_client, config) as d:
        (open_base / "localbatch.toml").chmod(0o644)
        socket_path = d.api.socket_path
        info = os.stat(socket_path)
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, group.gr_gid)
        python, submitted = first_run(d, open_base, MEMBER_UID, group.gr_gid, "submit", "hello", "--json")
        assert submitted.returncode == 0, submitted.stderr
        theirs = json.loads(submitted.stdout)["jobId"]
        assert d.api.get(EVENTS, {"jobId": theirs})["submittedBy"] == user_name(MEMBER_UID)

        outsider = as_user(d, open_base, OUTSIDER_UID, OUTSIDER_UID, "ls", python=python)
        assert outsider.returncode != 0
        assert "permission denied on the localbatch daemon's socket" in outsider.stderr
        assert "group users" in outsider.stderr

        # sh as PID 1 ends on SIGTERM only with a trap: terminating it then takes no grace period
        stays = ["sh", "-c", "trap 'exit 143' TERM; sleep 30 & wait"]
        mine = d.submit_api(containerOverrides={"command": stays})
        assert d.api.get(EVENTS, {"jobId": mine})["submittedBy"] == daemon_owner()
        refused = as_user(d, open_base, MEMBER_UID, group.gr_gid, "terminate", mine, python=python)
        assert refused.returncode == 2, refused.stderr
        assert f"policy.admins: the job belongs to user {daemon_owner()}" in refused.stderr
        assert d.detail(mine)["status"] not in ("SUCCEEDED", "FAILED")
        d.api.call("TerminateJob", {"jobId": mine, "reason": "the owner may"})
        assert d.wait_for(mine, "FAILED")["status"] == "FAILED"


def test_a_forbidden_mount_is_refused_at_submit_and_a_user_at_max_running_jobs_waits_with_the_rule(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    config = CONFIG + "\n[policy]\nallowed_mount_paths = ['/srv/data']\nmax_running_jobs = 1\n"
    with started_daemon(tmp_path, docker_client, config) as d:
        (tmp_path / "peek.toml").write_text(ETC_JOB)
        refused = d("submit", str(tmp_path / "peek.toml"))
        assert refused.returncode == 2, refused.stderr
        assert "policy.allowed_mount_paths: host path /etc of volume etc is not allowed" in refused.stderr
        assert "/srv/data" in refused.stderr and "scratch" in refused.stderr
        assert d.api.call("ListJobs", {"jobQueue": "default", "filters": [{"name": "JOB_NAME", "values": ["*"]}]}) == {
            "jobSummaryList": []
        }

        first = d.submit_api(jobName="first", containerOverrides={"command": ["sleep", "2"]})
        second = d.submit_api(jobName="second", containerOverrides={"command": ["true"]})
        d.wait_for(first, "RUNNING", "SUCCEEDED")
        waiting = d.wait_for(second, "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
        if waiting["status"] == "RUNNABLE":  # while the first runs (it may have ended already on a slow host)
            assert waiting["statusReason"] == (
                f"POLICY:USER_LIMIT - user {daemon_owner()} runs 1 of max_running_jobs 1; needs 1"
            )
        done = d.wait_for(second, "SUCCEEDED", "FAILED")
        before = d.wait_for(first, "SUCCEEDED", "FAILED")
        assert (before["status"], done["status"]) == ("SUCCEEDED", "SUCCEEDED")
        assert d.held_from(second) >= before["stoppedAt"]
