"""Job events leave the daemon here: webhooks, command hooks and triggers, off the control loop.

The control loop only writes state changes to the store (the event log is written in the
same transaction) and calls ``wake``; it never waits on anything here. One reader thread
follows the event log by ``seq`` (from where it stopped, kept in the store as the record
``@events``) and, for each state change:

- hands its EventBridge JSON to every webhook and hook whose filter it matches, through a
  bounded queue per target (``[events] queue_size``): a full queue drops the event for that
  target and notes it in the log (``delivery-dropped``);
- submits the job of every trigger it matches (``core.delivery.EventFilter``), except for a
  job that trigger submitted itself (no trigger feeds on its own output).

Each target has its own worker thread, delivering its events in order: a webhook attempt
that fails (no answer within its timeout, a 5xx, 408 or 429) is tried again after
``core.delivery.Backoff``'s wait, up to ``max_attempts``; each failed attempt is noted in the
log (``delivery-failed``, naming the target, the attempt and the error). A hook is run once
(a command that fails is noted, not repeated).

Schedules (``ScheduleRunner``) tick on a thread of their own: ``core.schedules.decide``
says what is due, submissions go through the API's SubmitJob like any client's.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from localbatch.automation_settings import Automation, Hook, Submission, Trigger, Webhook
from localbatch.awsbatch.requests import SubmitRequest, submit_body
from localbatch.core import schedules
from localbatch.core.delivery import Backoff, EventFilter, Verdict, verdict
from localbatch.core.jobs import EpochMs
from localbatch.daemon.ticker import Ticker
from localbatch.errors import LocalbatchError
from localbatch.events import DELIVERY_DROPPED, DELIVERY_FAILED, RULE_SUBMISSION
from localbatch.ports import JOB_EVENT, Clock, EventLogQuery, LoggedEvent, Note, StateStore

logger = logging.getLogger(__name__)

CURSOR_RECORD = "@events"  # rule_states' entry for the reader's place (no rule name has "@")
TRIGGER_TAG = "localbatch:trigger"  # on jobs a trigger submitted: the trigger's name
SCHEDULE_TAG = "localbatch:schedule"
TRIGGERED_BY = "LOCALBATCH_TRIGGER_JOB_ID"  # in a triggered job's environment

# (status code or None, error text or None) of one POST
Post = Callable[[str, bytes, Mapping[str, str], float], "tuple[int | None, str | None]"]
# (exit code or None, error text or None) of one command run with the event on its stdin
RunCommand = Callable[[Sequence[str], bytes, float], "tuple[int | None, str | None]"]
Render = Callable[[LoggedEvent], "dict[str, Any]"]
Submit = Callable[[dict[str, Any]], str]  # a SubmitJob body -> the job id


def submission_body(submission: Submission, tags: Mapping[str, str], environment: Mapping[str, str]) -> dict[str, Any]:
    """The SubmitJob request of a schedule's or trigger's job."""
    given = submission.overrides
    overrides = replace(given, environment={**given.environment, **environment}, tags=dict(tags))
    request = SubmitRequest(submission.job_name, submission.job_queue, submission.job_definition, overrides)
    return submit_body(request)


@dataclass(frozen=True)
class _Item:
    seq: int
    job_id: str | None
    job_queue: str | None
    status: str | None
    event_id: str
    body: bytes


class _Target:
    """One webhook or hook: its queue and the worker thread that empties it, in order."""

    def __init__(
        self,
        name: str,
        kind: str,
        event_filter: EventFilter,
        backoff: Backoff,
        attempt: Callable[[bytes], tuple[Verdict, str | None]],
        *,
        store: StateStore,
        clock: Clock,
        stopping: threading.Event,
        queue_size: int,
    ) -> None:
        self.name, self.kind, self.filter, self.backoff = name, kind, event_filter, backoff
        self._attempt = attempt
        self._store, self._clock, self._stopping = store, clock, stopping
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(target=self._run, name=f"{kind}-{name}", daemon=True)
        self._pending = 0  # queued or being delivered
        self._lock = threading.Lock()

    def start(self) -> None:
        self.thread.start()

    def offer(self, item: _Item) -> bool:
        """Queue ``item``; False (and nothing queued) when the queue is full."""
        with self._lock:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                return False
            self._pending += 1
        return True

    def idle(self) -> bool:
        """Nothing queued and nothing being delivered."""
        with self._lock:
            return self._pending == 0

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._deliver(item)
            except Exception:  # a bug must not stop the deliveries after it
                logger.exception("%s %s: delivering event %d failed unexpectedly", self.kind, self.name, item.seq)
            finally:
                with self._lock:
                    self._pending -= 1

    def _deliver(self, item: _Item) -> None:
        attempt = 1
        while True:
            outcome, error = self._attempt(item.body)
            if outcome is Verdict.DELIVERED:
                return
            now = self._clock.now_ms()
            retry_at = self.backoff.next_try(attempt, now, final=outcome is Verdict.GIVE_UP)
            logger.warning("%s %s: event %d, attempt %d: %s", self.kind, self.name, item.seq, attempt, error)
            note = {
                self.kind: self.name,
                "eventId": item.event_id,
                "eventSeq": item.seq,
                "jobId": item.job_id,
                "attempt": attempt,
                "maxAttempts": self.backoff.max_attempts,
                "error": error or "failed",
                "retryAt": retry_at,
            }
            _note(self._store, Note(now, DELIVERY_FAILED, note, item.job_id, item.job_queue, item.status))
            if retry_at is None or self._stopping.wait(max(0, retry_at - now) / 1000):
                return
            attempt += 1


def _note(store: StateStore, note: Note) -> None:
    try:
        store.append_notes([note])
    except LocalbatchError as exc:  # the log is where we would have said it: say it here
        logger.warning("cannot note %s in the event log: %s", note.kind, exc)


def webhook_attempt(webhook: Webhook, post: Post) -> Callable[[bytes], tuple[Verdict, str | None]]:
    headers = {"Content-Type": "application/json", "User-Agent": "localbatch", **webhook.headers}

    def attempt(body: bytes) -> tuple[Verdict, str | None]:
        status, error = post(webhook.url, body, headers, webhook.timeout_s)
        found = verdict(status)
        if found is not Verdict.DELIVERED and error is None:
            error = f"HTTP {status}"
        return found, error

    return attempt


def hook_attempt(hook: Hook, run: RunCommand) -> Callable[[bytes], tuple[Verdict, str | None]]:
    def attempt(body: bytes) -> tuple[Verdict, str | None]:
        code, error = run(hook.command, body, hook.timeout_s)
        if code == 0:
            return Verdict.DELIVERED, None
        return Verdict.GIVE_UP, error or f"exit code {code}"

    return attempt


class EventDispatcher:
    """Follows the event log; feeds webhooks, hooks and triggers (see the module's docstring)."""

    def __init__(
        self,
        *,
        store: StateStore,
        automation: Automation,
        render: Render,
        clock: Clock,
        submit: Submit,
        post: Post,
        run_command: RunCommand,
        poll_s: float = 1.0,
        batch: int = 200,
    ) -> None:
        self._store, self._automation, self._render, self._clock = store, automation, render, clock
        self._submit = submit
        self._poll_s, self._batch = poll_s, batch
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._targets = [
            self._target(w.name, "webhook", w.filter, w.backoff, webhook_attempt(w, post)) for w in automation.webhooks
        ] + [
            self._target(h.name, "hook", h.filter, Backoff(max_attempts=1), hook_attempt(h, run_command))
            for h in automation.hooks
        ]
        self._cursor: int | None = None

    def _target(
        self,
        name: str,
        kind: str,
        event_filter: EventFilter,
        backoff: Backoff,
        attempt: Callable[[bytes], tuple[Verdict, str | None]],
    ) -> _Target:
        return _Target(
            name,
            kind,
            event_filter,
            backoff,
            attempt,
            store=self._store,
            clock=self._clock,
            stopping=self._stopping,
            queue_size=self._automation.queue_size,
        )

    @property
    def needed(self) -> bool:
        return bool(self._targets or self._automation.triggers)

    def wake(self) -> None:
        """New entries may be in the log (the control loop saved); never blocks."""
        self._wake.set()

    def start(self) -> None:
        for target in self._targets:
            target.start()
        self._thread = threading.Thread(target=self._run, name="event-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5) -> None:
        """Stop reading and delivering; waits at most ``timeout_s`` in all (a delivery in
        flight is abandoned, not waited out: the threads are daemon threads)."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        for thread in ([self._thread] if self._thread is not None else []) + [t.thread for t in self._targets]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def idle(self) -> bool:
        """Every target has delivered (or given up on) what it was handed."""
        return all(t.idle() for t in self._targets)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while self.pump() and not self._stopping.is_set():
                    pass
            except Exception:  # the store is busy, say: the next pass tries again
                logger.exception("reading the event log failed; trying again")
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def _start_cursor(self) -> int:
        """Where the reader left off, or, the first time, the end of the log (what happened
        before the first daemon with events is not delivered)."""
        record = self._store.get_rule_states().get(CURSOR_RECORD) or {}
        seq = record.get("seq")
        return seq if isinstance(seq, int) else self._store.last_event_seq()

    def pump(self) -> int:
        """One pass: the next batch of state changes to the targets and triggers. How many
        entries it read (0: caught up)."""
        if self._cursor is None:
            self._cursor = self._start_cursor()
        entries = self._store.read_event_log(
            EventLogQuery(after_seq=self._cursor, kinds=(JOB_EVENT,), limit=self._batch)
        )
        for entry in entries:
            self._dispatch(entry)
        if entries:
            self._cursor = entries[-1].seq
            self._store.put_rule_state(CURSOR_RECORD, {"seq": self._cursor})
        return len(entries)

    def _dispatch(self, entry: LoggedEvent) -> None:
        job = entry.job
        name, definition = (job.job_name, job.job_definition_name) if job is not None else ("", "")
        wanted = [t for t in self._targets if t.filter.matches(entry.job_queue, entry.status, name, definition)]
        if wanted:
            event = self._render(entry)
            body = json.dumps(event, separators=(",", ":")).encode()
            item = _Item(entry.seq, entry.job_id, entry.job_queue, entry.status, str(event["id"]), body)
            for target in wanted:
                if not target.offer(item):
                    self._dropped(target, item)
        for trigger in self._automation.triggers:
            if not trigger.enabled or not trigger.filter.matches(entry.job_queue, entry.status, name, definition):
                continue
            if job is not None and job.tags.get(TRIGGER_TAG) == trigger.name:
                continue  # its own job: a trigger never feeds on its own output
            if (
                job is not None
                and not trigger.include_children
                and (job.array_index is not None or job.node_index is not None)
            ):
                continue  # an array fires it once, by its parent, not once per child
            self._fire(trigger, entry)

    def _dropped(self, target: _Target, item: _Item) -> None:
        logger.warning("%s %s: queue full; event %d dropped", target.kind, target.name, item.seq)
        body = {
            target.kind: target.name,
            "eventId": item.event_id,
            "eventSeq": item.seq,
            "jobId": item.job_id,
            "error": f"{self._automation.queue_size} events already wait for this {target.kind}: dropped",
        }
        _note(self._store, Note(self._clock.now_ms(), DELIVERY_DROPPED, body, item.job_id, item.job_queue, item.status))

    def _fire(self, trigger: Trigger, entry: LoggedEvent) -> None:
        body = submission_body(trigger.submission, {TRIGGER_TAG: trigger.name}, {TRIGGERED_BY: entry.job_id or ""})
        record = run_rule(
            self._store,
            self._clock.now_ms(),
            trigger.name,
            "trigger",
            self._submit,
            body,
            {"triggeredBy": entry.job_id, "status": entry.status, "eventSeq": entry.seq},
        )
        self._store.put_rule_state(trigger.name, record)


def run_rule(
    store: StateStore,
    now: EpochMs,
    name: str,
    rule_type: str,
    submit: Submit,
    body: dict[str, Any],
    about: Mapping[str, object],
) -> dict[str, object]:
    """Submit a rule's job and note it in the event log; its ``lastRun...`` record."""
    job_id: str | None = None
    try:
        job_id = submit(body)
        outcome = "submitted"
    except LocalbatchError as exc:
        outcome = f"failed: {exc}"
        logger.warning("%s %s: cannot submit its job: %s", rule_type, name, exc)
    detail = {"rule": name, "ruleType": rule_type, "jobId": job_id, "outcome": outcome, **about}
    _note(store, Note(now, RULE_SUBMISSION, detail, job_id, str(body.get("jobQueue")), None))
    return {"lastRunAt": now, "lastOutcome": outcome, "lastJobId": job_id, **about}


class ScheduleRunner:
    """Ticks the schedules: ``tick(now)`` submits what is due and records it."""

    def __init__(
        self, *, store: StateStore, automation: Automation, clock: Clock, submit: Submit, poll_s: float = 1.0
    ) -> None:
        self._store, self._automation, self._clock, self._submit = store, automation, clock, submit
        self._ticker = Ticker("schedules", lambda: self.tick(self._clock.now_ms()), poll_s)

    @property
    def needed(self) -> bool:
        return any(s.enabled for s in self._automation.schedules)

    def start(self) -> None:
        self._ticker.start()

    def stop(self, timeout_s: float = 5) -> None:
        self._ticker.stop(timeout_s)

    def tick(self, now: EpochMs) -> None:
        records = self._store.get_rule_states()
        for schedule in self._automation.schedules:
            if not schedule.enabled:
                continue
            state = schedules.ScheduleState.from_record(records.get(schedule.name))
            decision = schedules.decide(schedule.expression, schedule.catch_up, state, now)
            moved = decision.state
            if decision.fire_at is not None:
                about = {"scheduledFor": decision.fire_at, "catchUp": decision.catch_up, "retry": decision.retry}
                if decision.submit:
                    body = submission_body(schedule.submission, {SCHEDULE_TAG: schedule.name}, {})
                    done = run_rule(self._store, now, schedule.name, "schedule", self._submit, body, about)
                    job_id = done["lastJobId"]
                    outcome = str(done["lastOutcome"])
                    moved = schedules.ran(moved, now, outcome, None if job_id is None else str(job_id), job_id is None)
                else:
                    skipped = "skipped: missed while the daemon was down (catch_up = false)"
                    moved = schedules.ran(moved, now, skipped, None, failed=False)
            if state != moved:
                self._store.put_rule_state(schedule.name, moved.as_record())
