"""The records the account store keeps, and their JSON resources (camelCase, RFC 3339 times).

A key record is the public half of a generated key: certificate, ids, owner, thumbprints. The
private key itself lives only in the key store under the same `key_id`. A key of kind `federated`
has no key pair of its own: it is a federated credential (issuer, subject, audience) whose
assertions the app's issuer key signs, so its certificate fields are empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.core.federation import Federation
from shared.support.timefmt import from_rfc3339, to_rfc3339

ACCOUNT_STATUSES = ("pending", "connected", "action_required")
CLOUDS = ("auto", "global", "usgov", "usgovdod", "china")
RENEWALS = ("manual", "automatic")
ROTATION_STATUSES = ("awaiting_upload", "completed", "cancelled", "failed")


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    owner: str
    tenant_id: str
    application_id: str
    display_name: str
    thumbprint: str  # "" for a federated credential (likewise every certificate field)
    thumbprint_sha256: str
    subject: str
    not_before: datetime | None
    not_after: datetime | None
    key_size: int | None
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
    # from `created_at` and UNLINKED_KEY_RETENTION_DAYS, so `shared.linking.keys` sets it on the
    # way out.
    expires_at: datetime | None = field(default=None, compare=False)
    kind: str = "certificate"  # certificate | federated
    federation: Federation | None = None  # federated only

    @property
    def federated(self) -> bool:
        return self.kind == "federated"

    def unlinked_expiry(self, retention: timedelta) -> datetime:
        """When a key no account uses is deleted: its creation plus the retention."""
        return self.created_at + retention

    def to_resource(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "kind": self.kind,
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "displayName": self.display_name,
            "federation": self.federation.to_resource() if self.federation else None,
            "thumbprint": self.thumbprint or None,
            "thumbprintSha256": self.thumbprint_sha256 or None,
            "subject": self.subject or None,
            "notBefore": _time_or_none(self.not_before),
            "notAfter": _time_or_none(self.not_after),
            "keySize": self.key_size,
            "certificatePem": self.certificate_pem or None,
            "accountId": self.account_id,
            "createdAt": to_rfc3339(self.created_at),
            "custody": self.custody or None,
            "expiresAt": to_rfc3339(self.expires_at)
            if self.expires_at is not None and self.account_id is None
            else None,
        }


def _time_or_none(at: datetime | None) -> str | None:
    return to_rfc3339(at) if at is not None else None


@dataclass(frozen=True)
class Rotation:
    """A certificate renewal of one account: a new key bound to the account from the start,
    switched to (one atomic write of the account) once Entra accepts its certificate; the key
    it replaced stays usable until `retire_after`, then is deleted.

    Automatic renewal adds the new certificate to the app registration itself (Graph addKey)
    and removes the old one at retirement (removeKey): `add_key` / `remove_key` record how far
    it got (pending: to do or to try again; done; refused: Graph said no, see `detail`)."""

    key: dict[str, Any]  # the new key's resource, as it stood when the rotation started
    previous_key_id: str
    previous_thumbprint: str
    status: str  # awaiting_upload | completed | cancelled | failed
    renewal: str  # manual | automatic
    started_at: datetime
    completed_at: datetime | None = None
    retire_after: datetime | None = None  # completed: when the previous key is deleted
    previous_retired_at: datetime | None = None  # when it was (the rotation is then over)
    detail: str | None = None
    add_key: str | None = None  # automatic only: pending | done | refused
    remove_key: str | None = None  # automatic only, at retirement: pending | done | refused

    @property
    def key_id(self) -> str:
        return str(self.key["keyId"])

    @property
    def kind(self) -> str:
        """The new credential's kind (keys of the second release's rotations are certificates)."""
        return str(self.key.get("kind") or "certificate")

    @property
    def thumbprint(self) -> str:
        return str(self.key.get("thumbprint") or "")

    @property
    def not_after(self) -> datetime | None:
        value = self.key.get("notAfter")
        return from_rfc3339(str(value)) if value else None

    @property
    def in_progress(self) -> bool:
        return self.status == "awaiting_upload"

    @property
    def retiring(self) -> bool:
        """Completed, and the key it replaced not yet deleted."""
        return self.status == "completed" and self.previous_retired_at is None

    def updated(self, **changes: Any) -> Rotation:
        return replace(self, **changes)

    def to_resource(self, account_id: str) -> dict[str, Any]:
        return {
            "accountId": account_id,
            "status": self.status,
            "renewal": self.renewal,
            "key": self.key,
            "previousKeyId": self.previous_key_id,
            "previousThumbprint": self.previous_thumbprint or None,  # None: it was federated
            "startedAt": to_rfc3339(self.started_at),
            "completedAt": to_rfc3339(self.completed_at) if self.completed_at else None,
            "retiresAt": to_rfc3339(self.retire_after) if self.retire_after else None,
            "previousRetiredAt": to_rfc3339(self.previous_retired_at)
            if self.previous_retired_at
            else None,
            "detail": self.detail,
            "appRegistration": None
            if self.renewal == "manual"
            else {"addKey": self.add_key, "removeKey": self.remove_key},
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
    thumbprint: str  # "" for a federated credential
    certificate_not_after: datetime | None  # None for a federated credential: it never expires
    status: str
    created_at: datetime
    updated_at: datetime
    last_verified_at: datetime | None = None
    last_verification: dict[str, Any] | None = None
    version: int = 1  # bumped by every update; an update names the version it read
    certificate_renewal: str = "manual"  # manual | automatic (see Rotation)
    rotation: Rotation | None = None  # the current or last one
    credential: str = "certificate"  # certificate | federated: the kind of the key `key_id`

    @property
    def federated(self) -> bool:
        return self.credential == "federated"

    def updated(self, **changes: Any) -> Account:
        return replace(self, **changes)

    def key_ids(self) -> tuple[str, ...]:
        """Every key bound to this account: its own, a rotation's new one, and the one a
        rotation replaced until it is retired. Unlink deletes them all."""
        ids = [self.key_id]
        rotation = self.rotation
        if rotation is not None and rotation.in_progress:
            ids.append(rotation.key_id)
        if rotation is not None and rotation.retiring:
            ids.append(rotation.previous_key_id)
        return tuple(dict.fromkeys(ids))

    def renewal_window(self, warning: timedelta) -> datetime | None:
        """When the certificate enters the CERT_EXPIRY_WARNING_DAYS window: the timer starts
        a renewal from then on (and the schedule makes the account due then). None for a
        federated credential, which never expires and is never renewed."""
        if self.certificate_not_after is None:
            return None
        return self.certificate_not_after - warning

    @property
    def etag(self) -> str:
        """The account's version as an HTTP entity tag (`GET` answers it, `If-Match` takes it)."""
        return f'"{self.version}"'

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "organizationName": self.organization_name,
            "cloud": self.cloud,
            "keyId": self.key_id,
            "credential": self.credential,
            "thumbprint": self.thumbprint or None,
            "certificateNotAfter": _time_or_none(self.certificate_not_after),
            "access": "read-only",
            "status": self.status,
            "createdAt": to_rfc3339(self.created_at),
            "updatedAt": to_rfc3339(self.updated_at),
            "lastVerifiedAt": to_rfc3339(self.last_verified_at) if self.last_verified_at else None,
            "lastVerification": self.last_verification,
            "certificateRenewal": self.certificate_renewal,
            "rotation": self.rotation.to_resource(self.id) if self.rotation else None,
        }


EVENT_TYPES = (
    "linked",
    "updated",
    "verified",
    "rotation_started",
    "rotation_completed",
    "rotation_cancelled",
    "rotation_failed",
    "certificate_expiring",
    "unlinked",
)


@dataclass(frozen=True)
class Actor:
    """Who made a change: a portal user (their `oid`, else `sub` claim) or the timer."""

    kind: str  # user | timer
    id: str

    def to_resource(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}


TIMER = Actor("timer", "health_check")


@dataclass(frozen=True)
class Event:
    """One change to an account, written in the same store transaction as the change."""

    id: str
    owner: str
    account_id: str
    type: str
    at: datetime
    actor: Actor
    status: str | None = None
    previous_status: str | None = None
    detail: str | None = None
    # The owner's event sequence number, given by the store when it writes the event: events
    # commit in this order and the change feed's cursor is one.
    seq: int = 0

    def to_resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountId": self.account_id,
            "type": self.type,
            "at": to_rfc3339(self.at),
            "actor": self.actor.to_resource(),
            "status": self.status,
            "previousStatus": self.previous_status,
            "detail": self.detail,
        }
