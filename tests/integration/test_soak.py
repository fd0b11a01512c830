"""``make soak`` at CI size: ~100 seeded short jobs (retries, arrays, dependencies, timeouts,
cancels, terminates) through a real daemon, then every job ended as the seed's oracle says and
nothing is left behind (containers, staging files, daemon threads, open files, memory). The
full 5,000 runs with ``make soak``. No timing is asserted."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import soak

JOBS = 100
SEED = 7


@pytest.mark.soak
def test_a_short_soak_ends_every_job_as_the_oracle_says_and_leaves_nothing(
    docker_client: Any, busybox_image: str
) -> None:
    report = soak.run(JOBS, SEED, timeout_s=150)

    assert report.problems == []
    assert report.succeeded + report.failed == report.job_ids == len(soak.expected(soak.plan(JOBS, SEED)))
    assert report.succeeded > 0 and report.failed > 0
    assert report.containers_run > JOBS // 2  # jobs ran (not all failed unstarted)
