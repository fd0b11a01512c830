"""ObjectStore on the ``minio`` client: any S3-compatible endpoint (MinIO, moto, AWS S3).

Errors are translated here and only here: nothing answering at the endpoint is
StoreUnreachable, refused credentials StoreAccessDenied, a missing bucket NoSuchBucket, and
anything else ObjectStoreError, each naming the endpoint and what was being done. Connections
time out after a few seconds and are retried twice, so an unreachable endpoint is reported in
seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from localbatch.errors import NoSuchBucket, ObjectStoreError, StoreAccessDenied, StoreUnreachable
from localbatch.ports import StoredObject
from localbatch.store_settings import StoreSettings

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_PART_SIZE = 16 * 1024 * 1024  # multipart above this


class MinioObjectStore:
    def __init__(self, settings: StoreSettings, *, connect_timeout_s: float = 3.0, read_timeout_s: float = 60.0):
        self._settings = settings
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            retries=urllib3.Retry(total=2, connect=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=16,
        )
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            region=settings.region,
            secure=settings.secure,
            http_client=http,
        )

    @contextmanager
    def _border(self, doing: str, bucket: str | None = None) -> Iterator[None]:
        where = self._settings.url
        try:
            yield
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise NoSuchBucket(f"cannot {doing}: no bucket {bucket or exc.bucket_name!r} at {where}") from exc
            if exc.code in _DENIED:
                raise StoreAccessDenied(
                    f"cannot {doing}: {where} refused the credentials: {exc.code}: {exc.message}"
                ) from exc
            raise ObjectStoreError(f"cannot {doing} at {where}: {exc.code}: {exc.message}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise StoreUnreachable(f"cannot {doing}: nothing answers at {where} ({_root(exc)})") from exc
        except (MinioException, ValueError, OSError) as exc:
            raise ObjectStoreError(f"cannot {doing} at {where}: {exc}") from exc

    def buckets(self) -> list[str]:
        with self._border("list buckets"):
            return sorted(b.name for b in self._client.list_buckets())

    def make_bucket(self, bucket: str) -> None:
        with self._border(f"create bucket {bucket!r}", bucket):
            if not self._client.bucket_exists(bucket):
                self._client.make_bucket(bucket, location=self._settings.region)

    def list_objects(self, bucket: str, prefix: str = "") -> list[StoredObject]:
        with self._border(f"list s3://{bucket}/{prefix}", bucket):
            found = [
                StoredObject(bucket, o.object_name or "", o.size or 0, o.etag)
                for o in self._client.list_objects(bucket, prefix=prefix, recursive=True)
                if o.object_name is not None and not o.is_dir
            ]
        return sorted(found, key=lambda o: o.key)

    def upload(self, path: Path, bucket: str, key: str) -> StoredObject:
        with self._border(f"upload {path} to s3://{bucket}/{key}", bucket):
            size = path.stat().st_size
            result = self._client.fput_object(bucket, key, str(path), part_size=_PART_SIZE)
            stored = self._client.stat_object(bucket, key)
        if stored.size != size:
            raise ObjectStoreError(
                f"upload of {path} to s3://{bucket}/{key}: wrote {size} bytes, the store holds {stored.size}"
            )
        return StoredObject(bucket, key, size, result.etag)

    def download(self, bucket: str, key: str, path: Path) -> StoredObject:
        with self._border(f"download s3://{bucket}/{key}", bucket):
            path.parent.mkdir(parents=True, exist_ok=True)
            stat = self._client.fget_object(bucket, key, str(path))
        size = path.stat().st_size
        if stat.size is not None and stat.size != size:
            raise ObjectStoreError(f"download of s3://{bucket}/{key}: the store holds {stat.size} bytes, got {size}")
        return StoredObject(bucket, key, size, stat.etag)


def _root(exc: BaseException) -> str:
    """The innermost reason (connection refused, timed out, name unknown)."""
    while exc.__context__ is not None or getattr(exc, "reason", None) is not None:
        inner = getattr(exc, "reason", None) or exc.__context__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    text = str(exc)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text
