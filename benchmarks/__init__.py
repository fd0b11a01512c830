"""Benchmarks run by `make bench`: each module has measure(quick) -> dict of figures."""
