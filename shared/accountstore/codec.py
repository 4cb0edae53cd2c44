"""Records to flat, JSON-safe dicts and back: one format shared by both backends."""

from __future__ import annotations

import json
from typing import Any

from shared.records import Account, KeyRecord
from shared.timefmt import from_rfc3339, to_rfc3339


def key_to_row(record: KeyRecord) -> dict[str, Any]:
    return {
        "keyId": record.key_id,
        "owner": record.owner,
        "tenantId": record.tenant_id,
        "applicationId": record.application_id,
        "displayName": record.display_name,
        "thumbprint": record.thumbprint,
        "thumbprintSha256": record.thumbprint_sha256,
        "subject": record.subject,
        "notBefore": to_rfc3339(record.not_before),
        "notAfter": to_rfc3339(record.not_after),
        "keySize": record.key_size,
        "certificatePem": record.certificate_pem,
        "createdAt": to_rfc3339(record.created_at),
        "accountId": record.account_id or "",
        "deleting": record.deleting,
    }


def key_from_row(row: dict[str, Any]) -> KeyRecord:
    return KeyRecord(
        key_id=row["keyId"],
        owner=row["owner"],
        tenant_id=row["tenantId"],
        application_id=row["applicationId"],
        display_name=row["displayName"],
        thumbprint=row["thumbprint"],
        thumbprint_sha256=row["thumbprintSha256"],
        subject=row["subject"],
        not_before=from_rfc3339(row["notBefore"]),
        not_after=from_rfc3339(row["notAfter"]),
        key_size=int(row["keySize"]),
        certificate_pem=row["certificatePem"],
        created_at=from_rfc3339(row["createdAt"]),
        account_id=row.get("accountId") or None,
        deleting=bool(row.get("deleting", False)),
    )


def account_to_row(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "owner": account.owner,
        "displayName": account.display_name,
        "tenantId": account.tenant_id,
        "applicationId": account.application_id,
        "organizationName": account.organization_name or "",
        "cloud": account.cloud,
        "keyId": account.key_id,
        "thumbprint": account.thumbprint,
        "certificateNotAfter": to_rfc3339(account.certificate_not_after),
        "status": account.status,
        "createdAt": to_rfc3339(account.created_at),
        "updatedAt": to_rfc3339(account.updated_at),
        "lastVerifiedAt": to_rfc3339(account.last_verified_at) if account.last_verified_at else "",
        "lastVerification": json.dumps(account.last_verification)
        if account.last_verification is not None
        else "",
        "version": account.version,
    }


def account_from_row(row: dict[str, Any]) -> Account:
    return Account(
        id=row["id"],
        owner=row["owner"],
        display_name=row["displayName"],
        tenant_id=row["tenantId"],
        application_id=row["applicationId"],
        organization_name=row.get("organizationName") or None,
        cloud=row["cloud"],
        key_id=row["keyId"],
        thumbprint=row["thumbprint"],
        certificate_not_after=from_rfc3339(row["certificateNotAfter"]),
        status=row["status"],
        created_at=from_rfc3339(row["createdAt"]),
        updated_at=from_rfc3339(row["updatedAt"]),
        last_verified_at=from_rfc3339(row["lastVerifiedAt"]) if row.get("lastVerifiedAt") else None,
        last_verification=json.loads(row["lastVerification"])
        if row.get("lastVerification")
        else None,
        version=int(row["version"]),
    )
