"""Query parameters of paged lists: `top`, the opaque `after` continuation, and `nextLink`.

A continuation is the store's position (the sort key of the last item shown) in URL-safe base64
JSON. It is opaque to callers, not secret: a forged one names at most another position in the
caller's own list (every page query is bounded to the caller's partition), and one the store
could never have handed out is a 400 naming `after`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode

from shared.adapters.accountstore.base import BadPosition
from shared.core.errors import invalid

DEFAULT_TOP = 100
MAX_TOP = 1000
_TOP = re.compile(r"[0-9]{1,4}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
NOT_A_CONTINUATION = "is not a continuation of this list: follow nextLink as it is given"
T = TypeVar("T")


def top(params: Mapping[str, str]) -> int:
    raw = params.get("top")
    if raw is None:
        return DEFAULT_TOP
    value = int(raw) if _TOP.fullmatch(raw) else 0
    if not 1 <= value <= MAX_TOP:
        raise invalid("top", f"must be an integer from 1 to {MAX_TOP}")
    return value


def encode(position: str) -> str:
    raw = json.dumps({"p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str | None) -> str | None:
    """The store position in an `after` token (None without one); raises a 400 naming it."""
    if token is None:
        return None
    if not _TOKEN.fullmatch(token):
        raise invalid("after", NOT_A_CONTINUATION)
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise invalid("after", NOT_A_CONTINUATION) from None
    if not isinstance(body, dict) or set(body) != {"p"} or not isinstance(body["p"], str):
        raise invalid("after", NOT_A_CONTINUATION)
    position: str = body["p"]
    return position


def at_position(read: Callable[[], T]) -> T:
    """Run a store read that takes a decoded position: BadPosition becomes the 400."""
    try:
        return read()
    except BadPosition:
        raise invalid("after", NOT_A_CONTINUATION) from None


def _next_link(path: str, position: str | None, **params: str | int | None) -> str | None:
    if position is None:
        return None
    query = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode({**query, 'after': encode(position)})}"


def page_body(
    resources: list[dict[str, Any]], path: str, position: str | None, **params: str | int | None
) -> dict[str, Any]:
    """A page as the API answers it: `value`, and `nextLink` unless it is the last page."""
    body: dict[str, Any] = {"value": resources}
    link = _next_link(path, position, **params)
    if link:
        body["nextLink"] = link
    return body
