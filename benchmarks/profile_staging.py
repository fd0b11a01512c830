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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

from minio import Minio

from benchmarks.bench_transfer import JOB_ID, KEY, SECRET, _free_port, _plain_down, _plain_up, _wait_for
from localbatch import storage
from localbatch.adapters import minio_store
from localbatch.adapters.minio_store import MinioObjectStore
from localbatch.core.staging import StagedInput, StagedOutput, placeholders, plan_inputs, plan_outputs
from localbatch.daemon import staging
from localbatch.ports import ContainerRuntime
from localbatch.store_settings import resolve_store

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
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, action: Callable[[], object]) -> None:
        client, moto = time.process_time(), _cpu_of(server.pid)
        started = time.perf_counter()
        action()
        times.setdefault(name, []).append(time.perf_counter() - started)
        cpu.setdefault(name, []).append((time.process_time() - client, _cpu_of(server.pid) - moto))

    try:
        _wait_for(port, server)
        with tempfile.TemporaryDirectory(prefix="lb-profile-") as tmp:
            source = Path(tmp) / "src"
            source.mkdir()
            chunk = os.urandom(SIZE)
            for n in range(FILES):
                (source / f"file-{n:02d}.bin").write_bytes(chunk[n:] + chunk[:n])
            env = {"LOCALBATCH_S3_ENDPOINT": f"127.0.0.1:{port}", "LOCALBATCH_S3_ACCESS_KEY": KEY}
            env["LOCALBATCH_S3_SECRET_KEY"] = SECRET
            store = MinioObjectStore(resolve_store(env, {}, "bench"))
            plain = Minio(f"127.0.0.1:{port}", access_key=KEY, secret_key=SECRET, secure=False)
            plain.make_bucket("bench")
            storage.copy(store, str(source), "s3://bench/ours/")
            _plain_up(plain, source)
            values = placeholders(JOB_ID, None, 1)
            inputs = plan_inputs([StagedInput("s3://bench/ours/", "/data")], values)
            outputs = plan_outputs([StagedOutput("/out/", "s3://bench/staged/${AWS_BATCH_JOB_ID}/")], values)
            where, plain_out = Path(tmp) / "staging", Path(tmp) / "plain"
            no_runtime = cast(ContainerRuntime, None)
            for _ in range(3):
                record("plain down", lambda: _plain_down(plain, source, plain_out))
                shutil.rmtree(plain_out)
                record("plain up", lambda: _plain_up(plain, source))
                for md5, workers in VARIANTS:
                    _configure(md5, workers)
                    record(f"in md5={md5} w={workers}", lambda: staging.stage_in(store, inputs, outputs, where))
                    for path in source.iterdir():
                        os.link(path, where / outputs[0].local / path.name)
                    record(
                        f"out md5={md5} w={workers}",
                        lambda: staging.stage_out(
                            store, no_runtime, "", outputs, where, job_id=JOB_ID, attempt=1, exit_code=0
                        ),
                    )
                    shutil.rmtree(where)
            _configure(True, storage.TRANSFER_WORKERS)
    finally:
        server.terminate()
        server.wait(timeout=30)
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
