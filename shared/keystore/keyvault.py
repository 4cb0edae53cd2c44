"""Private keys as Azure Key Vault secrets (PKCS#8 PEM), through azure-keyvault-secrets.

Each key is one secret named `m365link-<keyId>`, tagged with what an operator needs to tell whose
key it is, and expiring with its certificate. Key Vault soft delete keeps a deleted key recoverable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.errors import DependencyUnavailable
from shared.keystore.base import KeyLabels, KeyStore, PrivateKeyMissing, StoredKey, check_key_id

SECRET_PREFIX = "m365link-"  # noqa: S105 - a name prefix, not a secret
CONTENT_TYPE = "application/x-pem-file"
_VAULT_SUFFIXES = (
    ".vault.azure.net",
    ".vault.usgovcloudapi.net",
    ".vault.azure.cn",
    ".managedhsm.azure.net",
)
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.3,
    "retry_backoff_max": 2,
    "connection_timeout": 5,
    "read_timeout": 15,
}


def secret_name(key_id: str) -> str:
    return SECRET_PREFIX + check_key_id(key_id)


def _tag(value: str) -> str:
    return value[:256]  # Key Vault's limit for a tag value


class KeyVaultKeyStore(KeyStore):
    backend = "keyvault"

    def __init__(self, vault_url: str, credential: TokenCredential) -> None:
        host = urlparse(vault_url).hostname or ""
        # The SDK checks that the 401 challenge's resource matches the vault's domain; that only
        # holds for Azure's own vault hosts, so a custom endpoint (a private stand-in) opts out.
        verify = host.endswith(_VAULT_SUFFIXES)
        self._client = SecretClient(
            vault_url, credential, verify_challenge_resource=verify, **_CLIENT_OPTIONS
        )

    def _unavailable(self, exc: Exception) -> DependencyUnavailable:
        status = getattr(exc, "status_code", None)
        detail = "Key Vault is unavailable; try again shortly"
        if status in (401, 403):
            detail = "Key Vault refused the app's identity; the operator must check its role"
        return DependencyUnavailable("key vault", detail)

    def put(self, key_id: str, private_key_pem: bytes, labels: KeyLabels) -> None:
        try:
            self._client.set_secret(
                secret_name(key_id),
                private_key_pem.decode("ascii"),
                content_type=CONTENT_TYPE,
                tags={
                    "app": "m365-link",
                    "keyId": key_id,
                    "owner": _tag(labels.owner),
                    "tenantId": labels.tenant_id,
                    "applicationId": labels.application_id,
                    "thumbprint": labels.thumbprint,
                },
                expires_on=labels.not_after,
                enabled=True,
            )
        except AzureError as exc:
            raise self._unavailable(exc) from exc

    def get(self, key_id: str) -> bytes:
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
                StoredKey(p.name[len(SECRET_PREFIX) :], p.created_on)
                for p in self._client.list_properties_of_secrets()
                if p.name and p.name.startswith(SECRET_PREFIX)
            ]
        except AzureError as exc:
            raise self._unavailable(exc) from exc
        return iter(found)

    def ping(self) -> None:
        try:
            next(iter(self._client.list_properties_of_secrets(max_page_size=1)), None)
        except AzureError as exc:
            raise self._unavailable(exc) from exc
