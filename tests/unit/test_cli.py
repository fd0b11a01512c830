"""The CLI's bad-input paths and offline commands, through Typer's runner (no engine needed)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localbatch import bootstrap, jobdef
from localbatch.awsbatch.jobdefinition import request_from_document
from localbatch.cli import app
from localbatch.core.jobs import Dependency, DependencyType
from localbatch.session import LocalBackend
from tests.fakes.api_world import make_world

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "jobdefs" / "hello.toml"
T0 = 1_700_000_000_000
DEAD_ENGINE = "unix:///tmp/localbatch-test-no-engine.sock"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "LOCALBATCH_HOME": str(tmp_path / "home"),
        "LOCALBATCH_CONFIG": "",
        "DOCKER_HOST": DEAD_ENGINE,
        "COLUMNS": "200",
    }
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, list(args), env=env)

    invoke.home = tmp_path / "home"
    invoke.env = env  # a test may change what the next invocation sees
    return invoke


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_validate_accepts_the_examples(cli):
    examples = sorted((REPO / "jobdefs").glob("*.toml"))
    result = cli("validate", *map(str, examples))
    assert result.exit_code == 0, result.output
    assert f"{len(examples)} valid, 0 invalid" in result.stderr


def test_validate_reports_every_problem_with_file_and_key_path(cli, tmp_path):
    bad = write(
        tmp_path,
        'name = "x"\nimage = "busybox"\nimgae = "typo"\n[resources]\nvcpus = 0\nmemory_mib = 2\n'
        '[retry]\nattempts = 11\n[environment]\nAWS_BATCH_X = "1"\n',
    )
    result = cli("validate", str(bad))
    assert result.exit_code == 2
    err = result.stderr
    assert f"{bad}: imgae: unknown key" in err and "did you mean 'image'" in err
    assert f"{bad}: resources.vcpus:" in err
    assert f"{bad}: resources.memory_mib:" in err and "4" in err
    assert f"{bad}: retry.attempts:" in err and "10" in err
    assert f"{bad}: environment.AWS_BATCH_X:" in err
    assert "0 valid, 1 invalid" in err


def test_malformed_toml_names_line_and_column(cli, tmp_path):
    result = cli("validate", str(write(tmp_path, 'name = "x"\nimage = \n')))
    assert result.exit_code == 2 and "line 2" in result.stderr and "column" in result.stderr


def test_validate_strict_refuses_what_aws_would(cli, tmp_path):
    text = HELLO.read_text().replace("attempt_duration_seconds = 60", "attempt_duration_seconds = 5")
    short = write(tmp_path, text)
    relaxed = cli("validate", str(short))
    assert relaxed.exit_code == 0 and "below AWS Batch's minimum of 60 seconds" in relaxed.stderr
    strict = cli("validate", "--strict", str(short))
    assert strict.exit_code == 2
    report = json.loads(cli("validate", "--json", str(short)).stdout)
    assert report[0]["problems"] == [] and report[0]["warnings"][0].startswith("timeout.attempt_duration_seconds")


def test_run_with_an_invalid_file_exits_2_before_touching_anything(cli, tmp_path):
    result = cli("run", str(write(tmp_path, 'name = "x"\n')))
    assert result.exit_code == 2 and "image" in result.stderr
    assert not cli.home.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--env", "AWS_BATCH_JOB_ID=x"],
            "--env AWS_BATCH_JOB_ID: names starting with AWS_BATCH are reserved",
        ),
        (["--param", "novalue"], "--param 'novalue': expected NAME=VALUE"),
        (["--command", "sh -c 'unterminated"], "--command: No closing quotation"),
        (["--attempts", "11"], "--attempts: must be between 1 and 10, got 11"),
        (["--array-size", "1"], "--array-size: must be between 2 and 10000, got 1"),
        (["--array-size", "10001"], "--array-size: must be between 2 and 10000, got 10001"),
        (["--depends-on", ""], "--depends-on '': expected JOB_ID, JOB_ID:N_TO_N or SEQUENTIAL"),
        (["--depends-on", "SEQUENTIAL"], "--depends-on 'SEQUENTIAL': SEQUENTIAL applies to array jobs only"),
        (["--depends-on", "a:N_TO_N"], "--depends-on 'a:N_TO_N': N_TO_N applies to array jobs only"),
        (
            ["--array-size", "2", "--depends-on", "a:sequential"],
            "--depends-on 'a:sequential': SEQUENTIAL orders this array's own children and names no job",
        ),
        (["--array-size", "2", "--depends-on", ":N_TO_N"], "N_TO_N needs a job id: JOB_ID:N_TO_N"),
        (["--depends-on", "x"] * 21, "--depends-on: at most 20, got 21"),
        (["--share-identifier", "s" * 256], "--share-identifier: at most 255 characters, got 256"),
        (["--scheduling-priority", "-1"], "--scheduling-priority: must be between 0 and 9999, got -1"),
        (["--tag", "novalue"], "--tag 'novalue': expected NAME=VALUE"),
        (["--tag", "aws:team=x"], "--tag aws:team: tag keys starting with 'aws:' are reserved for AWS"),
        (["--tag", "k=" + "v" * 257], "--tag k: tag values must be at most 256 characters, got 257"),
        (["--retry-on-exit", "exit"], "--retry-on-exit 'exit': 'exit': expected FIELD=PATTERN pairs"),
        (["--retry-on-exit", "on_exit_code=3"], "action is required: action=RETRY or action=EXIT"),
        (["--retry-on-exit", "action=later"], 'action: "later" is not allowed; allowed: "retry", "exit"'),
        (["--retry-on-exit", "action=EXIT,on_exit_code=3x"], 'on_exit_code: "3x" is not a valid pattern'),
        (["--retry-on-exit", "action=EXIT,onReason=a;b"], 'on_reason: "a;b" is not a valid pattern'),
        (["--retry-on-exit", "action=EXIT,action=RETRY"], "action is given twice"),
        (["--retry-on-exit", "action=EXIT,colour=red"], "'colour=red': expected FIELD=PATTERN pairs"),
        (["--retry-on-exit", "action=EXIT"] * 6, "--retry-on-exit: at most 5 evaluate_on_exit rules, got 6"),
    ],
)
def test_run_refuses_bad_overrides_with_exit_2(cli, args, message):
    result = cli("run", str(HELLO), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (cli.home / "state.db").exists() or "hello" not in cli("ls").stdout


def test_submit_by_name_needs_attempts_with_retry_rules(cli):
    result = cli("submit", "hello", "--retry-on-exit", "action=EXIT,on_exit_code=3")
    assert result.exit_code == 2
    assert "--retry-on-exit: needs --attempts when the definition is given by name" in result.stderr


@pytest.fixture
def world_backend(monkeypatch):
    """``submit`` and ``run`` talk to the daemon's API in this process, on an in-memory store."""
    world = make_world()

    @contextmanager
    def backend(settings, *, run_here=False):
        yield LocalBackend(world.api, None, None, writable=True)

    monkeypatch.setattr(bootstrap, "backend", backend)
    return world


