"""A local image with Python and boto3, for the test that runs unmodified SDK code in a job
(issue 5, item 6). Nothing can be pulled here, so it is built FROM the local ``busybox:1.36``
with this interpreter, the standard library's modules and shared libraries it loads, and boto3
with its dependencies from this environment's site-packages (about 80 MB, a few seconds)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path
from typing import Any

import botocore

TAG = f"localbatch-test/boto3:{botocore.__version__}"
_PACKAGES = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "jmespath", "six.py")
_SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "lib2to3", "ensurepip", "turtledemo", "site-packages"}
_SKIP_DIRS |= {"__pycache__", "pydoc_data", "distutils"}
_SKIP_MODULES = ("_tkinter", "_curses", "readline", "_sqlite3", "_dbm", "_gdbm", "nis", "_test", "xxlimited")
_DOCKERFILE = b"FROM busybox:1.36\nCOPY root/ /\nENV PATH=/usr/local/bin:/bin:/usr/bin\n"


def boto3_image(client: Any) -> str:
    """The image's tag, built when missing. Raises what the build raised."""
    import docker.errors

    try:
        client.images.get(TAG)
        return TAG
    except docker.errors.ImageNotFound:
        pass
    client.images.build(fileobj=_context(), custom_context=True, tag=TAG, pull=False, rm=True, forcerm=True)
    return TAG


def _context() -> io.BytesIO:
    exe = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    modules = [p for p in (stdlib / "lib-dynload").glob("*.so") if not p.name.startswith(_SKIP_MODULES)]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
        tar.add(str(exe), arcname=f"root{exe}")
        link = tarfile.TarInfo("root/usr/local/bin/python3")
        link.type, link.linkname = tarfile.SYMTYPE, str(exe)
        tar.addfile(link)
        for library in sorted(_libraries([exe, *modules])):
            tar.add(os.path.realpath(library), arcname=f"root{library}")
        for path in sorted(stdlib.rglob("*")):
            relative = path.relative_to(stdlib)
            if set(relative.parts) & _SKIP_DIRS or not path.is_file():
                continue
            if path.suffix == ".py" or path in modules:
                tar.add(str(path), arcname=f"root{path}", recursive=False)
        for name in _PACKAGES:
            source = site / name
            for path in [source] if source.is_file() else sorted(source.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    tar.add(str(path), arcname=f"root{stdlib / 'site-packages' / path.relative_to(site)}")
    context.seek(0)
    return context


def _libraries(binaries: list[Path]) -> set[str]:
    """The shared libraries ``binaries`` load, as ``ldd`` names them."""
    found: set[str] = set()
    for binary in binaries:
        listed = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False).stdout
        for line in listed.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                found.add(parts[2])
            elif parts and parts[0].startswith("/"):
                found.add(parts[0])
    return found
