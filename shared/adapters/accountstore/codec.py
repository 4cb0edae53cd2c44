"""Records to flat, JSON-safe dicts and back: one format shared by both backends.

Table Storage limits a string property to 64 KiB (32K UTF-16 units) and an entity to 1 MiB and
252 properties, and a report names the tenant's verified domains twice, so `split_report` spreads
a long report over several properties for that backend and `join_report` puts it back together.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from shared.core.federation import Federation
from shared.core.model import Account, Actor, Event, KeyRecord, Rotation
from shared.support.timefmt import from_rfc3339, to_rfc3339


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
        "notBefore": _moment(record.not_before),
        "notAfter": _moment(record.not_after),
        "keySize": record.key_size if record.key_size is not None else 0,
        "certificatePem": record.certificate_pem,
        "createdAt": to_rfc3339(record.created_at),
        "accountId": record.account_id or "",
        "deleting": record.deleting,
        "custody": record.custody,
        "kind": record.kind,
        "federation": json.dumps(record.federation.to_resource()) if record.federation else "",
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
        not_before=_when(row["notBefore"]),
        not_after=_when(row["notAfter"]),
        key_size=int(row["keySize"]) or None,
        certificate_pem=row["certificatePem"],
        created_at=from_rfc3339(row["createdAt"]),
        account_id=row.get("accountId") or None,
        deleting=bool(row.get("deleting", False)),
        custody=str(row.get("custody") or ""),
        # Records before the third release are certificates.
        kind=str(row.get("kind") or "certificate"),
        federation=Federation.from_resource(json.loads(row["federation"]))
        if row.get("federation")
        else None,
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
        "certificateNotAfter": _moment(account.certificate_not_after),
        "credential": account.credential,
        "status": account.status,
        "createdAt": to_rfc3339(account.created_at),
        "updatedAt": to_rfc3339(account.updated_at),
        "lastVerifiedAt": to_rfc3339(account.last_verified_at) if account.last_verified_at else "",
        "lastVerification": json.dumps(account.last_verification)
        if account.last_verification is not None
        else "",
        "version": account.version,
        "certificateRenewal": account.certificate_renewal,
        "rotation": json.dumps(rotation_to_row(account.rotation)) if account.rotation else "",
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
        certificate_not_after=_when(row["certificateNotAfter"]),
        status=row["status"],
        created_at=from_rfc3339(row["createdAt"]),
        updated_at=from_rfc3339(row["updatedAt"]),
        last_verified_at=from_rfc3339(row["lastVerifiedAt"]) if row.get("lastVerifiedAt") else None,
        last_verification=json.loads(row["lastVerification"])
        if row.get("lastVerification")
        else None,
        version=int(row["version"]),
        certificate_renewal=str(row.get("certificateRenewal") or "manual"),
        rotation=rotation_from_row(json.loads(row["rotation"])) if row.get("rotation") else None,
        credential=str(row.get("credential") or "certificate"),
    )


def _moment(value: datetime | None) -> str:
    return to_rfc3339(value) if value is not None else ""


def _when(text: Any) -> datetime | None:
    return from_rfc3339(str(text)) if text else None


def rotation_to_row(rotation: Rotation) -> dict[str, Any]:
    return {
        "key": rotation.key,
        "previousKeyId": rotation.previous_key_id,
        "previousThumbprint": rotation.previous_thumbprint,
        "status": rotation.status,
        "renewal": rotation.renewal,
        "startedAt": to_rfc3339(rotation.started_at),
        "completedAt": _moment(rotation.completed_at),
        "retireAfter": _moment(rotation.retire_after),
        "previousRetiredAt": _moment(rotation.previous_retired_at),
        "detail": rotation.detail or "",
        "addKey": rotation.add_key or "",
        "removeKey": rotation.remove_key or "",
    }


def rotation_from_row(row: dict[str, Any]) -> Rotation:
    return Rotation(
        key=dict(row["key"]),
        previous_key_id=row["previousKeyId"],
        previous_thumbprint=row["previousThumbprint"],
        status=row["status"],
        renewal=row["renewal"],
        started_at=from_rfc3339(row["startedAt"]),
        completed_at=_when(row.get("completedAt")),
        retire_after=_when(row.get("retireAfter")),
        previous_retired_at=_when(row.get("previousRetiredAt")),
        detail=row.get("detail") or None,
        add_key=row.get("addKey") or None,
        remove_key=row.get("removeKey") or None,
    )


REPORT = "lastVerification"
REPORT_PARTS = "lastVerificationParts"
# JSON from json.dumps is ASCII (ensure_ascii), so characters are UTF-16 units: 30,000 of them
# are 60,000 bytes, under the 64 KiB property limit.
PART_CHARS = 30_000
# 25 parts (750,000 characters, 1.5 MB of UTF-16) would break the 1 MiB entity limit: keep the
# report under 15 parts (900 KB) and summarise what no real tenant reaches.
MAX_PARTS = 15
KEPT_DOMAINS = 200
DETAIL_CHARS = 2_000


def split_report(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its report in parts of at most PART_CHARS characters (Table Storage)."""
    text = row.get(REPORT) or ""
    if len(text) <= PART_CHARS:
        return row
    if len(text) > PART_CHARS * MAX_PARTS:
        text = json.dumps(summarised(json.loads(text)))
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]
    split = {k: v for k, v in row.items() if k != REPORT}
    split[REPORT] = parts[0]
    split.update({f"{REPORT}_{n}": part for n, part in enumerate(parts[1:], start=1)})
    split[REPORT_PARTS] = len(parts)
    return split