def test_submit_sends_every_submitjob_override(cli, world_backend):
    world = world_backend
    policy = world.call("CreateSchedulingPolicy", {"name": "fair", "fairsharePolicy": {}})["arn"]
    order = [{"order": 1, "computeEnvironment": "local"}]
    queue = {"jobQueueName": "fq", "priority": 1, "computeEnvironmentOrder": order, "schedulingPolicyArn": policy}
    world.call("CreateJobQueue", queue)
    first = json.loads(cli("submit", str(HELLO), "--json").stdout)["jobId"]
    result = cli(
        "submit",
        str(HELLO),
        "--json",
        "--queue",
        "fq",
        "--array-size",
        "3",
        "--depends-on",
        first,
        "--depends-on",
        "sequential",
        "--share-identifier",
        "teamA",
        "--scheduling-priority",
        "7",
        "--tag",
        "owner=me",
        "--tag",
        "run=2",
        "--no-propagate-tags",
        "--attempts",
        "4",
        "--retry-on-exit",
        "action=RETRY,onStatusReason=Host EC2*",
        "--retry-on-exit",
        "action=exit,on_reason=*",
        "--timeout",
        "90",
    )
    assert result.exit_code == 0, result.output
    job_id = json.loads(result.stdout)["jobId"]
    detail = world.describe(job_id)
    assert detail["tags"] == {"owner": "me", "run": "2"}
    assert detail["schedulingPriority"] == 7 and detail["propagateTags"] is False
    assert detail["timeout"] == {"attemptDurationSeconds": 90}
    assert detail["retryStrategy"] == {
        "attempts": 4,
        "evaluateOnExit": [
            {"action": "RETRY", "onStatusReason": "Host EC2*"},
            {"action": "EXIT", "onReason": "*"},
        ],
    }
    job = world.store.get_job(job_id)
    assert job.array_size == 3 and job.share_identifier == "teamA"
    assert job.depends_on == (Dependency(first, None), Dependency(None, DependencyType.SEQUENTIAL))


def test_retry_on_exit_replaces_the_definitions_rules_and_keeps_its_attempts(cli, world_backend):
    flaky = REPO / "jobdefs" / "flaky.toml"  # attempts = 3, two rules
    result = cli("submit", str(flaky), "--json", "--retry-on-exit", "action=EXIT,on_exit_code=1")
    assert result.exit_code == 0, result.output
    detail = world_backend.describe(json.loads(result.stdout)["jobId"])
    assert detail["retryStrategy"] == {"attempts": 3, "evaluateOnExit": [{"action": "EXIT", "onExitCode": "1"}]}


