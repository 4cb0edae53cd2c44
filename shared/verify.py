"""Verifies one linked account against its tenant and records the report (`verify_account`).

The steps follow the linking guide: tenant, app registration, certificate (one token request),
then what the token grants and two Graph reads. A step that cannot run because an earlier one
failed is skipped; a step that could not reach Microsoft or the key store is an `error`, which
never overwrites the account's status. A customer's verification runs under one deadline
(`VERIFY_TIMEOUT_SECONDS`): whatever did not finish by then is an `error` too.

Reports are ordered by when they started (`startedAt`, to the millisecond): of two reports for
one account the one that started later is kept, whichever finishes first.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from shared import history
from shared import verification as v
from shared.accounts import get_account
from shared.accountstore import VersionConflict
from shared.app_context import AppContext
from shared.client_assertion import assertion_callable
from shared.clouds import CLOUDS, DISCOVERY, Cloud, cloud_from_metadata
from shared.errors import NotFound
from shared.keystore.base import PrivateKeyMissing
from shared.outbound import deadline
from shared.records import Account
from shared.roles import GLOBAL_READER, shown_roles
from shared.tenant_client import GraphAnswer, KeyUnavailable, TenantClient, UnusableKey
from shared.timefmt import from_rfc3339, to_rfc3339, utc_now

log = logging.getLogger("m365link.verify")


RECORD_ATTEMPTS = 10


def _https(host: str) -> str:
    return f"https://{host}"


def to_rfc3339_ms(value: datetime) -> str:
    """RFC 3339 with milliseconds (`2026-11-26T17:00:00.123Z`): reports started in one second
    still have an order."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def started_at(report: dict[str, Any]) -> datetime:
    """When a report started: `startedAt`, or for a report recorded before it existed its
    whole-second `checkedAt`."""
    return from_rfc3339(str(report.get("startedAt") or report["checkedAt"]))


def _key_failure(cause: Exception) -> str:
    if isinstance(cause, PrivateKeyMissing):
        return "missing"
    if isinstance(cause, UnusableKey):
        return "unusable"
    return "unavailable"  # DependencyUnavailable, or anything else the store raised: retry later


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
    signer: Callable[[], rsa.RSAPrivateKey] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The verification report for an account (not yet recorded). Never raises for an outbound
    failure: what could not be reached is a check with status `error`."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
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
        try:
            answer = tenant.token(
                cache_key=(account.id, account.key_id, authority_host),
                client_id=account.application_id,
                authority=f"{authority_host}/{account.tenant_id}",
                scope=f"{cloud.graph_resource}/.default",
                assertion=assertion_callable(
                    signer or (lambda: ctx.signer_of_key(account.owner, account.key_id)),
                    client_id=account.application_id,
                    thumbprint=account.thumbprint,
                    token_endpoint=f"{authority_host}/{account.tenant_id}/oauth2/v2.0/token",
                ),
                fresh=fresh_token,
            )
            token_checks = v.token_checks(
                answer,
                tenant_id=account.tenant_id,
                application_id=account.application_id,
                thumbprint=account.thumbprint,
            )
        except KeyUnavailable as failure:
            reason = _key_failure(failure.cause)
            log.warning(
                "private key not usable accountId=%s keyId=%s reason=%s",
                account.id,
                account.key_id,
                type(failure.cause).__name__,
            )
            answer = None
            token_checks = v.key_read_checks(reason)
        for check in token_checks:
            decided[check.id] = check
        if answer is not None and answer.access_token:
            claims = answer.claims
            granted = sorted(v.claim_list(claims, "roles"))
            decided["admin_consent"] = v.consent_check(claims)
            from_claims = v.role_ids_from_claims(claims)
            read_roles: list[str] | None
            roles_failure: GraphAnswer | None = None
            if from_claims is not None:
                read_roles = from_claims
                source = "token's wids claim"
                decided["directory_role"] = v.directory_role_check(from_claims, "token wids claim")
            else:
                source = "service principal's memberOf"
                member_of = tenant.graph_get_all(
                    f"{graph}/v1.0/servicePrincipals(appId='{account.application_id}')"
                    "/memberOf/microsoft.graph.directoryRole",
                    answer.access_token,
                )
                found = v.role_ids_from_member_of(member_of)
                if member_of.ok:
                    read_roles = found
                    decided["directory_role"] = v.directory_role_check(
                        found, "service principal memberOf"
                    )
                else:
                    read_roles, roles_failure = None, member_of
                    # Global Reader on a page that was read still counts.
                    decided["directory_role"] = (
                        v.directory_role_check(found, "service principal memberOf")
                        if GLOBAL_READER in found
                        else v.member_of_failure(member_of)
                    )
            role_ids = read_roles or []
            decided["least_privilege"] = v.least_privilege_check(
                claims, read_roles, source, roles_failure
            )
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
        "startedAt": to_rfc3339_ms(now),
        "durationMs": round((time.perf_counter() - started) * 1000),
        "cloud": cloud.name if cloud else None,
        "checks": [c.to_json() for c in checks],
        "organization": organization,
        "grantedPermissions": granted,
        "directoryRoles": shown_roles(role_ids),
    }
    return report


def record(ctx: AppContext, account: Account, report: dict[str, Any]) -> Account:
    """Store the report on the account. `error` keeps the account's status and `updatedAt`
    (only `lastVerification` and `lastVerifiedAt` change); a report that started before the one
    stored never replaces it; a concurrent update is re-read, never overwritten. Raises
    VersionConflict (a 503 with Retry-After at the edge) when the account stays contended."""
    started = started_at(report)
    last_conflict: VersionConflict | None = None
    for attempt in range(RECORD_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, 0.01 * attempt))  # noqa: S311 - jitter, not a secret
        current = ctx.accounts.get_account(account.owner, account.id)
        if current is None:
            raise NotFound(f"no account {account.id!r}")
        if current.last_verification and started_at(current.last_verification) > started:
            return current  # a report that started later is already there
        is_error = report["status"] == "error"
        changed = current.updated(
            status=current.status if is_error else report["status"],
            last_verification=report,
            last_verified_at=from_rfc3339(report["checkedAt"]),
            updated_at=current.updated_at if is_error else utc_now(),
        )
        try:
            saved = ctx.accounts.update_account(
                changed, event=history.verified(current, changed, report["status"])
            )
        except VersionConflict as conflict:
            last_conflict = conflict
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
    log.warning("report not recorded, account contended accountId=%s", account.id)
    raise last_conflict or VersionConflict(account.id)


def verify_account(ctx: AppContext, owner: str, account_id: str) -> dict[str, Any]:
    """What the customer's Verify button does: fresh token, report recorded, report returned.
    Every outbound wait shares one deadline of `VERIFY_TIMEOUT_SECONDS`."""
    account = get_account(ctx, owner, account_id)
    with deadline(ctx.settings.verify_timeout_seconds):
        report = run_checks(ctx, account, fresh_token=True)
    record(ctx, account, report)
    log.info(
        "verification accountId=%s status=%s durationMs=%d",
        account.id,
        report["status"],
        report["durationMs"],
    )
    return report
