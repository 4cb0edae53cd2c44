"""Custody `vault-secret`: private keys made in the app and kept as Azure Key Vault secrets
(PKCS#8 PEM), through azure-keyvault-secrets; read back to sign (the first release's custody).

Each key is one secret named `m365link-<keyId>`, tagged with what an operator needs to tell whose
key it is and with the account store it belongs to, and expiring with its certificate. Key Vault
soft delete keeps a deleted key recoverable.
"""

from __future__ import annotations

from collections.abc import Iterator

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.adapters.keystore import vault_common as vault
from shared.adapters.keystore.base import KeyLabels, PrivateKeyMissing, StoredKey
from shared.adapters.keystore.pem_store import KeyGenerator, PemKeyStore
from shared.adapters.keystore.vault_common import (
    CLIENT_OPTIONS,
    PREFIX,
    sign_timed,
    tags,
    vault_error,
    vault_name,
    verifies_challenge,
)

SECRET_PREFIX = PREFIX
CONTENT_TYPE = "application/x-pem-file"
# The health probe reads this name, which no key ever has (vault_common.probe).
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
            with sign_timed(self.custody):  # read only to sign
                value = self._client.get_secret(secret_name(key_id)).value
        except ResourceNotFoundError as exc:
            raise PrivateKeyMissing(key_id) from exc
        except AzureError as exc:
            raise self._unavailable(exc) from exc
        if not value:
            raise PrivateKeyMissing(key_id)
        return value.encode("ascii")

    def delete(self, key_id: str) -> None:
        vault.delete(self._client.begin_delete_secret, secret_name(key_id), self._unavailable)

    def list(self) -> Iterator[StoredKey]:
        return vault.listed(self._client.list_properties_of_secrets, self._unavailable)

    def ping(self) -> None:
        vault.probe(self._client.get_secret, PROBE_SECRET, self._unavailable)
