"""Renewal as the routes and the timer drive it: start, cancel, and the timer's upkeep, with the
Graph writes of automatic renewal.

Automatic renewal (`certificateRenewal: automatic`) is the only place the app writes to a
customer's tenant, and only its own credentials: `addKey` of the new certificate when a
rotation starts (proof signed by the current key, wherever its custody is), `removeKey` of the
replaced certificate once it is retired. A refusal (an app-management policy, no valid current
certificate) is kept with Graph's words in the rotation's `detail` and leaves the manual path
open; a transient failure is tried again at the timer's next visit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared import history, own_credentials
from shared import rotation as rotations
from shared.accounts import get_account
from shared.app_context import AppContext
from shared.client_assertion import KeyUnavailable
from shared.guid import parse_guid
from shared.own_credentials import GraphWrite
from shared.records import Account
from shared.tenant_client import TenantClient
from shared.timefmt import to_rfc3339, utc_now
from shared.verify import signed_in

log = logging.getLogger("m365link.renewal")

# What an own-credentials call is given: the client, Graph's base URL, a token, the
# application's object id, and the current key's signer.
GraphCall = Callable[[TenantClient, str, str, str, Any], GraphWrite]


def start(ctx: AppContext, owner: str, account_id: str, body: dict[str, Any]) -> Account:
    """POST /api/accounts/{id}/rotation."""
    account = get_account(ctx, owner, account_id)
    if account.rotation is not None and account.rotation.in_progress:
        raise rotations.in_progress_conflict(account)
    days, size = rotations.options(ctx, account, body)
    account = retire_before_renewing(ctx, account, utc_now())
    account = rotations.begin(ctx, account, validity_days=days, key_size=size)
    return push_new_certificate(ctx, account)


def retire_before_renewing(ctx: AppContext, account: Account, now: datetime) -> Account:
    """A renewal starting while the last one's replaced key is in its retirement window
    retires that key first, with removeKey when automatic (`begin` releases it in any case,
    so a removeKey that must wait leaves its certificate on the app registration)."""
    if rotations.retiring_key(account) is None:
        return account
    return _retire(ctx, account, now, early=True)


def cancel(ctx: AppContext, owner: str, account_id: str) -> Account:
    """DELETE /api/accounts/{id}/rotation: also takes back a certificate automatic renewal had
    added (best effort: the key behind it is deleted either way)."""
    account = rotations.cancel(ctx, get_account(ctx, owner, account_id))
    rotation = account.rotation
    if rotation is not None and rotation.add_key == "done":
        write = remove_from_registration(ctx, account, rotation.thumbprint)
        left = (
            ""
            if write.outcome == "done"
            else f" {write.words()} Remove certificate {rotation.thumbprint} from the app "
            "registration by hand."
        )
        account = rotations.amend(
            ctx,
            account,
            rotation.key_id,
            detail=f"Cancelled; the new key {rotation.key_id} was deleted"
            + (" and its certificate removed from the app registration." if not left else ".")
            + left,
        )
    return account


def remove_from_registration(ctx: AppContext, account: Account, thumbprint: str) -> GraphWrite:
    """removeKey of one certificate from the app registration, the proof signed by the
    account's current key (own_credentials never removes the one that signs)."""
    return _own_write(
        ctx,
        account,
        lambda tenant, graph, token, object_id, signer: own_credentials.remove_certificate(
            tenant,
            graph,
            token,
            object_id=object_id,
            thumbprint=thumbprint,
            signer=signer,
            signer_thumbprint=account.thumbprint,
        ),
    )


def push_new_certificate(ctx: AppContext, account: Account) -> Account:
    """Automatic renewal: addKey the rotation's certificate to the app registration. Nothing
    to do for a manual renewal or once done or refused."""
    rotation = account.rotation
    if rotation is None or not rotation.in_progress or rotation.add_key != "pending":
        return account
    write = _own_write(
        ctx,
        account,
        lambda tenant, graph, token, object_id, signer: own_credentials.add_certificate(
            tenant,
            graph,
            token,
            object_id=object_id,
            certificate_pem=str(rotation.key["certificatePem"]),
            signer=signer,
            signer_thumbprint=account.thumbprint,
        ),
    )
    if write.outcome == "done":
        log.info("renewal certificate added accountId=%s", account.id)
        return rotations.amend(
            ctx,
            account,
            rotation.key_id,
            add_key="done",
            detail=f"The app added the new certificate {rotation.thumbprint} to its app "
            "registration (Microsoft Graph addKey). Entra takes up to a few minutes to accept a "
            "new certificate; the account switches to it at the first verification after that.",
        )
    if write.outcome == "refused":
        log.warning("renewal certificate refused accountId=%s code=%s", account.id, write.code)
        return rotations.amend(
            ctx,
            account,
            rotation.key_id,
            add_key="refused",
            detail=f"{write.words()} Upload the new certificate {rotation.thumbprint} by hand "
            f"(GET /api/keys/{rotation.key_id}?format=cer) under App registrations > your app > "
            "Certificates & secrets; the account switches to it once Entra accepts it.",
        )
    log.info("renewal certificate not added yet accountId=%s", account.id)
    return rotations.amend(
        ctx,
        account,
        rotation.key_id,
        detail=f"{write.words()} The app tries again at the next health check.",
    )


