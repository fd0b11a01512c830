"""S3 staging for one attempt, on a launch or pool thread (never the loop's): ``core.staging``
decides what goes where; this module moves the bytes.

Each attempt stages under ``$LOCALBATCH_HOME/staging/<job>/<attempt>/``. ``stage_in`` clears it,
downloads the inputs (eight objects at a time, each checked by size and checksum), makes the
output directories and returns the bind mounts for the container. ``stage_out`` copies the
other output paths out of the exited container, uploads, then writes each directory's marker
last. ``discard`` removes the directory once the container is gone. Failures are
LocalbatchError or OSError with a message naming the object or path; the loop turns them into
the attempt's status reason (``core.outcome``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from localbatch import faults
from localbatch.core import naming, staging
from localbatch.core.staging import InputPlan, OutputPlan
from localbatch.errors import ObjectStoreError
from localbatch.ports import Bind, ContainerRuntime, ObjectStore, StoredObject
from localbatch.storage import in_parallel, parse_s3_url, prefix_downloads

logger = logging.getLogger(__name__)


def attempt_dir(root: Path, job_id: str, attempt: int) -> Path:
    """Where one attempt stages. Job ids are AWS's (a UUID, ``:N`` for an array child)."""
    return root / naming.safe_name(job_id) / str(attempt)


@dataclass(frozen=True)
class Transferred:
    objects: int
    size: int  # bytes

    def __str__(self) -> str:
        return f"{self.objects} object{'s' if self.objects != 1 else ''}, {_size(self.size)}"


def stage_in(
    store: ObjectStore, inputs: Sequence[InputPlan], outputs: Sequence[OutputPlan], where: Path
) -> tuple[tuple[Bind, ...], Transferred]:
    """Download ``inputs`` and make the mounted output directories under ``where`` (emptied
    first: a requeued attempt stages afresh); the binds that put them in the container."""
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    transfers: list[Callable[[], StoredObject]] = []
    binds: list[Bind] = []
    for n, plan in enumerate(inputs):
        problem = staging.object_name_problem(plan.source)
        if problem is not None:  # checked when the definition was read; placeholders are filled since
            raise ObjectStoreError(f"inputs[{n}].source {plan.source!r}: {problem}")
        url = parse_s3_url(plan.source, "source")
        local = where / plan.local
        if url.key and not url.key.endswith("/"):
            transfers.append(partial(store.download, url.bucket, url.key, local))
        else:
            found = prefix_downloads(store, url, local)
            if not found:
                raise ObjectStoreError(f"no objects under {plan.source}")
            local.mkdir(parents=True, exist_ok=True)
            transfers += found
        binds.append(Bind(local, plan.target))
    for output in outputs:
        if output.mounted:
            directory = where / output.local
            directory.mkdir(parents=True)
            directory.chmod(0o777)  # the container's user may be anyone
            binds.append(Bind(directory, output.path.rstrip("/")))
    done = in_parallel(transfers)
    return tuple(binds), Transferred(len(done), sum(o.size for o in done))


def stage_out(
    store: ObjectStore,
    runtime: ContainerRuntime,
    container_id: str,
    outputs: Sequence[OutputPlan],
    where: Path,
    *,
    job_id: str,
    attempt: int,
    exit_code: int,
) -> Transferred:
    """Upload the outputs of an exited container (those its exit code calls for): files, then
    each directory's marker with the manifest, last; markers an earlier attempt left at the
    same destination are removed before anything is written."""
    succeeded = exit_code == 0
    total = Transferred(0, 0)
    for plan in outputs:
        if not staging.should_upload(plan, succeeded):
            continue
        local = where / plan.local
        if not plan.mounted:
            shutil.rmtree(local, ignore_errors=True)
            local.mkdir(parents=True)
            runtime.copy_out(container_id, plan.path, local)
        files = _regular_files(local)
        url = parse_s3_url(plan.destination, "destination")
        directory = staging.is_directory(plan, files)
        if directory:
            for stale in (True, False):
                store.delete(url.bucket, staging.marker_key(plan, stale))
        pairs = staging.to_upload(plan, files)
        done = in_parallel([partial(store.upload, local / name, url.bucket, key) for name, key in pairs])
        faults.point("during_staging_upload")
        if directory:
            manifest = where / f"{plan.local}.manifest.json"
            manifest.write_bytes(_manifest(job_id, attempt, exit_code, done))
            done.append(store.upload(manifest, url.bucket, staging.marker_key(plan, succeeded)))
        total = Transferred(total.objects + len(done), total.size + sum(o.size for o in done))
    return total


def discard(where: Path) -> None:
    """Remove an attempt's staging directory; what cannot be removed (files a container's
    root user wrote, on a host where the daemon is not root) is logged and left."""
    problems: list[str] = []
    shutil.rmtree(where, onerror=lambda _f, path, exc: problems.append(f"{path}: {exc[1]}"))
    if problems and where.exists():
        logger.warning("could not remove the staging directory %s: %s", where, problems[0])


def _regular_files(root: Path) -> list[str]:
    """Every regular file under ``root`` (relative, sorted). Links are never followed: a
    container must not make the daemon upload a host file it points at."""
    found: list[str] = []
    for directory, _dirs, names in os.walk(root):  # followlinks=False
        for name in names:
            path = Path(directory, name)
            if stat.S_ISREG(path.lstat().st_mode):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _manifest(job_id: str, attempt: int, exit_code: int, files: Sequence[StoredObject]) -> bytes:
    """A marker's content: what the attempt wrote, so a reader can check all of it is there."""
    document = {
        "jobId": job_id,
        "attempt": attempt,
        "exitCode": exit_code,
        "files": [{"key": f.key, "size": f.size, "etag": f.etag} for f in files],
    }
    return json.dumps(document, indent=1).encode() + b"\n"


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size / (1024 * 1024):.1f} MiB"
