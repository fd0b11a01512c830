"""Settings: defaults, the file, the environment; compute environments and queues; paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from localbatch import config
from localbatch.core.infra import JobQueue, SchedulingPolicy, ShareWeight, State
from localbatch.errors import ConfigError


def resolve(tmp_path: Path, text: str | None = None, **env: str) -> config.Settings:
    if text is not None:
        (tmp_path / "localbatch.toml").write_text(text)
    return config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home"), **env}, cwd=tmp_path)


def test_defaults_are_one_local_environment_and_one_default_queue(tmp_path: Path) -> None:
    settings = resolve(tmp_path)
    assert settings.compute_environments == (config.EnvironmentSettings("local"),)
    assert settings.job_queues == (JobQueue("default", 1, ("local",)),)
    assert settings.region == "us-east-1" and settings.max_head_wait_s == 60


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path, "region = 'eu-west-1'\n[docker]\nimage_pull = 'never'\n", LOCALBATCH_IMAGE_PULL="always"
    )
    assert settings.region == "eu-west-1" and settings.image_pull == "always"


def test_declared_environments_and_queues(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path,
        """
[[compute_environments]]
name = "cpu"
max_vcpus = 4
[[compute_environments]]
name = "gpu"
gpus = ["0"]
state = "DISABLED"
[[job_queues]]
name = "train"
priority = 5
compute_environments = ["gpu", "cpu"]
""",
    )
    cpu, gpu = settings.compute_environments
    assert cpu == config.EnvironmentSettings("cpu", max_vcpus=4, gpu_ids=())  # declared: no GPUs unless listed
    assert gpu.gpu_ids == ("0",) and gpu.state is State.DISABLED
    assert settings.job_queues == (JobQueue("train", 5, ("gpu", "cpu")),)


def test_without_declared_queues_a_default_queue_uses_the_declared_environments(tmp_path: Path) -> None:
    settings = resolve(tmp_path, "[[compute_environments]]\nname = 'a'\n[[compute_environments]]\nname = 'b'\n")
    assert settings.job_queues == (JobQueue("default", 1, ("a", "b")),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[compute_environments]]\nname = 'a'\n[[compute_environments]]\nname = 'a'\n",
            "compute_environments: the name 'a' is used more than once",
        ),
        (
            "[[job_queues]]\nname = 'q'\ncompute_environments = ['nope']\n",
            "job_queues[0].compute_environments[0]: no compute environment is named 'nope'; declared: local",
        ),
        (
            "[[compute_environments]]\nname = 'a'\ngpus = ['0']\n[[compute_environments]]\nname = 'b'\ngpus = ['0']\n",
            "compute_environments: GPU '0' is in both 'a' and 'b'",
        ),
        (
            "[[compute_environments]]\nname = 'bad name'\n",
            "compute_environments[0].name: 'bad name' is not a name AWS allows: 1 to 128 letters",
        ),
        (
            "[[job_queues]]\nname = 'q'\ncompute_environments = []\n",
            "job_queues[0].compute_environments: must have at least 1 item(s)",
        ),
        ("[scheduler]\nmax_head_wait_seconds = -1\n", "scheduler.max_head_wait_seconds: must be at least 0, got -1"),
        ("colour = 'blue'\n", "colour: unknown key 'colour'"),
    ],
    ids=["duplicate", "unknown-environment", "shared-gpu", "bad-name", "no-environments", "negative-wait", "unknown"],
)
def test_bad_infrastructure_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(tmp_path, text)


def test_a_socket_path_too_long_for_unix_falls_back_to_a_short_one(tmp_path: Path) -> None:
    short = resolve(tmp_path)
    assert short.socket_path == (tmp_path / "home").resolve() / "daemon.sock"
    deep = tmp_path / ("d" * 120)
    long = config.resolve(env={"LOCALBATCH_HOME": str(deep)}, cwd=tmp_path)
    assert long.socket_path.name == f"localbatch-{long.home_id}.sock" and len(str(long.socket_path)) < 104


def test_prepare_home_creates_it_and_refuses_a_file(tmp_path: Path) -> None:
    settings = resolve(tmp_path)
    settings.prepare_home()
    assert settings.home.is_dir()
    (tmp_path / "file").write_text("")
    as_file = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "file")}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="is not a directory"):
        as_file.prepare_home()


FAIR = """
[[scheduling_policies]]
name = "teams"
share_decay_seconds = 3600
compute_reservation = 25
[[scheduling_policies.share_distribution]]
share_identifier = "ml*"
weight_factor = 0.5
[[scheduling_policies.share_distribution]]
share_identifier = "web"

