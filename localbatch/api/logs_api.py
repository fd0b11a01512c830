"""A CloudWatch Logs subset for AWS Batch's log group: GetLogEvents, FilterLogEvents and
DescribeLogStreams in Logs' JSON 1.1 shapes, on the attempts' log files.

``LogsApi.handle(operation, body)`` is transport-free, like ``Api.invoke``: the TCP listener
routes ``X-Amz-Target: Logs_20140328.<Operation>`` here. Errors are ``ApiError``s with Logs'
codes (``ResourceNotFoundException``, ``InvalidParameterException``, 400).

What AWS keeps in CloudWatch, localbatch reads from the store and the logs directory:

- one log group, ``/aws/batch/job`` (AWS Batch's default); any other does not exist;
- one stream per attempt the store knows (``logStreamName`` of DescribeJobs, from the moment
  the attempt begins), its events the lines of the attempt's file (``logs.attempt_log_path``);
  empty lines are left out (CloudWatch stores no empty message), and a last line with no line
  break only once the attempt has ended;
- the files record no time per line, so every event of an attempt has the attempt's start
  (``startedAt``; before it, its job's ``createdAt``) as its ``timestamp``, and the file's last
  write as its ``ingestionTime``. A time window therefore takes or leaves an attempt whole.

Tokens: GetLogEvents' ``f/<line>/s`` and ``b/<line>/s`` are positions in the file (the same
token back means the end, as AWS); the other two operations' tokens are opaque keys of the
last item returned. Every request reads the store's jobs and the files it needs: fine for one
machine, and nothing is cached but which job each task id belongs to.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from localbatch import logs
from localbatch.api.errors import ApiError
from localbatch.awsbatch.model import logs_operation_names, validate_logs_request
from localbatch.core.jobs import Attempt, EpochMs, Job
from localbatch.core.naming import Arns
from localbatch.ports import JobQuery, StateStore

__all__ = [
    "INVALID_PARAMETER",
    "LOG_GROUP",
    "OPERATIONS",
    "RESOURCE_NOT_FOUND",
    "TARGET_PREFIX",
    "LogsApi",
]

LOG_GROUP: Final = "/aws/batch/job"
TARGET_PREFIX: Final = "Logs_20140328"  # X-Amz-Target: Logs_20140328.GetLogEvents
OPERATIONS: Final = frozenset({"GetLogEvents", "FilterLogEvents", "DescribeLogStreams"})
RESOURCE_NOT_FOUND: Final = "ResourceNotFoundException"
INVALID_PARAMETER: Final = "InvalidParameterException"
UNKNOWN_OPERATION: Final = "UnknownOperationException"

MAX_EVENTS: Final = 10_000  # GetLogEvents' and FilterLogEvents' limit: default and most
MAX_STREAMS: Final = 50  # DescribeLogStreams' limit: default and most
MAX_STREAM_NAMES: Final = 100  # FilterLogEvents' logStreamNames
MAX_RESPONSE_BYTES: Final = 1_048_576  # a page's events: each message's UTF-8 bytes + 26, as AWS
EVENT_OVERHEAD_BYTES: Final = 26
MAX_MESSAGE_BYTES: Final = 262_144 - EVENT_OVERHEAD_BYTES  # longer lines are cut, as PutLogEvents'
_PAGE: Final = 500  # jobs per store read
_MAX_PAGES: Final = 100_000  # bounds every scan of the store (50 million jobs)
_POSITION: Final = re.compile(r"([fb])/(\d{1,20})/s")
_BAD_TOKEN: Final = "The specified nextToken is invalid."


@dataclass(frozen=True)
class _Stream:
    """One attempt's log stream."""

    name: str
    task_id: str
    created_at: EpochMs
    timestamp: EpochMs  # every event's (the file has no time per line)
    finished: bool
    path: Path

    def events(self) -> Iterator[_Event]:
        written = logs.written_at_ms(self.path) or self.timestamp
        for index, raw in logs.lines(self.path, partial=self.finished):
            if raw:
                message = raw[:MAX_MESSAGE_BYTES].decode("utf-8", errors="replace")
                yield _Event(self, index, message, max(written, self.timestamp))


