"""Verifies one linked account against its tenant and records the report (`verify_account`).

The steps follow the linking guide: tenant (OpenID metadata), app registration and certificate (one
token request), then what the token grants and every Graph read in one `$batch`. This module
gathers those answers; the decision table in `shared.verification.checks` turns them into the
checks (a step that cannot run because an earlier one failed is skipped there). A step that
could not reach Microsoft or the key store is an `error`, which never overwrites the account's
status. A customer's verification runs under one deadline (`VERIFY_TIMEOUT_SECONDS`): whatever
did not finish by then is an `error` too.

Reports are ordered by when they started (`startedAt`, to the millisecond): of two reports for
one account the one that started later is kept, whichever finishes first.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.adapters.accountstore import VersionConflict
from shared.adapters.accountstore.base import NO_KEY_CHANGES
from shared.adapters.tenant.client import KeyUnavailable, TenantClient
from shared.context import AppContext
from shared.core.answers import TokenAnswer
from shared.core.app_registration import SELECT as APPLICATION_SELECT
from shared.core.clouds import Cloud
from shared.core.errors import NotFound
from shared.core.model import Account
from shared.linking import history
from shared.linking.accounts import get_account
from shared.renewal import rotation as rotations
from shared.signin import key_failure, resolve, token
from shared.support.deadline import deadline
from shared.support.timefmt import from_rfc3339, to_rfc3339, to_rfc3339_ms, utc_now
from shared.verification import checks as v

log = logging.getLogger("m365link.verify")


RECORD_ATTEMPTS = 10
MEMBER_OF = "/servicePrincipals(appId='{application_id}')/memberOf/microsoft.graph.directoryRole"


def started_at(report: dict[str, Any]) -> datetime:
    """When a report started: `startedAt`, or for a report recorded before it existed its
    whole-second `checkedAt`."""
    return from_rfc3339(str(report.get("startedAt") or report["checkedAt"]))


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


def _renewal(
    ctx: AppContext, account: Account, cloud: Cloud, *, fresh: bool, now: datetime
) -> v.Renewal | None:
    """While a rotation awaits its upload, ask Entra for a token with the NEW key (one token
    request). Its certificate already expired: not asked (the timer marks the rotation failed)."""
    rotation = account.rotation
    if rotation is None or not rotation.in_progress:
        return None
    renewal = v.Renewal(
        key_id=rotation.key_id,
        thumbprint=rotation.thumbprint,
        not_after=rotation.not_after,
        automatic=rotation.renewal == "automatic",
        add_key=rotation.add_key,
        detail=rotation.detail,
        replaces=rotation.previous_thumbprint,
    )
    if rotation.not_after <= now:
        return renewal
    try:
        answer = token(
            ctx, account, cloud, key_id=rotation.key_id, thumbprint=rotation.thumbprint, fresh=fresh
        )
    except KeyUnavailable as failure:
        log.warning(
            "new key not usable accountId=%s keyId=%s reason=%s",
            account.id,
            rotation.key_id,
            type(failure.cause).__name__,
        )
        return replace(renewal, key_failure=key_failure(failure.cause))
    return replace(renewal, answer=answer)


def gather(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    now: datetime,
) -> tuple[v.Answers, Cloud | None]:
    """What the tenant says, step by step: metadata, then a token, then one Graph batch. A step
    is taken only when the one before it answered; the table in `shared.verification.checks`
    decides.

    During a rotation the new key is tried first: once Entra accepts it, the checks are those
    of the new key (and `record` switches the account to it), and the current key is not asked
    at all, so the verification still costs one token request; until then, one more."""
    tenant = ctx.tenant_client()
    metadata, cloud = resolve(ctx, account, tenant)
    answers = v.Answers(
        tenant_id=account.tenant_id,
        application_id=account.application_id,
        thumbprint=account.thumbprint,
        organization_name=account.organization_name,
        certificate_not_after=account.certificate_not_after,
        now=now,
        warn_days=ctx.settings.cert_expiry_warning_days,
        metadata=metadata,
        download_path=f"/api/keys/{account.key_id}?format=cer",
    )
    if cloud is None:
        return answers, None
    graph = ctx.settings.graph_endpoint or cloud.graph_resource
    renewal = _renewal(ctx, account, cloud, fresh=fresh_token, now=now)
    rotation = account.rotation
    answers = replace(
        answers,
        renewal=renewal,
        rotation_thumbprints=frozenset({rotation.thumbprint})
        if rotation and rotation.in_progress
        else frozenset(),
        # `previous` only while the replaced key exists: once retired (deleted), a certificate
        # of it still on the registration is nobody's, `other`.
        previous_thumbprints=frozenset({rotation.previous_thumbprint.upper()})
        if rotation and rotation.retiring
        else frozenset(),
    )
    if renewal is not None and renewal.accepted:
        assert renewal.answer is not None
        # Entra accepts the new certificate: from here on it is this account's.
        answers = replace(
            answers,
            thumbprint=renewal.thumbprint,
            certificate_not_after=renewal.not_after,
            switched_to=renewal.key_id,
            rotation_thumbprints=frozenset(),
            previous_thumbprints=frozenset({account.thumbprint.upper()}),
            token=renewal.answer,
        )
        answer: TokenAnswer = renewal.answer
    else:
        try:
            answer = token(
                ctx,
                account,
                cloud,
                key_id=account.key_id,
                thumbprint=account.thumbprint,
                fresh=fresh_token,
            )
        except KeyUnavailable as failure:
            log.warning(
                "private key not usable accountId=%s keyId=%s reason=%s",
                account.id,
                account.key_id,
                type(failure.cause).__name__,
            )
            return replace(answers, key_failure=key_failure(failure.cause)), cloud
        answers = replace(answers, token=answer)
    if answer.access_token:
        graph_answers = _read_graph(
            tenant, graph, account.application_id, answer.access_token, answer.claims
        )
        answers = replace(answers, graph=graph_answers)
    return answers, cloud


@dataclass(frozen=True)
class Verification:
    """A report not yet recorded, and the rotation key Entra accepted in it, if any (`record`
    then switches the account to that key)."""

    report: dict[str, Any]
    switch_to: str | None = None


def run_checks(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    now: datetime | None = None,
) -> Verification:
    """The verification report for an account (not yet recorded). Never raises for an outbound
    failure: what could not be reached is a check with status `error`."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    answers, cloud = gather(ctx, account, fresh_token=fresh_token, now=now)
    checks = v.decide(answers)
    report = {
        "accountId": account.id,
        "status": v.overall_status(checks),
        "checkedAt": to_rfc3339(now),
        "startedAt": to_rfc3339_ms(now),
        "durationMs": round((time.perf_counter() - started) * 1000),
        "cloud": cloud.name if cloud else None,
        "checks": [c.to_json() for c in checks],
        **v.report_facts(answers),
        # The rotation as it stands once the report is recorded: `record` fills it in.
        "rotation": account.rotation.to_resource(account.id) if account.rotation else None,
    }
    return Verification(report, answers.switched_to)


