"""How an attempt ended, in AWS Batch's words.

The runtime reports what it saw (an exit code, an OOM flag, a failure to start); this
module turns that into what AWS Batch would report: ``exitCode``, ``container.reason`` and
``statusReason`` (aws-batch-reference.md §4.5), and whether the retry rules may consider it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
TASK_FAILED_TO_START = "Task failed to start"
TIMEOUT = "Job attempt duration exceeded timeout"
OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
CANNOT_PULL = "CannotPullContainerError"
CANNOT_START = "CannotStartContainerError"
# localbatch's S3 staging (core.staging). ECS reports resources it could not set up this way.
INPUT_STAGING_FAILED = "ResourceInitializationError: unable to stage inputs"
OUTPUT_STAGING_FAILED = "OutputStagingError: unable to upload outputs"
# AWS's container.reason is at most 255 characters.
MAX_REASON_CHARS = 255


class Ending(str, Enum):
    EXITED = "EXITED"  # the container ran and exited by itself (OOM kills included)
    FAILED_TO_START = "FAILED_TO_START"  # image could not be pulled, container not created/started
    TIMED_OUT = "TIMED_OUT"  # killed for exceeding attempt_duration_seconds
    TERMINATED = "TERMINATED"  # stopped on request (TerminateJob, Ctrl-C on `run`)
    LOST = "LOST"  # the container vanished or the engine failed under it
    HOST_TERMINATED = "HOST_TERMINATED"  # its host went away: a Spot reclaim (rehearsed, core.spot)
    OUTPUTS_FAILED = "OUTPUTS_FAILED"  # the container exited, but its [[outputs]] could not be uploaded
    ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"  # the engine did not answer at launch: the attempt never ran


@dataclass(frozen=True)
class AttemptOutcome:
    ending: Ending
    exit_code: int | None
    reason: str | None  # container.reason
    status_reason: str  # statusReason of the attempt (and of the job, if this ends it)

    @property
    def succeeded(self) -> bool:
        return self.ending is Ending.EXITED and self.exit_code == 0

    @property
    def retryable(self) -> bool:
        """Whether retry rules apply: AWS never retries timed-out or terminated attempts."""
        return self.ending not in (Ending.TIMED_OUT, Ending.TERMINATED)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def exited(exit_code: int, oom_killed: bool, engine_error: str | None = None) -> AttemptOutcome:
    """The container exited on its own. An OOM kill is reported as ECS reports it; an error
    the engine recorded against the container becomes its ``container.reason``."""
    reason = OUT_OF_MEMORY if oom_killed else (_clip(engine_error) if engine_error else None)
    return AttemptOutcome(Ending.EXITED, exit_code, reason, ESSENTIAL_CONTAINER_EXITED)


def failed_to_start(detail: str, *, image_missing: bool) -> AttemptOutcome:
    """The container never ran: the image could not be pulled, or the engine refused it."""
    kind = CANNOT_PULL if image_missing else CANNOT_START
    return AttemptOutcome(Ending.FAILED_TO_START, None, _clip(f"{kind}: {detail}"), TASK_FAILED_TO_START)


def timed_out(exit_code: int | None) -> AttemptOutcome:
    return AttemptOutcome(Ending.TIMED_OUT, exit_code, None, TIMEOUT)


def terminated(exit_code: int | None, reason: str) -> AttemptOutcome:
    return AttemptOutcome(Ending.TERMINATED, exit_code, None, _clip(reason))


def host_terminated(status_reason: str) -> AttemptOutcome:
    """The attempt's host went away under it (``Host EC2 (instance i-...) terminated.``). As on
    AWS, the attempt has no exit code and no container reason: only the statusReason, which
    ``evaluateOnExit``'s ``onStatusReason`` sees; it is retried like any other failure."""
    return AttemptOutcome(Ending.HOST_TERMINATED, None, None, _clip(status_reason))


def engine_lost(status_reason: str, detail: str) -> AttemptOutcome:
    """The container engine went away while the attempt ran and took the container with it
    (Docker stops its containers when it stops, unless live-restore is on): to the job, its
    host went away. The statusReason is AWS's host-terminated one, so ``onStatusReason: Host
    EC2*`` rules work unchanged; ``container.reason`` says it was the engine. No exit code:
    the engine's kill is not the job's."""
    return AttemptOutcome(Ending.HOST_TERMINATED, None, _clip(detail), _clip(status_reason))


def engine_unavailable(detail: str) -> AttemptOutcome:
    """The engine did not answer when the attempt's container was to be made: it never ran,
    so the caller queues the job again rather than spending an attempt."""
    return AttemptOutcome(Ending.ENGINE_UNAVAILABLE, None, _clip(detail), TASK_FAILED_TO_START)


def inputs_failed(detail: str) -> AttemptOutcome:
    """An ``[[inputs]]`` transfer failed, so the container was never created (core.staging).
    Reported as ECS reports a task whose resources could not be set up; retried per strategy."""
    return AttemptOutcome(
        Ending.FAILED_TO_START, None, _clip(f"{INPUT_STAGING_FAILED}: {detail}"), TASK_FAILED_TO_START
    )


def outputs_failed(exit_code: int, detail: str) -> AttemptOutcome:
    """The container exited with ``exit_code`` but its ``[[outputs]]`` did not all reach the
    store: the attempt failed, whatever the exit code (retried per strategy)."""
    reason = _clip(f"{OUTPUT_STAGING_FAILED}: {detail}")
    return AttemptOutcome(Ending.OUTPUTS_FAILED, exit_code, reason, reason)


def lost(detail: str) -> AttemptOutcome:
    return AttemptOutcome(Ending.LOST, None, _clip(detail), _clip(detail))
