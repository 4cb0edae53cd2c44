"""A customer walking the linking guide, against the sandbox tenant and the app's routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import RunningApp

GLOBAL_READER = "Global Reader"
PERMISSION = "AccessReview.Read.All"
# API.md, "Verification": the checks that need the token, skipped when no token was had.
TOKEN_CHECKS = (
    "admin_consent",
    "directory_role",
    "least_privilege",
    "directory_read",
    "access_reviews_read",
    "app_audience",
    "app_credentials",
)


@dataclass
class Customer:
    app: RunningApp
    sandbox: Any
    tenant_id: str = ""
    application_id: str = ""
    domains: list[str] = field(default_factory=list)
    key: dict[str, Any] = field(default_factory=dict)
    account: dict[str, Any] = field(default_factory=dict)

    @property
    def admin(self) -> Any:
        return self.sandbox.admin

    def register(
        self,
        *,
        consent: bool = True,
        role: bool = True,
        cloud: str = "global",
        emit_wids: bool = True,
        licensed: bool = True,
        name: str = "Contoso",
        token_lifetime: int | None = None,
    ) -> Customer:
        """Register a single-tenant app, as the linking guide asks (no certificate yet)."""
        domain = f"{name.lower()}{uuid.uuid4().hex[:6]}.onmicrosoft.com"
        tenant = self.admin.create_tenant(
            name, domains=[domain], cloud=cloud, emit_wids=emit_wids, licensed=licensed
        )
        self.tenant_id = tenant["tenantId"]
        if token_lifetime is not None:
            self.admin.update_tenant(self.tenant_id, token_lifetime_seconds=token_lifetime)
        self.domains = [domain]
        registration = self.admin.create_application(self.tenant_id, "Governance portal")
        self.application_id = registration["appId"]
        if consent:
            self.admin.set_permissions(self.tenant_id, self.application_id, [PERMISSION])
        if role:
            self.admin.set_directory_roles(self.tenant_id, self.application_id, [GLOBAL_READER])
        return self

    def generate_key(self, **extra: Any) -> dict[str, Any]:
        body = {
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "displayName": "Contoso production",
            **extra,
        }
        response = self.app.http.post(self.app.api("/keys"), json=body)
        assert response.status_code == 201, response.text
        self.key = response.json()
        return self.key

    def upload_certificate(self, fmt: str = "cer") -> None:
        download = self.app.http.get(
            self.app.api(f"/keys/{self.key['keyId']}"), params={"format": fmt}
        )
        assert download.status_code == 200
        self.admin.upload_certificate(self.tenant_id, self.application_id, download.content)

    def connect(self, **extra: Any) -> dict[str, Any]:
        body = {
            "displayName": "Contoso production",
            "tenantId": self.tenant_id,
            "applicationId": self.application_id,
            "organizationName": self.domains[0] if self.domains else None,
            "keyId": self.key["keyId"],
            **extra,
        }
        response = self.app.http.post(self.app.api("/accounts"), json=body)
        assert response.status_code == 201, response.text
        self.account = response.json()
        return self.account

    def verify(self) -> dict[str, Any]:
        response = self.app.http.post(self.app.api(f"/accounts/{self.account['id']}/verify"))
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    def current(self) -> dict[str, Any]:
        account: dict[str, Any] = self.app.http.get(
            self.app.api(f"/accounts/{self.account['id']}")
        ).json()
        return account

    def link_all_the_way(self, **register: Any) -> Customer:
        self.register(**register)
        self.generate_key()
        self.upload_certificate()
        self.connect()
        return self


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def check(report: dict[str, Any], check_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in report["checks"] if c["id"] == check_id)
    return found


def graph_requests(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The Graph requests of the sandbox's record, each `$batch` replaced by its sub-requests."""
    found: list[dict[str, Any]] = []
    for entry in record["value"]:
        if entry["target"] == "graph":
            found.extend(entry.get("batch") or [entry])
    return found


@contextmanager
def faulted(sandbox: Any, target: str, status: int | None, **fault: Any) -> Iterator[None]:
    """The sandbox answers `target`'s requests with the fault inside the block, and no longer after
    it, whatever the block raises."""
    sandbox.admin.add_fault(target, status, **fault)
    try:
        yield
    finally:
        sandbox.admin.clear_faults()
