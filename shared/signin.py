"""Sign-in with a stored key: the tenant's metadata and cloud, then an app-only token whose
client assertion the key's own store signs (no key material leaves it).

Verification uses it for its token step; renewal borrows `signed_in` for the app's own Graph
writes (addKey, removeKey) with the account's current key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.adapters.keystore.base import PrivateKeyMissing, UnusableKey
from shared.adapters.tenant.assertion import (
    KeyUnavailable,
    federated_assertion,
    lazy_assertion,
    sign_assertion,
)
from shared.adapters.tenant.client import TenantClient
from shared.context import AppContext
from shared.core.answers import MetadataAnswer, TokenAnswer
from shared.core.clouds import CLOUDS, DISCOVERY, Cloud, cloud_from_metadata
from shared.core.model import Account

log = logging.getLogger("m365link.signin")


def https_url(host: str) -> str:
    return f"https://{host}"


def key_failure(cause: Exception) -> str:
    if isinstance(cause, PrivateKeyMissing):
        return "missing"
    if isinstance(cause, UnusableKey):
        return "unusable"
    return "unavailable"  # DependencyUnavailable, or anything else the store raised: retry later


def resolve(
    ctx: AppContext, account: Account, tenant: TenantClient
) -> tuple[MetadataAnswer, Cloud | None]:
    """The tenant's OpenID metadata, and the cloud the tenant lives in."""
    settings = ctx.settings
    declared = CLOUDS.get(account.cloud, DISCOVERY)
    login = settings.entra_authority_host or https_url(declared.login_host)
    answer = tenant.metadata(login, account.tenant_id)
    if answer.document is None:
        return answer, None
    cloud = cloud_from_metadata(answer.document) if account.cloud == "auto" else declared
    return answer, cloud


def token(
    ctx: AppContext,
    account: Account,
    cloud: Cloud,
    *,
    key_id: str,
    thumbprint: str,
    fresh: bool,
) -> TokenAnswer:
    """An app-only token for the account signed with one of its keys (raises KeyUnavailable)."""
    tenant = ctx.tenant_client()
    authority_host = ctx.settings.entra_authority_host or https_url(cloud.login_host)
    return tenant.token(
        cache_key=(account.id, key_id, authority_host),
        client_id=account.application_id,
        authority=f"{authority_host}/{account.tenant_id}",
        scope=f"{cloud.graph_resource}/.default",
        # MSAL calls this for each token request, and only then is a key store reached.
        assertion=lazy_assertion(
            lambda audience: client_assertion(
                ctx, account, key_id=key_id, thumbprint=thumbprint, audience=audience
            ),
            token_endpoint=f"{authority_host}/{account.tenant_id}/oauth2/v2.0/token",
        ),
        fresh=fresh,
    )


def client_assertion(
    ctx: AppContext, account: Account, *, key_id: str, thumbprint: str, audience: str
) -> str:
    """The client assertion for one of the account's keys, read from its owner's records: a
    certificate's own key signs it in its store; a federated credential's is the issuer's
    JWT for its subject, signed by the issuer key. A record gone or being deleted (unlinked)
    signs nothing, and another owner's record is never found here."""
    record = ctx.accounts.get_key(account.owner, key_id)
    if record is None:
        raise PrivateKeyMissing(key_id)
    if record.federation is None:
        signer = ctx.key_store_of(record).signer(key_id)
        return sign_assertion(
            signer, client_id=account.application_id, audience=audience, thumbprint=thumbprint
        )
    if record.deleting:
        raise PrivateKeyMissing(key_id)
    kid, signer = ctx.issuer().signer()
    return federated_assertion(
        signer,
        kid=kid,
        issuer=ctx.settings.oidc_issuer,
        subject=record.federation.subject,
        audience=record.federation.audience,
    )


@dataclass(frozen=True)
class Attempt:
    """A token request with one of the account's keys: Entra's answer, or why the key could not
    sign (`missing`, `unusable`, `unavailable`: see `key_failure`)."""

    answer: TokenAnswer | None = None
    key_failure: str | None = None


def attempt(
    ctx: AppContext, account: Account, cloud: Cloud, *, key_id: str, thumbprint: str, fresh: bool
) -> Attempt:
    """`token`, with a key that could not sign logged (its kind of failure, never its error's
    text) and answered as data."""
    try:
        return Attempt(
            token(ctx, account, cloud, key_id=key_id, thumbprint=thumbprint, fresh=fresh)
        )
    except KeyUnavailable as failure:
        log.warning(
            "key not usable accountId=%s keyId=%s reason=%s",
            account.id,
            key_id,
            type(failure.cause).__name__,
        )
        return Attempt(key_failure=key_failure(failure.cause))


@dataclass(frozen=True)
class SignIn:
    """A token with the account's current key, for the app's own Graph writes (automatic
    renewal); without one, why not and whether trying later may help."""

    token: TokenAnswer | None
    graph: str = ""
    problem: str = ""
    transient: bool = False


def signed_in(ctx: AppContext, account: Account) -> SignIn:
    metadata, cloud = resolve(ctx, account, ctx.tenant_client())
    if cloud is None:
        return SignIn(None, problem="the tenant's OpenID metadata could not be read",
                      transient=metadata.transient)  # fmt: skip
    graph = ctx.settings.graph_endpoint or cloud.graph_resource
    tried = attempt(
        ctx, account, cloud, key_id=account.key_id, thumbprint=account.thumbprint, fresh=False
    )
    answer = tried.answer
    if answer is None:
        reason = tried.key_failure
        return SignIn(None, graph, f"the current key could not sign ({reason})",
                      transient=reason == "unavailable")  # fmt: skip
    if not answer.access_token:
        code = f"AADSTS{answer.error_code}" if answer.error_code else (answer.error or "no answer")
        return SignIn(None, graph, f"Entra gave no token for the current certificate ({code})",
                      transient=answer.transient)  # fmt: skip
    return SignIn(answer, graph)
