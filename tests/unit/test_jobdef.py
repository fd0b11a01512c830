"""The job definition TOML: parsing, every rule with its key path, and writing it back."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from localbatch import jobdef
from localbatch.core import portability
from localbatch.core.definition import FargateSettings, JobDefinition, PlatformCapability
from localbatch.core.resources import Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import Device, LinuxParameters, MountPoint, Tmpfs, Ulimit, Volume
from localbatch.errors import JobDefinitionError, Problem
from tests.strategies import FULL_TOML, job_definitions

MINIMAL: dict[str, Any] = {
    "name": "render",
    "image": "busybox:1.36",
    "resources": {"vcpus": 1, "memory_mib": 512},
}
RESERVED = "names starting with AWS_BATCH are reserved for the variables AWS Batch sets"
BUCKET_RULE = "must name a bucket: s3://BUCKET/KEY, where BUCKET is 3-63 lower-case letters, digits, '.' and '-'"
TOP_LEVEL_KEYS = (
    "name, type, image, command, platform_capabilities, scheduling_priority, propagate_tags, user, "
    "privileged, readonly_root_filesystem, job_role_arn, execution_role_arn, resources, parameters, "
    "environment, retry, timeout, linux_parameters, log_configuration, fargate, tags, volumes, "
    "mount_points, ulimits, inputs, outputs, s3_access, consumable_resources"
)


def document(**changes: Any) -> dict[str, Any]:
    """MINIMAL with top-level keys replaced; a value of None removes the key."""
    doc = copy.deepcopy(MINIMAL)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.parse_document(doc, "job.toml")
    assert caught.value.source == "job.toml"
    return [str(p) for p in caught.value.problems]


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "job.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- what a valid file becomes ---------------------------------------------------------------
def test_minimal_document_takes_the_defaults() -> None:
    definition = jobdef.parse_document(MINIMAL, "job.toml")
    assert definition.name == "render"
    assert definition.type == "container"
    assert definition.container.image == "busybox:1.36"
    assert definition.container.resources == Resources(vcpus=1.0, memory_mib=512, gpus=0)
    assert definition.platform_capabilities == (PlatformCapability.EC2,)
    assert definition.retry_strategy == RetryStrategy(attempts=1)
    assert definition.timeout_s is None
    assert definition.fargate is None


def test_full_file_loads_every_key(tmp_path: Path) -> None:
    d = jobdef.load_file(write(tmp_path, FULL_TOML))
    c = d.container
    assert c.command == ("sh", "-c", "echo Ref::greeting")
    assert c.environment == {"STAGE": "dev", "MY VAR": "x y"}
    assert c.resources == Resources(vcpus=2.0, memory_mib=4096, gpus=1)
    assert (c.user, c.privileged, c.readonly_root_filesystem) == ("1000:1000", True, True)
    assert d.retry_strategy == RetryStrategy(
        attempts=3,
        evaluate_on_exit=(
            EvaluateOnExit(RetryAction.RETRY, on_status_reason="Host EC2*"),
            EvaluateOnExit(RetryAction.EXIT, on_reason="*", on_exit_code="137"),
        ),
    )
    assert c.linux_parameters == LinuxParameters(
        devices=(Device("/dev/fuse", "/dev/fuse", ("READ", "WRITE")),),
        init_process_enabled=True,
        shared_memory_size_mib=64,
        tmpfs=(Tmpfs("/run/scratch", 128, ("rw", "noexec")),),
        max_swap_mib=1024,
        swappiness=10,
    )
    assert c.volumes == (Volume("scratch", "/tmp/scratch"), Volume("cache", None))
    assert c.mount_points == (
        MountPoint("scratch", "/scratch"),
        MountPoint("cache", "/cache", read_only=True),
    )
    assert c.ulimits == (Ulimit("nofile", 1024, 4096),)
    assert d.timeout_s == 600
    assert (d.scheduling_priority, d.propagate_tags, d.tags) == (10, True, {"team": "graphics"})
    assert d.log_configuration is not None and d.log_configuration.options == {"awslogs-group": "/aws/batch/render"}
    assert d.fargate == FargateSettings("LATEST", "ENABLED", 50, "ARM64", "LINUX")
    assert [(i.source, i.path) for i in d.container.inputs] == [("s3://bucket/data/in.csv", "/data/in.csv")]
    assert [(o.path, o.destination) for o in d.container.outputs] == [
        ("/data/out/", "s3://bucket/results/${AWS_BATCH_JOB_ID}/")
    ]


@pytest.mark.parametrize("action", ["retry", "RETRY", "Retry", "exit", "EXIT", "eXiT"])
def test_retry_action_is_case_insensitive(action: str) -> None:
    retry = {"attempts": 2, "evaluate_on_exit": [{"action": action}]}
    rule = jobdef.parse_document(document(retry=retry), "job.toml").retry_strategy.evaluate_on_exit[0]
    assert rule.action is RetryAction(action.upper())


def test_fractional_vcpus_and_short_timeouts_run_locally_with_warnings() -> None:
    d = jobdef.parse_document(
        document(resources={"vcpus": 0.5, "memory_mib": 512}, timeout={"attempt_duration_seconds": 5}),
        "job.toml",
    )
    assert d.container.resources.vcpus == 0.5
    assert d.timeout_s == 5
    problems = portability.definition_problems(d)
    assert [p.path for p in problems] == ["timeout.attempt_duration_seconds", "resources.vcpus"]


def test_an_empty_fargate_table_says_nothing() -> None:
    assert jobdef.parse_document(document(fargate={}), "job.toml").fargate is None


def test_ulimit_minus_one_means_unlimited() -> None:
    d = jobdef.parse_document(document(ulimits=[{"name": "memlock", "soft_limit": -1, "hard_limit": -1}]), "j")
    assert d.container.ulimits == (Ulimit("memlock", -1, -1),)


# -- every rule names its key path -----------------------------------------------------------
RULES = [
    # name, type, image, command
    ({"name": "a" * 129}, "name: must be at most 128 characters, got 129"),
    ({"name": "my job!"}, "name: may contain only letters, digits, '-' and '_'; found ' ', '!'"),
    ({"name": ""}, "name: must not be empty"),
    ({"name": None}, "name: required key is missing"),
    ({"type": "array"}, 'type: "array" is not allowed; allowed: "container", "multinode"'),
    ({"image": None}, 'image: required; the container image to run, e.g. image = "busybox:1.36"'),
    ({"image": ""}, "image: must not be empty"),
    ({"image": "i" * 256}, "image: must be at most 255 characters, got 256"),
    ({"command": "echo hi"}, "command: expected an array, got a string 'echo hi'"),
    ({"command": ["echo", ""]}, "command[1]: arguments must not be empty strings"),
    ({"command": ["sleep", 10]}, "command[1]: expected a string, got an integer 10"),
    # environment, parameters
    (
        {"environment": {"AWS_BATCH_JOB_ID": "x"}},
        f"environment.AWS_BATCH_JOB_ID: {RESERVED}",
    ),
    ({"environment": {"COUNT": 3}}, "environment.COUNT: expected a string, got an integer 3"),
    ({"environment": {"MY VAR": True}}, 'environment."MY VAR": expected a string, got a boolean true'),
    ({"environment": {"A=B": "x"}}, "environment.\"A=B\": environment variable names must not contain '='"),
    ({"parameters": {"n": 1.5}}, "parameters.n: expected a string, got a number 1.5"),
    # retry
    ({"retry": {"attempts": 0}}, "retry.attempts: must be between 1 and 10, got 0"),
    ({"retry": {"attempts": 11}}, "retry.attempts: must be between 1 and 10, got 11"),
    ({"retry": {"attempts": "3"}}, "retry.attempts: expected an integer, got a string '3'"),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "exit"}] * 6}},
        "retry.evaluate_on_exit: at most 5 evaluate_on_exit rules, got 6",
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "again"}]}},
        'retry.evaluate_on_exit[0].action: "again" is not allowed; allowed: "retry", "exit"',
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"on_exit_code": "1"}]}},
        "retry.evaluate_on_exit[0].action: required key is missing",
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "exit", "on_exit_code": "1a"}]}},
        'retry.evaluate_on_exit[0].on_exit_code: "1a" is not a valid pattern; use digits, optionally ending '
        'with \'*\' ("13*"), or just "*"',
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "exit", "on_exit_code": "*1"}]}},
        'retry.evaluate_on_exit[0].on_exit_code: "*1" is not a valid pattern; use digits, optionally ending '
        'with \'*\' ("13*"), or just "*"',
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "exit", "on_reason": "Cannot-Pull*"}]}},
        'retry.evaluate_on_exit[0].on_reason: "Cannot-Pull*" is not a valid pattern; use letters, digits, '
        "'.', ':', spaces and tabs, optionally ending with '*'",
    ),
    (
        {"retry": {"attempts": 2, "evaluate_on_exit": [{"action": "exit", "on_status_reason": "a" * 513}]}},
        "retry.evaluate_on_exit[0].on_status_reason: must be at most 512 characters, got 513",
    ),
    (
        {"retry": {"evaluate_on_exit": [{"action": "exit"}]}},
        "retry.attempts: required when retry.evaluate_on_exit is given (AWS rule)",
    ),
    # resources
    (
        {"resources": None},
        "resources: required; AWS Batch needs [resources] vcpus and memory_mib for every job",
    ),
    (
        {"resources": {"memory_mib": 512}},
        "resources.vcpus: required; AWS Batch needs a vCPU count for every job",
    ),
    (
        {"resources": {"vcpus": 1}},
        "resources.memory_mib: required; AWS Batch needs a memory limit in MiB for every job",
    ),
    ({"resources": 4}, "resources: expected a table, got an integer 4"),
    ({"resources": {"vcpus": 0, "memory_mib": 512}}, "resources.vcpus: must be greater than 0, got 0"),
    ({"resources": {"vcpus": -1.5, "memory_mib": 512}}, "resources.vcpus: must be greater than 0, got -1.5"),
    (
        {"resources": {"vcpus": 0.0001, "memory_mib": 512}},
        "resources.vcpus: must be at least 0.001 (localbatch counts vCPUs in thousandths), got 0.0001",
    ),
    (
        {"resources": {"vcpus": "ten", "memory_mib": 512}},
        "resources.vcpus: expected a number, got a string 'ten'",
    ),
    (
        {"resources": {"vcpus": True, "memory_mib": 512}},
        "resources.vcpus: expected a number, got a boolean true",
    ),
    (
        {"resources": {"vcpus": float("inf"), "memory_mib": 512}},
        "resources.vcpus: must be a finite number, got a number inf",
    ),
    ({"resources": {"vcpus": 1, "memory_mib": 3}}, "resources.memory_mib: must be at least 4, got 3"),
    (
        {"resources": {"vcpus": 1, "memory_mib": 2**31}},
        "resources.memory_mib: must be at most 2147483647 (AWS's largest integer), got 2147483648",
    ),
    (
        {"resources": {"vcpus": 1, "memory_mib": 512.0}},
        "resources.memory_mib: expected an integer, got a number 512.0",
    ),
    (
        {"resources": {"vcpus": 1, "memory_mib": 512, "gpus": -1}},
        "resources.gpus: must be at least 0, got -1",
    ),
    # timeout, scheduling, tags, platform
    (
        {"timeout": {"attempt_duration_seconds": 0}},
        "timeout.attempt_duration_seconds: must be at least 1, got 0",
    ),
    ({"timeout": {}}, "timeout.attempt_duration_seconds: required key is missing"),
    ({"scheduling_priority": 10000}, "scheduling_priority: must be between 0 and 9999, got 10000"),
    ({"scheduling_priority": True}, "scheduling_priority: expected an integer, got a boolean true"),
    ({"propagate_tags": "yes"}, "propagate_tags: expected true or false, got a string 'yes'"),
    ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags: at most 50 tags, got 51"),
    ({"tags": {"k" * 129: "v"}}, f"tags.{'k' * 129}: tag keys must be 1 to 128 characters, got 129"),
    ({"tags": {"team": "v" * 257}}, "tags.team: must be at most 256 characters, got 257"),
    ({"tags": {"aws:owner": "me"}}, "tags.\"aws:owner\": tag keys starting with 'aws:' are reserved for AWS"),
    (
        {"platform_capabilities": ["EC2", "GPU"]},
        'platform_capabilities[1]: "GPU" is not allowed; allowed: "EC2", "FARGATE"',
    ),
    ({"platform_capabilities": []}, "platform_capabilities: must not be an empty array"),
    (
        {"platform_capabilities": ["EC2", "EC2"]},
        'platform_capabilities: each value may appear once; repeated: "EC2"',
    ),
    (
        {"platform_capabilities": ["FARGATE"], "resources": {"vcpus": 1, "memory_mib": 2048, "gpus": 1}},
        'resources.gpus: FARGATE jobs cannot use GPUs; platform_capabilities includes "FARGATE"',
    ),
    (
        {"platform_capabilities": ["FARGATE"], "linux_parameters": {"devices": [{"host_path": "/dev/fuse"}]}},
        'linux_parameters.devices: FARGATE jobs cannot use host devices; platform_capabilities includes "FARGATE"',
    ),
    # linux parameters
    (
        {"linux_parameters": {"swappiness": 101}},
        "linux_parameters.swappiness: must be between 0 and 100, got 101",
    ),
    (
        {"linux_parameters": {"shared_memory_size": 0}},
        "linux_parameters.shared_memory_size: must be at least 1, got 0",
    ),
    ({"linux_parameters": {"max_swap": -1}}, "linux_parameters.max_swap: must be at least 0, got -1"),
    (
        {"linux_parameters": {"devices": [{"host_path": "/dev/fuse", "permissions": ["READ", "EXECUTE"]}]}},
        'linux_parameters.devices[0].permissions[1]: "EXECUTE" is not allowed; allowed: "READ", "WRITE", "MKNOD"',
    ),
    (
        {"linux_parameters": {"devices": [{"host_path": "dev/fuse"}]}},
        "linux_parameters.devices[0].host_path: must be an absolute path (starting with '/'), got \"dev/fuse\"",
    ),
    (
        {"linux_parameters": {"tmpfs": [{"container_path": "/run", "size": 0}]}},
        "linux_parameters.tmpfs[0].size: must be at least 1, got 0",
    ),
    # volumes, mount points, ulimits
    (
        {
            "volumes": [{"name": "scratch"}],
            "mount_points": [{"source_volume": "scrach", "container_path": "/s"}],
        },
        'mount_points[0].source_volume: "scrach" names no volume; declared: "scratch"; did you mean "scratch"?',
    ),
    (
        {"mount_points": [{"source_volume": "data", "container_path": "/data"}]},
        'mount_points[0].source_volume: "data" names no volume; no [[volumes]] are declared',
    ),
    (
        {"volumes": [{"name": "a"}], "mount_points": [{"source_volume": "a", "container_path": "data"}]},
        "mount_points[0].container_path: must be an absolute path (starting with '/'), got \"data\"",
    ),
    (
        {
            "volumes": [{"name": "a"}],
            "mount_points": [
                {"source_volume": "a", "container_path": "/data"},
                {"source_volume": "a", "container_path": "/data"},
            ],
        },
        'mount_points[1].container_path: duplicate container path "/data"; mount_points[0] has it',
    ),
    (
        {"volumes": [{"name": "a"}, {"name": "a"}]},
        'volumes[1].name: duplicate volume name "a"; volumes[0] has it',
    ),
    (
        {"volumes": [{"name": "my vol"}]},
        "volumes[0].name: may contain only letters, digits, '-' and '_'; found ' '",
    ),
    (
        {"volumes": [{"name": "a", "host_source_path": "tmp"}]},
        "volumes[0].host_source_path: must be an absolute path (starting with '/'), got \"tmp\"",
    ),
    (
        {"ulimits": [{"name": "nofiles", "soft_limit": 1, "hard_limit": 2}]},
        'ulimits[0].name: "nofiles" is not allowed; allowed: "core", "cpu", "data", "fsize", "locks", '
        '"memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", '
        '"stack"; did you mean "nofile"?',
    ),
    (
        {"ulimits": [{"name": "nofile", "soft_limit": 4096, "hard_limit": 1024}]},
        "ulimits[0].soft_limit: must not exceed hard_limit (1024), got 4096",
    ),
    (
        {"ulimits": [{"name": "nofile", "soft_limit": -1, "hard_limit": 1024}]},
        "ulimits[0].soft_limit: must not exceed hard_limit (1024), got -1",
    ),
    (
        {"ulimits": [{"name": "nofile", "soft_limit": 1, "hard_limit": 1}] * 2},
        'ulimits[1].name: duplicate ulimit "nofile"; ulimits[0] has it',
    ),
    ({"ulimits": [{"name": "nofile", "soft_limit": 1}]}, "ulimits[0].hard_limit: required key is missing"),
    # log configuration, fargate
    (
        {"log_configuration": {"log_driver": "json"}},
        'log_configuration.log_driver: "json" is not allowed; allowed: "json-file", "syslog", "journald", '
        '"gelf", "fluentd", "awslogs", "splunk", "awsfirelens"; did you mean "json-file"?',
    ),
    (
        {"fargate": {"assign_public_ip": "enabled"}},
        'fargate.assign_public_ip: "enabled" is not allowed; allowed: "ENABLED", "DISABLED"; did you mean "ENABLED"?',
    ),
    (
        {"fargate": {"ephemeral_storage_gib": 20}},
        "fargate.ephemeral_storage_gib: must be between 21 and 200, got 20",
    ),
    (
        {"fargate": {"cpu_architecture": "arm64"}},
        'fargate.cpu_architecture: "arm64" is not allowed; allowed: "X86_64", "ARM64"; did you mean "ARM64"?',
    ),
    # inputs, outputs
    (
        {"inputs": [{"source": "https://bucket/in.csv", "path": "/in.csv"}]},
        "inputs[0].source: must be an S3 URI starting with 's3://', got \"https://bucket/in.csv\"",
    ),
    (
        {"inputs": [{"source": "s3:///in.csv", "path": "/in.csv"}]},
        f'inputs[0].source: {BUCKET_RULE}; got "s3:///in.csv"',
    ),
    (
        {"inputs": [{"source": "s3://bucket/in.csv", "path": "in.csv"}]},
        "inputs[0].path: must be an absolute path (starting with '/'), got \"in.csv\"",
    ),
    (
        {"outputs": [{"path": "/out/", "destination": "s3://Bucket/out/"}]},
        f'outputs[0].destination: {BUCKET_RULE}; got "s3://Bucket/out/"',
    ),
    (
        {"outputs": [{"path": "out/", "destination": "s3://bucket/out/"}]},
        "outputs[0].path: must be an absolute path (starting with '/'), got \"out/\"",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), RULES, ids=[expected.split(":")[0] for _, expected in RULES])
def test_rule_is_reported_with_its_key_path(changes: dict[str, Any], expected: str) -> None:
    assert problems(document(**changes)) == [expected]


def test_unknown_top_level_key_lists_the_allowed_keys_and_suggests_one() -> None:
    assert problems(document(imgae="busybox")) == [
        f"imgae: unknown key 'imgae'; allowed: {TOP_LEVEL_KEYS}; did you mean 'image'?"
    ]


def test_unknown_nested_key_suggests_the_snake_case_name_of_an_aws_key() -> None:
    assert problems(document(retry={"atempts": 3}, timeout={"attemptDurationSeconds": 60})) == [
        "retry.atempts: unknown key 'atempts'; allowed: attempts, evaluate_on_exit; did you mean 'attempts'?",
        "timeout.attempt_duration_seconds: required key is missing",
        "timeout.attemptDurationSeconds: unknown key 'attemptDurationSeconds'; "
        "allowed: attempt_duration_seconds; did you mean 'attempt_duration_seconds'?",
    ]


def test_unknown_key_without_a_close_match_gets_no_suggestion() -> None:
    assert problems(document(resources={"vcpus": 1, "memory_mib": 4, "zzz": 1})) == [
        "resources.zzz: unknown key 'zzz'; allowed: vcpus, memory_mib, gpus"
    ]


def test_every_shape_problem_is_reported_at_once() -> None:
    doc = document(
        name="bad name",
        type="array",
        resources={"vcpus": "two", "memory_mib": 512},
        environment={"AWS_BATCH_X": "1"},
        retry={"attempts": 0},
        extra=1,
    )
    assert problems(doc) == [
        "name: may contain only letters, digits, '-' and '_'; found ' '",
        'type: "array" is not allowed; allowed: "container", "multinode"',
        "resources.vcpus: expected a number, got a string 'two'",
        f"environment.AWS_BATCH_X: {RESERVED}",
        "retry.attempts: must be between 1 and 10, got 0",
        f"extra: unknown key 'extra'; allowed: {TOP_LEVEL_KEYS}; did you mean 'retry'?",
    ]


def test_every_cross_key_problem_is_reported_at_once() -> None:
    doc = document(
        platform_capabilities=["FARGATE"],
        resources={"vcpus": 1, "memory_mib": 2048, "gpus": 1},
        retry={"evaluate_on_exit": [{"action": "exit"}]},
        mount_points=[{"source_volume": "nope", "container_path": "/x"}],
        ulimits=[{"name": "nofile", "soft_limit": 2, "hard_limit": 1}],
    )
    assert problems(doc) == [
        "retry.attempts: required when retry.evaluate_on_exit is given (AWS rule)",
        'mount_points[0].source_volume: "nope" names no volume; no [[volumes]] are declared',
        "ulimits[0].soft_limit: must not exceed hard_limit (1), got 2",
        'resources.gpus: FARGATE jobs cannot use GPUs; platform_capabilities includes "FARGATE"',
    ]


def test_messages_never_show_pydantic() -> None:
    doc = {
        "name": 1,
        "image": ["x"],
        "resources": {"vcpus": None, "memory_mib": {}},
        "retry": [],
        "tags": "x",
        "volumes": [1],
        "oops": {},
    }
    text = "\n".join(problems(doc))
    for jargon in (
        "pydantic",
        "Input should",
        "errors.pydantic.dev",
        "dict_type",
        "model_type",
        "Value error",
    ):
        assert jargon not in text
    assert "volumes[0]: expected a table, got an integer 1" in text
    assert "resources.vcpus: expected a number, got nothing (null)" in text


# -- files -----------------------------------------------------------------------------------
def test_load_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\nimage = "busybox"\n')
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == [
        Problem("resources", "required; AWS Batch needs [resources] vcpus and memory_mib for every job")
    ]
    assert str(caught.value) == (
        f"{path}: resources: required; AWS Batch needs [resources] vcpus and memory_mib for every job"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\nimage = \n', "malformed TOML at line 2, column 9: invalid value"),
        ('name = "x"\nvalues = [1,', "malformed TOML at line 2, column 13: invalid value"),
        ('name = "x"\nname = "y"\n', "malformed TOML at line 2, column 11: cannot overwrite a value"),
        ('name = "x\n', "malformed TOML at line 1, column 10: illegal character '\\n'"),
    ],
)
def test_malformed_toml_gives_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(write(tmp_path, text))
    assert caught.value.problems == [Problem("", message)]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(path)
    assert (caught.value.source, caught.value.problems) == (str(path), [Problem("", "file not found")])


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(write(tmp_path, b'name = "\xff"\n'))
    assert caught.value.problems == [Problem("", "not UTF-8 text (byte 8)")]


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(tmp_path)
    assert caught.value.problems == [Problem("", "cannot read the file: Is a directory")]


def test_toml_dates_are_named_in_plain_words(tmp_path: Path) -> None:
    text = 'name = "x"\nimage = 1979-05-27T07:32:00Z\n[resources]\nvcpus = 1\nmemory_mib = 4\n'
    with pytest.raises(JobDefinitionError) as caught:
        jobdef.load_file(write(tmp_path, text))
    assert caught.value.problems == [Problem("image", "expected a string, got a date-time")]


# -- writing ---------------------------------------------------------------------------------
def test_dumps_writes_keys_in_a_readable_order() -> None:
    definition = jobdef.loads(FULL_TOML, "full.toml")
    assert jobdef.dumps(definition) == FULL_TOML


def test_to_document_leaves_defaults_out() -> None:
    assert jobdef.to_document(jobdef.parse_document(MINIMAL, "job.toml")) == {
        "name": "render",
        "type": "container",
        "image": "busybox:1.36",
        "resources": {"vcpus": 1, "memory_mib": 512},
    }


def test_to_document_keeps_attempts_when_rules_need_them() -> None:
    retry = {"attempts": 1, "evaluate_on_exit": [{"action": "EXIT", "on_exit_code": "1"}]}
    doc = jobdef.to_document(jobdef.parse_document(document(retry=retry), "job.toml"))
    assert doc["retry"] == {"attempts": 1, "evaluate_on_exit": [{"on_exit_code": "1", "action": "exit"}]}


def test_dumps_quotes_keys_and_escapes_values() -> None:
    d = jobdef.parse_document(document(environment={"MY VAR": 'say "hi"\n'}, command=["a" * 60, "b" * 60]), "j")
    text = jobdef.dumps(d)
    assert '"MY VAR" = "say \\"hi\\"\\n"' in text
    assert f'command = [\n    "{"a" * 60}",\n    "{"b" * 60}",\n]\n' in text
    assert jobdef.loads(text, "j") == d


@settings(max_examples=150, deadline=None)
@given(job_definitions())
def test_document_round_trip(definition: JobDefinition) -> None:
    assert jobdef.parse_document(jobdef.to_document(definition), "generated") == definition


@settings(max_examples=150, deadline=None)
@given(job_definitions())
def test_toml_text_round_trip(definition: JobDefinition) -> None:
    assert jobdef.loads(jobdef.dumps(definition), "generated") == definition


def test_a_document_that_is_not_a_table() -> None:
    assert problems(["name", "x"]) == ["expected a table of keys, got an array"]  # type: ignore[arg-type]


def test_consumable_resources_are_a_table_of_quantities() -> None:
    definition = jobdef.parse_document(document(consumable_resources={"licences": 2, "db-slots": 1}), "job.toml")
    assert definition.consumable_resources == (("licences", 2), ("db-slots", 1))
    assert jobdef.to_document(definition)["consumable_resources"] == {"licences": 2, "db-slots": 1}
    assert problems(document(consumable_resources={"licences": 0, "no spaces": 1})) == [
        "consumable_resources.licences: quantity must be 1 to 9223372036854775807, got 0",
        "consumable_resources.\"no spaces\": 'no spaces': letters, digits, hyphens and underscores only",
    ]
