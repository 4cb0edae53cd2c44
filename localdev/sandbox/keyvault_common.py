"""What the Key Vault stand-in's secrets and keys APIs share: names, bodies, tags, paging, and
the versioned, soft-deletable object with its attributes.

Why: Key Vault checks object names, tags and attributes the same way for secrets and keys, and
pages every list the same way; one copy keeps the two APIs of the stand-in from drifting apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from werkzeug.wrappers import Request, Response

from localdev.sandbox.wire import json_response

NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
RETENTION_DAYS = 90
PAGE_SIZE = 25
RECOVERY_LEVEL = "Recoverable+Purgeable"


class ObjectVersion(Protocol):
    """What a secret's or a key's version has in common."""

    version: str
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


V = TypeVar("V", bound=ObjectVersion)


@dataclass
class VaultObject(Generic[V]):
    """A secret or a key: its versions and, once deleted (soft delete), when."""

    name: str
    versions: list[V] = field(default_factory=list)  # oldest first
    deleted_date: int | None = None

    @property
    def latest(self) -> V:
        return self.versions[-1]

    def version(self, version: str) -> V | None:
        """The version with this id; the latest one for an empty id."""
        if not version:
            return self.latest
        return next((v for v in self.versions if v.version == version.lower()), None)


def attributes_json(version: ObjectVersion) -> dict[str, Any]:
    """A version's `attributes` as Key Vault answers them (`nbf`, `exp` only when set)."""
    attributes: dict[str, Any] = {
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": RETENTION_DAYS,
    }
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    return attributes


def deleted_json(url: str, collection: str, item: VaultObject[Any]) -> dict[str, Any]:
    """The fields a deleted object's bundle adds: `recoveryId`, `deletedDate`, purge date."""
    deleted_date = item.deleted_date or 0
    return {
        "recoveryId": f"{url}/{collection}/{item.name}",
        "deletedDate": deleted_date,
        "scheduledPurgeDate": deleted_date + RETENTION_DAYS * 86400,
    }


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