[[job_queues]]
name = "shared"
compute_environments = ["local"]
scheduling_policy = "teams"
"""


def test_declared_scheduling_policies_and_fair_share_queues(tmp_path: Path) -> None:
    settings = resolve(tmp_path, FAIR)
    assert settings.scheduling_policies == (
        SchedulingPolicy("teams", 3600, 25, (ShareWeight("ml*", 0.5), ShareWeight("web", 1.0))),
    )
    assert settings.job_queues == (JobQueue("shared", 1, ("local",), scheduling_policy="teams"),)


def test_declared_policies_are_applied_before_the_queues_naming_them(tmp_path: Path) -> None:
    from localbatch.daemon.startup import apply_infrastructure
    from tests.fakes.host import FakeHostProbe
    from tests.fakes.store import InMemoryStateStore

    store = InMemoryStateStore()
    apply_infrastructure(resolve(tmp_path, FAIR), store, FakeHostProbe().probe())
    assert [p.name for p in store.list_scheduling_policies()] == ["teams"]
    queue = store.get_job_queue("shared")
    assert queue is not None and queue.scheduling_policy == "teams"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[job_queues]]\nname = 'q'\ncompute_environments = ['local']\nscheduling_policy = 'nope'\n",
            "job_queues[0].scheduling_policy: no scheduling policy is named 'nope'; declared: none",
        ),
        (
            "[[scheduling_policies]]\nname = 'p'\n[[scheduling_policies.share_distribution]]\n"
            "share_identifier = 'a'\nweight_factor = 0\n",
            "scheduling_policies[0].share_distribution[0].weight_factor: must be 0.0001 to 999.9999, got 0",
        ),
        (
            "[[scheduling_policies]]\nname = 'p'\n[[scheduling_policies.share_distribution]]\n"
            "share_identifier = 'UserA*'\n[[scheduling_policies.share_distribution]]\nshare_identifier = 'UserA1'\n",
            "scheduling_policies[0].share_distribution[1].share_identifier: 'UserA1' overlaps",
        ),
        (
            "[[scheduling_policies]]\nname = 'p'\ncompute_reservation = 100\n",
            "scheduling_policies[0].compute_reservation: must be 0 to 99 (percent), got 100",
        ),
        (
            "[[scheduling_policies]]\nname = 'p'\nshare_decay = 5\n",
            "scheduling_policies[0].share_decay: unknown key",
        ),
        (
            "[[scheduling_policies]]\nname = 'p'\n[[scheduling_policies]]\nname = 'p'\n",
            "scheduling_policies: the name 'p' is used more than once",
        ),
    ],
    ids=["unknown-policy", "zero-weight", "overlap", "reservation-100", "unknown-key", "duplicate"],
)
def test_bad_scheduling_policies_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve(tmp_path, text)


def test_declared_consumable_resources_are_created_once_and_keep_their_quantity(tmp_path: Path) -> None:
    from localbatch.core.consumables import ConsumableResource, ResourceType
    from localbatch.daemon.startup import apply_infrastructure
    from tests.fakes.host import FakeHostProbe
    from tests.fakes.store import InMemoryStateStore

    text = '[[consumable_resources]]\nname = "quota"\ntotal_quantity = 5\nresource_type = "NON_REPLENISHABLE"\n'
    settings = resolve(tmp_path, text)
    assert settings.consumable_resources == (ConsumableResource("quota", 5, ResourceType.NON_REPLENISHABLE),)
    store = InMemoryStateStore()
    apply_infrastructure(settings, store, FakeHostProbe().probe(), now_ms=1_000)
    assert store.get_consumable_resource("quota") == ConsumableResource(
        "quota", 5, ResourceType.NON_REPLENISHABLE, 1_000
    )
    store.update_consumable_total("quota", lambda r: 2)  # jobs used some up
    apply_infrastructure(settings, store, FakeHostProbe().probe(), now_ms=2_000)  # a restart
    found = store.get_consumable_resource("quota")
    assert found is not None and (found.total_quantity, found.created_at) == (2, 1_000)


def test_a_bad_consumable_resource_names_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"localbatch.toml: consumable_resources\[0\]\.total_quantity: 0 to .*got -1"):
        resolve(tmp_path, '[[consumable_resources]]\nname = "x"\ntotal_quantity = -1\n')
