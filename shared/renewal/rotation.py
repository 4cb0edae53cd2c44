"""Certificate renewal: a rotation's states and the atomic account writes that move it on.

A rotation gives an account a new key without ever disconnecting it. Its new key is made and
bound to the account in the write that starts the rotation; the account switches to it in ONE
write (key, thumbprint, expiry and the rotation completed) once Entra accepts its certificate
(`switch`, used by `verify.record`); the key it replaced stays bound, and usable, until
`retire_after`, then is released and deleted. Every transition is decided again on a fresh
read of the account and written under its version (`transition`), so two instances racing
can neither do one twice nor lose one.

The Graph side of automatic renewal (addKey / removeKey) is in `shared.renewal.renew`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.accountstore import KeyChanges, VersionConflict
from shared.adapters.accountstore.base import NO_KEY_CHANGES
from shared.context import AppContext
from shared.core import certificates
from shared.core.errors import Conflict, NotFound, invalid
from shared.core.model import Account, Event, Rotation
from shared.core.validation import Fields
from shared.linking import history
from shared.linking.accounts import delete_keys, get_account
from shared.linking.keys import store_key, with_expiry
from shared.support.timefmt import to_rfc3339, utc_now

log = logging.getLogger("m365link.rotation")
MAX_VALIDITY_DAYS = 730
TRANSITION_ATTEMPTS = 8


@dataclass(frozen=True)
class Change:
    """One write of a transition: the account as it becomes, its events, its key changes."""

    account: Account
    events: list[Event] = field(default_factory=list)
    keys: KeyChanges = NO_KEY_CHANGES


def transition(
    ctx: AppContext, account: Account, decide: Callable[[Account], Change | None]
) -> Account:
    """Apply `decide` to the account as it is now and write the change under that version;
    on a lost race read again and decide again. `decide` answering None: nothing to do (the
    account is returned as it is)."""
    conflict: VersionConflict | None = None
    for _ in range(TRANSITION_ATTEMPTS):
        current = ctx.accounts.get_account(account.owner, account.id)
        if current is None:
            raise NotFound(f"no account {account.id!r}")
        change = decide(current)
        if change is None:
            return current
        try:
            return ctx.accounts.update_account(change.account, change.events, change.keys)
        except VersionConflict as lost:
            conflict = lost
        except LookupError:
            raise NotFound(f"no account {account.id!r}") from None
    raise conflict or VersionConflict(account.id)


# --- starting one ------------------------------------------------------------------------
def default_validity(ctx: AppContext, account: Account) -> tuple[int, int]:
    """(validity days, key size) of the key being replaced, the length bounded to
    [2 x CERT_EXPIRY_WARNING_DAYS, 730] so a renewal is never due again at once."""
    record = ctx.accounts.get_key(account.owner, account.key_id)
    if record is None:
        days, size = 365, 2048
    else:
        days, size = (record.not_after - record.not_before).days, record.key_size
    return min(max(days, shortest_validity(ctx)), MAX_VALIDITY_DAYS), size


def shortest_validity(ctx: AppContext) -> int:
    """Twice CERT_EXPIRY_WARNING_DAYS (at least a day): a renewal's certificate is never inside
    the warning window, and so never due for renewal, the moment it is made."""
    return max(2 * ctx.settings.cert_expiry_warning_days, 1)


def options(ctx: AppContext, account: Account, body: dict[str, Any]) -> tuple[int, int]:
    """`validityDays` and `keySize` of POST /rotation, defaulting to the replaced key's."""
    days, size = default_validity(ctx, account)
    shortest = shortest_validity(ctx)
    fields = Fields(body)
    days = fields.integer("validityDays", default=days, lo=1, hi=MAX_VALIDITY_DAYS)
    size = fields.one_of("keySize", certificates.KEY_SIZES, default=size)
    fields.done()
    if days < shortest:
        raise invalid(
            "validityDays",
            f"must be at least {shortest} days (twice CERT_EXPIRY_WARNING_DAYS), or the renewal "
            "would be due again at once",
        )
    return days, size


def in_progress_conflict(account: Account) -> Conflict:
    assert account.rotation is not None
    return Conflict(
        "a renewal of this account is already in progress; cancel it first or finish it",
        account_id=account.id,
        key_id=account.rotation.key_id,
    )


