"""Fixtures of the fault tests: ``own_engine``, a dockerd of the test's own (tests.faults.engine);
and the integration suite's engine fixtures (``docker_client``, ``busybox_image``, ``daemon``) for
the tests that kill the daemon, not the engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.engine import PrivateEngine, private_engine
from tests.integration.conftest import busybox_image, daemon, docker_client  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def own_engine() -> Iterator[PrivateEngine]:
    """One for the session: it costs a dockerd start and an image build. A test that stops it
    starts it again; each daemon removes its own containers."""
    with private_engine() as running:
        yield running