def _own_write(ctx: AppContext, account: Account, call: GraphCall) -> GraphWrite:
    """Sign in with the current key, find the application object, and make one write."""
    sign_in = signed_in(ctx, account)
    if sign_in.token is None or not sign_in.token.access_token:
        return GraphWrite(
            "transient" if sign_in.transient else "refused",
            message=f"The app could not sign in to make the change: {sign_in.problem}.",
        )
    token = sign_in.token.access_token
    tenant = ctx.tenant_client()
    object_id = _object_id_from_report(account)
    if object_id is None:
        found = own_credentials.application_object_id(
            tenant, sign_in.graph, token, account.application_id
        )
        if isinstance(found, GraphWrite):
            return found
        object_id = found
    try:
        signer = ctx.signer_of_key(account.owner, account.key_id)
        return call(tenant, sign_in.graph, token, object_id, signer)
    except Exception as failure:  # the key store could not sign the proof: nothing was sent
        cause = failure.cause if isinstance(failure, KeyUnavailable) else failure
        return GraphWrite(
            "transient", message=f"The current key could not sign ({type(cause).__name__})"
        )


def _object_id_from_report(account: Account) -> str | None:
    """The application's object id as the last verification's Graph read gave it."""
    report = account.last_verification or {}
    registration = report.get("appRegistration")
    if not isinstance(registration, dict):
        return None
    value = registration.get("objectId")
    return parse_guid(value) if isinstance(value, str) else None


# --- the timer ---------------------------------------------------------------------------
def upkeep(ctx: AppContext, account: Account, now: datetime | None = None) -> Account:
    """What the timer does for an account's renewal before verifying it: fail a rotation
    whose new certificate expired, retry automatic renewal's addKey, retire the replaced key
    after KEY_RETIREMENT_DAYS (removeKey first, when automatic), and start a rotation when the
    certificate enters the CERT_EXPIRY_WARNING_DAYS window. `now` is injectable (tests)."""
    now = now or utc_now()
    rotation = account.rotation
    if rotation is not None and rotation.in_progress:
        if now >= rotation.not_after:
            return rotations.fail_if_expired(ctx, account, now)
        return push_new_certificate(ctx, account)
    if rotations.retirement_due(account, now):
        account = _retire(ctx, account, now)
    window = timedelta(days=ctx.settings.cert_expiry_warning_days)
    if now >= account.renewal_window(window) and not _in_progress(account):
        days, size = rotations.default_validity(ctx, account)
        expiring = history.event(
            account.owner,
            account.id,
            "certificate_expiring",
            status=account.status,
            detail=f"certificate {account.thumbprint} expires on "
            f"{to_rfc3339(account.certificate_not_after)}; a renewal was started",
        )
        account = retire_before_renewing(ctx, account, now)
        account = rotations.begin(
            ctx, account, validity_days=days, key_size=size, reason=[expiring]
        )
        account = push_new_certificate(ctx, account)
    return account


def _in_progress(account: Account) -> bool:
    return account.rotation is not None and account.rotation.in_progress


def _retire(ctx: AppContext, account: Account, now: datetime, *, early: bool = False) -> Account:
    rotation = account.rotation
    assert rotation is not None
    if rotation.remove_key != "pending":
        return rotations.retire(ctx, account, now, early=early)
    write = remove_from_registration(ctx, account, rotation.previous_thumbprint)
    if write.outcome == "transient":
        log.info("replaced certificate not removed yet accountId=%s", account.id)
        return account  # the key stays until removeKey answers; the next run tries again
    if write.outcome == "done":
        detail = (
            f"Completed; the previous certificate {rotation.previous_thumbprint} was removed "
            "from the app registration and its key deleted."
        )
    else:
        detail = (
            f"Completed; the previous key was deleted. {write.words()} Remove certificate "
            f"{rotation.previous_thumbprint} from the app registration by hand."
        )
    return rotations.retire(ctx, account, now, early=early, remove_key=write.outcome, detail=detail)
