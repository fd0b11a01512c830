"""FakeRuntime: the ContainerRuntime contract, plus the test API the fake adds."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import ContainerRuntimeError, ImageError, RuntimeUnavailable
from localbatch.ports import Bind, ContainerExit, ContainerRequest, ContainerRuntime
from tests.contract.runtime_contract import RuntimeContract
from tests.fakes.clock import FakeClock
from tests.fakes.runtime import FakeRuntime, host_path

_commands = itertools.count()


def _fake(runtime: ContainerRuntime) -> FakeRuntime:
    assert isinstance(runtime, FakeRuntime)
    return runtime


class TestFakeRuntimeContract(RuntimeContract):
    def make_runtime(self) -> ContainerRuntime:
        return FakeRuntime(FakeClock())

    def _command(self, runtime: ContainerRuntime, **script: object) -> tuple[str, ...]:
        command = ("fake-command", str(next(_commands)))
        _fake(runtime).script(lambda r: r.spec.command == command, **script)  # type: ignore[arg-type]
        return command

    def command_printing(self, runtime: ContainerRuntime, output: bytes, exit_code: int) -> tuple[str, ...]:
        return self._command(runtime, output=output, exit_code=exit_code)

    def command_printing_env(self, runtime: ContainerRuntime, name: str) -> tuple[str, ...]:
        return self._command(runtime, output=lambda r: r.environment[name].encode())

    def long_running_command(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        return self._command(runtime, runs_for_s=None)

    def command_that_cannot_start(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        return self._command(runtime, start_error='exec: "nope": no such file or directory', exit_code=127)

    def command_printing_files(self, runtime: ContainerRuntime, paths: Sequence[str]) -> tuple[str, ...]:
        def printed(request: ContainerRequest) -> bytes:
            found = [host_path(request.binds, path) for path in paths]
            return b"".join(through[1].read_bytes() for through in found if through is not None)

        return self._command(runtime, output=printed)

    def command_writing(self, runtime: ContainerRuntime, files: Mapping[str, bytes]) -> tuple[str, ...]:
        return self._command(runtime, writes=files)

    def make_missing(self, runtime: ContainerRuntime, image: str) -> None:
        _fake(runtime).missing_images.add(image)


# ---------------------------------------------------------------------------------------
# The test API


def _request(
    name: str = "localbatch-job-1", image: str = "busybox:1.36", labels: dict[str, str] | None = None
) -> ContainerRequest:
    return ContainerRequest(
        name=name,
        spec=ContainerSpec(image=image, command=("true",), resources=Resources(vcpus=1, memory_mib=64)),
        environment={"A": "1"},
        labels=labels or {"localbatch.job_id": name},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(clock: FakeClock) -> FakeRuntime:
    return FakeRuntime(clock)


def test_unscripted_container_exits_zero_at_once(runtime: FakeRuntime) -> None:
    container_id = runtime.create(_request())
    runtime.start(container_id)
    assert runtime.wait(container_id, 0) == ContainerExit(exit_code=0)
    assert list(runtime.logs(container_id)) == [b""]


def test_runs_for_is_fake_time_and_wait_never_advances_it(runtime: FakeRuntime, clock: FakeClock) -> None:
    runtime.script("busybox:1.36", exit_code=2, output=b"done\n", runs_for_s=30)
    container_id = runtime.create(_request())
    runtime.start(container_id)

    assert runtime.wait(container_id, 3600) is None
    assert runtime.running() == [container_id]
    clock.advance(29.999)
    assert runtime.wait(container_id, 1) is None
    clock.advance(0.001)

    assert runtime.wait(container_id, 0) == ContainerExit(exit_code=2)
    assert runtime.running() == []
    assert b"".join(runtime.logs(container_id)) == b"done\n"


def test_latest_matching_script_wins_and_matches_name_or_predicate(runtime: FakeRuntime) -> None:
    runtime.script(lambda r: True, exit_code=1)
    runtime.script("localbatch-special-1", exit_code=7)
    runtime.script(lambda r: r.environment.get("A") == "never", exit_code=9)

    plain = runtime.create(_request("localbatch-plain-1"))
    special = runtime.create(_request("localbatch-special-1"))
    for container_id in (plain, special):
        runtime.start(container_id)

    assert runtime.wait(plain, 0) == ContainerExit(exit_code=1)
    assert runtime.wait(special, 0) == ContainerExit(exit_code=7)


def test_oom_killed_defaults_to_exit_137(runtime: FakeRuntime) -> None:
    runtime.script("busybox:1.36", oom_killed=True, error="")
    container_id = runtime.create(_request())
    runtime.start(container_id)
    assert runtime.wait(container_id, 0) == ContainerExit(exit_code=137, oom_killed=True, error="")


def test_until_stopped_runs_until_stop_then_exits_with_stop_exit_code(runtime: FakeRuntime, clock: FakeClock) -> None:
    runtime.script("busybox:1.36", runs_for_s=None, stop_exit_code=137)
    container_id = runtime.create(_request())
    runtime.start(container_id)
    clock.advance(10**6)
    assert runtime.wait(container_id, 0) is None

    runtime.stop(container_id, grace_s=30)

    assert runtime.stopped == [(container_id, 30)]
    assert runtime.wait(container_id, 0) == ContainerExit(exit_code=137)


def test_finish_ends_a_running_container_now(runtime: FakeRuntime) -> None:
    runtime.script("busybox:1.36", runs_for_s=None, output=b"started\n")
    container_id = runtime.create(_request())
    runtime.start(container_id)

    runtime.finish(container_id, exit_code=1, error="segfault", output=b"crashed\n")

    assert runtime.wait(container_id, 0) == ContainerExit(exit_code=1, error="segfault")
    assert b"".join(runtime.logs(container_id)) == b"started\ncrashed\n"
    with pytest.raises(AssertionError, match="not running"):
        runtime.finish(container_id)


def test_wait_before_start_returns_none(runtime: FakeRuntime) -> None:
    container_id = runtime.create(_request())
    assert runtime.wait(container_id, 0) is None
    assert runtime.running() == []


def test_observations_record_what_the_code_did(runtime: FakeRuntime) -> None:
    request = _request()
    container_id = runtime.create(request)
    runtime.start(container_id)
    runtime.remove(container_id)

    assert runtime.created == [request]
    assert runtime.started == [container_id]
    assert runtime.removed == [container_id]
    assert runtime.containers() == []
    assert runtime.list_containers({}) == []


def test_container_view(runtime: FakeRuntime, clock: FakeClock) -> None:
    request = _request()
    container_id = runtime.create(request)
    runtime.start(container_id)
    assert runtime.container(container_id).request is request
    assert runtime.container(container_id).started_at_ms == clock.now_ms()


def test_missing_image_refusals_and_unavailable(runtime: FakeRuntime) -> None:
    runtime.missing_images.add("ghcr.io/acme/gone:1")
    with pytest.raises(ImageError):
        runtime.create(_request(image="ghcr.io/acme/gone:1"))

    runtime.refuse_create_with = "no space left on device"
    with pytest.raises(ContainerRuntimeError, match="no space left on device"):
        runtime.create(_request())
    runtime.refuse_create_with = None

    container_id = runtime.create(_request())
    runtime.refuse_start_with = 'could not select device driver "nvidia"'
    with pytest.raises(ContainerRuntimeError, match="nvidia"):
        runtime.start(container_id)
    runtime.refuse_start_with = None
    assert runtime.wait(container_id, 0) == ContainerExit(
        exit_code=128, error='could not select device driver "nvidia"'
    )

    runtime.unavailable = True
    with pytest.raises(RuntimeUnavailable):
        runtime.engine_info()
    with pytest.raises(RuntimeUnavailable):
        runtime.list_containers({})
    assert runtime.created == [_request()]


def test_list_containers_filters_on_every_label(runtime: FakeRuntime) -> None:
    a = runtime.create(_request("localbatch-a-1", labels={"home": "x", "job": "a"}))
    runtime.create(_request("localbatch-b-1", labels={"home": "x", "job": "b"}))
    runtime.create(_request("localbatch-c-1", labels={"home": "y", "job": "a"}))

    assert [c.container_id for c in runtime.list_containers({"home": "x", "job": "a"})] == [a]
    assert len(runtime.list_containers({"home": "x"})) == 2


def test_engine_info_reports_the_network_mode() -> None:
    info = FakeRuntime(network_mode="bridge").engine_info()
    assert info.name == "fake"
    assert info.network_mode == "bridge"


def test_seen_records_the_binds_at_start_and_writes_land_per_bind(runtime: FakeRuntime, tmp_path: Path) -> None:
    single = tmp_path / "single.txt"
    single.write_bytes(b"single")
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "sub" / "a.txt").write_bytes(b"a")
    out = tmp_path / "out"
    out.mkdir()
    runtime.script("busybox:1.36", writes={"/out/result.txt": b"result", "/scratch/log.txt": b"log"})
    request = replace(
        _request(),
        binds=(
            Bind(single, "/in/single.txt", read_only=True),
            Bind(inputs, "/in/dir", read_only=True),
            Bind(out, "/out"),
        ),
    )
    container_id = runtime.create(request)
    assert runtime.container(container_id).seen == {}
    single.write_bytes(b"staged before the start")

    runtime.start(container_id)

    container = runtime.container(container_id)
    assert container.seen == {"/in/single.txt": b"staged before the start", "/in/dir/sub/a.txt": b"a"}
    assert (out / "result.txt").read_bytes() == b"result"
    assert container.files == {"/scratch/log.txt": b"log"}
    copied = tmp_path / "copied"
    assert runtime.copy_out(container_id, "/scratch", copied) == [copied / "scratch" / "log.txt"]
    with pytest.raises(ContainerRuntimeError, match="/out/result.txt"):
        runtime.copy_out(container_id, "/out/result.txt", copied)  # bound paths are on the host


def test_a_write_through_a_read_only_bind_is_a_script_error(runtime: FakeRuntime, tmp_path: Path) -> None:
    runtime.script("busybox:1.36", writes={"/in/x": b"x"})
    container_id = runtime.create(replace(_request(), binds=(Bind(tmp_path, "/in", read_only=True),)))
    with pytest.raises(AssertionError, match="read-only"):
        runtime.start(container_id)
    assert list(tmp_path.iterdir()) == []
