"""AWS Batch's retry strategy: how many attempts, and which failures to retry.

Rules (aws-batch-reference.md §4.1-4.2):
- ``attempts`` (1..10) is the total number of tries.
- ``evaluate_on_exit`` rules (at most 5) are tried in order; the first rule whose every
  given condition matches decides RETRY or EXIT. If none matches, the attempt is retried.
- A pattern matches exactly, or as a prefix when it ends with ``*``. A bare ``*`` matches
  anything, a field the attempt does not have included: AWS's own idiom "RETRY on
  ``onStatusReason: Host EC2*``, then EXIT on ``onReason: *``" must stop an ordinary failure,
  whose ``container.reason`` is absent. Any other pattern does not match a missing field
  (no exit code because the container never ran).
- Cancelled, terminated and timed-out attempts are never retried, whatever the rules say.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_ATTEMPTS = 10
MAX_EVALUATE_ON_EXIT = 5


class RetryAction(str, Enum):
    RETRY = "RETRY"
    EXIT = "EXIT"


@dataclass(frozen=True)
class EvaluateOnExit:
    action: RetryAction
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None

    def matches(self, status_reason: str | None, reason: str | None, exit_code: int | None) -> bool:
        """True when every condition this rule sets matches the attempt."""
        checks = (
            (self.on_status_reason, status_reason),
            (self.on_reason, reason),
            (self.on_exit_code, None if exit_code is None else str(exit_code)),
        )
        return all(pattern is None or glob_matches(pattern, value) for pattern, value in checks)


@dataclass(frozen=True)
class RetryStrategy:
    attempts: int = 1
    evaluate_on_exit: tuple[EvaluateOnExit, ...] = ()


def glob_matches(pattern: str, value: str | None) -> bool:
    """AWS's pattern rule: exact match, or prefix match when the pattern ends with ``*``; a
    bare ``*`` matches even a missing value."""
    if pattern == "*":
        return True
    if value is None:
        return False
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    why: str


def decide(
    strategy: RetryStrategy,
    attempts_made: int,
    *,
    retryable: bool,
    status_reason: str | None,
    reason: str | None,
    exit_code: int | None,
) -> RetryDecision:
    """Whether a failed attempt is followed by another one.

    ``retryable`` is False for cancelled, terminated and timed-out attempts, which AWS never
    retries.
    """
    if not retryable:
        return RetryDecision(False, "cancelled, terminated and timed-out attempts are not retried")
    if attempts_made >= strategy.attempts:
        return RetryDecision(False, f"all {strategy.attempts} attempt(s) used")
    for index, rule in enumerate(strategy.evaluate_on_exit):
        if rule.matches(status_reason, reason, exit_code):
            return RetryDecision(
                rule.action is RetryAction.RETRY,
                f"evaluate_on_exit[{index}] matched: {rule.action.value}",
            )
    if strategy.evaluate_on_exit:
        return RetryDecision(True, "no evaluate_on_exit rule matched: RETRY")
    return RetryDecision(True, f"attempt {attempts_made} of {strategy.attempts} failed: RETRY")
