"""The WSGI app on `base_url`: routes each request to Entra, Graph, the portal issuer or admin.

Why: Entra, Graph and the portal issuer share one host in the sandbox (the app points both
`ENTRA_AUTHORITY_HOST` and `GRAPH_ENDPOINT` at it), so one router decides which service a request
is for, and so which target its latency, faults and request record count under.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from localdev.sandbox.admin import Admin
from localdev.sandbox.admin_federation import FederationAdmin
from localdev.sandbox.entra import Entra
from localdev.sandbox.graph import Graph
from localdev.sandbox.portal_issuer import PortalIssuer
from localdev.sandbox.traffic import Traffic
from localdev.sandbox.wire import json_response

MAX_BODY_BYTES = 1024 * 1024

# endpoint -> (target, methods); the handler is looked up in SandboxApp._handlers.
_ROUTES: dict[str, tuple[str, str, frozenset[str] | None]] = {
    "instance_discovery": ("/common/discovery/instance", "metadata", frozenset({"GET"})),
    "metadata": ("/<tenant>/v2.0/.well-known/openid-configuration", "metadata", frozenset({"GET"})),
    "entra_jwks": ("/<tenant>/discovery/v2.0/keys", "metadata", frozenset({"GET"})),
    "token": ("/<tenant>/oauth2/v2.0/token", "token", None),  # Entra answers other methods
    "graph": ("/v1.0/<path:path>", "graph", None),  # Graph answers other methods
    "portal_jwks": ("/portal/<tenant_id>/discovery/v2.0/keys", "portal", frozenset({"GET"})),
    "portal_metadata": (
        "/portal/<tenant_id>/v2.0/.well-known/openid-configuration",
        "portal",
        frozenset({"GET"}),
    ),
}


class SandboxApp:
    """Routes requests on the main port; admin routes bypass latency, faults and the record."""

    def __init__(
        self,
        traffic: Traffic,
        entra: Entra,
        graph: Graph,
        portal: PortalIssuer,
        admin: Admin,
        federation_admin: FederationAdmin | None = None,
    ) -> None:
        self._traffic = traffic
        self._admin = admin
        self._federation_admin = federation_admin
        self._map = Map(
            [Rule(path, endpoint=name) for name, (path, _, _) in _ROUTES.items()],
            merge_slashes=False,
        )
        self._handlers: dict[str, Callable[..., Response]] = {
            "instance_discovery": entra.instance_discovery,
            "metadata": entra.metadata,
            "entra_jwks": entra.jwks,
            "token": entra.token,
            "graph": graph.handle,
            "portal_jwks": portal.jwks,
            "portal_metadata": portal.metadata,
        }

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        return self.dispatch(request)(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path == "/admin" or request.path.startswith("/admin/"):
            federation = self._federation_admin
            answered = federation.handle(request) if federation else None
            return answered if answered is not None else self._admin.handle(request)
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return self._traffic.handle(request, "other", _not_found)
        _, target, methods = _ROUTES[str(endpoint)]
        if methods is not None and request.method not in methods:
            return self._traffic.handle(request, target, _method_not_allowed)
        handler = partial(self._handlers[str(endpoint)], **args)
        return self._traffic.handle(request, target, handler)


def _not_found(request: Request) -> Response:
    return json_response(
        {"error": {"code": "NotFound", "message": f"The sandbox has no route {request.path}."}},
        404,
    )


def _method_not_allowed(request: Request) -> Response:
    return json_response(
        {"error": {"code": "MethodNotAllowed", "message": f"{request.method} is not allowed."}},
        405,
    )
