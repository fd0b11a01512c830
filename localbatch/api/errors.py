"""API errors: AWS Batch's two error shapes, and the one place errors become HTTP statuses.

AWS Batch models exactly two errors, ``ClientException`` (HTTP 400: bad input, unknown
resources, forbidden state changes) and ``ServerException`` (HTTP 500: a fault of the
service; botocore retries it). ``ApiError`` carries one of them (or, for requests that reach
no operation at all, a ClientException with a 404/405/413 status) and ``to_api_error`` maps any
exception raised while handling a request to one:

- an ``ApiError`` passes through unchanged;
- the ``LocalbatchError``s that describe the caller's input (``InvalidRequest``, ``NotFound``,
  ``UsageError``, ``JobDefinitionError``, ``InvalidTransition``, ``ImageError``) become ClientException 400
  with the error's own message;
- everything else (store, engine and host failures, and bugs) becomes ServerException 500
  with a message that names the request id but no internals, and is logged here with its
  traceback.
"""

from __future__ import annotations

import logging
from typing import Final

from localbatch.errors import (
    ImageError,
    InvalidRequest,
    InvalidTransition,
    JobDefinitionError,
    LocalbatchError,
    NotFound,
    RuntimeUnavailable,
    StateStoreError,
    StateStoreFull,
    UsageError,
)

__all__ = [
    "CLIENT_ERRORS",
    "CLIENT_EXCEPTION",
    "SERVER_EXCEPTION",
    "ApiError",
    "client_error",
    "server_error",
    "to_api_error",
    "unsupported_operation",
]

logger = logging.getLogger(__name__)

CLIENT_EXCEPTION: Final = "ClientException"
SERVER_EXCEPTION: Final = "ServerException"

# Errors that describe what the caller asked for: their messages are meant for the caller.
CLIENT_ERRORS: Final = (
    InvalidRequest,
    NotFound,
    UsageError,
    JobDefinitionError,
    InvalidTransition,
    ImageError,
)
# Server faults whose kind (not their details) helps the caller; checked in order.
_SERVER_HINTS: Final[tuple[tuple[type[LocalbatchError], str], ...]] = (
    (RuntimeUnavailable, "the container engine does not answer"),
    (StateStoreFull, "the state store's disk is full: free space under LOCALBATCH_HOME"),
    (StateStoreError, "the state store failed"),
)


class ApiError(LocalbatchError):
    """An error response: AWS error ``code`` (``ClientException``, ``ServerException``),
    HTTP ``status`` and the ``message`` the caller sees as is."""

    def __init__(self, code: str, status: int, message: str) -> None:
        self.code = code
        self.status = status
        self.message = message
        super().__init__(message)

    def __repr__(self) -> str:
        return f"ApiError({self.code!r}, {self.status}, {self.message!r})"


def client_error(message: str, status: int = 400) -> ApiError:
    """A ClientException; ``status`` other than 400 only for requests that reach no operation."""
    return ApiError(CLIENT_EXCEPTION, status, message)


def server_error(message: str) -> ApiError:
    """A ServerException (HTTP 500). botocore retries these: only for genuine faults."""
    return ApiError(SERVER_EXCEPTION, 500, message)


def unsupported_operation(operation: str) -> ApiError:
    """The error for an AWS Batch operation localbatch does not implement."""
    return client_error(f"localbatch does not support {operation}")


def to_api_error(exc: Exception, *, request_id: str = "-") -> ApiError:
    """The API error for anything raised while handling request ``request_id``.

    Server faults are logged here, with their traceback; their message names the request id
    (to find that log entry) and, for a few kinds, what failed, but never the exception's text.
    """
    if isinstance(exc, ApiError):
        if exc.status >= 500:
            logger.warning("request %s: %s %s", request_id, exc.code, exc.message)
        return exc
    if isinstance(exc, CLIENT_ERRORS):
        return client_error(str(exc) or type(exc).__name__)
    logger.error("request %s failed", request_id, exc_info=exc)
    what = next((hint for kind, hint in _SERVER_HINTS if isinstance(exc, kind)), "internal error")
    return server_error(f"{what} (request id {request_id}); the daemon's log has the details")
