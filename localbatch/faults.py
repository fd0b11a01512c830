"""Test-only fault injection: kill -9 at a named point in the daemon's code.

``LOCALBATCH_FAULT_POINT=<name>`` in the daemon's environment makes ``point(name)`` send the
process SIGKILL when it is reached, so the fault suite (``tests/faults``) can stop the daemon
exactly where a crash is worst, then start it again and check what recovery made of it. Read
once at import; unset (always, outside tests), ``point`` is one comparison.

The points: ``after_submit_commit`` (a SubmitJob's rows are written, the loop not yet told),
``before_container_create`` (an attempt is STARTING, nothing exists in the engine),
``after_container_create`` (its container exists, never started), ``after_container_start``
(it runs, the job is not yet RUNNING in the store), ``during_log_pump`` (after a container's
first output reached its log file), ``during_staging_download`` (an input object partly
downloaded), ``during_staging_upload`` (an output's files uploaded, its marker not yet).
"""

from __future__ import annotations

import os
import signal

ENV = "LOCALBATCH_FAULT_POINT"
_ARMED = os.environ.get(ENV) or None


def point(name: str) -> None:
    """Die here, by SIGKILL, when the environment names this point (tests only)."""
    if _ARMED is not None and _ARMED == name:
        os.kill(os.getpid(), signal.SIGKILL)