@dataclass(frozen=True)
class Started:
    """A rotation begun: the account as written, and the last rotation when that write retired
    the key it had replaced (still in its retirement window: its certificate may be left on the
    app registration, for automatic renewal to remove)."""

    account: Account
    replaced: Rotation | None = None


def begin(
    ctx: AppContext,
    account: Account,
    *,
    validity_days: int,
    key_size: int,
    now: datetime | None = None,
    reason: list[Event] | None = None,
) -> Started:
    """Make the new key and start the rotation: the key is bound to the account in the same
    write that records the rotation (so it is never an unlinked key that retention could
    take). Raises Conflict when one is in progress (also when another request started one
    meanwhile: the key made here is then deleted again). Nothing else changes before that
    write: a start that fails (the key store down, a 409) leaves the account, and the key in
    its retirement window, as they were."""
    if account.rotation is not None and account.rotation.in_progress:
        raise in_progress_conflict(account)
    now = now or utc_now()
    previous = ctx.accounts.get_key(account.owner, account.key_id)
    record = store_key(
        ctx,
        account.owner,
        account.tenant_id,
        account.application_id,
        previous.display_name if previous else account.display_name,
        validity_days=validity_days,
        key_size=key_size,
        now=now,
    )
    key = with_expiry(ctx, replace(record, account_id=account.id)).to_resource()
    replaced: list[Rotation] = []  # by the decision that was written

    def decide(current: Account) -> Change:
        if current.rotation is not None and current.rotation.in_progress:
            raise in_progress_conflict(current)
        # The new rotation replaces the record of the last one: a key that one replaced and
        # that is still in its retirement window is retired now, in this write, or no rotation
        # would name it any more and neither the timer nor unlink would ever delete it.
        retired = retiring_key(current)
        replaced[:] = [current.rotation] if retired and current.rotation else []
        return _starting(current, key, now, reason or [], retired)

    try:
        saved = transition(ctx, account, decide)
    except Exception:
        _discard(ctx, account.owner, record.key_id)
        raise
    if replaced:
        retired_key = replaced[0].previous_key_id
        delete_keys(ctx, account.owner, (retired_key,))
        log.info("replaced key retired early accountId=%s keyId=%s", account.id, retired_key)
    log.info(
        "rotation started accountId=%s keyId=%s renewal=%s",
        account.id,
        record.key_id,
        saved.certificate_renewal,
    )
    return Started(saved, replaced[0] if replaced else None)


def _starting(
    current: Account, key: dict[str, Any], now: datetime, reason: list[Event], retired: str | None
) -> Change:
    """The write that starts the rotation to `key` on the account as it is now: the rotation
    (its renewal as the account has it now), the new key bound, the retiring one released."""
    automatic = current.certificate_renewal == "automatic"
    thumbprint, key_id = str(key["thumbprint"]), str(key["keyId"])
    started = Rotation(
        key=key,
        previous_key_id=current.key_id,
        previous_thumbprint=current.thumbprint,
        status="awaiting_upload",
        renewal=current.certificate_renewal,
        started_at=now,
        detail=awaiting(thumbprint, key_id, automatic),
        add_key="pending" if automatic else None,
    )
    event = history.event(
        current.owner,
        current.id,
        "rotation_started",
        status=current.status,
        detail=f"new certificate {thumbprint} valid until {key['notAfter']}",
    )
    return Change(
        current.updated(rotation=started, updated_at=utc_now()),
        [*reason, event],
        KeyChanges(bind=(key_id,), release=(retired,) if retired else ()),
    )


def retiring_key(account: Account) -> str | None:
    """The key the last rotation replaced, while it is still in its retirement window."""
    rotation = account.rotation
    return rotation.previous_key_id if rotation is not None and rotation.retiring else None


def _discard(ctx: AppContext, owner: str, key_id: str) -> None:
    """A new key no rotation got: deleted now if it can be, else retention removes it."""
    try:
        if ctx.accounts.mark_unused_key_deleting(owner, key_id):
            delete_keys(ctx, owner, (key_id,))
    except Exception:
        log.warning("unused renewal key left for retention keyId=%s", key_id)


