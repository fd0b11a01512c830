"""Hypothesis strategies for valid job definitions, in the canonical form ``jobdef`` builds.

Canonical means what ``jobdef.parse_document`` returns: ``vcpus`` a float, an empty
``[fargate]`` table as None, FARGATE definitions without GPUs or devices, mount points that
name declared volumes, and so on. Round-trip properties are stated over these.
"""

from __future__ import annotations

import posixpath
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st

from localbatch import jobdef
from localbatch.awsbatch.jobdefinition import LOCAL_MEMBER, request_from_document
from localbatch.core.definition import (
    FargateSettings,
    JobDefinition,
    LogConfiguration,
    PlatformCapability,
)
from localbatch.core.resources import AWS_INT_MAX, Resources
from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy
from localbatch.core.spec import (
    DEVICE_PERMISSIONS,
    ULIMIT_NAMES,
    ContainerSpec,
    Device,
    LinuxParameters,
    MountPoint,
    S3Access,
    Tmpfs,
    Ulimit,
    Volume,
)
from localbatch.core.staging import StagedInput, StagedOutput

EC2, FARGATE = PlatformCapability.EC2, PlatformCapability.FARGATE

# Any text TOML and JSON both carry: no surrogates; control characters included (escaped).
characters = st.characters(exclude_categories=["Cs"])
text = st.text(characters, max_size=20)
non_empty_text = st.text(characters, min_size=1, max_size=20)
names = st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True)
paths = st.builds(lambda parts: "/" + "/".join(parts), st.lists(names, max_size=3))
buckets = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,10}[a-z0-9]", fullmatch=True)
s3_uris = st.builds(lambda bucket, key: f"s3://{bucket}{key}", buckets, st.sampled_from(["", "/", "/a/b.csv", "/p/"]))
env_names = non_empty_text.filter(lambda n: "=" not in n and not n.startswith("AWS_BATCH"))
tag_keys = st.text(characters, min_size=1, max_size=128).filter(lambda k: not k.lower().startswith("aws:"))
vcpus = st.one_of(
    st.integers(1, 256).map(float),
    st.sampled_from([0.25, 0.5, 0.1, 1.5, 0.001]),
    st.floats(min_value=0.001, max_value=4096, allow_nan=False, allow_infinity=False),
)


@st.composite
def retry_strategies(draw: st.DrawFn) -> RetryStrategy:
    rule = st.builds(
        EvaluateOnExit,
        action=st.sampled_from(RetryAction),
        on_status_reason=st.none() | st.from_regex(r"[A-Za-z0-9.: \t]{1,20}\*?|\*", fullmatch=True),
        on_reason=st.none() | st.from_regex(r"[A-Za-z0-9.: \t]{1,20}\*?|\*", fullmatch=True),
        on_exit_code=st.none() | st.from_regex(r"[0-9]{1,3}\*?|\*", fullmatch=True),
    )
    return RetryStrategy(attempts=draw(st.integers(1, 10)), evaluate_on_exit=tuple(draw(st.lists(rule, max_size=5))))


def linux_parameters(*, devices: bool) -> st.SearchStrategy[LinuxParameters]:
    device = st.builds(
        Device,
        host_path=paths,
        container_path=st.none() | paths,
        permissions=st.lists(st.sampled_from(DEVICE_PERMISSIONS), unique=True).map(tuple),
    )
    tmpfs = st.builds(
        Tmpfs,
        container_path=paths,
        size_mib=st.integers(1, AWS_INT_MAX),
        mount_options=st.lists(non_empty_text, max_size=3).map(tuple),
    )
    return st.builds(
        LinuxParameters,
        devices=st.lists(device, max_size=2).map(tuple) if devices else st.just(()),
        init_process_enabled=st.none() | st.booleans(),
        shared_memory_size_mib=st.none() | st.integers(1, AWS_INT_MAX),
        tmpfs=st.lists(tmpfs, max_size=2).map(tuple),
        max_swap_mib=st.none() | st.integers(0, AWS_INT_MAX),
        swappiness=st.none() | st.integers(0, 100),
    )


