"""Everything the sandbox remembers between requests: tenants, apps, faults, the request record.

Why: the admin API writes this state while the Entra, Graph and Key Vault stand-ins read it from
other server threads. One lock (`SandboxState.lock`, re-entrant) guards all of it; handlers hold it
while they read, never while they sleep for injected latency.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from localdev.sandbox.certificates import UploadedCertificate
from localdev.sandbox.clouds import Cloud
from localdev.sandbox.directory_roles import role_name
from localdev.sandbox.wire import utc_now

# Request targets, in the order the request record counts them.
TARGETS: tuple[str, ...] = ("metadata", "token", "graph", "keyvault", "portal", "other")
FAULT_TARGETS: frozenset[str] = frozenset(
    {"metadata", "token", "graph", "keyvault", "portal", "any"}
)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Application:
    """An app registration in one tenant, with its service principal (when it has one)."""

    app_id: str
    display_name: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    enabled: bool = True
    service_principal_id: str | None = None
    certificates: dict[str, UploadedCertificate] = field(default_factory=dict)
    permissions: list[str] = field(default_factory=list)
    directory_roles: list[str] = field(default_factory=list)

    @property
    def has_service_principal(self) -> bool:
        return self.service_principal_id is not None

    def find_certificate(self, digest: bytes) -> UploadedCertificate | None:
        """The uploaded certificate whose SHA-1 or SHA-256 thumbprint is `digest`."""
        for certificate in self.certificates.values():
            if digest in (certificate.sha1, certificate.sha256):
                return certificate
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "objectId": self.object_id,
            "displayName": self.display_name,
            "servicePrincipal": self.has_service_principal,
            "servicePrincipalId": self.service_principal_id,
            "enabled": self.enabled,
            "certificates": [c.to_json() for c in self.certificates.values()],
            "permissions": list(self.permissions),
            "directoryRoles": [
                {"roleTemplateId": template, "displayName": role_name(template)}
                for template in self.directory_roles
            ],
        }


@dataclass
class Tenant:
    """A customer's Entra tenant."""

    tenant_id: str
    display_name: str
    domains: list[str]
    cloud: Cloud
    licensed: bool = True
    license_error_style: str = "code"
    emit_wids: bool = True
    access_review_definitions: int = 2
    token_lifetime_seconds: int = 3599
    created_at: datetime = field(default_factory=utc_now)
    applications: dict[str, Application] = field(default_factory=dict)

    def application(self, app_id: str) -> Application | None:
        return self.applications.get(app_id.lower())

    def has_domain(self, name: str) -> bool:
        return name.lower() in (domain.lower() for domain in self.domains)

    @property
    def initial_domain(self) -> str:
        """The `*.onmicrosoft.com`-style domain Entra made with the tenant (else the first)."""
        suffix = "." + self.cloud.initial_domain_suffix
        return next((d for d in self.domains if d.lower().endswith(suffix)), self.domains[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "domains": list(self.domains),
            "defaultDomain": self.domains[0],
            "initialDomain": self.initial_domain,
            "cloud": self.cloud.name,
            "licensed": self.licensed,
            "licenseErrorStyle": self.license_error_style,
            "emitWids": self.emit_wids,
            "accessReviewDefinitions": self.access_review_definitions,
            "tokenLifetimeSeconds": self.token_lifetime_seconds,
            "createdDateTime": _iso(self.created_at),
            "applications": [app.to_json() for app in self.applications.values()],
        }


@dataclass
class Fault:
    """An injected failure or delay for requests of one target (and path pattern)."""

    target: str
    status: int | None
    path: re.Pattern[str] | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    remaining: int | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def matches(self, target: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.target not in ("any", target):
            return False
        return self.path is None or self.path.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "path": self.path.pattern if self.path else None,
            "status": self.status,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class RequestRecord:
    """One non-admin request as the request record keeps it: never a token or assertion."""

    target: str
    method: str
    path: str
    query: str
    status: int
    error: str | None
    duration_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "error": self.error,
            "durationMs": self.duration_ms,
        }


class SandboxState:
    """The sandbox's tenants, faults, latency and request record, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.faults: list[Fault] = []
        self.latency_ms = 0
        self.records: list[RequestRecord] = []

    def reset(self) -> None:
        with self.lock:
            self.tenants.clear()
            self.faults.clear()
            self.latency_ms = 0
            self.records.clear()

    def find_tenant(self, identifier: str) -> Tenant | None:
        """The tenant named by its id or by one of its verified domains (any case)."""
        with self.lock:
            tenant = self.tenants.get(identifier.lower())
            if tenant is not None:
                return tenant
            return next((t for t in self.tenants.values() if t.has_domain(identifier)), None)

    def take_fault(self, target: str, path: str) -> Fault | None:
        """The first fault that matches, with one use counted against it."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(target, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
            return None

    def record(self, record: RequestRecord) -> None:
        with self.lock:
            self.records.append(record)

    def request_summary(self) -> dict[str, Any]:
        with self.lock:
            counts = dict.fromkeys(TARGETS, 0)
            for record in self.records:
                counts[record.target] = counts.get(record.target, 0) + 1
            return {"counts": counts, "value": [r.to_json() for r in self.records]}