def awaiting(
    thumbprint: str, key_id: str, automatic: bool, *, switched: bool = False, added: bool = False
) -> str:
    """A rotation in progress: what happens next, and who does it (after `switched`: the
    renewal setting changed; `added`: the app's addKey had landed)."""
    said = f"Automatic renewal was switched {'on' if automatic else 'off'}. " if switched else ""
    if added:
        return (
            f"{said}The app has added the new certificate {thumbprint} to its app registration, "
            "so there is nothing to upload: the account switches to it as soon as Entra accepts it."
        )
    if automatic:
        return (
            f"{said}The app adds the new certificate {thumbprint} to its app registration itself; "
            "the account switches to it as soon as Entra accepts it."
        )
    return (
        f"{said}Upload the new certificate {thumbprint} (GET /api/keys/{key_id}?format=cer) under "
        "App registrations > your app > Certificates & secrets, and leave the old one until the "
        "account has switched."
    )


# --- the switch, in the write that records a verification ---------------------------------
def switch(ctx: AppContext, current: Account, key_id: str) -> Change | None:
    """Entra accepted rotation key `key_id`: the account as it becomes with it (None when the
    account is not awaiting that key any more: switched already, cancelled or failed)."""
    rotation = current.rotation
    if rotation is None or not rotation.in_progress or rotation.key_id != key_id:
        return None
    now = utc_now()
    retire_after = now + timedelta(days=ctx.settings.key_retirement_days)
    completed = rotation.updated(
        status="completed",
        completed_at=now,
        retire_after=retire_after,
        detail=f"Entra accepted the new certificate {rotation.thumbprint}; the previous one "
        f"({rotation.previous_thumbprint}) stays usable until {to_rfc3339(retire_after)}, then "
        "its key is deleted"
        + (
            " and the app removes it from the app registration."
            if rotation.renewal == "automatic"
            else "; remove it from the app registration then."
        ),
        remove_key="pending" if rotation.renewal == "automatic" else None,
    )
    switched = current.updated(
        key_id=rotation.key_id,
        thumbprint=rotation.thumbprint,
        certificate_not_after=rotation.not_after,
        rotation=completed,
    )
    event = history.event(
        current.owner,
        current.id,
        "rotation_completed",
        status=current.status,
        detail=f"now signing in with certificate {rotation.thumbprint}",
    )
    return Change(switched, [event])


# --- ending one otherwise ----------------------------------------------------------------
def cancel(ctx: AppContext, account: Account) -> Account:
    """Cancel the rotation in progress: its new key is released (then deleted), the account
    keeps its key. A finished rotation: 409."""

    def decide(current: Account) -> Change:
        rotation = current.rotation
        if rotation is None:
            raise NotFound("this account has no renewal")
        if not rotation.in_progress:
            raise Conflict(
                f"the renewal is {rotation.status.replace('_', ' ')}; only one in progress can "
                "be cancelled",
                account_id=current.id,
            )
        cancelled = rotation.updated(
            status="cancelled",
            completed_at=utc_now(),
            detail=f"Cancelled; the new key {rotation.key_id} was deleted.",
        )
        event = history.event(
            current.owner, current.id, "rotation_cancelled", status=current.status
        )
        return Change(
            current.updated(rotation=cancelled, updated_at=utc_now()),
            [event],
            KeyChanges(release=(rotation.key_id,)),
        )

    saved = transition(ctx, account, decide)
    assert saved.rotation is not None
    delete_keys(ctx, saved.owner, (saved.rotation.key_id,))
    log.info("rotation cancelled accountId=%s", saved.id)
    return saved


def fail_if_expired(ctx: AppContext, account: Account, now: datetime) -> Account:
    """A rotation whose new certificate expired before Entra ever accepted it is `failed`;
    its key is released and deleted."""

    def decide(current: Account) -> Change | None:
        rotation = current.rotation
        if rotation is None or not rotation.in_progress or now < rotation.not_after:
            return None
        failed = rotation.updated(
            status="failed",
            completed_at=now,
            detail=f"The new certificate {rotation.thumbprint} expired on "
            f"{to_rfc3339(rotation.not_after)} before Entra ever accepted it; start a new "
            "renewal.",
        )
        event = history.event(
            current.owner,
            current.id,
            "rotation_failed",
            status=current.status,
            detail=failed.detail,
        )
        return Change(
            current.updated(rotation=failed, updated_at=utc_now()),
            [event],
            KeyChanges(release=(rotation.key_id,)),
        )

    saved = transition(ctx, account, decide)
    if saved.rotation is not None and saved.rotation.status == "failed":
        delete_keys(ctx, saved.owner, (saved.rotation.key_id,))  # a no-op once it is gone
    return saved


