"""Store settings, s3:// URLs, and `store` copies and status, on the in-memory object store."""

from __future__ import annotations

from pathlib import Path

import pytest

from localbatch import config, storage
from localbatch.errors import ConfigError, ObjectStoreError, UsageError
from localbatch.store_settings import resolve_store
from tests.contract.object_store_contract import BUCKET, ObjectStoreContract
from tests.fakes.object_store import InMemoryObjectStore


class TestInMemoryObjectStore(ObjectStoreContract):
    def make_store(self, tmp_path: Path) -> InMemoryObjectStore:
        return InMemoryObjectStore(BUCKET)


# -- settings ------------------------------------------------------------------------------------


def test_defaults_are_minios_address_with_no_credentials() -> None:
    settings = resolve_store({}, {}, "settings")
    assert (settings.url, settings.region, settings.has_credentials) == ("http://127.0.0.1:9000", "us-east-1", False)
    assert settings.sources == {"endpoint": "default", "region": "default"}


def test_ours_beat_the_config_file_which_beats_the_aws_environment() -> None:
    env = {
        "LOCALBATCH_S3_ENDPOINT": "https://ours.example:9443",
        "AWS_ENDPOINT_URL_S3": "http://aws-s3:1",
        "AWS_ENDPOINT_URL": "http://aws:2",
        "AWS_ACCESS_KEY_ID": "from-aws",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "AWS_REGION": "eu-west-1",
    }
    table = {"access_key": "from-file", "region": "eu-north-1"}
    settings = resolve_store(env, table, "lb.toml")
    assert (settings.endpoint, settings.secure) == ("ours.example:9443", True)
    assert (settings.access_key, settings.secret_key, settings.region) == ("from-file", "aws-secret", "eu-north-1")
    assert settings.sources == {
        "endpoint": "LOCALBATCH_S3_ENDPOINT",
        "access_key": "lb.toml [store] access_key",
        "secret_key": "AWS_SECRET_ACCESS_KEY",
        "region": "lb.toml [store] region",
    }
    aws_only = resolve_store({k: v for k, v in env.items() if k != "LOCALBATCH_S3_ENDPOINT"}, {}, "x")
    assert aws_only.endpoint == "aws-s3:1"  # AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL


def test_the_secret_is_never_in_the_settings_repr() -> None:
    settings = resolve_store({"LOCALBATCH_S3_SECRET_KEY": "hunter2", "LOCALBATCH_S3_ACCESS_KEY": "k"}, {}, "x")
    assert settings.has_credentials and "hunter2" not in repr(settings)
    assert "hunter2" not in repr(config.resolve(env={"LOCALBATCH_S3_SECRET_KEY": "hunter2"}))


@pytest.mark.parametrize(
    ("endpoint", "secure", "expected"),
    [
        ("localhost:9000", None, ("localhost:9000", False)),
        ("https://s3.local", None, ("s3.local", True)),
        ("http://10.0.0.5:9000", "true", ("10.0.0.5:9000", True)),
        ("http://[::1]:9000", None, ("[::1]:9000", False)),
    ],
)
def test_endpoint_forms(endpoint: str, secure: str | None, expected: tuple[str, bool]) -> None:
    env = {"LOCALBATCH_S3_ENDPOINT": endpoint, **({"LOCALBATCH_S3_SECURE": secure} if secure else {})}
    settings = resolve_store(env, {}, "x")
    assert (settings.endpoint, settings.secure) == expected


