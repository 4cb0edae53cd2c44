"""The Entra stand-in: tenant OpenID metadata, instance discovery, signing keys, token endpoint.

Why: the app signs in with MSAL (client credentials with a certificate or federated assertion)
against `{ENTRA_AUTHORITY_HOST}/{tenant}`. MSAL reads the tenant's metadata, then posts to the
token endpoint it names; both must answer like Entra, including its errors, for the app's
verification checks (`tenant`, `application`, `certificate`) to be testable offline. Federated
assertions are checked in federation.py.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from werkzeug.wrappers import Request, Response

from localdev.sandbox.assertion import ASSERTION_TYPE, AssertionCheck, verify_client_assertion
from localdev.sandbox.directory_roles import DEFAULT_WIDS_ENTRY, is_guid
from localdev.sandbox.federated_credentials import FederatedCredential
from localdev.sandbox.federation import Federation, is_federated, match_credential
from localdev.sandbox.signing import SigningKey
from localdev.sandbox.state import Application, SandboxState, Tenant
from localdev.sandbox.wire import EntraError, json_response

_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _bad_request(code: int, message: str, error: str = "invalid_request") -> EntraError:
    return EntraError(400, error, code, message)


def _missing(parameter: str) -> EntraError:
    return _bad_request(
        900144, f"The request body must contain the following parameter: '{parameter}'."
    )


@dataclass(frozen=True)
class _Grant:
    """A token request checked up to its credential; `federated` still needs the issuer's keys."""

    tenant: Tenant
    app: Application
    resource: str
    federated: FederatedCredential | None = None
    assertion: str = ""