@st.composite
def ulimit_lists(draw: st.DrawFn) -> tuple[Ulimit, ...]:
    chosen = draw(st.lists(st.sampled_from(ULIMIT_NAMES), unique=True, max_size=3))
    limits = []
    for name in chosen:
        hard = draw(st.integers(-1, AWS_INT_MAX))
        soft = draw(st.integers(-1, AWS_INT_MAX) if hard == -1 else st.integers(0, hard))  # -1: unlimited
        limits.append(Ulimit(name, soft, hard))
    return tuple(limits)


fargate_settings = st.builds(
    FargateSettings,
    platform_version=st.none() | st.sampled_from(["LATEST", "1.4.0"]),
    assign_public_ip=st.none() | st.sampled_from(["ENABLED", "DISABLED"]),
    ephemeral_storage_gib=st.none() | st.integers(21, 200),
    cpu_architecture=st.none() | st.sampled_from(["X86_64", "ARM64"]),
    operating_system_family=st.none() | st.sampled_from(["LINUX", "WINDOWS_SERVER_2022_CORE"]),
).filter(lambda f: f != FargateSettings())


@st.composite
def job_definitions(draw: st.DrawFn, *, staging: bool = True) -> JobDefinition:
    """A valid definition; ``staging=False`` leaves out inputs/outputs (not in AWS's request)."""
    platforms = draw(st.sampled_from([(EC2,), (FARGATE,), (EC2, FARGATE), (FARGATE, EC2)]))
    fargate = FARGATE in platforms
    volumes = draw(
        st.lists(
            st.builds(Volume, name=names, host_source_path=st.none() | paths),
            max_size=3,
            unique_by=lambda v: v.name,
        )
    )
    mounts: list[MountPoint] = []
    if volumes:
        mount = st.builds(
            MountPoint,
            source_volume=st.sampled_from([v.name for v in volumes]),
            container_path=paths,
            read_only=st.booleans(),
        )
        mounts = draw(st.lists(mount, max_size=3, unique_by=lambda m: m.container_path))
    container = ContainerSpec(
        image=draw(st.text(characters, min_size=1, max_size=40)),
        command=tuple(draw(st.lists(non_empty_text, max_size=4))),
        environment=draw(st.dictionaries(env_names, text, max_size=4)),
        resources=Resources(
            vcpus=draw(vcpus),
            memory_mib=draw(st.integers(4, AWS_INT_MAX)),
            gpus=0 if fargate else draw(st.integers(0, 8)),
        ),
        volumes=tuple(volumes),
        mount_points=tuple(mounts),
        ulimits=draw(ulimit_lists()),
        user=draw(st.none() | non_empty_text),
        privileged=draw(st.booleans()),
        readonly_root_filesystem=draw(st.booleans()),
        linux_parameters=draw(linux_parameters(devices=not fargate)),
        # localbatch only, like inputs/outputs: not in AWS's request
        s3_access=draw(st.builds(S3Access, st.booleans(), st.booleans())) if staging else S3Access(),
    )
    definition = JobDefinition(
        name=draw(names),
        container=container,
        parameters=draw(st.dictionaries(non_empty_text, text, max_size=3)),
        retry_strategy=draw(st.just(RetryStrategy()) | retry_strategies()),
        timeout_s=draw(st.none() | st.integers(1, AWS_INT_MAX)),
        platform_capabilities=platforms,
        scheduling_priority=draw(st.none() | st.integers(0, 9999)),
        propagate_tags=draw(st.booleans()),
        tags=draw(st.dictionaries(tag_keys, st.text(characters, max_size=256), max_size=3)),
        job_role_arn=draw(st.none() | st.just("arn:aws:iam::123456789012:role/job")),
        execution_role_arn=draw(st.none() | st.just("arn:aws:iam::123456789012:role/exec")),
        log_configuration=draw(
            st.none()
            | st.builds(
                LogConfiguration,
                log_driver=st.sampled_from(["awslogs", "json-file", "splunk", "fluentd"]),
                options=st.dictionaries(non_empty_text, text, max_size=2),
            )
        ),
        fargate=draw(st.none() | fargate_settings),
    )
    if not staging:
        return definition
    # localbatch only (core.staging): no two stagings mounted at the same path
    targets = draw(st.lists(paths.filter(lambda p: p != "/"), min_size=4, max_size=4, unique_by=posixpath.normpath))
    inputs = [StagedInput(draw(s3_uris), target) for target in targets[: draw(st.integers(0, 2))]]
    outputs = [
        StagedOutput(t + draw(st.sampled_from(["", "/"])), draw(s3_uris), draw(st.booleans())) for t in targets[2:]
    ]
    staged = replace(container, inputs=tuple(inputs), outputs=tuple(outputs[: draw(st.integers(0, 2))]))
    return replace(definition, container=staged)


