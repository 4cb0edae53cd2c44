"""Linking, reading and unlinking accounts, and the onboarding question (the accounts routes).

Unlink order: the account and its key binding go in one store transaction (so nothing points at a
key that is gone), then the private key is deleted from the key store, then the key record. If the
key store is down, the key record stays marked `deleting` and the health check finishes the job.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from shared.adapters.accountstore import KeyTaken, PairTaken, VersionConflict, VersionMismatch
from shared.context import AppContext
from shared.core.errors import AppError, Conflict, NotFound, PreconditionFailed, invalid
from shared.core.model import ACCOUNT_STATUSES, CLOUDS, RENEWALS, Account, KeyRecord
from shared.core.validation import Fields
from shared.linking import history, paging
from shared.support.guid import parse_guid
from shared.support.optimistic import retry_lost_races
from shared.support.striped import StripedLocks
from shared.support.timefmt import utc_now

log = logging.getLogger("m365link.accounts")


NO_SUCH_KEY = "no key with this id; generate one with POST /api/keys"


def link_account(ctx: AppContext, owner: str, body: dict[str, Any]) -> Account:
    fields = Fields(body)
    display_name = fields.text("displayName", max_len=64)
    tenant_id = fields.guid("tenantId")
    application_id = fields.guid("applicationId")
    organization_name = fields.text("organizationName", max_len=256, required=False)
    key_id = fields.guid("keyId")
    cloud = fields.one_of("cloud", CLOUDS, default="auto")
    renewal = fields.one_of("certificateRenewal", RENEWALS, default="manual")
    fields.done()
    assert display_name is not None

    key = ctx.accounts.get_key(owner, key_id)
    if key is None or key.deleting:
        raise invalid("keyId", NO_SUCH_KEY)
    if key.tenant_id != tenant_id or key.application_id != application_id:
        raise invalid(
            "keyId", "was made for another tenant or application; generate a key for this one"
        )
    now = utc_now()
    account = Account(
        id=str(uuid.uuid4()),
        owner=owner,
        display_name=display_name,
        tenant_id=tenant_id,
        application_id=application_id,
        organization_name=organization_name,
        cloud=cloud,
        key_id=key.key_id,
        thumbprint=key.thumbprint,
        certificate_not_after=key.not_after,
        credential=key.kind,
        status="pending",
        created_at=now,
        updated_at=now,
        certificate_renewal=renewal,
    )
    try:
        ctx.accounts.link(
            account, [history.event(owner, account.id, "linked", status=account.status)]
        )
    except PairTaken as taken:
        raise Conflict(
            "this tenant and application are already linked", account_id=taken.account_id
        ) from None
    except KeyTaken as taken:
        if taken.account_id is None:
            raise invalid("keyId", NO_SUCH_KEY) from None
        raise Conflict(
            "this key is already used by another account; generate a new key",
            account_id=taken.account_id,
        ) from None
    log.info("account linked accountId=%s keyId=%s", account.id, key.key_id)
    return account


def get_account(ctx: AppContext, owner: str, account_id: str) -> Account:
    canonical = parse_guid(account_id)
    account = ctx.accounts.get_account(owner, canonical) if canonical else None
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


def list_accounts(ctx: AppContext, owner: str, params: dict[str, str]) -> dict[str, Any]:
    """One page of the owner's accounts (`top`, `status`, `after`), one store query."""
    top = paging.top(params)
    status = params.get("status")
    if status is not None and status not in ACCOUNT_STATUSES:
        raise invalid("status", "must be one of " + ", ".join(ACCOUNT_STATUSES))
    after = paging.decode(params.get("after"))
    page = paging.at_position(lambda: ctx.accounts.page_accounts(owner, top, after, status))
    resources = [a.to_resource() for a in page.items]
    return paging.page_body(resources, "/api/accounts", page.next, top=top, status=status)


def unlink_account(
    ctx: AppContext, owner: str, account_id: str, if_match: str | None = None
) -> None:
    """Remove the account and delete every key bound to it (during a rotation, the new key
    too; after one, the key it replaced if not yet retired)."""
    canonical = parse_guid(account_id)
    if canonical is None:
        raise NotFound(f"no account {account_id!r}")
    # `*` matches whatever version is current (a change meanwhile is no 412); a named tag pins
    # the delete to the version it matched.
    version = (
        None
        if if_match is None or "*" in _tags(if_match)
        else matched_version(get_account(ctx, owner, canonical), if_match)
    )
    try:
        account = ctx.accounts.unlink(
            owner, canonical, [history.event(owner, canonical, "unlinked")], version=version
        )
    except VersionMismatch:
        raise _changed() from None
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    log.info("account unlinked accountId=%s keyId=%s", account.id, account.key_id)
    ctx.forget_account(account.id)
    delete_keys(ctx, owner, account.key_ids())


def delete_keys(ctx: AppContext, owner: str, key_ids: tuple[str, ...]) -> None:
    """Finish deleting keys already marked `deleting`; what fails is left for the timer."""
    for key_id in key_ids:
        try:
            record = ctx.accounts.get_key(owner, key_id)
        except AppError:
            log.warning("key deletion left for the health check keyId=%s", key_id)
            continue
        if record is not None and record.deleting:
            finish_key_deletion(ctx, record)


