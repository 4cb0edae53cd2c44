"""Graph's `federatedIdentityCredentials` of an application: list (GET) and create (POST).

Why: the verification's `app_credentials` check reads
`/applications(appId='…')/federatedIdentityCredentials` in its `$batch` to tell whether the
customer added this account's credential (FACTS §12). Reading it needs what reading the
application object needs (graph_application.py); creating one needs an application write
permission: unlike `addKey`, an application cannot add a federated credential to itself.
`Application.ReadWrite.OwnedBy` is not modelled (the sandbox has no owners), so it never suffices.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from localdev.sandbox.federated_credentials import CredentialRefused, new_credential
from localdev.sandbox.state import Application
from localdev.sandbox.wire import (
    GRAPH_CONTENT_TYPE,
    graph_error,
    graph_headers,
    graph_method_not_allowed,
    graph_response,
    json_response,
)

APPLICATION_WRITE = frozenset({"Application.ReadWrite.All", "Directory.ReadWrite.All"})
ACTION = "federatedidentitycredentials"
_DENIED = "Insufficient privileges to complete the operation."


class GraphFederated:
    """Answers `/applications/{id}/federatedIdentityCredentials` once the caller may see the app."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url

    def _context(self, app: Application, suffix: str = "") -> str:
        return (
            f"{self._base_url}/v1.0/$metadata#applications('{app.object_id}')"
            f"/federatedIdentityCredentials{suffix}"
        )

    def handle(
        self, request: Request, app: Application, *, may_read: bool, may_write: bool
    ) -> Response:
        if request.method == "GET":
            if not may_read:
                return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
            body = {
                "@odata.context": self._context(app),
                "value": [c.to_json() for c in app.federated_credentials],
            }
            return graph_response(request, body)
        if request.method == "POST":
            if not may_write:
                return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
            return self._create(request, app)
        return graph_method_not_allowed(request)

    def _create(self, request: Request, app: Application) -> Response:
        try:
            body: Any = json.loads(request.get_data() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return graph_error(request, 400, "BadRequest", "Empty or invalid JSON request body.")
        # Graph's own annotations in a body copied from a GET are not fields of the credential.
        fields = {k: v for k, v in body.items() if not k.startswith("@odata.") and k != "id"}
        try:
            credential = new_credential(fields, app.federated_credentials)
        except CredentialRefused as error:
            return graph_error(request, 400, "Request_BadRequest", str(error))
        app.federated_credentials.append(credential)
        headers = graph_headers(request)
        headers["Location"] = (
            f"{self._base_url}/v1.0/applications/{app.object_id}/federatedIdentityCredentials/"
            f"{credential.id}"
        )
        answer = {"@odata.context": self._context(app, "/$entity"), **credential.to_json()}
        return json_response(answer, 201, headers=headers, content_type=GRAPH_CONTENT_TYPE)
