"""``Ref::name`` parameter substitution in a job's command, as AWS Batch does it.

Values are the job definition's ``parameters`` overridden per key by the submission's.
A placeholder may stand alone (``["cp", "Ref::src", "Ref::dst"]``) or inside a longer
string (``"--input=Ref::src"``). Where several names could match at one place the longest
wins, so ``Ref::frame_count`` is not read as ``Ref::frame`` + ``_count``. A placeholder with
no value is left as written, which is what AWS is believed to do; ``unresolved`` lists
them so the CLI can warn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

PREFIX = "Ref::"
_NAME = re.compile(r"Ref::([A-Za-z0-9_\-.]+)")


def merge(defaults: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """Definition defaults overridden per key by the submission's parameters."""
    return {**defaults, **overrides}


def substitute(command: Iterable[str], parameters: Mapping[str, str]) -> tuple[str, ...]:
    """The command with every ``Ref::name`` that has a value replaced by it."""
    names = sorted(parameters, key=len, reverse=True)
    return tuple(_substitute_one(arg, parameters, names) for arg in command)


def _substitute_one(arg: str, parameters: Mapping[str, str], names: list[str]) -> str:
    out: list[str] = []
    i = 0
    while True:
        j = arg.find(PREFIX, i)
        if j < 0:
            out.append(arg[i:])
            return "".join(out)
        out.append(arg[i:j])
        rest = arg[j + len(PREFIX) :]
        name = next((n for n in names if rest.startswith(n)), None)
        if name is None:
            out.append(PREFIX)
            i = j + len(PREFIX)
        else:
            out.append(parameters[name])
            i = j + len(PREFIX) + len(name)


def unresolved(command: Iterable[str], parameters: Mapping[str, str]) -> list[str]:
    """Placeholder names left in the command after substitution (no value was given)."""
    found: list[str] = []
    for arg in substitute(command, parameters):
        found.extend(m.group(1) for m in _NAME.finditer(arg) if m.group(1) not in found)
    return found
