"""Verifies one linked account against its tenant and records the report (`verify_account`).

The steps follow the linking guide: tenant (OpenID metadata), app registration and certificate (one
token request), then what the token grants and every Graph read in one `$batch`. This module
gathers those answers; the decision table in `shared.verification` turns them into the checks (a
step that cannot run because an earlier one failed is skipped there). A step that could not reach
Microsoft or the key store is an `error`, which never overwrites the account's status. A
customer's verification runs under one deadline (`VERIFY_TIMEOUT_SECONDS`): whatever did not
finish by then is an `error` too.

Reports are ordered by when they started (`startedAt`, to the millisecond): of two reports for
one account the one that started later is kept, whichever finishes first.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from shared import history
from shared import verification as v
from shared.accounts import get_account
from shared.accountstore import VersionConflict
from shared.app_context import AppContext
from shared.app_registration import SELECT as APPLICATION_SELECT
from shared.client_assertion import assertion_callable
from shared.clouds import CLOUDS, DISCOVERY, Cloud, cloud_from_metadata
from shared.errors import NotFound
from shared.keystore.base import PrivateKeyMissing
from shared.outbound import deadline
from shared.records import Account
from shared.tenant_client import (
    KeyUnavailable,
    MetadataAnswer,
    TenantClient,
    UnusableKey,
)
from shared.timefmt import from_rfc3339, to_rfc3339, to_rfc3339_ms, utc_now

log = logging.getLogger("m365link.verify")


RECORD_ATTEMPTS = 10
MEMBER_OF = "/servicePrincipals(appId='{application_id}')/memberOf/microsoft.graph.directoryRole"


def _https(host: str) -> str:
    return f"https://{host}"


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
) -> tuple[MetadataAnswer, Cloud | None]:
    """The tenant's OpenID metadata, and the cloud the tenant lives in."""
    settings = ctx.settings
    declared = CLOUDS.get(account.cloud, DISCOVERY)
    login = settings.entra_authority_host or _https(declared.login_host)
    answer = tenant.metadata(login, account.tenant_id)
    if answer.document is None:
        return answer, None
    cloud = cloud_from_metadata(answer.document) if account.cloud == "auto" else declared
    return answer, cloud


def graph_reads(application_id: str, *, with_member_of: bool) -> dict[str, str]:
    """The Graph reads of one verification, relative to `{graph}/v1.0`: one `$batch`."""
    reads = {
        "organization": "/organization",
        "access_reviews": "/identityGovernance/accessReviews/definitions?$top=1",
        "application": f"/applications(appId='{application_id}')?$select={APPLICATION_SELECT}",
    }
    if with_member_of:
        reads["member_of"] = MEMBER_OF.format(application_id=application_id)
    return reads


def _read_graph(
    tenant: TenantClient, graph: str, application_id: str, access_token: str, claims: dict[str, Any]
) -> v.GraphAnswers:
    """Every Graph read in one batch; `memberOf` only without `wids`, its further pages read
    with plain GETs."""
    reads = graph_reads(application_id, with_member_of=v.role_ids_from_claims(claims) is None)
    answers = tenant.graph_batch(graph, access_token, reads)
    member_of = answers.get("member_of")
    if member_of is not None:  # its further pages, if any, with plain GETs
        url = f"{graph}/v1.0" + reads["member_of"]
        member_of = tenant.graph_rest_of(member_of, url, access_token)
    return v.GraphAnswers(
        organization=answers["organization"],
        access_reviews=answers["access_reviews"],
        application=answers["application"],
        member_of=member_of,
    )


def gather(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    signer: Callable[[], rsa.RSAPrivateKey] | None,
    now: datetime,
) -> tuple[v.Answers, Cloud | None]:
    """What the tenant says, step by step: metadata, then a token, then one Graph batch. A step
    is taken only when the one before it answered; the table in `shared.verification` decides."""
    tenant = ctx.tenant_client()
    metadata, cloud = _resolve(ctx, account, tenant)
    answers = v.Answers(
        tenant_id=account.tenant_id,
        application_id=account.application_id,
        thumbprint=account.thumbprint,
        organization_name=account.organization_name,
        certificate_not_after=account.certificate_not_after,
        now=now,
        warn_days=ctx.settings.cert_expiry_warning_days,
        metadata=metadata,
    )
    if cloud is None:
        return answers, None
    settings = ctx.settings
    authority_host = settings.entra_authority_host or _https(cloud.login_host)
    graph = settings.graph_endpoint or cloud.graph_resource
    try:
        answer = tenant.token(
            cache_key=(account.id, account.key_id, authority_host),
            client_id=account.application_id,
            authority=f"{authority_host}/{account.tenant_id}",
            scope=f"{cloud.graph_resource}/.default",
            # MSAL calls this for each token request; the key's own store signs.
            assertion=assertion_callable(
                signer or (lambda: ctx.signer_of_key(account.owner, account.key_id)),
                client_id=account.application_id,
                thumbprint=account.thumbprint,
                token_endpoint=f"{authority_host}/{account.tenant_id}/oauth2/v2.0/token",
            ),
            fresh=fresh_token,
        )
    except KeyUnavailable as failure:
        log.warning(
            "private key not usable accountId=%s keyId=%s reason=%s",
            account.id,
            account.key_id,
            type(failure.cause).__name__,
        )
        return replace(answers, key_failure=_key_failure(failure.cause)), cloud
    answers = replace(answers, token=answer)
    if answer.access_token:
        graph_answers = _read_graph(
            tenant, graph, account.application_id, answer.access_token, answer.claims
        )
        answers = replace(answers, graph=graph_answers)
    return answers, cloud


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
    answers, cloud = gather(ctx, account, fresh_token=fresh_token, signer=signer, now=now)
    checks = v.decide(answers)
    return {
        "accountId": account.id,
        "status": v.overall_status(checks),
        "checkedAt": to_rfc3339(now),
        "startedAt": to_rfc3339_ms(now),
        "durationMs": round((time.perf_counter() - started) * 1000),
        "cloud": cloud.name if cloud else None,
        "checks": [c.to_json() for c in checks],
        **v.report_facts(answers),
    }


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