@dataclass(frozen=True)
class _Event:
    stream: _Stream
    index: int  # line number in the file
    message: str
    ingestion_time: EpochMs

    @property
    def size(self) -> int:
        return len(self.message.encode()) + EVENT_OVERHEAD_BYTES

    def output(self) -> dict[str, Any]:
        return {"timestamp": self.stream.timestamp, "message": self.message, "ingestionTime": self.ingestion_time}


class LogsApi:
    """GetLogEvents, FilterLogEvents and DescribeLogStreams for ``/aws/batch/job``.

    ``store``: the daemon's state store (which attempts exist, and their stream names);
    ``logs_dir``: ``Settings.logs_dir``; ``arns``: region and account for the streams' ARNs.
    """

    def __init__(self, *, store: StateStore, logs_dir: Path, arns: Arns) -> None:
        self._store = store
        self._logs_dir = logs_dir
        self._arns = arns
        self._owners: dict[str, str] = {}  # task id -> job id (both never change)

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """The response body of ``operation`` (``GetLogEvents``); raises ``ApiError``."""
        if operation not in OPERATIONS:
            known = "a CloudWatch Logs operation" if operation in logs_operation_names() else "an operation"
            raise ApiError(
                UNKNOWN_OPERATION,
                400,
                f"localbatch does not support {operation} ({known}); its CloudWatch Logs subset is "
                "DescribeLogStreams, FilterLogEvents and GetLogEvents",
            )
        problems = validate_logs_request(operation, body)
        if problems:
            raise _invalid("; ".join(str(p) for p in problems))
        self._check_group(body)
        if operation == "GetLogEvents":
            return self._get_log_events(body)
        if operation == "FilterLogEvents":
            return self._filter_log_events(body)
        return self._describe_log_streams(body)

    # -- GetLogEvents -----------------------------------------------------------------------

    def _get_log_events(self, body: Mapping[str, Any]) -> dict[str, Any]:
        stream = self._stream(str(body["logStreamName"]))
        limit = _limit(body, MAX_EVENTS)
        window = _window(body)
        # A token is a position and a direction; without one, the head or (AWS's default) the tail.
        position: int | None
        if "nextToken" in body:
            forward, position = _position(str(body["nextToken"]))
        else:
            forward = bool(body.get("startFromHead", False))
            position = 0 if forward else None
        events = (e for e in stream.events() if window(e.stream.timestamp))
        if forward:
            start = position or 0
            chosen = _head((e for e in events if e.index >= start), limit)
        else:
            chosen = _tail(events, limit, position)
        # Nothing read: both tokens stay where they were (the same token back is the end).
        after = chosen[-1].index + 1 if chosen else (position or 0)
        before = chosen[0].index if chosen else (position or 0)
        return {
            "events": [e.output() for e in chosen],
            "nextForwardToken": f"f/{after:020d}/s",
            "nextBackwardToken": f"b/{before:020d}/s",
        }

    # -- FilterLogEvents --------------------------------------------------------------------

    def _filter_log_events(self, body: Mapping[str, Any]) -> dict[str, Any]:
        names, prefix = body.get("logStreamNames"), body.get("logStreamNamePrefix")
        if names is not None and prefix is not None:
            raise _invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
        if names is not None and len(names) > MAX_STREAM_NAMES:
            raise _invalid(f"logStreamNames: at most {MAX_STREAM_NAMES} names, got {len(names)}")
        limit = _limit(body, MAX_EVENTS)
        window = _window(body)
        matches = _pattern(str(body.get("filterPattern") or ""))
        after = _decode_key(body["nextToken"], (int, str, int)) if "nextToken" in body else None
        streams = self._streams()
        if names is not None:
            wanted = set(names)
            streams = [s for s in streams if s.name in wanted]
        elif prefix is not None:
            streams = [s for s in streams if s.name.startswith(prefix)]
        # Every event of a stream has its stream's timestamp, so (timestamp, stream, line) order
        # is the streams in (timestamp, name) order, each read from its first line.
        streams = sorted((s for s in streams if window(s.timestamp)), key=lambda s: (s.timestamp, s.name))
        found = (e for e in _events_after(streams, after) if matches(e.message))
        chosen, more = _head(found, limit), next(found, None)
        response: dict[str, Any] = {
            "events": [
                {"logStreamName": e.stream.name, **e.output(), "eventId": f"{e.stream.task_id}-{e.index}"}
                for e in chosen
            ],
            "searchedLogStreams": [],  # deprecated: AWS sends it empty
        }
        if more is not None and chosen:
            last = chosen[-1]
            response["nextToken"] = _encode_key([last.stream.timestamp, last.stream.name, last.index])
        return response

    # -- DescribeLogStreams -----------------------------------------------------------------

    def _describe_log_streams(self, body: Mapping[str, Any]) -> dict[str, Any]:
        order = body.get("orderBy", "LogStreamName")
        if order not in ("LogStreamName", "LastEventTime"):
            raise _invalid(f"orderBy must be LogStreamName or LastEventTime, not {order!r}")
        prefix = body.get("logStreamNamePrefix")
        if prefix is not None and order == "LastEventTime":
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        limit = _limit(body, MAX_STREAMS)
        descending = bool(body.get("descending", False))
        described = [self._describe(s) for s in self._streams() if prefix is None or s.name.startswith(prefix)]

        def key(d: Mapping[str, Any]) -> list[Any]:
            name = d["logStreamName"]
            return [d.get("lastEventTimestamp", 0), name] if order == "LastEventTime" else [name]

        described.sort(key=key, reverse=descending)
        if "nextToken" in body:
            last = _decode_key(body["nextToken"], (int, str) if order == "LastEventTime" else (str,))
            described = [d for d in described if (key(d) < last if descending else key(d) > last)]
        page = described[:limit]
        response: dict[str, Any] = {"logStreams": page}
        if len(described) > limit:
            response["nextToken"] = _encode_key(key(page[-1]))
        return response

    def _describe(self, stream: _Stream) -> dict[str, Any]:
        described: dict[str, Any] = {
            "logStreamName": stream.name,
            "creationTime": stream.created_at,
            "arn": f"arn:aws:logs:{self._arns.region}:{self._arns.account_id}:log-group:{LOG_GROUP}"
            f":log-stream:{stream.name}",
            "storedBytes": 0,  # what AWS reports now
        }
        written = logs.written_at_ms(stream.path)
        if written is not None:
            described["lastIngestionTime"] = max(written, stream.timestamp)
            if next(stream.events(), None) is not None:
                described["firstEventTimestamp"] = stream.timestamp
                described["lastEventTimestamp"] = stream.timestamp
        return described

    # -- the group and its streams ----------------------------------------------------------

    def _check_group(self, body: Mapping[str, Any]) -> None:
        name, identifier = body.get("logGroupName"), body.get("logGroupIdentifier")
        if name is not None and identifier is not None:
            raise _invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if name is None and identifier is None:
            raise _invalid("Should provide either name or ARN of the log group.")
        group = str(name if name is not None else identifier)
        if group.startswith("arn:"):  # arn:aws:logs:<region>:<account>:log-group:<name>
            parts = group.split(":", 6)
            group = parts[6] if len(parts) == 7 and parts[2] == "logs" and parts[5] == "log-group" else ""
        if group != LOG_GROUP:
            raise ApiError(RESOURCE_NOT_FOUND, 400, "The specified log group does not exist.")

    def _stream(self, name: str) -> _Stream:
        """The stream ``name``; its job found through the task id cache, else a scan."""
        task_id = name.rpartition("/")[2]
        owner = self._owners.get(task_id)
        job = self._store.get_job(owner) if owner is not None else None
        found = next((s for s in self._job_streams(job) if s.name == name), None) if job is not None else None
        if found is None:
            found = next((s for s in self._streams() if s.name == name), None)
        if found is None:
            raise ApiError(RESOURCE_NOT_FOUND, 400, "The specified log stream does not exist.")
        return found

    def _streams(self) -> list[_Stream]:
        """Every attempt's stream: every job, array children and multi-node nodes included."""
        return [stream for job in self._jobs(JobQuery()) for stream in self._job_streams(job)]

    def _jobs(self, query: JobQuery) -> Iterator[Job]:
        after: tuple[EpochMs, str] | None = None
        for _ in range(_MAX_PAGES):
            page = self._store.list_jobs(replace(query, after=after, limit=_PAGE))
            for job in page:
                yield job
                if job.is_array_parent:
                    yield from self._jobs(JobQuery(array_job_id=job.job_id))
                if job.is_multinode_parent:
                    yield from self._jobs(JobQuery(multi_node_job_id=job.job_id))
            if len(page) < _PAGE:
                return
            last = page[-1]  # children and nodes page by index, the rest by created_at
            index = last.array_index if last.array_index is not None else last.node_index
            after = (index if index is not None else last.created_at, last.job_id)

    def _job_streams(self, job: Job) -> Iterator[_Stream]:
        for attempt in job.attempts:
            self._owners[attempt.task_id] = job.job_id
            yield self._attempt_stream(job, attempt)

    def _attempt_stream(self, job: Job, attempt: Attempt) -> _Stream:
        begun = attempt.started_at if attempt.started_at is not None else job.created_at
        return _Stream(
            name=attempt.log_stream_name,
            task_id=attempt.task_id,
            created_at=begun,
            timestamp=begun,
            finished=attempt.finished or job.status.is_terminal,
            path=logs.attempt_log_path(self._logs_dir, job.job_id, attempt.number),
        )


