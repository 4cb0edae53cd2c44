"""The Key Vault stand-in, on its own port as a vault has its own host.

Why: the app keeps customers' private keys in Key Vault, as secrets (`azure-keyvault-secrets`) or
as keys that never leave the vault (`azure-keyvault-keys`). This answers the secrets REST API, and
routes the keys API to `keyvault_keys`, the way the SDKs expect (bearer challenge on the first,
anonymous request; soft delete; paging) so the key store's Key Vault backends can be tested
offline, and it records every request (never a secret value, never a token) for tests to assert on.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from localdev.sandbox.keyvault_common import (
    BadParameter,
    VaultObject,
    attributes_json,
    attributes_of,
    check_name,
    deleted_json,
    json_body,
    page,
    tags_of,
)
from localdev.sandbox.keyvault_keys import KeyVaultKeys
from localdev.sandbox.traffic import Traffic
from localdev.sandbox.wire import json_response, keyvault_error

MAX_VALUE_BYTES = 25 * 1024
MAX_CONTENT_TYPE = 255
CHALLENGE = (
    'Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47",'
    ' resource="https://vault.azure.net"'
)
_HIDDEN_HEADERS = frozenset({"authorization", "cookie"})
_KEY_COLLECTIONS = frozenset({"keys", "deletedkeys"})


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


class Secret(VaultObject[SecretVersion]):
    """A secret: its versions, and its deletion date once deleted."""


def _redacted_body(request: Request) -> Any:
    try:
        data = request.get_data(cache=True)
    except HTTPException:
        return f"<{request.content_length} bytes, over the size limit>"
    if not data:
        return None
    try:
        body = json.loads(data)
    except ValueError:
        return f"<{len(data)} bytes, not JSON>"
    # A secret's value is secret; a key request's `value` is a digest or signature, kept as sent.
    if isinstance(body, dict) and "value" in body and not _is_key_request(request):
        body["value"] = "<redacted>"
    return body


def _is_key_request(request: Request) -> bool:
    return request.path.split("/")[1] in _KEY_COLLECTIONS


class KeyVault:
    """A WSGI app holding one vault's secrets in memory, with soft delete and a request record."""

    def __init__(self, traffic: Traffic, url: str) -> None:
        self.url = url
        self._traffic = traffic
        self._lock = threading.RLock()
        self._secrets: dict[str, Secret] = {}
        self._requests: list[dict[str, Any]] = []
        self.keys = KeyVaultKeys(url, self._lock)

    # --- what tests and the admin API read ------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request received: method, path, query, headers (no Authorization), body."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def snapshot(self) -> dict[str, Any]:
        """What the vault holds, without values: `secrets`, `deletedSecrets`, `requests`."""
        with self._lock:
            live = [s for s in self._secrets.values() if s.deleted_date is None]
            deleted = [s for s in self._secrets.values() if s.deleted_date is not None]
            return {
                "secrets": [self._summary(s) for s in sorted(live, key=lambda s: s.name.lower())],
                "deletedSecrets": [
                    self._summary(s) for s in sorted(deleted, key=lambda s: s.name.lower())
                ],
                "requests": copy.deepcopy(self._requests),
            }

    def keys_snapshot(self) -> dict[str, Any]:
        """`keys`, `deletedKeys` (no key material), `premium`, and the keys API's `requests`."""
        with self._lock:
            return {
                **self.keys.snapshot(),
                "requests": [
                    copy.deepcopy(r)
                    for r in self._requests
                    if r["path"].split("/")[1] in _KEY_COLLECTIONS
                ],
            }

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._requests.clear()
            self.keys.reset()

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- WSGI -----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = 1024 * 1024
        response = self._traffic.handle(request, "keyvault", self._handle)
        self._record(request, response)
        return response(environ, start_response)

    def _record(self, request: Request, response: Response) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(),
            "apiVersion": request.args.get("api-version"),
            "headers": {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in _HIDDEN_HEADERS
            },
            "body": _redacted_body(request),
            "authorized": scheme.lower() == "bearer" and bool(token.strip()),
            "status": response.status_code,
        }
        with self._lock:
            self._requests.append(entry)

    def _handle(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return keyvault_error(
                401,
                "Unauthorized",
                "AKV10000: Request is missing a Bearer or PoP token.",
                headers={"WWW-Authenticate": CHALLENGE},
            )
        if not request.args.get("api-version"):
            return keyvault_error(400, "BadParameter", "The 'api-version' parameter is missing.")
        parts = request.path.split("/")[1:]
        if parts[0] in _KEY_COLLECTIONS:
            return self.keys.handle(request, parts)
        try:
            with self._lock:
                return self._route(request, parts)
        except BadParameter as error:
            return keyvault_error(400, "BadParameter", error.message)

    def _route(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        collection, rest = parts[0], parts[1:]
        if rest and rest[-1] == "":
            rest = rest[:-1]  # `/secrets/{name}/` is the latest version, as `/secrets/{name}`
        if collection == "secrets":
            if not rest and method == "GET":
                return self._list(request, deleted=False)
            if rest:
                check_name(rest[0])
            if len(rest) == 1 and method == "PUT":
                return self._set(request, rest[0])
            if len(rest) == 1 and method == "DELETE":
                return self._delete(rest[0])
            if len(rest) == 2 and rest[1].lower() == "versions" and method == "GET":
                return self._list_versions(request, rest[0])
            if len(rest) in (1, 2) and method in ("GET", "PATCH"):
                version = rest[1] if len(rest) == 2 else ""
                if method == "GET":
                    return self._get(rest[0], version)
                return self._update(request, rest[0], version)
        elif collection == "deletedsecrets":
            if not rest and method == "GET":
                return self._list(request, deleted=True)
            if rest:
                check_name(rest[0])
            if len(rest) == 1 and method == "GET":
                return self._get_deleted(rest[0])
            if len(rest) == 1 and method == "DELETE":
                return self._purge(rest[0])
            if len(rest) == 2 and rest[1] == "recover" and method == "POST":
                return self._recover(rest[0])
        return keyvault_error(404, "NotFound", f"No operation {method} {request.path}.")

    # --- operations -----------------------------------------------------------------------------
    def _set(self, request: Request, name: str) -> Response:
        body = json_body(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise BadParameter("The 'value' of the secret is required and must be a string.")
        if len(value.encode()) > MAX_VALUE_BYTES:
            raise BadParameter(f"The secret value exceeds the maximum of {MAX_VALUE_BYTES} bytes.")
        existing = self._secrets.get(name.lower())
        if existing is not None and existing.deleted_date is not None:
            return keyvault_error(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the secret can only be recovered or purged.",
                inner_code="ObjectIsDeletedButRecoverable",
            )
        attributes = attributes_of(body)
        now = int(time.time())
        version = SecretVersion(
            version=uuid.uuid4().hex,
            value=value,
            content_type=self._content_type_of(body),
            tags=tags_of(body),
            enabled=attributes.get("enabled", True),
            not_before=attributes.get("nbf"),
            expires=attributes.get("exp"),
            created=now,
            updated=now,
        )
        secret = existing or self._secrets.setdefault(name.lower(), Secret(name=name))
        secret.versions.append(version)
        return json_response(self._bundle(secret, version, with_value=True))

    def _get(self, name: str, version_id: str) -> Response:
        secret = self._live(name)
        version = secret.version(version_id) if secret else None
        if secret is None or version is None:
            return self._not_found(name)
        if not version.enabled:
            return keyvault_error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner_code="SecretDisabled",
            )
        return json_response(self._bundle(secret, version, with_value=True))

    def _update(self, request: Request, name: str, version_id: str) -> Response:
        secret = self._live(name)
        version = secret.version(version_id) if secret else None
        if secret is None or version is None:
            return self._not_found(name)
        body = json_body(request)
        attributes = attributes_of(body)
        if "contentType" in body:
            version.content_type = self._content_type_of(body)
        if "tags" in body:
            version.tags = tags_of(body)
        version.enabled = attributes.get("enabled", version.enabled)
        version.not_before = attributes.get("nbf", version.not_before)
        version.expires = attributes.get("exp", version.expires)
        version.updated = int(time.time())
        return json_response(self._bundle(secret, version, with_value=False))

    def _delete(self, name: str) -> Response:
        secret = self._live(name)
        if secret is None:
            return self._not_found(name)
        secret.deleted_date = int(time.time())
        return json_response(self._deleted_bundle(secret))

    def _get_deleted(self, name: str) -> Response:
        secret = self._secrets.get(name.lower())
        if secret is None or secret.deleted_date is None:
            return self._not_found(name, deleted=True)
        return json_response(self._deleted_bundle(secret))

    def _purge(self, name: str) -> Response:
        secret = self._secrets.get(name.lower())
        if secret is None or secret.deleted_date is None:
            return self._not_found(name, deleted=True)
        del self._secrets[name.lower()]
        return Response(status=204)

    def _recover(self, name: str) -> Response:
        secret = self._secrets.get(name.lower())
        if secret is None or secret.deleted_date is None:
            return self._not_found(name, deleted=True)
        secret.deleted_date = None
        return json_response(self._bundle(secret, secret.latest, with_value=False))

    def _list(self, request: Request, *, deleted: bool) -> Response:
        secrets = sorted(
            (s for s in self._secrets.values() if (s.deleted_date is not None) == deleted),
            key=lambda s: s.name.lower(),
        )
        items = [
            self._deleted_bundle(s, item=True)
            if deleted
            else self._item(s, s.latest, versioned=False)
            for s in secrets
        ]
        return page(request, self.url, "deletedsecrets" if deleted else "secrets", items)

    def _list_versions(self, request: Request, name: str) -> Response:
        secret = self._live(name)
        if secret is None:
            return self._not_found(name)
        items = [self._item(secret, v, versioned=True) for v in secret.versions]
        return page(request, self.url, f"secrets/{secret.name}/versions", items)

    # --- shapes and checks ----------------------------------------------------------------------
    def _live(self, name: str) -> Secret | None:
        secret = self._secrets.get(name.lower())
        return secret if secret is not None and secret.deleted_date is None else None

    def _not_found(self, name: str, *, deleted: bool = False) -> Response:
        if deleted:
            return keyvault_error(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return keyvault_error(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {name} was not found in this key vault. If you recently "
            "deleted this secret you may be able to recover it using the correct recovery "
            "command. For help resolving this issue, please see "
            "https://go.microsoft.com/fwlink/?linkid=2125182",
        )

    @staticmethod
    def _content_type_of(body: dict[str, Any]) -> str | None:
        content_type = body.get("contentType")
        if content_type is not None and (
            not isinstance(content_type, str) or len(content_type) > MAX_CONTENT_TYPE
        ):
            raise BadParameter(f"contentType must be a string of at most {MAX_CONTENT_TYPE} chars.")
        return content_type

    def _item(self, secret: Secret, version: SecretVersion, *, versioned: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": f"{self.url}/secrets/{secret.name}"
            + (f"/{version.version}" if versioned else ""),
            "attributes": attributes_json(version),
        }
        if version.content_type is not None:
            item["contentType"] = version.content_type
        if version.tags is not None:
            item["tags"] = dict(version.tags)
        return item

    def _bundle(
        self, secret: Secret, version: SecretVersion, *, with_value: bool
    ) -> dict[str, Any]:
        bundle = self._item(secret, version, versioned=True)
        if with_value:
            bundle = {"value": version.value, **bundle}
        return bundle

    def _deleted_bundle(self, secret: Secret, *, item: bool = False) -> dict[str, Any]:
        bundle = self._item(secret, secret.latest, versioned=not item)
        bundle.update(deleted_json(self.url, "deletedsecrets", secret))
        return bundle

    def _summary(self, secret: Secret) -> dict[str, Any]:
        latest = secret.latest
        summary: dict[str, Any] = {
            "name": secret.name,
            "id": f"{self.url}/secrets/{secret.name}/{latest.version}",
            "versions": len(secret.versions),
            "contentType": latest.content_type,
            "tags": dict(latest.tags) if latest.tags is not None else None,
            "attributes": attributes_json(latest),
        }
        if secret.deleted_date is not None:
            summary["deletedDate"] = secret.deleted_date
        return summary
