"""Prometheus's text exposition format (version 0.0.4), written by hand: metric families in,
text out. Pure. Label values are escaped as the format requires (backslash, quote, newline).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Sample:
    labels: Labels
    value: float
    suffix: str = ""  # "_bucket", "_sum", "_count" for a histogram's series


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: tuple[Sample, ...] = field(default_factory=tuple)


def labels(**values: str) -> Labels:
    return tuple(values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def exposition(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for sample in family.samples:
            text = ",".join(f'{key}="{_escape(value)}"' for key, value in sample.labels)
            lines.append(
                f"{family.name}{sample.suffix}{{{text}}} {_number(sample.value)}"
                if text
                else f"{family.name}{sample.suffix} {_number(sample.value)}"
            )
    return "\n".join(lines) + "\n"


def histogram_samples(base: Labels, bounds: Sequence[float], counts: Sequence[int], total: float) -> tuple[Sample, ...]:
    """A histogram's series from per-bucket counts (``counts[i]``: observations at or under
    ``bounds[i]`` and over the bound before; one more for those over the last bound)."""
    samples = []
    running = 0
    for bound, count in zip([*bounds, math.inf], counts, strict=True):
        running += count
        samples.append(Sample((*base, ("le", _number(bound))), running, "_bucket"))
    samples.append(Sample(base, total, "_sum"))
    samples.append(Sample(base, running, "_count"))
    return tuple(samples)


def counter_samples(values: Mapping[Labels, float]) -> tuple[Sample, ...]:
    return tuple(Sample(key, value) for key, value in sorted(values.items()))
