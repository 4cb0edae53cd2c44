"""Certificate renewal and moves between credentials: a rotation's states and the atomic account
writes that move it on.

A rotation gives an account a new key without ever disconnecting it. Its new key is made and
bound to the account in the write that starts the rotation (`shared.renewal.new_rotation`); the
account switches to it in ONE write (key, credential kind, thumbprint, expiry and the rotation
completed) once Entra accepts it (`switch`, used by `verification.record`); the key it
replaced stays bound, and usable, until `retire_after`, then is released and deleted. Every
transition is decided again on a fresh read of the account and written under its version
(`transition`), so two instances racing can neither do one twice nor lose one.

The Graph side of automatic renewal (addKey / removeKey) is in `shared.renewal.tenant_writes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.adapters.accountstore import KeyChanges, VersionConflict
from shared.adapters.accountstore.base import NO_KEY_CHANGES
from shared.context import AppContext
from shared.core.errors import Conflict, NotFound
from shared.core.model import Account, Event, Rotation
from shared.linking import history
from shared.linking.accounts import delete_keys, get_account
from shared.renewal import counted
from shared.renewal.credentials import described, previous_described, replaced_certificate
from shared.support.optimistic import retry_lost_races
from shared.support.timefmt import to_rfc3339, utc_now

log = logging.getLogger("m365link.rotation")


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
    on a lost race read again and decide again (`retry_lost_races`, the one write policy).
    `decide` answering None: nothing to do (the account is returned as it is). Every race
    lost: the last VersionConflict (a 503 at the edge)."""

    def attempt() -> Account:
        current = ctx.accounts.get_account(account.owner, account.id)
        if current is None:
            raise NotFound(f"no account {account.id!r}")
        change = decide(current)
        if change is None:
            return current
        try:
            return ctx.accounts.update_account(change.account, change.events, change.keys)
        except LookupError:
            raise NotFound(f"no account {account.id!r}") from None

    return retry_lost_races(attempt, VersionConflict, gave_up=lambda: VersionConflict(account.id))


def retiring_key(account: Account) -> str | None:
    """The key the last rotation replaced, while it is still in its retirement window."""
    rotation = account.rotation
    return rotation.previous_key_id if rotation is not None and rotation.retiring else None


# --- the switch, in the write that records a verification ---------------------------------
def switch(ctx: AppContext, current: Account, key_id: str) -> Change | None:
    """Entra accepted rotation key `key_id`: the account as it becomes with it (None when the
    account is not awaiting that key any more: switched already, cancelled or failed). Its
    credential becomes the new key's kind, with that key's thumbprint and expiry ("" and None
    for a federated credential)."""
    rotation = current.rotation
    if rotation is None or not rotation.in_progress or rotation.key_id != key_id:
        return None
    now = utc_now()
    retire_after = now + timedelta(days=ctx.settings.key_retirement_days)
    # The app removes only a certificate from the app registration (removeKey), never a
    # federated credential (that takes Application.ReadWrite).
    removes = rotation.renewal == "automatic" and replaced_certificate(rotation)
    completed = rotation.updated(
        status="completed",
        completed_at=now,
        retire_after=retire_after,
        detail=_switched_words(ctx, current, rotation, retire_after, removes),
        remove_key="pending" if removes else None,
    )
    switched = current.updated(
        key_id=rotation.key_id,
        credential=rotation.kind,
        thumbprint=rotation.thumbprint,
        certificate_not_after=rotation.not_after,
        rotation=completed,
    )
    now_with = described(rotation.key)
    moved = rotation.kind != current.credential
    event = history.event(
        current.owner,
        current.id,
        "rotation_completed",
        status=current.status,
        detail=f"now signing in with {now_with}"
        + (f" instead of {_previous(ctx, current, rotation)}" if moved else ""),
    )
    return Change(switched, [event])


def _previous(ctx: AppContext, current: Account, rotation: Rotation) -> str:
    """The replaced key in words (a federated credential's subject is read from its record)."""
    if replaced_certificate(rotation):
        return previous_described(rotation, None)
    return previous_described(
        rotation, ctx.accounts.get_key(current.owner, rotation.previous_key_id)
    )


def _switched_words(
    ctx: AppContext, current: Account, rotation: Rotation, retire_after: datetime, removes: bool
) -> str:
    """The completed rotation's detail: what was accepted, until when the replaced key stays
    usable, and who removes it from the app registration."""
    accepted = f"Entra accepted the new {described(rotation.key)}"
    until = to_rfc3339(retire_after)
    if not replaced_certificate(rotation):
        return (
            f"{accepted}; the previous {_previous(ctx, current, rotation)} stays usable until "
            f"{until}, then the app stops signing for it; remove it from the app registration "
            f"(App registrations > your app > Certificates & secrets > Federated credentials) "
            "then: the app cannot remove it itself."
        )
    if rotation.kind == "certificate":
        said = f"{accepted}; the previous one ({rotation.previous_thumbprint})"
    else:
        said = f"{accepted}; the previous certificate {rotation.previous_thumbprint}"
    return f"{said} stays usable until {until}, then its key is deleted" + (
        " and the app removes it from the app registration."
        if removes
        else "; remove it from the app registration then."
    )


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
            detail=f"Cancelled; the new key {rotation.key_id} was deleted."
            if rotation.kind != "federated"
            else f"Cancelled; the new {described(rotation.key)} was deleted: the app never "
            "signs for it, so remove it from the app registration if you added it.",
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
    counted.rotation("cancelled", saved.rotation.kind)
    delete_keys(ctx, saved.owner, (saved.rotation.key_id,))
    log.info("rotation cancelled accountId=%s", saved.id)
    return saved


def fail_if_expired(ctx: AppContext, account: Account, now: datetime) -> Account:
    """A rotation whose new certificate expired before Entra ever accepted it is `failed`;
    its key is released and deleted."""
    failing: list[Rotation] = []  # the rotation the decision that was written failed

    def decide(current: Account) -> Change | None:
        rotation = current.rotation
        expires = rotation.not_after if rotation is not None else None
        failing.clear()
        if rotation is None or not rotation.in_progress or expires is None or now < expires:
            return None  # a new federated credential never expires
        failing.append(rotation)
        failed = rotation.updated(
            status="failed",
            completed_at=now,
            detail=f"The new certificate {rotation.thumbprint} expired on "
            f"{to_rfc3339(expires)} before Entra ever accepted it; start a new "
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
        if failing:  # this process wrote it (not another instance before it)
            counted.rotation("failed", saved.rotation.kind)
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


# --- reading one -------------------------------------------------------------------------
def rotation_of(ctx: AppContext, owner: str, account_id: str) -> tuple[Account, Rotation]:
    account = get_account(ctx, owner, account_id)
    if account.rotation is None:
        raise NotFound("this account has never been renewed; POST to start a renewal")
    return account, account.rotation