def retirement_due(account: Account, now: datetime) -> bool:
    rotation = account.rotation
    return (
        rotation is not None
        and rotation.retiring
        and rotation.retire_after is not None
        and now >= rotation.retire_after
    )


def retire(ctx: AppContext, account: Account, now: datetime, **changes: Any) -> Account:
    """After the retirement window: release the replaced key (then delete it, private key
    included). `changes` amend the rotation in the same write (removeKey's outcome)."""

    def decide(current: Account) -> Change | None:
        if not retirement_due(current, now):
            return None
        assert current.rotation is not None
        retired = current.rotation.updated(previous_retired_at=now, **changes)
        return Change(
            current.updated(rotation=retired),
            [],
            KeyChanges(release=(current.rotation.previous_key_id,)),
        )

    saved = transition(ctx, account, decide)
    rotation = saved.rotation
    if rotation is not None and rotation.previous_retired_at is not None:
        delete_keys(ctx, saved.owner, (rotation.previous_key_id,))  # a no-op once it is gone
        log.info("replaced key retired accountId=%s keyId=%s", saved.id, rotation.previous_key_id)
    return saved


def amend(
    ctx: AppContext,
    account: Account,
    key_id: str,
    status: str,
    change: Callable[[Rotation], Rotation],
) -> Account:
    """Apply `change` to the rotation of `key_id` as it is now, if it is still the account's and
    still has `status` (automatic renewal's progress never lands on a rotation that ended
    meanwhile)."""

    def decide(current: Account) -> Change | None:
        rotation = current.rotation
        if rotation is None or rotation.key_id != key_id or rotation.status != status:
            return None
        amended = change(rotation)
        return None if amended == rotation else Change(current.updated(rotation=amended))

    return transition(ctx, account, decide)


def fresh(ctx: AppContext, account: Account) -> Account:
    """The account as the store holds it now (what a Graph write is decided on)."""
    return transition(ctx, account, lambda current: None)


# --- the renewal setting ------------------------------------------------------------------
def follow_renewal(account: Account) -> Account:
    """The account with its rotation handed to whoever `certificateRenewal` now names (applied
    by PATCH in the write that changes the setting). To `automatic`: the app takes over the
    Graph writes still to come (addKey of a rotation in progress, removeKey at retirement).
    To `manual`: those pending writes are dropped and `detail` says what the customer now does
    by hand. A finished rotation stays as it is."""
    rotation = account.rotation
    renewal = account.certificate_renewal
    if rotation is None or rotation.renewal == renewal:
        return account
    automatic = renewal == "automatic"
    if rotation.in_progress:
        added = rotation.add_key == "done"
        followed = rotation.updated(
            renewal=renewal,
            add_key="done" if added else ("pending" if automatic else None),
            detail=awaiting(
                rotation.thumbprint, rotation.key_id, automatic, switched=True, added=added
            ),
        )
    elif rotation.retiring:
        followed = rotation.updated(
            renewal=renewal,
            remove_key="pending" if automatic else None,
            detail=_retiring(rotation, automatic),
        )
    else:
        return account
    return account.updated(rotation=followed)


def _retiring(rotation: Rotation, automatic: bool) -> str:
    when = to_rfc3339(rotation.retire_after) if rotation.retire_after else "the retirement"
    if automatic:
        return (
            f"Automatic renewal was switched on: the app removes the previous certificate "
            f"{rotation.previous_thumbprint} from its app registration when its key retires "
            f"({when})."
        )
    return (
        f"Automatic renewal was switched off: the app no longer removes the previous certificate "
        f"{rotation.previous_thumbprint}; remove it from the app registration by hand (App "
        f"registrations > your app > Certificates & secrets) once its key retires ({when})."
    )


# --- reading one -------------------------------------------------------------------------
def rotation_of(ctx: AppContext, owner: str, account_id: str) -> tuple[Account, Rotation]:
    account = get_account(ctx, owner, account_id)
    if account.rotation is None:
        raise NotFound("this account has never been renewed; POST to start a renewal")
    return account, account.rotation
