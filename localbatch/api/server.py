"""The daemon's API server: transport-agnostic dispatch (``Api``) and HTTP/1.1 on a Unix socket
(``ApiServer``).

``Api.handle(ApiRequest) -> ApiResponse`` is everything between bytes in and bytes out, with no
socket in sight: resolve the route (botocore's model, ``routes``), parse the JSON body (empty
= ``{}``), merge the URI and query parameters, validate against the model (every problem,
with its field path, in one ClientException), call the injected ``Dispatcher``, and encode the
result (200 JSON) or the error (AWS's shape: header ``x-amzn-ErrorType``, body ``{"__type",
"message"}``, via ``errors.to_api_error``). Every response carries ``x-amzn-RequestId``.
Requests under ``/v1/localbatch/`` go to extension handlers registered with
``add_extension``; a handler returns a JSON object, or an iterator of bytes that is streamed
with chunked transfer encoding (``logs --follow``).

``ApiServer`` serves an ``Api`` on a Unix socket (mode 0600, or 0660 with a group: file
permissions are the auth; each request is handled as the peer's OS user, from SO_PEERCRED):
stdlib ``socketserver`` with one daemon thread per connection, HTTP/1.1 keep-alive, a clean
``shutdown()`` that lets in-flight requests finish and closes idle connections. The request
handler only needs ``server.api``, ``server.closing`` and ``server.max_body_bytes``, so a TCP
listener (SigV4, issue 7) reuses it, serving ``api.with_authenticator(verify)``: the same
dispatcher and extensions behind a hook that refuses a request before anything else runs, or
names who is calling (``principal.current_principal()`` while the request is handled).

Streams: an iterator may yield ``b""`` as a heartbeat. Nothing is sent for it, but the server
uses it to notice a client that went away or a server shutting down, and then closes the
iterator (``close()``, so a generator's ``finally`` runs). A stream that ends normally ends with
the terminating chunk; one cut short (iterator error, shutdown) is broken off without it, so
the client can tell the two apart.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import select
import socket
import socketserver
import ssl
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, TypeAlias
from urllib.parse import parse_qs

from localbatch.api.errors import ApiError, client_error, to_api_error, unsupported_operation
from localbatch.api.principal import UNKNOWN_PEER, acting_as, current_principal, daemon_owner, peer_user
from localbatch.api.routes import RouteTable, route_table
from localbatch.awsbatch.jobdefinition import LOCAL_MEMBER
from localbatch.awsbatch.model import validate_request
from localbatch.errors import LocalbatchError, Problem
from localbatch.tls import listener_url

__all__ = [
    "EXTENSION_PREFIX",
    "Api",
    "ApiRequest",
    "ApiResponse",
    "ApiServer",
    "ApiServerError",
    "TcpApiServer",
    "Authenticator",
    "Dispatcher",
    "ExtensionHandler",
    "ExtensionResult",
]

logger = logging.getLogger(__name__)

EXTENSION_PREFIX: Final = "/v1/localbatch/"
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
# Connections the kernel queues before the server accepts them (capped by net.core.somaxconn);
# a burst beyond it waits in the client (``client.DaemonClient`` connects again).
LISTEN_BACKLOG: Final = 1024
# A connection that sends nothing for this long (a request begun and never finished, an idle
# keep-alive) is closed, so that slow or stuck clients cannot hold the server's threads. A stream
# waiting for a job's output sends nothing and is not affected; clients reconnect once.
DEFAULT_IDLE_TIMEOUT_S: Final = 120.0
JSON_TYPE: Final = "application/json"
AMZ_JSON_TYPE: Final = "application/x-amz-json-1.1"
STREAM_TYPE: Final = "application/octet-stream"
# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH_BYTES: Final = 107
_EXTENSION_METHODS: Final = frozenset({"GET", "POST", "PUT", "DELETE"})
_PHRASES: Final = {status.value: status.phrase for status in HTTPStatus}
_NO_STORE: Final = ("Cache-Control: no-store",)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


class Dispatcher(Protocol):
    """What executes AWS Batch operations. ``body`` is the validated request (URI and query
    members merged in, e.g. ``resourceArn``); raise ``LocalbatchError``/``ApiError`` to refuse,
    and ``errors.unsupported_operation(op)`` for an operation localbatch does not implement."""

    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]: ...


ExtensionResult: TypeAlias = "dict[str, Any] | Iterator[bytes]"
# (query parameters, last value wins; JSON body or {}) -> JSON object or a stream of bytes.
ExtensionHandler: TypeAlias = "Callable[[dict[str, str], dict[str, Any]], ExtensionResult]"


@dataclass(frozen=True)
class ApiRequest:
    """One request as the transport received it."""

    method: str
    target: str  # raw request target: path and query, still percent-encoded
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    peer: str | None = None  # the OS user at the other end of a Unix socket (SO_PEERCRED)
    transport: str = "socket"  # socket | tcp (for the audit log)
    address: str = ""  # the client's network address, where the transport has one (tcp)


# () -> (content type, body): a plain GET endpoint outside AWS's API (``/metrics``).
PlainHandler: TypeAlias = "Callable[[], tuple[str, bytes]]"

# (path, query parameters, last value wins) -> (HTTP status, content type, body): pages under a
# prefix outside AWS's API (the web dashboard).
PageHandler: TypeAlias = "Callable[[str, dict[str, str]], tuple[int, str, bytes]]"

# Raises ApiError (e.g. 403) to refuse a request before anything else looks at it; else
# returns who is calling (an access key's name), which ``principal.current_principal()``
# gives the dispatcher while the request is handled.
Authenticator: TypeAlias = "Callable[[ApiRequest], str | None]"

# Receives one audit entry (a JSON object) per request that changes state (``audit.AuditLog.record``).
AuditSink: TypeAlias = "Callable[[dict[str, Any]], None]"

# Members that name what a request acts on (the audit log's ``target``), in the request or its answer.
_TARGET_MEMBERS: Final = (
    "jobId",
    "jobName",
    "jobArn",
    "jobDefinition",
    "jobDefinitionName",
    "jobDefinitionArn",
    "jobQueue",
    "jobQueueName",
    "jobQueueArn",
    "computeEnvironment",
    "computeEnvironmentName",
    "computeEnvironmentArn",
    "consumableResource",
    "consumableResourceName",
    "consumableResourceArn",
    "name",
    "arn",
    "resourceArn",
)
_READ_TARGET_PREFIXES: Final = ("Get", "Describe", "List", "Filter", "Test")


@dataclass
class ApiResponse:
    """What to send back. For a stream, ``body`` holds the first chunk (already produced, so
    errors before it became a proper error response) and ``stream`` the rest."""

    status: int
    request_id: str
    body: bytes = b""
    content_type: str = JSON_TYPE
    error_code: str | None = None
    stream: Iterator[bytes] | None = None
    headers: tuple[str, ...] = ()  # more header lines ("Name: value")
    operation: str = field(default="-", compare=False)  # for the request log


@dataclass
class _Call:
    """What ``Api.handle`` learnt about a request, for its audit entry."""

    request_id: str
    operation: str = "-"
    kind: str = "-"  # aws | target | other; "-": not looked at (refused first)
    principal: str | None = None
    authenticated: bool = False
    params: dict[str, Any] | None = None
    result: Any = None


class ApiServerError(LocalbatchError):
    """Raised when the API server cannot listen on its socket."""


class Api:
    """AWS Batch's REST API and localbatch's extensions, independent of the transport.

    ``supported``: the operations the dispatcher implements; any other operation of the model
    gets "localbatch does not support <Op>" before its body is validated. ``None`` leaves that
    to the dispatcher (``errors.unsupported_operation``).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        supported: Collection[str] | None = None,
        authenticate: Authenticator | None = None,
        routes: RouteTable | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._routes = routes if routes is not None else route_table()
        self._supported = frozenset(supported) if supported is not None else None
        self._authenticate = authenticate
        self._extensions: dict[tuple[str, str], ExtensionHandler] = {}
        self._targets: dict[str, Dispatcher] = {}
        self._plain: dict[str, PlainHandler] = {}
        self._pages: dict[str, PageHandler] = {}
        self._audit: dict[str, Any] = {}  # "sink", "reads"; shared with with_authenticator's copies
        if self._supported is not None and not self._supported <= self._routes.operations:
            unknown = ", ".join(sorted(self._supported - self._routes.operations))
            raise ValueError(f"not AWS Batch operations: {unknown}")

    def with_authenticator(self, authenticate: Authenticator) -> Api:
        """This API behind ``authenticate`` (for a TCP listener): same dispatcher, routes,
        supported operations and extension registry (extensions added to either serve both)."""
        api = Api(self._dispatcher, supported=self._supported, authenticate=authenticate, routes=self._routes)
        api._extensions = self._extensions
        api._targets = self._targets
        api._plain = self._plain
        api._pages = self._pages
        api._audit = self._audit
        return api

    def set_audit(self, sink: AuditSink, reads: Collection[str]) -> None:
        """Send an entry to ``sink`` for every request that changes state, refused or not, on
        this API and every ``with_authenticator`` copy: the AWS operations not in ``reads``,
        JSON-target operations not named Get/Describe/List/Filter..., and any other request
        whose method is not GET (extensions' POST/PUT/DELETE)."""
        self._audit["sink"] = sink
        self._audit["reads"] = frozenset(reads)

    def add_json_target(self, prefix: str, handler: Dispatcher) -> None:
        """Serve the JSON 1.1 protocol's ``POST /`` with ``X-Amz-Target: <prefix>.<Operation>``
        (CloudWatch Logs' ``Logs_20140328``) with ``handler``; errors in the same AWS shape."""
        self._targets[prefix] = handler

    def add_plain(self, path: str, handler: PlainHandler) -> None:
        """Serve ``handler`` at ``GET`` + exact ``path`` (outside AWS's API and the extensions:
        ``/metrics``), behind the same authenticator as every request."""
        if path.startswith((EXTENSION_PREFIX, "/v1/")) or "?" in path or path in self._plain:
            raise ValueError(f"not a free plain path: {path!r}")
        self._plain[path] = handler

    def add_pages(self, prefix: str, handler: PageHandler) -> None:
        """Serve ``handler`` at ``GET prefix`` and every ``GET prefix/...`` (the dashboard's
        HTML), behind the same authenticator as every request."""
        if prefix.startswith("/v1") or "?" in prefix or prefix.endswith("/") or prefix in self._pages:
            raise ValueError(f"not a free page prefix: {prefix!r}")
        self._pages[prefix] = handler

    def add_extension(self, method: str, path: str, handler: ExtensionHandler) -> None:
        """Serve ``handler`` at ``method`` + exact ``path`` (under ``/v1/localbatch/``)."""
        method = method.upper()
        if not path.startswith(EXTENSION_PREFIX) or "?" in path:
            raise ValueError(f"extension paths start with {EXTENSION_PREFIX} and have no query: {path!r}")
        if method not in _EXTENSION_METHODS:
            raise ValueError(f"extension method must be one of {sorted(_EXTENSION_METHODS)}, not {method!r}")
        if (method, path) in self._extensions:
            raise ValueError(f"{method} {path} already has a handler")
        self._extensions[(method, path)] = handler

    def invoke(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Check ``operation`` is supported and ``params`` valid for it, then dispatch.
        Raises ApiError for what is refused here and whatever the dispatcher raises."""
        if self._supported is not None and operation not in self._supported:
            raise unsupported_operation(operation)
        aws_params = params
        if operation == "RegisterJobDefinition":  # localbatch's own member is checked with the definition
            aws_params = {key: value for key, value in params.items() if key != LOCAL_MEMBER}
        problems = validate_request(operation, aws_params)
        if problems:
            raise client_error(_problems_message(operation, problems))
        return self._dispatcher.handle(operation, params)

    def handle(self, request: ApiRequest) -> ApiResponse:
        """The response to ``request``; never raises (errors become AWS error responses).
        While it is dispatched, ``principal.current_principal()`` is who the authenticator
        said is calling, or without one the request's ``peer``. A request that changes state is
        audited."""
        started = time.monotonic()
        call = _Call(str(uuid.uuid4()))
        response = self._handle(request, call)
        sink = self._audit.get("sink")
        if sink is not None:
            self._audit_entry(sink, request, call, response, started)
        return response

    def _handle(self, request: ApiRequest, call: _Call) -> ApiResponse:
        request_id = call.request_id
        try:
            principal = self._authenticate(request) if self._authenticate is not None else request.peer
            with acting_as(principal):
                call.principal = current_principal() or daemon_owner()
                call.authenticated = True
                target = request.headers.get("x-amz-target")
                if target is not None:
                    prefix, _, call.operation = target.partition(".")
                    call.kind = "target"
                    handler = self._targets.get(prefix)
                    if handler is None or request.method != "POST":
                        raise client_error(f"no service here answers X-Amz-Target {target[:100]!r}", 400)
                    call.params = _parse_body(request.body)
                    result = handler.handle(call.operation, call.params)
                    call.result = result
                    return ApiResponse(200, request_id, _encode(result), AMZ_JSON_TYPE, operation=call.operation)
                path, _, query = request.target.partition("?")
                call.kind = "other"
                plain = self._plain.get(path)
                if plain is not None:
                    call.operation = path
                    if request.method != "GET":
                        raise client_error(f"{request.method} is not allowed on {path}; use GET", 405)
                    content_type, body = plain()
                    return ApiResponse(200, request_id, body, content_type, operation=path)
                page = self._page(path)
                if page is not None:
                    call.operation = path
                    if request.method != "GET":
                        raise client_error(f"{request.method} is not allowed on {path}; use GET", 405)
                    params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
                    status, content_type, body = page(path, params)
                    return ApiResponse(status, request_id, body, content_type, operation=path, headers=_NO_STORE)
                if path.startswith(EXTENSION_PREFIX):
                    call.operation = path
                    return self._extension(request, path, query, call)
                match = self._routes.resolve(request.method, path, query)
                call.operation, call.kind = match.operation, "aws"
                call.params = _parse_body(request.body)
                call.params.update(match.params)
                result = self.invoke(call.operation, call.params)
                call.result = result
                return ApiResponse(200, request_id, _encode(result), operation=call.operation)
        except Exception as exc:  # the request boundary: every failure becomes an AWS error
            # response; to_api_error logs server faults with their traceback (logger.error, exc_info).
            return self.error_response(to_api_error(exc, request_id=request_id), request_id, call.operation)

    def audit_refused(self, request: ApiRequest, response: ApiResponse) -> None:
        """Audit a request the transport refused before ``handle`` (body too large, bad
        framing): recorded like any refused request when it would change state."""
        sink = self._audit.get("sink")
        if sink is not None:
            self._audit_entry(sink, request, _Call(response.request_id), response, time.monotonic())

    def _audit_entry(
        self, sink: AuditSink, request: ApiRequest, call: _Call, response: ApiResponse, started: float
    ) -> None:
        """Hand ``sink`` the entry for ``request`` when it changes state; never raises."""
        try:
            if call.kind == "-":  # refused before it was looked at (authentication): look now
                self._classify(request, call)
            if call.kind == "aws":
                changes = call.operation not in self._audit.get("reads", frozenset())
            elif call.kind == "target":
                changes = not call.operation.startswith(_READ_TARGET_PREFIXES)
            else:
                changes = request.method != "GET"
            if not changes:
                return
            if call.params is None:
                try:
                    call.params = _parse_body(request.body)
                except Exception:
                    call.params = {}
            entry: dict[str, Any] = {
                "principal": call.principal if call.authenticated else None,
                "transport": request.transport,
                "peer": request.address,
                "operation": call.operation if call.operation != "-" else f"{request.method} {request.target[:200]}",
                "target": _audit_target(call.params, call.result),
                "request_id": call.request_id,
                "outcome": "ok" if response.error_code is None else response.error_code,
                "status": response.status,
                "duration_ms": round((time.monotonic() - started) * 1000, 3),
            }
            if not call.authenticated:
                key_id = _signing_key_id(request.headers.get("authorization", ""))
                if key_id:
                    entry["access_key_id"] = key_id
            if response.error_code is not None:
                try:
                    entry["message"] = str(json.loads(response.body).get("message", ""))
                except (ValueError, AttributeError):
                    pass
            sink(entry)
        except Exception:  # the audit never breaks the API
            logger.exception("cannot build the audit entry of request %s", call.request_id)

    def _classify(self, request: ApiRequest, call: _Call) -> None:
        target = request.headers.get("x-amz-target")
        if target is not None:
            call.kind, call.operation = "target", target.partition(".")[2]
            return
        path, _, query = request.target.partition("?")
        call.kind = "other"
        if path in self._plain or self._page(path) is not None or path.startswith(EXTENSION_PREFIX):
            call.operation = path
            return
        try:
            match = self._routes.resolve(request.method, path, query)
        except Exception:
            return
        call.kind, call.operation = "aws", match.operation
        try:
            call.params = {**_parse_body(request.body), **match.params}
        except Exception:
            call.params = dict(match.params)

    def error_response(self, error: ApiError, request_id: str | None = None, operation: str = "-") -> ApiResponse:
        """``error`` in AWS's shape (a 401 asks for HTTP Basic, as a browser needs)."""
        body = _encode({"__type": error.code, "message": error.message})
        rid = request_id if request_id is not None else str(uuid.uuid4())
        headers = ('WWW-Authenticate: Basic realm="localbatch", charset="UTF-8"',) if error.status == 401 else ()
        return ApiResponse(error.status, rid, body, error_code=error.code, operation=operation, headers=headers)

    def _page(self, path: str) -> PageHandler | None:
        for prefix, handler in self._pages.items():
            if path == prefix or path.startswith(prefix + "/"):
                return handler
        return None

    def _extension(self, request: ApiRequest, path: str, query: str, call: _Call) -> ApiResponse:
        request_id = call.request_id
        handler = self._extensions.get((request.method, path))
        if handler is None:
            allowed = sorted(m for m, p in self._extensions if p == path)
            if allowed:
                raise client_error(f"{request.method} is not allowed on {path}; use {', '.join(allowed)}", 405)
            raise client_error(f"no localbatch extension at {path[:200]!r}", 404)
        params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
        body = _parse_body(request.body)
        call.params = {**params, **body}
        result = handler(params, body)
        if isinstance(result, dict):
            call.result = result
            return ApiResponse(200, request_id, _encode(result), operation=path)
        stream = iter(result)
        try:
            first = next(stream)  # errors raised before the first chunk get a proper response
        except StopIteration:
            return ApiResponse(200, request_id, b"", STREAM_TYPE, stream=iter(()), operation=path)
        except BaseException:
            _close(stream)
            raise
        return ApiResponse(200, request_id, first, STREAM_TYPE, stream=stream, operation=path)


class ApiServer:
    """An ``Api`` served over HTTP/1.1 on a Unix socket (mode 0600; 0660 and owned by ``group``
    when one is given), on a background thread.

    ``start()`` removes a stale socket file (one nobody listens on) and refuses to touch a live
    one or a path that is not a socket; ``shutdown()`` stops accepting, lets in-flight requests
    answer, closes idle keep-alive connections, breaks off streams at their next chunk or
    heartbeat and removes the socket file. Also a context manager.
    """

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        dispatcher: Dispatcher | Api,
        *,
        supported: Collection[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        poll_interval_s: float = 0.2,
        group: str | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        """``dispatcher``: what executes operations (an ``Api`` is built around it with
        ``supported``), or an ``Api`` to serve as it is (shared with another listener).
        ``group``: the socket's group (``[policy] socket_group``), whose members may connect."""
        self.socket_path = Path(socket_path)
        self.group = group
        if isinstance(dispatcher, Api):
            if supported is not None:
                raise ValueError("give `supported` to the Api, not to the server that serves it")
            self.api = dispatcher
        else:
            self.api = Api(dispatcher, supported=supported)
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s = idle_timeout_s
        self._poll_interval_s = poll_interval_s
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    def add_extension(self, method: str, path: str, handler: ExtensionHandler) -> None:
        """See ``Api.add_extension``; allowed before and after ``start()``."""
        self.api.add_extension(method, path, handler)

    def start(self) -> None:
        """Listen on the socket and serve on a daemon thread. Raises ApiServerError."""
        if self._server is not None:
            raise RuntimeError("the API server is already running")
        server = self._listen()
        server.idle_timeout_s = self.idle_timeout_s
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._poll_interval_s},
            name="localbatch-api",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        logger.info("API listening on %s", self.description)

    @property
    def description(self) -> str:
        """Where it listens and how (for the start line)."""
        return self.where

    @property
    def where(self) -> str:
        """What the server listens on, for messages."""
        return str(self.socket_path)

    def _listen(self) -> _HttpServer:
        """A bound, listening server (not yet serving). Raises ApiServerError."""
        path = str(self.socket_path)
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH_BYTES:
            raise ApiServerError(
                f"socket path too long ({len(os.fsencode(path))} bytes, the limit is {_MAX_SOCKET_PATH_BYTES}): {path}"
            )
        gid = None
        if self.group is not None:
            try:
                gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ApiServerError(f"policy.socket_group: this host has no group named {self.group!r}") from None
        _clear_stale_socket(path)
        server = _UnixHttpServer(path, self.api, self.max_body_bytes)
        server.shared = self.group is not None
        try:
            # umask is process-wide, but this runs once at daemon start-up; the chmod is the guarantee.
            previous = os.umask(0o177)
            try:
                server.server_bind()
            finally:
                os.umask(previous)
            if gid is not None:
                os.chown(path, -1, gid)
            os.chmod(path, 0o600 if gid is None else 0o660)
            self._inode = os.stat(path).st_ino
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise ApiServerError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
        return server

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop serving (see the class docstring); waits up to ``timeout_s`` for connections."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.closing.set()
        server.shutdown()
        thread.join()
        server.server_close()
        self._remove_socket_file()
        busy = server.close_connections(timeout_s)
        if busy:
            logger.warning("%d API connection(s) still busy after shutdown", busy)
        logger.info("API on %s stopped", self.where)

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def _remove_socket_file(self) -> None:
        try:
            if os.stat(self.socket_path).st_ino == self._inode:  # still ours, not a successor's
                os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


class TcpApiServer(ApiServer):
    """An ``Api`` served over HTTP/1.1 on a TCP address (issue 7's listener): the same server,
    minus the socket file. Whoever builds it puts the ``Api`` behind an authenticator
    (``Api.with_authenticator``): a TCP port has no file permissions to protect it.

    With ``tls`` (a server ``ssl.SSLContext``) it speaks https: each connection's handshake runs
    on that connection's own thread, bounded by ``handshake_timeout_s``, so a slow or silent
    client never holds up accepting others; a plain-HTTP request is answered, unencrypted, with
    a 400 that says to use https. ``tls_summary`` (the certificate's subject and fingerprint)
    goes into the start line."""

    def __init__(
        self,
        address: tuple[str, int],
        api: Api,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        poll_interval_s: float = 0.2,
        tls: ssl.SSLContext | None = None,
        tls_summary: str = "",
        handshake_timeout_s: float = 10.0,
    ) -> None:
        super().__init__("", api, max_body_bytes=max_body_bytes, poll_interval_s=poll_interval_s)
        self.address = address
        self.tls = tls
        self._tls_summary = tls_summary
        self._handshake_timeout_s = handshake_timeout_s

    @property
    def where(self) -> str:
        return listener_url(*self.address, secure=self.tls is not None)

    @property
    def description(self) -> str:
        if self.tls is None:
            return f"{self.where} (no TLS)"
        return f"{self.where} (TLS on{', certificate ' + self._tls_summary if self._tls_summary else ''})"

    def _listen(self) -> _HttpServer:
        server = _TcpHttpServer(self.api, self.max_body_bytes, self.tls, self._handshake_timeout_s)
        try:
            server.server_bind_to(self.address)
            server.server_activate()
        except OSError as exc:
            server.server_close()
            raise ApiServerError(f"cannot listen on {self.where}: {exc.strerror or exc}") from exc
        bound = server.server_address
        self.address = (self.address[0], int(bound[1]))  # the port the system chose for port 0
        return server

    def _remove_socket_file(self) -> None:
        pass


class _Connections:
    """The open connections of a threading HTTP server, so shutdown can end them."""

    def _track_init(self, api: Api, max_body_bytes: int) -> None:
        self.api = api
        self.max_body_bytes = max_body_bytes
        self.idle_timeout_s: float | None = None
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections[connection] = threading.current_thread()
            if self.closing.is_set():
                _shutdown_read(connection)

    def transport_of(self, client_address: Any) -> tuple[str, str]:
        """(transport, peer) for the audit log."""
        if isinstance(client_address, tuple) and len(client_address) >= 2:
            host, port = client_address[0], client_address[1]
            return "tcp", f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        return "socket", ""

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def close_connections(self, timeout_s: float) -> int:
        """Close the read side of every connection (idle ones end at once, busy ones after their
        response) and wait for their threads; the number still running at the deadline."""
        with self._lock:
            connections = dict(self._connections)
            for connection in connections:
                _shutdown_read(connection)
        # A request may stop the server it runs on (``daemon stop``): never wait for oneself.
        others = [thread for thread in connections.values() if thread is not threading.current_thread()]
        deadline = time.monotonic() + timeout_s
        for thread in others:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in others)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client left before its answer
            logger.debug("API client went away", exc_info=True)
            return
        logger.exception("unexpected error on an API connection")


