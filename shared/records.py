"""The records the account store keeps, and their JSON resources (camelCase, RFC 3339 times).

A key record is the public half of a generated key: certificate, ids, owner, thumbprints. The
private key itself lives only in the key store under the same `key_id`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.timefmt import to_rfc3339

ACCOUNT_STATUSES = ("pending", "connected", "action_required")
CLOUDS = ("auto", "global", "usgov", "usgovdod", "china")


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    owner: str
    tenant_id: str
    application_id: str
    display_name: str
    thumbprint: str
    thumbprint_sha256: str
    subject: str
    not_before: datetime
    not_after: datetime
    key_size: int
    certificate_pem: str
    created_at: datetime
    account_id: str | None = None
    # Set when unlink removed the account but the key store has not yet confirmed deletion of
    # the private key; such a key is invisible to every route and the health check finishes it.
    deleting: bool = False
    # Where the private key is and how it signs (vault-key | vault-secret | local); "" in records
    # of the first release, which `AppContext.custody_of` reads as that release's custody.
    custody: str = ""
    # When housekeeping deletes the key if no account uses it by then. Not stored: it follows
    # from `created_at` and UNLINKED_KEY_RETENTION_DAYS, so `shared.keys` sets it on the way out.
    expires_at: datetime | None = field(default=None, compare=False)

    def unlinked_expiry(self, retention: timedelta) -> datetime:
        """When a key no account uses is deleted: its creation plus the retention."""
        return self.created_at + retention

    def to_resource(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "displayName": self.display_name,
            "thumbprint": self.thumbprint,
            "thumbprintSha256": self.thumbprint_sha256,
            "subject": self.subject,
            "notBefore": to_rfc3339(self.not_before),
            "notAfter": to_rfc3339(self.not_after),
            "keySize": self.key_size,
            "certificatePem": self.certificate_pem,
            "accountId": self.account_id,
            "createdAt": to_rfc3339(self.created_at),
            "custody": self.custody or None,
            "expiresAt": to_rfc3339(self.expires_at)
            if self.expires_at is not None and self.account_id is None
            else None,
        }


@dataclass(frozen=True)
class Account:
    id: str
    owner: str
    display_name: str
    tenant_id: str
    application_id: str
    organization_name: str | None
    cloud: str
    key_id: str
    thumbprint: str
    certificate_not_after: datetime
    status: str
    created_at: datetime
    updated_at: datetime
    last_verified_at: datetime | None = None
    last_verification: dict[str, Any] | None = None
    version: int = 1  # bumped by every update; an update names the version it read

    def updated(self, **changes: Any) -> Account:
        return replace(self, **changes)

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "organizationName": self.organization_name,
            "cloud": self.cloud,
            "keyId": self.key_id,
            "thumbprint": self.thumbprint,
            "certificateNotAfter": to_rfc3339(self.certificate_not_after),
            "access": "read-only",
            "status": self.status,
            "createdAt": to_rfc3339(self.created_at),
            "updatedAt": to_rfc3339(self.updated_at),
            "lastVerifiedAt": to_rfc3339(self.last_verified_at) if self.last_verified_at else None,
            "lastVerification": self.last_verification,
        }
