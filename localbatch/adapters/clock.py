"""The wall clock, for the ``Clock`` port (tests use ``tests/fakes/clock.py``'s FakeClock)."""

from __future__ import annotations

import time

from localbatch.core.jobs import EpochMs


class SystemClock:
    """``Clock`` on ``time.time_ns()``: epoch milliseconds, as AWS reports createdAt."""

    def now_ms(self) -> EpochMs:
        return time.time_ns() // 1_000_000
