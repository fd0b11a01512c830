"""Per-attempt log files: where they live, the pump that fills them, the reader that follows them.

Container output is data, not logging: each attempt's stdout and stderr, interleaved as
the engine delivers them, go to ``$LOCALBATCH_HOME/logs/<job id>/<attempt>.log``. They are
never sent through the ``logging`` module and never stored in SQLite.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from localbatch.errors import LocalbatchError

logger = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:#-]")


def attempt_log_path(logs_dir: Path, job_id: str, attempt: int) -> Path:
    return logs_dir / _UNSAFE.sub("_", job_id) / f"{attempt}.log"


class LogPump(threading.Thread):
    """Copies one container's output into its log file as it arrives.

    ``tee`` (if given) also receives every chunk, which is how ``localbatch run`` streams
    output live. The pump ends by itself when the container's output ends.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        path: Path,
        tee: Callable[[bytes], None] | None = None,
        *,
        name: str = "log-pump",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._chunks = chunks
        self._path = path
        self._tee = tee
        self.bytes_written = 0
        self.error: str | None = None

    def run(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("ab") as out:
            try:
                for chunk in self._chunks:
                    out.write(chunk)
                    out.flush()
                    self.bytes_written += len(chunk)
                    if self._tee is not None:
                        self._tee(chunk)
            except (LocalbatchError, OSError) as exc:
                # The container's fate does not depend on its log; note the gap and stop.
                self.error = str(exc)
                out.write(f"\n[localbatch: log capture stopped: {exc}]\n".encode())
                logger.warning("log capture for %s stopped: %s", self._path, exc)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def follow(path: Path, finished: Callable[[], bool], poll_s: float = 0.2) -> Iterator[bytes]:
    """What is in ``path`` now, then what is appended, until ``finished()`` and no more data."""
    offset = 0
    while True:
        done = finished()  # read before the file, so nothing written before "done" is missed
        data = b""
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        if data:
            offset += len(data)
            yield data
        elif done:
            return
        else:
            time.sleep(poll_s)