@st.composite
def aws_requests(draw: st.DrawFn) -> dict[str, Any]:
    """RegisterJobDefinition requests localbatch runs, as people write them: any optional
    member present or not, AWS's defaults sometimes spelled out, resource requirements in any
    order."""
    doc = jobdef.to_document(draw(job_definitions(staging=False)))
    spelled_out = {
        "platform_capabilities": ["EC2"],
        "privileged": False,
        "readonly_root_filesystem": False,
        "propagate_tags": False,
        "retry": {"attempts": 1},
    }
    for key, value in spelled_out.items():
        if key not in doc and draw(st.booleans()):
            doc[key] = value
    for mount in doc.get("mount_points", []):
        if draw(st.booleans()):
            mount.setdefault("read_only", False)
    resources = doc["resources"]
    if "FARGATE" not in doc.get("platform_capabilities", []) and draw(st.booleans()):
        resources.setdefault("gpus", 0)
    doc["resources"] = {key: resources[key] for key in draw(st.permutations(list(resources)))}
    return request_from_document(doc)


def local_settings_dropped(definition: JobDefinition) -> JobDefinition:
    """``definition`` as an AWS request without localbatch's own member brings it back."""
    container = replace(definition.container, inputs=(), outputs=(), s3_access=S3Access())
    return replace(definition, container=container)


def without_local(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != LOCAL_MEMBER}


# A definition that sets every key, written exactly as ``jobdef.dumps`` writes it.
FULL_TOML = """\
name = "render"
type = "container"
image = "busybox:1.36"
command = ["sh", "-c", "echo Ref::greeting"]
scheduling_priority = 10
propagate_tags = true
user = "1000:1000"
privileged = true
readonly_root_filesystem = true
job_role_arn = "arn:aws:iam::123456789012:role/render-job"
execution_role_arn = "arn:aws:iam::123456789012:role/render-exec"

[resources]
vcpus = 2
memory_mib = 4096
gpus = 1

[parameters]
greeting = "hello"

[environment]
STAGE = "dev"
"MY VAR" = "x y"

[retry]
attempts = 3

[[retry.evaluate_on_exit]]
on_status_reason = "Host EC2*"
action = "retry"

[[retry.evaluate_on_exit]]
on_exit_code = "137"
on_reason = "*"
action = "exit"

[timeout]
attempt_duration_seconds = 600

[linux_parameters]
shared_memory_size = 64
init_process_enabled = true
max_swap = 1024
swappiness = 10

[[linux_parameters.devices]]
host_path = "/dev/fuse"
container_path = "/dev/fuse"
permissions = ["READ", "WRITE"]

[[linux_parameters.tmpfs]]
container_path = "/run/scratch"
size = 128
mount_options = ["rw", "noexec"]

[log_configuration]
log_driver = "awslogs"

[log_configuration.options]
awslogs-group = "/aws/batch/render"

[fargate]
platform_version = "LATEST"
assign_public_ip = "ENABLED"
ephemeral_storage_gib = 50
cpu_architecture = "ARM64"
operating_system_family = "LINUX"

[tags]
team = "graphics"

[[volumes]]
name = "scratch"
host_source_path = "/tmp/scratch"

[[volumes]]
name = "cache"

[[mount_points]]
source_volume = "scratch"
container_path = "/scratch"

[[mount_points]]
source_volume = "cache"
container_path = "/cache"
read_only = true

[[ulimits]]
name = "nofile"
soft_limit = 1024
hard_limit = 4096

[[inputs]]
source = "s3://bucket/data/in.csv"
path = "/data/in.csv"

[[outputs]]
path = "/data/out/"
destination = "s3://bucket/results/${AWS_BATCH_JOB_ID}/"
"""
