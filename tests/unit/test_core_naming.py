from localbatch.core import outcome
from localbatch.core.jobs import Job
from localbatch.core.naming import (
    Arns,
    batch_environment,
    container_environment,
    container_name,
    log_stream_name,
)
from localbatch.core.spec import ContainerSpec


def test_arns_follow_aws_format():
    arns = Arns("eu-west-1", "000000000000")
    assert arns.job("abc") == "arn:aws:batch:eu-west-1:000000000000:job/abc"
    assert arns.job_definition("render", 3) == "arn:aws:batch:eu-west-1:000000000000:job-definition/render:3"
    assert arns.job_queue("default") == "arn:aws:batch:eu-west-1:000000000000:job-queue/default"


def test_container_names_are_deterministic_and_docker_safe():
    assert container_name("1b2c", 2) == "localbatch-1b2c-2"
    assert container_name("p:7", 1) == "localbatch-p_7-1"
    assert container_name("m#0", 1) == "localbatch-m_0-1"


def test_log_stream_name_is_awslogs_shape():
    assert log_stream_name("x" * 300, "f" * 32) == "x" * 200 + "/default/" + "f" * 32


def test_batch_environment_wins_over_the_jobs_own():
    job = Job(
        job_id="j",
        job_name="n",
        job_definition_name="d",
        job_definition_revision=1,
        job_queue="q",
        container=ContainerSpec(image="i", environment={"A": "1"}),
        created_at=0,
        compute_environment="local",
    )
    assert batch_environment(job, 2) == {
        "AWS_BATCH_JOB_ID": "j",
        "AWS_BATCH_JOB_ATTEMPT": "2",
        "AWS_BATCH_JQ_NAME": "q",
        "AWS_BATCH_CE_NAME": "local",
    }
    assert container_environment(job, 2)["A"] == "1"


def test_reasons_are_clipped_to_aws_limit():
    long = outcome.failed_to_start("x" * 400, image_missing=False)
    assert len(long.reason) == 255 and long.reason.startswith("CannotStartContainerError: ")
