"""Input errors in plain words: pydantic's validation errors as ``Problem``s with key paths.

Shared by everything that parses untrusted input with pydantic (job definition TOML, the
config file). Users never see pydantic's wording or its URLs: a wrong type reads
``expected an integer, got a string 'ten'``, an unknown key lists the allowed ones and
suggests the closest.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from localbatch import safe_text
from localbatch.errors import Problem

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_TO_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f]')


def quote(value: str) -> str:
    """A string as TOML writes it (double quotes, control characters escaped), for messages."""
    return '"' + _TO_ESCAPE.sub(lambda m: _SHORT_ESCAPES.get(m[0], f"\\u{ord(m[0]):04X}"), value) + '"'


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "an array",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    # Lax parsing (config values from LOCALBATCH_* variables arrive as strings).
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "bool_parsing": "true or false",
}


def format_path(loc: Sequence[str | int]) -> str:
    """A key path as messages show it: ``retry.evaluate_on_exit[0].action``, with keys that
    are not bare TOML keys quoted (``environment."MY VAR"``)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            key = part if BARE_KEY.fullmatch(part) else quote(part)
            path = f"{path}.{key}" if path else key
    return path


def describe(value: object, *, json: bool = False) -> str:
    """A value as a user would name it: ``a string 'ten'``, ``an integer 5``, ``a table``
    (``an object`` with ``json``, for AWS's JSON documents)."""
    if isinstance(value, bool):
        return f"a boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"an integer {value}"
    if isinstance(value, float):
        return f"a number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string {shown!r}"
    if isinstance(value, Mapping):
        return "an object" if json else "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    if value is None:
        return "nothing (null)"
    return f"a {type(value).__name__}"


def camel_to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    message = f"unknown key '{safe_text.visible(key)}'; allowed: {', '.join(allowed)}"
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    snake = camel_to_snake(key)
    if snake != key and snake in allowed:  # an AWS camelCase name
        close = [snake]
    return message + (f"; did you mean '{close[0]}'?" if close else "")


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model of the table at ``loc`` under ``root`` (list indexes skipped), or None."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _find_model(model.model_fields[part].annotation)
    return model


def _find_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _message(
    error: ErrorDetails, loc: Sequence[str | int], root: type[BaseModel], missing_hints: Mapping[str, str]
) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "localbatch":
        return str(ctx["detail"])
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        allowed = list(model.model_fields) if model is not None else []
        return unknown_key_message(str(loc[-1]), allowed)
    if kind == "missing":
        return missing_hints.get(format_path(loc), "required key is missing")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {describe(error['input'])}"
    if kind == "finite_number":
        return f"must be a finite number, got {describe(error['input'])}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s)"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": ("at least", "ge"),
            "greater_than": ("greater than", "gt"),
            "less_than_equal": ("at most", "le"),
            "less_than": ("less than", "lt"),
        }[kind]
        bound = ctx.get(words[1])
        shown = f"{bound:g}" if isinstance(bound, float) else bound
        return f"must be {words[0]} {shown}, got {error['input']}"
    if kind == "string_pattern_mismatch":
        return f"{describe(error['input'])} does not match {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"{describe(error['input'])} is not allowed; allowed: {ctx.get('expected', '')}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]  # pydantic's own sentence, without its URL


def problems_from(
    error: ValidationError, root: type[BaseModel], missing_hints: Mapping[str, str] | None = None
) -> list[Problem]:
    """Every error pydantic collected, as Problems with key paths, in document order.

    ``root`` is the model that was validated (to list the keys it allows); ``missing_hints``
    says, per key path, what a missing required key is for.
    """
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        loc = [part for part in detail["loc"] if part != "[key]"]
        problems.append(Problem(format_path(loc), _message(detail, loc, root, missing_hints or {})))
    return problems
