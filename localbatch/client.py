"""What the CLI uses to talk to the daemon: AWS Batch's REST API over the daemon's Unix socket.

``DaemonClient`` keeps ONE persistent HTTP/1.1 keep-alive connection (stdlib ``http.client``
over AF_UNIX), serialized by a lock so threads may share a client, and reconnects once,
transparently, when the daemon closed that connection while it sat idle. Requests are built
from botocore's model (``api.routes``): ``call("SubmitJob", {...})`` posts to
``/v1/submitjob``; the tagging operations put the ARN percent-encoded in one path segment and
UntagResource's ``tagKeys`` in the query. Extensions under ``/v1/localbatch/`` are reached with
``get``/``request``, and streamed with ``stream`` on a connection of their own.

Errors, each one line meant for users as is:

- ``DaemonUnreachable``: no socket file, nobody listening on it, or it cannot be connected to;
- ``DaemonForbidden``: the socket's permissions keep this user out (names its group);
- ``RequestRejected``: the daemon answered ClientException (bad input, unknown job, ...);
- ``DaemonError``: the daemon answered ServerException, broke a connection or a stream off,
  sent something that is not AWS's shape, or did not answer in time.

Timeouts: connecting 5 s (a full listen queue is waited out, not an error); calls 60 s by default; streams unbounded.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlencode

from localbatch.api.routes import query_text, route_table
from localbatch.errors import LocalbatchError

__all__ = ["DaemonClient", "DaemonError", "DaemonForbidden", "DaemonStream", "DaemonUnreachable", "RequestRejected"]

CONNECT_TIMEOUT_S: Final = 5.0
CALL_TIMEOUT_S: Final = 60.0
_FULL_QUEUE_PAUSE_S: Final = 0.005  # first pause before connecting again to a full listen queue
_FULL_QUEUE_MAX_PAUSE_S: Final = 0.1
_STREAM_READ_BYTES: Final = 64 * 1024
_JSON_HEADERS: Final = {"Content-Type": "application/json", "Accept": "application/json"}
_BARE_HEADERS: Final = {"Accept": "application/json"}
# A reused keep-alive connection the daemon closed while idle fails with one of these before
# any answer arrives: worth one fresh connection.
_STALE_CONNECTION: Final = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class DaemonUnreachable(LocalbatchError):
    """Raised when no daemon answers on the socket."""

    def __init__(self, socket_path: str, reason: str | None = None) -> None:
        self.socket_path = socket_path
        if reason is None:
            message = f"no localbatch daemon answers at {socket_path}; start one with `localbatch daemon start`"
        else:
            message = f"cannot connect to the localbatch daemon at {socket_path}: {reason}"
        super().__init__(message)


class DaemonForbidden(LocalbatchError):
    """Raised when the socket's file permissions keep this user out (a shared host's daemon
    lets in its owner and the members of ``[policy] socket_group``)."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        try:
            info = os.stat(socket_path)
            group = _group_name(info.st_gid)
            who = f"its owner and group {group} (mode {stat.S_IMODE(info.st_mode):04o})"
        except OSError:  # not even its directory can be searched
            who = "users allowed into its directory"
        super().__init__(
            f"permission denied on the localbatch daemon's socket {socket_path}: only {who} may use it; "
            "ask the host's operator to add you ([policy] socket_group, docs/policy.md)"
        )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


class RequestRejected(LocalbatchError):
    """Raised when the daemon refused a request (ClientException): ``message`` is for users."""

    def __init__(self, code: str, message: str, status: int = 400, request_id: str | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        super().__init__(message)


class DaemonError(LocalbatchError):
    """Raised when the daemon failed (ServerException) or the exchange with it broke."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        self.message = message
        self.request_id = request_id
        super().__init__(message)


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over AF_UNIX; ``timeout`` None = wait forever."""

    def __init__(self, socket_path: str, connect_timeout_s: float, timeout_s: float | None) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self.socket_path = socket_path
        self.connect_timeout_s = connect_timeout_s

    def connect(self) -> None:
        """Connect within ``connect_timeout_s``. A socket with a timeout is non-blocking, and
        connecting one to a Unix socket whose listen queue is full fails at once (EAGAIN)
        instead of waiting its turn: that is tried again, with short pauses, until the timeout
        (a thousand clients at once then queue up instead of being turned away)."""
        deadline = time.monotonic() + self.connect_timeout_s
        pause = _FULL_QUEUE_PAUSE_S
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.connect_timeout_s)
                sock.connect(self.socket_path)
                sock.settimeout(self.timeout)
            except BlockingIOError:
                sock.close()
                if time.monotonic() + pause >= deadline:
                    raise TimeoutError("the daemon's listen queue stayed full") from None
                time.sleep(pause)
                pause = min(pause * 2, _FULL_QUEUE_MAX_PAUSE_S)
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return


