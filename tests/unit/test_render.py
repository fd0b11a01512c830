"""What ``describe`` and ``run`` print, from DescribeJobs' JobDetail as the API returns it."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from localbatch import render

T0 = 1_700_000_000_000


def shown(*parts: Any) -> str:
    console = Console(width=250, record=True, color_system=None)
    for part in parts:
        console.print(part)
    return console.export_text()


def detail(**fields: Any) -> dict[str, Any]:
    return {
        "jobId": "j1",
        "jobName": "flaky",
        "jobQueue": "arn:aws:batch:us-east-1:000000000000:job-queue/default",
        "jobDefinition": "arn:aws:batch:us-east-1:000000000000:job-definition/flaky:1",
        "status": "SUCCEEDED",
        "container": {"image": "busybox:1.36", "command": ["sh"], "resourceRequirements": []},
        **fields,
    }


def attempt(exit_code: int | None, started: int, stream: str, reason: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"logStreamName": stream}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason is not None:
        container["reason"] = reason
    return {
        "container": container,
        "startedAt": started,
        "stoppedAt": started + 1000,
        "statusReason": "Essential container in task exited",
    }


def test_describe_shows_every_attempt_with_its_exit_code_reasons_log_stream_and_times():
    attempts = [
        attempt(1, T0, "flaky/default/a1"),
        attempt(137, T0 + 5000, "flaky/default/a2", reason="OutOfMemoryError: Container killed due to memory usage"),
        attempt(0, T0 + 10000, "flaky/default/a3"),
    ]
    text = shown(*render.job_view(detail(attempts=attempts, retryStrategy={"attempts": 3}), []))
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"])]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[3] for row in rows] == ["1", "137", "0"]
    for number, row in enumerate(rows):
        assert row[1] == render.when(T0 + 5000 * number) and row[2] == render.when(T0 + 5000 * number + 1000)
        assert row[-1] == f"flaky/default/a{number + 1}"
    assert "OutOfMemoryError: Container killed due to memory usage" in text
    assert text.count("Essential container in task exited") == 3


def test_describe_lists_the_retry_rules_in_the_order_they_are_tried():
    retry = {
        "attempts": 3,
        "evaluateOnExit": [{"action": "RETRY", "onStatusReason": "Host EC2*"}, {"action": "exit", "onReason": "*"}],
    }
    text = shown(*render.job_view(detail(retryStrategy=retry), []))
    assert "3 attempt(s); RETRY on onStatusReason=Host EC2*, then EXIT on onReason=*; no match: RETRY" in text
    plain = shown(*render.job_view(detail(), []))
    assert "1 attempt(s)" in plain and "no match" not in plain


def test_an_array_parent_shows_its_childrens_counts():
    parent = detail(
        status="RUNNING",
        arrayProperties={"size": 10, "statusSummary": {"SUCCEEDED": 3, "RUNNING": 2, "RUNNABLE": 5, "FAILED": 0}},
        dependsOn=[{"jobId": "j0"}, {"type": "SEQUENTIAL"}],
    )
    summary = render.array_summary(parent)
    assert summary is not None and summary.plain == "array of 10: 5 RUNNABLE, 2 RUNNING, 3 SUCCEEDED"
    text = shown(*render.job_view(parent, []))
    assert "array of 10: 5 RUNNABLE, 2 RUNNING, 3 SUCCEEDED" in text
    assert "j0, SEQUENTIAL" in text


def test_a_job_that_is_not_an_array_parent_has_no_array_line():
    assert render.array_summary(detail()) is None
    assert render.array_summary(detail(arrayProperties={"index": 4})) is None
    child = shown(*render.job_view(detail(arrayProperties={"index": 4}), []))
    assert "array index" in child and "array of" not in child


def test_queues_table_says_how_each_queue_schedules() -> None:
    from localbatch.render import queues_table

    fifo = {"jobQueueName": "default", "priority": 1, "state": "ENABLED", "computeEnvironmentOrder": []}
    fair = {
        **fifo,
        "jobQueueName": "shared",
        "schedulingPolicyArn": "arn:aws:batch:us-east-1:000000000000:scheduling-policy/teams",
        "jobStateTimeLimitActions": [
            {"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", "maxTimeSeconds": 600, "state": "RUNNABLE"}
        ],
    }
    console = Console(width=250, record=True)
    console.print(queues_table([fifo, fair], {}))
    text = console.export_text()
    assert "FIFO" in text
    assert "fair share (teams); cancel CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY after 600 s" in text


def test_text_from_users_is_shown_as_written_never_read_as_markup(capsys: Any) -> None:
    reason = "cancelled: [/] by bob [link=http://example.invalid]click[/link] [bold]"
    summary = {"jobId": "j-1", "jobName": "[red]x", "jobQueue": "default", "status": "FAILED", "createdAt": 0}
    render.stdout().print(render.jobs_table([{**summary, "statusReason": reason}]))
    shown = capsys.readouterr().out
    assert "".join(reason.split()) in "".join(shown.split()) and "[red]x" in shown  # folded, not parsed