def record(
    ctx: AppContext,
    account: Account,
    report: dict[str, Any],
    *,
    switch_to: str | None = None,
) -> Account:
    """Store the report on the account. `error` keeps the account's status and `updatedAt`
    (only `lastVerification` and `lastVerifiedAt` change); a report that started before the one
    stored never replaces it; a concurrent update is re-read, never overwritten. Raises
    VersionConflict (a 503 with Retry-After at the edge) when the account stays contended.

    `switch_to`: Entra accepted this rotation key. The account switches to it in the same
    write as the report (key, thumbprint, expiry, the rotation completed), decided again on
    every re-read: an instance that lost the race finds the switch done and only records its
    report, so one account is switched exactly once. The report's `rotation` is set to the
    rotation as it stands after the write."""
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
        switch = rotations.switch(ctx, current, switch_to) if switch_to else None
        if switch_to and switch is None and current.key_id != switch_to:
            # The rotation was cancelled or failed meanwhile: this report speaks for a key
            # the account no longer has, and is not recorded.
            log.info("report of a withdrawn rotation key not recorded accountId=%s", account.id)
            return current
        base = switch.account if switch else current
        is_error = report["status"] == "error"
        report["rotation"] = base.rotation.to_resource(base.id) if base.rotation else None
        changed = base.updated(
            status=current.status if is_error else report["status"],
            last_verification=report,
            last_verified_at=from_rfc3339(report["checkedAt"]),
            updated_at=current.updated_at if is_error and not switch else utc_now(),
        )
        events = [
            *(switch.events if switch else []),
            *history.verified(current, changed, report["status"]),
        ]
        try:
            saved = ctx.accounts.update_account(
                changed, events, switch.keys if switch else NO_KEY_CHANGES
            )
        except VersionConflict as conflict:
            last_conflict = conflict
            continue
        except LookupError:
            raise NotFound(f"no account {account.id!r}") from None
        if switch:
            log.info(
                "account switched to its renewed key accountId=%s keyId=%s",
                account.id,
                saved.key_id,
            )
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
        verification = run_checks(ctx, account, fresh_token=True)
    report = verification.report
    record(ctx, account, report, switch_to=verification.switch_to)
    log.info(
        "verification accountId=%s status=%s durationMs=%d",
        account.id,
        report["status"],
        report["durationMs"],
    )
    return report
