"""Federated credentials: what a customer's app registration trusts instead of a certificate.

The function app is an OpenID issuer (`OIDC_ISSUER`); a federated credential names it, a
subject unique to one key resource, and Entra's token-exchange audience. Entra matches all three
exactly and case-sensitively, so every string here is shown and signed exactly as stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

KINDS = ("certificate", "federated")
AUDIENCE = "api://AzureADTokenExchange"  # the audience Entra recommends for other issuers
_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]+")
NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$")  # Graph's federated credential name
SUBJECT_RULE = re.compile(r"^[A-Za-z0-9:._-]{1,600}$")


def subject_for(key_id: str) -> str:
    """The subject of one key resource: its random id, which is no secret (the app signs for a
    subject only for the owner whose key record holds it)."""
    return f"m365link:key:{key_id}"


def name_for(display_name: str, key_id: str) -> str:
    """A valid credential name derived from the display name, unique by the key id's start."""
    slug = _NAME_BAD.sub("-", display_name).strip("-_")[:90]
    name = f"m365link-{slug}-{key_id[:8]}" if slug else f"m365link-{key_id[:8]}"
    assert NAME_RULE.match(name), name
    return name


@dataclass(frozen=True)
class Federation:
    issuer: str
    subject: str
    audience: str
    name: str

    def to_resource(self) -> dict[str, str]:
        return {
            "issuer": self.issuer,
            "subject": self.subject,
            "audience": self.audience,
            "name": self.name,
        }

    def graph_body(self, description: str) -> dict[str, Any]:
        """The credential exactly as Graph's `federatedIdentityCredentials` and
        `az ad app federated-credential create --parameters` take it."""
        return {
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": [self.audience],
            "description": description,
        }

    def matches(self, credential: dict[str, Any]) -> bool:
        """Whether an app registration's credential (Graph's shape) is this one, as Entra
        matches: issuer, subject and audience exactly, case-sensitive."""
        audiences = credential.get("audiences")
        return (
            credential.get("issuer") == self.issuer
            and credential.get("subject") == self.subject
            and isinstance(audiences, list)
            and self.audience in audiences
        )

    @classmethod
    def from_resource(cls, data: dict[str, Any]) -> Federation:
        return cls(
            issuer=str(data["issuer"]),
            subject=str(data["subject"]),
            audience=str(data["audience"]),
            name=str(data["name"]),
        )
