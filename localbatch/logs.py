"""Per-attempt log files: where they live, the pump that fills them, the reader that follows them.

Container output is data, not logging: each attempt's stdout and stderr, interleaved as
the engine delivers them, go to ``$LOCALBATCH_HOME/logs/<job id>/<attempt>.log``. They are
never sent through the ``logging`` module and never stored in SQLite.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from localbatch.core import naming
from localbatch.errors import LocalbatchError

logger = logging.getLogger(__name__)


def attempt_log_path(logs_dir: Path, job_id: str, attempt: int) -> Path:
    return logs_dir / naming.safe_name(job_id) / f"{attempt}.log"


class LogPump(threading.Thread):
    """Copies one container's output into its log file as it arrives.

    ``tee`` (if given) also receives every chunk, which is how ``localbatch run`` streams
    output live. The file and the tee fail independently: a closed terminal
    (``localbatch run ... | head``) does not stop the file, and a full disk does not stop the
    terminal. The pump reads the stream to its end either way, and ends by itself when the
    container's output ends. ``error`` says what was lost, if anything. ``on_end`` (if given) is
    called once the pump has ended and closed the file: the control loop's wake-up, since a
    container's output ends when the container stops.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        path: Path,
        tee: Callable[[bytes], None] | None = None,
        *,
        name: str = "log-pump",
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._chunks = chunks
        self._on_end = on_end
        self._path = path
        self._tee = tee
        self._file: BinaryIO | None = None
        self.error: str | None = None

    def run(self) -> None:
        self._open()
        try:
            for chunk in self._chunks:
                self._write(chunk)
                self._send(chunk)
        except LocalbatchError as exc:  # the engine stopped streaming
            self._lost(f"the engine stopped sending output: {exc}")
            self._write(f"\n[localbatch: log capture stopped: {exc}]\n".encode())
        finally:
            if self._file is not None:
                self._file.close()
            if self._on_end is not None:
                self._on_end()

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("ab")
        except OSError as exc:
            self._lost(f"cannot write {self._path}: {exc.strerror}")

    def _write(self, chunk: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(chunk)
            self._file.flush()
        except OSError as exc:
            self._lost(f"writing {self._path} failed: {exc.strerror}")
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass  # the same failure again, already reported

    def _send(self, chunk: bytes) -> None:
        if self._tee is None:
            return
        try:
            self._tee(chunk)
        except OSError:  # the reader went away (a closed pipe): keep filling the file
            self._tee = None

    def _lost(self, message: str) -> None:
        self.error = self.error or message
        logger.warning("log capture for %s: %s", self._path, message)


def read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def follow(path: Path, finished: Callable[[], bool], poll_s: float = 0.2) -> Iterator[bytes]:
    """What is in ``path`` now, then what is appended, until ``finished()`` and no more data.

    While nothing new arrives it yields ``b""`` every ``poll_s``: a heartbeat, which lets a
    server streaming this notice a reader that went away (and costs a reader nothing)."""
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
            yield b""
            time.sleep(poll_s)


def lines(path: Path, *, partial: bool) -> Iterator[tuple[int, bytes]]:
    """The lines in ``path`` now, numbered from 0, without their line break (``\\n`` or
    ``\\r\\n``). A last line with no line break yet is left out unless ``partial``: while its
    attempt runs it may still grow. No file: no lines."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for index, raw in enumerate(handle):  # bounded by the file's size
            if raw.endswith(b"\n"):
                yield index, raw[:-1].removesuffix(b"\r")
            elif partial:
                yield index, raw


def written_at_ms(path: Path) -> int | None:
    """When ``path`` was last written (epoch ms), or None when there is no such file."""
    try:
        return int(path.stat().st_mtime * 1000)
    except FileNotFoundError:
        return None
