"""Who is calling: the principal of the request being handled, for the dispatcher.

``Api.handle`` sets it around each request from what its authenticator returned (a TCP
request's access key name) and leaves it None where there is no authenticator (the daemon's
Unix socket, whose file permissions leave only the daemon's own user). ``daemon_owner()`` is
that user's name, which the dispatcher records for requests with no principal.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

__all__ = ["acting_as", "current_principal", "daemon_owner"]

_PRINCIPAL: ContextVar[str | None] = ContextVar("localbatch_principal", default=None)


def current_principal() -> str | None:
    """The name the current request authenticated as; None outside an authenticated request."""
    return _PRINCIPAL.get()


@contextmanager
def acting_as(principal: str | None) -> Iterator[None]:
    """``current_principal()`` is ``principal`` inside the block (this thread or task only)."""
    token = _PRINCIPAL.set(principal)
    try:
        yield
    finally:
        _PRINCIPAL.reset(token)


@cache
def daemon_owner() -> str:
    """The name of the OS user this process runs as (``uid <n>`` where it has no name)."""
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry, e.g. in a container
        return f"uid {uid}"
