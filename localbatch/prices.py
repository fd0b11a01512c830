"""The AWS price table ``advise`` estimates costs from: the one shipped with the package
(``data/aws_prices.json``, a dated snapshot) or a file the user gives (same format).

Format (JSON)::

    {"format": 1, "as_of": "YYYY-MM-DD", "currency": "USD", "source": "...",
     "regions": {"us-east-1": {"spot_factor": 0.35,
                               "fargate": {"vcpu_per_hour": 0.04048, "gb_per_hour": 0.004445},
                               "instances": [{"name": "m5.large", "vcpus": 2, "memory_gib": 8,
                                              "gpus": 0, "on_demand_per_hour": 0.096}, ...]}}}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from localbatch.core.advise import InstanceType, RegionPrices
from localbatch.errors import ConfigError

SHIPPED = "aws_prices.json"


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    currency: str
    source: str
    origin: str  # "shipped" or the file's path
    regions: dict[str, RegionPrices]

    def region(self, name: str) -> RegionPrices:
        found = self.regions.get(name)
        if found is None:
            raise ConfigError(
                f"{self.origin}: no prices for region {name!r}; it has {', '.join(sorted(self.regions))} "
                "(give your own table with --prices)"
            )
        return found


def load(path: Path | None = None) -> PriceTable:
    """The table at ``path``, else the shipped one. Raises ConfigError naming what is wrong."""
    origin = "shipped" if path is None else str(path)
    try:
        if path is None:
            text = resources.files("localbatch.data").joinpath(SHIPPED).read_text(encoding="utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"price table {origin}: {exc}") from None
    return parse(document, origin)


def parse(document: Any, origin: str) -> PriceTable:
    def fail(where: str, what: str) -> ConfigError:
        return ConfigError(f"price table {origin}: {where}: {what}")

    def number(data: Any, key: str, where: str) -> float:
        value = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise fail(f"{where}.{key}", f"expected a number >= 0, got {value!r}")
        return float(value)

    if not isinstance(document, dict) or document.get("format") != 1:
        raise fail("format", 'expected an object with "format": 1')
    regions_doc = document.get("regions")
    if not isinstance(regions_doc, dict) or not regions_doc:
        raise fail("regions", "expected an object of regions")
    regions: dict[str, RegionPrices] = {}
    for name, region in regions_doc.items():
        where = f"regions.{name}"
        if not isinstance(region, dict) or not isinstance(region.get("instances"), list):
            raise fail(where, "expected spot_factor, fargate and a list of instances")
        instances = []
        for number_, item in enumerate(region["instances"]):
            at = f"{where}.instances[{number_}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise fail(at, "expected an object with a name")
            vcpus = number(item, "vcpus", at)
            memory = number(item, "memory_gib", at)
            if vcpus <= 0 or memory <= 0:
                raise fail(at, "vcpus and memory_gib must be above 0")
            instances.append(
                InstanceType(
                    item["name"],
                    int(vcpus),
                    int(memory * 1024),
                    int(number(item, "gpus", at)) if "gpus" in item else 0,
                    number(item, "on_demand_per_hour", at),
                )
            )
        fargate = region.get("fargate")
        regions[name] = RegionPrices(
            region=name,
            instances=tuple(instances),
            spot_factor=number(region, "spot_factor", where),
            fargate_vcpu_per_hour=number(fargate, "vcpu_per_hour", f"{where}.fargate"),
            fargate_gb_per_hour=number(fargate, "gb_per_hour", f"{where}.fargate"),
        )
    return PriceTable(
        as_of=str(document.get("as_of", "unknown")),
        currency=str(document.get("currency", "USD")),
        source=str(document.get("source", "")),
        origin=origin,
        regions=regions,
    )
