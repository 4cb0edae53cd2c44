"""The Microsoft Graph stand-in: the reads and writes the app makes with its app-only token.

Why: the verification report's `directory_read`, `access_reviews_read` and `directory_role` checks
depend on how Graph authorizes an app-only caller (application permissions in `roles`, directory
roles of the service principal) and on its error codes, including the licence error of a tenant
without Entra ID P2. This module reproduces those decisions for sandbox tenants; `$batch`
(graph_batch.py), the application object (graph_application.py) and `addKey`/`removeKey`
(self_rotation.py) build on it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jwt
from werkzeug.wrappers import Request, Response

from localdev.sandbox.clouds import GRAPH_RESOURCES
from localdev.sandbox.directory_roles import DIRECTORY_READING_ROLES, role_name
from localdev.sandbox.graph_application import (
    APPLICATION_PATH,
    APPLICATION_READ,
    application_json,
    find_application,
    not_found,
    selected,
)
from localdev.sandbox.graph_batch import GraphBatch
from localdev.sandbox.graph_federated import ACTION as FEDERATED_CREDENTIALS
from localdev.sandbox.graph_federated import APPLICATION_WRITE, GraphFederated
from localdev.sandbox.self_rotation import SelfRotation
from localdev.sandbox.signing import SigningKey
from localdev.sandbox.state import SandboxState, Tenant
from localdev.sandbox.wire import graph_error, graph_method_not_allowed, graph_response

ORGANIZATION_READ = frozenset(
    {
        "Organization.Read.All",
        "Organization.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
ACCESS_REVIEW_READ = frozenset({"AccessReview.Read.All", "AccessReview.ReadWrite.All"})
SERVICE_PRINCIPAL_READ = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
_MEMBER_OF = re.compile(
    r"^servicePrincipals\(appId='([^']*)'\)/memberOf(?:/microsoft\.graph\.directoryRole)?$",
    re.IGNORECASE,
)
_DENIED = "Insufficient privileges to complete the operation."
# Graph answers directory-object collections such as memberOf in pages of 100 by default, with an
# opaque `$skiptoken` in `@odata.nextLink`; clients that read one page miss the rest.
MEMBER_OF_PAGE_SIZE = 100
_WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",'
    ' client_id="00000003-0000-0000-c000-000000000000"'
)


class _Caller:
    """Who an accepted access token speaks for."""

    def __init__(self, claims: dict[str, Any], tenant: Tenant) -> None:
        self.tenant = tenant
        roles = claims.get("roles")
        self.roles = frozenset(roles) if isinstance(roles, list) else frozenset()
        self.app_id = str(claims.get("appid") or claims.get("azp") or "")
        self.app_only = claims.get("idtyp") == "app"
        app = tenant.application(self.app_id)
        # Graph evaluates directory roles from the directory, not only from the token's `wids`.
        self.directory_roles = (
            frozenset(app.directory_roles) if app and app.has_service_principal else frozenset()
        )

    def may(self, permissions: frozenset[str], roles: frozenset[str] = frozenset()) -> bool:
        return bool(self.roles & permissions or self.directory_roles & roles)


class Graph:
    """Answers `/v1.0/…` for the tenants in the sandbox state."""

    def __init__(self, state: SandboxState, signing_key: SigningKey, base_url: str) -> None:
        self._state = state
        self._key = signing_key
        self._base_url = base_url
        self._batch = GraphBatch(state, self._answer, self._refusal)
        self._rotation = SelfRotation(base_url)
        self._federated = GraphFederated(base_url)

    def handle(self, request: Request, path: str) -> Response:
        """Any `/v1.0/{path}` request."""
        if path.lower() == "$batch":  # holds the lock per sub-request, never while it sleeps
            return self._batch.handle(request)
        return self._answer(request, path)

    def _refusal(self, request: Request) -> Response | None:
        """The 401 for a request whose bearer token Graph would not accept, else None."""
        with self._state.lock:
            caller = self._authenticate(request)
        return caller if isinstance(caller, Response) else None

    def _answer(self, request: Request, path: str) -> Response:
        """One request (standalone or from a batch) other than `$batch`."""
        with self._state.lock:
            caller = self._authenticate(request)
            if isinstance(caller, Response):
                return caller
            application = APPLICATION_PATH.match(path)
            if application:
                return self._application(request, caller, application)
            if request.method != "GET":
                return graph_method_not_allowed(request)
            if path.lower() == "organization":
                return self._organization(request, caller)
            if path.lower() == "identitygovernance/accessreviews/definitions":
                return self._access_review_definitions(request, caller)
            member_of = _MEMBER_OF.match(path)
            if member_of:
                return self._member_of(request, caller, member_of.group(1), path)
            segment = path.split("/")[0]
            return graph_error(
                request, 400, "BadRequest", f"Resource not found for the segment '{segment}'."
            )

    def _authenticate(self, request: Request) -> _Caller | Response:
        def invalid(message: str) -> Response:
            return graph_error(
                request,
                401,
                "InvalidAuthenticationToken",
                message,
                headers={"WWW-Authenticate": _WWW_AUTHENTICATE},
            )

        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return invalid("Access token is empty.")
        try:
            claims = self._key.verify(
                token.strip(),
                audience=sorted(GRAPH_RESOURCES),
                options={"require": ["exp", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            return invalid("Lifetime validation failed, the token is expired.")
        except jwt.InvalidAudienceError:
            return invalid("Access token validation failure. Invalid audience.")
        except jwt.InvalidTokenError:
            return invalid("Access token validation failure.")
        tenant = self._state.find_tenant(str(claims["tid"]))
        if tenant is None:
            return invalid("Access token validation failure. The tenant does not exist.")
        return _Caller(claims, tenant)

    def _context(self, fragment: str) -> str:
        return f"{self._base_url}/v1.0/$metadata#{fragment}"

    def _organization(self, request: Request, caller: _Caller) -> Response:
        if not caller.may(ORGANIZATION_READ, DIRECTORY_READING_ROLES):
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        tenant = caller.tenant
        domains = [
            {
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": index == 0,
                "isInitial": name == tenant.initial_domain,
                "name": name,
                "type": "Managed",
            }
            for index, name in enumerate(tenant.domains)
        ]
        organization = {
            "id": tenant.tenant_id,
            "deletedDateTime": None,
            "createdDateTime": tenant.created_at.isoformat(timespec="seconds").replace(
                "+00:00", "Z"
            ),
            "displayName": tenant.display_name,
            "tenantType": "AAD",
            "countryLetterCode": "US",
            "verifiedDomains": domains,
        }
        return graph_response(
            request, {"@odata.context": self._context("organization"), "value": [organization]}
        )

    def _access_review_definitions(self, request: Request, caller: _Caller) -> Response:
        if not caller.may(ACCESS_REVIEW_READ):
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        tenant = caller.tenant
        if not tenant.licensed:
            if tenant.license_error_style == "message":
                return graph_error(
                    request,
                    403,
                    "Forbidden",
                    "The tenant does not have a valid Azure AD Premium P2 license, which access "
                    "reviews require (Microsoft Entra ID P2 or Microsoft Entra ID Governance).",
                )
            return graph_error(
                request,
                403,
                "AadPremiumLicenseRequired",
                "This feature requires an Azure AD Premium P2 license (Microsoft Entra ID P2 or "
                "Microsoft Entra ID Governance).",
            )
        try:
            top = int(request.args.get("$top", "100"))
            skip = int(request.args.get("$skip", "0"))
        except ValueError:
            top = skip = -1
        if top < 1 or skip < 0:
            return graph_error(request, 400, "BadRequest", "Invalid value for $top or $skip.")
        count = tenant.access_review_definitions
        definitions = [
            self._definition(tenant, index) for index in range(skip, min(count, skip + top))
        ]
        body: dict[str, Any] = {
            "@odata.context": self._context("identityGovernance/accessReviews/definitions"),
            "value": definitions,
        }
        if skip + top < count:
            body["@odata.nextLink"] = (
                f"{self._base_url}/v1.0/identityGovernance/accessReviews/definitions"
                f"?$top={top}&$skip={skip + top}"
            )
        return graph_response(request, body)

    @staticmethod
    def _definition(tenant: Tenant, index: int) -> dict[str, Any]:
        created = tenant.created_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        return {
            "id": str(uuid.uuid5(uuid.UUID(tenant.tenant_id), f"access-review-{index}")),
            "displayName": f"Quarterly guest access review {index + 1}",
            "status": "InProgress",
            "createdDateTime": created,
            "lastModifiedDateTime": created,
            "descriptionForAdmins": "Review guest access to groups.",
            "descriptionForReviewers": "Please confirm who still needs access.",
            "scope": {
                "@odata.type": "#microsoft.graph.accessReviewQueryScope",
                "query": "/groups",
                "queryType": "MicrosoftGraph",
            },
        }

    def _application(self, request: Request, caller: _Caller, match: re.Match[str]) -> Response:
        tenant = caller.tenant
        action = (match.group("action") or "").lower()
        if action in ("addkey", "removekey"):
            if request.method != "POST":
                return graph_method_not_allowed(request)
            app = find_application(tenant, match)
            if app is None:
                return not_found(request, match)
            if not SelfRotation.may_change(caller.app_id, caller.app_only, caller.roles, app):
                return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
            if action == "addkey":
                return self._rotation.add_key(request, tenant, app)
            return self._rotation.remove_key(request, tenant, app)
        if action == FEDERATED_CREDENTIALS:
            return self._federated_credentials(request, caller, match)
        if action:
            return graph_error(
                request, 400, "BadRequest", f"Resource not found for the segment '{action}'."
            )
        if request.method != "GET":
            return graph_method_not_allowed(request)
        if not tenant.application_readable or not caller.may(
            APPLICATION_READ, DIRECTORY_READING_ROLES
        ):
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        app = find_application(tenant, match)
        if app is None:
            return not_found(request, match)
        names = selected(request)
        if isinstance(names, Response):
            return names
        body = application_json(
            app, tenant, names, self._base_url, selected_="$select" in request.args
        )
        return graph_response(request, body)

    def _federated_credentials(
        self, request: Request, caller: _Caller, match: re.Match[str]
    ) -> Response:
        tenant = caller.tenant
        # Read as the application object is read; written only with a write permission.
        may_read = tenant.application_readable and caller.may(
            APPLICATION_READ, DIRECTORY_READING_ROLES
        )
        may_write = bool(caller.roles & APPLICATION_WRITE)
        if not (may_read or may_write):
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        app = find_application(tenant, match)
        if app is None:
            return not_found(request, match)
        return self._federated.handle(request, app, may_read=may_read, may_write=may_write)

    def _member_of(self, request: Request, caller: _Caller, app_id: str, path: str) -> Response:
        if not caller.may(SERVICE_PRINCIPAL_READ, DIRECTORY_READING_ROLES):
            return graph_error(request, 403, "Authorization_RequestDenied", _DENIED)
        tenant = caller.tenant
        app = tenant.application(app_id)
        if app is None or not app.has_service_principal:
            return graph_error(
                request,
                404,
                "Request_ResourceNotFound",
                f"Resource '{app_id}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        try:
            top = int(request.args.get("$top", str(MEMBER_OF_PAGE_SIZE)))
            skip = int(request.args.get("$skiptoken", "0"), 16)
        except ValueError:
            top = skip = -1
        if not 1 <= top <= 999 or skip < 0:
            return graph_error(request, 400, "BadRequest", "Invalid value for $top or $skiptoken.")
        templates = app.directory_roles
        roles = [
            {
                "@odata.type": "#microsoft.graph.directoryRole",
                "id": str(uuid.uuid5(uuid.UUID(tenant.tenant_id), f"directory-role-{template}")),
                "deletedDateTime": None,
                "description": f"{role_name(template)} (sandbox)",
                "displayName": role_name(template),
                "roleTemplateId": template,
            }
            for template in templates[skip : skip + top]
        ]
        body: dict[str, Any] = {
            "@odata.context": self._context("directoryObjects"),
            "value": roles,
        }
        if skip + top < len(templates):
            body["@odata.nextLink"] = (
                f"{self._base_url}/v1.0/{path}?$top={top}&$skiptoken={skip + top:x}"
            )
        return graph_response(request, body)
