"""Everything the sandbox remembers between requests: tenants, apps, faults, the request record.

Why: the admin API writes this state while the Entra, Graph and Key Vault stand-ins read it from
other server threads. One lock (`SandboxState.lock`, re-entrant) guards all of it; handlers hold it
while they read, never while they sleep for injected latency.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from localdev.sandbox.certificates import UploadedCertificate
from localdev.sandbox.clouds import Cloud
from localdev.sandbox.directory_roles import role_name
from localdev.sandbox.federated_credentials import FederatedCredential
from localdev.sandbox.wire import utc_now

# Request targets, in the order the request record counts them.
TARGETS: tuple[str, ...] = ("metadata", "token", "graph", "keyvault", "portal", "other")
FAULT_TARGETS: frozenset[str] = frozenset(
    {"metadata", "token", "graph", "keyvault", "portal", "any"}
)


# `signInAudience` values of an app registration; `AzureADMyOrg` is single tenant.
SIGN_IN_AUDIENCES: tuple[str, ...] = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)
# The order in which a `$batch` answers its sub-responses (Graph promises none).
BATCH_ORDERS: tuple[str, ...] = ("request", "reverse", "shuffle")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class KeyCredential(UploadedCertificate):
    """An uploaded certificate as the app registration keeps it, with the time it was added.

    Why the time: Entra accepts a new key at the token endpoint only some time after it was added
    (the tenant's `certificate_propagation_seconds`), while Graph lists it at once.
    """

    added_at: float = field(default_factory=time.time)

    @classmethod
    def of(cls, certificate: UploadedCertificate) -> KeyCredential:
        return cls(key_id=certificate.key_id, certificate=certificate.certificate)

    def is_valid_at(self, now: float) -> bool:
        return self.not_before.timestamp() <= now <= self.not_after.timestamp()

    def graph_json(self, *, with_key: bool) -> dict[str, Any]:
        """Graph's `keyCredential`: `customKeyIdentifier` is the SHA-1 thumbprint's bytes, which
        JSON carries as base64 (an `Edm.Binary`); `key` (base64 DER) only on a `$select`ed read."""
        der = self.certificate.public_bytes(Encoding.DER)
        return {
            "customKeyIdentifier": base64.b64encode(self.sha1).decode(),
            "displayName": self.certificate.subject.rfc4514_string(),
            "endDateTime": _iso(self.not_after),
            "key": base64.b64encode(der).decode() if with_key else None,
            "keyId": self.key_id,
            "startDateTime": _iso(self.not_before),
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **super().to_json(),
            "addedDateTime": _iso(datetime.fromtimestamp(self.added_at, UTC)),
        }


@dataclass(frozen=True)
class PasswordCredential:
    """A client secret on an app registration; the sandbox keeps no secret, only its hint."""

    display_name: str
    start: datetime
    end: datetime
    hint: str
    key_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def graph_json(self) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": _iso(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": None,
            "startDateTime": _iso(self.start),
        }

    def to_json(self) -> dict[str, Any]:
        """As the admin API shows it: Graph's shape without `secretText`."""
        return {k: v for k, v in self.graph_json().items() if k != "secretText"}


@dataclass
class Application:
    """An app registration in one tenant, with its service principal (when it has one)."""

    app_id: str
    display_name: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    enabled: bool = True
    service_principal_id: str | None = None
    certificates: dict[str, KeyCredential] = field(default_factory=dict)  # by SHA-1 thumbprint
    permissions: list[str] = field(default_factory=list)
    directory_roles: list[str] = field(default_factory=list)
    sign_in_audience: str = "AzureADMyOrg"
    password_credentials: list[PasswordCredential] = field(default_factory=list)
    federated_credentials: list[FederatedCredential] = field(default_factory=list)
    created_at: datetime = field(default_factory=utc_now)

    def add_certificate(self, certificate: UploadedCertificate) -> KeyCredential:
        """Add a certificate (keyed by SHA-1 thumbprint), stamped with the time it was added."""
        stored = KeyCredential.of(certificate)
        self.certificates[stored.thumbprint] = stored
        return stored

    def key_credentials(self) -> list[KeyCredential]:
        return list(self.certificates.values())

    def accepted_at(self, now: float, propagation_seconds: int) -> Application:
        """This application as the token endpoint sees it at `now`: only the certificates added at
        least `propagation_seconds` ago (a newer one is "not found", as in Entra)."""
        if propagation_seconds <= 0:
            return self
        accepted = {
            thumbprint: certificate
            for thumbprint, certificate in self.certificates.items()
            if certificate.added_at + propagation_seconds <= now
        }
        return replace(self, certificates=accepted)

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
            "signInAudience": self.sign_in_audience,
            "passwordCredentials": [p.to_json() for p in self.password_credentials],
            "federatedIdentityCredentials": [f.to_json() for f in self.federated_credentials],
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
    # False: Graph answers 403 to every read of an application object (FACTS §10: whether Global
    # Reader is effective for that read app-only is unconfirmed).
    application_readable: bool = True
    # An app-management policy (`asymmetricKeyLifetime`, `maxLifetime` P{n}D) refusing to add
    # certificates valid longer than this; None: no policy.
    max_certificate_lifetime_days: int | None = None
    app_management_policy_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    certificate_propagation_seconds: int = 0
    created_at: datetime = field(default_factory=utc_now)
    applications: dict[str, Application] = field(default_factory=dict)

    def application_by_object_id(self, object_id: str) -> Application | None:
        return next(
            (a for a in self.applications.values() if a.object_id == object_id.lower()), None
        )

    def certificate_lifetime_refusal(self, certificate: UploadedCertificate) -> str | None:
        """Graph's message when the app-management policy refuses this certificate, else None."""
        days = self.max_certificate_lifetime_days
        if days is None:
            return None
        lifetime = certificate.not_after - certificate.not_before
        if lifetime.total_seconds() <= days * 86400:
            return None
        return (
            "Credential lifetime exceeds the max value allowed as per assigned policy "
            f"'{self.app_management_policy_id}'."
        )

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
            "applicationReadable": self.application_readable,
            "maxCertificateLifetimeDays": self.max_certificate_lifetime_days,
            "certificatePropagationSeconds": self.certificate_propagation_seconds,
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
        # The pattern also matches as plain text, so `/v1.0/$batch` means that path (as a
        # regular expression its `$` would never match).
        return self.path is None or self.path.pattern in path or self.path.search(path) is not None

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
    # For a Graph `$batch`: its sub-requests, each `{"id", "method", "path", "query", "status",
    # "error", "fault"}`, in the order they were sent.
    batch: tuple[dict[str, Any], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "target": self.target,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "error": self.error,
            "durationMs": self.duration_ms,
        }
        if self.batch is not None:
            body["batch"] = [dict(item) for item in self.batch]
        return body


class SandboxState:
    """The sandbox's tenants, faults, latency and request record, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tenants: dict[str, Tenant] = {}
        self.faults: list[Fault] = []
        self.latency_ms = 0
        self.records: list[RequestRecord] = []
        self.batch_order = "request"
        # The sub-requests of the `$batch` this thread is answering: the request record is written
        # by the traffic wrapper after the handler returns, on the same thread.
        self._pending_batch = threading.local()
        # Parts kept outside this object (the federated issuers' key cache) forget with it.
        self.on_reset: list[Callable[[], None]] = []

    def reset(self) -> None:
        with self.lock:
            for forget in self.on_reset:
                forget()
            self.tenants.clear()
            self.faults.clear()
            self.latency_ms = 0
            self.records.clear()
            self.batch_order = "request"

    def note_batch(self, items: list[dict[str, Any]] | None) -> None:
        """Remember the sub-requests of the `$batch` this thread answers, for its record."""
        self._pending_batch.items = tuple(items) if items is not None else None

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
        # Taken by whichever record this thread writes next: the one of the `$batch` that noted it.
        items = getattr(self._pending_batch, "items", None)
        self._pending_batch.items = None
        if items is not None:
            record = replace(record, batch=items)
        with self.lock:
            self.records.append(record)

    def request_summary(self) -> dict[str, Any]:
        with self.lock:
            counts = dict.fromkeys(TARGETS, 0)
            for record in self.records:
                counts[record.target] = counts.get(record.target, 0) + 1
            return {"counts": counts, "value": [r.to_json() for r in self.records]}
