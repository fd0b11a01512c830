"""The soak's oracle (``benchmarks.soak.expected``): AWS's retry rules, worked out by hand."""

from __future__ import annotations

from pathlib import Path

from benchmarks import soak


def test_the_oracle_follows_aws_retry_rules() -> None:
    """The soak's own retry arithmetic, on cases worked out by hand (aws-batch-reference §4.1)."""
    base = soak.Submission("k", "single", 0.25, 16, fail=1, code=3, attempts=3)
    assert soak.expected([base])["k"] == {("SUCCEEDED", 2)}
    always = soak.Submission("k", "single", 0.25, 16, fail=9, code=3, attempts=3)
    assert soak.expected([always])["k"] == {("FAILED", 3)}
    exit_on_3 = soak.Submission("k", "single", 0.25, 16, fail=9, code=3, attempts=3, rules=soak.RULES[1])
    assert soak.expected([exit_on_3])["k"] == {("FAILED", 1)}
    prefix = soak.Submission("k", "single", 0.25, 16, fail=1, code=25, attempts=2, rules=(("2*", "EXIT"),))
    assert soak.expected([prefix])["k"] == {("FAILED", 1)}
    unmatched = soak.Submission("k", "single", 0.25, 16, fail=1, code=1, attempts=2, rules=(("2*", "EXIT"),))
    assert soak.expected([unmatched])["k"] == {("SUCCEEDED", 2)}
    array = soak.Submission("a", "array", 0.25, 16, fail=9, attempts=2, mod=2, array_size=3)
    after = soak.Submission("d", "single", 0.25, 16, depends_on=("a",))
    found = soak.expected([array, after])
    assert [found[f"a:{i}"] for i in range(3)] == [{("FAILED", 2)}, {("SUCCEEDED", 1)}, {("FAILED", 2)}]
    assert found["a"] == {("FAILED", 0)} and found["d"] == {("FAILED", 0)}


def test_stray_files_are_anything_but_the_daemons_own_and_attempt_logs(tmp_path: Path) -> None:
    for name in ("state.db", "daemon.pid", "logs/j1/1.log", "logs/j1/2.log", "staging/j2/1/in/a", "logs/j1/x.tmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert soak.stray_files(tmp_path) == ["logs/j1/x.tmp", "staging/j2/1", "staging/j2/1/in", "staging/j2/1/in/a"]
