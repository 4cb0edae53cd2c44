"""Custody `vault-secret`: private keys made in the app and kept as Azure Key Vault secrets
(PKCS#8 PEM), through azure-keyvault-secrets; read back to sign (the first release's custody).

Each key is one secret named `m365link-<keyId>`, tagged with what an operator needs to tell whose
key it is and with the account store it belongs to, and expiring with its certificate. Key Vault
soft delete keeps a deleted key recoverable.
"""

from __future__ import annotations

from collections.abc import Iterator

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.guid import is_canonical_guid
from shared.keystore.base import KeyLabels, PrivateKeyMissing, StoredKey
from shared.keystore.pem_store import KeyGenerator, PemKeyStore
from shared.keystore.vault_common import (
    CLIENT_OPTIONS,
    PREFIX,
    tags,
    vault_error,
    vault_name,
    verifies_challenge,
)

SECRET_PREFIX = PREFIX
CONTENT_TYPE = "application/x-pem-file"
# The health probe reads this name, which no key ever has: 404 proves the vault answered and the
# identity may read secrets, at the cost of one GET whatever the vault holds.
PROBE_SECRET = "m365link-health-probe"  # noqa: S105 - a secret's name, not a secret
NEEDED_ROLE = "Key Vault Secrets Officer"


def secret_name(key_id: str) -> str:
    return vault_name(key_id)


class KeyVaultSecretKeyStore(PemKeyStore):
    custody = "vault-secret"
    backend = "keyvault"

    def __init__(
        self, vault_url: str, credential: TokenCredential, *, generate: KeyGenerator | None = None
    ) -> None:
        super().__init__(generate)
        self._client = SecretClient(
            vault_url,
            credential,
            verify_challenge_resource=verifies_challenge(vault_url),
            **CLIENT_OPTIONS,
        )

    def _unavailable(self, exc: Exception) -> Exception:
        return vault_error(exc, NEEDED_ROLE)

    def _save(self, key_id: str, private_key_pem: bytes, labels: KeyLabels) -> None:
        try:
            self._client.set_secret(
                secret_name(key_id),
                private_key_pem.decode("ascii"),
                content_type=CONTENT_TYPE,
                tags=tags(key_id, labels),
                expires_on=labels.not_after,
                enabled=True,
            )
        except AzureError as exc:
            raise self._unavailable(exc) from exc

    def _load(self, key_id: str) -> bytes:
        try:
            value = self._client.get_secret(secret_name(key_id)).value
        except ResourceNotFoundError as exc:
            raise PrivateKeyMissing(key_id) from exc
        except AzureError as exc:
            raise self._unavailable(exc) from exc
        if not value:
            raise PrivateKeyMissing(key_id)
        return value.encode("ascii")

    def delete(self, key_id: str) -> None:
        try:
            # The DELETE is sent at once; waiting for the poller would only wait for Key Vault to
            # finish moving the secret to its soft-deleted state.
            self._client.begin_delete_secret(secret_name(key_id))
        except ResourceNotFoundError:
            return
        except HttpResponseError as exc:
            if exc.status_code == 409:  # already being deleted
                return
            raise self._unavailable(exc) from exc
        except AzureError as exc:
            raise self._unavailable(exc) from exc

    def list(self) -> Iterator[StoredKey]:
        try:
            found = [
                StoredKey(p.name[len(SECRET_PREFIX) :], p.created_on, (p.tags or {}).get("store"))
                for p in self._client.list_properties_of_secrets()
                if p.name
                and p.name.startswith(SECRET_PREFIX)
                and is_canonical_guid(p.name[len(SECRET_PREFIX) :])
            ]
        except AzureError as exc:
            raise self._unavailable(exc) from exc
        return iter(found)

    def ping(self) -> None:
        try:
            self._client.get_secret(PROBE_SECRET)
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise self._unavailable(exc) from exc
