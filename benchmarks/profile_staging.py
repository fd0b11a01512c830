"""Where staging's time goes (issue 5), against plain minio on moto_server: the daemon's
``stage_in`` / ``stage_out`` with the adapter's MD5 checks on and off (patched out here, for
the measurement only) and with 8 or 1 transfer threads. Prints, per variant, MiB/s, the ratio
over plain minio, each round's seconds and the CPU seconds of this process and of moto_server.

    FILES=8 python -m benchmarks.profile_staging      # FILES files of 64 MiB (default 8)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

from benchmarks.bench_transfer import _plain_down, _plain_up, bench
from localbatch import storage
from localbatch.adapters import minio_store
from localbatch.daemon import staging

FILES, SIZE = int(os.environ.get("FILES", "8")), 64 * 2**20
VARIANTS = ((True, 8), (False, 8), (True, 1), (False, 1))  # (MD5 checks, transfer threads)


class _NoMd5:
    def update(self, _data: object) -> None:
        pass

    def digest(self) -> bytes:
        return b"\0" * 16


_HASHLIB, _ETAG = hashlib, minio_store._MD5_ETAG


def _configure(md5: bool, workers: int) -> None:
    patched: Any = minio_store
    if md5:
        patched.hashlib, patched._MD5_ETAG = _HASHLIB, _ETAG
    else:  # no hashing, and no ETag is taken for an MD5 (so none is compared)
        patched.hashlib = type("NoHashlib", (), {"md5": staticmethod(lambda *_a: _NoMd5())})
        patched._MD5_ETAG = re.compile(r"(?!)")
    cast(Any, staging).in_parallel = partial(storage.in_parallel, workers=workers)


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}
    with bench(FILES, SIZE) as b:

        def record(name: str, action: Callable[[], object]) -> None:
            client, moto = time.process_time(), _cpu_of(b.server.pid)
            started = time.perf_counter()
            action()
            times.setdefault(name, []).append(time.perf_counter() - started)
            cpu.setdefault(name, []).append((time.process_time() - client, _cpu_of(b.server.pid) - moto))

        plain_out = b.root / "plain"
        for _ in range(3):
            record("plain down", lambda: _plain_down(b.plain, b.source, plain_out))
            shutil.rmtree(plain_out)
            record("plain up", lambda: _plain_up(b.plain, b.source))
            for md5, workers in VARIANTS:
                _configure(md5, workers)
                record(f"in md5={md5} w={workers}", b.stage_in)
                b.written()
                record(f"out md5={md5} w={workers}", b.stage_out)
                shutil.rmtree(b.where)
        _configure(True, storage.TRANSFER_WORKERS)
    mib = FILES * SIZE / 2**20
    down, up = statistics.median(times["plain down"]), statistics.median(times["plain up"])
    for name, taken in times.items():
        median = statistics.median(taken)
        base = down if "down" in name or name.startswith("in") else up
        rounds = [round(t, 2) for t in taken]
        used = [(round(a, 2), round(b, 2)) for a, b in cpu[name]]
        print(f"{name:16s} {mib / median:7.1f} MiB/s  ratio {base / median:.2f}  s {rounds}  cpu ours/moto {used}")


if __name__ == "__main__":
    main()
