"""Federated identity credentials of an app registration, validated as Entra validates them.

Why: with workload identity federation the customer's app registration trusts an outside OpenID
issuer instead of a certificate (FACTS §12). The admin API (as the customer in the Entra admin
center) and Graph's `POST …/federatedIdentityCredentials` both add them, with Entra's rules: at
most 20 per application, `name` 3–120 characters `^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$` unique per
application in any case, `issuer` a URL, `subject` at most 600 characters, exactly one audience.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

MAX_PER_APPLICATION = 20
MAX_SUBJECT_LENGTH = 600
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")
# The body the app offers for download, as `az ad app federated-credential create` takes it.
FIELDS = frozenset({"name", "issuer", "subject", "audiences", "description"})


class CredentialRefused(ValueError):
    """The credential breaks one of Entra's rules; the message says which."""


@dataclass(frozen=True)
class FederatedCredential:
    """One `federatedIdentityCredential`: who may sign in as the application, and for what."""

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    description: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_json(self) -> dict[str, Any]:
        """Graph's shape (the admin API answers the same)."""
        return {
            "id": self.id,
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": list(self.audiences),
            "description": self.description,
        }


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise CredentialRefused(f"{name} must be a non-empty string")
    return value


def _checked(credential: FederatedCredential, others: list[FederatedCredential]) -> None:
    if not NAME_PATTERN.match(credential.name):
        raise CredentialRefused(
            "name must be 3 to 120 characters of letters, digits, '-' and '_', starting with a "
            "letter or digit"
        )
    if any(o.name.lower() == credential.name.lower() for o in others):
        raise CredentialRefused(
            f"a federated identity credential named {credential.name!r} already exists on this "
            "application"
        )
    parts = urlsplit(credential.issuer)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise CredentialRefused("issuer must be a URL")
    if len(credential.subject) > MAX_SUBJECT_LENGTH:
        raise CredentialRefused(f"subject must be at most {MAX_SUBJECT_LENGTH} characters")
    if len(credential.audiences) != 1 or not all(credential.audiences):
        raise CredentialRefused("audiences must hold exactly one non-empty string")


def new_credential(
    body: dict[str, Any], existing: list[FederatedCredential]
) -> FederatedCredential:
    """A credential from the download body; CredentialRefused when Entra would refuse it."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise CredentialRefused(f"unknown fields {unknown}; allowed: {sorted(FIELDS)}")
    if len(existing) >= MAX_PER_APPLICATION:
        raise CredentialRefused(
            f"an application holds at most {MAX_PER_APPLICATION} federated identity credentials"
        )
    credential = FederatedCredential(
        name=_text(body, "name"),
        issuer=_text(body, "issuer"),
        subject=_text(body, "subject"),
        audiences=_audiences(body),
        description=_description(body),
    )
    _checked(credential, existing)
    return credential


def changed_credential(
    credential: FederatedCredential, body: dict[str, Any], existing: list[FederatedCredential]
) -> FederatedCredential:
    """`credential` with the fields `body` gives changed (Graph's PATCH; `name` is fixed)."""
    unknown = sorted(set(body) - (FIELDS - {"name"}))
    if unknown:
        raise CredentialRefused(f"unknown or fixed fields {unknown} (name cannot change)")
    changes: dict[str, Any] = {}
    for name in ("issuer", "subject"):
        if name in body:
            changes[name] = _text(body, name)
    if "audiences" in body:
        changes["audiences"] = _audiences(body)
    if "description" in body:
        changes["description"] = _description(body)
    updated = replace(credential, **changes)
    _checked(updated, [c for c in existing if c.id != credential.id])
    return updated


def _audiences(body: dict[str, Any]) -> tuple[str, ...]:
    audiences = body.get("audiences")
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise CredentialRefused("audiences must be a list of strings")
    return tuple(audiences)


def _description(body: dict[str, Any]) -> str | None:
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise CredentialRefused("description must be a string")
    return description
