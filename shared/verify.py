"""Verifies one linked account against its tenant and records the report (`verify_account`).

The steps follow the linking guide: tenant, app registration, certificate (one token request),
then what the token grants and two Graph reads. A step that cannot run because an earlier one
failed is skipped; a step that could not reach Microsoft is an `error`, which never overwrites
the account's status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared import verification as v
from shared.accounts import get_account
from shared.accountstore import VersionConflict
from shared.app_context import AppContext
from shared.clouds import CLOUDS, DISCOVERY, Cloud, cloud_from_metadata
from shared.errors import AppError, NotFound
from shared.keystore.base import PrivateKeyMissing
from shared.records import Account
from shared.roles import role_name
from shared.tenant_client import TenantClient
from shared.timefmt import to_rfc3339, utc_now

log = logging.getLogger("m365link.verify")


def _https(host: str) -> str:
    return f"https://{host}"


def _resolve(
    ctx: AppContext, account: Account, tenant: TenantClient
) -> tuple[v.Check, Cloud | None]:
    """The `tenant` check, and the cloud the tenant lives in."""
    settings = ctx.settings
    declared = CLOUDS.get(account.cloud, DISCOVERY)
    login = settings.entra_authority_host or _https(declared.login_host)
    answer = tenant.metadata(login, account.tenant_id)
    check = v.tenant_check(answer, account.tenant_id)
    if answer.document is None:
        return check, None
    cloud = cloud_from_metadata(answer.document) if account.cloud == "auto" else declared
    return check, cloud


def run_checks(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    private_key: Callable[[], bytes] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The verification report for an account (not yet recorded)."""
    started = time.perf_counter()
    now = now or utc_now()
    tenant = ctx.tenant_client()
    settings = ctx.settings
    decided: dict[str, v.Check] = {}
    organization: dict[str, Any] | None = None
    granted: list[str] = []
    role_ids: list[str] = []
    decided["certificate_expiry"] = v.expiry_check(
        account.certificate_not_after, now, settings.cert_expiry_warning_days
    )
    tenant_check, cloud = _resolve(ctx, account, tenant)
    decided["tenant"] = tenant_check
    if cloud is not None:
        authority_host = settings.entra_authority_host or _https(cloud.login_host)
        graph = settings.graph_endpoint or cloud.graph_resource
        answer = tenant.token(
            cache_key=(account.id, account.key_id, authority_host),
            client_id=account.application_id,
            authority=f"{authority_host}/{account.tenant_id}",
            scope=f"{cloud.graph_resource}/.default",
            thumbprint=account.thumbprint,
            private_key=private_key or (lambda: ctx.keys.get(account.key_id)),
            fresh=fresh_token,
        )
        for check in v.token_checks(
            answer,
            tenant_id=account.tenant_id,
            application_id=account.application_id,
            thumbprint=account.thumbprint,
        ):
            decided[check.id] = check
        if answer.access_token:
            claims = answer.claims
            granted = sorted(str(r) for r in claims.get("roles") or [])
            decided["admin_consent"] = v.consent_check(claims)
            from_claims = v.role_ids_from_claims(claims)
            if from_claims is not None:
                role_ids = from_claims
                decided["directory_role"] = v.directory_role_check(role_ids, "token wids claim")
            else:
                member_of = tenant.graph_get(
                    f"{graph}/v1.0/servicePrincipals(appId='{account.application_id}')/memberOf",
                    answer.access_token,
                )
                if member_of.ok:
                    role_ids = v.role_ids_from_member_of(member_of)
                    decided["directory_role"] = v.directory_role_check(
                        role_ids, "service principal memberOf"
                    )
                else:
                    decided["directory_role"] = v.member_of_failure(member_of)
            decided["least_privilege"] = v.least_privilege_check(claims, role_ids)
            org_answer = tenant.graph_get(f"{graph}/v1.0/organization", answer.access_token)
            decided["directory_read"] = v.directory_read_check(org_answer)
            if org_answer.ok:
                organization = v.organization_of(org_answer)
                decided["organization_match"] = v.organization_check(
                    account.organization_name, organization
                )
            reviews = tenant.graph_get(
                f"{graph}/v1.0/identityGovernance/accessReviews/definitions?$top=1",
                answer.access_token,
            )
            decided["access_reviews_read"] = v.access_reviews_check(reviews)
    checks = v.complete(decided)
    report: dict[str, Any] = {
        "accountId": account.id,
        "status": v.overall_status(checks),
        "checkedAt": to_rfc3339(now),
        "durationMs": round((time.perf_counter() - started) * 1000),
        "cloud": cloud.name if cloud else None,
        "checks": [c.to_json() for c in checks],
        "organization": organization,
        "grantedPermissions": granted,
        "directoryRoles": [role_name(r) for r in role_ids],
    }
    return report


def record(ctx: AppContext, account: Account, report: dict[str, Any]) -> Account:
    """Store the report on the account. `error` keeps the account's status; an older report never
    replaces a newer one; a concurrent update is re-read, never overwritten."""
    checked_at = report["checkedAt"]
    for _ in range(10):
        current = ctx.accounts.get_account(account.owner, account.id)
        if current is None:
            raise NotFound(f"no account {account.id!r}")
        if (
            current.last_verification
            and current.last_verification.get("checkedAt", "") > checked_at
        ):
            return current
        status = current.status if report["status"] == "error" else report["status"]
        changed = current.updated(
            status=status,
            last_verification=report,
            last_verified_at=datetime.fromisoformat(checked_at.replace("Z", "+00:00")),
            updated_at=utc_now(),
        )
        try:
            saved = ctx.accounts.update_account(changed)
        except VersionConflict:
            continue
        except LookupError:
            raise NotFound(f"no account {account.id!r}") from None
        if saved.status != current.status:
            log.info(
                "account status changed accountId=%s from=%s to=%s",
                account.id,
                current.status,
                saved.status,
            )
        return saved
    raise VersionConflict(account.id)


def verify_account(ctx: AppContext, owner: str, account_id: str) -> dict[str, Any]:
    """What the customer's Verify button does: fresh token, report recorded, report returned."""
    account = get_account(ctx, owner, account_id)
    try:
        report = run_checks(ctx, account, fresh_token=True)
    except PrivateKeyMissing:
        log.error("private key missing from the key store accountId=%s", account.id)
        raise AppError(
            "the account's private key is missing from the key store; "
            "link the account again with a new key"
        ) from None
    record(ctx, account, report)
    log.info(
        "verification accountId=%s status=%s durationMs=%d",
        account.id,
        report["status"],
        report["durationMs"],
    )
    return report
