"""ObjectStore on the ``minio`` client: any S3-compatible endpoint (MinIO, moto, AWS S3).

Errors are translated here and only here: nothing answering at the endpoint is
StoreUnreachable, refused credentials StoreAccessDenied, a missing bucket NoSuchBucket, and
anything else ObjectStoreError, each naming the endpoint and what was being done. Connections
time out after a few seconds and are retried twice, so an unreachable endpoint is reported in
seconds, not minutes.

Every copy is checked. An upload sends exactly the file's size, and the server checks each part
against the checksum the minio client signs into the request (its SHA-256 over HTTP, its
Content-MD5 over HTTPS), so no second hash is computed here. A download, which S3 does not
check, is: its size, and the MD5 S3 reports as the object's ETag (for a multipart object the
MD5 of its parts' MD5s, "-N"), computed in the same pass that writes the file. Uploads record
their part size in the object's metadata so that a download can recompute a multipart ETag; an
object another client wrote in parts, or an ETag that is no MD5 (SSE-KMS), is checked by size.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from localbatch import faults
from localbatch.errors import NoSuchBucket, ObjectStoreError, StoreAccessDenied, StoreUnreachable
from localbatch.ports import StoredObject
from localbatch.store_settings import StoreSettings

_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
_PART_SIZE = 16 * 1024 * 1024  # multipart above this
_CHUNK = 1024 * 1024
_PART_META = "localbatch-part-size"  # user metadata on what localbatch uploads: how to check its ETag
_MD5_ETAG = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")


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
        with self._border(f"upload {path} to s3://{bucket}/{key}", bucket), path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            result = self._client.put_object(
                bucket, key, file, size, part_size=_PART_SIZE, metadata={_PART_META: str(_PART_SIZE)}
            )
        return StoredObject(bucket, key, size, _unquoted(result.etag))

    def download(self, bucket: str, key: str, path: Path) -> StoredObject:
        partial = path.with_name(path.name + ".part")
        with self._border(f"download s3://{bucket}/{key}", bucket):
            path.parent.mkdir(parents=True, exist_ok=True)
            response = self._client.get_object(bucket, key)
            try:
                expected = int(response.headers.get("Content-Length", -1))
                etag = _unquoted(response.headers.get("ETag"))
                # An object written in one PUT has the MD5 of its data as ETag, one written in
                # parts "-N" the MD5 of its parts' MD5s: hash it the way it was made, when known.
                part_size = response.headers.get(f"x-amz-meta-{_PART_META}", "")
                hasher = _PartHasher(int(part_size) if part_size.isdigit() and "-" in etag else None)
                with partial.open("wb") as file:
                    for chunk in response.stream(_CHUNK):
                        hasher.update(chunk)
                        file.write(chunk)
                        faults.point("during_staging_download")
            finally:
                response.close()
                response.release_conn()
        problem = _download_problem(hasher, expected, etag)
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise ObjectStoreError(f"download of s3://{bucket}/{key}: {problem}")
        partial.replace(path)
        return StoredObject(bucket, key, hasher.read_bytes, etag)

    def delete(self, bucket: str, key: str) -> None:
        with self._border(f"delete s3://{bucket}/{key}", bucket):
            self._client.remove_object(bucket, key)


class _PartHasher:
    """Fed a download's chunks, computes the ETag S3 gives the object: the MD5 of the data, or
    with more than one part of ``part_size`` the MD5 of the parts' MD5s followed by "-N"."""

    def __init__(self, part_size: int | None) -> None:
        self._part_size = part_size or (1 << 62)  # None: one part, whatever the size
        self._parts: list[bytes] = []
        self._part = hashlib.md5()  # noqa: S324 - S3's ETag, not security
        self._in_part = 0
        self.read_bytes = 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._in_part)
            self._part.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self._part_size:
                self._parts.append(self._part.digest())
                self._part, self._in_part = hashlib.md5(), 0  # noqa: S324
        self.read_bytes += len(data)

    def etag(self) -> str:
        """The ETag of the data so far, uploaded in parts of ``_PART_SIZE``."""
        digests = self._parts + ([self._part.digest()] if self._in_part or not self._parts else [])
        if len(digests) == 1:
            return digests[0].hex()
        return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"  # noqa: S324


def _download_problem(hasher: _PartHasher, expected_size: int, etag: str) -> str | None:
    if expected_size >= 0 and hasher.read_bytes != expected_size:
        return f"the store holds {expected_size} bytes, got {hasher.read_bytes}"
    if not _MD5_ETAG.fullmatch(etag):
        return None
    mine = hasher.etag()
    if "-" in etag and etag.rpartition("-")[2] != mine.rpartition("-")[2]:
        return None  # written in parts of a size not known here: the size check is what there is
    if etag != mine:
        return f"the data read does not match the store's checksum (ETag {etag}, read {mine})"
    return None


def _unquoted(etag: str | None) -> str:
    return (etag or "").strip('"')


def _root(exc: BaseException) -> str:
    """The innermost reason (connection refused, timed out, name unknown)."""
    while exc.__context__ is not None or getattr(exc, "reason", None) is not None:
        inner = getattr(exc, "reason", None) or exc.__context__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    text = str(exc)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text
