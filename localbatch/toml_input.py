"""Untrusted TOML files read within limits: the job definition loader and the config file share it.

A file over ``MAX_FILE_BYTES``, text that is not UTF-8, malformed TOML or tables and arrays nested
deeper than ``MAX_DEPTH`` are each one ``TomlInputError`` whose message says what is wrong (the
caller adds the file's name); nothing else escapes, not even the parser's own recursion limit.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "TomlInputError", "parse", "read"]

MAX_FILE_BYTES: Final = 1024 * 1024  # a job definition is a few KiB; AWS caps the registered one at 24 KiB
MAX_DEPTH: Final = 32  # tables and arrays inside each other; a real file needs five or six

_POSITION: Final = re.compile(r"(?P<what>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)", re.DOTALL)


class TomlInputError(ValueError):
    """The file cannot be read as a TOML document within the limits; the message says why."""


def read(path: Path) -> str:
    """The file's text: ``FileNotFoundError`` passes through, any other failure is a ``TomlInputError``."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TomlInputError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise TomlInputError(f"the file is larger than the limit of {MAX_FILE_BYTES} bytes (1 MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TomlInputError(f"not UTF-8 text (byte {exc.start})") from None


def parse(text: str) -> dict[str, Any]:
    """The document in ``text``; malformed TOML names its line and column."""
    if len(text) > MAX_FILE_BYTES:
        raise TomlInputError(f"the text is longer than the limit of {MAX_FILE_BYTES} characters (1 MiB)")
    try:
        document: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlInputError(_position(str(exc), text)) from None
    except RecursionError:
        raise TomlInputError(f"tables and arrays are nested deeper than the limit of {MAX_DEPTH}") from None
    if _depth(document) > MAX_DEPTH:
        raise TomlInputError(f"tables and arrays are nested deeper than the limit of {MAX_DEPTH}")
    return document


def _depth(document: dict[str, Any]) -> int:
    """How deep tables and arrays nest (the document itself is 1), without recursion."""
    deepest = 0
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _position(message: str, text: str) -> str:
    """tomllib's message with the position always as line and column."""
    found = _POSITION.fullmatch(message)
    if found:
        what, line, column = found["what"], int(found["line"]), int(found["column"])
    else:  # "(at end of document)"
        what = message.replace(" (at end of document)", "")
        line = text.count("\n") + 1
        column = len(text.rsplit("\n", 1)[-1]) + 1
    return f"malformed TOML at line {line}, column {column}: {what[:1].lower()}{what[1:]}"
