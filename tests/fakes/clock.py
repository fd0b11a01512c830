"""A clock that only moves when the test moves it."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    # -- test API ---------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        self._now_ms += round(seconds * 1000)
