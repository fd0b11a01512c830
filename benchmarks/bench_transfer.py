"""Object store transfers (issue 5): localbatch's copies against a plain ``minio`` client copy of
the same files, in the same run, on the same S3 server (moto's ``moto_server`` in a process of
its own, over HTTP on 127.0.0.1: no
MinIO server can be installed here; a real MinIO is faster, so the ratios are what carries).

    transfer_up_mib_per_s           `storage.copy` of a directory into the store (files in parallel)
    transfer_down_mib_per_s         `storage.copy` of the prefix back out
    minio_up_mib_per_s / _down_     the same files, one `fput_object` / `fget_object` after another
    transfer_up_ratio / _down_      localbatch over plain minio (issue 5's target: at least 0.9)
    staging_in_mib_per_s            the daemon's ``stage_in`` of the uploaded prefix (an input
                                    ``s3://bench/ours/`` mounted at /data)
    staging_out_mib_per_s           the daemon's ``stage_out`` of the same files from a mounted
                                    output directory (``/out/``), its ``_SUCCESS`` marker included
    staging_in_ratio / _out_ratio   over plain minio's down / up of the same round set

localbatch's downloads check every object's MD5 ETag while streaming; plain minio checks nothing.

Full: 1 GiB in 16 files of 64 MiB; quick: 128 MiB in 8 files of 16 MiB. Three rounds, ours and
plain alternating; each figure is the median round.

    python -m benchmarks.bench_transfer [--quick]
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from minio import Minio

from localbatch import storage
from localbatch.adapters.minio_store import MinioObjectStore
from localbatch.core.staging import (
    InputPlan,
    OutputPlan,
    StagedInput,
    StagedOutput,
    placeholders,
    plan_inputs,
    plan_outputs,
)
from localbatch.daemon import staging
from localbatch.ports import ContainerRuntime
from localbatch.store_settings import resolve_store

KEY, SECRET = "bench", "bench-secret"
ROUNDS = 3
JOB_ID = "11111111-2222-3333-4444-555555555555"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _plain_up(client: Minio, source: Path) -> None:
    for path in sorted(source.iterdir()):
        client.fput_object("bench", f"plain/{path.name}", str(path), part_size=16 * 2**20)


def _plain_down(client: Minio, source: Path, target: Path) -> None:
    for path in sorted(source.iterdir()):
        client.fget_object("bench", f"plain/{path.name}", str(target / path.name))


def _wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


@dataclass
class Bench:
    """The moto_server, the files and the clients every transfer figure uses."""

    root: Path
    source: Path  # the files, distinct contents
    server: subprocess.Popen[bytes]
    store: MinioObjectStore
    plain: Minio
    inputs: list[InputPlan]  # staging: the prefix the files went up under, mounted at /data
    outputs: list[OutputPlan]  # a mounted output directory
    where: Path  # the attempt's staging directory

    def written(self) -> None:
        """The files a container would have written into the output directory (not timed)."""
        for path in self.source.iterdir():
            os.link(path, self.where / self.outputs[0].local / path.name)

    def stage_in(self) -> None:
        staging.stage_in(self.store, self.inputs, self.outputs, self.where)

    def stage_out(self) -> None:
        no_runtime = cast(ContainerRuntime, None)  # a mounted output never asks the container
        staging.stage_out(self.store, no_runtime, "", self.outputs, self.where, job_id=JOB_ID, attempt=1, exit_code=0)


@contextmanager
def bench(files: int, size: int) -> Iterator[Bench]:
    """moto_server in a process of its own (a server in this process would share its
    interpreter lock with the transfers measured), ``files`` files of ``size`` bytes, the bucket
    ``bench`` with the files under ``ours/`` and ``plain/``."""
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, server)
        with tempfile.TemporaryDirectory(prefix="lb-transfer-") as tmp:
            root = Path(tmp)
            source = root / "src"
            source.mkdir()
            chunk = os.urandom(size)
            for n in range(files):
                (source / f"file-{n:02d}.bin").write_bytes(chunk[n:] + chunk[:n])  # distinct contents
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
            yield Bench(root, source, server, store, plain, inputs, outputs, root / "staging")
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure(quick: bool) -> dict[str, float]:
    files, size = (8, 16 * 2**20) if quick else (16, 64 * 2**20)
    total_mib = files * size / 2**20
    with bench(files, size) as b:
        times: dict[str, list[float]] = {
            name: [] for name in ("ours_up", "ours_down", "stage_in", "stage_out", "plain_up", "plain_down")
        }
        out, plain_out = b.root / "ours", b.root / "plain"
        for _ in range(ROUNDS):  # alternating, so the server's own drift hits both alike
            times["ours_up"].append(_timed(lambda: storage.copy(b.store, str(b.source), "s3://bench/ours/")))
            times["ours_down"].append(_timed(lambda: storage.copy(b.store, "s3://bench/ours/", str(out))))
            times["stage_in"].append(_timed(b.stage_in))
            b.written()
            times["stage_out"].append(_timed(b.stage_out))
            times["plain_up"].append(_timed(lambda: _plain_up(b.plain, b.source)))
            times["plain_down"].append(_timed(lambda: _plain_down(b.plain, b.source, plain_out)))
            for prefix in ("ours", "plain", f"staged/{JOB_ID}"):
                for path in b.source.iterdir():
                    b.plain.remove_object("bench", f"{prefix}/{path.name}")
            b.plain.remove_object("bench", f"staged/{JOB_ID}/_SUCCESS")
            shutil.rmtree(out)
            shutil.rmtree(plain_out)
            shutil.rmtree(b.where)
    median = {name: statistics.median(taken) for name, taken in times.items()}
    ours_up, ours_down, plain_up, plain_down = (median[k] for k in ("ours_up", "ours_down", "plain_up", "plain_down"))
    return {
        "transfer_mib": round(total_mib),
        "transfer_up_mib_per_s": round(total_mib / ours_up, 1),
        "transfer_down_mib_per_s": round(total_mib / ours_down, 1),
        "minio_up_mib_per_s": round(total_mib / plain_up, 1),
        "minio_down_mib_per_s": round(total_mib / plain_down, 1),
        "transfer_up_ratio": round(plain_up / ours_up, 2),
        "transfer_down_ratio": round(plain_down / ours_down, 2),
        "staging_in_mib_per_s": round(total_mib / median["stage_in"], 1),
        "staging_out_mib_per_s": round(total_mib / median["stage_out"], 1),
        "staging_in_ratio": round(plain_down / median["stage_in"], 2),
        "staging_out_ratio": round(plain_up / median["stage_out"], 2),
    }


if __name__ == "__main__":
    print(measure(quick="--quick" in sys.argv[1:]))
