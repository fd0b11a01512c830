"""Per-attempt log files: where they live, the pump that fills them, the reader that follows them.

Container output is data, not logging: each attempt's stdout and stderr, interleaved as
the engine delivers them, go to ``$LOCALBATCH_HOME/logs/<job id>/<attempt>.log``. They are
never sent through the ``logging`` module and never stored in SQLite.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from localbatch import faults
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

    ``max_bytes`` (if given) caps the file: the first half is written as it comes; beyond it
    the output goes to two spill files next to the log (``.tail-0``/``.tail-1``, each a quarter
    of the cap) that take turns, so only the last quarter to half of the cap is kept on disk;
    when the output ends, a marker line saying how many bytes were dropped and then the kept
    tail are appended. Memory stays at one chunk whatever the output's size.

    A write that fails (a full disk) loses its chunk, not the file: later chunks are tried
    again, and the first that lands is preceded by a marker line with the number of bytes lost
    (``gap_marker``); at the end the marker is tried once more.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        path: Path,
        tee: Callable[[bytes], None] | None = None,
        *,
        name: str = "log-pump",
        on_end: Callable[[], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._chunks = chunks
        self._on_end = on_end
        self._path = path
        self._tee = tee
        self._file: BinaryIO | None = None
        self._head_left = None if not max_bytes else max_bytes - max_bytes // 2
        self._spill_bytes = max(1, (max_bytes or 0) // 4)
        self._spills: list[Path] = []  # oldest first, at most two
        self._spill: BinaryIO | None = None
        self._spilled = 0  # bytes in the current spill file
        self._spill_count = 0  # spill files opened: their names alternate (the oldest is reused)
        self._dropped = 0  # bytes of spill files given up: the middle the cap drops
        self._max_bytes = max_bytes
        self._lost = 0  # bytes that failed to be written, not yet marked in the file
        self._lost_why = ""
        self.error: str | None = None
        self.received = 0  # bytes read from the stream so far

    def run(self) -> None:
        self._open()
        try:
            for chunk in self._chunks:
                self.received += len(chunk)
                self._take(chunk)
                self._send(chunk)
                faults.point("during_log_pump")
        except LocalbatchError as exc:  # the engine stopped streaming
            self._lost_message(f"the engine stopped sending output: {exc}")
            self._write(f"\n[localbatch: log capture stopped: {exc}]\n".encode())
        finally:
            self._end_spill()
            if self._lost:
                self._write(b"")  # one more try at the gap marker
            if self._file is not None:
                self._file.close()
            if self._on_end is not None:
                self._on_end()

    def _open(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("ab", buffering=0)
        except OSError as exc:
            self._lost_message(f"cannot write {self._path}: {exc.strerror}")

    def _take(self, chunk: bytes) -> None:
        """Into the file while the cap's first half lasts, then into the spill files."""
        if self._head_left is None:
            self._write(chunk)
            return
        head = chunk[: self._head_left]
        if head:
            self._head_left -= len(head)
            self._write(head)
        rest = chunk[len(head) :]
        if rest:
            self._spill_out(rest)

    def _spill_out(self, data: bytes) -> None:
        if self._spill is None or self._spilled >= self._spill_bytes:
            self._next_spill()
        if self._spill is None:
            self._dropped += len(data)
            return
        try:
            self._spill.write(data)
            self._spilled += len(data)
        except OSError as exc:
            self._lost_message(f"writing {self._path}'s tail failed: {exc.strerror}")
            self._dropped += len(data)

    def _next_spill(self) -> None:
        if self._spill is not None:
            self._spill.close()
        if len(self._spills) == 2:
            oldest = self._spills.pop(0)
            self._dropped += _size(oldest)
            oldest.unlink(missing_ok=True)
        spill = self._path.with_name(f"{self._path.name}.tail-{self._spill_count % 2}")
        self._spill_count += 1
        self._spilled = 0
        try:
            self._spill = spill.open("wb", buffering=0)
            self._spills.append(spill)
        except OSError as exc:
            self._lost_message(f"cannot write {spill}: {exc.strerror}")
            self._spill = None

    def _end_spill(self) -> None:
        """The output ended: the marker for the dropped middle, then the kept tail."""
        if self._spill is None and not self._spills:
            return
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        kept = sum(_size(spill) for spill in self._spills)
        self._write(
            f"\n[localbatch: {self._dropped} bytes of output dropped here: this attempt's log keeps its first "
            f"and last bytes, {_mib(self._max_bytes or 0)} in all ([logs] max_attempt_mib); the last {kept} "
            "bytes follow]\n".encode()
        )
        for spill in self._spills:
            try:
                with spill.open("rb") as source:
                    while block := source.read(_COPY_CHUNK):
                        self._write(block)
            except OSError as exc:
                self._lost_message(f"reading {spill} failed: {exc.strerror}")
            spill.unlink(missing_ok=True)
        self._spills = []

    def _write(self, chunk: bytes) -> None:
        if self._file is None:
            self._lost += len(chunk)
            return
        if self._lost:
            marker = gap_marker(self._lost, self._lost_why)
            if not self._write_all(marker):
                self._lost += len(chunk)
                return
            self._lost = 0
        if chunk and not self._write_all(chunk):
            self._lost += len(chunk)

    def _write_all(self, data: bytes) -> bool:
        """Write all of ``data``, or nothing of it (a partial write is cut back)."""
        assert self._file is not None
        start = self._file.tell()
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written or 0 :]
                if not written:
                    raise OSError(28, "No space left on device")  # a raw file's short write
            return True
        except OSError as exc:
            why = (exc.strerror or str(exc)).lower()
            self._lost_message(f"writing {self._path} failed: {exc.strerror}")
            self._lost_why = self._lost_why or why
            try:
                self._file.truncate(start)
                self._file.seek(start)
            except OSError:
                pass  # what was written stays; the marker will still say what is missing
            return False

    def _send(self, chunk: bytes) -> None:
        if self._tee is None:
            return
        try:
            self._tee(chunk)
        except OSError:  # the reader went away (a closed pipe): keep filling the file
            self._tee = None

    def _lost_message(self, message: str) -> None:
        if self.error is None:
            logger.warning("log capture for %s: %s", self._path, message)
        self.error = self.error or message


_COPY_CHUNK = 1024 * 1024


def discard(path: Path) -> None:
    """Remove an attempt's log and any spill files a pump cut short (kill -9) left beside it,
    before the log is written again from the engine."""
    for stale in (path, *path.parent.glob(f"{glob.escape(path.name)}.tail-*")):
        stale.unlink(missing_ok=True)


def gap_marker(lost: int, why: str) -> bytes:
    """The line a log gets where output could not be written."""
    return f"\n[localbatch: {lost} bytes of output lost here: {why or 'write failed'}]\n".encode()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


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
