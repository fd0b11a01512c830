"""S3 staging, localbatch's own feature: ``[[inputs]]`` copied from the object store before a
container starts, ``[[outputs]]`` copied back after it exits (AWS Batch has no such field;
there the job's code reads and writes S3 itself).

Pure: what goes where. Every attempt stages into a directory of its own on the host
(``daemon.staging`` does the transfers); the paths below are relative to it.

- An input object lands in ``in/<n>/<name>``, bind-mounted at its ``path`` (or at
  ``path/<name>`` when ``path`` ends with ``/``); an input prefix (``s3://b/p/``) lands in
  ``in/<n>/`` with the keys' paths under the prefix, bind-mounted at ``path`` as a directory.
- An output ``path`` ending in ``/`` is an empty directory of the host (``out/<n>/``)
  bind-mounted there: nothing is copied to get the results out. Any other ``path`` (a file,
  or a directory the image already has) is copied out of the exited container into
  ``out/<n>/``. A file goes to ``destination`` (or ``destination/<name>`` when that ends in
  ``/``); a directory's files go under ``destination`` as a prefix.
- Outputs are uploaded when the container exits 0, and also after a failure with
  ``on_failure = true``. Once every file of a directory output is in the store, a manifest
  (keys, sizes, ETags) is written as ``_SUCCESS`` (or ``_FAILED`` when the container
  failed) under the prefix, last, as Hadoop's S3A committers do: a reader that waits for
  ``_SUCCESS`` never sees half a result. Markers an earlier attempt left are removed first.

``${AWS_BATCH_JOB_ID}``, ``${AWS_BATCH_JOB_ARRAY_INDEX}`` and ``${AWS_BATCH_JOB_ATTEMPT}`` in a
``source`` or ``destination`` take the attempt's values.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

JOB_ID = "AWS_BATCH_JOB_ID"
ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
TEMPLATE_NAMES = (JOB_ID, ARRAY_INDEX, ATTEMPT)
SUCCESS_MARKER = "_SUCCESS"
FAILURE_MARKER = "_FAILED"
MARKERS = (SUCCESS_MARKER, FAILURE_MARKER)
_TEMPLATE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class StagedInput:
    """An S3 object (``s3://bucket/key``) or prefix (``s3://bucket/prefix/``) copied in."""

    source: str
    path: str  # absolute, in the container

    @property
    def is_prefix(self) -> bool:
        return self.source.endswith("/")


@dataclass(frozen=True)
class StagedOutput:
    """A container path copied to ``destination`` after the container exits."""

    path: str  # absolute, in the container; ending in "/": a directory mounted from the host
    destination: str
    on_failure: bool = False  # also after a failed exit (default: only after exit code 0)

    @property
    def is_mounted(self) -> bool:
        return self.path.endswith("/")


def template_problem(text: str) -> str | None:
    """Why ``text`` (a source or destination) has a placeholder staging cannot fill, or None."""
    unknown = sorted({name for name in _TEMPLATE.findall(text) if name not in TEMPLATE_NAMES})
    if unknown:
        allowed = ", ".join(f"${{{name}}}" for name in TEMPLATE_NAMES)
        return f"unknown placeholder ${{{unknown[0]}}}; allowed: {allowed}"
    return None


MAX_FILE_NAME_BYTES = 250  # a file system's 255, less the ".part" a download writes first


def object_name_problem(source: str) -> str | None:
    """Why an input ``source`` cannot be staged into a file of its own name (its key's last
    part: ``.``, ``..``, a NUL or too long for a file system), or None. A prefix (ending in
    ``/``) is checked key by key when it is listed."""
    if "\x00" in source:
        return "must not contain a NUL character"
    if source.endswith("/"):
        return None
    name = source.rpartition("/")[2]
    if name in (".", ".."):
        return f"the key's last part {name!r} cannot be a file name; name an object, or end a prefix with '/'"
    if len(name.encode()) > MAX_FILE_NAME_BYTES:
        return f"the key's last part is {len(name.encode())} bytes; a file name is at most {MAX_FILE_NAME_BYTES}"
    return None


def uses_array_index(inputs: Sequence[StagedInput], outputs: Sequence[StagedOutput]) -> bool:
    texts = [i.source for i in inputs] + [o.destination for o in outputs]
    return any(f"${{{ARRAY_INDEX}}}" in text for text in texts)


def target_problems(inputs: Sequence[StagedInput], outputs: Sequence[StagedOutput]) -> list[tuple[str, str]]:
    """(key path, problem) for two stagings that would mount at the same container path."""
    seen: dict[str, str] = {}
    found: list[tuple[str, str]] = []
    mounted = [(f"inputs[{n}].path", i.path) for n, i in enumerate(inputs)]
    mounted += [(f"outputs[{n}].path", o.path) for n, o in enumerate(outputs) if o.is_mounted]
    for where, path in mounted:
        target = posixpath.normpath(path)
        if target == "/":
            found.append((where, "cannot stage onto / itself; name a file or directory under it"))
        elif target in seen:
            found.append((where, f"{path!r} is already staged by {seen[target]}"))
        else:
            seen[target] = where
    return found


def placeholders(job_id: str, array_index: int | None, attempt: int) -> dict[str, str]:
    values = {JOB_ID: job_id, ATTEMPT: str(attempt)}
    if array_index is not None:
        values[ARRAY_INDEX] = str(array_index)
    return values


def expand(text: str, values: Mapping[str, str]) -> str:
    """``text`` with its placeholders filled (one without a value is left as written)."""
    return _TEMPLATE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


@dataclass(frozen=True)
class InputPlan:
    source: str  # s3:// URL, placeholders filled
    local: str  # under the attempt's staging directory: the file, or the prefix's directory
    target: str  # where ``local`` is mounted in the container


@dataclass(frozen=True)
class OutputPlan:
    path: str  # in the container
    destination: str  # s3:// URL, placeholders filled
    local: str  # the directory under the attempt's staging directory that receives the files
    mounted: bool  # ``local`` is mounted at ``path``; else the path is copied out after exit
    on_failure: bool


def plan_inputs(inputs: Sequence[StagedInput], values: Mapping[str, str]) -> list[InputPlan]:
    plans = []
    for n, staged in enumerate(inputs):
        source = expand(staged.source, values)
        if staged.is_prefix:
            plans.append(InputPlan(source, f"in/{n}", staged.path.rstrip("/") or "/"))
            continue
        name = source.rpartition("/")[2]
        target = staged.path + name if staged.path.endswith("/") else staged.path
        plans.append(InputPlan(source, f"in/{n}/{name}", target))
    return plans


def plan_outputs(outputs: Sequence[StagedOutput], values: Mapping[str, str]) -> list[OutputPlan]:
    return [
        OutputPlan(o.path, expand(o.destination, values), f"out/{n}", o.is_mounted, o.on_failure)
        for n, o in enumerate(outputs)
    ]


def to_upload(output: OutputPlan, files: Sequence[str]) -> list[tuple[str, str]]:
    """(file relative to ``output.local``, object key) for each file found there. A directory's
    files keep their paths under the destination prefix; a single copied-out file goes to the
    destination itself (or under it, when it ends in ``/``). Markers are never uploaded as
    results: the staging writes them."""
    _, _, key = output.destination[len("s3://") :].partition("/")
    name = posixpath.basename(output.path.rstrip("/"))
    if not output.mounted and list(files) == [name]:  # one file copied out
        return [(name, key + name if not key or key.endswith("/") else key)]
    prefix = key if not key or key.endswith("/") else key + "/"
    strip = "" if output.mounted else name + "/"
    return [(f, prefix + f[len(strip) :]) for f in files if posixpath.basename(f) not in MARKERS]


def is_directory(output: OutputPlan, files: Sequence[str]) -> bool:
    """Whether the output is a directory (so it gets a marker): anything but one copied-out file."""
    return output.mounted or list(files) != [posixpath.basename(output.path.rstrip("/"))]


def marker_key(output: OutputPlan, succeeded: bool) -> str:
    _, _, key = output.destination[len("s3://") :].partition("/")
    prefix = key if not key or key.endswith("/") else key + "/"
    return prefix + (SUCCESS_MARKER if succeeded else FAILURE_MARKER)


def should_upload(output: OutputPlan, succeeded: bool) -> bool:
    return succeeded or output.on_failure
