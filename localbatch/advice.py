"""``localbatch advise``'s use case: fetch a definition's recent runs through the API, then
the pure rules (``core.advise``) size it and price one run on AWS (``prices``)."""

from __future__ import annotations

from typing import Any

from localbatch import session
from localbatch.core import advise, usage
from localbatch.core.advise import RunUsage
from localbatch.errors import JobNotFound, NotFound
from localbatch.prices import PriceTable


def definition_of(backend: session.Backend, target: str) -> str:
    """The job definition's name ``target`` means: a job id's definition, else ``target``
    itself read as ``NAME[:REVISION]``."""
    try:
        detail = session.describe(backend, target)
    except JobNotFound:
        name = target.partition(":")[0]
        if session.latest_definition(backend, name) is None and not _has_runs(backend, name):
            raise NotFound(f"{target!r} is neither a job id nor a registered job definition") from None
        return name
    return str(detail["jobDefinition"]).rpartition("/")[2].partition(":")[0]


def _has_runs(backend: session.Backend, name: str) -> bool:
    return bool(session.usage_history(backend, name, 1)["runs"])


def runs_of(history: dict[str, Any]) -> list[RunUsage]:
    return [
        RunUsage(
            job_id=run["jobId"],
            vcpus=float(run["vcpus"]),
            memory_mib=int(run["memoryMiB"]),
            gpus=int(run.get("gpus", 0)),
            duration_s=max(0.0, (run["stoppedAt"] - run["startedAt"]) / 1000),
            usage=usage.from_document(run["usage"]) if run.get("usage") else None,
            oom_killed=bool(run.get("oomKilled")),
        )
        for run in history["runs"]
    ]


def advice(
    backend: session.Backend,
    target: str,
    *,
    limit: int,
    margin: float,
    prices: PriceTable | None,
    region: str,
) -> dict[str, Any]:
    """What ``advise`` prints (``--json``: as it is): the runs, the recommendation, the costs."""
    name = definition_of(backend, target)
    runs = runs_of(session.usage_history(backend, name, limit))
    found = advise.recommend(runs, margin)
    measured = [r for r in runs if r.usage is not None] or runs
    duration = sum(r.duration_s for r in measured) / len(measured) if measured else 0.0
    answer: dict[str, Any] = {
        "jobDefinitionName": name,
        "runs": len(runs),
        "runsWithUsage": sum(1 for r in runs if r.usage is not None),
        "durationSeconds": round(duration, 1),
        "recommendation": None,
    }
    if found is None:
        return answer
    answer["recommendation"] = {
        "requestedVcpus": found.requested_vcpus,
        "requestedMemoryMiB": found.requested_memory_mib,
        "cpuUsedVcpus": found.cpu_used_vcpus,
        "memoryPeakMiB": found.memory_peak_mib,
        "vcpus": found.vcpus,
        "memoryMiB": found.memory_mib,
        "margin": found.margin,
        "oomRuns": found.oom_runs,
        "notes": list(found.notes),
    }
    if prices is not None:
        gpus = runs[0].gpus if runs else 0
        region_prices = prices.region(region)
        answer["costs"] = {
            "region": region,
            "currency": prices.currency,
            "asOf": prices.as_of,
            "source": f"{prices.origin}: {prices.source}" if prices.origin != "shipped" else prices.source,
            "requested": _cost(
                advise.estimate(region_prices, found.requested_vcpus, found.requested_memory_mib, gpus, duration)
            ),
            "recommended": _cost(advise.estimate(region_prices, found.vcpus, found.memory_mib, gpus, duration)),
        }
    return answer


def _cost(found: advise.CostEstimate) -> dict[str, Any]:
    return {
        "onDemand": found.on_demand,
        "spot": found.spot,
        "fargate": found.fargate,
        "instanceType": found.instance_type,
        "fargateVcpus": found.fargate_vcpus,
        "fargateMemoryGB": found.fargate_memory_gb,
    }