# --- PATCH and If-Match ----------------------------------------------------------------------
PATCHABLE = ("displayName", "organizationName", "certificateRenewal")
_ATTRIBUTES = ("display_name", "organization_name", "certificate_renewal")
# PATCHes of one account in this instance take turns (read, decide, write), so a burst of them
# never loses races to each other and every one lands; a race lost to another instance or to
# another write (a verification) is read again and re-applied (`retry_lost_races`).
_TURNS = StripedLocks()


def _changed() -> PreconditionFailed:
    return PreconditionFailed(
        "the account changed since you read it (If-Match); read it again and retry"
    )


def _tags(if_match: str) -> list[str]:
    return [t.strip() for t in if_match.split(",")]


def matched_version(account: Account, if_match: str) -> int:
    """The version `If-Match` names if it matches the account (RFC 9110 strong comparison:
    a list of entity tags, or `*`); else 412."""
    tags = _tags(if_match)
    if "*" in tags or account.etag in tags:
        return account.version
    raise _changed()


def patch_account(
    ctx: AppContext,
    owner: str,
    account_id: str,
    body: dict[str, Any],
    if_match: str | None = None,
    *,
    follow: Callable[[Account], Account],
) -> Account:
    """A JSON merge patch (RFC 7396) of the fields a customer may change: `null` removes the
    organisation name; the other two cannot be removed. Any other field is a 400 naming it.
    A patch that changes nothing writes nothing. `follow` gives what else the patched values
    change, written in the same write (the rotation follows `certificateRenewal`)."""
    fields = Fields(body)
    for name in sorted(set(body) - set(PATCHABLE)):
        fields.problems.add(name, "cannot be changed; PATCH takes " + ", ".join(PATCHABLE))
    display_name = fields.text("displayName", max_len=64, required=False)
    if "displayName" in body and body["displayName"] is None:
        fields.problems.add("displayName", "cannot be removed; give a name of 1 to 64 characters")
    organization_name = fields.text("organizationName", max_len=256, required=False)
    renewal = fields.one_of("certificateRenewal", RENEWALS, default=None)
    if "certificateRenewal" in body and body["certificateRenewal"] is None:
        fields.problems.add("certificateRenewal", "must be one of " + ", ".join(RENEWALS))
    fields.done()
    values: dict[str, Any] = {}
    if display_name is not None:
        values["display_name"] = display_name
    if "organizationName" in body:
        values["organization_name"] = organization_name
    if renewal is not None:
        values["certificate_renewal"] = renewal
    attempt = partial(_apply_patch, ctx, owner, account_id, values, if_match, follow)
    return retry_lost_races(
        attempt,
        VersionConflict,
        gave_up=lambda: VersionConflict(account_id),
        turn=_TURNS.of(account_id.lower()),
    )


def _apply_patch(
    ctx: AppContext,
    owner: str,
    account_id: str,
    values: dict[str, Any],
    if_match: str | None,
    follow: Callable[[Account], Account],
) -> Account:
    """Apply the patch's values to the account as it is now, written under the version read
    (VersionConflict: a lost race, read again)."""
    current = get_account(ctx, owner, account_id)
    if if_match is not None:
        matched_version(current, if_match)
    changed = follow(current.updated(**values))
    if changed == current:
        return current  # nothing to change: no write, no event
    # The event names the fields whose value changed, not every field the body repeated.
    named = [
        name
        for name, attribute in zip(PATCHABLE, _ATTRIBUTES, strict=True)
        if getattr(changed, attribute) != getattr(current, attribute)
    ]
    event = history.event(
        owner, current.id, "updated", status=current.status, detail="changed " + ", ".join(named)
    )
    try:
        saved = ctx.accounts.update_account(changed.updated(updated_at=utc_now()), [event])
    except VersionConflict:
        # `*` matches whatever version is current: a lost race is read again, as without
        # If-Match. A named tag that matched the version read names a version now gone.
        if if_match is not None and "*" not in _tags(if_match):
            raise _changed() from None
        raise
    except LookupError:
        raise NotFound(f"no account {account_id!r}") from None
    log.info("account updated accountId=%s fields=%s", saved.id, ",".join(named))
    return saved


def finish_key_deletion(ctx: AppContext, record: KeyRecord) -> bool:
    """Delete the private key (from the store of its custody), then its record, of a key marked
    `deleting` (no account can bind it any more). False when a store is down or refuses the app
    (retry later)."""
    try:
        if not record.federated:  # a federated credential has no key of its own to delete
            ctx.key_store_of(record).delete(record.key_id)
        ctx.accounts.delete_key(record.owner, record.key_id)
    except AppError:
        log.warning("key deletion left for the health check keyId=%s", record.key_id)
        return False
    return True


def onboarding(ctx: AppContext, owner: str) -> dict[str, Any]:
    # Counts the store keeps (Table: one point read; SQLite: an index-only count).
    linked, connected = ctx.accounts.count_accounts(owner)
    return {
        "required": connected == 0,
        "linkedAccounts": linked,
        "connectedAccounts": connected,
    }