# -- reading ---------------------------------------------------------------------------------


def _head(events: Iterator[_Event], limit: int) -> list[_Event]:
    """The first events, at most ``limit`` and MAX_RESPONSE_BYTES."""
    chosen: list[_Event] = []
    size = 0
    for event in events:  # bounded: stops at ``limit``, or the file's end
        if size + event.size > MAX_RESPONSE_BYTES:
            break
        chosen.append(event)
        size += event.size
        if len(chosen) >= limit:
            break
    return chosen


def _tail(events: Iterator[_Event], limit: int, before: int | None) -> list[_Event]:
    """The last events before line ``before`` (None: the end), at most ``limit`` and
    MAX_RESPONSE_BYTES."""
    last: deque[_Event] = deque(maxlen=limit)
    for event in events:  # bounded by the file
        if before is not None and event.index >= before:
            break
        last.append(event)
    chosen: list[_Event] = []
    size = 0
    for event in reversed(last):
        if size + event.size > MAX_RESPONSE_BYTES:
            break
        chosen.append(event)
        size += event.size
    chosen.reverse()
    return chosen


def _events_after(streams: list[_Stream], after: list[Any] | None) -> Iterator[_Event]:
    """The streams' events in order, from just after the key ``[timestamp, stream, line]``."""
    for stream in streams:
        if after is not None and [stream.timestamp, stream.name] < after[:2]:
            continue
        same = after is not None and [stream.timestamp, stream.name] == after[:2]
        for event in stream.events():
            if not same or (after is not None and event.index > after[2]):
                yield event


