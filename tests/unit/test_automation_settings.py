"""[[webhooks]], [[hooks]], [[schedules]], [[triggers]] and [events] in the config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from localbatch import config
from localbatch.core.schedule_expr import Cron, Rate
from localbatch.errors import ConfigError


def resolve(tmp_path: Path, text: str) -> config.Settings:
    (tmp_path / "localbatch.toml").write_text(text)
    return config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home")}, cwd=tmp_path)


def test_everything_parses_into_settings(tmp_path: Path) -> None:
    settings = resolve(
        tmp_path,
        """
[events]
queue_size = 10

[[webhooks]]
url = "https://example.invalid/hook"
statuses = ["FAILED"]
max_attempts = 2
backoff_seconds = 0.5
headers = { Authorization = "Bearer x" }

[[hooks]]
name = "log"
command = ["sh", "-c", "cat"]

[[schedules]]
name = "nightly"
expression = "cron(0 2 ? * MON-FRI *)"
job_definition = "render:3"
parameters = { scene = "city" }
vcpus = 2
catch_up = false

[[schedules]]
name = "often"
expression = "rate(15 minutes)"
job_definition = "hello"
state = "DISABLED"

[[triggers]]
name = "after-train"
on_statuses = ["SUCCEEDED"]
job_name_prefix = "train-"
job_definition = "evaluate"
job_name = "evaluation"
""",
    )
    automation = settings.automation
    assert automation.queue_size == 10
    [hook] = automation.webhooks
    assert (hook.name, hook.backoff.max_attempts, hook.backoff.base_ms, hook.headers) == (
        "webhook-1",
        2,
        500,
        {"Authorization": "Bearer x"},
    )
    assert hook.filter.statuses == {"FAILED"} and automation.hooks[0].command == ("sh", "-c", "cat")
    nightly, often = automation.schedules
    assert isinstance(nightly.expression, Cron) and isinstance(often.expression, Rate)
    assert (nightly.catch_up, nightly.submission.job_name, nightly.submission.overrides.vcpus) == (False, "nightly", 2)
    assert not often.enabled
    [trigger] = automation.triggers
    assert trigger.filter.job_name_prefix == "train-" and trigger.submission.job_name == "evaluation"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[[schedules]]\nname = "n"\nexpression = "cron(0 2 * * * *)"\njob_definition = "x"',
            "localbatch.toml: schedules[0].expression: cron(0 2 * * * *): exactly one of day-of-month",
        ),
        (
            '[[schedules]]\nname = "n"\nexpression = "rate(1 hours)"\njob_definition = "x"',
            "schedules[0].expression: rate(1 hours): with 1 the unit is 'hour'",
        ),
        ('[[schedules]]\nname = "n"\nexpression = "rate(1 hour)"', "schedules[0].job_definition: required key"),
        ('[[triggers]]\nname = "t"\njob_definition = "x"', "triggers[0].on_statuses: required key is missing"),
        ('[[webhooks]]\nurl = "ftp://x"', "webhooks[0].url: 'ftp://x' is not an http:// or https:// URL"),
        ('[[webhooks]]\nurl = "http://x"\nstatuses = ["DONE"]', "webhooks[0].statuses[0]"),
        ("[[hooks]]\ncommand = []", "hooks[0].command"),
        ('[[webhooks]]\nurl = "http://x"\nretries = 3', "webhooks[0].retries: unknown key"),
        (
            '[[schedules]]\nname = "a"\nexpression = "rate(1 day)"\njob_definition = "x"\n'
            '[[triggers]]\nname = "a"\non_statuses = ["FAILED"]\njob_definition = "x"',
            "schedules and triggers: the name 'a' is used more than once",
        ),
    ],
)
def test_mistakes_name_the_file_the_key_and_what_is_allowed(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        resolve(tmp_path, text)
    assert says in str(raised.value)
    assert str(tmp_path / "localbatch.toml") in str(raised.value)
