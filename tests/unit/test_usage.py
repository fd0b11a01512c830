"""Usage sampling and right-sizing: the pure rules (core.usage, core.advise, core.progress),
the sampler on the fake engine with a fake GPU meter, and the control loop keeping an
attempt's usage on it when it ends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localbatch import prices
from localbatch.core import advise, progress, usage
from localbatch.core.advise import RunUsage
from localbatch.core.jobs import JobStatus
from localbatch.core.usage import AttemptUsage, UsageSample
from localbatch.daemon.usage import UsageSampler
from localbatch.errors import ConfigError
from localbatch.extensions import Extensions
from localbatch.ports import ContainerStats
from tests.fakes.clock import FakeClock
from tests.fakes.runtime import FakeRuntime
from tests.unit.test_daemon_loop import make_rig

MIB = 1024 * 1024


# -- core.usage ----------------------------------------------------------------------------------


def test_cpu_percent_is_cpu_time_over_wall_time_per_interval_and_on_average() -> None:
    tally = usage.start(1_000)
    tally = usage.observe(tally, UsageSample(2_000, 500_000_000, 100 * MIB, 512 * MIB))  # 0.5 s in 1 s
    tally = usage.observe(tally, UsageSample(3_000, 2_500_000_000, 300 * MIB))  # 2 s in 1 s
    tally = usage.observe(tally, UsageSample(4_000, 2_500_000_000, 50 * MIB))  # idle
    found = usage.summary(tally)
    assert found == AttemptUsage(
        samples=3,
        cpu_avg_percent=83.3,  # 2.5 s of CPU over 3 s
        cpu_peak_percent=200.0,
        memory_peak_mib=300.0,
        memory_limit_mib=512.0,
        cpu_now_percent=0.0,
        memory_now_mib=50.0,
    )
    assert usage.settled(found).cpu_now_percent is None and usage.settled(found).memory_now_mib is None


def test_a_sample_out_of_order_is_ignored_and_no_sample_is_no_usage() -> None:
    tally = usage.start(1_000)
    assert usage.summary(tally) is None
    later = usage.observe(tally, UsageSample(2_000, 1_000_000, MIB))
    assert usage.observe(later, UsageSample(1_500, 2_000_000, MIB)) == later


def test_gpu_utilisation_averages_the_samples_that_had_one() -> None:
    tally = usage.start(0)
    for at, gpu in ((1_000, 20.0), (2_000, None), (3_000, 80.0)):
        tally = usage.observe(tally, UsageSample(at, 0, MIB, gpu_percent=gpu))
    found = usage.summary(tally)
    assert found is not None and (found.gpu_avg_percent, found.gpu_peak_percent) == (50.0, 80.0)


def test_usage_documents_round_trip() -> None:
    found = AttemptUsage(4, 10.0, 20.0, 30.5, 64.0, 1.0, 2.0)
    assert usage.from_document(usage.to_document(found)) == found
    with pytest.raises(ValueError, match="samples"):
        usage.from_document({"cpuAvgPercent": 1})


# -- core.progress ---------------------------------------------------------------------------------


def test_progress_estimates_what_is_left_from_the_rate_so_far() -> None:
    found = progress.progress({"SUCCEEDED": 3, "FAILED": 1, "RUNNING": 2, "RUNNABLE": 6, "PENDING": 0}, 40.0)
    assert (found.total, found.done, found.succeeded, found.failed) == (12, 4, 3, 1)
    assert found.remaining_s == 80.0  # 10 s a job, 8 left
    assert "PENDING" not in found.counts and not found.finished
    assert progress.progress({"RUNNING": 2}, 5.0).remaining_s is None  # nothing ended: no estimate
    assert progress.progress({"SUCCEEDED": 2}, 5.0).finished
    assert [progress.duration_text(s) for s in (None, 42, 185, 7260)] == ["-", "42s", "3m05s", "2h01m"]


# -- core.advise -------------------------------------------------------------------------------------


def run(
    vcpus: float = 4, memory_mib: int = 4096, cpu: float = 80.0, peak_mib: float = 1000.0, **extra: Any
) -> RunUsage:
    return RunUsage("j", vcpus, memory_mib, 0, 60.0, AttemptUsage(10, cpu, cpu * 1.5, peak_mib), **extra)


def test_recommendation_is_the_peak_plus_margin_and_the_cpu_used() -> None:
    found = advise.recommend([run(cpu=80.0, peak_mib=1000.0), run(cpu=150.0, peak_mib=700.0), run()])
    assert found is not None
    assert found.memory_mib == 1280  # 1000 MiB + 20 % = 1200, rounded up to 128 MiB
    assert found.vcpus == 2  # 1.5 vCPU used + 20 % -> 1.8 -> 2 whole vCPUs
    assert (found.requested_vcpus, found.requested_memory_mib, found.runs, found.margin) == (4, 4096, 3, 0.2)
    assert found.notes == ()


def test_an_oom_kill_means_at_least_twice_the_request_and_cpu_bound_jobs_keep_their_vcpus() -> None:
    found = advise.recommend([run(vcpus=1, memory_mib=256, cpu=98.0, peak_mib=255.0, oom_killed=True)])
    assert found is not None
    assert found.memory_mib == 512 and found.oom_runs == 1
    assert found.vcpus == 1
    assert any("killed for memory" in n for n in found.notes) and any("CPU-bound" in n for n in found.notes)
    assert any("1 run(s) only" in n for n in found.notes)


def test_no_usage_no_recommendation() -> None:
    assert advise.recommend([RunUsage("j", 1, 512, 0, 5.0, None)]) is None


def test_cost_is_the_share_of_the_cheapest_fitting_instance_and_fargates_task_size() -> None:
    region = advise.RegionPrices(
        "test",
        (
            advise.InstanceType("small", 2, 4096, 0, 0.10),
            advise.InstanceType("big", 8, 32768, 0, 0.50),
            advise.InstanceType("gpu", 4, 16384, 1, 1.00),
        ),
        spot_factor=0.3,
        fargate_vcpu_per_hour=0.04,
        fargate_gb_per_hour=0.004,
    )
    found = advise.estimate(region, vcpus=1, memory_mib=1024, gpus=0, duration_s=3600)
    assert found.instance_type == "small" and found.on_demand == pytest.approx(0.05)  # half of "small"
    assert found.spot == pytest.approx(0.015)
    assert (found.fargate_vcpus, found.fargate_memory_gb) == (1, 2.0)  # 1 vCPU allows 2..8 GB
    assert found.fargate == pytest.approx(0.04 + 2 * 0.004)
    short = advise.estimate(region, vcpus=0.25, memory_mib=512, gpus=0, duration_s=1)
    assert short.fargate == pytest.approx((0.25 * 0.04 + 0.5 * 0.004) / 60)  # a minute at least
    gpu = advise.estimate(region, vcpus=2, memory_mib=4096, gpus=1, duration_s=3600)
    assert gpu.instance_type == "gpu" and gpu.fargate is None and gpu.on_demand == pytest.approx(1.0)
    assert advise.estimate(region, vcpus=64, memory_mib=1024, gpus=0, duration_s=60).on_demand is None


def test_the_shipped_price_table_is_dated_and_a_file_overrides_it(tmp_path: Path) -> None:
    shipped = prices.load()
    assert shipped.as_of and shipped.source and "us-east-1" in shipped.regions
    own = tmp_path / "prices.json"
    own.write_text(
        json.dumps(
            {
                "format": 1,
                "as_of": "2030-01-01",
                "regions": {
                    "mars-1": {
                        "spot_factor": 0.5,
                        "fargate": {"vcpu_per_hour": 1, "gb_per_hour": 0.1},
                        "instances": [{"name": "x1", "vcpus": 2, "memory_gib": 4, "on_demand_per_hour": 1.0}],
                    }
                },
            }
        )
    )
    table = prices.load(own)
    assert table.as_of == "2030-01-01" and table.region("mars-1").instances[0].memory_mib == 4096
    with pytest.raises(ConfigError, match="no prices for region 'us-east-1'"):
        table.region("us-east-1")
    own.write_text('{"format": 1, "regions": {"r": {"instances": [{"name": "x", "vcpus": -1}]}}}')
    with pytest.raises(ConfigError, match=r"regions.r.instances\[0\].vcpus"):
        prices.load(own)


# -- the sampler and the control loop ---------------------------------------------------------------


class FakeGpus:
    def __init__(self) -> None:
        self.asked: list[tuple[str, ...]] = []

    def utilization(self, device_ids: tuple[str, ...]) -> float | None:
        self.asked.append(device_ids)
        return 40.0


def test_the_sampler_reads_each_watched_container_and_paces_itself() -> None:
    clock = FakeClock()
    runtime = FakeRuntime(clock)
    runtime.script("busybox:1.36", runs_for_s=None)
    from tests.contract.runtime_contract import RuntimeContract

    ids = []
    for _ in range(3):
        request = RuntimeContract().request(("sleep", "1000"))
        container_id = runtime.create(request)
        runtime.start(container_id)
        ids.append(container_id)
    gpus = FakeGpus()
    sampler = UsageSampler(runtime, clock, gpus=gpus, max_per_s=10)
    for number, container_id in enumerate(ids):
        sampler.watch(f"job-{number}", container_id, clock.now_ms(), gpu_ids=("0",) if number == 0 else ())
    pauses: list[float] = []
    clock.advance(1)
    runtime.usage[ids[0]] = ContainerStats(500_000_000, 10 * MIB, 64 * MIB)
    assert sampler.sample_once(lambda s: pauses.append(s)) == 3
    assert pauses == [0.1, 0.1]  # at most 10 readings a second
    assert gpus.asked == [("0",)]
    live = sampler.live()
    assert live["job-0"].cpu_now_percent == 50.0 and live["job-0"].gpu_avg_percent == 40.0
    ended = sampler.finish("job-0")
    assert ended is not None and ended.memory_peak_mib == 10.0 and ended.cpu_now_percent is None
    assert "job-0" not in sampler.live() and sampler.finish("job-0") is None


def test_the_loop_keeps_an_attempts_usage_on_it_when_it_ends(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, sampler=UsageSampler)  # never started: driven by hand below
    sampler = rig.loop._sampler
    assert sampler is not None
    rig.runtime.script("busybox:1.36", runs_for_s=4)
    job_id = rig.submit()
    rig.tick(0.5)
    rig.tick(0.5)
    assert rig.job(job_id).status is JobStatus.RUNNING
    [container] = rig.runtime.running()
    rig.runtime.usage[container] = ContainerStats(400_000_000, 200 * MIB, 512 * MIB)
    assert sampler.sample_once() == 1
    assert rig.loop.live_usage()[job_id].memory_now_mib == 200.0
    extensions = Extensions(
        settings=rig.settings,
        store=rig.store,
        host=None,  # type: ignore[arg-type]
        capacity=None,  # type: ignore[arg-type]
        runtime=rig.runtime,
        live_usage=rig.loop.live_usage,
    )
    assert extensions.usage({"jobId": job_id}, {})["live"]["memoryNowMiB"] == 200.0
    rig.settle(ticks=30)
    done = rig.job(job_id)
    assert done.status is JobStatus.SUCCEEDED
    kept = done.attempts[0].usage
    assert kept is not None and kept.memory_peak_mib == 200.0 and kept.memory_limit_mib == 512.0
    answer = extensions.usage({"jobId": job_id}, {})
    assert answer["attempts"] == [{"attempt": 1, "usage": usage.to_document(kept)}] and "live" not in answer
    history = extensions.usage({"jobDefinition": "work"}, {})
    assert [(r["jobId"], r["vcpus"], r["memoryMiB"], r["oomKilled"]) for r in history["runs"]] == [
        (job_id, 1.0, 512, False)
    ]
    assert extensions.usage({}, {}) == {"running": {}}
