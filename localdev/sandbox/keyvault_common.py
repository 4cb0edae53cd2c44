"""What the Key Vault stand-in's secrets and keys APIs share: names, bodies, tags, paging.

Why: Key Vault checks object names, tags and attributes the same way for secrets and keys, and
pages every list the same way; one copy keeps the two APIs of the stand-in from drifting apart.
"""

from __future__ import annotations

import json
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from localdev.sandbox.wire import json_response

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
RETENTION_DAYS = 90
PAGE_SIZE = 25
RECOVERY_LEVEL = "Recoverable+Purgeable"


class BadParameter(Exception):
    """Answered as Key Vault's `400 BadParameter`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise BadParameter(f"The request URI contains an invalid name: {name}")


def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(cache=True) or b"{}")
    except ValueError as error:
        raise BadParameter("The request body is not valid JSON.") from error
    if not isinstance(body, dict):
        raise BadParameter("The request body must be a JSON object.")
    return body


def tags_of(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise BadParameter(f"tags must be an object with at most {MAX_TAGS} entries.")
    for key, value in tags.items():
        if not isinstance(value, str) or len(key) > MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH:
            raise BadParameter(
                f"Tag names and values are strings of at most {MAX_TAG_LENGTH} characters."
            )
    return dict(tags)


def attributes_of(body: dict[str, Any]) -> dict[str, Any]:
    """`enabled`, `nbf`, `exp` of a body's `attributes`, checked; absent ones left out."""
    attributes = body.get("attributes")
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise BadParameter("attributes must be an object.")
    result: dict[str, Any] = {}
    if attributes.get("enabled") is not None:
        if not isinstance(attributes["enabled"], bool):
            raise BadParameter("attributes.enabled must be a boolean.")
        result["enabled"] = attributes["enabled"]
    for key in ("nbf", "exp"):
        if attributes.get(key) is not None:
            if not isinstance(attributes[key], int) or isinstance(attributes[key], bool):
                raise BadParameter(f"attributes.{key} must be a Unix time in seconds.")
            result[key] = attributes[key]
    return result


def page(request: Request, url: str, path: str, items: list[dict[str, Any]]) -> Response:
    """One page of `items` (`maxresults` ≤ 25) with the `nextLink` Key Vault's SDKs follow."""
    try:
        size = min(int(request.args.get("maxresults", PAGE_SIZE)), PAGE_SIZE)
        start = int(request.args.get("$skiptoken", "0"))
    except ValueError as error:
        raise BadParameter("maxresults and $skiptoken must be integers.") from error
    if size < 1 or start < 0:
        raise BadParameter("maxresults must be at least 1.")
    next_link = None
    if start + size < len(items):
        api_version = request.args.get("api-version", "")
        next_link = (
            f"{url}/{path}?api-version={api_version}&$skiptoken={start + size}&maxresults={size}"
        )
    return json_response({"value": items[start : start + size], "nextLink": next_link})
