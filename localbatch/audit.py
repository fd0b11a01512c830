"""The audit log: one JSON line per API call that changes state (``$LOCALBATCH_HOME/audit.log``,
mode 0600), like CloudTrail for the local host.

A line: ``time`` (ISO 8601 UTC), ``principal`` (who: an access key's name, or the OS user on
the Unix socket), ``transport`` (``socket`` / ``tcp``) and ``peer``, ``operation``, ``target``
(the identifying members of the request and its answer: job id, name, ARN; never the body),
``request_id``, ``outcome`` (``ok`` or the error code, with ``message``), ``status`` and
``duration_ms``. ``Api.handle`` decides what is a change and builds the entry.

Writing never blocks on a lock held by anything slow and never fails a request: a failed write
(full disk, removed directory) is counted, logged once, and the entry dropped. At ``max_bytes``
the file moves to ``audit.log.1`` (one generation kept) and a new one starts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from localbatch.errors import UsageError

__all__ = ["AuditLog", "iso_time", "read_entries", "rotated_path"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 16 * 1024 * 1024
_MESSAGE_CHARS: Final = 500


def iso_time(epoch_s: float) -> str:
    """``2026-11-21T09:30:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rotated_path(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class AuditLog:
    """Appends entries to ``path``; ``clock`` gives epoch seconds (a fake one in tests)."""

    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0  # entries dropped because writing failed

    def record(self, entry: Mapping[str, Any]) -> None:
        """Append ``entry`` with ``time`` first; never raises."""
        try:
            values = {"time": iso_time(self._clock()), **entry}
            if isinstance(values.get("message"), str):
                values["message"] = values["message"][:_MESSAGE_CHARS]
            data = (json.dumps(values, separators=(",", ":"), default=str) + "\n").encode()
            with self._lock:
                self._rotate_for(len(data))
                descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    written = os.write(descriptor, data)
                finally:
                    os.close(descriptor)
                if written != len(data):
                    raise OSError(f"wrote {written} of {len(data)} bytes")
        except Exception as exc:  # the audit never breaks the API: count, say so once
            self.failures += 1
            if self.failures == 1:
                logger.error("cannot write the audit log %s (entries are dropped and counted): %s", self.path, exc)

    def _rotate_for(self, size: int) -> None:
        try:
            current = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if current and current + size > self.max_bytes:
            os.replace(self.path, rotated_path(self.path))


def read_entries(path: Path) -> Iterator[dict[str, Any]]:
    """Every entry, oldest first (the rotated file, then the current one); lines that are not
    JSON objects (a torn last line) are skipped."""
    for source in (rotated_path(path), path):
        try:
            with source.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(entry, dict):
                        yield entry
        except FileNotFoundError:
            continue
        except OSError as exc:  # e.g. a user of the socket's group: the log is the daemon user's (0600)
            raise UsageError(
                f"cannot read the audit log {source}: {exc.strerror or exc}; it is readable by the daemon's user only"
            ) from None


def select_entries(
    path: Path,
    *,
    since_ms: int | None = None,
    principal: str | None = None,
    operation: str | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """The entries of ``path`` (both generations) at or after ``since_ms``, by ``principal``, of
    ``operation`` (any case), oldest first; only the ``last`` ones when given."""
    found: deque[dict[str, Any]] = deque(maxlen=last)
    for entry in read_entries(path):
        if principal is not None and entry.get("principal") != principal:
            continue
        if operation is not None and str(entry.get("operation", "")).lower() != operation.lower():
            continue
        if since_ms is not None:
            at = _epoch_ms(entry)
            if at is None or at < since_ms:
                continue
        found.append(entry)
    return list(found)


def _epoch_ms(entry: Mapping[str, Any]) -> int | None:
    try:
        return int(datetime.fromisoformat(str(entry.get("time", "")).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
