"""The object store against a real S3 server over HTTP (moto's, on loopback): the ObjectStore
contract on the minio adapter, and `localbatch store status|ls|cp` as a user runs them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localbatch.adapters.minio_store import MinioObjectStore
from localbatch.errors import StoreUnreachable
from localbatch.store_settings import resolve_store
from tests.contract.object_store_contract import BUCKET, ObjectStoreContract
from tests.integration.conftest import LocalbatchCli, home_environment
from tests.integration.s3 import SECRET_KEY, S3Server, authenticating_s3_server, free_port, running_s3_server


@pytest.fixture(scope="module")
def s3_module() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3(s3_module: S3Server) -> S3Server:
    s3_module.reset()
    return s3_module


class TestMinioObjectStore(ObjectStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, s3: S3Server) -> None:
        self.server = s3

    def make_store(self, tmp_path: Path) -> MinioObjectStore:
        self.server.client().create_bucket(Bucket=BUCKET)
        return MinioObjectStore(resolve_store(self.server.env(), {}, "test"))

    def test_objects_other_clients_wrote_are_checked_single_part_or_multipart(self, tmp_path: Path) -> None:
        """A large object written in one PUT has a plain MD5 ETag, one written in parts of
        another size a "-N" ETag localbatch cannot recompute (checked by size): both download."""
        store = self.make_store(tmp_path)
        s3 = self.server.client()
        data = os.urandom(1024 * 1024) * 20
        s3.put_object(Bucket=BUCKET, Key="one-put", Body=data)
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="parts")["UploadId"]
        parts = []
        for n, chunk in enumerate((data[: 5 * 1024 * 1024], data[5 * 1024 * 1024 :]), start=1):
            answer = s3.upload_part(Bucket=BUCKET, Key="parts", UploadId=upload, PartNumber=n, Body=chunk)
            parts.append({"PartNumber": n, "ETag": answer["ETag"]})
        s3.complete_multipart_upload(Bucket=BUCKET, Key="parts", UploadId=upload, MultipartUpload={"Parts": parts})
        for key in ("one-put", "parts"):
            assert store.download(BUCKET, key, tmp_path / key).size == len(data)
            assert (tmp_path / key).read_bytes() == data


def test_an_endpoint_nobody_answers_at_is_named_in_seconds() -> None:
    port = free_port()
    store = MinioObjectStore(resolve_store({"LOCALBATCH_S3_ENDPOINT": f"127.0.0.1:{port}"}, {}, "test"))
    with pytest.raises(StoreUnreachable, match=f"nothing answers at http://127.0.0.1:{port}"):
        store.buckets()


@pytest.fixture
def cli(tmp_path: Path, s3: S3Server, docker_client: Any) -> LocalbatchCli:
    env, _ = home_environment(tmp_path)
    env.update(s3.env())
    return LocalbatchCli(tmp_path, env, {}, docker_client)


def test_status_shows_the_store_and_never_the_secret(cli: LocalbatchCli, s3: S3Server) -> None:
    s3.client().create_bucket(Bucket="inbox")
    result = cli("store", "status")
    assert result.returncode == 0, result.stderr
    assert f"endpoint    {s3.url}  (from LOCALBATCH_S3_ENDPOINT)" in result.stdout
    assert "secret key  set (from LOCALBATCH_S3_SECRET_KEY; never shown)" in result.stdout
    assert "buckets     inbox" in result.stdout
    assert SECRET_KEY not in result.stdout + result.stderr
    as_json = cli("store", "status", "--json")
    assert SECRET_KEY not in as_json.stdout and '"reachable": true' in as_json.stdout


def test_status_says_exactly_what_is_wrong(cli: LocalbatchCli) -> None:
    port = free_port()
    cli.env.update(LOCALBATCH_S3_ENDPOINT=f"http://127.0.0.1:{port}")
    for key in ("LOCALBATCH_S3_ACCESS_KEY", "LOCALBATCH_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        cli.env.pop(key, None)
    result = cli("store", "status")
    assert result.returncode == 1
    text = " ".join(result.stdout.split())
    assert f"reachable no: cannot list buckets: nothing answers at http://127.0.0.1:{port}" in text
    assert "no credentials are configured: set LOCALBATCH_S3_ACCESS_KEY and LOCALBATCH_S3_SECRET_KEY" in text
    assert "Retrying" not in result.stderr  # urllib3's own retry chatter stays out of it


def test_cp_round_trips_files_and_directories_byte_exact(cli: LocalbatchCli, s3: S3Server, tmp_path: Path) -> None:
    made = cli("store", "mb", "s3://inbox")
    assert (made.returncode, made.stdout) == (0, "s3://inbox/\n"), made.stderr
    big = os.urandom(40 * 1024 * 1024)  # multipart (parts of 16 MiB)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.bin").write_bytes(big)
    (tmp_path / "data" / "small.csv").write_text("a,b\n1,2\n")
    up = cli("store", "cp", str(tmp_path / "data"), "s3://inbox/run-7/")
    assert up.returncode == 0, up.stderr
    listed = cli("store", "ls", "s3://inbox/run-7/")
    assert listed.stdout.split() == [str(len(big)), "s3://inbox/run-7/big.bin", "8", "s3://inbox/run-7/small.csv"]
    down = cli("store", "cp", "s3://inbox/run-7/", str(tmp_path / "back"))
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back" / "big.bin").read_bytes() == big
    assert (tmp_path / "back" / "small.csv").read_text() == "a,b\n1,2\n"
    assert cli("store", "ls").stdout.split() == ["s3://inbox/"]


def test_a_missing_bucket_is_named(cli: LocalbatchCli, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    result = cli("store", "cp", str(tmp_path / "f"), "s3://no-such-bucket/f")
    assert result.returncode == 1
    assert "no bucket 'no-such-bucket'" in result.stderr


def test_refused_credentials_are_named_with_the_stores_own_code(cli: LocalbatchCli) -> None:
    with authenticating_s3_server() as (server, access_key, secret_key):
        cli.env.update(LOCALBATCH_S3_ENDPOINT=server.url, LOCALBATCH_S3_ACCESS_KEY=access_key)
        cli.env["LOCALBATCH_S3_SECRET_KEY"] = secret_key
        good = cli("store", "status")
        assert good.returncode == 0 and "buckets     inbox" in good.stdout, good.stdout
        cli.env["LOCALBATCH_S3_SECRET_KEY"] = "wrong-secret"
        wrong = " ".join(cli("store", "status").stdout.split())
        assert f"cannot list buckets: {server.url} refused the credentials: SignatureDoesNotMatch" in wrong
        cli.env["LOCALBATCH_S3_ACCESS_KEY"] = "AKIAUNKNOWN"
        unknown = " ".join(cli("store", "status").stdout.split())
        assert f"{server.url} refused the credentials: InvalidAccessKeyId" in unknown
        assert "wrong-secret" not in wrong + unknown


def test_a_prefix_of_1000_small_objects_goes_up_and_comes_back(
    cli: LocalbatchCli, s3: S3Server, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="inbox")
    source = tmp_path / "many"
    source.mkdir()
    for n in range(1000):
        (source / f"part-{n:04d}.txt").write_text(f"line {n}\n")
    assert cli("store", "cp", str(source), "s3://inbox/many/", timeout=120).returncode == 0
    assert len(cli("store", "ls", "s3://inbox/many/").stdout.splitlines()) == 1000
    down = cli("store", "cp", "s3://inbox/many/", str(tmp_path / "back"), timeout=120)
    assert down.returncode == 0, down.stderr
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == sorted(p.name for p in source.iterdir())
    assert (tmp_path / "back" / "part-0999.txt").read_text() == "line 999\n"
