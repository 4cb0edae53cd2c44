"""The app registration as Graph returns it, read for the `app_audience` and `app_credentials`
checks and the report's `appRegistration`. Pure: no I/O.

`GET /applications(appId='…')?$select=id,signInAudience,keyCredentials,passwordCredentials`
(FACTS §10). A certificate is named by its SHA-1 thumbprint: Graph's `customKeyIdentifier` is
those 20 bytes in base64 (hex is accepted too); when it is absent or not a thumbprint, the SHA-1
of the certificate itself (`key`, base64 DER, returned on a `$select`) names it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.support.timefmt import to_rfc3339

SINGLE_TENANT = "AzureADMyOrg"
SELECT = "id,signInAudience,keyCredentials,passwordCredentials"
_HEX_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")


@dataclass(frozen=True)
class Certificate:
    thumbprint: str | None  # upper-case hex SHA-1; None when Graph gave nothing to name it by
    not_after: datetime | None


@dataclass(frozen=True)
class Registration:
    object_id: str | None
    sign_in_audience: str | None
    client_secrets: int
    secret_hints: tuple[str, ...]
    certificates: tuple[Certificate, ...]


@dataclass(frozen=True)
class FederatedCredential:
    """One of the registration's `federatedIdentityCredentials`, as Graph lists it."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class Owners:
    """Whose credential is whose: this account's, its rotation's new one and the one a finished
    rotation replaced; certificates by thumbprint, federated credentials by subject (of our
    issuer and audience). Every other credential is `other`."""

    this_account: str
    rotation: frozenset[str] = frozenset()
    previous: frozenset[str] = frozenset()
    issuer: str = ""
    audience: str = ""
    subject: str = ""  # this account's federated credential, when it has one
    rotation_subjects: frozenset[str] = frozenset()
    previous_subjects: frozenset[str] = frozenset()

    def used_by(self, thumbprint: str | None) -> str:
        if not thumbprint:
            return "other"
        if thumbprint == self.this_account.upper():
            return "this-account"
        if thumbprint in self.rotation:
            return "rotation"
        if thumbprint in self.previous:
            return "previous"
        return "other"

    def federated_used_by(self, credential: FederatedCredential) -> str:
        """Entra's match: issuer, subject and audience exactly, case-sensitive."""
        if credential.issuer != self.issuer or self.audience not in credential.audiences:
            return "other"
        if self.subject and credential.subject == self.subject:
            return "this-account"
        if credential.subject in self.rotation_subjects:
            return "rotation"
        if credential.subject in self.previous_subjects:
            return "previous"
        return "other"


def thumbprint_of(credential: dict[str, Any]) -> str | None:
    """The SHA-1 thumbprint a `keyCredential` names, upper-case hex, compared as bytes."""
    identifier = credential.get("customKeyIdentifier")
    if isinstance(identifier, str) and identifier.strip():
        text = identifier.strip()
        if _HEX_THUMBPRINT.fullmatch(text):
            return text.upper()
        raw = _base64(text)
        if raw is not None and len(raw) == 20:
            return raw.hex().upper()
    key = credential.get("key")
    if isinstance(key, str) and key:
        der = _base64(key)
        if der:
            return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()
    return None


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _entries(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    value = body.get(name)
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def registration_of(body: dict[str, Any] | None) -> Registration:
    body = body or {}
    secrets = _entries(body, "passwordCredentials")
    object_id = body.get("id")
    audience = body.get("signInAudience")
    return Registration(
        object_id=object_id if isinstance(object_id, str) else None,
        sign_in_audience=audience if isinstance(audience, str) else None,
        client_secrets=len(secrets),
        secret_hints=tuple(str(s["hint"]) for s in secrets if isinstance(s.get("hint"), str)),
        certificates=tuple(
            Certificate(thumbprint_of(c), _moment(c.get("endDateTime")))
            for c in _entries(body, "keyCredentials")
        ),
    )


def federated_of(body: dict[str, Any] | None) -> tuple[FederatedCredential, ...]:
    """The `value` of `GET /applications(appId='…')/federatedIdentityCredentials`; entries
    without string fields are kept with empty strings (they match nothing of ours)."""

    def text(entry: dict[str, Any], name: str) -> str:
        value = entry.get(name)
        return value if isinstance(value, str) else ""

    entries = _entries(body or {}, "value")
    return tuple(
        FederatedCredential(
            name=text(e, "name"),
            issuer=text(e, "issuer"),
            subject=text(e, "subject"),
            audiences=tuple(a for a in e.get("audiences") or () if isinstance(a, str))
            if isinstance(e.get("audiences"), list)
            else (),
        )
        for e in entries
    )


def expired(registration: Registration, now: datetime) -> list[str]:
    """Thumbprints of the certificates past their `endDateTime`."""
    return [
        c.thumbprint or "(no thumbprint)"
        for c in registration.certificates
        if c.not_after is not None and c.not_after < now
    ]


def registration_json(
    registration: Registration,
    owners: Owners,
    federated: tuple[FederatedCredential, ...] | None = None,
) -> dict[str, Any]:
    """The report's `appRegistration`; `federatedCredentials` is null when they could not be
    read."""
    return {
        "objectId": registration.object_id,
        "signInAudience": registration.sign_in_audience,
        "clientSecrets": registration.client_secrets,
        "certificates": [
            {
                "thumbprint": c.thumbprint,
                "notAfter": to_rfc3339(c.not_after) if c.not_after else None,
                "usedBy": owners.used_by(c.thumbprint),
            }
            for c in registration.certificates
        ],
        "federatedCredentials": None
        if federated is None
        else [
            {
                "name": f.name,
                "issuer": f.issuer,
                "subject": f.subject,
                "audiences": list(f.audiences),
                "usedBy": owners.federated_used_by(f),
            }
            for f in federated
        ],
    }
