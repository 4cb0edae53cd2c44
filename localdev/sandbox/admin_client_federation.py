"""The admin client's calls for federated credentials (a mixin of `SandboxAdmin`).

Why: kept apart so admin_client.py stays small; the routes are admin_federation.py's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode


class FederationAdminCalls:
    """Federated credentials of an app registration, the issuer-key cache, the last assertion."""

    def _call(self, method: str, path: str, *, json: Any = None) -> Any:
        raise NotImplementedError  # SandboxAdmin's

    @staticmethod
    def _credentials_path(tenant_id: str, app_id: str, credential: str | None = None) -> str:
        path = f"tenants/{tenant_id}/applications/{app_id}/federated-credentials"
        return f"{path}/{quote(credential, safe='')}" if credential else path

    def add_federated_credential(
        self, tenant_id: str, app_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """`body` is the download the app offers: `{"name", "issuer", "subject", "audiences",
        "description"}`."""
        added: dict[str, Any] = self._call(
            "POST", self._credentials_path(tenant_id, app_id), json=body
        )
        return added

    def federated_credentials(self, tenant_id: str, app_id: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._call("GET", self._credentials_path(tenant_id, app_id))[
            "value"
        ]
        return listed

    def update_federated_credential(
        self, tenant_id: str, app_id: str, credential: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """`credential` is its id or name; `changes` any of issuer, subject, audiences,
        description."""
        updated: dict[str, Any] = self._call(
            "PATCH", self._credentials_path(tenant_id, app_id, credential), json=changes
        )
        return updated

    def delete_federated_credential(self, tenant_id: str, app_id: str, credential: str) -> None:
        self._call("DELETE", self._credentials_path(tenant_id, app_id, credential))

    def federation(self) -> dict[str, Any]:
        """`{"keyCacheTtlSeconds", "issuers": [...], "fetches", "lastAccepted"}`."""
        state: dict[str, Any] = self._call("GET", "federation")
        return state

    def set_issuer_key_ttl(self, seconds: int) -> None:
        self._call("PUT", "federation/key-cache", json={"ttlSeconds": seconds})

    def flush_issuer_keys(self, issuer: str | None = None) -> None:
        query = f"?{urlencode({'issuer': issuer})}" if issuer else ""
        self._call("DELETE", f"federation/key-cache{query}")

    def last_federated_assertion(self) -> dict[str, Any]:
        """`{"tenantId", "appId", "credential", "header", "claims", "acceptedAt"}`."""
        accepted: dict[str, Any] = self._call("GET", "federation/last-accepted")
        return accepted