def test_a_short_timeout_is_warned_about_however_it_is_given(cli, world_backend, tmp_path):
    warning = "warning: not portable to AWS Batch: timeout.attempt_duration_seconds: 5 is below AWS Batch's minimum"
    assert warning in cli("submit", str(HELLO), "--timeout", "5").stderr
    cli("register", str(HELLO))
    by_name = cli("submit", "hello", "--timeout", "5")
    assert by_name.exit_code == 0 and warning in by_name.stderr
    short = write(tmp_path, HELLO.read_text().replace("attempt_duration_seconds = 60", "attempt_duration_seconds = 5"))
    assert warning in cli("submit", str(short)).stderr
    registered = cli("register", str(short)).stderr
    assert f"warning: {short}: not portable to AWS Batch: timeout.attempt_duration_seconds: 5 is below" in registered
    assert "warning" not in cli("submit", str(HELLO), "--timeout", "60").stderr


def test_export_refuses_a_timeout_aws_would_refuse(cli, tmp_path):
    short = write(tmp_path, HELLO.read_text().replace("attempt_duration_seconds = 60", "attempt_duration_seconds = 59"))
    result = cli("export", str(short))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{short}: timeout.attempt_duration_seconds: 59 is below AWS Batch's minimum of 60 seconds" in result.stderr


def test_several_problems_each_get_their_own_error_line(cli):
    result = cli("run", str(HELLO), "--vcpus", "0", "--gpus", "-1")
    assert result.stderr.splitlines() == [
        "error: --vcpus: must be greater than 0, got 0",
        "error: --gpus: must be 0 or more, got -1",
    ]


def test_brackets_in_user_text_are_printed_not_read_as_markup(cli, tmp_path):
    bad = write(tmp_path, 'name = "x"\nimage = "i"\n')
    result = cli("validate", str(bad))
    assert "AWS Batch needs [resources] vcpus and memory_mib" in result.stderr
    assert cli("run", str(HELLO), "--env", "AWS_BATCH_[/x]=1").exit_code == 2


def test_run_without_an_engine_says_so_in_one_line(cli):
    result = cli("run", str(HELLO))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0] and DEAD_ENGINE in lines[0]
    assert "Traceback" not in result.output


def test_bad_config_names_the_variable(cli, monkeypatch):
    monkeypatch.setenv("LOCALBATCH_CPU_LIMIT", "lots")
    result = cli("ls")
    assert result.exit_code == 2
    assert "docker.cpu_limit (or LOCALBATCH_CPU_LIMIT): a string 'lots' is not allowed" in result.stderr


def test_bad_config_file_speaks_plainly(cli, tmp_path):
    config_file = write(tmp_path, 'docker = 3\n[host]\nreserve_vcpus = "two"\nextra = 1\n', "cfg.toml")
    cli.env["LOCALBATCH_CONFIG"] = str(config_file)
    result = cli("ls")
    assert result.exit_code == 2
    assert f"{config_file}: docker: expected a table, got an integer 3" in result.stderr
    assert f"{config_file}: host.extra: unknown key 'extra'" in result.stderr
    assert f"{config_file}: host.reserve_vcpus (or LOCALBATCH_RESERVE_VCPUS): expected a number" in result.stderr
    assert "Input should" not in result.stderr


def test_a_home_that_is_a_file_is_a_configuration_error(tmp_path):
    home = write(tmp_path, "", "not-a-dir")
    result = CliRunner().invoke(app, ["ls"], env={"LOCALBATCH_HOME": str(home), "LOCALBATCH_CONFIG": ""})
    assert result.exit_code == 2 and f"LOCALBATCH_HOME {home} is not a directory" in result.stderr


def test_ls_and_describe_on_an_empty_home(cli):
    assert cli("ls").exit_code == 0
    assert json.loads(cli("ls", "--json").stdout) == {"jobSummaryList": []}
    missing = cli("describe", "nope")  # an unknown id is a refused request: exit 2
    assert missing.exit_code == 2 and "job 'nope' does not exist" in missing.stderr
    assert cli("logs", "nope").exit_code == 2
    assert cli("ls", "--status", "DONE").exit_code == 2


def test_export_prints_the_register_request(cli):
    result = cli("export", str(HELLO))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == request_from_document(jobdef.read_document(HELLO))
    unknown = cli("export", str(HELLO), "--format", "yaml")
    assert unknown.exit_code == 2
    assert "--format: 'yaml' is not supported; allowed: aws-json, cloudformation, terraform" in unknown.stderr