class DaemonClient:
    """The daemon's API over its Unix socket. Thread-safe; also a context manager."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        timeout_s: float | None = CALL_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.socket_path = os.fspath(socket_path)
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._connection: _UnixConnection | None = None
        self._fresh = False  # the connection has not completed an exchange yet

    def call(self, operation: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run AWS Batch ``operation`` (``"SubmitJob"``) with ``body`` (botocore's parameter
        names, camelCase) and return its response. ValueError for an operation not in the model."""
        prepared = route_table().prepare(operation, body or {})
        data = None if prepared.body is None else json.dumps(prepared.body).encode()
        return self._exchange(prepared.method, prepared.target, data)

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An extension call (``/v1/localbatch/...``) answered with a JSON object."""
        data = None if body is None else json.dumps(body).encode()
        return self._exchange(method.upper(), _target(path, params), data)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET`` an extension answered with a JSON object."""
        return self.request("GET", path, params)

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> DaemonStream:
        """``GET`` a streaming extension on a connection of its own, without a timeout: its
        chunks as they arrive. Errors in the answer's status are raised here, at once; a stream
        the daemon breaks off raises DaemonError while iterating. Closing the iterator early
        closes the connection, which the daemon notices."""
        connection = _UnixConnection(self.socket_path, self.connect_timeout_s, None)
        self._connect(connection)
        try:
            connection.request("GET", _target(path, params), headers=_BARE_HEADERS)
            response = connection.getresponse()
            if response.status != 200:
                raise _rejection(response.status, response, response.read())
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise DaemonError(f"the daemon at {self.socket_path} broke the connection off: {exc}") from exc
        except BaseException:
            connection.close()
            raise
        return DaemonStream(connection, response)

    def close(self) -> None:
        """Close the persistent connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _exchange(self, method: str, target: str, data: bytes | None) -> dict[str, Any]:
        headers = _JSON_HEADERS if data is not None else _BARE_HEADERS
        with self._lock:
            for attempt in (1, 2):
                connection = self._connection
                if connection is None or connection.sock is None:
                    connection = self._connection = _UnixConnection(
                        self.socket_path, self.connect_timeout_s, self.timeout_s
                    )
                    self._connect(connection)
                    self._fresh = True
                try:
                    connection.request(method, target, body=data, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                except _STALE_CONNECTION as exc:
                    self._drop()
                    if self._fresh or attempt == 2:
                        raise DaemonError(f"the daemon at {self.socket_path} closed the connection: {exc}") from exc
                    continue  # the daemon closed the idle connection: once more on a fresh one
                except TimeoutError as exc:
                    self._drop()
                    raise DaemonError(
                        f"the daemon at {self.socket_path} did not answer within {self.timeout_s} s"
                    ) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise DaemonError(f"the exchange with the daemon at {self.socket_path} failed: {exc}") from exc
                self._fresh = False
                if response.status == 200:
                    return _json_object(payload, response)
                raise _rejection(response.status, response, payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self, connection: _UnixConnection) -> None:
        try:
            connection.connect()
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonUnreachable(self.socket_path) from exc
        except PermissionError as exc:
            raise DaemonForbidden(self.socket_path) from exc
        except TimeoutError as exc:
            raise DaemonUnreachable(self.socket_path, f"no answer within {self.connect_timeout_s} s") from exc
        except OSError as exc:
            raise DaemonUnreachable(self.socket_path, exc.strerror or str(exc)) from exc

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class DaemonStream(Iterator[bytes]):
    """A streamed answer's chunks as they arrive; ``close()`` (or leaving a ``with`` block)
    hangs up, which the daemon notices and ends its side."""

    def __init__(self, connection: _UnixConnection, response: http.client.HTTPResponse) -> None:
        self._connection = connection
        self._response = response
        self._closed = False

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._response.read1(_STREAM_READ_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise DaemonError(f"the daemon at {self._connection.socket_path} broke the stream off") from exc
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._closed = True
        self._connection.close()

    def __enter__(self) -> DaemonStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _target(path: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return path
    return f"{path}?{urlencode({key: query_text(value) for key, value in params.items()})}"


def _json_object(payload: bytes, response: http.client.HTTPResponse) -> dict[str, Any]:
    if not payload.strip():
        return {}
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise DaemonError("the daemon answered with something that is not JSON", _request_id(response)) from exc
    if not isinstance(value, dict):
        raise DaemonError("the daemon answered with JSON that is not an object", _request_id(response))
    return value


def _rejection(status: int, response: http.client.HTTPResponse, payload: bytes) -> LocalbatchError:
    """The error for a non-200 answer, read the way botocore reads AWS's error shape."""
    try:
        body = json.loads(payload) if payload.strip() else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = (response.getheader("x-amzn-ErrorType") or "").split(":")[0]
    if not code:
        code = str(body.get("__type") or body.get("code") or status).rsplit("#", 1)[-1]
    message = str(body.get("message") or body.get("Message") or response.reason or f"HTTP {status}")
    request_id = _request_id(response)
    if status >= 500 or code == "ServerException":
        return DaemonError(message, request_id)
    return RequestRejected(code, message, status, request_id)


def _request_id(response: http.client.HTTPResponse) -> str | None:
    return response.getheader("x-amzn-RequestId")