@pytest.mark.parametrize(
    ("env", "table", "message"),
    [
        ({"LOCALBATCH_S3_ENDPOINT": "ftp://x:1"}, {}, "LOCALBATCH_S3_ENDPOINT: 'ftp://x:1' is not an S3 endpoint"),
        ({"LOCALBATCH_S3_ENDPOINT": "http://x:1/bucket"}, {}, "is not an S3 endpoint"),
        ({"LOCALBATCH_S3_ENDPOINT": "http://x:99999"}, {}, "has no valid port"),
        ({"LOCALBATCH_S3_SECURE": "maybe"}, {}, "LOCALBATCH_S3_SECURE: 'maybe' is not true or false"),
        ({}, {"bucket": "x"}, "lb.toml: [store] bucket: unknown key; allowed: endpoint, access_key"),
        ({}, {"region": 3}, "lb.toml [store] region: [store] region must be a string, got 3"),
    ],
)
def test_bad_settings_name_where_they_came_from(env: dict[str, str], table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_store(env, table, "lb.toml")
    assert message in str(caught.value)


def test_the_config_file_store_table_reaches_settings(tmp_path: Path) -> None:
    (tmp_path / "localbatch.toml").write_text('[store]\nendpoint = "http://127.0.0.1:9100"\naccess_key = "k"\n')
    settings = config.resolve(env={"LOCALBATCH_HOME": str(tmp_path / "home")}, cwd=tmp_path).store
    assert (settings.url, settings.access_key) == ("http://127.0.0.1:9100", "k")
    assert settings.sources["endpoint"].endswith("localbatch.toml [store] endpoint")


# -- s3:// URLs ------------------------------------------------------------------------------------


def test_s3_urls() -> None:
    assert storage.parse_s3_url("s3://inbox/a/b.csv", "SOURCE") == storage.S3Url("inbox", "a/b.csv")
    assert storage.parse_s3_url("s3://inbox", "SOURCE") == storage.S3Url("inbox", "")
    with pytest.raises(UsageError, match="SOURCE: 'inbox/a' is not an s3:// URL"):
        storage.parse_s3_url("inbox/a", "SOURCE")
    with pytest.raises(UsageError, match="DESTINATION: 'In_Box' is not a bucket name"):
        storage.parse_s3_url("s3://In_Box/a", "DESTINATION")


# -- copies and status ---------------------------------------------------------------------------


def test_a_directory_goes_up_under_a_prefix_and_comes_back_whole(tmp_path: Path) -> None:
    store = InMemoryObjectStore("inbox")
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "src" / "sub" / "b.txt").write_text("bb")
    written = storage.copy(store, str(tmp_path / "src"), "s3://inbox/run-1")
    assert [o.key for o in written] == ["run-1/a.txt", "run-1/sub/b.txt"]
    back = storage.copy(store, "s3://inbox/run-1/", str(tmp_path / "dst"))
    assert [o.size for o in back] == [1, 2]
    assert (tmp_path / "dst" / "sub" / "b.txt").read_text() == "bb"


def test_a_file_keeps_its_name_under_a_prefix_and_into_a_directory(tmp_path: Path) -> None:
    store = InMemoryObjectStore("inbox")
    (tmp_path / "data.csv").write_text("1,2\n")
    assert storage.copy(store, str(tmp_path / "data.csv"), "s3://inbox/")[0].key == "data.csv"
    assert storage.copy(store, str(tmp_path / "data.csv"), "s3://inbox/x/renamed.csv")[0].key == "x/renamed.csv"
    (tmp_path / "out").mkdir()
    storage.copy(store, "s3://inbox/x/renamed.csv", str(tmp_path / "out"))
    assert (tmp_path / "out" / "renamed.csv").read_text() == "1,2\n"


@pytest.mark.parametrize(
    ("source", "destination", "error", "message"),
    [
        ("a", "b", UsageError, "give one local path and one s3:// URL"),
        ("s3://inbox/a", "s3://inbox/b", UsageError, "give one local path and one s3:// URL"),
        ("missing.txt", "s3://inbox/", UsageError, "SOURCE: missing.txt is not a file or directory"),
        ("s3://inbox/empty/", "out", ObjectStoreError, "nothing under s3://inbox/empty/"),
    ],
)
def test_bad_copies_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, destination: str, error: type, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message.replace("/", "/")):
        storage.copy(InMemoryObjectStore("inbox"), source, destination)


def test_status_names_the_problem_and_the_missing_credentials() -> None:
    store = InMemoryObjectStore("inbox")
    settings = resolve_store({}, {}, "x")
    assert storage.status(settings, store).buckets == ["inbox"]
    store.unreachable = settings.url
    found = storage.status(settings, store)
    assert found.buckets is None and found.problem is not None
    assert found.problem.startswith("cannot list buckets: nothing answers at http://127.0.0.1:9000")
    assert "no credentials are configured" in found.problem


def test_transfers_run_in_parallel_in_order_and_the_first_failure_is_raised() -> None:
    import threading

    from localbatch.ports import StoredObject

    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def transfer(n: int) -> StoredObject:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] == 4:
                release.set()
        release.wait(5)
        with lock:
            inside[0] -= 1
        if n == 6:
            raise ObjectStoreError("cannot upload six")
        return StoredObject("b", str(n), n)

    assert [o.key for o in storage.in_parallel([lambda n=n: transfer(n) for n in range(6)], workers=4)] == list(
        map(str, range(6))
    )
    assert most[0] == 4
    with pytest.raises(ObjectStoreError, match="cannot upload six"):
        storage.in_parallel([lambda n=n: transfer(n) for n in range(10)], workers=4)


def test_store_cp_of_a_prefix_never_writes_outside_the_target(tmp_path: Path) -> None:
    store = InMemoryObjectStore("inbox")
    store.objects["inbox"]["p/../../escape"] = b"x"
    with pytest.raises(ObjectStoreError, match="not a plain relative file path"):
        storage.copy(store, "s3://inbox/p/", str(tmp_path / "out"))
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
