"""Text from containers and users, made safe to show: a terminal or a browser never acts on it.

One set of rules for every place that shows such text (``logs``, ``run``'s live output, ``top``
and the other job screens, error messages, the dashboard). Control characters (C0 but newline and
tab, DEL, C1) are what a terminal acts on instead of showing: an ESC starts the sequences that
clear the screen, retitle the window or write the clipboard (OSC 52). ``visible`` writes each as
an escape one can read (ESC becomes ``\\x1b``), which neutralises the whole sequence it starts;
``stripped`` removes the sequences instead (the dashboard shows logs as a terminal would have).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["OutputFilter", "fields", "stripped", "visible"]

_CONTROLS: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), other escapes (ESC, intermediates, final).
_SEQUENCES: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -/]*[0-~]?")


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` written as ``\\xNN``."""
    return _CONTROLS.sub(lambda m: m[0] if m[0] in keep else f"\\x{ord(m[0]):02x}", text)


def fields(value: Any) -> Any:
    """A JSON document with every string in it (keys too) ``visible`` on one line."""
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, Mapping):
        return {fields(k): fields(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fields(v) for v in value]
    return value


def stripped(data: bytes) -> str:
    """Log bytes as text with escape sequences and control characters removed (a carriage
    return ends the line as a terminal would show it: the text after it stays)."""
    text = data.decode("utf-8", errors="replace")
    text = _SEQUENCES.sub("", text)
    text = "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line for line in text.split("\n"))
    return _CONTROLS.sub(lambda m: m[0] if m[0] in "\n\t" else "", text)


class OutputFilter:
    """Container output made ``visible`` chunk by chunk, for a terminal: newline, tab and
    carriage return (progress bars) pass, bytes that are not UTF-8 become U+FFFD, and a
    character split between two chunks is decoded whole."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> bytes:
        return visible(self._decoder.decode(chunk), keep="\n\t\r").encode("utf-8")

    def end(self) -> bytes:
        return visible(self._decoder.decode(b"", final=True), keep="\n\t\r").encode("utf-8")
