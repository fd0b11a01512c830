"""The CLI's bad-input paths and offline commands, through Typer's runner (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localbatch import jobdef
from localbatch.awsbatch.jobdefinition import to_register_request
from localbatch.cli import app

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "jobdefs" / "hello.toml"
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
    ],
)
def test_run_refuses_bad_overrides_with_exit_2(cli, args, message):
    result = cli("run", str(HELLO), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (cli.home / "state.db").exists() or "hello" not in cli("ls").stdout


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
    assert json.loads(result.stdout) == to_register_request(jobdef.load_file(HELLO))
    assert cli("export", str(HELLO), "--format", "terraform").exit_code == 2


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
