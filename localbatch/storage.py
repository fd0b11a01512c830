"""What ``localbatch store`` does with the object store: check it, list it, copy to and from it.

``s3://bucket/key`` URLs are parsed here, with errors that name the argument. Copies go file by
file: a local directory uploads every file under it (keys keep their relative paths), and an
``s3://bucket/prefix/`` (ending in ``/``) downloads every object under the prefix, eight
objects at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from localbatch.core.staging import object_name_problem
from localbatch.errors import ObjectStoreError, UsageError
from localbatch.ports import ObjectStore, StoredObject
from localbatch.store_settings import StoreSettings

TRANSFER_WORKERS = 8  # objects copied at once: enough to hide per-request latency, few enough for a laptop
# S3's bucket naming rule (the general-purpose one): 3-63 lowercase letters, digits, '.', '-'.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # may be empty (the whole bucket) or end in "/" (a prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_url(text: str, what: str) -> S3Url:
    """``s3://bucket[/key]``; a UsageError naming ``what`` (the argument) otherwise."""
    if not text.startswith("s3://"):
        raise UsageError(f"{what}: {text!r} is not an s3:// URL")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(
            f"{what}: {bucket!r} is not a bucket name: 3 to 63 lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return S3Url(bucket, key)


@dataclass(frozen=True)
class StoreStatus:
    settings: StoreSettings
    buckets: list[str] | None  # None when the store could not be listed
    problem: str | None  # what is wrong, in one line, or None


def status(settings: StoreSettings, store: ObjectStore) -> StoreStatus:
    """Whether the store answers and takes the credentials, and its buckets."""
    try:
        buckets = store.buckets()
    except ObjectStoreError as exc:
        problem = str(exc)
        if not settings.has_credentials:
            problem += (
                "; no credentials are configured: set LOCALBATCH_S3_ACCESS_KEY and LOCALBATCH_S3_SECRET_KEY, "
                "or [store] access_key and secret_key in the config file"
            )
        return StoreStatus(settings, None, problem)
    return StoreStatus(settings, buckets, None)


def copy(store: ObjectStore, source: str, destination: str) -> list[StoredObject]:
    """Copy a local file or directory to the store, or objects from it to a local path; what
    was written, in order. Exactly one side is an s3:// URL."""
    if source.startswith("s3://") == destination.startswith("s3://"):
        raise UsageError("store cp: give one local path and one s3:// URL (SOURCE DESTINATION)")
    if destination.startswith("s3://"):
        return _upload(store, Path(source), parse_s3_url(destination, "DESTINATION"))
    return _download(store, parse_s3_url(source, "SOURCE"), Path(destination))


def _upload(store: ObjectStore, path: Path, target: S3Url) -> list[StoredObject]:
    if path.is_dir():
        prefix = target.key if not target.key or target.key.endswith("/") else target.key + "/"
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return in_parallel(
            [partial(store.upload, f, target.bucket, prefix + f.relative_to(path).as_posix()) for f in files]
        )
    if not path.is_file():
        raise UsageError(f"SOURCE: {path} is not a file or directory")
    key = target.key + path.name if not target.key or target.key.endswith("/") else target.key
    return [store.upload(path, target.bucket, key)]


def _download(store: ObjectStore, source: S3Url, path: Path) -> list[StoredObject]:
    if not source.key or source.key.endswith("/"):
        transfers = prefix_downloads(store, source, path)
        if not transfers:
            raise ObjectStoreError(f"nothing under {source}")
        return in_parallel(transfers)
    problem = object_name_problem(source.key)
    if problem is not None and path.is_dir():
        raise UsageError(f"SOURCE: {source}: {problem}")
    target = path / source.key.rpartition("/")[2] if path.is_dir() else path
    return [store.download(source.bucket, source.key, target)]


def prefix_downloads(store: ObjectStore, prefix: S3Url, directory: Path) -> list[Callable[[], StoredObject]]:
    """One download per object under ``prefix``, each to its path below the prefix inside
    ``directory`` (none when the prefix is empty). A key that would land outside ``directory``
    ("..", an empty segment) is refused before anything is written."""
    return [
        partial(store.download, o.bucket, o.key, directory / _relative(o.key, prefix.key))
        for o in store.list_objects(prefix.bucket, prefix.key)
    ]


def _relative(key: str, prefix: str) -> str:
    relative = key[len(prefix) :]
    if not relative or "\x00" in relative or any(part in ("", ".", "..") for part in relative.split("/")):
        raise ObjectStoreError(f"cannot copy s3 key {key!r} under {prefix!r}: it is not a plain relative file path")
    return relative


def in_parallel(transfers: Sequence[Callable[[], StoredObject]], workers: int = TRANSFER_WORKERS) -> list[StoredObject]:
    """Run ``transfers`` on up to ``workers`` threads; their results in the given order. The
    first failure is raised once every started transfer has ended (none is left running)."""
    if len(transfers) <= 1:
        return [transfer() for transfer in transfers]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer") as pool:
        futures = [pool.submit(transfer) for transfer in transfers]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()  # the ones not started yet do not start
    if failed:
        raise failed[0].exception() or ObjectStoreError("a transfer failed")
    return [future.result() for future in futures]
