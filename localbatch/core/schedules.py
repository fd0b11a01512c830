"""When a ``[[schedules]]`` entry submits its job: one decision per schedule per tick.

A schedule keeps, in the store, a ``ScheduleState``: its expression's text, the ``anchor`` a
rate counts from (when the daemon first saw the schedule), and the ``cursor``: every firing
at or before it is handled. ``decide(rule, state, now)`` says whether a firing is due in
``(cursor, now]`` and moves the cursor to ``now``. Hence the catch-up rule after downtime:

- however many firings were missed, they collapse into one: the first tick after the daemon
  is back submits once (``catch_up = true``, the default), or, with ``catch_up = false``,
  submits nothing for a firing more than ``LATE_MS`` late (EventBridge never backfills: a
  rule whose target was unavailable simply missed those runs);
- a rate fires when the daemon first sees it, then every period from there;
- a schedule whose expression changed starts over (a new anchor, no catch-up);
- a submission that fails (the job definition is not registered yet, say) is tried again
  after ``RETRY``'s backoff, as EventBridge retries a target it could not invoke.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from localbatch.core.delivery import Backoff
from localbatch.core.jobs import EpochMs
from localbatch.core.schedule_expr import Expression, Rate, next_fire

LATE_MS = 60_000  # a firing seen later than this after its time is a missed one
RETRY = Backoff(max_attempts=5, base_ms=1_000, cap_ms=60_000)  # a failed submission's tries


@dataclass(frozen=True)
class ScheduleState:
    expression: str
    anchor: EpochMs
    cursor: EpochMs
    last_run_at: EpochMs | None = None  # when it last submitted (or tried to)
    last_outcome: str | None = None  # "submitted", "skipped: ...", "failed: ..."
    last_job_id: str | None = None
    failures: int = 0  # failed tries of the firing being retried
    retry_at: EpochMs | None = None  # when to try it again

    def as_record(self) -> dict[str, object]:
        return {
            "expression": self.expression,
            "anchor": self.anchor,
            "cursor": self.cursor,
            "lastRunAt": self.last_run_at,
            "lastOutcome": self.last_outcome,
            "lastJobId": self.last_job_id,
            "failures": self.failures,
            "retryAt": self.retry_at,
        }

    @classmethod
    def from_record(cls, record: object) -> ScheduleState | None:
        """The state in a stored record; None when it is not one (then the schedule starts over)."""
        if not isinstance(record, dict):
            return None
        try:
            return cls(
                str(record["expression"]),
                int(record["anchor"]),
                int(record["cursor"]),
                _opt_int(record.get("lastRunAt")),
                _opt_str(record.get("lastOutcome")),
                _opt_str(record.get("lastJobId")),
                int(str(record.get("failures") or 0)),
                _opt_int(record.get("retryAt")),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Decision:
    state: ScheduleState  # to store (the cursor moved)
    fire_at: EpochMs | None = None  # the firing due now, if any
    submit: bool = False  # False with fire_at: a missed firing skipped (catch_up = false)
    catch_up: bool = False  # the firing is a late one (the daemon was down)
    retry: bool = False  # a failed submission tried again


def start(expression: Expression, now: EpochMs) -> ScheduleState:
    """A schedule seen for the first time (or with a new expression): a rate fires now."""
    cursor = now - 1 if isinstance(expression, Rate) else now
    return ScheduleState(expression.text, now, cursor)


def decide(expression: Expression, catch_up: bool, state: ScheduleState | None, now: EpochMs) -> Decision:
    """What the schedule does at ``now``, given what it recorded."""
    if state is None or state.expression != expression.text:
        state = start(expression, now)
    if state.retry_at is not None and state.retry_at <= now:
        return Decision(state, state.retry_at, submit=True, retry=True)
    if now < state.cursor:  # the clock went back: wait until it passes the cursor again
        return Decision(state)
    due = next_fire(expression, state.cursor, state.anchor)
    if due is None or due > now:
        return Decision(state)
    late = now - due > LATE_MS
    moved = replace(state, cursor=now)
    return Decision(moved, due, submit=catch_up or not late, catch_up=late)


def ran(state: ScheduleState, now: EpochMs, outcome: str, job_id: str | None, failed: bool) -> ScheduleState:
    """``state`` once a firing's submission was tried at ``now``: a failure is tried again
    after ``RETRY``'s wait, until its attempts are spent."""
    failures = state.failures + 1 if failed else 0
    retry_at = RETRY.next_try(failures, now) if failed else None
    if failed and retry_at is None:
        outcome += f" (gave up after {failures} tries)"
    return replace(
        state,
        last_run_at=now,
        last_outcome=outcome,
        last_job_id=job_id,
        failures=failures if retry_at is not None else 0,
        retry_at=retry_at,
    )


def next_run(expression: Expression, state: ScheduleState | None, now: EpochMs) -> EpochMs | None:
    """When the schedule fires next, as ``decide`` will see it (None: never again)."""
    if state is None or state.expression != expression.text:
        state = start(expression, now)
    if state.retry_at is not None:
        return state.retry_at
    return next_fire(expression, state.cursor, state.anchor)