class Entra:
    """Answers the Entra routes for the tenants in the sandbox state."""

    def __init__(
        self,
        state: SandboxState,
        signing_key: SigningKey,
        base_url: str,
        federation: Federation | None = None,
    ) -> None:
        self._state = state
        self._key = signing_key
        self._base_url = base_url
        self._federation = federation or Federation(state)

    # --- routes ---------------------------------------------------------------------------------
    def metadata(self, request: Request, tenant: str) -> Response:
        """`GET /{tenant}/v2.0/.well-known/openid-configuration`."""
        with self._state.lock:
            try:
                found = self._resolve_tenant(tenant)
            except EntraError as error:
                return error.response(request, self._base_url)
            return json_response(self._metadata_document(found))

    def jwks(self, request: Request, tenant: str) -> Response:
        """`GET /{tenant}/discovery/v2.0/keys`: the key that signs the sandbox's access tokens."""
        with self._state.lock:
            try:
                self._resolve_tenant(tenant)
            except EntraError as error:
                return error.response(request, self._base_url)
        return json_response(self._key.jwks())

    def instance_discovery(self, request: Request) -> Response:
        """`GET /common/discovery/instance`, as MSAL asks when instance discovery is on."""
        endpoint = request.args.get("authorization_endpoint", "")
        segments = [s for s in urlsplit(endpoint).path.split("/") if s]
        tenant = segments[0] if segments else "common"
        host = urlsplit(self._base_url).netloc
        return json_response(
            {
                "tenant_discovery_endpoint": (
                    f"{self._base_url}/{tenant}/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    def token(self, request: Request, tenant: str) -> Response:
        """`POST /{tenant}/oauth2/v2.0/token`: client credentials with a client assertion."""
        try:
            with self._state.lock:
                grant = self._check(request, tenant)
            if grant.federated is not None:
                # Outside the lock: fetching the issuer's keys may take seconds.
                self._federation.verify(
                    grant.assertion, grant.federated, grant.tenant.tenant_id, grant.app.app_id
                )
            with self._state.lock:
                body = self._issue(grant)
        except EntraError as error:
            return error.response(request, self._base_url)
        return json_response(body, headers=_NO_STORE)

    # --- helpers --------------------------------------------------------------------------------
    def _resolve_tenant(self, identifier: str) -> Tenant:
        if not is_guid(identifier) and not _DNS_NAME.match(identifier):
            raise _bad_request(
                900023,
                f"Specified tenant identifier '{identifier}' is neither a valid DNS name, nor a "
                "valid external domain.",
            )
        tenant = self._state.find_tenant(identifier)
        if tenant is None:
            raise _bad_request(
                90002,
                f"Tenant '{identifier}' not found. Check to make sure you have the correct tenant "
                "ID and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for the "
                "tenant.",
                error="invalid_tenant",
            )
        return tenant

    def _metadata_document(self, tenant: Tenant) -> dict[str, Any]:
        base = f"{self._base_url}/{tenant.tenant_id}"
        cloud = tenant.cloud
        document: dict[str, Any] = {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"https://{cloud.msgraph_host}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": cloud.tenant_region_scope,
            "cloud_instance_name": cloud.cloud_instance_name,
            "cloud_graph_host_name": cloud.cloud_graph_host_name,
            "msgraph_host": cloud.msgraph_host,
            "rbac_url": "https://pas.windows.net",
        }
        if cloud.tenant_region_sub_scope:
            document["tenant_region_sub_scope"] = cloud.tenant_region_sub_scope
        return document

    def _check(self, request: Request, tenant_segment: str) -> _Grant:
        if request.method != "POST":
            raise _bad_request(900561, "The endpoint only accepts POST, OPTIONS requests.")
        tenant = self._resolve_tenant(tenant_segment)
        form = request.form
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != "client_credentials":
            raise _bad_request(
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
                error="unsupported_grant_type",
            )
        client_id = form.get("client_id", "").strip()
        if not client_id:
            raise _missing("client_id")
        resource = self._requested_resource(form.get("scope", ""))
        app = self._application(tenant, client_id)
        federated = self._verify_credential(request, tenant, tenant_segment, app)
        assertion = request.form.get("client_assertion", "") if federated else ""
        return _Grant(tenant, app, resource, federated, assertion)

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        tenant, app, resource = grant.tenant, grant.app, grant.resource
        if resource.lower() != tenant.cloud.graph_resource:
            raise _bad_request(
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.display_name}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You might have sent your authentication request to the wrong tenant.",
                error="invalid_resource",
            )
        return {
            "token_type": "Bearer",
            "expires_in": tenant.token_lifetime_seconds,
            "ext_expires_in": tenant.token_lifetime_seconds,
            "access_token": self._key.sign(self._access_token_claims(tenant, app)),
        }

    @staticmethod
    def _requested_resource(scope: str) -> str:
        scopes = scope.split()
        if not scopes:
            raise _missing("scope")
        if len(scopes) > 1:
            raise _bad_request(
                70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope "
                f"'{scope}' requests more than one resource.",
                error="invalid_scope",
            )
        if not scopes[0].endswith("/.default"):
            raise _bad_request(
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
                error="invalid_scope",
            )
        return scopes[0].removesuffix("/.default").rstrip("/")

    @staticmethod
    def _application(tenant: Tenant, client_id: str) -> Application:
        app = tenant.application(client_id)
        if app is None:
            raise _bad_request(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.display_name}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
                error="unauthorized_client",
            )
        if not app.has_service_principal:
            raise EntraError(
                401,
                "invalid_client",
                7000229,
                f"The client application {app.app_id} is missing service principal in the tenant "
                f"{tenant.tenant_id}. See instructions here: "
                "https://go.microsoft.com/fwlink/?linkid=2225119",
            )
        if not app.enabled:
            raise _bad_request(
                7000112,
                f"Application '{app.app_id}'({app.display_name}) is disabled.",
                error="unauthorized_client",
            )
        return app

    def _verify_credential(
        self, request: Request, tenant: Tenant, tenant_segment: str, app: Application
    ) -> FederatedCredential | None:
        """Check a certificate assertion fully; for a federated one, return the credential it
        matches (its signature needs the issuer's keys, fetched without the lock)."""
        form = request.form
        assertion = form.get("client_assertion")
        if not assertion:
            if form.get("client_secret"):
                raise EntraError(401, "invalid_client", 7000215, "Invalid client secret provided.")
            raise EntraError(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(
                400,
                "invalid_client",
                50027,
                f"JWT token is invalid or malformed: client_assertion_type must be "
                f"'{ASSERTION_TYPE}'.",
            )
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            # The certificate path answers a malformed assertion as it always has.
            header, claims = {}, {}
        if header and is_federated(header, claims, app.app_id):
            return match_credential(app.federated_credentials, claims)
        token_endpoint = f"{self._base_url}/{tenant.tenant_id}/oauth2/v2.0/token"
        audiences = frozenset(
            f"{host}/{segment}/{path}".lower()
            for host in (self._base_url, request.host_url.rstrip("/"))
            for segment in (tenant.tenant_id, tenant_segment)
            for path in ("oauth2/v2.0/token", "oauth2/token")
        )
        now = time.time()
        check = AssertionCheck(
            client_id=app.app_id,
            token_endpoint=token_endpoint,
            audiences=audiences,
            now=now,
        )
        # A certificate added moments ago is not yet known to the token endpoint (AADSTS700027
        # "The key was not found"), as in Entra, until the tenant's propagation delay has passed.
        accepted = app.accepted_at(now, tenant.certificate_propagation_seconds)
        verify_client_assertion(assertion, accepted, check)
        return None

    def _access_token_claims(self, tenant: Tenant, app: Application) -> dict[str, Any]:
        now = int(time.time())
        issuer = tenant.cloud.access_token_issuer(tenant.tenant_id)
        claims: dict[str, Any] = {
            "aud": tenant.cloud.graph_resource,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + tenant.token_lifetime_seconds,
            "aio": uuid.uuid4().hex,
            "app_displayname": app.display_name,
            "appid": app.app_id,
            "appidacr": "2",
            "idp": issuer,
            "idtyp": "app",
            "oid": app.service_principal_id,
            "rh": "0.sandbox.",
            "sub": app.service_principal_id,
            "tenant_region_scope": tenant.cloud.tenant_region_scope,
            "tid": tenant.tenant_id,
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
            "xms_tcdt": int(tenant.created_at.timestamp()),
        }
        if app.permissions:
            claims["roles"] = list(app.permissions)
        if tenant.emit_wids:
            claims["wids"] = [*app.directory_roles, DEFAULT_WIDS_ENTRY]
        return claims
