"""An executor for tests that runs what is submitted at once, on the caller's thread."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import Any


class Inline(Executor):
    """Runs what is submitted at once, on the caller's thread."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a Future carries whatever happened
            future.set_exception(exc)
        return future
