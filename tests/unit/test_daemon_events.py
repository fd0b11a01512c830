"""The daemon's event dispatcher and schedule runner, on the in-memory store and a fake clock."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from localbatch.automation_settings import Automation, Hook, Schedule, Submission, Trigger, Webhook
from localbatch.core.delivery import Backoff, EventFilter
from localbatch.core.jobs import JobEvent, JobStatus
from localbatch.core.naming import Arns
from localbatch.core.schedule_expr import parse
from localbatch.daemon.events import CURSOR_RECORD, TRIGGER_TAG, EventDispatcher, ScheduleRunner
from localbatch.errors import InvalidRequest, Problem
from localbatch.events import envelope
from localbatch.ports import EventLogQuery, LoggedEvent
from tests.contract.store_contract import job
from tests.fakes.clock import FakeClock
from tests.fakes.store import InMemoryStateStore

S = JobStatus
ARNS = Arns("us-east-1", "000000000000")


def render(entry: LoggedEvent) -> dict[str, Any]:
    return envelope(entry, ARNS, "home")


def change(store: InMemoryStateStore, job_id: str, to: S, name: str = "train-1", tags: Mapping[str, str] = {}) -> None:  # noqa: B006
    moved = dataclasses.replace(job(job_id, status=to), job_name=name, tags=dict(tags))
    store.save_job(moved, [JobEvent(job_id, 1_000, S.RUNNING if to.is_terminal else S.SUBMITTED, to)])


def notes(store: InMemoryStateStore, kind: str) -> list[Mapping[str, object]]:
    return [e.note for e in store.read_event_log(EventLogQuery(kinds=(kind,), limit=1_000))]


def webhook(name: str = "w", attempts: int = 3) -> Webhook:
    return Webhook(name, "http://127.0.0.1:1/x", EventFilter(), 1.0, Backoff(attempts, 1, 1))


def dispatcher(
    store: InMemoryStateStore,
    automation: Automation,
    post: Any = None,
    submit: Any = None,
    run_command: Any = None,
) -> EventDispatcher:
    return EventDispatcher(
        store=store,
        automation=automation,
        render=render,
        clock=FakeClock(),
        submit=submit or (lambda body: "job-x"),
        post=post or (lambda url, body, headers, timeout_s: (200, None)),
        run_command=run_command or (lambda command, stdin, timeout_s: (0, None)),
        poll_s=0.01,
    )


def settle(events: EventDispatcher) -> None:
    deadline = time.monotonic() + 10
    while not events.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events.idle()


def test_a_full_queue_drops_and_notes_instead_of_waiting() -> None:
    store = InMemoryStateStore()
    release = threading.Event()

    def hang(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int | None, str | None]:
        release.wait(10)
        return 200, None

    events = dispatcher(store, Automation(webhooks=(webhook(),), queue_size=1), post=hang)
    events.pump()  # the cursor starts at the end of the log: nothing before the first daemon
    for i in range(3):
        change(store, f"j{i}", S.RUNNABLE)
    assert events.pump() == 3  # returns at once: nothing is delivered on the reader's thread
    dropped = notes(store, "delivery-dropped")
    assert [(n["webhook"], n["jobId"]) for n in dropped] == [("w", "j1"), ("w", "j2")]
    release.set()


def test_a_failing_webhook_is_retried_then_given_up_and_each_failure_noted() -> None:
    store = InMemoryStateStore()
    calls: list[bytes] = []

    def fail(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int | None, str | None]:
        calls.append(body)
        return 503, "HTTP 503 Service Unavailable"

    events = dispatcher(store, Automation(webhooks=(webhook(attempts=3),)), post=fail)
    events.pump()
    events.start()
    try:
        change(store, "j0", S.FAILED)
        events.wake()
        deadline = time.monotonic() + 10
        while len(notes(store, "delivery-failed")) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        settle(events)
    finally:
        events.stop()
    failed = notes(store, "delivery-failed")
    assert [(n["attempt"], n["maxAttempts"], n["retryAt"] is None) for n in failed] == [
        (1, 3, False),
        (2, 3, False),
        (3, 3, True),
    ]
    assert failed[0]["error"] == "HTTP 503 Service Unavailable" and failed[0]["jobId"] == "j0"
    assert len(calls) == 3 and len(set(calls)) == 1  # the same event each time


def test_a_client_error_is_not_retried_and_hooks_run_once() -> None:
    store = InMemoryStateStore()
    ran: list[Sequence[str]] = []

    def command(argv: Sequence[str], stdin: bytes, timeout_s: float) -> tuple[int | None, str | None]:
        ran.append(argv)
        return 1, "exit code 1: nope"

    hook = Hook("h", ("notify",), EventFilter(statuses=frozenset({"FAILED"})), 1.0)
    automation = Automation(webhooks=(webhook(),), hooks=(hook,))
    events = dispatcher(store, automation, post=lambda *args: (404, None), run_command=command)
    events.pump()
    events.start()
    try:
        change(store, "j0", S.RUNNABLE)  # the hook's filter leaves it out
        change(store, "j0", S.FAILED)
        events.wake()
        deadline = time.monotonic() + 10
        while len(notes(store, "delivery-failed")) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        settle(events)
    finally:
        events.stop()
    failed = notes(store, "delivery-failed")
    assert sorted((str(n.get("webhook") or n.get("hook")), n["error"]) for n in failed) == [
        ("h", "exit code 1: nope"),
        ("w", "HTTP 404"),
        ("w", "HTTP 404"),
    ]
    assert ran == [("notify",)]


def test_triggers_fire_on_matching_changes_but_never_on_their_own_jobs() -> None:
    store = InMemoryStateStore()
    submitted: list[dict[str, Any]] = []
    trigger = Trigger(
        "after-train",
        EventFilter(statuses=frozenset({"SUCCEEDED"}), job_name_prefix="train-"),
        Submission("evaluate", "default", "evaluate"),
    )
    events = dispatcher(store, Automation(triggers=(trigger,)), submit=lambda body: submitted.append(body) or "j-new")
    events.pump()
    change(store, "a", S.SUCCEEDED)
    change(store, "b", S.FAILED)
    change(store, "c", S.SUCCEEDED, name="other")
    change(store, "d", S.SUCCEEDED, tags={TRIGGER_TAG: "after-train"})
    child = dataclasses.replace(job("e:0", status=S.SUCCEEDED), job_name="train-1", array_index=0)
    store.save_job(child, [JobEvent("e:0", 1_000, S.RUNNING, S.SUCCEEDED)])  # the parent speaks for it
    events.pump()
    assert len(submitted) == 1
    assert submitted[0]["jobDefinition"] == "evaluate" and submitted[0]["tags"] == {TRIGGER_TAG: "after-train"}
    assert submitted[0]["containerOverrides"]["environment"] == [{"name": "LOCALBATCH_TRIGGER_JOB_ID", "value": "a"}]
    record = store.get_rule_states()["after-train"]
    assert (record["lastJobId"], record["lastOutcome"], record["triggeredBy"]) == ("j-new", "submitted", "a")


def test_the_reader_resumes_where_it_stopped() -> None:
    store = InMemoryStateStore()
    got: list[bytes] = []

    def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int | None, str | None]:
        got.append(body)
        return 200, None

    first = dispatcher(store, Automation(webhooks=(webhook(),)), post=post)
    first.pump()
    change(store, "j0", S.RUNNABLE)
    first.pump()
    assert store.get_rule_states()[CURSOR_RECORD] == {"seq": 1}
    change(store, "j1", S.RUNNABLE)  # while no daemon runs
    second = dispatcher(store, Automation(webhooks=(webhook(),)), post=post)
    second.start()
    try:
        deadline = time.monotonic() + 10
        while len(got) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        settle(second)
    finally:
        second.stop()
    assert [b'"jobId":"j1"' in body for body in got] == [True]


def test_schedule_runner_submits_when_due_and_retries_a_failed_submission() -> None:
    store = InMemoryStateStore()
    clock = FakeClock()
    answers: list[str | Exception] = [InvalidRequest([Problem("jobDefinition", "no such definition")]), "job-1"]

    def submit(body: dict[str, Any]) -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    schedule = Schedule("nightly", parse("rate(1 day)"), Submission("hello", "default", "nightly"))
    runner = ScheduleRunner(store=store, automation=Automation(schedules=(schedule,)), clock=clock, submit=submit)
    runner.tick(clock.now_ms())
    record = store.get_rule_states()["nightly"]
    assert str(record["lastOutcome"]).startswith("failed:") and record["retryAt"] == clock.now_ms() + 1_000
    runner.tick(clock.now_ms() + 500)  # not yet
    assert answers == ["job-1"]
    runner.tick(clock.now_ms() + 1_000)
    record = store.get_rule_states()["nightly"]
    assert (record["lastOutcome"], record["lastJobId"], record["retryAt"]) == ("submitted", "job-1", None)
    runner.tick(clock.now_ms() + 2_000)  # nothing due until tomorrow
    submissions = notes(store, "rule-submission")
    assert [(n["rule"], n["outcome"] == "submitted", n["retry"]) for n in submissions] == [
        ("nightly", False, False),
        ("nightly", True, True),
    ]
