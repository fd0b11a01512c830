"""LogPump's cap ([logs] max_attempt_mib) and its gaps (a write that fails)."""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from pathlib import Path

from localbatch.logs import LogPump, discard

DROPPED = re.compile(rb"\n\[localbatch: (\d+) bytes of output dropped here: [^\n]*\]\n")


def _pump(chunks: list[bytes], path: Path, max_bytes: int | None = None) -> bytes:
    LogPump(iter(chunks), path, max_bytes=max_bytes).run()  # on this thread
    return path.read_bytes()


def test_without_a_cap_everything_is_kept(tmp_path: Path) -> None:
    assert _pump([b"a" * 1000, b"b\n"], tmp_path / "1.log") == b"a" * 1000 + b"b\n"


def test_under_the_cap_nothing_changes(tmp_path: Path) -> None:
    assert _pump([b"x" * 100, b"\n"], tmp_path / "1.log", max_bytes=1000) == b"x" * 100 + b"\n"


def test_past_the_cap_the_head_and_the_tail_are_kept_around_a_marker(tmp_path: Path) -> None:
    chunks = [bytes([65 + i % 26]) * 1000 for i in range(100)]  # 100,000 bytes, A..Z by the thousand
    log = _pump(chunks, tmp_path / "1.log", max_bytes=10_000)
    match = DROPPED.search(log)
    assert match is not None
    head, tail = log[: match.start()], log[match.end() :]
    assert head == b"".join(chunks)[:5_000]
    assert tail == b"".join(chunks)[-len(tail) :] and 2_500 <= len(tail) <= 5_000 + 1_000
    assert len(head) + int(match.group(1)) + len(tail) == 100_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.log"]  # the spill files are gone


class _FullDisk:
    """A file whose writes fail while ``full``."""

    def __init__(self, path: Path) -> None:
        self.full = False
        self._file = path.open("ab", buffering=0)

    def write(self, data: bytes) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._file.write(data) or 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


def test_a_write_that_fails_leaves_a_marked_gap_once_space_is_back(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    disk = _FullDisk(path)

    def chunks() -> Iterator[bytes]:
        yield b"before\n"
        disk.full = True
        yield b"lost" * 10
        yield b"lost too"
        disk.full = False
        yield b"after\n"

    pump = LogPump(chunks(), path)
    pump._open = lambda: setattr(pump, "_file", disk)  # type: ignore[method-assign]  # a disk that fills up
    pump.run()
    assert (
        path.read_bytes() == b"before\n\n[localbatch: 48 bytes of output lost here: no space left on device]\nafter\n"
    )
    assert pump.error is not None and "No space left on device" in pump.error


def test_a_log_rewritten_from_the_engine_first_loses_what_a_cut_short_pump_left(tmp_path: Path) -> None:
    log = tmp_path / "1.log"
    for stale in (log, tmp_path / "1.log.tail-0", tmp_path / "1.log.tail-1"):  # a kill -9 mid-spill
        stale.write_bytes(b"old")
    (tmp_path / "2.log.tail-0").write_bytes(b"another attempt's")
    discard(log)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.log.tail-0"]
    assert _pump([b"x" * 100, b"\n"], log, max_bytes=1000) == b"x" * 100 + b"\n"
