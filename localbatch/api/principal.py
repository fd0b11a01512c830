"""Who is calling: the principal of the request being handled, for the dispatcher.

``Api.handle`` sets it around each request: what its authenticator returned (a TCP request's
access key name), else the OS user of the Unix socket's peer (``peer_user``, from
SO_PEERCRED), else None (a call inside the daemon: its schedules, the dashboard, ``localbatch
run`` in-process). ``daemon_owner()`` is the daemon's own user, which the dispatcher records
for requests with no principal. ``is_admin`` applies ``[policy] admins`` and ``admin_groups``.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache

from localbatch.core.policy import Policy

__all__ = ["UNKNOWN_PEER", "acting_as", "current_principal", "daemon_owner", "is_admin", "peer_user", "user_name"]

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
    return user_name(os.getuid())


def user_name(uid: int) -> str:
    """The passwd name of ``uid``; ``uid <n>`` where it has none (e.g. in a container)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


_PEERCRED = getattr(socket, "SO_PEERCRED", None)  # Linux; elsewhere the peer stays unnamed


# Who a shared socket's peer is when the system cannot say: a user like any other, no admin.
UNKNOWN_PEER = "unknown peer"


def peer_user(connection: socket.socket) -> str | None:
    """The OS user at the other end of a Unix socket connection (None where the system cannot say)."""
    if _PEERCRED is None or connection.family != socket.AF_UNIX:
        return None
    try:
        raw = connection.getsockopt(socket.SOL_SOCKET, _PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", raw)
    except OSError:
        return None
    return user_name(uid)


def is_admin(user: str, policy: Policy) -> bool:
    """Whether ``user`` may stop anyone's job: the daemon's own user, a name in ``admins``, or
    a member (or primary member) of a group in ``admin_groups``."""
    if user == daemon_owner() or user in policy.admins:
        return True
    if not policy.admin_groups:
        return False
    try:
        primary = pwd.getpwnam(user).pw_gid
    except KeyError:
        primary = None
    for name in policy.admin_groups:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if user in group.gr_mem or group.gr_gid == primary:
            return True
    return False
