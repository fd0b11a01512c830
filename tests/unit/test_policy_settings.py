"""``[policy]`` in the config file (``policy_settings``): every key, and errors naming the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localbatch import config
from localbatch.core.policy import NO_POLICY, UserLimits
from localbatch.errors import ConfigError


def resolve(tmp_path: Path, text: str) -> config.Settings:
    (tmp_path / "localbatch.toml").write_text(text)
    return config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home")}, cwd=tmp_path)


def test_without_the_table_only_privilege_and_devices_are_refused(tmp_path: Path) -> None:
    settings = resolve(tmp_path, "")
    assert settings.policy == NO_POLICY
    assert not settings.policy.shared and not settings.policy.allow_privileged and not settings.policy.allow_devices


def test_an_empty_table_makes_the_host_shared_with_the_safe_defaults(tmp_path: Path) -> None:
    policy = resolve(tmp_path, "[policy]\n").policy
    assert policy.shared
    assert policy.allowed_mount_paths == ()
    assert policy.scratch_root == os.path.realpath(tmp_path / "home" / "scratch")
    assert (policy.allow_privileged, policy.allow_devices, policy.socket_group) == (False, False, None)
    assert policy.limits == UserLimits()


def test_every_key(tmp_path: Path) -> None:
    policy = resolve(
        tmp_path,
        """
[policy]
allowed_mount_paths = ["/srv/data/", "/srv/data", "/opt/models/./v1"]
allow_privileged = true
allow_devices = true
max_running_vcpus = 8.5
max_running_gpus = 1
max_running_jobs = 4
admins = ["alice"]
admin_groups = ["wheel"]
socket_group = "batchusers"
""",
    ).policy
    assert policy.allowed_mount_paths == ("/srv/data", "/opt/models/v1")
    assert policy.allow_privileged and policy.allow_devices
    assert policy.limits == UserLimits(8.5, 1, 4)
    assert policy.admins == {"alice"} and policy.admin_groups == {"wheel"}
    assert policy.socket_group == "batchusers"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("allowed_mount_paths = ['data']", "policy.allowed_mount_paths[0]: 'data' is not an absolute path"),
        ("allowed_mount_paths = ['/']", "policy.allowed_mount_paths[0]: '/' would allow every host path"),
        ("allow_privileged = 'yes'", "policy.allow_privileged"),
        ("max_running_vcpus = 0", "policy.max_running_vcpus"),
        ("max_running_jobs = 0", "policy.max_running_jobs"),
        ("max_running_gpus = -1", "policy.max_running_gpus"),
        ("admins = ['a b']", "policy.admins[0]: 'a b' is not a user or group name"),
        ("socket_group = '-x'", "policy.socket_group: '-x' is not a group name"),
        ("allow_host_network = true", "policy.allow_host_network"),
    ],
)
def test_a_bad_key_or_value_names_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve(tmp_path, f"[policy]\n{text}\n")
    assert message in str(caught.value)
    assert str(tmp_path / "localbatch.toml") in str(caught.value)
