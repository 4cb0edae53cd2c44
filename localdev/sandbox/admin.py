"""The admin API: sets the sandbox up the way a customer and a test would.

Why: a customer registers an app, uploads a certificate, grants consent and assigns a role in the
Entra admin center; a test also wants faults, latency and a record of calls. These JSON routes do
all of that on `base_url` under `/admin/`. They are never delayed, faulted or counted, so a test can
always inspect and change the sandbox whatever it injected.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from localdev.sandbox.certificates import parse_certificate
from localdev.sandbox.clouds import CLOUDS
from localdev.sandbox.directory_roles import is_guid, resolve_role
from localdev.sandbox.keyvault import KeyVault
from localdev.sandbox.portal_issuer import PortalIssuer
from localdev.sandbox.state import (
    BATCH_ORDERS,
    FAULT_TARGETS,
    SIGN_IN_AUDIENCES,
    Application,
    Fault,
    PasswordCredential,
    SandboxState,
    Tenant,
)
from localdev.sandbox.traffic import Traffic
from localdev.sandbox.wire import json_response, utc_now

_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_TENANT_FIELDS = {
    "displayName",
    "domains",
    "cloud",
    "licensed",
    "licenseErrorStyle",
    "emitWids",
    "accessReviewDefinitions",
    "tokenLifetimeSeconds",
    "applicationReadable",
    "maxCertificateLifetimeDays",
    "certificatePropagationSeconds",
}
_APP_FIELDS = {"displayName", "servicePrincipal", "enabled", "signInAudience"}
# Graph's default lifetime of a client secret made without an end date.
_DEFAULT_SECRET_DAYS = 730
_FAULT_FIELDS = {"target", "path", "status", "retryAfter", "latencyMs", "count"}

_ROUTES = [
    ("/admin/reset", "reset", ["POST"]),
    ("/admin/tenants", "list_tenants", ["GET"]),
    ("/admin/tenants", "create_tenant", ["POST"]),
    ("/admin/tenants/<tid>", "get_tenant", ["GET"]),
    ("/admin/tenants/<tid>", "update_tenant", ["PATCH"]),
    ("/admin/tenants/<tid>/applications", "list_applications", ["GET"]),
    ("/admin/tenants/<tid>/applications", "create_application", ["POST"]),
    ("/admin/tenants/<tid>/applications/<app_id>", "get_application", ["GET"]),
    ("/admin/tenants/<tid>/applications/<app_id>", "update_application", ["PATCH"]),
    ("/admin/tenants/<tid>/applications/<app_id>/certificates", "upload_certificate", ["POST"]),
    (
        "/admin/tenants/<tid>/applications/<app_id>/certificates/<thumbprint>",
        "delete_certificate",
        ["DELETE"],
    ),
    ("/admin/tenants/<tid>/applications/<app_id>/passwords", "add_password", ["POST"]),
    (
        "/admin/tenants/<tid>/applications/<app_id>/passwords/<key_id>",
        "delete_password",
        ["DELETE"],
    ),
    ("/admin/tenants/<tid>/applications/<app_id>/permissions", "set_permissions", ["PUT"]),
    ("/admin/tenants/<tid>/applications/<app_id>/directory-roles", "set_directory_roles", ["PUT"]),
    ("/admin/faults", "list_faults", ["GET"]),
    ("/admin/faults", "add_fault", ["POST"]),
    ("/admin/faults", "clear_faults", ["DELETE"]),
    ("/admin/faults/<fault_id>", "delete_fault", ["DELETE"]),
    ("/admin/graph-batch", "get_graph_batch", ["GET"]),
    ("/admin/graph-batch", "set_graph_batch", ["PUT"]),
    ("/admin/latency", "get_latency", ["GET"]),
    ("/admin/latency", "set_latency", ["PUT"]),
    ("/admin/requests", "get_requests", ["GET"]),
    ("/admin/requests", "reset_requests", ["DELETE"]),
    ("/admin/portal-tokens", "mint_portal_token", ["POST"]),
    ("/admin/keyvault/secrets", "keyvault_state", ["GET"]),
    ("/admin/keyvault/keys", "keyvault_keys", ["GET"]),
    ("/admin/keyvault/sign-fault", "set_keyvault_sign_fault", ["PUT"]),
]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError as error:
        raise AdminError(400, "the body is not valid JSON") from error
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise AdminError(400, f"unknown fields {unknown}; allowed: {sorted(allowed)}")


def _typed(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise AdminError(400, f"{name} must be of type {kind.__name__}")
    return value


def _guid(value: Any, name: str) -> str:
    if value is None:
        return str(uuid.uuid4())
    if not isinstance(value, str) or not is_guid(value):
        raise AdminError(400, f"{name} must be a GUID")
    return value.lower()


def _strings(body: dict[str, Any], name: str) -> list[str]:
    values = body.get(name)
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise AdminError(400, f"{name} must be a list of non-empty strings")
    return list(dict.fromkeys(values))


class Admin:
    """Dispatches `/admin/…` requests."""

    def __init__(
        self,
        state: SandboxState,
        keyvault: KeyVault,
        portal: PortalIssuer,
        traffic: Traffic,
    ) -> None:
        self._state = state
        self._traffic = traffic  # for the requests in flight
        self._keyvault = keyvault
        self._portal = portal
        self._map = Map(
            [Rule(path, endpoint=name, methods=methods) for path, name, methods in _ROUTES]
        )

    def handle(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            handler: Callable[..., Response] = getattr(self, f"_{endpoint}")
            with self._state.lock:
                return handler(request, **args)
        except AdminError as error:
            return json_response({"error": error.message}, error.status)
        except HTTPException as error:
            return json_response({"error": error.description}, error.code or 500)

    # --- tenants --------------------------------------------------------------------------------
    def _tenant(self, tid: str) -> Tenant:
        tenant = self._state.find_tenant(tid)
        if tenant is None:
            raise AdminError(404, f"no tenant {tid!r}")
        return tenant

    def _reset(self, request: Request) -> Response:
        self._state.reset()
        self._keyvault.reset()
        self._traffic.reset_in_flight()
        return Response(status=204)

    def _list_tenants(self, request: Request) -> Response:
        return json_response({"value": [t.to_json() for t in self._state.tenants.values()]})

    def _create_tenant(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, _TENANT_FIELDS | {"tenantId"})
        tenant_id = _guid(body.get("tenantId"), "tenantId")
        if tenant_id in self._state.tenants:
            raise AdminError(409, f"tenant {tenant_id} exists")
        cloud = CLOUDS["global"]
        tenant = Tenant(
            tenant_id=tenant_id,
            display_name=f"Sandbox tenant {tenant_id[:8]}",
            domains=[],
            cloud=cloud,
        )
        self._apply_tenant_changes(tenant, body)
        if not tenant.domains:
            tenant.domains = [f"sandbox{tenant_id[:8]}.{tenant.cloud.initial_domain_suffix}"]
        self._state.tenants[tenant_id] = tenant
        return json_response(tenant.to_json(), 201)

    def _get_tenant(self, request: Request, tid: str) -> Response:
        return json_response(self._tenant(tid).to_json())

    def _update_tenant(self, request: Request, tid: str) -> Response:
        tenant = self._tenant(tid)
        body = _json_body(request)
        _only(body, _TENANT_FIELDS)
        self._apply_tenant_changes(tenant, body)
        return json_response(tenant.to_json())

    def _apply_tenant_changes(self, tenant: Tenant, body: dict[str, Any]) -> None:
        """Validate every field first, then change the tenant: a 400 leaves it as it was."""
        changes: dict[str, Any] = {}
        if "displayName" in body:
            name = _typed(body, "displayName", str)
            if not name or not name.strip():
                raise AdminError(400, "displayName must not be empty")
            changes["display_name"] = name.strip()
        if "domains" in body:
            changes["domains"] = self._domains(body, tenant)
        if "cloud" in body:
            cloud = body["cloud"]
            if cloud not in CLOUDS:
                raise AdminError(400, f"cloud must be one of {sorted(CLOUDS)}")
            changes["cloud"] = CLOUDS[cloud]
        for field, attribute in (("licensed", "licensed"), ("emitWids", "emit_wids")):
            if field in body:
                changes[attribute] = _typed(body, field, bool)
        if "licenseErrorStyle" in body:
            style = body["licenseErrorStyle"]
            if style not in ("code", "message"):
                raise AdminError(400, 'licenseErrorStyle must be "code" or "message"')
            changes["license_error_style"] = style
        if "accessReviewDefinitions" in body:
            count = _typed(body, "accessReviewDefinitions", int)
            if count is None or count < 0:
                raise AdminError(400, "accessReviewDefinitions must be a number ≥ 0")
            changes["access_review_definitions"] = count
        if "tokenLifetimeSeconds" in body:
            lifetime = _typed(body, "tokenLifetimeSeconds", int)
            if lifetime is None or not 60 <= lifetime <= 86400:
                raise AdminError(400, "tokenLifetimeSeconds must be between 60 and 86400")
            changes["token_lifetime_seconds"] = lifetime
        if "applicationReadable" in body:
            changes["application_readable"] = _typed(body, "applicationReadable", bool)
        if "maxCertificateLifetimeDays" in body:  # null removes the policy
            days = _typed(body, "maxCertificateLifetimeDays", int)
            if days is not None and not 1 <= days <= 36500:
                raise AdminError(400, "maxCertificateLifetimeDays must be between 1 and 36500")
            changes["max_certificate_lifetime_days"] = days
        if "certificatePropagationSeconds" in body:
            delay = _typed(body, "certificatePropagationSeconds", int)
            if delay is None or not 0 <= delay <= 86400:
                raise AdminError(400, "certificatePropagationSeconds must be between 0 and 86400")
            changes["certificate_propagation_seconds"] = delay
        for attribute, value in changes.items():
            setattr(tenant, attribute, value)

    def _domains(self, body: dict[str, Any], tenant: Tenant) -> list[str]:
        domains = [d.lower() for d in _strings(body, "domains")]
        if not domains:
            raise AdminError(400, "a tenant has at least one domain")
        for domain in domains:
            if not _DNS_NAME.match(domain):
                raise AdminError(400, f"{domain!r} is not a DNS name")
            owner = self._state.find_tenant(domain)
            if owner is not None and owner is not tenant:
                raise AdminError(409, f"{domain} is a domain of tenant {owner.tenant_id}")
        return domains

    # --- applications ---------------------------------------------------------------------------
    def _application(self, tid: str, app_id: str) -> tuple[Tenant, Application]:
        tenant = self._tenant(tid)
        app = tenant.application(app_id)
        if app is None:
            raise AdminError(404, f"no application {app_id!r} in tenant {tenant.tenant_id}")
        return tenant, app

    def _list_applications(self, request: Request, tid: str) -> Response:
        apps = self._tenant(tid).applications.values()
        return json_response({"value": [app.to_json() for app in apps]})

    def _create_application(self, request: Request, tid: str) -> Response:
        tenant = self._tenant(tid)
        body = _json_body(request)
        _only(body, _APP_FIELDS | {"appId"})
        app_id = _guid(body.get("appId"), "appId")
        if tenant.application(app_id) is not None:
            raise AdminError(409, f"application {app_id} exists in tenant {tenant.tenant_id}")
        app = Application(app_id=app_id, display_name=f"Sandbox app {app_id[:8]}")
        self._apply_application_changes(app, {"servicePrincipal": True, **body})
        tenant.applications[app_id] = app
        return json_response(app.to_json(), 201)

    def _get_application(self, request: Request, tid: str, app_id: str) -> Response:
        return json_response(self._application(tid, app_id)[1].to_json())

    def _update_application(self, request: Request, tid: str, app_id: str) -> Response:
        app = self._application(tid, app_id)[1]
        body = _json_body(request)
        _only(body, _APP_FIELDS)
        self._apply_application_changes(app, body)
        return json_response(app.to_json())

    @staticmethod
    def _apply_application_changes(app: Application, body: dict[str, Any]) -> None:
        name = _typed(body, "displayName", str)
        enabled = _typed(body, "enabled", bool)
        service_principal = _typed(body, "servicePrincipal", bool)
        audience = _typed(body, "signInAudience", str)
        if audience is not None and audience not in SIGN_IN_AUDIENCES:
            raise AdminError(400, f"signInAudience must be one of {list(SIGN_IN_AUDIENCES)}")
        if audience is not None:
            app.sign_in_audience = audience
        if name is not None:
            if not name.strip():
                raise AdminError(400, "displayName must not be empty")
            app.display_name = name.strip()
        if enabled is not None:
            app.enabled = enabled
        if service_principal is True and not app.has_service_principal:
            app.service_principal_id = str(uuid.uuid4())
        elif service_principal is False and app.has_service_principal:
            # Consent and role assignments belong to the service principal and go with it.
            app.service_principal_id = None
            app.permissions = []
            app.directory_roles = []

    def _upload_certificate(self, request: Request, tid: str, app_id: str) -> Response:
        tenant, app = self._application(tid, app_id)
        if request.mimetype == "application/json":
            pem = _json_body(request).get("certificate")
            if not isinstance(pem, str):
                raise AdminError(400, 'the JSON body must be {"certificate": "<PEM>"}')
            data = pem.encode()
        else:
            data = request.get_data()
        try:
            certificate = parse_certificate(data)
        except ValueError as error:
            raise AdminError(400, f"not a certificate: {error}") from error
        existing = app.certificates.get(certificate.thumbprint)
        if existing is not None:
            return json_response(existing.to_json(), 200)
        # Expired certificates are accepted (to show them piling up); a policy may refuse.
        refusal = tenant.certificate_lifetime_refusal(certificate)
        if refusal is not None:
            raise AdminError(400, f"CredentialInvalidLifetimeAsPerAppPolicy: {refusal}")
        return json_response(app.add_certificate(certificate).to_json(), 201)

    def _delete_certificate(
        self, request: Request, tid: str, app_id: str, thumbprint: str
    ) -> Response:
        app = self._application(tid, app_id)[1]
        if app.certificates.pop(thumbprint.upper(), None) is None:
            raise AdminError(404, f"no certificate with thumbprint {thumbprint}")
        return Response(status=204)

    def _add_password(self, request: Request, tid: str, app_id: str) -> Response:
        """A client secret as Certificates & secrets makes one; only its hint is kept."""
        app = self._application(tid, app_id)[1]
        body = _json_body(request)
        _only(body, {"displayName", "endDateTime"})
        name = _typed(body, "displayName", str, "")
        start = utc_now().replace(microsecond=0)
        end_text = _typed(body, "endDateTime", str)
        try:
            end = (
                datetime.fromisoformat(end_text.replace("Z", "+00:00"))
                if end_text
                else start + timedelta(days=_DEFAULT_SECRET_DAYS)
            )
        except ValueError as error:
            raise AdminError(400, "endDateTime must be an ISO 8601 date and time") from error
        if end.tzinfo is None:
            raise AdminError(400, "endDateTime must carry a time zone (e.g. Z)")
        hint = secrets.token_urlsafe(3)[:3]
        credential = PasswordCredential(display_name=name, start=start, end=end, hint=hint)
        app.password_credentials.append(credential)
        return json_response(credential.to_json(), 201)

    def _delete_password(self, request: Request, tid: str, app_id: str, key_id: str) -> Response:
        app = self._application(tid, app_id)[1]
        kept = [p for p in app.password_credentials if p.key_id != key_id.lower()]
        if len(kept) == len(app.password_credentials):
            raise AdminError(404, f"no password credential {key_id}")
        app.password_credentials = kept
        return Response(status=204)

    def _set_permissions(self, request: Request, tid: str, app_id: str) -> Response:
        app = self._consentable(tid, app_id)
        app.permissions = _strings(_json_body(request), "roles")
        return json_response(app.to_json())

    def _set_directory_roles(self, request: Request, tid: str, app_id: str) -> Response:
        app = self._consentable(tid, app_id)
        try:
            roles = [resolve_role(role) for role in _strings(_json_body(request), "roles")]
        except ValueError as error:
            raise AdminError(400, str(error)) from error
        app.directory_roles = list(dict.fromkeys(roles))
        return json_response(app.to_json())

    def _consentable(self, tid: str, app_id: str) -> Application:
        app = self._application(tid, app_id)[1]
        if not app.has_service_principal:
            raise AdminError(409, "the application has no service principal in this tenant")
        return app

    # --- faults, latency, record ----------------------------------------------------------------
    def _list_faults(self, request: Request) -> Response:
        return json_response({"value": [f.to_json() for f in self._state.faults]})

    def _add_fault(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, _FAULT_FIELDS)
        target = body.get("target")
        if target not in FAULT_TARGETS:
            raise AdminError(400, f"target must be one of {sorted(FAULT_TARGETS)}")
        status = _typed(body, "status", int)
        latency_ms = _typed(body, "latencyMs", int, 0)
        retry_after = _typed(body, "retryAfter", int)
        count = _typed(body, "count", int)
        if status is not None and not 100 <= status <= 599:
            raise AdminError(400, "status must be an HTTP status code")
        if status is None and latency_ms <= 0:
            raise AdminError(400, "a fault needs a status, a latencyMs, or both")
        if latency_ms < 0 or (retry_after is not None and retry_after < 0):
            raise AdminError(400, "latencyMs and retryAfter must not be negative")
        if count is not None and count < 1:
            raise AdminError(400, "count must be at least 1 (omit it for a lasting fault)")
        path = _typed(body, "path", str)
        try:
            pattern = re.compile(path) if path else None
        except re.error as error:
            raise AdminError(400, f"path is not a valid regular expression: {error}") from error
        fault = Fault(
            target=target,
            status=status,
            path=pattern,
            retry_after=retry_after,
            latency_ms=latency_ms,
            remaining=count,
        )
        self._state.faults.append(fault)
        return json_response(fault.to_json(), 201)

    def _clear_faults(self, request: Request) -> Response:
        self._state.faults.clear()
        self._keyvault.keys.set_sign_fault(None)
        return Response(status=204)

    def _delete_fault(self, request: Request, fault_id: str) -> Response:
        before = len(self._state.faults)
        self._state.faults[:] = [f for f in self._state.faults if f.id != fault_id]
        if len(self._state.faults) == before:
            raise AdminError(404, f"no fault {fault_id}")
        return Response(status=204)

    def _get_graph_batch(self, request: Request) -> Response:
        return json_response({"order": self._state.batch_order})

    def _set_graph_batch(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, {"order"})
        order = body.get("order")
        if order not in BATCH_ORDERS:
            raise AdminError(400, f"order must be one of {list(BATCH_ORDERS)}")
        self._state.batch_order = order
        return json_response({"order": order})

    def _get_latency(self, request: Request) -> Response:
        return json_response({"ms": self._state.latency_ms})

    def _set_latency(self, request: Request) -> Response:
        ms = _typed(_json_body(request), "ms", int)
        if ms is None or ms < 0:
            raise AdminError(400, 'the body must be {"ms": <milliseconds ≥ 0>}')
        self._state.latency_ms = ms
        return json_response({"ms": ms})

    def _get_requests(self, request: Request) -> Response:
        summary = self._state.request_summary()
        summary["inFlight"] = self._traffic.in_flight()
        return json_response(summary)

    def _reset_requests(self, request: Request) -> Response:
        self._state.records.clear()
        self._keyvault.clear_requests()
        self._traffic.reset_in_flight()
        return Response(status=204)

    # --- portal issuer, Key Vault ---------------------------------------------------------------
    def _mint_portal_token(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, {"tid", "aud", "claims", "expiresIn"})
        tid, aud = _typed(body, "tid", str), _typed(body, "aud", str)
        if not tid or not aud:
            raise AdminError(400, "tid and aud are required strings")
        claims = _typed(body, "claims", dict, {})
        expires_in = _typed(body, "expiresIn", int, 3600)
        token = self._portal.mint(tid, aud, claims, expires_in)
        return json_response({"accessToken": token})

    def _keyvault_state(self, request: Request) -> Response:
        return json_response(self._keyvault.snapshot())

    def _keyvault_keys(self, request: Request) -> Response:
        return json_response(self._keyvault.keys_snapshot())

    def _set_keyvault_sign_fault(self, request: Request) -> Response:
        body = _json_body(request)
        _only(body, {"mode"})
        try:
            self._keyvault.keys.set_sign_fault(_typed(body, "mode", str))
        except ValueError as error:
            raise AdminError(400, str(error)) from error
        return json_response({"mode": body.get("mode")})
