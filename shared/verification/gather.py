"""Gathers what the tenant says for one verification, step by step: its OpenID metadata, then a
token, then every Graph read the check table names in one `$batch`.

A step is taken only when the one before it answered; what the answers mean is for the table in
`shared.verification.checks` to decide. During a rotation the new key is tried first: once
Entra accepts it, the checks are those of the new key (and `record` switches the account to
it), and the current key is not asked at all, so the verification still costs one token
request; until then, one more.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from shared.adapters.tenant.client import TenantClient
from shared.context import AppContext
from shared.core.answers import MetadataAnswer, TokenAnswer
from shared.core.clouds import Cloud
from shared.core.federation import AUDIENCE, Federation, subject_for
from shared.core.model import Account
from shared.signin import attempt, resolve
from shared.verification.checks.answers import Answers, GraphAnswers, Renewal
from shared.verification.checks.table import graph_reads


def gather(
    ctx: AppContext,
    account: Account,
    *,
    fresh_token: bool,
    now: datetime,
) -> tuple[Answers, Cloud | None]:
    """What the tenant says about the account, and the cloud it lives in (None: the tenant's
    metadata could not be read, so nothing else was asked)."""
    tenant = ctx.tenant_client()
    metadata, cloud = resolve(ctx, account, tenant)
    answers = _account_facts(ctx, account, metadata, now)
    if cloud is None:
        return answers, None
    renewal = _renewal(ctx, account, cloud, fresh=fresh_token, now=now)
    answers = _with_rotation(answers, account, renewal)
    if answers.switched_to is None:
        answers = _with_current_key(ctx, account, cloud, answers, fresh=fresh_token)
    if answers.token is not None and answers.token.access_token:
        graph = ctx.settings.graph_endpoint or cloud.graph_resource
        read = read_graph(tenant, graph, account.application_id, answers.token)
        answers = replace(answers, graph=read)
    return answers, cloud


def _account_facts(
    ctx: AppContext, account: Account, metadata: MetadataAnswer, now: datetime
) -> Answers:
    """The account facts the checks compare with, and the tenant's metadata."""
    issuer = ctx.settings.oidc_issuer
    federated = account.federated
    return Answers(
        tenant_id=account.tenant_id,
        application_id=account.application_id,
        thumbprint=account.thumbprint,
        organization_name=account.organization_name,
        certificate_not_after=account.certificate_not_after,
        now=now,
        warn_days=ctx.settings.cert_expiry_warning_days,
        metadata=metadata,
        download_path=f"/api/keys/{account.key_id}?format={'json' if federated else 'cer'}",
        federation=_ours(issuer, account.key_id) if federated else None,
        issuer=issuer,
    )


def _ours(issuer: str, key_id: str) -> Federation:
    """The federated credential of one of our keys as Entra must hold it: the subject follows
    from the key's id, and the issuer is the one the app signs as."""
    return Federation(issuer=issuer, subject=subject_for(key_id), audience=AUDIENCE, name="")


def _renewal(
    ctx: AppContext, account: Account, cloud: Cloud, *, fresh: bool, now: datetime
) -> Renewal | None:
    """While a rotation awaits its upload, ask Entra for a token with the NEW key (one token
    request). Its certificate already expired: not asked (the timer marks the rotation failed)."""
    rotation = account.rotation
    if rotation is None or not rotation.in_progress:
        return None
    renewal = Renewal(
        key_id=rotation.key_id,
        thumbprint=rotation.thumbprint,
        not_after=rotation.not_after,
        automatic=rotation.renewal == "automatic",
        add_key=rotation.add_key,
        detail=rotation.detail,
        replaces=rotation.previous_thumbprint,
        federation=_ours(ctx.settings.oidc_issuer, rotation.key_id)
        if rotation.kind == "federated"
        else None,
    )
    if rotation.not_after is not None and rotation.not_after <= now:
        return renewal
    tried = attempt(
        ctx, account, cloud, key_id=rotation.key_id, thumbprint=rotation.thumbprint, fresh=fresh
    )
    return replace(renewal, answer=tried.answer, key_failure=tried.key_failure)


def _with_rotation(answers: Answers, account: Account, renewal: Renewal | None) -> Answers:
    """The certificates a rotation brings; once Entra accepts the new one, the answers are
    those of the new key."""
    rotation = account.rotation
    in_progress = rotation is not None and rotation.in_progress
    # `previous` only while the replaced key exists: once retired (deleted), a credential of it
    # still on the registration is nobody's, `other`.
    retiring = rotation is not None and rotation.retiring
    answers = replace(
        answers,
        renewal=renewal,
        rotation_thumbprints=_named({rotation.thumbprint} if rotation and in_progress else ()),
        rotation_subjects=frozenset({subject_for(rotation.key_id)})
        if rotation and in_progress and rotation.kind == "federated"
        else frozenset(),
        previous_thumbprints=_named(
            {rotation.previous_thumbprint} if rotation and retiring else ()
        ),
        previous_subjects=frozenset({subject_for(rotation.previous_key_id)})
        if rotation and retiring and not rotation.previous_thumbprint
        else frozenset(),
    )
    if renewal is None or not renewal.accepted:
        return answers
    # Entra accepts the new credential: from here on it is this account's.
    return replace(
        answers,
        thumbprint=renewal.thumbprint,
        certificate_not_after=renewal.not_after,
        federation=renewal.federation,
        download_path=f"/api/keys/{renewal.key_id}?format="
        + ("json" if renewal.federation else "cer"),
        switched_to=renewal.key_id,
        rotation_thumbprints=frozenset(),
        rotation_subjects=frozenset(),
        previous_thumbprints=_named({account.thumbprint}),
        previous_subjects=frozenset({subject_for(account.key_id)})
        if account.federated
        else frozenset(),
        token=renewal.answer,
    )


def _named(thumbprints: set[str] | tuple[()]) -> frozenset[str]:
    """Certificate thumbprints as the registration names them; "" (a federated key) is none."""
    return frozenset(t.upper() for t in thumbprints if t)


def _with_current_key(
    ctx: AppContext, account: Account, cloud: Cloud, answers: Answers, *, fresh: bool
) -> Answers:
    """The token request with the account's current key, or why its key could not sign."""
    tried = attempt(
        ctx, account, cloud, key_id=account.key_id, thumbprint=account.thumbprint, fresh=fresh
    )
    return replace(answers, token=tried.answer, key_failure=tried.key_failure)


def read_graph(
    tenant: TenantClient, graph: str, application_id: str, answer: TokenAnswer
) -> GraphAnswers:
    """Every Graph read the check table names (those the token calls for: `memberOf` only
    without `wids`) in one `$batch`, by read name; a collection's further pages are read with
    plain GETs."""
    access_token = answer.access_token
    assert access_token is not None
    reads = graph_reads(answer.claims)
    answers = tenant.graph_batch(
        graph, access_token, {read.name: read.url(application_id) for read in reads}
    )
    for read in reads:
        first = answers.get(read.name)
        if read.every_page and first is not None:
            url = f"{graph}/v1.0" + read.url(application_id)
            answers[read.name] = tenant.graph_rest_of(first, url, access_token)
    return answers
