"""Admin routes for federated credentials: the customer's side and the tests' view of Entra's.

Why: a customer adds a federated credential in the Entra admin center (or with `az ad app
federated-credential create --parameters <file>.json`, the body the app offers for download);
tests also change one (a subject in another case, an issuer with a trailing slash) to see Entra's
refusals, and control the issuer-key cache Entra keeps (its TTL, a flush) and read back the last
federated assertion the token endpoint accepted. Kept beside admin.py, in that API's style.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from localdev.sandbox.admin import AdminError, _json_body, _only, _typed
from localdev.sandbox.federated_credentials import (
    CredentialRefused,
    FederatedCredential,
    changed_credential,
    new_credential,
)
from localdev.sandbox.federation import Federation
from localdev.sandbox.state import Application, SandboxState
from localdev.sandbox.wire import json_response

_CREDENTIALS = "/admin/tenants/<tid>/applications/<app_id>/federated-credentials"
_ROUTES = [
    (_CREDENTIALS, "list_credentials", ["GET"]),
    (_CREDENTIALS, "add_credential", ["POST"]),
    (f"{_CREDENTIALS}/<credential>", "get_credential", ["GET"]),
    (f"{_CREDENTIALS}/<credential>", "update_credential", ["PATCH"]),
    (f"{_CREDENTIALS}/<credential>", "delete_credential", ["DELETE"]),
    ("/admin/federation", "get_federation", ["GET"]),
    ("/admin/federation/key-cache", "set_key_cache", ["PUT"]),
    ("/admin/federation/key-cache", "flush_key_cache", ["DELETE"]),
    ("/admin/federation/last-accepted", "last_accepted", ["GET"]),
]
MAX_TTL_SECONDS = 7 * 86400


class FederationAdmin:
    """Dispatches the federated-credential admin routes; `handle` is None for any other path."""

    def __init__(self, state: SandboxState, federation: Federation) -> None:
        self._state = state
        self._federation = federation
        self._map = Map(
            [Rule(path, endpoint=name, methods=methods) for path, name, methods in _ROUTES]
        )

    def handle(self, request: Request) -> Response | None:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return None  # not one of these routes: admin.py answers it
        except HTTPException as error:
            return json_response({"error": error.description}, error.code or 500)
        handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
        try:
            with self._state.lock:
                return handler(request, **args)
        except AdminError as error:
            return json_response({"error": error.message}, error.status)

    # --- credentials on an app registration -----------------------------------------------------
    def _application(self, tid: str, app_id: str) -> Application:
        tenant = self._state.find_tenant(tid)
        if tenant is None:
            raise AdminError(404, f"no tenant {tid!r}")
        app = tenant.application(app_id)
        if app is None:
            raise AdminError(404, f"no application {app_id!r} in tenant {tenant.tenant_id}")
        return app

    @staticmethod
    def _credential(app: Application, credential: str) -> FederatedCredential:
        """By id, or by name in any case (names are unique per application in any case)."""
        found = next(
            (
                c
                for c in app.federated_credentials
                if c.id == credential.lower() or c.name.lower() == credential.lower()
            ),
            None,
        )
        if found is None:
            raise AdminError(404, f"no federated credential {credential!r}")
        return found

    def _list_credentials(self, request: Request, tid: str, app_id: str) -> Response:
        app = self._application(tid, app_id)
        return json_response({"value": [c.to_json() for c in app.federated_credentials]})

    def _add_credential(self, request: Request, tid: str, app_id: str) -> Response:
        app = self._application(tid, app_id)
        try:
            credential = new_credential(_json_body(request), app.federated_credentials)
        except CredentialRefused as error:
            raise AdminError(400, str(error)) from error
        app.federated_credentials.append(credential)
        return json_response(credential.to_json(), 201)

    def _get_credential(self, request: Request, tid: str, app_id: str, credential: str) -> Response:
        app = self._application(tid, app_id)
        return json_response(self._credential(app, credential).to_json())

    def _update_credential(
        self, request: Request, tid: str, app_id: str, credential: str
    ) -> Response:
        app = self._application(tid, app_id)
        current = self._credential(app, credential)
        try:
            updated = changed_credential(current, _json_body(request), app.federated_credentials)
        except CredentialRefused as error:
            raise AdminError(400, str(error)) from error
        index = app.federated_credentials.index(current)
        app.federated_credentials[index] = updated
        return json_response(updated.to_json())

    def _delete_credential(
        self, request: Request, tid: str, app_id: str, credential: str
    ) -> Response:
        app = self._application(tid, app_id)
        app.federated_credentials.remove(self._credential(app, credential))
        return Response(status=204)

    # --- Entra's view of the issuers ------------------------------------------------------------
    def _get_federation(self, request: Request) -> Response:
        cache = self._federation.keys
        last = self._federation.last_accepted()
        return json_response(
            {
                "keyCacheTtlSeconds": cache.ttl_seconds,
                "issuers": cache.snapshot(),
                "fetches": cache.fetches,
                "lastAccepted": last.to_json() if last else None,
            }
        )

    def _set_key_cache(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, {"ttlSeconds"})
        ttl = _typed(body, "ttlSeconds", int)
        if ttl is None or not 0 <= ttl <= MAX_TTL_SECONDS:
            raise AdminError(400, f"ttlSeconds must be between 0 and {MAX_TTL_SECONDS}")
        self._federation.keys.ttl_seconds = ttl
        return json_response({"ttlSeconds": ttl})

    def _flush_key_cache(self, request: Request) -> Response:
        self._federation.keys.flush(request.args.get("issuer") or None)
        return Response(status=204)

    def _last_accepted(self, request: Request) -> Response:
        last = self._federation.last_accepted()
        if last is None:
            raise AdminError(404, "no federated assertion has been accepted since the last reset")
        return json_response(last.to_json())
