"""The ContainerRuntime contract: what every implementation must do (huey's StorageTests).

``RuntimeContract`` is a mixin of tests. A subclass named ``Test...`` runs them against one
implementation by filling in the hooks: ``make_runtime()``, the images, and commands that
print, exit, run until stopped, or read and write files. The fake scripts its runtime inside those hooks; Docker
returns shell commands for busybox. A fake that passes this suite can stand in for Docker
in unit tests.
"""

from __future__ import annotations

import ipaddress
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from localbatch.core.resources import Resources
from localbatch.core.spec import ContainerSpec
from localbatch.errors import ContainerRuntimeError, ImageError
from localbatch.ports import Bind, ContainerExit, ContainerRequest, ContainerRuntime

# Generous bounds for a real engine on a small machine; the fake answers at once.
WAIT_S = 30.0
PROMPT_S = 10.0


class RuntimeContract:
    """Mixin: subclass as ``Test<Impl>RuntimeContract`` and implement the hooks."""

    image: str = "busybox:1.36"  # an image the runtime can run
    missing_image: str = "127.0.0.1:9/localbatch-missing:nope"  # one it cannot get

    # -- hooks --------------------------------------------------------------------------

    def make_runtime(self) -> ContainerRuntime:
        raise NotImplementedError

    def request_labels(self) -> Mapping[str, str]:
        """Labels every request carries (Docker: the test-run label its teardown removes by)."""
        return {}

    def command_printing(self, runtime: ContainerRuntime, output: bytes, exit_code: int) -> tuple[str, ...]:
        """A command that prints ``output`` (stdout) and exits with ``exit_code``."""
        raise NotImplementedError

    def command_printing_env(self, runtime: ContainerRuntime, name: str) -> tuple[str, ...]:
        """A command that prints the value of environment variable ``name`` and exits 0."""
        raise NotImplementedError

    def long_running_command(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        """A command that runs until stopped (minutes, at least)."""
        raise NotImplementedError

    def command_that_cannot_start(self, runtime: ContainerRuntime) -> tuple[str, ...]:
        """A command the engine cannot even start (not in the image)."""
        raise NotImplementedError

    def command_printing_files(self, runtime: ContainerRuntime, paths: Sequence[str]) -> tuple[str, ...]:
        """A command that prints the content of the files at ``paths`` (container paths, in
        order) and exits 0."""
        raise NotImplementedError

    def command_writing(self, runtime: ContainerRuntime, files: Mapping[str, bytes]) -> tuple[str, ...]:
        """A command that writes ``files`` (container path -> content; parent directories
        created) and exits 0."""
        raise NotImplementedError

    def make_missing(self, runtime: ContainerRuntime, image: str) -> None:
        """Make sure ``image`` cannot be had (Docker: nothing to do for a loopback registry)."""

    # -- helpers ------------------------------------------------------------------------

    @pytest.fixture
    def runtime(self) -> ContainerRuntime:
        return self.make_runtime()

    def request(
        self,
        command: tuple[str, ...],
        *,
        image: str | None = None,
        environment: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        name: str | None = None,
        binds: tuple[Bind, ...] = (),
    ) -> ContainerRequest:
        return ContainerRequest(
            name=name or f"lbtest-{uuid.uuid4().hex[:12]}",
            spec=ContainerSpec(image=image or self.image, command=command, resources=Resources(vcpus=1, memory_mib=64)),
            environment=dict(environment or {}),
            labels={**self.request_labels(), **(labels or {})},
            binds=binds,
        )

    def run_to_exit(self, runtime: ContainerRuntime, request: ContainerRequest) -> tuple[str, ContainerExit]:
        container_id = runtime.create(request)
        runtime.start(container_id)
        exit = runtime.wait(container_id, WAIT_S)
        assert exit is not None, "container did not exit in time"
        return container_id, exit

    def start_long_running(self, runtime: ContainerRuntime) -> str:
        request = self.request(self.long_running_command(runtime))
        container_id = runtime.create(request)
        runtime.start(container_id)
        return container_id

    # -- the contract -------------------------------------------------------------------

    def test_create_start_wait_returns_the_exit_code(self, runtime: ContainerRuntime) -> None:
        _, exit = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 0)))
        assert exit == ContainerExit(exit_code=0, oom_killed=False, error=None)

    def test_an_exit_says_when_the_container_stopped_the_same_on_every_read(self, runtime: ContainerRuntime) -> None:
        container_id, exit = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 0)))
        again = runtime.wait(container_id, 0)
        assert exit.finished_at_ms is not None
        assert again is not None and again.finished_at_ms == exit.finished_at_ms

    def test_non_zero_exit_code(self, runtime: ContainerRuntime) -> None:
        _, exit = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 3)))
        assert exit.exit_code == 3
        assert not exit.oom_killed

    def test_create_returns_distinct_ids(self, runtime: ContainerRuntime) -> None:
        command = self.command_printing(runtime, b"", 0)
        first = runtime.create(self.request(command))
        second = runtime.create(self.request(command))
        assert first != second

    def test_labels_and_names_visible_in_list_containers(self, runtime: ContainerRuntime) -> None:
        mine = {"localbatch.contract": uuid.uuid4().hex}
        request = self.request(self.command_printing(runtime, b"", 0), labels=mine)
        container_id = runtime.create(request)
        other_id = runtime.create(self.request(self.command_printing(runtime, b"", 0)))

        found = runtime.list_containers({**mine, **self.request_labels()})

        assert [c.container_id for c in found] == [container_id]
        (info,) = found
        assert info.name == request.name
        assert dict(info.labels).items() >= {**mine, **self.request_labels()}.items()
        assert not info.running  # created, not started
        assert other_id not in {c.container_id for c in runtime.list_containers(mine)}

    def test_list_containers_reports_running(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        (info,) = [c for c in runtime.list_containers(self.request_labels()) if c.container_id == container_id]
        assert info.running
        runtime.stop(container_id, grace_s=1)
        assert runtime.wait(container_id, WAIT_S) is not None
        (info,) = [c for c in runtime.list_containers(self.request_labels()) if c.container_id == container_id]
        assert not info.running

    def test_environment_reaches_the_container(self, runtime: ContainerRuntime) -> None:
        request = self.request(
            self.command_printing_env(runtime, "LOCALBATCH_GREETING"),
            environment={"LOCALBATCH_GREETING": "hello from the environment"},
        )
        container_id, exit = self.run_to_exit(runtime, request)
        assert exit.exit_code == 0
        assert b"".join(runtime.logs(container_id)) == b"hello from the environment"

    def test_logs_yield_what_the_container_printed(self, runtime: ContainerRuntime) -> None:
        output = b"line one\nline two\n"
        container_id, _ = self.run_to_exit(runtime, self.request(self.command_printing(runtime, output, 0)))
        assert b"".join(runtime.logs(container_id)) == output

    def test_stop_ends_a_long_running_container_promptly(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        began = time.monotonic()
        runtime.stop(container_id, grace_s=1)
        exit = runtime.wait(container_id, WAIT_S)
        assert time.monotonic() - began < PROMPT_S
        assert exit is not None
        assert exit.exit_code != 0

    def test_wait_with_short_timeout_on_running_container_returns_none(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        began = time.monotonic()
        assert runtime.wait(container_id, 0.5) is None
        assert time.monotonic() - began < PROMPT_S
        assert runtime.wait(container_id, 0) is None  # a zero timeout polls
        runtime.stop(container_id, grace_s=0)

    def test_stats_of_a_running_container_and_none_once_it_exited(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        try:
            found = runtime.stats(container_id)
            assert found is not None
            assert found.cpu_ns >= 0 and found.memory_bytes >= 0
            assert found.memory_limit_bytes == 64 * 1024 * 1024  # the request's memory_mib
        finally:
            runtime.stop(container_id, 0)
        assert runtime.wait(container_id, WAIT_S) is not None
        assert runtime.stats(container_id) is None

    def test_stats_of_unknown_id_is_a_runtime_error(self, runtime: ContainerRuntime) -> None:
        with pytest.raises(ContainerRuntimeError):
            runtime.stats("no-such-container-" + uuid.uuid4().hex[:8])

    def test_remove_makes_the_container_disappear(self, runtime: ContainerRuntime) -> None:
        container_id, _ = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 0)))
        assert container_id in {c.container_id for c in runtime.list_containers(self.request_labels())}
        runtime.remove(container_id)
        assert container_id not in {c.container_id for c in runtime.list_containers(self.request_labels())}

    def test_remove_a_running_container(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        runtime.remove(container_id)
        assert container_id not in {c.container_id for c in runtime.list_containers(self.request_labels())}

    def test_stop_and_remove_of_unknown_id_are_not_errors(self, runtime: ContainerRuntime) -> None:
        unknown = f"localbatch-no-such-container-{uuid.uuid4().hex}"
        runtime.stop(unknown, grace_s=0)
        runtime.remove(unknown)

    def test_remove_twice_is_not_an_error(self, runtime: ContainerRuntime) -> None:
        container_id = runtime.create(self.request(self.command_printing(runtime, b"", 0)))
        runtime.remove(container_id)
        runtime.remove(container_id)

    def test_stop_of_an_exited_container_keeps_its_exit(self, runtime: ContainerRuntime) -> None:
        container_id, exit = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 5)))
        runtime.stop(container_id, grace_s=1)
        assert runtime.wait(container_id, WAIT_S) == exit

    def test_wait_on_unknown_id_is_a_runtime_error(self, runtime: ContainerRuntime) -> None:
        with pytest.raises(ContainerRuntimeError):
            runtime.wait(f"localbatch-no-such-container-{uuid.uuid4().hex}", 1)

    def test_missing_image_is_an_image_error(self, runtime: ContainerRuntime) -> None:
        self.make_missing(runtime, self.missing_image)
        with pytest.raises(ImageError) as caught:
            runtime.create(self.request(self.command_printing(runtime, b"", 0), image=self.missing_image))
        assert caught.value.image == self.missing_image
        assert self.missing_image in str(caught.value)

    def test_failed_start_is_an_error_and_then_an_exit(self, runtime: ContainerRuntime) -> None:
        container_id = runtime.create(self.request(self.command_that_cannot_start(runtime)))
        with pytest.raises(ContainerRuntimeError):
            runtime.start(container_id)
        exit = runtime.wait(container_id, WAIT_S)
        assert exit is not None
        assert exit.exit_code != 0
        assert exit.error

    def test_name_already_in_use_is_a_runtime_error(self, runtime: ContainerRuntime) -> None:
        request = self.request(self.command_printing(runtime, b"", 0))
        runtime.create(request)
        with pytest.raises(ContainerRuntimeError, match=request.name):
            runtime.create(request)

    def test_a_running_container_has_an_address_others_reach_it_at(self, runtime: ContainerRuntime) -> None:
        container_id = self.start_long_running(runtime)
        address = ipaddress.ip_address(runtime.address(container_id))
        assert address.version == 4
        if runtime.engine_info().network_mode == "host":  # the host's own stack
            assert str(address) == "127.0.0.1"
        runtime.remove(container_id)

    # -- files: binds and copy_out (S3 staging) ------------------------------------------

    def test_file_and_directory_binds_show_host_content_to_the_container(
        self, runtime: ContainerRuntime, tmp_path: Path
    ) -> None:
        single = tmp_path / "single.txt"
        single.write_bytes(b"a file bound alone\n")
        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub" / "deep.txt").write_bytes(b"a file in a bound directory\n")
        binds = (Bind(single, "/staged/input.txt", read_only=True), Bind(tree, "/staged/tree", read_only=True))

        command = self.command_printing_files(runtime, ["/staged/input.txt", "/staged/tree/sub/deep.txt"])
        container_id, exit = self.run_to_exit(runtime, self.request(command, binds=binds))

        assert exit.exit_code == 0
        assert b"".join(runtime.logs(container_id)) == b"a file bound alone\na file in a bound directory\n"

    def test_what_the_container_writes_in_a_directory_bind_is_on_the_host(
        self, runtime: ContainerRuntime, tmp_path: Path
    ) -> None:
        out = tmp_path / "out"
        out.mkdir()
        content = bytes(range(256)) * 3

        command = self.command_writing(runtime, {"/staged/out/sub/result.bin": content})
        _, exit = self.run_to_exit(runtime, self.request(command, binds=(Bind(out, "/staged/out"),)))

        assert exit.exit_code == 0
        assert (out / "sub" / "result.bin").read_bytes() == content

    def test_copy_out_a_file_and_a_directory_from_an_exited_container(
        self, runtime: ContainerRuntime, tmp_path: Path
    ) -> None:
        files = {
            "/results/one.txt": b"one\n",
            "/results/tree/a.txt": b"",
            "/results/tree/sub/b.bin": bytes(range(256)),
        }
        container_id, exit = self.run_to_exit(runtime, self.request(self.command_writing(runtime, files)))
        assert exit.exit_code == 0

        single = tmp_path / "single"
        assert runtime.copy_out(container_id, "/results/one.txt", single) == [single / "one.txt"]
        assert (single / "one.txt").read_bytes() == b"one\n"

        into = tmp_path / "into"
        written = runtime.copy_out(container_id, "/results/tree", into)

        assert written == [into / "tree" / "a.txt", into / "tree" / "sub" / "b.bin"]
        assert sorted(p for p in into.rglob("*") if p.is_file()) == written
        assert [p.read_bytes() for p in written] == [b"", bytes(range(256))]

    def test_copy_out_of_a_missing_path_names_it(self, runtime: ContainerRuntime, tmp_path: Path) -> None:
        container_id, _ = self.run_to_exit(runtime, self.request(self.command_printing(runtime, b"", 0)))
        with pytest.raises(ContainerRuntimeError, match=re.escape("/localbatch/no/such/path")):
            runtime.copy_out(container_id, "/localbatch/no/such/path", tmp_path / "into")
