"""The two kinds of credential a rotation moves between, and the words that name them.

A rotation replaces an account's credential by a new one of either kind: a certificate (the
app holds its key) or a federated credential (the app's issuer key signs its assertions). What
the app can do on the customer's app registration depends on the pair: Graph's addKey needs a
proof signed by a certificate the app registration already holds, and adding or removing a
federated credential needs Application.ReadWrite (FACTS §12), which the app never has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core.federation import AUDIENCE, subject_for
from shared.core.model import Account, KeyRecord, Rotation

CERTIFICATE, FEDERATED = "certificate", "federated"
ADMIN_CENTER = "App registrations > your app > Certificates & secrets"


def app_adds(new_kind: str, current_kind: str) -> bool:
    """Whether automatic renewal can add the new credential itself (addKey): only a certificate,
    and only with a proof signed by the account's current certificate."""
    return new_kind == CERTIFICATE and current_kind == CERTIFICATE


@dataclass(frozen=True)
class ProofKey:
    """The certificate whose key signs a write's proof: its key id and SHA-1 thumbprint."""

    key_id: str
    thumbprint: str


def proof_key(account: Account, key_id: str, thumbprint: str) -> ProofKey:
    """Who signs the proof of removing certificate `thumbprint` (key `key_id`): the account's
    current certificate, or, when the account signs in with a federated credential, that
    certificate's own key (the app registration holds no other certificate of the app's)."""
    if account.thumbprint:
        return ProofKey(account.key_id, account.thumbprint)
    return ProofKey(key_id, thumbprint)


def replaced_certificate(rotation: Rotation) -> bool:
    """Whether the key a rotation replaced is a certificate (a federated credential has no
    thumbprint, so its rotation names none)."""
    return bool(rotation.previous_thumbprint)


def described(key: dict[str, Any]) -> str:
    """A key resource in words: "certificate <thumbprint>" or "federated credential <subject>"."""
    federation = key.get("federation")
    if key.get("kind") == FEDERATED and isinstance(federation, dict):
        return f"federated credential {federation.get('subject')}"
    return f"certificate {key.get('thumbprint')}"


def previous_described(rotation: Rotation, record: KeyRecord | None) -> str:
    """The key a rotation replaced, in words (`record`: its key record, when still there)."""
    if replaced_certificate(rotation):
        return f"certificate {rotation.previous_thumbprint}"
    if record is not None and record.federation is not None:
        return f"federated credential {record.federation.subject}"
    return f"federated credential {subject_for(rotation.previous_key_id)}"


def add_federated_steps(key: dict[str, Any]) -> str:
    """How the customer adds a new federated credential: the admin center's fields, or `az`."""
    federation = key.get("federation") or {}
    name = federation.get("name")
    return (
        f"Add the federated credential {name} to the app registration ({ADMIN_CENTER} > "
        "Federated credentials > Add credential > Other issuer: Issuer "
        f"{federation.get('issuer')}, "
        f"Subject identifier {federation.get('subject')}, Audience "
        f"{federation.get('audience') or AUDIENCE}, exactly as shown: Entra matches them "
        f"case-sensitively), or run `az ad app federated-credential create --id "
        f"{key.get('applicationId')} --parameters {name}.json` with the file from "
        f"GET /api/keys/{key.get('keyId')}?format=json."
    )


def upload_steps(key: dict[str, Any]) -> str:
    """How the customer uploads a new certificate."""
    return (
        f"Upload the new certificate {key.get('thumbprint')} (GET /api/keys/{key.get('keyId')}"
        f"?format=cer) under {ADMIN_CENTER}"
    )


def remove_federated_steps(record: KeyRecord | None, rotation: Rotation, app_id: str) -> str:
    """How the customer removes a replaced federated credential: the app cannot (it would need
    Application.ReadWrite on the app registration)."""
    federation = record.federation if record is not None else None
    subject = federation.subject if federation else subject_for(rotation.previous_key_id)
    name = federation.name if federation else None
    named = f"{name} (subject {subject})" if name else f"with subject {subject}"
    command = (
        f", or run `az ad app federated-credential delete --id {app_id} "
        f"--federated-credential-id {name}`"
        if name
        else ""
    )
    return (
        f"Remove the previous federated credential {named} from the app registration "
        f"({ADMIN_CENTER} > Federated credentials){command}: the app cannot remove it itself."
    )
