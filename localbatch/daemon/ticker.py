"""A named background thread that runs one step, waits, and runs it again until stopped; a
step that raises is logged and tried again next round (a bug must not end the work for good)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Ticker:
    def __init__(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        self._name, self._step, self._interval_s = name, step, interval_s
        self.stopping = threading.Event()  # steps may wait on it to pace themselves
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception:
                logger.exception("%s: a round failed; the next one tries again", self._name)
            self.stopping.wait(self._interval_s)
