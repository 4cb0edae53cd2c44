"""Graph's application object as the sandbox answers it: the JSON, `$select`, who may read it.

Why: the verification's `app_audience` and `app_credentials` checks read
`/applications(appId='…')?$select=id,signInAudience,keyCredentials,passwordCredentials`; what Graph
returns there (an object id distinct from the appId and the service principal's id, the SHA-1
thumbprint as base64 bytes, secrets only by their hint) is what the app must parse.
"""

from __future__ import annotations

import re
from typing import Any

from werkzeug.wrappers import Request, Response

from localdev.sandbox.state import Application, Tenant
from localdev.sandbox.wire import graph_error

APPLICATION_READ = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
# `applications(appId='{appId}')` or `applications/{objectId}`, optionally with an action.
APPLICATION_PATH = re.compile(
    r"^applications(?:\(appId='(?P<app_id>[^']*)'\)|/(?P<object_id>[^/()]+))"
    r"(?:/(?P<action>[^/]+))?$",
    re.IGNORECASE,
)
# The properties the stand-in models, in Graph's order; `$select` picks among them.
PROPERTIES: tuple[str, ...] = (
    "id",
    "deletedDateTime",
    "appId",
    "createdDateTime",
    "displayName",
    "publisherDomain",
    "signInAudience",
    "keyCredentials",
    "passwordCredentials",
)
_BY_LOWER = {name.lower(): name for name in PROPERTIES}


def find_application(tenant: Tenant, match: re.Match[str]) -> Application | None:
    """The application an `APPLICATION_PATH` match names, by appId or by object id."""
    if match.group("app_id") is not None:
        return tenant.application(match.group("app_id"))
    return tenant.application_by_object_id(match.group("object_id"))


def not_found(request: Request, match: re.Match[str]) -> Response:
    identifier = match.group("app_id") or match.group("object_id")
    return graph_error(
        request,
        404,
        "Request_ResourceNotFound",
        f"Resource '{identifier}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def selected(request: Request) -> list[str] | Response:
    """The `$select`ed properties (Graph's spelling, request order), all when there is none."""
    raw = request.args.get("$select")
    if raw is None:
        return list(PROPERTIES)
    names: list[str] = []
    for part in raw.split(","):
        name = _BY_LOWER.get(part.strip().lower())
        if name is None:
            return graph_error(
                request,
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named "
                f"'{part.strip()}' on type 'microsoft.graph.application'.",
            )
        if name not in names:
            names.append(name)
    return names


def application_json(
    app: Application, tenant: Tenant, names: list[str], base_url: str, *, selected_: bool
) -> dict[str, Any]:
    """The application object with only `names` (plus `@odata.context`), as Graph answers it.

    Graph returns a certificate's `key` (base64 DER) only when `keyCredentials` was `$select`ed
    on a single object; otherwise `key` is null.
    """
    full = {
        "id": app.object_id,
        "deletedDateTime": None,
        "appId": app.app_id,
        "createdDateTime": app.created_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "displayName": app.display_name,
        "publisherDomain": tenant.initial_domain,
        "signInAudience": app.sign_in_audience,
        "keyCredentials": [c.graph_json(with_key=selected_) for c in app.key_credentials()],
        "passwordCredentials": [p.graph_json() for p in app.password_credentials],
    }
    fragment = f"applications({','.join(names)})/$entity" if selected_ else "applications/$entity"
    return {
        "@odata.context": f"{base_url}/v1.0/$metadata#{fragment}",
        **{name: full[name] for name in names},
    }
