"""Private keys as Azure Key Vault secrets (PKCS#8 PEM), through azure-keyvault-secrets.

Each key is one secret named `m365link-<keyId>`, tagged with what an operator needs to tell whose
key it is and with the account store it belongs to, and expiring with its certificate. Key Vault
soft delete keeps a deleted key recoverable.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from shared.azure_pipeline import client_options
from shared.clouds import is_loopback_host
from shared.errors import AppError, ConfigurationError, DependencyUnavailable
from shared.guid import is_canonical_guid
from shared.keystore.base import KeyLabels, KeyStore, PrivateKeyMissing, StoredKey, check_key_id

SECRET_PREFIX = "m365link-"  # noqa: S105 - a name prefix, not a secret
CONTENT_TYPE = "application/x-pem-file"
# The health probe reads this name, which no key ever has: 404 proves the vault answered and the
# identity may read secrets, at the cost of one GET whatever the vault holds.
PROBE_SECRET = "m365link-health-probe"  # noqa: S105 - a secret's name, not a secret
NEEDED_ROLE = "Key Vault Secrets Officer"
_CLIENT_OPTIONS: dict[str, Any] = client_options()


def secret_name(key_id: str) -> str:
    return SECRET_PREFIX + check_key_id(key_id)


def _tag(value: str) -> str:
    return value[:256]  # Key Vault's limit for a tag value


class KeyVaultKeyStore(KeyStore):
    backend = "keyvault"

    def __init__(self, vault_url: str, credential: TokenCredential) -> None:
        self._client = SecretClient(
            vault_url,
            credential,
            verify_challenge_resource=verifies_challenge(vault_url),
            **_CLIENT_OPTIONS,
        )

    def _unavailable(self, exc: Exception) -> AppError:
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            # Retrying cannot help: the identity lacks the role (or the vault's firewall refuses
            # it). The operator fixes it; the vault's address is never echoed.
            return ConfigurationError(
                f"Key Vault refused the app's identity (HTTP {status}): give the app's managed "
                f"identity the {NEEDED_ROLE} role on the vault (RBAC permission model)"
            )
        return DependencyUnavailable("key vault", "Key Vault is unavailable; try again shortly")

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
                    **({"store": _tag(labels.store)} if labels.store else {}),
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


def verifies_challenge(vault_url: str) -> bool:
    """Whether the SDK must check that a 401 challenge names this vault's own resource.

    Always, except for a stand-in on this machine: a mistyped or hostile host must never receive
    a token for whatever resource its challenge names (storage, say, where this identity reads
    every account). Settings refuse non-vault hosts in Azure; this holds even if they did not.
    """
    return not is_loopback_host(urlparse(vault_url).hostname or "")
