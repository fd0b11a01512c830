"""AWS Batch's route table, built from botocore's service model: HTTP requests <-> operations.

Every operation in the model declares ``http.method`` and ``http.requestUri``; most are
``POST /v1/<operation lowercased>``, the tagging operations share ``/v1/tags/{resourceArn}``
(POST TagResource, GET ListTagsForResource, DELETE UntagResource with repeated ``tagKeys``
query parameters). Input members the model places in the URI or the query string become
request parameters here, so the server validates and dispatches one flat parameter dict and
the client serializes one.

Matching is on the RAW (still percent-encoded) path: an ARN sent as one segment with ``/``
encoded as ``%2F`` stays one segment, and is unquoted only after matching. Literal paths are
a dict lookup; the few templated ones are precompiled regular expressions.

``RouteTable.resolve`` raises ``ApiError``: ClientException 404 for a path that is no
operation, 405 for a known path with the wrong method. Whether an operation is *implemented*
is the dispatcher's business, not the table's: every model operation is routable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from localbatch.api.errors import client_error
from localbatch.awsbatch.model import operation_names, service_model

__all__ = ["PreparedRequest", "QueryMember", "Route", "RouteMatch", "RouteTable", "route_table"]

_LABEL = re.compile(r"\{([^{}+]+)(\+?)\}")
_MAX_PATH_IN_MESSAGE = 200


@dataclass(frozen=True)
class QueryMember:
    """An input member the model sends in the query string."""

    key: str  # name on the wire
    member: str  # name in the request parameters
    type_name: str  # botocore's shape type: "list", "string", "integer", "boolean", ...


@dataclass(frozen=True)
class UriLabel:
    """A ``{label}`` (or greedy ``{label+}``) in a path template, and the member it fills."""

    label: str
    member: str
    greedy: bool = False


@dataclass(frozen=True)
class Route:
    """One operation's place on the wire."""

    operation: str
    method: str
    path: str  # template: "/v1/submitjob", "/v1/tags/{resourceArn}"
    labels: tuple[UriLabel, ...] = ()
    query: tuple[QueryMember, ...] = ()
    has_body: bool = True  # the input has members that travel in the JSON body


@dataclass(frozen=True)
class RouteMatch:
    """A resolved request: the operation and the parameters taken from its URI and query."""

    operation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class PreparedRequest:
    """What a client sends for an operation: method, raw target (path and query) and the JSON
    body members, ``None`` for a bodiless request (ListTagsForResource, UntagResource)."""

    method: str
    target: str
    body: dict[str, Any] | None