def _limit(body: Mapping[str, Any], most: int) -> int:
    limit = int(body.get("limit", most))
    if limit > most:
        raise _invalid(f"limit must be at most {most}, got {limit}")
    return limit


def _window(body: Mapping[str, Any]) -> Callable[[EpochMs], bool]:
    """startTime (inclusive) and endTime (exclusive), as AWS, as a test of a timestamp."""
    start, end = body.get("startTime"), body.get("endTime")

    def within(timestamp: EpochMs) -> bool:
        return (start is None or timestamp >= start) and (end is None or timestamp < end)

    return within


def _position(token: str) -> tuple[bool, int]:
    """GetLogEvents' token: (forward, line)."""
    match = _POSITION.fullmatch(token)
    if match is None:
        raise _invalid(_BAD_TOKEN)
    return match.group(1) == "f", int(match.group(2))


def _encode_key(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def _decode_key(token: Any, types: tuple[type, ...]) -> list[Any]:
    """A key made by ``_encode_key``, whose items have ``types``; else InvalidParameterException."""
    try:
        key = json.loads(base64.urlsafe_b64decode(str(token).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid(_BAD_TOKEN) from None
    if not isinstance(key, list) or len(key) != len(types):
        raise _invalid(_BAD_TOKEN)
    if not all(isinstance(item, kind) and not isinstance(item, bool) for item, kind in zip(key, types, strict=True)):
        raise _invalid(_BAD_TOKEN)
    return key


# -- filter patterns -------------------------------------------------------------------------

_UNSUPPORTED_PATTERNS: Final = {
    "{": "JSON patterns ({ $.field = ... })",
    "[": "space-delimited patterns ([field, ...])",
    "%": "regular expressions (%...%)",
}


def _pattern(text: str) -> Callable[[str], bool]:
    """``filterPattern`` as a test of a message. Supported: terms (``ERROR``), quoted phrases
    (``"Out of memory"``), all of which must occur (case-sensitive); ``-term`` that must not;
    or only ``?term``s, of which one must. Anything else is an InvalidParameterException."""
    stripped = text.strip()
    if stripped[:1] in _UNSUPPORTED_PATTERNS:
        raise _invalid(
            f"localbatch's filterPattern supports terms, quoted phrases, -term and ?term, "
            f"not {_UNSUPPORTED_PATTERNS[stripped[:1]]}"
        )
    required: list[str] = []
    excluded: list[str] = []
    optional: list[str] = []
    for sign, term in _terms(stripped):
        {"": required, "-": excluded, "?": optional}[sign].append(term)
    if optional and (required or excluded):
        raise _invalid("localbatch's filterPattern does not mix ?term alternatives with other terms")

    def matches(message: str) -> bool:
        if optional:
            return any(term in message for term in optional)
        return all(term in message for term in required) and not any(term in message for term in excluded)

    return matches


def _terms(text: str) -> list[tuple[str, str]]:
    """(sign, term) for each term: sign ``""``, ``-`` or ``?``; quotes hold spaces, ``\\``
    escapes the next character inside them."""
    terms: list[tuple[str, str]] = []
    i = 0
    while i < len(text):  # each step consumes at least one character
        if text[i].isspace():
            i += 1
            continue
        sign = text[i] if text[i] in "-?" else ""
        i += len(sign)
        if i < len(text) and text[i] == '"':
            term, i = _quoted(text, i + 1)
        else:
            end = i
            while end < len(text) and not text[end].isspace():
                end += 1
            term, i = text[i:end], end
            if '"' in term:
                raise _invalid(f"filterPattern: a quote inside the term {term!r}; quote the whole phrase")
        if term:
            terms.append((sign, term))
        elif sign:
            raise _invalid(f"filterPattern: {sign!r} must be followed by a term")
    return terms


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The phrase from ``i`` to its closing quote, unescaped, and the index after the quote."""
    out: list[str] = []
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif text[i] == '"':
            return "".join(out), i + 1
        else:
            out.append(text[i])
            i += 1
    raise _invalid("filterPattern: a quoted phrase has no closing quote")


def _invalid(message: str) -> ApiError:
    return ApiError(INVALID_PARAMETER, 400, message)
