"""Fixtures of the fault tests: ``own_engine``, a dockerd of the test's own (tests.faults.engine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.engine import PrivateEngine, private_engine


@pytest.fixture
def own_engine() -> Iterator[PrivateEngine]:
    with private_engine() as running:
        yield running