class _UnixHttpServer(_Connections, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False  # shutdown() joins connections itself, with a deadline
    request_queue_size = LISTEN_BACKLOG
    # Whether users besides the daemon's may connect ([policy] socket_group). Then a peer the
    # kernel cannot name is UNKNOWN_PEER, never taken for the daemon's own user (an admin).
    shared = False

    def __init__(self, path: str, api: Api, max_body_bytes: int) -> None:
        socketserver.UnixStreamServer.__init__(self, path, _RequestHandler, bind_and_activate=False)
        self._track_init(api, max_body_bytes)


class _TcpHttpServer(_Connections, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True

    def __init__(self, api: Api, max_body_bytes: int, tls: ssl.SSLContext | None, handshake_timeout_s: float) -> None:
        socketserver.TCPServer.__init__(self, ("127.0.0.1", 0), _RequestHandler, bind_and_activate=False)
        self._track_init(api, max_body_bytes)
        self._tls = tls
        self._handshake_timeout_s = handshake_timeout_s

    def server_bind_to(self, address: tuple[str, int]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
            self.socket.close()
            self.socket = socket.socket(self.address_family, self.socket_type)
        self.server_address = address
        self.server_bind()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """On the connection's own thread: the TLS handshake (when there is TLS), then HTTP."""
        if self._tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self._handshake_timeout_s)
        secure = self._tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            try:
                secure.do_handshake()
            except ssl.SSLError as exc:
                logger.debug("TLS handshake with %s failed: %s", client_address, exc)
                if exc.reason == "HTTP_REQUEST":
                    _answer_plain_http(secure, self.api)
                return
            except OSError as exc:  # timed out, or the client went away
                logger.debug("TLS handshake with %s failed: %s", client_address, exc)
                return
            secure.settimeout(None)
            super().finish_request(secure, client_address)
        finally:
            secure.close()


_HttpServer: TypeAlias = "_UnixHttpServer | _TcpHttpServer"


class _RequestHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 framing around ``server.api``; one instance per connection."""

    protocol_version = "HTTP/1.1"
    server: _UnixHttpServer | _TcpHttpServer

    def setup(self) -> None:
        super().setup()
        self.peer = peer_user(self.connection)
        if self.peer is None and isinstance(self.server, _UnixHttpServer) and self.server.shared:
            self.peer = UNKNOWN_PEER
        self.connection.settimeout(self.server.idle_timeout_s)  # a read or write this long: closed
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        started = time.perf_counter()
        body = self._read_body()
        if body is None:
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        transport, address = self.server.transport_of(self.client_address)
        response = self.server.api.handle(
            ApiRequest(self.command, self.path, headers, body, self.peer, transport=transport, address=address)
        )
        if self.server.closing.is_set():
            self.close_connection = True
        if response.stream is None:
            self._send(response)
        else:
            self._send_stream(response)
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = (time.perf_counter() - started) * 1000
            logger.debug(
                "%s %s %s -> %d in %.2f ms",
                response.request_id,
                self.command,
                response.operation,
                response.status,
                elapsed_ms,
            )

    do_GET = do_DELETE = do_PUT = do_PATCH = do_POST

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (from ``BaseHTTPRequestHandler``) answered in AWS's error shape."""
        self.close_connection = True
        status = int(code)
        text = message or _PHRASES.get(status, "bad request")
        # http.server says 501 for a method nothing here takes and 505 for HTTP/2: the client's
        # fault, answered as such (a 5xx is a server error an AWS client would retry).
        if status == HTTPStatus.NOT_IMPLEMENTED:
            status, text = 405, f"method {str(self.command)[:40]!r} is not allowed; use GET, POST, PUT or DELETE"
        elif status >= 500:
            status = 400
        response = self.server.api.error_response(client_error(text, status))
        logger.debug("%s %s -> %d (%s)", response.request_id, self.command or "-", status, text)
        self._send(response)
        if self.command and isinstance(self.path, str):  # the request line was read: say what was refused
            found = getattr(self, "headers", None)
            headers = {name.lower(): value for name, value in found.items()} if found is not None else {}
            transport, address = self.server.transport_of(self.client_address)
            peer = getattr(self, "peer", None)  # the socket's OS user, when setup() got that far
            refused = ApiRequest(self.command, self.path, headers, b"", peer, transport=transport, address=address)
            self.server.api.audit_refused(refused, response)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: " + format, *args)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a request whose body cannot be read."""
        if "Transfer-Encoding" in self.headers:
            self.send_error(411, "send the body with Content-Length, not Transfer-Encoding")
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) > 1:
            self.send_error(400, "more than one Content-Length")
            return None
        if not lengths:
            return b""
        length_header = lengths[0].strip()
        if not (length_header.isascii() and length_header.isdigit()):  # int() would take "+2", "1_0", " ٣"
            self.send_error(400, f"invalid Content-Length {length_header[:40]!r}: expected a number of bytes")
            return None
        limit = self.server.max_body_bytes
        if len(length_header) > 18 or int(length_header) > limit:  # int() refuses over 4300 digits
            size = length_header if len(length_header) <= 40 else f"{length_header[:40]}..."
            self.send_error(413, f"request body of {size} bytes is over the limit of {limit} bytes{_mib(limit)}")
            return None
        length = int(length_header)
        return self.rfile.read(length) if length else b""

    def _head(self, response: ApiResponse, *extra: str) -> list[str]:
        lines = [
            f"HTTP/1.1 {response.status} {_PHRASES.get(response.status, 'Unknown')}",
            f"Content-Type: {response.content_type}",
            f"x-amzn-RequestId: {response.request_id}",
            *response.headers,
            *extra,
        ]
        if response.error_code is not None:
            lines.append(f"x-amzn-ErrorType: {response.error_code}")
        if self.close_connection:
            lines.append("Connection: close")
        return lines

    def _send(self, response: ApiResponse) -> None:
        head = self._head(response, f"Content-Length: {len(response.body)}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)

    def _send_stream(self, response: ApiResponse) -> None:
        stream = response.stream
        assert stream is not None
        chunked = self.request_version != "HTTP/1.0"
        if not chunked:  # an HTTP/1.0 client reads to the end of the connection
            self.close_connection = True
        head = self._head(response, *(("Transfer-Encoding: chunked",) if chunked else ()))
        completed = False
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if response.body:
                self._write_chunk(response.body, chunked)
            for chunk in stream:
                if self.server.closing.is_set():
                    break
                if chunk:
                    self._write_chunk(chunk, chunked)
                elif self._peer_gone():
                    break
            else:
                completed = True
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
        except OSError as exc:  # the client went away (EPIPE, ECONNRESET) or stopped reading
            logger.debug("stream %s ended by the client: %s", response.request_id, exc)
            completed = False
        except Exception as exc:  # the request boundary of a stream: the status is already sent,
            # so the only signal left is to break the stream off; to_api_error logs the fault.
            to_api_error(exc, request_id=response.request_id)
            completed = False
        finally:
            _close(stream)
            if not completed:
                self.close_connection = True

    def _write_chunk(self, chunk: bytes, chunked: bool) -> None:
        if chunked:
            self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        else:
            self.wfile.write(chunk)

    def _peer_gone(self) -> bool:
        """Whether the client closed its end (checked without blocking, on heartbeats)."""
        connection: socket.socket = self.connection
        try:
            poller = select.poll()
            poller.register(connection, select.POLLIN)
            if not poller.poll(0):
                return False
            # the raw socket's recv (an SSLSocket refuses flags): any byte, TLS or not, means alive
            return socket.socket.recv(connection, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True


def _audit_target(params: Mapping[str, Any] | None, result: Any) -> dict[str, str]:
    """The members that name what was acted on, from the request then its answer (strings only,
    each cut at 256 characters): never the rest of the body."""
    found: dict[str, str] = {}
    for source in (params or {}, result if isinstance(result, Mapping) else {}):
        for member in _TARGET_MEMBERS:
            value = source.get(member)
            if isinstance(value, str) and member not in found:
                found[member] = value[:256]
    return found


def _signing_key_id(authorization: str) -> str | None:
    """The access key id of a SigV4 ``Authorization`` header (not a secret: CloudTrail logs it too)."""
    _, found, rest = authorization.partition("Credential=")
    key_id = rest.partition("/")[0] if found else ""
    return key_id[:128] if key_id.isalnum() else None


def _mib(size: int) -> str:
    return f" ({size // (1024 * 1024)} MiB)" if size % (1024 * 1024) == 0 and size else ""


def _parse_body(body: bytes) -> dict[str, Any]:
    if not body or body.isspace():
        return {}
    try:
        value = json.loads(body)
    except RecursionError:
        raise client_error("request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise client_error(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise client_error(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def _encode(result: Mapping[str, Any] | None) -> bytes:
    return _ENCODER.encode(result if result is not None else {}).encode("ascii")


def _problems_message(operation: str, problems: list[Problem]) -> str:
    if len(problems) == 1:
        return f"invalid {operation} request: {problems[0]}"
    lines = "\n".join(f"  {problem}" for problem in problems)
    return f"invalid {operation} request ({len(problems)} problems):\n{lines}"


def _close(stream: Iterator[bytes]) -> None:
    close = getattr(stream, "close", None)
    if callable(close):
        close()


def _answer_plain_http(connection: socket.socket, api: Api) -> None:
    """A plain-HTTP request to the TLS listener: one unencrypted 400 saying to use https."""
    response = api.error_response(client_error("this listener speaks https (TLS): use an https:// endpoint URL"))
    head = (
        f"HTTP/1.1 400 Bad Request\r\nContent-Type: {response.content_type}\r\n"
        f"x-amzn-RequestId: {response.request_id}\r\nx-amzn-ErrorType: {response.error_code}\r\n"
        f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        socket.socket.sendall(connection, head.encode("latin-1") + response.body)  # under the TLS layer
        socket.socket.shutdown(connection, socket.SHUT_WR)
        # read what is left of the request (bounded), else closing with unread data resets the
        # connection and the client may lose the answer
        connection.settimeout(1.0)
        for _ in range(64):
            if not socket.socket.recv(connection, 65536):
                break
    except OSError:
        pass


def _shutdown_read(connection: socket.socket) -> None:
    try:
        # socket.socket's own shutdown: an SSLSocket's would drop its TLS state and let the
        # response that is still being written go out unencrypted.
        socket.socket.shutdown(connection, socket.SHUT_RD)
    except OSError:  # already closed by the peer or by its handler
        pass


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse a live socket or anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ApiServerError(f"{path} exists and is not a socket; not removing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        logger.info("removing stale socket %s", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError as exc:
        raise ApiServerError(f"cannot tell whether {path} is in use: {exc.strerror or exc}") from exc
    finally:
        probe.close()
    raise ApiServerError(f"another server is listening on {path}")