def test_import_turns_aws_json_back_into_the_same_definition(cli, tmp_path):
    request = write(tmp_path, cli("export", str(HELLO)).stdout, "hello.json")
    out = tmp_path / "hello.toml"
    result = cli("import", str(request), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert jobdef.load_file(out) == jobdef.load_file(HELLO)
    broken = cli("import", str(write(tmp_path, "{nope", "bad.json")))
    assert broken.exit_code == 2 and "not valid JSON" in broken.stderr
    array = cli("import", str(write(tmp_path, "[1, 2]", "array.json")))
    assert array.exit_code == 2 and "expected a JSON object (a job definition), got an array" in array.stderr
    unwritable = cli("import", str(request), "-o", str(tmp_path / "no" / "such" / "dir.toml"))
    assert unwritable.exit_code == 2 and "cannot write" in unwritable.stderr
    assert "Traceback" not in array.output + unwritable.output


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("localbatch ")


@pytest.mark.parametrize(
    "args",
    [["submit", "hello"], ["register", str(HELLO)], ["cancel", "some-job"], ["terminate", "some-job"]],
    ids=["submit", "register", "cancel", "terminate"],
)
def test_what_needs_the_daemon_says_so_and_how_to_start_one(cli, args):
    result = cli(*args)
    assert result.exit_code == 1
    assert "no localbatch daemon answers at" in result.stderr and "localbatch daemon start" in result.stderr


def test_daemon_status_and_stop_without_a_daemon(cli):
    status = cli("daemon", "status")
    assert status.exit_code == 1 and "no localbatch daemon runs for" in status.stderr
    stop = cli("daemon", "stop")
    assert stop.exit_code == 1 and "no localbatch daemon runs for" in stop.stderr


class ScriptedBackend:
    """The daemon's API as ``run`` sees it, for one array job moving through ``steps``: each
    look (a read of the events endpoint, once per poll) moves to the next step; DescribeJobs
    and the events endpoint answer that step's JobDetail and events."""

    def __init__(self, steps):
        self.steps = steps
        self.step = -1
        self.submitted = []

    def _now(self):
        return self.steps[min(max(self.step, 0), len(self.steps) - 1)]

    def call(self, operation, body=None):
        if operation == "DescribeJobDefinitions":
            return {"jobDefinitions": []}
        if operation == "RegisterJobDefinition":
            return {"jobDefinitionName": "hello", "revision": 1, "jobDefinitionArn": "arn"}
        if operation == "SubmitJob":
            self.submitted.append(body)
            return {"jobId": "p1", "jobName": "hello", "jobArn": "arn"}
        assert operation == "DescribeJobs", operation
        return {"jobs": [self._now()[0]]}

    def get(self, path, params=None):
        self.step += 1
        return {"events": self._now()[1]}

    def stream(self, path, params=None):
        return iter([])  # a parent has no output of its own


def test_run_of_an_array_job_waits_for_the_parent_and_prints_its_progress(cli, monkeypatch):
    def parent(status, counts):
        return {
            "jobId": "p1",
            "jobName": "hello",
            "jobDefinition": "arn:aws:batch:us-east-1:0:job-definition/hello:1",
            "status": status,
            "arrayProperties": {"size": 3, "statusSummary": counts},
            "container": {},
        }

    events = [{"to": "SUBMITTED", "at": T0}, {"to": "PENDING", "at": T0}]
    steps = [
        (parent("PENDING", {"RUNNABLE": 3}), events),
        (parent("PENDING", {"RUNNABLE": 1, "RUNNING": 2}), events),
        (parent("PENDING", {"RUNNABLE": 1, "RUNNING": 2}), events),
        (parent("SUCCEEDED", {"SUCCEEDED": 3}), [*events, {"to": "SUCCEEDED", "at": T0}]),
    ]
    backend = ScriptedBackend(steps)

    @contextmanager
    def scripted(settings, *, run_here=False):
        yield backend

    monkeypatch.setattr(bootstrap, "backend", scripted)
    result = cli("run", str(HELLO), "--array-size", "3")
    assert result.exit_code == 0, result.output
    assert backend.submitted[0]["arrayProperties"] == {"size": 3}
    # not a terminal: plain progress lines, once per change of the counts, not once per look
    lines = [line.split(" | elapsed")[0] for line in result.stderr.splitlines() if line.startswith("3 jobs:")]
    assert lines == [
        "3 jobs: 3 RUNNABLE | done 0/3 (succeeded 0, failed 0)",
        "3 jobs: 1 RUNNABLE, 2 RUNNING | done 0/3 (succeeded 0, failed 0)",
        "3 jobs: 3 SUCCEEDED | done 3/3 (succeeded 3, failed 0)",
    ]
    transitions = [line.split()[1] for line in result.stderr.splitlines() if not line.startswith("3 jobs:")]
    assert transitions == ["SUBMITTED", "PENDING", "SUCCEEDED"]
