"""The control loop tells each container where the object store is (issue 5, item 4): at
launch only, never stored with the job nor described."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from localbatch.adapters.docker_runtime import container_create_kwargs
from localbatch.awsbatch.jobdetail import job_detail
from localbatch.core import naming
from localbatch.core.jobs import JobStatus
from localbatch.core.s3_access import HOST_ALIAS, HOST_GATEWAY
from localbatch.core.spec import S3Access
from localbatch.ports import ContainerRequest
from tests.unit.test_daemon_loop import DEFINITION, Rig, make_rig

SECRET = "wJalrXUtnFEMI-local-secret"
STORE_ENV = {
    "LOCALBATCH_S3_ENDPOINT": "http://127.0.0.1:9000",
    "LOCALBATCH_S3_ACCESS_KEY": "AKIALOCAL",
    "LOCALBATCH_S3_SECRET_KEY": SECRET,
    "LOCALBATCH_S3_REGION": "eu-west-1",
}


def _rig(tmp_path: Path, **container: object) -> Rig:
    definition = replace(DEFINITION, container=replace(DEFINITION.container, **container))
    rig = make_rig(tmp_path, definition=definition, env=STORE_ENV)
    rig.runtime.script("busybox:1.36", runs_for_s=1, output=b"done\n")
    return rig


def _launched(rig: Rig) -> tuple[str, ContainerRequest]:
    job_id = rig.submit()
    rig.settle(ticks=12)
    assert rig.job(job_id).status == JobStatus.SUCCEEDED
    [request] = rig.runtime.created
    return job_id, request


def test_the_container_gets_the_stores_address_credentials_and_region(tmp_path: Path) -> None:
    _, request = _launched(_rig(tmp_path))
    env = request.environment
    assert env["AWS_ENDPOINT_URL_S3"] == "http://127.0.0.1:9000"  # the fake runtime uses host networking
    assert env["AWS_ACCESS_KEY_ID"] == "AKIALOCAL" and env["AWS_SECRET_ACCESS_KEY"] == SECRET
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == "eu-west-1"
    assert "AWS_ENDPOINT_URL" not in env and request.extra_hosts == {}
    assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"


def test_the_credentials_are_neither_stored_with_the_job_nor_described(tmp_path: Path) -> None:
    rig = _rig(tmp_path, environment={"STAGE": "dev"})
    job_id, request = _launched(rig)
    assert request.environment["AWS_SECRET_ACCESS_KEY"] == SECRET
    job = rig.job(job_id)
    assert dict(job.container.environment) == {"STAGE": "dev"}
    detail = job_detail(job, naming.Arns("us-east-1", "000000000000"))
    assert detail["container"]["environment"] == [{"name": "STAGE", "value": "dev"}]
    assert SECRET not in json.dumps(detail)
    assert SECRET not in repr(request)
    [described] = rig.service.describe_jobs([job_id])
    assert SECRET not in repr(described)


def test_the_jobs_own_variables_win(tmp_path: Path) -> None:
    own = {"AWS_ENDPOINT_URL_S3": "https://s3.eu-west-1.amazonaws.com", "AWS_REGION": "us-west-2"}
    _, request = _launched(_rig(tmp_path, environment=own))
    env = request.environment
    assert env["AWS_ENDPOINT_URL_S3"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["AWS_REGION"] == "us-west-2" and "AWS_DEFAULT_REGION" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "AKIALOCAL"  # a group the job left alone is still injected


def test_a_definition_may_opt_out(tmp_path: Path) -> None:
    _, request = _launched(_rig(tmp_path, s3_access=S3Access(enabled=False)))
    assert not [name for name in request.environment if name.startswith("AWS_") and "BATCH" not in name]


def test_a_definition_may_ask_for_the_generic_endpoint(tmp_path: Path) -> None:
    _, request = _launched(_rig(tmp_path, s3_access=S3Access(generic_endpoint=True)))
    assert request.environment["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"


def test_a_bridged_container_reaches_a_loopback_store_through_the_host_gateway(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    rig.runtime.network_mode = "bridge"
    _, request = _launched(rig)
    assert request.environment["AWS_ENDPOINT_URL_S3"] == f"http://{HOST_ALIAS}:9000"
    assert request.extra_hosts == {HOST_ALIAS: HOST_GATEWAY}
    kwargs = container_create_kwargs(request, network_mode="bridge", cpu_limit="shares")
    assert kwargs["extra_hosts"] == {HOST_ALIAS: HOST_GATEWAY}


def test_without_credentials_only_the_endpoint_and_region(tmp_path: Path) -> None:
    env = {"LOCALBATCH_S3_ENDPOINT": "http://127.0.0.1:9000"}
    rig = make_rig(tmp_path, env=env)
    rig.runtime.script("busybox:1.36", runs_for_s=1)
    _, request = _launched(rig)
    injected = {name for name in request.environment if name.startswith("AWS_") and "BATCH" not in name}
    assert injected == {"AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION"}


def test_the_opt_out_survives_the_toml_and_the_store(tmp_path: Path) -> None:
    from localbatch import jobdef

    text = 'name = "x"\nimage = "busybox:1.36"\n[resources]\nvcpus = 1\nmemory_mib = 64\n'
    text += "[s3_access]\nenabled = false\n"
    definition = jobdef.loads(text)
    assert definition.container.s3_access == S3Access(enabled=False)
    assert "[s3_access]\nenabled = false" in jobdef.dumps(definition)
    assert jobdef.loads(jobdef.dumps(definition)) == definition


def test_export_to_aws_leaves_the_setting_out() -> None:
    from localbatch.awsbatch.jobdefinition import from_register_request, to_register_request

    definition = replace(DEFINITION, container=replace(DEFINITION.container, s3_access=S3Access(False, True)))
    request = to_register_request(definition)
    assert "s3" not in json.dumps(request).lower()
    assert from_register_request(request, "exported") == DEFINITION
