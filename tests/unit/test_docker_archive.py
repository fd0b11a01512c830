"""DockerRuntime.copy_out's extraction (``extract_archive``) on hand-made tar streams: no engine."""

from __future__ import annotations

import io
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localbatch.adapters.docker_runtime import extract_archive
from localbatch.errors import ContainerRuntimeError


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, content: bytes = b"", mode: int = 0o644, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, link, len(content)
    return info, content


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    """The stream in small, odd-sized chunks, as an HTTP body may come."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())


def test_regular_files_and_directories_are_written_with_sane_modes(tmp_path: Path) -> None:
    into = tmp_path / "into"
    big = bytes(range(256)) * 4096  # 1 MiB: read through more than one chunk of the reader
    archive = _tar(
        _member("tree/", tarfile.DIRTYPE, mode=0o700),
        _member("tree/run.sh", content=b"#!/bin/sh\n", mode=0o4755),  # setuid dropped
        _member("tree/sub/data.bin", content=big, mode=0o666),  # parent not in the archive
        _member("tree/empty", mode=0o600),
    )

    written = extract_archive(_chunks(archive, 4093), into)

    assert written == [into / "tree" / "empty", into / "tree" / "run.sh", into / "tree" / "sub" / "data.bin"]
    assert _files(into) == written
    assert (into / "tree" / "sub" / "data.bin").read_bytes() == big
    assert (into / "tree" / "run.sh").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((into / "tree" / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((into / "tree" / "sub" / "data.bin").stat().st_mode) == 0o644
    assert stat.S_IMODE((into / "tree" / "empty").stat().st_mode) == 0o644


def test_nothing_is_written_outside_the_target_and_links_are_skipped(tmp_path: Path) -> None:
    into = tmp_path / "deep" / "into"
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = _tar(
        _member("../evil", content=b"evil"),
        _member("../../../evil2", content=b"evil"),
        _member("/abs", content=b"evil"),
        _member(str(outside / "abs2"), content=b"evil"),
        _member("tree/../../escape", content=b"evil"),
        _member("link", tarfile.SYMTYPE, link=str(outside)),
        _member("link/through", content=b"into a directory named link, not through the link"),
        _member("hard", tarfile.LNKTYPE, link="/etc/passwd"),
        _member("device", tarfile.CHRTYPE),
        _member("fifo", tarfile.FIFOTYPE),
        _member("kept.txt", content=b"kept"),
    )

    written = extract_archive(_chunks(archive), into)

    assert written == [into / "kept.txt", into / "link" / "through"]
    assert _files(tmp_path) == written
    assert not (into / "link").is_symlink()
    assert list(outside.iterdir()) == []


def test_a_symbolic_link_already_in_the_target_is_not_followed(tmp_path: Path) -> None:
    into = tmp_path / "into"
    outside = tmp_path / "outside"
    outside.mkdir()
    into.mkdir()
    (into / "trap").symlink_to(outside)
    (into / "file-trap").symlink_to(outside / "victim")

    with pytest.raises(ContainerRuntimeError, match="trap"):
        extract_archive(_chunks(_tar(_member("trap/x", content=b"evil"))), into)
    with pytest.raises(ContainerRuntimeError, match="file-trap"):
        extract_archive(_chunks(_tar(_member("file-trap", content=b"evil"))), into)
    assert list(outside.iterdir()) == []


def test_a_truncated_archive_is_a_runtime_error(tmp_path: Path) -> None:
    archive = _tar(_member("big", content=b"x" * 10_000))
    with pytest.raises(ContainerRuntimeError, match="archive"):
        extract_archive(_chunks(archive[:2048]), tmp_path / "into")
