"""The daemon as a process: one per ``$LOCALBATCH_HOME``, started, found and stopped.

Files under the home (see ``Settings``): ``daemon.lock`` (an flock held for the daemon's
whole life: the one-daemon-per-home guarantee, released by the kernel even on kill -9),
``daemon.pid``, ``daemon.log`` (the daemon's own log; container output goes to ``logs/``),
and the API socket ``daemon.sock`` (mode 0600).

``start_background`` runs ``python -m localbatch daemon run`` detached (its own session, so
a closed terminal does not stop it) and returns once the socket answers. ``stop`` sends
SIGTERM and waits: the daemon stops scheduling and serving and exits, leaving running
containers running for the next start to re-adopt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from localbatch.config import Settings
from localbatch.errors import LocalbatchError


class DaemonAlreadyRunning(LocalbatchError):
    """Raised when a daemon already holds this home's lock."""


class DaemonNotRunning(LocalbatchError):
    """Raised when asked to stop a daemon that is not running."""


class DaemonStartFailed(LocalbatchError):
    """Raised when a background daemon did not come up; carries the tail of its log."""


class HomeInUse(LocalbatchError):
    """Raised when another engine (a daemon, or ``localbatch run`` without one) owns the home."""


@contextlib.contextmanager
def hold_lock(settings: Settings) -> Iterator[None]:
    """Hold this home's daemon lock (one daemon per home), its engine lock exclusively (no
    ``localbatch run`` drives jobs of its own meanwhile) and its pid file, for the duration."""
    settings.prepare_home()
    handle = settings.lock_path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DaemonAlreadyRunning(
            f"a localbatch daemon already runs for {settings.home} (pid {read_pid(settings) or 'unknown'})"
        ) from None
    try:
        with _engine_lock(settings, shared=False):
            settings.pid_path.write_text(f"{os.getpid()}\n")
            try:
                yield
            finally:
                with contextlib.suppress(FileNotFoundError):
                    settings.pid_path.unlink()
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def hold_engine_shared(settings: Settings) -> Iterator[None]:
    """What ``localbatch run`` without a daemon holds while its in-process engine runs."""
    settings.prepare_home()
    with _engine_lock(settings, shared=True):
        yield


@contextlib.contextmanager
def _engine_lock(settings: Settings, *, shared: bool) -> Iterator[None]:
    handle = settings.engine_lock_path.open("a+")
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        if shared:
            raise HomeInUse(
                f"a localbatch daemon is starting for {settings.home}; run again once "
                "`localbatch daemon status` answers"
            ) from None
        raise HomeInUse(
            f"`localbatch run` is running jobs in {settings.home} without a daemon; "
            "start the daemon when they have ended"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def is_locked(settings: Settings) -> bool:
    """Whether some process holds this home's daemon lock right now."""
    if not settings.lock_path.exists():
        return False
    with settings.lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def read_pid(settings: Settings) -> int | None:
    try:
        text = settings.pid_path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class Started:
    pid: int
    log_path: Path


def start_background(settings: Settings, answers: Callable[[], bool], timeout_s: float = 30) -> Started:
    """Start a detached daemon and wait until ``answers()`` (its socket serves)."""
    settings.prepare_home()
    if is_locked(settings):
        raise DaemonAlreadyRunning(f"a localbatch daemon already runs for {settings.home} (pid {read_pid(settings)})")
    env = {**os.environ, "LOCALBATCH_HOME": str(settings.home)}
    if settings.config_file is not None:
        env["LOCALBATCH_CONFIG"] = str(settings.config_file)
    with settings.daemon_log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "localbatch", "daemon", "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,  # a closed terminal or Ctrl-C in it does not reach the daemon
            close_fds=True,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonStartFailed(
                f"the daemon exited with {process.returncode}; the end of {settings.daemon_log_path}:\n"
                + _tail(settings.daemon_log_path)
            )
        if answers():
            return Started(process.pid, settings.daemon_log_path)
        time.sleep(0.1)
    process.terminate()
    raise DaemonStartFailed(
        f"the daemon did not answer within {timeout_s:g} s; the end of {settings.daemon_log_path}:\n"
        + _tail(settings.daemon_log_path)
    )


def stop(settings: Settings, timeout_s: float = 30) -> int:
    """SIGTERM the daemon and wait for it to exit; its pid."""
    settings.prepare_home()
    pid = read_pid(settings)
    if pid is None or not is_locked(settings):
        raise DaemonNotRunning(f"no localbatch daemon runs for {settings.home}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_locked(settings):
            return pid
        time.sleep(0.1)
    raise LocalbatchError(f"the daemon (pid {pid}) did not stop within {timeout_s:g} s; see {settings.daemon_log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])  # indented: quoted, not ours
