"""JSON as API.md's input rules read it: strict UTF-8, bounded depth and numbers, no duplicates.

`json.loads` alone accepts `NaN`, keeps the last of two equal keys, raises `ValueError` on an
integer of over 4,300 digits and `RecursionError` on deep nesting. Here each of these is a
`JsonRefused` with a reason fit for a 400, and nothing the parser does can recurse deeply: the
depth is counted by a flat scan before parsing.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # each array or object opens one level
MAX_SAFE_INTEGER = 2**53  # JavaScript's Number.MAX_SAFE_INTEGER + 1: what every client can hold
_MAX_INTEGER_DIGITS = len(str(MAX_SAFE_INTEGER))
_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonRefused(ValueError):
    """The body is not JSON this API accepts; the message says why, without echoing values."""


def loads(raw: bytes) -> Any:
    """The JSON value of `raw`, or JsonRefused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonRefused("the body is not valid UTF-8") from None
    _check_depth(text)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_constant,
            parse_int=_integer,
            parse_float=_float,
        )
    except json.JSONDecodeError as exc:
        raise JsonRefused(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    _check_strings(value)
    return value


def _check_depth(text: str) -> None:
    """Count `[`/`{` outside strings: no recursion, so no input can exhaust the stack here."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonRefused(f"the body is nested deeper than {MAX_DEPTH} levels")
        elif ch in "]}":
            depth -= 1


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise JsonRefused(f"the key {json.dumps(key[:64])} appears twice in one object")
        seen.add(key)
    return dict(pairs)


def _constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _integer(literal: str) -> int:
    # Length first: int() of a huge literal is slow and over 4,300 digits raises ValueError.
    if len(literal.lstrip("-")) > _MAX_INTEGER_DIGITS or abs(int(literal)) > MAX_SAFE_INTEGER:
        raise JsonRefused("a number in the body is outside ±2^53")
    return int(literal)


def _float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value) or abs(value) > MAX_SAFE_INTEGER:
        raise JsonRefused("a number in the body is outside ±2^53")
    return value


def _check_strings(value: Any) -> None:
    """A lone surrogate (`"\\ud800"`) is valid JSON but no UTF-8 string: refuse it. Iterative."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise JsonRefused("the body holds a lone surrogate: not valid UTF-8 text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
