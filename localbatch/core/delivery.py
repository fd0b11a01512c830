"""Event delivery's decisions: which events a webhook, hook or trigger takes, and when a
failed delivery is tried again. The daemon's ``events`` module does the I/O around them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from localbatch.core.jobs import EpochMs


@dataclass(frozen=True)
class EventFilter:
    """Which job state changes match: every one given is required; empty means any."""

    job_queues: frozenset[str] = frozenset()
    statuses: frozenset[str] = frozenset()
    job_name_prefix: str | None = None
    job_definitions: frozenset[str] = frozenset()  # names, without the revision

    def matches(self, job_queue: str | None, status: str | None, job_name: str, job_definition: str) -> bool:
        return (
            _allowed(self.job_queues, job_queue)
            and _allowed(self.statuses, status)
            and (self.job_name_prefix is None or job_name.startswith(self.job_name_prefix))
            and _allowed(self.job_definitions, job_definition)
        )


def _allowed(wanted: Collection[str], value: str | None) -> bool:
    return not wanted or value in wanted


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give-up"


def verdict(status_code: int | None) -> Verdict:
    """What an HTTP answer means for a webhook delivery: 2xx delivered; no answer (a refused
    connection, a timeout), 408, 429 and 5xx worth another try; any other code final."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code is None or status_code in (408, 429) or status_code >= 500:
        return Verdict.RETRY
    return Verdict.GIVE_UP


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: the wait after failed attempt ``n`` is ``base * 2**(n-1)``, at most
    ``cap``; ``max_attempts`` tries in all."""

    max_attempts: int = 5
    base_ms: int = 1_000
    cap_ms: int = 60_000

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt number ``attempt`` (1, 2, ...)."""
        return min(self.cap_ms, self.base_ms * (1 << min(attempt - 1, 32)))

    def next_try(self, attempt: int, failed_at: EpochMs, final: bool = False) -> EpochMs | None:
        """When to try again after attempt ``attempt`` failed at ``failed_at``; None when it
        was the last (``max_attempts`` reached, or ``final``: an answer not worth retrying)."""
        if final or attempt >= self.max_attempts:
            return None
        return failed_at + self.delay_ms(attempt)
