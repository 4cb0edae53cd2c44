"""What both Key Vault custodies share: client options, the challenge rule, tags, and how the
vault's failures become the app's errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from azure.core.exceptions import ResourceNotFoundError

from shared.azure_pipeline import client_options
from shared.clouds import is_loopback_host
from shared.errors import AppError, ConfigurationError, DependencyUnavailable
from shared.keystore.base import KeyLabels, PrivateKeyMissing, check_key_id

PREFIX = "m365link-"  # secret and key names: m365link-<keyId>
CLIENT_OPTIONS: dict[str, Any] = client_options()


def vault_name(key_id: str) -> str:
    return PREFIX + check_key_id(key_id)


def verifies_challenge(vault_url: str) -> bool:
    """Whether the SDK must check that a 401 challenge names this vault's own resource.

    Always, except for a stand-in on this machine: a mistyped or hostile host must never receive
    a token for whatever resource its challenge names (storage, say, where this identity reads
    every account). Settings refuse non-vault hosts in Azure; this holds even if they did not.
    """
    return not is_loopback_host(urlparse(vault_url).hostname or "")


def _tag(value: str) -> str:
    return value[:256]  # Key Vault's limit for a tag value


def tags(key_id: str, labels: KeyLabels) -> dict[str, str]:
    return {
        "app": "m365-link",
        "keyId": key_id,
        "owner": _tag(labels.owner),
        "tenantId": labels.tenant_id,
        "applicationId": labels.application_id,
        **({"thumbprint": labels.thumbprint} if labels.thumbprint else {}),
        **({"store": _tag(labels.store)} if labels.store else {}),
    }


def vault_error(exc: Exception, needed_role: str) -> Exception:
    """The app's error for what the vault (or the way to it) answered."""
    if isinstance(exc, AppError | PrivateKeyMissing):
        return exc
    if isinstance(exc, ResourceNotFoundError):
        return PrivateKeyMissing("the key is not in the vault")
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        # Retrying cannot help: the identity lacks the role (or the vault's firewall refuses
        # it). The operator fixes it; the vault's address is never echoed.
        return ConfigurationError(
            f"Key Vault refused the app's identity (HTTP {status}): give the app's managed "
            f"identity the {needed_role} role on the vault (RBAC permission model)"
        )
    return DependencyUnavailable("key vault", "Key Vault is unavailable; try again shortly")
