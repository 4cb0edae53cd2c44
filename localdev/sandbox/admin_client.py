"""A small Python client of the sandbox's admin API, for tests and the local run.

Why: tests set tenants up the way a customer would (register an app, upload a certificate, grant
consent, assign a role) and inject faults; one method per admin route keeps those steps short and
readable, and keeps JSON field names in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import requests

from localdev.sandbox.admin_client_federation import FederationAdminCalls


class SandboxAdminError(RuntimeError):
    """The admin API refused a call; `status` and `message` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox admin API answered {status}: {message}")
        self.status = status
        self.message = message


def _camel(changes: dict[str, Any]) -> dict[str, Any]:
    """`display_name=` → `displayName`; None values are left out."""
    result = {}
    for name, value in changes.items():
        if value is None:
            continue
        head, *rest = name.split("_")
        result[head + "".join(part.title() for part in rest)] = value
    return result


class SandboxAdmin(FederationAdminCalls):
    """One method per `/admin/…` route of a sandbox at `base_url`."""

    def __init__(
        self,
        base_url: str,
        ca_bundle_path: str | bool = True,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        # Passed on each call: requests lets REQUESTS_CA_BUNDLE override `Session.verify`.
        self._verify = ca_bundle_path
        self._timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Content-Type": content_type} if content_type else None
        response = self._session.request(
            method,
            f"{self.base_url}/admin/{path}",
            json=json,
            data=data,
            headers=headers,
            verify=self._verify,
            timeout=self._timeout,
        )
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text
            raise SandboxAdminError(response.status_code, str(message))
        return response.json() if response.content else None

    # --- whole sandbox --------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every tenant, fault, latency, request record and Key Vault secret."""
        self._call("POST", "reset")

    # --- tenants --------------------------------------------------------------------------------
    def create_tenant(
        self,
        display_name: str | None = None,
        *,
        tenant_id: str | None = None,
        domains: Iterable[str] | None = None,
        cloud: str | None = None,
        licensed: bool | None = None,
        license_error_style: str | None = None,
        emit_wids: bool | None = None,
        access_review_definitions: int | None = None,
    ) -> dict[str, Any]:
        body = _camel(
            {
                "display_name": display_name,
                "tenant_id": tenant_id,
                "domains": list(domains) if domains is not None else None,
                "cloud": cloud,
                "licensed": licensed,
                "license_error_style": license_error_style,
                "emit_wids": emit_wids,
                "access_review_definitions": access_review_definitions,
            }
        )
        tenant: dict[str, Any] = self._call("POST", "tenants", json=body)
        return tenant

    def tenants(self) -> list[dict[str, Any]]:
        tenants: list[dict[str, Any]] = self._call("GET", "tenants")["value"]
        return tenants

    def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        tenant: dict[str, Any] = self._call("GET", f"tenants/{tenant_id}")
        return tenant

    def update_tenant(
        self,
        tenant_id: str,
        *,
        display_name: str | None = None,
        domains: Iterable[str] | None = None,
        cloud: str | None = None,
        licensed: bool | None = None,
        license_error_style: str | None = None,
        emit_wids: bool | None = None,
        access_review_definitions: int | None = None,
        token_lifetime_seconds: int | None = None,
        application_readable: bool | None = None,
        certificate_propagation_seconds: int | None = None,
    ) -> dict[str, Any]:
        body = _camel(
            {
                "token_lifetime_seconds": token_lifetime_seconds,
                "application_readable": application_readable,
                "certificate_propagation_seconds": certificate_propagation_seconds,
                "display_name": display_name,
                "domains": list(domains) if domains is not None else None,
                "cloud": cloud,
                "licensed": licensed,
                "license_error_style": license_error_style,
                "emit_wids": emit_wids,
                "access_review_definitions": access_review_definitions,
            }
        )
        tenant: dict[str, Any] = self._call("PATCH", f"tenants/{tenant_id}", json=body)
        return tenant

    def set_certificate_policy(
        self, tenant_id: str, max_lifetime_days: int | None
    ) -> dict[str, Any]:
        """The tenant's app-management policy: certificates valid longer than this many days
        cannot be added (upload or addKey); None removes the policy."""
        tenant: dict[str, Any] = self._call(
            "PATCH",
            f"tenants/{tenant_id}",
            json={"maxCertificateLifetimeDays": max_lifetime_days},
        )
        return tenant

    # --- applications ---------------------------------------------------------------------------
    def create_application(
        self,
        tenant_id: str,
        display_name: str | None = None,
        *,
        app_id: str | None = None,
        service_principal: bool | None = None,
        enabled: bool | None = None,
    ) -> dict[str, Any]:
        body = _camel(
            {
                "display_name": display_name,
                "app_id": app_id,
                "service_principal": service_principal,
                "enabled": enabled,
            }
        )
        app: dict[str, Any] = self._call("POST", f"tenants/{tenant_id}/applications", json=body)
        return app

    def get_application(self, tenant_id: str, app_id: str) -> dict[str, Any]:
        app: dict[str, Any] = self._call("GET", f"tenants/{tenant_id}/applications/{app_id}")
        return app

    def update_application(
        self,
        tenant_id: str,
        app_id: str,
        *,
        display_name: str | None = None,
        service_principal: bool | None = None,
        enabled: bool | None = None,
        sign_in_audience: str | None = None,
    ) -> dict[str, Any]:
        body = _camel(
            {
                "display_name": display_name,
                "service_principal": service_principal,
                "enabled": enabled,
                "sign_in_audience": sign_in_audience,
            }
        )
        app: dict[str, Any] = self._call(
            "PATCH", f"tenants/{tenant_id}/applications/{app_id}", json=body
        )
        return app

    def add_password(
        self,
        tenant_id: str,
        app_id: str,
        display_name: str | None = None,
        *,
        end_date_time: str | None = None,
    ) -> dict[str, Any]:
        """Add a client secret; returns `{keyId, hint, displayName, startDateTime, endDateTime}`
        (the sandbox keeps and returns no secret)."""
        body = _camel({"display_name": display_name, "end_date_time": end_date_time})
        credential: dict[str, Any] = self._call(
            "POST", f"tenants/{tenant_id}/applications/{app_id}/passwords", json=body
        )
        return credential

    def delete_password(self, tenant_id: str, app_id: str, key_id: str) -> None:
        self._call("DELETE", f"tenants/{tenant_id}/applications/{app_id}/passwords/{key_id}")

    def upload_certificate(
        self, tenant_id: str, app_id: str, certificate: bytes | str
    ) -> dict[str, Any]:
        """Upload a public certificate, PEM (bytes or text) or DER (bytes); returns its record."""
        data = certificate.encode() if isinstance(certificate, str) else certificate
        is_pem = b"-----BEGIN" in data
        result: dict[str, Any] = self._call(
            "POST",
            f"tenants/{tenant_id}/applications/{app_id}/certificates",
            data=data,
            content_type="application/x-pem-file" if is_pem else "application/pkix-cert",
        )
        return result

    def delete_certificate(self, tenant_id: str, app_id: str, thumbprint: str) -> None:
        self._call("DELETE", f"tenants/{tenant_id}/applications/{app_id}/certificates/{thumbprint}")

    def set_permissions(self, tenant_id: str, app_id: str, roles: Iterable[str]) -> dict[str, Any]:
        """Admin-consented application permissions (the token's `roles`); [] revokes consent."""
        app: dict[str, Any] = self._call(
            "PUT",
            f"tenants/{tenant_id}/applications/{app_id}/permissions",
            json={"roles": list(roles)},
        )
        return app

    def set_directory_roles(
        self, tenant_id: str, app_id: str, roles: Iterable[str]
    ) -> dict[str, Any]:
        """Directory roles of the service principal, by display name or template id."""
        app: dict[str, Any] = self._call(
            "PUT",
            f"tenants/{tenant_id}/applications/{app_id}/directory-roles",
            json={"roles": list(roles)},
        )
        return app

    # --- faults, latency, request record --------------------------------------------------------
    def add_fault(
        self,
        target: str,
        status: int | None = None,
        *,
        path: str | None = None,
        retry_after: int | None = None,
        latency_ms: int | None = None,
        count: int | None = None,
    ) -> str:
        """Inject a fault; returns its id. Without `count` it lasts until cleared."""
        body = _camel(
            {
                "target": target,
                "status": status,
                "path": path,
                "retry_after": retry_after,
                "latency_ms": latency_ms,
                "count": count,
            }
        )
        fault_id: str = self._call("POST", "faults", json=body)["id"]
        return fault_id

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self._call("GET", "faults")["value"]
        return faults

    def delete_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_graph_batch_order(self, order: str) -> None:
        """How `$batch` orders its sub-responses: "request", "reverse" or "shuffle"."""
        self._call("PUT", "graph-batch", json={"order": order})

    def graph_batch_order(self) -> str:
        order: str = self._call("GET", "graph-batch")["order"]
        return order

    def set_latency(self, ms: int) -> None:
        self._call("PUT", "latency", json={"ms": ms})

    def requests(self) -> dict[str, Any]:
        """`{"counts": {target: n}, "value": [{target, method, path, query, status, error}]}`;
        a `$batch` entry also has `batch`: its sub-requests, which `counts` does not count."""
        record: dict[str, Any] = self._call("GET", "requests")
        return record

    def reset_requests(self) -> None:
        self._call("DELETE", "requests")

    # --- portal issuer, Key Vault ---------------------------------------------------------------
    def mint_portal_token(
        self,
        tid: str,
        aud: str,
        *,
        claims: dict[str, Any] | None = None,
        expires_in: int | None = None,
    ) -> str:
        body = _camel({"tid": tid, "aud": aud, "claims": claims, "expires_in": expires_in})
        token: str = self._call("POST", "portal-tokens", json=body)["accessToken"]
        return token

    def keyvault_state(self) -> dict[str, Any]:
        """`{"secrets", "deletedSecrets", "requests"}` of the Key Vault stand-in (no values)."""
        state: dict[str, Any] = self._call("GET", "keyvault/secrets")
        return state

    def set_keyvault_sign_fault(self, mode: str | None) -> None:
        """Make the stand-in's `sign` answer a wrong signature: "short" (10 bytes) or
        "other-key" (made by a key that is not the one asked for); None ends it, as do
        `clear_faults()` and `reset()`."""
        self._call("PUT", "keyvault/sign-fault", json={"mode": mode})

    def keyvault_keys(self) -> dict[str, Any]:
        """`{"keys", "deletedKeys", "premium", "requests"}` of the stand-in's keys API (no key
        material; each key with its `kty`, `keySize`, `keyOps`, `tags`, `attributes`, `signs`)."""
        state: dict[str, Any] = self._call("GET", "keyvault/keys")
        return state
