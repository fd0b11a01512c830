"""The ObjectStore contract, run against the in-memory fake (tests/unit/test_storage.py) and
the minio adapter on a real S3 server over HTTP (tests/integration/test_store.py).

``make_store(tmp_path)`` returns a store holding an empty bucket named ``BUCKET``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from localbatch.errors import NoSuchBucket, ObjectStoreError
from localbatch.ports import ObjectStore

BUCKET = "contract"


class ObjectStoreContract:
    def make_store(self, tmp_path: Path) -> ObjectStore:
        raise NotImplementedError

    def test_a_file_round_trips_byte_exact(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        data = os.urandom(300_000) + b"\x00end"
        (tmp_path / "in.bin").write_bytes(data)
        written = store.upload(tmp_path / "in.bin", BUCKET, "dir/in.bin")
        assert (written.bucket, written.key, written.size) == (BUCKET, "dir/in.bin", len(data))
        read = store.download(BUCKET, "dir/in.bin", tmp_path / "out" / "deep" / "in.bin")
        assert read.size == len(data)
        assert (tmp_path / "out" / "deep" / "in.bin").read_bytes() == data

    def test_objects_list_by_prefix_in_key_order(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        (tmp_path / "f").write_bytes(b"x" * 7)
        for key in ("b/2", "a/1", "b/1", "b10"):
            store.upload(tmp_path / "f", BUCKET, key)
        assert [o.key for o in store.list_objects(BUCKET, "b/")] == ["b/1", "b/2"]
        assert [o.key for o in store.list_objects(BUCKET)] == ["a/1", "b/1", "b/2", "b10"]
        assert {o.size for o in store.list_objects(BUCKET)} == {7}
        assert BUCKET in store.buckets()

    def test_a_missing_bucket_is_named(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        (tmp_path / "f").write_bytes(b"x")
        for call in (
            lambda: store.list_objects("no-such-bucket"),
            lambda: store.upload(tmp_path / "f", "no-such-bucket", "k"),
        ):
            with pytest.raises(NoSuchBucket, match="no-such-bucket"):
                call()

    def test_a_bucket_is_made_once(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        store.make_bucket("made-here")
        store.make_bucket("made-here")  # again: nothing changes
        assert "made-here" in store.buckets()
        assert store.list_objects("made-here") == []

    def test_a_missing_object_is_an_error_naming_it(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        with pytest.raises(ObjectStoreError, match=f"s3://{BUCKET}/nope"):
            store.download(BUCKET, "nope", tmp_path / "x")

    def test_a_multipart_file_round_trips_with_its_checksum(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        data = os.urandom(1024) * (40 * 1024 + 3)  # 40 MiB and a bit: three parts of 16 MiB
        (tmp_path / "big").write_bytes(data)
        written = store.upload(tmp_path / "big", BUCKET, "big")
        read = store.download(BUCKET, "big", tmp_path / "back")
        assert (written.size, read.size) == (len(data), len(data))
        assert written.etag == read.etag
        assert (tmp_path / "back").read_bytes() == data

    def test_delete_removes_and_a_missing_object_is_fine(self, tmp_path: Path) -> None:
        store = self.make_store(tmp_path)
        (tmp_path / "f").write_bytes(b"x")
        store.upload(tmp_path / "f", BUCKET, "gone")
        store.delete(BUCKET, "gone")
        store.delete(BUCKET, "never-there")
        assert store.list_objects(BUCKET) == []
