"""InMemoryObjectStore: the ObjectStore port in memory, for unit tests (passes
tests/contract/object_store_contract.py like the minio adapter on a real S3 server)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from localbatch.errors import NoSuchBucket, ObjectStoreError, StoreUnreachable
from localbatch.ports import StoredObject


class InMemoryObjectStore:
    def __init__(self, *buckets: str) -> None:
        self.objects: dict[str, dict[str, bytes]] = {bucket: {} for bucket in buckets}
        self.unreachable: str | None = None  # set to make every call fail as a dead endpoint

    def _bucket(self, bucket: str, doing: str) -> dict[str, bytes]:
        if self.unreachable is not None:
            raise StoreUnreachable(f"cannot {doing}: nothing answers at {self.unreachable}")
        if bucket not in self.objects:
            raise NoSuchBucket(f"cannot {doing}: no bucket {bucket!r}")
        return self.objects[bucket]

    def buckets(self) -> list[str]:
        if self.unreachable is not None:
            raise StoreUnreachable(f"cannot list buckets: nothing answers at {self.unreachable}")
        return sorted(self.objects)

    def make_bucket(self, bucket: str) -> None:
        if self.unreachable is not None:
            raise StoreUnreachable(f"cannot create bucket {bucket!r}: nothing answers at {self.unreachable}")
        self.objects.setdefault(bucket, {})

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        found = self._bucket(bucket, f"list s3://{bucket}/{prefix}")
        return [_stored(bucket, key, data) for key, data in sorted(found.items()) if key.startswith(prefix)]

    def upload(self, path: Path, bucket: str, key: str) -> StoredObject:
        data = path.read_bytes()
        self._bucket(bucket, f"upload {path} to s3://{bucket}/{key}")[key] = data
        return _stored(bucket, key, data)

    def download(self, bucket: str, key: str, path: Path) -> StoredObject:
        found = self._bucket(bucket, f"download s3://{bucket}/{key}")
        if key not in found:
            raise ObjectStoreError(f"cannot download s3://{bucket}/{key}: NoSuchKey")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(found[key])
        return _stored(bucket, key, found[key])

    def delete(self, bucket: str, key: str) -> None:
        self._bucket(bucket, f"delete s3://{bucket}/{key}").pop(key, None)


def _stored(bucket: str, key: str, data: bytes) -> StoredObject:
    return StoredObject(bucket, key, len(data), hashlib.md5(data).hexdigest())  # noqa: S324 - an S3 ETag
