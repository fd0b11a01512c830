"""``make bench`` cannot rot: every benchmark scenario runs at tiny size through the real runner
(``python -m benchmarks.run --smoke``) and writes well-formed figures. Never a timing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import QUICK, REQUIRED

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.bench_smoke
def test_every_scenario_runs_at_tiny_size_and_writes_finite_figures(
    tmp_path: Path, docker_client: Any, busybox_image: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--results", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((tmp_path / "latest.json").read_text())
    assert record["smoke"] is True
    assert set(record["seconds"]) == set(QUICK)
    missing = [key for key in REQUIRED if key not in record]
    assert missing == []
    figures = {k: v for k, v in record.items() if k not in ("when", "quick", "smoke", "machine", "seconds")}
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in figures.values()), figures
    assert record["localbatch_succeeded"] == record["peer_jobs"] == record["moto_succeeded"]