def join_report(row: dict[str, Any]) -> dict[str, Any]:
    """The row as `account_from_row` reads it: a report stored in parts joined again."""
    count = int(row.get(REPORT_PARTS) or 1)
    if count <= 1:
        return row
    joined = {k: v for k, v in row.items() if not k.startswith(f"{REPORT}_") and k != REPORT_PARTS}
    joined[REPORT] = "".join([row[REPORT], *(row[f"{REPORT}_{n}"] for n in range(1, count))])
    return joined


def summarised(report: dict[str, Any]) -> dict[str, Any]:
    """A copy small enough for any store: the first domains and a count of the rest, and
    check texts cut short. Only a tenant with thousands of long domain names gets here."""
    copy = dict(report)
    organization = copy.get("organization")
    if isinstance(organization, dict):
        domains = list(organization.get("verifiedDomains") or [])
        if len(domains) > KEPT_DOMAINS:
            organization = {
                **organization,
                "verifiedDomains": domains[:KEPT_DOMAINS],
                "verifiedDomainsTruncated": len(domains) - KEPT_DOMAINS,
            }
            copy["organization"] = organization
    checks = copy.get("checks")
    if isinstance(checks, list):
        copy["checks"] = [_short_check(c) for c in checks]
    return copy


def _short_check(check: Any) -> Any:
    if not isinstance(check, dict):
        return check
    short = dict(cast(dict[str, Any], check))
    for name in ("detail", "action"):
        value = short.get(name)
        if isinstance(value, str) and len(value) > DETAIL_CHARS:
            short[name] = value[: DETAIL_CHARS - 1] + "…"
    return short


def event_to_row(event: Event) -> dict[str, Any]:
    return {
        "eventId": event.id,
        "owner": event.owner,
        "accountId": event.account_id,
        "type": event.type,
        "at": to_rfc3339(event.at),
        "actorKind": event.actor.kind,
        "actorId": event.actor.id,
        "status": event.status or "",
        "previousStatus": event.previous_status or "",
        "detail": event.detail or "",
        "seq": event.seq,
    }


def event_from_row(row: dict[str, Any]) -> Event:
    return Event(
        id=row["eventId"],
        owner=row["owner"],
        account_id=row["accountId"],
        type=row["type"],
        at=from_rfc3339(row["at"]),
        actor=Actor(row["actorKind"], row["actorId"]),
        status=row.get("status") or None,
        previous_status=row.get("previousStatus") or None,
        detail=row.get("detail") or None,
        seq=int(row["seq"]),
    )


# Accounts sort newest first, ties by id: a key of the inverted creation second and the id, so
# that ascending key order is the API's order (both backends page on it).
_SECONDS_CEILING = 10**12 - 1


def account_sort_key(created_at: datetime, account_id: str) -> str:
    inverted = _SECONDS_CEILING - int(created_at.timestamp())
    return f"{inverted:012d}_{account_id}"