class RouteTable:
    """Routes by method and raw path, and back from operation to request."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._by_operation: dict[str, Route] = {}
        self._literal: dict[str, dict[str, Route]] = {}
        templated: dict[str, dict[str, Route]] = {}
        for route in routes:
            if route.operation in self._by_operation:
                raise ValueError(f"two routes for {route.operation}")
            self._by_operation[route.operation] = route
            methods = (templated if route.labels else self._literal).setdefault(route.path, {})
            if route.method in methods:
                other = methods[route.method].operation
                raise ValueError(f"{route.method} {route.path} routes to both {other} and {route.operation}")
            methods[route.method] = route
        self._templated = [(_compile(path), methods) for path, methods in templated.items()]
        self.operations = frozenset(self._by_operation)

    @classmethod
    def from_model(cls) -> RouteTable:
        """The table for every operation in botocore's AWS Batch model."""
        model = service_model()
        return cls(_route_from_model(model, name) for name in sorted(operation_names()))

    def route(self, operation: str) -> Route:
        """The route of ``operation``; ValueError when the model has no such operation."""
        try:
            return self._by_operation[operation]
        except KeyError:
            raise ValueError(f"AWS Batch has no operation {operation!r}") from None

    def resolve(self, method: str, path: str, query: str = "") -> RouteMatch:
        """The operation at ``method`` + raw ``path``, with the parameters its URI labels and
        ``query`` (raw, without ``?``) carry. Raises ApiError (404, 405, or 400 for a query
        value of the wrong type)."""
        methods = self._literal.get(path)
        values: tuple[str, ...] = ()
        if methods is None:
            for pattern, candidates in self._templated:
                found = pattern.fullmatch(path)
                if found is not None:
                    methods, values = candidates, found.groups()
                    break
            else:
                shown = path if len(path) <= _MAX_PATH_IN_MESSAGE else path[:_MAX_PATH_IN_MESSAGE] + "..."
                raise client_error(f"no AWS Batch operation at {shown!r}", 404)
        route = methods.get(method)
        if route is None:
            allowed = ", ".join(f"{r.method} ({r.operation})" for r in methods.values())
            template = next(iter(methods.values())).path
            raise client_error(f"{method} is not allowed on {template}; use {allowed}", 405)
        params: dict[str, Any] = {
            label.member: unquote(value) for label, value in zip(route.labels, values, strict=True)
        }
        if route.query and query:
            given = parse_qs(query, keep_blank_values=True)
            for member in route.query:
                if member.key in given:
                    params[member.member] = _from_query(member, given[member.key])
        return RouteMatch(route.operation, params)

    def prepare(self, operation: str, params: Mapping[str, Any]) -> PreparedRequest:
        """The request for ``operation`` with ``params`` (botocore's parameter names): URI
        labels percent-encoded into one segment each, query members as (repeated) query
        parameters, the rest as the JSON body. ValueError when a URI member is missing."""
        route = self.route(operation)
        body = dict(params)
        path = route.path
        for label in route.labels:
            if label.member not in body:
                raise ValueError(f"{operation} needs {label.member!r}: it is part of the path")
            value = quote(query_text(body.pop(label.member)), safe="/~" if label.greedy else "")
            path = path.replace("{" + label.label + ("+}" if label.greedy else "}"), value)
        pairs: list[tuple[str, str]] = []
        for member in route.query:
            if member.member in body:
                value = body.pop(member.member)
                items = value if isinstance(value, (list, tuple)) else [value]
                pairs.extend((member.key, query_text(item)) for item in items)
        target = f"{path}?{urlencode(pairs, quote_via=quote)}" if pairs else path
        return PreparedRequest(route.method, target, body if body or route.has_body else None)


@lru_cache(maxsize=1)
def route_table() -> RouteTable:
    """The table for botocore's AWS Batch model, built once per process."""
    return RouteTable.from_model()


def _route_from_model(model: Any, name: str) -> Route:
    operation = model.operation_model(name)
    # A static query in requestUri ("/path?x-id=Op", an S3 habit) does not route; Batch has none.
    path = str(operation.http["requestUri"]).partition("?")[0]
    members = operation.input_shape.members if operation.input_shape is not None else {}
    uri_members: dict[str, str] = {}
    query: list[QueryMember] = []
    has_body = False
    for member, shape in members.items():
        location = shape.serialization.get("location")
        wire = str(shape.serialization.get("name", member))
        if location == "uri":
            uri_members[wire] = str(member)
        elif location == "querystring":
            query.append(QueryMember(wire, str(member), str(shape.type_name)))
        elif location is None:
            has_body = True
        # "header"/"headers" members carry no routing information (Batch has none).
    labels = tuple(
        UriLabel(m.group(1), uri_members.get(m.group(1), m.group(1)), bool(m.group(2))) for m in _LABEL.finditer(path)
    )
    return Route(name, str(operation.http["method"]), path, labels, tuple(query), has_body)


def _compile(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    end = 0
    for label in _LABEL.finditer(template):
        parts.append(re.escape(template[end : label.start()]))
        parts.append("(.+)" if label.group(2) else "([^/]+)")
        end = label.end()
    parts.append(re.escape(template[end:]))
    return re.compile("".join(parts))


def _from_query(member: QueryMember, values: list[str]) -> Any:
    if member.type_name == "list":
        return values
    value = values[-1]
    if member.type_name in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            raise client_error(f"{member.member}: expected an integer, got {value!r}") from None
    if member.type_name == "boolean":
        if value not in ("true", "false"):
            raise client_error(f"{member.member}: expected true or false, got {value!r}")
        return value == "true"
    return value


def query_text(value: Any) -> str:
    """A value as it goes in a URI or query string: JSON's spelling for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
