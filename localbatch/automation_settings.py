"""The daemon's automation, from the config file: ``[[webhooks]]``, ``[[hooks]]``,
``[[schedules]]`` and ``[[triggers]]`` (docs/events.md has every key)::

    [[webhooks]]                      # each job state change, POSTed as EventBridge's event
    name = "ci"                       # default: webhook-1, webhook-2, ...
    url = "http://127.0.0.1:9000/batch-events"
    job_queues = ["default"]          # optional filters: queue names, statuses,
    statuses = ["SUCCEEDED", "FAILED"]#   job name prefix, job definition names
    timeout_seconds = 5               # per attempt
    max_attempts = 5                  # then the event is given up (a delivery-failed note)
    backoff_seconds = 1               # the wait after attempt n: backoff * 2**(n-1) ...
    max_backoff_seconds = 60          # ... at most this
    headers = { Authorization = "Bearer ..." }

    [[hooks]]                         # a command, the event's JSON on its stdin
    command = ["sh", "-c", "cat >> /tmp/batch-events.jsonl"]
    statuses = ["FAILED"]
    timeout_seconds = 10

    [[schedules]]                     # EventBridge's schedule expressions, in UTC
    name = "nightly"
    expression = "cron(0 2 * * ? *)"  # or "rate(6 hours)"
    job_definition = "render"         # NAME or NAME:REVISION, registered
    job_queue = "default"
    catch_up = true                   # after downtime: one run for what was missed (false: none)
    parameters = { scene = "city" }   # and command, environment, vcpus, memory_mib, gpus,
                                      # timeout_seconds, job_name (default: the schedule's name)

    [[triggers]]                      # submit a job when another job reaches a state
    name = "evaluate-after-train"
    on_statuses = ["SUCCEEDED"]
    job_name_prefix = "train-"        # and/or job_queues, job_definitions
    include_children = false          # true: each array child (and multi-node node) fires it too
    job_definition = "evaluate"       # what to submit: as a schedule's keys
    job_queue = "default"

    [events]
    queue_size = 1000                 # events waiting per webhook or hook; beyond, dropped (noted)

Errors name the file, the key path and what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from localbatch.core.delivery import Backoff, EventFilter
from localbatch.core.jobs import JobStatus
from localbatch.core.lifecycle import JobOverrides
from localbatch.core.naming import AWS_NAME
from localbatch.core.schedule_expr import Expression, ExpressionError, parse
from localbatch.errors import ConfigError
from localbatch.validation import problems_from

_STATUSES = tuple(s.value for s in JobStatus)


@dataclass(frozen=True)
class Submission:
    """The job a schedule or trigger submits (SubmitJob's parameters, in localbatch's names)."""

    job_definition: str
    job_queue: str
    job_name: str
    overrides: JobOverrides = field(default_factory=JobOverrides)  # parameters, command, environment, resources


@dataclass(frozen=True)
class Webhook:
    name: str
    url: str
    filter: EventFilter
    timeout_s: float
    backoff: Backoff
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hook:
    name: str
    command: tuple[str, ...]
    filter: EventFilter
    timeout_s: float


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: Expression
    submission: Submission
    catch_up: bool = True
    enabled: bool = True


@dataclass(frozen=True)
class Trigger:
    name: str
    filter: EventFilter  # its statuses are on_statuses
    submission: Submission
    enabled: bool = True
    include_children: bool = False  # also array children and multi-node nodes (each fires it)


@dataclass(frozen=True)
class Automation:
    webhooks: tuple[Webhook, ...] = ()
    hooks: tuple[Hook, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    queue_size: int = 1_000  # events waiting per webhook or hook; beyond: dropped, with a note

    @property
    def delivers(self) -> bool:
        return bool(self.webhooks or self.hooks)


Status = Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]


class _Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_queues: list[str] = Field(default_factory=list)
    job_name_prefix: str | None = None
    job_definitions: list[str] = Field(default_factory=list)


class _Delivery(_Filter):
    name: str | None = None
    statuses: list[Status] = Field(default_factory=list)
    timeout_seconds: float = Field(default=5, gt=0, le=300)


class _WebhookTable(_Delivery):
    url: str
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_seconds: float = Field(default=1, gt=0, le=3600)
    max_backoff_seconds: float = Field(default=60, gt=0, le=86_400)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class _HookTable(_Delivery):
    command: list[str] = Field(min_length=1)


class _SubmitTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    job_definition: str = Field(min_length=1)
    job_queue: str = "default"
    job_name: str | None = None
    parameters: dict[str, str] = Field(default_factory=dict)
    command: list[str] | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    vcpus: float | None = Field(default=None, gt=0)
    memory_mib: int | None = Field(default=None, ge=4)
    gpus: int | None = Field(default=None, ge=0)
    timeout_seconds: int | None = Field(default=None, ge=1)
    state: Literal["ENABLED", "DISABLED"] = "ENABLED"

    @field_validator("name", "job_name")
    @classmethod
    def _aws_name(cls, value: str | None) -> str | None:
        if value is not None and not AWS_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: 1 to 128 letters, digits, '-' and '_', starting with a letter or digit")
        return value


class _ScheduleTable(_SubmitTable):
    expression: str
    catch_up: bool = True


class _TriggerTable(_SubmitTable, _Filter):
    on_statuses: list[Status] = Field(min_length=1)
    include_children: bool = False


class _EventsTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue_size: int = Field(default=1_000, ge=1, le=1_000_000)


class _Tables(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: _EventsTable = Field(default_factory=_EventsTable)
    webhooks: list[_WebhookTable] = Field(default_factory=list)
    hooks: list[_HookTable] = Field(default_factory=list)
    schedules: list[_ScheduleTable] = Field(default_factory=list)
    triggers: list[_TriggerTable] = Field(default_factory=list)


def resolve_automation(tables: Mapping[str, Any], where: str) -> Automation:
    """The four tables and ``[events]`` (absent ones empty); ConfigError lists every
    problem as ``FILE: KEY.PATH: what is wrong``."""
    try:
        parsed = _Tables.model_validate({k: v for k, v in tables.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{where}: {p.path}: {p.message}" for p in problems_from(exc, _Tables))) from None
    problems: list[str] = []
    schedules = []
    for i, table in enumerate(parsed.schedules):
        try:
            expression = parse(table.expression)
        except ExpressionError as exc:
            problems.append(f"schedules[{i}].expression: {exc}")
            continue
        schedules.append(Schedule(table.name, expression, _submission(table), table.catch_up, table.state == "ENABLED"))
    triggers = tuple(
        Trigger(
            t.name,
            EventFilter(
                frozenset(t.job_queues), frozenset(t.on_statuses), t.job_name_prefix, frozenset(t.job_definitions)
            ),
            _submission(t),
            t.state == "ENABLED",
            t.include_children,
        )
        for t in parsed.triggers
    )
    webhooks = tuple(
        Webhook(
            w.name or f"webhook-{i + 1}",
            w.url,
            _filter(w),
            w.timeout_seconds,
            Backoff(w.max_attempts, round(w.backoff_seconds * 1000), round(w.max_backoff_seconds * 1000)),
            dict(w.headers),
        )
        for i, w in enumerate(parsed.webhooks)
    )
    hooks = tuple(
        Hook(h.name or f"hook-{i + 1}", tuple(h.command), _filter(h), h.timeout_seconds)
        for i, h in enumerate(parsed.hooks)
    )
    for what, names in (
        ("webhooks", [w.name for w in webhooks]),
        ("hooks", [h.name for h in hooks]),
        ("schedules and triggers", [x.name for x in parsed.schedules] + [t.name for t in parsed.triggers]),
    ):
        repeated = sorted({n for n in names if names.count(n) > 1})
        problems += [f"{what}: the name {n!r} is used more than once" for n in repeated]
    if problems:
        raise ConfigError("\n".join(f"{where}: {problem}" for problem in problems))
    return Automation(webhooks, hooks, tuple(schedules), triggers, parsed.events.queue_size)


def _filter(table: _Delivery) -> EventFilter:
    return EventFilter(
        frozenset(table.job_queues),
        frozenset(table.statuses),
        table.job_name_prefix,
        frozenset(table.job_definitions),
    )


def _submission(table: _SubmitTable) -> Submission:
    return Submission(
        job_definition=table.job_definition,
        job_queue=table.job_queue,
        job_name=table.job_name or table.name,
        overrides=JobOverrides(
            parameters=dict(table.parameters),
            command=None if table.command is None else tuple(table.command),
            environment=dict(table.environment),
            vcpus=table.vcpus,
            memory_mib=table.memory_mib,
            gpus=table.gpus,
            timeout_s=table.timeout_seconds,
        ),
    )
